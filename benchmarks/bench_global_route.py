"""What the global route search costs at the default call of `nj.minimize_action`.

For each system, the default call (`candidates="auto"`) against the straight line alone
(`candidates="straight"`), both eager, each in a fresh process: the first call (compilation
included) and the median of later calls, with the action each returns.

    python benchmarks/bench_global_route.py [--repeats 3]

Systems: a 2-D Ornstein–Uhlenbeck process (one attractor: the search is one
`nj.find_fixed_points` call), Maier–Stein (β = 10, D = 0.1, T = 10, two attractors: two
candidates), and the paper's 2-unit attractor network (four attractors, T = 40: six
candidates, and the straight line alone finds the wrong route).
"""

import argparse
import json
import subprocess
import sys

CHILD = r'''
import json, statistics, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import noether_jax as nj

case, mode, repeats = CASE, MODE, REPEATS
if case == "ou":
    sde = nj.SDE(lambda t, x, a: -a * x, 0.5)
    call = lambda: nj.minimize_action(sde, jnp.array([-1.0, 0.5]), jnp.array([1.0, 0.2]),
                                      0.0, 2.0, args=1.0, candidates=mode, throw=False)
elif case == "maier-stein":
    ms = lambda t, x, b: jnp.stack([x[0] - x[0] ** 3 - b * x[0] * x[1] ** 2,
                                    -(1 + x[0] ** 2) * x[1]])
    sde = nj.SDE(ms, 0.1)
    call = lambda: nj.minimize_action(sde, jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.2]),
                                      0.0, 10.0, args=10.0, candidates=mode, throw=False)
else:
    from noether_jax.cli._cases import _attractor_network as net
    sde = net.network_sde()
    call = lambda: nj.minimize_action(sde, jnp.asarray(net.X0), jnp.asarray(net.X1), 0.0,
                                      40.0, args=net.WIDTH, candidates=mode, throw=False)
t = time.perf_counter(); sol = jax.block_until_ready(call()); first = time.perf_counter() - t
later = []
for _ in range(repeats):
    t = time.perf_counter(); jax.block_until_ready(call()); later.append(time.perf_counter() - t)
print(json.dumps(dict(first=first, later=statistics.median(later), action=float(sol.action),
                      converged=bool(sol.converged),
                      candidates=int(sol.stats.get("candidate_actions", jnp.zeros(1)).shape[0]))))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="ou,maier-stein,network")
    a = ap.parse_args()
    print(f"{'system':<13}{'mode':<10}{'cands':>6}{'first [s]':>11}{'later [s]':>11}"
          f"{'action':>13}  converged")
    for case in a.cases.split(","):
        for mode in ("straight", "auto"):
            code = (CHILD.replace("CASE", repr(case)).replace("MODE", repr(mode))
                    .replace("REPEATS", str(a.repeats)))
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:<13}{mode:<10}{r['candidates']:>6}{r['first']:>11.2f}"
                  f"{r['later']:>11.3f}{r['action']:>13.7f}  {r['converged']}")


if __name__ == "__main__":
    main()
