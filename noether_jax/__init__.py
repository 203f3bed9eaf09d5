"""noether_jax: most likely paths of noisy dynamical systems, and their Noether charges."""

# Systems: SDEs, the action functionals of their paths, and model drifts
from ._sde import SDE as SDE
from ._action import (
    AbstractAction as AbstractAction,
    FreidlinWentzell as FreidlinWentzell,
    OnsagerMachlup as OnsagerMachlup,
)
from ._rnn import CTRNN as CTRNN, ctrnn_drift as ctrnn_drift

# Most likely paths: fixed time and unbounded time (geometric action)
from ._path import minimize_action as minimize_action
from ._geometric import (
    Transition as Transition,
    barrier as barrier,
    fixed_time_path as fixed_time_path,
    geometric_action_of as geometric_action_of,
    minimize_geometric_action as minimize_geometric_action,
    physical_times as physical_times,
)

# Path problems (what a solver may ask of a discrete action), their Hessian as a lineax
# operator and its structured solver
from ._problem import (
    AbstractPathProblem as AbstractPathProblem,
    FixedTimeProblem as FixedTimeProblem,
)
from ._geometric import GeometricProblem as GeometricProblem
from ._linalg import (
    BlockCholesky as BlockCholesky,
    BlockTridiagonalOperator as BlockTridiagonalOperator,
)

# Grids, solvers, results
from ._mesh import AdaptiveGrid as AdaptiveGrid, Refine as Refine
from ._solver import (
    AbstractPathSolver as AbstractPathSolver,
    BlockNewton as BlockNewton,
    LBFGS as LBFGS,
    NewtonCG as NewtonCG,
)
from ._results import RESULTS as RESULTS
from ._solution import PathSolution as PathSolution

# Batches: chunked, sharded, resumable; compiler options for batches on CPU
from ._batch import solve_batch as solve_batch
from ._xla import cpu_compiler_options as cpu_compiler_options

# The landscape: fixed points, relaxation, leaving saddles
from ._geometric import (
    FIXED_POINT_KINDS as FIXED_POINT_KINDS,
    FixedPoint as FixedPoint,
    FixedPoints as FixedPoints,
    Relaxation as Relaxation,
    UnstableManifold as UnstableManifold,
    check_fixed_point as check_fixed_point,
    classify_fixed_point as classify_fixed_point,
    find_fixed_points as find_fixed_points,
    leave_saddle as leave_saddle,
    relax as relax,
)

# Transitions between attractors: the network of attractors and saddles, routes, rates
from ._geometric import (
    Rate as Rate,
    Route as Route,
    RouteLeg as RouteLeg,
    TransitionNetwork as TransitionNetwork,
    escape_rate as escape_rate,
    route_candidates as route_candidates,
    transition_network as transition_network,
)

# Charges, symmetries and Hamilton's equations
from ._charges import (
    action_of as action_of,
    angular_momentum as angular_momentum,
    energy as energy,
    momentum as momentum,
    noether_charge as noether_charge,
)
from ._symmetry import (
    AbstractAffineFamily as AbstractAffineFamily,
    AbstractGeneratorFamily as AbstractGeneratorFamily,
    AffineGenerators as AffineGenerators,
    ChargeReport as ChargeReport,
    FamilySum as FamilySum,
    Generator as Generator,
    InSubspace as InSubspace,
    LinearGenerators as LinearGenerators,
    Rotations as Rotations,
    SymmetryConditions as SymmetryConditions,
    Symmetries as Symmetries,
    Translations as Translations,
    VectorFieldBasis as VectorFieldBasis,
    charge_report as charge_report,
    find_symmetries as find_symmetries,
    hamiltonian as hamiltonian,
    integrate_hamilton as integrate_hamilton,
    symmetry_conditions as symmetry_conditions,
)


def _version() -> str:
    # One source of truth: the installed distribution's metadata (pyproject.toml).
    import importlib.metadata

    try:
        return importlib.metadata.version("noether-jax")
    except importlib.metadata.PackageNotFoundError:  # imported from a tree not installed
        return "0+unknown"


__version__ = _version()
