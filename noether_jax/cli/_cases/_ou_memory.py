r"""Case study 2 of the seed paper: a single-attractor memory (2-D Ornstein–Uhlenbeck).

$$\mathrm{d}x = -x\,\mathrm{d}t + \sqrt{2D}\,\mathrm{d}W, \qquad D = 1,\ x ∈ \mathbb{R}^2,$$

from `x0 = (−2, 2)` to `x1 = (2, 2)`, fast (`T = 1`: directly) and slow (`T = 10`: down
into the attractor at the origin, then up again). Drift and noise are rotation symmetric
and autonomous, so the quasi-angular momentum `L = x₁p₂ − x₂p₁` and the quasi-energy
`E = pᵀDp + fᵀp` are conserved.

Closed forms (docs/conventions.md, `A = −I`): `G(t) = D(1 − e^{−2t}) I`, `r = x1 − e^{−T}x0`,
`S* = ½ rᵀG(T)⁻¹r`, `p(T) = G(T)⁻¹r`, `p(t) = e^{−(T−t)} p(T)` and
`x(t) = e^{−t}x0 + e^{−(T−t)} G(t) p(T)`.
"""

import math
import pathlib
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from noether_jax import SDE, charge_report, minimize_action, momentum
from ._common import CaseReport, Progress, ProgressLike, out_dir

NAME = "ou-memory"
TITLE = "Single-attractor memory (2-D Ornstein-Uhlenbeck): fast and slow recall paths"
FIGURE = "case2_ou_memory.png"

D_NOISE = 1.0
X0, X1 = (-2.0, 2.0), (2.0, 2.0)
DURATIONS = (1.0, 10.0)
# Node counts of the refinement study (h halves); the finest is the reported solution.
NODES_FULL = (101, 201, 401)
NODES_QUICK = (41, 81)  # two levels: one compilation fewer in the tests
# T = 10: spacing 5.5× finer at the ends than in the middle (tanh map), where the path
# moves (relaxation and escape take ~1 time unit each); in between it rests at the attractor.
TANH_STRETCH = 1.5


def _drift(t, x, args):
    return -x


def _rotation(x):
    # ξ = (−x₂, x₁): its charge p·ξ = x₁p₂ − x₂p₁ is the quasi-angular momentum L.
    return jnp.stack([-x[1], x[0]])


def time_grid(n: int, T: float) -> Float[Array, " n"]:
    """Node positions in `[0, 1]`: uniform for `T ≤ 1`, else denser at both ends."""
    s = jnp.linspace(0.0, 1.0, n)
    if T <= 1.0:
        return s
    b = TANH_STRETCH
    u = 0.5 + jnp.tanh(b * (2 * s - 1)) / (2 * math.tanh(b))
    return u.at[0].set(0.0).at[-1].set(1.0)


def closed_form(T, ts: Float[Array, " n"], D: float = D_NOISE) -> dict[str, Array]:
    """Minimal action, path, momentum and the two charges for `f = −x`, `D·I` (traceable)."""
    x0, x1 = jnp.array(X0), jnp.array(X1)
    G = lambda t: D * (1 - jnp.exp(-2 * t))
    r = x1 - jnp.exp(-T) * x0
    pT = r / G(T)
    ps = jnp.exp(ts - T)[:, None] * pT
    xs = jnp.exp(-ts)[:, None] * x0 + (jnp.exp(ts - T) * G(ts))[:, None] * pT
    p0 = ps[0]
    return {
        "action": 0.5 * r @ pT,
        "xs": xs,
        "ps": ps,
        "energy": D * p0 @ p0 - x0 @ p0,
        "angular_momentum": x0[0] * p0[1] - x0[1] * p0[0],
    }


@eqx.filter_jit
def _errors(sde: SDE, ts, xs, T) -> tuple[Array, Array, dict[str, Array]]:
    """Max errors of the path and of its momenta against the closed form (one compiled
    function per node count, rather than many small ones)."""
    exact = closed_form(T, ts)
    p = momentum(sde, (ts, xs))
    return jnp.max(jnp.abs(xs - exact["xs"])), jnp.max(jnp.abs(p - exact["ps"])), exact


def _slope(hs, errors) -> float:
    """Least-squares slope of log(error) against log(h): the order of convergence."""
    lx, ly = jnp.log(jnp.asarray(hs)), jnp.log(jnp.abs(jnp.asarray(errors)))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float(jnp.sum(lx * ly) / jnp.sum(lx * lx))


def _solve(sde, T, n):
    x0, x1 = jnp.array(X0), jnp.array(X1)
    # The same compiled solver serves both durations and every grid of n nodes.
    # throw=False: a failed solve is reported by the checks, not raised.
    return minimize_action(sde, x0, x1, 0.0, T, grid=time_grid(n, T), throw=False)


def _figure(path: pathlib.Path, finals: dict, study: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {1.0: "tab:red", 10.0: "tab:blue"}

    ax = axes[0]
    g = jnp.linspace(-3.0, 3.0, 25)
    X, Y = jnp.meshgrid(g, g)
    F = _drift(0.0, jnp.stack([X, Y]), None)
    # matplotlib's streamplot wants host (NumPy) arrays; device_get returns them.
    X, Y, U, V, speed = jax.device_get((X, Y, F[0], F[1], jnp.hypot(F[0], F[1])))
    ax.streamplot(X, Y, U, V, color=speed, cmap="Greys", density=0.9, linewidth=0.8)
    for T, r in finals.items():
        sol, exact = r["sol"], r["exact"]
        ax.plot(sol.xs[:, 0], sol.xs[:, 1], "o-", ms=2, lw=1.5, color=colors[T],
                label=f"T = {T:g}, solved (S = {float(sol.action):.4f})")
        ax.plot(exact["xs"][:, 0], exact["xs"][:, 1], "k--", lw=0.8,
                label="closed form" if T == 10.0 else None)
    ax.plot(*X0, "ko", ms=7, label="start (−2, 2)")
    ax.plot(*X1, "k*", ms=13, label="end (2, 2)")
    ax.plot(0, 0, "kx", ms=9, label="attractor")
    ax.set(title="Most likely paths over the drift f = −x", xlabel="x₁", ylabel="x₂",
           xlim=(-3, 3), ylim=(-1, 3), aspect="equal")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1]
    for T, r in finals.items():
        sol, rep, exact = r["sol"], r["report"], r["exact"]
        s = (sol.ts - sol.ts[0]) / T
        ax.plot(s, rep.energy / exact["energy"], "-", color=colors[T],
                label=f"E(t) / E*, T = {T:g} (E* = {float(exact['energy']):.4g})")
        ax.plot(s, rep.charges[0] / exact["angular_momentum"], "--", color=colors[T],
                label=f"L(t) / L*, T = {T:g} (L* = {float(exact['angular_momentum']):.4g})")
    ax.set(title="Quasi-energy and quasi-angular momentum\n(divided by their closed forms)",
           xlabel="t / T", ylabel="charge / closed form")
    ax.legend(fontsize=7)

    ax = axes[2]
    for T, st in study.items():
        hs = jnp.asarray(st["h"])
        ax.loglog(hs, st["action_rel_error"], "o-", color=colors[T],
                  label=f"action rel. error, T = {T:g} (order {st['action_order']:.2f})")
        ax.loglog(hs, st["path_max_error"], "s--", color=colors[T],
                  label=f"path max error, T = {T:g} (order {st['path_order']:.2f})")
        ref = st["path_max_error"][-1] * (hs / hs[-1]) ** 2
        ax.loglog(hs, ref, ":", color="0.5", label="slope 2" if T == 1.0 else None)
    ax.set(title="Convergence under refinement", xlabel="largest time step h",
           ylabel="error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    out: str | pathlib.Path | None,
    *,
    quick: bool = False,
    progress: ProgressLike | None = None,
) -> CaseReport:
    """Run case study 2 (see the module docstring). `quick=True` refines over 41/81 nodes
    (the tests); otherwise 101/201/401."""
    start = time.perf_counter()
    progress = Progress(NAME) if progress is None else progress
    folder = out_dir(out)
    nodes = NODES_QUICK if quick else NODES_FULL
    sde = SDE(_drift, D_NOISE)
    x64 = jnp.zeros(()).dtype == jnp.float64

    study: dict[float, dict[str, Any]] = {T: {"n_nodes": list(nodes), "h": [],
                                               "action": [], "action_rel_error": [],
                                               "path_max_error": [], "momentum_max_error": [],
                                               "converged": [], "newton_steps": []}
                                          for T in DURATIONS}
    finals: dict[float, dict[str, Any]] = {}
    t = time.perf_counter()
    for n in nodes:
        progress(f"paths for T = {', '.join(f'{T:g}' for T in DURATIONS)} on {n} nodes")
        for T in DURATIONS:
            sol = _solve(sde, T, n)
            path_err, p_err, exact = _errors(sde, sol.ts, sol.xs, jnp.asarray(T))
            S_exact = float(exact["action"])
            st = study[T]
            st["h"].append(float(jnp.max(jnp.diff(sol.ts))))
            st["action"].append(float(sol.action))
            st["action_rel_error"].append(abs(float(sol.action) - S_exact) / S_exact)
            st["path_max_error"].append(float(path_err))
            st["momentum_max_error"].append(float(p_err))
            st["converged"].append(bool(sol.converged))
            st["newton_steps"].append(int(sol.stats["num_steps"]))
            finals[T] = {"sol": sol, "exact": exact}
    t_solve = time.perf_counter() - t

    # Why the T = 10 grid is stretched: the uniform grid of as many nodes, for comparison.
    n = nodes[-1]
    T_slow = DURATIONS[-1]
    sol_u = minimize_action(sde, jnp.array(X0), jnp.array(X1), 0.0, T_slow,
                            grid=jnp.linspace(0.0, 1.0, n), throw=False)
    uniform_path_error = float(_errors(sde, sol_u.ts, sol_u.xs, jnp.asarray(T_slow))[0])

    progress("charges along the finest paths")
    results: dict[str, Any] = {}
    for T in DURATIONS:
        st = study[T]
        st["action_order"] = _slope(st["h"], st["action_rel_error"])
        st["path_order"] = _slope(st["h"], st["path_max_error"])
        sol, exact = finals[T]["sol"], finals[T]["exact"]
        rep = charge_report(sde, sol, [_rotation], names=["L"])
        finals[T]["report"] = rep
        E_mean, L_mean = float(rep.energy_mean), float(rep.means[0])
        E_exact, L_exact = float(exact["energy"]), float(exact["angular_momentum"])
        results[f"T={T:g}"] = {
            "T": T,
            "n_nodes": n,
            "grid": "uniform" if T <= 1.0 else f"tanh-stretched (b = {TANH_STRETCH})",
            "converged": bool(sol.converged),
            "action": float(sol.action),
            "action_closed_form": float(exact["action"]),
            "action_rel_error": st["action_rel_error"][-1],
            "path_max_error": st["path_max_error"][-1],
            "momentum_max_error": st["momentum_max_error"][-1],
            "energy_closed_form": E_exact,
            "energy_mean": E_mean,
            # Errors and variations relative to the charge's size mean |p||ξ| (charge_report),
            # so the slow path's nearly vanishing E (∝ e^{−2T}) is not divided by ~0.
            "energy_error": abs(E_mean - E_exact) / float(rep.energy_scale),
            "energy_relative_variation": float(rep.energy_relative_variation),
            "angular_momentum_closed_form": L_exact,
            "angular_momentum_mean": L_mean,
            "angular_momentum_error": abs(L_mean - L_exact)
            / float(rep.scales[0]),
            "angular_momentum_relative_variation": float(rep.relative_variations[0]),
            "refinement": st,
        }
    results[f"T={T_slow:g}"]["uniform_grid_path_max_error"] = uniform_path_error

    progress("figure")
    _figure(folder / FIGURE, finals, study)

    fast, slow = results[f"T={DURATIONS[0]:g}"], results[f"T={T_slow:g}"]
    tol_S = 1e-4 if x64 else 1e-3  # T = 1 at the finest grid: ~3e-7 (full), ~7e-6 (quick)
    tol_Q = 1e-8 if x64 else 1e-4  # charge variations: round-off (~1e-14) for L and E
    tol_Qerr = 1e-3  # charge means against the closed forms: O(h²)
    checks = {
        "all solves converged": all(all(study[T]["converged"]) for T in DURATIONS),
        **{f"action rel. error < {tol_S:g} (T = {r['T']:g})": r["action_rel_error"] < tol_S
           for r in (fast, slow)},
        **{f"E and L relative variation < {tol_Q:g} (T = {r['T']:g})":
           max(r["energy_relative_variation"], r["angular_momentum_relative_variation"]) < tol_Q
           for r in (fast, slow)},
        **{f"E and L match their closed forms (error / scale < {tol_Qerr:g}, T = {r['T']:g})":
           max(r["energy_error"], r["angular_momentum_error"]) < tol_Qerr
           for r in (fast, slow)},
        "action error is second order (T = 1: 1.8 < order < 2.2)":
            1.8 < study[DURATIONS[0]]["action_order"] < 2.2,
        "path error is second order (T = 10: 1.8 < order < 2.2)":
            1.8 < study[T_slow]["path_order"] < 2.2,
    }
    numbers = {
        "parameters": {"D": D_NOISE, "x0": list(X0), "x1": list(X1),
                       "durations": list(DURATIONS)},
        "node_counts": list(nodes),
        **results,
        "seconds_solves": t_solve,
    }

    def row(r):
        return (f"| {r['T']:g} | {r['n_nodes']} ({'uniform' if r['T'] <= 1 else 'stretched'}) "
                f"| {r['action']:.10f} | {r['action_closed_form']:.10f} "
                f"| {r['action_rel_error']:.1e} | {r['path_max_error']:.1e} "
                f"| {r['energy_mean']:.6g} ({r['energy_relative_variation']:.0e}) "
                f"| {r['angular_momentum_mean']:.6g} "
                f"({r['angular_momentum_relative_variation']:.0e}) |")

    sf, ss = study[DURATIONS[0]], study[T_slow]
    charge_err = max(r[k] for r in (fast, slow) for k in ("energy_error", "angular_momentum_error"))
    markdown = f"""\
`f = −x`, D = {D_NOISE:g}, from (−2, 2) to (2, 2). Closed forms: S* = ½ rᵀG⁻¹r, \
G = (1 − e^(−2T)) I, r = x1 − e^(−T) x0.

| T | nodes (grid) | action S | closed form S* | rel. error | path max error \
| E (rel. variation) | L (rel. variation) |
|---|---|---|---|---|---|---|---|
{row(fast)}
{row(slow)}

Refinement over {', '.join(map(str, nodes))} nodes: action error order \
{sf['action_order']:.2f} (T = 1) and {ss['action_order']:.2f} (T = 10); path error order \
{sf['path_order']:.2f} and {ss['path_order']:.2f}. The closed forms are E* = \
{fast['energy_closed_form']:.6g}, L* = {fast['angular_momentum_closed_form']:.6g} (T = 1) and \
E* = {slow['energy_closed_form']:.3g}, L* = {slow['angular_momentum_closed_form']:.3g} (T = 10); \
the solved means agree to {charge_err:.0e} of their scale (mean |p||ξ|). Relative to the \
exponentially small charges of the slow path the O(h²) error of the momenta is visible: \
E/E* = {slow['energy_mean'] / slow['energy_closed_form']:.4f} and \
L/L* = {slow['angular_momentum_mean'] / slow['angular_momentum_closed_form']:.4f} at T = 10 \
(the middle panel of the figure), against \
E/E* = {fast['energy_mean'] / fast['energy_closed_form']:.6f} at T = 1.

The fast path cuts across the drift; the slow one relaxes into the attractor and escapes \
along the time-reversed relaxation, so its action is the quasipotential difference \
|x1|²/2 − 0 = 4 up to O(e^(−T)), and its charges are exponentially small (E ∝ e^(−2T), \
L ∝ e^(−T)): the slow path has forgotten where it started, and its charges are only \
meaningful from a converged solve. L is constant to round-off on both paths (the midpoint \
rule is a variational integrator), and so is E here (for this linear drift; in general E is \
constant to O(h²)). At T = 10 the action error is already {ss['action_rel_error'][0]:.0e} on \
{nodes[0]} nodes, because the discrete action splits like the continuum one \
(¼h|Δ/h + m|² = ¼h|Δ/h − m|² + Δ·m, with m the midpoint and Δ the step): a descent and an \
escape along trapezoidal steps cost exactly 0 and the rise of |x|²/2 on any grid, and only \
their O(e^(−T)) coupling carries a discretisation error. The path error is the honest measure \
there, and the grid stretched towards both ends, where the path moves, gives \
{slow['path_max_error']:.1e}, against {uniform_path_error:.1e} on a uniform grid of {n} nodes.
"""
    numbers["key_result"] = "; ".join(
        f"T={numbers[k]['T']:g}: S error {numbers[k]['action_rel_error']:.0e}, "
        f"L varies {numbers[k]['angular_momentum_relative_variation']:.0e}"
        for k in ("T=1", "T=10")
    )
    return CaseReport(
        name=NAME,
        title=TITLE,
        numbers=numbers,
        markdown=markdown,
        figures=[FIGURE],
        checks=checks,
        seconds=time.perf_counter() - start,
    )
