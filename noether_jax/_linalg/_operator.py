r"""The Hessian of a discrete action as a lineax operator, and a structured solver for it.

Every term of a discrete action couples two neighbouring nodes, so its Hessian with respect
to the interior nodes `y ∈ R^{m×d}` is symmetric block-tridiagonal: diagonal blocks `A_j` and
upper off-diagonal blocks `B_j` (`d × d`). `BlockTridiagonalOperator` holds those blocks;
`BlockCholesky` solves with any operator of that structure in `O(m d³)`. Given some other
operator (e.g. the `lx.JacobianLinearOperator` of a gradient that `optimistix`'s implicit
adjoint builds), it recovers the blocks from `3d` matrix-vector products by colouring: a
probe that is `e_k` on every third node touches each block column once.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from . import _blocktri


class BlockTridiagonalOperator(lx.AbstractLinearOperator):
    """A symmetric block-tridiagonal matrix acting on arrays of shape `(m, d)`.

    **Arguments:**

    - `diag`: `Array[m, d, d]`, the diagonal blocks (each symmetric).
    - `off`: `Array[m-1, d, d]`, the upper off-diagonal blocks (block row `j`, column `j+1`).
    - `positive_semidefinite`: whether the matrix is known to be (tag for solvers).
    """

    diag: Float[Array, "m d d"]
    off: Float[Array, "m-1 d d"]
    positive_semidefinite: bool = eqx.field(static=True, default=False)

    def mv(self, vector):
        return _blocktri.matvec(self.diag, self.off, vector)

    def as_matrix(self):
        m, d, _ = self.diag.shape
        full = jnp.zeros((m, d, m, d), self.diag.dtype)
        idx = jnp.arange(m)
        full = full.at[idx, :, idx, :].set(self.diag)
        if m > 1:
            full = full.at[idx[:-1], :, idx[1:], :].set(self.off)
            full = full.at[idx[1:], :, idx[:-1], :].set(jnp.swapaxes(self.off, -1, -2))
        return full.reshape(m * d, m * d)

    def transpose(self):
        return self

    def in_structure(self):
        m, d, _ = self.diag.shape
        return jax.ShapeDtypeStruct((m, d), self.diag.dtype)

    def out_structure(self):
        return self.in_structure()


@lx.is_symmetric.register(BlockTridiagonalOperator)
def _(op):
    return True


@lx.is_positive_semidefinite.register(BlockTridiagonalOperator)
def _(op):
    return op.positive_semidefinite


@lx.is_negative_semidefinite.register(BlockTridiagonalOperator)
def _(op):
    return False


@lx.is_diagonal.register(BlockTridiagonalOperator)
def _(op):
    return op.diag.shape[-1] == 1 and op.diag.shape[0] == 1


@lx.is_tridiagonal.register(BlockTridiagonalOperator)
def _(op):
    return op.diag.shape[-1] == 1


@lx.is_lower_triangular.register(BlockTridiagonalOperator)
@lx.is_upper_triangular.register(BlockTridiagonalOperator)
@lx.has_unit_diagonal.register(BlockTridiagonalOperator)
def _(op):
    return False


@lx.linearise.register(BlockTridiagonalOperator)
@lx.materialise.register(BlockTridiagonalOperator)
@lx.conj.register(BlockTridiagonalOperator)
def _(op):
    return op


@lx.diagonal.register(BlockTridiagonalOperator)
def _(op):
    return jnp.diagonal(op.diag, axis1=-2, axis2=-1).reshape(-1)


def blocks_by_colouring(operator: lx.AbstractLinearOperator):
    """The blocks of a symmetric block-tridiagonal `operator` on `(m, d)` arrays, from `3d`
    products with probes `e_k ⊗ 1[j ≡ c mod 3]`."""
    struct = operator.in_structure()
    m, d = struct.shape
    dtype = struct.dtype
    node = jnp.arange(m)
    probes = (
        (node[None, None, :] % 3 == jnp.arange(3)[:, None, None])[..., None]
        * jnp.eye(d, dtype=dtype)[None, :, None, :]
    ).astype(dtype)  # (3, d, m, d): colour c, coordinate k
    cols = jax.vmap(jax.vmap(operator.mv))(probes)  # (3, d, m, d): column (c, k), row (j, i)
    colour = node % 3
    # diag[j][i, k] = H[(j, i), (j, k)]: the column of colour j mod 3, rows of node j.
    diag = jnp.swapaxes(cols[colour, :, node, :], -1, -2)
    # off[j][i, k] = H[(j, i), (j+1, k)].
    nxt = node[:-1] + 1
    off = jnp.swapaxes(cols[colour[nxt], :, node[:-1], :], -1, -2)
    return diag, off


class BlockCholesky(lx.AbstractLinearSolver):
    """Block Cholesky (block Thomas) solve of a symmetric positive definite block-tridiagonal
    system in `O(m d³)`, `m` blocks of size `d`.

    Takes an `nj.BlockTridiagonalOperator`, or any linear operator on arrays of shape
    `(m, d)` that has this structure (the Hessian of a discrete action), whose blocks it then
    reads off `3d` matrix-vector products. A matrix that is not positive definite gives the
    result `lx.RESULTS.singular`.
    """

    def init(self, operator, options: dict[str, Any]):
        struct = operator.in_structure()
        if not isinstance(struct, jax.ShapeDtypeStruct) or len(struct.shape) != 2:
            raise ValueError(
                "`BlockCholesky` solves on arrays of shape (nodes, d); got an operator on "
                f"{struct}."
            )
        if isinstance(operator, BlockTridiagonalOperator):
            diag, off = operator.diag, operator.off
        else:
            diag, off = blocks_by_colouring(operator)
            diag = 0.5 * (diag + jnp.swapaxes(diag, -1, -2))
        chols, ok = _blocktri.cholesky(diag, off)
        return chols, off, ok

    def compute(self, state, vector, options):
        chols, off, ok = state
        x = _blocktri.cho_solve(chols, off, vector)
        x = jnp.where(ok, x, 0.0)
        result = lx.RESULTS.where(ok, lx.RESULTS.successful, lx.RESULTS.singular)
        return x, result, {}

    def transpose(self, state, options):
        return state, options

    def conj(self, state, options):
        return state, options

    def assume_full_rank(self):
        return True
