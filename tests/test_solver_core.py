"""The solver core on optimistix: every solver on the same problems, derivatives in both modes
through the optimum, stopping rules invariant to resolution and scale, no recompilation.

Compilations are the cost of this file, so they are shared: one drift `_ou` for every
linear fixed-time problem (its noise an array, so new values of `D` reuse the compiled
solve), one jitted function per group of derivatives (cached, and reused for the finite
differences), and the geometric finite differences reuse the geometric solve of the solver
matrix.

The geometric tests are the methods of `TestGeometric` (run them alone with
`-k TestGeometric`, or leave them out with `-k "not TestGeometric"`): they need
`nj.minimize_geometric_action(..., solver=...)` and a path `sol.xs` differentiated through
the optimum.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import noether_jax as nj
from helpers import linear_action

# This file's own jitted functions compile with cheaper XLA backend options (no fusion
# emitters, no LLVM optimisation): 3–4× faster to compile, the same IEEE arithmetic (no fast
# math); running time is irrelevant here. Everything but the recompilation test goes
# through them, so the library's solves are traced inside them.
_FAST_CPU = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _compiler_options():
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=_FAST_CPU)(1.0)
    except Exception:  # an XLA without these options: compile as usual
        return None
    return _FAST_CPU


COMPILER_OPTIONS = _compiler_options()


def _jit(fn):
    return jax.jit(fn, compiler_options=COMPILER_OPTIONS)


# Python side effects in the drifts count how often they are traced (compilations).
TRACES = {"ou": 0, "ms": 0, "dw": 0}


def _ou(t, x, a):
    TRACES["ou"] += 1
    return -a * x


def _ou_sde(D):
    # An array (not a Python float, which `filter_jit` would make static): a new `D` value
    # reuses the compiled solve.
    return nj.SDE(_ou, jnp.asarray(D, dtype=jnp.float64))


# One instance each, so equal solvers share compiled solves everywhere in the file.
BLOCK_NEWTON = nj.BlockNewton()
NEWTON_CG = nj.NewtonCG()
OU_SOLVERS = {
    "BlockNewton": (BLOCK_NEWTON, 256),
    "NewtonCG": (NEWTON_CG, 256),
    "LBFGS": (nj.LBFGS(), 2000),
    "optx.BFGS": (optx.BFGS(rtol=1e-10, atol=1e-10), 2000),
    "optx.NonlinearCG": (optx.NonlinearCG(rtol=1e-10, atol=1e-10), 10000),
    "optx.BFGS-f32": (optx.BFGS(rtol=1e-6, atol=1e-6), 2000),
}


@functools.cache
def _ou_fn(name, n, dtype):
    """A compiled OU solve `(a, x0, x1, D, T) -> summary`, one per solver, grid and dtype."""
    solver, max_steps = OU_SOLVERS[name]

    def fn(a, x0, x1, D, T):
        sol = nj.minimize_action(_ou_sde(D), x0, x1, 0.0, T, n_nodes=n, args=a,
                                 solver=solver, max_steps=max_steps, throw=False)
        return dict(action=sol.action, xs=sol.xs, converged=sol.converged,
                    successful=sol.result == nj.RESULTS.successful,
                    num_steps=sol.stats["num_steps"], grad_norm=sol.stats["grad_norm"])

    return _jit(fn)


def _solve_ou(name, *, dtype=jnp.float64, a=1.3, x0=(-1.0, 0.5), x1=(1.0, 1.0), D=0.5,
              T=1.0, n=41):
    out = _ou_fn(name, n, dtype)(
        jnp.asarray(a, dtype), jnp.asarray(x0, dtype), jnp.asarray(x1, dtype),
        jnp.asarray(D, jnp.float64), jnp.asarray(T, dtype),
    )
    return {k: np.asarray(v) for k, v in out.items()}


def _exact_ou(a=1.3, x0=(-1.0, 0.5), x1=(1.0, 1.0), D=0.5, T=1.0):
    return linear_action(-a * np.eye(2), D * np.eye(2), np.asarray(x0), np.asarray(x1), T)[0]


def _f64(x):
    return jnp.asarray(x, dtype=jnp.float64)


def _rel(a, b):
    return abs(float(a) / float(b) - 1.0)


@functools.cache
def _reference_ou():
    sol = _solve_ou("BlockNewton")
    assert sol["converged"]
    return float(sol["action"])


# --- 1. solver × problem matrix (fixed time) -------------------------------------------

@pytest.mark.parametrize(
    "name", ["BlockNewton", "NewtonCG", "LBFGS", "optx.BFGS", "optx.NonlinearCG"]
)
def test_fixed_time_solver_matrix_float64(name):
    """OU `f = −a x` (`a` in `args`), `D = 0.5`: every solver finds the BlockNewton action
    (to 1e-8), which is the closed form up to the O(h²) error of the midpoint rule."""
    sol = _solve_ou(name)
    assert sol["converged"] and sol["successful"]
    assert sol["action"].dtype == np.float64
    assert sol["num_steps"] < OU_SOLVERS[name][1]
    assert sol["grad_norm"] < 1e-5
    assert _rel(sol["action"], _reference_ou()) < 1e-8
    # h = 1/40, |A| = 1.3: the midpoint rule's error is about (hA)²/12 ≈ 9e-5 relative.
    assert _rel(sol["action"], _exact_ou()) < 2e-4


@pytest.mark.parametrize("name", ["BlockNewton", "NewtonCG", "optx.BFGS-f32"])
def test_fixed_time_solver_matrix_float32(name):
    sol = _solve_ou(name, dtype=jnp.float32)
    assert sol["action"].dtype == np.float32
    assert sol["xs"].dtype == np.float32
    assert sol["converged"]
    assert _rel(sol["action"], _reference_ou()) < 1e-4


# --- 2. derivatives in both modes (fixed time, nonlinear drift) ------------------------

MS_N, MS_MID = 41, 20


def _ms(t, x, beta):
    """Maier–Stein drift, `β` the (scalar) `args`."""
    TRACES["ms"] += 1
    return jnp.stack([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


MS_SDE = nj.SDE(_ms, 0.5)
# (β, x0, x1, t1), and a tangent for jax.jvp.
# Explicit dtypes: `jnp.array(3.0)` would be weakly typed, and a jitted function called
# with a strongly typed value later would compile again.
MS_P = tuple(map(_f64, (3.0, [-1.0, 0.1], [0.3, 0.4], 2.0)))
MS_T = tuple(map(_f64, (0.3, [0.2, -0.5], [0.7, 0.1], -0.4)))
ALL = (0, 1, 2, 3)
MS_SOLVERS = {
    "BlockNewton": (BLOCK_NEWTON, 256),
    "optx.BFGS": (optx.BFGS(rtol=1e-12, atol=1e-12), 4000),
}


def _ms_fn(name):
    """`(β, x0, x1, t1) -> (action, middle node, converged)`."""
    solver, max_steps = MS_SOLVERS[name]

    def F(beta, x0, x1, t1):
        sol = nj.minimize_action(MS_SDE, x0, x1, 0.0, t1, n_nodes=MS_N, args=beta,
                                 solver=solver, max_steps=max_steps, throw=False)
        return sol.action, sol.xs[MS_MID], sol.converged

    return F


@functools.cache
def _ms_first(name):
    """One compilation: the value and the first derivatives (jit of jacfwd and jacrev of
    the action and the middle node; for BlockNewton also grad and jvp). Its `primal` entry
    serves the finite differences."""
    F3 = _ms_fn(name)
    F = lambda *p: F3(*p)[:2]
    S = lambda *p: F3(*p)[0]

    def first(P, T):
        out = dict(primal=F3(*P), jacfwd=jax.jacfwd(F, argnums=ALL)(*P),
                   jacrev=jax.jacrev(F, argnums=ALL)(*P))
        if name == "BlockNewton":
            out["grad"] = jax.grad(S, argnums=ALL)(*P)
            out["jvp"] = jax.jvp(F, P, T)
        return out

    return _jit(first)


def _ms_value(name, P):
    S, x, converged = _ms_first(name)(P, MS_T)["primal"]
    assert bool(converged)
    return np.asarray(S), np.asarray(x)


@functools.cache
def _ms_fd(name, h):
    """Central differences of (action, middle node) in each component of (β, x0, x1, t1),
    shaped as jacfwd gives them, and along the tangent `MS_T`."""
    partials = []
    for i, base in enumerate(MS_P):
        flat = np.atleast_1d(np.asarray(base))
        cols_S, cols_x = [], []
        for k in range(flat.size):
            e = np.zeros_like(flat)
            e[k] = h
            e = e.reshape(np.shape(base))
            Pp = tuple(_f64(p + e) if j == i else p for j, p in enumerate(MS_P))
            Pm = tuple(_f64(p - e) if j == i else p for j, p in enumerate(MS_P))
            (Sp, xp), (Sm, xm) = _ms_value(name, Pp), _ms_value(name, Pm)
            cols_S.append((Sp - Sm) / (2 * h))
            cols_x.append((xp - xm) / (2 * h))
        partials.append((np.reshape(cols_S, np.shape(base)),
                         np.stack(cols_x, axis=-1).reshape((2,) + np.shape(base))))
    Pp = tuple(_f64(p + h * t) for p, t in zip(MS_P, MS_T))
    Pm = tuple(_f64(p - h * t) for p, t in zip(MS_P, MS_T))
    (Sp, xp), (Sm, xm) = _ms_value(name, Pp), _ms_value(name, Pm)
    directional = ((Sp - Sm) / (2 * h), (xp - xm) / (2 * h))
    return partials, directional


ERRORS = {}  # largest relative errors met, by check: printed at the end with `pytest -s`


@pytest.fixture(scope="module", autouse=True)
def _print_errors():
    yield
    for key, err in sorted(ERRORS.items()):
        print(f"{key:40s} {err:.2e}")


def _close(key, ad, fd, rtol, floor=1e-9):
    ad, fd = np.asarray(ad, float), np.asarray(fd, float)
    err = np.max(np.abs(ad - fd)) / max(np.max(np.abs(fd)), floor)
    ERRORS[key] = max(ERRORS.get(key, 0.0), err)
    assert err <= rtol, (key, ad, fd, err)


def test_fixed_time_action_first_derivatives_vs_fd():
    """`jax.grad`, `jax.jvp`, `jax.jacfwd`, `jax.jacrev` (under jit) of the action with
    respect to `args`, `x0`, `x1`, `t1` agree with central differences (h = 1e-5)."""
    out = _ms_first("BlockNewton")(MS_P, MS_T)
    assert bool(out["primal"][2])
    partials, (dS_dir, _) = _ms_fd("BlockNewton", 1e-5)
    for i in ALL:
        fd_S = partials[i][0]
        _close("grad S", out["grad"][i], fd_S, 1e-6)
        _close("jacfwd S", out["jacfwd"][0][i], fd_S, 1e-6)
        _close("jacrev S", out["jacrev"][0][i], fd_S, 1e-6)
    # jvp: primal and tangent of the action.
    _close("jvp primal", out["jvp"][0][0], out["primal"][0], 1e-14)
    _close("jvp S", out["jvp"][1][0], dS_dir, 1e-6)
    # ∂S*/∂T = −E (docs/conventions.md); this duration is shorter than the path would like, so
    # the quasi-energy is positive.
    assert float(out["grad"][3]) < 0


def test_fixed_time_path_node_jacobians():
    """The middle node of `sol.xs`: jacfwd and jacrev agree to 1e-10, and both agree with
    central differences (h = 1e-5) in every input, as does jvp."""
    out = _ms_first("BlockNewton")(MS_P, MS_T)
    partials, (_, dx_dir) = _ms_fd("BlockNewton", 1e-5)
    for i in ALL:
        fwd, rev = out["jacfwd"][1][i], out["jacrev"][1][i]
        _close("node fwd-rev", rev, fwd, 1e-10)
        _close("node jacfwd", fwd, partials[i][1], 1e-6)
        _close("node jacrev", rev, partials[i][1], 1e-6)
    # The path does depend on the parameter (the comparison is not of zeros).
    assert np.max(np.abs(np.asarray(out["jacfwd"][1][0]))) > 1e-2
    _close("node jvp", out["jvp"][1][1], dx_dir, 1e-6)


@functools.cache
def _ms_hessian():
    S_beta = lambda b, *rest: _ms_fn("BlockNewton")(b, *rest)[0]
    return _jit(lambda P: (jax.hessian(S_beta)(*P), jax.jacfwd(jax.grad(S_beta))(*P)))


def test_fixed_time_action_hessian_vs_fd():
    """Second derivatives follow the path: `jax.hessian` and `jax.jacfwd(jax.grad)` of the
    action in `args` agree with the second difference (h = 1e-4) to 1e-4."""
    H, JG = _ms_hessian()(MS_P)
    h = 1e-4
    S = lambda b: float(_ms_value("BlockNewton", (_f64(b),) + MS_P[1:])[0])
    b = float(MS_P[0])
    fd = (S(b + h) - 2 * S(b) + S(b - h)) / h**2
    _close("hessian", H, fd, 1e-4)
    _close("jacfwd(grad)", JG, fd, 1e-4)
    _close("hessian-jacfwd(grad)", H, JG, 1e-10)
    assert abs(fd) > 1e-3


def test_fixed_time_vmap_grad_equals_loop():
    """`jax.vmap(jax.grad(f))` over three values of `args` equals a loop of `jax.grad`."""
    betas = _f64([2.0, 3.0, 4.0])
    S_beta = lambda b: _ms_fn("BlockNewton")(b, *MS_P[1:])[0]
    batched = np.asarray(_jit(jax.vmap(jax.grad(S_beta)))(betas))
    first = _ms_first("BlockNewton")
    loop = np.array([float(first((b,) + MS_P[1:], MS_T)["grad"][0]) for b in betas])
    _close("vmap(grad)", batched, loop, 1e-10)
    assert np.ptp(loop) > 1e-3  # the three problems differ


def test_fixed_time_derivatives_with_optx_bfgs():
    """A solver that knows nothing of paths (optx.BFGS): the same first derivatives of the
    action and of the middle node, in both modes, against central differences, and against
    the BlockNewton derivatives (1e-5). BFGS leaves the nodes about 2e-9 from the optimum
    (BlockNewton: round-off), so the central differences of the nodes are good to 1e-4
    only (h = 1e-3: truncation 1e-5, noise 1e-5)."""
    out = _ms_first("optx.BFGS")(MS_P, MS_T)
    ref = _ms_first("BlockNewton")(MS_P, MS_T)
    assert bool(out["primal"][2])
    partials, _ = _ms_fd("optx.BFGS", 1e-3)
    _close("BFGS primal", out["primal"][0], ref["primal"][0], 1e-10)
    for i in ALL:
        for mode in ("jacfwd", "jacrev"):
            _close(f"BFGS {mode} S", out[mode][0][i], partials[i][0], 1e-5)
            _close(f"BFGS {mode} node", out[mode][1][i], partials[i][1], 1e-4)
            _close(f"BFGS-BN {mode} S", out[mode][0][i], ref[mode][0][i], 1e-5)
            _close(f"BFGS-BN {mode} node", out[mode][1][i], ref[mode][1][i], 1e-5)


# --- 4. stopping rules invariant to resolution and scale --------------------------------

STOP_X0, STOP_X1 = (-2.0, 2.0), (2.0, 2.0)


@pytest.mark.parametrize("name", ["BlockNewton", "NewtonCG"])
@pytest.mark.parametrize(
    "T,n", [(4.0, 41), (0.04, 41), (0.1, 10001), (0.01, 10001)],
    ids=["h=1e-1", "h=1e-3", "h=1e-5", "h=1e-6"],
)
def test_stopping_rule_invariant_to_resolution_and_scale(T, n, name):
    """OU `f = −x`, `D = 1`, straight-line start: converged, with the action equal to the
    closed form within the midpoint rule's error (≈ h²/12 relative, |A| = 1), down to
    h = 1e-6; and unchanged (1e-9) when the state is scaled by s: x → s x, D → s² D."""
    h = T / (n - 1)
    kw = dict(a=1.0, T=T, n=n)
    sol = _solve_ou(name, x0=STOP_X0, x1=STOP_X1, D=1.0, **kw)
    assert sol["converged"]
    exact = _exact_ou(a=1.0, x0=STOP_X0, x1=STOP_X1, D=1.0, T=T)
    ERRORS[f"closed form {name} h={h:.0e}"] = _rel(sol["action"], exact)
    assert _rel(sol["action"], exact) <= 0.1 * h**2 + 1e-11
    for s in (1e-6, 1e6):
        sol_s = _solve_ou(name, x0=np.multiply(s, STOP_X0), x1=np.multiply(s, STOP_X1),
                          D=s**2, **kw)
        assert sol_s["converged"], s
        ERRORS[f"scale {name} h={h:.0e} s={s:.0e}"] = _rel(sol_s["action"], sol["action"])
        assert _rel(sol_s["action"], sol["action"]) < 1e-9, s
        np.testing.assert_allclose(sol_s["xs"] / s, sol["xs"], rtol=0, atol=2e-6)


class _BandProblem(nj.AbstractPathProblem):
    """`S = ½|y − 1|²`, whose Hessian is declared NaN where any node lies in a band
    `(0.998, 0.9995)`: the damped Newton steps from 0 land there twice before they leave it
    (at `λ = 1e-3, 2e-3`), while the value and gradient stay finite."""

    def value(self, y):
        return 0.5 * jnp.sum((y - 1.0) ** 2)

    def hessian(self, y):
        m, k = y.shape
        bad = jnp.any((y > 0.998) & (y < 0.9995))
        diag = jnp.where(bad, jnp.nan, 1.0) * jnp.broadcast_to(jnp.eye(k, dtype=y.dtype), (m, k, k))
        return nj.BlockTridiagonalOperator(diag, jnp.zeros((m - 1, k, k), y.dtype))

    def preconditioner(self, y):
        raise NotImplementedError

    def scale(self, y):
        return jnp.asarray(1.0, y.dtype)


def test_block_newton_takes_back_a_step_to_a_non_finite_hessian():
    """The Hessian is evaluated lazily (at the start of the step after an accepted one); an
    accepted point where it is not finite is taken back with the damping raised, as the
    ratio test would have rejected it. Without that the solver sits on the NaN Hessian and
    stagnates."""
    sol = optx.minimise(
        # (`chord=False`: the chord correction would step out of the band by itself.)
        lambda y, p: p.value(y), nj.BlockNewton(chord=False), jnp.zeros((3, 1)), _BandProblem(),
        max_steps=50, throw=False,
    )
    assert sol.result == optx.RESULTS.successful
    np.testing.assert_allclose(sol.value, 1.0, rtol=0, atol=1e-12)
    # Both visits of the band were taken back: only the steps that left it count.
    assert int(sol.stats["num_accepted"]) <= int(sol.stats["num_steps"]) - 2


# --- 5. no recompilation on new values ---------------------------------------------------


class _CountCompiles:
    """Counts XLA compilations (jax.monitoring's backend-compile events) in a block."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __enter__(self):
        self.n = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event, duration, **kwargs):
        if event == self.EVENT:
            self.n += 1

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)


def test_no_recompilation_on_new_values():
    """`nj.minimize_action` called directly (its own `filter_jit`), again with new `args`
    (a Python float), `x0`, `x1`, `t1` and `D` of the same shapes: no compilation, and the
    drift is traced at most once per call (`nj.SDE` calls it as a cached compiled function,
    so a signature it has seen is not traced again). Nor does a jitted derivative compile
    again for new values."""

    def solve(a, x0, x1, D, T):
        # A grid no other test uses: the first call must trace afresh (a jitted solve of
        # the same shapes elsewhere in this file would leave its trace cached).
        return nj.minimize_action(_ou_sde(D), jnp.asarray(x0), jnp.asarray(x1), 0.0, T,
                                  n_nodes=43, args=a)

    n0 = TRACES["ou"]
    with _CountCompiles() as c1:
        solve(1.3, (-1.0, 0.5), (1.0, 1.0), 0.5, 1.0)
    n1 = TRACES["ou"]
    new = dict(a=0.7, x0=(0.2, -0.3), x1=(1.5, 0.1), D=0.8, T=1.5)
    with _CountCompiles() as c2:
        sol = solve(**new)
    n2 = TRACES["ou"]
    with _CountCompiles() as c3:
        solve(2.0, (0.1, 0.1), (-1.0, 2.0), 0.3, 0.5)
    n3 = TRACES["ou"]
    assert c1.n >= 1  # the first call compiled (the counter works)
    assert c2.n == 0 and c3.n == 0, (c1.n, c2.n, c3.n)
    assert n2 - n1 == n3 - n2 <= 1, (n1 - n0, n2 - n1, n3 - n2)
    assert bool(sol.converged)
    assert _rel(sol.action, _exact_ou(**new)) < 2e-4  # the new problem was solved

    first = _ms_first("BlockNewton")
    S_old = float(first(MS_P, MS_T)["primal"][0])
    n_ms = TRACES["ms"]
    assert n_ms > 0
    P_new = tuple(map(_f64, (2.5, [-0.9, 0.2], [0.2, 0.5], 1.5)))
    with _CountCompiles() as c4:
        out = first(P_new, MS_T)
    assert c4.n == 0
    assert TRACES["ms"] == n_ms
    assert abs(float(out["primal"][0]) - S_old) > 1e-3


def test_drift_traced_once_per_signature():
    """A fresh solve (value, gradient, block Hessian, line search, grid levels, checks)
    traces the drift once per distinct signature of its arguments, not once per call site
    and transformation: a geometric solve traced it 12 times and a default fixed-time call
    38 times before, a large share of their compile time."""

    def counting():
        count = {"n": 0}

        def drift(t, x, a):
            count["n"] += 1
            return -a * x + jnp.array([0.3, 0.0]) * x[::-1]

        return drift, count

    x0, x1 = jnp.array([0.0, 0.0]), jnp.array([1.0, 0.5])
    drift, count = counting()
    # A grid no other test uses: a fresh trace.
    sol = nj.minimize_geometric_action(nj.SDE(drift, 0.5), x0, x1, n_nodes=45, args=1.2)
    assert bool(sol.converged)
    assert 1 <= count["n"] <= 3, count
    drift, count = counting()
    sol = nj.minimize_action(nj.SDE(drift, 0.5), x0, x1, 0.0, 2.0, args=1.2)
    assert bool(sol.converged)
    assert 1 <= count["n"] <= 3, count


# --- geometric action (infinite time) ------------------------------------------------------

GEO_N, GEO_MID = 101, 50
GEO_DELTA = 0.5
_J = jnp.array([[0.0, -1.0], [1.0, 0.0]])


def _dw(t, x, p):
    """`f = −(I + γJ)∇V`, `V = a (x² − 1)²/4 + y²/2`, `p = (a, γ)`. With `D = δI` the
    rotational part `γJ∇V` is orthogonal to `∇V`, so the barrier from (−1, 0) to the saddle
    (0, 0) is `ΔV/δ = a/(4δ)` for every γ, while the path bends off the axis when γ ≠ 0."""
    TRACES["dw"] += 1
    a, g = p[0], p[1]
    grad_V = jnp.stack([a * x[0] * (x[0] ** 2 - 1), x[1]])
    return -(grad_V + g * (_J @ grad_V))


GEO_SDE = nj.SDE(_dw, GEO_DELTA)
GEO_X0, GEO_X1 = _f64([-1.0, 0.0]), _f64([0.0, 0.0])
_s = jnp.linspace(0.0, 1.0, GEO_N)
# A curved start (bulging by 0.3 off the straight minimum path), so the solve has work to do.
GEO_INIT = jnp.stack([-1.0 + _s, 0.3 * jnp.sin(jnp.pi * _s)], axis=1)
GEO_SOLVERS = {
    "BlockNewton": (BLOCK_NEWTON, {}),
    "NewtonCG": (NEWTON_CG, {}),
    # BFGS needs ~1000 steps per solve between redistributions: with the default 20 inner
    # steps it runs out of `max_steps` (about 6e-4 in grad_norm at 5000 steps).
    "optx.BFGS": (optx.BFGS(rtol=1e-10, atol=1e-10),
                  dict(max_steps=5000, max_inner_steps=2000)),
}
GEO_GRADIENT = _f64([1.0, 0.0])  # a = 1, γ = 0: gradient drift
GEO_ROTATED = _f64([1.0, 0.5])   # a = 1, γ = 0.5: curved path, same barrier


def _geo_sol(name, p):
    solver, kwargs = GEO_SOLVERS[name]
    return nj.minimize_geometric_action(
        GEO_SDE, GEO_X0, GEO_X1, n_nodes=GEO_N, args=p, init=GEO_INIT, solver=solver,
        throw=False, **kwargs,
    )


@functools.cache
def _geo_fn(name):
    def fn(p):
        sol = _geo_sol(name, p)
        return dict(action=sol.action, xs=sol.xs, converged=sol.converged)

    return _jit(fn)


def _geo(name, p):
    out = {k: np.asarray(v) for k, v in _geo_fn(name)(p).items()}
    assert out["converged"], name
    return out


@functools.cache
def _geo_reference():
    return float(_geo("BlockNewton", GEO_GRADIENT)["action"])


@functools.cache
def _geo_derivs():
    """One compilation: grad and jvp of the geometric action, jacfwd of the middle node."""
    S = lambda p: _geo_sol("BlockNewton", p).action
    node = lambda p: _geo_sol("BlockNewton", p).xs[GEO_MID]
    return _jit(lambda p, t: dict(grad=jax.grad(S)(p), jvp=jax.jvp(S, (p,), (t,)),
                                  jacfwd=jax.jacfwd(node)(p)))


def _geo_fd(p, h=1e-5):
    """Central differences of the action and of the middle node in each parameter."""
    dS, dx = [], []
    for k in range(p.shape[0]):
        e = np.zeros(p.shape)
        e[k] = h
        sp, sm = _geo("BlockNewton", _f64(p + e)), _geo("BlockNewton", _f64(p - e))
        dS.append((sp["action"] - sm["action"]) / (2 * h))
        dx.append((sp["xs"][GEO_MID] - sm["xs"][GEO_MID]) / (2 * h))
    return np.array(dS), np.stack(dx, axis=-1)


class TestGeometric:
    """`nj.minimize_geometric_action` on the optimistix contract of `nj.minimize_action`
    (`solver=` any minimiser, `sol.xs` differentiable through the optimum)."""

    @pytest.mark.parametrize("name", list(GEO_SOLVERS))
    def test_geometric_solver_matrix(self, name):
        """Double well, gradient drift, `D = δI`: from the minimum to the saddle the
        geometric action is `ΔV/δ = 0.5` (second order in 1/n); every solver converges from
        a curved start to the straight path and agrees with BlockNewton to 1e-6."""
        sol = _geo(name, GEO_GRADIENT)
        S = float(sol["action"])
        ERRORS[f"geometric {name} vs 0.5"] = abs(S - 0.5)
        assert abs(S - 0.25 / GEO_DELTA) < 1e-4  # 2.5e-5 at n = 101 (before the move)
        ERRORS[f"geometric {name} vs BN"] = _rel(S, _geo_reference())
        assert _rel(S, _geo_reference()) < 1e-6
        xs = sol["xs"]
        assert np.max(np.abs(xs[:, 1])) < 1e-5  # the bulge is gone: the path is the axis
        np.testing.assert_array_equal(xs[0], np.asarray(GEO_X0))
        np.testing.assert_array_equal(xs[-1], np.asarray(GEO_X1))

    def test_geometric_action_derivatives_vs_fd(self):
        """`jax.grad` and `jax.jvp` of the geometric action in (a, γ) agree with central
        differences (h = 1e-5) to 1e-4 of the action: an O(1/n²) difference is allowed for,
        as for the nodes below (the nodes' sliding along the curve, which the monitor moves
        with the parameters, is not differentiated): 3.7e-5 of S at n = 101 with the
        monitor's node placement (8e-6 with equal arclength). Both agree with the continuum
        values dS/da = 1/(4δ) = 0.5, dS/dγ = 0 to 1e-4."""
        p, t = GEO_ROTATED, _f64([0.3, -0.7])
        out = _geo_derivs()(p, t)
        fd_S, _ = _geo_fd(p)
        S = float(out["jvp"][0])
        err_grad = np.max(np.abs(np.asarray(out["grad"]) - fd_S)) / S
        err_jvp = abs(float(out["jvp"][1]) - fd_S @ np.asarray(t)) / S
        ERRORS["geometric grad"], ERRORS["geometric jvp"] = err_grad, err_jvp
        assert err_grad < 1e-4, (out["grad"], fd_S)
        assert err_jvp < 1e-4
        assert abs(float(out["grad"][0]) - 0.25 / GEO_DELTA) < 1e-4
        assert abs(float(out["grad"][1])) < 1e-4

    def test_geometric_path_node_derivatives_vs_fd(self):
        """`jax.jacfwd` of the middle node in (a, γ) against central differences (h =
        1e-5). Only the component normal to the path is compared (nodes may slide along
        the path, which does not change the curve); the normal at the node is that of the
        chord between its neighbours. Tolerance 1e-4: differentiating the optimum with the
        nodes held on their normal lines (no redistribution) differs from differences of
        the solver's output at the discretisation's order, O(1/n²): 1.3e-4, 3.6e-5, 9e-6
        at n = 51, 101, 201."""
        p = GEO_ROTATED
        out = _geo_derivs()(p, _f64([0.3, -0.7]))
        xs = _geo("BlockNewton", p)["xs"]
        tangent = xs[GEO_MID + 1] - xs[GEO_MID - 1]
        tangent /= np.linalg.norm(tangent)
        normal = np.array([-tangent[1], tangent[0]])
        _, fd_x = _geo_fd(p)
        fd_n = normal @ fd_x
        assert np.max(np.abs(fd_n)) > 1e-2  # the path moves with the parameters
        _close("geometric node (normal)", normal @ np.asarray(out["jacfwd"]), fd_n, 1e-4)
