"""Adaptive time grids: nodes redistributed to where the path moves and the drift changes."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class AdaptiveGrid(eqx.Module):
    r"""A time grid that adapts to the path: pass `grid=nj.AdaptiveGrid()` to
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
