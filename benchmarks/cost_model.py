"""Cost model of the batched solve on a GPU, measured without one: XLA's own
`cost_analysis()` of the compiled batched Newton step, a roofline prediction for one
H100 / H200, and the accuracy of the batched default in float32 against float64.

Run from the repository root (about 15 minutes on 2 busy cores, mostly the compilation of
the unrolled step):

    python benchmarks/cost_model.py                  # B = 1024, both endpoint sets
    python benchmarks/cost_model.py --batch 256      # quicker
    python benchmarks/cost_model.py --json out.json  # also write the numbers
    python benchmarks/cost_model.py --pieces         # flops and time of each piece of a
                                                     # step, fraction of the flop limit

Problem: Maier–Stein (β = 10, D = 1, T = 10, 101 nodes, d = 2) from (−1, 0), endpoints
`(1 + 0.3u, 0.5v)` ("attractor": near the other attractor, the benchmark suite's set) and
`U[−0.3, 0.3]²` ("saddle": around the saddle and the separatrix), `u, v ~ U[−1, 1]`.

What is measured:

1. **Per Newton step.** One `nj.BlockNewton` step (`init` outside, `step` compiled alone,
   `jit(vmap(step))` over the batch) is compiled twice: as the library writes it, and with
   every `lax.scan` fully unrolled (`jax.lax.scan` patched to `unroll=True` while tracing).
   XLA's `cost_analysis()` counts the body of a loop once, whatever its trip count, so only
   the unrolled program's count includes the block-Thomas scans over all 99 nodes. The
   `while` loops left inside a step (the damping's retries, inverse iteration near saddles)
   are counted once: a typical step runs them zero or one time. Flops and bytes accessed are
   divided by the batch size; the sequential loop iterations of one step (sum of the scans'
   trip counts in the optimised HLO) give the latency floor.
2. **Steps per path.** The full default solve `jit(vmap(nj.minimize_action))` on the batch:
   mean and max Newton steps (a plain `vmap` runs every element until the slowest stops;
   `nj.solve_batch(straggler_steps=...)` brings a chunk close to the mean).
3. **Roofline.** Time of one step for `B` paths =
   `max(flops·B / peak_flops, bytes·B / bandwidth) + iterations · t_iter`; a solve of `P`
   paths = chunks · steps · that. Flops: the unrolled count. Bytes are bracketed: the
   program as written (loop bodies once: too low) and the unrolled one (too high: XLA
   counts each in-place `dynamic-update-slice` of a scan's stacked output as a write of the
   whole buffer, about `N`-fold too much for the scans). Peak figures (NVIDIA's data sheets, SXM, no tensor cores:
   the 2×2 block algebra does not map onto them): H100 67 TFLOP/s FP32, 34 TFLOP/s FP64,
   3.35 TB/s HBM3, 80 GB; H200 the same flop rates, 4.8 TB/s HBM3e, 141 GB. `t_iter`, the
   cost of one iteration of a `while` loop on a GPU (a kernel launch or two and the
   predicate read back by the host), is assumed to be 10 µs. The chunk is limited by memory
   (XLA's `memory_analysis()` of the compiled solve, per path).
4. **float32.** The same solve with `jax_enable_x64` off: relative error of the action
   against float64, fraction converged, steps.

CPU check: the unrolled step's flops divided by the measured time of the compiled step gives
the achieved flop rate on this CPU.
"""

import argparse
import contextlib
import functools
import json
import os
import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
jax.config.update("jax_enable_x64", True)

import noether_jax as nj  # noqa: E402
from noether_jax._problem import FixedTimeProblem, problem_value  # noqa: E402

BETA, T, N_NODES, X0 = 10.0, 10.0, 101, (-1.0, 0.0)

GPUS = {  # name: (FP64 flop/s, FP32 flop/s, HBM bytes/s, memory bytes)
    "H100 SXM": (34e12, 67e12, 3.35e12, 80e9),
    "H200 SXM": (34e12, 67e12, 4.8e12, 141e9),
}
T_ITER = 10e-6  # seconds per iteration of a device-side while loop (assumed)


def drift(t, z, args):
    x, y = z[0], z[1]
    return jnp.stack([x - x**3 - BETA * x * y**2, -(1 + x**2) * y])


def endpoints(kind: str, n: int) -> np.ndarray:
    uv = np.random.default_rng(0).uniform(-1.0, 1.0, size=(max(n, 1024), 2))[:n]
    if kind == "attractor":
        return np.stack([1.0 + 0.3 * uv[:, 0], 0.5 * uv[:, 1]], axis=1)
    return 0.3 * uv


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def unrolled_scans():
    original = jax.lax.scan
    jax.lax.scan = functools.partial(original, unroll=True)
    try:
        yield
    finally:
        jax.lax.scan = original


def costs(compiled) -> dict:
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return {k: float(c.get(k, 0.0)) for k in ("flops", "bytes accessed", "transcendentals")}


def loop_iterations(hlo: str) -> tuple[int, int]:
    """(number of while loops, sum of their known trip counts) in optimised HLO text."""
    trips = [int(n) for n in re.findall(r'"known_trip_count":\{"n":"(\d+)"\}', hlo)]
    loops = len(re.findall(r"\bwhile\(", hlo))
    return loops, sum(trips)


def step_cost(x1s: np.ndarray, dtype, *, unrolled: bool = True, n_nodes: int = N_NODES,
              timed: bool = True, compiler_options=None) -> dict:
    """XLA's cost analysis of one batched Newton step, and its measured time on this
    device (`timed`; the step as written compiled with `compiler_options`)."""
    sde = nj.SDE(drift, 1.0)
    solver = nj.BlockNewton()
    ts = jnp.linspace(0.0, T, n_nodes, dtype=dtype)
    x0 = jnp.asarray(X0, dtype)
    B = x1s.shape[0]
    x1s = jnp.asarray(x1s, dtype)
    s = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype)[1:-1, None]
    y0 = jax.vmap(lambda b: x0 + s * (b - x0))(x1s)
    f_struct = jax.ShapeDtypeStruct((), dtype)

    def problem(x1):
        return FixedTimeProblem(nj.FreidlinWentzell(), sde, ts, x0, x1, None)

    def init(x1, y):
        return solver.init(problem_value, y, problem(x1), {}, f_struct, None, frozenset())

    def step(x1, y, state):
        y, state, _ = solver.step(problem_value, y, problem(x1), {}, state, frozenset())
        return y, state

    state = jax.jit(jax.vmap(init))(x1s, y0)
    out = {}
    variants = [("as written", contextlib.nullcontext())]
    if unrolled:
        variants.append(("unrolled", unrolled_scans()))
    for label, ctx in variants:
        with ctx:
            t = time.perf_counter()
            opts = compiler_options if label == "as written" else None
            compiled = jax.jit(jax.vmap(step)).lower(x1s, y0, state).compile(opts or None)
            compile_s = time.perf_counter() - t
        c = costs(compiled)
        loops, iters = loop_iterations(compiled.as_text())
        out[label] = {**{k: v / B for k, v in c.items()}, "while_loops": loops,
                      "loop_iterations": iters, "compile_s": compile_s}
        if label == "as written" and timed:
            run = lambda: jax.block_until_ready(compiled(x1s, y0, state))  # noqa: E731
            run()
            times = []
            for _ in range(5):
                t = time.perf_counter()
                run()
                times.append(time.perf_counter() - t)
            out["cpu_step_s_per_path"] = min(times) / B
    return out


def full_solve(x1s: np.ndarray, dtype, n_nodes: int = N_NODES) -> dict:
    """The default batched solve: steps, actions, convergence, time, memory per path."""
    sde = nj.SDE(drift, 1.0)
    x0 = jnp.asarray(X0, dtype)

    def one(b):
        return nj.minimize_action(sde, x0, b, 0.0, T, n_nodes=n_nodes, throw=False)

    x1 = jnp.asarray(x1s, dtype)
    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(one)).lower(x1).compile()
    compile_s = time.perf_counter() - t
    mem = compiled.memory_analysis()
    per_path = None
    if mem is not None:
        per_path = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                    + mem.temp_size_in_bytes) / x1.shape[0]
    sols = jax.block_until_ready(compiled(x1))
    t = time.perf_counter()
    sols = jax.block_until_ready(compiled(x1))
    seconds = time.perf_counter() - t
    steps = np.asarray(sols.stats["num_steps"])
    return {
        "action": np.asarray(sols.action, np.float64),
        "converged": np.asarray(sols.converged),
        "steps_mean": float(steps.mean()),
        "steps_max": int(steps.max()),
        "seconds": seconds,
        "compile_s": compile_s,
        "bytes_per_path": per_path,
    }


def roofline(step: dict, steps: float, paths: int, chunk: int, gpu, fp64: bool) -> dict:
    """Predicted seconds for `paths` paths, with the bytes per step bounded below by the
    program as written (each loop body counted once) and above by the unrolled program
    (which also counts every in-place update of a scan's output as a write of the whole
    buffer, so it overstates the traffic of the scans about `N`-fold)."""
    flops64, flops32, bandwidth, _ = gpu
    peak = flops64 if fp64 else flops32
    f = step["unrolled"]["flops"]
    iters = step["as written"]["loop_iterations"]
    chunks = -(-paths // chunk)
    out = {"chunk": chunk, "chunks": chunks}
    for name, b in (("low", step["as written"]["bytes accessed"]),
                    ("high", step["unrolled"]["bytes accessed"])):
        compute, memory, latency = f * chunk / peak, b * chunk / bandwidth, iters * T_ITER
        out[f"seconds_{name}"] = chunks * steps * (max(compute, memory) + latency)
        out[f"bound_{name}"] = max(
            [("compute", compute), ("memory", memory), ("latency", latency)],
            key=lambda kv: kv[1])[0]
    return out


# Peak float64 flop rate of one CPU core (`--pieces`): AMD Zen 4 at 2.6 GHz, two 256-bit
# FMA pipes (4 lanes × 2 flops each). Override with --core-gflops for another machine.
CORE_GFLOPS = 41.6


def pieces(x1s: np.ndarray, n_nodes: int = N_NODES) -> dict:
    """Executed flops (XLA's count) and measured time of each piece of a batched Newton step,
    compiled and timed alone under `jit(vmap)`, as written: kflop and µs per path.

    XLA's cost analysis counts a `while` body once, so the flops of the block-tridiagonal
    scans are counted on their generic form (blocks as `d × d` arrays, the same arithmetic)
    with the scans unrolled. The batch-last form the solver runs takes XLA many minutes to
    compile unrolled, and its unrolled count grows faster than the number of blocks."""
    from noether_jax._linalg import _blocktri

    sde = nj.SDE(drift, 1.0)
    ts = jnp.linspace(0.0, T, n_nodes)
    x0 = jnp.asarray(X0)
    x1s = jnp.asarray(x1s)
    B = x1s.shape[0]
    s = jnp.linspace(0.0, 1.0, n_nodes)[1:-1, None]
    y = jax.vmap(lambda b: x0 + s * (b - x0))(x1s)
    problem = lambda b: FixedTimeProblem(nj.FreidlinWentzell(), sde, ts, x0, b, None)  # noqa: E731

    def measure(fn, *args, count=None):
        compiled = jax.jit(fn).lower(*args).compile()
        out = jax.block_until_ready(compiled(*args))
        times = []
        for _ in range(7):
            t = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - t)
        counted = compiled
        if count is not None:
            count_fn, count_args = count
            with unrolled_scans():
                counted = jax.jit(count_fn).lower(*count_args).compile()
        return out, {"kflop": costs(counted)["flops"] / B / 1e3, "us": 1e6 * min(times) / B}

    res = {}
    _, res["value_and_grad"] = measure(jax.vmap(lambda b, y: problem(b).value_and_grad(y)),
                                       x1s, y)
    H, res["hessian"] = measure(jax.vmap(lambda b, y: problem(b).hessian(y)), x1s, y)
    (chols, _), res["cholesky"] = measure(
        jax.vmap(_blocktri.cholesky), H.diag, H.off,
        count=(jax.vmap(_blocktri._cholesky_any), (H.diag, H.off)))
    _, res["cho_solve"] = measure(
        jax.vmap(_blocktri.cho_solve), chols, H.off, y,
        count=(jax.vmap(_blocktri._cho_solve_any), (chols, H.off, y[..., None])))
    _, res["matvec"] = measure(jax.vmap(_blocktri.matvec), H.diag, H.off, y)
    # A typical step: the Hessian, one factorisation, two solves (Newton step, the tracked
    # negative-curvature direction), two products, one value and gradient at the trial
    # point; after a rejection the chord correction adds a solve and a value and gradient.
    typical = {"hessian": 1, "cholesky": 1, "cho_solve": 2, "matvec": 2, "value_and_grad": 1}
    chord = dict(typical, cho_solve=3, value_and_grad=2)
    res["typical_kflop"] = sum(res[k]["kflop"] * m for k, m in typical.items())
    res["chord_kflop"] = sum(res[k]["kflop"] * m for k, m in chord.items())
    return res


def print_pieces(B: int, core_gflops: float) -> None:
    log(f"pieces of one Newton step, float64, B = {B}")
    res = pieces(endpoints("saddle", B))
    step_us = {
        label: 1e6 * step_cost(endpoints("saddle", B), jnp.float64, unrolled=False,
                               compiler_options=o)["cpu_step_s_per_path"]
        for label, o in (("XLA's default options", {}),
                         ("nj.cpu_compiler_options()", nj.cpu_compiler_options()))
    }
    print(f"\n## The pieces of a batched Newton step (Maier–Stein, {N_NODES} nodes, d = 2, "
          f"B = {B}, float64)\n")
    print("| piece | kflop per path | µs per path | GFLOP/s |\n|---|---:|---:|---:|")
    for k in ("value_and_grad", "hessian", "cholesky", "cho_solve", "matvec"):
        r = res[k]
        print(f"| {k} | {r['kflop']:.1f} | {r['us']:.2f} | {r['kflop'] / r['us']:.2f} |")
    lo, hi = res["typical_kflop"], res["chord_kflop"]
    limit = core_gflops * (os.cpu_count() or 1)
    print(f"\nA typical step executes {lo:.0f}–{hi:.0f} kflop per path. One whole step "
          f"(`BlockNewton.step` alone), against {limit:.0f} GFLOP/s ({os.cpu_count()} cores × "
          f"{core_gflops} GFLOP/s):")
    for label, us in step_us.items():
        print(f"- compiled with {label}: {us:.1f} µs per path, {lo / us:.2f}–{hi / us:.2f} "
              f"GFLOP/s, {100 * lo / us / limit:.1f}–{100 * hi / us / limit:.1f} % of the limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--pieces", action="store_true",
                        help="only the flops and times of the pieces of one Newton step, and "
                        "the fraction of this CPU's float64 flop limit reached (a minute)")
    parser.add_argument("--core-gflops", type=float, default=CORE_GFLOPS,
                        help="peak float64 GFLOP/s of one core (default %(default)s: "
                        "AMD Zen 4 at 2.6 GHz)")
    opts = parser.parse_args()
    B = opts.batch
    if opts.pieces:
        print_pieces(B, opts.core_gflops)
        return
    log(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, batch {B}")
    report = {"batch": B, "sets": {}}

    log("one Newton step, float64: compiling (as written, then with scans unrolled)")
    step64 = step_cost(endpoints("attractor", B), jnp.float64)
    report["step_float64"] = step64
    sets = {}
    for kind in ("attractor", "saddle"):
        log(f"full solve, float64, {kind} set")
        r64 = full_solve(endpoints(kind, B), jnp.float64)
        sets[kind] = {"float64": r64}
    jax.config.update("jax_enable_x64", False)
    log("one Newton step, float32")
    # (Unrolled: 5-8 minutes of compilation per dtype. In float32 the counts are float64's
    # flops and half its bytes: 748 874 flops and 0.5002 x the bytes at B = 64.)
    step32 = step_cost(endpoints("attractor", B), jnp.float32, unrolled=False)
    step32["unrolled"] = {**step64["unrolled"],
                          "bytes accessed": 0.5 * step64["unrolled"]["bytes accessed"]}
    report["step_float32"] = step32
    for kind in ("attractor", "saddle"):
        log(f"full solve, float32, {kind} set")
        sets[kind]["float32"] = full_solve(endpoints(kind, B), jnp.float32)
    jax.config.update("jax_enable_x64", True)

    print(f"\n## Cost model (XLA cost_analysis), Maier–Stein, {N_NODES} nodes, d = 2, "
          f"B = {B}, jax {jax.__version__}, CPU: {jax.devices()[0].device_kind}\n")
    print("| per Newton step per path | float64 | float32 |\n|---|---|---|")
    for key, label in [("flops", "flops"), ("bytes accessed", "bytes accessed"),
                       ("transcendentals", "transcendentals")]:
        print(f"| {label} (scans unrolled) | {step64['unrolled'][key]:.4g} | "
              f"{step32['unrolled'][key]:.4g} |")
        print(f"| {label} (as written: each loop body once) | {step64['as written'][key]:.4g} | "
              f"{step32['as written'][key]:.4g} |")
    for key, label in [("while_loops", "while loops in one step (as written)"),
                       ("loop_iterations", "sequential loop iterations per step")]:
        print(f"| {label} | {step64['as written'][key]} | {step32['as written'][key]} |")
    ai64 = step64["unrolled"]["flops"] / step64["unrolled"]["bytes accessed"]
    ai32 = step32["unrolled"]["flops"] / step32["unrolled"]["bytes accessed"]
    print(f"| arithmetic intensity (flop/byte) | {ai64:.3g} | {ai32:.3g} |")
    for name, st in (("float64", step64), ("float32", step32)):
        us = 1e6 * st["cpu_step_s_per_path"]
        rate = st["unrolled"]["flops"] / st["cpu_step_s_per_path"]
        st["cpu_gflops"] = rate / 1e9
        print(f"| measured on this CPU: µs per step per path ({name}) | "
              f"{us:.3g} ({rate / 1e9:.3g} GFLOP/s achieved) | |")

    print("\n| endpoint set | dtype | converged | steps mean / max | CPU ms/path | "
          "memory per path | rel. action error vs float64 (median / max, converged) |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in sets.items():
        a64 = r["float64"]["action"]
        for dt in ("float64", "float32"):
            x = r[dt]
            ok = x["converged"] & r["float64"]["converged"]
            err = np.abs(x["action"] - a64) / np.abs(a64)
            x["rel_error_median"] = float(np.median(err[ok])) if ok.any() else None
            x["rel_error_max"] = float(np.max(err[ok])) if ok.any() else None
            x["fraction_converged"] = float(x["converged"].mean())
            e = ("—" if dt == "float64" else
                 f"{x['rel_error_median']:.2e} / {x['rel_error_max']:.2e}")
            mem = x["bytes_per_path"]
            print(f"| {kind} | {dt} | {x['fraction_converged']:.4f} | "
                  f"{x['steps_mean']:.1f} / {x['steps_max']} | "
                  f"{1e3 * x['seconds'] / B:.3g} | "
                  f"{'n/a' if mem is None else f'{mem / 1e3:.0f} kB'} | {e} |")

    print(f"\n### Roofline prediction (t_iter = {1e6 * T_ITER:g} µs per loop iteration; "
          "steps: mean = with straggler polish, max = plain vmap)\n")
    print("| GPU | dtype | set | paths | chunk | steps | predicted time (bytes: as written "
          "… unrolled) | dominant term |")
    print("|---|---|---|---|---|---|---|---|")
    report["roofline"] = []
    for gpu_name, gpu in GPUS.items():
        for dt, st in (("float64", step64), ("float32", step32)):
            for kind in sets:
                x = sets[kind][dt]
                per_path = x["bytes_per_path"] or 0.0
                # Memory: XLA's per-path footprint on the CPU, 50% of HBM to leave headroom.
                max_chunk = int(0.5 * gpu[3] / per_path) if per_path else 10**6
                for paths in (10**5, 10**6):
                    chunk = min(paths, max_chunk)
                    for which in ("mean", "max"):
                        steps = x[f"steps_{which}"]
                        r = roofline(st, steps, paths, chunk, gpu, dt == "float64")
                        report["roofline"].append(
                            {"gpu": gpu_name, "dtype": dt, "set": kind, "paths": paths,
                             "steps": which, **r})
                        print(f"| {gpu_name} | {dt} | {kind} | {paths:.0e} | {chunk} | "
                              f"{which} {steps:.0f} | {r['seconds_low']:.3g} … "
                              f"{r['seconds_high']:.3g} s | {r['bound_low']} … "
                              f"{r['bound_high']} |")
    report["sets"] = {
        k: {dt: {kk: vv for kk, vv in v.items() if kk not in ("action", "converged")}
            for dt, v in r.items()}
        for k, r in sets.items()
    }
    if opts.json:
        opts.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
