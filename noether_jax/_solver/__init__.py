from ._base import AbstractPathSolver as AbstractPathSolver
from ._lbfgs import LBFGS as LBFGS
from ._newton import BlockNewton as BlockNewton
from ._newton_cg import NewtonCG as NewtonCG
from ._objective import PathObjective as PathObjective
