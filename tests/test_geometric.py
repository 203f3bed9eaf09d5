"""The geometric (infinite-time) action: closed forms, barriers, order, time recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

import noether_jax as nj
from helpers import fit_order
from noether_jax._geometric._gmam import node_masses

# --- linear drift: the quasipotential is ½ xᵀ G∞⁻¹ x with A G∞ + G∞ Aᵀ + 2D = 0 ----------

A_LIN = np.array([[-1.0, 2.0], [0.0, -3.0]])  # non-normal
X1_LIN = np.array([1.0, 0.7])


def _linear(t, x, A):
    return A @ x


def _quasipotential(A, D, x):
    D = np.asarray(D)
    Dm = D * np.eye(2) if D.ndim == 0 else (np.diag(D) if D.ndim == 1 else D)
    G = sl.solve_continuous_lyapunov(A, -2 * Dm)
    return 0.5 * x @ np.linalg.solve(G, x), G, Dm


@pytest.mark.parametrize(
    "D", [0.4, np.array([0.5, 0.2]), np.array([[0.5, 0.1], [0.1, 0.3]])],
    ids=["scalar", "diagonal", "full"],
)
def test_linear_quasipotential(D):
    sde = nj.SDE(_linear, jnp.asarray(D))
    sol = nj.minimize_geometric_action(
        sde, jnp.zeros(2), jnp.asarray(X1_LIN), n_nodes=51, args=jnp.asarray(A_LIN)
    )
    exact, _, _ = _quasipotential(A_LIN, D, X1_LIN)
    assert sol.converged
    assert abs(float(sol.action) - exact) < 1e-6 * exact
    # The nodes equidistribute the monitor mass (arclength in the noise metric, weighted up
    # towards the fixed point at the start, where they are ~30 times denser).
    mass = np.asarray(node_masses(sde, sol.xs, jnp.asarray(A_LIN)))
    assert np.ptp(mass) < 1e-6 * mass.mean()
    seg = np.linalg.norm(np.diff(np.asarray(sol.xs), axis=0), axis=1)
    assert seg[-1] > 10 * seg[0]


def test_linear_time_recovery_and_momentum():
    """On the uphill path of a linear system `ẋ = (A + 2D G∞⁻¹) x` and `p = G∞⁻¹ x`: the
    recovered time `dt = |dφ|/|f|` reproduces this flow, and the quasi-energy vanishes."""
    D = np.array([[0.5, 0.1], [0.1, 0.3]])
    sde = nj.SDE(_linear, jnp.asarray(D))
    A = jnp.asarray(A_LIN)
    _, G, Dm = _quasipotential(A_LIN, D, X1_LIN)
    B = A_LIN + 2 * Dm @ np.linalg.inv(G)
    errs = []
    for n in (51, 101):
        sol = nj.minimize_geometric_action(sde, jnp.zeros(2), jnp.asarray(X1_LIN), n_nodes=n,
                                           args=A)
        ts, xs = np.asarray(sol.ts), np.asarray(sol.xs)
        assert np.all(np.isfinite(ts)) and np.all(np.diff(ts) > 0)
        # Compare on the last stretch of time (the first node is the fixed point, reached
        # after infinite time in the continuum).
        keep = ts >= ts[-1] - 2.0
        pred = np.stack([sl.expm(B * (t - ts[-1])) @ X1_LIN for t in ts[keep]])
        errs.append(np.max(np.abs(pred - xs[keep])))
        p = np.asarray(nj.momentum(sde, sol, args=A))
        p_exact = xs @ np.linalg.inv(G).T
        assert np.max(np.abs(p - p_exact)[keep]) < 2e-3
        E = np.asarray(nj.energy(sde, sol, args=A))
        assert np.max(np.abs(E)) < 1e-3
    assert errs[1] < 1e-3
    assert errs[0] / errs[1] > 3.0  # second order in the node spacing


# --- Maier–Stein and second-order convergence -----------------------------------------------


def _maier_stein(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


MS = nj.SDE(_maier_stein, 1.0)
A_MS, S_MS = jnp.array([-1.0, 0.0]), jnp.array([0.0, 0.0])


def test_maier_stein_axis_and_order():
    """`β < 4`: the path is the axis and `Ŝ = ΔV = 1/4`; `β = 10`: it leaves the axis. Both
    converge at second order."""
    ns = (51, 101, 201)
    on, off, ymax = [], [], []
    for n in ns:
        s3 = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=n, args=3.0)
        s10 = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=n, args=10.0)
        assert np.max(np.abs(np.asarray(s3.xs)[:, 1])) < 1e-10
        ymax.append(float(jnp.max(jnp.abs(s10.xs[:, 1]))))
        on.append(float(s3.action))
        off.append(float(s10.action))
    hs = 1.0 / (np.array(ns) - 1)
    assert fit_order(hs, np.abs(np.array(on) - 0.25)) == pytest.approx(2.0, abs=0.1)
    diffs = np.abs(np.diff(off))
    assert fit_order(hs[1:], diffs) == pytest.approx(2.0, abs=0.1)
    assert min(ymax) > 0.3
    # Richardson-extrapolated barrier, and the finest grid is within 1e-5 of it.
    extrap = off[-1] + (off[-1] - off[-2]) / 3
    assert abs(off[-1] - extrap) < 1e-5
    assert off[-1] < on[-1]


def test_maier_stein_leaves_axis_only_above_4():
    ys = []
    for beta in (3.5, 4.5, 6.0):
        sol = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=51, args=beta)
        ys.append(float(jnp.max(jnp.abs(sol.xs[:, 1]))))
    assert ys[0] < 1e-10
    assert ys[1] > 1e-2 and ys[2] > ys[1]


def test_fixed_time_tends_to_geometric():
    """`S*(T) ↓ Ŝ` as `T` grows, with `E → 0` and `∂S*/∂T = −E`."""
    geo = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=201, args=10.0)
    S, E = {}, {}
    for T in (4.0, 5.95, 6.0, 6.05, 8.0):
        sol = nj.minimize_action(MS, A_MS, S_MS, 0.0, T, n_nodes=201, args=10.0, init=geo.xs)
        S[T] = float(sol.action)
        E[T] = float(jnp.median(nj.energy(MS, sol, args=10.0)))
    gap = np.array([S[T] for T in (4.0, 6.0, 8.0)]) - float(geo.action)
    energies = np.array([E[T] for T in (4.0, 6.0, 8.0)])
    assert np.all(gap > 0) and np.all(np.diff(gap) < 0)
    assert gap[-1] < 2e-4
    assert np.all(energies > 0) and np.all(np.diff(energies) < 0) and energies[-1] < 2e-4
    # dS*/dT = −E by centred difference at T = 6.
    assert (S[6.05] - S[5.95]) / 0.1 == pytest.approx(-E[6.0], rel=0.02)


# --- barriers: gradient, anisotropic gradient, non-gradient ---------------------------------

# V = (x² − 1)²/4 + (y − x²/2)²: minima (±1, 1/2), saddle (0, 0), ΔV = 1/4, curved valley.


def _gradV(x):
    return jnp.array([x[0] ** 3 - x[0] - 2 * x[0] * (x[1] - 0.5 * x[0] ** 2), 2 * (x[1] - 0.5 * x[0] ** 2)])


def _nongradient(t, x, args):
    gamma, Dmat = args
    g = Dmat @ _gradV(x)
    J = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
    return -g + gamma * J @ g


X_MIN = jnp.array([-1.0, 0.5])


def test_gradient_barriers():
    """`f = −D∇V` (isotropic or full `D`) and `f = −D∇V + γ J D∇V` (isotropic `D`, `J`
    antisymmetric): `V` is the quasipotential, so the barrier is `ΔV` whatever `γ`."""
    out = {}
    Dfull = jnp.array([[0.6, 0.2], [0.2, 0.3]])
    for name, D, gamma in [
        ("iso", 0.5 * jnp.eye(2), 0.0),
        ("aniso", Dfull, 0.0),
        ("rot1", 0.5 * jnp.eye(2), 1.0),
        ("rot3", 0.5 * jnp.eye(2), 3.0),
    ]:
        sde = nj.SDE(_nongradient, D)
        sol = nj.minimize_geometric_action(sde, X_MIN, S_MS, n_nodes=101, args=(gamma, D))
        out[name] = float(sol.action)
        E = nj.energy(sde, sol, args=(gamma, D))
        assert float(jnp.max(jnp.abs(E))) < 1e-3
    for name, val in out.items():
        assert val == pytest.approx(0.25, abs=1e-3), name
    # γ changes the path but not the barrier (to the discretisation error).
    assert abs(out["rot3"] - out["iso"]) < 1e-3


def test_one_dimensional_double_well():
    sde = nj.SDE(lambda t, x, a: x - x**3, 0.2)
    vals = []
    for n in (21, 41, 81):
        sol = nj.minimize_geometric_action(sde, jnp.array([-1.0]), jnp.array([0.0]), n_nodes=n)
        vals.append(float(sol.action))
    err = np.abs(np.array(vals) - 0.25 / 0.2)
    assert err[-1] < 1e-3
    assert fit_order(1.0 / (np.array([21, 41, 81]) - 1), err) == pytest.approx(2.0, abs=0.15)


# --- gauge safety, batches, gradients, errors -----------------------------------------------


def test_gauge_safe_through_fixed_point_and_zero_segments():
    xs = jnp.array([[-1.0, 0.0], [-0.5, 0.1], [-0.5, 0.1], [0.0, 0.0], [0.0, 0.0], [0.5, 0.1]])
    val, grad = jax.value_and_grad(lambda x: nj.geometric_action_of(MS, x, 10.0))(xs)
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    ts = nj.physical_times(MS, xs, 10.0)
    assert float(ts[2]) == float(ts[1])  # a zero-length segment takes no time


def test_vmap_equals_loop_with_per_element_results():
    x1s = jnp.array([[-0.5, 0.2], [-0.2, 0.3], [jnp.nan, 0.0], [0.0, 0.0]])
    solve = lambda b: nj.minimize_geometric_action(
        MS, A_MS, b, n_nodes=51, args=10.0, throw=False
    )
    sols = jax.jit(jax.vmap(solve))(x1s)
    assert list(np.asarray(sols.converged)) == [True, True, False, True]
    assert bool((sols.result == nj.RESULTS.invalid_input)[2])
    for i in (0, 1, 3):
        one = solve(x1s[i])
        assert float(one.action) == pytest.approx(float(sols.action[i]), rel=1e-10, abs=1e-14)


def test_grad_of_barrier_matches_finite_differences():
    f = lambda beta: nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=101, args=beta).action
    g = float(jax.grad(f)(10.0))
    eps = 1e-4
    fd = (float(f(10.0 + eps)) - float(f(10.0 - eps))) / (2 * eps)
    assert g == pytest.approx(fd, rel=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        nj.minimize_geometric_action(MS, A_MS, jnp.zeros(3), args=10.0)
    with pytest.raises(ValueError, match="at least 3"):
        nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=2, args=10.0)
    with pytest.raises(ValueError, match=r"`init` must have shape"):
        nj.minimize_geometric_action(MS, A_MS, S_MS, init=jnp.zeros((5, 3)), args=10.0)
    with pytest.raises(ValueError, match=r"must return an array of shape \(2,\)"):
        nj.minimize_geometric_action(nj.SDE(lambda t, x, a: x[:1], 1.0), A_MS, S_MS)
    bad = nj.SDE(_maier_stein, jnp.array([[1.0, 2.0], [2.0, 1.0]]))  # indefinite
    sol = nj.minimize_geometric_action(bad, A_MS, S_MS, n_nodes=51, args=10.0, throw=False)
    assert not bool(sol.converged)
    assert bool(sol.result == nj.RESULTS.invalid_diffusion)
    # The message `throw=True` raises (one compilation fewer than solving again).
    assert "not symmetric positive definite" in nj.RESULTS[sol.result]


# --- barriers between attractors: uphill by the geometric action, downhill by relaxation ----


def test_barrier_maier_stein_full_path():
    sde = nj.SDE(_maier_stein, 0.5)
    tr = nj.barrier(sde, A_MS, jnp.array([1.0, 0.0]), args=10.0, n_nodes=51)
    assert bool(tr.converged)
    np.testing.assert_allclose(np.asarray(tr.saddle.x), [0.0, 0.0], atol=1e-10)
    # The barrier is the uphill geometric action, Ŝ/D with D = 1/2.
    geo = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=51, args=10.0)
    assert float(tr.barrier) == pytest.approx(2 * float(geo.action), rel=1e-10)
    xs = np.asarray(tr.xs)
    np.testing.assert_allclose(xs[0], [-1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(xs[-1], [1.0, 0.0], atol=1e-6)
    # The downhill leg is deterministic: it stays on the axis, the uphill leg does not.
    assert np.max(np.abs(np.asarray(tr.downhill.xs)[:, 1])) < 1e-8
    assert np.max(np.abs(np.asarray(tr.uphill.xs)[:, 1])) > 0.3


def test_barrier_3d_gradient_picks_the_connecting_saddle():
    """`V = Σ (x_i² − 1)²/4`: between neighbouring minima only one of the 12 index-1 saddles
    connects them; barrier `ΔV/D`."""
    sde = nj.SDE(lambda t, x, a: x - x**3, 0.25)
    a, b = jnp.array([-1.0, -1.0, -1.0]), jnp.array([1.0, -1.0, -1.0])
    # The 12 index-1 saddles: one coordinate 0, the others ±1 (the automatic search is
    # exercised on Maier–Stein above and on this potential in test_fixed_points.py).
    saddles = jnp.array(
        [[s1, s2, s3] for s1 in (-1.0, 0.0, 1.0) for s2 in (-1.0, 0.0, 1.0)
         for s3 in (-1.0, 0.0, 1.0) if (s1 == 0) + (s2 == 0) + (s3 == 0) == 1]
    )
    assert saddles.shape == (12, 3)
    tr = nj.barrier(sde, a, b, n_nodes=51, saddles=saddles)
    assert bool(tr.converged)
    np.testing.assert_allclose(np.asarray(tr.saddle.x), [0.0, -1.0, -1.0], atol=1e-10)
    assert int(np.sum(np.isfinite(np.asarray(tr.candidate_barriers)))) == 1
    # 51 nodes, a fixed grid (cheap: this test is about the saddle chosen; the defaults'
    # accuracy is in test_geometric_refine.py): second-order error 3e-4.
    assert float(tr.barrier) == pytest.approx(0.25 / 0.25, rel=1e-3)


def test_barrier_refuses_points_that_are_not_attractors():
    sde = nj.SDE(_maier_stein, 0.5)
    with pytest.raises(ValueError, match="not a fixed point"):
        nj.barrier(sde, jnp.array([-0.9, 0.0]), jnp.array([1.0, 0.0]), args=10.0)
    with pytest.raises(ValueError, match="not an attractor"):
        nj.barrier(sde, jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]), args=10.0)


def test_float32():
    a, s = jnp.array([-1.0, 0.0], jnp.float32), jnp.array([0.0, 0.0], jnp.float32)
    sol = nj.minimize_geometric_action(MS, a, s, n_nodes=51, args=10.0)
    ref = nj.minimize_geometric_action(MS, A_MS, S_MS, n_nodes=51, args=10.0)
    assert sol.xs.dtype == jnp.float32 and sol.action.dtype == jnp.float32
    assert bool(sol.converged)
    assert float(sol.action) == pytest.approx(float(ref.action), rel=1e-5)


def test_saddle_of_the_action_is_never_reported_converged():
    """For β = 10 the straight path on the axis is a saddle point of the fixed-time action:
    the default solver leaves it; without escape steps the second-order certificate keeps
    refusing it, and the solve ends unconverged (out of steps or restarts)."""
    x1 = jnp.array([1.0, 0.0])
    sol = nj.minimize_action(MS, A_MS, x1, 0.0, 10.0, n_nodes=51, args=10.0)
    assert bool(sol.converged) and float(jnp.max(jnp.abs(sol.xs[:, 1]))) > 0.1
    stuck = nj.minimize_action(MS, A_MS, x1, 0.0, 10.0, n_nodes=51, args=10.0,
                               solver=nj.BlockNewton(escape=0.0), throw=False)
    assert float(jnp.max(jnp.abs(stuck.xs[:, 1]))) == 0.0
    assert not bool(stuck.converged)
    assert bool((stuck.result == nj.RESULTS.stagnated)
                | (stuck.result == nj.RESULTS.max_steps_reached))
    assert float(stuck.action) > float(sol.action)


def test_default_solver_above_block_size_eight_is_newton_cg():
    """Above `d = 9` (normal blocks of `d − 1 > 8`) the default geometric solver is
    `nj.NewtonCG`, as for fixed-time paths. Linear `f = −(I + γJ)Ax` (J antisymmetric, so
    `∇V·J∇V = 0`) at d = 10: the quasipotential is `V/D = ½xᵀAx/D`, and the default agrees
    with `nj.BlockNewton` on the same grid to the solvers' tolerance."""
    from noether_jax._solver import BlockNewton, NewtonCG, default_solver

    assert type(default_solver(8, None, None)) is BlockNewton
    assert type(default_solver(9, None, None)) is NewtonCG
    d, D = 10, 0.5
    A = jnp.diag(jnp.linspace(1.0, 3.0, d))
    J = jnp.diag(jnp.ones(d - 1), 1) - jnp.diag(jnp.ones(d - 1), -1)
    sde = nj.SDE(lambda t, x, g: -(jnp.eye(d) + g * J) @ (A @ x), D)
    x1 = jnp.linspace(0.5, -0.4, d)
    sol = nj.minimize_geometric_action(sde, jnp.zeros(d), x1, args=2.0, n_nodes=81)
    ref = nj.minimize_geometric_action(sde, jnp.zeros(d), x1, args=2.0, n_nodes=81,
                                       solver=nj.BlockNewton())
    assert bool(sol.converged) and bool(ref.converged)
    assert float(sol.action) == pytest.approx(float(ref.action), rel=1e-8)
    exact = 0.5 * float(x1 @ A @ x1) / D
    assert float(sol.action) == pytest.approx(exact, rel=5e-6)  # discretisation: 5.9e-7
