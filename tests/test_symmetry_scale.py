"""Matrix-free symmetry detection (`method="matrix_free"`), structured families, and the
search inside a subspace of the data (`subspace=`, `nj.InSubspace`). Small sizes; the
network-scale measurements are in `benchmarks/bench_symmetry_scale.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from noether_jax._symmetry._families import AbstractAffineFamily


def one_rotation_sde(d, seed=0):
    """A drift with exactly one rotation symmetry, `R0,1` (see the benchmark script):
    `f_y = (1 − |y|² + v·tanh z) y + 0.7 J y + ε (y_0, 0)`, `f_z = −z + W tanh z + u |y|²`,
    with `ε = args` breaking it."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    m = d - 2
    W = 1.5 * jax.random.normal(k1, (m, m)) / jnp.sqrt(m)
    u = jax.random.normal(k2, (m,)) / jnp.sqrt(m)
    v = jax.random.normal(k3, (m,)) / jnp.sqrt(m)

    def f(t, x, eps):
        y, z = x[:2], x[2:]
        r2 = y @ y
        fy = (1.0 - r2 + v @ jnp.tanh(z)) * y + 0.7 * jnp.array([-y[1], y[0]])
        fy = fy + eps * jnp.array([y[0], 0.0])
        return jnp.concatenate([fy, -z + W @ jnp.tanh(z) + u * r2])

    return nj.SDE(f, 0.5)


@pytest.mark.parametrize(
    "fam", [nj.Rotations(5), nj.LinearGenerators(4), nj.Translations(3), nj.AffineGenerators(3)]
)
def test_structured_families_match_their_matrices(fam):
    k, d = fam.size, fam.dim
    c = jax.random.normal(jax.random.key(1), (k,))
    x = jax.random.normal(jax.random.key(2), (d,))
    Mb = jax.random.normal(jax.random.key(3), (d, d))
    bb = jax.random.normal(jax.random.key(4), (d,))
    M, b = fam.affine(c)
    M0, b0 = AbstractAffineFamily.affine(fam, c)
    np.testing.assert_allclose(M, M0, atol=1e-15)
    np.testing.assert_allclose(b, b0, atol=1e-15)
    np.testing.assert_allclose(fam.basis(x), AbstractAffineFamily.basis(fam, x), atol=1e-15)
    # the adjoint: <affine(c), (Mb, bb)> = <c, affine_transpose(Mb, bb)>
    lhs = jnp.sum(M * Mb) + b @ bb
    np.testing.assert_allclose(lhs, c @ fam.affine_transpose(Mb, bb), rtol=1e-13)
    np.testing.assert_allclose(fam(c, x), c @ fam.basis(x), atol=1e-14)


def test_matrix_free_agrees_with_dense():
    # Anisotropic noise (a nonzero metric block) and a random network drift: no symmetry.
    d = 8
    W = jax.random.normal(jax.random.key(5), (d, d)) / jnp.sqrt(d)
    sde = nj.SDE(lambda t, x, a: -x + a @ jnp.tanh(x), jnp.linspace(0.5, 1.0, d))
    for fam, num in [(nj.Rotations(d), 4), (nj.LinearGenerators(d), 6)]:
        dense = nj.find_symmetries(sde, fam, args=W, method="dense", n_points=40)
        mf = nj.find_symmetries(sde, fam, args=W, method="matrix_free", n_points=40,
                                num_smallest=num)
        assert mf.method == "matrix_free" and bool(mf.converged)
        assert mf.singular_values.shape == (num,) and mf.directions.shape == (num, fam.size)
        np.testing.assert_allclose(mf.singular_values, dense.singular_values[:num], rtol=1e-8)
        np.testing.assert_allclose(
            mf.drift_singular_values, dense.drift_singular_values[:num], rtol=1e-8
        )
        # each direction: unit size, and its residual is its singular value
        cond = nj.symmetry_conditions(sde, fam, mf_points(fam, 40), args=W)
        C = jnp.concatenate([cond.drift, cond.metric])
        np.testing.assert_allclose(
            jnp.linalg.norm(cond.norm @ mf.directions.T, axis=0), 1.0, rtol=1e-10
        )
        np.testing.assert_allclose(
            jnp.linalg.norm(C @ mf.directions.T, axis=0), mf.singular_values, rtol=1e-8
        )


def mf_points(fam, n):
    return jax.random.normal(jax.random.key(0), (n, fam.dim))


def test_same_null_space_as_dense():
    d = 8
    sde = one_rotation_sde(d)
    dense = nj.find_symmetries(sde, nj.Rotations(d), args=0.0, method="dense")
    mf = nj.find_symmetries(sde, nj.Rotations(d), args=0.0, method="matrix_free")
    assert int(dense.num_symmetries) == int(mf.num_symmetries) == 1
    np.testing.assert_allclose(mf.basis[0], dense.basis[0], atol=1e-9)
    np.testing.assert_allclose(mf.basis[0], jnp.eye(nj.Rotations(d).size)[0], atol=1e-9)
    assert mf.singular_values[0] < 1e-10 and mf.singular_values[1] > 1e-3
    assert mf.mask.shape == (8,) and bool(mf.mask[0]) and not bool(mf.mask[1])
    assert "matrix-free" in str(mf) and "R01" in str(mf)


def test_known_rotation_found_matrix_free_d32():
    d = 32
    res = nj.find_symmetries(one_rotation_sde(d), nj.Rotations(d), args=0.0)
    assert res.method == "matrix_free"  # chosen automatically at this size
    assert bool(res.converged) and bool(res.complete)
    assert len(res.generators) == 1
    np.testing.assert_allclose(res.basis[0], jnp.eye(res.family.size)[0], atol=1e-8)
    assert res.generators[0].describe() == "R0,1"
    assert res.singular_values[0] < 1e-10 and res.singular_values[1] > 1e-3
    # near_generators at this size: the symmetry, then the least broken directions
    near = res.near_generators(float(res.singular_values[2]) * 1.000001)
    assert len(near) == 3 and near[0][0] < 1e-10


def test_near_symmetry_sigma_proportional_to_eps():
    d = 10
    sde = one_rotation_sde(d)
    sig = [
        float(nj.find_symmetries(sde, nj.Rotations(d), args=e, method="matrix_free",
                                 num_smallest=2).singular_values[0])
        for e in (1e-4, 1e-3)
    ]
    assert 1e-7 < sig[0] < 1e-3
    np.testing.assert_allclose(sig[1] / sig[0], 10.0, rtol=2e-3)


def test_incomplete_and_too_few_points():
    # f = −x: every linear field commutes with it (d² drift-only symmetries), more than the
    # `num_smallest` returned: the result says it may be incomplete.
    d = 4
    sde = nj.SDE(lambda t, x, a: -x, 1.0)
    res = nj.find_symmetries(sde, nj.LinearGenerators(d), method="matrix_free", num_smallest=3)
    assert int(res.num_drift_symmetries) == 3 and not bool(res.complete)
    assert "there may be more" in str(res)
    with pytest.raises(ValueError, match="too few points"):
        nj.find_symmetries(sde, nj.LinearGenerators(d), points=jnp.ones((3, d)),
                           method="matrix_free")


def test_bad_input_matrix_free():
    sde = one_rotation_sde(6)
    with pytest.raises(ValueError, match="6-dimensional"):
        nj.find_symmetries(sde, nj.Rotations(5), args=0.0, method="matrix_free")
    pts = jax.random.normal(jax.random.key(0), (20, 6)).at[3, 2].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN"):
        nj.find_symmetries(sde, nj.Rotations(6), points=pts, args=0.0, method="matrix_free")
    with pytest.raises(ValueError, match="method"):
        nj.find_symmetries(sde, nj.Rotations(6), args=0.0, method="lanczos")
    with pytest.raises(ValueError, match="num_smallest"):
        nj.find_symmetries(sde, nj.Rotations(6), args=0.0, num_smallest=0)


# A 6-D system: rotations of the (0, 1) plane and of the (3, 4) plane are symmetries. Data
# live in span(e0, e1, e2): there the field of R3,4 vanishes, so the data cannot tell.
def _two_planes(t, x, a):
    y, s, w, q = x[:2], x[2], x[3:5], x[5]
    J = lambda v: jnp.array([-v[1], v[0]])  # noqa: E731
    fy = (1.0 - y @ y) * y + s * J(y)
    fs = -s + y @ y - w @ w
    fw = (-1.0 + s) * w + 0.3 * J(w)
    return jnp.concatenate([fy, fs[None], fw, (-q + s)[None]])


SDE_PLANES = nj.SDE(_two_planes, 0.5)
DATA = jnp.concatenate(
    [jax.random.normal(jax.random.key(7), (40, 3)), jnp.zeros((40, 3))], axis=1
)


def test_undetermined_outside_the_data():
    fam = nj.Rotations(6)
    res = nj.find_symmetries(SDE_PLANES, fam, points=DATA)
    assert [g.describe() for g in res.generators] == ["R0,1"]
    assert [g.describe() for g in res.undetermined_generators] == ["R3,4"]
    assert "undetermined" in str(res)
    # with points everywhere both are found
    full = nj.find_symmetries(SDE_PLANES, fam)
    assert [g.describe() for g in full.generators] == ["R0,1", "R3,4"]
    assert int(full.num_undetermined) == 0


def test_subspace_search():
    # `subspace=3`: the 3 principal directions of the data; the rotation inside is found.
    res = nj.find_symmetries(SDE_PLANES, nj.Rotations(6), points=DATA, subspace=3)
    assert isinstance(res.family, nj.InSubspace) and res.family.size == 3
    assert len(res.generators) == 1
    M, b = res.generators[0].affine()
    A01 = jnp.zeros((6, 6)).at[1, 0].set(1.0).at[0, 1].set(-1.0)
    np.testing.assert_allclose(jnp.abs(jnp.sum(M * A01)) / jnp.linalg.norm(M), 2 / 2**0.5,
                               rtol=1e-8)
    np.testing.assert_allclose(b, 0.0, atol=1e-14)
    # An explicit basis of the subspace works the same; a wrong shape is refused.
    U = jnp.eye(6)[:, :3]
    res2 = nj.find_symmetries(SDE_PLANES, nj.Rotations(6), points=DATA, subspace=U)
    assert [g.describe() for g in res2.generators] == ["uR0,1"]
    with pytest.raises(ValueError, match="subspace"):
        nj.find_symmetries(SDE_PLANES, nj.Rotations(6), points=DATA, subspace=jnp.eye(5))
