"""Barriers of noise-driven transitions between attractors, through index-1 saddles."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._sde import SDE, as_endpoints, check_init_and_nodes, float_args_as_arrays
from .._solution import PathSolution
from ._fixed_points import FixedPoint, check_fixed_point, classify_fixed_point, find_fixed_points
from ._minimize import minimize_geometric_action
from ._relax import Relaxation, leave_saddle


class Transition(eqx.Module):
    r"""The most likely transition from one attractor to another, through an index-1 saddle.

    **Attributes:**

    - `start`, `end`, `saddle`: `nj.FixedPoint`s (the two attractors and the saddle).
    - `barrier`: the quasipotential barrier `Ŝ(start → saddle)` (the geometric action of the
      uphill leg; the downhill leg costs nothing). The escape rate is `∝ exp(−barrier)`.
    - `uphill`: the `nj.PathSolution` of `nj.minimize_geometric_action` from `start` to the
      saddle (its `ts` is the recovered physical time).
    - `downhill`: the `nj.Relaxation` from the saddle to `end`, along the branch of the
      saddle's unstable manifold that reaches `end` (its `result` is an `nj.RESULTS` code,
      `successful` when it settled, like `uphill.result`).
    - `xs`: the whole path, `uphill.xs` followed by `downhill.xs`.
    - `converged`: the uphill solve converged and the downhill leg settled at `end`.
    - `candidates`: `Array[k, d]`, the index-1 saddles that were tried;
      `candidate_barriers`: `Array[k]`, the barrier through each (`inf` for saddles whose
      unstable manifold does not connect the two attractors, or whose uphill solve failed).
    """

    start: FixedPoint
    end: FixedPoint
    saddle: FixedPoint
    barrier: Float[Array, ""]
    uphill: PathSolution
    downhill: Relaxation
    xs: Float[Array, "n d"]
    converged: Bool[Array, ""]
    candidates: Float[Array, "k d"]
    candidate_barriers: Float[Array, " k"]


def _attractor(sde, x, args, name, check_rtol) -> FixedPoint:
    try:
        check_fixed_point(sde, x, args, rtol=check_rtol)
    except ValueError as e:
        raise ValueError(
            f"`{name}` must be an attractor (a stable fixed point) of the drift. {e} Find the "
            "fixed points with `nj.find_fixed_points`, or use `nj.minimize_geometric_action` "
            "for a path between arbitrary points."
        ) from e
    fp = classify_fixed_point(sde, x, args)
    if int(fp.index) != 0 or int(fp.num_center) != 0:
        raise ValueError(
            f"`{name}` is a fixed point but not an attractor: it has {int(fp.index)} unstable "
            f"and {int(fp.num_center)} neutral directions (eigenvalues "
            f"{jax.device_get(fp.eigenvalues)})."
        )
    return fp


def barrier(
    sde: SDE,
    x_start: ArrayLike,
    x_end: ArrayLike,
    *,
    args: Any = None,
    saddles: ArrayLike | None = None,
    n_nodes: int = 101,
    num_starts: int = 128,
    search_scale: float | None = None,
    key: PRNGKeyArray | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 500,
    check_rtol: float | None = None,
) -> Transition:
    r"""The quasipotential barrier and the most likely path of a transition between two
    attractors of an autonomous drift.

    The most likely transition from attractor `A` to attractor `B` over long times climbs
    from `A` to an index-1 saddle `S` whose unstable manifold leads to `B`, then relaxes. The
    uphill leg minimises the geometric action (`nj.minimize_geometric_action`, which gives
    `Ŝ(A → S)`); the downhill leg follows the deterministic flow and costs nothing
    (`nj.leave_saddle`). Among the connecting saddles the one with the lowest barrier is
    chosen: `barrier = min_S Ŝ(A → S)`, and the mean transition time is `∝ exp(barrier)`.

    **Arguments:**

    - `sde`: the system (`D` scalar, diagonal, full or a callable of `x`).
    - `x_start`, `x_end`: the two attractors, arrays `(d,)`. Each must be a fixed point
      (test of `nj.check_fixed_point`) and stable; otherwise a `ValueError` says what is
      wrong (a barrier from a point that is not an attractor is meaningless).
    - `args`: passed to the drift and diffusion.
    - `saddles`: optional candidate saddles `(k, d)`. Default: all index-1 fixed points found
      by `nj.find_fixed_points` in the box around the two attractors (centre their midpoint,
      half-width `search_scale`, default 1.5 times their distance, with `num_starts` starts
      seeded by `key`).
    - `n_nodes`, `rtol`, `atol`, `max_steps`: for the uphill solves.
    - `check_rtol`: tolerance of the fixed-point tests.

    **Returns:** an `nj.Transition`. A single saddle is assumed between the two attractors;
    a transition through an intermediate attractor is the chain of two barriers.

    Runs eagerly (the number of saddles is data-dependent); the uphill solves for all
    candidate saddles run as one batch.
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    a, b, dtype = as_endpoints(x_start, x_end, names=("x_start", "x_end"))
    d = a.shape[0]
    args = float_args_as_arrays(args, dtype)
    _, n_nodes = check_init_and_nodes(None, n_nodes, d, default=101)
    fa = _attractor(sde, a, args, "x_start", check_rtol)
    fb = _attractor(sde, b, args, "x_end", check_rtol)
    dist = float(jnp.max(jnp.abs(b - a)))
    if dist == 0:
        raise ValueError("`x_start` and `x_end` are the same attractor: there is no transition.")

    if saddles is None:
        scale = 1.5 * dist if search_scale is None else float(search_scale)
        key = jax.random.key(0) if key is None else key
        found = find_fixed_points(
            sde,
            key=key,
            num_starts=num_starts,
            center=0.5 * (a + b),
            scale=jnp.full((d,), scale, dtype),
            args=args,
            check_rtol=check_rtol,
        )
        cands = found.with_index(1).xs.reshape(-1, d)
    else:
        cands = jnp.asarray(saddles, dtype)
        if cands.ndim != 2 or cands.shape[1] != d:
            raise ValueError(f"`saddles` must have shape (k, {d}), got {cands.shape}.")
    if cands.shape[0] == 0:
        raise ValueError(
            "no index-1 saddle was found near the two attractors; pass `saddles=` or a larger "
            "`search_scale`."
        )

    # Which saddles connect A and B: follow both branches of each unstable manifold.
    tol = 1e-3 * dist
    manifolds, connects, branch_to_b = [], [], []
    for s in cands:
        m = leave_saddle(sde, s, args=args, check_rtol=check_rtol)
        ends = m.ends
        da = jnp.max(jnp.abs(ends - a), axis=-1)
        db = jnp.max(jnp.abs(ends - b), axis=-1)
        plus_b = bool((db[0] < tol) & (da[1] < tol))
        minus_b = bool((db[1] < tol) & (da[0] < tol))
        manifolds.append(m)
        connects.append(plus_b or minus_b)
        branch_to_b.append("plus" if plus_b else "minus")
    if not any(connects):
        raise ValueError(
            f"none of the {cands.shape[0]} index-1 saddle(s) found connects `x_start` and "
            "`x_end` through its unstable manifold (the transition may pass through another "
            "attractor: compute the barriers of the chain), or the saddles were missed (pass "
            "`saddles=`)."
        )

    idx = [i for i, c in enumerate(connects) if c]
    solve = lambda s: minimize_geometric_action(
        sde, a, s, n_nodes=n_nodes, args=args, rtol=rtol, atol=atol, max_steps=max_steps,
        throw=False,
    )
    ups = jax.vmap(solve)(cands[jnp.asarray(idx)])
    values = jnp.where(ups.converged, ups.action, jnp.inf)
    barriers = jnp.full((cands.shape[0],), jnp.inf, dtype).at[jnp.asarray(idx)].set(values)
    j = int(jnp.argmin(values))
    # If no uphill solve converged, report the lowest attempt, unconverged.
    j = j if bool(jnp.isfinite(values[j])) else int(jnp.argmin(ups.action))
    uphill = jax.tree.map(lambda x: x[j], ups)
    k = idx[j]
    down = getattr(manifolds[k], branch_to_b[k])
    xs = jnp.concatenate([uphill.xs, down.xs], axis=0)
    return Transition(
        start=fa,
        end=fb,
        saddle=manifolds[k].saddle,
        barrier=uphill.action,
        uphill=uphill,
        downhill=down,
        xs=xs,
        converged=uphill.converged & down.converged,
        candidates=cands,
        candidate_barriers=barriers,
    )
