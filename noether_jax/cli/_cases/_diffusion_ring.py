r"""Case study 4: reverse diffusion onto a ring (the seed paper's Figure 2), converged.

**The system.** A variance-exploding diffusion with `σ(t) = t` noises data spread uniformly on a
ring of radius `R = 5` and blurred by `σ0 = 0.55`:

$$\mathrm{d}x = \sqrt{\mathrm{d}σ^2/\mathrm{d}t}\;\mathrm{d}W = \sqrt{2t}\,\mathrm{d}W,
\qquad D(t) = t$$

(docs/conventions.md: `dx = sqrt(2D) dW`).

Its marginal is the ring convolved with an isotropic Gaussian of variance `s² = σ0² + t²`
(`d s²/dt = 2t = 2D`). With `r = |x|` and `z = R r / s²`,

$$p(x\,|\,t) = \frac{1}{2π s^2}\, e^{-(r^2 + R^2)/(2 s^2)}\, I_0(z)
 = \frac{1}{2π s^2}\, e^{-(r - R)^2/(2 s^2)}\, \mathrm{i0e}(z),$$

$$\nabla \log p = \frac{x}{s^2}\Big(\frac{R}{r}\,\frac{I_1(z)}{I_0(z)} - 1\Big)
 = x\,\Big(\frac{R^2}{s^4}\, g(z) - \frac{1}{s^2}\Big), \qquad
 g(z) = \frac{I_1(z)}{z\, I_0(z)} = \frac{\mathrm{i1e}(z)}{z\,\mathrm{i0e}(z)}
 = \tfrac12 - \tfrac{z^2}{16} + \tfrac{z^4}{96} - \dots$$

(the exponentially scaled Bessel functions never overflow; `g` is smooth at `r = 0`).

**The reverse process.** Sampling runs time backwards, from `t0 = 10^1.5` down to
`t1 = 10^-0.4`, with the reverse-time SDE `dx = −2t ∇log p dt + sqrt(2t) dW`, `D = t`. Most
likely paths start at `(0, 10)` and end on the ring at angles `π/4, 0, −π/4, −π/2`.

**Charges.** The score is radial and `D` isotropic, so rotations are a symmetry: the
quasi-angular momentum `L = x₁p₂ − x₂p₁` is conserved. Since `x × ∇log p = 0`,
`L = x × ẋ / (2t)`. The quasi-energy `H = pᵀDp + fᵀp` is not: `f` and `D` depend on `t`
explicitly, and `dH/dt = ∂H/∂t = |p|² + (∂f/∂t)·p` along a path.

**The paper's Lagrangian.** The full Freidlin–Wentzell Lagrangian is
`L = ¼|ẋ − f|²/t = |ẋ|²/(4t) + ẋ·s + t|s|²` (`s = ∇log p`); the paper's code dropped the cross
term `ẋ·s`. That term is not a total derivative: `ẋ·s = d(log p)/dt − ∂ₜlog p`, and the heat
equation `∂ₜp = tΔp` gives `∂ₜlog p = t(∇·s + |s|²)`, so

$$S_{FW}[x] = \int \Big(\frac{|\dot x|^2}{4t} - t\,∇\!\cdot s\Big)|\mathrm{d}t|
 + \log p(x(t_0), t_0) - \log p(x(t_1), t_1)$$

for every path: up to a total derivative the full Lagrangian is `|ẋ|²/(4t) − t∇·s`, while the
paper's is `|ẋ|²/(4t) + t|s|²`, a different (still rotation-invariant) Lagrangian with
different most likely paths.
"""

import math
import time
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import i0e, i1e
from jaxtyping import Array, Float

from noether_jax import (
    SDE,
    AbstractAction,
    FreidlinWentzell,
    Rotations,
    Translations,
    find_symmetries,
    hamiltonian,
    minimize_action,
    momentum,
)
from noether_jax._sde import metric_inner
from ._common import CaseReport, Progress, out_dir

NAME = "diffusion-ring"
TITLE = "Reverse diffusion onto a ring: angular momentum of most likely sampling paths"

RADIUS = 5.0
SIGMA0 = 0.55
T_START = 10.0**1.5  # the reverse process starts here (pure noise) ...
T_END = 10.0**-0.4  # ... and ends here (on the data)
X_START = (0.0, 10.0)
END_ANGLES = (math.pi / 4, 0.0, -math.pi / 4, -math.pi / 2)
END_LABELS = ("π/4", "0", "−π/4", "−π/2")
QUIVER_TIME = 2.0  # the score field drawn in the figure
QUICK_LEVELS = (41,)  # node counts solved (each one compilation of the solver)
FULL_LEVELS = (401,)
SECOND_GRID_SHIFT = 1.0  # the second grid is geometric in t + 1

# Series of `g(u) = I1(z)/(z I0(z))` in `u = z²` (exact rational coefficients), used below
# `_SMALL_U` where the quotient would divide by `z → 0`; its truncation error there is < 1e-17.
_G_SERIES = (1 / 2, -1 / 16, 1 / 96, -11 / 6144, 19 / 61440, -473 / 8847360, 229 / 24772608)
_SMALL_U = 1e-2


def _poly(coeffs, u):
    out = jnp.zeros_like(u)
    for c in reversed(coeffs):
        out = out * u + c
    return out


@jax.custom_jvp
def _bessel_ratio(u: Float[Array, ""]) -> Float[Array, ""]:
    """`g = I1(z) / (z I0(z))` as a smooth function of `u = z²` (also at `z = 0`)."""
    small = u < _SMALL_U
    # Safe-where: the untaken branch must not see `z = 0`.
    z = jnp.sqrt(jnp.where(small, 1.0, u))
    return jnp.where(small, _poly(_G_SERIES, u), i1e(z) / (z * i0e(z)))


@_bessel_ratio.defjvp
def _bessel_ratio_jvp(primals, tangents):
    # `ρ = I1/I0` solves the Riccati equation `ρ' = 1 − ρ/z − ρ²`, so `g = ρ/z` has
    # `dg/du = (1 − 2g − u g²) / (2u)`: derivatives of every order are algebraic in `g`, with
    # no further Bessel evaluations (each would add a Chebyshev series to the compiled
    # Hessian of the action). Near `u = 0` the quotient cancels; the series is used there.
    (u,), (du,) = primals, tangents
    g = _bessel_ratio(u)
    small = u < _SMALL_U
    u_safe = jnp.where(small, 1.0, u)
    dseries = tuple(k * c for k, c in enumerate(_G_SERIES))[1:]
    dg = jnp.where(small, _poly(dseries, u), (1 - 2 * g - u_safe * g**2) / (2 * u_safe))
    return g, dg * du


def _check_point(x):
    if jnp.shape(x) != (2,):
        raise ValueError(f"the ring density is 2-D: `x` must have shape (2,), got {jnp.shape(x)}.")


def ring_log_density(
    x: Float[Array, "2"], t, radius=RADIUS, sigma0=SIGMA0
) -> Float[Array, ""]:
    r"""`log p(x | t)`: the uniform ring of radius `radius` convolved with an isotropic
    Gaussian of variance `s² = sigma0² + t²`, normalised on the plane:

    $$\log p = -\log(2π s^2) - \frac{(r - R)^2}{2 s^2} + \log \mathrm{i0e}(R r / s^2).$$
    """
    _check_point(x)
    s2 = sigma0**2 + t**2
    r2 = jnp.sum(x**2)
    r = jnp.sqrt(jnp.where(r2 > 0, r2, 1.0))
    r = jnp.where(r2 > 0, r, 0.0)
    return -jnp.log(2 * jnp.pi * s2) - (r - radius) ** 2 / (2 * s2) + jnp.log(
        i0e(radius * r / s2)
    )


def ring_score(x: Float[Array, "2"], t, radius=RADIUS, sigma0=SIGMA0) -> Float[Array, "2"]:
    r"""The score `∇ log p(x | t) = x (R² g(z)/s⁴ − 1/s²)`, `g(z) = I1(z)/(z I0(z))`,
    `z = R|x|/s²` (module docstring). Radial, so `x × score = 0`."""
    _check_point(x)
    s2 = sigma0**2 + t**2
    z2 = radius**2 * jnp.sum(x**2) / s2**2
    return x * (radius**2 * _bessel_ratio(z2) / s2**2 - 1 / s2)


def _ring_params(args):
    radius, sigma0 = args
    return radius, sigma0


def reverse_drift(t, x, args):
    r"""Drift of the reverse-time SDE, `f = −2t ∇log p(x | t)` (`args = (R, σ0)`).

    Sign convention. The forward (noising) process `dx = sqrt(2D) dW`, `D = t`, has
    marginals `p(x | t)`. Anderson's reverse-time SDE reproduces them while `t` *decreases*:
    `dx = [f_fwd − 2D ∇log p] dt + sqrt(2D) dW̄` with `f_fwd = 0` and `dt < 0`. The library
    takes the same reading for `t1 < t0`: each step `h = t_{i+1} − t_i < 0` has mean
    displacement `f h` and noise variance `2D|h|`, and `ẋ = dx/dt` with the physical `t`. So
    `f = −2t ∇log p`, and the mean step `f h = 2t|h| ∇log p` climbs the density towards the
    ring. (In the reversed clock `τ = t0 − t` the drift would read `+2t ∇log p`; here `t`
    itself runs backwards.) The identity `S_FW = ∫(|ẋ|²/4t − t∇·s)|dt| + log p(x(t0)) −
    log p(x(t1))` checked in `run` holds only with this sign.
    """
    radius, sigma0 = _ring_params(args)
    return -2 * t * ring_score(x, t, radius, sigma0)


def probability_flow(t, x, args):
    """Velocity of the probability-flow ODE, `dx/dt = f_fwd − D ∇log p = −t ∇log p`: the
    deterministic flow with the same marginals, integrated from `t0` down to `t1`."""
    radius, sigma0 = _ring_params(args)
    return -t * ring_score(x, t, radius, sigma0)


def noise(t, x, args):
    """`D(t) = t` (`σ(t) = t`, `d σ²/dt = 2D`)."""
    return t


def make_sde() -> SDE:
    """The reverse-time SDE `dx = −2t ∇log p dt + sqrt(2t) dW` (run with `t1 < t0`)."""
    return SDE(reverse_drift, noise)


def default_args(dtype=None) -> tuple[Array, Array]:
    """`(R, σ0)` as arrays (traced arguments, so other rings do not recompile)."""
    return jnp.asarray(RADIUS, dtype), jnp.asarray(SIGMA0, dtype)


# --------------------------------------------------------------------------- the two Lagrangians


class _CrossTermWeighted(AbstractAction):
    r"""The Freidlin–Wentzell Lagrangian with its cross term weighted by `w`:

    $$L_w = \tfrac14 (\dot x - w f)^\top D^{-1} (\dot x - w f)
          + \tfrac14 (1 - w^2)\, f^\top D^{-1} f
        = \tfrac14 \dot x^\top D^{-1} \dot x - \tfrac{w}{2}\, \dot x^\top D^{-1} f
          + \tfrac14 f^\top D^{-1} f.$$

    - `w = 1`: the full Freidlin–Wentzell Lagrangian, by the very expression of
      `nj.FreidlinWentzell` (the second term is exactly zero);
    - `w = 0`: the seed paper's Lagrangian, cross term `ẋ·s` dropped:
      `L′ = |ẋ|²/(4t) + t|s|²` (`f = −2ts`, `D = t`). It is still rotation invariant here, so
      its own charge `x × ∂L′/∂ẋ = x × ẋ/(2t)` is conserved along its extremals; its momentum
      is `½D⁻¹ẋ`, not `½D⁻¹(ẋ − f)`.

    The weight is an array leaf, so both Lagrangians share one compiled solver (compiling the
    Newton solver for this drift is the dominant cost of the case).
    """

    weight: Float[Array, ""]

    def lagrangian(self, sde, t, x, xdot, args):
        D = sde.D(t, x, args)
        f = sde.f(t, x, args)
        w = jnp.asarray(self.weight, x.dtype)
        return 0.25 * (metric_inner(D, xdot - w * f) + (1 - w**2) * metric_inner(D, f))


# --------------------------------------------------------------------------- paths


def geometric_grid(n: int, dtype=None, *, shift: float = 0.0) -> Float[Array, " n"]:
    r"""Node positions in `[0, 1]` (for `minimize_action(grid=...)`) with times geometric in
    `t + shift`: `t_i + c = (t0 + c) ((t1 + c)/(t0 + c))^{i/(n−1)}`. With `shift = 0` (the
    default) equal steps in `log t`: the drift's rate `|∂f/∂x| ≈ 2t/s²`, the noise `D = t` and
    the path's own time scale all vary like `t` over most of the range, so this resolves every
    decade alike (a uniform grid wastes its nodes at large `t`). A positive `shift` moves
    nodes from small to large `t`: a second, independent grid of the same size."""
    u = jnp.linspace(0.0, 1.0, n, dtype=dtype)
    ts = (T_START + shift) * ((T_END + shift) / (T_START + shift)) ** u - shift
    g = (ts - T_START) / (T_END - T_START)
    return g.at[0].set(0.0).at[-1].set(1.0)


def _times(grid):
    return T_START + grid * (T_END - T_START)


def _straight(x0, x1, grid):
    return x0[None] + grid[:, None] * (x1 - x0)[None]


def _spiral(x0, x1, grid):
    """Polar interpolation (radius and angle linear in the grid, the angle decreasing): the
    paper's initial paths were straight lines in polar coordinates."""
    r0, r1 = jnp.linalg.norm(x0), jnp.linalg.norm(x1)
    a0, a1 = jnp.arctan2(x0[1], x0[0]), jnp.arctan2(x1[1], x1[0])
    a1 = jnp.where(a1 > a0, a1 - 2 * jnp.pi, a1)
    r = r0 + grid * (r1 - r0)
    a = a0 + grid * (a1 - a0)
    return jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], axis=-1)


@eqx.filter_jit
def _solve_batch(sde, x0, x1s, inits, weights, grids, args):
    """One compiled solver for every end point, Lagrangian (`weights`) and grid."""

    def one(x1, init, w, grid):
        return minimize_action(
            sde, x0, x1, T_START, T_END, grid=grid, args=args, init=init,
            action=_CrossTermWeighted(w), max_steps=100, throw=False,
        )

    return jax.vmap(one)(x1s, inits, weights, grids)


@eqx.filter_jit
def _pf_ode(x_starts, ts, args):
    """Probability-flow ODE paths from several starts (one diffrax solve of the stacked
    state), saved at the decreasing times `ts`. Returns shape `(k, n, 2)`."""
    field = lambda t, y, args: jax.vmap(lambda x: probability_flow(t, x, args))(y)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
        y0=x_starts, args=args, saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10), max_steps=4096,
    )
    return jnp.swapaxes(sol.ys, 0, 1)


def _pointwise(x, t, radius, sigma0):
    """At one point: `log p`, its gradients by autodiff (`∇log p`, `∂ₜlog p`), and the
    closed-form score with its divergence."""
    logp, (grad_x, grad_t) = jax.value_and_grad(ring_log_density, argnums=(0, 1))(
        x, t, radius, sigma0
    )
    score_fn = lambda y: ring_score(y, t, radius, sigma0)
    score, columns = jax.vmap(lambda v: jax.jvp(score_fn, (x,), (v,)))(jnp.eye(2, dtype=x.dtype))
    return dict(logp=logp, grad_x=grad_x, grad_t=grad_t, score=score[0],
                div=jnp.trace(columns))


def _path_actions(action, sde, paths, args):
    """Discrete actions of several paths `[(ts, xs), ...]` of any lengths, with one vmapped
    evaluation of the discrete Lagrangian (one copy of the drift in the compiled code)."""
    ta = jnp.concatenate([ts[:-1] for ts, _ in paths])
    tb = jnp.concatenate([ts[1:] for ts, _ in paths])
    xa = jnp.concatenate([xs[:-1] for _, xs in paths])
    xb = jnp.concatenate([xs[1:] for _, xs in paths])
    ld = jax.vmap(lambda *a: action.discrete_lagrangian(sde, *a, args))(ta, tb, xa, xb)
    ids = jnp.concatenate([jnp.full(ts.shape[0] - 1, i) for i, (ts, _) in enumerate(paths)])
    return jax.ops.segment_sum(ld, ids, num_segments=len(paths))


_CDF_NODES = 801  # Simpson's rule for the radial CDF (error ~ (h/s)⁴ < 1e-9)


@eqx.filter_jit
def _analyse(sde, ts, xs_full, S_full, xs_paper, pf, args, check_x, check_t, image_axis):
    """Everything measured on the paths, in one compiled function. Point evaluations of the
    density and score are gathered into one vmapped call, and discrete actions into another:
    each copy of the Bessel functions in the compiled code costs compilation time."""
    radius, sigma0 = _ring_params(args)
    m, n = xs_full.shape[:2]
    dtype = ts.dtype

    # All the points where the density or the score is needed, in one batch.
    cx = jnp.repeat(check_x, check_t.shape[0], axis=0)
    ct = jnp.tile(check_t, check_x.shape[0])
    tm = 0.5 * (ts[1:] + ts[:-1])
    xm = 0.5 * (xs_full[:, 1:] + xs_full[:, :-1])  # (m, n-1, 2) midpoints
    r_pf = jnp.linalg.norm(pf, axis=-1)
    u = jnp.linspace(0.0, 1.0, _CDF_NODES, dtype=dtype)
    rho = jnp.concatenate([r_pf[:, 0, None] * u, r_pf[:, -1, None] * u])  # (2k, num)
    rho_t = jnp.concatenate([jnp.full(r_pf.shape[:1], ts[0]), jnp.full(r_pf.shape[:1], ts[-1])])
    X, Y = jnp.meshgrid(image_axis, image_axis, indexing="xy")
    q = image_axis[::16]
    QX, QY = jnp.meshgrid(q, q, indexing="xy")
    groups = [
        (cx, ct),  # checks
        (xm.reshape(-1, 2), jnp.tile(tm, m)),  # midpoints: ∇·s
        (xs_full[:, 0], jnp.full((m,), ts[0])),  # start points: log p
        (xs_full[:, -1], jnp.full((m,), ts[-1])),  # end points: log p
        (jnp.stack([rho.ravel(), jnp.zeros(rho.size, dtype)], -1),
         jnp.repeat(rho_t, _CDF_NODES)),  # radial CDFs
        (jnp.stack([X.ravel(), Y.ravel()], -1), jnp.full((X.size,), ts[-1])),  # image
        (jnp.stack([QX.ravel(), QY.ravel()], -1), jnp.full((QX.size,), QUIVER_TIME, dtype)),
    ]
    pts = jax.vmap(lambda x, t: _pointwise(x, t, radius, sigma0))(
        jnp.concatenate([g[0] for g in groups]), jnp.concatenate([g[1] for g in groups])
    )
    sizes = [g[1].shape[0] for g in groups]
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    part = lambda i, key: pts[key][offsets[i]:offsets[i + 1]]

    # 1. The score against autodiff of the log-density, and the heat equation
    # ∂ₜlog p = t (∇·s + |s|²), which holds iff D = t generates s² = σ0² + t².
    s, g = part(0, "score"), part(0, "grad_x")
    e_score = jnp.linalg.norm(s - g, axis=-1) / (
        jnp.linalg.norm(g, axis=-1) + 1 / jnp.sqrt(sigma0**2 + ct**2)
    )
    s2, div, lt = jnp.sum(s**2, axis=-1), part(0, "div"), part(0, "grad_t")
    e_heat = jnp.abs(lt - ct * (div + s2)) / (jnp.abs(lt) + jnp.abs(ct * div) + ct * s2)

    # 2. Momenta by nj.momentum (the discrete Legendre transform) of both Lagrangians in one
    # batch: w = 1 (identical to nj.FreidlinWentzell) on the full paths, w = 0 (the paper's,
    # whose momentum is ½D⁻¹ẋ) on the paper's paths. Then L = x₁p₂ − x₂p₁
    # (nj.angular_momentum's [0, 1] entry) and, for the full paths, H.
    both = jnp.concatenate([xs_full, xs_paper])
    w = jnp.repeat(jnp.array([1.0, 0.0], dtype), m)
    p_all = jax.vmap(lambda xs, w: momentum(sde, (ts, xs), args, action=_CrossTermWeighted(w)))(
        both, w
    )
    p, pp = p_all[:m], p_all[m:]
    L_all = both[..., 0] * p_all[..., 1] - both[..., 1] * p_all[..., 0]
    L, Lp = L_all[:m], L_all[m:]
    r = jnp.linalg.norm(xs_full, axis=-1)

    # H and, along a solution, dH/dt = ∂H/∂t (the explicit time dependence of f and D).
    def H_and_dHdt(t, x, p):
        return jax.jvp(lambda s: hamiltonian(sde, s, x, p, args), (t,), (jnp.ones_like(t),))

    E, Ht = jax.vmap(jax.vmap(H_and_dHdt), in_axes=(None, 0, 0))(ts, xs_full, p)
    h = jnp.diff(ts)
    balance = (E[:, -1] - E[:, 0]) - jnp.sum(0.5 * (Ht[:, 1:] + Ht[:, :-1]) * h, axis=1)

    # 3. S = ∫(|ẋ|²/4t − t∇·s)|dt| + log p(x(t0), t0) − log p(x(t1), t1), midpoint rule.
    dx = jnp.diff(xs_full, axis=1)
    kinetic = jnp.sum(jnp.sum(dx**2, axis=-1) / (4 * tm * jnp.abs(h)), axis=1)
    potential = -jnp.sum(tm * part(1, "div").reshape(m, n - 1) * jnp.abs(h), axis=1)
    boundary = part(2, "logp") - part(3, "logp")
    identity = (kinetic + potential + boundary - S_full) / (
        jnp.abs(kinetic) + jnp.abs(potential) + jnp.abs(boundary)
    )

    # 4. Discrete actions under the library's FreidlinWentzell: the solved paths (same value
    # as the w = 1 Lagrangian), the same paths on the nested sub-grids (every 4th and 2nd
    # node), the paper's paths and the PF-ODE path.
    paths = [(ts, xs) for xs in xs_full]
    paths += [(ts[::k], xs[::k]) for k in (4, 2) for xs in xs_full]
    paths += [(ts, xs) for xs in xs_paper] + [(ts, pf[0])]
    S_fw = _path_actions(FreidlinWentzell(), sde, paths, args)
    S_lib, S_sub4, S_sub2 = S_fw[:m], S_fw[m:2 * m], S_fw[2 * m:3 * m]
    S_paper_fw, S_pf = S_fw[3 * m:4 * m], S_fw[-1]

    # 5. The PF-ODE transports p(·|t0) to p(·|t1) along rays, so it keeps the radial CDF
    # P(|x| < r) = ∫₀ʳ 2πρ p(ρ) dρ (Simpson's rule).
    w = jnp.ones(_CDF_NODES, dtype).at[1:-1:2].set(4.0).at[2:-1:2].set(2.0)
    dens = jnp.exp(part(4, "logp")).reshape(rho.shape)
    cdf = jnp.sum(w * 2 * jnp.pi * rho * dens, axis=1) * rho[:, -1] / (3 * (_CDF_NODES - 1))
    k = pf.shape[0]
    pf_angle = jnp.unwrap(jnp.arctan2(pf[..., 1], pf[..., 0]), axis=1)
    unwrap = lambda xs: jnp.unwrap(jnp.arctan2(xs[..., 1], xs[..., 0]), axis=-1)
    return dict(
        score_err=jnp.max(e_score), heat_err=jnp.max(e_heat),
        full=dict(
            sub_actions=jnp.stack([S_sub4, S_sub2, S_lib], axis=1), L=L,
            L_scale=jnp.mean(jnp.linalg.norm(p, axis=-1) * r, axis=1), E=E,
            E_scale=jnp.mean(jnp.abs(E), axis=1),
            balance=balance / jnp.max(jnp.abs(E), axis=1), identity=identity,
            fw_consistency=jnp.abs(S_lib - S_full) / S_full, radius=r, angle=unwrap(xs_full),
        ),
        paper=dict(
            L=Lp, S_fw=S_paper_fw, angle=unwrap(xs_paper),
            L_scale=jnp.mean(
                jnp.linalg.norm(pp, axis=-1) * jnp.linalg.norm(xs_paper, axis=-1), axis=1
            ),
        ),
        pf_cdf_start=cdf[:k], pf_cdf_end=cdf[k:],
        pf_angle_change=jnp.max(jnp.abs(pf_angle - pf_angle[:, :1])), pf_action=S_pf,
        density=jnp.exp(part(5, "logp")).reshape(X.shape),
        quiver=(QX, QY, part(6, "score").reshape(QX.shape + (2,))),
    )


# --------------------------------------------------------------------------- the case


def _relvar(q, scale) -> float:
    """`nj.charge_report`'s relative variation: `(max − min) / scale`."""
    q, scale = jnp.asarray(q), float(scale)
    return float((jnp.max(q) - jnp.min(q)) / scale) if scale > 0 else 0.0


def run(out=None, *, quick: bool = False, progress=None) -> CaseReport:
    """Reverse diffusion onto a ring: most likely paths, their angular momentum and
    quasi-energy, the probability-flow ODE, and the paper's dropped-cross-term Lagrangian.

    `quick=True`: 41 nodes instead of 401, for the tests.

    Refinement. Each solve size costs one compilation of the Newton solver (seconds), so the
    finest paths are also evaluated on the nested sub-grids (every 2nd and 4th node): their
    discrete actions exceed the sub-grids' own minima only by `O(h⁴)` (the restricted path is
    off by a smooth `O(h²)` and the discrete action is stationary at its minimum; checked
    against independent solves with `FULL_LEVELS = (201, 401)`), which gives the order and a
    Richardson extrapolation. The same batch also solves on a second grid of the same size
    (`geometric_grid(n, shift=1)`), an independent discretisation.
    """
    start_clock = time.perf_counter()
    progress = Progress(NAME) if progress is None else progress
    folder = out_dir(out)
    sde = make_sde()
    args = default_args()
    x0 = jnp.asarray(X_START)
    ang = jnp.asarray(END_ANGLES)
    x1_ring = RADIUS * jnp.stack([jnp.cos(ang), jnp.sin(ang)], axis=-1)
    levels = QUICK_LEVELS if quick else FULL_LEVELS
    n_fine = levels[-1]
    grid = geometric_grid(n_fine)
    ts = _times(grid)
    numbers: dict[str, Any] = dict(
        radius=RADIUS, sigma0=SIGMA0, t_start=T_START, t_end=T_END, x_start=list(X_START),
        end_angles=list(END_ANGLES), grid="geometric in t", node_counts=list(levels),
        quick=quick,
    )
    checks: dict[str, bool] = {}

    # 1. The probability-flow ODE, from the start and from a few others.
    progress("probability-flow ODE (diffrax)")
    k = 8
    phis = jnp.pi / 2 + 2 * jnp.pi * jnp.arange(1, k) / k
    radii = jnp.array([20.0, T_START, 45.0, 10.0, 20.0, T_START, 45.0])
    starts = jnp.concatenate(
        [x0[None], jnp.stack([radii * jnp.cos(phis), radii * jnp.sin(phis)], axis=-1)]
    )
    pf = _pf_ode(starts, ts, args)
    pf_end = pf[0, -1]

    # 2. Most likely paths, both Lagrangians in one batch: the four ring end points from
    # straight lines, −π/2 again from the paper's polar spiral, and the PF-ODE's end point.
    x1s = jnp.concatenate([x1_ring, x1_ring[-1:], pf_end[None]])
    labels = list(END_LABELS) + ["−π/2, spiral init", "PF-ODE end"]
    m = len(labels)
    # Batch: (grid A: full, paper), (grid B: full, paper), m end points each.
    weights = jnp.tile(jnp.repeat(jnp.array([1.0, 0.0]), m), 2)
    refinement = []
    for n in levels:
        progress(f"most likely paths (full and paper's Lagrangian, two grids), {n} nodes")
        grids = jnp.stack([geometric_grid(n), geometric_grid(n, shift=SECOND_GRID_SHIFT)])
        inits = jax.vmap(lambda g: jax.vmap(lambda b: _straight(x0, b, g))(x1s))(grids)
        inits = inits.at[:, 4].set(jax.vmap(lambda g: _spiral(x0, x1s[4], g))(grids))
        t_solve = time.perf_counter()
        sols = _solve_batch(
            sde, x0, jnp.tile(x1s, (4, 1)), jnp.repeat(inits, 2, axis=0).reshape(4 * m, n, 2),
            weights, jnp.repeat(grids, 2 * m, axis=0), args,
        )
        jax.block_until_ready(sols.action)
        refinement.append(dict(
            n_nodes=n, actions=sols.action[:m], actions_paper=sols.action[m:2 * m],
            actions_second_grid=sols.action[2 * m:3 * m],
            actions_paper_second_grid=sols.action[3 * m:], converged=sols.converged,
            steps=sols.stats["num_steps"], seconds=time.perf_counter() - t_solve,
        ))
    numbers["refinement"] = refinement
    S_full, S_paper = sols.action[:m], sols.action[m:2 * m]
    xs_full, xs_paper = sols.xs[:m], sols.xs[m:2 * m]
    checks["every most likely path converged (certified minimum), both Lagrangians"] = all(
        bool(jnp.all(r["converged"])) for r in refinement
    )
    progress("charges, identities and checks along the paths")
    check_x = jnp.array([[0.0, 10.0], [3.0, -4.1], [1e-3, 0.0], [0.0, 0.0], [-5.0, 0.2]])
    check_t = jnp.array([T_END, 1.0, 3.0, T_START])
    image_axis = jnp.linspace(-11.0, 11.0, 161)
    an = _analyse(sde, ts, xs_full, S_full, xs_paper, pf, args, check_x, check_t, image_axis)
    full, pap = an["full"], an["paper"]

    # Refinement: the finest paths on the nested sub-grids (stride 4, 2, 1), Richardson
    # extrapolation, and the second grid.
    sub = full["sub_actions"].T  # (3, m): actions on n/4, n/2 and n intervals
    sub_ratio = (sub[0] - sub[1]) / (sub[1] - sub[2])
    richardson = sub[2] + (sub[2] - sub[1]) / 3
    rel_err = jnp.abs(S_full - richardson) / S_full
    rel_second = jnp.abs(refinement[-1]["actions_second_grid"] - richardson) / S_full
    numbers.update(
        refinement_subgrid_nodes=[(n_fine - 1) // 4 + 1, (n_fine - 1) // 2 + 1, n_fine],
        refinement_subgrid_actions=sub, refinement_subgrid_ratio=sub_ratio,
        action_richardson=richardson, action_error_finest=jnp.abs(S_full - richardson),
        action_relative_error_finest=rel_err, second_grid_relative_error=rel_second,
    )
    if not quick:
        checks[
            f"action converged: second order on the nested sub-grids (difference ratios 4 ± "
            f"0.3); {n_fine}-node actions within 1e-4 (relative) of the Richardson extrapolation, "
            "and within 2e-4 on a second grid (geometric in t + 1)"
        ] = bool(
            jnp.all(jnp.abs(sub_ratio[:5] - 4) < 0.3) & jnp.all(rel_err[:5] < 1e-4)
            & jnp.all(rel_second[:5] < 2e-4)
        )
    if len(levels) >= 2:
        # An independent solve on the half grid against the restricted fine paths.
        coarse = refinement[-2]["actions"]
        numbers["refinement_solve_vs_restricted"] = jnp.abs(coarse - sub[1]) / jnp.abs(
            coarse - S_full
        )

    numbers["score_vs_autodiff_max_rel_err"] = float(an["score_err"])
    numbers["heat_equation_max_rel_err"] = float(an["heat_err"])
    checks["score = ∇log p (autodiff of the i0e log-density, rel. err < 1e-10)"] = (
        float(an["score_err"]) < 1e-10
    )
    checks["heat equation ∂ₜlog p = t(∇·s + |s|²), i.e. D = t (rel. err < 1e-10)"] = (
        float(an["heat_err"]) < 1e-10
    )
    fw_cons = float(jnp.max(full["fw_consistency"]))
    numbers["full_vs_library_action_rel_diff"] = fw_cons
    checks["w = 1 action equals nj.FreidlinWentzell's (rel. diff < 1e-12)"] = fw_cons < 1e-12

    L_var = [_relvar(full["L"][i], full["L_scale"][i]) for i in range(m)]
    E_var = [_relvar(full["E"][i], full["E_scale"][i]) for i in range(m)]
    L_mean = jnp.mean(full["L"], axis=1)
    sweep = full["angle"][:, -1] - full["angle"][:, 0]
    numbers["paths"] = [
        dict(
            end=labels[i], x_end=x1s[i], action=S_full[i], L=L_mean[i],
            L_relative_variation=L_var[i], angle_swept=sweep[i],
            min_radius=jnp.min(full["radius"][i]), E_start=full["E"][i, 0],
            E_end=full["E"][i, -1], E_relative_variation=E_var[i],
            energy_balance_rel_err=full["balance"][i], identity_rel_err=full["identity"][i],
        )
        for i in range(m)
    ]
    tol_L = 1e-8
    checks[f"angular momentum constant along every path (rel. variation < {tol_L:g})"] = (
        max(L_var) < tol_L
    )
    checks["quasi-energy not conserved (rel. variation > 0.5 on every path)"] = min(E_var) > 0.5
    # Both identities hold to the O(h²) discretisation error (h = step in log t).
    tol_h = 1e-2 if quick else 1e-3
    checks[
        f"quasi-energy changes as ∂H/∂t says on the ring paths: E(t1) − E(t0) = ∫∂ₜH dt "
        f"(rel. err < {tol_h:g})"
    ] = bool(jnp.all(jnp.abs(full["balance"][:5]) < tol_h))
    checks[
        "S = ∫(|ẋ|²/4t − t∇·s)|dt| + log p(x(t0)) − log p(x(t1)), which fixes the sign of the "
        f"reverse drift (rel. err < {tol_h:g})"
    ] = bool(jnp.all(jnp.abs(full["identity"]) < tol_h))

    Lp_var = [_relvar(pap["L"][i], pap["L_scale"][i]) for i in range(m)]
    sweep_p = pap["angle"][:, -1] - pap["angle"][:, 0]
    k3 = int(jnp.argmin(jnp.abs(ts - 3.0)))  # the node nearest t = 3
    numbers["radius_at_t3"] = dict(
        t=ts[k3], full=jnp.linalg.norm(xs_full[:, k3], axis=-1),
        paper=jnp.linalg.norm(xs_paper[:, k3], axis=-1),
    )
    numbers["paper_variant"] = dict(
        action_own=S_paper, action_fw=pap["S_fw"], fw_action_excess=pap["S_fw"] - S_full,
        L=jnp.mean(pap["L"], axis=1), L_relative_variation=Lp_var,
        angle_swept=sweep_p,
        max_distance_to_full_path=jnp.max(jnp.linalg.norm(xs_paper - xs_full, axis=-1), axis=1),
    )
    checks[
        f"paper's Lagrangian conserves its own angular momentum x×ẋ/2t (rel. var. < {tol_L:g})"
    ] = max(Lp_var) < tol_L
    checks["the paper's paths are less likely under the full action (larger S_FW)"] = bool(
        jnp.all(pap["S_fw"] > S_full)
    )

    pf_cdf_err = float(jnp.max(jnp.abs(an["pf_cdf_end"] - an["pf_cdf_start"])))
    numbers["pf_ode"] = dict(
        starts=starts, end_points=pf[:, -1], end_radius_from_start=jnp.linalg.norm(pf_end),
        max_angle_change=an["pf_angle_change"], radial_cdf_start=an["pf_cdf_start"],
        radial_cdf_max_change=pf_cdf_err, action_of_pf_path=an["pf_action"],
        action_of_most_likely_path_to_its_end=S_full[5],
    )
    checks["PF-ODE paths are rays (angle change < 1e-8) that keep the radial CDF (< 1e-6)"] = (
        float(an["pf_angle_change"]) < 1e-8 and pf_cdf_err < 1e-6
    )

    # 3. Symmetries detected from the SDE alone, at points along the paths.
    progress("symmetry detection")
    points = xs_full[:4, :: max(1, n_fine // 8)].reshape(-1, 2)
    res = find_symmetries(
        sde, Rotations(2) | Translations(2), points=points,
        times=jnp.array([T_END, 1.0, 5.0, T_START]), args=args,
    )
    gens = res.generators
    rotation_only = False
    if len(gens) == 1:
        M, b = gens[0].affine()
        rotation_only = bool(
            (jnp.max(jnp.abs(b)) < 1e-8) & (jnp.max(jnp.abs(M + M.T)) < 1e-8)
            & (jnp.abs(M[0, 1]) > 0.1)
        )
    numbers["symmetries"] = dict(
        found=[g.describe() for g in gens], singular_values=res.singular_values,
        time_translation=bool(res.time_translation), time_dependence=res.time_dependence,
    )
    checks["find_symmetries: the rotation only (no translation); time_translation False"] = (
        rotation_only and not bool(res.time_translation)
    )

    progress("figure")
    figures = [_figure(folder, ts, xs_full, xs_paper, pf, an, labels, image_axis, args,
                       refinement)]
    seconds = time.perf_counter() - start_clock
    numbers["seconds"] = seconds
    markdown = _markdown(numbers, labels)
    progress("done")
    numbers["key_result"] = "L constant to " + f"{max(float(p['L_relative_variation']) for p in numbers['paths']):.0e}" + "; energy not conserved"
    return CaseReport(
        name=NAME, title=TITLE, numbers=numbers, markdown=markdown, figures=figures,
        checks=checks, seconds=seconds,
    )


# --------------------------------------------------------------------------- report


def _f(x, spec=".4g") -> str:
    return format(float(x), spec)


def _span(values, spec) -> str:
    """`min–max` of some values, or one value when both print the same."""
    lo, hi = _f(jnp.min(jnp.asarray(values)), spec), _f(jnp.max(jnp.asarray(values)), spec)
    return lo if lo == hi else f"{lo}–{hi}"


def _markdown(numbers, labels) -> str:
    rows, pv, pf = numbers["paths"], numbers["paper_variant"], numbers["pf_ode"]
    n = numbers["node_counts"][-1]
    table = (
        "| end | S (full L) | L = x₁p₂ − x₂p₁ | rel. var. of L | angle swept | min \\|x\\| "
        "| H at t0 → t1 | S′ (paper's L′) | L′ = x×ẋ/2t | S_FW of the L′ path |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    L_max = max(abs(float(r["L"])) for r in rows)

    def sweep(r):
        # A path with L = 0 is radial: through the origin, or out and back along a ray.
        return "radial" if abs(float(r["L"])) < 1e-10 * L_max else _f(r["angle_swept"], ".3f")

    for i, r in enumerate(rows):
        table += (
            f"| {r['end']} | {_f(r['action'], '.6f')} | {_f(r['L'], '.4e')} | "
            f"{_f(r['L_relative_variation'], '.0e')} | {sweep(r)} | "
            f"{_f(r['min_radius'], '.3f')} | {_f(r['E_start'], '.2g')} → {_f(r['E_end'], '.3g')} "
            f"| {_f(pv['action_own'][i], '.5f')} | {_f(pv['L'][i], '.4e')} | "
            f"{_f(pv['action_fw'][i], '.5f')} |\n"
        )
    sub_n = numbers["refinement_subgrid_nodes"]
    ratios = ", ".join(_f(r, ".2f") for r in numbers["refinement_subgrid_ratio"][:4])
    err = _f(jnp.max(numbers["action_relative_error_finest"][:4]), ".1e")
    err2 = _f(jnp.max(numbers["second_grid_relative_error"][:4]), ".1e")
    if numbers["quick"]:
        conv = (
            f"(Quick run: on the nested {sub_n[0]}-, {sub_n[1]}- and {sub_n[2]}-node sub-grids "
            f"the difference ratios are {ratios}, not yet the asymptotic 4.) "
        )
    else:
        conv = (
            f"The actions are converged: the {n}-node paths restricted to the nested "
            f"{sub_n[0]}- and {sub_n[1]}-node sub-grids give difference ratios {ratios} (second "
            f"order), the {n}-node actions are within {err} (relative) of the Richardson "
            f"extrapolation, and an independent {n}-node grid (geometric in `t + 1`) within "
            f"{err2}. "
        )
    syms = numbers["symmetries"]
    gap = _f(jnp.max(pv["max_distance_to_full_path"][:4]), ".2f")
    excess = _span(pv["fw_action_excess"][:4], ".4f")
    ratio = _span(jnp.asarray(pv["L"][:3]) / jnp.asarray([r["L"] for r in rows[:3]]), ".2f")
    r3 = numbers["radius_at_t3"]
    r3_full, r3_paper = _span(r3["full"][:4], ".1f"), _span(r3["paper"][:4], ".1f")
    s_ml = _f(pf["action_of_most_likely_path_to_its_end"], ".2g")
    L = [float(r["L"]) for r in rows]
    through = abs(L[3]) < 1e-10 * max(abs(x) for x in L[:3])
    parts = [
        f"Reverse VE diffusion (`D = t`) from `(0, 10)` at `t = 10^1.5` to the ring `R = 5` at "
        f"`t = 10^-0.4`, {n} nodes geometric in `t`. `p = ½D⁻¹(ẋ − f)` with `ẋ = dx/dt` and `t` "
        "decreasing, so `L > 0` and a negative angle swept are a clockwise turn in sampling "
        "order. `H` is the quasi-energy `pᵀDp + fᵀp`.\n\n",
        table,
        "\n",
        f"`nj.find_symmetries` on rotations ⊕ translations finds only {', '.join(syms['found'])}, "
        f"and no time translation. {conv}Along every converged path `L` is constant to round-off "
        "while `H` grows by orders of magnitude, exactly as `E(t1) − E(t0) = ∫∂ₜH dt`. "
        "`L` is not monotonic in the end angle: the paths first contract towards the centre "
        "and make their turn there, at large `t` and small `|x|`, where `θ̇ = 2tL/r²` is cheap "
        "to get"
        + (
            "; to −π/2 the most likely path runs straight through the origin with `L = 0`, also "
            "from the paper's polar-spiral initial path. "
            if through else ". "
        ),
        "The paper's code (`fig2-diffusion.ipynb` in john-vastola/noether-neurreps24, whose "
        "caption shows 'most likely transition paths given a fixed starting point … and "
        "different angular momentum values' and, dashed, 'the PF-ODE trajectory') drops the "
        "cross term `ẋ·s`, which is not a total derivative "
        "(`ẋ·s = d log p/dt − t(∇·s + |s|²)`): its `L′` is still rotation invariant "
        "and conserves its own `x×ẋ/2t` (the same function as `x×p`, since `x×s = 0`), but its "
        f"paths are different: {ratio} times the angular momentum, out at `|x| ≈ {r3_paper}` "
        f"already at `t ≈ 3` where the true paths are at {r3_full}, up to {gap} away from them, "
        f"and less likely under the full action by {excess}. ",
        "The probability-flow ODE moves along rays (`L = 0`) and keeps the radial CDF: from "
        f"`(0, 10)`, at the {_f(100 * pf['radial_cdf_start'][0], '.1f')}% radial quantile of "
        f"`p(·|t0)`, it ends at `(0, {_f(pf['end_radius_from_start'], '.3f')})`, inside the ring, "
        "where the paper's notebook draws it as the segment from `(0, 2R)` to `(0, R)`; the most "
        f"likely path to that end point (action {s_ml} vs {_f(pf['action_of_pf_path'], '.3f')} "
        "for the PF-ODE path) first dips to "
        f"`|x| = {_f(rows[5]['min_radius'], '.2f')}`.",
    ]
    return "".join(parts)


def _figure(folder, ts, xs_full, xs_paper, pf, an, labels, image_axis, args, refinement) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full, pap = an["full"], an["paper"]
    colors = ["tab:green", "gold", "tab:orange", "tab:red", "tab:purple", "tab:gray"]
    lo, hi = float(image_axis[0]), float(image_axis[-1])
    extent = (lo, hi, lo, hi)
    fig, axes = plt.subplots(2, 3, figsize=(17, 10.5))

    def background(ax, title):
        im = ax.imshow(an["density"], origin="lower", extent=extent, cmap="Blues")
        ax.plot(*X_START, "ko", ms=7)
        ax.set(title=title, xlabel="x₁", ylabel="x₂", xlim=(lo, hi), ylim=(lo, hi))
        return im

    # (a) most likely paths over the density at the end time, with the score field.
    ax = axes[0, 0]
    im = background(ax, "Most likely paths (full Lagrangian)")
    fig.colorbar(im, ax=ax, label=f"p(x | t = {T_END:.2f})", shrink=0.8)
    QX, QY, sc = an["quiver"]
    ax.quiver(QX, QY, sc[..., 0], sc[..., 1], color="0.45", alpha=0.7,
              label=f"score, t = {QUIVER_TIME:g}")
    for i, lab in enumerate(labels):
        ax.plot(xs_full[i, :, 0], xs_full[i, :, 1], color=colors[i], lw=2,
                ls="--" if i >= 4 else "-", label=f"to {lab}")
    ax.legend(fontsize=7, loc="lower left")

    # (b) PF-ODE paths.
    ax = axes[0, 1]
    ax.add_patch(plt.Circle((0, 0), RADIUS, fill=False, lw=5, alpha=0.35, color="tab:blue",
                            label=f"data ring, R = {RADIUS:g}"))
    ax.plot(*X_START, "ko", ms=7)
    ax.set(title="Probability-flow ODE (diffrax): rays", xlabel="x₁", ylabel="x₂",
           aspect="equal")
    for j in range(pf.shape[0]):
        label = {0: "PF-ODE from (0, 10)", 1: "PF-ODE, other starts"}.get(j)
        ax.plot(pf[j, :, 0], pf[j, :, 1], color="k", lw=2.5 if j == 0 else 1,
                ls="--" if j == 0 else "-", label=label)
        ax.plot(pf[j, 0, 0], pf[j, 0, 1], "k.", ms=6)
        ax.plot(pf[j, -1, 0], pf[j, -1, 1], "k^", ms=5)
    ax.plot(xs_full[5, :, 0], xs_full[5, :, 1], color=colors[5], lw=2,
            label="most likely path to the PF-ODE end")
    far = 1.05 * float(jnp.max(jnp.abs(pf[:, 0])))
    ax.set(xlim=(-far, far), ylim=(-far, far))
    ax.legend(fontsize=7, loc="lower left")

    # (c) the paper's Lagrangian against the full one.
    ax = axes[0, 2]
    background(ax, "Cross term ẋ·s dropped (paper, dotted) vs full")
    for i in range(4):
        ax.plot(xs_full[i, :, 0], xs_full[i, :, 1], color=colors[i], lw=2,
                label="full L" if i == 0 else None)
        ax.plot(xs_paper[i, :, 0], xs_paper[i, :, 1], color=colors[i], lw=2, ls=":",
                label="paper's L′" if i == 0 else None)
    ax.legend(fontsize=8, loc="lower left")

    # (d) angular momentum.
    ax = axes[1, 0]
    for i, lab in enumerate(labels[:5]):
        ax.plot(ts, full["L"][i], color=colors[i], lw=2, ls="--" if i == 4 else "-",
                label=f"to {lab}")
        ax.plot(ts, pap["L"][i], color=colors[i], lw=1.2, ls=":")
    ax.set(xscale="log", xlabel="t (sampling runs from right to left)",
           ylabel="L = x₁p₂ − x₂p₁", title="Angular momentum: constant (dotted: paper's L′)")
    ax.legend(fontsize=7)

    # (e) quasi-energy.
    ax = axes[1, 1]
    for i, lab in enumerate(labels):
        ax.plot(ts, full["E"][i], color=colors[i], lw=2, ls="--" if i >= 4 else "-",
                label=f"to {lab}")
    ax.set(xscale="log", xlabel="t", ylabel="H = pᵀDp + fᵀp",
           title="Quasi-energy: not conserved (f, D depend on t)")
    ax.legend(fontsize=7)

    # (f) convergence of the action, or the radius along the paths.
    ax = axes[1, 2]
    sub = full["sub_actions"].T
    n_fine = ts.shape[0]
    ns = jnp.array([(n_fine - 1) // 4 + 1, (n_fine - 1) // 2 + 1, n_fine])
    ref = sub[2] + (sub[2] - sub[1]) / 3
    for i, lab in enumerate(labels[:4]):
        ax.loglog(ns, jnp.abs(sub[:, i] - ref[i]), "o-", color=colors[i], mfc="none",
                  label=f"to {lab}" + (" (restricted to sub-grids)" if i == 0 else ""))
        second = refinement[-1]["actions_second_grid"][i]
        ax.loglog(n_fine, jnp.abs(second - ref[i]), "s", color=colors[i],
                  label="second grid (geometric in t + 1)" if i == 0 else None)
    top = float(jnp.max(jnp.abs(sub[0, :4] - ref[:4])))
    ax.loglog(ns, top * (ns[0] / ns) ** 2, "k--", label="∝ n⁻²")
    ax.set(xlabel="nodes", ylabel="|S_n − S_extrapolated|",
           title="Action under refinement (grid geometric in t)")
    ax.legend(fontsize=7)

    fig.tight_layout()
    name = "case4_diffusion_ring.png"
    fig.savefig(folder / name, dpi=100)
    plt.close(fig)
    return name
