from ._base import AbstractPathSolver as AbstractPathSolver, default_tol as default_tol
from ._drive import (
    ESCAPES_SADDLES as ESCAPES_SADDLES,
    HESSIAN_TAGS as HESSIAN_TAGS,
    hessian_solver as hessian_solver,
    is_minimum as is_minimum,
    minimal_value as minimal_value,
    solve_on_times as solve_on_times,
    solve_problem as solve_problem,
    stop_gradient_arrays as stop_gradient_arrays,
)
from ._default import (
    NEWTON_MAX_DIM as NEWTON_MAX_DIM,
    default_solver as default_solver,
    solver_for as solver_for,
    provisional as provisional,
    warm_started as warm_started,
)
from ._lanes import check_lanes as check_lanes
from ._lbfgs import LBFGS as LBFGS
from ._newton import BlockNewton as BlockNewton
from ._newton_cg import NewtonCG as NewtonCG
