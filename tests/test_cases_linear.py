"""Case studies 1 and 2 of the seed paper at their quick size: the physics they report.

The closed forms are recomputed here independently (tests/helpers.py for the OU system), so
the tests do not trust the numbers the cases compare themselves with.
"""

import math

import numpy as np
import pytest

from noether_jax.cli._cases import _drift_diffusion, _ou_memory

from helpers import linear_action, linear_momentum


@pytest.fixture(scope="module")
def drift_diffusion(tmp_path_factory):
    out = tmp_path_factory.mktemp("case1")
    return out, _drift_diffusion.run(out, quick=True, progress=lambda message: None)


@pytest.fixture(scope="module")
def ou_memory(tmp_path_factory):
    out = tmp_path_factory.mktemp("case2")
    return out, _ou_memory.run(out, quick=True, progress=lambda message: None)


def test_drift_diffusion_closed_forms(drift_diffusion):
    out, report = drift_diffusion
    num = report.numbers
    v, sigma, x0, x1, T = 0.1, 1.0, 0.5, -1.0, 1.0  # dx = v dt + σ dW, D = σ²/2
    p = ((x1 - x0) / T - v) / sigma**2
    S = (x1 - x0 - v * T) ** 2 / (2 * sigma**2 * T)
    E = 0.5 * sigma**2 * p**2 + v * p
    assert num["converged"]
    assert abs(num["action"] - S) <= 1e-10 * S
    assert abs(num["momentum_mean"] - p) <= 1e-10
    assert num["momentum_max_error"] <= 1e-10  # constant p along the path
    assert abs(num["energy_mean"] - E) <= 1e-10
    assert num["energy_max_error"] <= 1e-10
    assert num["path_max_error"] <= 1e-10  # the straight line
    assert report.name == "drift-diffusion"
    assert report.ok, report.checks
    for name in report.figures:
        assert (out / name).stat().st_size > 10_000


def test_drift_diffusion_monte_carlo(drift_diffusion):
    _, report = drift_diffusion
    mc = report.numbers["monte_carlo"]
    assert mc["n_paths"] == 5_000
    assert 0 < mc["n_kept"] == sum(mc["n_kept_by_stopping_time"])
    assert mc["n_kept"] <= mc["n_lower_first"] < mc["n_paths"] - mc["n_upper_first"]
    # The stopped process ends on the bound; before, the absorbing bound pushes the mean of
    # the kept paths above the straight line (a significant, positive deviation) ...
    assert mc["mean_at_T"] == pytest.approx(-1.0, abs=1e-12)
    assert mc["max_mean_deviation"] > 3 * mc["max_mean_deviation_se"]
    assert 0.05 < mc["max_mean_deviation"] < 0.5
    assert 0.3 < mc["max_mean_deviation_time"] < 0.95
    # ... while free paths conditioned on x(T) ≈ −1 (a Brownian bridge) follow the line.
    assert mc["bridge_n"] > 20
    assert mc["bridge_max_z"] < 4
    # The Euler-Maruyama sample at the stopping time overshoots −1 by ≈ 0.5826 σ √dt.
    assert mc["overshoot_mean"] == pytest.approx(0.5826 * math.sqrt(0.025), rel=0.35)
    ts, mean, sd = (np.asarray(mc[k]) for k in ("ts", "mean", "sd"))
    assert ts.shape == mean.shape == sd.shape == (41,)
    assert mean[0] == 0.5 and sd[0] == 0.0


def _ou_reference(T):
    x0, x1 = np.array([-2.0, 2.0]), np.array([2.0, 2.0])
    A, D = -np.eye(2), np.eye(2)
    S, pT = linear_action(A, D, x0, x1, T)
    p0 = linear_momentum(A, pT, T, [0.0])[0]
    E = p0 @ D @ p0 + (A @ x0) @ p0  # H = pᵀDp + fᵀp
    L = x0[0] * p0[1] - x0[1] * p0[0]
    return S, E, L


@pytest.mark.parametrize("T", [1.0, 10.0])
def test_ou_memory_closed_forms_and_charges(ou_memory, T):
    out, report = ou_memory
    r = report.numbers[f"T={T:g}"]
    S, E, L = _ou_reference(T)
    assert r["converged"]
    assert r["action_closed_form"] == pytest.approx(S, rel=1e-12)
    assert r["energy_closed_form"] == pytest.approx(E, rel=1e-9)
    assert r["angular_momentum_closed_form"] == pytest.approx(L, rel=1e-9)
    # Finest quick grid, 81 nodes: second-order errors (7e-6 at T = 1).
    assert abs(r["action"] - S) <= (3e-5 if T == 1.0 else 1e-8) * S
    assert r["path_max_error"] <= (3e-5 if T == 1.0 else 2e-3)
    # L is conserved to round-off; E to round-off here too (linear drift).
    assert r["angular_momentum_relative_variation"] < 1e-10
    assert r["energy_relative_variation"] < 1e-10
    # The means match the closed forms to O(h²), relative to the charges' scale.
    assert r["energy_error"] < 1e-4
    assert r["angular_momentum_error"] < 1e-4
    assert report.ok, report.checks
    for name in report.figures:
        assert (out / name).stat().st_size > 10_000


def test_ou_memory_refinement(ou_memory):
    _, report = ou_memory
    fast, slow = report.numbers["T=1"]["refinement"], report.numbers["T=10"]["refinement"]
    assert fast["n_nodes"] == slow["n_nodes"] == [41, 81]
    # Halving h divides the errors by ≈ 4.
    for errors in (fast["action_rel_error"], fast["path_max_error"], slow["path_max_error"]):
        ratios = np.asarray(errors[:-1]) / np.asarray(errors[1:])
        assert np.all((3.4 < ratios) & (ratios < 4.6)), ratios
    assert fast["action_order"] == pytest.approx(2.0, abs=0.1)
    assert slow["path_order"] == pytest.approx(2.0, abs=0.1)
    # The stretched T = 10 grid beats a uniform grid of as many nodes.
    assert report.numbers["T=10"]["path_max_error"] < 0.7 * report.numbers["T=10"][
        "uniform_grid_path_max_error"
    ]
