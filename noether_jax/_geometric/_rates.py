r"""Escape rates with their prefactors: Eyring–Kramers and Bouchet–Reygner.

Conventions (docs/conventions.md): `dx = f(x) dt + sqrt(2D) dW` with constant `D`, action
`S = ∫ ¼ (ẋ − f)ᵀ D⁻¹ (ẋ − f) dt`. The rate of escape from an attractor `a` over an index-1
saddle `s` is, as the noise goes to zero,

$$k = \frac{λ^+}{2π}\,\sqrt{\frac{\det ∇^2 V(a)}{|\det ∇^2 V(s)|}}\;
      e^{+\int ∇\cdot \ell\,dt}\; e^{-ΔS}.$$

Everything is computed in the whitened coordinates `y = D^{-1/2} x` (drift
`g(y) = D^{-1/2} f(D^{1/2} y)`, noise `sqrt(2) dW`, i.e. `δ = 1`), where the quasipotential
`V` is the barrier function of our action itself (`V = U`, `ΔS = V(s) − V(a)`). The prefactor
is invariant under this change of variables: `λ⁺` (an eigenvalue of `∂f(s)`), the ratio of
determinants and `∫∇·ℓ dt` do not change; only the barrier `ΔS` carries the noise level.

- `λ⁺`: the positive eigenvalue of `∂f(s)`.
- `∇²V`: the Hessian of the quasipotential. At a fixed point with Jacobian `J` (in `y`) it
  is `G⁻¹`, where `G` solves the Lyapunov equation `J G + G Jᵀ = −2I` (the second-order
  part of the Hamilton–Jacobi equation `|∇V|² + g·∇V = 0`, multiplied by `G` on both
  sides). At the attractor `G` is the covariance of the linearised process per unit noise;
  for a gradient drift `g = −∇V`, `G = (∇²V)⁻¹` at both points.
- `ℓ`: the transverse part of the drift, `g = −∇V − ℓ` with `∇V·ℓ = 0`. Along the uphill
  instanton `ẏ = ∇V − ℓ = g + 2p` (`p = ∇V` the momentum), so `ℓ` and `∇V` are known there
  from the instanton itself, and `∇·ℓ = −∇·g − ΔV`.

**The sign of the divergence term.** With `f = −∇V − ℓ` the prefactor carries
`exp(+∫∇·ℓ dt)`. (Bouchet & Reygner, Ann. Henri Poincaré 17 (2016), write the drift as
`−∇V + ℓ`, hence their `exp(−∫∇·ℓ dt)`: their `ℓ` is the opposite of ours.)
Derivation: the quasi-stationary density in the basin is `C(y) e^{−V/δ}` with the transport
equation `(∇V − ℓ)·∇C = C ∇·ℓ`, i.e. `d log C/dt = ∇·ℓ` along the uphill instanton, and the
rate is the Eyring–Kramers rate times `C(s)/C(a)`. Direct simulation confirms it
(`examples/rates_vs_simulation.py`, record in `examples/RATES.md`): with `∫∇·ℓ dt ≈ 0.69`
the simulated exit times agree with `exp(+∫)` within their 2.5% standard errors at three
noise levels, and the other sign is off by a factor ≈ 4 (55 standard errors).

**The Hessian along the instanton** (Bouchet–Reygner) solves the matrix Riccati equation of
the Hamilton–Jacobi equation along the characteristic `ẏ = g + 2p`,

$$\dot Q = -\textstyle\sum_k p_k ∇^2 g_k - J^\top Q - Q J - 2 Q^2,$$

from the attractor. It is integrated along the cubic Hermite curve through the nodes, in its
arclength `σ`, with `dt = dσ/|g|` (on the instanton `|ẏ| = |g|`, because
`H = |p|² + g·p = 0`), in the logistic variable `τ = logit(σ/L)` that resolves the infinite
times spent near both ends (fixed-step RK4, node-aligned). Next to the attractor (up to the
second node) the linearisation replaces the nodes: `Q ≈ ∇²V(a) + ∇³V(a)·δ` with `∇³V(a)`
from the third derivative of the Hamilton–Jacobi equation, and the uphill flow `δ̇ = Mδ`
gives that piece of the integral in closed form (an attractor with complex eigenvalues
makes the instanton spiral out of it on scales no node spacing resolves). Near the saddle
the Riccati flow is unstable along the instanton's tangent `v` (errors grow like
`dist(y, s)^{−2}`); the exact identity `Q ẏ = ṗ = −Jᵀp` fixes that column, and a
relaxation term `−κ (c vᵀ + v cᵀ)`, `c = Q v + Jᵀp/|g|` (zero on the exact solution), holds
the Riccati solution to it.

**Where the formula does not apply** (Maier & Stein, SIAM J. Appl. Math. 57 (1997) 752).
The formula assumes `V` is `C²` at the saddle, so that the instanton enters `s` along `e`
(the eigenvector of `M = J + 2∇²V(s)` with eigenvalue `−λ⁺`). Near `(s, p = 0)` the
instanton lies on the stable manifold of Hamilton's equations, whose linearisation has the
decay rates `λ⁺` (along `e`, `p = ∇²V(s) δ`) and `μλ⁺ = |λ_s|`, `λ_s` the stable
eigenvalues of `∂f(s)` (along their eigenvectors, `p = 0`: the deterministic flow inside the
basin boundary). If `μ = |λ_s|/λ⁺ < 1` the `p = 0` direction is the slow one, and a
non-gradient instanton generically has a component along it: it enters the saddle *tangent
to the basin boundary*, the Hessian of `V` along it does not tend to `∇²V(s)` (in 2-D,
towards `0`: the tangent plane of the Lagrangian manifold tends to `p = 0`), and
`∫∇·ℓ dt` diverges (then like `(λ_s + λ⁺)/|λ_s| · log dist(y, s)`): the Eyring and
Bouchet–Reygner prefactors are then not the small-noise limit of the rate. (Only special
drifts, e.g. `−(I + γJ)∇V`, whose instanton is `e`'s own strong-stable curve, escape this
for `μ < 1`; for `μ > 1` the generic instanton enters along `e`.) The self-check refuses
such a leg, and `Rate.saddle_eigenvalue_ratio` (`μ`) and `Rate.saddle_approach_angle` (how
far the instanton's last node lies from the line `s + ℝe`) say why. Measured on the
2-unit CTRNN of `examples/network_rates_vs_simulation.py` (`μ ≈ 0.61`–`0.63` at all four
saddles): an independent SciPy shooting of Hamilton's equations from the attractor gives a
component along the stable eigenvector of `∂f(s)` decaying at `|λ_s|`, not `λ⁺`, equal to
the `e` component at `dist ≈ 6·10⁻³` and twice it at `10⁻³`; the geometric solver's own
nodes agree (`1.0` and `1.6`–`2.7` times), and `∫∇·ℓ dt` falls by `≈ 0.35` per `e`-fold
of `dist` there with no limit.
"""

import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .._sde import (
    SDE,
    as_count,
    as_endpoints,
    as_real_array,
    float_args_as_arrays,
    is_concrete,
)
from ._fixed_points import classify_fixed_point
from ._gmam import geometric_action_of

_METHODS = ("auto", "eyring-kramers", "bouchet-reygner")
# The linearisation at the attractor covers the instanton up to this node, or this fraction
# of its (whitened chord) length if that comes first.
_HEAD_NODE = 2
_HEAD_FRACTION = 0.02
# The largest relative mismatch between the Riccati solution next to the saddle and the
# saddle's own `∇²V(s)` that is accepted (see `Rate.saddle_hessian_mismatch`). Measured:
# at most 7e-5 on the rotating test families of tests/test_rates.py (whose integrals agree
# with an independent SciPy integration), 3-6% on the 2-unit CTRNN of
# examples/network_rates_vs_simulation.py with any rotation. There the instanton enters
# the saddle tangent to its stable manifold (|λ_s|/λ⁺ ≈ 0.62 < 1, see "Where the formula
# does not apply" in the module docstring), ∇²V(s) is not reached and ∫∇·ℓ dt diverges.
RICCATI_CHECK = 1e-2
# The largest angle (radians) between the instanton's last chord and the approach direction
# `e` accepted when `|λ_s|/λ⁺ < 1` (see `Rate.saddle_approach_angle`). Measured: below 1e-2
# on the rotating test families (μ ≈ 0.61, entering along `e`); 0.33-1.5 (19°-86°) on the
# CTRNN legs of examples/network_rates_vs_simulation.py at 101-401 nodes.
APPROACH_CHECK = 0.1


class Rate(eqx.Module):
    r"""The escape rate from an attractor over an index-1 saddle, and its parts.

    $$k = \underbrace{\frac{λ^+}{2π}\sqrt{\frac{\det ∇^2V(a)}{|\det ∇^2V(s)|}}\,
          e^{\int ∇\cdot\ell\,dt}}_{\texttt{prefactor}}\; e^{-\texttt{barrier}}$$

    (docs/conventions.md units: `dx = f dt + sqrt(2D) dW`, `V` the quasipotential in the whitened
    coordinates `y = D^{-1/2} x`, `f = −∇V − ℓ` there with `∇V·ℓ = 0`).

    **Attributes:**

    - `rate`: `k`, per unit time of the SDE.
    - `prefactor`: `k·exp(barrier)`.
    - `barrier`: `ΔS`, the geometric action from the attractor to the saddle (the
      quasipotential barrier at the SDE's own noise level).
    - `unstable_eigenvalue`: `λ⁺`, the positive eigenvalue of `∂f` at the saddle.
    - `determinant_ratio`: `det ∇²V(a) / |det ∇²V(s)|`, Hessians of the quasipotential in
      whitened coordinates (for a gradient drift `f = −D∇V` with `D = δI`:
      `det ∇²V(a)/|det ∇²V(s)|` of the potential itself).
    - `divergence_integral`: `∫ ∇·ℓ dt` along the uphill instanton from `a` to `s`
      (`0` for gradient drifts and for `ℓ = γJ∇V` with constant antisymmetric `J`).
    - `saddle_hessian_mismatch`: Bouchet–Reygner's self-check, `max|Q(s⁻) − ∇²V(s)| /
      max|∇²V(s)|`: the Riccati solution for `∇²V` integrated along the instanton from the
      attractor, next to the saddle, against `∇²V(s)` from the saddle's own Lyapunov
      equation (`0` for Eyring–Kramers and for a saddle with eigenvalues `±λ⁺`, where the
      Lyapunov equation is singular). Above `RICCATI_CHECK` (1%) the integration is not
      trusted and `rate`, `prefactor`, `divergence_integral` are NaN; so they are when
      `saddle_eigenvalue_ratio < 1` and `saddle_approach_angle > APPROACH_CHECK` (0.1 rad),
      where the formula does not apply.
    - `saddle_eigenvalue_ratio`: `μ = min_j |Re λ_j| / λ⁺` over the stable eigenvalues
      `λ_j` of `∂f(s)` (`inf` in 1-D). For a non-gradient drift with `μ < 1` the instanton
      generically enters the saddle tangent to its stable manifold, `V` is not `C²` there
      and the formula does not apply (module docstring, "Where the formula does not
      apply"); the self-check then fails.
    - `saddle_approach_angle`: the angle (radians, in whitened coordinates) between the
      chord from the saddle to the last interior node of `uphill_xs` and the direction
      `±e` along which a `C²` quasipotential's instanton enters the saddle. Small (`O` of
      the node's distance) where the formula applies; `1.26`–`1.38` (72°–79°) on the CTRNN
      legs of `examples/network_rates_vs_simulation.py` (`g = 0.05`, 101 nodes). `0` for a
      degenerate saddle.
    - `method`: `"eyring-kramers"` (`divergence_integral = 0`) or `"bouchet-reygner"`.
    - `mean_exit_time`: `1/rate`.
    """

    rate: Float[Array, ""]
    prefactor: Float[Array, ""]
    barrier: Float[Array, ""]
    unstable_eigenvalue: Float[Array, ""]
    determinant_ratio: Float[Array, ""]
    divergence_integral: Float[Array, ""]
    saddle_hessian_mismatch: Float[Array, ""]
    saddle_eigenvalue_ratio: Float[Array, ""]
    saddle_approach_angle: Float[Array, ""]
    method: str = eqx.field(static=True)

    @property
    def mean_exit_time(self) -> Float[Array, ""]:
        """`1/rate`: the mean time to leave the attractor's basin over this saddle."""
        return 1.0 / self.rate


# ---------------------------------------------------------------------------------------------
# Whitening: y = D^{-1/2} x (Cholesky factor for a full D), so that the noise is sqrt(2) dW.


def _whitening(D: Array):
    if D.ndim < 2:
        root = jnp.sqrt(D)
        return (lambda x: x / root), (lambda y: y * root)
    chol = jnp.linalg.cholesky(D)
    to_y = lambda x: jax.scipy.linalg.solve_triangular(chol, x, lower=True)
    return to_y, (lambda y: chol @ y)


def _whitened_drift(sde: SDE, args, D: Array):
    to_y, to_x = _whitening(D)
    # Cast: a drift that promotes (float64 constants inside) must not change the state's
    # dtype, or the Riccati integration's carry would.
    return lambda y: to_y(sde.f(jnp.zeros((), y.dtype), to_x(y), args)).astype(y.dtype), to_y


# ---------------------------------------------------------------------------------------------
# Linear algebra at the fixed points.


def _lyapunov(J: Float[Array, "d d"]) -> tuple[Float[Array, "d d"], Bool[Array, ""]]:
    """`G` with `J G + G Jᵀ = −2I`, by the eigendecomposition `J = V Λ V⁻¹`
    (`G = V Y Vᵀ`, `Y_ij = (V⁻¹(−2I)V⁻ᵀ)_ij / (λ_i + λ_j)`).

    The decomposition is not differentiated (JAX has no derivative of non-symmetric
    eigenvectors); one refinement step `G = G₀ + L⁻¹(−2I − J G₀ − G₀ Jᵀ)` with `G₀` held
    constant has the exact first derivative `dG = L⁻¹(−dJ G − G dJᵀ)`. A pair with
    `λ_i + λ_j = 0` (a saddle with `λ⁺ = −λ_j`, common in symmetric examples) leaves the
    equation singular: that component is set to 0, which gives `G = −J⁻¹` for symmetric `J`
    (right for a gradient drift), and the second output says so (for a non-gradient drift
    the right solution is then selected by the instanton: see `_parts`)."""
    d = J.shape[0]
    w, V = jnp.linalg.eig(jax.lax.stop_gradient(J))
    Vinv = jnp.linalg.inv(V)
    denom = w[:, None] + w[None, :]
    scale = jnp.max(jnp.abs(w))
    ok = jnp.abs(denom) > 1e3 * jnp.finfo(J.dtype).eps * scale
    safe = jnp.where(ok, denom, 1.0)

    def solve(C):
        Ct = Vinv @ C.astype(V.dtype) @ Vinv.T
        return jnp.real(V @ jnp.where(ok, Ct / safe, 0.0) @ V.T).astype(J.dtype)

    C = -2.0 * jnp.eye(d, dtype=J.dtype)
    G0 = jax.lax.stop_gradient(solve(C))
    G = G0 + solve(C - J @ G0 - G0 @ J.T)
    return 0.5 * (G + G.T), ~jnp.all(ok)


def _approach_direction(J, G, lam, toward) -> Float[Array, " d"]:
    """The direction `e` along which the uphill instanton enters the saddle: the eigenvector
    of `M = J + 2∇²V(s)` with eigenvalue `−λ⁺`. Since `∇²V(s) M = −Jᵀ ∇²V(s)`, `e = G w` with
    `Jᵀ w = λ⁺ w` (the left unstable eigenvector of `J`). `w` from a bordered system, so it
    is differentiable; `e` is a unit vector with `e·toward > 0`."""
    d = J.shape[0]
    w_all, W = jnp.linalg.eig(jax.lax.stop_gradient(J.T))
    w0 = jnp.real(W[:, jnp.argmax(jnp.real(w_all))]).astype(J.dtype)
    w0 = w0 / jnp.linalg.norm(w0)
    A = jnp.block([[J.T - lam * jnp.eye(d, dtype=J.dtype), w0[:, None]],
                   [w0[None, :], jnp.zeros((1, 1), J.dtype)]])
    rhs = jnp.zeros((d + 1,), J.dtype).at[d].set(1.0)
    w = jnp.linalg.solve(A, rhs)[:d]
    e = G @ w
    e = e / jnp.linalg.norm(e)
    return jnp.where(jnp.dot(e, toward) < 0, -e, e)


def _is_symmetric(Js: Float[Array, "k d d"]) -> Bool[Array, ""]:
    """Whether every Jacobian is symmetric to `√ε` of the largest entry (a gradient drift
    in whitened coordinates)."""
    tol = jnp.sqrt(jnp.finfo(Js.dtype).eps) * jnp.max(jnp.abs(Js))
    return jnp.max(jnp.abs(Js - jnp.swapaxes(Js, -1, -2))) <= tol


# ---------------------------------------------------------------------------------------------
# The instanton as a C¹ curve: cubic Hermite interpolation in its (whitened) chord length.


def _node_tangents(ys, sig, end_tangent):
    """Unit tangents at the nodes: 3-point (second-order, non-uniform) differences inside,
    a one-sided parabola at the attractor, the exact approach direction at the saddle."""
    h = sig[1:] - sig[:-1]
    h0, h1 = h[:-1, None], h[1:, None]
    ym, y0, yp = ys[:-2], ys[1:-1], ys[2:]
    inner = (-h1 / (h0 * (h0 + h1))) * ym + ((h1 - h0) / (h0 * h1)) * y0 + (
        h0 / (h1 * (h0 + h1))
    ) * yp
    a0, a1 = h[0], h[1]
    first = (
        -(2 * a0 + a1) / (a0 * (a0 + a1)) * ys[0]
        + (a0 + a1) / (a0 * a1) * ys[1]
        - a0 / (a1 * (a0 + a1)) * ys[2]
    )
    m = jnp.concatenate([first[None], inner, end_tangent[None]], axis=0)
    return m / jnp.linalg.norm(m, axis=-1, keepdims=True)


def _hermite_on(ys, ms, sig, k, s):
    """Position and derivative `dy/dσ` of the cubic Hermite curve at chord length `s`, on
    segment `k` (from node `k` to node `k + 1`)."""
    h = sig[k + 1] - sig[k]
    u = (s - sig[k]) / h
    u2, u3 = u * u, u * u * u
    y = (
        (2 * u3 - 3 * u2 + 1) * ys[k]
        + (u3 - 2 * u2 + u) * h * ms[k]
        + (-2 * u3 + 3 * u2) * ys[k + 1]
        + (u3 - u2) * h * ms[k + 1]
    )
    dy = (
        (6 * u2 - 6 * u) * ys[k]
        + (3 * u2 - 4 * u + 1) * h * ms[k]
        + (-6 * u2 + 6 * u) * ys[k + 1]
        + (3 * u2 - 2 * u) * h * ms[k + 1]
    ) / h
    return y, dy


# ---------------------------------------------------------------------------------------------
# ∫ ∇·ℓ dt along the uphill instanton.


def _third_derivatives(g, ya, Qa, Ja):
    """`T = ∇³V(a)` from the third derivative of the Hamilton–Jacobi equation at the
    attractor: `Σ_l (M_li T_ljk + M_lj T_ilk + M_lk T_ijl) = −S_ijk`, with `M = J + 2∇²V`
    (the uphill flow's Jacobian, eigenvalues of positive real part) and
    `S_ijk = Σ_l (∂_ij g_l Q_lk + ∂_ik g_l Q_lj + ∂_jk g_l Q_li)`. Solved in the eigenbasis of
    `M` (denominators `μ_a + μ_b + μ_c`), with one refinement step for the derivative."""
    Hg = jax.jacfwd(jax.jacfwd(g))(ya)  # [l, i, j] = ∂_i ∂_j g_l
    S = jnp.einsum("lij,lk->ijk", Hg, Qa)
    S = S + jnp.transpose(S, (0, 2, 1)) + jnp.transpose(S, (2, 1, 0))
    Mt = (Ja + 2.0 * Qa).T
    w, U = jnp.linalg.eig(jax.lax.stop_gradient(Mt))
    Ui = jnp.linalg.inv(U)
    den = w[:, None, None] + w[None, :, None] + w[None, None, :]

    def solve(R):
        Rt = jnp.einsum("ai,bj,ck,ijk->abc", Ui, Ui, Ui, R.astype(U.dtype)) / den
        return jnp.real(jnp.einsum("ia,jb,kc,abc->ijk", U, U, U, Rt)).astype(R.dtype)

    def op(T):
        return (
            jnp.einsum("il,ljk->ijk", Mt, T)
            + jnp.einsum("jl,ilk->ijk", Mt, T)
            + jnp.einsum("kl,ijl->ijk", Mt, T)
        )

    T0 = jax.lax.stop_gradient(solve(-S))
    return T0 + solve(-S - op(T0))


def _divergence_integral(g, ys, Qa, Ja, Js, Gs, lam, degenerate, substeps, last_substeps):
    """`∫ ∇·ℓ dt = ∫ (−∇·g − tr Q) dσ/|g|` along the instanton `ys` (whitened nodes, from
    the attractor to the saddle). Returns `(integral, ok)`.

    - From the attractor to the cut `σ_c = min(σ(node 2), 0.02 L)`: the linearisation.
      There `Q ≈ Q_a + T·δ`
      (`δ = y − a`, `T = ∇³V(a)`), so `∇·ℓ ≈ b·δ` with `b = −∇(∇·g)(a) − tr₁₂ T`, and the
      uphill flow is `δ̇ = M δ`: the piece is `∫_{−∞} b·e^{M(t−t_c)}δ_c dt = bᵀ M⁻¹ δ_c`,
      exact to `O(|δ_c|²)`. Needed because next to a spiral attractor (complex eigenvalues
      of `M`, typical of non-gradient drifts) the instanton winds round `a` on scales the
      nodes do not resolve, which an integral along the nodes gets wrong at `O(h)`. Its
      error is `O(|δ_c|²)`: the cap `0.02 L` keeps it small on coarse node sets.
    - From there to the saddle: the stabilised Riccati equation in `τ = logit(σ/L)`, along
      the cubic Hermite curve through the nodes, from `Q_c = Q_a + T·δ_c`; its value next
      to the saddle is returned too (`∇²V(s) + O(dist)`).
    """
    dtype = ys.dtype
    seg = jnp.linalg.norm(ys[1:] - ys[:-1], axis=-1)
    sig = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(seg)])
    L = sig[-1]
    # The exact direction into the saddle needs `∇²V(s)`; where the Lyapunov equation does
    # not give it (degenerate saddle), the one-sided parabola through the last nodes.
    h0, h1 = seg[-1], seg[-2]
    e_fit = (
        (2 * h0 + h1) / (h0 * (h0 + h1)) * ys[-1]
        - (h0 + h1) / (h0 * h1) * ys[-2]
        + h0 / (h1 * (h0 + h1)) * ys[-3]
    )
    e_fit = e_fit / jnp.linalg.norm(e_fit)
    e = jnp.where(degenerate, e_fit, _approach_direction(Js, Gs, lam, ys[-1] - ys[-2]))
    ms = _node_tangents(ys, sig, e)
    kappa = 2.0 * lam

    # The attractor's end, by the linearisation.
    ya = ys[0]
    T = _third_derivatives(g, ya, Qa, Ja)
    grad_div = jax.grad(lambda y: jnp.trace(jax.jacfwd(g)(y)))(ya)
    b = -grad_div - jnp.einsum("iik->k", T)
    n = ys.shape[0]
    s_c = jnp.minimum(sig[min(_HEAD_NODE, n - 2)], _HEAD_FRACTION * L)
    k_c = jnp.clip(jnp.searchsorted(sig, s_c, side="right") - 1, 0, n - 2)
    delta_c = _hermite_on(ys, ms, sig, k_c, s_c)[0] - ya
    head = jnp.dot(b, jnp.linalg.solve(Ja + 2.0 * Qa, delta_c))
    Qc = Qa + jnp.einsum("ijk,k->ij", T, delta_c)
    Qc = 0.5 * (Qc + Qc.T)

    # The grid in τ: every interval between nodes cut into `substeps` equal steps, the
    # last one (from the last node before the saddle to 1% of the last segment before it,
    # a stretch of log(100) ≈ 4.6 in τ whatever the node spacing) into `last_substeps`;
    # the intervals (or parts) before the cut have zero width. Node-aligned, so no step
    # straddles a node (where the curve's second derivative jumps), and the counts are
    # static whatever the node distribution.
    tail = 0.01
    tau_c = jnp.log(s_c / (L - s_c))
    tau_k = jnp.log(sig[1:-1] / (L - sig[1:-1]))
    tau_end = jnp.log((L - tail * seg[-1]) / (tail * seg[-1]))
    knots = jnp.concatenate([tau_c[None], jnp.maximum(tau_k, tau_c), tau_end[None]])
    counts = [substeps] * (n - 2) + [last_substeps]
    frac = jnp.concatenate([jnp.arange(c, dtype=dtype) / c for c in counts])
    segment = jnp.asarray([i for i, c in enumerate(counts) for _ in range(c)])  # static
    t_lo = knots[segment] + frac * (knots[segment + 1] - knots[segment])
    t_hi = jnp.concatenate([t_lo[1:], knots[-1:]])

    def local(k, tau, Q):
        sg = jax.nn.sigmoid(tau)
        s = L * sg
        # On its own segment, and never before the cut (zero-width steps evaluate there).
        s = jnp.clip(s, jnp.maximum(sig[k], s_c), sig[k + 1])
        y, dy = _hermite_on(ys, ms, sig, k, s)
        speed = jnp.linalg.norm(dy)  # the chord length is not exactly the arclength
        v = dy / speed
        gy = g(y)
        J = jax.jacfwd(g)(y)
        ng = jnp.linalg.norm(gy)
        p = 0.5 * (ng * v - gy)  # ẏ = |g| v = g + 2p on the instanton
        dt_ds = speed / ng
        div_l = -jnp.trace(J) - jnp.trace(Q)
        return s, y, v, J, p, ng, dt_ds, div_l

    def rhs(k, tau, state):
        Q, _ = state
        s, y, v, J, p, ng, dt_ds, div_l = local(k, tau, Q)
        # Σ_k p_k ∇²g_k: the Hessian of y ↦ p·g(y) with p frozen.
        K = jax.hessian(lambda z: jnp.dot(p, g(z)))(y)
        R = -K - J.T @ Q - Q @ J - 2.0 * Q @ Q
        # Relax toward Q ẏ = ṗ = −Jᵀp, which holds on the exact solution; only where it
        # is needed (near the saddle, where the Riccati flow is unstable along v).
        c = Q @ v + (J.T @ p) / ng
        w = kappa * (s / L) ** 2
        R = R - w * (jnp.outer(c, v) + jnp.outer(v, c))
        R = 0.5 * (R + R.T)
        dt_dtau = L * jax.nn.sigmoid(tau) * jax.nn.sigmoid(-tau) * dt_ds
        return (R * dt_dtau, div_l * dt_dtau)

    # Classical RK4 with fixed steps (the result is a smooth function of the parameters).
    # Its stages run as a scan, so the vector field is traced and compiled once.
    c_st = jnp.asarray([0.0, 0.5, 0.5, 1.0], dtype)
    w_st = jnp.asarray([1.0, 2.0, 2.0, 1.0], dtype) / 6
    add = lambda st, dst, c: jax.tree.map(lambda u, du: u + c * du, st, dst)

    def step(state, inp):
        t0, t1, k = inp
        hh = t1 - t0

        def stage(carry, cw):
            prev, acc = carry
            c, w = cw
            kk = rhs(k, t0 + c * hh, add(state, prev, c * hh))
            return (kk, add(acc, kk, w)), None

        zero = jax.tree.map(jnp.zeros_like, state)
        (_, inc), _ = jax.lax.scan(stage, (zero, zero), (c_st, w_st))
        return add(state, inc, hh), None

    (Q1, I), _ = jax.lax.scan(
        step, (Qc, jnp.zeros((), dtype)), (t_lo, t_hi, jnp.asarray(segment))
    )
    # The saddle's end: the integrand per unit arclength tends to a constant there.
    s1, *_, dt1, div1 = local(n - 2, knots[-1], Q1)
    I = head + I + div1 * dt1 * (L - s1)
    ok = jnp.isfinite(I) & jnp.all(jnp.isfinite(Q1))
    return I, Q1, ok


# ---------------------------------------------------------------------------------------------
# The computation.


def _parts(sde, a, s, xs, args, barrier, method: str, substeps, probe_key):
    """Everything but the error handling. `method`: "eyring-kramers", "bouchet-reygner" or
    "switch" (both, the divergence term zeroed where the drift is gradient)."""
    dtype = a.dtype
    D = jnp.asarray(sde.D(jnp.zeros((), dtype), a, args), dtype)
    g, to_y = _whitened_drift(sde, args, D)
    ya, ys_ = to_y(a), to_y(s)
    ys = jax.vmap(to_y)(xs).at[0].set(ya).at[-1].set(ys_)

    fa = classify_fixed_point(sde, a, args)
    fs = classify_fixed_point(sde, s, args)
    lam = jnp.real(fs.eigenvalues[0]).astype(dtype)
    Ja, Js = jax.jacfwd(g)(ya), jax.jacfwd(g)(ys_)
    (Ga, _), (Gs, degenerate) = _lyapunov(Ja), _lyapunov(Js)
    # det ∇²V(a) / |det ∇²V(s)| = |det G(s)| / det G(a).
    _, logdet_a = jnp.linalg.slogdet(Ga)
    _, logdet_s = jnp.linalg.slogdet(Gs)
    det_ratio = jnp.exp(logdet_s - logdet_a)
    if barrier is None:
        barrier = geometric_action_of(sde, xs, args)
    barrier = jnp.asarray(barrier, dtype)

    # Gradient drift in whitened coordinates ⇔ symmetric ∂g everywhere; tested at the two
    # points, at the nodes and at the nodes moved off the path (a drift whose rotation
    # vanishes on the instanton is symmetric along it, e.g. ℓ = γ y J∇V on the x axis).
    extent = jnp.max(jnp.abs(ys - ya))
    offsets = 0.05 * extent * jax.random.normal(probe_key, ys.shape, dtype)
    probes = jnp.concatenate([ys, ys + offsets], axis=0)
    sym = _is_symmetric(jnp.concatenate([Ja[None], Js[None], jax.vmap(jax.jacfwd(g))(probes)]))

    ratio, angle = _saddle_diagnostics(Js, Gs, lam, degenerate, ys)
    ok = jnp.array(True)
    mismatch = jnp.zeros((), dtype)
    if method == "eyring-kramers":
        div = jnp.zeros((), dtype)
    else:
        Qa = jnp.linalg.inv(Ga)
        Qa = 0.5 * (Qa + Qa.T)
        div, Q1, ok = _divergence_integral(
            g, ys, Qa, Ja, Js, Gs, lam, degenerate, substeps, 16 * substeps
        )
        # A saddle with eigenvalues ±λ⁺ leaves the Lyapunov equation singular, and a
        # non-gradient drift then needs the Hessian that the Riccati solution reaches.
        _, logdet_q1 = jnp.linalg.slogdet(Q1)
        use_q1 = degenerate & ~sym  # (for a gradient drift G = −J⁻¹ is exact)
        det_ratio = jnp.where(use_q1, jnp.exp(-logdet_q1 - logdet_a), det_ratio)
        # A check of the whole Riccati integration: next to the saddle its solution must
        # reach `∇²V(s)`, known independently from the saddle's Lyapunov equation.
        Qs = jnp.linalg.inv(Gs)
        mismatch = jnp.where(
            degenerate, 0.0,
            jnp.max(jnp.abs(Q1 - Qs)) / jnp.max(jnp.abs(Qs)),
        )
        ok = ok & (mismatch <= RICCATI_CHECK)
        # The Maier–Stein case (module docstring): the mismatch grows with the resolution
        # there, so a weak rotation can pass the 1% check on a coarse grid; the approach
        # angle refuses it on its own.
        ok = ok & ~((ratio < 1) & (angle > APPROACH_CHECK))
        if method == "switch":
            div = jnp.where(sym, 0.0, div)
            ok = ok | sym
    pref = lam / (2 * jnp.pi) * jnp.sqrt(det_ratio) * jnp.exp(div)
    rate = pref * jnp.exp(-barrier)
    nan = jnp.asarray(jnp.nan, dtype)
    rate, pref, div = (jnp.where(ok, z, nan) for z in (rate, pref, div))
    checks = dict(
        attractor_fixed=fa.is_fixed_point,
        attractor_stable=(fa.index == 0) & (fa.num_center == 0),
        saddle_fixed=fs.is_fixed_point,
        saddle_index1=(fs.index == 1) & (fs.num_center == 0),
        starts_at_attractor=_near(xs[0], a, xs),
        ends_at_saddle=_near(xs[-1], s, xs),
        spd=jnp.all(jnp.isfinite(ya)) & jnp.all(jnp.isfinite(Ga)) & jnp.all(jnp.isfinite(Gs)),
    )
    return (rate, pref, barrier, lam, det_ratio, div, mismatch, ratio, angle), sym, checks


def _saddle_diagnostics(Js, Gs, lam, degenerate, ys):
    """`μ = min_j |Re λ_j|/λ⁺` over the stable eigenvalues of `∂g(s)`, and the angle between
    the chord from the saddle to the last interior node and the line of the approach
    direction `e` (diagnostics only: not differentiated)."""
    Js, Gs, lam, ys = jax.lax.stop_gradient((Js, Gs, lam, ys))
    re = jnp.real(jnp.linalg.eigvals(Js))
    ratio = jnp.min(jnp.where(re < 0, -re, jnp.inf)) / lam
    e = _approach_direction(Js, Gs, lam, ys[-2] - ys[-1])
    chord = ys[-2] - ys[-1]
    along = jnp.dot(chord, e)
    across = jnp.linalg.norm(chord - along * e)
    angle = jnp.where(degenerate, 0.0, jnp.arctan2(across, jnp.abs(along)))
    return ratio.astype(ys.dtype), angle.astype(ys.dtype)


def _near(x, target, xs):
    extent = jnp.max(jnp.abs(xs - xs[0])) + jnp.max(jnp.abs(target))
    return jnp.max(jnp.abs(x - target)) <= 1e-3 * extent


_parts_jit = eqx.filter_jit(_parts)


def rate_failure(r: Rate) -> str:
    """Why a `Rate` is NaN, in words (for the notes of `nj.transition_network` and
    `nj.barrier`); `r` concrete."""
    m = float(r.saddle_hessian_mismatch)
    mu, angle = float(r.saddle_eigenvalue_ratio), float(r.saddle_approach_angle)
    tangent = mu < 1 and angle > APPROACH_CHECK
    if not (m > RICCATI_CHECK or tangent):
        return "the rate's integration failed"
    msg = (
        f"Bouchet–Reygner self-check failed (the Riccati ∇²V next to the saddle is off by "
        f"{m:.1%}; the rate is not trusted)"
    )
    if tangent:
        msg += (
            f": the instanton enters the saddle {math.degrees(angle):.0f}° off the direction "
            f"a C² quasipotential implies, towards its stable manifold, as expected when "
            f"|λ_s|/λ⁺ = {mu:.2f} < 1 (Maier & Stein 1997); ∇²V(s) and ∫∇·ℓ dt do not exist "
            "there and the Eyring/Bouchet–Reygner prefactor does not apply"
        )
    return msg


@eqx.filter_jit
def _gradient_test(sde, a, s, xs, args, probe_key):
    dtype = a.dtype
    D = jnp.asarray(sde.D(jnp.zeros((), dtype), a, args), dtype)
    g, to_y = _whitened_drift(sde, args, D)
    ys = jax.vmap(to_y)(xs)
    extent = jnp.max(jnp.abs(ys - ys[0]))
    offsets = 0.05 * extent * jax.random.normal(probe_key, ys.shape, dtype)
    pts = jnp.concatenate([to_y(a)[None], to_y(s)[None], ys, ys + offsets], axis=0)
    return _is_symmetric(jax.vmap(jax.jacfwd(g))(pts))


_MESSAGES = dict(
    attractor_fixed="`attractor` is not a fixed point of the drift (see "
    "`nj.check_fixed_point`).",
    attractor_stable="`attractor` is not a stable fixed point (an attractor): some eigenvalue "
    "of ∂f there has Re λ ≥ 0.",
    saddle_fixed="`saddle` is not a fixed point of the drift (see `nj.check_fixed_point`).",
    saddle_index1="`saddle` is not an index-1 saddle: ∂f there must have exactly one eigenvalue "
    "with Re λ > 0 and none with Re λ ≈ 0.",
    starts_at_attractor="`uphill_xs[0]` is not the attractor: pass the uphill instanton from "
    "the attractor to the saddle (`nj.minimize_geometric_action(sde, attractor, saddle).xs`).",
    ends_at_saddle="`uphill_xs[-1]` is not the saddle: pass the uphill instanton from the "
    "attractor to the saddle (`nj.minimize_geometric_action(sde, attractor, saddle).xs`).",
    spd="the noise `D` is not symmetric positive definite, or a Lyapunov solve failed.",
)


def escape_rate(
    sde: SDE,
    attractor: ArrayLike,
    saddle: ArrayLike,
    uphill_xs: ArrayLike,
    *,
    args: Any = None,
    barrier: ArrayLike | None = None,
    method: Literal["auto", "eyring-kramers", "bouchet-reygner"] = "auto",
    substeps: int = 4,
) -> Rate:
    r"""The rate of noise-driven escape from an attractor over an index-1 saddle, with its
    prefactor (small-noise asymptotics; docs/conventions.md, "Routes, rates and prefactors").

    $$k = \frac{λ^+}{2π}\sqrt{\frac{\det ∇^2 V(a)}{|\det ∇^2 V(s)|}}\,
          \exp\Big(\int_{-\infty}^{\infty} ∇\cdot\ell(φ(t))\,dt\Big)\,e^{-ΔS}$$

    for `dx = f(x) dt + sqrt(2D) dW` with constant `D`, written in the whitened coordinates
    `y = D^{-1/2} x` (where the noise is `sqrt(2) dW`, the quasipotential `V` is in units of
    the action and `ΔS = V(s) − V(a)`): `λ⁺` the positive eigenvalue of `∂f(s)`, `∇²V` the
    Hessians of the quasipotential, `f = −∇V − ℓ` with `∇V·ℓ = 0`, and `φ` the uphill
    instanton `φ̇ = ∇V − ℓ` from `a` (at `t = −∞`) to `s` (at `t = +∞`). For `D = δI` and
    a gradient drift `f = −∇V₀` this is the Eyring–Kramers formula
    `k = (λ⁺/2π) sqrt(det ∇²V₀(a)/|det ∇²V₀(s)|) exp(−(V₀(s) − V₀(a))/δ)`.

    **Sign of the divergence term:** `exp(+∫∇·ℓ dt)` for `f = −∇V − ℓ` (derivation in the
    module docstring; confirmed by direct simulation, `examples/rates_vs_simulation.py`,
    where the other sign is off by `exp(2∫∇·ℓ dt) ≈ 4`, 55 standard errors; record in
    `examples/RATES.md`). This is Bouchet–Reygner's `exp(−∫∇·ℓ dt)` with their
    `ℓ = −ours`.

    **Arguments:**

    - `sde`: an autonomous `nj.SDE` with constant `D` (scalar, diagonal or full SPD). A
      state-dependent (callable) `D` raises `ValueError`.
    - `attractor`, `saddle`: arrays `(d,)`; a stable fixed point and an index-1 saddle
      (otherwise `ValueError` outside `jit`, an `equinox` runtime error inside).
    - `uphill_xs`: `(n, d)`, the nodes of the converged geometric instanton from `attractor`
      to `saddle` (`nj.minimize_geometric_action(sde, attractor, saddle, ...).xs`, or
      `transition.uphill.xs`). Used for the divergence integral (Bouchet–Reygner), the
      gradient test and the default barrier. Any node spacing (equidistant, or clustered
      at the ends). The divergence integral is first-order sensitive to the nodes (it
      uses their tangents), so its accuracy is that of the instanton: on exact instanton
      nodes ~`1e-4` with 101 equidistant nodes, second order in the spacing; on solver
      paths whose nodes cut across the inner turns of an instanton spiralling out of a
      focus (an attractor with complex eigenvalues, typical of rotating drifts) up to
      ~`1e-2` at 101 nodes, improving with more.
    - `args`: passed to the drift.
    - `barrier`: `ΔS`; default: the discrete geometric action of `uphill_xs`.
    - `method`: `"eyring-kramers"` (no divergence term; the Hessians from the
      linearisations as below, which are `−∂f` for a gradient drift), `"bouchet-reygner"`,
      or `"auto"` (default): Eyring–Kramers if `∂f` is symmetric in whitened coordinates
      at the two points, at the nodes and at probes next to them (a gradient drift),
      Bouchet–Reygner otherwise. Under `jit`/`vmap`/`grad` the test cannot choose what to
      compute, so `"auto"` computes the divergence integral and sets it to `0` where the
      drift is gradient; the result then says `method="bouchet-reygner"` (the general
      formula), with the same numbers.
    - `substeps`: RK4 steps of the Riccati integration per interval between nodes (16 times
      as many on the last one, which reaches into the saddle), uniform in
      `τ = logit(σ/L)`. Fixed steps, so the result is a smooth function of the parameters.
      Stiff saddles need more: near the saddle the Riccati rates per unit `τ` are
      `2|λ_j|/λ⁺` (`λ_j` the stable eigenvalues of `∂f(s)`), RK4 needs
      `rate × step ≲ 2.8`, and with equidistant nodes the interval before the last spans
      `log 2` in `τ`: the default resolves `|λ_j|/λ⁺ ≲ 8`. An unstable integration gives a
      NaN rate, never a silent error.

    **Returns:** an `nj.Rate` (`rate`, `prefactor`, `barrier`, `unstable_eigenvalue`,
    `determinant_ratio`, `divergence_integral`, `saddle_hessian_mismatch`,
    `saddle_eigenvalue_ratio`, `saddle_approach_angle`, `method`, `mean_exit_time`).

    **Method.** Hessians at the fixed points from `J G + G Jᵀ = −2I`, `∇²V = G⁻¹`
    (`J = ∂g` in whitened coordinates). The divergence integral: `∇V = p` along the
    instanton from its tangent (`ẏ = |g| v = g + 2p`), `∇²V` from the Riccati equation
    integrated along the arclength (see the module docstring), and
    `∇·ℓ = −∇·g − tr ∇²V`. The instanton between the nodes is the cubic Hermite curve
    through them, entering the saddle along its exact direction; up to the second node it
    is replaced by the linearisation at the attractor (with `∇³V(a)`). A saddle whose
    `∂f` has eigenvalues `±λ⁺` leaves `J G + G Jᵀ = −2I` singular; for a non-gradient drift
    `∇²V(s)` is then the Riccati solution's value next to the saddle.

    **Transformations.** `jit`, `vmap`, `grad` and `jvp` (with respect to `args`, arrays in
    `sde`, the points and the nodes) work; the derivatives of `λ⁺` and of the
    Lyapunov solutions are exact to first order (second derivatives are not supported).
    Pass `uphill_xs` from `nj.minimize_geometric_action` under the same transformation to
    include the motion of the instanton with the parameters.
    """
    if not isinstance(sde, SDE):
        raise ValueError(f"`escape_rate`: `sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    if callable(sde.diffusion):
        raise ValueError(
            "`escape_rate`: a state-dependent (callable) `D` is not supported: the prefactor "
            "formulas here assume constant noise. Pass a constant scalar, (d,) or (d, d) `D`."
        )
    if method not in _METHODS:
        raise ValueError(f"`escape_rate`: `method` must be one of {_METHODS}, got {method!r}.")
    a, s, dtype = as_endpoints(attractor, saddle, names=("attractor", "saddle"),
                               where="escape_rate")
    d = a.shape[0]
    xs = as_real_array(uphill_xs, "uphill_xs", "escape_rate", dtype=dtype)
    if xs.ndim != 2 or xs.shape[1] != d or xs.shape[0] < 3:
        raise ValueError(
            f"`escape_rate`: `uphill_xs` must have shape (n, {d}) with n ≥ 3, got {xs.shape}."
        )
    D = jnp.asarray(sde.diffusion)
    if D.shape not in ((), (d,), (d, d)):
        raise ValueError(
            f"`escape_rate`: `D` must be a scalar or have shape ({d},) or ({d}, {d}), got "
            f"{D.shape}."
        )
    args = float_args_as_arrays(args, dtype)
    if barrier is not None:
        barrier = as_real_array(barrier, "barrier", "escape_rate", integers=True, dtype=dtype)
    substeps = as_count(substeps, "substeps")
    if substeps < 1:
        raise ValueError(f"`escape_rate`: `substeps` must be positive, got {substeps}.")
    probe_key = jax.random.key(0)

    concrete = all(
        is_concrete(leaf)
        for leaf in jax.tree.leaves((eqx.filter(sde, eqx.is_array), a, s, xs, args, barrier))
    )
    if method == "auto":
        if concrete:
            sym = bool(_gradient_test(sde, a, s, xs, args, probe_key))
            method = "eyring-kramers" if sym else "bouchet-reygner"
            run = method
        else:
            method, run = "bouchet-reygner", "switch"
    else:
        run = method

    values, _, checks = _parts_jit(sde, a, s, xs, args, barrier, run, substeps,
                                   probe_key)
    rate = Rate(*values, method=method)
    flags = {k: v for k, v in checks.items()}
    if all(is_concrete(v) for v in flags.values()):
        bad = [k for k, v in flags.items() if not bool(v)]
        if bad:
            raise ValueError("`escape_rate`: " + " ".join(_MESSAGES[k] for k in bad))
        return rate
    for k, v in flags.items():
        rate = eqx.error_if(rate, ~v, f"`escape_rate`: {_MESSAGES[k]}")
    return rate
