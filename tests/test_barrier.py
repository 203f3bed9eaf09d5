"""`nj.barrier`: barriers against closed forms, per-leg reporting, chains through intermediate
attractors (Müller–Brown), rates, and derivatives under `jit`/`vmap`/`grad` with `saddles=`.

Every system here is one drift function with different `args` (a flat parameter array), so
the solvers compile once for the whole file:

    V = w·V_MB(x, y) + k₄ (x² − 1)²/4 + β x + ½ κ (y − μ x²)²,     f = −c (I + γ J) ∇V,

`J` the rotation by 90°, `D = δ I`. Since `∇V · J∇V = 0`, the quasipotential is `cV/δ` for
every `γ` (docs/conventions.md: `f = −∇U − ℓ` with `ℓ ⊥ ∇U`), so the barrier over a saddle is
`c ΔV/δ` exactly."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import muller_brown
from noether_jax._geometric._barrier import _failure, _rates_wanted

ROT = jnp.array([[0.0, 1.0], [-1.0, 0.0]])


def potential(z, p):
    _, _, w, k4, beta, kappa, mu = p
    mb = muller_brown(z)
    x, y = z[0], z[1]
    return w * mb + k4 * (x**2 - 1) ** 2 / 4 + beta * x + 0.5 * kappa * (y - mu * x**2) ** 2


def drift(t, z, p):
    c, gamma = p[0], p[1]
    g = jax.grad(potential)(z, p)
    return -c * (g + gamma * ROT @ g)


# The rotating tilted double well (c, γ, w, k₄, β, κ, μ), D = δ I.
DELTA = 0.25
P_ROT = jnp.array([1.0, 1.0, 0.0, 1.0, 0.1, 1.0, 0.5])
ROT_SDE = nj.SDE(drift, jnp.asarray(DELTA))  # D an array: new values do not recompile
# Müller–Brown, f = −c ∇V_MB with D = δ: barriers c ΔV/δ.
MB_DELTA = 0.1
P_MB = jnp.array([0.01, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
MB_SDE = nj.SDE(drift, jnp.asarray(MB_DELTA))
MB_DEEP, MB_MIDDLE = jnp.array([-0.5582, 1.4417]), jnp.array([0.6235, 0.0280])
MB_SHALLOW = np.array([-0.0501, 0.4667])
MB_SADDLES = np.array([[-0.8220, 0.6243], [0.2125, 0.2930]])

_hessian = jax.jit(jax.hessian(potential))
# One grid for every solve in the file (one compiled solver); the discrete barrier's
# second-order error is ~1e-4 of it here.
N = 201


def rot_points(p):
    """Minimum a, saddle s, minimum b of the rotating family (exact: the roots of
    `k₄(x³ − x) + β` on the curve `y = μx²`), and `ΔV = V(s) − V(a)`."""
    p = np.asarray(p)
    xs = np.sort(np.roots([p[3], 0.0, -p[3], p[4]]).real)
    pts = [np.array([x, p[6] * x**2]) for x in xs]
    dV = float(potential(jnp.asarray(pts[1]), p) - potential(jnp.asarray(pts[0]), p))
    return *pts, dV


def polish(x, p):
    """A fixed point to round-off (the literature's Müller–Brown digits are four)."""
    x = np.asarray(x, float)
    for _ in range(6):
        f = np.asarray(drift(0.0, jnp.asarray(x), p))
        J = np.asarray(jax.jacfwd(drift, argnums=1)(0.0, jnp.asarray(x), p))
        x = x - np.linalg.solve(J, f)
    return jnp.asarray(x)


def eyring_kramers(a, s, p, delta):
    """The rate over `s` for `f = −c(I + γJ)∇V`, `D = δI`: in whitened coordinates the
    Hessians of the quasipotential are `c∇²V` (the Lyapunov equation of `∂f = −c(I + γJ)∇²V`
    is solved by `(c∇²V)⁻¹`) and `∫∇·ℓ dt = 0` (`ℓ = γJ∇U` is divergence-free)."""
    p = np.asarray(p)
    Ha, Hs = (p[0] * np.asarray(_hessian(jnp.asarray(x), p)) for x in (a, s))
    Js = -(np.eye(2) + p[1] * np.asarray(ROT)) @ Hs
    lam = np.max(np.linalg.eigvals(Js).real)
    dV = float(potential(jnp.asarray(s), p) - potential(jnp.asarray(a), p))
    pref = lam / (2 * np.pi) * np.sqrt(np.linalg.det(Ha) / abs(np.linalg.det(Hs)))
    return pref * np.exp(-p[0] * dV / delta), pref


# --- one saddle: barrier, legs, rate -------------------------------------------------------


def test_rotating_family_barrier_legs_and_rate():
    a, s, b, dV = rot_points(P_ROT)
    # The saddle found by the search.
    tr = nj.barrier(ROT_SDE, a, b, args=P_ROT, n_nodes=N, rate_method="eyring-kramers")
    exact = dV / DELTA
    assert float(tr.barrier) == pytest.approx(exact, rel=3e-4)
    assert float(tr.action) == float(tr.barrier)
    np.testing.assert_allclose(tr.saddle.x, s, atol=1e-10)
    np.testing.assert_allclose(tr.start.x, a, atol=1e-12)
    # Per-leg reporting: both legs converged, nothing failed, one hop.
    assert bool(tr.converged) and bool(tr.uphill_converged) and bool(tr.downhill_converged)
    assert int(tr.failed_leg) == -1 and tr.result == nj.RESULTS.successful and tr.message == ""
    assert tr.num_hops == 1 and tr.route is None and tr.network is None
    (leg,) = tr.legs
    assert leg.uphill is tr.uphill and leg.downhill is tr.downhill
    xs = np.asarray(tr.xs)
    np.testing.assert_allclose(xs[0], a, atol=1e-12)
    np.testing.assert_allclose(xs[-1], b, atol=1e-6)
    # The rate: the divergence term of Bouchet–Reygner vanishes for this family, so
    # Eyring–Kramers with the quasipotential's Hessians is exact.
    k, pref = eyring_kramers(a, s, P_ROT, DELTA)
    assert tr.rate_method == "eyring-kramers"
    assert float(tr.prefactor) == pytest.approx(pref, rel=2e-3)
    assert float(tr.rate) == pytest.approx(k, rel=2e-3)
    assert float(tr.rate) == pytest.approx(float(tr.prefactor) * math.exp(-float(tr.barrier)))
    assert float(tr.mean_exit_time) == pytest.approx(1 / float(tr.rate))


def test_failed_leg_is_named():
    a, s, b, _ = rot_points(P_ROT)
    tr = nj.barrier(ROT_SDE, a, b, args=P_ROT, saddles=s[None], n_nodes=N, with_rates=False)
    assert tr.rate_method == "none" and "with_rates=False" in tr.rate_note
    assert math.isnan(float(tr.rate))
    # The uphill leg failed: leg 0, its own code.
    up_bad = nj.RESULTS.max_steps_reached
    leg, res = _failure(jnp.array(False), jnp.array(True), up_bad, nj.RESULTS.successful)
    assert int(leg) == 0 and res == up_bad
    t = eqx.tree_at(
        lambda t: (t.failed_leg, t.uphill.result), tr, (leg, up_bad)
    )
    assert t.message.startswith("uphill leg a→s (from [-1.0467, 0.54777] to the saddle [0.10103")
    assert "ran out of steps" in t.message
    # The downhill leg failed: leg 1.
    leg, res = _failure(jnp.array(True), jnp.array(False), nj.RESULTS.successful,
                        nj.RESULTS.not_settled)
    assert int(leg) == 1 and res == nj.RESULTS.not_settled
    t = eqx.tree_at(lambda t: (t.failed_leg, t.downhill.result), tr, (leg, res))
    assert t.message.startswith("downhill leg s→b (from the saddle [0.10103")
    # In a chain, the second hop's downhill leg is leg 3; both flags failing: the first.
    codes = lambda *items: jax.tree.map(lambda *v: jnp.stack(v), *items)
    ok, bad_up, bad_down = nj.RESULTS.successful, nj.RESULTS.nonfinite, nj.RESULTS.not_settled
    leg, res = _failure(jnp.array([True, True]), jnp.array([True, False]), codes(ok, ok),
                        codes(ok, bad_down))
    assert int(leg) == 3 and res == bad_down
    leg, res = _failure(jnp.array([False, True]), jnp.array([False, True]),
                        codes(bad_up, ok), codes(bad_down, ok))
    assert int(leg) == 0 and res == bad_up


# --- chains: Müller–Brown's two deepest minima, joined only through the shallow one --------


def _V(x):
    return float(potential(jnp.asarray(x), P_MB))


def test_muller_brown_chain():
    deep, middle = polish(MB_DEEP, P_MB), polish(MB_MIDDLE, P_MB)
    shallow = polish(MB_SHALLOW, P_MB)
    s0, s1 = (polish(s, P_MB) for s in MB_SADDLES)
    scale = float(P_MB[0]) / MB_DELTA
    tr = nj.barrier(MB_SDE, deep, middle, args=P_MB, n_nodes=N)
    assert tr.num_hops == 2 and isinstance(tr.route, nj.Route)
    assert isinstance(tr.network, nj.TransitionNetwork)
    # deep (#0) → shallow → middle (#1), over s0 then s1.
    r = tr.route
    assert r.attractors[0] == 0 and r.attractors[-1] == 1 and len(r.attractors) == 3
    np.testing.assert_allclose(tr.network.attractors[r.attractors[1]], shallow, atol=1e-8)
    np.testing.assert_allclose(tr.saddle.x, jnp.stack([s0, s1]), atol=1e-8)
    # Each uphill leg against the exact c ΔV/δ, and the action is their sum.
    B1 = scale * (_V(s0) - _V(deep))
    B2 = scale * (_V(s1) - _V(shallow))
    legs = np.asarray(tr.uphill.action)
    assert legs.shape == (2,)
    assert legs[0] == pytest.approx(B1, rel=3e-4) and legs[1] == pytest.approx(B2, rel=3e-4)
    assert float(tr.action) == pytest.approx(legs.sum(), rel=1e-14)
    assert float(tr.action) == pytest.approx(float(r.action), rel=1e-14)
    # The waiting time's exponent: the first saddle, from the deepest minimum, is the
    # higher climb; the second is climbed from the shallow minimum, which the process
    # leaves for the deep one more often than it reaches s1 (critical depth).
    assert float(tr.barrier) == pytest.approx(B1, rel=3e-4)
    assert float(tr.barrier) == pytest.approx(legs[0], rel=1e-12)
    assert float(tr.action) > float(tr.barrier) + 0.8
    # Per-leg fields, one per hop.
    assert tr.uphill_converged.tolist() == [True, True]
    assert tr.downhill_converged.tolist() == [True, True]
    assert bool(tr.converged) and int(tr.failed_leg) == -1 and tr.message == ""
    assert [(leg.start, leg.end) for leg in tr.legs] == list(zip(r.attractors, r.attractors[1:]))
    xs = np.asarray(tr.xs)
    np.testing.assert_allclose(xs[0], deep, atol=1e-12)
    np.testing.assert_allclose(xs[-1], middle, atol=1e-6)
    # The rate of the chain: 1/MFPT of the network's Markov chain.
    assert tr.rate_method == "markov-chain" and "first-passage" in tr.rate_note
    tau = float(tr.network.mean_first_passage_times()[0, 1])
    assert float(tr.mean_exit_time) == pytest.approx(tau, rel=1e-12)
    assert float(tr.prefactor) == pytest.approx(float(tr.rate) * math.exp(float(tr.barrier)))
    assert np.all(np.isinf(np.asarray(tr.candidate_barriers)))

    # Backwards, middle → deep: the highest point is s0, measured from the middle minimum
    # itself (the shallow one on the way is higher), so the barrier is no single leg.
    back = nj.barrier(MB_SDE, middle, deep, args=P_MB, n_nodes=N)
    assert back.num_hops == 2
    legs = np.asarray(back.uphill.action)
    assert legs[0] == pytest.approx(scale * (_V(s1) - _V(middle)), rel=3e-4)
    assert legs[1] == pytest.approx(scale * (_V(s0) - _V(shallow)), rel=3e-4)
    assert float(back.action) == pytest.approx(legs.sum(), rel=1e-14)
    assert float(back.barrier) == pytest.approx(scale * (_V(s0) - _V(middle)), rel=3e-4)
    assert float(back.barrier) < float(back.action) - 0.5
    # Detailed balance of the chain: τ(a→b)/τ(b→a) → π(a)/π(b) ∝ exp(U(b) − U(a))·…, so the
    # difference of the two exponents is the depth difference c(V(middle) − V(deep))/δ.
    assert float(tr.barrier - back.barrier) == pytest.approx(
        scale * (_V(middle) - _V(deep)), rel=5e-4
    )


# --- derivatives, jit and vmap with `saddles=` ----------------------------------------------

# γ, β, μ: the rotation, the tilt and the valley's curvature. The barrier is
# ΔP/δ, P = (x² − 1)²/4 + βx, so ∂/∂β = (x_s − x_a)/δ, and it does not depend on γ or μ.
WHICH = (1, 4, 6)
H = 1e-4
P_OTHER = P_ROT.at[1].set(3.0).at[4].set(0.05).at[6].set(0.3)


def _batch():
    ps = [P_ROT]
    for i in WHICH:
        ps += [P_ROT.at[i].add(H), P_ROT.at[i].add(-H)]
    return jnp.stack(ps + [P_OTHER])


@pytest.fixture(scope="module")
def traced():
    """`f(θ) = (barrier, rate, action, saddle, attractor)` with the fixed points of `P_ROT`
    given as starting points, and its Jacobian by reverse mode, in one program:
    `jit(vmap(jacrev))` over a batch of parameters (one compilation for the three
    transformations). The rate uses the Eyring–Kramers formula, exact for this family
    (`∫∇·ℓ dt = 0`)."""
    a, s, b, _ = rot_points(P_ROT)
    a, s, b = (jnp.asarray(x) for x in (a, s, b))

    def f(p, saddles):
        tr = nj.barrier(ROT_SDE, a, b, args=p, saddles=saddles, n_nodes=N,
                        rate_method="eyring-kramers")
        out = jnp.stack([tr.barrier, tr.rate, tr.action, *tr.saddle.x, *tr.start.x])
        return out, out

    batched = jax.jit(jax.vmap(jax.jacrev(f, has_aux=True), in_axes=(0, None)))
    jac, values = batched(_batch(), s[None])
    return batched, values, jac[0]


def test_grad_matches_finite_differences_and_exact(traced):
    _, values, jac = traced
    v = np.asarray(values)
    fd = np.stack([(v[1 + 2 * k] - v[2 + 2 * k]) / (2 * H) for k in range(len(WHICH))], axis=1)
    g = np.asarray(jac)[:, WHICH]
    # The barrier: the derivative of the discrete action (the envelope theorem at the
    # converged path, the endpoints moving as roots of f) against finite differences of the
    # whole solve. They differ at O(h^2) (the nodes' sliding along the curve, a gauge for
    # the derivative, is not one for the discrete action): 6e-5 of it with 201 nodes,
    # 4 times less per halving of h.
    scale_b = abs(fd[0]).max()
    np.testing.assert_allclose(g[0], fd[0], rtol=0, atol=2e-4 * scale_b)
    # Both approach the exact derivative of dP/delta, (x_s - x_a)/delta for beta and 0 for
    # gamma and mu, at O(h^2).
    a, s, _, _ = rot_points(P_ROT)
    np.testing.assert_allclose(g[0], [0.0, (s[0] - a[0]) / DELTA, 0.0], atol=2e-4 * scale_b)
    # The rate, Eyring-Kramers prefactor times exp(-barrier).
    scale_r = abs(fd[1]).max()
    np.testing.assert_allclose(g[1], fd[1], rtol=0, atol=2e-4 * scale_r)
    # The action of one hop is the barrier.
    np.testing.assert_array_equal(g[2], g[0])
    # The fixed points move by the implicit function theorem, exactly (the finite
    # differences' own error is h^2 times a third derivative, about 1e-8).
    np.testing.assert_allclose(g[3:7], fd[3:7], rtol=0, atol=1e-7)


def test_vmap_and_jit_equal_a_loop_of_eager_calls(traced):
    _, values, _ = traced
    v = np.asarray(values)
    for p, row in ((P_ROT, v[0]), (P_OTHER, v[-1])):
        a, s, b, dV = rot_points(p)
        tr = nj.barrier(ROT_SDE, a, b, args=p, saddles=s[None], n_nodes=N,
                        rate_method="eyring-kramers")
        assert float(tr.barrier) == pytest.approx(row[0], rel=1e-9)
        assert float(tr.rate) == pytest.approx(row[1], rel=1e-8)
        np.testing.assert_allclose(row[3:5], s, atol=1e-12)  # polished from P_ROT's saddle
        np.testing.assert_allclose(row[5:7], a, atol=1e-12)
        # The discretisation error of 201 equal-arclength nodes (O(h²)): 4.2e-4 for
        # P_OTHER's more strongly rotating drift.
        assert row[0] == pytest.approx(dV / DELTA, rel=6e-4)
        assert row[1] == pytest.approx(eyring_kramers(a, s, p, DELTA)[0], rel=2e-3)


def test_traced_bad_saddle_raises_at_run_time(traced):
    batched, _, _ = traced
    a = jnp.asarray(rot_points(P_ROT)[0])
    # An attractor given as a saddle: `equinox.error_if` at run time (this check's, or
    # `nj.escape_rate`'s own, whichever runs first).
    with pytest.raises(Exception, match="index-1"):
        jax.block_until_ready(batched(_batch(), a[None]))


# --- bad input -------------------------------------------------------------------------------


def test_bad_inputs():
    a, s, b, _ = rot_points(P_ROT)
    with pytest.raises(ValueError, match=r"saddles\[0\]`.*kind 'stable'"):
        nj.barrier(ROT_SDE, a, b, args=P_ROT, saddles=a[None])
    with pytest.raises(ValueError, match=r"`saddles` must have shape \(k, 2\)"):
        nj.barrier(ROT_SDE, a, b, args=P_ROT, saddles=s)
    with pytest.raises(ValueError, match="same attractor"):
        nj.barrier(ROT_SDE, a, a, args=P_ROT)
    with pytest.raises(ValueError, match="rate_method"):
        nj.barrier(ROT_SDE, a, b, args=P_ROT, rate_method="kramers")
    with pytest.raises(ValueError, match="under `jit`/`vmap`/`grad` pass `saddles=`"):
        jax.jit(lambda p: nj.barrier(ROT_SDE, a, b, args=p).barrier)(P_ROT)
    # No saddle at all: no direct connection and no chain.
    with pytest.raises(ValueError, match="no chain of saddles through other attractors"):
        nj.barrier(ROT_SDE, a, b, args=P_ROT, saddles=jnp.zeros((0, 2)))


def test_state_dependent_noise_and_rates():
    """A state-dependent `D` has no prefactor formula: asked for rates (`with_rates=True`)
    it is a `ValueError` before any work; by default the rate is NaN and `rate_note` says
    why; the barrier itself is still computed (`nj.minimize_geometric_action` takes any
    `D`)."""
    a, _, b, _ = rot_points(P_ROT)
    sde = nj.SDE(drift, lambda t, x, p: DELTA * (1 + x[0] ** 2))
    with pytest.raises(ValueError, match="with_rates=True.*depends on the state"):
        nj.barrier(sde, a, b, args=P_ROT, with_rates=True)
    assert _rates_wanted(sde, None) == (False, _rates_wanted(sde, None)[1])
    assert "depends on the state" in _rates_wanted(sde, None)[1]
    assert _rates_wanted(ROT_SDE, None) == (True, "")
    assert _rates_wanted(ROT_SDE, False)[0] is False
