"""`minimize_geometric_action`: the most likely transition path over unbounded time."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import ArrayLike

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
from .._solution import PathSolution, finish_solution
from .._solver import BlockNewton
from ._gmam import geometric_action_of, physical_times, solve_geometric


@eqx.filter_jit
def _minimize_geometric(sde, x0, x1, args, init, solver, rtol, max_steps, max_inner_steps,
                        throw) -> PathSolution:
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
    xs, S, result, stats = solve_geometric(
        sde,
        x0_safe,
        x1_safe,
        jax.lax.stop_gradient(c0),
        args,
        solver=solver,
        rtol=rtol,
        max_steps=max_steps,
        max_inner_steps=max_inner_steps,
    )
    xs = xs.at[0].set(x0).at[-1].set(x1)
    ts = physical_times(sde, jax.lax.stop_gradient(xs), args)

    spd = diffusion_is_spd(sde, None, xs, args)
    return finish_solution(ts, xs, S, result, stats, finite_in=finite_in, spd=spd, throw=throw)


def minimize_geometric_action(
    sde: SDE,
    x0: ArrayLike,
    x1: ArrayLike,
    *,
    n_nodes: int | None = None,
    args: Any = None,
    init: ArrayLike | None = None,
    solver: optx.AbstractMinimiser | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 500,
    max_inner_steps: int = 20,
    throw: bool = True,
) -> PathSolution:
    r"""The most likely transition path from `x0` to `x1` over unbounded time: the minimiser
    of the geometric action (CONVENTIONS.md)

    $$\hat S[φ] = \tfrac12 \int_0^1 \big(|φ'|\,|f(φ)| - ⟨φ', f(φ)⟩\big)\,\mathrm{d}s,
      \qquad ⟨u, v⟩ = u^\top D^{-1} v,$$

    which equals the infimum over durations `T` of the fixed-time minimal action. From a
    stable fixed point `x0`, `Ŝ(x1)` is the quasipotential; to a saddle it is the barrier.

    **Arguments:**

    - `sde`: an *autonomous* `nj.SDE` (the drift and diffusion are evaluated at `t = 0`).
      `D` may be a scalar, a vector (diagonal), a full SPD matrix, or a callable of `x`
      (evaluated at the midpoint of each segment).
    - `x0`, `x1`: the endpoints, arrays of shape `(d,)`. They need not be fixed points.
    - `n_nodes`: number of nodes including both endpoints (default 101, at least 3).
    - `args`: passed to the drift and diffusion; differentiable (see below). Python floats
      in it are turned into arrays, so a new value does not recompile.
    - `init`: initial curve, shape `(n_nodes, d)` (default: the straight segment).
    - `solver`: the solver of each round's normal displacements: `nj.BlockNewton()`
      (default), `nj.NewtonCG()`, `nj.LBFGS()` or any `optx.AbstractMinimiser`, exactly as
      for `nj.minimize_action`. `nj.BlockNewton(escape=...)` sets the relative length of
      steps along negative curvature, which lets a straight initial curve on a symmetry
      axis leave it when the most likely path does (Maier–Stein with `β > 4`).
    - `rtol`, `atol`: tolerances of the default solver (as for `nj.minimize_action`); the
      rounds stop when one moves no node by more than `rtol ×` the path's extent, with the
      round's solve converged. Defaults `1e-8` (float64), `1e-5` (float32). Give them to
      the solver instead when you pass one.
    - `max_steps`: maximum total number of solver steps; `max_inner_steps`: per round.
    - `throw`: raise if the solve fails; `throw=False` in batches gives each element its own
      `result` and `converged`.

    **Returns:** an `nj.PathSolution` with

    - `xs`: the curve, `Array[n_nodes, d]`, nodes equidistant in (Euclidean) arclength;
    - `action`: the discrete geometric action `Ŝ_h` (second-order accurate in the node
      spacing);
    - `ts`: a physical time at the nodes, `t_0 = 0` and `dt = |dφ| / |f|` on each segment
      (at its midpoint, norms in the `D⁻¹` metric). This is the duration that minimises the
      fixed-time action of each segment, so `nj.momentum`, `nj.energy`,
      `nj.noether_charge` and `nj.action_of` work on the solution, and the quasi-energy is
      `≈ 0`. The continuum time to leave or reach a fixed point is infinite; the discrete
      one is finite (`ts[-1]` grows like `log n_nodes`); it is `inf` after a segment whose
      midpoint is a fixed point.
    - `stats`: `num_steps` (Newton steps), `num_rounds` (arclength redistributions),
      `shift` (the last round's largest node movement).

    **Method.** Midpoint discretisation of `Ŝ` on a polyline; the solver (damped Newton by
    default: block-tridiagonal Hessian, saddle escape) on the normal displacements of the
    nodes, alternating with redistribution to equal arclength, until the curve stops
    moving. The action is gauge-safe: no NaN where the curve passes through a fixed point
    (`|f| = 0`) or has zero-length segments.

    **Differentiation, in both modes.** The converged curve is a stationary point of `Ŝ_h`
    in the normal displacements of its nodes; they are differentiated implicitly
    (`optx.ImplicitAdjoint`, block-tridiagonal solve) with respect to `args`, arrays in
    `sde` and the endpoints (`jax.grad`, `jax.jvp`, `jax.jacfwd`, `jax.jacrev`), the
    nodes moving normal to the curve (their sliding along it is a gauge). `sol.action`
    uses the envelope theorem for its first derivative.

    **Batches.** `jax.vmap` over `x0`, `x1`, `args`, `init`, with `throw=False`.
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    x0, x1, dtype = as_endpoints(x0, x1)
    d = x0.shape[0]
    init, n_nodes = check_init_and_nodes(init, n_nodes, d, default=101)
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
    if solver is None:
        solver = BlockNewton(rtol=rtol, atol=atol)
    elif rtol is not None or atol is not None:
        raise ValueError(
            "Pass `rtol`/`atol` to the solver you give, not to `minimize_geometric_action`."
        )
    if not isinstance(solver, optx.AbstractMinimiser):
        raise ValueError(
            "`solver` must be an `optx.AbstractMinimiser`: `nj.BlockNewton()`, "
            f"`nj.NewtonCG()`, `nj.LBFGS()`, `optx.BFGS(...)`, ...; got {solver!r}."
        )
    return _minimize_geometric(
        sde, x0, x1, args, init, solver, rtol, max_steps, max_inner_steps, throw
    )
