"""Momenta, quasi-energy and Noether charges along converged paths; reverse time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import fit_order


def hopf(t, x, args):
    # Rotation-equivariant in the plane: f(Rx) = R f(x).
    r2 = jnp.sum(x**2)
    J = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    return (1.0 - r2) * x + args * (J @ x)


def maier_stein(t, x, args):
    beta = 10.0
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


def test_angular_momentum_constant_to_roundoff():
    sde = nj.SDE(hopf, 0.3)
    x0, x1 = jnp.array([1.0, 0.0]), jnp.array([-0.2, 0.4])
    sol = nj.minimize_action(sde, x0, x1, 0.0, 2.0, n_nodes=41, args=0.7)
    L = nj.angular_momentum(sde, sol, args=0.7)
    assert L.shape == (41, 2, 2)
    np.testing.assert_allclose(L, -jnp.swapaxes(L, 1, 2), atol=1e-14)
    Lz = L[:, 0, 1]
    assert abs(float(Lz.mean())) > 0.1  # a noise-driven path: nonzero charge
    assert float(jnp.max(jnp.abs(Lz - Lz.mean()))) < 1e-9 * float(jnp.abs(Lz).max())
    # Same charge through the generic Noether charge with ξ = A x, A = −Aᵀ:
    # 𝐋_ij is the charge of ξ = x_i e_j − x_j e_i (the counter-clockwise rotation for (0, 1)).
    A = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    Q = nj.noether_charge(sde, sol, lambda x: A @ x, args=0.7)
    np.testing.assert_allclose(Q, Lz, atol=1e-12)
    # The continuum momentum ½D⁻¹(ẋ − f) at midpoints agrees to O(h²) with the node momenta.
    p = nj.momentum(sde, sol, args=0.7)
    v = jnp.diff(sol.xs, axis=0) / jnp.diff(sol.ts)[:, None]
    xm = 0.5 * (sol.xs[1:] + sol.xs[:-1])
    pm = 0.5 * (v - jax.vmap(lambda x: hopf(0.0, x, 0.7))(xm)) / 0.3
    assert float(jnp.max(jnp.abs(pm - 0.5 * (p[1:] + p[:-1])))) < 0.02 * float(jnp.abs(p).max())


def test_broken_rotation_symmetry_visible():
    # Anisotropic noise breaks the rotation symmetry: the charge varies at O(1).
    sde = nj.SDE(hopf, jnp.array([0.3, 0.05]))
    sol = nj.minimize_action(sde, jnp.array([1.0, 0.0]), jnp.array([-0.2, 0.4]), 0.0, 2.0,
                             n_nodes=41, args=0.7)
    Lz = nj.angular_momentum(sde, sol, args=0.7)[:, 0, 1]
    assert float(jnp.max(Lz) - jnp.min(Lz)) > 0.05 * float(jnp.abs(Lz).max())


def test_quasi_momentum_for_translation_invariant_coordinate():
    # f independent of x[1] and D constant: p·e_1 is conserved.
    f = lambda t, x, args: jnp.array([jnp.sin(x[0]) - x[0], 0.5 - 0.3 * jnp.cos(x[0])])
    D = jnp.array([[0.4, 0.1], [0.1, 0.2]])
    sde = nj.SDE(f, D)
    sol = nj.minimize_action(sde, jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]), 0.0, 1.5, n_nodes=41)
    q = nj.noether_charge(sde, sol, lambda x: jnp.array([0.0, 1.0]))
    q0 = nj.noether_charge(sde, sol, lambda x: jnp.array([1.0, 0.0]))
    assert float(jnp.ptp(q)) < 1e-10 * float(jnp.abs(q).max())
    assert float(jnp.ptp(q0)) > 1e-2 * float(jnp.abs(q0).max())


def test_energy_constant_and_minus_dS_dT():
    sde = nj.SDE(maier_stein, 0.1)
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([0.0, 0.3])
    T = 3.0
    gaps, spreads = [], []
    ns = (41, 81, 161)
    for n in ns:
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=n)
        assert sol.functional == nj.FreidlinWentzell()  # the default functional
        E = nj.energy(sde, sol)
        dSdT = jax.grad(lambda t1: nj.minimize_action(sde, x0, x1, 0.0, t1, n_nodes=n).action)(T)
        gaps.append(float(E.mean() + dSdT))
        spreads.append(float(jnp.ptp(E)))
    assert abs(gaps[-1]) < 1e-3 * abs(float(E.mean()))
    assert spreads[-1] < 1e-3 * abs(float(E.mean()))
    hs = [T / (n - 1) for n in ns]
    assert fit_order(hs, gaps) > 1.8, gaps
    assert fit_order(hs, spreads) > 1.8, spreads
    # Finite-difference check of ∂S*/∂T itself on the finest grid.
    S = lambda t1: float(nj.minimize_action(sde, x0, x1, 0.0, t1, n_nodes=ns[-1]).action)
    fd = (S(T + 1e-4) - S(T - 1e-4)) / 2e-4
    assert float(dSdT) == pytest.approx(fd, rel=1e-6)
    # The FW quasi-energy is pᵀDp + fᵀp (docs/conventions.md), whether the functional comes from
    # the solution, is explicit, or is the default of a raw (ts, xs) pair.
    p = nj.momentum(sde, sol)
    f = jax.vmap(lambda x: maier_stein(0.0, x, None))(sol.xs)
    np.testing.assert_allclose(E, jnp.sum(p * 0.1 * p + f * p, axis=-1), rtol=1e-13)
    np.testing.assert_array_equal(nj.energy(sde, (sol.ts, sol.xs)), E)
    np.testing.assert_array_equal(nj.energy(sde, sol, action=nj.FreidlinWentzell()), E)


def test_energy_not_conserved_with_explicit_time_dependence():
    f = lambda t, x, args: -x + jnp.array([jnp.sin(2 * t), 0.0])
    sde = nj.SDE(f, 0.5)
    sol = nj.minimize_action(sde, jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]), 0.0, 3.0, n_nodes=81)
    E = nj.energy(sde, sol)
    assert float(jnp.ptp(E)) > 0.1 * float(jnp.abs(E).max())


def test_reverse_time_equals_forward_reversed():
    # A process run backwards in time (t1 < t0) has the same Lagrangian with |dt|.
    f = lambda t, x, args: -x + 0.3 * jnp.array([jnp.sin(t), jnp.cos(t)]) * x[::-1]
    sde = nj.SDE(f, lambda t, x, args: 0.2 + 0.1 * t)
    a, b = jnp.array([0.5, -1.0]), jnp.array([1.5, 0.5])
    back = nj.minimize_action(sde, a, b, 2.0, 0.5, n_nodes=31)
    fwd = nj.minimize_action(sde, b, a, 0.5, 2.0, n_nodes=31)
    assert float(back.action) > 0
    assert float(back.action) == pytest.approx(float(fwd.action), rel=1e-12)
    np.testing.assert_allclose(back.ts, fwd.ts[::-1], atol=1e-14)
    np.testing.assert_allclose(back.xs, fwd.xs[::-1], atol=1e-10)
    # p = ½D⁻¹(dx/dt − f) is the same function of time on both.
    np.testing.assert_allclose(nj.momentum(sde, back), nj.momentum(sde, fwd)[::-1], atol=1e-10)


def test_reverse_time_closed_form():
    # f = -a x run from t0 = T down to t1 = 0: per docs/conventions.md the action is the same
    # integral over |dt|, so S* is the forward closed form with the endpoints' times swapped.
    a, D, T = 0.5, 0.4, 2.0
    sde = nj.SDE(lambda t, x, args: -a * x, D)
    xT, x_end = jnp.array([2.0]), jnp.array([0.3])
    sol = nj.minimize_action(sde, xT, x_end, T, 0.0, n_nodes=81)
    G = D * (1 - np.exp(-2 * a * T)) / a
    exact = 0.5 * (2.0 - np.exp(-a * T) * 0.3) ** 2 / G
    assert float(sol.action) == pytest.approx(exact, rel=1e-3)
