"""Most likely paths against closed forms (docs/conventions.md), and second-order convergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import fit_order, linear_action, linear_momentum

NS = (11, 21, 41, 81)


def test_linear_1d_closed_form_and_order():
    a, D, T = 0.8, 0.3, 2.0
    x0, x1 = jnp.array([1.5]), jnp.array([-0.7])
    sde = nj.SDE(lambda t, x, args: -a * x, D)
    exact, _ = linear_action([[-a]], [[D]], x0, x1, T)
    # 1-D check of the closed form itself: G = D (1 − e^{−2aT}) / a.
    G = D * (1 - np.exp(-2 * a * T)) / a
    assert exact == pytest.approx(0.5 * (-0.7 - np.exp(-a * T) * 1.5) ** 2 / G, rel=1e-12)
    errors = []
    for n in NS:
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=n)
        assert bool(sol.converged)
        errors.append(float(sol.action) - exact)
    order = fit_order([T / (n - 1) for n in NS], errors)
    assert 1.9 < order < 2.1, (order, errors)
    assert abs(errors[-1]) < 2e-4 * exact


def test_linear_2d_nonnormal_full_D():
    A = jnp.array([[-1.0, 3.0], [0.0, -0.4]])  # non-normal
    D = jnp.array([[0.5, 0.2], [0.2, 0.3]])  # full, anisotropic
    x0, x1, T = jnp.array([1.0, -0.5]), jnp.array([-1.0, 2.0]), 1.5
    sde = nj.SDE(lambda t, x, args: A @ x, D)
    exact, pT = linear_action(A, D, x0, x1, T)
    errors, perr = [], []
    for n in NS:
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=n)
        assert bool(sol.converged)
        assert np.array_equal(sol.xs[0], x0) and np.array_equal(sol.xs[-1], x1)
        errors.append(float(sol.action) - exact)
        p = nj.momentum(sde, sol)
        p_exact = linear_momentum(A, pT, T, sol.ts)
        perr.append(np.max(np.abs(p - p_exact)) / np.max(np.abs(p_exact)))
    hs = [T / (n - 1) for n in NS]
    assert 1.9 < fit_order(hs, errors) < 2.1, errors
    assert 1.8 < fit_order(hs, perr) < 2.2, perr
    assert perr[-1] < 1e-3


def test_linear_path_is_linear_in_endpoints():
    A = jnp.array([[-1.0, 3.0], [0.0, -0.4]])
    sde = nj.SDE(lambda t, x, args: A @ x, jnp.array([0.5, 0.2]))
    solve = lambda a, b: nj.minimize_action(sde, a, b, 0.0, 1.0, n_nodes=21).xs
    a1, b1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 2.0])
    a2, b2 = jnp.array([-0.3, 0.5]), jnp.array([1.0, -1.0])
    combo = solve(2 * a1 - 3 * a2, 2 * b1 - 3 * b2)
    np.testing.assert_allclose(combo, 2 * solve(a1, b1) - 3 * solve(a2, b2), atol=1e-10)


@pytest.mark.parametrize(
    "D", [0.7, jnp.array([0.7, 0.2]), jnp.array([[0.7, 0.1], [0.1, 0.2]])], ids=["scalar", "diag", "full"]
)
def test_constant_drift_straight_line(D):
    v = jnp.array([0.3, -1.2])
    x0, x1, T = jnp.array([0.5, 0.0]), jnp.array([-1.0, 2.0]), 2.0
    sde = nj.SDE(lambda t, x, args: v, D)
    sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=21)
    line = x0 + (sol.ts[:, None] / T) * (x1 - x0)
    np.testing.assert_allclose(sol.xs, line, atol=1e-12)
    Dm = np.diag(np.broadcast_to(np.asarray(D), (2,))) if np.ndim(D) < 2 else np.asarray(D)
    u = np.asarray((x1 - x0) / T - v)
    p_exact = 0.5 * np.linalg.solve(Dm, u)
    p = nj.momentum(sde, sol)
    np.testing.assert_allclose(p, np.broadcast_to(p_exact, p.shape), rtol=1e-10, atol=1e-12)
    S_exact = 0.25 * T * u @ np.linalg.solve(Dm, u)
    assert float(sol.action) == pytest.approx(S_exact, rel=1e-12)


def test_diagonal_and_full_D_agree():
    f = lambda t, x, args: jnp.array([x[0] - x[0] ** 3, -x[1] * (1 + x[0] ** 2)])
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([0.5, 0.3])
    s_diag = nj.minimize_action(nj.SDE(f, jnp.array([0.3, 0.1])), x0, x1, 0.0, 3.0, n_nodes=41)
    s_full = nj.minimize_action(nj.SDE(f, jnp.diag(jnp.array([0.3, 0.1]))), x0, x1, 0.0, 3.0, n_nodes=41)
    s_call = nj.minimize_action(
        nj.SDE(f, lambda t, x, args: jnp.array([0.3, 0.1])), x0, x1, 0.0, 3.0, n_nodes=41
    )
    np.testing.assert_allclose(s_diag.xs, s_full.xs, atol=1e-10)
    np.testing.assert_allclose(s_diag.xs, s_call.xs, atol=1e-10)
    assert float(s_diag.action) == pytest.approx(float(s_full.action), rel=1e-12)


def test_time_dependent_noise_closed_form():
    # f = 0, D(t) = 0.2 + t²: S* = |Δx|² / (4 ∫D dt); the path moves at speed ∝ D(t).
    T = 2.0
    sde = nj.SDE(lambda t, x, args: jnp.zeros_like(x), lambda t, x, args: 0.2 + t**2)
    x0, x1 = jnp.array([0.0, 1.0]), jnp.array([1.5, -0.5])
    integral = 0.2 * T + T**3 / 3
    exact = float(jnp.sum((x1 - x0) ** 2)) / (4 * integral)
    errors = []
    for n in NS:
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=n)
        errors.append(float(sol.action) - exact)
    assert 1.9 < fit_order([T / (n - 1) for n in NS], errors) < 2.1, errors
    frac = (0.2 * sol.ts + sol.ts**3 / 3) / integral
    np.testing.assert_allclose(sol.xs, x0 + frac[:, None] * (x1 - x0), atol=2e-4)


def test_state_dependent_noise_closed_form():
    # Multiplicative noise D(x) = x², f = 0: with y = ln x, S = ¼∫ẏ² dt, so
    # S* = (ln x1 − ln x0)² / (4T) and the path is x0 (x1/x0)^{t/T}.
    T = 1.0
    sde = nj.SDE(lambda t, x, args: jnp.zeros_like(x), lambda t, x, args: x**2)
    x0, x1 = jnp.array([0.5]), jnp.array([4.0])
    exact = np.log(8.0) ** 2 / (4 * T)
    errors = []
    for n in NS:
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=n)
        errors.append(float(sol.action) - exact)
    assert 1.9 < fit_order([T / (n - 1) for n in NS], errors) < 2.1, errors
    np.testing.assert_allclose(sol.xs[:, 0], 0.5 * 8.0 ** (sol.ts / T), rtol=2e-3)


def test_nonuniform_grid():
    a, D, T = 0.8, 0.3, 4.0
    x0, x1 = jnp.array([1.5]), jnp.array([-0.7])
    sde = nj.SDE(lambda t, x, args: -a * x, D)
    exact, _ = linear_action([[-a]], [[D]], x0, x1, T)
    errors = []
    for n in NS:
        s = np.linspace(0, 1, n)
        grid = s + 0.15 * np.sin(np.pi * s)  # smooth, increasing, 0 → 1
        sol = nj.minimize_action(sde, x0, x1, 0.0, T, grid=grid)
        np.testing.assert_allclose(sol.ts, T * grid, atol=1e-12)
        errors.append(float(sol.action) - exact)
    assert 1.9 < fit_order([T / (n - 1) for n in NS], errors) < 2.1, errors


def test_long_duration_relaxation():
    # T ≫ relaxation time 1/a: the path sits at the attractor most of the time.
    a, D, T = 1.0, 0.1, 50.0
    sde = nj.SDE(lambda t, x, args: -a * x, D)
    x0, x1 = jnp.array([1.0]), jnp.array([1.0])
    exact, _ = linear_action([[-a]], [[D]], x0, x1, T)
    sol = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=801)
    assert bool(sol.converged)
    # Quasipotential limit: V(x1)/D − ... = a x1² / (2D) for the uphill leg.
    assert float(sol.action) == pytest.approx(exact, rel=2e-3)
    assert exact == pytest.approx(a * 1.0 / (2 * D), rel=1e-6)


def test_onsager_machlup_linear_offset():
    A = jnp.array([[-1.0, 3.0], [0.0, -0.4]])
    D = jnp.array([[0.5, 0.2], [0.2, 0.3]])
    x0, x1, T = jnp.array([1.0, -0.5]), jnp.array([-1.0, 2.0]), 1.5
    sde = nj.SDE(lambda t, x, args: A @ x, D)
    fw = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=41)
    om = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=41, action=nj.OnsagerMachlup())
    assert float(om.action - fw.action) == pytest.approx(0.5 * float(jnp.trace(A)) * T, rel=1e-12)
    np.testing.assert_allclose(om.xs, fw.xs, atol=1e-10)
    # Hutchinson: unbiased; with Rademacher probes the error comes from off-diagonal A only.
    hut = nj.OnsagerMachlup(divergence="hutchinson", num_probes=4000, key=jax.random.key(1))
    omh = nj.minimize_action(sde, x0, x1, 0.0, T, n_nodes=41, action=hut)
    assert float(omh.action - fw.action) == pytest.approx(0.5 * float(jnp.trace(A)) * T, abs=0.05 * T)
    # For a diagonal Jacobian Hutchinson with Rademacher probes is exact.
    sde_d = nj.SDE(lambda t, x, args: jnp.array([-x[0] - x[0] ** 3, -2 * x[1]]), 0.5)
    a = nj.minimize_action(sde_d, x0, x1, 0.0, T, n_nodes=41, action=nj.OnsagerMachlup())
    b = nj.minimize_action(
        sde_d, x0, x1, 0.0, T, n_nodes=41,
        action=nj.OnsagerMachlup(divergence="hutchinson", num_probes=3),
    )
    assert float(a.action) == pytest.approx(float(b.action), rel=1e-12)
