"""Newton's method with the exact block-tridiagonal Hessian and adaptive damping."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._solution import RESULTS
from . import _blocktri
from ._base import AbstractPathSolver, default_tol
from ._objective import PathObjective


class _NewtonState(eqx.Module):
    S: Float[Array, ""]
    g: Float[Array, "m d"]
    diag: Float[Array, "m d d"]
    off: Float[Array, "m-1 d d"]
    v: Float[Array, "m d"]
    lam: Float[Array, ""]
    nu: Float[Array, ""]
    num_steps: Int[Array, ""]
    num_accepted: Int[Array, ""]
    num_flat: Int[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS


_NUM_FLAT = 8


def _generic_vector(y):
    """A fixed, deterministic unit vector with no symmetry of the problem."""
    m, d = y.shape
    k = jnp.arange(m * d, dtype=y.dtype).reshape(m, d)
    v = jnp.sin(1.0 + 12.9898 * k) * jnp.cos(0.5 + 78.233 * k)
    return v / jnp.sqrt(jnp.sum(v * v))


class BlockNewton(AbstractPathSolver):
    r"""Damped Newton's method on the exact Hessian of the discrete action (the default
    solver for `d ≤ 8`; above, assembling the `d × d` blocks costs more than
    `nj.NewtonCG`'s Hessian-vector products: on an RNN drift NewtonCG is 1.5–15× faster for
    `d = 8–64`).

    The discrete action is a sum of terms that each couple two neighbouring nodes, so its
    Hessian is block-tridiagonal and a Newton step costs `O(N d³)` (block Cholesky with
    `lax.scan`). Steps solve `(H + λ E) δ = −∇S` with `E` the diagonal of `H`, and `λ` is
    adapted from the ratio of actual to predicted decrease (Levenberg–Marquardt/trust-region
    globalisation, Nielsen's update); a step is rejected when `H + λE` is not positive
    definite or the action does not decrease. Far from the optimum this is a cautious
    gradient-like method; close to it `λ → 0` and convergence is quadratic. Exact Newton is
    needed for quadratic convergence: Gauss–Newton alone is only linear here because the
    residual `ẋ − f` does not vanish on a noise-driven path.

    **Arguments:**

    - `rtol`, `atol`: converged when an accepted, nearly undamped step `δ` satisfies
      `max|δ| ≤ atol + rtol·max|x|` and its predicted decrease of the action is
      `≤ atol + rtol·|S|` (or at round-off level). Defaults `1e-8` (float64), `1e-5` (float32).
      Also converged when eight accepted undamped steps in a row each predict a decrease
      below a tenth of `atol + rtol·|S|`: the action has converged while the path still
      drifts along a nearly flat direction (on long paths, how the waiting time is shared
      between fixed points; the action depends on it only through exponentially small
      terms, so the path is determined along it only to the action's tolerance).
    - `lam0`: initial relative damping.
    - `escape`: length (relative to the path's extent) of the step taken along a direction of
      negative curvature, which lets the solver leave saddle points of the action, such as
      a straight initial path on a symmetry axis when the most likely path leaves the axis.
    """

    rtol: float | None = None
    atol: float | None = None
    lam0: float = 1e-3
    escape: float = 0.1

    def init(self, objective: PathObjective, y: Float[Array, "m d"]) -> _NewtonState:
        S, g = objective.value_and_grad(y)
        diag, off = objective.hessian_blocks(y)
        finite = jnp.isfinite(S) & jnp.all(jnp.isfinite(g))
        dt = y.dtype
        return _NewtonState(
            S=S,
            g=g,
            diag=diag,
            off=off,
            v=_generic_vector(y),
            lam=jnp.asarray(self.lam0, dt),
            nu=jnp.asarray(2.0, dt),
            num_steps=jnp.array(0, dtype=jnp.int32),
            num_accepted=jnp.array(0, dtype=jnp.int32),
            num_flat=jnp.array(0, dtype=jnp.int32),
            done=~finite,
            result=RESULTS.where(finite, RESULTS.successful, RESULTS.nonfinite),
        )

    def step(self, objective: PathObjective, y, state: _NewtonState):
        dt = y.dtype
        eps = jnp.finfo(dt).eps
        rtol, atol = default_tol(self.rtol, dt), default_tol(self.atol, dt)
        d = y.shape[-1]
        hdiag = jnp.abs(jnp.diagonal(state.diag, axis1=-2, axis2=-1))
        scale = jnp.maximum(hdiag, 1e-12 * jnp.mean(hdiag) + jnp.finfo(dt).tiny)
        damped = state.diag + state.lam * scale[..., None] * jnp.eye(d, dtype=dt)
        chols, pd = _blocktri.cholesky(damped, state.off)
        delta = -_blocktri.cho_solve(chols, state.off, state.g)
        # Negative curvature: a symmetric system often has a symmetric saddle of the action
        # (e.g. the straight line on a symmetry axis) where the gradient has no component
        # that would leave it. Inverse iteration on the damped factorisation, one solve per
        # step warm-started from the last step's vector, tracks the most negative direction
        # of H; step along it, downhill, with a length that shrinks as the damping grows
        # (the ratio test then decides as usual).
        w = _blocktri.cho_solve(chols, state.off, state.v)
        v = w / jnp.sqrt(jnp.sum(w * w))
        v = jnp.where(pd & jnp.all(jnp.isfinite(v)), v, state.v)
        curv = jnp.sum(v * _blocktri.matvec(state.diag, state.off, v))
        slope = jnp.sum(state.g * v)
        length = self.escape * (jnp.max(jnp.abs(objective.x1 - objective.x0)) + jnp.max(jnp.abs(y)))
        tau = jnp.where(curv < 0, length / (1.0 + state.lam / self.lam0), 0.0)
        delta = delta - jnp.where(slope > 0, 1.0, -1.0) * tau * v
        delta = jnp.where(pd, delta, 0.0)
        hdelta = _blocktri.matvec(state.diag, state.off, delta)
        pred = -(jnp.sum(state.g * delta) + 0.5 * jnp.sum(delta * hdelta))

        y_new = y + delta
        S_new, g_new = objective.value_and_grad(y_new)
        diag_new, off_new = objective.hessian_blocks(y_new)
        actual = state.S - S_new
        finite = (
            jnp.isfinite(S_new)
            & jnp.all(jnp.isfinite(g_new))
            & jnp.all(jnp.isfinite(diag_new))
            & jnp.all(jnp.isfinite(off_new))
        )
        # Below round-off the ratio test is noise: accept any step that does not visibly
        # increase the action.
        roundoff = 64 * eps * jnp.maximum(jnp.abs(state.S), 1.0)
        tiny = pred <= roundoff
        rho = jnp.where(tiny, 1.0, actual / jnp.where(pred > 0, pred, 1.0))
        accept = pd & finite & jnp.where(tiny, actual >= -roundoff, rho > 1e-4)

        lam = jnp.where(
            accept,
            state.lam * jnp.maximum(0.1, 1 - (2 * jnp.clip(rho, 0, 1) - 1) ** 3),
            state.lam * state.nu,
        )
        lam = jnp.maximum(lam, 1e-15)
        nu = jnp.where(accept, 2.0, 2 * state.nu)

        step_small = jnp.max(jnp.abs(delta)) <= jnp.maximum(
            atol + rtol * jnp.max(jnp.abs(y_new)), 64 * eps * jnp.max(jnp.abs(y_new))
        )
        tol_S = atol + rtol * jnp.abs(S_new)
        dec_small = (pred <= tol_S) | tiny
        # A nearly flat, strongly nonlinear direction (the timing of a wait at a fixed point
        # on a long path: the action depends on it only through exponentially small tails)
        # keeps Newton steps long while the action no longer moves. Stop once several
        # undamped steps in a row each predict less than a tenth of the action tolerance.
        flat = accept & (state.lam <= 1e-4) & (pred <= 0.1 * tol_S)
        num_flat = jnp.where(accept, jnp.where(flat, state.num_flat + 1, 0), state.num_flat)
        converged = (
            accept & dec_small & (state.lam <= 1e-4) & (step_small | (num_flat >= _NUM_FLAT))
        )
        stagnated = lam > 1e12

        sel = lambda a, b: jnp.where(accept, a, b)
        y_out = sel(y_new, y)
        num_steps = state.num_steps + 1
        result = RESULTS.where(
            converged,
            RESULTS.successful,
            RESULTS.where(stagnated, RESULTS.stagnated, RESULTS.max_steps_reached),
        )
        new_state = _NewtonState(
            S=sel(S_new, state.S),
            g=sel(g_new, state.g),
            diag=sel(diag_new, state.diag),
            off=sel(off_new, state.off),
            v=v,
            lam=lam,
            nu=nu,
            num_steps=num_steps,
            num_accepted=state.num_accepted + accept.astype(state.num_accepted.dtype),
            num_flat=num_flat,
            done=converged | stagnated,
            result=result,
        )
        return y_out, new_state

    def terminate(self, objective, y, state: _NewtonState):
        return state.done, state.result

    def postprocess(self, objective, y, state: _NewtonState):
        stats = dict(
            num_steps=state.num_steps,
            num_accepted=state.num_accepted,
            grad_norm=jnp.max(jnp.abs(state.g)),
            damping=state.lam,
        )
        return y, state.result, stats

    def _certify(self, y, state: _NewtonState):
        """Second-order check at a first-order stationary point.

        Returns `(is_minimum, v, sigma)`. The point is accepted as a minimum when
        `H + σ₀E` is positive definite, `σ₀` a round-off-level relative shift. Otherwise
        the smallest shift `σ` (within a factor `10^{1/8}`) that makes `H + σE` positive
        definite is found, and inverse iteration with it returns the direction `v` of most
        negative curvature. Only elements that fail the first test do the search: under
        `vmap` the while loops stop as soon as every element is done.
        """
        dt = y.dtype
        d = y.shape[-1]
        eye = jnp.eye(d, dtype=dt)
        hdiag = jnp.abs(jnp.diagonal(state.diag, axis1=-2, axis2=-1))
        scale = jnp.maximum(hdiag, 1e-12 * jnp.mean(hdiag) + jnp.finfo(dt).tiny)
        sigma0 = jnp.asarray(256 * jnp.finfo(dt).eps, dt)

        def is_pd(sigma):
            _, pd = _blocktri.cholesky(state.diag + sigma * scale[..., None] * eye, state.off)
            return pd

        is_min = is_pd(sigma0)

        # Coarse search upwards by factors of 10, then bisection in log space.
        def up_cond(c):
            sigma, pd = c
            return ~pd & (sigma < 1e3)

        sigma, _ = jax.lax.while_loop(
            up_cond, lambda c: (c[0] * 10.0, is_pd(c[0] * 10.0)), (sigma0, is_min)
        )

        def bisect(_, c):
            lo, hi = c
            mid = jnp.sqrt(lo * hi)
            pd = is_pd(mid)
            return jnp.where(pd, lo, mid), jnp.where(pd, mid, hi)

        search = ~is_min
        _, sigma = jax.lax.fori_loop(
            0, jnp.where(search, 3, 0), bisect, (sigma / 10.0, sigma)
        )
        damped = state.diag + sigma * scale[..., None] * eye
        chols, _ = _blocktri.cholesky(damped, state.off)

        def inv_iter(_, v):
            w = _blocktri.cho_solve(chols, state.off, v)
            return w / jnp.sqrt(jnp.sum(w * w))

        v = jax.lax.fori_loop(0, jnp.where(search, 12, 0), inv_iter, state.v)
        curv = jnp.sum(v * _blocktri.matvec(state.diag, state.off, v))
        # Not positive definite, yet no negative direction found (a singular Hessian): keep
        # the point; the result stays `successful` only if no negative curvature shows.
        is_min = is_min | ~(curv < 0) | ~jnp.all(jnp.isfinite(v))
        return is_min, v, sigma

    def solve(self, objective, y0, max_steps, max_restarts: int = 4):
        state = self.init(objective, y0)

        def cond(carry):
            y, state = carry
            done, _ = self.terminate(objective, y, state)
            return ~done & (state.num_steps < max_steps)

        def body(carry):
            return self.step(objective, *carry)

        # Newton stops at first-order stationary points, which may be saddle points of
        # the action with very weak negative curvature (masked by the damping). Certify
        # each stop; from a saddle, restart along the negative direction.
        # A restart that ends at the same action (within the tolerance) shows that the
        # negative curvature is too weak to matter: a nearly flat, degenerate direction
        # (the timing of a long wait), not a saddle. Then the point is accepted.
        tol_S = default_tol(self.atol, y0.dtype) + default_tol(self.rtol, y0.dtype) * jnp.abs(
            state.S
        )

        def outer_cond(carry):
            return carry[-1]

        def outer_body(carry):
            y, state, restarts, S_stop, _ = carry
            y, state = jax.lax.while_loop(cond, body, (y, state))
            stopped = state.result == RESULTS.successful
            is_min, v, sigma = self._certify(y, state)
            flat = S_stop - state.S <= tol_S
            saddle = stopped & ~is_min & ~flat
            restart = saddle & (restarts < max_restarts)
            # Out of restarts and still on a saddle: never report it as converged.
            stuck = saddle & ~restart
            state = eqx.tree_at(
                lambda s: (s.v, s.lam, s.nu, s.done, s.result),
                state,
                (
                    jnp.where(restart, v, state.v),
                    jnp.where(restart, jnp.maximum(2 * sigma, state.lam), state.lam),
                    jnp.where(restart, 2.0, state.nu),
                    state.done & ~restart,
                    RESULTS.where(
                        restart,
                        RESULTS.max_steps_reached,
                        RESULTS.where(stuck, RESULTS.stagnated, state.result),
                    ),
                ),
            )
            again = restart & (state.num_steps < max_steps)
            S_stop = jnp.where(stopped, state.S, S_stop)
            return y, state, restarts + restart.astype(restarts.dtype), S_stop, again

        inf = jnp.asarray(jnp.inf, state.S.dtype)
        y, state, _, _, _ = jax.lax.while_loop(
            outer_cond,
            outer_body,
            (y0, state, jnp.array(0, jnp.int32), inf, jnp.array(True)),
        )
        return self.postprocess(objective, y, state)

    def linear_solve(self, objective, y, rhs):
        diag, off = objective.hessian_blocks(y)
        w, _ = _blocktri.solve(diag, off, rhs)
        return w
