"""The discrete action as a function of the interior nodes of a path."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._action import AbstractAction, discrete_action
from .._sde import SDE
from . import _blocktri


class PathObjective(eqx.Module):
    """`y ↦ S_h(x0, y_1, ..., y_{n-2}, x1)`: the discrete action over the interior nodes `y`."""

    action: AbstractAction
    sde: SDE
    ts: Float[Array, " n"]
    x0: Float[Array, " d"]
    x1: Float[Array, " d"]
    args: Any

    def full(self, y: Float[Array, "m d"]) -> Float[Array, "m+2 d"]:
        return jnp.concatenate([self.x0[None], y, self.x1[None]], axis=0)

    def value(self, y):
        return discrete_action(self.action, self.sde, self.ts, self.full(y), self.args)

    def value_and_grad(self, y):
        return jax.value_and_grad(self.value)(y)

    def grad(self, y):
        return jax.grad(self.value)(y)

    def hvp(self, y, v):
        return jax.jvp(self.grad, (y,), (v,))[1]

    def hessian_blocks(self, y):
        """Diagonal and upper off-diagonal blocks of the exact Hessian `∂²S_h/∂y²`.

        Each interval's `L_d(x_i, x_{i+1})` contributes a `2d × 2d` Hessian; the sum is
        block-tridiagonal (see `_blocktri`)."""
        xs = self.full(y)

        def lag(ta, tb, xa, xb):
            return self.action.discrete_lagrangian(self.sde, ta, tb, xa, xb, self.args)

        blocks = _blocktri.interval_hessians(lag, self.ts[:-1], self.ts[1:], xs[:-1], xs[1:])
        return _blocktri.blocks_from_intervals(*blocks)
