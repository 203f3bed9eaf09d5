"""Escape rates with prefactors (Eyring–Kramers, Bouchet–Reygner): closed forms, an exact 1-D
mean first-passage time, independent instanton integrals, transformations, a small
simulation.

One drift family, and `D` given as a full matrix, serve every 2-D test (so that each variant
compiles once; compilation is most of the cost):

    V = (x² − 1)² + k·y²,   f = −M∇V − ℓ,   ℓ = γ (c₀ + c₁ y) J∇V,   p = (γ, c₀, c₁, k, M),

with `J` the rotation by 90° and `M` symmetric positive definite (`I` but in the test of
anisotropic noise). `∇V·ℓ = 0`, so for `D = δM` the quasipotential is `V/δ` (in whitened
coordinates the drift is `−∇_y V/δ − ...` with the same orthogonality), and the
attractors `(±1, 0)`, the saddle `(0, 0)` and the Hessians are those of `V`:
`∇²V(a) = diag(8, 2k)`, `∇²V(s) = diag(−4, 2k)`, determinant ratio 2. Then
`∇·ℓ = γ c₁ ∂ₓV` (a constant `J` is divergence-free), and along the instanton
`φ̇ = ∇V − ℓ`:
- `c₁ = 0`: `∫∇·ℓ dt = 0` (rotating drift);
- `c₀ = 0`: `ℓ = 0` on the x axis, which is then the instanton, with `ẋ = ∂ₓV`, so
  `∫∇·ℓ dt = γ ∫_{−1}^{0} dx = γ` in closed form;
- otherwise the instanton is curved: the reference integrates `−(∇V − ℓ)` from the saddle
  (along its stable direction) back into the attractor with SciPy, and `∇·ℓ` along it.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

import noether_jax as nj
from noether_jax._geometric._rates import rate_failure

ROT = jnp.array([[0.0, -1.0], [1.0, 0.0]])
A = jnp.array([-1.0, 0.0])
S = jnp.array([0.0, 0.0])
N = 101  # nodes of every instanton below (one compilation per shape)


def V(z, k):
    return (z[0] ** 2 - 1) ** 2 + k * z[1] ** 2


def ell(z, p):
    gam, c0, c1, k = p[:4]
    return gam * (c0 + c1 * z[1]) * (ROT @ jax.grad(V)(z, k))


def metric(p):
    return jnp.array([[p[4], p[5]], [p[5], p[6]]])


def drift(t, z, p):
    return -metric(p) @ jax.grad(V)(z, p[3]) - ell(z, p)


def P(gam=0.0, c0=0.0, c1=0.0, k=1.0, M=((1.0, 0.0), (0.0, 1.0))):
    return jnp.array([gam, c0, c1, k, M[0][0], M[0][1], M[1][1]])


def sde(delta, M=None):
    """`D = δM` (`M = I` by default), always as a full matrix."""
    return nj.SDE(drift, delta * (jnp.eye(2) if M is None else M))


def axis(n=N, graded=False):
    """The straight segment from the attractor to the saddle (the instanton when ℓ = 0 on
    the axis): equidistant nodes, or `graded` ones that cluster at both ends like those of
    the geometric solver (Chebyshev points)."""
    u = jnp.linspace(0.0, 1.0, n)
    if graded:
        u = 0.5 * (1 - jnp.cos(jnp.pi * u))
    return A + u[:, None] * (S - A)


def reference_instanton(p, n=N, graded=False):
    """Nodes (equidistant in arclength, or `graded` like `axis`) of the instanton
    `φ̇ = M∇V − ℓ` from `a` to `s`, and `∫∇·ℓ dt` along it: integrated backward in time
    from the saddle, where it is the one-dimensional stable manifold of the uphill flow."""
    F = jax.jit(lambda z: metric(p) @ jax.grad(V)(z, p[3]) - ell(z, p))
    div = jax.jit(lambda z: jnp.trace(jax.jacfwd(lambda u: ell(u, p))(z)))
    w, vecs = np.linalg.eig(np.asarray(jax.jacfwd(F)(S)))
    e = np.real(vecs[:, np.argmin(np.real(w))])
    e = e if e[0] < 0 else -e

    def rhs(t, u):
        z = jnp.asarray(u[:2])
        return np.concatenate([-np.asarray(F(z)), [float(div(z))]])

    near_a = lambda t, u: np.linalg.norm(u[:2] - np.asarray(A)) - 1e-9
    near_a.terminal = True
    sol = solve_ivp(rhs, (0.0, 100.0), np.concatenate([1e-9 * e, [0.0]]), method="DOP853",
                    rtol=1e-11, atol=1e-13, events=near_a, dense_output=True)
    dense = sol.sol(np.linspace(0.0, sol.t[-1], 100001))[:2].T[::-1]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    u = np.linspace(0.0, 1.0, n)
    target = arc[-1] * (0.5 * (1 - np.cos(np.pi * u)) if graded else u)
    nodes = np.stack([np.interp(target, arc, dense[:, i]) for i in range(2)], axis=1)
    nodes[0], nodes[-1] = np.asarray(A), np.asarray(S)
    return jnp.asarray(nodes), float(sol.y[2, -1])


# --- Eyring–Kramers -------------------------------------------------------------------------


def _drift_1d(t, x, args):
    return -4 * x * (x**2 - 1)


def _exact_mfpt_1d(delta):
    """`T(a→b) = (1/δ) ∫_a^b e^{V(y)/δ} ∫_{−∞}^y e^{−V(z)/δ} dz dy`, V = (x² − 1)², a = −1,
    b = 1 (trapezoidal rule, exponents shifted to avoid overflow)."""
    x = np.linspace(-3.0, 1.0, 400001)
    v = (x**2 - 1) ** 2
    f = np.exp(-v / delta)
    inner = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
    m = x >= -1.0
    g = np.exp((v[m] - 1.0) / delta) * inner[m]
    return np.sum(0.5 * (g[1:] + g[:-1]) * np.diff(x[m])) / delta * math.exp(1.0 / delta)


def test_eyring_kramers_1d_against_exact_mfpt():
    # T_exact = T_EK (1 + O(δ)): the log-ratio falls like δ towards 0.
    a, s = jnp.array([-1.0]), jnp.array([0.0])
    xs = jnp.linspace(a, s, N)
    errors = []
    for B in (4.0, 8.0, 16.0, 32.0):
        delta = 1.0 / B
        system = nj.SDE(_drift_1d, jnp.asarray(delta))
        r = nj.escape_rate(system, a, s, xs, barrier=jnp.asarray(B))
        assert r.method == "eyring-kramers"
        assert float(r.divergence_integral) == 0.0
        # V''(a) = 8, V''(s) = −4: λ⁺ = 4, det ratio 2.
        assert abs(float(r.unstable_eigenvalue) - 4.0) < 1e-10
        assert abs(float(r.determinant_ratio) - 2.0) < 1e-10
        errors.append(math.log(_exact_mfpt_1d(delta) / float(r.mean_exit_time)))
    assert all(e > 0 for e in errors)
    assert all(e2 < 0.7 * e1 for e1, e2 in zip(errors[:-1], errors[1:]))
    assert errors[0] < 0.15 and errors[-1] < 0.02  # 0.133, 0.0555, 0.0290, 0.0148


def test_gradient_2d_prefactor_by_hand():
    k, delta = 1.5, 0.2
    system = sde(delta)
    r = nj.escape_rate(system, A, S, axis(), args=P(k=k))
    assert isinstance(r, nj.Rate) and r.method == "eyring-kramers"
    lam, det = 4.0, (8 * 2 * k) / (4 * 2 * k)
    assert abs(float(r.unstable_eigenvalue) - lam) < 1e-10
    assert abs(float(r.determinant_ratio) - det) < 1e-10
    # The default barrier is the discrete geometric action of the nodes: ΔV/δ + O(h²).
    assert abs(float(r.barrier) - 1.0 / delta) < 1e-3
    expected = lam / (2 * math.pi) * math.sqrt(det)
    assert abs(float(r.prefactor) / expected - 1) < 1e-10
    assert abs(float(r.rate) - expected * math.exp(-float(r.barrier))) < 1e-12
    assert abs(float(r.mean_exit_time) * float(r.rate) - 1) < 1e-12
    # Forcing Bouchet–Reygner on a gradient drift gives the same prefactor, to the accuracy
    # of the linearisation next to the attractor, O(|node 2 − a|²): 3.5e-4 for 101
    # equidistant nodes, 100 times less with nodes clustered at the ends.
    for graded, tol in ((False, 1e-3), (True, 1e-5)):
        br = nj.escape_rate(system, A, S, axis(graded=graded), args=P(k=k),
                         method="bouchet-reygner")
        assert abs(float(br.divergence_integral)) < tol
        assert abs(float(br.prefactor) / expected - 1) < tol


# --- Bouchet–Reygner ------------------------------------------------------------------------


def test_rotating_drift_zero_divergence_integral():
    p = P(gam=1.0, c0=1.0)
    xs, I_ref = reference_instanton(p)
    assert abs(I_ref) < 1e-8
    r = nj.escape_rate(sde(0.25), A, S, xs, args=p)
    assert r.method == "bouchet-reygner"
    assert abs(float(r.divergence_integral)) < 1e-3
    # The self-check: the Riccati solution reaches the saddle's own ∇²V(s).
    assert float(r.saddle_hessian_mismatch) < 1e-5
    # |λ_s|/λ⁺ = (√17 − 1)/(√17 + 1) < 1, yet V is smooth (this family is built so) and the
    # instanton enters the saddle along e: the check passes, the nodes lie on s + ℝe.
    assert abs(float(r.saddle_eigenvalue_ratio) - (math.sqrt(17) - 1) / (math.sqrt(17) + 1)) < 1e-9
    assert float(r.saddle_approach_angle) < 1e-2
    # The quasipotential is V/δ, as for the gradient drift: same determinant ratio; λ⁺ is
    # the positive eigenvalue of ∂f(s) = [[4, 2γ], [4γ, −2]].
    assert abs(float(r.determinant_ratio) - 2.0) < 1e-9
    assert abs(float(r.unstable_eigenvalue) - (1 + math.sqrt(17.0))) < 1e-9


def test_divergence_integral_closed_form_on_axis():
    # ℓ = γ y J∇V: the instanton is the x axis and ∫∇·ℓ dt = γ.
    for gam in (0.5, -0.8):
        r = nj.escape_rate(sde(0.25), A, S, axis(graded=True),
                        args=P(gam, 0.0, 1.0))
        assert r.method == "bouchet-reygner"  # ∂f is symmetric on the axis, not off it
        assert abs(float(r.divergence_integral) - gam) < 1e-5
        assert abs(float(r.determinant_ratio) - 2.0) < 1e-9
        assert abs(float(r.unstable_eigenvalue) - 4.0) < 1e-9
        expected = 4 / (2 * math.pi) * math.sqrt(2.0) * math.exp(gam)  # + sign: f = −∇V − ℓ
        assert abs(float(r.prefactor) / expected - 1) < 1e-5


def test_divergence_integral_curved_instanton():
    # The instanton leaves the axis and spirals out of the attractor (complex eigenvalues).
    p = P(gam=1.0, c0=1.0, c1=0.5)
    xs, I_ref = reference_instanton(p)
    r = nj.escape_rate(sde(0.25), A, S, xs, args=p)
    assert abs(I_ref - 0.21808) < 1e-4
    assert abs(float(r.divergence_integral) - I_ref) < 1e-3
    assert abs(float(r.determinant_ratio) - 2.0) < 1e-9


def test_anisotropic_noise():
    # D = M with f = −M∇V − ℓ: the quasipotential is still V.
    M = jnp.array([[1.2, 0.3], [0.3, 0.8]])
    p = P(gam=1.0, c0=1.0, c1=0.5, k=1.3, M=M.tolist())
    xs, I_ref = reference_instanton(p, graded=True)
    rx = nj.escape_rate(sde(1.0, M), A, S, xs, args=p, method="bouchet-reygner")
    # Barrier ΔV = 1 (the default barrier is the discrete one, O(h²)), determinant ratio
    # det ∇²V(a)/|det ∇²V(s)| = 2 in any coordinates, ∫∇·ℓ dt along φ̇ = M∇V − ℓ.
    assert abs(float(rx.barrier) - 1.0) < 2e-3
    assert abs(float(rx.determinant_ratio) - 2.0) < 1e-9
    assert abs(float(rx.divergence_integral) - I_ref) < 1e-4
    # The same problem written in y = Rᵀ L⁻¹ x (D = L Lᵀ, R a rotation: any square root of
    # D), isotropic with D = I: the same rate to round-off (the chord lengths of the nodes
    # are invariant under R).
    L = jnp.linalg.cholesky(M)
    th = 0.7
    R = jnp.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    W = L @ R  # x = W y

    def drift_y(t, y, p):
        return jnp.linalg.solve(W, drift(t, W @ y, p))

    ys = jnp.linalg.solve(W, xs.T).T
    ry = nj.escape_rate(nj.SDE(drift_y, jnp.eye(2)), ys[0], ys[-1], ys, args=p,
                     method="bouchet-reygner")
    for field in ("rate", "barrier", "unstable_eigenvalue", "determinant_ratio",
                  "divergence_integral"):
        u, v = float(getattr(rx, field)), float(getattr(ry, field))
        assert abs(u - v) <= 1e-8 * max(1.0, abs(u)), field


def test_degenerate_saddle_uses_the_instanton():
    # k = 2: ∂f(s) = [[4, 4γ], [4γ, −4]] has eigenvalues ±4√(1+γ²), so J G + G Jᵀ = −2I is
    # singular at the saddle; the Hessian comes from the Riccati solution along the path.
    p = P(gam=1.0, c0=1.0, k=2.0)
    xs, _ = reference_instanton(p)
    r = nj.escape_rate(sde(0.25), A, S, xs, args=p)
    assert abs(float(r.determinant_ratio) - 2.0) < 1e-3  # 16/8, not the Lyapunov "−J⁻¹" 1
    assert abs(float(r.unstable_eigenvalue) - 4 * math.sqrt(2)) < 1e-9
    assert abs(float(r.divergence_integral)) < 1e-3


# --- Errors ---------------------------------------------------------------------------------


def test_refuses_bad_inputs():
    system = sde(0.25)
    with pytest.raises(ValueError, match="callable"):
        nj.escape_rate(nj.SDE(drift, lambda t, x, args: 0.25 * jnp.eye(2)), A, S, axis(),
                    args=P())
    with pytest.raises(ValueError, match="not a stable fixed point"):
        nj.escape_rate(system, S, A, axis()[::-1], args=P())
    with pytest.raises(ValueError, match="not an index-1 saddle"):
        nj.escape_rate(system, A, jnp.array([1.0, 0.0]), jnp.linspace(A, jnp.array([1.0, 0.0]), N),
                    args=P())
    with pytest.raises(ValueError, match="not a fixed point"):
        nj.escape_rate(system, A, jnp.array([0.1, 0.0]), axis(), args=P())
    with pytest.raises(ValueError, match=r"uphill_xs\[0\]"):
        nj.escape_rate(system, A, S, axis()[::-1], args=P())
    with pytest.raises(ValueError, match="method"):
        nj.escape_rate(system, A, S, axis(), args=P(), method="kramers")


# --- Transformations ------------------------------------------------------------------------


def test_grad_matches_finite_differences():
    # Parameters that move the drift (rotation, its gradient, the y curvature) but not the
    # fixed points; the nodes are held fixed.
    # (The instanton of p0: on another path the Bouchet–Reygner self-check refuses it.)
    system = sde(0.25)
    p0 = P(gam=0.7, c0=1.0, c1=0.4, k=1.2)
    xs, _ = reference_instanton(p0)
    f = lambda p: nj.escape_rate(system, A, S, xs, args=p, method="bouchet-reygner").rate
    g = jax.grad(f)(p0)
    for i in (0, 2, 3):
        h = 1e-5
        fd = (f(p0.at[i].add(h)) - f(p0.at[i].add(-h))) / (2 * h)
        assert abs(float(g[i]) - float(fd)) <= 1e-6 * abs(float(fd)), i


def test_vmap_equals_loop():
    system = sde(0.25)
    ps = jnp.stack([P(), P(0.5, 1.0, 0.0), P(0.7, 1.0, 0.4, 1.2)])
    xss = jnp.stack([reference_instanton(p)[0] for p in ps])  # each p's own instanton
    batched = lambda s: jax.vmap(
        lambda p, xs: nj.escape_rate(system, A, s, xs, args=p)
    )(ps, xss)
    batch = batched(S)
    assert batch.method == "bouchet-reygner"  # "auto" cannot choose under vmap
    assert bool(jnp.all(jnp.isfinite(batch.rate)))
    for i, p in enumerate(ps):
        one = nj.escape_rate(system, A, S, xss[i], args=p)
        assert one.method == ("eyring-kramers" if i == 0 else "bouchet-reygner")
        for field in ("rate", "prefactor", "divergence_integral", "determinant_ratio"):
            u, v = float(getattr(batch, field)[i]), float(getattr(one, field))
            assert abs(u - v) <= 1e-10 * max(1.0, abs(v)), (i, field)
    # Under a transformation the input checks are runtime errors (`eqx.error_if`).
    with pytest.raises(Exception, match="saddle"):
        jax.block_until_ready(batched(jnp.array([1.0, 0.0])).rate)


# --- A small simulation: the sign of the divergence term -------------------------------------


@eqx.filter_jit
def _mean_exit_time(key, p, delta, dt, n_paths: int, n_steps: int):
    """Euler–Maruyama paths from a to x ≥ 1 (absorbed there), censored at n_steps·dt:
    the maximum-likelihood mean of an exponential exit time."""
    field = jax.vmap(drift, in_axes=(None, 0, None))

    def step(carry, k):
        z, tau = carry
        live = (z[:, 0] < 1.0).astype(z.dtype)
        dW = jax.random.normal(k, z.shape, z.dtype)
        z = z + live[:, None] * (field(0.0, z, p) * dt + jnp.sqrt(2 * delta * dt) * dW)
        return (z, tau + live * dt), None

    z0 = jnp.broadcast_to(A, (n_paths, 2))
    (z, tau), _ = jax.lax.scan(step, (z0, jnp.zeros(n_paths)), jax.random.split(key, n_steps))
    return jnp.sum(tau) / jnp.sum(z[:, 0] >= 1.0), jnp.sum(z[:, 0] >= 1.0)


def test_simulation_fixes_the_sign_of_the_divergence_term():
    # ∫∇·ℓ = γ = 0.8 on the axis: with f = −∇V − ℓ the rate carries exp(+0.8); the other
    # sign would predict an exit time e^1.6 ≈ 5 times longer. At barrier 3.5 the small-noise
    # formula is ~20% off for this quartic well, Euler–Maruyama at dt = 0.02 adds a few %,
    # and 500 paths give ±5%: a generous bound still separates the two signs (log-ratios
    # ≈ 0.2 and ≈ −1.4).
    B = 3.5
    p = P(0.8, 0.0, 1.0)
    r = nj.escape_rate(sde(1 / B), A, S, axis(), args=p, barrier=jnp.asarray(B))
    T_pred = float(r.mean_exit_time)
    dt = 0.02
    T_sim, exits = _mean_exit_time(jax.random.key(0), p, 1 / B, dt, 500,
                                   int(1.5 * T_pred / dt))
    assert int(exits) > 300
    assert -0.2 < math.log(float(T_sim) / T_pred) < 0.45


def test_bouchet_reygner_self_check_refuses_an_untrusted_integral():
    """A 2-unit CTRNN `f = −x + W tanh(x) + b` with a weak rotation in `W`: along its
    instanton the Riccati solution for ∇²V does not reach the saddle's own ∇²V(s) (a 5%
    mismatch; the divergence integral, −1.4 / −2.0 / −2.4 at 101 / 201 / 401 nodes, does
    not converge, and simulation (examples/RATES.md) rejects the resulting rate by e^3–e^4).
    The rate is then NaN, not a number that looks right; without rotation (gradient) the
    same path passes the check.

    The cause is not the integration: `μ = |λ_s|/λ⁺ ≈ 0.62 < 1` at the saddle, and the
    instanton enters it tangent to its stable manifold (Maier & Stein 1997; module
    docstring of `_rates.py`), so `∇²V(s)` is never reached and `∫∇·ℓ dt` has no limit.
    An independent SciPy shooting of Hamilton's equations from the attractor (angle
    bisection, DOP853 at rtol 1e-12) shows the same approach as the solver's nodes checked
    here: writing `y − s = c_e e + c_w w` (`e` the direction of a C² quasipotential, `w`
    the stable eigenvector of `∂f(s)`), `c_w ∝ |c_e|^μ`: the deterministic decay into the
    saddle at the rate `|λ_s|`, slower than `λ⁺` (for `b = (0.1, 0.05)`, the leg into the
    saddle near `(−0.10, −2.42)`: the shooting's `c_w/c_e` is −0.94 at `dist = 6·10⁻³`,
    −1.6 at `2·10⁻³`; the network's 101 nodes −1.0 at `5·10⁻³`, −1.6 at `2·10⁻³`)."""
    b = jnp.array([0.1, 0.05])
    drift_c = lambda t, x, W: -x + W @ jnp.tanh(x) + b
    system = nj.SDE(drift_c, 1.0)

    def root(x, W):
        for _ in range(40):
            x = x - jnp.linalg.solve(jax.jacfwd(lambda y: drift_c(0, y, W))(x), drift_c(0, x, W))
        return x

    for g, trusted in ((0.0, True), (0.005, False), (0.05, False)):
        W = jnp.array([[2.5, -g], [g, 2.5]])
        a, s = root(jnp.array([2.4, 2.4]), W), root(jnp.array([2.5, 0.0]), W)
        sol = nj.minimize_geometric_action(system, a, s, args=W, n_nodes=101)
        r = nj.escape_rate(system, a, s, sol.xs, args=W, method="bouchet-reygner")
        m = float(r.saddle_hessian_mismatch)
        if trusted:
            assert m < 1e-5 and math.isfinite(float(r.rate))
            assert float(r.saddle_approach_angle) < 1e-6
        elif g < 0.01:
            # A weak rotation passes the 1% Riccati check on this coarse grid (0.83%; the
            # mismatch grows under refinement), and the approach angle (0.16 rad) refuses it.
            assert 5e-3 < m < 1e-2 and float(r.saddle_approach_angle) > 0.1
            assert math.isnan(float(r.rate)) and "Maier & Stein" in rate_failure(r)
        else:
            assert m > 2e-2
            assert math.isnan(float(r.rate)) and math.isnan(float(r.prefactor))
            mu = float(r.saddle_eigenvalue_ratio)
            assert 0.6 < mu < 0.65
            assert float(r.saddle_approach_angle) > 1.0  # ≈ 74°
            # The nodes' components along e and w: c_w ∝ |c_e|^μ near the saddle.
            J = np.asarray(jax.jacfwd(lambda y: drift_c(0, y, W))(s))
            Q = np.linalg.inv(scipy.linalg.solve_continuous_lyapunov(J, -2 * np.eye(2)))
            wm, Um = np.linalg.eig(J + 2 * Q)
            wj, Uj = np.linalg.eig(J)
            basis = np.stack([np.real(Um[:, np.argmin(wm.real)]),
                              np.real(Uj[:, np.argmin(wj.real)])], axis=1)
            c = np.linalg.solve(basis, (np.asarray(sol.xs) - np.asarray(s)).T)
            dist = np.linalg.norm(np.asarray(sol.xs) - np.asarray(s), axis=1)
            near = (dist > 1e-3) & (dist < 5e-2)
            slope = np.polyfit(np.log(np.abs(c[0, near])), np.log(np.abs(c[1, near])), 1)[0]
            assert near.sum() >= 5 and abs(slope - mu) < 0.1
            assert "Maier & Stein" in rate_failure(r)
