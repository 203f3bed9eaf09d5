"""Newton's method with the exact block-tridiagonal Hessian and adaptive damping."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._linalg import _blocktri, generic_vector
from .._results import RESULTS
from ._base import AbstractPathSolver, as_problem, default_tol, ratio_test


class _NewtonState(eqx.Module):
    S: Float[Array, ""]
    g: Float[Array, "m k"]
    diag: Float[Array, "m k k"]
    off: Float[Array, "m-1 k k"]
    v: Float[Array, "m k"]
    lam: Float[Array, ""]
    nu: Float[Array, ""]
    num_accepted: Int[Array, ""]
    num_flat: Int[Array, ""]
    num_restarts: Int[Array, ""]
    num_certified: Int[Array, ""]
    S_stop: Float[Array, ""]
    newton_decrement: Float[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS


_NUM_FLAT = 8


def _scaled_eye(diag):
    """`diag(|H_ii|)`-shaped damping blocks (with a floor), as `(m, k, k)`."""
    dt = diag.dtype
    k = diag.shape[-1]
    hdiag = jnp.abs(jnp.diagonal(diag, axis1=-2, axis2=-1))
    scale = jnp.maximum(hdiag, 1e-12 * jnp.mean(hdiag) + jnp.finfo(dt).tiny)
    return scale[..., None] * jnp.eye(k, dtype=dt)


class BlockNewton(AbstractPathSolver):
    r"""Damped Newton's method on the exact Hessian of the discrete action (the default
    solver for `d ≤ 8`; above, assembling the `d × d` blocks costs more than
    `nj.NewtonCG`'s Hessian-vector products).

    The discrete action is a sum of terms that each couple two neighbouring nodes, so its
    Hessian is block-tridiagonal and a Newton step costs `O(N d³)` (block Cholesky with
    `lax.scan`). Steps solve `(H + λ E) δ = −∇S` with `E` the diagonal of `H`, and `λ` is
    adapted from the ratio of actual to predicted decrease (Levenberg–Marquardt/trust-region
    globalisation, Nielsen's update); a step is rejected when `H + λE` is not positive
    definite or the action does not decrease. Far from the optimum this is a cautious
    gradient-like method; close to it `λ → 0` and convergence is quadratic.

    **Stopping rule (invariant to the grid and to the scale of the state).** A step whose
    predicted decrease is below the action tolerance and that moves no node by more than
    the step tolerance makes the point a *candidate*. A candidate is certified in the same
    step: `H + σ₀E` (`σ₀` a round-off-level shift) is factorised; if it is positive definite
    the *undamped* Newton step `δ_N = −H⁻¹∇S` is computed, and the solve has converged when
    the Newton decrement `½ ∇Sᵀ H⁻¹ ∇S ≤ atol + rtol·|S|` and `max|δ_N| ≤ rtol·ℓ` (`ℓ`: the
    path's extent). The damping `λE`, which at small time steps suppresses the smooth modes
    of a path by orders of magnitude, cannot fake convergence: a candidate whose undamped
    step is still large drops the damping and goes on.

    **Saddles of the action.** If `H + σ₀E` is not positive definite the candidate is a
    saddle point (e.g. a straight initial path on a symmetry axis): the smallest shift `σ`
    that makes `H + σE` positive definite is found, inverse iteration gives the direction
    of most negative curvature, and the solver restarts along it (at most `max_restarts`
    times; a saddle still found after that is reported `stagnated`, never `successful`). A
    restart that comes back to the same action shows a nearly flat, degenerate direction
    (the timing of a long wait at a fixed point), and the point is accepted. Also accepted:
    eight undamped steps in a row that each predict a decrease below a tenth of the action
    tolerance while the path still drifts along such a direction.

    **Arguments:**

    - `rtol`, `atol`: the tolerances above. Defaults `1e-8` (float64), `1e-5` (float32).
    - `lam0`: initial relative damping.
    - `escape`: length (relative to the path's extent) of the step taken along a direction of
      negative curvature, which lets the solver leave saddle points of the action.
    - `max_restarts`: restarts from saddle points.
    """

    rtol: float | None = None
    atol: float | None = None
    norm: Callable = optx.max_norm
    lam0: float = 1e-3
    escape: float = 0.1
    max_restarts: int = 4

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _NewtonState:
        problem = as_problem(args, self)
        S, g = problem.value_and_grad(y)
        H = problem.hessian(y)
        finite = jnp.isfinite(S) & jnp.all(jnp.isfinite(g))
        dt = y.dtype
        int0 = jnp.array(0, dtype=jnp.int32)
        return _NewtonState(
            S=S,
            g=g,
            diag=H.diag,
            off=H.off,
            v=generic_vector(y),
            lam=jnp.asarray(self.lam0, dt),
            nu=jnp.asarray(2.0, dt),
            num_accepted=int0,
            num_flat=int0,
            num_restarts=int0,
            num_certified=int0,
            S_stop=jnp.asarray(jnp.inf, dt),
            newton_decrement=jnp.asarray(jnp.inf, dt),
            done=~finite,
            result=RESULTS.where(finite, RESULTS.max_steps_reached, RESULTS.nonfinite),
        )

    def _certify(self, g, diag, off, v0, want):
        """Second-order check and undamped Newton step at a candidate point, run only where
        `want` (under `vmap`, only in steps where some element wants it).

        Returns `(is_min, v, sigma, delta_newton)`: whether `H + σ₀E` is positive definite
        (or at least shows no negative curvature), the direction of most negative
        curvature, the shift that made `H + σE` positive definite, and `−(H + σE)⁻¹ ∇S`.
        """
        dt = g.dtype
        eye_s = _scaled_eye(diag)
        sigma0 = jnp.asarray(256 * jnp.finfo(dt).eps, dt)

        def is_pd(sigma):
            _, pd = _blocktri.cholesky(diag + sigma * eye_s, off)
            return pd

        def once(carry):
            i, _ = carry
            chols0, pd0 = _blocktri.cholesky(diag + sigma0 * eye_s, off)
            search = ~pd0

            # Coarse search upwards by factors of 10, then bisection in log space.
            def up_cond(c):
                sigma, pd = c
                return ~pd & (sigma < 1e3)

            sigma, _ = jax.lax.while_loop(
                up_cond, lambda c: (c[0] * 10.0, is_pd(c[0] * 10.0)), (sigma0, pd0)
            )

            def bisect(_, c):
                lo, hi = c
                mid = jnp.sqrt(lo * hi)
                pd = is_pd(mid)
                return jnp.where(pd, lo, mid), jnp.where(pd, mid, hi)

            _, sigma = jax.lax.fori_loop(
                0, jnp.where(search, 3, 0), bisect, (sigma / 10.0, sigma)
            )
            chols, _ = _blocktri.cholesky(diag + sigma * eye_s, off)
            chols = jnp.where(search, chols, chols0)

            def inv_iter(_, v):
                w = _blocktri.cho_solve(chols, off, v)
                return w / jnp.sqrt(jnp.sum(w * w))

            v = jax.lax.fori_loop(0, jnp.where(search, 12, 0), inv_iter, v0)
            curv = jnp.sum(v * _blocktri.matvec(diag, off, v))
            # Not positive definite, yet no negative direction found (a singular Hessian):
            # no negative curvature shows, so it is not a saddle.
            is_min = pd0 | ~(curv < 0) | ~jnp.all(jnp.isfinite(v))
            delta = -_blocktri.cho_solve(chols, off, g)
            return i + 1, (is_min, v, sigma, delta)

        init = (
            jnp.array(0, jnp.int32),
            (jnp.array(True), v0, sigma0, jnp.zeros_like(g)),
        )
        _, out = jax.lax.while_loop(lambda c: c[0] < want.astype(jnp.int32), once, init)
        return out

    def step(self, fn, y, args, options, state: _NewtonState, tags):
        problem = as_problem(args, self)
        dt = y.dtype
        eps = jnp.finfo(dt).eps
        rtol, atol = default_tol(self.rtol, dt), default_tol(self.atol, dt)
        eye_s = _scaled_eye(state.diag)
        chols, pd = _blocktri.cholesky(state.diag + state.lam * eye_s, state.off)
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
        ell = problem.scale(y)
        tau = jnp.where(curv < 0, self.escape * ell / (1.0 + state.lam / self.lam0), 0.0)
        delta = delta - jnp.where(slope > 0, 1.0, -1.0) * tau * v
        delta = jnp.where(pd, delta, 0.0)
        hdelta = _blocktri.matvec(state.diag, state.off, delta)
        pred = -(jnp.sum(state.g * delta) + 0.5 * jnp.sum(delta * hdelta))

        y_new = y + delta
        S_new, g_new = problem.value_and_grad(y_new)
        H_new = problem.hessian(y_new)
        finite = (
            jnp.isfinite(S_new)
            & jnp.all(jnp.isfinite(g_new))
            & jnp.all(jnp.isfinite(H_new.diag))
            & jnp.all(jnp.isfinite(H_new.off))
        )
        accept, rho = ratio_test(state.S, S_new, pred, pd & finite)
        roundoff = 64 * eps * jnp.maximum(jnp.abs(state.S), 1.0)

        lam = jnp.where(
            accept,
            state.lam * jnp.maximum(0.1, 1 - (2 * jnp.clip(rho, 0, 1) - 1) ** 3),
            state.lam * state.nu,
        )
        lam = jnp.maximum(lam, 1e-15)
        nu = jnp.where(accept, 2.0, 2 * state.nu)

        sel = lambda a, b: jnp.where(accept, a, b)
        y_out = sel(y_new, y)
        S_out, g_out = sel(S_new, state.S), sel(g_new, state.g)
        diag_out, off_out = sel(H_new.diag, state.diag), sel(H_new.off, state.off)
        ell_out = problem.scale(y_out)
        step_tol = jnp.maximum(rtol * ell_out, 64 * eps * ell_out)
        tol_S = atol + rtol * jnp.abs(S_out)

        # A nearly flat, strongly nonlinear direction (the timing of a wait at a fixed point
        # on a long path: the action depends on it only through exponentially small tails)
        # keeps Newton steps long while the action no longer moves.
        flat = accept & (state.lam <= 1e-4) & (pred <= 0.1 * tol_S)
        num_flat = jnp.where(accept, jnp.where(flat, state.num_flat + 1, 0), state.num_flat)
        dec_small = (pred <= tol_S) | (pred <= roundoff)
        step_small = jnp.max(jnp.abs(delta)) <= step_tol
        candidate = accept & dec_small & (step_small | (num_flat >= _NUM_FLAT))

        is_min, v_neg, sigma, delta_n = self._certify(g_out, diag_out, off_out, v, candidate)
        decrement = -0.5 * jnp.sum(g_out * delta_n)
        newton_ok = (decrement <= tol_S) & (
            (jnp.max(jnp.abs(delta_n)) <= step_tol)
            | (num_flat >= _NUM_FLAT)
            | (decrement <= roundoff)
        )
        # A restart that came back to the same action: a flat, degenerate direction.
        flat_saddle = state.S_stop - S_out <= tol_S
        converged = candidate & ((is_min & newton_ok) | (~is_min & flat_saddle))
        saddle = candidate & ~is_min & ~flat_saddle
        restart = saddle & (state.num_restarts < self.max_restarts)
        # Out of restarts and still on a saddle: never report it as converged.
        stuck = saddle & ~restart
        # A minimum whose undamped Newton step is still large: the damping was hiding it.
        undamp = candidate & is_min & ~newton_ok
        lam = jnp.where(undamp, jnp.maximum(lam * 1e-3, 1e-15), lam)
        lam = jnp.where(restart, jnp.maximum(2 * sigma, lam), lam)
        nu = jnp.where(restart, 2.0, nu)
        stagnated = (lam > 1e12) | stuck
        nonfinite = ~jnp.isfinite(S_out)

        result = RESULTS.where(
            converged,
            RESULTS.successful,
            RESULTS.where(
                nonfinite,
                RESULTS.nonfinite,
                RESULTS.where(stagnated, RESULTS.stagnated, RESULTS.max_steps_reached),
            ),
        )
        new_state = _NewtonState(
            S=S_out,
            g=g_out,
            diag=diag_out,
            off=off_out,
            v=jnp.where(restart, v_neg, v),
            lam=lam,
            nu=nu,
            num_accepted=state.num_accepted + accept.astype(jnp.int32),
            num_flat=jnp.where(restart, 0, num_flat),
            num_restarts=state.num_restarts + restart.astype(jnp.int32),
            num_certified=state.num_certified + candidate.astype(jnp.int32),
            S_stop=jnp.where(restart, S_out, state.S_stop),
            newton_decrement=jnp.where(candidate, decrement, state.newton_decrement),
            done=converged | stagnated | nonfinite,
            result=result,
        )
        return y_out, new_state, None

    def terminate(self, fn, y, args, options, state: _NewtonState, tags):
        failed = state.done & (state.result != RESULTS.successful)
        return state.done, optx.RESULTS.where(
            failed, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful
        )

    def postprocess(self, fn, y, aux, args, options, state: _NewtonState, tags, result):
        stats = dict(
            num_accepted=state.num_accepted,
            num_restarts=state.num_restarts,
            num_certified=state.num_certified,
            newton_decrement=state.newton_decrement,
            damping=state.lam,
        )
        return y, aux, stats
