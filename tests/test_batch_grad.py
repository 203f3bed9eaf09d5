"""Batches (vmap equals a loop) and derivatives (grad equals finite differences)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

N = 31


def drift(t, x, args):
    k, c = args["k"], args["c"]
    return -k * x + c * jnp.tanh(x[::-1]) + jnp.array([0.2, -0.1]) * jnp.sin(t)


def noise(t, x, args):
    return args["D"] * (1.0 + 0.1 * jnp.sum(x**2))


SDE = nj.SDE(drift, noise)
ARGS = dict(k=jnp.array(1.3), c=jnp.array(0.7), D=jnp.array(0.4))
X0, X1 = jnp.array([1.0, -0.5]), jnp.array([-1.0, 2.0])


def solve(x0=X0, x1=X1, t1=2.0, args=ARGS, **kw):
    return nj.minimize_action(SDE, x0, x1, 0.0, t1, n_nodes=N, args=args, **kw)


def central_fd(fn, x, eps=1e-5):
    return (fn(x + eps) - fn(x - eps)) / (2 * eps)


def test_vmap_equals_loop_over_every_argument():
    # One vmap over x0, x1, t1 and a leaf of args at once (one compilation; every argument
    # is batched), against a loop of single solves.
    key = jax.random.key(0)
    x1s = X1 + 0.5 * jax.random.normal(key, (6, 2))
    x0s = X0 + 0.5 * jax.random.normal(jax.random.key(1), (6, 2))
    t1s = jnp.linspace(1.0, 3.0, 6)
    ks = jnp.linspace(0.5, 2.0, 6)
    one = lambda a, b, t, k: solve(x0=a, x1=b, t1=t, args=dict(ARGS, k=k))
    batched = jax.vmap(one)(x0s, x1s, t1s, ks)
    for i in range(6):
        sol = one(x0s[i], x1s[i], t1s[i], ks[i])
        assert float(batched.action[i]) == pytest.approx(float(sol.action), rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(batched.xs[i], sol.xs, atol=1e-10)
        np.testing.assert_allclose(batched.ts[i], sol.ts, atol=1e-14)
        assert bool(batched.converged[i])


def test_large_batch_each_element_reports():
    x1s = X1 + 0.5 * jax.random.normal(jax.random.key(2), (2000, 2))
    x1s = x1s.at[7].set(jnp.nan)
    sols = jax.jit(jax.vmap(lambda b: solve(x1=b, throw=False)))(x1s)
    assert sols.action.shape == (2000,)
    assert not bool(sols.converged[7])
    assert bool((sols.result == nj.RESULTS.invalid_input)[7])
    others = jnp.delete(sols.converged, 7)
    assert bool(jnp.all(others))
    # A spot check against single solves.
    for i in (0, 1999):
        assert float(sols.action[i]) == pytest.approx(float(solve(x1=x1s[i]).action), rel=1e-12)


def test_grad_action_wrt_args_equals_fd():
    g = jax.grad(lambda a: solve(args=a).action)(ARGS)
    for name in ARGS:
        fd = central_fd(lambda v: solve(args=dict(ARGS, **{name: v})).action, ARGS[name])
        assert float(g[name]) == pytest.approx(float(fd), rel=1e-6), name


def test_grad_wrt_endpoints_and_times_equals_fd():
    gx0, gx1, gt1 = jax.grad(lambda a, b, t: solve(x0=a, x1=b, t1=t).action, argnums=(0, 1, 2))(
        X0, X1, 2.0
    )
    for i in range(2):
        e = jnp.zeros(2).at[i].set(1.0)
        fd0 = central_fd(lambda s: solve(x0=X0 + s * e).action, 0.0)
        fd1 = central_fd(lambda s: solve(x1=X1 + s * e).action, 0.0)
        assert float(gx0[i]) == pytest.approx(float(fd0), rel=1e-6)
        assert float(gx1[i]) == pytest.approx(float(fd1), rel=1e-6)
    assert float(gt1) == pytest.approx(float(central_fd(lambda t: solve(t1=t).action, 2.0)), rel=1e-6)


def test_grad_of_path_functional_implicit_equals_fd():
    # A function of the path itself needs the implicit derivative of the path.
    loss = lambda a: jnp.sum(solve(args=a).xs[N // 3] ** 2) + jnp.sum(solve(args=a).xs[-5])
    g = jax.grad(loss)(ARGS)
    for name in ARGS:
        fd = central_fd(lambda v: loss(dict(ARGS, **{name: v})), ARGS[name])
        assert float(g[name]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9), name


class RNN(eqx.Module):
    W: jax.Array
    b: jax.Array

    def __call__(self, t, x, args):
        return -x + self.W @ jnp.tanh(x) + self.b


def test_grad_wrt_network_weights_pytree():
    d = 3
    key1, key2 = jax.random.split(jax.random.key(3))
    net = RNN(0.8 * jax.random.normal(key1, (d, d)) / jnp.sqrt(d), 0.1 * jax.random.normal(key2, (d,)))
    x0, x1 = jnp.zeros(d), jnp.array([1.0, -0.5, 0.3])

    # (a) weights passed as `args` to a fixed drift.
    sde_args = nj.SDE(lambda t, x, m: m(t, x, None), 0.2)
    S_args = lambda m: nj.minimize_action(sde_args, x0, x1, 0.0, 1.5, n_nodes=N, args=m).action
    # (b) weights held by the drift inside the SDE.
    S_sde = lambda m: nj.minimize_action(nj.SDE(m, 0.2), x0, x1, 0.0, 1.5, n_nodes=N).action
    ga = jax.grad(S_args)(net)
    gb = eqx.filter_grad(S_sde)(net)
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        fd = central_fd(lambda v: S_args(eqx.tree_at(lambda m: m.W, net, net.W.at[i, j].set(v))),
                        net.W[i, j])
        assert float(ga.W[i, j]) == pytest.approx(float(fd), rel=1e-6)
        assert float(gb.W[i, j]) == pytest.approx(float(fd), rel=1e-6)
    fd_b = central_fd(lambda v: S_args(eqx.tree_at(lambda m: m.b, net, net.b.at[1].set(v))), net.b[1])
    assert float(ga.b[1]) == pytest.approx(float(fd_b), rel=1e-6)


def test_vmap_of_grad():
    ks = jnp.array([0.8, 1.3, 1.9])
    g = jax.vmap(jax.grad(lambda k: solve(args=dict(ARGS, k=k)).action))(ks)
    for i in range(3):
        fd = central_fd(lambda k: solve(args=dict(ARGS, k=k)).action, ks[i])
        assert float(g[i]) == pytest.approx(float(fd), rel=1e-6)


def test_lbfgs_solver_agrees_and_differentiates():
    sol_n = solve()
    sol_l = solve(solver=nj.LBFGS(rtol=1e-12, atol=1e-12), max_steps=5000)
    assert bool(sol_l.converged)
    assert float(sol_l.action) == pytest.approx(float(sol_n.action), rel=1e-8)
    np.testing.assert_allclose(sol_l.xs, sol_n.xs, atol=1e-5)
    loss = lambda a: jnp.sum(
        solve(args=a, solver=nj.LBFGS(rtol=1e-12, atol=1e-12), max_steps=5000).xs[N // 2]
    )
    g = jax.grad(loss)(ARGS)
    gn = jax.grad(lambda a: jnp.sum(solve(args=a).xs[N // 2]))(ARGS)
    for name in ARGS:
        assert float(g[name]) == pytest.approx(float(gn[name]), rel=1e-4, abs=1e-6)
