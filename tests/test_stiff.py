"""Stiff problems: steep sigmoid drifts (the seed paper's 2-unit rate network) and durations
much longer than the relaxation time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import fit_order


def rate_network(t, z, width):
    # τẋ = μ0 + A s((x−c)/n) − I s((y−c)/n) − x, and symmetrically for y (τ = 1).
    s = lambda u: jax.nn.sigmoid((u - 1.5) / width)
    x, y = z
    return jnp.array([1.25 + 2 * s(x) - 0.9 * s(y) - x, 1.25 + 2 * s(y) - 0.9 * s(x) - y])


SDE = nj.SDE(rate_network, 0.4**2)  # D = σ²/τ, σ = 0.4
X0, X1 = jnp.array([3.0, 0.1]), jnp.array([0.1, 3.0])


@pytest.mark.parametrize("width,T", [(0.01, 1.0), (0.05, 10.0)])
def test_steep_sigmoid_converges_under_refinement(width, T):
    ns = (201, 401, 801)
    actions = []
    for n in ns:
        sol = nj.minimize_action(SDE, X0, X1, 0.0, T, n_nodes=n, args=width, max_steps=400)
        assert bool(sol.converged), (n, sol.stats)
        assert float(sol.stats["grad_norm"]) < 1e-8
        actions.append(float(sol.action))
    # Richardson: successive differences shrink 4× per halving of h (second order).
    diffs = np.abs(np.diff(actions))
    order = np.log2(diffs[0] / diffs[1])
    assert 1.6 < order < 2.4, actions
    extrapolated = actions[-1] + (actions[-1] - actions[-2]) / 3
    assert abs(actions[-1] - extrapolated) < 1e-3 * extrapolated
    # The default call (no n_nodes: nested adapted grids) reaches the continuum action to
    # its own error estimate, which is below the default 1e-4 relative tolerance.
    auto = nj.minimize_action(SDE, X0, X1, 0.0, T, args=width)
    est = float(auto.stats["error_estimate"])
    assert bool(auto.converged) and est < 1e-4 * extrapolated
    assert abs(float(auto.action) - extrapolated) < 2 * est + 1e-5 * extrapolated
    assert abs(float(auto.stats["action_extrapolated"]) - extrapolated) < 1e-5 * extrapolated


def test_long_duration_nonlinear():
    # T = 30 relaxation times on a bistable gradient system: the path waits near the
    # attractor, climbs to the saddle and relaxes; S* → ΔV/D from above as T grows.
    V = lambda x: x[0] ** 4 / 4 - x[0] ** 2 / 2 + x[1] ** 2 / 2
    drift = lambda t, x, args: -jax.grad(V)(x)
    D = 0.1
    sde = nj.SDE(drift, D)
    a, b = jnp.array([-1.0, 0.0]), jnp.array([0.0, 0.0])
    sol = nj.minimize_action(sde, a, b, 0.0, 30.0, n_nodes=601)
    assert bool(sol.converged)
    barrier = (V(b) - V(a)) / D
    assert float(sol.action) == pytest.approx(float(barrier), rel=1e-3)
    assert float(sol.action) >= float(barrier) * (1 - 1e-4)
    # Quasi-energy tends to zero for the infinite-time path.
    E = nj.energy(sde, sol)
    assert float(jnp.max(jnp.abs(E))) < 1e-2 * float(barrier) / 30.0
