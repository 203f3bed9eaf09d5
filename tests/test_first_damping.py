"""`nj.BlockNewton`'s first-damping search (`search_damping=True`, the default): where the
Hessian at the first path is far from positive definite, `init` raises the damping as the
rejected first steps would (`λ ← λν`, `ν ← 2ν`) with factorisations alone. The solve then
takes exactly the steps it takes without the search, less those rejections."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import maier_stein
from noether_jax._action import FreidlinWentzell
from noether_jax._problem import FixedTimeProblem, problem_value
from noether_jax._solver import warm_started

BETA, T, N = 10.0, 10.0, 26


SDE = nj.SDE(maier_stein, 0.1)
X0 = jnp.array([-1.0, 0.0])


def _solve(x1, search, dtype=jnp.float64):
    return nj.minimize_action(
        SDE, X0.astype(dtype), jnp.asarray(x1, dtype), 0.0, T, n_nodes=N,
        args=jnp.asarray(BETA, dtype), solver=nj.BlockNewton(search_damping=search),
        candidates=None, throw=False,
    )


def _skipped_rejections(x1):
    """How many rejections the search replaces: `ν = 2^{k+1}` after `k` of them."""
    ts = jnp.linspace(0.0, T, N)
    x1 = jnp.asarray(x1)
    problem = FixedTimeProblem(FreidlinWentzell(), SDE, ts, X0, x1, jnp.asarray(BETA))
    y0 = X0 + jnp.linspace(0.0, 1.0, N)[1:-1, None] * (x1 - X0)
    state = nj.BlockNewton().init(problem_value, y0, problem, {}, None, None, frozenset())
    return int(round(np.log2(float(state.nu)))) - 1, state


@pytest.mark.parametrize("x1", [[0.19, -0.22], [-0.19, 0.10], [0.04, -0.01]])
def test_search_skips_the_first_rejections_and_changes_nothing_else(x1):
    k, state = _skipped_rejections(x1)
    assert k >= 2  # the straight line near the saddle is far from convex
    assert bool(state.rejected) and bool(state.fresh)
    np.testing.assert_allclose(float(state.lam), 1e-3 * 2.0 ** (k * (k + 1) / 2), rtol=1e-12)
    with_search, without = _solve(x1, True), _solve(x1, False)
    assert bool(with_search.converged) and bool(without.converged)
    steps_with = int(with_search.stats["num_steps"])
    assert int(without.stats["num_steps"]) - steps_with == k
    assert int(with_search.stats["num_accepted"]) == int(without.stats["num_accepted"])
    # The same iterates after the skipped rejections: the same path, to round-off.
    np.testing.assert_allclose(float(with_search.action), float(without.action),
                               rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(with_search.xs), np.asarray(without.xs),
                               rtol=0, atol=1e-11)


def test_search_is_a_no_op_where_the_start_is_convex():
    # Near the attractor the straight line's Hessian is positive definite at `lam0`.
    x1 = [-0.9, 0.05]
    k, state = _skipped_rejections(x1)
    assert k == 0 and not bool(state.rejected)
    with_search, without = _solve(x1, True), _solve(x1, False)
    assert int(with_search.stats["num_steps"]) == int(without.stats["num_steps"])
    np.testing.assert_allclose(float(with_search.action), float(without.action),
                               rtol=1e-14, atol=0)


def test_search_in_float32():
    x1 = [0.19, -0.22]
    sol32, sol64 = _solve(x1, True, jnp.float32), _solve(x1, True)
    assert sol32.xs.dtype == jnp.float32 and bool(sol32.converged)
    np.testing.assert_allclose(float(sol32.action), float(sol64.action), rtol=1e-5)


def test_warm_starts_do_not_search():
    solver = warm_started(nj.BlockNewton())
    assert solver.lam0 == 1e-6 and not solver.search_damping
    assert nj.BlockNewton().search_damping  # the default searches


def test_search_under_vmap_equals_the_loop():
    x1s = jnp.array([[0.19, -0.22], [-0.9, 0.05], [0.04, -0.01]])
    batch = jax.jit(jax.vmap(lambda b: _solve(b, True)))(x1s)
    for i in range(x1s.shape[0]):
        one = _solve(x1s[i], True)
        assert int(batch.stats["num_steps"][i]) == int(one.stats["num_steps"])
        np.testing.assert_allclose(float(batch.action[i]), float(one.action), rtol=1e-13)
