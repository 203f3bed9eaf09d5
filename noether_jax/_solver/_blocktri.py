"""Symmetric block-tridiagonal linear algebra (the Hessian of a discrete action).

A matrix with diagonal blocks `A_j` (`j = 0..M-1`) and upper off-diagonal blocks `B_j`
(row block `j`, column block `j+1`; the lower ones are `B_jᵀ`) is solved by block Cholesky
(block Thomas) in `O(M d³)` with two `lax.scan`s. A matrix that is not positive definite
shows up as a NaN Cholesky factor, which the callers use as a definiteness test.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float


def blocks_from_intervals(
    hess: Float[Array, "n-1 2d 2d"],
) -> tuple[Float[Array, "m d d"], Float[Array, "m-1 d d"]]:
    """Assemble the interior-node Hessian from per-interval Hessians of `L_d(x_i, x_{i+1})`.

    Interior node `j` (path node `j+1`) collects the lower-right block of interval `j` and the
    upper-left block of interval `j+1`; nodes `j` and `j+1` couple through interval `j+1`.
    """
    d = hess.shape[-1] // 2
    diag = hess[:-1, d:, d:] + hess[1:, :d, :d]
    off = hess[1:-1, :d, d:]
    return diag, off


def matvec(diag, off, x: Float[Array, "m d"]) -> Float[Array, "m d"]:
    """`H x` for the symmetric block-tridiagonal `H`."""
    y = jnp.einsum("mij,mj->mi", diag, x)
    upper = jnp.einsum("mij,mj->mi", off, x[1:])
    lower = jnp.einsum("mji,mj->mi", off, x[:-1])
    y = y.at[:-1].add(upper)
    y = y.at[1:].add(lower)
    return y


def cholesky(diag, off):
    """Block Cholesky factorisation. Returns the Cholesky factors of the Schur complements
    `S_j = A_j − B_{j−1}ᵀ S_{j−1}⁻¹ B_{j−1}` and `ok`, whether the matrix is positive definite."""
    d = diag.shape[-1]
    off_prev = jnp.concatenate([jnp.zeros_like(diag[:1]), off], axis=0)
    eye = jnp.eye(d, dtype=diag.dtype)

    def body(chol_prev, inputs):
        a, b = inputs
        x = jsl.cho_solve((chol_prev, True), b)
        s = a - b.T @ x
        s = 0.5 * (s + s.T)
        chol = jnp.linalg.cholesky(s)
        return chol, chol

    _, chols = jax.lax.scan(body, eye, (diag, off_prev))
    ok = jnp.all(jnp.isfinite(chols))
    return chols, ok


def cho_solve(chols, off, rhs: Float[Array, "m d"]) -> Float[Array, "m d"]:
    """Solve `H x = rhs` given `cholesky(diag, off)`."""
    off_prev = jnp.concatenate([jnp.zeros_like(chols[:1]), off], axis=0)
    d = chols.shape[-1]
    eye = jnp.eye(d, dtype=chols.dtype)

    def forward(carry, inputs):
        chol_prev, y_prev = carry
        chol, b, r = inputs
        y = r - b.T @ jsl.cho_solve((chol_prev, True), y_prev)
        return (chol, y), y

    init = (eye, jnp.zeros_like(rhs[0]))
    _, ys = jax.lax.scan(forward, init, (chols, off_prev, rhs))

    off_next = jnp.concatenate([off, jnp.zeros_like(chols[:1])], axis=0)

    def backward(x_next, inputs):
        chol, b, y = inputs
        x = jsl.cho_solve((chol, True), y - b @ x_next)
        return x, x

    _, xs = jax.lax.scan(backward, jnp.zeros_like(rhs[0]), (chols, off_next, ys), reverse=True)
    return xs


def solve(diag, off, rhs):
    """Solve `H x = rhs`; also returns whether `H` is positive definite."""
    chols, ok = cholesky(diag, off)
    return cho_solve(chols, off, rhs), ok
