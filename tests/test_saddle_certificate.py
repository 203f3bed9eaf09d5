"""A solver that stops wherever the gradient vanishes (optx.BFGS, nj.LBFGS, any optimistix
minimiser) must not report a saddle point of the action as converged.

Maier–Stein with β = 10: the most likely paths from (−1, 0) to the saddle (0, 0) and to the
other attractor (1, 0) leave the x-axis (the two mirror-image routes), and the path along the
axis is a saddle point of the action whose gradient has no component off the axis. From the
straight line, a quasi-Newton method stays on the axis and stops there, with an action about
47% too high; the second-order test of the driver reports `RESULTS.saddle_point`.
"""

import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import noether_jax as nj
from noether_jax._problem import FixedTimeProblem
from noether_jax._solver import is_minimum

BETA, D, T = 10.0, 0.1, 10.0
X0 = jnp.array([-1.0, 0.0])


def _ms(t, x, beta):
    return jnp.stack([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


SDE = nj.SDE(_ms, D)
SOLVERS = {"optx.BFGS": optx.BFGS(rtol=1e-10, atol=1e-10), "LBFGS": nj.LBFGS()}


def _solve(x1, solver=None, **kw):
    kw = {"n_nodes": 41, **kw}
    return nj.minimize_action(SDE, X0, jnp.asarray(x1), 0.0, T, args=BETA, solver=solver,
                              max_steps=4000, throw=False, candidates=None, **kw)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_quasi_newton_on_the_symmetry_axis_is_a_saddle_not_converged(name):
    ref = _solve([1.0, 0.0])
    assert bool(ref.converged)
    assert float(jnp.max(jnp.abs(ref.xs[:, 1]))) > 0.1  # the minimum leaves the axis
    sol = _solve([1.0, 0.0], SOLVERS[name])
    assert float(jnp.max(jnp.abs(sol.xs[:, 1]))) < 1e-8  # held on the axis
    assert float(sol.stats["grad_norm"]) < 1e-6  # stationary
    assert float(sol.action) > 1.3 * float(ref.action)
    assert sol.result == nj.RESULTS.saddle_point
    assert not bool(sol.converged)


def test_saddle_point_raises_with_throw():
    with pytest.raises(Exception, match="saddle point"):
        nj.minimize_action(SDE, X0, jnp.array([1.0, 0.0]), 0.0, T, n_nodes=41, args=BETA,
                           solver=SOLVERS["optx.BFGS"], max_steps=4000, candidates=None)


def test_a_minimum_found_by_bfgs_stays_converged():
    ref = _solve([0.8, 0.3])
    sol = _solve([0.8, 0.3], SOLVERS["optx.BFGS"])
    assert sol.result == nj.RESULTS.successful and bool(sol.converged)
    assert abs(float(sol.action) - float(ref.action)) < 1e-9


def test_is_minimum_on_the_axis_and_at_the_minimum():
    ts = jnp.linspace(0.0, T, 41)
    x1 = jnp.array([1.0, 0.0])
    problem = FixedTimeProblem(nj.FreidlinWentzell(), SDE, ts, X0, x1, BETA)
    axis = _solve(x1, SOLVERS["optx.BFGS"]).xs[1:-1]
    minimum = _solve(x1).xs[1:-1]
    assert not bool(is_minimum(problem, axis))
    assert bool(is_minimum(problem, minimum))


def test_geometric_solve_on_the_axis_is_a_saddle_not_converged():
    x1 = jnp.array([0.0, 0.0])
    ref = nj.minimize_geometric_action(SDE, X0, x1, n_nodes=21, args=BETA)
    sol = nj.minimize_geometric_action(SDE, X0, x1, n_nodes=21, args=BETA,
                                       solver=SOLVERS["optx.BFGS"], throw=False)
    assert bool(ref.converged)
    # On the axis the geometric action is the quasipotential along it, ΔV / D = 2.5.
    assert np.isclose(float(sol.action), 0.25 / D, rtol=1e-2)
    assert float(sol.action) > 1.3 * float(ref.action)
    assert sol.result == nj.RESULTS.saddle_point and not bool(sol.converged)


def test_is_minimum_above_64_dimensions_uses_the_krylov_check():
    """d = 66: Maier–Stein in the first two coordinates, 64 decoupled OU coordinates
    (`−x`, at rest at 0). The axis path and the minimum of the 2-D problem, padded with
    zeros, are the saddle point and the minimum of the 66-D problem; the Hessian blocks
    (66 × 66) are not formed, the CG check finds the negative curvature."""
    d = 66

    def drift(t, x, beta):
        return jnp.concatenate([_ms(t, x[:2], beta), -x[2:]])

    sde = nj.SDE(drift, D)
    ts = jnp.linspace(0.0, T, 41)
    x1 = jnp.array([1.0, 0.0])
    pad = lambda xs: jnp.pad(xs, ((0, 0), (0, d - 2)))  # noqa: E731
    problem = FixedTimeProblem(nj.FreidlinWentzell(), sde, ts, pad(X0[None])[0],
                               pad(x1[None])[0], BETA)
    axis = pad(_solve(x1, SOLVERS["optx.BFGS"]).xs[1:-1])
    minimum = pad(_solve(x1).xs[1:-1])
    assert float(jnp.max(jnp.abs(problem.grad(axis)))) < 1e-6  # stationary in 66-D too
    assert not bool(is_minimum(problem, axis))
    assert bool(is_minimum(problem, minimum))


def test_provisional_newton_takes_one_step_fewer_and_never_stops_on_the_axis():
    """`BlockNewton(certify=False)` (the coarser levels of `nj.Refine`) takes a candidate
    reached in the quadratic regime without the certifying step; from the straight line on
    the axis (a saddle of the action) it still leaves the axis for the minimum."""
    for x1 in ([0.8, 0.3], [1.0, 0.0]):
        ref = _solve(x1, nj.BlockNewton())
        prov = _solve(x1, nj.BlockNewton(certify=False))
        assert bool(ref.converged) and bool(prov.converged)
        assert float(jnp.max(jnp.abs(prov.xs[:, 1]))) > 0.1
        assert abs(float(prov.action) - float(ref.action)) < 1e-8 * float(ref.action)
        np.testing.assert_allclose(np.asarray(prov.xs), np.asarray(ref.xs), atol=1e-6)
        assert int(prov.stats["num_steps"]) <= int(ref.stats["num_steps"])
        # Warm-started near the optimum (a finer level's start): 2 steps instead of 3.
        init = ref.xs + 1e-3 * jnp.sin(jnp.linspace(0.0, 3.0, 41))[:, None]
        warm = [
            _solve(x1, nj.BlockNewton(lam0=1e-6, certify=c), init=init, n_nodes=None)
            for c in (True, False)
        ]
        assert [int(w.stats["num_steps"]) for w in warm] == [3, 2]
        assert all(bool(w.converged) for w in warm)
        assert abs(float(warm[1].action) - float(ref.action)) < 1e-12 * float(ref.action)
    # Nested grids: the coarse levels are provisional, the finest is certified, the answer
    # is that of a certified solve on the finest grid.
    ctrl = nj.Refine(levels=3, adapt=None, rtol=float("inf"))
    nested = nj.minimize_action(SDE, X0, jnp.array([0.8, 0.3]), 0.0, T, n_nodes=41, args=BETA,
                                grid_controller=ctrl, throw=False, candidates=None)
    direct = _solve([0.8, 0.3], nj.BlockNewton(rtol=1e-12, atol=1e-12))
    assert bool(nested.converged)
    assert abs(float(nested.action) - float(direct.action)) < 1e-8 * float(direct.action)
