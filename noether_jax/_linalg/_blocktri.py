"""Symmetric block-tridiagonal linear algebra (the Hessian of a discrete action).

A matrix with diagonal blocks `A_j` (`j = 0..M-1`) and upper off-diagonal blocks `B_j`
(row block `j`, column block `j+1`; the lower ones are `B_jᵀ`) is solved by block Cholesky
(block Thomas) in `O(M d³)` with two `lax.scan`s. A matrix that is not positive definite
shows up as a NaN Cholesky factor, which the callers use as a definiteness test.

For small blocks (`d ≤ 8`) the `d × d` factorisations and triangular solves inside the scans
are unrolled into elementwise operations: a LAPACK call per block costs microseconds of
overhead for a few flops, and under `vmap` it becomes a loop of such calls, while the
unrolled form vectorises across the batch (about 7× faster at `d = 2`, `B = 1024`, and 30×
for a single path). For `d ≤ 4`, batches run with the batch as the minor axis (see "small
blocks" below).
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Float


_UNROLL_MAX_D = 8


def _chol(s: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """Lower Cholesky factor; NaN where `s` is not positive definite."""
    if s.shape[-1] > _UNROLL_MAX_D:
        return jnp.linalg.cholesky(s)
    return _l_chol(_entries(s))


def _cho_solve(low: Float[Array, "d d"], b: Float[Array, "d *k"]) -> Float[Array, "d *k"]:
    """Solve `(L Lᵀ) x = b` for `b` of shape `(d,)` or `(d, k)`."""
    if low.shape[-1] > _UNROLL_MAX_D:
        return jsl.cho_solve((low, True), b)
    return jnp.stack(_l_cho_solve(_entries(low), list(b)))


def interval_hessians(fn, *inputs):
    """Per-interval Hessian blocks of `fn(*inputs_i, a, b)` in `(a, b)`, vmapped over
    intervals: returns `(H_aa, H_ab, H_bb)`, each `(n-1, d, d)`.

    `inputs` are per-interval arrays; the last two are the left and right nodes. Taking the
    blocks with `argnums` (rather than slicing one `2d × 2d` Hessian) avoids a strided copy
    that costs several times the Hessian itself for small `d`. The intervals are mapped
    along the *last* axis: XLA on CPU vectorises along the minor axis, which is then the
    long one rather than a block's `d` (1.2–1.3× at `d = 2`)."""

    def one(*xs):
        *rest, a, b = xs
        h = jax.hessian(lambda a, b: fn(*rest, a, b), argnums=(0, 1))(a, b)
        return h[0][0], h[0][1], h[1][1]

    last = [jnp.moveaxis(x, 0, -1) for x in inputs]
    blocks = jax.vmap(one, in_axes=-1, out_axes=-1)(*last)
    return tuple(jnp.moveaxis(h, -1, 0) for h in blocks)


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
    if _small(diag.shape[-1]):
        (y,) = _small_matvec(diag, off, x)
        return y
    return _matvec_any(diag, off, x)


def _matvec_any(diag, off, x):
    y = jnp.einsum("mij,mj->mi", diag, x)
    upper = jnp.einsum("mij,mj->mi", off, x[1:])
    lower = jnp.einsum("mji,mj->mi", off, x[:-1])
    y = y.at[:-1].add(upper)
    y = y.at[1:].add(lower)
    return y


# --------------------------------------------------------------------------- small blocks
#
# For `d ≤ 4` the block recursions run on arrays whose *last* axis is the batch: blocks
# `(m, d, d, B)`, right-hand sides `(m, d, k, B)`. XLA on CPU vectorises elementwise work
# along the minor axis, so blocks laid out `(B, d, d)` (what `vmap` gives) run at scalar
# speed with a loop per 2 × 2 block, while `(d, d, B)` runs at vector speed, and each entry
# of a block is a contiguous `(B,)` row for the unrolled formulas. Under `vmap` a
# `custom_vmap` rule moves the batch axis last (once per call, not per block); unbatched,
# `B = 1`. Above `d = 4` the unrolled entries cost more compile time than they save.

def _entries(a):
    """`(d, d, ...)` → nested lists of its entries (each `(...)`: `(B,)` batch-last, scalars
    in the generic code)."""
    return [[a[i, j] for j in range(a.shape[1])] for i in range(a.shape[0])]


def _l_chol(s):
    """Lower Cholesky factor of nested entries, as a `(d, d, ...)` array, unrolled into
    elementwise operations (NaN where not positive definite: the sqrt of a negative pivot
    is the definiteness signal)."""
    d = len(s)
    low = [[None] * d for _ in range(d)]
    for j in range(d):
        acc = s[j][j]
        for k in range(j):
            acc = acc - low[j][k] * low[j][k]
        low[j][j] = jnp.sqrt(acc)
        inv = 1.0 / low[j][j]
        for i in range(j + 1, d):
            acc = s[i][j]
            for k in range(j):
                acc = acc - low[i][k] * low[j][k]
            low[i][j] = acc * inv
    zero = jnp.zeros_like(s[0][0])
    return jnp.stack([jnp.stack([low[i][j] if j <= i else zero for j in range(d)])
                      for i in range(d)])


def _l_sub(acc, pairs):
    for u, v in pairs:
        acc = acc - u * v
    return acc


def _l_cho_solve(low, rows):
    """`(L Lᵀ)⁻¹ b` for `L` as nested entries and `b` as its `d` rows, unrolled."""
    d = len(low)
    inv = [1.0 / low[i][i] for i in range(d)]
    y = []
    for i in range(d):
        y.append(_l_sub(rows[i], [(low[i][q], y[q]) for q in range(i)]) * inv[i])
    x = [None] * d
    for i in reversed(range(d)):
        x[i] = _l_sub(y[i], [(low[q][i], x[q]) for q in range(i + 1, d)]) * inv[i]
    return x


def _l_sub_matmul(r, b, x, transpose):
    """`r − bᵀ x` (or `r − b x`) by rows: `b` nested `(B,)` entries, `r` and `x` rows."""
    d = len(b)
    entry = (lambda i, q: b[q][i]) if transpose else (lambda i, q: b[i][q])
    return [_l_sub(r[i], [(entry(i, q), x[q]) for q in range(d)]) for i in range(d)]


def _bl_start(blocks, off):
    """Batch-last scan inputs: the off-diagonal blocks shifted down by one (a zero block
    first) and an identity block (the factor "before" the first)."""
    off_prev = jnp.concatenate([jnp.zeros_like(blocks[:1]), off], axis=0)
    eye = jnp.eye(blocks.shape[1], dtype=blocks.dtype)[:, :, None]
    return off_prev, jnp.broadcast_to(eye, blocks.shape[1:])


def _bl_forward_step(low_prev, b, r, z_prev):
    """`z_j = r_j − B_{j−1}ᵀ S_{j−1}⁻¹ z_{j−1}` (`low_prev`, `b`: nested entries)."""
    w = _l_cho_solve(low_prev, list(z_prev))
    return jnp.stack(_l_sub_matmul(list(r), b, w, transpose=True))


def _bl_factor(diag, off, rhs):
    """Factorisation and (if `rhs` is given) forward substitution in one scan. Batch-last
    arrays. Returns `(chols, zs)` (`zs` is `None` without `rhs`)."""
    d = diag.shape[1]
    off_prev, eye = _bl_start(diag, off)

    def body(carry, inputs):
        chol_prev, z_prev = carry
        a, b, r = inputs
        low_prev, b_ = _entries(chol_prev), _entries(b)
        # Schur complement `a − bᵀ S_prev⁻¹ b`, symmetrised.
        s = _l_sub_matmul(list(a), b_, _l_cho_solve(low_prev, list(b)), transpose=True)
        chol = _l_chol([[0.5 * (s[i][j] + s[j][i]) for j in range(d)] for i in range(d)])
        z = None if r is None else _bl_forward_step(low_prev, b_, r, z_prev)
        return (chol, z), (chol, z)

    z0 = None if rhs is None else jnp.zeros_like(rhs[0])
    _, (chols, zs) = jax.lax.scan(body, (eye, z0), (diag, off_prev, rhs))
    return chols, zs


def _bl_forward(chols, off, rhs):
    off_prev, eye = _bl_start(chols, off)

    def body(carry, inputs):
        chol_prev, z_prev = carry
        chol, b, r = inputs
        z = _bl_forward_step(_entries(chol_prev), _entries(b), r, z_prev)
        return (chol, z), z

    _, zs = jax.lax.scan(body, (eye, jnp.zeros_like(rhs[0])), (chols, off_prev, rhs))
    return zs


def _bl_backward(chols, off, zs):
    """Back substitution `x_j = S_j⁻¹ (z_j − B_j x_{j+1})`, batch-last."""
    off_next = jnp.concatenate([off, jnp.zeros_like(chols[:1])], axis=0)

    def body(x_next, inputs):
        chol, b, z = inputs
        r = _l_sub_matmul(list(z), _entries(b), list(x_next), transpose=False)
        x = jnp.stack(_l_cho_solve(_entries(chol), r))
        return x, x

    _, xs = jax.lax.scan(body, jnp.zeros_like(zs[0]), (chols, off_next, zs), reverse=True)
    return xs


def _bl_ok(chols):
    return jnp.all(jnp.isfinite(chols), axis=tuple(range(chols.ndim - 1)))


def _bl_cholesky(diag, off):
    chols, _ = _bl_factor(diag, off, None)
    return chols, _bl_ok(chols)


def _bl_cho_solve(chols, off, rhs):
    return _bl_backward(chols, off, _bl_forward(chols, off, rhs))


def _bl_cholesky_solve(diag, off, rhs):
    chols, zs = _bl_factor(diag, off, rhs)
    return chols, _bl_ok(chols), _bl_backward(chols, off, zs)


def _bl_matvec(diag, off, x):
    """`H x`, batch-last (`x` `(m, d, B)`): per component, the rows
    `A_j x_j + B_j x_{j+1} + B_{j−1}ᵀ x_{j−1}` as `(m, B)` arrays."""
    d = diag.shape[1]
    a_, b_ = _entries(jnp.moveaxis(diag, 0, 2)), _entries(jnp.moveaxis(off, 0, 2))
    x_ = [x[:, i] for i in range(d)]
    zero = jnp.zeros_like(x_[0][:1])
    rows = []
    for i in range(d):
        up = sum(b_[i][q] * x_[q][1:] for q in range(d))
        down = sum(b_[q][i] * x_[q][:-1] for q in range(d))
        rows.append(
            sum(a_[i][q] * x_[q] for q in range(d))
            + jnp.concatenate([up, zero]) + jnp.concatenate([zero, down])
        )
    return jnp.stack(rows, axis=1)


def _fast(core, generic, n_out: int):
    """`core` (batch-last: every argument and output with a trailing batch axis) as a
    function of unbatched arguments. Its `vmap` moves the batch axis last, once per call
    (`custom_vmap`). Derivatives, in either mode, are those of `generic`, the same function
    written for any block size (a `custom_vmap` cannot be transposed)."""

    @custom_vmap
    def batched(*args):
        return tuple(o[..., 0] for o in core(*(a[..., None] for a in args)))

    @batched.def_vmap
    def _rule(axis_size, in_batched, *args):
        last = [
            jnp.moveaxis(a, 0, -1) if b else jnp.broadcast_to(a[..., None], a.shape + (axis_size,))
            for a, b in zip(args, in_batched)
        ]
        return tuple(jnp.moveaxis(o, -1, 0) for o in core(*last)), (True,) * n_out

    @jax.custom_jvp
    def fn(*args):
        return batched(*args)

    @fn.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(generic, primals, tangents)

    return fn


def _as_columns(rhs, d):
    """`(m, d)` or `(m, d, k)` right-hand sides as `(m, d, k)`, and the inverse map."""
    if rhs.ndim == 2:
        return rhs[..., None], lambda x: x[..., 0]
    return rhs, lambda x: x


# --------------------------------------------------------------------------- any block size


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


def _cholesky_any(diag, off):
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


def _cho_solve_any(chols, off, rhs: Float[Array, "m d *k"]) -> Float[Array, "m d *k"]:
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


def _cholesky_solve_any(diag, off, rhs: Float[Array, "m d *k"]):
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


# --------------------------------------------------------------------------- entry points


_BATCH_LAST_MAX_D = 4


def _small(d: int) -> bool:
    return d <= _BATCH_LAST_MAX_D


_small_cholesky = _fast(_bl_cholesky, _cholesky_any, 2)
_small_cho_solve = _fast(
    lambda c, o, r: (_bl_cho_solve(c, o, r),), lambda c, o, r: (_cho_solve_any(c, o, r),), 1
)
_small_cholesky_solve = _fast(_bl_cholesky_solve, _cholesky_solve_any, 3)
_small_matvec = _fast(
    lambda a, o, x: (_bl_matvec(a, o, x),), lambda a, o, x: (_matvec_any(a, o, x),), 1
)


def cholesky(diag, off):
    """Block Cholesky factorisation. Returns the Cholesky factors of the Schur complements
    `S_j = A_j − B_{j−1}ᵀ S_{j−1}⁻¹ B_{j−1}` and `ok`, whether the matrix is positive definite."""
    if not _small(diag.shape[-1]):
        return _cholesky_any(diag, off)
    return _small_cholesky(diag, off)


def cho_solve(chols, off, rhs: Float[Array, "m d *k"]) -> Float[Array, "m d *k"]:
    """Solve `H x = rhs` given `cholesky(diag, off)`."""
    d = chols.shape[-1]
    if not _small(d):
        return _cho_solve_any(chols, off, rhs)
    cols, back = _as_columns(rhs, d)
    (x,) = _small_cho_solve(chols, off, cols)
    return back(x)


def cholesky_solve(diag, off, rhs: Float[Array, "m d *k"]):
    """`cholesky(diag, off)` and `cho_solve` of `rhs` with it, the forward substitution in
    the factorisation's own scan (one sequential pass fewer). Returns `(chols, ok, x)`; `x`
    is not finite where `ok` is false."""
    d = diag.shape[-1]
    if not _small(d):
        return _cholesky_solve_any(diag, off, rhs)
    cols, back = _as_columns(rhs, d)
    chols, ok, x = _small_cholesky_solve(diag, off, cols)
    return chols, ok, back(x)


def solve(diag, off, rhs):
    """Solve `H x = rhs`; also returns whether `H` is positive definite."""
    chols, ok = cholesky(diag, off)
    return cho_solve(chols, off, rhs), ok
