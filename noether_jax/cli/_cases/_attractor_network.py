"""Case 3: the paper's multistable attractor network (Eq. 19), a 2-unit rate network with
steep sigmoids: its fixed points, most likely paths in T = 1 and T = 40, and quasi-energy."""

import time

import diffrax
import jax
import jax.numpy as jnp

from noether_jax import (
    SDE,
    AdaptiveGrid,
    energy,
    find_fixed_points,
    minimize_action,
    minimize_geometric_action,
    route_candidates,
)
from noether_jax._mesh import halve_steps
from ._common import CaseReport, Progress, out_dir

NAME = "attractor-network"
TITLE = "Multistable attractor network (2-unit rate model, steep sigmoids)"

# The paper's parameters (its published code): τ = 1, μ0 = 1.25, c = 1.5, A = 2, I = 0.9,
# sigmoid width n = 0.01, noise σ = 0.4 with D = σ²/τ.
MU0, C, A_EXC, I_INH, WIDTH, SIGMA = 1.25, 1.5, 2.0, 0.9, 0.01, 0.4
X0 = (3.0, 0.1)
X1 = (0.1, 3.0)


def drift(t, z, width):
    s = lambda u: jax.nn.sigmoid((u - C) / width)
    x, y = z[0], z[1]
    return jnp.stack(
        [MU0 + A_EXC * s(x) - I_INH * s(y) - x, MU0 + A_EXC * s(y) - I_INH * s(x) - y]
    )


def network_sde() -> SDE:
    return SDE(drift, SIGMA**2)


def _starts(num_random, key):
    # Random starts rarely land in the sigmoid layers (width 0.01) where the saddles sit; a
    # lattice whose coordinates include the threshold c puts starts inside them.
    lattice = jnp.linspace(0.0, 4.0, 41)
    gx, gy = jnp.meshgrid(lattice, lattice, indexing="ij")
    grid = jnp.stack([gx.ravel(), gy.ravel()], axis=-1)
    rand = jax.random.uniform(key, (num_random, 2), minval=-0.25, maxval=4.25)
    return jnp.concatenate([grid, rand])


def _state_names(stable):
    """Names of the four stable states by which unit is high (above the threshold `c`)."""
    level = lambda v: "high" if v > C else "low"
    return [f"{level(float(x[0]))}-{level(float(x[1]))}" for x in stable]


def _describe(label, names):
    """A candidate's label from `nj.route_candidates` in words: the attractors it waits at
    between the endpoints' own ('straight line', 'direct', or 'via the high-high state')."""
    if label == "straight line":
        return label
    idx = [int(w.split()[1]) for w in label.split(" → ") if w.startswith("attractor")]
    mid = idx[1:-1]
    return "direct" if not mid else "via " + ", ".join(f"{names[i]} state" for i in mid)


def _solve(sde, T, n, init=None, grid=None):
    """One solve on `n` nodes: on an `nj.AdaptiveGrid` (the candidates), or on a given
    `grid` of node fractions (the nested refinements)."""
    if init is None:  # the straight line, passed explicitly: one compilation per n
        init = jnp.linspace(jnp.asarray(X0), jnp.asarray(X1), n)
    return minimize_action(
        sde, jnp.asarray(X0), jnp.asarray(X1), 0.0, T, grid=grid,
        grid_controller=AdaptiveGrid() if grid is None else None, args=WIDTH, init=init,
        # The time spent waiting at an intermediate attractor is a soft, strongly nonlinear
        # mode (the action depends on it through exponentially small tails): Newton's
        # steps along it are short, and a long path can need a thousand of them.
        max_steps=2000, throw=False,
    )


def _simulate(sde, num_paths, t_end, key):
    """Long Euler–Maruyama runs (diffrax) from the four stable states; their late states
    sample the stationary density."""

    def one(x0, k):
        # Fixed-step Euler never revisits a time, so the cheap unsafe Brownian path is exact.
        bm = diffrax.UnsafeBrownianPath(shape=(2,), key=k)
        g = lambda t, x, a: jnp.sqrt(2 * SIGMA**2) * jnp.eye(2)
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(lambda t, x, a: drift(t, x, WIDTH)),
            diffrax.ControlTerm(g, bm),
        )
        saveat = diffrax.SaveAt(ts=jnp.linspace(t_end / 4, t_end, 40))
        sol = diffrax.diffeqsolve(
            terms, diffrax.Euler(), 0.0, t_end, 0.01, x0, saveat=saveat,
            max_steps=int(t_end / 0.01) + 10, adjoint=diffrax.ForwardMode(),
        )
        return sol.ys

    keys = jax.random.split(key, num_paths)
    x0s = jnp.tile(jnp.array([[3.25, 0.35], [0.35, 3.25], [1.25, 1.25], [2.35, 2.35]]),
                   (num_paths // 4 + 1, 1))[:num_paths]
    return jax.jit(jax.vmap(one))(x0s, keys).reshape(-1, 2)


def run(out=None, *, quick: bool = False, progress=None) -> CaseReport:
    start = time.perf_counter()
    progress = Progress(NAME) if progress is None else progress
    out = out_dir(out)
    sde = network_sde()
    numbers: dict = {"parameters": dict(mu0=MU0, c=C, A=A_EXC, I=I_INH, n=WIDTH,
                                        sigma=SIGMA, D=SIGMA**2, x0=X0, x1=X1)}
    checks: dict[str, bool] = {}

    # 1. Fixed points.
    progress("fixed points")
    fps = find_fixed_points(
        sde, points=_starts(256 if quick else 1024, jax.random.key(0)), args=WIDTH,
        scale=2.0,
    )
    kinds = {"stable": fps.stable, "saddle": fps.saddles(index=1), "unstable": fps.unstable}
    numbers["fixed_points"] = {
        k: [[round(float(v), 6) for v in x] for x in sub.xs] for k, sub in kinds.items()
    }
    n_stable, n_saddle, n_unstable = (len(kinds[k]) for k in ("stable", "saddle", "unstable"))
    checks["4 stable states, 4 index-1 saddles, 1 index-2 point"] = (
        (n_stable, n_saddle, n_unstable) == (4, 4, 1)
    )
    stable = fps.stable.xs
    names = _state_names(stable)
    hh = stable[jnp.argmax(jnp.sum(stable, axis=1))]  # high-high
    ll = stable[jnp.argmin(jnp.sum(stable, axis=1))]  # low-low
    a = stable[jnp.argmin(jnp.sum((stable - jnp.asarray(X0)) ** 2, axis=1))]
    b = stable[jnp.argmin(jnp.sum((stable - jnp.asarray(X1)) ** 2, axis=1))]

    # The same sizes in quick mode: compilation, not solving, dominates their cost. The
    # adapted 201-node grid is not yet in the asymptotic range at T = 1 (observed order 1.3
    # from 201/401/801): the order and the Richardson value use the three finest levels.
    ns = (201, 401, 801, 1601)
    results = {}
    for T in (1.0, 40.0):
        progress(f"T = {T:g}: candidate first guesses")
        n0 = ns[0]
        ts0 = jnp.linspace(0.0, T, n0)
        # The library's own candidate routes (`nj.route_candidates`, what
        # `nj.minimize_action` tries at its defaults): the straight line, the direct route
        # between the endpoints' attractors, and a wait at each other attractor.
        paths, labels = route_candidates(
            sde, jnp.asarray(X0), jnp.asarray(X1), 0.0, T, n_nodes=n0, args=WIDTH,
            attractors=stable, max_intermediate=1,
        )
        guesses = {_describe(lab, names): p for lab, p in zip(labels, paths)}
        cands = {k: _solve(sde, T, n0, g) for k, g in guesses.items()}
        cand_S = {k: float(s.action) for k, s in cands.items()}
        ok = [k for k, s in cands.items() if bool(s.converged)]
        best = min(ok, key=cand_S.get)
        cand_S = {k + ("" if k in ok else " (not converged)"): v for k, v in cand_S.items()}
        progress(f"T = {T:g}: best first guess {best} (S = {cand_S[best]:.6f}); refining")
        sols = [cands[best]]
        for n in ns[1:]:
            prev = sols[-1]
            # Nested grids, as `nj.Refine` builds them: every step of the adapted coarse
            # grid halved (the node density is kept, so the action converges at second
            # order and Richardson applies), warm-started from the coarser path.
            s_prev = (prev.ts - prev.ts[0]) / (prev.ts[-1] - prev.ts[0])
            grid, init = halve_steps(s_prev, prev.xs)
            sols.append(_solve(sde, T, n, init, grid))
        S = [float(s.action) for s in sols]
        d1, d2 = abs(S[-2] - S[-3]), abs(S[-1] - S[-2])
        order = float(jnp.log2(d1 / d2)) if d2 > 0 else float("inf")
        richardson = S[-1] + (S[-1] - S[-2]) / 3
        fine = sols[-1]
        E = energy(sde, fine, args=WIDTH)
        E_var = float((jnp.max(E) - jnp.min(E)) / jnp.maximum(jnp.mean(jnp.abs(E)), 1e-300))
        dist = lambda p: jnp.sqrt(jnp.sum((fine.xs - p) ** 2, axis=1))
        near = lambda p: float(jnp.sum(jnp.where(dist(p)[1:] < 0.05, jnp.diff(fine.ts), 0.0)))
        results[T] = dict(sols=sols, E=E)
        numbers[f"T={T:g}"] = {
            "candidates": cand_S,
            "chosen": best,
            "n_nodes": list(ns),
            "actions": S,
            "converged": [bool(s.converged) for s in sols],
            "observed_order": order,
            "richardson_action": richardson,
            "energy_mean": float(jnp.mean(E)),
            "energy_relative_variation": E_var,
            "time_near_high_high": near(hh),
            "time_near_low_low": near(ll),
        }
        checks[f"T={T:g}: every refinement level converged"] = all(
            bool(s.converged) for s in sols
        )
        checks[f"T={T:g}: action converges at order ≈ 2 under refinement"] = 1.6 < order < 2.4

    t40 = numbers["T=40"]
    checks["T=40: the slow path waits at the high-high state, not the low-low one"] = (
        t40["time_near_high_high"] > 1.0 and t40["time_near_low_low"] == 0.0
    )
    checks["T=1: quasi-energy constant (relative variation < 1e-2)"] = (
        numbers["T=1"]["energy_relative_variation"] < 1e-2
    )

    if not quick:
        # Infinite-time cross-check: uphill legs a → saddle → high-high → saddle → b, then
        # b → x1 in the linear region (f = −(x − b): quasipotential |x1 − b|²/(2D)).
        progress("geometric barriers along the route")
        saddles = fps.saddles(index=1).xs
        s1 = saddles[jnp.argmin(jnp.sum((saddles - (a + hh) / 2) ** 2, axis=1))]
        s2 = saddles[jnp.argmin(jnp.sum((saddles - (b + hh) / 2) ** 2, axis=1))]
        g1 = minimize_geometric_action(sde, a, s1, n_nodes=401, args=WIDTH, throw=False)
        g2 = minimize_geometric_action(sde, hh, s2, n_nodes=401, args=WIDTH, throw=False)
        tail = float(jnp.sum((jnp.asarray(X1) - b) ** 2)) / (2 * SIGMA**2)
        route = float(g1.action) + float(g2.action) + tail
        numbers["infinite_time_route"] = {
            "barrier_a_to_saddle": float(g1.action),
            "barrier_high_high_to_saddle": float(g2.action),
            "tail_b_to_x1": tail,
            "total": route,
            "converged": [bool(g1.converged), bool(g2.converged)],
            "T=40 minus route": t40["richardson_action"] - route,
        }
        checks["T=40 action within 1e-3 of the infinite-time route"] = (
            abs(t40["richardson_action"] - route) < 1e-3 * route
        )

    progress("stationary density by SDE simulation (diffrax)")
    cloud = _simulate(sde, 100 if quick else 400, 40.0 if quick else 100.0,
                      jax.random.key(1))
    numbers["simulation"] = {"num_samples": int(cloud.shape[0])}

    progress("figure")
    fig_name = "case3_attractor_network.png"
    _figure(out / fig_name, sde, fps, results, cloud, numbers, ns)

    numbers["seconds"] = time.perf_counter() - start
    md = _markdown(numbers, fig_name, quick)
    numbers["key_result"] = (
        f"{len(numbers['fixed_points']['stable'])} stable states; S(T=40) = "
        f"{numbers['T=40']['richardson_action']:.5f} via the high-high state"
    )
    return CaseReport(NAME, TITLE, numbers, md, [fig_name], checks,
                      seconds=numbers["seconds"])


def _markdown(nb, fig, quick):
    t1, t40 = nb["T=1"], nb["T=40"]
    fp = nb["fixed_points"]
    lines = [
        f"Fixed points: **{len(fp['stable'])} stable** "
        f"({', '.join(str(tuple(round(v, 2) for v in x)) for x in fp['stable'])}), "
        f"{len(fp['saddle'])} index-1 saddles, {len(fp['unstable'])} unstable (index 2). "
        "The paper counts three stable states; the high-high state `(2.35, 2.35)` (both "
        "units above threshold: `μ0 + A − I`) is the fourth.",
        "",
        "| T | nodes (adaptive grid) | actions | observed order | extrapolated S | "
        "quasi-energy (mean, rel. variation) |",
        "|---|---|---|---|---|---|",
    ]
    for T, r in (("1", t1), ("40", t40)):
        lines.append(
            f"| {T} | {', '.join(map(str, r['n_nodes']))} | "
            f"{', '.join(f'{s:.7f}' for s in r['actions'])} | {r['observed_order']:.2f} | "
            f"{r['richardson_action']:.7f} | {r['energy_mean']:.3e}, "
            f"{r['energy_relative_variation']:.1e} |"
        )
    lines += [
        "",
        "First guesses for T = 40 (`nj.route_candidates`) and their converged actions: "
        + ", ".join(f"{k}: {v:.5f}" for k, v in t40["candidates"].items())
        + f" (chosen: {t40['chosen']}). The slow path waits "
        f"{t40['time_near_high_high']:.1f} time units within 0.05 of the high-high state "
        f"and {t40['time_near_low_low']:.1f} near the low-low state: it switches the two "
        "units one at a time through the high-high state, which costs less than the route "
        "through the low-low state (a separate local minimum of the action) and than the "
        "straight line.",
    ]
    if "infinite_time_route" in nb:
        r = nb["infinite_time_route"]
        lines.append(
            f"Infinite-time cross-check: geometric barriers {r['barrier_a_to_saddle']:.5f} + "
            f"{r['barrier_high_high_to_saddle']:.5f} plus the final climb "
            f"{r['tail_b_to_x1']:.5f} give {r['total']:.5f}; the T = 40 action differs by "
            f"{r['T=40 minus route']:.1e}."
        )
    lines += [
        "The sigmoids (width 0.01) make a uniform grid useless at T = 40: the path crosses "
        "each layer in a few hundredths of a time unit. `nj.AdaptiveGrid()` moves the "
        "nodes there; the action then converges at second order.",
    ]
    return "\n".join(lines)


def _figure(path, sde, fps, results, cloud, numbers, ns):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 10))
    ax = axes[0, 0]
    ax.hist2d(cloud[:, 0].tolist(), cloud[:, 1].tolist(), bins=80,
              range=[[-0.2, 4.0], [-0.2, 4.0]], cmap="Greys", cmin=1)
    g = jnp.linspace(-0.2, 4.0, 30)
    gx, gy = jnp.meshgrid(g, g)
    F = jax.vmap(lambda p: drift(0.0, p, WIDTH))(jnp.stack([gx.ravel(), gy.ravel()], -1))
    U, V = jax.device_get((F[:, 0].reshape(gx.shape), F[:, 1].reshape(gx.shape)))
    ax.streamplot(*jax.device_get((g, g)), U, V,
                  color="tab:gray", density=0.8, linewidth=0.5)
    for T, c in ((1.0, "tab:blue"), (40.0, "tab:red")):
        sol = results[T]["sols"][-1]
        ax.plot(sol.xs[:, 0].tolist(), sol.xs[:, 1].tolist(), c, lw=2,
                label=f"most likely path, T = {T:g}")
    markers = {"stable": ("o", "k"), "saddle": ("x", "tab:orange"), "unstable": ("s", "m")}
    sub = {"stable": fps.stable, "saddle": fps.saddles(index=1), "unstable": fps.unstable}
    for k, (m, c) in markers.items():
        xs = sub[k].xs
        if len(sub[k]):
            ax.scatter(xs[:, 0].tolist(), xs[:, 1].tolist(), marker=m, c=c, s=60, zorder=5,
                       label=k)
    ax.set(xlabel="x (unit 1)", ylabel="y (unit 2)", xlim=(-0.2, 4.0), ylim=(-0.2, 4.0),
           title="Paths over the drift and the simulated stationary density")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[0, 1]
    sol = results[40.0]["sols"][-1]
    ax.plot(sol.ts.tolist(), sol.xs[:, 0].tolist(), label="x")
    ax.plot(sol.ts.tolist(), sol.xs[:, 1].tolist(), label="y")
    ax.axhline(C, color="k", lw=0.5, ls=":")
    ax.set(xlabel="t", ylabel="activity", title="T = 40: the units switch one at a time")
    ax.legend()

    ax = axes[1, 0]
    for T, c in ((1.0, "tab:blue"), (40.0, "tab:red")):
        sol, E = results[T]["sols"][-1], results[T]["E"]
        ax.plot((sol.ts / T).tolist(), E.tolist(), c, label=f"T = {T:g}")
    ax.set(xlabel="t / T", ylabel="quasi-energy E", title="Quasi-energy along the paths")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.legend()

    ax = axes[1, 1]
    for T, c in ((1.0, "tab:blue"), (40.0, "tab:red")):
        r = numbers[f"T={T:g}"]
        err = [abs(s - r["richardson_action"]) for s in r["actions"]]
        ax.loglog(list(ns), err, "o-", color=c, label=f"T = {T:g}")
    ax.loglog(list(ns), [err[0] * (ns[0] / n) ** 2 for n in ns], "k--", label="slope −2")
    ax.set(xlabel="nodes", ylabel="|S_N − S_extrapolated|",
           title="Action under refinement (nested adapted grids)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
