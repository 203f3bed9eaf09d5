"""Symmetric block-tridiagonal linear algebra (the Hessian of a discrete action).

A matrix with diagonal blocks `A_j` (`j = 0..M-1`) and upper off-diagonal blocks `B_j`
(row block `j`, column block `j+1`; the lower ones are `B_jᵀ`) is solved by block Cholesky
(block Thomas) in `O(M d³)` with two `lax.scan`s. A matrix that is not positive definite
shows up as a NaN Cholesky factor, which the callers use as a definiteness test.

For small blocks (`d ≤ 8`) the `d × d` factorisations and triangular solves inside the scans
are unrolled into elementwise operations: a LAPACK call per block costs microseconds of
overhead for a few flops, and under `vmap` it becomes a loop of such calls, while the
unrolled form vectorises across the batch (about 7× faster at `d = 2`, `B = 1024`, and 30×
for a single path).
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float


_UNROLL_MAX_D = 8


def _chol(s: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """Lower Cholesky factor; NaN where `s` is not positive definite."""
    d = s.shape[-1]
    if d > _UNROLL_MAX_D:
        return jnp.linalg.cholesky(s)
    low = [[None] * d for _ in range(d)]
    for j in range(d):
        acc = s[j, j]
        for k in range(j):
            acc = acc - low[j][k] * low[j][k]
        # sqrt of a negative pivot is NaN, which is the definiteness signal.
        low[j][j] = jnp.sqrt(acc)
        inv = 1.0 / low[j][j]
        for i in range(j + 1, d):
            acc = s[i, j]
            for k in range(j):
                acc = acc - low[i][k] * low[j][k]
            low[i][j] = acc * inv
    zero = jnp.zeros_like(s[0, 0])
    rows = [jnp.stack([low[i][j] if j <= i else zero for j in range(d)]) for i in range(d)]
    return jnp.stack(rows)


def _cho_solve(low: Float[Array, "d d"], b: Float[Array, "d *k"]) -> Float[Array, "d *k"]:
    """Solve `(L Lᵀ) x = b` for `b` of shape `(d,)` or `(d, k)`."""
    d = low.shape[-1]
    if d > _UNROLL_MAX_D:
        return jsl.cho_solve((low, True), b)
    y = []
    for i in range(d):
        acc = b[i]
        for k in range(i):
            acc = acc - low[i, k] * y[k]
        y.append(acc / low[i, i])
    x = [None] * d
    for i in reversed(range(d)):
        acc = y[i]
        for k in range(i + 1, d):
            acc = acc - low[k, i] * x[k]
        x[i] = acc / low[i, i]
    return jnp.stack(x)


def interval_hessians(fn, *inputs):
    """Per-interval Hessian blocks of `fn(*inputs_i, a, b)` in `(a, b)`, vmapped over
    intervals: returns `(H_aa, H_ab, H_bb)`, each `(n-1, d, d)`.

    `inputs` are per-interval arrays; the last two are the left and right nodes. Taking the
    blocks with `argnums` (rather than slicing one `2d × 2d` Hessian) avoids a strided copy
    that costs several times the Hessian itself for small `d`."""

    def one(*xs):
        *rest, a, b = xs
        h = jax.hessian(lambda a, b: fn(*rest, a, b), argnums=(0, 1))(a, b)
        return h[0][0], h[0][1], h[1][1]

    return jax.vmap(one)(*inputs)


def blocks_from_intervals(
    h_aa: Float[Array, "n-1 d d"], h_ab: Float[Array, "n-1 d d"], h_bb: Float[Array, "n-1 d d"]
) -> tuple[Float[Array, "m d d"], Float[Array, "m-1 d d"]]:
    """Assemble the interior-node Hessian from the per-interval blocks of `L_d(x_i, x_{i+1})`.

    Interior node `j` (path node `j+1`) collects the lower-right block of interval `j` and the
    upper-left block of interval `j+1`; nodes `j` and `j+1` couple through interval `j+1`.
    """
    return h_bb[:-1] + h_aa[1:], h_ab[1:-1]


def scaled_identity(diag: Float[Array, "m d d"]) -> Float[Array, "m d d"]:
    """`diag(|H_ii|)` as blocks `(m, d, d)` (with a floor): the scale of a damping or of a
    round-off shift that is invariant to the scale of each variable."""
    dt = diag.dtype
    k = diag.shape[-1]
    hdiag = jnp.abs(jnp.diagonal(diag, axis1=-2, axis2=-1))
    scale = jnp.maximum(hdiag, 1e-12 * jnp.mean(hdiag) + jnp.finfo(dt).tiny)
    return scale[..., None] * jnp.eye(k, dtype=dt)


def matvec(diag, off, x: Float[Array, "m d"]) -> Float[Array, "m d"]:
    """`H x` for the symmetric block-tridiagonal `H`."""
    y = jnp.einsum("mij,mj->mi", diag, x)
    upper = jnp.einsum("mij,mj->mi", off, x[1:])
    lower = jnp.einsum("mji,mj->mi", off, x[:-1])
    y = y.at[:-1].add(upper)
    y = y.at[1:].add(lower)
    return y


def _factor_step(chol_prev, a, b):
    """The Cholesky factor of the next Schur complement `a − bᵀ S_prev⁻¹ b`."""
    x = _cho_solve(chol_prev, b)
    s = a - b.T @ x
    s = 0.5 * (s + s.T)
    return _chol(s)


def _forward_step(chol_prev, b, r, z_prev):
    """Forward substitution: `z_j = r_j − B_{j−1}ᵀ S_{j−1}⁻¹ z_{j−1}`."""
    return r - b.T @ _cho_solve(chol_prev, z_prev)


def _backward(chols, off, zs):
    """Back substitution: `x_j = S_j⁻¹ (z_j − B_j x_{j+1})`."""
    off_next = jnp.concatenate([off, jnp.zeros_like(chols[:1])], axis=0)

    def backward(x_next, inputs):
        chol, b, z = inputs
        x = _cho_solve(chol, z - b @ x_next)
        return x, x

    _, xs = jax.lax.scan(backward, jnp.zeros_like(zs[0]), (chols, off_next, zs), reverse=True)
    return xs


def cholesky(diag, off):
    """Block Cholesky factorisation. Returns the Cholesky factors of the Schur complements
    `S_j = A_j − B_{j−1}ᵀ S_{j−1}⁻¹ B_{j−1}` and `ok`, whether the matrix is positive definite."""
    d = diag.shape[-1]
    off_prev = jnp.concatenate([jnp.zeros_like(diag[:1]), off], axis=0)
    eye = jnp.eye(d, dtype=diag.dtype)

    def body(chol_prev, inputs):
        chol = _factor_step(chol_prev, *inputs)
        return chol, chol

    _, chols = jax.lax.scan(body, eye, (diag, off_prev))
    ok = jnp.all(jnp.isfinite(chols))
    return chols, ok


def cho_solve(chols, off, rhs: Float[Array, "m d *k"]) -> Float[Array, "m d *k"]:
    """Solve `H x = rhs` given `cholesky(diag, off)`."""
    off_prev = jnp.concatenate([jnp.zeros_like(chols[:1]), off], axis=0)
    d = chols.shape[-1]
    eye = jnp.eye(d, dtype=chols.dtype)

    def forward(carry, inputs):
        chol_prev, z_prev = carry
        chol, b, r = inputs
        z = _forward_step(chol_prev, b, r, z_prev)
        return (chol, z), z

    _, zs = jax.lax.scan(forward, (eye, jnp.zeros_like(rhs[0])), (chols, off_prev, rhs))
    return _backward(chols, off, zs)


def cholesky_solve(diag, off, rhs: Float[Array, "m d *k"]):
    """`cholesky(diag, off)` and `cho_solve` of `rhs` with it, the forward substitution in
    the factorisation's own scan: one sequential pass fewer, which is what a small batch
    of short paths pays for (each scan iteration costs about the same whatever its width).
    Returns `(chols, ok, x)`; `x` is not finite where `ok` is false."""
    d = diag.shape[-1]
    off_prev = jnp.concatenate([jnp.zeros_like(diag[:1]), off], axis=0)
    eye = jnp.eye(d, dtype=diag.dtype)

    def body(carry, inputs):
        chol_prev, z_prev = carry
        a, b, r = inputs
        chol = _factor_step(chol_prev, a, b)
        z = _forward_step(chol_prev, b, r, z_prev)
        return (chol, z), (chol, z)

    _, (chols, zs) = jax.lax.scan(body, (eye, jnp.zeros_like(rhs[0])), (diag, off_prev, rhs))
    ok = jnp.all(jnp.isfinite(chols))
    return chols, ok, _backward(chols, off, zs)


def solve(diag, off, rhs):
    """Solve `H x = rhs`; also returns whether `H` is positive definite."""
    chols, ok = cholesky(diag, off)
    return cho_solve(chols, off, rhs), ok
