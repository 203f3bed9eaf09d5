"""`nj.fixed_time_path`: the fixed-time most likely path on a geometric path's own times.

Along a geometric path the charges of exact symmetries are constant only to `O(h²)` (the
nodes are placed by a monitor, so only the normal components of `∇Ŝ_h` vanish); one
fixed-time solve on the same times makes them constant to round-off without raising the
geometric action `Ŝ_h`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from symmetry_systems import one_rotation_sde


def spiral_drift(t, x, a):
    # `f_y` is built from `y`, `J y` and the invariants `|y|²`, `z`; `f_z` sees `y` through
    # `|y|²` only: rotations of the `(x0, x1)` plane are symmetries, those mixing `x2` are not.
    y, z = x[:2], x[2:]
    r2 = y @ y
    Jy = jnp.array([-y[1], y[0]])
    fy = (a[0] - r2 + 0.4 * jnp.sum(jnp.tanh(z))) * y + 0.7 * Jy
    fz = -z + a[1] * jnp.tanh(z) + 0.5 * r2
    return jnp.concatenate([fy, fz])


def rotation(d, pair):
    fam = nj.Rotations(d)
    return nj.Generator(fam, jnp.zeros(fam.size).at[pair].set(1.0))


SDE3 = nj.SDE(spiral_drift, 0.5)
ARGS3 = jnp.array([1.0, 0.5])
X0 = jnp.array([1.0, 0.0, 0.0])
X1 = jnp.array([0.0, 1.0, 0.3])
SYM, BROKEN = rotation(3, 0), rotation(3, 1)  # R0,1 (exact) and R0,2 (broken)


def variations(sde, sol, gens, args):
    return np.asarray(nj.charge_report(sde, sol, gens, args=args).relative_variations)


@pytest.fixture(scope="module")
def geo():
    return nj.minimize_geometric_action(SDE3, X0, X1, args=ARGS3, n_nodes=31)


@pytest.fixture(scope="module")
def fixed(geo):
    return nj.fixed_time_path(SDE3, geo, ARGS3)


def test_charges_become_exact(geo, fixed):
    before = variations(SDE3, geo, [SYM, BROKEN], ARGS3)
    after = variations(SDE3, fixed, [SYM, BROKEN], ARGS3)
    assert before[0] > 1e-5  # O(h²) along the geometric path
    assert after[0] < 1e-12  # round-off
    assert before[1] > 1e-2 and after[1] > 1e-2  # a broken generator stays broken
    assert abs(after[1] - before[1]) < 1e-2 * before[1]
    assert bool(fixed.converged)
    assert 1 <= int(fixed.stats["num_steps"]) <= 20


def test_same_times_and_endpoints(geo, fixed):
    assert fixed.ts.shape == geo.ts.shape
    assert bool(jnp.all(fixed.ts == geo.ts))
    assert bool(jnp.all(fixed.xs[0] == geo.xs[0])) and bool(jnp.all(fixed.xs[-1] == geo.xs[-1]))
    # The path moves by O(h²), and the action is the fixed-time one on these times.
    shift = float(fixed.stats["shift"])
    assert 0 < shift < 1e-2
    assert shift == pytest.approx(float(jnp.max(jnp.abs(fixed.xs - geo.xs))), rel=1e-12)
    assert float(fixed.action) == pytest.approx(
        float(nj.action_of(SDE3, fixed, ARGS3)), rel=1e-12
    )
    assert isinstance(fixed.functional, nj.FreidlinWentzell)


def test_geometric_action_does_not_rise(geo, fixed):
    S_in = float(fixed.stats["geometric_action_in"])
    S_out = float(fixed.stats["geometric_action_out"])
    assert S_in == pytest.approx(float(geo.action), rel=1e-12)
    assert S_out == pytest.approx(float(nj.geometric_action_of(SDE3, fixed.xs, ARGS3)), rel=1e-12)
    assert S_out <= S_in + 1e-14
    assert abs(S_out - S_in) < 1e-6
    # Ŝ_h(x_out) ≤ S_h(x_out; h_geo) ≤ Ŝ_h(x_geo)
    assert S_out <= float(fixed.action) + 1e-14 <= S_in + 2e-14


def test_newton_cg_default_reaches_round_off():
    # d = 10: the default solver is `nj.NewtonCG`, run at a tighter tolerance than a solve's.
    d = 10
    sde = one_rotation_sde(d)  # the drift of `benchmarks/bench_symmetry_scale.py`
    args = (jnp.asarray(0.0), jnp.asarray(1.0))  # ε = 0: R0,1 is exact
    x0 = jnp.zeros(d).at[0].set(1.0)
    x1 = jnp.zeros(d).at[1].set(1.0).at[2].set(0.3)
    geo = nj.minimize_geometric_action(sde, x0, x1, args=args, n_nodes=31)
    fixed = nj.fixed_time_path(sde, geo, args)
    gens = [rotation(d, 0), rotation(d, 1)]
    before = variations(sde, geo, gens, args)
    after = variations(sde, fixed, gens, args)
    assert before[0] > 1e-5
    assert after[0] < 1e-12
    assert after[1] > 1e-2
    S_in = float(fixed.stats["geometric_action_in"])
    S_out = float(fixed.stats["geometric_action_out"])
    assert S_out <= S_in + 1e-14 and abs(S_out - S_in) < 1e-6
    assert bool(jnp.all(fixed.ts == geo.ts))


def test_float32(geo):
    sol32 = eqx.tree_at(
        lambda s: (s.ts, s.xs), geo, (geo.ts.astype(jnp.float32), geo.xs.astype(jnp.float32))
    )
    args = ARGS3.astype(jnp.float32)
    fixed = nj.fixed_time_path(SDE3, sol32, args)
    assert fixed.xs.dtype == jnp.float32 and fixed.ts.dtype == jnp.float32
    assert bool(jnp.all(fixed.ts == sol32.ts))
    assert variations(SDE3, fixed, [SYM], args)[0] < 1e-4


def test_under_jit_bad_times_are_a_result_code(geo):
    # Under `jit` the times are not known at trace time: no ValueError, a result code.
    bad = eqx.tree_at(lambda s: s.ts, geo, geo.ts.at[5:].set(jnp.inf))
    solve = eqx.filter_jit(lambda s: nj.fixed_time_path(SDE3, s, ARGS3, throw=False))
    out = solve(bad)
    assert out.result == nj.RESULTS.invalid_input and not bool(out.converged)
    ok = solve(geo)
    assert bool(ok.converged)
    assert variations(SDE3, ok, [SYM], ARGS3)[0] < 1e-12


def test_bad_inputs(geo):
    with pytest.raises(ValueError, match="must be an `nj.PathSolution`"):
        nj.fixed_time_path(SDE3, (geo.ts, geo.xs), ARGS3)
    with pytest.raises(ValueError, match="must be an `nj.SDE`"):
        nj.fixed_time_path(spiral_drift, geo, ARGS3)
    # A geometric path with a segment centred on a fixed point has an infinite time there.
    ts_inf = geo.ts.at[5:].set(jnp.inf)
    with pytest.raises(ValueError, match=r"finite.*fixed point.*Solve between points off"):
        nj.fixed_time_path(SDE3, eqx.tree_at(lambda s: s.ts, geo, ts_inf), ARGS3)
    ts_nan = geo.ts.at[3].set(jnp.nan)
    with pytest.raises(ValueError, match=r"`sol.ts\[3\]` is nan"):
        nj.fixed_time_path(SDE3, eqx.tree_at(lambda s: s.ts, geo, ts_nan), ARGS3)
    ts_flat = geo.ts.at[4].set(geo.ts[3])
    with pytest.raises(ValueError, match=r"strictly monotone.*`sol.ts\[3\]"):
        nj.fixed_time_path(SDE3, eqx.tree_at(lambda s: s.ts, geo, ts_flat), ARGS3)
    with pytest.raises(ValueError, match=r"`sol.ts` must have shape \(31,\)"):
        nj.fixed_time_path(SDE3, eqx.tree_at(lambda s: s.ts, geo, geo.ts[:-1]), ARGS3)
    short = eqx.tree_at(lambda s: (s.ts, s.xs), geo, (geo.ts[:2], geo.xs[:2]))
    with pytest.raises(ValueError, match="at least 3 nodes"):
        nj.fixed_time_path(SDE3, short, ARGS3)
    flat = eqx.tree_at(lambda s: s.xs, geo, geo.xs[:, 0])
    with pytest.raises(ValueError, match=r"shape \(n_nodes, d\)"):
        nj.fixed_time_path(SDE3, flat, ARGS3)
    with pytest.raises(ValueError, match="Pass `rtol`/`atol` to the solver"):
        nj.fixed_time_path(SDE3, geo, ARGS3, solver=nj.BlockNewton(), rtol=1e-10)
    with pytest.raises(ValueError, match="`max_steps` must be a positive int"):
        nj.fixed_time_path(SDE3, geo, ARGS3, max_steps=0)
    with pytest.raises(ValueError, match="drift"):
        nj.fixed_time_path(nj.SDE(lambda t, x, a: x[:2], 0.5), geo, ARGS3)
