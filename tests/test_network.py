"""The network of attractors (`transition_network`): Müller–Brown barriers against `ΔV/δ`, the
route through the shallow minimum, Eyring–Kramers rates, the Markov chain's mean
first-passage times and occupations, a separable triple well with closed forms, bad input,
and the `noether-jax network` command.

Every system here is one drift function with different `args` (Müller–Brown plus a
polynomial in each coordinate), and every network has four uphill legs: the fixed-point
search, the relaxations and the batched uphill solve compile once for the whole file."""

import json
import math
import sys
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import muller_brown
from noether_jax._geometric._network import (
    _barrier_matrices,
    _leg_rates,
    _mfpt,
    _stationary,
)

transition_network = nj.transition_network



def potential(z, p):
    """`w · V_MB(x, y) + P_x(x) + P_y(y)`, the polynomials' coefficients highest first."""
    return p["w"] * muller_brown(z) + jnp.polyval(p["px"], z[0]) + jnp.polyval(p["py"], z[1])


def drift(t, z, p):
    # f = −c ∇V with D = δ: the quasipotential is cV/δ, the barrier c ΔV/δ.
    return -p["c"] * jax.grad(potential)(z, p)


ZERO7 = [0.0] * 7
MB_DELTA = 0.1
MB_ARGS = {"c": 0.01, "w": 1.0, "px": jnp.array(ZERO7), "py": jnp.array(ZERO7)}
MB_CENTER, MB_SCALE = jnp.array([-0.5, 0.75]), jnp.array([1.25, 1.0])
# D as an array, not a Python float: a float would be a compile-time constant, and each
# system would compile its own solvers.
SDE = nj.SDE(drift, jnp.asarray(MB_DELTA))
# The minima (deep A, shallow C, middle B) and saddles, to the digits printed in the
# literature; the network sorts them by coordinates.
MB_MINIMA = np.array([[-0.5582, 1.4417], [-0.0501, 0.4667], [0.6235, 0.0280]])
MB_SADDLES = np.array([[-0.8220, 0.6243], [0.2125, 0.2930]])

# Separable tilted triple well: P(x) = α(x⁶/6 − 5x⁴/16 + x²/8) + βx, so that
# P'(x) = α x(x² − 1)(x² − ¼) + β; and κ y²/2.
ALPHA, BETA, KAPPA, TW_DELTA = 4.0, 0.05, 1.0, 0.02
TW_ARGS = {
    "c": 1.0, "w": 0.0,
    "px": jnp.array([ALPHA / 6, 0.0, -5 * ALPHA / 16, 0.0, ALPHA / 8, BETA, 0.0]),
    "py": jnp.array([0.0, 0.0, 0.0, 0.0, KAPPA / 2, 0.0, 0.0]),
}
TW_SDE = nj.SDE(drift, jnp.asarray(TW_DELTA))


@pytest.fixture(scope="module")
def mb():
    return transition_network(SDE, center=MB_CENTER, scale=MB_SCALE, args=MB_ARGS)


@pytest.fixture(scope="module")
def wells():
    return transition_network(
        TW_SDE, center=jnp.zeros(2), scale=jnp.array([1.5, 0.5]), args=TW_ARGS
    )


def _V(x, p=MB_ARGS):
    return float(potential(jnp.asarray(x), p))


# --- Müller–Brown --------------------------------------------------------------------------


def test_muller_brown_attractors_saddles_barriers(mb):
    A, S = np.asarray(mb.attractors), np.asarray(mb.saddles)
    np.testing.assert_allclose(A, MB_MINIMA, atol=1e-4)
    np.testing.assert_allclose(S, MB_SADDLES, atol=1e-4)
    # Each saddle joins its two neighbours: s0 the deep and the shallow minimum, s1 the
    # shallow and the middle one.
    assert sorted(mb.joins[0].tolist()) == [0, 1] and sorted(mb.joins[1].tolist()) == [1, 2]
    assert "±" in mb.table()
    assert mb.join_notes == ("", "")
    assert bool(jnp.all(mb.leg_converged)) and mb.leg_actions.shape == (4,)
    # Barriers: (V(s) − V(a))·c/δ, from the exact fixed points.
    c = MB_ARGS["c"]
    B = np.asarray(mb.barriers)
    # At the defaults (`nj.Refine()`, 101 → 201 → 401 nodes) each leg is within 1e-4 of the
    # exact barrier, and its error estimate is honest (within a factor 10 of the error).
    est = np.asarray(mb.leg_error_estimates)
    for i, j, s in ((0, 1, 0), (1, 0, 0), (1, 2, 1), (2, 1, 1)):
        exact = c * (_V(S[s]) - _V(A[i])) / MB_DELTA
        assert B[i, j] == pytest.approx(exact, rel=1e-4), (i, j)
        assert int(mb.saddle_of[i, j]) == s
        err = abs(B[i, j] - exact)
        e = est[int(mb.leg_of[i, j])]
        assert err / 10 <= e <= 10 * err + 1e-9, (i, j, err, e)
    assert math.isinf(B[0, 2]) and math.isinf(B[2, 0]) and math.isinf(B[0, 0])
    assert int(mb.saddle_of[0, 2]) == -1
    # The textbook barriers ΔV = 106.0, 40.1, 8.5, 35.9 (in units of the potential).
    assert B[0, 1] * MB_DELTA / c == pytest.approx(106.04, abs=0.05)
    assert B[2, 1] * MB_DELTA / c == pytest.approx(35.92, abs=0.05)


def test_muller_brown_route_through_the_shallow_minimum(mb):
    r = mb.route(0, 2)  # deepest → second deepest
    assert r.attractors == (0, 1, 2) and r.saddles == (0, 1)
    assert bool(r.converged) and r.failed_leg is None and r.message == ""
    B = mb.barriers
    assert float(r.action) == pytest.approx(float(B[0, 1] + B[1, 2]), rel=1e-12)
    assert float(r.action) == pytest.approx(sum(float(leg.action) for leg in r.legs), rel=1e-12)
    # The whole path starts at a, climbs to s0, relaxes to the shallow minimum, climbs to s1
    # and relaxes to b.
    xs = np.asarray(r.xs)
    np.testing.assert_allclose(xs[0], mb.attractors[0], atol=1e-12)
    np.testing.assert_allclose(xs[-1], mb.attractors[2], atol=1e-5)
    for leg in r.legs:
        np.testing.assert_allclose(leg.uphill.xs[-1], mb.saddles[leg.saddle], atol=1e-12)
        np.testing.assert_allclose(leg.downhill.x_end, mb.attractors[leg.end], atol=1e-5)
    # By position (nearest attractor), and back: the reverse route costs B21 + B10.
    back = mb.route(jnp.array([0.62, 0.03]), jnp.array([-0.56, 1.44]))
    assert back.attractors == (2, 1, 0)
    assert float(back.action) == pytest.approx(float(B[2, 1] + B[1, 0]), rel=1e-12)
    # Its rate is the inverse mean first-passage time of the chain.
    assert float(r.rate) == pytest.approx(1 / float(mb.mean_first_passage_times()[0, 2]))


_hessian_jit = jax.jit(jax.hessian(potential))


def _hessian(x):
    return np.asarray(_hessian_jit(jnp.asarray(x), MB_ARGS)) * MB_ARGS["c"]


def test_muller_brown_rates_are_eyring_kramers(mb):
    """k = (λ⁺/2π) sqrt(det ∇²U(a)/|det ∇²U(s)|) exp(−ΔU/δ), U = cV."""
    A, S = np.asarray(mb.attractors), np.asarray(mb.saddles)
    R = np.asarray(mb.rates)
    assert "eyring-kramers" in mb.rate_note
    for l in range(4):
        a, s, b = (int(v[l]) for v in (mb.leg_attractor, mb.leg_saddle, mb.leg_target))
        Ha, Hs = _hessian(A[a]), _hessian(S[s])
        lam = -np.min(np.linalg.eigvalsh(Hs))
        dU = MB_ARGS["c"] * (_V(S[s]) - _V(A[a]))
        k = lam / (2 * np.pi) * np.sqrt(np.linalg.det(Ha) / abs(np.linalg.det(Hs)))
        k *= np.exp(-dU / MB_DELTA)
        assert float(mb.leg_rates[l]) == pytest.approx(k, rel=3e-3), l
        assert R[a, b] == float(mb.leg_rates[l])  # one saddle per pair
    assert R[0, 2] == 0 and R[2, 0] == 0


def test_muller_brown_chain_mfpt_and_occupation(mb):
    R = np.asarray(mb.rates)
    tau = np.asarray(mb.mean_first_passage_times())
    q = R.sum(axis=1)
    for j in range(3):
        rest = [x for x in range(3) if x != j]
        M = np.diag(q[rest]) - R[np.ix_(rest, rest)]
        np.testing.assert_allclose(tau[rest, j], np.linalg.solve(M, np.ones(2)), rtol=1e-10)
        assert tau[j, j] == 0
    # The chain 0 ↔ 1 ↔ 2: from 0 the only way to 2 is through 1.
    assert tau[0, 2] == pytest.approx(tau[0, 1] + tau[1, 2], rel=1e-10)
    # Stationary occupation: the Gibbs weights exp(−U/δ)/sqrt(det ∇²U) of the minima
    # (detailed balance with Eyring–Kramers rates), to the accuracy of the barriers.
    pi = np.asarray(mb.occupation())
    A = np.asarray(mb.attractors)
    logw = np.array(
        [-MB_ARGS["c"] * _V(a) / MB_DELTA - 0.5 * np.log(np.linalg.det(_hessian(a))) for a in A]
    )
    gibbs = np.exp(logw - logw.max())
    gibbs /= gibbs.sum()
    np.testing.assert_allclose(pi, gibbs, rtol=5e-3)
    assert pi.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(pi[:, None] * R, (pi[:, None] * R).T, rtol=1e-8, atol=0)


def test_table(mb):
    text = mb.table()
    assert str(mb) == text
    assert "3 attractor(s), 2 saddle(s)" in text and "1 component(s): {0, 1, 2}" in text
    assert f"{float(mb.barriers[0, 1]):.6g}" in text
    assert "mean first-passage times" in text and "eyring-kramers" in text


# --- a separable triple well: closed forms ----------------------------------------------------


def test_separable_triple_well_closed_forms(wells):
    crit = np.sort(np.roots([ALPHA, 0, -5 * ALPHA / 4, 0, ALPHA / 4, BETA]).real)
    P = lambda x: np.polyval(np.asarray(TW_ARGS["px"]), x)
    P2 = lambda x: np.polyval(np.polyder(np.polyder(np.asarray(TW_ARGS["px"]))), x)
    minima, maxima = crit[::2], crit[1::2]
    np.testing.assert_allclose(np.asarray(wells.attractors)[:, 0], minima, atol=1e-8)
    np.testing.assert_allclose(np.asarray(wells.saddles)[:, 0], maxima, atol=1e-8)
    np.testing.assert_allclose(np.asarray(wells.attractors)[:, 1], 0.0, atol=1e-8)
    B = np.asarray(wells.barriers)
    R = np.asarray(wells.rates)
    for i, j, s in ((0, 1, 0), (1, 0, 0), (1, 2, 1), (2, 1, 1)):
        exact = (P(maxima[s]) - P(minima[i])) / TW_DELTA
        assert B[i, j] == pytest.approx(exact, rel=2e-4), (i, j)
        # Kramers in 1-D (the y-direction cancels): sqrt(P''(a)|P''(s)|)/2π exp(−ΔP/δ).
        k = np.sqrt(P2(minima[i]) * abs(P2(maxima[s]))) / (2 * np.pi) * np.exp(-exact)
        assert R[i, j] == pytest.approx(k, rel=5e-3), (i, j)
    # Tilted: the left well is the deepest, so leaving it is the slowest hop.
    assert B[0, 1] > B[2, 1]
    # A birth–death chain: τ(0 → 2) = τ(0 → 1) + τ(1 → 2), with
    # τ(0 → 1) = 1/k01 and τ(1 → 2) = (1 + k10 τ(0 → 1))/k12.
    tau = np.asarray(wells.mean_first_passage_times())
    t01 = 1 / R[0, 1]
    t12 = (1 + R[1, 0] * t01) / R[1, 2]
    assert tau[0, 1] == pytest.approx(t01, rel=1e-10)
    assert tau[1, 2] == pytest.approx(t12, rel=1e-10)
    assert tau[0, 2] == pytest.approx(t01 + t12, rel=1e-10)
    route = wells.route(0, 2)
    assert route.attractors == (0, 1, 2)
    assert float(route.action) == pytest.approx(B[0, 1] + B[1, 2], rel=1e-12)


def test_markov_chain_closed_forms():
    # Two states: τ = 1/k, π ∝ (k21, k12).
    k12, k21 = 0.3, 2.0
    R = jnp.array([[0.0, k12], [k21, 0.0]])
    np.testing.assert_allclose(_mfpt(R, [[0, 1]]), [[0, 1 / k12], [1 / k21, 0]], rtol=1e-14)
    np.testing.assert_allclose(_stationary(R, [[0, 1]]), [k21 / (k12 + k21), k12 / (k12 + k21)])
    # Four states on a square, all rates k: τ(opposite corner) = 2/k, τ(neighbour) = 3/(2k)
    # (by symmetry); uniform occupation. A fifth, isolated state: τ = inf, occupation 1.
    k = 0.7
    ring = [[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]
    R = jnp.zeros((5, 5)).at[:4, :4].set(k * jnp.asarray(ring, float))
    tau = np.asarray(_mfpt(R, [[0, 1, 2, 3], [4]]))
    assert tau[0, 2] == pytest.approx(2 / k) and tau[1, 3] == pytest.approx(2 / k)
    assert tau[0, 1] == pytest.approx(3 / (2 * k))
    assert np.isinf(tau[0, 4]) and np.isinf(tau[4, 0]) and tau[4, 4] == 0
    np.testing.assert_allclose(_stationary(R, [[0, 1, 2, 3], [4]]), [0.25] * 4 + [1.0])


# --- bad input, disconnected networks, failed legs --------------------------------------------


def test_no_attractor_in_the_box():
    # A small box around the saddle between the shallow and the middle minimum.
    with pytest.raises(ValueError, match=r"no attractor in the box .*saddle at \[0\.212"):
        transition_network(SDE, center=MB_SADDLES[1], scale=jnp.array([0.05, 0.05]),
                           args=MB_ARGS)
    with pytest.raises(ValueError, match="dimension of the state is unknown"):
        transition_network(SDE, center=0.0, scale=1.0, args=MB_ARGS)


def test_saddle_whose_branch_leaves_the_box_joins_nothing():
    # The box holds the middle minimum and the saddle next to it, not the shallow minimum.
    net = transition_network(SDE, center=jnp.array([0.4, 0.15]), scale=jnp.array([0.3, 0.2]),
                             args=MB_ARGS)
    assert net.num_attractors == 1 and net.num_saddles == 1
    assert net.joins.tolist() == [[-1, -1]]
    assert "leaves the box" in net.join_notes[0]
    assert net.uphill is None and net.leg_actions.shape == (0,)
    assert math.isinf(float(net.barriers[0, 0]))
    assert net.occupation().tolist() == [1.0]
    assert "nothing" in net.table()
    with pytest.raises(ValueError, match="same attractor"):
        net.route(0, jnp.array([0.62, 0.03]))


def test_disconnected_route_names_the_components(mb):
    net = transition_network(SDE, center=MB_CENTER, scale=MB_SCALE, args=MB_ARGS,
                             saddles=jnp.zeros((0, 2)), attractors=mb.attractors)
    assert net.components() == [[0], [1], [2]]
    components = r"\{0\} \| \{1\} \| \{2\}"
    with pytest.raises(ValueError, match=r"no route from attractor #0 to #2.*" + components):
        net.route(0, 2)
    tau = np.asarray(net.mean_first_passage_times())
    assert np.isinf(tau[0, 2]) and tau[1, 1] == 0
    np.testing.assert_allclose(net.occupation(), [1.0, 1.0, 1.0])


def test_route_endpoints_must_be_attractors(mb):
    with pytest.raises(ValueError, match=r"no attractor near \[3, 3\]"):
        mb.route(jnp.array([3.0, 3.0]), 0)
    with pytest.raises(ValueError, match="not an attractor index"):
        mb.route(0, 3)
    with pytest.raises(ValueError, match="same attractor"):
        mb.route(1, jnp.array([-0.05, 0.47]))
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        mb.route(jnp.zeros(3), 1)
    assert mb.route(jnp.int32(0), np.int64(-1)).attractors == (0, 1, 2)  # NumPy/JAX ints


def test_given_points_are_checked(mb):
    with pytest.raises(ValueError, match=r"`attractors\[0\]`.*kind 'saddle'"):
        transition_network(SDE, center=MB_CENTER, scale=MB_SCALE, args=MB_ARGS,
                           attractors=mb.saddles[:1], saddles=mb.saddles)
    with pytest.raises(ValueError, match=r"`saddles\[0\]`.*not a fixed point"):
        transition_network(SDE, center=MB_CENTER, scale=MB_SCALE, args=MB_ARGS,
                           attractors=mb.attractors, saddles=jnp.array([[0.0, 0.0]]))


def test_a_failed_leg_is_named_never_a_plausible_number(mb):
    # Leg 1 of the route 0 → 2 (attractor 1 up to saddle 1) marked as failed.
    l = int(mb.leg_of[1, 2])
    failed = eqx.tree_at(lambda n: n.leg_converged, mb, mb.leg_converged.at[l].set(False))
    r = failed.route(0, 2)
    assert not bool(r.converged) and r.failed_leg == 1 and math.isnan(float(r.action))
    assert "leg 1 (attractor #1 → saddle #1 → attractor #2)" in r.message
    assert bool(r.legs[0].converged)
    # The barrier matrix: NaN where the leg achieving the minimum failed; a second saddle
    # joining the same pair with a larger action does not hide the failure, a smaller one
    # that converged wins.
    legs = [(0, 0, 1), (1, 0, 0), (0, 1, 1), (1, 1, 0)]
    B, s_of, leg_of = _barrier_matrices(legs, [2.0, 1.0, 3.0, 0.5], [False, True, True, True], 2)
    assert math.isnan(B[0][1]) and s_of[0][1] == 0 and leg_of[0][1] == 0
    assert B[1][0] == 0.5 and s_of[1][0] == 1
    B, _, _ = _barrier_matrices(legs, [math.nan, 1.0, 3.0, 0.5], [False, True, True, True], 2)
    assert math.isnan(B[0][1])
    # Its escape rate is NaN, the others are kept, and the note says which leg.
    legs = list(zip(*(v.tolist() for v in (mb.leg_attractor, mb.leg_saddle, mb.leg_target))))
    inputs = (mb.attractors, mb.saddles, legs, mb.uphill, mb.leg_actions)
    rates, _, note = _leg_rates(SDE, *inputs, mb.leg_converged.at[l].set(False), MB_ARGS,
                                jnp.float64, True)
    assert math.isnan(float(rates[l])) and f"NaN for leg {l} failed" in note
    keep = np.arange(4) != l
    np.testing.assert_allclose(np.asarray(rates)[keep], np.asarray(mb.leg_rates)[keep])
    # A state-dependent D: no prefactor formula, all NaN, and why.
    sde = nj.SDE(drift, lambda t, x, p: MB_DELTA * (1 + x[0] ** 2))
    rates, _, note = _leg_rates(sde, *inputs, mb.leg_converged, MB_ARGS, jnp.float64, True)
    assert bool(jnp.all(jnp.isnan(rates))) and "depends on the state" in note


# --- the command line -------------------------------------------------------------------------


def test_cli_network(mb, tmp_path, monkeypatch, capsys):
    from noether_jax.cli import main

    # The user's file takes the drift from this module, so the compiled solvers are reused
    # (this is a test of the command, not of the compiler).
    monkeypatch.setitem(sys.modules, "_network_test_system",
                        types.SimpleNamespace(drift=drift, delta=jnp.asarray(MB_DELTA)))
    user = tmp_path / "mb.py"
    user.write_text(
        "import noether_jax as nj\nfrom _network_test_system import drift, delta\n"
        "sde = nj.SDE(drift, delta)\n"
    )
    args = json.dumps({"c": 0.01, "w": 1.0, "px": ZERO7, "py": ZERO7})
    out = tmp_path / "out"
    code = main(["network", f"{user}:sde", "--center", "-0.5,0.75", "--scale", "1.25,1",
                 "--args", args, "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "3 attractor(s), 2 saddle(s)" in printed and "0 → 2: via 0 → 1 → 2" in printed
    png, js = out / "network_sde.png", out / "network_sde.json"
    assert png.stat().st_size > 10_000
    data = json.loads(js.read_text())
    np.testing.assert_allclose(data["attractors"], mb.attractors, rtol=1e-12)
    np.testing.assert_allclose(data["barriers"], mb.barriers, rtol=1e-10)
    np.testing.assert_allclose(data["rates"], mb.rates, rtol=1e-10)
    np.testing.assert_allclose(data["mean_first_passage_times"],
                               mb.mean_first_passage_times(), rtol=1e-10)
    route = next(r for r in data["routes"] if (r["start"], r["end"]) == (0, 2))
    assert route["attractors"] == [0, 1, 2] and route["converged"]
    assert route["action"] == pytest.approx(float(mb.route(0, 2).action), rel=1e-10)
    assert all(leg["result"] == "successful" for leg in data["legs"])
    # A user error is one line, exit code 2.
    assert main(["network", f"{user}:sde", "--center", "0,0", "--scale", "1,2,3"]) == 2
    assert "--scale has 3 numbers" in capsys.readouterr().err
