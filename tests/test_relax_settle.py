"""Downhill legs that settle: `nj.relax` and `nj.leave_saddle` stop where the attractor's own
linearisation holds and polish the end point by Newton's method, so that attractors with an
ill-conditioned (slow, non-normal) Jacobian are reached to round-off instead of hovering at the
integrator's accuracy until `t_max`.

Compilation dominates the cost, so the float64 systems share one drift,

    f(x) = −A (x + c·(x₀³ − 2x₀) e₀ − a),       (A, a, c) in `args`:

`c = 0` is the linear attractor `−A(x − a)`; `c = 1`, `a = 0` with `A = M diag(1, μ)`,
`M = [[1, −γ], [γ, 1]]`, is the rotated double well `−M ∇V`, `V = (x₀² − 1)²/4 + μ x₁²/2`,
with saddle 0 and attractors (±1, 0) whose stable rates are about 2 and `μ(1 + γ²)`; and
`A = diag(−1, 1)`, `c = 1` gives `ẋ₀ = x₀³ − x₀`, which blows up in finite time from `x₀ > 1`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import MB_a, MB_b, MB_c, muller_brown_terms

EPS = float(jnp.finfo(jnp.float64).eps)
EPS32 = float(jnp.finfo(jnp.float32).eps)


def _family(t, x, p):
    A, a, c = p
    cubic = jnp.zeros_like(x).at[0].set(x[0] ** 3 - 2 * x[0])
    return -A @ (x + c * cubic - a)


FAMILY = nj.SDE(_family, 1.0)


def _linear(A, a, dtype=jnp.float64):
    return jnp.asarray(A, dtype), jnp.asarray(a, dtype), jnp.asarray(0.0, dtype)


def _rotated_double_well(mu, gamma, dtype=jnp.float64):
    A = jnp.array([[1.0, -gamma * mu], [gamma, mu]], dtype)  # M diag(1, μ)
    return A, jnp.zeros(2, dtype), jnp.asarray(1.0, dtype)


# Eigenvalues 1 and 1e-3, strongly non-normal (‖A‖ = 50, cond(A) = 2.5e6).
A_ILL = [[1.0, 50.0], [0.0, 1e-3]]
A_ATTRACTOR = [0.3, -0.7]


# ---------------------------------------------------------------------------------------------
# (a) An ill-conditioned, non-normal attractor.


def test_ill_conditioned_attractor_settles_to_round_off():
    args = _linear(A_ILL, A_ATTRACTOR)
    a = jnp.asarray(A_ATTRACTOR)
    x0 = a + 0.05
    # The slow mode decays like e^{−t/1000}: the default t_max (10⁴/‖A‖ = 200) is too
    # short, and says so; nothing is polished then.
    short = nj.relax(FAMILY, x0, args=args)
    assert short.result == nj.RESULTS.not_settled and not bool(short.converged)
    assert float(short.gap) == 0.0 and float(short.duration) == pytest.approx(200.0, rel=1e-3)
    np.testing.assert_array_equal(short.xs[-1], short.x_end)

    rel = nj.relax(FAMILY, x0, args=args, t_max=1e5)
    assert bool(rel.converged) and rel.result == nj.RESULTS.successful
    # The linear model is exact here, so the polished end is the attractor to round-off;
    # the flow itself stopped once the Newton step was below tol·(|x| + 1), tol = ε^(1/4).
    assert float(jnp.linalg.norm(rel.x_end - a)) <= 1e-10
    assert float(rel.distance) <= 1e-14
    assert 1e-6 < float(rel.gap) <= 2 * EPS**0.25 * (float(jnp.linalg.norm(a)) + 1.0)
    np.testing.assert_array_equal(rel.xs[-1], rel.x_end)
    # The slow eigenvector is ∝ (−50, 1): the start's slow component is a displacement of
    # ~2.5, which decays like e^{−t/1000} to the stop tolerance ~2e-4 at t ≈ 1000·log(1e4);
    # the explicit solver's steps are bounded by stability (~2.7 for the fast rate 1).
    assert 8.5e3 < float(rel.duration) < 1.05e4
    assert int(rel.num_steps) < 3700


# ---------------------------------------------------------------------------------------------
# (b) A rotated saddle with a slow stable direction.


def test_leave_rotated_saddle_with_slow_direction():
    um = nj.leave_saddle(FAMILY, jnp.zeros(2), args=_rotated_double_well(1e-2, 0.5))
    assert bool(um.converged)
    np.testing.assert_allclose(um.ends, [[1.0, 0.0], [-1.0, 0.0]], atol=1e-14)
    for rel in (um.plus, um.minus):
        assert rel.result == nj.RESULTS.successful
        assert float(rel.distance) <= 1e-14
        np.testing.assert_array_equal(rel.xs[-1], rel.x_end)
        # The stop test is not met at the start, a step off the saddle, although the Newton
        # step there (back to the saddle) is small and the linear model holds: the saddle
        # is not an attractor.
        assert float(rel.duration) > 100.0
        # Rotation excites the slow direction (rate μ(1 + γ²) = 0.0125): a long slow tail,
        # on which the old stop test (at the integrator's accuracy) was not met within the
        # default 4096 steps.
        assert float(jnp.max(jnp.abs(rel.xs[:, 1]))) > 0.1
        assert 0.0 < float(rel.gap) <= 2 * EPS**0.25 * 2.0
        assert int(rel.num_steps) < 1000
    # Staying exactly on the saddle is not settling (f = 0 there, the flow never leaves).
    stay = nj.relax(FAMILY, jnp.zeros(2), args=_rotated_double_well(1e-2, 0.5), t_max=50.0)
    assert stay.result == nj.RESULTS.not_settled
    np.testing.assert_array_equal(stay.x_end, 0.0)


# ---------------------------------------------------------------------------------------------
# (c) Müller–Brown.

def _mueller_brown(t, x, k):
    # f = −k ∇V, V = Σ A_i exp(a_i dx² + b_i dx dy + c_i dy²), with the gradient written out
    # (smaller to compile than `jax.grad` under the Jacobians of the stop test).
    e, dx, dy = muller_brown_terms(x)
    gx = jnp.sum(e * (2 * MB_a * dx + MB_b * dy))
    gy = jnp.sum(e * (MB_b * dx + 2 * MB_c * dy))
    return -k * jnp.stack([gx, gy])


def test_mueller_brown_saddles_lead_to_the_right_minima():
    sde = nj.SDE(_mueller_brown, 1.0)
    fps = nj.find_fixed_points(
        sde, center=jnp.array([-0.3, 0.75]), scale=jnp.array([1.0, 0.8]), args=0.01,
        num_starts=64,
    )
    minima, saddles = fps.stable, fps.with_index(1)
    assert len(minima) == 3 and len(saddles) == 2
    # Known minima (−0.558, 1.442), (−0.050, 0.467), (0.623, 0.028) and saddles
    # (−0.822, 0.624), (0.212, 0.293).
    expected = {(-0.558, 1.442): "A", (-0.050, 0.467): "C", (0.623, 0.028): "B"}
    names = []
    for m in minima.xs.tolist():
        (name,) = [n for k, n in expected.items() if np.allclose(m, k, atol=1e-3)]
        names.append(name)
    connects = {(-0.822, 0.624): {"A", "C"}, (0.212, 0.293): {"C", "B"}}
    for s in saddles:
        (ends_expected,) = [v for k, v in connects.items() if np.allclose(s.x, k, atol=1e-3)]
        um = nj.leave_saddle(sde, s.x, args=0.01)
        assert bool(um.converged)
        reached = set()
        for rel in (um.plus, um.minus):
            assert rel.result == nj.RESULTS.successful
            d = np.linalg.norm(np.asarray(minima.xs) - np.asarray(rel.x_end), axis=1)
            i = int(np.argmin(d))
            # The polished end is the minimum find_fixed_points located (both to round-off).
            assert d[i] <= 1e-10
            assert float(rel.distance) <= 1e-12
            assert 0.0 < float(rel.gap) <= 2 * EPS**0.25 * 3.0
            np.testing.assert_array_equal(rel.xs[-1], rel.x_end)
            reached.add(names[i])
        assert reached == ends_expected


# ---------------------------------------------------------------------------------------------
# (d) float32, (e) a flow that blows up.


def test_float32():
    # One float32 compilation: the rotated double well from both sides of its saddle, and
    # the ill-conditioned attractor (its slow rate 1e-3 is 3√ε of the fast one).
    args = _rotated_double_well(1e-2, 0.5, jnp.float32)
    for x0, end in (([1e-2, 0.0], [1.0, 0.0]), ([-0.3, 0.2], [-1.0, 0.0])):
        rel = nj.relax(FAMILY, jnp.array(x0, jnp.float32), args=args)
        assert bool(rel.converged) and rel.result == nj.RESULTS.successful
        assert rel.xs.dtype == jnp.float32 and rel.distance.dtype == jnp.float32
        np.testing.assert_allclose(rel.x_end, end, atol=1e-6)
        assert float(rel.gap) <= 2 * EPS32**0.25 * 2.0
        np.testing.assert_array_equal(rel.xs[-1], rel.x_end)
    a = jnp.asarray(A_ATTRACTOR, jnp.float32)
    rel = nj.relax(FAMILY, a + 0.2, args=_linear(A_ILL, a, jnp.float32), t_max=1e5)
    assert bool(rel.converged) and rel.result == nj.RESULTS.successful
    assert rel.x_end.dtype == jnp.float32
    assert float(jnp.linalg.norm(rel.x_end - a)) <= 1e-5


def test_blow_up_is_a_failure():
    # ẋ₀ = x₀³ − x₀ from x₀ = 2 blows up at t = log(4/3)/2 ≈ 0.144.
    A, a, _ = _linear([[-1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    args = (A, a, jnp.asarray(1.0, jnp.float64))  # same types as above: no new compilation
    rel = nj.relax(FAMILY, jnp.array([2.0, 0.5]), args=args)
    assert not bool(rel.converged)
    assert rel.result != nj.RESULTS.successful
    assert rel.result in (nj.RESULTS.max_steps_reached, nj.RESULTS.nonfinite)
    assert float(rel.gap) == 0.0
    assert float(rel.duration) == pytest.approx(np.log(4 / 3) / 2, rel=1e-3)
