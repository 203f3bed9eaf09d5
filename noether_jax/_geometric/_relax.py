r"""Relaxation: the deterministic flow `ẋ = f(t, x)` until it settles, and the two branches
of the unstable manifold of an index-1 saddle.

These are the zero-noise paths: on them `p = 0`, the action vanishes and every Noether charge
is zero (CONVENTIONS.md). In a transition between attractors they are the *downhill* legs,
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
    _eps,
    _fmt_complex,
    _is_concrete,
    _not_fixed_message,
    _distance,
    _positive_float,
    _tolerances,
    fixed_point_distance,
    kind_name,
)


class Relaxation(eqx.Module):
    r"""A trajectory of the deterministic flow `ẋ = f(t, x)`.

    **Attributes** (with a leading batch axis under `jax.vmap`):

    - `ts`: `Array[n_save]`, times, from `t0` to the stop time.
    - `xs`: `Array[n_save, d]`, the trajectory at `ts`; `xs[0]` is the start, `xs[-1] ==
      x_end`. Equidistant in arclength (default) or in time (see `nj.relax`).
    - `x_end`: `Array[d]`, where it stopped.
    - `duration`: the time taken, `ts[-1] − ts[0]`.
    - `length`: the (Euclidean) arclength of the trajectory.
    - `distance`: `|f(x_end)|/σ_min(∂f/∂x)` at the end, a first-order bound on the distance
      to the fixed point there.
    - `converged`: whether it settled: `distance ≤ tol·(|x_end| + scale)`.
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

    def settled(t, y, args, **kwargs):
        _, dist = fixed_point_distance(lambda z: fun(t, z), y)
        return dist <= tol * (jnp.linalg.norm(y) + scale)

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
    x_end = jnp.where(sol.stats["num_accepted_steps"] > 0, sol.ys[last], x0)

    # Arclength as a function of time from the chords between the solver's steps (padded
    # beyond `num_steps`; the padding is clamped to the stop point). Then one evaluation of
    # the dense (4th order) interpolant at the chosen times.
    steps_t, steps_y = sol.ts, sol.ys
    valid = jnp.isfinite(steps_t) & (steps_t <= t_stop)
    steps_t = jnp.concatenate([t0[None], jnp.where(valid, steps_t, t_stop)])
    steps_y = jnp.concatenate([x0[None], jnp.where(valid[:, None], steps_y, x_end)])
    seg = jnp.linalg.norm(jnp.diff(steps_y, axis=0), axis=-1)
    seg = jnp.where(jnp.isfinite(seg), seg, 0.0)
    s = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(seg)])
    length = s[-1]
    uniform_t = jnp.linspace(t0, t_stop, n_save, dtype=dtype)
    arc_t = jnp.interp(jnp.linspace(0.0, 1.0, n_save, dtype=dtype) * length, s, steps_t)
    ts = jnp.where(by_arclength & (length > 0), arc_t, uniform_t)
    ts = ts.at[0].set(t0).at[-1].set(t_stop)
    xs = jax.vmap(sol.evaluate)(ts).at[0].set(x0).at[-1].set(x_end)

    _, dist = fixed_point_distance(lambda z: fun(t_stop, z), x_end)
    finite = jnp.all(jnp.isfinite(x_end))
    converged = (dist <= tol * (jnp.linalg.norm(x_end) + scale)) & finite
    return Relaxation(
        ts=ts,
        xs=xs,
        x_end=x_end,
        duration=t_stop - t0,
        length=length,
        distance=dist,
        converged=converged,
        result=_to_results(sol.result, converged, finite),
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
    tol = arr(root_eps if tol is None else tol)
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
    r"""Follow the deterministic flow `ẋ = f(t, x)` from `x_start` until it settles at a fixed
    point (or `t_max` passes: then `converged` is false and `result` is
    `nj.RESULTS.not_settled`).

    **Arguments:**

    - `sde`: the system, an `nj.SDE` (only its drift is used).
    - `x_start`: the initial state, shape `(d,)`.
    - `args`: passed to the drift.
    - `t0`: the initial time (the drift may depend on time; the stop test evaluates it at
      the current time).
    - `t_max`: the longest duration. Default: `10⁴/‖∂f/∂x(x_start)‖₂`, ten thousand of the
      fastest time scales at the start.
    - `tol`, `scale`: the flow stops at the end of the first step where

      $$\frac{|f(x)|}{σ_{\min}(∂f/∂x)} \le \mathrm{tol}\,(|x| + \mathrm{scale}),$$

      i.e. where the fixed point nearby is within a relative distance `tol` (the same test
      as `nj.classify_fixed_point`). Default `tol = √ε` (1.5e-8 in float64, 3.5e-4 in
      float32), `scale = 1`. Near an attractor the distance decays exponentially, so a
      smaller `tol` costs little; a non-hyperbolic attractor (`f = −x³`) is approached only
      algebraically and may not be reached before `t_max`.
    - `n_save`: the number of points returned.
    - `spacing`: `"arclength"` (default): the points are (nearly) equidistant along the
      trajectory,
      as a geometric (arclength-parametrised) path's nodes are, so the trajectory plots well
      and can be appended to one; `"time"`: equidistant in time.
    - `rtol`, `atol`: tolerances of the adaptive step-size controller. Defaults `√ε` and
      `rtol·δ₀`, `δ₀` the start's distance bound `|f|/σ_min(∂f/∂x)` clipped to
      `[ε·scale, scale]`: a start a small step `δ₀` off a saddle is then followed to
      relative accuracy while the displacement is still tiny.
    - `solver`: a diffrax solver (default `diffrax.Tsit5()`; pass e.g.
      `diffrax.Kvaerno5()` for a stiff drift).
    - `max_steps`: the most solver steps. The dense output is stored for all of them.

    **Returns:** an `nj.Relaxation` (`.converged`, and `.result`, an `nj.RESULTS` code:
    `successful` when it settled, `not_settled` when `t_max` passed first,
    `max_steps_reached`, `nonfinite`).

    **How the points are placed.** One integration with a stop condition (a diffrax
    `Event`), saving every step and the dense output. The arclength is measured along the
    chords between the solver's steps and interpolated linearly in time between them; that
    fixes the times of `n_save` points nearly equidistant in arclength (gaps within a few
    percent of each other at the default tolerances; the solver's steps are longer than
    the gaps), and the points are evaluated there on the 4th-order dense interpolant, so
    they lie on the trajectory to the integration's accuracy. The first point is
    `x_start` exactly, the last the stop point.

    `jit`- and `vmap`-able (over `x_start`, `args`, `t0`).
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
      round-off `ε|x|`, and above the stop tolerance `tol`.
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
