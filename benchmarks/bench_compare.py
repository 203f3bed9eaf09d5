"""Side-by-side timing of two checkouts of the library (e.g. before and after a refactor).

Each measurement runs in a fresh child process that imports `noether_jax` from the given
source tree; old and new alternate, round after round, so both see the same machine load.
Prints the median time of each case per checkout and the ratio new/old.

    python benchmarks/bench_compare.py --old /path/to/old/checkout --new .
    python benchmarks/bench_compare.py --old ../old --new . --rounds 5 --cases ms1024,ms1

Cases (all float64, the default solver unless named):
- `ms1024`: Maier–Stein (β = 10, D = 0.1), T = 10, 101 nodes, B = 1024 endpoints near the
  other attractor, `jit(vmap(minimize_action))`, seconds per path (after compilation);
- `ms1`: the same, one path;
- `saddle1024`: the same with endpoints `U[−0.3, 0.3]²` around the saddle;
- `rnn64`: a CTRNN drift, d = 64, T = 5, 101 nodes, one path (NewtonCG);
- `refine`: the default call (nested grids 201 → 801 with an error estimate) on Maier–Stein,
  one path.

Each case also reports its compilation time (first call minus a later one).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

CHILD = r'''
import json, sys, time, statistics
sys.path.insert(0, SRC)
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import noether_jax as nj

def ms_drift(t, x, beta):
    return jnp.stack([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])

sde = nj.SDE(ms_drift, 0.1)
x0 = jnp.array([-1.0, 0.0])
rng = np.random.default_rng(0)

def timed(fn, arg, repeats):
    t = time.perf_counter(); jax.block_until_ready(fn(arg)); first = time.perf_counter() - t
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); out = jax.block_until_ready(fn(arg)); ts.append(time.perf_counter() - t)
    return first, statistics.median(ts), out

case = CASE
if case in ("ms1024", "ms1", "saddle1024"):
    B = 1 if case == "ms1" else 1024
    if case == "saddle1024":
        x1 = rng.uniform(-0.3, 0.3, (B, 2))
    else:
        u = rng.uniform(-1, 1, (B, 2)); x1 = np.stack([1 + 0.3 * u[:, 0], 0.5 * u[:, 1]], 1)
    fn = jax.jit(jax.vmap(lambda b: nj.minimize_action(sde, x0, b, 0.0, 10.0, n_nodes=101,
                                                       args=10.0, throw=False)))
    first, med, sol = timed(fn, jnp.asarray(x1), 7 if B > 1 else 50)
    value = med / B
    conv = float(jnp.mean(sol.converged))
elif case == "rnn64":
    d = 64
    key = jax.random.key(0)
    W = 1.5 * jax.random.normal(key, (d, d)) / jnp.sqrt(d)
    rnn = nj.SDE(lambda t, x, W: -x + W @ jnp.tanh(x), 0.1)
    a = jnp.zeros(d).at[0].set(1.0); b = jnp.zeros(d).at[1].set(1.0)
    fn = jax.jit(lambda W: nj.minimize_action(rnn, a, b, 0.0, 5.0, n_nodes=101, args=W, throw=False))
    first, med, sol = timed(fn, W, 15)
    value, conv = med, float(sol.converged)
elif case == "refine":
    fn = jax.jit(lambda b: nj.minimize_action(sde, x0, b, 0.0, 10.0, args=10.0, throw=False))
    first, med, sol = timed(fn, jnp.array([1.0, 0.2]), 10)
    value, conv = med, float(sol.converged)
print(json.dumps(dict(value=value, converged=conv, compile=first - med)))
'''


def run(src: str, case: str) -> dict:
    code = CHILD.replace("SRC", repr(str(pathlib.Path(src).resolve()))).replace("CASE", repr(case))
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{case} in {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=".")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="ms1024,ms1,saddle1024,rnn64,refine")
    a = ap.parse_args()
    cases = a.cases.split(",")
    res = {c: {"old": [], "new": []} for c in cases}
    for r in range(a.rounds):
        for c in cases:
            for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
                out = run(getattr(a, which), c)
                res[c][which].append(out)
                print(f"round {r} {c:10s} {which}: {out['value']:.4g} s "
                      f"(converged {out['converged']:.3f}, compile {out['compile']:.1f} s)",
                      flush=True)
    print("\n| case | old (s/path) | new (s/path) | new/old | compile old (s) | compile new (s) |"
          "\n|---|---:|---:|---:|---:|---:|")
    for c in cases:
        med = lambda w, k: statistics.median(x[k] for x in res[c][w])
        o, n = med("old", "value"), med("new", "value")
        print(f"| {c} | {o:.4g} | {n:.4g} | {n / o:.2f} | {med('old', 'compile'):.1f} | "
              f"{med('new', 'compile'):.1f} |")


if __name__ == "__main__":
    main()
