"""Symmetry detection (`nj.find_symmetries`) against exact answers, and the charge report.

Systems share drift callables (parameters go through `args`) and shapes, so that compiled
functions are reused between tests.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import fit_order
from symmetry_systems import J2, SDE_HELIX, SDE_HELIX_ANISO, helix_path



def linear(t, x, A):
    return A @ x


SDE_LIN = nj.SDE(linear, 1.0)


def _is_orthonormal(res):
    c = np.asarray(res.coefficients)
    np.testing.assert_allclose(c @ c.T, np.eye(c.shape[0]), atol=1e-12)


def _commutant_dim(A, D):
    """Exact dimension of {M : [M, A] = 0, M D + D Mᵀ = 0} (and of the commutant alone),
    from the ranks of the Kronecker-product form of the linear conditions."""
    d = A.shape[0]
    I = np.eye(d)
    comm = np.kron(I, A.T) - np.kron(A, I)  # vec(M A − A M), row-major vec
    metric = np.kron(I, D.T) + np.einsum("il,jk->ijkl", D, I).reshape(d * d, d * d)
    both = np.concatenate([comm, metric])
    rank = lambda m: np.linalg.matrix_rank(m, tol=1e-10)
    return d * d - rank(both), d * d - rank(comm)


# ---------------------------------------------------------------------------------------------
# Linear drifts f = A x: the symmetric linear generators are the commutant of A ∩ {M D + D Mᵀ = 0}


@pytest.mark.parametrize(
    "A, D, expected, expected_drift",
    [
        # A = −I: everything commutes; with D = I the symmetries are so(3).
        (-np.eye(3), np.eye(3), 3, 9),
        # Repeated eigenvalue −1 (twice): gl(2) ⊕ gl(1) commutes, so(2) preserves D = I.
        (np.diag([-1.0, -1.0, -2.0]), np.eye(3), 1, 5),
        # Generic non-normal A: commutant = span{I, A, A²}, none of it antisymmetric.
        (np.array([[-1.0, 2.0, 0.0], [0.0, -1.5, 1.0], [0.3, 0.0, -2.0]]), np.eye(3), 0, 3),
        # Full anisotropic D: the D-orthogonal algebra {M D + D Mᵀ = 0}, still 3-dimensional.
        (-np.eye(3), np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]), 3, 9),
    ],
    ids=["minus-identity", "repeated-eigenvalue", "non-normal", "anisotropic-D"],
)
def test_linear_drift_commutant(A, D, expected, expected_drift):
    assert _commutant_dim(A, D) == (expected, expected_drift)
    sde = nj.SDE(linear, jnp.asarray(D))
    res = nj.find_symmetries(sde, nj.LinearGenerators(3), args=jnp.asarray(A))
    assert len(res.generators) == expected
    assert len(res.drift_generators) == expected_drift
    _is_orthonormal(res)
    for g in res.generators:
        M, b = g.affine()
        np.testing.assert_allclose(M @ A - A @ M, 0.0, atol=1e-12)
        np.testing.assert_allclose(M @ D + D @ M.T, 0.0, atol=1e-12)
        np.testing.assert_allclose(b, 0.0)
    # Exact symmetries at round-off, the rest clearly broken.
    S = np.asarray(res.singular_values)
    assert np.all(S[:expected] < 1e-13) and np.all(S[expected:] > 1e-2)
    assert bool(res.time_translation) and float(res.time_dependence) == 0.0


def test_repeated_eigenvalue_pairs_in_4d():
    # A = diag(−1, −1, −2, −2), D = I: so(2) ⊕ so(2), returned as the canonical rotations.
    A = jnp.diag(jnp.array([-1.0, -1.0, -2.0, -2.0]))
    res = nj.find_symmetries(SDE_LIN, nj.LinearGenerators(4), args=A)
    assert int(res.num_symmetries) == 2 and int(res.num_drift_symmetries) == 8
    _is_orthonormal(res)
    mats = sorted(np.round(np.abs(np.asarray(g.affine()[0])) * np.sqrt(2), 12).tolist()
                  for g in res.generators)
    e = lambda i, j: (np.eye(4)[:, [i]] @ np.eye(4)[[j]])
    expected = sorted(np.abs(e(i, j) - e(j, i)).tolist() for i, j in [(0, 1), (2, 3)])
    assert mats == expected
    # The Rotations family sees the same two, as exactly its basis fields R01 and R23.
    rot = nj.find_symmetries(SDE_LIN, nj.Rotations(4), args=A)
    assert sorted(g.describe() for g in rot.generators) == ["R01", "R23"]


def test_affine_rotations_about_a_fixed_point():
    # f = −(x − c), D isotropic: the symmetries in the affine family are the rotations about
    # c, ξ = M (x − c) with M = −Mᵀ (b = −M c); translations do not commute with f.
    c = jnp.array([1.0, -0.5, 2.0])
    sde = nj.SDE(lambda t, x, c: -(x - c), 0.7)
    res = nj.find_symmetries(sde, nj.AffineGenerators(3), args=c)
    assert len(res.generators) == 3
    _is_orthonormal(res)
    for g in res.generators:
        M, b = g.affine()
        np.testing.assert_allclose(M, -M.T, atol=1e-12)
        np.testing.assert_allclose(b, -M @ c, atol=1e-12)
        np.testing.assert_allclose(g(c), 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Nonlinear drifts


def independent_of_x1_x3(t, x, args):
    # Depends on x0 and x2 only.
    return jnp.array(
        [jnp.sin(x[0]) - x[0], jnp.cos(x[0]) + 0.5, x[0] * x[2] - x[2], 1.0 + 0.1 * x[0] ** 2]
    )


def test_translations_of_missing_coordinates():
    D = jnp.array([[0.5, 0.1, 0.0, 0.0], [0.1, 0.3, 0.0, 0.0], [0.0, 0.0, 0.2, 0.05],
                   [0.0, 0.0, 0.05, 0.1]])
    sde = nj.SDE(independent_of_x1_x3, D)
    res = nj.find_symmetries(sde, nj.Translations(4))
    assert len(res.generators) == 2
    # Canonical basis: exactly the coordinate translations e1 and e3.
    np.testing.assert_allclose(res.coefficients, np.eye(4)[[1, 3]], atol=1e-12)
    assert [g.describe() for g in res.generators] == ["e1", "e3"]
    assert float(res.singular_values[2]) > 1e-2
    # The raw (normalised) condition matrices: e1 satisfies both, e0 breaks the drift one.
    pts = jax.random.normal(jax.random.key(2), (8, 4))
    cond = nj.symmetry_conditions(sde, nj.Translations(4), pts)
    e = jnp.eye(4)
    assert float(jnp.max(jnp.abs(cond.drift @ e[1]))) == 0.0
    assert float(jnp.max(jnp.abs(cond.metric @ e[1]))) == 0.0
    assert float(jnp.linalg.norm(cond.drift @ e[0])) > 1e-2


def embedded_hopf(t, x, args):
    # Rotation-equivariant in the (x0, x1) plane, embedded in 4-D: f(R x) = R f(x) for
    # rotations R of that plane; the other components depend on the plane through r² only.
    r2 = x[0] ** 2 + x[1] ** 2
    plane = (1.0 - r2) * x[:2] + 0.7 * (J2 @ x[:2])
    return jnp.concatenate([plane, jnp.array([-x[2] + 0.5 * r2, -2.0 * x[3] + x[2] * r2])])


def test_rotation_equivariant_drift_embedded_in_4d():
    sde = nj.SDE(embedded_hopf, jnp.array([0.4, 0.4, 0.2, 0.3]))
    res = nj.find_symmetries(sde, nj.Rotations(4))
    assert len(res.generators) == 1
    np.testing.assert_allclose(res.coefficients, np.eye(6)[[0]], atol=1e-12)  # R01
    assert res.generators[0].describe() == "R01"
    assert float(res.singular_values[0]) < 1e-13 and float(res.singular_values[1]) > 1e-2
    # The same with translations and all linear maps in the family (redundantly spanning
    # the rotations twice): still only the rotation of the plane.
    fam = nj.Translations(4) | nj.Rotations(4) | nj.LinearGenerators(4)
    res2 = nj.find_symmetries(sde, fam)
    assert len(res2.generators) == 1 and int(res2.num_redundant) == 6
    M, b = map(np.asarray, res2.generators[0].affine())
    plane = np.zeros((4, 4))
    plane[0, 1] = plane[1, 0] = 1.0
    np.testing.assert_allclose(M, -M.T, atol=1e-12)
    np.testing.assert_allclose(M * (1 - plane), 0.0, atol=1e-12)  # rotates (x0, x1) only
    np.testing.assert_allclose(b, 0.0, atol=1e-12)
    assert np.all(np.isinf(np.asarray(res2.singular_values)[-6:]))


def test_anisotropic_noise_breaks_rotation():
    # Noise anisotropic in the plane: the drift keeps its rotation symmetry but the charge is
    # not conserved, so the rotation is only in the drift-only list.
    sde = nj.SDE(embedded_hopf, jnp.array([0.4, 0.1, 0.2, 0.3]))
    res = nj.find_symmetries(sde, nj.Rotations(4))
    assert len(res.generators) == 0
    assert len(res.drift_generators) == 1
    assert res.drift_generators[0].describe() == "R01"
    assert float(res.singular_values[0]) > 1e-2
    assert "drift-only" in str(res)


def test_state_dependent_noise():
    # D(x) = ½(1 + Σ w_i x_i²) I and f = −x: the condition (∂ξ/∂x)D + D(∂ξ/∂x)ᵀ = (ξ·∇)D keeps
    # the rotations that leave Σ w_i x_i² invariant. All three for w = (1, 1, 1); only the
    # rotation of the (x1, x2) plane for w = (1, 0, 0). Translations do not commute with f.
    sde = nj.SDE(lambda t, x, w: -x, lambda t, x, w: 0.5 * (1.0 + jnp.sum(w * x**2)))
    fam = nj.Translations(3) | nj.Rotations(3)
    iso = nj.find_symmetries(sde, fam, args=jnp.array([1.0, 1.0, 1.0]))
    assert sorted(g.describe() for g in iso.generators) == ["R01", "R02", "R12"]
    axis = nj.find_symmetries(sde, fam, args=jnp.array([1.0, 0.0, 0.0]))
    assert [g.describe() for g in axis.generators] == ["R12"]
    assert len(axis.drift_generators) == 3  # the noise breaks R01 and R02
    assert bool(axis.time_translation)


def breathing(t, x, args):
    # f = −(1 + a sin t) x + b sin t · S x, S symmetric and anisotropic: for b = 0 rotation
    # symmetric at every time; for b ≠ 0 only at t = 0.
    a, b = args
    S = jnp.diag(jnp.array([1.0, 0.0, -1.0]))
    return -(1.0 + a * jnp.sin(t)) * x + b * jnp.sin(t) * (S @ x)


def test_time_dependent_drift():
    sde = nj.SDE(breathing, 0.5)
    times = jnp.array([0.0, 0.5, 1.0, 2.0])
    fam = nj.Rotations(3)
    sym = nj.find_symmetries(sde, fam, times=times, args=jnp.array([0.5, 0.0]))
    assert len(sym.generators) == 3
    assert not bool(sym.time_translation)
    assert float(sym.drift_time_dependence) > 1e-2 and float(sym.noise_time_dependence) == 0.0
    # Broken away from t = 0: found when only t = 0 is checked, not at all times.
    only0 = nj.find_symmetries(sde, fam, args=jnp.array([0.5, 0.3]))
    assert len(only0.generators) == 3 and not bool(only0.time_translation)
    every = nj.find_symmetries(sde, fam, times=times, args=jnp.array([0.5, 0.3]))
    assert len(every.generators) == 0
    assert int(every.num_drift_symmetries) == 0
    # Time-independent: time translation holds.
    static = nj.find_symmetries(sde, fam, times=times, args=jnp.array([0.0, 0.0]))
    assert bool(static.time_translation) and float(static.time_dependence) == 0.0
    # Time-dependent isotropic noise keeps the rotations and breaks time translation.
    sde_t = nj.SDE(breathing, lambda t, x, args: 0.5 + 0.2 * jnp.sin(t))
    noisy = nj.find_symmetries(sde_t, fam, times=times, args=jnp.array([0.0, 0.0]))
    assert len(noisy.generators) == 3 and not bool(noisy.time_translation)
    assert float(noisy.noise_time_dependence) > 1e-2 and float(noisy.drift_time_dependence) == 0.0


def perturbed(t, x, eps):
    # Rotation-equivariant in 3-D plus ε times a field that breaks every rotation.
    r2 = jnp.sum(x**2)
    return (1.0 - r2) * x + eps * jnp.array([x[1] ** 2, x[0] * x[2], jnp.sin(x[0])])


SDE_PERT = nj.SDE(perturbed, 0.3)
POINTS3 = jax.random.normal(jax.random.key(1), (32, 3))


def _find_pert(eps):
    return nj.find_symmetries(SDE_PERT, nj.Rotations(3), points=POINTS3, args=eps)


def test_near_symmetry_singular_value_scales_with_perturbation():
    epss = jnp.array([1e-1, 1e-2, 1e-3, 1e-4])
    batched = jax.vmap(_find_pert)(epss)
    smin = np.asarray(batched.singular_values[:, 0])
    slope = fit_order(np.asarray(epss), smin)
    assert abs(slope - 1.0) < 0.05, (slope, smin)
    # Broken at every ε here; exact at ε = 0.
    assert np.all(np.asarray(batched.num_symmetries) == 0)
    exact = _find_pert(jnp.array(0.0))
    assert len(exact.generators) == 3
    assert float(exact.singular_values[-1]) < 1e-13
    # The near-symmetries are visible below a threshold.
    weak = _find_pert(epss[-1])
    near = weak.near_generators(1e-2)
    assert len(near) == 3 and near[0][0] == pytest.approx(float(smin[-1]), rel=1e-10)


def test_vmap_over_parameters_equals_loop_and_jit():
    epss = jnp.array([0.0, 1e-3, 0.3])
    batched = jax.vmap(_find_pert)(epss)
    jitted = jax.jit(_find_pert)
    for i, e in enumerate(epss):
        one = _find_pert(e)
        np.testing.assert_allclose(batched.singular_values[i], one.singular_values,
                                   rtol=1e-9, atol=1e-14)
        assert int(batched.num_symmetries[i]) == int(one.num_symmetries)
        # Same span (projectors), whatever the basis.
        Pb = batched.basis[i].T @ batched.basis[i]
        P1 = one.basis.T @ one.basis
        np.testing.assert_allclose(Pb, P1, atol=1e-10)
        jr = jitted(e)
        np.testing.assert_allclose(jr.singular_values, one.singular_values, rtol=1e-9, atol=1e-14)
    assert list(np.asarray(batched.num_symmetries)) == [3, 0, 0]
    with pytest.raises(ValueError, match="batched"):
        batched.generators
    first = jax.tree.map(lambda a: a[0], batched)
    assert len(first.generators) == 3
    np.testing.assert_array_equal(batched.mask[:, :3], [[True] * 3, [False] * 3, [False] * 3])
    with pytest.raises(ValueError, match="not available inside"):
        jax.jit(lambda e: len(_find_pert(e).generators))(epss[0])


# ---------------------------------------------------------------------------------------------
# A family of your own


def test_vector_field_basis():
    # f = ω J x (a pure rotation) with D = I in 2-D. Drift symmetries in this basis: the
    # rotation J x, the non-affine φ(r²) J x = r² J x, and the scaling x; of these only J x
    # preserves the noise. 2 J x duplicates J x (dropped as redundant).
    sde = nj.SDE(lambda t, x, args: 0.8 * (J2 @ x), 1.0)
    fields = [
        lambda x: J2 @ x,
        lambda x: jnp.sum(x**2) * (J2 @ x),
        lambda x: x,
        lambda x: x**2,
        lambda x: 2.0 * (J2 @ x),
    ]
    fam = nj.VectorFieldBasis(fields, names=["Jx", "r²Jx", "x", "x²", "2Jx"])
    res = nj.find_symmetries(sde, fam, points=POINTS3[:, :2])
    assert int(res.num_redundant) == 1
    assert len(res.generators) == 1 and len(res.drift_generators) == 3
    _is_orthonormal(res)
    g = res.generators[0]
    x = jnp.array([0.3, -1.2])
    # Coefficients orthonormal: Jx and 2Jx with c = (1, 2)/√5 in some sign.
    np.testing.assert_allclose(jnp.abs(g(x)), jnp.abs(np.sqrt(5.0) * (J2 @ x)), rtol=1e-12)
    with pytest.raises(ValueError, match="not an affine family"):
        g.affine()


# ---------------------------------------------------------------------------------------------
# Charges along converged most likely paths


def test_detected_charges_constant_along_paths():
    sde = SDE_HELIX
    res = nj.find_symmetries(sde, nj.Translations(3) | nj.Rotations(3))
    assert sorted(g.describe() for g in res.generators) == ["R01", "e2"]
    sol = helix_path(sde)
    report = nj.charge_report(sde, sol, res)
    rv = np.asarray(report.relative_variations)
    assert rv.shape == (2,) and np.all(rv < 1e-8), rv
    assert np.all(np.abs(np.asarray(report.means)) > 1e-2)  # noise-driven: nonzero charges
    assert np.all(np.asarray(report.conserved(1e-8)))
    # Time-independent system: the quasi-energy is conserved to O(h²).
    assert float(report.energy_relative_variation) < 1e-3
    # The report's numbers are nj.noether_charge and nj.energy.
    direct = eqx.filter_jit(
        lambda s, gs: ([nj.noether_charge(sde, s, g) for g in gs], nj.energy(sde, s))
    )(sol, res.generators)
    for q, q_direct in zip(report.charges, direct[0]):
        np.testing.assert_allclose(q, q_direct, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(report.energy, direct[1], rtol=1e-13, atol=1e-15)
    text = str(report)
    assert "R01" in text and "quasi-energy" in text
    # (ts, xs) pairs work the same.
    same = nj.charge_report(sde, (sol.ts, sol.xs), res.generators)
    np.testing.assert_allclose(same.charges, report.charges)
    # Jit-compatible.
    jitted = eqx.filter_jit(lambda s: nj.charge_report(sde, s, res.generators))(sol)
    np.testing.assert_allclose(jitted.relative_variations, report.relative_variations,
                               atol=1e-12)


def test_broken_charges_vary_along_paths():
    # Anisotropic noise in the plane: the rotation is a drift-only symmetry and its charge
    # varies; the translation along x2 stays conserved.
    sde = SDE_HELIX_ANISO
    res = nj.find_symmetries(sde, nj.Translations(3) | nj.Rotations(3))
    assert [g.describe() for g in res.generators] == ["e2"]
    broken = [g for g in res.drift_generators if g.describe() == "R01"]
    assert len(broken) == 1
    sol = helix_path(sde)
    report = nj.charge_report(sde, sol, res.generators + broken)
    rv = np.asarray(report.relative_variations)
    assert rv[0] < 1e-8 and rv[1] > 1e-3, rv
    # A zero charge is measured against its scale, not divided by zero.
    zero = nj.charge_report(sde, sol, lambda x: jnp.zeros(3))
    assert float(zero.relative_variations[0]) == 0.0


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs_raise():
    sde = nj.SDE(linear, 1.0)
    A = -jnp.eye(3)
    fam = nj.Rotations(3)
    with pytest.raises(ValueError, match=r"points.*shape \(P, d\)"):
        nj.find_symmetries(sde, fam, points=jnp.zeros(3), args=A)
    with pytest.raises(ValueError, match=r"3-dimensional"):
        nj.find_symmetries(sde, fam, points=jnp.zeros((5, 2)), args=A)
    with pytest.raises(ValueError, match="floating-point"):
        nj.find_symmetries(sde, fam, points=jnp.zeros((5, 3), dtype=int), args=A)
    with pytest.raises(ValueError, match="generator family"):
        nj.find_symmetries(sde, "rotations", args=A)
    with pytest.raises(ValueError, match="nj.SDE"):
        nj.find_symmetries(linear, fam, args=A)
    with pytest.raises(ValueError, match=r"drift.*x of shape \(4,\)"):
        nj.find_symmetries(sde, nj.Rotations(4), args=A)  # drift of a 3-D system
    with pytest.raises(ValueError, match=r"must return shape \(4,\)"):
        nj.find_symmetries(nj.SDE(lambda t, x, a: x[:3], 1.0), nj.Rotations(4))
    with pytest.raises(ValueError, match="times"):
        nj.find_symmetries(sde, fam, times=jnp.zeros((2, 2)), args=A)
    with pytest.raises(ValueError, match="rtol"):
        nj.find_symmetries(sde, fam, args=A, rtol=-1.0)
    with pytest.raises(ValueError, match="n_points"):
        nj.find_symmetries(sde, fam, args=A, n_points=0)
    with pytest.raises(ValueError, match="diffusion"):
        nj.find_symmetries(nj.SDE(linear, jnp.ones(2)), fam, args=A)
    with pytest.raises(ValueError, match="d >= 2"):
        nj.Rotations(1)
    with pytest.raises(ValueError, match="positive Python int"):
        nj.LinearGenerators(2.5)
    with pytest.raises(ValueError, match="different dimensions"):
        nj.Translations(2) | nj.Rotations(3)
    with pytest.raises(ValueError, match="not a callable"):
        nj.VectorFieldBasis([lambda x: x, 3.0])
    with pytest.raises(ValueError, match="does not know the state dimension"):
        nj.find_symmetries(sde, nj.VectorFieldBasis([lambda x: x]), args=A)
    with pytest.raises(ValueError, match=r"must return shape \(3,\)"):
        nj.find_symmetries(sde, nj.VectorFieldBasis([lambda x: x[:2]], d=3), args=A)
    sol = (jnp.linspace(0.0, 1.0, 5), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="PathSolution"):
        nj.charge_report(sde, jnp.zeros(3), [], args=A)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        nj.charge_report(sde, (jnp.zeros(4), jnp.zeros((5, 3))), [], args=A)
    with pytest.raises(ValueError, match="must return shape"):
        nj.charge_report(sde, sol, [lambda x: x[:2]], args=A)
    with pytest.raises(ValueError, match="not a callable"):
        nj.charge_report(sde, sol, [1.0], args=A)
    with pytest.raises(ValueError, match="momenta"):
        nj.charge_report(sde, sol, [], args=A, momenta=jnp.zeros((4, 3)))


def test_charges_constant_along_geometric_paths():
    """On an infinite-time (geometric) path with its recovered physical time, the detected
    charges are constant to O(h²) (the nodes are stationary only in the normal directions,
    so not to round-off), the quasi-energy is ≈ 0, and a broken symmetry's charge varies."""
    X0g, X1g = jnp.array([1.0, 0.0, 0.0]), jnp.array([-0.2, 0.4, 0.6])
    res = nj.find_symmetries(SDE_HELIX, nj.Translations(3) | nj.Rotations(3))
    assert sorted(g.describe() for g in res.generators) == ["R01", "e2"]
    var = []
    for n in (61, 121):
        sol = nj.minimize_geometric_action(SDE_HELIX, X0g, X1g, n_nodes=n)
        assert np.all(np.isfinite(np.asarray(sol.ts)))
        rep = nj.charge_report(SDE_HELIX, sol, res)
        var.append(np.asarray(rep.relative_variations))
        assert float(jnp.max(jnp.abs(rep.energy))) < 1e-2 * float(rep.energy_scale)
    assert np.all(var[1] < 2e-3)
    assert np.all(var[0] / var[1] > 3.0)  # O(h²)
    aniso = nj.minimize_geometric_action(SDE_HELIX_ANISO, X0g, X1g, n_nodes=61)
    broken = nj.charge_report(SDE_HELIX_ANISO, aniso, [lambda x: jnp.array([-x[1], x[0], 0.0])])
    assert float(broken.relative_variations[0]) > 1e-2


# A 2-D system (a rotation with rate `args`): its symmetry in `nj.Rotations(2)` is R01.
def _rotation2(t, x, w):
    return w * jnp.stack([x[1], -x[0]])


SDE_ROT2 = nj.SDE(_rotation2, 1.0)
POINTS2 = POINTS3[:8, :2]
RUNTIME_ERRORS = tuple(
    e
    for e in (getattr(eqx, "EquinoxRuntimeError", None), getattr(jax.errors, "JaxRuntimeError", None))
    if e is not None
) or (RuntimeError,)


def test_family_of_wrong_dimension():
    both = r"`nj.Rotations\(3\)` is 3-dimensional but the system is 2-dimensional"
    # The drift shows the dimension (it returns shape (2,) for x of shape (3,)) ...
    with pytest.raises(ValueError, match=both + r" \(its drift returns shape \(2,\)\)"):
        nj.find_symmetries(SDE_ROT2, nj.Rotations(3), args=1.0)
    with pytest.raises(ValueError, match=r"e\.g\. `nj\.Rotations\(2\)`"):
        nj.find_symmetries(SDE_ROT2, nj.Rotations(3), args=1.0)
    # ... or the constant diffusion does (a drift that works in any dimension).
    iso = nj.SDE(lambda t, x, a: -x, jnp.ones(2))
    with pytest.raises(ValueError, match=both + r" \(its diffusion has shape \(2,\)\)"):
        nj.find_symmetries(iso, nj.Rotations(3))
    with pytest.raises(ValueError, match=r"`nj.Translations\(3\) \| nj.Rotations\(3\)` is "
                       r"3-dimensional but the system is 2-dimensional"):
        nj.find_symmetries(iso, nj.Translations(3) | nj.Rotations(3))
    # With points of the family's dimension too.
    with pytest.raises(ValueError, match=both):
        nj.symmetry_conditions(SDE_ROT2, nj.Rotations(3), POINTS3[:4], args=1.0)
    with pytest.raises(ValueError, match=r"`points` has shape \(8, 2\) but the family "
                       r"`nj.Rotations\(3\)` is 3-dimensional"):
        nj.symmetry_conditions(SDE_ROT2, nj.Rotations(3), POINTS2, args=1.0)


def test_charge_report_family_of_wrong_dimension():
    sol = (jnp.linspace(0.0, 1.0, 5), jnp.zeros((5, 2)))  # a 2-D path
    g3 = nj.Generator(nj.Rotations(3), jnp.array([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"`nj.Rotations\(3\)` is 3-dimensional but the system "
                       r"is 2-dimensional \(a state has shape \(2,\)\)"):
        nj.charge_report(SDE_ROT2, sol, [g3], args=1.0)
    # A family is not a generator: it needs coefficients.
    with pytest.raises(ValueError, match=r"is a space of generators, not one generator"):
        nj.charge_report(SDE_ROT2, sol, nj.Rotations(2), args=1.0)


@pytest.mark.parametrize("value", [jnp.nan, jnp.inf], ids=["nan", "inf"])
def test_nonfinite_inputs_raise(value):
    fam = nj.Rotations(2)
    with pytest.raises(ValueError, match=r"`nj.find_symmetries`: `args` contains NaN or infinity"):
        nj.find_symmetries(SDE_ROT2, fam, args=jnp.asarray(value))
    # The message names the leaf of a pytree.
    with pytest.raises(ValueError, match=r"`args\['w'\]\[1\]` contains NaN or infinity"):
        nj.find_symmetries(
            nj.SDE(lambda t, x, a: _rotation2(t, x, a["w"][0]), 1.0), fam,
            args={"w": [1.0, value], "n": 3},
        )
    with pytest.raises(ValueError, match=r"`points` contains NaN or infinity"):
        nj.find_symmetries(SDE_ROT2, fam, points=POINTS2.at[3, 1].set(value), args=1.0)
    with pytest.raises(ValueError, match=r"`times` contains NaN or infinity"):
        nj.find_symmetries(SDE_ROT2, fam, times=jnp.array([0.0, value]), args=1.0)
    with pytest.raises(ValueError, match=r"`nj.symmetry_conditions`: `args` contains NaN"):
        nj.symmetry_conditions(SDE_ROT2, fam, POINTS2, args=jnp.asarray(value))


def _log_drift(t, x, c):
    return -jnp.log(x + c)  # finite only where x > −c


def test_nonfinite_values_raise_at_run_time():
    # Under jit (and vmap) the values are unknown at trace time: an error at run time, never
    # a normal-looking answer ("0 symmetries"). One compile for the three calls.
    find = eqx.filter_jit(
        lambda c: nj.find_symmetries(nj.SDE(_log_drift, 1.0), nj.Rotations(2), points=POINTS2,
                                     args=c)
    )
    assert np.all(np.isfinite(np.asarray(find(jnp.array(10.0)).singular_values)))
    with pytest.raises(RUNTIME_ERRORS, match=r"`args`, `points` or `times` contain NaN"):
        jax.block_until_ready(find(jnp.array(jnp.nan)))
    # Finite inputs, but a drift that is not finite at some of the points.
    with pytest.raises(RUNTIME_ERRORS, match=r"the drift or the diffusion .* is NaN or infinite"):
        jax.block_until_ready(find(jnp.array(0.0)))


def test_bad_dtypes_and_too_few_points():
    fam = nj.Rotations(2)
    with pytest.raises(ValueError, match=r"`points` must be a floating-point array, got complex"):
        nj.find_symmetries(SDE_ROT2, fam, points=POINTS2.astype(jnp.complex128), args=1.0)
    with pytest.raises(ValueError, match=r"`points` must be a floating-point array, got dtype bool"):
        nj.find_symmetries(SDE_ROT2, fam, points=POINTS2 > 0, args=1.0)
    with pytest.raises(ValueError, match=r"`times` must be real \(float or int\), got complex"):
        nj.find_symmetries(SDE_ROT2, fam, times=jnp.array([0.0, 1.0j]), args=1.0)
    with pytest.raises(ValueError, match=r"`times` must be real \(float or int\), got dtype bool"):
        nj.find_symmetries(SDE_ROT2, fam, times=jnp.array([True]), args=1.0)
    with pytest.raises(ValueError, match=r"`rtol` must be a positive, finite float"):
        nj.find_symmetries(SDE_ROT2, fam, args=1.0, rtol=float("inf"))
    # 1 point in 2-D gives 2 drift conditions for the 4 coefficients of LinearGenerators(2).
    with pytest.raises(ValueError, match=r"too few points for the family "
                       r"`nj.LinearGenerators\(2\)`: its 4 coefficients .* give only 2"):
        nj.find_symmetries(SDE_ROT2, nj.LinearGenerators(2), points=POINTS2[:1], args=1.0)
