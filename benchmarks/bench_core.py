"""Core benchmark: batched most-likely paths of the Maier–Stein system.

What is measured
----------------
The 2-D non-gradient Maier–Stein system

    f(x, y) = (x − x³ − β x y²,  −(1 + x²) y),   β = 10,   isotropic D = 0.1,

from x0 = (−1, 0) to a batch of endpoints x1 = (1 + 0.3 u, 0.5 v), u, v ~ U[−1, 1] (fixed
seed), over t ∈ [0, 10] with 101 nodes (the midpoint discrete action of docs/conventions.md).

Time per path, for batches of B = 1, 64, 1024 endpoints, of

(a) the library: ``jax.jit(jax.vmap(lambda b: nj.minimize_action(sde, x0, b, 0., 10.,
    n_nodes=101, throw=False)), compiler_options=nj.cpu_compiler_options())``, timed after a
    warm-up call (compile time reported separately), median of a few repeats. The compiler
    options are the library's documented setting for batches on CPU (XLA's older CPU code
    generator, which vectorises the block-tridiagonal scans); the nested-grid rows are also
    timed with XLA's defaults, in the same rounds (`--xla-defaults` uses the defaults
    everywhere; `nj.solve_batch` in (c) sets the options on CPU by itself);
(b) the baseline a NumPy user would write: ``scipy.optimize.minimize(method="L-BFGS-B")``
    over the interior nodes of one path at a time (a Python loop over the batch), with the
    exact gradient of the same discrete action written by hand in NumPy, a straight-line
    initial path and tight tolerances. For large B the loop runs on a subset of the batch,
    spread evenly over it (the number of L-BFGS-B iterations varies about 3x from endpoint
    to endpoint, 236 to 861 on the saddle set, so 32 paths estimate the mean time to about
    ±5%: the first 32 endpoints of the saddle set take 7% longer than the batch's mean;
    128 paths, the default for B = 1024, to about ±2.5%), and the time per path is
    reported (the output says so).

(c) without `--quick`, the largest batch again through `nj.solve_batch(straggler_steps=K)`:
    `vmap` of the solver's `while_loop` runs every element until the slowest stops, so the
    batch costs its maximum step count; the runner caps it at `K` steps and finishes the
    stragglers apart, warm-started (`--straggler-steps`, default 18 on the attractor set and
    40 on the saddle set, about the 75th and 85th percentiles of their step counts);
    then with nested grids 26 → 51 → 101 (`nj.Refine(levels=3, adapt=None)`, the same final
    problem), in lockstep and in refilled lanes (`minimize_action(lanes=L)`, `--lanes`):
    `L` paths at a time, each lane taking the next path when its own stops, so the batch
    pays about its mean step count instead of its maximum.

Accuracy, per method: the optimisation error max |S − S_ref| over the (sub)batch, with S_ref
the library's solution of the same 101-node problem at rtol = atol = 1e-13; and, for the
library, the discretisation error of the 101-node action against a 1601-node solution
(started from the interpolated 101-node path, so both lie in the same basin). Also the
fraction of paths the library reports converged and the fraction SciPy reports success.

Run with

    python benchmarks/bench_core.py           # B = 1, 64, 1024 (a few minutes on 2 cores)
    python benchmarks/bench_core.py --quick   # B = 1, 64, small SciPy subset (< 1 minute)
    python benchmarks/bench_core.py --set saddle   # endpoints U[−0.3, 0.3]² around the saddle

No timing is asserted; the numbers depend on the machine. OpenBLAS is limited to one thread
(unless OPENBLAS_NUM_THREADS is already set): L-BFGS-B makes many tiny BLAS calls, and with
threaded OpenBLAS on a small machine the SciPy baseline runs several times slower.
"""

import os

# Before NumPy is imported. Threaded OpenBLAS makes the tiny BLAS calls inside L-BFGS-B
# slow (measured ~8x on a 2-core machine); a fair baseline runs it single-threaded.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402

import noether_jax as nj  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import cost_model  # noqa: E402
from _baselines import (  # noqa: E402
    batch_runner_fn,
    library_fn as _library_fn,
    scipy_solve as _scipy_solve,
)
from _problems import (  # noqa: E402
    action_and_grad_np,
    interpolate,
    maier_stein,
    straight_line,
)

D = 0.1
T0, T1 = 0.0, 10.0
N_NODES = 101
N_FINE = 1601
MAX_DISC_PATHS = 64  # paths used for the discretisation error (it does not depend on B)
PROBLEM = maier_stein(beta=10.0, D=D, T=T1, n_nodes=N_NODES)
X0 = PROBLEM.x0
endpoints = PROBLEM.endpoints  # the first `n` endpoints of one fixed stream


def saddle_endpoints(n: int) -> np.ndarray:
    """Around the saddle `(0, 0)`: `cost_model.endpoints("saddle", n)`, `0.3 (u, v)` with the
    same `u, v ~ U[−1, 1]` stream."""
    return cost_model.endpoints("saddle", n)


# --------------------------------------------------------------------------- library


COMPILER_OPTIONS = None  # set in main: nj.cpu_compiler_options(), or {} (--xla-defaults)


def library_fn(n_nodes: int = N_NODES, solver=None, with_init: bool = False,
               grid_controller=None, lanes=None, compiler_options=None):
    """A jitted, vmapped `minimize_action` over endpoints (and initial paths), compiled with
    `compiler_options` (default: the run's `COMPILER_OPTIONS`)."""
    opts = COMPILER_OPTIONS if compiler_options is None else compiler_options
    return jax.jit(_library_fn(PROBLEM, n_nodes=n_nodes, solver=solver, with_init=with_init,
                               grid_controller=grid_controller, lanes=lanes),
                   compiler_options=opts or None)


def time_library(fn, x1: np.ndarray, repeats: int):
    """(compile+first-call seconds, median seconds per call, solution)."""
    x1 = jnp.asarray(x1)
    t = time.perf_counter()
    sol = jax.block_until_ready(fn(x1))
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sol = jax.block_until_ready(fn(x1))
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return first - med, med, sol


# --------------------------------------------------------------------------- NumPy baseline


def check_gradient() -> tuple[float, float]:
    """Max abs error of the hand-written NumPy gradient (`_problems.action_and_grad_np`)
    against central differences, and max |g|."""
    rng = np.random.default_rng(1)
    x1 = endpoints(1)[0]
    y = (straight_line(PROBLEM, x1)[1:-1] + 0.1 * rng.standard_normal((N_NODES - 2, 2))).ravel()
    _, g = action_and_grad_np(y, PROBLEM, x1)
    eps = 1e-6
    fd = np.empty_like(y)
    for k in range(y.size):
        e = np.zeros_like(y)
        e[k] = eps
        fd[k] = (action_and_grad_np(y + e, PROBLEM, x1)[0]
                 - action_and_grad_np(y - e, PROBLEM, x1)[0]) / (2 * eps)
    return float(np.max(np.abs(g - fd))), float(np.max(np.abs(g)))


def scipy_solve(x1: np.ndarray):
    """One path by L-BFGS-B from the straight line, tight tolerances. Returns (S, success,
    nit, xs)."""
    r = _scipy_solve(PROBLEM, x1, gtol=1e-10, ftol=1e-15)
    return r["S"], r["ok"], r["nit"], r["xs"]


def time_scipy(x1: np.ndarray, repeats: int):
    """Median seconds per path of the Python loop, and the per-path results."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = [scipy_solve(b) for b in x1]
        times.append((time.perf_counter() - t) / len(x1))
    return statistics.median(times), out


# --------------------------------------------------------------------------- references


def fine_actions(xs_coarse: np.ndarray, x1: np.ndarray):
    """Library actions on the fine grid, started from the interpolated coarse paths."""
    init = interpolate(xs_coarse, N_FINE)
    fn = library_fn(N_FINE, with_init=True)
    sol = jax.block_until_ready(fn(jnp.asarray(x1), jnp.asarray(init)))
    return np.asarray(sol.action), np.asarray(sol.converged)


# --------------------------------------------------------------------------- report


def machine_info() -> str:
    dev = jax.devices()[0]
    return "\n".join(
        [
            f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"platform  {platform.platform()}  ({platform.machine()})",
            f"cpus      {os.cpu_count()}",
            f"python    {platform.python_version()}",
            f"versions  jax {jax.__version__}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}, noether_jax {nj.__version__}",
            f"device    {dev.platform}: {dev.device_kind}",
            f"blas      OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
        ]
    )


def print_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))


def spread(B: int, n: int) -> np.ndarray:
    """Indices of `n` of `B` endpoints spread evenly over the batch (the SciPy subset: the
    per-path cost varies from endpoint to endpoint, so a subset must sample the batch)."""
    return np.unique(np.linspace(0, B - 1, n).round().astype(int))


def run_batch(B: int, n_scipy: int, lib_repeats: int, scipy_repeats: int, ref_fn):
    x1 = endpoints(B)
    compile_s, lib_s, sol = time_library(library_fn(), x1, lib_repeats)
    ref = jax.block_until_ready(ref_fn(jnp.asarray(x1)))
    S_lib, S_ref = np.asarray(sol.action), np.asarray(ref.action)
    xs_ref = np.asarray(ref.xs)

    pick = spread(B, n_scipy)
    sub = x1[pick]
    scipy_s, out = time_scipy(sub, scipy_repeats)
    S_sp = np.array([o[0] for o in out])
    xs_sp = np.stack([o[3] for o in out])
    return dict(
        B=B,
        n_scipy=len(sub),
        compile_s=compile_s,
        lib_ms=1e3 * lib_s / B,
        scipy_ms=1e3 * scipy_s,
        lib_err=np.max(np.abs(S_lib - S_ref)),
        lib_dx=np.max(np.abs(np.asarray(sol.xs) - xs_ref)),
        scipy_err=np.max(np.abs(S_sp - S_ref[pick])),
        scipy_dx=np.max(np.abs(xs_sp - xs_ref[pick])),
        lib_conv=float(np.mean(np.asarray(sol.converged))),
        ref_conv=float(np.mean(np.asarray(ref.converged))),
        scipy_ok=float(np.mean([o[1] for o in out])),
        lib_steps=int(np.max(np.asarray(sol.stats["num_steps"]))),
        lib_steps_mean=float(np.mean(np.asarray(sol.stats["num_steps"]))),
        scipy_nit=float(np.mean([o[2] for o in out])),
        xs_lib=np.asarray(sol.xs),
        S_lib=S_lib,
    )


def run_batch_runner(big: dict, straggler_steps: int, repeats: int, ref_fn):
    """The largest batch again through `nj.solve_batch(straggler_steps=K)`: `vmap` of a
    `while_loop` runs every element until the slowest stops; the runner caps the batch at
    `K` steps and finishes the stragglers apart. Compared with the same SciPy timing."""
    x1 = endpoints(big["B"])
    fn = batch_runner_fn(PROBLEM, straggler_steps=straggler_steps)
    compile_s, lib_s, sol = time_library(fn, x1, repeats)
    ref = jax.block_until_ready(ref_fn(jnp.asarray(x1)))
    steps = np.asarray(sol.stats["num_steps"])
    return dict(
        B=big["B"], K=straggler_steps, compile_s=compile_s, lib_ms=1e3 * lib_s / big["B"],
        scipy_ms=big["scipy_ms"], n_scipy=big["n_scipy"],
        lib_err=np.max(np.abs(np.asarray(sol.action) - np.asarray(ref.action))),
        lib_conv=float(np.mean(np.asarray(sol.converged))),
        polished=int(np.sum(steps > straggler_steps)),
    )


def run_nested(big: dict, rounds: int, ref_fn, lanes_list=()) -> list[dict]:
    """The largest batch again with nested uniform grids (`nj.Refine(levels=3, adapt=None)`:
    26 → 51 → 101 nodes, each level warm-started from the previous one; the finest grid
    is the benchmark's, so the discrete problem is the same), in lockstep and in each of
    `lanes_list` refilled lanes. The variants and the SciPy loop (on the same paths as the
    batch row's) are timed in turn, `rounds` times (a noisy machine drifts over minutes;
    interleaving shares the drift), and each reports its median. Paths whose action
    differs from the reference by more than 1e-9 count as another local minimum."""
    x1 = jnp.asarray(endpoints(big["B"]))
    ctrl = nj.Refine(levels=3, adapt=None, rtol=float("inf"))
    variants = [(lanes, COMPILER_OPTIONS) for lanes in (None, *lanes_list)]
    if COMPILER_OPTIONS:  # the same rows with XLA's default options, for comparison
        variants += [(lanes, {}) for lanes in (None, *lanes_list)]
    fns, sols, compile_s = [], [], []
    for lanes, opts in variants:
        fn = library_fn(grid_controller=ctrl, lanes=lanes, compiler_options=opts)
        t = time.perf_counter()
        sols.append(jax.block_until_ready(fn(x1)))
        compile_s.append(time.perf_counter() - t)
        fns.append(fn)
    # The SciPy loop takes its turn in every round too (on a few paths), so that each
    # ratio compares times from the same stretch of the run.
    sub = np.asarray(x1)[spread(big["B"], big["n_scipy"])]
    times, scipy_times = [[] for _ in variants], []
    for _ in range(rounds):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            jax.block_until_ready(fn(x1))
            ts.append(time.perf_counter() - t)
        scipy_times.append(time_scipy(sub, 1)[0])
    scipy_ms = 1e3 * statistics.median(scipy_times)
    ref = jax.block_until_ready(ref_fn(x1))
    out = []
    for (lanes, opts), sol, ts, c in zip(variants, sols, times, compile_s):
        dS = np.abs(np.asarray(sol.action) - np.asarray(ref.action))
        steps = np.asarray(sol.stats["num_steps"])
        med = statistics.median(ts)
        out.append(dict(
            lanes=lanes, xla="defaults" if not opts else "nj.cpu_compiler_options()",
            B=big["B"], compile_s=c - med, lib_ms=1e3 * med / big["B"],
            scipy_ms=scipy_ms, n_scipy=len(sub), lib_err=dS.max(),
            other_minima=int(np.sum(dS > 1e-9)),
            lib_conv=float(np.mean(np.asarray(sol.converged))),
            steps_mean=float(steps.mean()), steps_max=int(steps.max()),
        ))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="B in {1, 64}, small SciPy subset")
    p.add_argument("--set", choices=("attractor", "saddle"), default="attractor",
                   help="endpoints near the other attractor (default) or U[-0.3, 0.3]^2 "
                   "around the saddle and the separatrix")
    p.add_argument("--straggler-steps", type=int, default=None,
                   help="K of the nj.solve_batch row (default 18 on the attractor set, 40 on "
                   "the saddle set: about the 75th and 85th percentiles of the Newton steps)")
    p.add_argument("--lanes", type=int, nargs="*", default=[64],
                   help="lane counts of the nested-grid rows run in refilled lanes "
                   "(minimize_action(lanes=...); default 64)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved timing rounds of the nested-grid rows (default 5)")
    p.add_argument("--xla-defaults", action="store_true",
                   help="compile the library with XLA's default options only (default: "
                   "nj.cpu_compiler_options(), and the nested-grid rows also with the defaults)")
    p.add_argument("--scipy-subset", type=int, default=None,
                   help="max paths solved by the SciPy loop per batch, spread evenly over it "
                   "(default 64, and 128 for B = 1024; quick 8)")
    opts = p.parse_args()
    global endpoints, COMPILER_OPTIONS
    if opts.set == "saddle":
        endpoints = saddle_endpoints
    COMPILER_OPTIONS = {} if opts.xla_defaults else nj.cpu_compiler_options()

    sizes = (1, 64) if opts.quick else (1, 64, 1024)
    n_sub = opts.scipy_subset or (8 if opts.quick else 64)
    n_sub_large = opts.scipy_subset or (8 if opts.quick else 128)
    lib_repeats = {1: 20, 64: 5, 1024: 3}
    scipy_repeats = {1: 5}

    print("noether_jax core benchmark: Maier–Stein (β=10), D=0.1, T=10, n_nodes=101, float64, "
          f"endpoint set: {opts.set}")
    print(machine_info())
    print(f"Library compiled with compiler_options={COMPILER_OPTIONS or 'XLA defaults'}")
    err, gmax = check_gradient()
    print(f"NumPy gradient vs central differences: max abs error {err:.2e} (max |g| {gmax:.2e})")
    print()

    ref_fn = library_fn(solver=nj.BlockNewton(rtol=1e-13, atol=1e-13))
    results = []
    for B in sizes:
        n = min(B, n_sub if B <= 64 else n_sub_large)
        r = run_batch(B, n, lib_repeats.get(B, 3), scipy_repeats.get(B, 1), ref_fn)
        results.append(r)
        print(f"  B={B:5d}: library {r['lib_ms']:.3f} ms/path, SciPy {r['scipy_ms']:.1f} ms/path"
              f" ({r['n_scipy']} paths)", flush=True)

    # Discretisation error (a property of the endpoints, not of B): on the largest batch.
    big = results[-1]
    m = min(big["B"], MAX_DISC_PATHS)
    S_fine, fine_conv = fine_actions(big["xs_lib"][:m], endpoints(m))
    disc = np.abs(big["S_lib"][:m] - S_fine)
    print()

    header = ["B", "lib ms/path", "compile s", "SciPy ms/path", "SciPy paths", "SciPy/lib",
              "lib |dS|", "SciPy |dS|", "lib |dx|", "SciPy |dx|", "lib conv", "SciPy ok"]
    rows = [
        [r["B"], f"{r['lib_ms']:.3f}", f"{r['compile_s']:.2f}", f"{r['scipy_ms']:.1f}",
         f"{r['n_scipy']}", f"{r['scipy_ms'] / r['lib_ms']:.0f}x",
         f"{r['lib_err']:.1e}", f"{r['scipy_err']:.1e}", f"{r['lib_dx']:.1e}",
         f"{r['scipy_dx']:.1e}", f"{r['lib_conv']:.3f}", f"{r['scipy_ok']:.3f}"]
        for r in results
    ]
    print_table(header, rows)
    if not opts.quick:
        K = opts.straggler_steps or (40 if opts.set == "saddle" else 18)
        rb = run_batch_runner(big, K, lib_repeats.get(big["B"], 3), ref_fn)
        print(f"B={rb['B']} through nj.solve_batch(straggler_steps={K}): library "
              f"{rb['lib_ms']:.3f} ms/path (compile {rb['compile_s']:.1f} s), "
              f"SciPy/lib {rb['scipy_ms'] / rb['lib_ms']:.0f}x, lib |dS| {rb['lib_err']:.1e}, "
              f"conv {rb['lib_conv']:.3f}, {rb['polished']} of {rb['B']} paths polished")
        for rn in run_nested(big, opts.rounds, ref_fn, opts.lanes):
            how = ("in lockstep" if rn["lanes"] is None
                   else f"in {rn['lanes']} refilled lanes (lanes={rn['lanes']})")
            how += f", XLA options: {rn['xla']}"
            print(f"B={rn['B']} nested grids nj.Refine(levels=3, adapt=None) {how}: library "
                  f"{rn['lib_ms']:.3f} ms/path (median of {opts.rounds} interleaved rounds; "
                  f"compile {rn['compile_s']:.1f} s), SciPy {rn['scipy_ms']:.1f} ms/path "
                  f"({rn['n_scipy']} paths, same rounds), SciPy/lib "
                  f"{rn['scipy_ms'] / rn['lib_ms']:.0f}x, lib |dS| {rn['lib_err']:.1e} "
                  f"({rn['other_minima']} paths in another local minimum), conv "
                  f"{rn['lib_conv']:.3f}, finest-level Newton steps mean "
                  f"{rn['steps_mean']:.1f} / max {rn['steps_max']}")
    print()
    print("|dS| = max |S − S_ref|, |dx| = max |x − x_ref| over the paths solved, with S_ref, x_ref")
    print("the library at BlockNewton(rtol=atol=1e-13) on the same 101-node problem (optimisation")
    print("error). SciPy = L-BFGS-B, one path at a time, exact NumPy gradient; where 'SciPy paths'")
    print("< B its time per path is measured on that many of the B endpoints.")
    print("Iterations:  " + ";  ".join(
        f"B={r['B']}: lib Newton steps mean {r['lib_steps_mean']:.1f} / max {r['lib_steps']}, "
        f"SciPy nit mean {r['scipy_nit']:.0f}" for r in results))
    print("Reference converged fraction: " + ", ".join(
        f"B={r['B']}: {r['ref_conv']:.3f}" for r in results))
    print(f"Discretisation error of the library's 101-node action vs {N_FINE} nodes "
          f"({m} paths, fine converged {np.mean(fine_conv):.3f}): "
          f"max {disc.max():.2e}, median {np.median(disc):.2e} "
          f"(|S| median {np.median(np.abs(S_fine)):.2f})")


if __name__ == "__main__":
    main()
