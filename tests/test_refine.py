"""The default grid (`nj.Refine`: nested grids, warm starts, an error estimate) and the
small-block linear algebra of the Newton solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from noether_jax._solution import RESULTS
from noether_jax._linalg import _blocktri
from noether_jax._mesh import halve_steps

# OU: dx = −k x dt + sqrt(2D) dW; S* = k (x1 − x0 e^{−kT})² / (2D (1 − e^{−2kT})).
K, D, T = 1.0, 0.5, 3.0
OU = nj.SDE(lambda t, x, args: -args * x, D)
X0, X1 = jnp.array([0.0]), jnp.array([1.0])


def ou_exact(k=K):
    return k * (1.0 - 0.0) ** 2 / (2 * D * (1 - np.exp(-2 * k * T)))


def test_default_call_converges_with_error_estimate_and_no_recompile():
    traces = []

    def drift(t, x, args):
        # Count traces (not the concrete shape checks) to see compilations.
        if isinstance(x, jax.core.Tracer):
            traces.append(1)
        return -args * x

    sde = nj.SDE(drift, D)
    sol = nj.minimize_action(sde, X0, X1, 0.0, T, args=K)
    assert bool(sol.converged)
    assert sol.xs.shape == (801, 1)
    err = abs(float(sol.action) - ou_exact())
    est = float(sol.stats["error_estimate"])
    # The estimate is the leading error term: within a few percent of the true error.
    assert 0.9 * err < est < 1.1 * err, (err, est)
    assert err < 1e-6 * ou_exact()
    # Richardson removes the h² term.
    assert abs(float(sol.stats["action_extrapolated"]) - ou_exact()) < 1e-3 * err
    # The default is `nj.Refine()` with 801 nodes: same compiled program, same numbers.
    n_first = len(traces)
    same = nj.minimize_action(sde, X0, X1, 0.0, T, args=K, grid_controller=nj.Refine(), n_nodes=801)
    assert float(same.action) == float(sol.action)
    np.testing.assert_array_equal(np.asarray(same.ts), np.asarray(sol.ts))
    # New values (endpoints, times, parameters) reuse the compilation.
    other = nj.minimize_action(sde, X0, jnp.array([0.5]), 0.0, 2.0, args=1.7)
    assert bool(other.converged)
    assert len(traces) == n_first


@pytest.mark.parametrize("n", [3, 4, 9])
def test_halving_interpolates_cubics_exactly_on_uneven_grids(n):
    # Cubic (on 3 nodes: quadratic) paths are reproduced at the new nodes, whatever the
    # spacing; linear interpolation is off by O(h²). The old nodes are kept.
    s = jnp.sort(jnp.concatenate([jnp.array([0.0, 1.0]),
                                  jax.random.uniform(jax.random.key(n), (n - 2,))]))
    deg = min(3, n - 1)
    path = lambda s: jnp.stack([s**deg - 2 * s, 1 + s**2], axis=1)
    s_fine, xs = halve_steps(s, path(s), cubic=True)
    np.testing.assert_allclose(np.asarray(xs), np.asarray(path(s_fine)), atol=1e-14)
    np.testing.assert_array_equal(np.asarray(xs[::2]), np.asarray(path(s)))
    _, xs_lin = halve_steps(s, path(s))
    assert float(jnp.max(jnp.abs(xs_lin - path(s_fine)))) > 1e-3


def test_warm_started_levels_take_few_newton_steps():
    # Maier–Stein (β = 10, D = 0.1, T = 10) to a point near the saddle: the finest level,
    # warm-started from the cubic interpolation of the coarser one, converges in a few
    # steps (6–7 before: linear interpolation and a candidate only after a small step);
    # the action is the single-level solve's.
    def ms(t, z, beta):
        return jnp.stack([z[0] - z[0]**3 - beta * z[0] * z[1]**2, -(1 + z[0]**2) * z[1]])

    sde = nj.SDE(ms, 0.1)
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([0.3, 0.2])
    ctrl = nj.Refine(levels=3, adapt=None, rtol=float("inf"))
    nested = nj.minimize_action(sde, x0, x1, 0.0, 10.0, args=10.0, n_nodes=101,
                                grid_controller=ctrl)
    single = nj.minimize_action(sde, x0, x1, 0.0, 10.0, args=10.0, n_nodes=101)
    assert int(nested.stats["num_steps"]) <= 4
    assert abs(float(nested.action) - float(single.action)) < 1e-12


def test_refine_reports_grid_too_coarse():
    grid = nj.Refine(levels=2, rtol=1e-12, atol=0.0, adapt=None)
    sol = nj.minimize_action(OU, X0, X1, 0.0, T, args=K, grid_controller=grid, n_nodes=41, throw=False)
    assert not bool(sol.converged)
    assert sol.result == RESULTS.grid_too_coarse
    # The path itself is the converged discrete minimiser on the finest grid.
    fixed = nj.minimize_action(
        OU, X0, X1, 0.0, T, args=K, n_nodes=41, init=sol.xs, throw=False
    )
    assert abs(float(sol.action) - float(fixed.action)) < 1e-12
    with pytest.raises(Exception, match="discretisation error"):
        nj.minimize_action(OU, X0, X1, 0.0, T, args=K, grid_controller=grid, n_nodes=41)


def test_refine_vmap_equals_loop_and_grad():
    grid = nj.Refine(levels=2, adapt=None)
    ks = jnp.array([0.5, 1.0, 2.0])
    solve = lambda k: nj.minimize_action(OU, X0, X1, 0.0, T, args=k, grid_controller=grid, n_nodes=41)
    batch = jax.vmap(solve)(ks)
    for i, k in enumerate(ks):
        one = solve(k)
        assert float(batch.action[i]) == pytest.approx(float(one.action), rel=1e-12)
        assert float(batch.stats["error_estimate"][i]) == pytest.approx(
            float(one.stats["error_estimate"]), rel=1e-6
        )
    # Envelope theorem on the finest grid: dS*/dk against central differences.
    g = jax.grad(lambda k: solve(k).action)(1.0)
    eps = 1e-5
    fd = (solve(1.0 + eps).action - solve(1.0 - eps).action) / (2 * eps)
    assert float(g) == pytest.approx(float(fd), rel=1e-6)


def test_refine_bad_options():
    with pytest.raises(ValueError, match="multiple of"):
        nj.minimize_action(OU, X0, X1, 0.0, T, args=K, grid_controller=nj.Refine(), n_nodes=100)
    with pytest.raises(ValueError, match="levels"):
        nj.Refine(levels=1)
    with pytest.raises(ValueError, match="rtol"):
        nj.Refine(rtol=-1.0)
    with pytest.raises(ValueError, match="adapt"):
        nj.Refine(adapt="yes")


@pytest.mark.parametrize("d", [1, 2, 3, 9])
def test_block_cholesky_small_and_lapack(d):
    # d ≤ 8 runs unrolled elementwise code, d = 9 LAPACK: both solve, both detect
    # indefiniteness.
    rng = np.random.default_rng(d)
    m = 30
    a = rng.normal(size=(m, d, d))
    diag = jnp.asarray(a @ a.transpose(0, 2, 1) + 3 * d * np.eye(d))
    off = jnp.asarray(rng.normal(size=(m - 1, d, d)))
    rhs = jnp.asarray(rng.normal(size=(m, d)))
    x, ok = _blocktri.solve(diag, off, rhs)
    assert bool(ok)
    dense = np.zeros((m * d, m * d))
    for j in range(m):
        dense[j * d:(j + 1) * d, j * d:(j + 1) * d] = diag[j]
    for j in range(m - 1):
        dense[j * d:(j + 1) * d, (j + 1) * d:(j + 2) * d] = off[j]
        dense[(j + 1) * d:(j + 2) * d, j * d:(j + 1) * d] = off[j].T
    ref = np.linalg.solve(dense, np.asarray(rhs).ravel())
    np.testing.assert_allclose(np.asarray(x).ravel(), ref, rtol=1e-10, atol=1e-12)
    assert np.min(np.linalg.eigvalsh(dense)) > 0
    # Shift below the smallest eigenvalue: not positive definite.
    shift = np.min(np.linalg.eigvalsh(dense)) + 1.0
    _, ok = _blocktri.solve(diag - shift * jnp.eye(d), off, rhs)
    assert not bool(ok)
    # Under vmap (the batched solver) the same numbers.
    xb, okb = jax.vmap(_blocktri.solve)(diag[None], off[None], rhs[None])
    np.testing.assert_allclose(np.asarray(xb[0]), np.asarray(x), rtol=1e-13, atol=1e-14)
