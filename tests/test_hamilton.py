"""A check by a different route: Hamilton's equations, integrated with diffrax from a path's
initial point and momentum, reproduce the most likely path found by minimising the action,
and conserve the detected charges to the integrator's tolerance."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from symmetry_systems import N_NODES, SDE_HELIX, X0, helix_path

# Compiled once (eager evaluation of the discrete Legendre transform is slow to dispatch).
momentum = eqx.filter_jit(nj.momentum)


def test_hamilton_reproduces_the_path_and_conserves_charges():
    sde = SDE_HELIX
    sol = helix_path(sde)  # n = 61 nodes over T = 2 (h = 1/30)
    p = momentum(sde, sol)
    xs, ps = nj.integrate_hamilton(sde, sol.xs[0], p[0], sol.ts)
    assert xs.shape == ps.shape == sol.xs.shape
    scale = float(jnp.max(jnp.abs(sol.xs)))
    # The path's discretisation error is O(h²): measured 3.5e-4 at n = 61, 8.9e-5 at
    # n = 121, 2.2e-5 at n = 241 (4× per halving of h); the same for the momenta.
    err_x = float(jnp.max(jnp.abs(xs - sol.xs)))
    err_p = float(jnp.max(jnp.abs(ps - p)))
    assert err_x < 1e-3 * scale and err_p < 2e-3 * float(jnp.max(jnp.abs(p))), (err_x, err_p)
    np.testing.assert_allclose(xs[-1], sol.xs[-1], atol=1e-3)  # lands on the endpoint
    # Second order: on the twice finer path (compared at the same times, every other node)
    # the error is 4× smaller.
    fine = helix_path(sde, n_nodes=2 * N_NODES - 1)
    p_fine = momentum(sde, fine)
    xs_f, _ = nj.integrate_hamilton(sde, fine.xs[0], p_fine[0], fine.ts[::2])
    err_fine = float(jnp.max(jnp.abs(xs_f - fine.xs[::2])))
    order = np.log2(err_x / err_fine)
    assert 1.9 < order < 2.1, (err_x, err_fine, order)

    # Charges along the integrated trajectory: constant to the integrator's tolerance
    # (rtol = atol = 1e-10, 8th order, steps ending on every saved time), for the detected
    # symmetries and for the quasi-energy (time-independent system).
    res = nj.find_symmetries(sde, nj.Translations(3) | nj.Rotations(3))
    report = nj.charge_report(sde, (sol.ts, xs), res, momenta=ps)
    assert np.all(np.asarray(report.relative_variations) < 1e-10), report.relative_variations
    assert float(report.energy_relative_variation) < 1e-10
    # Same means as along the discrete path (to its O(h²) accuracy).
    on_path = nj.charge_report(sde, sol, res)
    np.testing.assert_allclose(report.means, on_path.means, rtol=2e-3)
    # The Hamiltonian is the quasi-energy of docs/conventions.md.
    H = eqx.filter_jit(jax.vmap(lambda t, x, q: nj.hamiltonian(sde, t, x, q, None)))(sol.ts, xs, ps)
    np.testing.assert_allclose(H, report.energy, rtol=1e-14)

    # Backwards in time from the final point and momentum: the same path.
    xr, pr = nj.integrate_hamilton(sde, sol.xs[-1], p[-1], sol.ts[::-1])
    assert float(jnp.max(jnp.abs(xr[::-1] - sol.xs))) < 1e-3 * scale
    np.testing.assert_allclose(xr[-1], X0, atol=1e-3)


def test_hamilton_closed_form_linear():
    # f = A x, constant D: p(t) = e^{Aᵀ(T − t)} p(T) and ẋ = A x + 2 D p, against a matrix
    # exponential of the joint linear system (docs/conventions.md closed form).
    from scipy.linalg import expm

    A = np.array([[-1.0, 2.0], [0.0, -0.5]])
    D = np.array([[0.4, 0.1], [0.1, 0.2]])
    sde = nj.SDE(lambda t, x, args: args @ x, jnp.asarray(D))
    x0, p0 = np.array([1.0, -0.5]), np.array([0.3, 0.7])
    ts = np.linspace(0.0, 1.5, 7)
    xs, ps = nj.integrate_hamilton(sde, x0, p0, ts, jnp.asarray(A), solver=diffrax.Tsit5())
    K = np.block([[A, 2 * D], [np.zeros((2, 2)), -A.T]])
    exact = np.stack([expm(K * t) @ np.concatenate([x0, p0]) for t in ts])
    np.testing.assert_allclose(np.concatenate([xs, ps], axis=1), exact, rtol=1e-8, atol=1e-9)
    # vmap over initial momenta equals the single solves.
    p0s = jnp.stack([jnp.asarray(p0), -2.0 * jnp.asarray(p0)])
    xb, pb = jax.vmap(
        lambda q: nj.integrate_hamilton(sde, x0, q, ts, jnp.asarray(A), solver=diffrax.Tsit5())
    )(p0s)
    np.testing.assert_allclose(xb[0], xs, rtol=1e-12, atol=1e-14)
    exact2 = np.stack([expm(K * t) @ np.concatenate([x0, -2.0 * p0]) for t in ts])
    np.testing.assert_allclose(np.concatenate([xb[1], pb[1]], axis=1), exact2, rtol=1e-8, atol=1e-9)


def test_hamilton_bad_inputs():
    sde = SDE_HELIX
    ts = jnp.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="same shape"):
        nj.integrate_hamilton(sde, jnp.zeros(3), jnp.zeros(2), ts)
    with pytest.raises(ValueError, match=r"`x0` must have shape \(d,\)"):
        nj.integrate_hamilton(sde, jnp.zeros((3, 1)), jnp.zeros(3), ts)
    with pytest.raises(ValueError, match="at least 2 times"):
        nj.integrate_hamilton(sde, jnp.zeros(3), jnp.zeros(3), jnp.zeros(1))
    with pytest.raises(ValueError, match="strictly"):
        nj.integrate_hamilton(sde, jnp.zeros(3), jnp.zeros(3), jnp.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match=r"return shape \(2,\)"):
        nj.integrate_hamilton(sde, jnp.zeros(2), jnp.zeros(2), ts)
    with pytest.raises(ValueError, match="diffrax solver"):
        nj.integrate_hamilton(sde, jnp.zeros(3), jnp.zeros(3), ts, solver="rk4")
