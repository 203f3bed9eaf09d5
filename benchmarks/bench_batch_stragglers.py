"""Batched termination: one hard element in a vmapped batch, with and without the straggler
polish of `nj.solve_batch`.

What is measured
----------------
Maier–Stein, `f = (x − x³ − β x y², −(1 + x²) y)`, β = 10, D = 1, T = 10, 101 nodes,
from x0 = (−1, 0). "Easy" endpoints x1 = (1 + 0.3u, 0.5v), u, v ~ U[−1, 1] (fixed seed).
The "hard" endpoint x1 = (6, 0) lies far up the steep quartic wall: BlockNewton needs
~170 steps for it (the easy ones ~15–26).

`vmap` of a `while_loop` runs until the slowest element stops, so a batch of 1023 easy
elements + 1 hard one costs as much as 1024 hard ones. Timed (median of `--repeats` after a
warm-up call, so compilation is excluded):

(a) `jax.jit(jax.vmap(solve))` on 1024 easy elements;
(b) the same on 1023 easy + 1 hard;
(c) `nj.solve_batch(solve, ..., chunk_size=1024, straggler_steps=K)` on (b)'s batch: the
    chunk is solved with `max_steps=K`, then the element that ran out of steps is solved
    again (batch of `polish_size`), warm-started from where it stopped, with the full budget;
(d) (c) on the easy batch (the cost of the cap when there is no straggler).

Run with

    python benchmarks/bench_batch_stragglers.py [--repeats 3] [--steps 40]

Timings depend on the machine (and on its load); the ratios are what matters. The four
configurations are timed in interleaved rounds (so a change of load hits them alike), and
both wall-clock and process CPU time are reported (CPU time is robust to other processes
on a shared machine).
"""

import argparse
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import noether_jax as nj  # noqa: E402

BETA, T, N_NODES, B = 10.0, 10.0, 101, 1024
HARD = jnp.array([6.0, 0.0])


def drift(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


SDE = nj.SDE(drift, 1.0)
X0 = jnp.array([-1.0, 0.0])


def solve(x1, **kw):
    return nj.minimize_action(SDE, X0, x1, 0.0, T, n_nodes=N_NODES, args=BETA, throw=False, **kw)


def easy_endpoints(n, seed=0):
    ku, kv = jax.random.split(jax.random.key(seed))
    u = jax.random.uniform(ku, (n,), minval=-1.0, maxval=1.0)
    v = jax.random.uniform(kv, (n,), minval=-1.0, maxval=1.0)
    return jnp.stack([1.0 + 0.3 * u, 0.5 * v], axis=1)


def timed(fns, repeats):
    """Median wall and CPU seconds of each function, timed in interleaved rounds."""
    outs = {k: jax.block_until_ready(fn()) for k, fn in fns.items()}  # warm-up: compiles
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            outs[k] = jax.block_until_ready(fn())
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), outs[k]) for k in fns}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="straggler_steps")
    parser.add_argument("--polish-size", type=int, default=None)
    ns = parser.parse_args()

    easy = easy_endpoints(B)
    mixed = easy.at[B // 2].set(HARD)
    vsolve = jax.jit(jax.vmap(solve))
    batch = lambda x1s: lambda: vsolve(x1s)
    runner = lambda x1s: lambda: nj.solve_batch(
        solve, x1s, chunk_size=B, straggler_steps=ns.steps, polish_size=ns.polish_size,
        progress=False,
    )

    rows = timed(
        {
            "(a) vmap, 1024 easy": batch(easy),
            "(b) vmap, 1023 easy + 1 hard": batch(mixed),
            f"(c) solve_batch straggler_steps={ns.steps}, 1023 easy + 1 hard": runner(mixed),
            f"(d) solve_batch straggler_steps={ns.steps}, 1024 easy": runner(easy),
        },
        ns.repeats,
    )

    base, base_cpu, _ = rows["(a) vmap, 1024 easy"]
    steps_easy = rows["(a) vmap, 1024 easy"][2].stats["num_steps"]
    print(f"jax {jax.__version__}, {jax.devices()}, B = {B}, {N_NODES} nodes, T = {T}")
    print(f"easy elements: num_steps median {float(jnp.median(steps_easy)):.0f}, "
          f"max {int(jnp.max(steps_easy))}; hard element: "
          f"{int(rows['(b) vmap, 1023 easy + 1 hard'][2].stats['num_steps'][B // 2])} steps")
    print(f"median of {ns.repeats} interleaved rounds; wall s (ratio to (a)), CPU s (ratio)")
    ref = rows["(b) vmap, 1023 easy + 1 hard"][2]
    for name, (t, c, sol) in rows.items():
        mixed_run = "hard" in name
        extra = ""
        if mixed_run:
            h = B // 2
            extra = (f"; hard element converged {bool(sol.converged[h])}, "
                     f"num_steps {int(sol.stats['num_steps'][h])}, "
                     f"|ΔS| vs (b) {abs(float(sol.action[h] - ref.action[h])):.1e}")
        print(f"{name:<58} wall {t:7.2f} s (x{t / base:4.2f})  CPU {c:7.2f} s "
              f"(x{c / base_cpu:4.2f})  all converged {bool(jnp.all(sol.converged))}{extra}")


if __name__ == "__main__":
    main()
