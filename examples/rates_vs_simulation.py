r"""Escape rates with prefactors (Eyring–Kramers, Bouchet–Reygner) against direct simulation.

For `dx = f(x) dt + sqrt(2δ) dW` in 2-D with the potential

    V(x, y) = V₁(x) + y²,

`V₁` a double well with minima at x = ±1 (curvature 4), a maximum at 0 (curvature −4) and
barrier ΔV ≈ 1: the quadratics `2(x ± 1)²` and `1 − 2x²`, joined smoothly at `|x| = ½`
(logistic blend of width 0.05). The blend keeps the potential quadratic within several noise
widths of the minimum and the saddle, so that the `O(δ)` corrections to the small-noise
formulas are small already at barriers 4–6 that direct simulation can afford.

Three drifts share the fixed points `a = (−1, 0)`, `s = (0, 0)`, `b = (1, 0)` and the
quasipotential `V/δ` (because `∇V·ℓ = 0`), so the barrier `ΔV/δ` is known exactly:

1. `gradient`: `f = −∇V` (Eyring–Kramers);
2. `rotating`: `f = −(I + γJ)∇V`, `J` the rotation by 90°, `γ = ½`: `ℓ = γJ∇V`,
   `∫∇·ℓ dt = 0`, but `λ⁺` changes (Bouchet–Reygner with a zero divergence term);
3. `varying rotation`: `f = −∇V − γ(1 + c·y)J∇V`, `γ = ½`, `c = 2`: `∇·ℓ = γc ∂ₓV ≠ 0`.
   This one fixes the sign of the divergence term: with `f = −∇V − ℓ` the prefactor carries
   `exp(+∫∇·ℓ dt)`; the opposite sign (Bouchet–Reygner's own, whose drift is `−∇V + ℓ`)
   would predict exit times `exp(2∫∇·ℓ dt)` times longer (column `T(−∫∇·ℓ)`), which the
   simulation rules out by many standard errors;

and 4. the 1-D well `V₁` alone, where the mean first-passage time is an exact double
integral, `T(a→b) = (1/δ) ∫_a^b e^{V₁(y)/δ} ∫_{−∞}^y e^{−V₁(z)/δ} dz dy` (trapezoidal
quadrature on a fine grid), compared with Eyring–Kramers at barriers 4–20.

**The simulated event.** A path starts at `a` and stops when `x ≥ 1`, i.e. when it reaches
the other attractor's position along the axis (the half-plane through `b`; in 1-D exactly
`T(a→b)`). This is what `1/k` describes as `δ → 0`: the time to cross the saddle *and* be
committed to the other basin. Stopping at the saddle instead would give about half of it
(a path at the saddle falls back with probability ½), and stopping just past it a fraction
depending on how many noise widths past. The time from the saddle region to `x = 1` is
`O(log(1/δ))`, negligible against `1/k` at these barriers. For system 1, whose `x` is a
1-D diffusion in `V₁` (the `y` part is an independent Ornstein–Uhlenbeck process), the exact
`T(a→b)` of (4) is listed next to the simulation: it checks the simulation itself
(Euler–Maruyama bias, statistics).

**The simulation.** diffrax Euler–Maruyama (`diffrax.Euler` on a `MultiTerm` of the drift and
`sqrt(2δ) dW` from `diffrax.UnsafeBrownianPath`), float64, `dt = 0.005` (the stiffest rate
is 4, the rotation at the attractors `8γ = 4`; see examples/RATES.md for the effect of
`dt`: with `γ = 1` the rotation is twice as fast and the Euler–Maruyama bias at this `dt`
is about −5% in the exit time). The independent paths
are one batched state (each step draws all their increments at once, which is several times
faster than a `jax.vmap` of single-path solves); a path that reaches `x ≥ 1` is absorbed
there and its clock stops, and a `diffrax.Event` ends the solve when all have, or at the
horizon `t_max` (by default the predicted mean exit time: about 63% of the paths exit; a
longer horizon costs more per exit, because the absorbed paths still take steps). The exit
times are
exponential (after an `O(1)` transient), so the estimate is the censored maximum-likelihood
one, `T̂ = Σᵢ min(τᵢ, t_max) / #exits`, with standard error `T̂/sqrt(#exits)` (and
`±1/sqrt(#exits)` on `log T̂`).

Run (prints the table; a few minutes on two CPU cores):

    python examples/rates_vs_simulation.py
    python examples/rates_vs_simulation.py --paths 1000 --barriers 4 5   # quicker

The measured table is recorded in examples/RATES.md.
"""

import argparse
import math
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

import noether_jax as nj

jax.config.update("jax_enable_x64", True)

KAPPA = 4.0  # curvature at the minima and (negated) at the saddle of V₁
WIDTH = 0.05  # width of the blend between the quadratic pieces
ROT = jnp.array([[0.0, -1.0], [1.0, 0.0]])
SYSTEMS = {  # (γ, c) in f = −∇V − γ(1 + c·y) J∇V
    "gradient": (0.0, 0.0),
    "rotating": (0.5, 0.0),
    "varying rotation": (0.5, 2.0),
}


def V1(x):
    """The 1-D double well: `2(x+1)²`, `1 − 2x²`, `2(x−1)²` blended at `x = ∓½`."""
    wl = jax.nn.sigmoid((-x - 0.5) / WIDTH)
    wr = jax.nn.sigmoid((x - 0.5) / WIDTH)
    barrier_part = KAPPA / 4 - 0.5 * KAPPA * x**2
    return (
        (1 - wl - wr) * barrier_part
        + wl * 0.5 * KAPPA * (x + 1) ** 2
        + wr * 0.5 * KAPPA * (x - 1) ** 2
    )


def V(z):
    return V1(z[0]) + z[1] ** 2


def drift(t, z, p):
    gv = jax.grad(V)(z)
    return -gv - p[0] * (1 + p[1] * z[1]) * (ROT @ gv)


def drift_1d(t, x, args):
    return -jax.grad(lambda u: V1(u[0]))(x)


def _newton(z):
    grad = jax.grad(V)
    for _ in range(30):
        z = z - jnp.linalg.solve(jax.hessian(V)(z), grad(z))
    return z


A = _newton(jnp.array([-1.0, 0.0]))
S = _newton(jnp.array([0.0, 0.0]))
DV = float(V(S) - V(A))


# ---------------------------------------------------------------------------------------------
# Predictions.


def predict(p, delta, n_nodes):
    sde = nj.SDE(drift, delta)
    sol = nj.minimize_geometric_action(sde, A, S, n_nodes=n_nodes, args=jnp.asarray(p))
    return nj.escape_rate(sde, A, S, sol.xs, args=jnp.asarray(p))


def exact_mfpt_1d(delta, n=400001):
    """`T(a→b) = (1/δ) ∫_a^b e^{V₁(y)/δ} ∫_{−∞}^y e^{−V₁(z)/δ} dz dy` by the trapezoidal
    rule (in NumPy, float64), scaled to avoid overflow."""
    a, b = float(A[0]), -float(A[0])
    x = np.linspace(a - 2.0, b, n)
    v = np.asarray(jax.vmap(V1)(jnp.asarray(x)))
    va, vs = float(V1(A[0])), float(V1(S[0]))
    f = np.exp(-(v - va) / delta)
    inner = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
    m = x >= a
    g = np.exp((v[m] - vs) / delta) * inner[m]
    outer = np.sum(0.5 * (g[1:] + g[:-1]) * np.diff(x[m]))
    return outer / delta * math.exp((vs - va) / delta)


# ---------------------------------------------------------------------------------------------
# Simulation.


@eqx.filter_jit
def _exit_times(key, p, delta, dt, t_max, n_paths: int):
    """First times at which `n_paths` independent Euler–Maruyama paths from `a` reach
    `x ≥ b_x` (`inf` if not by `t_max`). The paths are one batched state, so each step draws
    all the Brownian increments at once; a path that has crossed is frozen (absorbed), and
    its clock `τ` stops. The solve ends when every path has crossed or at `t_max`."""
    xb = -A[0]
    field = jax.vmap(drift, in_axes=(None, 0, None))

    def vf(t, state, args):
        z, _ = state
        live = (z[:, 0] < xb).astype(z.dtype)
        return field(t, z, p) * live[:, None], live

    def noise(t, state, args):
        z, tau = state
        live = (z[:, 0] < xb).astype(z.dtype)
        amp = jnp.sqrt(2 * delta) * live[:, None] * jnp.ones_like(z)
        return lx.DiagonalLinearOperator((amp, jnp.zeros_like(tau)))

    shape = (jax.ShapeDtypeStruct((n_paths, 2), A.dtype),
             jax.ShapeDtypeStruct((n_paths,), A.dtype))
    bm = diffrax.UnsafeBrownianPath(shape=shape, key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(vf), diffrax.ControlTerm(noise, bm))
    all_crossed = diffrax.Event(lambda t, state, args, **kw: jnp.all(state[0][:, 0] >= xb))
    state0 = (jnp.broadcast_to(A, (n_paths, 2)), jnp.zeros((n_paths,), A.dtype))
    sol = diffrax.diffeqsolve(
        terms, diffrax.Euler(), 0.0, t_max, dt, state0, event=all_crossed,
        saveat=diffrax.SaveAt(t1=True), max_steps=None, throw=False,
        adjoint=diffrax.ForwardMode(),  # forward only (UnsafeBrownianPath)
    )
    z, tau = sol.ys[0][-1], sol.ys[1][-1]
    return tau, z[:, 0] >= xb


def simulate(p, delta, t_max, n_paths, dt, seed):
    """Censored maximum-likelihood estimate of the mean exit time, and the number of exits."""
    tau, hit = _exit_times(jax.random.key(seed), jnp.asarray(p), jnp.asarray(delta),
                           jnp.asarray(dt), jnp.asarray(t_max), n_paths)
    exits = int(hit.sum())
    T = float(tau.sum()) / max(exits, 1)
    return T, exits


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=2500)
    ap.add_argument("--barriers", type=float, nargs="+", default=[4.0, 5.0, 6.0])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--horizon", type=float, default=1.0,
                    help="t_max in units of the predicted mean exit time")
    ap.add_argument("--nodes", type=int, default=201)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-1d", action="store_true")
    args = ap.parse_args()

    print(f"V = V₁(x) + y², ΔV = {DV:.6f}; a = {np.asarray(A).round(6)}, s = {np.asarray(S)}")
    print(f"simulation: {args.paths} paths per row, Euler–Maruyama dt = {args.dt}, float64, "
          f"event x ≥ 1, horizon {args.horizon:g} × predicted\n")
    head = (f"{'system':<17} {'δ':>7} {'ΔV/δ':>6} {'barrier':>8} {'λ⁺':>6} {'∫∇·ℓ':>7} "
            f"{'T pred':>9} {'T sim':>9} {'± s.e.':>7} {'log sim/pred':>15} {'T(−∫∇·ℓ)':>10} "
            f"{'T exact':>9} {'s':>5}")
    print(head)
    print("-" * len(head))
    for name in args.systems:
        p = SYSTEMS[name]
        for B in args.barriers:
            delta = DV / B
            t0 = time.perf_counter()
            r = predict(p, delta, args.nodes)
            T_pred = float(r.mean_exit_time)
            T_sim, exits = simulate(p, delta, args.horizon * T_pred, args.paths, args.dt,
                                    args.seed + int(10 * B))
            se = 1 / math.sqrt(max(exits, 1))
            other = T_pred * math.exp(2 * float(r.divergence_integral))
            exact = f"{exact_mfpt_1d(delta):9.2f}" if name == "gradient" else f"{'':>9}"
            print(f"{name:<17} {delta:7.4f} {B:6.2f} {float(r.barrier):8.4f} "
                  f"{float(r.unstable_eigenvalue):6.3f} {float(r.divergence_integral):7.4f} "
                  f"{T_pred:9.2f} {T_sim:9.2f} {100 * se:6.1f}% "
                  f"{math.log(T_sim / T_pred):7.3f} ± {se:5.3f} {other:10.2f} {exact} "
                  f"{time.perf_counter() - t0:5.0f}", flush=True)

    if not args.skip_1d:
        print("\n1-D double well V₁: exact T(a→b) (quadrature) against Eyring–Kramers")
        print(f"{'ΔV/δ':>6} {'δ':>8} {'T exact':>14} {'T Eyring–Kramers':>17} {'log ratio':>10}")
        sde_pts = jnp.array([float(A[0])]), jnp.array([float(S[0])])
        for B in (4.0, 5.0, 6.0, 8.0, 10.0, 14.0, 20.0):
            delta = DV / B
            sde = nj.SDE(drift_1d, delta)
            xs = jnp.linspace(sde_pts[0], sde_pts[1], 201)
            r = nj.escape_rate(sde, *sde_pts, xs, barrier=DV / delta)
            T_ex = exact_mfpt_1d(delta)
            T_ek = float(r.mean_exit_time)
            print(f"{B:6.1f} {delta:8.5f} {T_ex:14.6g} {T_ek:17.6g} "
                  f"{math.log(T_ex / T_ek):10.4f}")


if __name__ == "__main__":
    main()
