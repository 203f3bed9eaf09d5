"""Symmetries of a noisy system and the Noether charges they conserve."""

from .._hamilton import hamiltonian as hamiltonian, integrate_hamilton as integrate_hamilton
from ._families import (
    AbstractAffineFamily as AbstractAffineFamily,
    AbstractGeneratorFamily as AbstractGeneratorFamily,
    AffineGenerators as AffineGenerators,
    FamilySum as FamilySum,
    Generator as Generator,
    InSubspace as InSubspace,
    LinearGenerators as LinearGenerators,
    Rotations as Rotations,
    Translations as Translations,
    VectorFieldBasis as VectorFieldBasis,
)
from ._find import (
    find_symmetries as find_symmetries,
    symmetry_conditions as symmetry_conditions,
    SymmetryConditions as SymmetryConditions,
    Symmetries as Symmetries,
)
from ._report import ChargeReport as ChargeReport, charge_report as charge_report
