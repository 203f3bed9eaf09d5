"""The block-tridiagonal Hessian as a lineax operator and its structured solver."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import noether_jax as nj


def _blocks(d, m=9, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, d, d))
    diag = jnp.asarray(a @ a.transpose(0, 2, 1) + 3 * d * np.eye(d))
    off = jnp.asarray(rng.normal(size=(m - 1, d, d)))
    return diag, off, jnp.asarray(rng.normal(size=(m, d)))


@pytest.mark.parametrize("d", [1, 3, 10])
def test_operator_and_block_cholesky(d):
    diag, off, rhs = _blocks(d)
    op = nj.BlockTridiagonalOperator(diag, off, positive_semidefinite=True)
    dense = np.asarray(op.as_matrix())
    np.testing.assert_array_equal(dense, dense.T)
    np.testing.assert_allclose(np.asarray(op.mv(rhs)).ravel(), dense @ np.asarray(rhs).ravel(),
                               rtol=1e-13, atol=1e-13)
    assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
    ref = np.linalg.solve(dense, np.asarray(rhs).ravel())
    x = lx.linear_solve(op, rhs, nj.BlockCholesky()).value
    np.testing.assert_allclose(np.asarray(x).ravel(), ref, rtol=1e-10, atol=1e-12)
    # Any operator with this structure: the blocks are read off 3d products (colouring).
    fop = lx.FunctionLinearOperator(op.mv, jax.ShapeDtypeStruct(rhs.shape, rhs.dtype),
                                    tags=lx.symmetric_tag)
    xf = lx.linear_solve(fop, rhs, nj.BlockCholesky()).value
    np.testing.assert_allclose(np.asarray(xf), np.asarray(x), rtol=1e-12, atol=1e-13)


def test_indefinite_is_reported():
    diag, off, rhs = _blocks(2)
    op = nj.BlockTridiagonalOperator(diag - 100.0 * jnp.eye(2), off)
    sol = lx.linear_solve(op, rhs, nj.BlockCholesky(), throw=False)
    assert sol.result == lx.RESULTS.singular
    with pytest.raises(ValueError, match="shape"):
        nj.BlockCholesky().init(lx.MatrixLinearOperator(jnp.eye(3)), {})
