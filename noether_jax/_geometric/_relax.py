r"""Relaxation: the deterministic flow `ẋ = f(t, x)` until it settles, and the two branches
of the unstable manifold of an index-1 saddle.

These are the zero-noise paths: on them `p = 0`, the action vanishes and every Noether charge
is zero (docs/conventions.md). In a transition between attractors they are the *downhill* legs,
from a saddle to an attractor; the uphill legs come from the geometric action.
"""

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._results import RESULTS
from .._sde import SDE
from ._fixed_points import (
    _NOT_FIXED_STATIC,
    FixedPoint,
    _check_start,
    _classify_jit,
    _distance,
    _eps,
    _fmt_complex,
    _is_concrete,
    _not_fixed_message,
    _positive_float,
    _tolerances,
    kind_name,
)


class Relaxation(eqx.Module):
    r"""A trajectory of the deterministic flow `ẋ = f(t, x)`.

    **Attributes** (with a leading batch axis under `jax.vmap`):

    - `ts`: `Array[n_save]`, times, from `t0` to the stop time (where the stop test of
      `nj.relax` held, or `t_max`).
    - `xs`: `Array[n_save, d]`, the trajectory at `ts`; `xs[0]` is the start, `xs[-1] ==
      x_end`. Equidistant in arclength (default) or in time (see `nj.relax`). When it
      settled, `xs[-1]` is the polished attractor, which the flow reaches only as `t → ∞`:
      the flow itself was `gap` away from it at `ts[-1]`.
    - `x_end`: `Array[d]`, where it stopped: when it settled, the attractor, located to
      round-off by Newton's method from the flow's last state; otherwise that last state.
    - `duration`: the time taken, `ts[-1] − ts[0]`.
    - `length`: the (Euclidean) arclength of the trajectory, `gap` included.
    - `distance`: `|J⁻¹f(x_end)|`, `J = ∂f/∂x(x_end)`: the length of the Newton step at the
      end, the first-order distance to the fixed point nearby (`0` where `f(x_end) = 0`,
      `inf` where `J` is singular). Round-off when it settled.
    - `gap`: `|x_end − x(ts[-1])|`, how far the flow's stop point was from the attractor it
      settled at (the Newton polishing's length, at most about `2·tol·(|x_end| + scale)`);
      `0` when it did not settle.
    - `converged`: whether it settled (the stop test of `nj.relax` held and the polishing
      converged).
    - `result`: an `nj.RESULTS` code: `successful` when it settled (exactly when
      `converged`); `not_settled` when it ran to `t_max` without settling;
      `max_steps_reached` when the integrator ran out of `max_steps` first (this is also
      how a flow that blows up in finite time usually ends); `nonfinite` when the state
      became NaN or infinite or the integrator failed otherwise (a code it shares with
      optimistix, e.g. `nonlinear_divergence` of an implicit solver's root find, is kept).
      `nj.RESULTS[rel.result]` is the message.
    - `num_steps`: solver steps taken.
    """

    ts: Float[Array, " n"]
    xs: Float[Array, "n d"]
    x_end: Float[Array, " d"]
    duration: Float[Array, ""]
    length: Float[Array, ""]
    distance: Float[Array, ""]
    gap: Float[Array, ""]
    converged: Bool[Array, ""]
    result: RESULTS
    num_steps: Int[Array, ""]


# Failure codes that diffrax inherits from optimistix (and lineax), as `nj.RESULTS` does.
# The two enumerations are siblings under `optx.RESULTS`, so an item of one can be neither
# promoted to nor compared with the other: the codes are matched by name.
_SHARED_FAILURES = (
    "singular",
    "breakdown",
    "stagnation",
    "conlim",
    "nonfinite_input",
    "nonlinear_max_steps_reached",
    "nonlinear_divergence",
    "nonfinite",
)


def _to_results(dfx_result: dfx.RESULTS, converged, finite) -> RESULTS:
    """The `nj.RESULTS` code of a relaxation from its `diffrax.RESULTS` code."""
    # diffrax's own failures (`dt_min_reached`, `max_steps_rejected`, `internal_error`)
    # have no counterpart: the step size collapsed, normally because the state blew up.
    failed = RESULTS.nonfinite
    for name in _SHARED_FAILURES:
        failed = RESULTS.where(
            dfx_result == getattr(dfx.RESULTS, name), getattr(RESULTS, name), failed
        )
    failed = RESULTS.where(
        dfx_result == dfx.RESULTS.max_steps_reached, RESULTS.max_steps_reached, failed
    )
    # The integration ended normally: at the stop event, or at `t_max`.
    ran = (dfx_result == dfx.RESULTS.event_occurred) | (dfx_result == dfx.RESULTS.successful)
    ended = RESULTS.where(
        converged,
        RESULTS.successful,
        RESULTS.where(finite, RESULTS.not_settled, RESULTS.nonfinite),
    )
    return RESULTS.where(ran, ended, failed)


# ---------------------------------------------------------------------------------------------
# The stop rule: the attractor's own linearisation, then Newton polishing.

# The linear model holds when the simplified-Newton step from the Newton target is at most
# this fraction of the Newton step (a contraction well inside Kantorovich's ball, h ≈ 2θ ≤ ½).
_LINEAR_RTOL = 0.1
# Newton polishing: at most this many steps (from θ ≤ 0.1 the error squares each step, so
# round-off is reached in 3 or 4).
_POLISH_STEPS = 8


def _no_gradient(tree):
    """`tree` with the gradients of its floating-point arrays stopped (other leaves kept)."""
    return jax.tree.map(
        lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a, tree
    )


def _newton(fun, x):
    """`(f(x), J, LU factors of J, δ = −J⁻¹f(x))`, `J = ∂f/∂x(x)`; a non-finite `J` is
    replaced by zeros, so that `δ` is non-finite (and every test on it false)."""
    fx = fun(x)
    J = jax.jacfwd(fun)(x)
    ok = jnp.all(jnp.isfinite(J))
    J = jnp.where(ok, J, 0.0)
    lu = jax.scipy.linalg.lu_factor(J)
    return fx, J, lu, -jax.scipy.linalg.lu_solve(lu, fx)


def _newton_distance(fun, x) -> Float[Array, ""]:
    """`|J⁻¹f(x)|`, the length of the Newton step: the first-order distance from `x` to the
    fixed point nearby. `0` where `f(x) = 0`, `inf` where the step is not finite."""
    fx, _, _, step = _newton(fun, x)
    n = jnp.linalg.norm(step)
    n = jnp.where(jnp.isfinite(n), n, jnp.inf)
    return jnp.where(jnp.all(fx == 0), 0.0, n).astype(x.dtype)


def _settle_test(fun, y, tol, scale) -> tuple[Bool[Array, ""], Float[Array, ""]]:
    r"""Whether the flow has settled at `y`, and the Newton distance `|δ|` there.

    With `J = ∂f/∂x(y)`, `δ = −J⁻¹f(y)` (the step to the linear model's fixed point) and
    `δ₁ = −J⁻¹f(y + δ)` (the same model's correction there), settled means: `|δ| ≤
    tol·(|y| + scale)`; `|δ₁| ≤ 0.1·|δ|` or `|δ₁| ≤ √ε·(|y| + scale)` (the linear model
    predicts the fixed point); every eigenvalue of `J` has `Re λ < −√ε·max|λ|` (the
    fixed point it predicts is a hyperbolic attractor, so the flow goes there rather than
    past it, as it would past a saddle).
    """
    dtype = y.dtype
    fx, J, lu, step = _newton(fun, y)
    step1 = -jax.scipy.linalg.lu_solve(lu, fun(y + step))
    n = jnp.where(jnp.all(fx == 0), 0.0, jnp.linalg.norm(step))
    n1 = jnp.linalg.norm(step1)
    ref = jnp.linalg.norm(y) + scale
    linear = (n1 <= _LINEAR_RTOL * n) | (n1 <= _eps(dtype) ** 0.5 * ref)
    # Stable with a margin above round-off in the eigenvalues (`√ε`, looser than the
    # classification's `ε^(1/3)`: a slow but clearly negative rate, 1e-3 of the fast one
    # in float32, still settles; the linear-model test guards against the nonlinearity).
    lam = jnp.linalg.eigvals(J)
    stable = jnp.max(jnp.real(lam)) < -(_eps(dtype) ** 0.5) * jnp.max(jnp.abs(lam))
    settled = jnp.isfinite(n) & (n <= tol * ref) & linear & stable
    return settled, n.astype(dtype)


def _polish(fun, y, scale) -> Float[Array, " d"]:
    """Newton's method on `f(x) = 0` from `y`, each step with a fresh Jacobian, until the
    step stops shrinking (round-off) or is below `ε·(|x| + scale)`."""
    eps = _eps(y.dtype)

    def cond(c):
        k, _, _, go = c
        return go & (k < _POLISH_STEPS)

    def body(c):
        k, x, prev, _ = c
        _, _, _, step = _newton(fun, x)
        n = jnp.linalg.norm(step)
        # A step that does not shrink is round-off (or divergence): not taken.
        take = jnp.isfinite(n) & (n < prev)
        x = jnp.where(take, x + step, x)
        go = take & (n > eps * (jnp.linalg.norm(x) + scale))
        return k + 1, x, jnp.where(take, n, prev), go

    init = (jnp.asarray(0), y, jnp.asarray(jnp.inf, y.dtype), jnp.asarray(True))
    return jax.lax.while_loop(cond, body, init)[1]


@eqx.filter_jit
def _relax(
    sde, x0, t0, t_max, args, tol, scale, rtol, atol, solver, n_save, by_arclength, max_steps
) -> Relaxation:
    dtype = x0.dtype
    fun = lambda t, y: sde.f(t, y, args)

    # NaN stands for the default (an array either way, so that it does not recompile):
    # 10⁴ times the fastest time scale at the start; the stop test normally ends the
    # integration long before.
    J0 = jax.jacfwd(lambda y: fun(t0, y))(x0)
    rate = jnp.linalg.norm(J0, 2)
    t_max = jnp.where(jnp.isnan(t_max), 1e4 / jnp.maximum(rate, _eps(dtype)), t_max)
    # Default atol: relative to the start's distance from the fixed point nearby, so that a
    # start a small step off a saddle is followed to relative accuracy `rtol` while the
    # displacement is still tiny (an error there becomes a shift in time).
    _, dist0 = _distance(fun(t0, x0), J0)
    near = jnp.clip(jnp.where(jnp.isfinite(dist0), dist0, scale), _eps(dtype) * scale, scale)
    atol = jnp.where(jnp.isnan(atol), rtol * near, atol)

    # The stop test and the polishing are not differentiated (a boolean, and a root whose
    # derivative comes from the implicit function theorem below): their drift sees the
    # system and `args` with gradients stopped, and no reverse-mode pass meets their loops.
    sde_ng, args_ng = _no_gradient((sde, args))
    fun_ng = lambda t, y: sde_ng.f(t, y, args_ng)

    def settled(t, y, args, **kwargs):
        t, y = jax.lax.stop_gradient((t, y))
        return _settle_test(lambda z: fun_ng(t, z), y, tol, scale)[0]

    sol = dfx.diffeqsolve(
        dfx.ODETerm(lambda t, y, a: fun(t, y)),
        solver,
        t0,
        t0 + t_max,
        None,
        x0,
        args,
        saveat=dfx.SaveAt(steps=True, dense=True),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        event=dfx.Event(settled),
        max_steps=max_steps,
        throw=False,
    )
    # With `steps=True` the outputs are padded with inf after the last step.
    last = jnp.maximum(jnp.sum(jnp.isfinite(sol.ts)) - 1, 0)
    t_stop = jnp.where(sol.stats["num_accepted_steps"] > 0, sol.ts[last], t0)
    y_stop = jnp.where(sol.stats["num_accepted_steps"] > 0, sol.ys[last], x0)

    # Arclength as a function of time from the chords between the solver's steps (padded
    # beyond `num_steps`; the padding is clamped to the stop point). Then one evaluation of
    # the dense (4th order) interpolant at the chosen times.
    steps_t, steps_y = sol.ts, sol.ys
    valid = jnp.isfinite(steps_t) & (steps_t <= t_stop)
    steps_t = jnp.concatenate([t0[None], jnp.where(valid, steps_t, t_stop)])
    steps_y = jnp.concatenate([x0[None], jnp.where(valid[:, None], steps_y, y_stop)])
    seg = jnp.linalg.norm(jnp.diff(steps_y, axis=0), axis=-1)
    seg = jnp.where(jnp.isfinite(seg), seg, 0.0)
    s = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(seg)])
    uniform_t = jnp.linspace(t0, t_stop, n_save, dtype=dtype)
    arc_t = jnp.interp(jnp.linspace(0.0, 1.0, n_save, dtype=dtype) * s[-1], s, steps_t)
    ts = jnp.where(by_arclength & (s[-1] > 0), arc_t, uniform_t)
    ts = ts.at[0].set(t0).at[-1].set(t_stop)

    # Where the stop test holds (at the event, or at `t_max` by chance), the rest of the
    # flow is the linear model's, whose end is its fixed point: Newton's method finds it to
    # round-off, which no integrator tolerance delivers near an ill-conditioned attractor.
    t_ng, y_ng = jax.lax.stop_gradient((t_stop, y_stop))
    f_stop = lambda z: fun_ng(t_ng, z)
    settled_here, step_stop = _settle_test(f_stop, y_ng, tol, scale)
    polished = _polish(f_stop, y_ng, scale)
    dist_p = _newton_distance(f_stop, polished)
    # Zero in value; in derivative −J⁻¹ ∂f/∂θ, the implicit function theorem's derivative
    # of the attractor with respect to the drift's parameters (the start does not move it).
    # Evaluated at a harmless point where it is not used, so no NaN reaches a gradient.
    use = settled_here & jnp.all(jnp.isfinite(polished))
    x_ift = jnp.where(use, polished, jax.lax.stop_gradient(x0))
    J_ift = jnp.where(use, jax.jacfwd(f_stop)(x_ift), jnp.eye(x0.shape[0], dtype=dtype))
    newton = -jnp.linalg.solve(J_ift, jnp.where(use, fun(t_ng, x_ift), 0.0))
    polished = polished + (newton - jax.lax.stop_gradient(newton))
    ref = jnp.linalg.norm(polished) + scale
    # Kantorovich: from a point where the linear model holds, the root lies within twice the
    # first Newton step; further away, Newton went to another root, which is refused.
    root_eps = _eps(dtype) ** 0.5
    in_ball = jnp.linalg.norm(polished - y_ng) <= 2 * step_stop + root_eps * ref
    polish_ok = jnp.all(jnp.isfinite(polished)) & (dist_p <= root_eps * ref) & in_ball
    finite = jnp.all(jnp.isfinite(y_stop))
    result = _to_results(sol.result, settled_here & polish_ok, finite)
    # Settled only where the integration ended normally (not, say, out of steps on the
    # step where the test first held), so that `converged` and `result` agree.
    converged = result == RESULTS.successful
    x_end = jnp.where(converged, polished, y_stop)
    dist = jnp.where(converged, dist_p, jnp.where(jnp.isfinite(step_stop), step_stop, jnp.inf))
    gap = jnp.linalg.norm(x_end - y_stop)
    xs = jax.vmap(sol.evaluate)(ts).at[0].set(x0).at[-1].set(x_end)

    return Relaxation(
        ts=ts,
        xs=xs,
        x_end=x_end,
        duration=t_stop - t0,
        length=s[-1] + gap,
        distance=dist,
        gap=gap,
        converged=converged,
        result=result,
        num_steps=jnp.asarray(sol.stats["num_steps"]),
    )


def _relax_options(where, dtype, t_max, tol, scale, rtol, atol, solver, n_save, spacing, max_steps):
    """Validate and default the options shared by `relax` and `leave_saddle`."""
    for name, v in (("n_save", n_save), ("max_steps", max_steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v < (2 if name == "n_save" else 1):
            raise ValueError(
                f"`{where}`: `{name}` must be an int ≥ {2 if name == 'n_save' else 1}, got {v!r}."
            )
    if spacing not in ("arclength", "time"):
        raise ValueError(f"`{where}`: `spacing` must be 'arclength' or 'time', got {spacing!r}.")
    for name, v in (
        ("t_max", t_max), ("tol", tol), ("scale", scale), ("rtol", rtol), ("atol", atol)
    ):
        _positive_float(v, name, where)
    if solver is None:
        solver = dfx.Tsit5()
    if not isinstance(solver, dfx.AbstractSolver):
        raise ValueError(f"`{where}`: `solver` must be a diffrax solver, got {solver!r}.")
    root_eps = _eps(dtype) ** 0.5
    arr = lambda a: jnp.asarray(a, dtype=dtype)
    tol = arr(_eps(dtype) ** 0.25 if tol is None else tol)
    scale = arr(scale)
    rtol = arr(root_eps if rtol is None else rtol)
    atol = arr(jnp.nan if atol is None else atol)
    return dict(
        t_max=arr(jnp.nan if t_max is None else t_max),
        tol=tol,
        scale=scale,
        rtol=rtol,
        atol=atol,
        solver=solver,
        n_save=n_save,
        by_arclength=jnp.asarray(spacing == "arclength"),
        max_steps=max_steps,
    )


def relax(
    sde: SDE,
    x_start: ArrayLike,
    *,
    args: Any = None,
    t0: ArrayLike = 0.0,
    t_max: float | None = None,
    tol: float | None = None,
    scale: float = 1.0,
    n_save: int = 101,
    spacing: str = "arclength",
    rtol: float | None = None,
    atol: float | None = None,
    solver: dfx.AbstractSolver | None = None,
    max_steps: int = 4096,
) -> Relaxation:
    r"""Follow the deterministic flow `ẋ = f(t, x)` from `x_start` until it settles at an
    attractor, which is then located to round-off (or until `t_max` passes: then
    `converged` is false and `result` is `nj.RESULTS.not_settled`).

    **Arguments:**

    - `sde`: the system, an `nj.SDE` (only its drift is used).
    - `x_start`: the initial state, shape `(d,)`.
    - `args`: passed to the drift.
    - `t0`: the initial time (the drift may depend on time; the stop test evaluates it at
      the current time).
    - `t_max`: the longest duration. Default: `10⁴/‖∂f/∂x(x_start)‖₂`, ten thousand of the
      fastest time scales at the start.
    - `tol`, `scale`: the stop test (below). Default `tol = ε^(1/4)` (1.2e-4 in float64,
      1.9e-2 in float32), `scale = 1`, the length below which distances count as absolute.
    - `n_save`: the number of points returned.
    - `spacing`: `"arclength"` (default): the points are (nearly) equidistant along the
      trajectory,
      as a geometric (arclength-parametrised) path's nodes are, so the trajectory plots well
      and can be appended to one; `"time"`: equidistant in time.
    - `rtol`, `atol`: tolerances of the adaptive step-size controller. Defaults `√ε` and
      `rtol·δ₀`, `δ₀` the start's distance bound `|f|/σ_min(∂f/∂x)` clipped to
      `[ε·scale, scale]`: a start a small step `δ₀` off a saddle is then followed to
      relative accuracy while the displacement is still tiny. They are far tighter than
      `tol` on purpose: the stop test must be met by a state the integrator delivers.
    - `solver`: a diffrax solver (default `diffrax.Tsit5()`; pass e.g.
      `diffrax.Kvaerno5()` for a stiff drift: an explicit solver's step near an attractor
      is bounded by `~3/|λ_fast|` whatever the accuracy, so the slow approach takes
      `~|λ_fast/λ_slow|·log(1/tol)` steps).
    - `max_steps`: the most solver steps. The dense output is stored for all of them.

    **Returns:** an `nj.Relaxation` (`.converged`, and `.result`, an `nj.RESULTS` code:
    `successful` when it settled, `not_settled` when `t_max` passed first,
    `max_steps_reached`, `nonfinite`).

    **The stop test.** Let `J = ∂f/∂x(x)` at the current state `x` (and time), `δ =
    −J⁻¹f(x)` the step to the fixed point of the linear model `f(x + h) ≈ f(x) + J h`, and
    `δ₁ = −J⁻¹f(x + δ)` that model's correction at its own fixed point (the residual of the
    linear model, in units of `x`). The flow stops at the end of the first solver step where

    $$|δ| \le \mathrm{tol}\,(|x| + \mathrm{scale}), \qquad
      |δ_1| \le \tfrac{1}{10}\,|δ| \ \text{ or } \ |δ_1| \le \sqrt{ε}\,(|x| + \mathrm{scale}),
      \qquad \max_i \operatorname{Re} λ_i(J) < -\sqrt{ε} \max_i |λ_i(J)|:$$

    the attractor's linearisation predicts a fixed point within a relative distance `tol`;
    the model holds there (a contraction `|δ₁|/|δ| ≤ 1/10` puts `x` well inside the region
    where Newton's method converges quadratically, Kantorovich's `h ≈ 2|δ₁|/|δ| ≤ 1/2`);
    and that fixed point is a hyperbolic attractor, so the rest of the flow is the decay
    `e^{J t}` onto it (near a saddle, e.g. where `nj.leave_saddle` starts, the first two
    hold and the third does not). Newton's method from the stop point, with a fresh
    Jacobian each step, then finds the attractor `x*` to round-off (at most 8 steps; it
    stops when the step no longer shrinks); `x_end = x*`, and it settled if `|J⁻¹f(x*)| ≤
    √ε·(|x*| + scale)` and `|x* − x| ≤ 2|δ| + √ε·(|x*| + scale)` (the root the linear model
    predicted, not another one). Otherwise it runs on.

    Why not stop where `x` itself is within round-off of the attractor: the integrator
    keeps the state about `rtol·|x|` off it, and along the slow direction of an
    ill-conditioned attractor (`|Re λ_slow| ≪ ‖J‖`, or a strongly non-normal `J`) the
    flow needs `~log(1/tol)/|Re λ_slow|` to get there; a stop tolerance near the
    integrator's accuracy is then never met. The test above asks only that the linear
    model be trustworthy, with `tol` far above what the integrator delivers, and the
    polishing supplies the accuracy. Not settled: a non-hyperbolic attractor (`f = −x³`,
    where `|δ₁|/|δ| = 8/27` however close), an attractor so ill-conditioned that its slow
    eigenvalue is within `√ε·max|λ|` of zero, a state that stays on a saddle, a limit
    cycle; the default `t_max` may be too short for a slow attractor (pass `t_max`).

    **How the points are placed.** One integration with a stop condition (a diffrax
    `Event`), saving every step and the dense output. The arclength is measured along the
    chords between the solver's steps and interpolated linearly in time between them; that
    fixes the times of `n_save` points nearly equidistant in arclength (gaps within a few
    percent of each other at the default tolerances; the solver's steps are longer than
    the gaps), and the points are evaluated there on the 4th-order dense interpolant, so
    they lie on the trajectory to the integration's accuracy. The first point is
    `x_start` exactly, the last `x_end` (the polished attractor when it settled).

    **Derivatives.** Reverse mode (`jax.grad`) through the integration (diffrax's default
    adjoint). Where it settled, the derivative of `x_end` is that of the attractor, from
    the implicit function theorem: `−J⁻¹ ∂f/∂θ` with respect to parameters `θ` of the drift,
    zero with respect to `x_start`; the stop test and the polishing are not differentiated.

    `jit`- and `vmap`-able (over `x_start`, `args`, `t0`). Known problem: on CPU (jax
    0.10.2) a `vmap` of `relax` over 16 starts of a 64-unit network deadlocked inside XLA in
    three runs out of four (every thread waiting, no CPU used); without the stop test's
    batched eigenvalues it never did, and 64 starts at `d = 16` never did. At such sizes,
    loop over the starts (each call is compiled once) until this is resolved.
    """
    where = "relax"
    x0, t0 = _check_start(sde, x_start, t0, args, where, names=("x_start", "t0"))
    opts = _relax_options(
        where, x0.dtype, t_max, tol, scale, rtol, atol, solver, n_save, spacing, max_steps
    )
    return _relax(sde, x0, t0, args=args, **opts)


class UnstableManifold(eqx.Module):
    r"""The two branches of the one-dimensional unstable manifold of an index-1 fixed point:
    the relaxations started a small step `±step·direction` away from it.

    **Attributes:**

    - `saddle`: the `nj.FixedPoint` (its classification).
    - `direction`: `Array[d]`, the unit unstable eigenvector (`saddle.unstable_direction`).
    - `step`: the length of the initial displacement.
    - `plus`, `minus`: `nj.Relaxation`s from `x + step·direction` and `x − step·direction`.
      Their ends are the fixed points (normally two attractors) that the saddle connects;
      `[saddle.x, *plus.xs]` is the downhill leg of a transition through the saddle. Each
      has its own `converged` and `result` (an `nj.RESULTS` code, `successful` when it
      settled).
    """

    saddle: FixedPoint
    direction: Float[Array, " d"]
    step: Float[Array, ""]
    plus: Relaxation
    minus: Relaxation

    @property
    def ends(self) -> Float[Array, "2 d"]:
        """The end points of `plus` and `minus`, stacked."""
        return jnp.stack([self.plus.x_end, self.minus.x_end], axis=-2)

    @property
    def converged(self) -> Bool[Array, ""]:
        """Whether both branches settled."""
        return self.plus.converged & self.minus.converged


_NOT_INDEX_ONE_STATIC = (
    "`leave_saddle`: the point does not have exactly one unstable direction (index 1, "
    "hyperbolic), so it has no one-dimensional unstable manifold to follow."
)


def leave_saddle(
    sde: SDE,
    x_start: ArrayLike,
    *,
    args: Any = None,
    t0: ArrayLike = 0.0,
    eps: float | None = None,
    check: bool = True,
    check_rtol: float | None = None,
    t_max: float | None = None,
    tol: float | None = None,
    scale: float = 1.0,
    n_save: int = 101,
    spacing: str = "arclength",
    rtol: float | None = None,
    atol: float | None = None,
    solver: dfx.AbstractSolver | None = None,
    max_steps: int = 4096,
) -> UnstableManifold:
    r"""Leave an index-1 fixed point along both branches of its unstable manifold.

    Steps `±step` along the unstable eigenvector `v` (`nj.FixedPoint.unstable_direction`)
    and relaxes from both points (`nj.relax`).

    **Arguments:**

    - `sde`, `x_start`, `args`, `t0`: the system, the fixed point `(d,)` to leave (the start
      of both branches), the drift's `args` and the time at which the drift is evaluated
      there (also the relaxations' start time). The names are `nj.relax`'s.
    - `eps`: the step is `step = eps·(|x| + scale)`. Default `ε^(1/4)` (1.2e-4 in float64,
      2e-2 in float32). The trajectory from `x + step·v` leaves the true unstable manifold
      by `O(step²)` (curvature) and the time spent near the saddle grows only like
      `log(1/step)/λ_u`; the step must stay well above the error in `x` and the
      round-off `ε|x|`. (It may be smaller than the stop tolerance `tol`: the stop test
      of `nj.relax` also asks for an attractor, which the saddle is not.)
    - `check`, `check_rtol`: with `check=True` (default) raise if `x` is not a fixed point
      (the test of `nj.check_fixed_point` with `rtol = check_rtol`) or does not have exactly
      one unstable direction (hyperbolic index 1: a saddle of index 1, or in 1-D a maximum).
      Outside `jit` a `ValueError` with the numbers; under `jit`/`vmap` an `equinox`
      runtime error.
    - the other options are `nj.relax`'s, for both branches.

    **Returns:** an `nj.UnstableManifold` (`.plus`, `.minus`, `.ends`, `.converged`).

    `jit`- and `vmap`-able.
    """
    where = "leave_saddle"
    x, t = _check_start(sde, x_start, t0, args, where, names=("x_start", "t0"))
    _positive_float(eps, "eps", where)
    _positive_float(check_rtol, "check_rtol", where)
    opts = _relax_options(
        where, x.dtype, t_max, tol, scale, rtol, atol, solver, n_save, spacing, max_steps
    )
    rtol_, scale_, hyp_, rate_ = _tolerances(x.dtype, check_rtol, scale, None, None)
    fp = _classify_jit(sde, x, t, args, rtol_, scale_, hyp_, rate_)
    bad_index = (fp.index != 1) | (fp.num_center > 0)
    if check:
        if _is_concrete(fp.is_fixed_point):
            if not bool(fp.is_fixed_point):
                raise ValueError(_not_fixed_message(fp, rtol_, scale_, where, "check_rtol"))
            if bool(bad_index):
                ev = ", ".join(_fmt_complex(z) for z in fp.eigenvalues.tolist())
                raise ValueError(
                    f"`{where}`: x is a fixed point of kind '{kind_name(fp.kind)}' with "
                    f"{int(fp.index)} unstable and {int(fp.num_center)} centre direction(s) "
                    f"(eigenvalues of ∂f/∂x: {ev}); leaving it along an unstable manifold "
                    "needs exactly one unstable direction and no centre direction (index "
                    "1, hyperbolic)."
                )
        else:
            fp = eqx.error_if(fp, ~fp.is_fixed_point, f"`{where}`: {_NOT_FIXED_STATIC}")
            fp = eqx.error_if(fp, bad_index, _NOT_INDEX_ONE_STATIC)
    eps = _eps(x.dtype) ** 0.25 if eps is None else eps
    step = jnp.asarray(eps, x.dtype) * (jnp.linalg.norm(x) + opts["scale"])
    v = fp.unstable_direction
    # Two calls of the compiled `relax` (shared with `nj.relax`, so nothing new compiles)
    # rather than one vmapped call, which would compile a second, batched integrator.
    plus = _relax(sde, x + step * v, t, args=args, **opts)
    minus = _relax(sde, x - step * v, t, args=args, **opts)
    return UnstableManifold(saddle=fp, direction=v, step=step, plus=plus, minus=minus)
