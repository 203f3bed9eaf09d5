"""Matrix-free symmetry detection (`method="matrix_free"`), structured families, and the
search inside a subspace of the data (`subspace=`, `nj.InSubspace`). Small sizes; the
network-scale measurements are in `benchmarks/bench_symmetry_scale.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from noether_jax._symmetry._families import AbstractAffineFamily
from symmetry_systems import one_rotation_sde


D10 = 10
SDE10 = one_rotation_sde(D10)


def mf10(sde=SDE10, eps=0.0, s=1.0, **kw):
    return nj.find_symmetries(
        sde, nj.Rotations(D10), args=(jnp.asarray(eps), jnp.asarray(s)), method="matrix_free",
        **kw,
    )


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
    # Broken (ε = 0.3) with anisotropic noise (a nonzero metric block): no symmetry; the
    # iterative path (k = 45 > 3 × block) against the dense SVD.
    fam = nj.Rotations(D10)
    sde = eqx_tree_at_D(SDE10, jnp.linspace(0.5, 1.0, D10))
    args = (jnp.asarray(0.3), jnp.asarray(1.0))
    dense = nj.find_symmetries(sde, fam, args=args, method="dense", n_points=32)
    mf = mf10(sde, eps=0.3)
    assert mf.method == "matrix_free" and bool(mf.converged)
    assert mf.singular_values.shape == (8,) and mf.directions.shape == (8, fam.size)
    np.testing.assert_allclose(mf.singular_values, dense.singular_values[:8], rtol=1e-8)
    np.testing.assert_allclose(mf.drift_singular_values, dense.drift_singular_values[:8],
                               rtol=1e-8)
    # each direction has unit size, and its residual is its singular value
    pts = jax.random.normal(jax.random.key(0), (32, D10))
    cond = nj.symmetry_conditions(sde, fam, pts, args=args)
    C = jnp.concatenate([cond.drift, cond.metric])
    np.testing.assert_allclose(jnp.linalg.norm(cond.norm @ mf.directions.T, axis=0), 1.0,
                               rtol=1e-10)
    np.testing.assert_allclose(jnp.linalg.norm(C @ mf.directions.T, axis=0),
                               mf.singular_values, rtol=1e-8)


def eqx_tree_at_D(sde, D):
    import equinox as eqx

    return eqx.tree_at(lambda s: s.diffusion, sde, D)


def test_same_null_space_as_dense_and_sigma_proportional_to_eps():
    dense = nj.find_symmetries(SDE10, nj.Rotations(D10), args=(0.0, 1.0), method="dense")
    mf = mf10()
    assert int(dense.num_symmetries) == int(mf.num_symmetries) == 1
    np.testing.assert_allclose(mf.basis[0], dense.basis[0], atol=1e-9)
    np.testing.assert_allclose(mf.basis[0], jnp.eye(nj.Rotations(D10).size)[0], atol=1e-9)
    assert mf.singular_values[0] < 1e-10 and mf.singular_values[1] > 1e-3
    assert mf.mask.shape == (8,) and bool(mf.mask[0]) and not bool(mf.mask[1])
    assert "matrix-free" in str(mf) and "R01" in str(mf)
    # a near-symmetry: σ ∝ ε, and near_generators finds it
    sig = [float(mf10(eps=e).singular_values[0]) for e in (1e-4, 1e-3)]
    assert 1e-7 < sig[0] < 1e-3
    np.testing.assert_allclose(sig[1] / sig[0], 10.0, rtol=2e-3)
    near = mf10(eps=1e-4).near_generators(10 * sig[0])
    assert len(near) == 1
    c = near[0][1].coefficients  # unit size (not unit norm): along R01 to O(ε)
    assert abs(c[0]) / jnp.linalg.norm(c) > 1 - 1e-8


def test_incomplete_when_more_symmetries_than_returned():
    # s = 0: every rotation of z commutes with the drift too (1 + 28 symmetries), more than
    # the 8 returned: the result says it may be incomplete.
    res = mf10(s=0.0)
    assert int(res.num_symmetries) == 8 and not bool(res.complete)
    assert "there may be more" in str(res)
    assert bool(mf10().complete)


def test_known_rotation_found_matrix_free_and_dense_d32():
    d = 32
    sde = one_rotation_sde(d)
    fam = nj.Rotations(d)
    res = nj.find_symmetries(sde, fam, args=(0.0, 1.0), method="matrix_free", n_points=40)
    assert bool(res.converged) and bool(res.complete)
    assert len(res.generators) == 1
    np.testing.assert_allclose(res.basis[0], jnp.eye(fam.size)[0], atol=1e-8)
    assert res.generators[0].describe() == "R0,1"
    assert res.singular_values[0] < 1e-10 and res.singular_values[1] > 1e-3
    # The same points, every singular value: `"auto"` is dense at this size (the compact
    # matrices of an affine family, 496 columns).
    dense = nj.find_symmetries(sde, fam, args=(0.0, 1.0), n_points=40)
    assert dense.method == "dense" and dense.singular_values.shape == (fam.size,)
    assert [g.describe() for g in dense.generators] == ["R0,1"]
    np.testing.assert_allclose(dense.basis[0], res.basis[0], atol=1e-8)
    np.testing.assert_allclose(dense.singular_values[1:8], res.singular_values[1:8], rtol=1e-6)
    # Larger families go matrix-free by default (the dense matrices would pass 2**26 floats).
    assert nj_choose(nj.Rotations(64), sde) == "matrix_free"
    assert nj_choose(nj.Rotations(48), sde) == "dense"


def nj_choose(family, sde):
    from noether_jax._symmetry._find import _choose_method

    return _choose_method(family, None, None, None, callable(sde.diffusion))


@pytest.mark.parametrize("noise", ["constant", "state-dependent"])
def test_dense_affine_equals_the_per_point_form(noise):
    # `method="dense"` builds an affine family's matrices with the matrix-free operators
    # (`_find_affine`); the same rotations given as plain vector fields (`VectorFieldBasis`)
    # take the per-point form (`_find`). Same conditions, same answer. A drift with one
    # rotation symmetry (of the (x0, x1) plane) that depends on time, at two times.
    d = 3
    fam = nj.Rotations(d)
    A = jax.vmap(lambda c: fam.affine(c)[0])(jnp.eye(fam.size))
    fields = nj.VectorFieldBasis([lambda x, M=M: M @ x for M in A], d=d)

    def f(t, x, a):
        r2 = x[0] ** 2 + x[1] ** 2
        return jnp.array([(1 - r2) * x[0] - x[1], (1 - r2) * x[1] + x[0],
                          -x[2] + jnp.sin(t) * r2])

    D = (lambda t, x, a: (1.0 + x[0] ** 2 + x[1] ** 2) * jnp.diag(jnp.array([1.0, 1.0, 2.0]))
         if noise == "state-dependent" else jnp.array([0.5, 0.5, 1.0]))
    sde = nj.SDE(f, D)
    kw = dict(times=jnp.array([0.0, 0.5]), n_points=12)
    a = nj.find_symmetries(sde, fam, method="dense", **kw)
    b = nj.find_symmetries(sde, fields, method="dense", **kw)
    np.testing.assert_allclose(a.singular_values, b.singular_values, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a.drift_singular_values, b.drift_singular_values, rtol=1e-10,
                               atol=1e-14)
    assert int(a.num_symmetries) == int(b.num_symmetries) == 1
    np.testing.assert_allclose(a.basis, b.basis, atol=1e-10)
    assert [g.describe() for g in a.generators] == ["R01"]  # below d = 10: no comma
    for key in ("length", "drift", "noise", "rate"):
        np.testing.assert_allclose(a.scales[key], b.scales[key], rtol=1e-12)
    np.testing.assert_allclose(a.drift_time_dependence, b.drift_time_dependence, rtol=1e-10)


def test_too_few_points():
    with pytest.raises(ValueError, match="too few points"):
        mf10(points=jnp.ones((4, D10)))


def test_bad_input_matrix_free():
    args = (0.0, 1.0)
    with pytest.raises(ValueError, match="10-dimensional"):
        nj.find_symmetries(SDE10, nj.Rotations(9), args=args, method="matrix_free")
    pts = jax.random.normal(jax.random.key(0), (20, D10)).at[3, 2].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN"):
        mf10(points=pts)
    with pytest.raises(ValueError, match="method"):
        nj.find_symmetries(SDE10, nj.Rotations(D10), args=args, method="lanczos")
    with pytest.raises(ValueError, match="num_smallest"):
        mf10(num_smallest=0)


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
    assert [g.describe() for g in res.generators] == ["R01"]
    assert [g.describe() for g in res.undetermined_generators] == ["R34"]
    assert "undetermined" in str(res)
    # with points everywhere both are found
    full = nj.find_symmetries(SDE_PLANES, fam)
    assert [g.describe() for g in full.generators] == ["R01", "R34"]
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
    assert [g.describe() for g in res2.generators] == ["uR01"]
    with pytest.raises(ValueError, match="subspace"):
        nj.find_symmetries(SDE_PLANES, nj.Rotations(6), points=DATA, subspace=jnp.eye(5))


@pytest.mark.parametrize("method", ["dense", "matrix_free"])
def test_jit_vmap_over_parameters_equals_a_loop(method):
    # Both searches of an affine family, batched over the symmetry-breaking parameter:
    # the same singular values as one call per element; σ₁ ∝ ε.
    sde = one_rotation_sde(6)
    pts = jax.random.normal(jax.random.key(0), (16, 6))

    def smallest(eps):
        res = nj.find_symmetries(sde, nj.Rotations(6), points=pts, method=method,
                                 args=(eps, jnp.asarray(1.0)))
        return res.singular_values[:3], res.num_symmetries

    eps = jnp.array([0.0, 1e-3, 1e-2])
    batched, num = jax.jit(jax.vmap(smallest))(eps)
    for i, e in enumerate(eps):
        s, n = smallest(e)
        np.testing.assert_allclose(batched[i], s, rtol=1e-10, atol=1e-15)
        assert int(num[i]) == int(n) == (1 if i == 0 else 0)
    assert batched[0, 0] < 1e-14 and batched[0, 1] > 1e-2
    np.testing.assert_allclose(batched[2, 0] / batched[1, 0], 10.0, rtol=1e-3)
