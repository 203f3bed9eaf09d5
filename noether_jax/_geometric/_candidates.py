r"""First guesses for the global most likely path of a fixed duration in a multistable system.

Over a long duration `T` the most likely path from `x0` to `x1` relaxes to an attractor,
waits there, climbs over saddles from attractor to attractor and finally climbs to `x1`; the
minimal action tends to the least action of a *route* (docs/conventions.md) as `T → ∞`. A local
solver started from the straight line finds the local minimum next to it, which in a
multistable system is often another route (one that crosses a higher barrier, or skips a
waiting state). The remedy is a handful of first guesses, one per plausible route, solved
side by side: the piecewise-linear paths through the attractors of the region, waiting at
each intermediate one.
"""

import itertools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._mesh import interpolate_path
from .._sde import SDE
from ._fixed_points import find_fixed_points


def concrete(*xs) -> bool:
    """Whether the arrays have values now (not traced by `jit` or `vmap`). Under `grad`
    without `jit` the primal values are concrete: the search uses them (a choice of first
    guess carries no derivative)."""
    try:
        for x in jax.tree.leaves(xs):
            if isinstance(x, jax.core.Tracer):
                bool(jnp.all(jnp.isfinite(jax.lax.stop_gradient(x))))
    except jax.errors.ConcretizationTypeError:
        return False
    return True


def stack_trees(items: list) -> Any:
    """Stack equal-structured pytrees (e.g. the solutions of a loop of eager calls) along a
    new leading axis, as `jax.vmap` would return them."""
    return _stack(tuple(items))


@eqx.filter_jit
def _stack(items: tuple) -> Any:
    # One compiled program per structure and count, not one per leaf (eager `jnp.stack`).
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items)


def _primal(x):
    return jax.tree.map(lambda a: jnp.asarray(jax.device_get(jax.lax.stop_gradient(a))), x)


def is_autonomous(sde: SDE, t0, t1, x0, x1, args) -> bool:
    """A cheap test that the drift does not depend on time: equal at `t0`, `t1` and the mid
    time at a few points of the segment (a time-dependent drift has no fixed attractors)."""
    return bool(_same_drift_at_three_times(sde, t0, t1, x0, x1, args))


@eqx.filter_jit
def _same_drift_at_three_times(sde, t0, t1, x0, x1, args):
    # Compiled once per drift: a later call with new values neither traces nor compiles.
    pts = x0[None] + jnp.linspace(0.0, 1.0, 5, dtype=x0.dtype)[:, None] * (x1 - x0)[None]
    f = lambda t: jax.vmap(lambda x: sde.f(t, x, args))(pts)
    fa, fb, fc = f(t0), f(t1), f(0.5 * (t0 + t1))
    scale = jnp.max(jnp.abs(fa)) + jnp.finfo(x0.dtype).tiny
    return (jnp.max(jnp.abs(fb - fa)) <= 1e-12 * scale) & (
        jnp.max(jnp.abs(fc - fa)) <= 1e-12 * scale
    )


def waypoint_path(
    ts: Float[Array, " n"], points: Float[Array, "m d"]
) -> Float[Array, "n d"]:
    """The piecewise-linear path through `points` at equally spaced times over `ts`."""
    knots = jnp.linspace(ts[0], ts[-1], points.shape[0], dtype=ts.dtype)
    return interpolate_path(ts, knots, points)


def route_candidates(
    sde: SDE,
    x0,
    x1,
    t0,
    t1,
    *,
    n_nodes: int,
    args: Any = None,
    attractors: Float[Array, "k d"] | None = None,
    max_intermediate: int = 2,
    max_candidates: int = 16,
    num_starts: int = 64,
    key=None,
) -> tuple[Float[Array, "c n d"], list[str]]:
    r"""Initial paths for `nj.minimize_action`, one per plausible route from `x0` to `x1`.

    Candidate 0 is the straight line. With `a`, `b` the attractors nearest to `x0` and
    `x1`, the others are the piecewise-linear paths (equal time per piece)

    - `x0 → a → b → x1` (or `x0 → a → a → x1` when `a = b`: relax, wait, climb);
    - `x0 → a → c → c → b → x1` for every other attractor `c` (a wait at `c`), and with
      two intermediate attractors `c₁ ≠ c₂` in both orders (up to `max_intermediate`),

    at most `max_candidates` in all. The attractors are the stable fixed points found by
    `nj.find_fixed_points` in the box spanned by `x0` and `x1` (widened by half its size
    in every direction, at least 1), or the given `attractors` (`(k, d)`, e.g.
    `nj.transition_network(...).attractor_points`). A drift that depends on time, or a region
    with at most one attractor, gets only the straight line.

    **Returns:** `(paths, labels)`: `Array[c, n_nodes, d]` on the uniform grid over
    `[t0, t1]`, and a description of each.

    Eager (the number of attractors is data-dependent): not inside `jit`; compute the
    candidates outside and pass them as `candidates=` to a jitted `nj.minimize_action`.
    """
    x0, x1, t0, t1, args = _primal((jnp.asarray(x0), jnp.asarray(x1), jnp.asarray(t0),
                                    jnp.asarray(t1), args))
    dtype = x0.dtype
    ts = jnp.linspace(t0, t1, n_nodes, dtype=dtype)
    line = waypoint_path(ts, jnp.stack([x0, x1]))
    paths, labels = [line], ["straight line"]
    if attractors is None:
        if not is_autonomous(sde, t0, t1, x0, x1, args):
            return jnp.stack(paths), labels
        half = jnp.maximum(jnp.abs(x1 - x0), jnp.max(jnp.abs(x1 - x0)) / 4)
        half = jnp.maximum(half, 1.0)
        fps = find_fixed_points(
            sde, center=0.5 * (x0 + x1), scale=half, args=args, t=t0,
            num_starts=num_starts, key=jax.random.key(0) if key is None else key,
        )
        A = fps.stable.xs.reshape(-1, x0.shape[0])
    else:
        A = jnp.asarray(attractors, dtype).reshape(-1, x0.shape[0])
    k = A.shape[0]
    if k <= 1:
        return jnp.stack(paths), labels

    near = lambda x: int(jnp.argmin(jnp.sum((A - x) ** 2, axis=1)))
    ia, ib = near(x0), near(x1)
    others = [c for c in range(k) if c not in (ia, ib)]
    seqs = [[ia, ia] if ia == ib else [ia, ib]]
    for m in range(1, max_intermediate + 1):
        for mid in itertools.permutations(others, m):
            seqs.append([ia, *[c for c in mid for _ in (0, 1)], ib])
    name = lambda s: " → ".join(["x0", *(f"attractor {i}" for i in dict.fromkeys(s)), "x1"])
    for s in seqs[: max_candidates - 1]:
        pts = jnp.concatenate([x0[None], A[jnp.asarray(s)], x1[None]])
        paths.append(waypoint_path(ts, pts))
        labels.append(name(s) if len(set(s)) > 1 or ia != ib else "x0 → attractor "
                      f"{ia} (wait) → x1")
    return jnp.stack(paths), labels
