from ._gmam import physical_times as physical_times
from ._gmam import geometric_action_of as geometric_action_of
from ._gmam import GeometricProblem as GeometricProblem
from ._minimize import minimize_geometric_action as minimize_geometric_action
from ._timed import fixed_time_path as fixed_time_path
from ._fixed_points import (
    FIXED_POINT_KINDS as FIXED_POINT_KINDS,
    FixedPoint as FixedPoint,
    FixedPoints as FixedPoints,
    check_fixed_point as check_fixed_point,
    classify_fixed_point as classify_fixed_point,
    find_fixed_points as find_fixed_points,
)
from ._relax import (
    Relaxation as Relaxation,
    UnstableManifold as UnstableManifold,
    leave_saddle as leave_saddle,
    relax as relax,
)
from ._barrier import Transition as Transition, barrier as barrier
from ._network import (
    Route as Route,
    RouteLeg as RouteLeg,
    TransitionNetwork as TransitionNetwork,
    transition_network as transition_network,
)
from ._candidates import route_candidates as route_candidates
from ._rates import Rate as Rate, escape_rate as escape_rate
