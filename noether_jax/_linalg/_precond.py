"""A tridiagonal-in-time preconditioner `P = T ⊗ M⁻¹` for the Hessian of a discrete action."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class TridiagonalKronecker(eqx.Module):
    r"""`r ↦ P⁻¹ r` for `P = T ⊗ M⁻¹`, `T` symmetric positive definite tridiagonal over the
    `m` interior nodes and `M` a `d × d` metric (scalar, diagonal or full), applied to
    arrays of shape `(m, d)`: `P⁻¹ r = T⁻¹ (r M)`, one Thomas solve with `d` right-hand
    sides, `O(m d)` (`O(m d²)` for a full `M`).

    Build it with `TridiagonalKronecker.from_intervals(a, b, metric)` where interval `i`
    (between path nodes `i` and `i+1`) contributes `a_i [[1, −1], [−1, 1]] + b_i [[1, 1],
    [1, 1]]` to `T` (a stiffness and a mass term; the endpoint nodes are fixed).
    """

    inv_pivots: Float[Array, " m"]
    lower: Float[Array, " m"]
    metric: Float[Array, ""] | Float[Array, " d"] | Float[Array, "d d"]

    @classmethod
    def from_intervals(cls, a: Float[Array, " n-1"], b: Float[Array, " n-1"], metric):
        diag = (a + b)[:-1] + (a + b)[1:]
        off_prev = jnp.concatenate([jnp.zeros((1,), diag.dtype), (b - a)[1:-1]])

        # Pivots `p_j = T_jj − l_j T_{j−1,j}` with `l_j = T_{j−1,j} / p_{j−1}` (positive: `T`
        # is positive definite).
        def factor(p_prev, inputs):
            diag_j, off_j = inputs
            l_j = off_j / p_prev
            p_j = diag_j - l_j * off_j
            return p_j, (p_j, l_j)

        _, (pivots, lower) = jax.lax.scan(factor, jnp.ones_like(diag[0]), (diag, off_prev))
        return cls(1.0 / pivots, lower, metric)

    def __call__(self, r: Float[Array, "m d"]) -> Float[Array, "m d"]:
        r = r @ self.metric if self.metric.ndim == 2 else r * self.metric

        # `T = L Λ Lᵀ` (unit lower bidiagonal `L`, sub-diagonal `l_j`): two sweeps over the
        # nodes, each a vector operation over the `d` coordinates.
        def forward(z_prev, inputs):
            r_j, l_j = inputs
            z = r_j - l_j * z_prev
            return z, z

        _, z = jax.lax.scan(forward, jnp.zeros_like(r[0]), (r, self.lower))
        lower_next = jnp.concatenate([self.lower[1:], jnp.zeros_like(self.lower[:1])])

        def backward(x_next, inputs):
            z_j, ip_j, l_next = inputs
            x = z_j * ip_j - l_next * x_next
            return x, x

        _, x = jax.lax.scan(
            backward, jnp.zeros_like(r[0]), (z, self.inv_pivots, lower_next), reverse=True
        )
        return x
