from ._action import (
    AbstractAction as AbstractAction,
    FreidlinWentzell as FreidlinWentzell,
    OnsagerMachlup as OnsagerMachlup,
)
from ._discrete import (
    discrete_action as discrete_action,
    interval_lagrangians as interval_lagrangians,
    node_momenta as node_momenta,
)
