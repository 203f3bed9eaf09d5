"""L-BFGS (optimistix) for paths whose state dimension makes Hessian blocks too costly."""

import jax.numpy as jnp
import lineax as lx
import optimistix as optx

from .._solution import RESULTS
from ._base import AbstractPathSolver, default_tol


class LBFGS(AbstractPathSolver):
    """Limited-memory BFGS (`optimistix.LBFGS`) on the discrete action, for drifts without
    Hessian-vector products (`nj.NewtonCG` is the default for `d > 8`). Converges linearly; use many more
    `max_steps` than for `BlockNewton`. Implicit differentiation of the path uses conjugate
    gradients on Hessian-vector products (lineax).

    **Arguments:**

    - `rtol`, `atol`: Cauchy termination on the path and the action (optimistix's).
    - `history_length`: number of stored curvature pairs.
    """

    rtol: float | None = None
    atol: float | None = None
    history_length: int = 20

    def solve(self, objective, y0, max_steps):
        dt = y0.dtype
        # optimistix's L-BFGS builds part of its state in the default float dtype, so a
        # float32 path with x64 enabled fails on a scan carry's dtype: iterate in the
        # default dtype then (float64, which only tightens the float32 solve) and cast back.
        default = jnp.zeros(()).dtype
        work = default if jnp.finfo(dt).bits < jnp.finfo(default).bits else dt
        y0 = y0.astype(work)
        solver = optx.LBFGS(
            rtol=default_tol(self.rtol, dt),
            atol=default_tol(self.atol, dt),
            norm=optx.max_norm,
            history_length=self.history_length,
        )
        sol = optx.minimise(
            lambda y, _: objective.value(y).astype(work),
            solver,
            y0,
            max_steps=max_steps,
            throw=False,
            adjoint=optx.RecursiveCheckpointAdjoint(),
        )
        y = sol.value.astype(dt)
        S, g = objective.value_and_grad(y)
        ok = sol.result == optx.RESULTS.successful
        finite = jnp.isfinite(S) & jnp.all(jnp.isfinite(g))
        maxed = sol.result == optx.RESULTS.max_steps_reached
        result = RESULTS.where(
            ~finite,
            RESULTS.nonfinite,
            RESULTS.where(
                ok,
                RESULTS.successful,
                RESULTS.where(maxed, RESULTS.max_steps_reached, RESULTS.stagnated),
            ),
        )
        stats = dict(
            num_steps=sol.stats["num_steps"],
            num_accepted=sol.stats["num_steps"],
            grad_norm=jnp.max(jnp.abs(g)),
            damping=jnp.zeros((), dt),
        )
        return y, result, stats

    def linear_solve(self, objective, y, rhs):
        op = lx.FunctionLinearOperator(
            lambda v: objective.hvp(y, v),
            rhs,
            tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
        )
        tol = default_tol(None, y.dtype)
        sol = lx.linear_solve(op, rhs, lx.CG(rtol=tol, atol=tol, max_steps=10 * rhs.size),
                              throw=False)
        return sol.value
