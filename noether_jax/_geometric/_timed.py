"""`fixed_time_path`: the fixed-time most likely path on the times of a given path."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float

from .._sde import (
    SDE,
    as_count,
    check_sde_calls,
    float_args_as_arrays,
    is_concrete,
)
from .._solution import PathSolution, finish_solution, raise_if_failed
from .._solver import solve_on_times, solver_for, warm_started
from ._gmam import geometric_action_of


def polish_tol(dtype) -> float:
    """The default `rtol`/`atol` of `fixed_time_path`: tighter than a solve's usual `1e-8`
    (float64) / `1e-5` (float32), so that the truncated-Newton solver (`nj.NewtonCG`,
    linear-to-superlinear final convergence) stops with the charges at round-off too;
    `nj.BlockNewton` converges quadratically and takes at most one step more."""
    return 1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-6


def _time_steps_ok(ts: Float[Array, " n"]) -> Bool[Array, ""]:
    """Finite and strictly monotone (increasing or decreasing) times."""
    dt = jnp.diff(ts)
    return jnp.all(jnp.isfinite(ts)) & (jnp.all(dt > 0) | jnp.all(dt < 0))


def _check_times(ts) -> None:
    """Refuse, at trace time, times that are not finite and strictly monotone (when their
    values are known; under `jit` the result code says `invalid_input`)."""
    if not is_concrete(ts):
        return
    t = jnp.asarray(ts)
    bad = ~jnp.isfinite(t)
    if bool(jnp.any(bad)):
        i = int(jnp.argmax(bad))
        raise ValueError(
            f"`sol.ts` must be finite, but `sol.ts[{i}]` is {t[i]}. A geometric path "
            "takes an infinite time on a segment whose midpoint is a fixed point of the drift "
            "(`f = 0` there: the segment's duration `|Δφ|/|f|` is infinite), and no fixed-time "
            "path has that time grid. Solve between points off the fixed point instead, e.g. "
            "split the transition at the fixed point (`x0` → fixed point and fixed point → "
            "`x1`: a fixed point as an endpoint is fine) or change `n_nodes` so that no "
            "segment is centred on it."
        )
    dt = jnp.diff(t)
    if not bool(jnp.all(dt > 0) | jnp.all(dt < 0)):
        i = int(jnp.argmax(dt <= 0)) if bool(dt[0] > 0) else int(jnp.argmax(dt >= 0))
        raise ValueError(
            "`sol.ts` must be strictly monotone (a fixed-time path needs a positive duration "
            f"on every step), but `sol.ts[{i}] = {t[i]}` and `sol.ts[{i + 1}] = {t[i + 1]}`. "
            "A geometric path has a zero duration on a segment of zero length: remove "
            "repeated nodes, or solve again with fewer `n_nodes`."
        )


@eqx.filter_jit
def _fixed_time_path(sde, ts, xs, args, action, solver, max_steps) -> PathSolution:
    dtype = xs.dtype
    n = xs.shape[0]
    x0, x1 = xs[0], xs[-1]
    finite_in = _time_steps_ok(ts) & jnp.all(jnp.isfinite(xs))
    # Keep bad inputs out of the solver: it then starts (and stops) from a harmless problem.
    safe = lambda a, b: jnp.where(finite_in, a, b)
    ts_safe = safe(ts, jnp.linspace(0.0, 1.0, n, dtype=dtype))
    x0_safe, x1_safe = safe(x0, 0.0), safe(x1, 0.0)
    # The input's interior nodes are only the warm start: the optimum does not depend on it.
    y0 = jax.lax.stop_gradient(safe(xs[1:-1], 0.0))

    out, S, result, stats, spd = solve_on_times(
        action, sde, ts, ts_safe, x0, x1, x0_safe, x1_safe, y0, args, solver, max_steps
    )

    stop = jax.lax.stop_gradient
    xs_in, xs_out = stop(xs), stop(out)
    stats = dict(
        stats,
        geometric_action_in=geometric_action_of(sde, xs_in, stop(args)),
        geometric_action_out=geometric_action_of(sde, xs_out, stop(args)),
        shift=jnp.max(jnp.abs(xs_out - xs_in)),
    )
    return finish_solution(
        ts, out, S, result, stats, finite_in=finite_in, spd=spd, throw=False,
        functional=action,
    )


def fixed_time_path(
    sde: SDE,
    sol: PathSolution,
    args: Any = None,
    *,
    solver: optx.AbstractMinimiser | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
    throw: bool = True,
) -> PathSolution:
    r"""The fixed-time most likely path on the times of `sol`: one fixed-time solve on
    exactly the nodes' times `sol.ts`, between the same endpoints, warm-started from
    `sol.xs`. Along its result the Noether charges of exact (affine) symmetries are constant
    to round-off; along a geometric path (`nj.minimize_geometric_action`) only to `O(h²)`.

    **Arguments:**

    - `sde`: the `nj.SDE` of the path.
    - `sol`: an `nj.PathSolution`, typically from `nj.minimize_geometric_action` (or any
      with finite, strictly monotone `ts`, starting anywhere). Its functional
      (`sol.functional`) is the one minimised.
    - `args`: passed to the drift and diffusion, as for the solve that produced `sol`.
    - `solver`: as for `nj.minimize_action`: default `nj.BlockNewton()` for `d ≤ 8`,
      `nj.NewtonCG()` above.
    - `rtol`, `atol`: tolerances of the default solver. Default `1e-12` (float64), `1e-6`
      (float32): tighter than `nj.minimize_action`'s `1e-8`/`1e-5`, because the charges are
      only as constant as the path is converged (with `nj.NewtonCG` at `1e-8` a charge
      varies by `1e-11`–`1e-9` at `d = 10`–`256`, at `1e-12` by `1e-15`). Give them to
      the solver instead when you pass one.
    - `max_steps`: maximum number of solver iterations.
    - `throw`: raise an error if the solve fails (`throw=False`: read `result`,
      `converged`).

    **Returns:** an `nj.PathSolution` with `ts` equal to `sol.ts`, `xs[0]` and `xs[-1]`
    equal to `sol.xs[0]` and `sol.xs[-1]`, `action` the fixed-time discrete action
    `S_h` on these times, and `stats`: the solver's (`num_steps`, `grad_norm`, ...) plus
    `geometric_action_in` and `geometric_action_out`, the discrete geometric
    (Freidlin–Wentzell) action `Ŝ_h` (`nj.geometric_action_of`) of `sol.xs` and of the
    result, and `shift`, the largest change of a node (`O(h²)` for a geometric input).

    **Why the charges become exact.** The fixed-time midpoint action
    `S_h = Σ_i |h_i| L(x_{i+½}, Δx_i/h_i)` is a discrete Lagrangian: its stationary points
    satisfy the discrete Euler–Lagrange equations `D₂L_d(x_{i−1}, x_i) + D₁L_d(x_i, x_{i+1})
    = 0` at every interior node, which makes the discretisation a variational integrator,
    and the discrete Noether theorem holds for the momenta of its discrete Legendre
    transform (`nj.momentum`): the charge `p_i·ξ(x_i)` of an affine symmetry `ξ` is the
    same on both sides of every node, hence constant to round-off. A geometric solution
    minimises `Ŝ_h` only in the normal displacements of its nodes (their places along the
    curve are set by a monitor), so the tangential components of `∇Ŝ_h` do not vanish:
    the discrete Euler–Lagrange equations hold only to `O(h²)`, and so does conservation
    (e.g. `3.7e-4` at 41 nodes, `d = 4`). Solving the fixed-time problem on the
    geometric path's own times makes all components of the gradient vanish.

    **Why `Ŝ_h` does not rise.** Each segment's geometric action is its fixed-time action
    minimised over the segment's duration, and the geometric times `h_i = |Δφ_i|/|f(m_i)|`
    are those minimisers: `Ŝ_h(x) = min_h S_h(x; h)`. Hence, with `x_g` the geometric
    path on its times `h_g` and `x_f` the result,
    `Ŝ_h(x_f) ≤ S_h(x_f; h_g) ≤ S_h(x_g; h_g) = Ŝ_h(x_g)`. The change is `O(h⁴)` (e.g.
    `−3.4e-8` at 41 nodes, `−2.1e-9` at 81): the accuracy of the path, `O(h²)`, is
    unchanged, and `sol.action` keeps its meaning. Compare
    `stats["geometric_action_out"]` with `stats["geometric_action_in"]`.

    **Once only.** The result's `ts` are the input's: recomputing physical times from the
    new nodes (`nj.physical_times`) brings the `O(h²)` variation of the charges back, and
    repeating the solve on such re-timed nodes drifts away from the geometric solution
    (the node spacing is no longer set by the monitor) without improving anything.

    **Cost.** One fixed-time solve from a path that is already `O(h²)` close: 3–10 Newton
    steps, a small fraction of the geometric solve (which alternates solves and
    redistributions): at `d = 256`, 41 nodes, 0.07 s once compiled (the compilation, about
    as long as the geometric solve's, dominates a single call). It is differentiable
    (implicitly, through the optimum, as `nj.minimize_action`) with respect to the endpoints,
    `args` and arrays in `sde`, and works under `jit` and `vmap` (with `throw=False`; bad times
    are then reported as `invalid_input`).

    **Example.**

    ```python
    geo = nj.minimize_geometric_action(sde, x0, x1, args=args, n_nodes=41)
    fixed = nj.fixed_time_path(sde, geo, args)
    rep = nj.charge_report(sde, fixed, generators, args=args)
    print(rep)    # an exact rotation's charge: relative variation ~1e-15
    print(fixed.stats["geometric_action_out"] - fixed.stats["geometric_action_in"])  # ≤ 0
    ```
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    if not isinstance(sol, PathSolution):
        raise ValueError(
            "`sol` must be an `nj.PathSolution` (from `nj.minimize_geometric_action` or "
            f"`nj.minimize_action`), got {type(sol).__name__}. For a raw path `(ts, xs)` "
            "call `nj.minimize_action(sde, xs[0], xs[-1], ts[0], ts[-1], grid=..., "
            "init=xs)` instead."
        )
    xs = jnp.asarray(sol.xs)
    ts = jnp.asarray(sol.ts)
    if xs.ndim != 2 or not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(
            f"`sol.xs` must be a real array of shape (n_nodes, d), got shape {xs.shape} and "
            f"dtype {xs.dtype}."
        )
    n, d = xs.shape
    if n < 3:
        raise ValueError(
            f"`sol` must have at least 3 nodes (a free interior node), got {n}."
        )
    if ts.shape != (n,):
        raise ValueError(
            f"`sol.ts` must have shape ({n},), one time per node of `sol.xs` "
            f"(shape {xs.shape}); got {ts.shape}."
        )
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        raise ValueError(f"`sol.ts` must be real floats, got dtype {ts.dtype}.")
    dtype = xs.dtype
    ts = ts.astype(dtype)
    _check_times(ts)
    args = float_args_as_arrays(args, dtype)
    check_sde_calls(sde, ts[0], xs[0], args)
    max_steps = as_count(max_steps, "max_steps")
    if max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")
    if solver is None:  # the tighter default tolerance; given ones go to the check below
        tol = polish_tol(dtype)
        rtol, atol = (tol if rtol is None else rtol), (tol if atol is None else atol)
        # Warm start: the geometric path is `O(h²)` from the optimum.
        solver = warm_started(solver_for(d, None, rtol, atol, "fixed_time_path"))
    else:
        solver = solver_for(d, solver, rtol, atol, "fixed_time_path")
    # `throw` is applied outside the compiled solve: one program for both.
    out = _fixed_time_path(sde, ts, xs, args, sol.functional, solver, max_steps)
    return raise_if_failed(out) if throw else out
