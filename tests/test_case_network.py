"""Case 3 (the paper's 2-unit attractor network) at reduced size: fixed points, the action
converged under refinement on nested adapted grids, and the route of the slow path."""

import pytest

from noether_jax.cli._cases import _attractor_network as case


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("net")
    rep = case.run(out, quick=True, progress=lambda m: None)
    assert all((out / f).stat().st_size > 10_000 for f in rep.figures)
    return rep


def test_fixed_points(report):
    fp = report.numbers["fixed_points"]
    assert (len(fp["stable"]), len(fp["saddle"]), len(fp["unstable"])) == (4, 4, 1)
    # Stable states of the step-function limit: μ0 + {0, A − I, A, −I} on each unit.
    expected = sorted([(0.35, 3.25), (1.25, 1.25), (2.35, 2.35), (3.25, 0.35)])
    for got, want in zip(sorted(map(tuple, fp["stable"])), expected):
        assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("T", ["T=1", "T=40"])
def test_action_converges_under_refinement(report, T):
    r = report.numbers[T]
    assert all(r["converged"])
    S = r["actions"]
    # On the nested grids the differences shrink about 4× per doubling of the nodes
    # (second order) once the coarse grid resolves the sigmoids (the three finest levels).
    assert len(S) == 4
    assert abs(S[3] - S[2]) < 0.35 * abs(S[2] - S[1])
    assert 1.6 < r["observed_order"] < 2.4
    assert abs(S[3] - r["richardson_action"]) < 2e-4 * S[3]


def test_slow_path_route_and_energy(report):
    t40, t1 = report.numbers["T=40"], report.numbers["T=1"]
    assert t40["chosen"] == "via high-high state"
    assert t40["time_near_high_high"] > 1.0 and t40["time_near_low_low"] == 0.0
    # Long paths are nearly infinite-time paths: E ≈ −∂S/∂T ≈ 0; the fast path's E is
    # large and constant to O(h²).
    assert abs(t40["energy_mean"]) < 1e-3
    assert t1["energy_relative_variation"] < 5e-3 and t1["energy_mean"] > 10
    assert report.ok, report.checks
