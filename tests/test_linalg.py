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


def _dense(diag, off):
    return np.asarray(nj.BlockTridiagonalOperator(diag, off).as_matrix())


# d = 1..8 take the batch-last path (unrolled blocks), 9 the generic one; m = 40 is longer
# than the unrolled scans.
@pytest.mark.parametrize("d,m", [(1, 1), (2, 2), (2, 9), (3, 40), (8, 5), (9, 4)])
def test_block_algebra_unbatched_and_batched(d, m):
    from noether_jax._linalg import _blocktri

    batch = [_blocks(d, m, seed) for seed in range(4)]
    diag, off, rhs = (jnp.stack(a) for a in zip(*batch))
    # One element of the batch indefinite: only its `ok` is false.
    diag = diag.at[2].add(-30.0 * d * jnp.eye(d))
    cols = jnp.stack([rhs, 2 * rhs + 1], axis=-1)
    for b in range(4):
        dense = _dense(diag[b], off[b])
        pd = bool(np.all(np.linalg.eigvalsh(dense) > 0))
        assert pd == (b != 2)
        ref = np.linalg.solve(dense, np.asarray(cols[b]).reshape(m * d, 2)).reshape(m, d, 2)
        np.testing.assert_allclose(
            np.asarray(_blocktri.matvec(diag[b], off[b], rhs[b])).ravel(),
            dense @ np.asarray(rhs[b]).ravel(), rtol=1e-12, atol=1e-12,
        )
        chols, ok = _blocktri.cholesky(diag[b], off[b])
        assert bool(ok) == pd
        chols2, ok2, x2 = _blocktri.cholesky_solve(diag[b], off[b], cols[b])
        assert bool(ok2) == pd
        if pd:
            x = _blocktri.cho_solve(chols, off[b], rhs[b])
            np.testing.assert_allclose(np.asarray(x), ref[..., 0], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(x2), ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(chols2), np.asarray(chols), rtol=1e-13)
    # `vmap` (the batch-last layout for d ≤ 8) equals the loop above, element by element,
    # also with an unbatched operand.
    chols_v, ok_v = jax.vmap(_blocktri.cholesky)(diag, off)
    np.testing.assert_array_equal(np.asarray(ok_v), [True, True, False, True])
    _, ok_s, x_v = jax.vmap(_blocktri.cholesky_solve)(diag, off, cols)
    np.testing.assert_array_equal(np.asarray(ok_s), np.asarray(ok_v))
    xs_v = jax.vmap(_blocktri.cho_solve, in_axes=(0, 0, None))(chols_v, off, rhs[0])
    mv_v = jax.vmap(_blocktri.matvec, in_axes=(None, None, 0))(diag[0], off[0], rhs)
    for b in (0, 1, 3):
        _, _, x_b = _blocktri.cholesky_solve(diag[b], off[b], cols[b])
        np.testing.assert_allclose(np.asarray(x_v[b]), np.asarray(x_b), rtol=1e-12, atol=1e-14)
        x_b = _blocktri.cho_solve(chols_v[b], off[b], rhs[0])
        np.testing.assert_allclose(np.asarray(xs_v[b]), np.asarray(x_b), rtol=1e-12, atol=1e-14)
        mv_b = _blocktri.matvec(diag[0], off[0], rhs[b])
        np.testing.assert_allclose(np.asarray(mv_v[b]), np.asarray(mv_b), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("d", [2, 9])
def test_block_algebra_derivatives_both_modes(d):
    """The fast path's derivatives (those of the generic code) in forward and reverse mode,
    unbatched and under `vmap`, against the dense solve."""
    from noether_jax._linalg import _blocktri

    diag, off, rhs = _blocks(d, 6)

    def fast(diag, off, rhs):
        x, _ = _blocktri.solve(diag, off, rhs)
        return jnp.sum(jnp.sin(x)) + jnp.sum(_blocktri.matvec(diag, off, rhs) ** 2)

    def dense(diag, off, rhs):
        A = nj.BlockTridiagonalOperator(diag, off).as_matrix()
        x = jnp.linalg.solve(A, rhs.ravel())
        return jnp.sum(jnp.sin(x)) + jnp.sum((A @ rhs.ravel()) ** 2)

    # Diagonal blocks are symmetric: compare derivatives along symmetric perturbations.
    sym = lambda g, k: 0.5 * (g + jnp.swapaxes(g, -1, -2)) if k == 0 else g
    for argnums in (0, 1, 2):
        g_rev = sym(jax.grad(fast, argnums)(diag, off, rhs), argnums)
        g_fwd = sym(jax.jacfwd(fast, argnums)(diag, off, rhs), argnums)
        g_ref = sym(jax.grad(dense, argnums)(diag, off, rhs), argnums)
        np.testing.assert_allclose(np.asarray(g_rev), np.asarray(g_ref), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(np.asarray(g_fwd), np.asarray(g_ref), rtol=1e-9, atol=1e-11)
    stack = lambda a: jnp.stack([a, 1.1 * a])
    g_v = jax.vmap(jax.grad(fast, 2))(stack(diag), stack(off), stack(rhs))
    g_1 = jax.grad(dense, 2)(1.1 * diag, 1.1 * off, 1.1 * rhs)
    np.testing.assert_allclose(np.asarray(g_v[1]), np.asarray(g_1), rtol=1e-9, atol=1e-11)
