"""Symmetry detection at network scale: `nj.find_symmetries(..., method="matrix_free")`.

Each case runs in a fresh subprocess (float64, CPU) and reports wall time, CPU time
(user + sys of the subprocess) and peak resident memory (`resource.getrusage`, `ru_maxrss`).

The system has exactly one rotation symmetry, known in closed form: with `x = (y, z)`,
`y ∈ R²`, `z ∈ R^{d−2}`,

    f_y = (1 − |y|² + v·tanh z) y + ω J y + ε (y_0, 0)
    f_z = −z + W tanh(z) + u |y|²,          D = 0.5 I,

`W` a random `(d−2) × (d−2)` coupling (gain 1.5), `u`, `v` random vectors. For `ε = 0` the
drift is equivariant under rotations of the `(x_0, x_1)` plane (`f_y` is built from `y`,
`J y` and invariants, `f_z` sees `y` only through `|y|²`), so `R0,1` is a symmetry; a generic
`W` leaves no other rotation. `ε ≠ 0` breaks it with a singular value `∝ ε`.

Usage: `python benchmarks/bench_symmetry_scale.py [case ...]` with cases `rot:D`, `lin:D`,
`drot:D`, `dlin:D` (the same with `method="dense"`; `rot:D:I` caps LOBPCG at `I` iterations),
`crot:D` (`method="commutant"`), `arot:D` (`method="auto"`, its default points), `eps:D`,
`ceps:D` (the near-symmetry with the matrix-free and the commutant search),
`charge:D[:N]` (the rotation found by the default search; its charge along the fixed-time,
the geometric and the geo-timed path, `nj.fixed_time_path` of the geometric one),
`known:D[:N]` (default: the cases recorded in RESULTS.md); `--timeout S` per case.
"""

import json
import subprocess
import sys
import time


CHILD = r'''
import json, resource, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import noether_jax as nj


def make(d, eps=0.0, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    m = d - 2
    W = 1.5 * jax.random.normal(k1, (m, m)) / jnp.sqrt(m)
    u = jax.random.normal(k2, (m,)) / jnp.sqrt(m)
    v = jax.random.normal(k3, (m,)) / jnp.sqrt(m)

    def f(t, x, a):
        y, z = x[:2], x[2:]
        r2 = y @ y
        Jy = jnp.array([-y[1], y[0]])
        fy = (1.0 - r2 + v @ jnp.tanh(z)) * y + 0.7 * Jy + a * jnp.array([y[0], 0.0])
        fz = -z + W @ jnp.tanh(z) + u * r2
        return jnp.concatenate([fy, fz])

    return nj.SDE(f, 0.5)


kind, d = sys.argv[1], int(sys.argv[2])
out = dict(case=f"{kind}:{d}")
t0, c0 = time.time(), time.process_time()
if kind in ("rot", "lin", "drot", "dlin", "crot", "arot"):
    # `drot`, `dlin`: `method="dense"` (for these affine families, the compact matrices
    # built by the matrix-free operators; every singular value) at the same points.
    fam = nj.Rotations(d) if kind in ("rot", "drot", "crot", "arot") else nj.LinearGenerators(d)
    method = dict(d="dense", c="commutant", a="auto").get(kind[0], "matrix_free")
    n_pts = max(32, 2 * (-(-fam.size // d)) + 8)
    kw = dict(max_iters=int(sys.argv[3])) if len(sys.argv) > 3 else {}
    if kind != "arot":  # the same points for every method; `auto` takes its own default
        kw["n_points"] = n_pts
    res = nj.find_symmetries(make(d), fam, args=0.0, method=method, **kw)
    S = np.asarray(res.singular_values)
    gens = res.generators
    out.update(
        family=f"{type(fam).__name__}({d})", k=fam.size, method=res.method,
        points=kw.get("n_points", "default"),
        num_symmetries=len(gens), generators=[g.describe() for g in gens],
        drift_generators=[g.describe() for g in res.drift_generators],
        sigma=[float(s) for s in S[:4]], converged=bool(res.converged),
        iterations=int(res.iterations),
    )
    if fam.size == d * (d - 1) // 2:
        # exactly R0,1: coefficient vector e_0 (pair (0, 1) is the first)
        c = np.asarray(res.basis[0])
        e0 = np.zeros(fam.size)
        e0[0] = 1.0
        out["error_vs_R01"] = float(np.linalg.norm(c - e0))
elif kind in ("eps", "ceps"):
    sig = []
    method = "matrix_free" if kind == "eps" else "commutant"
    for e in (1e-3, 1e-2):
        r = nj.find_symmetries(make(d), nj.Rotations(d), args=e, method=method)
        sig.append(float(r.singular_values[0]))
    out.update(sigma_eps=sig, ratio=sig[1] / sig[0], method=method)
elif kind == "charge":
    sde = make(d)
    res = nj.find_symmetries(sde, nj.Rotations(d), args=0.0)
    g = res.generators[0]
    out.update(search=res.method, found=[h.describe() for h in res.generators],
               search_s=time.time() - t0)
    x0 = jnp.zeros(d).at[0].set(1.0)
    x1 = jnp.zeros(d).at[1].set(1.0).at[2].set(0.3)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 41
    sol = nj.minimize_action(sde, x0, x1, 0.0, 2.0, n_nodes=n, args=0.0)
    broken = nj.Generator(nj.Rotations(d), jnp.zeros(nj.Rotations(d).size).at[1].set(1.0))  # R0,2
    rep = nj.charge_report(sde, sol, [g, broken], args=0.0, names=["R0,1 (found)", "R0,2"])
    out.update(path_converged=bool(sol.converged), nodes=n,
               variation_symmetry=float(rep.relative_variations[0]),
               variation_broken=float(rep.relative_variations[1]))
    tic = time.time()
    geo = nj.minimize_geometric_action(sde, x0, x1, args=0.0, n_nodes=n)
    geo.xs.block_until_ready()
    geo_s = time.time() - tic
    rep = nj.charge_report(sde, geo, [g, broken], args=0.0, names=["R0,1 (found)", "R0,2"])
    out.update(geometric_converged=bool(geo.converged), geometric_s=geo_s,
               geometric_variation_symmetry=float(rep.relative_variations[0]),
               geometric_variation_broken=float(rep.relative_variations[1]))
    # geo-timed: the fixed-time path on the geometric path's own times (`nj.fixed_time_path`),
    # along which the charges of exact symmetries are constant to round-off, not O(h²).
    timed_s = []
    for _ in range(2):  # the first call compiles
        tic = time.time()
        timed = nj.fixed_time_path(sde, geo, 0.0)
        timed.xs.block_until_ready()
        timed_s.append(time.time() - tic)
    rep = nj.charge_report(sde, timed, [g, broken], args=0.0, names=["R0,1 (found)", "R0,2"])
    out.update(geo_timed_converged=bool(timed.converged),
               geo_timed_steps=int(timed.stats["num_steps"]),
               geo_timed_s=timed_s[0], geo_timed_warm_s=timed_s[1],
               geo_timed_variation_symmetry=float(rep.relative_variations[0]),
               geo_timed_variation_broken=float(rep.relative_variations[1]),
               geo_timed_geometric_action_in=float(timed.stats["geometric_action_in"]),
               geo_timed_geometric_action_out=float(timed.stats["geometric_action_out"]),
               geo_timed_shift=float(timed.stats["shift"]))
elif kind == "known":
    # The symmetry known in closed form (no search): its charge along a fixed-time and a
    # geometric most likely path, both with the default solver for this d, and a broken
    # rotation for contrast.
    sde = make(d)
    fam = nj.Rotations(d)
    sym = nj.Generator(fam, jnp.zeros(fam.size).at[0].set(1.0))  # R0,1
    broken = nj.Generator(fam, jnp.zeros(fam.size).at[1].set(1.0))  # R0,2
    x0 = jnp.zeros(d).at[0].set(1.0)
    x1 = jnp.zeros(d).at[1].set(1.0).at[2].set(0.3)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 41
    names = ["R0,1 (symmetry)", "R0,2 (broken)"]
    tic = time.time()
    sol = nj.minimize_action(sde, x0, x1, 0.0, 2.0, n_nodes=n, args=0.0)
    rep = nj.charge_report(sde, sol, [sym, broken], args=0.0, names=names)
    out.update(nodes=n, fixed_converged=bool(sol.converged),
               fixed_steps=int(sol.stats["num_steps"]), fixed_s=time.time() - tic,
               fixed_variation_symmetry=float(rep.relative_variations[0]),
               fixed_variation_broken=float(rep.relative_variations[1]))
    tic = time.time()
    geo = nj.minimize_geometric_action(sde, x0, x1, args=0.0, n_nodes=n)
    rep = nj.charge_report(sde, geo, [sym, broken], args=0.0, names=names)
    out.update(geometric_converged=bool(geo.converged),
               geometric_steps=int(geo.stats["num_steps"]), geometric_s=time.time() - tic,
               geometric_variation_symmetry=float(rep.relative_variations[0]),
               geometric_variation_broken=float(rep.relative_variations[1]))
out["wall_s"] = time.time() - t0
out["cpu_s"] = time.process_time() - c0
out["peak_rss_GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print("RESULT " + json.dumps(out))
'''

DEFAULT = [
    "crot:32", "drot:32", "crot:64", "drot:64", "arot:256", "crot:256", "arot:1024", "ceps:32",
    "ceps:256", "charge:256", "rot:32", "rot:64", "lin:32", "eps:32",
]


def run(case: str, timeout: float) -> dict:
    kind, d, *rest = case.split(":")
    t0 = time.time()
    try:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, kind, d, *rest],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return dict(case=case, error=f"did not finish within {timeout:.0f} s")
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return dict(case=case, error=p.stderr[-2000:], wall_s=time.time() - t0)


if __name__ == "__main__":
    args = sys.argv[1:]
    timeout = 3600.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i : i + 2]
    for case in args or DEFAULT:
        print(json.dumps(run(case, timeout)), flush=True)
