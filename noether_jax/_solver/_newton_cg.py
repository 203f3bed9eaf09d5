"""Truncated (inexact) Newton: Steihaug–Toint trust-region CG on Hessian-vector products."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._linalg import generic_vector
from .._results import RESULTS
from ._base import AbstractPathSolver, as_problem, default_tol, ratio_test

# Why the inner CG loop stopped.
_RUNNING, _SOLVED, _BOUNDARY, _NEGATIVE, _NONFINITE = 0, 1, 2, 3, 4


class _CGOut(eqx.Module):
    s: Float[Array, "m d"]
    Ps: Float[Array, "m d"]
    Hs: Float[Array, "m d"]
    status: Int[Array, ""]
    p: Float[Array, "m d"]
    kappa: Float[Array, ""]
    pPp: Float[Array, ""]
    rel_res: Float[Array, ""]
    radius: Float[Array, ""]
    num_hvps: Int[Array, ""]


def _steihaug_cg(
    hvp: Callable, precond: Callable, g, radius, eta, max_iter, neg_tol
) -> _CGOut:
    r"""Preconditioned CG on `H s = −g` inside the trust region `‖s‖_P ≤ radius`
    (Steihaug–Toint). Stops when `‖r‖_{P⁻¹} ≤ η ‖g‖_{P⁻¹}` (solved), when the iterate
    reaches the boundary, or at a direction `p` with `pᵀHp ≤ −neg_tol·pᵀPp` (then `s` runs
    to the boundary along `p`, and `p` is returned). `Ps` and `Pp` follow by recurrences
    (`P z = r`), so `P` itself is never applied; `Hs` sums the products already computed.
    A negative `radius` stands for `‖P⁻¹g‖_P`, the length of the preconditioned gradient
    step (the first trust region)."""
    z = precond(g)
    rz = jnp.sum(g * z)
    radius = jnp.where(radius < 0, jnp.sqrt(jnp.maximum(rz, 0.0)), radius)
    zero = jnp.zeros_like(g)
    stop_at = eta**2 * rz
    status = jnp.where(rz > 0, _RUNNING, _SOLVED)
    status = jnp.where(jnp.isfinite(rz), status, _NONFINITE)
    init = (jnp.array(0, jnp.int32), zero, zero, zero, g, -z, -g, rz, status,
            jnp.zeros_like(rz), jnp.ones_like(rz))

    def cond(c):
        j, status = c[0], c[8]
        return (status == _RUNNING) & (j < max_iter)

    def body(c):
        j, s, Ps, Hs, r, p, Pp, rz, _, _, _ = c
        Hp = hvp(p)
        kappa = jnp.sum(p * Hp)
        pPp = jnp.sum(p * Pp)
        sPp = jnp.sum(s * Pp)
        sPs = jnp.sum(s * Ps)
        negative = kappa <= -neg_tol * pPp
        alpha = rz / jnp.where(negative, 1.0, kappa)
        # ‖s + τp‖_P = radius (‖s‖_P grows monotonically along Steihaug's iterates).
        disc = jnp.maximum(sPp**2 + pPp * (radius**2 - sPs), 0.0)
        tau = (jnp.sqrt(disc) - sPp) / pPp
        hit = negative | (alpha >= tau)
        step = jnp.where(hit, tau, alpha)
        step = jnp.where(jnp.isfinite(step), step, 0.0)
        s = s + step * p
        Ps = Ps + step * Pp
        Hs = Hs + step * Hp
        r = r + alpha * Hp
        z = precond(r)
        rz_new = jnp.sum(r * z)
        beta = rz_new / rz
        status = jnp.where(
            hit,
            jnp.where(negative, _NEGATIVE, _BOUNDARY),
            jnp.where(rz_new <= stop_at, _SOLVED, _RUNNING),
        )
        status = jnp.where(jnp.isfinite(kappa) & jnp.isfinite(rz_new), status, _NONFINITE)
        # On a stop keep the last direction: at negative curvature it is the escape one.
        p = jnp.where(hit, p, -z + beta * p)
        Pp = jnp.where(hit, Pp, -r + beta * Pp)
        return j + 1, s, Ps, Hs, r, p, Pp, rz_new, status, kappa, pPp

    j, s, Ps, Hs, _, p, _, rz_end, status, kappa, pPp = jax.lax.while_loop(cond, body, init)
    rel_res = jnp.sqrt(jnp.maximum(rz_end, 0.0) / jnp.where(rz > 0, rz, 1.0))
    return _CGOut(s, Ps, Hs, status, p, kappa, pPp, rel_res, radius, j)


def finds_negative_curvature(problem, y, steps: int = 32) -> Bool[Array, ""]:
    """`nj.NewtonCG`'s check at a stationary point, on its own: `steps` preconditioned CG
    iterations from a fixed generic right-hand side, looking for a direction with
    `pᵀHp ≤ −√ε pᵀPp` (Hessian-vector products only). A cheap check, not a certificate:
    negative curvature outside the Krylov space of `steps` iterations is missed."""
    eps = jnp.finfo(y.dtype).eps
    _, hvp = problem.linearize_grad(y)
    cg = _steihaug_cg(hvp, problem.preconditioner(y), generic_vector(y), jnp.inf, eps, steps,
                      jnp.sqrt(eps))
    return cg.status == _NEGATIVE


class _NewtonCGState(eqx.Module):
    S: Float[Array, ""]
    gnorm0: Float[Array, ""]
    radius: Float[Array, ""]
    check: Bool[Array, ""]
    escape: Bool[Array, ""]
    v: Float[Array, "m d"]
    vHv: Float[Array, ""]
    vPv: Float[Array, ""]
    escape_len: Float[Array, ""]
    num_restarts: Int[Array, ""]
    num_steps: Int[Array, ""]
    num_accepted: Int[Array, ""]
    num_hvps: Int[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS


class NewtonCG(AbstractPathSolver):
    r"""Truncated Newton's method on Hessian-vector products: a matrix-free solver for large
    state dimension `d`.

    Each step minimises the quadratic model `gᵀs + ½ sᵀHs` of the discrete action in a
    trust region `‖s‖_P ≤ Δ` by preconditioned conjugate gradients (Steihaug–Toint): CG
    stops when its residual is below `η‖g‖`, at the boundary, or at a direction of negative
    curvature, which it follows to the boundary. The Hessian is never formed: `H v` is a
    forward-over-reverse product (`jax.linearize` of the gradient, once per step), costing a
    few evaluations of the drift along the path. The forcing term
    `η = min(½, (‖g‖/‖g₀‖)^{1/2})` gives superlinear final convergence; `Δ` follows the
    ratio of actual to predicted decrease. Memory is `O(N d)` plus the drift's own.

    The preconditioner `P` is the exact Hessian of the action (for constant `D`) of a
    scalar linear drift `f = −c(t) x`, with `c(t)² ≈ ‖∂f/∂x‖²_F / d` estimated by one probe
    per interval: a tridiagonal matrix in time times `D⁻¹`, solved in `O(N d)` (`O(N d²)`
    for a full `D`; a `D` that varies along the path enters by its scale per interval and
    its mean shape). Its kinetic part `(2|h|)⁻¹ D⁻¹` dominates the Hessian at small `h`,
    so the number of CG iterations hardly depends on `N`; it grows with `T·‖∂f/∂x‖` where
    the drift's Jacobian is far from a multiple of the identity.

    **Second-order check.** Newton stops at first-order stationary points, which may be
    saddle points of the action (a straight initial path on a symmetry axis stays on it:
    the gradient has no component that would leave it). At each stop, `certify_steps` CG
    (Lanczos) iterations from a fixed generic vector look for a direction of curvature
    `pᵀHp < −√ε pᵀPp`; if one is found the solver steps downhill along it and goes on (at
    most `max_restarts` times; a saddle still found after that is reported `stagnated`,
    never `successful`). This is a cheap check, not a certificate: negative curvature that
    the Krylov space does not resolve within `certify_steps` iterations is missed.
    `nj.BlockNewton` certifies each stop by a Cholesky factorisation, at `O(N d³)`.

    **Arguments:**

    - `rtol`, `atol`: converged when an accepted step from a CG solve that stayed inside
      the trust region (and at least halved the residual) satisfies
      `max|δ| ≤ atol + rtol·max|x|` and its predicted decrease of the action is
      `≤ atol + rtol·|S|` (or at round-off level). Defaults `1e-8` (float64), `1e-5`
      (float32).
    - `max_cg_steps`: at most this many CG iterations (Hessian-vector products) per Newton
      step; a step that runs out is still a descent step.
    - `certify_steps`: CG iterations of the negative-curvature check at each stop (0 turns
      the check off).
    - `escape`: length (relative to the path's extent) of the step along a direction of
      negative curvature found by the check.
    - `max_restarts`: how many times the check may send the solver on.
    """

    rtol: float | None = None
    atol: float | None = None
    norm: Callable = optx.max_norm
    max_cg_steps: int = 100
    certify_steps: int = 32
    escape: float = 0.1
    max_restarts: int = 4

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _NewtonCGState:
        problem = as_problem(args, self)
        dt = y.dtype
        S, g = problem.value_and_grad(y)
        finite = jnp.isfinite(S) & jnp.all(jnp.isfinite(g))
        zero = jnp.zeros((), dt)
        int0 = jnp.array(0, jnp.int32)
        return _NewtonCGState(
            S=S,
            gnorm0=jnp.maximum(jnp.sqrt(jnp.sum(g * g)), jnp.finfo(dt).tiny),
            radius=-jnp.ones((), dt),  # the first step sets it (see `_steihaug_cg`)
            check=jnp.array(False),
            escape=jnp.array(False),
            v=jnp.zeros_like(y),
            vHv=zero,
            vPv=zero,
            escape_len=zero,
            num_restarts=int0,
            num_steps=int0,
            num_accepted=int0,
            num_hvps=int0,
            done=~finite,
            result=RESULTS.where(finite, RESULTS.successful, RESULTS.nonfinite),
        )

    def step(self, fn, y, args, options, state: _NewtonCGState, tags):
        """One trust-region Newton step; or, after a first-order stop, the negative-curvature
        check (the point does not move); or, after a check that found negative curvature,
        a step along it. One CG loop serves all three, so it is compiled once."""
        problem = as_problem(args, self)
        dt = y.dtype
        eps = jnp.finfo(dt).eps
        rtol, atol = default_tol(self.rtol, dt), default_tol(self.atol, dt)
        check, escape = state.check, state.escape
        g, hvp = problem.linearize_grad(y)
        precond = problem.preconditioner(y)
        gnorm = jnp.sqrt(jnp.sum(g * g))
        u = generic_vector(y)
        eta = jnp.clip(jnp.sqrt(gnorm / state.gnorm0), 16 * eps, 0.5)
        cg = _steihaug_cg(
            hvp,
            precond,
            jnp.where(check, u, g),
            jnp.where(check, jnp.inf, state.radius),
            jnp.where(check, eps, eta),
            jnp.where(check, self.certify_steps, jnp.where(escape, 0, self.max_cg_steps)),
            jnp.where(check, jnp.sqrt(eps), 0.0),
        )
        num_hvps = state.num_hvps + cg.num_hvps

        # --- A Newton step, or a step along the known negative direction `v`: downhill,
        # unless the slope is too small to matter (the model decreases by at least a quarter
        # of the curvature term either way); then the sign fixed by the check, which does
        # not depend on the round-off in `g` at a stationary point.
        slope = jnp.sum(g * state.v)
        flat = jnp.abs(slope) <= 0.25 * state.escape_len * jnp.abs(state.vHv)
        sign = jnp.where(flat | (slope < 0), 1.0, -1.0)
        s = jnp.where(escape, sign * state.escape_len * state.v, cg.s)
        s = jnp.where(check, 0.0, s)
        sHs = jnp.where(escape, state.escape_len**2 * state.vHv, jnp.sum(cg.s * cg.Hs))
        snorm = jnp.where(
            escape,
            state.escape_len * jnp.sqrt(state.vPv),
            jnp.sqrt(jnp.maximum(jnp.sum(cg.s * cg.Ps), 0.0)),
        )
        pred = -(jnp.sum(g * s) + 0.5 * sHs)
        y_new = y + s
        S_new = problem.value(y_new)
        broken = ~jnp.all(jnp.isfinite(g)) | (~escape & (cg.status == _NONFINITE))
        finite = jnp.isfinite(S_new) & jnp.isfinite(pred) & ~broken
        accept, rho = ratio_test(state.S, S_new, pred, finite)
        tiny = pred <= 64 * eps * jnp.maximum(jnp.abs(state.S), 1.0)

        boundary = escape | (cg.status == _BOUNDARY) | (cg.status == _NEGATIVE)
        shrink = ~accept | (rho < 0.25)
        grow = accept & (rho > 0.75) & boundary
        radius = jnp.where(escape, state.radius, cg.radius)
        radius = jnp.where(
            shrink, 0.25 * snorm, jnp.where(grow, 2 * jnp.maximum(radius, snorm), radius)
        )
        radius = jnp.where(escape & accept, jnp.maximum(radius, snorm), radius)

        # Relative to the path's extent: invariant to the scale of the state.
        size = problem.scale(y_new)
        step_max = jnp.max(jnp.abs(s))
        step_small = step_max <= jnp.maximum(rtol * size, 64 * eps * size)
        dec_small = (pred <= atol + rtol * jnp.abs(S_new)) | tiny
        # Only a step that solves the Newton system (to the forcing tolerance, or at least
        # halving the residual when CG ran out of iterations) measures the distance to the
        # optimum.
        newton = ((cg.status == _SOLVED) | (cg.status == _RUNNING)) & (cg.rel_res <= 0.5)
        stationary = accept & step_small & dec_small & newton & ~escape
        stagnated = ~accept & (step_max <= 64 * eps * jnp.maximum(size, 1.0))
        to_check = stationary & (self.certify_steps > 0)
        newton_state = _NewtonCGState(
            S=jnp.where(accept, S_new, state.S),
            gnorm0=state.gnorm0,
            radius=radius,
            check=to_check,
            escape=escape & ~accept,
            v=state.v,
            vHv=state.vHv,
            vPv=state.vPv,
            escape_len=jnp.where(escape & ~accept, 0.25, 1.0) * state.escape_len,
            num_restarts=state.num_restarts,
            num_steps=state.num_steps + 1,
            num_accepted=state.num_accepted + accept.astype(jnp.int32),
            num_hvps=num_hvps,
            done=(stationary & ~to_check) | stagnated | broken,
            result=RESULTS.where(
                stationary & ~to_check,
                RESULTS.successful,
                RESULTS.where(
                    broken,
                    RESULTS.nonfinite,
                    RESULTS.where(stagnated, RESULTS.stagnated, RESULTS.max_steps_reached),
                ),
            ),
        )

        # --- The check at a first-order stop: CG from a generic vector meets a direction
        # of negative curvature, or the stop is accepted.
        found = cg.status == _NEGATIVE
        restart = found & (state.num_restarts < self.max_restarts)
        # Scale to `max|v| = 1`, sign fixed by the generic start vector.
        vmax = jnp.max(jnp.abs(cg.p))
        vmax = jnp.where(vmax > 0, vmax, 1.0)
        vmax = jnp.where(jnp.sum(cg.p * u) < 0, -vmax, vmax)
        extent = problem.scale(y)
        check_state = eqx.tree_at(
            lambda t: (t.check, t.escape, t.v, t.vHv, t.vPv, t.escape_len, t.num_restarts,
                       t.num_hvps, t.done, t.result),
            state,
            (
                jnp.array(False),
                restart,
                cg.p / vmax,
                cg.kappa / vmax**2,
                cg.pPp / vmax**2,
                self.escape * extent,
                state.num_restarts + restart.astype(jnp.int32),
                num_hvps,
                ~restart,
                # Out of restarts and still on a saddle: never report it as converged.
                RESULTS.where(
                    found,
                    RESULTS.where(restart, RESULTS.max_steps_reached, RESULTS.stagnated),
                    RESULTS.successful,
                ),
            ),
        )
        new_state = jax.tree.map(
            lambda a, b: jnp.where(check, a, b), check_state, newton_state
        )
        return jnp.where(accept & ~check, y_new, y), new_state, None

    def terminate(self, fn, y, args, options, state: _NewtonCGState, tags):
        failed = state.done & (state.result != RESULTS.successful)
        return state.done, optx.RESULTS.where(
            failed, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful
        )

    def postprocess(self, fn, y, aux, args, options, state: _NewtonCGState, tags, result):
        stats = dict(
            num_accepted=state.num_accepted,
            num_hvps=state.num_hvps,
            num_restarts=state.num_restarts,
            trust_radius=state.radius,
        )
        return y, state.result, stats
