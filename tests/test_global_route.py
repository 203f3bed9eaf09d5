"""The global most likely path at a long duration: candidate routes through the attractors,
solved side by side, the lowest converged one returned (the paper's 2-unit network)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from noether_jax.cli._cases import _attractor_network as case

X0, X1 = jnp.asarray(case.X0), jnp.asarray(case.X1)
SDE = case.network_sde()
T = 40.0
N = 201


@pytest.fixture(scope="module")
def candidates():
    return nj.route_candidates(SDE, X0, X1, 0.0, T, n_nodes=N, args=case.WIDTH)


def test_candidates_are_routes_through_the_four_attractors(candidates):
    paths, labels = candidates
    # Straight line; via the two endpoint attractors; via each of the two others; via both
    # others in both orders.
    assert paths.shape == (6, N, 2) and len(labels) == 6
    assert labels[0] == "straight line"
    np.testing.assert_allclose(paths[:, 0], np.broadcast_to(X0, (6, 2)))
    np.testing.assert_allclose(paths[:, -1], np.broadcast_to(X1, (6, 2)))
    # Each candidate passes through its attractors (waypoints at equal times).
    hh = jnp.array([2.35, 2.35])
    via_hh = [i for i, lab in enumerate(labels) if lab.count("attractor") == 3]
    assert any(float(jnp.min(jnp.linalg.norm(paths[i] - hh, axis=1))) < 1e-3 for i in via_hh)


@pytest.fixture(scope="module")
def default_T40():
    # The acceptance call: no `init`, no grid, nothing but the defaults.
    return nj.minimize_action(SDE, X0, X1, 0.0, T, args=case.WIDTH)


def test_defaults_find_the_global_route_at_T40(default_T40, candidates):
    best = default_T40
    _, labels = candidates
    assert bool(best.converged)
    S = best.stats["candidate_actions"]
    ok = best.stats["candidate_converged"]
    j = int(best.stats["candidate_index"])
    assert S.shape == (6,) and bool(ok[j])
    assert float(best.action) == pytest.approx(float(S[j]), rel=1e-14)
    assert float(best.action) == float(jnp.min(jnp.where(ok, S, jnp.inf)))
    # The case study's Richardson-extrapolated action on adaptive grids, 6.61086, within
    # the stated error estimate (the default tolerance is 1e-4 relative).
    err = float(best.stats["error_estimate"])
    assert err < 1e-4 * 6.61086
    assert abs(float(best.action) - 6.61086) < 3 * err + 2e-5
    # The straight line's own local minimum is higher; the best route waits at the
    # high-high attractor (2.35, 2.35) and never visits low-low (0.35, 0.35).
    assert float(S[0]) > float(best.action) + 0.01 and j != 0
    d = lambda p: jnp.min(jnp.linalg.norm(best.xs - jnp.asarray(p), axis=1))
    assert float(d([2.35, 2.35])) < 0.05 and float(d([0.35, 0.35])) > 0.5


def test_an_unconverged_lower_route_is_reported():
    """The lowest *converged* candidate is not the answer when another candidate stopped
    unconverged at a lower action (a descent only lowers it further): the call says so.
    At T = 1 the route through the low-low state is a converged local minimum (28.449)
    above the direct one (27.955); with 4 steps the straight line is already below it but
    not converged."""
    T1 = 1.0
    paths, labels = nj.route_candidates(SDE, X0, X1, 0.0, T1, n_nodes=N, args=case.WIDTH)
    assert labels[2].count("attractor") == 3  # x0 → a3 → a1 (low-low) → a0 → x1
    opts = dict(n_nodes=N, args=case.WIDTH, throw=False)
    low = nj.minimize_action(SDE, X0, X1, 0.0, T1, init=paths[2], max_steps=200, **opts)
    assert bool(low.converged) and float(low.action) == pytest.approx(28.449, abs=2e-3)
    cands = jnp.stack([low.xs, paths[0]])
    sol = nj.minimize_action(SDE, X0, X1, 0.0, T1, candidates=cands, max_steps=4, **opts)
    S, ok = sol.stats["candidate_actions"], sol.stats["candidate_converged"]
    assert ok.tolist() == [True, False] and float(S[1]) < float(S[0])
    assert sol.result == nj.RESULTS.lower_route_unconverged and not bool(sol.converged)
    assert int(sol.stats["candidate_index"]) == 0
    np.testing.assert_allclose(sol.xs, low.xs, rtol=0, atol=1e-9)  # the local minimum
    with pytest.raises(Exception, match="not established as the global"):
        nj.minimize_action(SDE, X0, X1, 0.0, T1, candidates=cands, max_steps=4,
                           n_nodes=N, args=case.WIDTH)
    # Given the steps, the straight line converges to the lower minimum: no doubt left.
    full = nj.minimize_action(SDE, X0, X1, 0.0, T1, candidates=cands, max_steps=200, **opts)
    assert bool(full.converged) and int(full.stats["candidate_index"]) == 1
    assert float(full.action) == pytest.approx(27.955, abs=2e-3)


def _ou(t, x, a):
    return -a * x


def test_candidates_under_jit_equal_eager():
    sde = nj.SDE(_ou, 0.5)
    x0, x1 = jnp.array([-1.0, 0.5]), jnp.array([1.0, 0.2])
    line = jnp.linspace(x0, x1, 21)
    bent = line.at[10].add(jnp.array([0.0, 2.0]))
    paths = jnp.stack([bent, line])
    opts = dict(n_nodes=21, throw=False)
    eager = nj.minimize_action(sde, x0, x1, 0.0, 2.0, candidates=paths, args=1.0, **opts)
    jitted = jax.jit(
        lambda p, a: nj.minimize_action(sde, x0, x1, 0.0, 2.0, candidates=p, args=a, **opts)
    )(paths, jnp.asarray(1.0))
    # A linear drift has one minimum: both candidates reach it; the first is returned.
    assert bool(jnp.all(eager.stats["candidate_converged"]))
    assert int(eager.stats["candidate_index"]) in (0, 1)
    assert float(jitted.action) == pytest.approx(float(eager.action), rel=1e-12)
    single = nj.minimize_action(sde, x0, x1, 0.0, 2.0, args=1.0, **opts)
    assert float(eager.action) == pytest.approx(float(single.action), rel=1e-10)
    # Under jit the search cannot run (the number of attractors is data): the straight
    # line alone, no candidate stats.
    traced = jax.jit(
        lambda a: nj.minimize_action(sde, x0, x1, 0.0, 2.0, args=a, candidates="routes", **opts)
    )(jnp.asarray(1.0))
    assert "candidate_actions" not in traced.stats
    assert float(traced.action) == pytest.approx(float(single.action), rel=1e-12)


def test_bad_candidates():
    with pytest.raises(ValueError, match="candidates"):
        nj.minimize_action(SDE, X0, X1, 0.0, T, candidates="global", n_nodes=N)
    with pytest.raises(ValueError, match=r"shape \(c, n_nodes, 2\)"):
        nj.minimize_action(SDE, X0, X1, 0.0, T, candidates=jnp.zeros((N, 2)), n_nodes=N)
    with pytest.raises(ValueError, match="not both"):
        nj.minimize_action(
            SDE, X0, X1, 0.0, T, candidates=jnp.zeros((2, N, 2)), init=jnp.zeros((N, 2))
        )
    with pytest.raises(ValueError, match="real floats"):
        nj.minimize_action(SDE, X0, X1, 0.0, T, candidates=jnp.zeros((2, N, 2), jnp.int32))


def test_time_dependent_drift_gets_the_straight_line_only():
    sde = nj.SDE(lambda t, x, a: -(x - jnp.sin(t)), 1.0)
    paths, labels = nj.route_candidates(
        sde, jnp.zeros(2), jnp.ones(2), 0.0, 5.0, n_nodes=11
    )
    assert paths.shape == (1, 11, 2) and labels == ["straight line"]
