"""RNNs: exact gradients of the minimal action and of the path for a CTRNN (finite
differences), vmap inside the loss, warm starts, training that raises a barrier, and the
exact symmetry of an equivariant network."""

import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


D = 0.5
SDE = nj.SDE(nj.ctrnn_drift, D)
NET = nj.CTRNN.random(jax.random.key(1), 3, gain=1.5, bias=0.3)
X0 = jnp.array([1.0, -0.5, 0.3])
X1 = jnp.array([-0.8, 0.6, 0.2])
T, N = 2.0, 41
SOLVER = nj.BlockNewton(lam0=1e-6)  # as in training: warm starts need little damping
CENTER = jnp.array([0.2, 0.1, 0.4])


def line(x0, x1):
    s = jnp.linspace(0.0, 1.0, N)[:, None]
    return x0 + s * (x1 - x0)


def outputs(net, x0, x1, init):
    """The minimal action and two functions of the path: its length and its occupation of
    a Gaussian region (both differentiated through `sol.xs`, implicit differentiation)."""
    sol = nj.minimize_action(SDE, x0, x1, 0.0, T, args=net, init=init, solver=SOLVER)
    length = jnp.sum(jnp.linalg.norm(jnp.diff(sol.xs, axis=0), axis=-1))
    region = jnp.mean(jnp.exp(-jnp.sum((sol.xs - CENTER) ** 2, axis=-1)))
    return jnp.stack([sol.action, length, region]), (sol.stats["num_steps"], sol.xs)


E = jnp.eye(3)  # picks one output: action, length, occupation


@functools.cache
def grad_fn():
    """One compiled function for all tests of one path: the gradient of `c·y` (`y`: the
    three outputs) with respect to the network (one VJP: no backpropagation through the
    solver), `y`, and the solver statistics."""

    def fn(net, x0, x1, init, c):
        y, aux = outputs(net, x0, x1, init)
        return y @ c, (y, aux)

    return jax.jit(jax.grad(fn, has_aux=True))


def flat(net):
    return jnp.concatenate([net.W.ravel(), net.b])


def unflat(v, like=NET):
    d = like.dim
    return nj.CTRNN(v[: d * d].reshape(d, d), v[d * d :], activation=like.activation)


def test_ctrnn_drift_and_validation():
    x = jnp.array([0.3, -1.2, 0.7])
    expected = -x + NET.W @ jnp.tanh(x) + NET.b
    np.testing.assert_allclose(NET(0.0, x), expected, rtol=1e-15)
    np.testing.assert_allclose(nj.ctrnn_drift(0.0, x, NET), expected, rtol=1e-15)
    net32 = nj.CTRNN(NET.W.astype(jnp.float32), NET.b.astype(jnp.float32))
    assert net32(0.0, x.astype(jnp.float32)).dtype == jnp.float32
    with pytest.raises(ValueError, match="square"):
        nj.CTRNN(jnp.zeros((2, 3)), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        nj.CTRNN(jnp.zeros((3, 3)), jnp.zeros(2))
    with pytest.raises(ValueError, match="floating"):
        nj.CTRNN(jnp.zeros((2, 2), int), jnp.zeros(2, int))
    with pytest.raises(ValueError, match="state must have shape"):
        NET(0.0, jnp.zeros(2))
    with pytest.raises(ValueError, match="activation"):
        nj.CTRNN(jnp.eye(2), jnp.zeros(2), activation=lambda x: x[:1])(0.0, jnp.zeros(2))
    with pytest.raises(ValueError, match="args"):
        nj.ctrnn_drift(0.0, x, None)


def test_gradients_match_central_differences():
    grad = grad_fn()
    init = line(X0, X1)
    J = np.stack([np.asarray(flat(grad(NET, X0, X1, init, E[i])[0])) for i in range(3)])
    theta = flat(NET)
    eps = 1e-5
    fd = np.zeros_like(J)
    for j in range(theta.size):
        e = jnp.zeros_like(theta).at[j].set(eps)
        yp = grad(unflat(theta + e), X0, X1, init, E[0])[1][0]
        ym = grad(unflat(theta - e), X0, X1, init, E[0])[1][0]
        fd[:, j] = (yp - ym) / (2 * eps)
    # Action (envelope theorem), length and region occupation (implicit differentiation).
    for i in range(3):
        err = np.max(np.abs(J[i] - fd[i]))
        assert err < 1e-7 * np.max(np.abs(J[i])), (i, err, J[i], fd[i])
    assert np.min(np.max(np.abs(J), axis=1)) > 1e-2  # not vacuous


def test_vmap_grad_inside_loss_equals_loop():
    grad = grad_fn()
    key = jax.random.key(3)
    x0s = X0 + 0.3 * jax.random.normal(key, (3, 3))
    x1s = X1 + 0.3 * jax.random.normal(jax.random.fold_in(key, 1), (3, 3))
    inits = jax.vmap(line)(x0s, x1s)
    c = jnp.array([1.0, 0.5, 2.0])  # action + ½ length + 2 occupation

    @jax.jit
    def batch_grad(net):
        def loss(n):
            y, _ = jax.vmap(lambda a, b, i: outputs(n, a, b, i))(x0s, x1s, inits)
            return jnp.sum(y @ c)

        return jax.grad(loss)(net)

    g = flat(batch_grad(NET))
    loop = sum(flat(grad(NET, x0s[i], x1s[i], inits[i], c)[0]) for i in range(3))
    np.testing.assert_allclose(g, loop, rtol=1e-9, atol=1e-12)


def test_warm_start_needs_fewer_steps():
    grad = grad_fn()
    _, (_, (_, xs)) = grad(NET, X0, X1, line(X0, X1), E[0])
    # A training step's change of the weights (Adam: about lr per entry).
    dW = 3e-3 * jnp.sign(jax.random.normal(jax.random.key(7), (3, 3)))
    net = nj.CTRNN(NET.W + dW, NET.b - 3e-3)
    g_cold, (y_cold, (cold, _)) = grad(net, X0, X1, line(X0, X1), E[0])
    g_warm, (y_warm, (warm, _)) = grad(net, X0, X1, xs, E[0])
    np.testing.assert_allclose(y_warm, y_cold, rtol=1e-9)
    np.testing.assert_allclose(flat(g_warm), flat(g_cold), rtol=1e-7, atol=1e-12)
    # Two Newton steps and the step that certifies the stop (undamped: the Newton decrement).
    assert int(warm) < int(cold) and int(warm) <= 4, (int(warm), int(cold))


def test_short_training_raises_the_barrier():
    ex = _example("rnn_robust_memory")
    # A two-unit memory that already works: unit 0 (the readout) has attractors at ±1
    # (f₀ = −x₀ + tanh(x₀)/tanh(1)), unit 1 follows it (f₁ = −x₁ + 1.5 tanh(x₀)). Feedback
    # from unit 1 can deepen the wells at fixed readout: room to raise the barrier.
    w = np.array([1.0, 0.0])
    signs = np.array([-1.0, 1.0, -1.0, 1.0])
    jitter = 0.3 * np.random.default_rng(0).normal(size=(4, 2))
    jitter[:2] = 0.0  # (set up with NumPy: no small compilations)
    task = ex.MemoryTask(*map(jnp.asarray, (2 * w, w, signs[:, None] * 2 * w + jitter, signs)))
    net = nj.CTRNN(jnp.array([[1 / np.tanh(1.0), 0.0], [1.5, 0.0]]), jnp.zeros(2))
    _, _, hist = ex.train(net, task, task_steps=0, barrier_steps=12, t_path=8.0, n_nodes=61,
                          lr_barrier=3e-3, weight=30.0, raise_by=2.0, progress=lambda *_: None)
    S = np.array(hist["actions"])  # (steps + 1, 2): a → b and b → a, D = 1
    assert np.all(np.array(hist["converged"]))
    assert np.all(S[-1] > 1.15 * S[0]), S
    assert np.all(np.diff(S[2:], axis=0) > 0), S  # rises at every step once under way
    # Warm-started solves are short.
    assert np.max(np.concatenate(hist["num_steps"][1:])) <= 4
    # The memory still works.
    task_losses = [tl for _, tl in hist["loss"]]
    assert task_losses[0] < 0.01 and task_losses[-1] < 0.05, task_losses


def test_equivariant_network_has_exact_rotation_and_constant_charge():
    ex = _example("rnn_ring_symmetry")
    # B ≠ 0: the ring rotates (no fixed points), the symmetry is still exact.
    case = ex.symmetric_case(jax.random.key(0), m=2, b_scale=0.3, n_nodes=41, t_path=4.0,
                             x_star=jnp.array([1.0, 0.5, -0.8, 0.3]))
    sym = case["symmetries"]
    assert int(sym.num_symmetries) == 1
    sv = np.asarray(sym.singular_values)
    assert sv[0] < 1e-12 and sv[1] > 1e-3, sv
    A = ex.skew_of(sym.generators[0], 4)
    assert ex.generator_overlap(A, ex.skew_of(case["expected"], 4)) == pytest.approx(1, abs=1e-12)
    assert bool(case["path"].converged)
    rep = case["report"]
    assert float(rep.relative_variations[0]) < 1e-10
    assert abs(float(rep.means[0])) > 1e-3  # a nonzero charge, constant
    assert float(rep.relative_variations[1]) > 1e-3  # a rotation that is not a symmetry


def test_trained_bump_network_has_the_ring_rotation_as_near_symmetry():
    # A reduced `examples/rnn_ring_symmetry.py` (d = 64 there): trained from W = 0 on a
    # task invariant under cyclic shifts of the units, the network stays circulant, and the
    # search over all of `nj.Rotations(d)` at the states it visits finds the continuous
    # rotation of the ring (spectral derivative `G`) as its most nearly conserved charge.
    ex = _example("rnn_ring_symmetry")
    d = 16
    net, task, losses = ex.train_bump(d, steps=100)
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert ex.circulant_defect(net.W) < 1e-6  # shift equivariance kept by every Adam step
    G = ex.ring_shift_generator(d)
    np.testing.assert_allclose(G, -G.T, atol=0)
    st = ex.bump_study(net, task, jax.random.key(1), num=48, n_nodes=41, num_near=8)
    sv = np.asarray(st["full"].singular_values)
    assert st["full"].method == "dense" and int(st["full"].num_symmetries) == 0
    assert sv[0] < 1e-3 and st["shift_sigma"] < 1e-3, (sv[:3], st["shift_sigma"])
    # The smallest direction moves the visited states, and the path's, as G does.
    assert st["overlap_states"] > 0.999 and st["overlap_path"] > 0.9999, st
    # The near-null directions act on the memories as one generator, G.
    assert st["memory_action_ratio"] < 0.05 and st["memory_action_overlap"] > 0.999, st
    assert bool(st["path"].converged)
    var = np.asarray(st["report"].relative_variations)  # smallest, G, broken R0,1
    assert var[0] < 1e-4 and var[1] < 1e-4 and var[2] > 1e-2, var
