"""Fixed points and relaxation: `nj.find_fixed_points`, `nj.classify_fixed_point`,
`nj.check_fixed_point`, `nj.relax`, `nj.leave_saddle`.

Compilation dominates the cost, so the tests share a few drifts and shapes: `a x − b x³`
componentwise (the double well in 1-D and 3-D, and the degenerate `−x³`, with `(a, b)` in
`args`), Maier–Stein in 2-D, and a linear drift `A x` whose matrix is `args`.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

RUNTIME_ERRORS = tuple(
    e
    for e in (
        getattr(eqx, "EquinoxRuntimeError", None),
        getattr(jax.errors, "JaxRuntimeError", None),
    )
    if e is not None
) or (RuntimeError,)

K = nj.FIXED_POINT_KINDS


def _poly(t, x, ab):
    # Componentwise f = a x − b x³. With (a, b) = (1, 1) the double well f = −V',
    # V = Σ (x_i² − 1)²/4 (minima at ±1, maxima at 0); with (0, 1) the degenerate f = −x³.
    # One function for both, so that they share compilations.
    return ab[0] * x - ab[1] * x**3


def _maier_stein(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


def _linear(t, x, A):
    return A @ x


POLY = nj.SDE(_poly, 0.5)
DW_ARGS = jnp.array([1.0, 1.0])
CUBIC_ARGS = jnp.array([0.0, 1.0])
MS = nj.SDE(_maier_stein, 0.5)
LIN = nj.SDE(_linear, 0.5)
BETA = 10.0


def _dw_exact(x0, t):
    """Solution of ẋ = x − x³: x(t)² = 1 / (1 + (1/x0² − 1) e^{−2t})."""
    return np.sign(x0) / np.sqrt(1.0 + (1.0 / x0**2 - 1.0) * np.exp(-2.0 * np.asarray(t)))


@pytest.fixture(scope="module")
def ms_points():
    return nj.find_fixed_points(MS, center=jnp.zeros(2), scale=2.0, args=BETA)


# ---------------------------------------------------------------------------------------------
# Finding and classifying.


def test_double_well_1d():
    fps = nj.find_fixed_points(POLY, center=jnp.zeros(1), scale=2.0, args=DW_ARGS)
    assert len(fps) == 3
    # Sorted by index, then by coordinate.
    np.testing.assert_allclose(fps.xs[:, 0], [-1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(fps.eigenvalues[:, 0].real, [-2.0, -2.0, 1.0], atol=1e-12)
    np.testing.assert_array_equal(fps.eigenvalues.imag, 0.0)
    np.testing.assert_array_equal(fps.index, [0, 0, 1])
    # In 1-D the maximum has index 1 = d: kind "unstable". `with_index(1)` finds it anyway.
    assert fps.kind_names == ["stable", "stable", "unstable"]
    assert len(fps.saddles()) == 0
    (top,) = fps.with_index(1)
    assert float(top.x[0]) == 0.0 and top.kind == K.unstable
    np.testing.assert_array_equal(top.unstable_direction, [1.0])
    assert len(fps.stable) == 2 and len(fps.unstable) == 1
    assert int(jnp.sum(fps.hits)) == fps.num_converged == fps.num_starts == 128
    text = str(fps)
    assert "3 found" in text and "unstable" in text and "stable" in text

    # Downhill from the maximum, both ways, against the exact solution of ẋ = x − x³.
    um = nj.leave_saddle(POLY, jnp.zeros(1), args=DW_ARGS)
    assert bool(um.converged)
    # The saddle is the start: the keywords are `nj.relax`'s (same compilation).
    again = nj.leave_saddle(POLY, x_start=jnp.zeros(1), args=DW_ARGS, t0=0.0)
    np.testing.assert_array_equal(again.ends, um.ends)
    with pytest.raises(TypeError):
        nj.leave_saddle(POLY, saddle_x=jnp.zeros(1), args=DW_ARGS)
    with pytest.raises(TypeError):
        nj.leave_saddle(POLY, jnp.zeros(1), args=DW_ARGS, t=0.0)
    np.testing.assert_allclose(um.ends[:, 0], [1.0, -1.0], atol=1e-7)
    step = float(um.step)
    assert step == pytest.approx(jnp.finfo(jnp.float64).eps ** 0.25)
    for rel, sign in ((um.plus, 1.0), (um.minus, -1.0)):
        assert float(rel.xs[0, 0]) == sign * step
        assert np.all(np.diff(np.asarray(rel.ts)) > 0)
        exact = _dw_exact(sign * step, rel.ts - rel.ts[0])
        # The flow up to the stop time; the last point is the attractor itself (Newton-
        # polished), `gap` from where the flow stopped.
        np.testing.assert_allclose(rel.xs[:-1, 0], exact[:-1], atol=1e-7)
        assert float(rel.xs[-1, 0]) == float(rel.x_end[0]) == pytest.approx(sign, abs=1e-15)
        assert float(rel.gap) == pytest.approx(abs(sign - exact[-1]), abs=1e-7)
        assert 0.0 < float(rel.gap) <= 2 * step * (1.0 + 1.0)
        # Equidistant in arclength (up to the linear interpolation of t(s) between solver
        # steps): the path is 1 − step long, 100 gaps.
        gaps = np.abs(np.diff(np.asarray(rel.xs[:, 0])))
        assert float(rel.length) == pytest.approx(1.0 - step, abs=1e-7)
        np.testing.assert_allclose(gaps, (1.0 - step) / 100, rtol=0.1)
        # Leaving takes log(1/step) e-foldings of rate 1; arriving, ~log(1/tol)/2.
        assert 12.0 < float(rel.duration) < 25.0
        assert rel.result == nj.RESULTS.successful
        assert nj.RESULTS[rel.result] == ""


def test_relax_not_settled_and_time_spacing():
    # Same compiled relaxation as above (t_max and spacing are runtime values).
    rel = nj.relax(POLY, jnp.array([0.5]), args=DW_ARGS, t_max=1.0, spacing="time")
    assert not bool(rel.converged)
    assert rel.result == nj.RESULTS.not_settled
    assert float(rel.duration) == pytest.approx(1.0)
    np.testing.assert_allclose(rel.ts, np.linspace(0.0, 1.0, 101), atol=1e-12)
    np.testing.assert_allclose(rel.xs[:, 0], _dw_exact(0.5, rel.ts), atol=1e-7)
    assert float(rel.distance) > 1e-3


def test_relax_result_codes():
    # All with the compilation of `test_double_well_1d` but the last (`max_steps` is static).
    x0 = jnp.array([0.5])
    # Settled: the Newton step |δ| ≈ 1 − x(t) ≈ (3/2) e^{−2t} reaches the stop tolerance
    # tol·(|x| + 1) = 2ε^(1/4) ≈ 2.4e-4 at t = log(6e3)/2 ≈ 4.4; the flow stops at the end
    # of that solver step, and Newton's method takes the end to the attractor x = 1.
    rel = nj.relax(POLY, x0, args=DW_ARGS)
    assert bool(rel.converged) and rel.result == nj.RESULTS.successful
    assert nj.RESULTS[rel.result] == ""
    eps = float(jnp.finfo(jnp.float64).eps)
    assert 4.3 < float(rel.duration) < 6.0
    assert float(rel.distance) <= 4 * eps
    np.testing.assert_allclose(rel.x_end, [1.0], atol=4 * eps)
    x_stop = _dw_exact(0.5, float(rel.duration))
    assert float(rel.gap) == pytest.approx(1.0 - x_stop, abs=1e-8)
    assert float(rel.gap) <= 2 * eps**0.25
    assert float(rel.length) == pytest.approx(float(rel.x_end[0]) - 0.5, abs=1e-12)

    # A t_max far too short to settle: it runs to t_max and says why it stopped.
    rel = nj.relax(POLY, x0, args=DW_ARGS, t_max=1e-3)
    assert not bool(rel.converged)
    assert rel.result == nj.RESULTS.not_settled
    message = nj.RESULTS[rel.result]
    assert "t_max" in message and "tol" in message and "limit cycle" in message
    assert float(rel.duration) == pytest.approx(1e-3, rel=1e-12)
    x = _dw_exact(0.5, 1e-3)
    np.testing.assert_allclose(rel.x_end, [x], rtol=1e-12)
    # The distance bound |f|/|f'| at the end, f = x − x³: about 1.5, far above the tolerance.
    assert float(rel.distance) == pytest.approx(abs(x - x**3) / abs(1 - 3 * x**2), rel=1e-9)

    # Out of steps before settling (4 steps reach t ≈ 0.27).
    rel = nj.relax(POLY, x0, args=DW_ARGS, max_steps=4)
    assert not bool(rel.converged) and int(rel.num_steps) == 4
    assert rel.result == nj.RESULTS.max_steps_reached
    np.testing.assert_allclose(rel.x_end, _dw_exact(0.5, float(rel.duration)), atol=1e-8)
    assert 0.0 < float(rel.duration) < 1.0


def test_relax_result_from_diffrax_codes():
    # The translation of every diffrax code (siblings of `nj.RESULTS`, matched by name).
    from noether_jax._geometric._relax import _to_results

    R, D = nj.RESULTS, diffrax.RESULTS
    yes, no = jnp.asarray(True), jnp.asarray(False)
    cases = [
        (D.event_occurred, yes, yes, R.successful),
        (D.successful, yes, yes, R.successful),  # settled on the step that reached t_max
        (D.successful, no, yes, R.not_settled),
        (D.event_occurred, no, yes, R.not_settled),
        (D.successful, no, no, R.nonfinite),
        (D.max_steps_reached, no, yes, R.max_steps_reached),
        (D.max_steps_reached, yes, yes, R.max_steps_reached),
        (D.nonfinite, no, no, R.nonfinite),
        (D.nonlinear_divergence, no, yes, R.nonlinear_divergence),
        (D.nonlinear_max_steps_reached, no, yes, R.nonlinear_max_steps_reached),
        (D.singular, no, yes, R.singular),
        (D.dt_min_reached, no, yes, R.nonfinite),
        (D.max_steps_rejected, no, yes, R.nonfinite),
        (D.internal_error, no, yes, R.nonfinite),
    ]
    for code, converged, finite, expected in cases:
        got = _to_results(code, converged, finite)
        assert got == expected, (D[code], R[got], R[expected])
    # Under vmap too.
    codes = jax.tree.map(lambda *a: jnp.stack(a), D.event_occurred, D.successful)
    got = jax.vmap(_to_results)(codes, jnp.array([True, False]), jnp.array([True, True]))
    np.testing.assert_array_equal(got == R.successful, [True, False])
    np.testing.assert_array_equal(got == R.not_settled, [False, True])


def test_maier_stein(ms_points):
    fps = ms_points
    assert len(fps) == 3
    np.testing.assert_allclose(fps.xs, [[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(fps.eigenvalues[:2], -2.0, atol=1e-12)
    np.testing.assert_allclose(fps.eigenvalues[2], [1.0, -1.0], atol=1e-12)
    assert fps.kind_names == ["stable", "stable", "saddle"]
    (saddle,) = fps.saddles(index=1)
    np.testing.assert_allclose(saddle.unstable_direction, [1.0, 0.0], atol=1e-14)
    assert np.all(np.isnan(np.asarray(fps.stable.unstable_direction)))
    assert bool(jnp.all(fps.points.is_fixed_point))
    np.testing.assert_allclose(fps.nearest(jnp.array([0.8, 0.3])).x, [1.0, 0.0], atol=1e-12)
    assert len(fps[jnp.array([0, 2])]) == 2 and fps[1].kind == K.stable

    # Same compilation with starting points of the default shape, chosen by the user.
    pts = jax.random.normal(jax.random.key(3), (128, 2))
    again = nj.find_fixed_points(MS, points=pts, args=BETA)
    np.testing.assert_allclose(again.xs, fps.xs, atol=1e-12)


def test_indexing_matches_the_arrays(ms_points):
    """`fps[i]`, `fps[-i]`, an index array and a mask give the rows of every array; an index
    out of range is an `IndexError` (not a clamped row, as a traced index would give)."""
    fps = ms_points
    n = len(fps)
    for i in range(-n, n):
        p = fps[i]
        np.testing.assert_array_equal(p.x, fps.xs[i])
        np.testing.assert_array_equal(p.eigenvalues, fps.eigenvalues[i])
        assert bool(p.kind == K.stable) == (fps.kind_names[i] == "stable")
    assert [bool(p.kind == K.saddle) for p in fps] == [k == "saddle" for k in fps.kind_names]
    for bad in (n, -n - 1):
        with pytest.raises(IndexError, match="out of range"):
            fps[bad]
    sub = fps[jnp.array([2, 0])]
    np.testing.assert_array_equal(sub.xs, fps.xs[jnp.array([2, 0])])
    np.testing.assert_array_equal(sub.hits, fps.hits[jnp.array([2, 0])])
    masked = fps[fps.points.kind == K.stable]
    np.testing.assert_array_equal(masked.xs, fps.xs[:2])


def test_leave_saddle_maier_stein():
    um = nj.leave_saddle(MS, jnp.zeros(2), args=BETA)
    assert bool(um.converged)
    assert um.plus.result == nj.RESULTS.successful and um.minus.result == nj.RESULTS.successful
    np.testing.assert_allclose(um.direction, [1.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(um.ends, [[1.0, 0.0], [-1.0, 0.0]], atol=1e-7)
    for rel in (um.plus, um.minus):
        # The unstable manifold is the x axis.
        assert float(jnp.max(jnp.abs(rel.xs[:, 1]))) < 1e-12
        assert rel.xs.shape == (101, 2) and bool(jnp.all(jnp.diff(rel.ts) > 0))
        assert float(rel.distance) <= 1.5e-8 * 2
    assert um.saddle.kind == K.saddle and int(um.saddle.index) == 1


def test_gradient_3d_counts():
    # V = Σ (x_i² − 1)²/4 in 3-D: 27 critical points; index = number of zero coordinates.
    fps = nj.find_fixed_points(POLY, center=jnp.zeros(3), scale=1.5, args=DW_ARGS)
    assert len(fps) == 27
    counts = [int(jnp.sum(fps.index == k)) for k in range(4)]
    assert counts == [8, 12, 6, 1]
    by_kind = [fps.stable, fps.saddles(index=1), fps.saddles(index=2), fps.unstable]
    assert [len(s) for s in by_kind] == [8, 12, 6, 1]
    assert len(fps.with_index(1)) == 12 and len(fps.saddles()) == 18
    xs = np.asarray(fps.xs)
    np.testing.assert_allclose(xs, np.round(xs), atol=1e-10)
    assert len({tuple(r) for r in np.round(xs).astype(int).tolist()}) == 27
    # Eigenvalues: 1 along zero coordinates, −2 along ±1, sorted by decreasing real part.
    expected = np.sort(np.where(np.round(xs) == 0, 1.0, -2.0), axis=1)[:, ::-1]
    np.testing.assert_allclose(fps.eigenvalues.real, expected, atol=1e-10)
    np.testing.assert_array_equal(np.asarray(fps.index), (np.round(xs) == 0).sum(axis=1))
    # Index-1 saddles: the unstable direction is the axis of the zero coordinate.
    s1 = fps.saddles(index=1)
    zero_axis = np.round(xs[np.asarray(fps.index) == 1]) == 0
    np.testing.assert_allclose(np.abs(s1.unstable_direction), zero_axis, atol=1e-12)
    assert np.all(np.asarray(s1.unstable_direction).sum(axis=1) == 1.0)  # sign convention


def test_linear_spiral_source_and_saddle():
    A = jnp.array([[1.0, -2.0], [2.0, 1.0]])
    fp = nj.classify_fixed_point(LIN, jnp.zeros(2), A)
    np.testing.assert_allclose(fp.eigenvalues, [1 + 2j, 1 - 2j], atol=1e-12)
    assert int(fp.index) == 2 and fp.kind == K.unstable and int(fp.num_center) == 0
    assert np.all(np.isnan(np.asarray(fp.unstable_direction)))  # complex leading pair
    # Saddle with unstable eigenvector ±(1, −1)/√2: the first significant component is > 0.
    fp = nj.classify_fixed_point(LIN, jnp.zeros(2), jnp.array([[0.0, -1.0], [-1.0, 0.0]]))
    assert fp.kind == K.saddle and int(fp.index) == 1
    expected = np.array([1.0, -1.0]) / np.sqrt(2)
    np.testing.assert_allclose(fp.unstable_direction, expected, atol=1e-14)
    np.testing.assert_allclose(fp.eigenvalues, [1.0, -1.0], atol=1e-14)
    # A centre (eigenvalues ±i) is non-hyperbolic.
    fp = nj.classify_fixed_point(LIN, jnp.zeros(2), jnp.array([[0.0, -1.0], [1.0, 0.0]]))
    assert fp.kind == K.non_hyperbolic and int(fp.num_center) == 2 and int(fp.index) == 0


def test_non_hyperbolic():
    fps = nj.find_fixed_points(POLY, center=jnp.zeros(1), scale=2.0, args=CUBIC_ARGS)
    assert len(fps) == 1
    assert abs(float(fps.xs[0, 0])) < 1e-8
    assert fps.kind_names == ["non_hyperbolic"]
    assert len(fps.with_index(0)) == 0 and len(fps.non_hyperbolic) == 1
    fp = nj.classify_fixed_point(POLY, jnp.zeros(1), CUBIC_ARGS)
    assert fp.kind == K.non_hyperbolic and int(fp.num_center) == 1 and bool(fp.is_fixed_point)
    # Near (not at) a degenerate point every eigenvalue is tiny: only a rate scale of the
    # drift tells that -3e-6 is "zero". And the point is 3e-4 from the fixed point.
    x = jnp.array([1e-3])
    fp = nj.classify_fixed_point(POLY, x, CUBIC_ARGS)
    assert fp.kind == K.stable and not bool(fp.is_fixed_point)
    assert float(fp.distance) == pytest.approx(1e-3 / 3)
    fp = nj.classify_fixed_point(POLY, x, CUBIC_ARGS, rate_scale=1.0)
    assert fp.kind == K.non_hyperbolic


# ---------------------------------------------------------------------------------------------
# Batches and transformations.


def test_classify_vmap_equals_loop(ms_points):
    xs = jnp.concatenate([ms_points.xs, jnp.array([[0.3, -0.2]])])
    batched = jax.vmap(lambda x: nj.classify_fixed_point(MS, x, BETA))(xs)
    for i in range(xs.shape[0]):
        one = nj.classify_fixed_point(MS, xs[i], BETA)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(batched)):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(a), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(batched.is_fixed_point, [True, True, True, False])


def test_eigenvalue_derivatives():
    # Away from a fixed point too: J = [[1 − 3x² − βy², −2βxy], [−2xy, −(1 + x²)]].
    x = jnp.array([0.5, 0.1])
    eig = lambda beta: nj.classify_fixed_point(MS, x, beta).eigenvalues.real
    J = np.array([[1 - 0.75 - BETA * 0.01, -2 * BETA * 0.05], [-2 * 0.05, -1.25]])
    np.testing.assert_allclose(eig(BETA), np.sort(np.linalg.eigvals(J).real)[::-1], rtol=1e-12)
    fd = (eig(BETA + 1e-5) - eig(BETA - 1e-5)) / 2e-5
    np.testing.assert_allclose(jax.jacfwd(eig)(BETA), fd, rtol=1e-7)


def test_relax_vmap_jit_equals_loop():
    x0s = jnp.array([[0.3, 0.5], [-0.2, 1.0], [1e-3, -0.4]])
    batched = jax.jit(jax.vmap(lambda x: nj.relax(MS, x, args=BETA)))(x0s)
    assert bool(jnp.all(batched.converged))
    np.testing.assert_array_equal(batched.result == nj.RESULTS.successful, True)
    np.testing.assert_allclose(batched.x_end, [[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]], atol=1e-7)
    for i in range(x0s.shape[0]):
        one = nj.relax(MS, x0s[i], args=BETA)
        np.testing.assert_allclose(batched.xs[i], one.xs, atol=1e-9)
        np.testing.assert_allclose(batched.ts[i], one.ts, rtol=1e-9)
        assert int(batched.num_steps[i]) == int(one.num_steps)


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_check_fixed_point():
    fp = nj.check_fixed_point(MS, jnp.zeros(2), BETA)
    assert bool(fp.is_fixed_point) and fp.kind == K.saddle
    message = r"x is not a fixed point of the drift: \|f\(x\)\| = 2\.104e-01"
    with pytest.raises(ValueError, match=message):
        nj.check_fixed_point(MS, jnp.array([0.1, 0.2]), BETA)
    with pytest.raises(ValueError, match="not a fixed point"):
        nj.classify_fixed_point(MS, jnp.array([1.0 + 1e-4, 0.0]), BETA, check=True)
    # A loose tolerance accepts it.
    nj.check_fixed_point(MS, jnp.array([1.0 + 1e-4, 0.0]), BETA, rtol=1e-3)
    with pytest.raises(RUNTIME_ERRORS, match="not a fixed point"):
        jax.block_until_ready(
            jax.jit(lambda x: nj.check_fixed_point(MS, x, BETA).x)(jnp.array([0.1, 0.2]))
        )


def test_find_under_jit():
    with pytest.raises(ValueError, match="cannot run under `jit`"):
        jax.jit(lambda c: nj.find_fixed_points(MS, center=c, args=BETA).xs)(jnp.zeros(2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nj.classify_fixed_point(MS, jnp.zeros(3), BETA), r"shape \(3,\)"),
        (lambda: nj.classify_fixed_point(MS, jnp.zeros((2, 2)), BETA), "1-D array"),
        (lambda: nj.classify_fixed_point(MS, jnp.array([0, 0]), BETA), "floating-point"),
        (lambda: nj.classify_fixed_point(_maier_stein, jnp.zeros(2), BETA), r"`nj\.SDE`"),
        (lambda: nj.classify_fixed_point(MS, jnp.zeros(2), BETA, rtol=-1.0), "positive"),
        (lambda: nj.find_fixed_points(MS, points=jnp.zeros(2), args=BETA), r"shape \(k, d\)"),
        (lambda: nj.find_fixed_points(MS, points=jnp.zeros((4, 3)), args=BETA), r"shape \(3,\)"),
        (lambda: nj.find_fixed_points(MS, args=BETA), "dimension of the state is unknown"),
        (
            lambda: nj.find_fixed_points(MS, center=jnp.zeros(2), scale=jnp.ones(3)),
            "different lengths",
        ),
        (lambda: nj.find_fixed_points(MS, center=jnp.zeros(2), num_starts=0), "positive int"),
        (lambda: nj.find_fixed_points(MS, center=jnp.zeros(2), scale=-1.0), "positive"),
        (lambda: nj.relax(MS, jnp.zeros(3), args=BETA), r"shape \(3,\)"),
        (lambda: nj.relax(MS, jnp.zeros(2), args=BETA, n_save=1), "n_save"),
        (lambda: nj.relax(MS, jnp.zeros(2), args=BETA, spacing="log"), "spacing"),
        (lambda: nj.relax(MS, jnp.zeros(2), args=BETA, tol=0.0), "positive"),
        (lambda: nj.leave_saddle(MS, jnp.array([1.0, 0.0]), args=BETA), "exactly one unstable"),
        (lambda: nj.leave_saddle(MS, jnp.array([0.1, 0.0]), args=BETA), "not a fixed point"),
        (lambda: nj.leave_saddle(POLY, jnp.zeros(3), args=DW_ARGS), "exactly one unstable"),
    ],
    ids=[
        "classify-dim",
        "classify-2d",
        "classify-int",
        "classify-not-sde",
        "classify-rtol",
        "find-points-1d",
        "find-points-dim",
        "find-no-dim",
        "find-center-scale",
        "find-num-starts",
        "find-scale",
        "relax-dim",
        "relax-n-save",
        "relax-spacing",
        "relax-tol",
        "leave-stable",
        "leave-not-fixed",
        "leave-index-3",
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
