"""Newton's method with the exact block-tridiagonal Hessian and adaptive damping."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._linalg import _blocktri, generic_vector
from .._results import RESULTS
from ._base import AbstractPathSolver, any_in_batch, as_problem, default_tol, ratio_test


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
    rejected: Bool[Array, ""]  # some step was rejected (the damping then goes down slowly)
    pending: Bool[Array, ""]
    S_stop: Float[Array, ""]
    newton_decrement: Float[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS
    # The Hessian is evaluated lazily, at the start of the step after an accepted one:
    # `diag`/`off` hold `H(y)` when `fresh`, else `H` at the point before the last accepted
    # step, kept with that point (`y_back`, ...) so that the step can be taken back if the
    # Hessian at the new point is not finite.
    fresh: Bool[Array, ""]
    has_back: Bool[Array, ""]
    y_back: Float[Array, "m k"]
    S_back: Float[Array, ""]
    g_back: Float[Array, "m k"]
    lam_back: Float[Array, ""]
    nu_back: Float[Array, ""]


@eqx.filter_jit
def _hessian(problem, y):
    # One trace for `init` and `step` (a cache hit the second time).
    return problem.hessian(y)


def _blocks_finite(diag, off):
    """Whether every Hessian block is finite (a Hessian that is not is never factorised)."""
    return jnp.all(jnp.isfinite(diag)) & jnp.all(jnp.isfinite(off))


def _after_rejection(lam, nu):
    """The damping and its growth factor after a rejected step (Nielsen's update): what
    `step` does on a rejection and what `init`'s first-damping search repeats."""
    return jnp.maximum(lam * nu, _MIN_DAMPING), 2 * nu


# Damping above which a solve stagnates (and where the first-damping search stops).
_MAX_DAMPING = 1e12
_MIN_DAMPING = 1e-15
_NUM_FLAT = 8
# Damping below which a step is taken to be in Newton's quadratic regime.
_QUADRATIC_LAM = 1e-6
# The round-off shift of the certificate, in units of machine epsilon.
_SIGMA0 = 256


class BlockNewton(AbstractPathSolver):
    r"""Damped Newton's method on the exact Hessian of the discrete action (the default
    solver for `d ≤ 8`; above, assembling the `d × d` blocks costs more than
    `nj.NewtonCG`'s Hessian-vector products).

    The discrete action is a sum of terms that each couple two neighbouring nodes, so its
    Hessian is block-tridiagonal and a Newton step costs `O(N d³)` (block Cholesky with
    `lax.scan`). Steps solve `(H + λ E) δ = −∇S` with `E` the diagonal of `H`, and `λ` is
    adapted from the ratio of actual to predicted decrease (Levenberg–Marquardt/trust-region
    globalisation, Nielsen's update, down by at most 3x per step once a step was rejected);
    each trial step gets a chord correction (see `chord`), and is rejected when `H + λE` is
    not positive definite or the action does not decrease. Far from the optimum this is a
    cautious gradient-like method; close to it `λ → 0` and convergence is quadratic.

    **Stopping rule (invariant to the grid and to the scale of the state).** A step whose
    predicted decrease is below the action tolerance and that moves no node by more than
    the step tolerance makes the point a *candidate*; so does such a decrease in Newton's
    quadratic regime (damping `λ ≤ 10⁻⁶`, a step the quadratic model predicted to within a
    factor 2), where the next step is as good as undamped anyway (one step fewer per solve:
    warm-started levels of `nj.Refine` converge in 2–4 steps). The next step certifies a
    candidate: `H + σ₀E` (`σ₀` a round-off-level shift) is factorised; if it is positive definite
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
    - `chord`: after each trial step, one more solve with the same factorisation from the
      trial point (a chord-Newton correction), kept where it lowers the action. It costs a
      gradient and a block solve per step and removes the crawl along curved valleys:
      Maier–Stein paths ending near the saddle took 51 steps on average (max 128) without
      it, 29 (max 56) with it (`benchmarks/RESULTS.md`).
    - `certify`: `False` takes a candidate reached in Newton's quadratic regime (damping
      `λ ≤ 10⁻⁶`, `H + λE` positive definite, a step its model predicted to within a
      factor 2) as the answer without the certifying step: one step fewer, without the
      second-order test at round-off. For provisional answers that are refined and
      certified later (the coarser levels of `nj.Refine` use it); never for a final one.
    - `search_damping`: `init` evaluates the Hessian at the first point and, where `H + λE`
      is not positive definite there, raises `λ` as rejected steps would (`λ ← λν`,
      `ν ← 2ν`, from `lam0` and `ν = 2`) with factorisations alone. The solve then takes
      the same steps it takes without the search, less the rejected ones at the start: a
      straight first path near a saddle is far from convex (Maier–Stein: four rejections
      on every path of the saddle set, `λ` from `10⁻³` to about 1), and a factorisation
      costs a tenth of a step. `False` leaves the Hessian to the first step (warm starts,
      whose Hessian is positive definite, use it: one factorisation fewer).
    - `track_curvature`: every step also carries the inverse iteration for the direction of
      most negative curvature (a second right-hand side in the factorisation's passes and a
      matrix–vector product) and steps along it where the curvature is negative, so that
      the solver leaves a saddle of the action before converging to it. `False` for warm
      starts (`warm_started`), which begin in the quadratic basin of a minimum; a saddle is
      still caught there by the certificate (above) and left the same way.
    """

    rtol: float | None = None
    atol: float | None = None
    norm: Callable = optx.max_norm
    lam0: float = 1e-3
    escape: float = 0.1
    max_restarts: int = 4
    chord: bool = True
    certify: bool = True
    search_damping: bool = True
    track_curvature: bool = True

    def _first_damping(self, diag, off, dt):
        """The damping and its growth factor after the rejections that a Hessian which is not
        positive definite at the start would cause: `λ ← λν, ν ← 2ν` from `(lam0, 2)` until
        `H + λE` is positive definite (or `λ > 10¹²`). Found with factorisations alone, not
        with whole steps: the solve then takes exactly the steps it would have taken after
        those rejections. Returns `(λ, ν, whether any rejection was skipped)`."""
        eye_s = _blocktri.scaled_identity(diag)

        def pd_at(lam):
            return _blocktri.cholesky(diag + lam * eye_s, off)[1]

        def cond(c):
            lam, _, pd = c
            return ~pd & (lam <= _MAX_DAMPING)

        def body(c):
            lam, nu = _after_rejection(*c[:2])
            return lam, nu, pd_at(lam)

        lam0 = jnp.asarray(self.lam0, dt)
        # A Hessian that is not finite is left to the first step (its rejection path).
        lam, nu, _ = jax.lax.while_loop(
            cond, body, (lam0, jnp.asarray(2.0, dt), pd_at(lam0) | ~_blocks_finite(diag, off))
        )
        return lam, nu, lam > lam0

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _NewtonState:
        problem = as_problem(args, self)
        S, g = problem.value_and_grad(y)
        finite = jnp.isfinite(S) & jnp.all(jnp.isfinite(g))
        dt = y.dtype
        if self.search_damping:
            H = _hessian(problem, y)
            diag, off = H.diag, H.off
            lam, nu, rejected = self._first_damping(diag, off, dt)
        else:
            # No Hessian here: the first step evaluates it (one copy of its code in the
            # compiled solver, and none spent on points that a rejected step never keeps).
            H = jax.eval_shape(problem.hessian, y)
            diag = jnp.zeros(H.diag.shape, H.diag.dtype)
            off = jnp.zeros(H.off.shape, H.off.dtype)
            lam, nu, rejected = jnp.asarray(self.lam0, dt), jnp.asarray(2.0, dt), False
        int0 = jnp.array(0, dtype=jnp.int32)
        return _NewtonState(
            S=S,
            g=g,
            diag=diag,
            off=off,
            v=generic_vector(y),
            lam=lam,
            nu=nu,
            num_accepted=int0,
            num_flat=int0,
            num_restarts=int0,
            num_certified=int0,
            rejected=jnp.asarray(rejected),
            pending=jnp.array(False),
            S_stop=jnp.asarray(jnp.inf, dt),
            newton_decrement=jnp.asarray(jnp.inf, dt),
            done=~finite,
            result=RESULTS.where(finite, RESULTS.max_steps_reached, RESULTS.nonfinite),
            fresh=jnp.array(self.search_damping),
            has_back=jnp.array(False),
            y_back=y,
            S_back=S,
            g_back=g,
            lam_back=jnp.asarray(self.lam0, dt),
            nu_back=jnp.asarray(2.0, dt),
        )

    def _negative_direction(self, g, diag, off, v0, want):
        """At a point where `H + σ₀E` is not positive definite, run only where `want`
        (under `vmap`, only in steps where some element wants it): the smallest shift `σ`
        (within a factor `10^{1/8}`) that makes `H + σE` positive definite, and inverse
        iteration with it for the direction `v` of most negative curvature.

        Returns `(is_min, v, delta)`: whether no negative curvature shows (a singular but
        positive semidefinite `H`), `v`, and the regularised Newton step `−(H + σE)⁻¹∇S`.
        """
        dt = g.dtype
        eye_s = _blocktri.scaled_identity(diag)
        sigma0 = jnp.asarray(_SIGMA0 * jnp.finfo(dt).eps, dt)

        def factor(sigma):
            return _blocktri.cholesky(diag + sigma * eye_s, off)

        # Coarse search upwards by factors of 10, then three bisections in log space; the
        # factor of the positive definite end is carried along. One loop (one copy of the
        # factorisation in the compiled program).
        def search_cond(c):
            _, _, _, _, found, num_bisect = c
            return want & (~found | (num_bisect < 3))

        def search(c):
            sigma, lo, hi, chols_hi, found, num_bisect = c
            trial = jnp.where(found, jnp.sqrt(lo * hi), sigma * 10.0)
            chols, pd = factor(trial)
            up_done = ~found & (pd | (trial >= 1e3))
            new_lo = jnp.where(found, jnp.where(pd, lo, trial), jnp.where(up_done, trial / 10, lo))
            new_hi = jnp.where(found, jnp.where(pd, trial, hi), jnp.where(up_done, trial, hi))
            new_chols = jnp.where(
                found, jnp.where(pd, chols, chols_hi), jnp.where(up_done, chols, chols_hi)
            )
            return (
                jnp.where(found, sigma, trial),
                new_lo,
                new_hi,
                new_chols,
                found | up_done,
                num_bisect + found.astype(jnp.int32),
            )

        chols0 = jnp.zeros_like(diag)
        _, _, sigma, chols, _, _ = jax.lax.while_loop(
            search_cond,
            search,
            (sigma0, sigma0 / 10, sigma0, chols0, jnp.array(False), jnp.array(0, jnp.int32)),
        )

        # Inverse iteration for `v`, then (the last trip) the regularised Newton step, in one
        # loop for the same reason.
        num_inv = 12

        def inv_iter(k, c):
            v, delta = c
            last = k == num_inv
            w = _blocktri.cho_solve(chols, off, jnp.where(last, g, v))
            return (
                jnp.where(last, v, w / jnp.sqrt(jnp.sum(w * w))),
                jnp.where(last, -w, delta),
            )

        v, delta = jax.lax.fori_loop(
            0, jnp.where(want, num_inv + 1, 0), inv_iter, (v0, jnp.zeros_like(g))
        )
        curv = jnp.where(want, jnp.sum(v * _blocktri.matvec(diag, off, v)), 0.0)
        is_min = ~(curv < 0) | ~jnp.all(jnp.isfinite(v))
        return is_min, v, delta, sigma

    def step(self, fn, y, args, options, state: _NewtonState, tags):
        problem = as_problem(args, self)
        dt = y.dtype
        eps = jnp.finfo(dt).eps
        rtol, atol = default_tol(self.rtol, dt), default_tol(self.atol, dt)
        sigma0 = jnp.asarray(_SIGMA0 * eps, dt)

        # --- The Hessian at `y`, after an accepted step. Under `vmap` the `cond` runs when
        # some element needs it, and keeps the others' blocks.
        stale = ~state.fresh

        def hessian():
            H = _hessian(problem, y)
            return jnp.where(stale, H.diag, state.diag), jnp.where(stale, H.off, state.off)

        diag, off = jax.lax.cond(
            any_in_batch(stale), hessian, lambda: (state.diag, state.off)
        )
        # Not finite at the newly accepted point: take that step back (the ratio test
        # would have rejected it, had it seen the Hessian), with the damping raised.
        back = stale & state.has_back & ~_blocks_finite(diag, off)

        def take_back():
            return (
                jnp.where(back, state.y_back, y),
                jnp.where(back, state.S_back, state.S),
                jnp.where(back, state.g_back, state.g),
                jnp.where(back, state.diag, diag),
                jnp.where(back, state.off, off),
                jnp.where(back, state.lam_back, state.lam),
                jnp.where(back, state.nu_back, state.nu),
            )

        # Rare: a `cond`, so that a batch pays for these selects only where some element
        # takes its step back.
        y, S0, g0, diag, off, lam_in, nu_in = jax.lax.cond(
            any_in_batch(back),
            take_back,
            lambda: (y, state.S, state.g, diag, off, state.lam, state.nu),
        )
        pending = state.pending & ~back
        num_accepted = state.num_accepted - back.astype(jnp.int32)

        # A candidate from the last step is certified by this one: undamped (a round-off
        # shift `σ₀`), its factorisation is the second-order test and its step the Newton
        # step that measures the distance to the optimum.
        lam_eff = jnp.where(pending, sigma0, lam_in)
        eye_s = _blocktri.scaled_identity(diag)
        if self.track_curvature:
            # The Newton step and the tracked direction (below) in one factorisation pass.
            chols, pd, both = _blocktri.cholesky_solve(
                diag + lam_eff * eye_s, off, jnp.stack([g0, state.v], axis=-1)
            )
            delta_n, w = -both[..., 0], both[..., 1]
        else:
            chols, pd, delta_n = _blocktri.cholesky_solve(diag + lam_eff * eye_s, off, g0)
            delta_n = -delta_n
        ell = problem.scale(y)
        tol_S = atol + rtol * jnp.abs(S0)
        step_tol = jnp.maximum(rtol * ell, 64 * eps * ell)
        roundoff = 64 * eps * jnp.maximum(jnp.abs(S0), 1.0)

        # --- The certificate (only meaningful where `pending`).
        decrement = -0.5 * jnp.sum(g0 * delta_n)
        newton_ok = (decrement <= tol_S) & (
            (jnp.max(jnp.abs(delta_n)) <= step_tol)
            | (state.num_flat >= _NUM_FLAT)
            | (decrement <= roundoff)
        )
        certified = pending & pd & newton_ok
        # Not positive definite at a candidate: a saddle of the action, or a singular
        # Hessian. Find the negative direction (rare: only then do these loops run).
        indefinite = pending & ~pd
        # `cond`, not just loops with zero trips: on CPU even empty loops cost a visible
        # share of a small step, and XLA hoists their loop-invariant work (the final solve)
        # out of them. Its predicate stays unbatched under `vmap` (`any_in_batch`), so the
        # branch runs only in steps where some element of the batch is indefinite; there
        # the loops gate on each element's `indefinite`.
        def search():
            no_neg, v_neg, delta_reg, sigma = self._negative_direction(
                g0, diag, off, state.v, indefinite
            )
            return no_neg, v_neg, -0.5 * jnp.sum(g0 * delta_reg), sigma

        no_neg, v_neg, decrement_reg, sigma = jax.lax.cond(
            any_in_batch(indefinite),
            search,
            lambda: (jnp.array(True), state.v, jnp.zeros((), dt), sigma0),
        )
        singular_ok = indefinite & no_neg & (
            (decrement_reg <= tol_S) | (decrement_reg <= roundoff)
        )
        # A restart that came back to the same action: a flat, degenerate direction.
        flat_saddle = state.S_stop - S0 <= tol_S
        saddle = indefinite & ~no_neg
        converged = certified | singular_ok | (saddle & flat_saddle)
        restart = saddle & ~flat_saddle & (state.num_restarts < self.max_restarts)
        # Out of restarts and still on a saddle: never report it as converged.
        stuck = saddle & ~flat_saddle & ~restart

        # --- The step: Newton, plus a step along negative curvature. A symmetric system
        # often has a symmetric saddle of the action (e.g. the straight line on a symmetry
        # axis) where the gradient has no component that would leave it. Inverse iteration
        # on the damped factorisation, one solve per step warm-started from the last step's
        # vector, tracks the most negative direction of H; step along it, downhill, with a
        # length that shrinks as the damping grows (the ratio test then decides).
        def with_escape(v, active):
            curv = jnp.sum(v * _blocktri.matvec(diag, off, v))
            slope = jnp.sum(g0 * v)
            tau = jnp.where(
                active & (curv < 0), self.escape * ell / (1.0 + lam_eff / self.lam0), 0.0
            )
            return delta_n - jnp.where(slope > 0, 1.0, -1.0) * tau * v

        if self.track_curvature:
            v = w / jnp.sqrt(jnp.sum(w * w))
            v = jnp.where(pd & jnp.all(jnp.isfinite(v)), v, state.v)
            delta = with_escape(v, True)
        else:
            # Untracked (warm starts), but after a restart from a saddle of the action (below)
            # the step still goes along the negative direction found there: a restart that
            # did not move would come back to the saddle and take it for a flat minimum.
            v = state.v
            escaping = state.num_restarts > 0
            delta = jax.lax.cond(
                any_in_batch(escaping), lambda: with_escape(v, escaping), lambda: delta_n
            )
        delta = jnp.where(pd, delta, 0.0)
        hdelta = _blocktri.matvec(diag, off, delta)
        pred = -(jnp.sum(g0 * delta) + 0.5 * jnp.sum(delta * hdelta))

        y_new = y + delta
        S_new, g_new = problem.value_and_grad(y_new)
        finite = jnp.isfinite(S_new) & jnp.all(jnp.isfinite(g_new))
        if self.chord:
            # A curved valley (a soft mode whose straight step leaves it, e.g. the timing of
            # a transition near a saddle) makes the ratio test reject full steps and the
            # damping crawl. One more solve with the same factorisation from the trial point
            # pulls the stiff modes back into the valley; it is kept when it lowers the
            # action, and the ratio test judges the corrected step. Only once a step was
            # rejected: a warm start near the optimum does not need it (under `vmap`, the
            # `cond` runs where some element of the batch does).
            want = state.rejected & pd & finite

            def chord():
                delta_c = -_blocktri.cho_solve(chols, off, g_new)
                y_c = y_new + jnp.where(want, delta_c, 0.0)
                S_c, g_c = problem.value_and_grad(y_c)
                # Visibly lower (above round-off): near the optimum the two differ by noise,
                # and the choice must not depend on it (the same path in any batch).
                use_c = (
                    want & jnp.isfinite(S_c) & jnp.all(jnp.isfinite(g_c))
                    & (S_c < S_new - roundoff)
                )
                return (
                    jnp.where(use_c, y_c, y_new),
                    jnp.where(use_c, S_c, S_new),
                    jnp.where(use_c, g_c, g_new),
                    jnp.where(use_c, y_c - y, delta),
                )

            y_new, S_new, g_new, delta = jax.lax.cond(
                any_in_batch(want), chord, lambda: (y_new, S_new, g_new, delta)
            )
        accept, rho = ratio_test(S0, S_new, pred, pd & finite)

        # The damping of a rejection (also what taking an accepted step back restores).
        lam_rej, nu_rej = _after_rejection(jnp.where(pending & ~pd, lam_in, lam_eff), nu_in)
        # Down by up to 10x per accepted step (Nielsen's update) while every step has been
        # accepted (a warm start near the optimum), by at most 3x once a step was rejected:
        # in a curved valley a factor 10 drops the damping below what the valley allows,
        # and it climbs back through rejections, step after step.
        floor = jnp.where((nu_in > 2.0) | state.rejected, 1 / 3, 0.1)
        lam = jnp.where(
            accept, lam_eff * jnp.maximum(floor, 1 - (2 * jnp.clip(rho, 0, 1) - 1) ** 3), lam_rej
        )
        lam = jnp.maximum(lam, _MIN_DAMPING)
        nu = jnp.where(accept, 2.0, nu_rej)
        lam = jnp.where(restart, jnp.maximum(2 * sigma, lam_in), lam)
        nu = jnp.where(restart, 2.0, nu)

        sel = lambda a, b: jnp.where(accept, a, b)
        y_out = sel(y_new, y)
        S_out, g_out = sel(S_new, S0), sel(g_new, g0)
        tol_S_out = atol + rtol * jnp.abs(S_out)

        # A nearly flat, strongly nonlinear direction (the timing of a wait at a fixed point
        # on a long path: the action depends on it only through exponentially small tails)
        # keeps Newton steps long while the action no longer moves.
        flat = accept & (lam_eff <= 1e-4) & (pred <= 0.1 * tol_S_out)
        num_flat = jnp.where(accept, jnp.where(flat, state.num_flat + 1, 0), state.num_flat)
        dec_small = (pred <= tol_S_out) | (pred <= roundoff)
        step_small = jnp.max(jnp.abs(delta)) <= step_tol
        # In Newton's quadratic regime (a tiny damping and a step the quadratic model
        # predicted well) a small decrease is a candidate even if the step was not yet
        # small: the next, undamped step certifies the point or is the Newton step it
        # would have taken anyway (one step fewer per solve than waiting for a small step).
        quadratic = (lam_eff <= _QUADRATIC_LAM) & (rho >= 0.5)
        candidate = (
            accept & dec_small & (step_small | (num_flat >= _NUM_FLAT) | quadratic)
            & ~converged & ~restart
        )
        if not self.certify:
            # A provisional answer (refined and certified later): a candidate reached in
            # the quadratic regime is taken at once, one step earlier.
            provisional = candidate & quadratic
            converged = converged | provisional
            candidate = candidate & ~provisional

        stagnated = ((lam > _MAX_DAMPING) & ~converged) | stuck
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
            diag=diag,
            off=off,
            v=jnp.where(restart, v_neg, v),
            lam=lam,
            nu=nu,
            num_accepted=num_accepted + accept.astype(jnp.int32),
            num_flat=jnp.where(restart, 0, num_flat),
            num_restarts=state.num_restarts + restart.astype(jnp.int32),
            num_certified=state.num_certified + pending.astype(jnp.int32),
            rejected=state.rejected | ~accept,
            pending=candidate,
            S_stop=jnp.where(restart, S0, state.S_stop),
            newton_decrement=jnp.where(pending, decrement, state.newton_decrement),
            done=converged | stagnated | nonfinite,
            result=result,
            # `diag`/`off` stay `H(y)`; after an accepted step they are one point behind.
            fresh=~accept,
            has_back=accept | (state.has_back & ~back),
            y_back=sel(y, state.y_back),
            S_back=sel(S0, state.S_back),
            g_back=sel(g0, state.g_back),
            lam_back=sel(lam_rej, state.lam_back),
            nu_back=sel(nu_rej, state.nu_back),
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
