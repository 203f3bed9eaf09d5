"""`lanes=`: a `vmap` of solves run in refilled lanes gives every element its own solve's
answer, result code, step count and derivatives, whatever the batch and the lane count."""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import noether_jax as nj

BETA = 10.0


def maier_stein(t, z, beta):
    x, y = z[0], z[1]
    return jnp.stack([x - x**3 - beta * x * y**2, -(1 + x**2) * y])


SDE = nj.SDE(maier_stein, 0.1)
X0 = jnp.array([-1.0, 0.0])
# Endpoints around the saddle: Newton step counts spread from ~10 to ~60, so elements
# finish at very different times and lanes are refilled throughout the run.
X1S = jnp.asarray(np.random.default_rng(3).uniform(-0.3, 0.3, (13, 2)))
N = 26


def batched(lanes, x1s=X1S, **kw):
    kw = dict(dict(n_nodes=N, args=jnp.array(BETA)), **kw)
    f = jax.vmap(
        lambda b: nj.minimize_action(SDE, X0, b, 0.0, 10.0, throw=False, lanes=lanes, **kw)
    )
    return jax.jit(f)(x1s)


@pytest.fixture(scope="module")
def lockstep():
    return batched(None)


def _same(a, b, tol=1e-12, xs_tol=1e-9, same_steps=True):
    np.testing.assert_allclose(np.asarray(a.action), np.asarray(b.action), rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(a.xs), np.asarray(b.xs), rtol=0, atol=xs_tol)
    np.testing.assert_array_equal(np.asarray(a.result._value), np.asarray(b.result._value))
    if same_steps:
        np.testing.assert_array_equal(
            np.asarray(a.stats["num_steps"]), np.asarray(b.stats["num_steps"])
        )


@pytest.mark.parametrize("lanes", [1, 4, 64])
def test_lanes_equal_lockstep(lockstep, lanes):
    # 4 does not divide the batch of 13; 64 is more lanes than elements (all at once).
    sol = batched(lanes)
    _same(sol, lockstep)
    assert np.all(np.asarray(sol.converged))
    steps = np.asarray(sol.stats["num_steps"])
    assert steps.max() > 2 * steps.min()  # the batch does have stragglers


def test_lanes_report_per_element():
    # A NaN endpoint fails alone; max_steps cuts every element at the same count as in
    # lockstep and reports it.
    x1s = X1S[:5].at[2].set(jnp.nan)
    a, b = batched(None, x1s), batched(2, x1s)
    _same(a, b)
    conv = np.asarray(b.converged)
    assert not conv[2] and conv[[0, 1, 3, 4]].all()
    a, b = batched(None, max_steps=6), batched(3, max_steps=6)
    _same(a, b)
    steps = np.asarray(b.stats["num_steps"])
    capped = steps == 6
    assert capped.any() and (~np.asarray(b.converged) == capped).all()
    assert (np.asarray(b.result._value)[capped] == nj.RESULTS.max_steps_reached._value).all()


def test_lanes_nested_grids_and_other_solver():
    ctrl = nj.Refine(levels=2, adapt=None, rtol=float("inf"))
    kw = dict(n_nodes=51, grid_controller=ctrl)
    a, b = batched(None, X1S[:6], **kw), batched(4, X1S[:6], **kw)
    _same(a, b)
    np.testing.assert_allclose(
        np.asarray(a.stats["error_estimate"]), np.asarray(b.stats["error_estimate"]),
        rtol=0, atol=1e-12,
    )
    # Any optimistix minimiser runs in lanes (init/step/terminate/postprocess). BFGS
    # carries round-off from step to step (a vector width changes it), so the paths agree
    # to its tolerance rather than to round-off.
    kw = dict(n_nodes=11, solver=optx.BFGS(rtol=1e-10, atol=1e-10), max_steps=400)
    x1s = X1S[:4] - jnp.array([0.6, 0.0])
    a, b = batched(None, x1s, **kw), batched(3, x1s, **kw)
    _same(a, b, tol=1e-10, xs_tol=1e-6, same_steps=False)
    assert np.all(np.asarray(b.converged))


def test_lanes_through_solve_batch(lockstep, tmp_path):
    # `nj.solve_batch` vmaps `solve_fn` over chunks (the last one padded): the lanes run
    # inside each chunk and every element comes back in its place.
    def solve_fn(b):
        return nj.minimize_action(SDE, X0, b["x1"], 0.0, 10.0, n_nodes=N,
                                  args=jnp.array(BETA), throw=False, lanes=3)

    sols = nj.solve_batch(solve_fn, {"x1": X1S}, chunk_size=8, out_dir=tmp_path / "run",
                          progress=False)
    _same(sols, lockstep)


def test_lanes_closed_form_constant_drift():
    # f = c, D: the discrete action is exact, |x1 − x0 − cT|² / (4DT).
    c, D, T = jnp.array([0.5, -0.2]), 0.3, 2.0
    sde = nj.SDE(lambda t, x, args: c, D)
    x1s = jnp.asarray(np.random.default_rng(0).normal(size=(7, 2)))
    sol = jax.vmap(
        lambda b: nj.minimize_action(sde, X0, b, 0.0, T, n_nodes=21, lanes=3)
    )(x1s)
    exact = jnp.sum((x1s - X0 - c * T) ** 2, axis=-1) / (4 * D * T)
    np.testing.assert_allclose(np.asarray(sol.action), np.asarray(exact), rtol=1e-12)


def test_lanes_derivatives():
    x1s = X1S[:4]

    def total(beta, lanes):
        sols = jax.vmap(
            lambda b: nj.minimize_action(SDE, X0, b, 0.0, 10.0, n_nodes=N, args=beta,
                                         lanes=lanes)
        )(x1s)
        return jnp.sum(sols.action)

    g_lanes = jax.grad(total)(jnp.array(BETA), 2)
    g_lock = jax.grad(total)(jnp.array(BETA), None)
    eps = 1e-4
    fd = (total(BETA + eps, 2) - total(BETA - eps, 2)) / (2 * eps)
    assert abs(float(g_lanes - g_lock)) < 1e-10
    assert abs(float(g_lanes - fd)) < 1e-6 * abs(float(fd))
    # The path's derivatives (implicit function theorem), forward mode.
    node = lambda b, lanes: nj.minimize_action(
        SDE, X0, b, 0.0, 10.0, n_nodes=N, args=jnp.array(BETA), lanes=lanes
    ).xs[N // 2]
    jl = jax.vmap(jax.jacfwd(lambda b: node(b, 2)))(x1s)
    j0 = jax.vmap(jax.jacfwd(lambda b: node(b, None)))(x1s)
    np.testing.assert_allclose(np.asarray(jl), np.asarray(j0), rtol=0, atol=1e-9)
    assert float(jnp.max(jnp.abs(jl))) > 1e-3


def test_lanes_with_parameters_closed_over():
    # A drift and a diffusion that close over the batched parameter (not passed in `args`):
    # the lanes gather it per element like any input. (Derivatives need the parameter in
    # `args` or in the `nj.SDE`, lanes or not: `test_lanes_derivatives`.)
    def action(k, lanes):
        sde = nj.SDE(lambda t, x, a: -k * x + jnp.sin(x[::-1]),
                     lambda t, x, a: 0.5 + 0.1 * k * jnp.sum(x**2))
        return nj.minimize_action(sde, jnp.zeros(2), jnp.array([1.0, -0.5]), 0.0, 2.0,
                                  n_nodes=21, lanes=lanes).action

    ks = jnp.array([0.5, 1.0, 2.0, 3.0, 4.0])
    a = jax.vmap(lambda k: action(k, None))(ks)
    b = jax.vmap(lambda k: action(k, 2))(ks)
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-12)
    assert float(jnp.max(b) - jnp.min(b)) > 0.1
    # Under an outer `jit` the captured value is not an input of the solve: lockstep,
    # the same answer.
    c = jax.jit(lambda k: action(k, 2))(ks[1])
    assert abs(float(c) - float(a[1])) < 1e-12


def test_lanes_no_recompilation():
    traces = []

    def drift(t, x, args):
        if isinstance(x, jax.core.Tracer):
            traces.append(1)
        return maier_stein(t, x, args)

    sde = nj.SDE(drift, 0.1)
    f = jax.jit(jax.vmap(
        lambda b, k: nj.minimize_action(sde, X0, b, 0.0, 10.0, n_nodes=N, args=k, lanes=3,
                                        throw=False)
    ))
    s1 = f(X1S[:5], jnp.full(5, BETA))
    n_first = len(traces)
    s2 = f(X1S[5:10], jnp.full(5, 8.0))
    assert len(traces) == n_first
    assert np.all(np.asarray(s1.converged)) and np.all(np.asarray(s2.converged))
    assert not np.allclose(np.asarray(s1.action), np.asarray(s2.action))


def test_unbatched_call_with_lanes_is_the_plain_solve():
    a = nj.minimize_action(SDE, X0, X1S[0], 0.0, 10.0, n_nodes=N, args=jnp.array(BETA))
    b = nj.minimize_action(SDE, X0, X1S[0], 0.0, 10.0, n_nodes=N, args=jnp.array(BETA),
                           lanes=8)
    assert float(a.action) == float(b.action)
    assert int(a.stats["num_steps"]) == int(b.stats["num_steps"])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "64"])
def test_bad_lanes(bad):
    with pytest.raises(ValueError, match="`lanes` of `minimize_action` must be None"):
        nj.minimize_action(SDE, X0, X1S[0], 0.0, 10.0, n_nodes=N, args=BETA, lanes=bad)
