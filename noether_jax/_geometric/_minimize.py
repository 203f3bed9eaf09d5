"""`minimize_geometric_action`: the most likely transition path over unbounded time."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import ArrayLike

from .._mesh import AdaptiveGrid, Refine
from .._results import RESULTS
from .._sde import (
    SDE,
    as_count,
    args_are_finite,
    as_endpoints,
    check_init_and_nodes,
    check_sde_calls,
    diffusion_is_spd,
    float_args_as_arrays,
)
from .._solution import PathSolution, finish_solution, raise_if_failed
from .._solver import solver_for
from .._solver import stop_gradient_arrays as _stop
from ._gmam import (
    bisect_curve,
    find_curve,
    geometric_action_of,
    physical_times,
    reparametrise,
    solve_geometric,
)

# The finest grid of the default `nj.Refine()`: 101 → 201 → 401 nodes. The coarsest grid
# is solved from the straight line, which on fine grids can take thousands of steps (a
# damped solve creeps along soft modes node by node: the 3-D rotating test family from the
# straight line does not converge in 3000 steps at 201 nodes, and does in 364 at 101); the
# finer grids start from the bisected coarse curve and need few steps. A fixed grid
# (`n_nodes` or `init` given) defaults to 101 nodes.
REFINE_N_NODES = 401
DEFAULT_N_NODES = 101
# A fixed grid finer than this, started from the straight line, is first solved on
# `DEFAULT_N_NODES` nodes (for the same reason: from the straight line, the 3-D rotating
# family needs > 3000 steps at 201 nodes, and Müller–Brown at 801 nodes could fail or not
# depending on a 1e-16 change of the saddle).
PRESOLVE_ABOVE = 151


def geometric_grid(
    init, n_nodes: int | None, grid_controller: Refine | None, d: int, where: str | None = None
) -> tuple[Any, int, Refine | None]:
    """The grid of a geometric solve from the user's options: `(init, n_nodes,
    grid_controller)`. None of the three given: `nj.Refine()` up to `REFINE_N_NODES`; `n_nodes`
    or `init` alone: a fixed grid; `grid_controller` with `n_nodes` as its finest grid
    (default `REFINE_N_NODES`). Shared by every entry point that solves geometric paths
    (`barrier`, `transition_network`), so they resolve their defaults the same way."""
    p = "" if where is None else f"`{where}`: "
    if isinstance(grid_controller, AdaptiveGrid):
        raise ValueError(
            f"{p}`nj.AdaptiveGrid` places the time nodes of `nj.minimize_action`; the nodes of "
            "a geometric solve are always placed along the curve by its own monitor. Pass "
            "`grid_controller=nj.Refine(...)` (error estimate) or `n_nodes` (fixed grid)."
        )
    if grid_controller is not None and not isinstance(grid_controller, Refine):
        raise ValueError(
            f"{p}`grid_controller` must be `nj.Refine(...)` or None, got {grid_controller!r}."
        )
    if grid_controller is None and n_nodes is None and init is None:
        grid_controller = Refine()
    if grid_controller is not None and n_nodes is None and init is None:
        n_nodes = REFINE_N_NODES
    init, n_nodes = check_init_and_nodes(init, n_nodes, d, default=DEFAULT_N_NODES, where=where)
    if grid_controller is not None:
        grid_controller.coarse_nodes(n_nodes)
    return init, n_nodes, grid_controller


def _coarse_levels(refine: Refine, sde, c0, args, solver, rtol, max_steps, max_inner_steps):
    """The coarse grids of `nj.Refine` for a geometric solve: each solved from the previous
    one's curve with a node added in every segment. Returns the warm start of the finest
    grid, the action of each coarse grid, their result codes and summed steps and rounds.
    No derivatives flow here (the finest grid is differentiated on its own)."""
    k = 2 ** (refine.levels - 1)
    # The initial curve is on the finest grid; the coarse nodes are among its nodes.
    c = c0[::k]
    actions, results = [], []
    steps = jnp.array(0, jnp.int32)
    rounds = jnp.array(0, jnp.int32)
    sde_s, args_s = _stop((sde, args))
    for _ in range(refine.levels - 1):
        c, res, st = find_curve(
            sde_s, c, args_s, solver=solver, rtol=rtol, max_steps=max_steps,
            max_inner_steps=max_inner_steps,
        )
        actions.append(geometric_action_of(sde_s, c, args_s))
        results.append(res)
        steps = steps + st["num_steps"]
        rounds = rounds + st["num_rounds"]
        c = bisect_curve(c)
    return jax.lax.stop_gradient(c), jnp.stack(actions), results, steps, rounds


def _error_estimate(S, coarse):
    """`ε ≈ |S_h − S_{2h}|/3` for a second-order action on nested grids. With a third grid
    also `|S_{2h} − S_{4h}|/12` (equal to the first in the asymptotic regime), and the
    larger of the two is taken, so that a grid sequence that is not yet second order (the
    two differences not in the ratio 4) does not understate the error."""
    err = jnp.abs(S - coarse[-1]) / 3
    if coarse.shape[0] >= 2:
        err = jnp.maximum(err, jnp.abs(coarse[-1] - coarse[-2]) / 12)
    return err


@eqx.filter_jit
def _minimize_geometric(sde, x0, x1, args, init, solver, rtol, max_steps, max_inner_steps,
                        throw, refine=None, presolve=None) -> PathSolution:
    dtype = x0.dtype
    finite_in = (
        jnp.all(jnp.isfinite(x0))
        & jnp.all(jnp.isfinite(x1))
        & jnp.all(jnp.isfinite(init))
        & args_are_finite(args)
    )
    # Keep bad inputs out of the solver: it then starts (and stops) from a harmless problem.
    n = init.shape[0]
    line = jnp.linspace(0.0, 1.0, n, dtype=dtype)[:, None] * jnp.ones_like(x0)
    c0 = jnp.where(finite_in, init.at[0].set(x0).at[-1].set(x1), line)
    x0_safe = jnp.where(finite_in, x0, line[0])
    x1_safe = jnp.where(finite_in, x1, line[-1])
    c0 = jax.lax.stop_gradient(c0)
    coarse = None
    presolve_steps = presolve_rounds = jnp.array(0, jnp.int32)
    if presolve is not None and x0.shape[0] > 1:
        # A fine fixed grid from the straight line: solved first on `presolve` nodes (see
        # `PRESOLVE_ABOVE`), whose curve, resampled, is the warm start.
        sde_s, args_s = _stop((sde, args))
        c_coarse, _, st = find_curve(
            sde_s, reparametrise(c0, n=presolve), args_s, solver=solver, rtol=rtol,
            max_steps=max_steps, max_inner_steps=max_inner_steps,
        )
        ok = jnp.all(jnp.isfinite(c_coarse))
        c0 = jax.lax.stop_gradient(jnp.where(ok, reparametrise(c_coarse, n=n), c0))
        presolve_steps, presolve_rounds = st["num_steps"], st["num_rounds"]
    if refine is not None and x0.shape[0] > 1:
        c0, coarse, coarse_results, coarse_steps, coarse_rounds = _coarse_levels(
            refine, sde, c0, args, solver, rtol, max_steps, max_inner_steps
        )
    xs, S, result, stats = solve_geometric(
        sde,
        x0_safe,
        x1_safe,
        c0,
        args,
        solver=solver,
        rtol=rtol,
        max_steps=max_steps,
        max_inner_steps=max_inner_steps,
    )
    xs = xs.at[0].set(x0).at[-1].set(x1)
    ts = physical_times(sde, jax.lax.stop_gradient(xs), args)
    if presolve is not None:
        stats = dict(stats, num_steps=stats["num_steps"] + presolve_steps,
                     num_rounds=stats["num_rounds"] + presolve_rounds)

    if coarse is not None:
        S_fix = jax.lax.stop_gradient(S)
        err = _error_estimate(S_fix, coarse)
        stats = dict(
            stats,
            num_steps=stats["num_steps"] + coarse_steps,
            num_rounds=stats["num_rounds"] + coarse_rounds,
            error_estimate=err,
            action_extrapolated=S_fix + (S_fix - coarse[-1]) / 3,
            level_actions=jnp.concatenate([coarse, S_fix[None]]),
        )
        # A coarse grid that did not converge makes the estimate meaningless: its code is
        # reported (the finest grid's own failure first).
        for res in reversed(coarse_results):
            result = RESULTS.where(result == RESULTS.successful, res, result)
        too_coarse = ~(err <= refine.atol + refine.rtol * jnp.abs(S_fix))
        result = RESULTS.where(
            (result == RESULTS.successful) & too_coarse, RESULTS.grid_too_coarse, result
        )
    elif refine is not None:
        # One dimension: the curve is the segment, exact on any grid.
        zero = jnp.zeros((), dtype)
        S_fix = jax.lax.stop_gradient(S)
        stats = dict(stats, error_estimate=zero, action_extrapolated=S_fix,
                     level_actions=jnp.full((refine.levels,), S_fix))

    spd = diffusion_is_spd(sde, None, xs, args)
    return finish_solution(ts, xs, S, result, stats, finite_in=finite_in, spd=spd, throw=throw)


def minimize_geometric_action(
    sde: SDE,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    n_nodes: int | None = None,
    grid_controller: Refine | None = None,
    args: Any = None,
    init: ArrayLike | None = None,
    solver: optx.AbstractMinimiser | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 1000,
    max_inner_steps: int = 200,
    throw: bool = True,
) -> PathSolution:
    r"""The most likely transition path from `x0` to `x1` over unbounded time: the minimiser
    of the geometric action (docs/conventions.md)

    $$\hat S[φ] = \tfrac12 \int_0^1 \big(|φ'|\,|f(φ)| - ⟨φ', f(φ)⟩\big)\,\mathrm{d}s,
      \qquad ⟨u, v⟩ = u^\top D^{-1} v,$$

    which equals the infimum over durations `T` of the fixed-time minimal action. From a
    stable fixed point `x0`, `Ŝ(x1)` is the quasipotential; to a saddle it is the barrier.

    **Arguments:**

    - `sde`: an *autonomous* `nj.SDE` (the drift and diffusion are evaluated at `t = 0`).
      `D` may be a scalar, a vector (diagonal), a full SPD matrix, or a callable of `x`
      (evaluated at the midpoint of each segment).
    - `x0`, `x1`: the endpoints, arrays of shape `(d,)`. They need not be fixed points.
    - `n_nodes`: number of nodes including both endpoints (at least 3): a fixed grid (no
      error estimate), default 101 when `init` is not given either. A fixed grid of more
      than 151 nodes without `init` is first solved on 101 nodes, whose curve is the warm
      start (from the straight line, damped Newton creeps along soft modes node by node on
      fine grids and can run out of steps). With
      `grid_controller=nj.Refine(...)` it is the finest grid (default 401).
    - `grid_controller`: `nj.Refine(levels, rtol, atol)`: the curve is solved on
      `levels` nested grids, `(n_nodes − 1)/2^{levels−1} + 1` nodes first, each finer grid
      with a node added in every segment of the previous curve (a warm start that needs few
      steps), and the discretisation error of the action is estimated (below). Its
      `adapt` is not used: the nodes of a geometric solve are always placed by the monitor
      (below).
    - **Default** (none of `n_nodes`, `init`, `grid_controller` given): `nj.Refine()`, i.e.
      101 → 201 → 401 nodes; the call fails with `grid_too_coarse` unless the estimated
      error of the action is below `atol + rtol·|Ŝ|` = `1e-8 + 1e-4·|Ŝ|`. Give `n_nodes`
      for a fixed grid (the fastest choice in large batches once you know what resolves
      your problem).
    - `args`: passed to the drift and diffusion; differentiable (see below). Python floats
      in it are turned into arrays, so a new value does not recompile.
    - `init`: initial curve, shape `(n_nodes, d)` (default: the straight segment); with
      `nj.Refine` it is on the finest grid and the coarse grids start from its every
      `2^{levels−1}`-th node. Without `n_nodes` or `grid_controller` it sets a fixed grid
      of its length.
    - `solver`: the solver of each round's normal displacements: `nj.BlockNewton()`
      (default for `d ≤ 9`: blocks of the `d − 1` normal displacements up to 8), `nj.NewtonCG()`
      (default above), `nj.LBFGS()` or any `optx.AbstractMinimiser`, as for
      `nj.minimize_action`. `nj.BlockNewton(escape=...)` sets the relative length of
      steps along negative curvature, which lets a straight initial curve on a symmetry
      axis leave it when the most likely path does (Maier–Stein with `β > 4`). The other
      solvers stop on such an axis; the final curve is then tested and reported as
      `RESULTS.saddle_point` (as for `nj.minimize_action`).
    - `rtol`, `atol`: tolerances of the default solver (as for `nj.minimize_action`); the
      rounds stop when one moves no node by more than `rtol ×` the path's extent, with the
      round's solve converged. Defaults `1e-8` (float64), `1e-5` (float32). Give them to
      the solver instead when you pass one. (The tolerance on the discretisation error is
      `nj.Refine`'s.)
    - `max_steps`: maximum number of solver steps on each grid; `max_inner_steps`: per
      round (enough for a round's solve to converge: redistributing the curve while a
      damped solve is still far from its optimum can freeze crumples into it).
    - `throw`: raise if the solve fails; `throw=False` in batches gives each element its own
      `result` and `converged`.

    **Returns:** an `nj.PathSolution` with

    - `xs`: the curve, `Array[n_nodes, d]` (the finest grid's), nodes equidistributing the
      monitor mass (below);
    - `action`: the discrete geometric action `Ŝ_h` of `xs` (second-order accurate in the
      node spacing);
    - `ts`: a physical time at the nodes, `t_0 = 0` and `dt = |dφ| / |f|` on each segment
      (at its midpoint, norms in the `D⁻¹` metric). This is the duration that minimises the
      fixed-time action of each segment, so `nj.momentum`, `nj.energy`,
      `nj.noether_charge` and `nj.action_of` work on the solution, and the quasi-energy is
      `≈ 0`. The continuum time to leave or reach a fixed point is infinite; the discrete
      one is finite (`ts[-1]` grows like `log n_nodes`); it is `inf` after a segment whose
      midpoint is a fixed point. The nodes are placed along the curve by the monitor, not
      by the fixed-time Euler–Lagrange equations, so the charges of exact symmetries are
      constant along `xs` only to `O(h²)`; `nj.fixed_time_path(sde, sol, args)` (one
      fixed-time solve on these `ts`, 3–10 Newton steps) makes them constant to round-off
      without raising `Ŝ_h`.
    - `stats`: `num_steps` (Newton steps, all grids), `num_rounds` (redistributions, all
      grids), `shift` (the last round's largest node movement), `grad_norm`; with
      `nj.Refine` also `error_estimate` (of `action`, absolute), `action_extrapolated`
      (Richardson, `Ŝ_h + (Ŝ_h − Ŝ_{2h})/3`, usually much closer to the continuum value)
      and `level_actions` (`Ŝ` on each grid, coarsest first).

    **Method.** Midpoint discretisation of `Ŝ` on a polyline; the solver (damped Newton by
    default: block-tridiagonal Hessian, saddle escape) on the normal displacements of the
    nodes, alternating with redistribution of the nodes along the curve, until the curve
    stops moving. The nodes equidistribute the monitor mass `ρ dσ` (`dσ` the arclength in
    the noise metric),

    $$\rho = \sqrt{1 + \frac{F_s^2}{|f|^2 + (F_s/30)^2}},
      \qquad F_s = \frac{1}{5}\,\frac{\int |f|\,\mathrm{d}σ}{\int \mathrm{d}σ}:$$

    uniform in arclength where the drift is not slow, and with spacing `∝ |f|` (the
    distance to the fixed point) near fixed points, down to 1/30 of the fast spacing. A path
    that spirals out of a focus (a rotating drift) is then resolved turn by turn rather
    than cutting across the inner turns (on a grid uniform in arclength the discrete
    minimiser can wind the wrong number of times: errors of percents that do not go away
    as `h²`), and a slow approach on the scale of its own distance. The action is
    gauge-safe: no NaN where the curve passes through a fixed point (`|f| = 0`) or has
    zero-length segments.

    **Error estimate.** The monitor is a fixed function of the curve, so on nested grids
    the action converges at second order, `Ŝ_h = Ŝ + C h² + …`, and

    $$\varepsilon = \max\Big(\frac{|Ŝ_h − Ŝ_{2h}|}{3},\ \frac{|Ŝ_{2h} − Ŝ_{4h}|}{12}\Big)$$

    (the second term with three or more grids; the two agree once the grids are in the
    asymptotic regime, and the larger guards against a sequence that is not yet) estimates
    `|Ŝ_h − Ŝ|`. A coarse grid whose solve failed is reported with its own code.

    **Differentiation, in both modes.** The converged curve is a stationary point of `Ŝ_h`
    in the normal displacements of its nodes; they are differentiated implicitly
    (`optx.ImplicitAdjoint`, block-tridiagonal solve) with respect to `args`, arrays in
    `sde` and the endpoints (`jax.grad`, `jax.jvp`, `jax.jacfwd`, `jax.jacrev`), the
    nodes moving normal to the curve (their sliding along it is a gauge). `sol.action`
    uses the envelope theorem for its first derivative. With `nj.Refine` the finest grid
    is differentiated; the coarse grids and the error estimate are constants.

    **Batches.** `jax.vmap` over `x0`, `x1`, `args`, `init`, with `throw=False` (every
    element of a batch runs every grid of `nj.Refine`).
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    x0, x1, dtype = as_endpoints(x0, x1)
    d = x0.shape[0]
    straight = init is None
    init, n_nodes, grid_controller = geometric_grid(init, n_nodes, grid_controller, d)
    presolve = (
        DEFAULT_N_NODES
        if straight and grid_controller is None and n_nodes > PRESOLVE_ABOVE
        else None
    )
    if init is None:
        grid = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype)
        init = x0[None] + grid[:, None] * (x1 - x0)[None]
    init = init.astype(dtype)
    args = float_args_as_arrays(args, dtype)
    check_sde_calls(sde, jnp.zeros((), dtype), x0, args)
    max_steps = as_count(max_steps, "max_steps")
    max_inner_steps = as_count(max_inner_steps, "max_inner_steps")
    if max_steps < 1 or max_inner_steps < 1:
        raise ValueError("`max_steps` and `max_inner_steps` must be positive.")
    # Blocks: the normal displacements of a node.
    solver = solver_for(x0.shape[-1] - 1, solver, rtol, atol, "minimize_geometric_action")
    # `throw` outside the compiled solve: raising and non-raising calls share one program.
    sol = _minimize_geometric(
        sde, x0, x1, args, init, solver, rtol, max_steps, max_inner_steps, False,
        grid_controller, presolve,
    )
    return raise_if_failed(sol) if throw else sol
