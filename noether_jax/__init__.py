"""noether_jax: most likely paths of noisy dynamical systems, and their Noether charges."""

from ._action import (
    AbstractAction as AbstractAction,
    FreidlinWentzell as FreidlinWentzell,
    OnsagerMachlup as OnsagerMachlup,
)
from ._charges import (
    action_of as action_of,
    angular_momentum as angular_momentum,
    energy as energy,
    momentum as momentum,
    noether_charge as noether_charge,
)
from ._path import minimize_action as minimize_action
from ._sde import SDE as SDE
from ._solution import PathSolution as PathSolution, RESULTS as RESULTS
from ._solver import (
    AbstractPathSolver as AbstractPathSolver,
    BlockNewton as BlockNewton,
    LBFGS as LBFGS,
)

__version__ = "0.1.0"
