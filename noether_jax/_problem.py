r"""Path problems: what a path solver may ask of the discrete action it minimises.

A path problem is a smooth function `y ↦ S_h(y)` of the free nodes `y ∈ R^{m×k}` of a path
whose every term couples two neighbouring nodes. It exposes the value, the gradient, Hessian-
vector products, the exact block-tridiagonal Hessian as a lineax operator, a cheap
preconditioner and a length scale, and nothing else: the solvers read only these, so every
solver runs on every problem (fixed-time paths here, geometric curves in `_geometric`).

It is also the `args` of `optimistix.minimise(problem_value, solver, y0, problem)`, so any
`optx.AbstractMinimiser` can minimise it, and `optx.ImplicitAdjoint` differentiates the
optimum with respect to every array the problem holds (endpoints, times, parameters).
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from ._action import AbstractAction, discrete_action
from ._linalg import BlockTridiagonalOperator, TridiagonalKronecker, generic_vector
from ._linalg import _blocktri
from ._sde import SDE


class AbstractPathProblem(eqx.Module):
    """The discrete action as a function of the free nodes `y` (shape `(m, k)`)."""

    @abc.abstractmethod
    def value(self, y: Float[Array, "m k"]) -> Scalar:
        """The discrete action."""

    @abc.abstractmethod
    def hessian(self, y: Float[Array, "m k"]) -> BlockTridiagonalOperator:
        """The exact Hessian `∂²S_h/∂y²`, block-tridiagonal."""

    @abc.abstractmethod
    def preconditioner(self, y: Float[Array, "m k"]) -> TridiagonalKronecker:
        """`r ↦ P⁻¹ r` for a cheap symmetric positive definite model `P` of the Hessian."""

    @abc.abstractmethod
    def scale(self, y: Float[Array, "m k"]) -> Scalar:
        """A length scale of the path (its extent), for step tolerances and the length of
        steps along negative curvature; scales with the state."""

    def grad(self, y):
        return jax.grad(self.value)(y)

    def value_and_grad(self, y):
        return jax.value_and_grad(self.value)(y)

    def hvp(self, y, v):
        return jax.jvp(self.grad, (y,), (v,))[1]

    def linearize_grad(self, y):
        """`(∇S_h(y), v ↦ H v)`, the gradient and a Hessian-vector product that reuses its
        linearisation."""
        return jax.linearize(self.grad, y)


def problem_value(y, problem: AbstractPathProblem):
    """`fn(y, args)` for `optimistix.minimise`, with the problem as `args`."""
    return problem.value(y)


class FixedTimeProblem(AbstractPathProblem):
    r"""`y ↦ S_h(x0, y_1, …, y_{n−2}, x1)`: the discrete action of a path on the time grid
    `ts` with fixed endpoints, over its interior nodes."""

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

    def hessian(self, y):
        # Each interval's `L_d(x_i, x_{i+1})` contributes a `2d × 2d` Hessian; the sum is
        # block-tridiagonal.
        xs = self.full(y)

        def lag(ta, tb, xa, xb):
            return self.action.discrete_lagrangian(self.sde, ta, tb, xa, xb, self.args)

        blocks = _blocktri.interval_hessians(lag, self.ts[:-1], self.ts[1:], xs[:-1], xs[1:])
        return BlockTridiagonalOperator(*_blocktri.blocks_from_intervals(*blocks))

    def scale(self, y):
        return jnp.max(jnp.abs(self.x1 - self.x0)) + jnp.max(jnp.abs(y))

    def preconditioner(self, y):
        r"""`P = T ⊗ M⁻¹`: `T` tridiagonal in time, `M` the noise metric's shape.

        Write the noise on interval `i` as `D_i ≈ s_i M` (`s_i` its scale, `M` its mean
        shape; exact for a constant `D`). Interval `i` contributes to `T`

        $$\frac{1}{s_i}\Big(\frac{1}{2|h_i|}\begin{pmatrix}1&-1\\-1&1\end{pmatrix}
          + \frac{|h_i| c_i^2}{8}\begin{pmatrix}1&1\\1&1\end{pmatrix}\Big),$$

        which for a constant `D` makes `P` the exact Hessian of the action for the drift
        `f = −c_i x`: the kinetic part `(2|h|)⁻¹D⁻¹`, which dominates at small `h`, plus the
        Gauss–Newton drift part (the cross terms telescope). `c_i² = |J_i z|²/d` estimates
        `‖∂f/∂x‖²_F / d` at the midpoint with one fixed ±1 probe `z` (one JVP of the drift
        per interval).
        """
        sde, args, ts = self.sde, self.args, self.ts
        xs = self.full(y)
        d = y.shape[-1]
        h = jnp.abs(jnp.diff(ts))
        tm = 0.5 * (ts[:-1] + ts[1:])
        xm = 0.5 * (xs[:-1] + xs[1:])
        Dm = jax.vmap(lambda t, x: sde.D(t, x, args))(tm, xm)
        if Dm.ndim == 1:
            s = Dm
        elif Dm.ndim == 2:
            s = jnp.mean(Dm, axis=1)
        else:
            s = jnp.trace(Dm, axis1=1, axis2=2) / d
        metric = jnp.mean(Dm / s.reshape((-1,) + (1,) * (Dm.ndim - 1)), axis=0)
        z = jnp.where(generic_vector(jnp.zeros((d,), y.dtype)) >= 0, 1.0, -1.0).astype(y.dtype)
        jz = jax.vmap(lambda t, x: jax.jvp(lambda u: sde.f(t, u, args), (x,), (z,))[1])(tm, xm)
        c2 = jnp.sum(jz * jz, axis=-1) / d
        c2 = jnp.where(jnp.isfinite(c2), c2, 0.0)
        return TridiagonalKronecker.from_intervals(1 / (2 * h * s), h * c2 / (8 * s), metric)
