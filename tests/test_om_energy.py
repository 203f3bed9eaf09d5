"""The Onsager–Machlup quasi-energy `H_OM = pᵀDp + fᵀp − ½∇·f` (docs/conventions.md): conserved
along an OM most likely path to O(h²), equal to `−∂S*_OM/∂T`, and used by the charges of a
solution that minimised the OM action (`sol.functional`)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

GAMMA = 0.8  # rotation strength (args)
X0, X1, T = jnp.array([-1.0, 0.0]), jnp.array([0.6, 0.4]), 2.0
NS = (101, 201, 401)


def drift(t, x, g):
    # A double well in x, a cubic restoring force in y and a rotation: nonlinear, with
    # ∇·f = −1 − 3x² − 3y² varying along the path (so H_OM and the FW H really differ).
    return jnp.array([x[0] - x[0] ** 3 - g * x[1], -2.0 * x[1] + g * x[0] - x[1] ** 3])


SDE = nj.SDE(drift, 0.5)
OM = nj.OnsagerMachlup()
FW = nj.FreidlinWentzell()

energy = eqx.filter_jit(nj.energy)
momentum = eqx.filter_jit(nj.momentum)


def fw_formula(sol):
    """`pᵀDp + fᵀp` at the (OM) node momenta of `sol`: the wrong quasi-energy on an OM path."""
    p = momentum(SDE, sol, GAMMA)
    return jax.vmap(lambda t, x, q: FW.hamiltonian(SDE, t, x, q, GAMMA))(sol.ts, sol.xs, p)


def spread(E):
    return float(jnp.ptp(E) / jnp.abs(jnp.mean(E)))


@pytest.fixture(scope="module")
def om_paths():
    return {
        n: nj.minimize_action(SDE, X0, X1, 0.0, T, n_nodes=n, action=OM, args=GAMMA)
        for n in NS
    }


def test_solution_carries_its_functional(om_paths):
    sol = om_paths[101]
    assert sol.converged
    assert sol.functional == OM
    # Without `action=` the charges use the solution's functional ...
    E = energy(SDE, sol, GAMMA)
    np.testing.assert_array_equal(E, energy(SDE, sol, GAMMA, action=OM))
    np.testing.assert_array_equal(momentum(SDE, sol, GAMMA), momentum(SDE, sol, GAMMA, action=OM))
    assert float(nj.action_of(SDE, sol, GAMMA)) == pytest.approx(float(sol.action), rel=1e-13)
    report = nj.charge_report(SDE, sol, [], GAMMA)
    np.testing.assert_allclose(report.energy, E, rtol=1e-13)
    # ... an explicit `action=` wins ...
    E_fw = energy(SDE, sol, GAMMA, action=FW)
    assert float(jnp.max(jnp.abs(E_fw - E))) > 0.1
    np.testing.assert_allclose(nj.charge_report(SDE, sol, [], GAMMA, action=FW).energy, E_fw,
                               rtol=1e-13)
    # ... and a raw (ts, xs) pair defaults to Freidlin–Wentzell.
    np.testing.assert_array_equal(energy(SDE, (sol.ts, sol.xs), GAMMA), E_fw)


def test_om_energy_conserved_to_second_order(om_paths):
    spreads = [spread(energy(SDE, om_paths[n], GAMMA)) for n in NS]
    ratios = [a / b for a, b in zip(spreads, spreads[1:])]
    # Measured: 2.09e-4, 5.23e-5, 1.31e-5 (ratios 4.00, 4.00).
    assert spreads[-1] < 2e-5, spreads
    for r in ratios:
        assert 3.7 < r < 4.3, (spreads, ratios)
    # The Freidlin–Wentzell formula on the same path is far from constant (relative 2.7).
    fw_spread = spread(fw_formula(om_paths[401]))
    assert fw_spread > 1.0
    assert fw_spread > 100 * spreads[0], (fw_spread, spreads)


def test_dS_dT_is_minus_om_energy(om_paths):
    # Central differences of the minimal OM action in the duration T, at n = 401.
    n, dT = 401, 1e-3
    S = lambda t1: float(
        nj.minimize_action(SDE, X0, X1, 0.0, t1, n_nodes=n, action=OM, args=GAMMA).action
    )
    fd = (S(T + dT) - S(T - dT)) / (2 * dT)
    H = float(jnp.mean(energy(SDE, om_paths[n], GAMMA)))
    # Measured: relative gap 1.4e-5 (H_OM ≈ 2.7326).
    assert fd == pytest.approx(-H, rel=1e-4)
    # The FW formula misses by O(1).
    assert abs(fd + float(jnp.mean(fw_formula(om_paths[n])))) > 0.1 * abs(fd)


def test_om_hamilton_equations_reproduce_the_path(om_paths):
    # ṗ = −∂H_OM/∂x includes + ½∇(∇·f): the OM Hamilton flow from the path's first node and
    # momentum follows the OM path (to its O(h²) accuracy); the FW flow does not.
    sol = om_paths[201]
    p = momentum(SDE, sol, GAMMA)
    ts, ref = sol.ts[::10], sol.xs[::10]
    kw = dict(solver=diffrax.Tsit5(), rtol=1e-9, atol=1e-9, step_at_ts=False, throw=False)
    xs, _ = nj.integrate_hamilton(SDE, sol.xs[0], p[0], ts, GAMMA, action=sol.functional, **kw)
    err = float(jnp.max(jnp.abs(xs - ref)))
    assert err < 2e-3, err  # measured 5.9e-4 at n = 201
    # The FW flow from the same data leaves the path (and blows up after t ≈ 0.6): compare
    # over the first half second.
    xs_fw, _ = nj.integrate_hamilton(SDE, sol.xs[0], p[0], ts, GAMMA, **kw)
    err_fw = float(jnp.max(jnp.abs(xs_fw[:6] - ref[:6])))
    assert err_fw > 0.3, err_fw  # measured 0.65


def test_hamiltonian_is_the_legendre_transform():
    # Closed forms of FreidlinWentzell and OnsagerMachlup against the generic Legendre
    # transform of AbstractAction (a subclass that defines only the Lagrangian).
    class GenericFW(nj.AbstractAction):
        def lagrangian(self, sde, t, x, xdot, args):
            return FW.lagrangian(sde, t, x, xdot, args)

    class GenericOM(nj.AbstractAction):
        def lagrangian(self, sde, t, x, xdot, args):
            return OM.lagrangian(sde, t, x, xdot, args)

    D = jnp.array([[0.5, 0.1], [0.1, 0.3]])
    sde = nj.SDE(drift, D)
    x, p = jnp.array([0.3, -0.7]), jnp.array([1.2, 0.4])
    f = drift(0.0, x, GAMMA)
    H_fw = float(p @ D @ p + f @ p)
    div = -1.0 - 3 * x[0] ** 2 - 3 * x[1] ** 2
    assert float(nj.hamiltonian(sde, 0.0, x, p, GAMMA)) == pytest.approx(H_fw, rel=1e-14)
    assert float(GenericFW().hamiltonian(sde, 0.0, x, p, GAMMA)) == pytest.approx(H_fw, rel=1e-12)
    H_om = H_fw - 0.5 * float(div)
    assert float(nj.hamiltonian(sde, 0.0, x, p, GAMMA, action=OM)) == pytest.approx(H_om, rel=1e-14)
    assert float(GenericOM().hamiltonian(sde, 0.0, x, p, GAMMA)) == pytest.approx(H_om, rel=1e-12)
    # Hutchinson: the functional's own estimator is used. For this drift zᵀ(∂f)z is exact with
    # Rademacher probes (antisymmetric off-diagonal part); for a symmetric coupling it is not.
    hut = nj.OnsagerMachlup(divergence="hutchinson", num_probes=2, key=jax.random.key(0))
    assert float(hut.hamiltonian(sde, 0.0, x, p, GAMMA)) == pytest.approx(H_om, rel=1e-14)
    coupled = nj.SDE(lambda t, x, args: jnp.array([-x[0] + x[1] ** 2, -x[1] + x[0] ** 2]), D)
    exact = OM.hamiltonian(coupled, 0.0, x, p, None)
    estimate = hut.hamiltonian(coupled, 0.0, x, p, None)
    fw_part = FW.hamiltonian(coupled, 0.0, x, p, None)
    assert float(exact - fw_part) == pytest.approx(1.0, rel=1e-14)  # −½ ∇·f = −½ (−2)
    z = jax.random.rademacher(jax.random.key(0), (2, 2), dtype=x.dtype)
    jac = jax.jacfwd(lambda y: coupled.f(0.0, y, None))(x)
    hut_div = float(jnp.mean(jnp.einsum("ki,ij,kj->k", z, jac, z)))
    assert float(estimate - fw_part) == pytest.approx(-0.5 * hut_div, rel=1e-14)
    # With these two probes zᵀ(∂f)z picks up the symmetric off-diagonal part: −2 − 0.8.
    assert hut_div == pytest.approx(-2.8, rel=1e-14)
