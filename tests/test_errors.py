"""Bad input and failure reporting of `nj.minimize_action`.

Problems are small (d <= 2, n_nodes = 21) and reuse the same `SDE` objects and shapes, so that
the compiled solver is shared between tests.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj

# What `throw=True` raises: equinox's runtime error (a RuntimeError); some JAX/equinox
# configurations surface it as JAX's own runtime error instead.
RUNTIME_ERRORS = tuple(
    e
    for e in (getattr(eqx, "EquinoxRuntimeError", None), getattr(jax.errors, "JaxRuntimeError", None))
    if e is not None
) or (RuntimeError,)

N = 21
T1 = 1.0


def _nonlinear_drift(t, x, args):
    # f = -x + a sin(x) with a = args: nonlinear for a != 0, and exactly f = -x for a = 0.
    return -x + args * jnp.sin(x)


SDE_NL = nj.SDE(_nonlinear_drift, 0.5)
K = jnp.array(0.3)
X0 = jnp.array([0.0, 0.0])
X1 = jnp.array([1.0, 0.5])


def _solve(sde=SDE_NL, x0=X0, x1=X1, t0=0.0, t1=T1, **kw):
    kw.setdefault("n_nodes", N)
    kw.setdefault("args", K)
    return nj.minimize_action(sde, x0, x1, t0, t1, **kw)


def _msg(result) -> str:
    return nj.RESULTS[result]


# ---------------------------------------------------------------------------------------------
# Invalid arguments: ValueError at call time, with a message naming the problem.


def test_sane_baseline():
    sol = _solve()
    assert bool(sol.converged)
    assert sol.result == nj.RESULTS.successful
    assert sol.xs.shape == (N, 2)
    assert np.isfinite(float(sol.action))


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"`x0` and `x1` must have the same shape"):
        _solve(x0=jnp.zeros(2), x1=jnp.zeros(3))


@pytest.mark.parametrize("name", ["x0", "x1"])
def test_state_not_1d(name):
    kw = {name: jnp.zeros((2, 2))}
    with pytest.raises(ValueError, match=rf"`{name}` must be a 1-D array"):
        _solve(**kw)


@pytest.mark.parametrize(
    "x0",
    [
        jnp.array([0, 1]),  # integer jax array
        np.array([0, 1], dtype=np.int32),  # integer numpy array
        jnp.array([0.0 + 1.0j, 1.0]),  # complex
        np.array([0.0, 1.0], dtype=np.complex128),
        [1.0j, 0.0],  # complex Python list
        jnp.array([True, False]),  # boolean
        [True, False],  # boolean Python list (would otherwise become [1.0, 0.0])
    ],
    ids=["int-jax", "int-numpy", "complex-jax", "complex-numpy", "complex-list", "bool-jax",
         "bool-list"],
)
def test_wrong_dtype(x0):
    with pytest.raises(ValueError, match=r"`x0` must be a floating-point array"):
        _solve(x0=x0)


def test_complex_message_says_what_to_fix():
    with pytest.raises(ValueError, match=r"`x1` must be a floating-point array, got complex "
                       r"dtype complex128: only real values .*`jnp\.real\(x1\)`"):
        _solve(x1=X1.astype(jnp.complex128))


def test_int_list_endpoints_are_cast():
    # Python ints in a list are exact: `x0=[0, 0]` means the float state (same compile).
    sol = _solve(x0=[0, 0])
    assert sol.xs.dtype == jnp.float64 and bool(sol.converged)


@pytest.mark.parametrize(
    "t1, fragment",
    [
        (1.0 + 0.5j, r"`t1` must be real \(float or int\), got complex"),
        (True, r"`t1` must be real \(float or int\), got dtype bool"),
        (jnp.array([1.0]), r"`t1` must be a scalar time"),
    ],
    ids=["complex", "bool", "vector"],
)
def test_bad_time(t1, fragment):
    with pytest.raises(ValueError, match=fragment):
        _solve(t1=t1)


def test_complex_init():
    init = jnp.zeros((N, 2), dtype=jnp.complex128)
    with pytest.raises(ValueError, match=r"`init` must be a floating-point array, got complex"):
        _solve(init=init)


def test_bool_and_int_init():
    with pytest.raises(ValueError, match=r"`init` must be a floating-point array, got dtype bool"):
        _solve(init=jnp.zeros((N, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"`init` must be a floating-point array, got dtype int"):
        _solve(init=jnp.zeros((N, 2), dtype=int))


def test_complex_grid():
    grid = jnp.linspace(0.0, 1.0, N).astype(jnp.complex128)  # N nodes: the shared compile
    with pytest.raises(ValueError, match=r"`grid` must be real \(float or int\), got complex"):
        _solve(n_nodes=None, grid=grid)


def test_as_grid_helper():
    # The grid check shared by the solvers (`minimize_action` switches to it).
    from noether_jax._sde import as_grid

    grid, n = as_grid([0, 0.5, 1], None, jnp.float64)
    assert n == 3 and grid.dtype == jnp.float64
    with pytest.raises(ValueError, match=r"`grid` must be real \(float or int\), got complex"):
        as_grid(jnp.linspace(0.0, 1.0, 5).astype(jnp.complex128), None, jnp.float64)
    with pytest.raises(ValueError, match=r"`grid` must be real \(float or int\), got dtype bool"):
        as_grid(jnp.array([False, True]), None, jnp.float64)
    with pytest.raises(ValueError, match=r"`grid` contains NaN or infinity"):
        as_grid(jnp.array([0.0, jnp.nan, 1.0]), None, jnp.float64)
    with pytest.raises(ValueError, match=r"`grid` must increase strictly from 0 to 1"):
        as_grid(jnp.array([0.0, 0.7, 0.5, 1.0]), None, jnp.float64)
    with pytest.raises(ValueError, match=r"disagrees with `grid`"):
        as_grid(jnp.linspace(0.0, 1.0, 4), 5, jnp.float64)


@pytest.mark.parametrize("n_nodes", [0, 1, 2])
def test_too_few_nodes(n_nodes):
    with pytest.raises(ValueError, match=r"`n_nodes` must be at least 3"):
        _solve(n_nodes=n_nodes)


@pytest.mark.parametrize("t", [0.0, 1.5, -2.0])
def test_zero_duration(t):
    with pytest.raises(ValueError, match=r"`t0` and `t1` must differ"):
        _solve(t0=t, t1=t)


@pytest.mark.parametrize(
    "drift",
    [
        lambda t, x, args: jnp.concatenate([x, x[:1]]),  # shape (3,) for d = 2
        lambda t, x, args: jnp.sum(x),  # scalar
        lambda t, x, args: jnp.outer(x, x),  # (2, 2)
    ],
    ids=["shape3", "scalar", "matrix"],
)
def test_drift_wrong_shape(drift):
    sde = nj.SDE(drift, 0.5)
    with pytest.raises(ValueError, match=r"`drift\(t, x, args\)` must return an array of shape \(2,\)"):
        _solve(sde=sde)


def test_drift_raising_is_reported_as_value_error():
    def drift(t, x, args):
        return x @ jnp.ones((3,))  # shape error inside the user's drift

    with pytest.raises(ValueError, match=r"calling `drift\(t, x, args\)`"):
        _solve(sde=nj.SDE(drift, 0.5))


@pytest.mark.parametrize(
    "diffusion",
    [
        jnp.ones(3),
        jnp.eye(3),
        jnp.ones((2, 3)),
        lambda t, x, args: jnp.ones(3),
        lambda t, x, args: jnp.ones((2, 3)),
    ],
    ids=["const-3", "const-3x3", "const-2x3", "callable-3", "callable-2x3"],
)
def test_diffusion_wrong_shape(diffusion):
    sde = nj.SDE(_nonlinear_drift, diffusion)
    with pytest.raises(ValueError, match=r"`diffusion` must be a scalar, or have shape \(2,\)"):
        _solve(sde=sde)


@pytest.mark.parametrize(
    "grid",
    [
        [0.0, 0.5, 0.4, 1.0],  # not increasing
        [0.0, 0.5, 0.5, 1.0],  # repeated node
        [0.1, 0.5, 1.0],  # does not start at 0
        [0.0, 0.5, 0.9],  # does not end at 1
        [1.0, 0.5, 0.0],  # decreasing
    ],
)
def test_bad_grid(grid):
    with pytest.raises(ValueError, match=r"`grid` must increase strictly from 0 to 1"):
        _solve(n_nodes=None, grid=jnp.asarray(grid))


def test_grid_disagrees_with_n_nodes():
    with pytest.raises(ValueError, match=r"disagrees with `grid`"):
        _solve(n_nodes=5, grid=jnp.linspace(0.0, 1.0, 4))


@pytest.mark.parametrize(
    "shape, fragment",
    [
        ((N, 3), r"`init` must have shape \(n_nodes, 2\)"),
        ((N,), r"`init` must have shape \(n_nodes, 2\)"),
        ((N, 2, 1), r"`init` must have shape \(n_nodes, 2\)"),
        ((N - 1, 2), r"`init` has 20 nodes but `n_nodes` is 21"),
    ],
)
def test_init_wrong_shape(shape, fragment):
    with pytest.raises(ValueError, match=fragment):
        _solve(init=jnp.zeros(shape))


@pytest.mark.parametrize(
    "sde",
    [_nonlinear_drift, (_nonlinear_drift, 0.5), None],
    ids=["function", "tuple", "none"],
)
def test_sde_not_an_sde(sde):
    with pytest.raises(ValueError, match=r"`sde` must be an `nj.SDE`"):
        nj.minimize_action(sde, X0, X1, 0.0, 1.0, n_nodes=N, args=K)


def test_geometric_complex_x0():
    with pytest.raises(ValueError, match=r"`x0` must be a floating-point array, got complex"):
        nj.minimize_geometric_action(SDE_NL, X0.astype(jnp.complex128), X1, n_nodes=N, args=K)


# ---------------------------------------------------------------------------------------------
# Bad values: reported through `result`/`converged` (throw=False), or raised (throw=True).


def test_args_are_finite():
    from noether_jax._sde import args_are_finite

    ok = {"k": jnp.array([0.3, 1.0]), "n": 3, "flag": True, "f": jnp.sin, "name": "a", "z": None}
    assert bool(args_are_finite(ok))
    assert bool(args_are_finite(None)) and bool(args_are_finite(2.5))
    # Integer and boolean leaves are finite by construction.
    assert bool(args_are_finite((jnp.arange(3), np.array([True]), 7)))
    assert not bool(args_are_finite(dict(ok, k=jnp.array([0.3, jnp.nan]))))
    assert not bool(args_are_finite([1.0, (np.float32(np.inf),)]))
    assert not bool(args_are_finite(float("-inf")))
    # Traced: a value for a result code.
    f = jax.jit(lambda a: args_are_finite({"a": a, "i": 1}))
    assert bool(f(jnp.array(1.0))) and not bool(f(jnp.array(jnp.nan)))


def test_diffusion_is_spd():
    from noether_jax._sde import diffusion_is_spd

    xs = jnp.array([[0.0, 0.0], [0.4, 0.2], [1.0, 0.5]])
    ts = jnp.linspace(0.0, 1.0, 3)
    assert bool(diffusion_is_spd(SDE_NL, ts, xs, K))
    for D in (_BAD_D[0], _BAD_D[2]):  # indefinite matrix, negative scalar
        assert not bool(diffusion_is_spd(nj.SDE(_nonlinear_drift, D), ts, xs, K))
    # A callable D is checked at the midpoints: 0.5 − x[0] < 0 at the second one.
    assert not bool(diffusion_is_spd(nj.SDE(_nonlinear_drift, _D_scalar_goes_negative), ts, xs, K))
    assert bool(diffusion_is_spd(nj.SDE(_nonlinear_drift, _D_scalar_goes_negative), None,
                                 xs[:2], K))


_BAD = [
    ("x0", jnp.nan),
    ("x1", jnp.nan),
    ("x0", jnp.inf),
    ("x1", -jnp.inf),
]


@pytest.mark.parametrize("which, value", _BAD)
def test_nonfinite_endpoint_no_throw(which, value):
    bad = {"x0": X0, "x1": X1}[which].at[0].set(value)
    sol = _solve(**{which: bad}, throw=False)
    assert not bool(sol.converged)
    assert sol.result == nj.RESULTS.invalid_input, _msg(sol.result)


@pytest.mark.parametrize("which, value", _BAD[:2])
def test_nonfinite_endpoint_throws(which, value):
    bad = {"x0": X0, "x1": X1}[which].at[0].set(value)
    with pytest.raises(RUNTIME_ERRORS, match=r"contain NaN or infinity"):
        jax.block_until_ready(_solve(**{which: bad}, throw=True))


# Non-SPD constant D. Arrays are dynamic leaves, so cases of the same shape share a compile.
_BAD_D = [
    jnp.array([[1.0, 2.0], [2.0, 1.0]]),  # symmetric, indefinite
    jnp.array([[1.0, 0.5], [0.0, 1.0]]),  # not symmetric
    jnp.array(-1.0),  # negative scalar
    jnp.array(0.0),  # singular
]
_BAD_D_IDS = ["indefinite", "nonsymmetric", "scalar-negative", "scalar-zero"]


@pytest.mark.parametrize("D", _BAD_D, ids=_BAD_D_IDS)
def test_non_spd_constant_diffusion_no_throw(D):
    sol = _solve(sde=nj.SDE(_nonlinear_drift, D), throw=False)
    assert not bool(sol.converged)
    assert sol.result == nj.RESULTS.invalid_diffusion, _msg(sol.result)


def test_non_spd_constant_diffusion_throws():
    # A Python float diffusion is static (its own compile): check it on the throwing path.
    with pytest.raises(RUNTIME_ERRORS, match=r"is not symmetric positive definite"):
        jax.block_until_ready(_solve(sde=nj.SDE(_nonlinear_drift, -1.0), throw=True))


def test_non_spd_indefinite_matrix_throws():
    with pytest.raises(RUNTIME_ERRORS, match=r"is not symmetric positive definite"):
        jax.block_until_ready(_solve(sde=nj.SDE(_nonlinear_drift, _BAD_D[0]), throw=True))


def _D_scalar_goes_negative(t, x, args):
    return 0.5 - x[0]  # negative for x[0] > 0.5: the path to x1[0] = 1 crosses it


def test_callable_diffusion_non_spd_along_path():
    sde = nj.SDE(_nonlinear_drift, _D_scalar_goes_negative)
    sol = _solve(sde=sde, throw=False)
    assert not bool(sol.converged)
    assert sol.result in (nj.RESULTS.invalid_diffusion, nj.RESULTS.nonfinite), _msg(sol.result)


def _log_drift(t, x, args):
    return jnp.log(x)  # NaN for negative x


def _nan_drift(t, x, args):
    return jnp.where(x[0] > 0.5, jnp.nan, -x)


def test_nan_drift_never_converges():
    # The straight-line initial path from x = 1 to x = -1 crosses x < 0, where log is NaN.
    sde = nj.SDE(_log_drift, 0.5)
    sol = _solve(sde=sde, x0=jnp.array([1.0, 1.0]), x1=jnp.array([-1.0, 1.0]), args=None,
                 throw=False)
    assert not bool(sol.converged)
    assert sol.result != nj.RESULTS.successful
    assert sol.result == nj.RESULTS.nonfinite, _msg(sol.result)


def test_nan_drift_throws():
    sde = nj.SDE(_nan_drift, 0.5)
    with pytest.raises(RUNTIME_ERRORS, match=r"NaN or infinite"):
        jax.block_until_ready(_solve(sde=sde, args=None, throw=True))


def test_max_steps_reached():
    sol = _solve(max_steps=1, throw=False)
    assert not bool(sol.converged)
    assert sol.result == nj.RESULTS.max_steps_reached, _msg(sol.result)
    assert int(sol.stats["num_steps"]) == 1
    with pytest.raises(RUNTIME_ERRORS, match=r"ran out of steps \(`max_steps`\)"):
        jax.block_until_ready(_solve(max_steps=1, throw=True))
    # The same problem converges with the default budget.
    assert bool(_solve().converged)


def test_max_steps_invalid():
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=r"`max_steps` must be a positive int"):
            _solve(max_steps=bad)


def test_results_help_strings():
    failures = [
        _solve(max_steps=1, throw=False),
        _solve(x0=X0.at[0].set(jnp.nan), throw=False),
        _solve(sde=nj.SDE(_nonlinear_drift, jnp.array(-1.0)), throw=False),
        _solve(sde=nj.SDE(_log_drift, 0.5), x0=jnp.array([1.0, 1.0]), x1=jnp.array([-1.0, 1.0]),
               args=None, throw=False),
    ]
    for sol in failures:
        assert not bool(sol.converged)
        help_ = nj.RESULTS[sol.result]
        assert isinstance(help_, str) and len(help_) > 20
    assert nj.RESULTS[_solve().result] == ""
    # Every failure member has its own non-empty message.
    members = ["max_steps_reached", "nonfinite", "invalid_input", "invalid_diffusion", "stagnated"]
    msgs = [nj.RESULTS[getattr(nj.RESULTS, m)] for m in members]
    assert all(msgs) and len(set(msgs)) == len(msgs)


# ---------------------------------------------------------------------------------------------
# Batches: each element reports its own failure.


def _unbatch(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def test_vmap_per_element_failure():
    x0s = jnp.array([[0.0, 0.0], [jnp.nan, 0.0], [0.1, 0.2], [0.0, 0.0]])
    x1s = jnp.array([[1.0, 0.5], [1.0, 0.5], [jnp.inf, 0.0], [0.3, -0.2]])
    sols = jax.vmap(lambda a, b: _solve(x0=a, x1=b, throw=False))(x0s, x1s)
    assert sols.converged.shape == (4,)
    np.testing.assert_array_equal(np.asarray(sols.converged), [True, False, False, True])
    for i in range(4):
        sol_i = _unbatch(sols, i)
        ref = _solve(x0=x0s[i], x1=x1s[i], throw=False)
        # Each element carries its own code, the same as an unbatched solve.
        assert sol_i.result == ref.result, (i, _msg(sol_i.result), _msg(ref.result))
        if i in (0, 3):
            assert sol_i.result == nj.RESULTS.successful
            np.testing.assert_allclose(sol_i.action, ref.action, rtol=1e-10)
            np.testing.assert_allclose(sol_i.xs, ref.xs, rtol=1e-8, atol=1e-10)
    for i in (1, 2):
        sol_i = _unbatch(sols, i)
        assert sol_i.result == nj.RESULTS.invalid_input, (i, _msg(sol_i.result))


# ---------------------------------------------------------------------------------------------
# No recompilation for new values of the same shapes/dtypes.


def _counting_sde():
    traces = []

    def drift(t, x, args):
        # Count calls made while tracing. (`minimize_action` also evaluates the drift once per
        # call on concrete arrays, via `jax.eval_shape`, to check its output shape; that is a
        # shape check, not a trace of the compiled solver, so only tracer calls count.)
        if isinstance(x, jax.core.Tracer):
            traces.append(1)
        return -x + args * jnp.sin(x)

    return nj.SDE(drift, 0.5), traces


def test_no_recompilation_on_new_values():
    sde, traces = _counting_sde()
    sol = nj.minimize_action(sde, X0, X1, 0.0, 1.0, n_nodes=N, args=jnp.array(0.3))
    assert bool(sol.converged)
    n_first = len(traces)
    assert n_first > 0
    sol2 = nj.minimize_action(
        sde, jnp.array([0.2, -0.1]), jnp.array([-0.5, 0.7]), 0.0, 2.0, n_nodes=N,
        args=jnp.array(-0.4),
    )
    assert bool(sol2.converged)
    assert len(traces) == n_first
    assert not np.allclose(sol.action, sol2.action)


def test_no_recompilation_jit_vmap():
    sde, traces = _counting_sde()

    @jax.jit
    @jax.vmap
    def batched(x0, x1, t1, k):
        return nj.minimize_action(sde, x0, x1, 0.0, t1, n_nodes=N, args=k, throw=False)

    x0s = jnp.array([[0.0, 0.0], [0.1, 0.2]])
    x1s = jnp.array([[1.0, 0.5], [0.3, -0.2]])
    sols = batched(x0s, x1s, jnp.array([1.0, 1.5]), jnp.array([0.3, 0.5]))
    assert np.all(np.asarray(sols.converged))
    n_first = len(traces)
    assert n_first > 0
    sols2 = batched(x0s + 0.3, x1s - 0.2, jnp.array([2.0, 0.7]), jnp.array([-0.2, 0.1]))
    assert np.all(np.asarray(sols2.converged))
    assert len(traces) == n_first
    assert not np.allclose(sols.action, sols2.action)


# ---------------------------------------------------------------------------------------------
# float32 inputs stay float32 even with x64 enabled.


def test_float32_linear_problem():
    # f = -x (SDE_NL with a = 0), D = 0.5, d = 2. `args` is float32 too: a float64 `args`
    # would promote the drift to float64.
    x0 = jnp.asarray([0.0, 0.0], dtype=jnp.float32)
    x1 = jnp.asarray([1.0, -0.5], dtype=jnp.float32)
    sol32 = nj.minimize_action(
        SDE_NL, x0, x1, 0.0, 1.0, n_nodes=N, args=jnp.asarray(0.0, dtype=jnp.float32)
    )
    sol64 = _solve(x0=x0.astype(jnp.float64), x1=x1.astype(jnp.float64), args=jnp.array(0.0))
    assert bool(sol32.converged), _msg(sol32.result)
    assert sol32.action.dtype == jnp.float32
    assert sol32.xs.dtype == jnp.float32
    assert sol32.ts.dtype == jnp.float32
    assert sol64.action.dtype == jnp.float64
    np.testing.assert_allclose(float(sol32.action), float(sol64.action), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(sol32.xs), np.asarray(sol64.xs), atol=1e-4)


@pytest.mark.parametrize("solver", [nj.NewtonCG(), nj.LBFGS()], ids=["newton_cg", "lbfgs"])
def test_float32_other_solvers(solver):
    # The matrix-free solvers in float32 with x64 enabled (L-BFGS iterates in float64
    # internally: optimistix builds part of its state in the default dtype).
    f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)
    sol32 = nj.minimize_action(
        SDE_NL, f32([0.0, 0.0]), f32([1.0, -0.5]), 0.0, 1.0, n_nodes=N, args=f32(0.3),
        solver=solver,
    )
    sol64 = _solve(x0=jnp.array([0.0, 0.0]), x1=jnp.array([1.0, -0.5]), args=jnp.array(0.3))
    assert bool(sol32.converged), _msg(sol32.result)
    assert sol32.action.dtype == jnp.float32 and sol32.xs.dtype == jnp.float32
    np.testing.assert_allclose(float(sol32.action), float(sol64.action), rtol=1e-4)
