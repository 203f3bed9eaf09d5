"""Case study 4 (reverse diffusion onto a ring) at its quick size, and the ring's density.

The score is checked independently here: against autodiff of the log-density and against a
numerical average of Gaussians over the ring (NumPy), not against the case's own numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noether_jax.cli._cases import _diffusion_ring as ring

R, S0 = ring.RADIUS, ring.SIGMA0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("case4")
    return out, ring.run(out, quick=True, progress=lambda message: None)


def _ring_average(x, t, n=4096):
    """`p(x|t)` and `∇p` as the average over the ring of isotropic Gaussians of variance
    `s² = σ0² + t²` (the trapezoidal rule is spectrally accurate for periodic integrands)."""
    s2 = S0**2 + t**2
    phi = 2 * np.pi * np.arange(n) / n
    y = R * np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    g = np.exp(-np.sum((x - y) ** 2, axis=-1) / (2 * s2)) / (2 * np.pi * s2)
    return g.mean(), ((y - x) / s2 * g[:, None]).mean(axis=0)


@jax.jit
def _evaluate(xs, ts):
    """Closed-form score, autodiff gradient of the log-density, and the log-density."""
    one = lambda x, t: (ring.ring_score(x, t), jax.grad(ring.ring_log_density)(x, t),
                        ring.ring_log_density(x, t))
    return jax.vmap(one)(xs, ts)


def test_score_against_autodiff_and_ring_average():
    # Near the origin (the series branch, u = z² < 1e-2), on the ring, outside, far; at the
    # start, end and two intermediate times.
    points = [(0.0, 0.0), (1e-3, -2e-3), (0.05, 0.02), (3.0, -4.1), (-5.0, 0.2), (0.0, 10.0)]
    times = [ring.T_END, 1.0, 3.0, ring.T_START]
    xs = np.array([p for _ in times for p in points])
    ts = np.repeat(times, len(points))
    # Three more points for the ring average, in the same batch (one compilation).
    avg_x = np.array([(3.0, -4.1), (0.4, 0.3), (-5.2, 0.1)])
    avg_t = np.array([1.0, 2.0, ring.T_END])
    s, g, lp = (np.asarray(a) for a in _evaluate(jnp.asarray(np.concatenate([xs, avg_x])),
                                                  jnp.asarray(np.concatenate([ts, avg_t]))))
    k = len(ts)
    scale = np.linalg.norm(g[:k], axis=-1) + 1 / np.sqrt(S0**2 + ts**2)
    assert np.all(np.linalg.norm(s[:k] - g[:k], axis=-1) <= 1e-12 * scale)
    for i, (x, t) in enumerate(zip(avg_x, avg_t)):
        p, dp = _ring_average(x, t)
        assert lp[k + i] == pytest.approx(math.log(p), abs=1e-12)
        np.testing.assert_allclose(s[k + i], dp / p, rtol=1e-10, atol=1e-12)


def test_score_float32_and_reverse_drift_sign():
    args = ring.default_args()
    xs = jnp.array([[0.0, 10.0], [0.5, 1.0], [-2.0, -6.5], [3.0, -4.1]])

    @jax.jit
    def drifts(xs, x32):
        f = jax.vmap(lambda x: ring.reverse_drift(1.0, x, args))(xs)
        v = jax.vmap(lambda x: ring.probability_flow(1.0, x, args))(xs)
        s32 = ring.ring_score(x32, jnp.float32(1.0), jnp.float32(R), jnp.float32(S0))
        return f, v, s32

    f, v, s32 = drifts(xs, xs[-1].astype(jnp.float32))
    # With t decreasing, a step h < 0 moves by f h = 2t|h| ∇log p: towards the ring.
    dist = lambda y: np.abs(np.linalg.norm(np.asarray(y), axis=-1) - R)
    assert np.all(dist(xs + f * (-0.01)) < dist(xs))
    # The probability-flow velocity is half the reverse drift: −t ∇log p.
    np.testing.assert_allclose(np.asarray(v), np.asarray(f) / 2, rtol=1e-14)
    # float32 works (f = −2t s at t = 1).
    assert s32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(s32), -np.asarray(f[-1]) / 2, rtol=1e-5)


def test_case_paths_and_charges(report):
    out, rep = report
    assert rep.name == "diffusion-ring"
    assert rep.ok, rep.checks
    for name in rep.figures:
        assert (out / name).stat().st_size > 10_000
    num = rep.numbers
    assert all(bool(c) for r in num["refinement"] for c in r["converged"])
    paths = num["paths"]
    ends = {p["end"]: p for p in paths}
    # Quasi-angular momentum: constant to round-off along every most likely path.
    for p in paths:
        assert p["L_relative_variation"] < 1e-9, p["end"]
    # Turning towards π/4, 0, −π/4 (clockwise in sampling order, t decreasing): L > 0, of
    # order 1e-2; straight through the origin to −π/2: L = 0.
    L = [float(ends[e]["L"]) for e in ("π/4", "0", "−π/4")]
    assert all(5e-3 < v < 5e-2 for v in L)
    assert abs(float(ends["−π/2"]["L"])) < 1e-12 * max(L)
    assert float(ends["−π/2"]["min_radius"]) < 0.2
    # The quasi-energy is visibly not constant: it grows from ~0 to ~0.15 towards the ring.
    for e in ("π/4", "0", "−π/4", "−π/2"):
        p = ends[e]
        assert p["E_relative_variation"] > 1.0
        assert float(p["E_end"]) - float(p["E_start"]) > 0.1
        assert abs(float(p["energy_balance_rel_err"])) < 1e-2
        assert abs(float(p["identity_rel_err"])) < 1e-3
    # Actions grow with the angle to turn; at 41 nodes they are within 1% of their
    # Richardson extrapolation from the nested sub-grids.
    S = [float(ends[e]["action"]) for e in ("π/4", "0", "−π/4", "−π/2")]
    assert S == sorted(S)
    assert np.all(np.asarray(num["action_error_finest"][:4]) < 1e-2 * np.asarray(S))


def test_case_symmetries(report):
    _, rep = report
    sym = rep.numbers["symmetries"]
    assert sym["found"] == ["R01"]  # the rotation only; translations are broken
    assert sym["time_translation"] is False  # f and D depend on t: no energy conservation
    sv = np.asarray(sym["singular_values"])
    assert sv[0] < 1e-10 and np.all(sv[1:] > 1e-3)


def test_case_paper_variant_and_pf_ode(report):
    _, rep = report
    pv, paths = rep.numbers["paper_variant"], rep.numbers["paths"]
    # The paper's Lagrangian (cross term dropped) conserves its own x × ẋ/2t ...
    assert max(pv["L_relative_variation"]) < 1e-9
    # ... but its paths are different, and less likely under the full action.
    for i in range(4):
        assert float(pv["action_fw"][i]) > float(paths[i]["action"]) + 0.1
        assert float(pv["max_distance_to_full_path"][i]) > 0.5
    pf = rep.numbers["pf_ode"]
    # Rays that keep the radial CDF; from (0, 10) to inside the ring, not onto it.
    assert float(pf["max_angle_change"]) < 1e-10
    assert pf["radial_cdf_max_change"] < 1e-6
    assert 3.5 < float(pf["end_radius_from_start"]) < R - 0.5
    assert float(pf["action_of_most_likely_path_to_its_end"]) < 0.01 * float(
        pf["action_of_pf_path"]
    )
