"""Adaptive time grids: nodes redistributed to where the path moves and the drift changes."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class AdaptiveGrid(eqx.Module):
    r"""A time grid that adapts to the path: pass `grid_controller=nj.AdaptiveGrid()` to
    `nj.minimize_action`.

    Long durations and steep drifts concentrate the action in short bursts: the path waits
    near fixed points and then crosses, e.g., a sigmoid of width `w` in a time `∝ w`. A
    uniform grid fine enough for the bursts wastes almost all its nodes on the waits. Here
    the path is solved on a grid, the grid is redistributed, the path interpolated onto it
    and solved again (warm start), `rounds` times, and a last solve on the final grid gives
    the solution. The redistribution equidistributes the monitor density

    $$\rho(s) = 1 + \frac{|dx/ds|}{\int |dx|} + \frac{|df/ds|}{\int |df|}$$

    over the fraction of the duration `s ∈ [0, 1]` (Euclidean norms along the current path,
    `f` the drift at the nodes): a third of the nodes stays uniform in time, a third follows
    the arclength of the path, and a third the variation of the drift along it (where the
    path crosses a steep feature). The density is smoothed with `smoothing` passes of a
    `[¼, ½, ¼]` filter so that neighbouring steps change gradually.

    The number of nodes stays `n_nodes`, so this works under `jit` and `vmap`. The final grid
    is treated as fixed when differentiating (envelope theorem for the action, implicit
    differentiation for the path on that grid). `init`, if given, is on the uniform grid
    with `n_nodes` nodes.

    **Arguments:**

    - `rounds`: number of solve–redistribute rounds before the final solve.
    - `smoothing`: passes of the smoothing filter over the density.
    - `round_steps`: solver steps per round (the final solve gets `max_steps`).
    """

    rounds: int = 4
    smoothing: int = 3
    round_steps: int = 100

    def __check_init__(self):
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"`rounds` must be a positive int, got {self.rounds!r}.")
        if not isinstance(self.smoothing, int) or self.smoothing < 0:
            raise ValueError(f"`smoothing` must be a non-negative int, got {self.smoothing!r}.")
        if not isinstance(self.round_steps, int) or self.round_steps < 1:
            raise ValueError(
                f"`round_steps` must be a positive int, got {self.round_steps!r}."
            )

    def redistribute(
        self, s: Float[Array, " n"], xs: Float[Array, "n d"], fs: Float[Array, "n d"]
    ) -> Float[Array, " n"]:
        """New node fractions `s` (first 0, last 1) that equidistribute the monitor."""
        dtype = s.dtype
        tiny = jnp.finfo(dtype).tiny
        h = jnp.diff(s)
        dx = jnp.sqrt(jnp.sum(jnp.diff(xs, axis=0) ** 2, axis=-1))
        df = jnp.sqrt(jnp.sum(jnp.diff(fs, axis=0) ** 2, axis=-1))
        # Each term integrates to one over the path (a term that vanishes drops out).
        dens = (
            1.0
            + dx / (h * jnp.maximum(jnp.sum(dx), tiny))
            + df / (h * jnp.maximum(jnp.sum(df), tiny))
        )

        def smooth(_, r):
            padded = jnp.concatenate([r[:1], r, r[-1:]])
            return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]

        dens = jax.lax.fori_loop(0, self.smoothing, smooth, dens)
        W = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(dens * h)])
        s_new = jnp.interp(jnp.linspace(0.0, 1.0, s.shape[0], dtype=dtype) * W[-1], W, s)
        return s_new.at[0].set(0.0).at[-1].set(1.0)


def interpolate_path(
    s_new: Float[Array, " n"], s: Float[Array, " n"], xs: Float[Array, "n d"]
) -> Float[Array, "n d"]:
    """The piecewise-linear path through `(s, xs)`, sampled at `s_new`."""
    return jax.vmap(lambda col: jnp.interp(s_new, s, col), in_axes=1, out_axes=1)(xs)


class Refine(eqx.Module):
    r"""Grid refinement with warm starts and an estimate of the discretisation error: what
    `nj.minimize_action` does when it is given none of `n_nodes`, `grid` and `init`, or
    explicitly with `grid_controller=nj.Refine(...)` (then `n_nodes` is the finest level,
    default 801).

    The path is solved on a coarse grid of `(n_nodes − 1)/2^{levels−1} + 1` nodes, whose
    nodes are first redistributed to where the path moves (`adapt`, an `nj.AdaptiveGrid`;
    `None` keeps them uniform). Each finer level halves every step of the previous grid
    (so it keeps the adapted node density) and starts from the previous level's path,
    interpolated (cubic at the new nodes, or linear where that start has the lower
    action): Newton then needs only a few steps per level (`nj.BlockNewton` starts there
    with `lam0 = min(lam0, 1e-6)`, the start being inside its quadratic basin: on the
    finest level 2–4 steps instead of 6–10). The solution is the finest level's.
    Since the midpoint action is second order on a fixed node density,

    $$\varepsilon \approx \frac{|S_h - S_{2h}|}{3}$$

    estimates the error of the reported action against the continuum one; it is returned
    as `sol.stats["error_estimate"]`, with the Richardson value `(4 S_h − S_{2h})/3` as
    `sol.stats["action_extrapolated"]`. If `ε > atol + rtol·|S_h|` the solve is reported as
    failed with `RESULTS.grid_too_coarse` (raise `n_nodes` or `levels`, or loosen `rtol`).

    The levels are unrolled at trace time: one compilation, and the node counts are static
    so it works under `jit` and `vmap` (every element of a batch runs every level).
    Coarse levels are treated as fixed when differentiating (the solution and its
    derivatives are those of the finest grid).

    **Arguments:**

    - `levels`: number of grids (at least 2: the error estimate needs two).
    - `rtol`, `atol`: tolerance on the estimated discretisation error of the action.
    - `adapt`: node redistribution on the coarsest grid, or `None` for uniform grids.
    """

    levels: int = 3
    rtol: float = 1e-4
    atol: float = 1e-8
    adapt: AdaptiveGrid | None = AdaptiveGrid()

    def __check_init__(self):
        if not isinstance(self.levels, int) or isinstance(self.levels, bool) or self.levels < 2:
            raise ValueError(f"`levels` must be an int ≥ 2, got {self.levels!r}.")
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"`{name}` must be a non-negative number, got {v!r}.")
        if self.adapt is not None and not isinstance(self.adapt, AdaptiveGrid):
            raise ValueError(f"`adapt` must be an `nj.AdaptiveGrid` or None, got {self.adapt!r}.")

    def coarse_nodes(self, n_nodes: int) -> int:
        """Nodes of the coarsest level for `n_nodes` on the finest; `ValueError` if the
        levels do not nest."""
        k = 2 ** (self.levels - 1)
        if (n_nodes - 1) % k or (n_nodes - 1) // k < 2:
            raise ValueError(
                f"With `nj.Refine(levels={self.levels})`, `n_nodes − 1` must be a multiple of "
                f"2^(levels−1) = {k} and the coarsest grid needs at least 3 nodes; got "
                f"`n_nodes={n_nodes}`. Try `n_nodes={k * max(2, round((n_nodes - 1) / k)) + 1}`."
            )
        return (n_nodes - 1) // k + 1


def bisect_grid(s: Float[Array, " n"]) -> Float[Array, " 2n-1"]:
    """The grid with every step of `s` halved."""
    mid = 0.5 * (s[:-1] + s[1:])
    inner = jnp.stack([s[:-1], mid], axis=1).reshape(-1)
    return jnp.concatenate([inner, s[-1:]])


def midpoints(s: Float[Array, " n"], xs: Float[Array, "n d"]) -> Float[Array, "n-1 d"]:
    r"""The path `xs` at the midpoint of every step of `s` by local Lagrange interpolation
    through the four nearest nodes (three or two on grids that small), each interval
    centred in its stencil except at the ends.

    Linear interpolation leaves the new nodes `O(h²)` off the path, in a kink at every old
    node that the fine level's Newton solve must first straighten; cubic interpolation is
    `O(h⁴)` on smooth paths (on Maier–Stein paths ending near the saddle, 8.5 → 5.5 Newton
    steps on the middle level and 6.7 → 4.9 on the finest, `benchmarks/RESULTS.md`)."""
    n = s.shape[0]
    p = min(4, n)
    first = jnp.clip(jnp.arange(n - 1) - (p - 2) // 2, 0, n - p)
    idx = first[:, None] + jnp.arange(p)[None, :]  # (n-1, p) stencil nodes
    nodes = s[idx]
    t = 0.5 * (s[:-1] + s[1:])[:, None]
    # Lagrange weights w_k = Π_{m≠k} (t − s_m)/(s_k − s_m).
    w = []
    for k in range(p):
        wk = jnp.ones_like(t[:, 0])
        for m in range(p):
            if m != k:
                wk = wk * (t[:, 0] - nodes[:, m]) / (nodes[:, k] - nodes[:, m])
        w.append(wk)
    w = jnp.stack(w, axis=1)
    return jnp.einsum("ip,ipd->id", w, xs[idx])


def halve_steps(
    s: Float[Array, " n"], xs: Float[Array, "n d"], *, cubic: bool = False
) -> tuple[Float[Array, " 2n-1"], Float[Array, "2n-1 d"]]:
    """The next level of nested grids (`nj.Refine`): every step of `s` halved, and the
    path `xs` interpolated onto it as the warm start: linearly, or with `cubic` by
    `midpoints` (the old nodes are kept)."""
    s_fine = bisect_grid(s)
    if not cubic:
        return s_fine, interpolate_path(s_fine, s, xs)
    mid = midpoints(s, xs)
    inner = jnp.stack([xs[:-1], mid], axis=1).reshape(-1, xs.shape[-1])
    return s_fine, jnp.concatenate([inner, xs[-1:]], axis=0)
