"""`nj.NewtonCG`: the matrix-free truncated Newton solver (Steihaug–Toint trust-region CG on
Hessian-vector products, tridiagonal-in-time preconditioner, negative-curvature check at
each stop). Few distinct compilations: most tests share one 3-D problem and one solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

# A 3-D Maier–Stein-like drift with diagonal anisotropic `D`; both are symmetric under
# y → −y, so for an endpoint with y = 0 the straight initial path stays in the plane y = 0,
# where it converges to a saddle point of the action (β = 10): the most likely path leaves
# the plane, to one side or the other.
BETA = 10.0
D3 = jnp.array([1.0, 0.8, 0.6])


def _drift3(t, x, beta):
    u, v, w = x[0], x[1], x[2]
    return jnp.stack(
        [u - u**3 - beta * u * v**2 + 0.2 * w, -(1 + u**2) * v, -w + 0.5 * u**2]
    )


SDE3 = nj.SDE(_drift3, D3)
X0 = jnp.array([-1.0, 0.0, 0.5])
X1_PLANE = jnp.array([1.0, 0.0, 0.3])
TIGHT = dict(rtol=1e-12, atol=1e-12)


def solve3(x1, solver, **kw):
    dt = x1.dtype
    return nj.minimize_action(
        nj.SDE(_drift3, D3.astype(dt)), X0.astype(dt), x1, 0.0, 8.0, n_nodes=41,
        args=jnp.asarray(BETA, dt), solver=solver, **kw,
    )


def _same_side(xs, ref):
    """Reflect `xs` through y = 0 if it lies on the other side from `ref`."""
    flip = jnp.sign(jnp.sum(xs[:, 1])) != jnp.sign(jnp.sum(ref[:, 1]))
    return jnp.where(flip, xs * jnp.array([1.0, -1.0, 1.0]), xs)


def test_leaves_saddle_and_agrees_with_block_newton():
    ref = solve3(X1_PLANE, nj.BlockNewton(**TIGHT))
    sol = solve3(X1_PLANE, nj.NewtonCG(**TIGHT))
    assert bool(sol.converged)
    # Off the plane: only the negative-curvature check can break the symmetry.
    assert float(jnp.max(jnp.abs(sol.xs[:, 1]))) > 0.1
    assert float(sol.action) == pytest.approx(float(ref.action), rel=0, abs=1e-10)
    np.testing.assert_allclose(_same_side(sol.xs, ref.xs), ref.xs, rtol=0, atol=1e-8)
    assert float(sol.stats["grad_norm"]) < 1e-10
    # Every stop ran the check: more products than the Newton steps alone.
    assert int(sol.stats["num_hvps"]) > int(sol.stats["num_steps"])


def test_vmap_equals_loop():
    x1s = jnp.stack([X1_PLANE, jnp.array([0.8, 0.4, -0.2]), jnp.array([0.2, -0.5, 1.0])])
    batched = jax.vmap(lambda b: solve3(b, nj.NewtonCG(**TIGHT), throw=False))(x1s)
    for i in range(x1s.shape[0]):
        sol = solve3(x1s[i], nj.NewtonCG(**TIGHT))
        assert bool(batched.converged[i])
        assert float(batched.action[i]) == pytest.approx(float(sol.action), rel=1e-12)
        # The first endpoint starts on the saddle: either side of the plane is a minimum
        # (the solver picks a side that does not depend on round-off, but allow either).
        xs = _same_side(batched.xs[i], sol.xs) if i == 0 else batched.xs[i]
        np.testing.assert_allclose(xs, sol.xs, rtol=0, atol=1e-9)


def _rnn(t, x, W):
    return -x + W @ jnp.tanh(x)


RNN_D = 32
RNN_W = 1.1 * jax.random.normal(jax.random.key(1), (RNN_D, RNN_D)) / jnp.sqrt(RNN_D)
RNN_X1 = jax.random.normal(jax.random.key(2), (RNN_D,))
RNN = nj.SDE(_rnn, 0.5)


def rnn_solve(W, x1, dtype, solver, max_steps):
    return nj.minimize_action(RNN, jnp.zeros(RNN_D, dtype), x1.astype(dtype), 0.0, 5.0,
                              n_nodes=51, args=W.astype(dtype), solver=solver,
                              max_steps=max_steps, throw=False)


def test_rnn_float32_fewer_steps_than_lbfgs():
    """d = 32, `f = −x + W tanh(x)` with spectral radius ≈ 1.1, in float32: Newton
    converges within 20 steps, L-BFGS (float64) takes hundreds; the same minimum."""
    sol = rnn_solve(RNN_W, RNN_X1, jnp.float32, nj.NewtonCG(), 20)
    ref = rnn_solve(RNN_W, RNN_X1, jnp.float64, nj.LBFGS(), 5000)
    assert sol.xs.dtype == jnp.float32 and sol.action.dtype == jnp.float32
    assert bool(sol.converged) and bool(ref.converged)
    assert 10 * int(sol.stats["num_steps"]) < int(ref.stats["num_steps"])
    assert float(sol.action) == pytest.approx(float(ref.action), rel=1e-5)
    np.testing.assert_allclose(sol.xs, ref.xs, rtol=0, atol=1e-4)


def test_out_of_steps_is_not_converged():
    """A 5× stronger coupling and a 3× farther endpoint need several times more than the
    20 steps allowed (same compiled solve as above): reported, not raised."""
    sol = rnn_solve(5 * RNN_W, 3 * RNN_X1, jnp.float32, nj.NewtonCG(), 20)
    assert not bool(sol.converged)
    assert sol.result == nj.RESULTS.max_steps_reached
    assert int(sol.stats["num_steps"]) == 20
    assert bool(jnp.all(jnp.isfinite(sol.xs)))
    assert float(sol.stats["grad_norm"]) > 1e-3


def test_preconditioner_is_exact_for_scalar_linear_drift():
    """For `f = −c x` and constant `D` the preconditioner is the exact Hessian:
    `P⁻¹(H v) = v`. Full and diagonal `D`, non-uniform grid, reverse time."""
    from noether_jax._problem import FixedTimeProblem

    D_full = jnp.array([[0.5, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.4]])
    ts = 2.0 - 2.0 * jnp.linspace(0.0, 1.0, 12) ** 1.5
    y = jax.random.normal(jax.random.key(0), (10, 3))
    v = jax.random.normal(jax.random.key(1), (10, 3))

    @jax.jit
    def apply(y, v):
        out = []
        for D in (D_full, jnp.array([0.5, 0.3, 0.4])):
            sde = nj.SDE(lambda t, x, c: -c * x, D)
            obj = FixedTimeProblem(nj.FreidlinWentzell(), sde, ts, jnp.ones(3), -jnp.ones(3), 1.7)
            out.append(obj.preconditioner(y)(obj.hvp(y, v)))
        return out

    for w in apply(y, v):
        np.testing.assert_allclose(w, v, rtol=1e-12, atol=1e-12)
