"""`minimize_action`: the most likely path between two states in a fixed time."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float

from ._action import AbstractAction, FreidlinWentzell
from ._mesh import AdaptiveGrid, Refine, halve_steps, interpolate_path
from ._sde import (
    SDE,
    as_endpoints,
    as_time,
    check_init_and_nodes,
    check_sde_calls,
    float_args_as_arrays,
    as_grid,
)
from ._geometric._candidates import concrete, route_candidates
from ._problem import FixedTimeProblem
from ._results import RESULTS
from ._solution import PathSolution, finish_solution, raise_if_failed
from ._solver import (
    check_lanes, provisional, solve_on_times, solve_problem, solver_for, warm_started,
)
from ._solver import stop_gradient_arrays as _stop



def _concrete_true(x) -> bool:
    # Under jit even operations on constants give tracers: then the check is left to the
    # result code (`finite_in` and `grid_ok` in `_minimize_action`).
    try:
        return bool(x)
    except jax.errors.ConcretizationTypeError:
        return False


def default_n_nodes() -> int:
    return 101


REFINE_N_NODES = 801


def _adapt_grid(adaptive, sde, x0, x1, t0, t1, grid, args, y0, action, solver, lanes=None):
    """Solve–redistribute rounds; returns the final grid and the path interpolated on it."""
    sde, x0, x1, t0, t1, args, y0 = _stop((sde, x0, x1, t0, t1, args, y0))

    def one_round(_, carry):
        s, y = carry
        ts = t0 + s * (t1 - t0)
        problem = FixedTimeProblem(action, sde, ts, x0, x1, args)
        y, _, _ = solve_problem(
            problem, solver, y, max_steps=adaptive.round_steps, certify=False, lanes=lanes
        )
        xs = jnp.concatenate([x0[None], y, x1[None]], axis=0)
        fs = jax.vmap(lambda t, x: sde.f(t, x, args))(ts, xs)
        s_new = adaptive.redistribute(s, xs, fs)
        y_new = interpolate_path(s_new, s, xs)[1:-1]
        ok = (
            jnp.all(jnp.isfinite(s_new))
            & jnp.all(jnp.diff(s_new) > 0)
            & jnp.all(jnp.isfinite(y_new))
        )
        return jnp.where(ok, s_new, s), jnp.where(ok, y_new, carry[1])

    grid, y0 = jax.lax.fori_loop(0, adaptive.rounds, one_round, (grid, y0))
    return jax.lax.stop_gradient(grid), jax.lax.stop_gradient(y0)


def _refine_levels(refine: Refine, sde, x0, x1, t0, t1, n, args, y0, action, solver, max_steps,
                   lanes=None):
    """The coarse levels of `nj.Refine`: returns the finest grid, the warm start on it and
    the action of the last coarse level (for the error estimate)."""
    k = 2 ** (refine.levels - 1)
    dtype = x0.dtype
    # The coarse levels only choose the grid and the warm start: no derivatives flow there.
    sde, x0, x1, t0, t1, args, y0 = _stop((sde, x0, x1, t0, t1, args, y0))
    xs = jnp.concatenate([x0[None], y0, x1[None]], axis=0)
    # The initial path is on the uniform fine grid; the coarse nodes are among its nodes.
    y = xs[::k][1:-1]
    s = jnp.linspace(0.0, 1.0, refine.coarse_nodes(n), dtype=dtype)
    if refine.adapt is not None:
        s, y = _adapt_grid(
            refine.adapt, sde, x0, x1, t0, t1, s, args, y, action, solver, lanes
        )
    S_coarse = None
    for level in range(refine.levels - 1):
        problem = FixedTimeProblem(action, sde, t0 + s * (t1 - t0), x0, x1, args)
        # Every level but the coarsest starts from the previous one's path; only the last
        # (outside this loop) is certified.
        level_solver = provisional(solver if level == 0 else warm_started(solver))
        y, _, _ = solve_problem(
            problem, level_solver, y, max_steps=max_steps, certify=False, lanes=lanes
        )
        S_coarse = problem.value(y)
        xs = jnp.concatenate([x0[None], y, x1[None]], axis=0)
        s_fine, xs_cub = halve_steps(s, xs, cubic=True)
        xs_lin = interpolate_path(s_fine, s, xs)
        # Cubic interpolation is the better start on smooth paths; near a steep feature
        # (or a singular drift) it can overshoot, so the start of lower action is kept.
        fine = FixedTimeProblem(action, sde, t0 + s_fine * (t1 - t0), x0, x1, args)
        S_lin, S_cub = fine.value(xs_lin[1:-1]), fine.value(xs_cub[1:-1])
        s = s_fine
        use_cub = jnp.isfinite(S_cub) & ~(S_lin < S_cub)
        y = jnp.where(use_cub, xs_cub, xs_lin)[1:-1]
    stop = jax.lax.stop_gradient
    return stop(s), stop(y), stop(S_coarse)


@eqx.filter_jit
def _minimize_action(
    sde, x0, x1, t0, t1, grid, args, init, action, solver, max_steps, throw, adaptive=None,
    lanes=None,
) -> PathSolution:
    dtype = x0.dtype
    ts = t0 + grid * (t1 - t0)
    n = grid.shape[0]
    if init is None:
        y0 = x0[None] + grid[1:-1, None] * (x1 - x0)[None]
    else:
        y0 = init[1:-1].astype(dtype)

    finite_in = (
        jnp.all(jnp.isfinite(x0))
        & jnp.all(jnp.isfinite(x1))
        & jnp.all(jnp.isfinite(ts))
        & jnp.all(jnp.isfinite(y0))
        & (t0 != t1)
    )
    grid_ok = (
        (grid[0] == 0) & (grid[-1] == 1) & jnp.all(jnp.diff(grid) > 0)
    )
    # Keep bad inputs out of the solver: it then starts (and stops) from a harmless problem.
    safe = lambda a, b: jnp.where(finite_in & grid_ok, a, b)
    ts_safe = safe(ts, jnp.linspace(0.0, 1.0, n, dtype=dtype))
    x0_safe, x1_safe = safe(x0, 0.0), safe(x1, 0.0)
    # The solution does not depend on where the solver starts.
    y0_safe = jax.lax.stop_gradient(safe(y0, 0.0))
    S_coarse = None
    if isinstance(adaptive, Refine):
        grid, y0_safe, S_coarse = _refine_levels(
            adaptive, sde, x0_safe, x1_safe, ts_safe[0], ts_safe[-1], n, args, y0_safe,
            action, solver, max_steps, lanes,
        )
        ts = t0 + grid * (t1 - t0)
        ts_safe = safe(ts, jnp.linspace(0.0, 1.0, n, dtype=dtype))
    elif adaptive is not None:
        t0_safe, t1_safe = ts_safe[0], ts_safe[-1]
        grid, y0_safe = _adapt_grid(
            adaptive, sde, x0_safe, x1_safe, t0_safe, t1_safe, grid, args, y0_safe,
            action, solver, lanes,
        )
        ts = t0 + grid * (t1 - t0)
        ts_safe = safe(ts, jnp.linspace(0.0, 1.0, n, dtype=dtype))

    if isinstance(adaptive, Refine):  # warm-started from the coarser levels
        solver = warm_started(solver)
    xs, S, result, stats, spd = solve_on_times(
        action, sde, ts, ts_safe, x0, x1, x0_safe, x1_safe, y0_safe, args, solver, max_steps,
        lanes,
    )

    if S_coarse is not None:
        # Second order on a fixed node density: S_2h − S_h ≈ 3 (S_h − S).
        S_fix = jax.lax.stop_gradient(S)
        err = jnp.abs(S_fix - S_coarse) / 3
        stats = dict(stats, error_estimate=err, action_extrapolated=S_fix - (S_coarse - S_fix) / 3)
        coarse = ~(err <= adaptive.atol + adaptive.rtol * jnp.abs(S_fix))
        result = RESULTS.where(
            (result == RESULTS.successful) & coarse, RESULTS.grid_too_coarse, result
        )

    return finish_solution(
        ts, xs, S, result, stats,
        finite_in=finite_in & grid_ok, spd=spd, throw=throw, functional=action,
    )


def minimize_action(
    sde: SDE,
    x0: ArrayLike,
    x1: ArrayLike,
    t0: ArrayLike,
    t1: ArrayLike,
    *,
    n_nodes: int | None = None,
    grid: ArrayLike | None = None,
    grid_controller: AdaptiveGrid | Refine | None = None,
    args: Any = None,
    init: ArrayLike | None = None,
    action: AbstractAction | None = None,
    solver: optx.AbstractMinimiser | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
    candidates: str | ArrayLike | None = "auto",
    lanes: int | None = None,
    throw: bool = True,
) -> PathSolution:
    r"""The most likely path from `x(t0) = x0` to `x(t1) = x1`: the minimiser of the
    discrete action (midpoint rule, second order, see `nj.AbstractAction`).

    **Arguments:**

    - `sde`: the system, an `nj.SDE`.
    - `x0`, `x1`: the endpoints, arrays of shape `(d,)`.
    - `t0`, `t1`: the times. `t1 < t0` describes a process run backwards in time (as the
      samplers of diffusion models run); the action integrates over `|dt|`.
    - `n_nodes`: number of time nodes including both endpoints (at least 3), on a uniform
      grid unless `grid` says otherwise.
    - `grid`: optional increasing array of node positions in `[0, 1]` (first 0, last 1), for a
      non-uniform grid `t_i = t0 + grid_i (t1 − t0)`; it sets `n_nodes`.
    - `grid_controller`: how the grid is chosen from the path, apart from any grid array:
      `nj.AdaptiveGrid()`: `n_nodes` nodes redistributed to where the path moves and the
      drift changes (long durations, steep drifts; see its docstring). Or `nj.Refine()`:
      a sequence of nested grids (the coarsest adapted to the path), each warm-started from
      the previous one, with an estimate of the discretisation error; `n_nodes` (default 801)
      is the finest.
    - **Default** (none of `n_nodes`, `grid`, `grid_controller`, `init` given):
      `nj.Refine()`, i.e. 201 → 401 →
      801 nodes, the coarsest redistributed to the path; the call fails with
      `grid_too_coarse` unless the estimated error of the action is below `1e-4` relative
      (`sol.stats["error_estimate"]`). With `init`, the default is `n_nodes = init`'s length
      on a uniform grid. Give `n_nodes` for a fixed uniform grid (one solve: the fastest
      choice in large batches once you know what resolves your problem).
    - `args`: passed to the drift and diffusion as `drift(t, x, args)`; any pytree
      (parameters, neural-network weights). Differentiable. Python floats in it are turned
      into arrays, so a new value does not recompile.
    - `init`: initial path, shape `(n_nodes, d)` (its endpoints are replaced by `x0`, `x1`).
      Default: the straight line.
    - `action`: `nj.FreidlinWentzell()` (default) or `nj.OnsagerMachlup(...)`.
    - `solver`: `nj.BlockNewton()` (default for `d ≤ 8`), `nj.NewtonCG()` (matrix-free,
      default above), `nj.LBFGS()`, or any `optx.AbstractMinimiser` (`optx.BFGS(...)`,
      `optx.NonlinearCG(...)`, `optx.OptaxMinimiser(optax.adam(...), ...)`): the solve is
      `optx.minimise` on an `nj.AbstractPathProblem`, whatever the solver. A successful
      stop of a solver that does not look for negative curvature itself (all but
      `nj.BlockNewton` and `nj.NewtonCG`) is tested for a saddle point of the action
      (Hessian positive definite for `d ≤ 64`, a Krylov check for negative curvature
      above), reported as `RESULTS.saddle_point`.
    - `rtol`, `atol`: tolerances of the default solver (see `nj.BlockNewton`: a Newton
      decrement `≤ atol + rtol·|S|` and an undamped Newton step `≤ rtol ×` the path's
      extent, invariant to the grid and to the scale of the state). Give them to the
      solver instead when you pass one.
    - `max_steps`: maximum number of solver iterations.
    - `candidates`: first guesses for the *global* minimum. In a multistable system the
      most likely path of a long duration waits at attractors and climbs over saddles; the
      solver finds the local minimum next to its first guess, so several routes are tried
      and the lowest converged one is returned. `"auto"` (default): at the default call
      (none of `init`, `n_nodes`, `grid`, `grid_controller` given) with concrete inputs and
      an autonomous drift, `nj.route_candidates` builds the straight line plus one path
      through the attractors of the region per plausible route (waiting at intermediate
      attractors); with at most one attractor there only the straight line is solved (the
      search costs one `nj.find_fixed_points` call). `"routes"`: the same search with any
      grid. `"straight"` or `None`: the straight line (or `init`) only. An array
      `(c, n_nodes, d)`: these initial paths (e.g. from `nj.route_candidates`, the way to
      use the search under `jit`). With known values the candidates are solved one by
      one by the compiled solver of a single call (under `jit`/`vmap`, in one `jax.vmap`);
      `sol.stats` gets `candidate_actions`, `candidate_converged` (one entry per candidate,
      candidate 0 the straight line) and `candidate_index` (the one returned). Under `jit`/`vmap`
      `"auto"` is the straight line.
    - `lanes`: how a `jax.vmap` of this call (also through `nj.solve_batch`) schedules its
      solves. `None` (default): every element in lockstep, so the batch runs as many
      Newton steps as its slowest element. An int `L`: `L` elements at a time, each lane
      taking the next element as soon as its own stops, so the batch pays about its *mean*
      step count (plus one tail `L` wide). Every element gets its own solve's answer,
      result code, stats and derivatives (implicit function theorem, both modes); only
      the order changes. On a CPU, `L = 64–128` for batches of hundreds or more:
      Maier–Stein near the saddle, B = 1024, nested grids, 1.4–1.9× faster
      (`benchmarks/RESULTS.md`). On a GPU keep `L` in the thousands (or `None`): the
      vector width is what a GPU is fast at. A call that is not batched ignores it; so
      does one whose drift closes over a value traced by an outer `jit` (lockstep then).
    - `throw`: raise an error if the solve fails. Use `throw=False` in batches to get each
      element's own `result` and `converged`.

    **Returns:** an `nj.PathSolution`.

    **Choosing `n_nodes`.** The error of the action is `O(h²)` in the step `h = |t1 − t0| /
    (n_nodes − 1)`. Resolve the fastest time scale of the drift (`h |∂f/∂x| ≲ 0.1–0.3`
    along the path) *and* the steepest spatial feature the path crosses (the path should move
    by less than the drift's length scale per step). For long durations `T ≫` relaxation time
    most nodes sit near attractors; the path crosses a steep nonlinearity (e.g. a sigmoid of
    width `w`) in a short time, so refine until the action stops changing (halve `h` and
    compare: the difference shrinks 4× per halving once resolved), or pass a `grid` that is
    denser where the path moves. A coarse solution, interpolated, is a good `init` for a finer
    grid.

    **Differentiation, in both modes.** `jax.grad`, `jax.jvp`, `jax.jacfwd`, `jax.jacrev`
    and `jax.hessian` of `sol.action` and `sol.xs` with respect to `args`, `x0`, `x1`, `t0`,
    `t1` (and arrays held in `sde`) work under `jit` and `vmap`. The path is differentiated
    implicitly through the optimum (`optx.ImplicitAdjoint`: a custom JVP, transposed for
    reverse mode) with a structured solve of the block-tridiagonal Hessian
    (`nj.BlockCholesky`; conjugate gradients for `d > 64`). The first derivative of the
    action uses the envelope theorem (`∂S/∂θ` at the fixed optimal path, no linear
    solve); its second derivatives follow the path, so they are exact too.

    **Batches.** Everything is `jax.vmap`-able over `x0`, `x1`, `t0`, `t1`, `args`, `init`.
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    x0, x1, dtype = as_endpoints(x0, x1)
    d = x0.shape[0]
    t0 = as_time(t0, "t0").astype(dtype)
    t1 = as_time(t1, "t1").astype(dtype)
    if _concrete_true(t0 == t1):
        raise ValueError("`t0` and `t1` must differ: the path needs a duration.")

    if isinstance(grid, (AdaptiveGrid, Refine)):
        raise ValueError(
            f"`grid` takes an array of node positions; pass `{type(grid).__name__}` as "
            "`grid_controller=` instead."
        )
    if grid_controller is not None and not isinstance(grid_controller, (AdaptiveGrid, Refine)):
        raise ValueError(
            "`grid_controller` must be `nj.Refine(...)` or `nj.AdaptiveGrid(...)`, got "
            f"{grid_controller!r}."
        )
    if grid_controller is not None and grid is not None:
        raise ValueError("Give either a `grid` array or a `grid_controller`, not both.")
    at_defaults = (
        grid is None and n_nodes is None and init is None and grid_controller is None
    )
    if at_defaults:
        grid_controller = Refine()
    paths = None
    if isinstance(candidates, str) and candidates not in ("auto", "routes", "straight"):
        raise ValueError(
            "`candidates` must be 'auto', 'routes', 'straight', None or an array of initial "
            f"paths (c, n_nodes, d); got {candidates!r}."
        )
    if candidates is not None and not isinstance(candidates, str):
        if init is not None:
            raise ValueError("Give either `init` or `candidates` (initial paths), not both.")
        paths = jnp.asarray(candidates)
        if paths.ndim != 3 or paths.shape[-1] != d or paths.shape[0] < 1:
            raise ValueError(
                f"`candidates` must have shape (c, n_nodes, {d}), got {paths.shape}."
            )
        if not jnp.issubdtype(paths.dtype, jnp.floating):
            raise ValueError(f"`candidates` must be real floats, got dtype {paths.dtype}.")
        init = paths[0]
    adaptive = grid_controller
    if adaptive is not None:
        if isinstance(adaptive, Refine) and n_nodes is None:
            n_nodes = REFINE_N_NODES if init is None else None
    if grid is not None:
        grid, n_nodes = as_grid(grid, n_nodes, dtype)
    init, n_nodes = check_init_and_nodes(init, n_nodes, d, default_n_nodes())
    if isinstance(adaptive, Refine):
        adaptive.coarse_nodes(n_nodes)
    if grid is None:
        grid = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype)

    args = float_args_as_arrays(args, dtype)
    check_sde_calls(sde, t0, x0, args)

    if action is None:
        action = FreidlinWentzell()
    if not isinstance(action, AbstractAction):
        raise ValueError(f"`action` must be an `nj.AbstractAction`, got {action!r}.")
    solver = solver_for(d, solver, rtol, atol, "minimize_action")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")
    check_lanes(lanes, "minimize_action")

    search = isinstance(candidates, str) and (
        (candidates == "auto" and at_defaults) or candidates == "routes"
    )
    if search and init is None and concrete(x0, x1, t0, t1, args):
        paths, _ = route_candidates(sde, x0, x1, t0, t1, n_nodes=n_nodes, args=args)
    # `throw` is applied outside the compiled solve, so that raising and non-raising calls
    # (and every candidate of `_best_of`) share one compiled program per problem shape.
    if paths is None or paths.shape[0] == 1:
        sol = _minimize_action(
            sde, x0, x1, t0, t1, grid, args, init, action, solver, max_steps, False, adaptive,
            lanes,
        )
        return raise_if_failed(sol) if throw else sol
    return _best_of(
        paths.astype(dtype), sde, x0, x1, t0, t1, grid, args, action, solver, max_steps,
        throw, adaptive, lanes,
    )


def _best_of(paths, sde, x0, x1, t0, t1, grid, args, action, solver, max_steps, throw,
             adaptive, lanes=None) -> PathSolution:
    """Solve from each initial path and keep the lowest converged action.

    With known values (no `jit`/`vmap` around the call) the candidates are solved one by
    one by the same compiled solver as a single-path call: a batched copy would cost a
    second compilation (and the batching of the solver's trace) for a handful of paths.
    Under a transformation they are one `vmap`."""
    solve = lambda p: _minimize_action(
        sde, x0, x1, t0, t1, grid, args, p, action, solver, max_steps, False, adaptive, lanes
    )

    def best(actions, converged):
        values = jnp.where(converged, actions, jnp.inf)
        j = jnp.argmin(values)
        # None converged: report the straight line's (failed) solve.
        return jnp.where(jnp.isfinite(values[j]), j, 0)

    if concrete(paths, sde, x0, x1, t0, t1, grid, args):
        sols = [solve(p) for p in paths]
        actions = jnp.stack([s.action for s in sols])
        converged = jnp.stack([s.converged for s in sols])
        j = best(actions, converged)
        sol = sols[int(j)]
    else:
        batch = jax.vmap(solve)(paths)
        actions, converged = batch.action, batch.converged
        j = best(actions, converged)
        sol = jax.tree.map(lambda a: a[j], batch)
    # A descent only lowers a candidate's action: one that stopped unconverged below the
    # chosen minimum leads to a lower one, so the chosen path is not the global minimum.
    # (Below by more than round-off and the chosen solve's discretisation error estimate:
    # a candidate stopped in the same basin is no evidence of another minimum.)
    S_j = actions[j]
    margin = jnp.sqrt(jnp.finfo(S_j.dtype).eps) * jnp.abs(S_j)
    if "error_estimate" in sol.stats:
        margin = margin + sol.stats["error_estimate"]
    undercut = jnp.any(~converged & (actions < S_j - margin))
    result = RESULTS.where(
        sol.converged & undercut, RESULTS.lower_route_unconverged, sol.result
    )
    sol = eqx.tree_at(
        lambda s: (s.result, s.converged), sol, (result, result == RESULTS.successful)
    )
    stats = dict(
        sol.stats,
        candidate_actions=jax.lax.stop_gradient(actions),
        candidate_converged=converged,
        candidate_index=j,
    )
    sol = eqx.tree_at(lambda s: s.stats, sol, stats)
    return raise_if_failed(sol) if throw else sol
