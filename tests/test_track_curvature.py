"""`nj.BlockNewton(track_curvature=...)`: cold starts carry the inverse iteration for the
direction of most negative curvature in every step (it takes a path off a symmetric saddle
of the action); warm starts (`warm_started`: the finer levels of `nj.Refine`,
`nj.fixed_time_path`) do not, which changes none of their iterates, and a saddle reached
from a warm start is still certified as one and left.

Maier–Stein with β = 10: the path along the x-axis is a saddle point of the action; the
minima leave the axis (two mirror-image routes)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import noether_jax as nj
from helpers import maier_stein
from noether_jax._mesh import halve_steps
from noether_jax._solver import warm_started

BETA, T = 10.0, 10.0
X0 = jnp.array([-1.0, 0.0])


SDE = nj.SDE(maier_stein, 0.1)


def _solve(x1, solver=None, **kw):
    return nj.minimize_action(SDE, X0, jnp.asarray(x1), 0.0, T, args=BETA, solver=solver,
                              candidates=None, throw=False, **kw)


def test_warm_starts_do_not_track_cold_starts_do():
    assert nj.BlockNewton().track_curvature
    assert not warm_started(nj.BlockNewton()).track_curvature


def test_an_untracked_warm_start_takes_the_same_steps():
    # A finer level from the coarse solution, cubically interpolated (as `nj.Refine` does).
    x1 = jnp.array([0.19, -0.22])
    coarse = _solve(x1, n_nodes=26)
    _, init = halve_steps(jnp.linspace(0.0, 1.0, 26), coarse.xs, cubic=True)
    tracked, untracked = (
        _solve(x1, nj.BlockNewton(lam0=1e-6, search_damping=False, track_curvature=tc),
               init=init)
        for tc in (True, False)
    )
    assert bool(tracked.converged) and bool(untracked.converged)
    assert int(untracked.stats["num_steps"]) == int(tracked.stats["num_steps"])
    np.testing.assert_allclose(float(untracked.action), float(tracked.action),
                               rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(untracked.xs), np.asarray(tracked.xs),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("x1", [[1.0, 0.0], [0.0, 0.0]])
def test_a_warm_start_on_a_saddle_is_certified_and_left(x1):
    # Start on the axis, at the saddle point of the action a quasi-Newton method stops at.
    axis = _solve(x1, optx.BFGS(rtol=1e-10, atol=1e-10), n_nodes=26, max_steps=4000)
    assert float(jnp.max(jnp.abs(axis.xs[:, 1]))) == 0.0
    cold = _solve(x1, n_nodes=26)
    warm = _solve(x1, warm_started(nj.BlockNewton()), init=axis.xs)
    assert bool(warm.converged)
    assert int(warm.stats["num_restarts"]) >= 1  # the certificate found the saddle
    assert float(jnp.max(jnp.abs(warm.xs[:, 1]))) > 0.3  # and the solve left the axis
    np.testing.assert_allclose(float(warm.action), float(cold.action), rtol=1e-10)
    assert float(axis.action) > 1.4 * float(warm.action)


def test_an_untracked_cold_start_on_the_axis_never_claims_convergence():
    # Why cold starts track: from the straight line on the axis, an untracked solve has
    # nothing that would leave it. It must then fail, not report the saddle.
    sol = _solve([1.0, 0.0], eqx.tree_at(lambda s: s.track_curvature, nj.BlockNewton(), False),
                 n_nodes=26)
    assert float(jnp.max(jnp.abs(sol.xs[:, 1]))) == 0.0
    assert not bool(sol.converged)
    assert sol.result != nj.RESULTS.successful
