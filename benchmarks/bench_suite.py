"""Benchmark suite: the library against the baselines a user would otherwise write.

Run from the repository root:

    python benchmarks/bench_suite.py --quick            # ~3 minutes on 2 busy cores
    python benchmarks/bench_suite.py                    # the full suite (~13 minutes)
    python benchmarks/bench_suite.py --gpu              # one GPU, 10⁵ paths, < 5 minutes
    python benchmarks/bench_suite.py --gpu --scale 0.01 # the same, batches ÷ 100 (CPU check)
    python benchmarks/bench_suite.py --only maier-stein,scaling-B
    python benchmarks/bench_suite.py --write            # also update benchmarks/RESULTS.md

Sections (`--only`): `maier-stein`, `rate-network`, `rnn`, `scaling-N`, `scaling-B`.

**`--gpu`** is a focused measurement, not the CPU suite at GPU sizes (sections
`maier-stein`, `maier-stein-saddle`, `float32`, `rnn`, `roofline`): the library's batched
default (`jit(vmap(nj.minimize_action))` and `nj.solve_batch(straggler_steps=...)`) on
10⁵ Maier–Stein endpoints at 128 nodes for both endpoint sets of `cost_model.py` (near the
other attractor, and `U[−0.3, 0.3]²` around the saddle); the same solve in float32; the RNN
d = 1024 per path with the default solver; and `cost_model.roofline`'s prediction beside
each measured solve. The accuracy references (same-grid tight and 16× finer grid) and the
SciPy L-BFGS-B per-path ratio are computed on the first 64 and 32 endpoints only (the
same endpoints as the CPU tables' first ones); GD, optax and the scaling sections are left
to the CPU presets. Each section's wall time and the total are printed at the end.

Problems (`_problems.py`): Maier–Stein (d = 2, β = 10, D = 1, T = 10, 101 nodes; a batch of
endpoints around the second attractor), the seed paper's 2-unit rate network (steep
sigmoids of width 0.01, D = 0.16, T = 1, 401 nodes, one path), and random RNNs
`f = −x + W tanh(x)` with spectral radius ρ(W) = 0.9 (d = 64, 256, 1024; T = 5, 51 nodes;
one path from the stable origin to a displaced point). The scaling sections vary N and B
for Maier–Stein; the `rnn` section gives the slopes in d.

Methods, side by side in one process (float64):

1. **library**: `jax.jit(jax.vmap(nj.minimize_action))` over the batch of endpoints, default
   solver (`nj.BlockNewton` for d ≤ 8, `nj.NewtonCG` above) and tolerances. For Maier–Stein
   also `nj.solve_batch(..., straggler_steps=K, polish_size=32)` on the same batch (one
   chunk): every path capped at `K` Newton steps, then those that ran out finished apart,
   warm-started (so the slowest paths no longer set the whole batch's step count).
2. **SciPy L-BFGS-B**: a Python loop over the paths, `scipy.optimize.minimize` with the exact
   gradient written in NumPy, from the straight line. It is timed on a subset of the batch
   (the table's B column says how many paths) and reported per path.
3. **the paper's gradient descent**: `y ← y − lr ∇S_h(y)`, fixed `lr = 1/L` (`L` the largest
   Hessian eigenvalue at the initial path), 60 000 steps on the same fixed grid, on the first
   endpoint. Four implementations of the same iteration: an eager Python loop of JAX
   autodiff steps (as the paper's PyTorch-style scripts), a Python loop over a jit-compiled
   step (one dispatch per step: closer to what an eager PyTorch loop costs, since eager JAX
   dispatch is slower than PyTorch's), a Python loop of NumPy steps with the exact gradient
   of the SciPy baseline (as a NumPy user writes it; its action after its prefix is checked
   against the scan's to 1e-8), all three timed on a prefix of the steps and extrapolated
   linearly, and one jit-compiled `lax.scan` (the strongest variant). Its final action is
   that of the scan. The library's time to reach that action is measured by running it
   with `max_steps = k` for the smallest such `k` (bisection; `--quick` uses the full solve,
   an upper bound).
4. **optax L-BFGS**: `optax.lbfgs()` (zoom line search) in a `lax.while_loop`, vmapped over
   the batch, stopped at `max |∇S_h| ≤ gtol`.

**Equal accuracy.** Every method minimises the same discrete action on the same grid, so
against a fine-grid reference all share the discretisation error. Write `S_tight` for the
library at `rtol = atol = 1e-13` on the same grid and `S_fine` for a finer grid (16× the
nodes for Maier–Stein, 8× for the network, 2× for the RNNs; started from the interpolated
path so both are in the same basin). The accuracy threshold is 1 % of the median
discretisation error `|S_tight − S_fine|`. SciPy and optax are run at the loosest
tolerance of a ladder whose optimisation error `max |S − S_tight|` is below the threshold
(their accuracy against the fine grid then equals the library's to 1 %); SciPy is also
shown at its tightest rung. The table gives both errors: `|ΔS| fine` and `|ΔS| opt`.

**Timing.** JAX functions are compiled ahead of time: `compile s` is apart from run time.
Times are medians of `repeats` calls, wall clock (`ms/path`) and process CPU time
(`cpu ms/path`; more robust on a shared machine; JAX may use several threads). Memory is
XLA's analysis of the compiled program (arguments + outputs + temporaries) for JAX methods,
and `tracemalloc`'s peak for the NumPy/SciPy loop. Ratios to the library are given for
both wall and CPU times per path.
OpenBLAS is limited to one thread for the SciPy baseline (tiny BLAS calls in L-BFGS-B run
much slower threaded on a small machine). No timing is asserted anywhere.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy is imported

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import cost_model  # noqa: E402
import noether_jax as nj  # noqa: E402
from _baselines import (  # noqa: E402
    SCIPY_LADDER,
    Timed,
    device_peak_bytes,
    gd_eager,
    gd_jit_loop,
    gd_learning_rate,
    gd_numpy,
    gd_scan_fn,
    library_fn,
    optax_lbfgs_fn,
    scipy_loop,
)
from _problems import (  # noqa: E402
    Problem,
    action_and_grad_np,
    check_problem,
    interpolate,
    maier_stein,
    rate_network,
    rnn,
)

HERE = pathlib.Path(__file__).parent
SECTIONS = ("maier-stein", "rate-network", "rnn", "scaling-N", "scaling-B")
OPTAX_LADDER = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)  # gtol, loosest first
TIGHT = 1e-13


@dataclasses.dataclass
class Config:
    name: str
    ms_B: int  # Maier–Stein batch
    ms_N: int
    ms_sub: int  # SciPy subset
    ms_ref: int  # paths with a fine-grid reference
    net_N: int
    rnn_d: tuple
    rnn_N: int
    scal_N: tuple
    scal_N_B: int
    scal_B: tuple
    gd_steps: int = 60_000
    gd_prefix_eager: int = 200
    gd_prefix_jit: int = 20_000
    gd_prefix_numpy: int = 10_000  # a multiple of the scan's record interval (100)
    ms_straggler_steps: int = 24  # Maier–Stein's easy paths take ~15–26 Newton steps
    bisect: bool = True  # measure the library's steps to reach the GD's action exactly
    phases: bool = True  # the Maier–Stein batch cut at its mean step count
    extra_lbfgs: bool = True  # the RNN with d = 64 also with nj.BlockNewton and nj.LBFGS
    repeats: int = 3
    # The GPU preset (`focused`): the library at full batch size, references and SciPy on
    # the first `ms_ref` / `ms_sub` paths only, no GD, optax or scaling sections.
    focused: bool = False
    ms_sets: tuple = ("attractor",)  # Maier–Stein endpoint sets (`ms_problem`)
    ms_straggler_saddle: int = 64  # the saddle set's paths take ~46 steps (max ~130)
    scipy_sets: tuple = ("attractor",)  # sets with the SciPy per-path ratio (focused)
    roof_fit_N: tuple = (5, 9, 17)  # node counts of the unrolled cost counts (roofline)


PRESETS = {
    # Shapes shared between sections are compiled and timed once (`measure_library`).
    "quick": Config("quick", ms_B=64, ms_N=101, ms_sub=8, ms_ref=16, net_N=401, rnn_d=(64, 256),
                    rnn_N=51, scal_N=(51, 101, 201), scal_N_B=64, scal_B=(16, 64),
                    gd_prefix_eager=50, gd_prefix_jit=2_000, gd_prefix_numpy=2_000,
                    bisect=False, phases=False, extra_lbfgs=False, repeats=2),
    "full": Config("full", ms_B=1024, ms_N=101, ms_sub=32, ms_ref=64, net_N=401,
                   rnn_d=(64, 256, 1024), rnn_N=51, scal_N=(51, 101, 201, 401, 801),
                   scal_N_B=64, scal_B=(1, 16, 64, 256, 1024)),
    # One GPU in under 5 minutes: the library's batched default on 10⁵ Maier–Stein paths per
    # endpoint set (float64 and float32), the RNN d = 1024, the cost model's roofline; the
    # accuracy references and the SciPy ratio on a subsample (`ms_ref`, `ms_sub` paths).
    "gpu": Config("gpu", ms_B=100_000, ms_N=128, ms_sub=32, ms_ref=64, net_N=401,
                  rnn_d=(1024,), rnn_N=51, scal_N=(), scal_N_B=0, scal_B=(),
                  bisect=False, phases=False, extra_lbfgs=False, repeats=1, focused=True,
                  ms_sets=("attractor", "saddle"),
                  # at 128 nodes the attractor set takes 21 steps on average, 34 at most:
                  # a cap of 24 sent a third of the paths to the second pass
                  ms_straggler_steps=32),
}
GPU_SECTIONS = ("maier-stein", "maier-stein-saddle", "float32", "rnn", "roofline")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


def tight_solver(p: Problem):
    if p.d <= 64:
        return nj.BlockNewton(rtol=TIGHT, atol=TIGHT)
    return nj.LBFGS(rtol=1e-12, atol=1e-12)


def max_steps_for(p: Problem, solver=None) -> int:
    """256 (the default) for `nj.BlockNewton`; L-BFGS converges linearly and needs more, as
    `nj.LBFGS`'s docstring says."""
    lbfgs = isinstance(solver, nj.LBFGS)
    return 10_000 if lbfgs else 256


_MEASURED: dict = {}


def measure_library(p: Problem, B: int, repeats: int, *, solver=None,
                    max_steps: int | None = None) -> dict:
    """The library's default on the first `B` endpoints of `p`: compile time, median wall
    and CPU seconds per call, XLA memory, the solution. Cached, so a configuration shared
    by several sections (e.g. the table and the batch-size scaling) is compiled and timed
    once and reports the same numbers everywhere."""
    max_steps = max_steps_for(p, solver) if max_steps is None else max_steps
    key = (p.name, p.n_nodes, B, repr(solver), max_steps)
    if key not in _MEASURED:
        X1 = jnp.asarray(p.endpoints(B))
        lib = Timed(library_fn(p, solver=solver, max_steps=max_steps), X1)
        wall, cpu, sol = lib.time(X1, repeats=repeats)
        _MEASURED[key] = dict(compile_s=lib.compile_s, wall=wall, cpu=cpu, sol=sol,
                              mem_MB=None if lib.mem_bytes is None else lib.mem_bytes / 1e6)
    return _MEASURED[key]


def slope(x, y) -> float:
    """Least-squares slope of log y against log x (nan if a value is missing)."""
    if any(v is None for v in y):
        return float("nan")
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(x, y, 1)[0])


def row(p: Problem, method: str, **kw) -> dict:
    base = dict(problem=p.name, method=method, B=None, N=p.n_nodes, d=p.d, compile_s=None,
                ms_path=None, cpu_ms_path=None, steps="", S=None, err_fine=None,
                err_opt=None, conv=None, mem_MB=None, ratio=None, ratio_cpu=None, note="")
    base.update(kw)
    return base


def steps_str(k) -> str:
    k = np.atleast_1d(np.asarray(k))
    return f"{k.mean():.0f}/{k.max()}" if k.size > 1 else f"{int(k[0])}"


@dataclasses.dataclass
class Refs:
    """Reference actions of one problem and batch, and the accuracy threshold."""

    S_tight: np.ndarray  # same grid, tolerance 1e-13, every path
    S_fine: np.ndarray  # finer grid, the first `len(S_fine)` paths
    threshold: float  # 1 % of the median discretisation error
    n_acc: int  # paths on which every method's error against the fine grid is taken

    def errors(self, S):
        """(max |S − S_fine| and median S over the first `n_acc` paths, the same paths for
        every method; max |S − S_tight| over all the paths the method solved that have a
        same-grid reference: every path in the CPU presets, the first `len(S_tight)` in the
        GPU preset)."""
        S = np.asarray(S)
        m = min(len(S), self.n_acc)
        k = min(len(S), len(self.S_tight))
        return (float(np.max(np.abs(S[:m] - self.S_fine[:m]))), float(np.median(S[:m])),
                float(np.max(np.abs(S[:k] - self.S_tight[:k]))))


def references(p: Problem, X1: np.ndarray, n_ref: int, n_acc: int, solver=None):
    """`S_tight` on the whole batch, `S_fine` on the first `n_ref` paths, and the accuracy
    threshold (1 % of the median discretisation error). `solver`: the tight solver
    (default `tight_solver(p)`)."""
    X1j = jnp.asarray(X1)
    if solver is None:
        solver = tight_solver(p)
        ms = 256 if p.d <= 64 else 20_000
    else:
        ms = 20_000 if isinstance(solver, nj.LBFGS) else 256
    tight = Timed(library_fn(p, solver=solver, max_steps=ms), X1j)
    ref = tight(X1j)
    m = min(len(X1), n_ref)
    init = jnp.asarray(interpolate(np.asarray(ref.xs[:m]), p.n_fine))
    fine = Timed(library_fn(p, n_nodes=p.n_fine, solver=solver, max_steps=ms,
                            with_init=True), X1j[:m], init)
    ref_fine = fine(X1j[:m], init)
    S_tight, S_fine = np.asarray(ref.action), np.asarray(ref_fine.action)
    disc = np.abs(S_tight[:m] - S_fine)
    info = dict(
        tight_conv=float(np.mean(np.asarray(ref.converged))),
        fine_conv=float(np.mean(np.asarray(ref_fine.converged))),
        fine_N=p.n_fine,
        disc_median=float(np.median(disc)),
        disc_max=float(np.max(disc)),
        S_median=float(np.median(np.abs(S_tight))),
        threshold=float(0.01 * np.median(disc)),
        n_ref=m,
        n_acc=min(m, n_acc),
    )
    return Refs(S_tight, S_fine, info["threshold"], info["n_acc"]), info


def run_library(p: Problem, X1: np.ndarray, refs: Refs, repeats: int, *, solver=None,
                label="library"):
    B = len(X1)
    m = measure_library(p, B, repeats, solver=solver)
    sol = m["sol"]
    ef, S, eo = refs.errors(sol.action)
    return row(p, label, B=B, compile_s=m["compile_s"], ms_path=1e3 * m["wall"] / B,
               cpu_ms_path=1e3 * m["cpu"] / B, steps=steps_str(sol.stats["num_steps"]), S=S,
               err_fine=ef, err_opt=eo, conv=float(np.mean(np.asarray(sol.converged))),
               mem_MB=m["mem_MB"], note=f"whole batch {m['wall']:.3g} s" if B > 1 else "")


def run_solve_batch(p: Problem, X1: np.ndarray, refs: Refs, repeats: int, straggler_steps: int,
                    polish_size: int = 32):
    """`nj.solve_batch` with the straggler polish on the whole batch as one chunk: every path
    capped at `straggler_steps` Newton steps, those that ran out finished apart
    (warm-started, `polish_size` at a time). Median of `repeats` calls after a warm-up call
    (which compiles: `solve_batch` compiles internally, so compile time is approximated by
    the warm-up call's excess over the median)."""
    B = len(X1)
    X1j = jnp.asarray(X1)
    x0 = jnp.asarray(p.x0)

    def solve(x1, **kw):  # one object: solve_batch reuses its compilation across calls
        return nj.minimize_action(p.sde, x0, x1, p.t0, p.t1, n_nodes=p.n_nodes, args=p.args,
                                  throw=False, **kw)

    def call():
        return jax.block_until_ready(nj.solve_batch(
            solve, X1j, chunk_size=B, straggler_steps=straggler_steps,
            polish_size=polish_size, progress=False))

    w = time.perf_counter()
    call()
    first = time.perf_counter() - w
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        sol = call()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    ef, S, eo = refs.errors(sol.action)
    k = np.asarray(sol.stats["num_steps"])
    n_pol = int(np.sum(k > straggler_steps))  # the polished paths count both passes' steps
    return row(p, f"library, solve_batch(straggler_steps={straggler_steps})", B=B,
               compile_s=max(first - wall, 0.0), ms_path=1e3 * wall / B,
               cpu_ms_path=1e3 * cpu / B, steps=steps_str(k), S=S, err_fine=ef, err_opt=eo,
               conv=float(np.mean(np.asarray(sol.converged))),
               note=f"K={straggler_steps}, polish {polish_size}; {n_pol} of {B} paths "
                    f"polished; whole batch {wall:.3g} s; compile ≈ first call − median")


def run_scipy(p: Problem, X1: np.ndarray, n_sub: int, refs: Refs, rungs=SCIPY_LADDER):
    """SciPy at the loosest rung meeting the accuracy threshold, and at the tightest rung."""
    sub = X1[:n_sub]
    chosen, results = None, {}

    def run(key):
        wall, cpu, mem, out = scipy_loop(p, sub, *key)
        results[key] = (wall, cpu, mem, out, *refs.errors([o["S"] for o in out]))
        log(f"  SciPy gtol={key[0]:g} ftol={key[1]:g}: {1e3 * wall:.1f} ms/path "
            f"({1e3 * cpu:.1f} cpu), |dS| opt {results[key][-1]:.1e} "
            f"(threshold {refs.threshold:.1e})")
        return results[key][-1]

    for key in rungs:
        if run(key) <= refs.threshold:
            chosen = key
            break
    tightest = rungs[-1]
    if tightest not in results:
        run(tightest)
    rows = []
    for key in ([chosen] if chosen not in (None, tightest) else []) + [tightest]:
        wall, cpu, mem, out, ef, S, eo = results[key]
        label = "SciPy L-BFGS-B " + ("matched" if key == chosen else "tight")
        note = f"gtol={key[0]:g}, ftol={key[1]:g}"
        if len(X1) > len(sub):
            note += f"; timed on {len(sub)} of {len(X1)} paths"
        if chosen is None:
            note += "; no rung met the accuracy threshold"
        rows.append(row(p, label, B=len(sub), ms_path=1e3 * wall, cpu_ms_path=1e3 * cpu,
                        steps=steps_str([o["nit"] for o in out]), S=S, err_fine=ef,
                        err_opt=eo, conv=float(np.mean([o["ok"] for o in out])),
                        mem_MB=mem / 1e6, note=note))
    return rows


def run_optax(p: Problem, X1: np.ndarray, refs: Refs, repeats: int, ladder=OPTAX_LADDER,
              max_iter: int = 20_000):
    """optax L-BFGS at the loosest `gtol` of the ladder meeting the accuracy threshold."""
    X1j = jnp.asarray(X1)
    fn = Timed(optax_lbfgs_fn(p, max_iter), X1j, jnp.asarray(ladder[0]))
    chosen = ladder[-1]
    for gtol in ladder:
        _, S, k, conv = fn(X1j, jnp.asarray(gtol))
        eo = refs.errors(S)[2]
        log(f"  optax gtol={gtol:g}: |dS| opt {eo:.1e}, steps max {int(np.max(k))}")
        if eo <= refs.threshold:
            chosen = gtol
            break
    # The ladder has run it already: no warm-up call.
    wall, cpu, (xs, S, k, conv) = fn.time(X1j, jnp.asarray(chosen), repeats=repeats,
                                          warmup=False)
    B = len(X1)
    ef, S_med, eo = refs.errors(S)
    return row(p, "optax L-BFGS (vmap)", B=B, compile_s=fn.compile_s, ms_path=1e3 * wall / B,
               cpu_ms_path=1e3 * cpu / B, steps=steps_str(k), S=S_med, err_fine=ef, err_opt=eo,
               conv=float(np.mean(np.asarray(conv))),
               mem_MB=None if fn.mem_bytes is None else fn.mem_bytes / 1e6,
               note=f"gtol={chosen:g}" + ("" if eo <= refs.threshold else "; threshold not met"))


def run_gd(p: Problem, cfg: Config, S_tight0: float, threshold: float, repeats: int) -> dict:
    """The paper's gradient descent on the first endpoint, and the library's time to reach
    its final action."""
    x1 = p.endpoints(1)[0]
    x1j = jnp.asarray(x1)
    lr = gd_learning_rate(p, x1)
    steps = cfg.gd_steps
    record = 100
    scan = Timed(gd_scan_fn(p, lr, steps, record), x1j)
    scan_wall, scan_cpu, (_, Ss) = scan.time(x1j, repeats=1)
    Ss = np.asarray(Ss)
    S_gd = float(Ss[-1])
    log(f"  GD lr={lr:.3g}: S after {steps} steps {S_gd:.10g} (S* {S_tight0:.10g}); "
        f"scan {scan_wall:.2f} s")
    e_wall, e_cpu = gd_eager(p, x1, lr, cfg.gd_prefix_eager)[:2]
    j_wall, j_cpu = gd_jit_loop(p, x1, lr, cfg.gd_prefix_jit)[:2]
    eager_s = e_wall / cfg.gd_prefix_eager * steps
    eager_cpu = e_cpu / cfg.gd_prefix_eager * steps
    jit_s = j_wall / cfg.gd_prefix_jit * steps
    jit_cpu = j_cpu / cfg.gd_prefix_jit * steps
    # NumPy GD on a prefix; its action there must match the scan's record at the same step
    # (same iteration, both gradients exact): a wrong NumPy loop would fail this.
    k_np = cfg.gd_prefix_numpy
    if k_np % record or not 0 < k_np <= steps:
        raise ValueError(f"gd_prefix_numpy={k_np} must be a multiple of {record} in (0, {steps}]")
    n_wall, n_cpu, y_np = gd_numpy(p, x1, lr, k_np)
    S_np = action_and_grad_np(y_np.ravel(), p, x1)[0]
    np_rel = float(abs(S_np - Ss[k_np // record]) / abs(Ss[k_np // record]))
    log(f"  GD NumPy: {k_np} steps {n_wall:.2f} s; S {S_np:.12g}, scan "
        f"{Ss[k_np // record]:.12g} (rel {np_rel:.1e})")
    if not np_rel <= 1e-8:
        raise RuntimeError(f"{p.name}: NumPy GD disagrees with the scan after {k_np} steps: "
                           f"rel {np_rel:.1e} > 1e-8")
    numpy_s = n_wall / k_np * steps
    numpy_cpu = n_cpu / k_np * steps

    # The library on the same single path: full solve, then the fewest steps reaching S_gd.
    X1 = x1j[None]
    full = measure_library(p, 1, max(repeats, 5))
    full_wall, full_cpu, sol = full["wall"], full["cpu"], full["sol"]
    K = int(sol.stats["num_steps"][0])
    target = S_gd + 1e-12 * max(1.0, abs(S_gd))
    reach = dict(k=K, wall=full_wall, cpu=full_cpu, exact=False)
    if cfg.bisect and float(sol.action[0]) <= target:
        cache = {}

        def S_at(k):
            if k not in cache:
                cache[k] = Timed(library_fn(p, max_steps=k), X1)
            return float(cache[k](X1).action[0])

        lo, hi = 0, K
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if S_at(mid) <= target:
                hi = mid
            else:
                lo = mid
        if hi < K:
            S_at(hi)
            w, c, _ = cache[hi].time(X1, repeats=max(repeats, 5))
            reach = dict(k=hi, wall=w, cpu=c, exact=True)
        else:
            reach["exact"] = True
    elif float(sol.action[0]) > target:
        reach["note"] = "library's converged action is above the GD's (round-off)"
    # GD's distance to the optimum along its iteration, and the steps it needs to come within
    # the accuracy threshold (on the recorded curve, every `record` steps).
    gap = Ss - S_tight0
    within = np.nonzero(gap <= threshold)[0]
    return dict(
        problem=p.name, N=p.n_nodes, lr=lr, steps=steps, S_gd=S_gd, S_star=S_tight0,
        gap=S_gd - S_tight0, gap_curve={int(k * record): float(gap[k])
                                        for k in (0, 10, 100, 599) if k < len(gap)},
        steps_to_threshold=int(within[0] * record) if within.size else None,
        eager_s=eager_s, eager_cpu_s=eager_cpu, eager_prefix=cfg.gd_prefix_eager,
        jitloop_s=jit_s, jitloop_cpu_s=jit_cpu, jit_prefix=cfg.gd_prefix_jit,
        numpy_s=numpy_s, numpy_cpu_s=numpy_cpu, numpy_prefix=k_np, numpy_vs_scan_rel=np_rel,
        scan_s=scan_wall, scan_cpu_s=scan_cpu, scan_compile_s=scan.compile_s,
        lib_full_s=full_wall, lib_full_cpu_s=full_cpu, lib_full_steps=K,
        lib_compile_s=full["compile_s"],
        lib_reach_s=reach["wall"], lib_reach_cpu_s=reach["cpu"], lib_reach_steps=reach["k"],
        reach_exact=reach["exact"], reach_note=reach.get("note", ""),
        ratio_eager=eager_s / reach["wall"], ratio_jitloop=jit_s / reach["wall"],
        ratio_scan=scan_wall / reach["wall"], ratio_eager_cpu=eager_cpu / reach["cpu"],
        ratio_jitloop_cpu=jit_cpu / reach["cpu"], ratio_scan_cpu=scan_cpu / reach["cpu"],
        ratio_numpy=numpy_s / reach["wall"], ratio_numpy_cpu=numpy_cpu / reach["cpu"],
    )


def with_ratios(rows: list[dict], lib: dict) -> None:
    """Each row's time per path as a multiple of the library's (`ratio`, `ratio_cpu`)."""
    for r in rows:
        r["ratio"] = r["ms_path"] / lib["ms_path"]
        r["ratio_cpu"] = r["cpu_ms_path"] / lib["cpu_ms_path"]


def compare(p: Problem, B: int, n_sub: int, n_ref: int, cfg: Config, *, gd: bool,
            optax_ladder=OPTAX_LADDER, scipy_rungs=SCIPY_LADDER, extra_lbfgs: bool = False,
            straggler_steps: int | None = None):
    """All methods on one problem and batch (with `straggler_steps`, also the library
    through `nj.solve_batch` with that cap). Returns (rows, references info, GD dict)."""
    log(f"{p.title}: B={B}, N={p.n_nodes}, d={p.d}")
    X1 = p.endpoints(B)
    n_sub = min(n_sub, B)
    refs, info = references(p, X1, n_ref, n_acc=n_sub)
    log(f"  references: disc median {info['disc_median']:.2e}, threshold {info['threshold']:.1e}")
    lib = run_library(p, X1, refs, cfg.repeats)
    rows = [lib]
    log(f"  library: {lib['ms_path']:.3f} ms/path ({lib['cpu_ms_path']:.3f} cpu), "
        f"conv {lib['conv']:.3f}")
    if extra_lbfgs:
        for solver in (nj.BlockNewton(), nj.LBFGS()):
            rows.append(run_library(p, X1, refs, cfg.repeats, solver=solver,
                                    label=f"library, nj.{type(solver).__name__}()"))
    if straggler_steps is not None:
        rows.append(run_solve_batch(p, X1, refs, cfg.repeats, straggler_steps))
        log(f"  {rows[-1]['method']}: {rows[-1]['ms_path']:.3f} ms/path "
            f"({rows[-1]['cpu_ms_path']:.3f} cpu), conv {rows[-1]['conv']:.3f}, "
            f"steps {rows[-1]['steps']}")
    rows += run_scipy(p, X1, n_sub, refs, rungs=scipy_rungs)
    rows.append(run_optax(p, X1, refs, cfg.repeats, ladder=optax_ladder))
    with_ratios(rows, lib)
    g = run_gd(p, cfg, float(refs.S_tight[0]), refs.threshold, cfg.repeats) if gd else None
    return rows, info, g


# --------------------------------------------------------------------------- sections


def section_maier_stein(cfg: Config, out: dict):
    p = maier_stein(n_nodes=cfg.ms_N)
    B = cfg.ms_B
    rows, info, g = compare(p, B, cfg.ms_sub, cfg.ms_ref, cfg, gd=True,
                            straggler_steps=cfg.ms_straggler_steps)
    out["rows"] += rows
    out["refs"][p.name] = info
    out["gd"].append(g)
    if not cfg.phases:
        return
    # Where the batch's time goes: under vmap the Newton loop runs until the slowest element
    # stops (then certifies the minimum). The same batch cut at the mean step count shows
    # what an evenly converging batch would cost.
    full = measure_library(p, B, cfg.repeats)
    k = np.asarray(full["sol"].stats["num_steps"])
    k_mean = int(np.ceil(k.mean()))
    cut = measure_library(p, B, cfg.repeats, max_steps=k_mean)
    out["phases"] = dict(
        problem=p.name, B=B, N=p.n_nodes, steps_mean=float(k.mean()), steps_max=int(k.max()),
        full_ms=1e3 * full["wall"] / B, full_cpu_ms=1e3 * full["cpu"] / B, k_cut=k_mean,
        cut_ms=1e3 * cut["wall"] / B, cut_cpu_ms=1e3 * cut["cpu"] / B,
        cut_conv=float(np.mean(np.asarray(cut["sol"].converged))),
    )


def section_rate_network(cfg: Config, out: dict):
    p = rate_network(n_nodes=cfg.net_N)
    rows, info, g = compare(p, 1, 1, 1, cfg, gd=True)
    out["rows"] += rows
    out["refs"][p.name] = info
    out["gd"].append(g)


def section_rnn(cfg: Config, out: dict):
    times = {}
    for d in cfg.rnn_d:
        p = dataclasses.replace(rnn(d, n_nodes=cfg.rnn_N), n_fine=2 * (cfg.rnn_N - 1) + 1)
        big = d >= 256
        rows, info, _ = compare(
            p, 1, 1, 1, cfg, gd=False, extra_lbfgs=cfg.extra_lbfgs and d <= 64,
            optax_ladder=(1e-4, 1e-6, 1e-8) if big else OPTAX_LADDER,
            scipy_rungs=(SCIPY_LADDER[0], SCIPY_LADDER[2], SCIPY_LADDER[-1]) if big
            else SCIPY_LADDER,
        )
        out["rows"] += rows
        out["refs"][p.name] = info
        for r in rows:
            times.setdefault(r["method"], {})[d] = r["ms_path"]
    for method, t in times.items():
        if len(t) >= 2:
            xs = sorted(t)
            ys = [t[k] for k in xs]
            out["slopes"].append(dict(quantity=f"RNN time/path vs d: {method}", x=xs, y=ys,
                                      slope=slope(xs, ys)))


def section_scaling_N(cfg: Config, out: dict):
    B = cfg.scal_N_B
    res = []
    for N in cfg.scal_N:
        p = maier_stein(n_nodes=N)
        m = measure_library(p, B, cfg.repeats)
        wall, cpu, sol = m["wall"], m["cpu"], m["sol"]
        k = np.asarray(sol.stats["num_steps"])
        res.append(dict(N=N, ms_path=1e3 * wall / B, cpu_ms_path=1e3 * cpu / B,
                        steps_mean=float(k.mean()), steps_max=int(k.max()),
                        conv=float(np.mean(np.asarray(sol.converged))),
                        compile_s=m["compile_s"], mem_MB=m["mem_MB"]))
        log(f"  N={N}: {res[-1]['ms_path']:.3f} ms/path, steps {k.mean():.1f}/{k.max()}")
    Ns = [r["N"] for r in res]
    out["scaling_N"] = dict(B=B, rows=res)
    out["slopes"] += [
        dict(quantity=f"Maier–Stein time/path vs N (B={B})", x=Ns, y=[r["ms_path"] for r in res],
             slope=slope(Ns, [r["ms_path"] for r in res])),
        dict(quantity=f"Maier–Stein time/(path·max step) vs N (B={B})", x=Ns,
             y=[r["ms_path"] / r["steps_max"] for r in res],
             slope=slope(Ns, [r["ms_path"] / r["steps_max"] for r in res])),
        dict(quantity=f"Maier–Stein XLA memory vs N (B={B})", x=Ns, y=[r["mem_MB"] for r in res],
             slope=slope(Ns, [r["mem_MB"] for r in res])),
    ]


def section_scaling_B(cfg: Config, out: dict):
    p = maier_stein(n_nodes=cfg.ms_N)
    res = []
    for B in cfg.scal_B:
        m = measure_library(p, B, cfg.repeats)
        wall, cpu, sol = m["wall"], m["cpu"], m["sol"]
        k = np.asarray(sol.stats["num_steps"])
        res.append(dict(B=B, total_s=wall, ms_path=1e3 * wall / B, cpu_ms_path=1e3 * cpu / B,
                        steps_mean=float(k.mean()), steps_max=int(k.max()),
                        conv=float(np.mean(np.asarray(sol.converged))),
                        compile_s=m["compile_s"], mem_MB=m["mem_MB"]))
        log(f"  B={B}: {res[-1]['ms_path']:.3f} ms/path, steps {k.mean():.1f}/{k.max()}")
    Bs = [r["B"] for r in res]
    totals = [r["total_s"] for r in res]
    out["scaling_B"] = dict(N=p.n_nodes, rows=res)
    out["slopes"] += [
        dict(quantity=f"Maier–Stein total time vs B (N={p.n_nodes})", x=Bs, y=totals,
             slope=slope(Bs, totals)),
        dict(quantity=f"Maier–Stein XLA memory vs B (N={p.n_nodes})", x=Bs,
             y=[r["mem_MB"] for r in res], slope=slope(Bs, [r["mem_MB"] for r in res])),
    ]
    big = [(b, t) for b, t in zip(Bs, totals) if b >= 64]
    if len(big) >= 2:  # past the small batches, where fixed costs dominate
        out["slopes"].insert(-1, dict(
            quantity=f"Maier–Stein total time vs B, B ≥ 64 (N={p.n_nodes})",
            x=[b for b, _ in big], y=[t for _, t in big],
            slope=slope([b for b, _ in big], [t for _, t in big])))


# --------------------------------------------------------------------------- GPU preset
#
# The GPU preset measures what only a GPU can tell: the library's batched default at 10⁵
# paths. The references and the SciPy loop run on a subsample (the first `ms_ref` and
# `ms_sub` paths, the same endpoints as the CPU tables' first paths), so their cost does not
# grow with the batch; the GD, optax and scaling sections stay in the CPU presets.


def ms_problem(kind: str, n_nodes: int) -> Problem:
    """Maier–Stein with the cost model's endpoint sets: "attractor" (the suite's endpoints,
    `(1 + 0.3u, 0.5v)`) or "saddle" (`U[−0.3, 0.3]²`, around the saddle and the
    separatrix)."""
    p = maier_stein(n_nodes=n_nodes)
    if kind == "attractor":
        return p
    return dataclasses.replace(p, name="maier-stein-saddle",
                               title=p.title + ", endpoints U[−0.3, 0.3]²",
                               endpoints=lambda n: cost_model.endpoints("saddle", n))


def polish_size_for(B: int) -> int:
    """The straggler pass's batch at batch size `B`: 32 (the CPU tables') up to B = 640,
    then B / 20, so that the 5–20 % of stragglers of 10⁵ paths take a few rounds of the
    second pass, not hundreds."""
    return max(32, B // 20)


def section_ms_gpu(cfg: Config, out: dict, kind: str):
    p = ms_problem(kind, cfg.ms_N)
    B = cfg.ms_B
    n_ref = min(cfg.ms_ref, B)
    log(f"{p.title}: B={B}, N={p.n_nodes}; references on the first {n_ref} paths")
    X1 = p.endpoints(B)
    # |ΔS| fine on the first `ms_sub` paths for every method (SciPy's subset, as in the CPU
    # presets); the threshold from all `n_ref`.
    refs, info = references(p, X1[:n_ref], n_ref, n_acc=min(cfg.ms_sub, n_ref))
    log(f"  references: disc median {info['disc_median']:.2e}, threshold {info['threshold']:.1e}")
    lib = run_library(p, X1, refs, cfg.repeats)
    lib["note"] += (f"; \\|ΔS\\| fine on the first {info['n_acc']}, \\|ΔS\\| opt on the "
                    f"first {n_ref} paths")
    log(f"  library: {lib['ms_path']:.4g} ms/path, conv {lib['conv']:.4f}, steps {lib['steps']}")
    K = cfg.ms_straggler_steps if kind == "attractor" else cfg.ms_straggler_saddle
    sb = run_solve_batch(p, X1, refs, cfg.repeats, K, polish_size=polish_size_for(B))
    log(f"  solve_batch: {sb['ms_path']:.4g} ms/path, conv {sb['conv']:.4f}, steps {sb['steps']}")
    rows = [lib, sb]
    if kind in cfg.scipy_sets:
        for r in run_scipy(p, X1[:n_ref], min(cfg.ms_sub, n_ref), refs):
            r["note"] = r["note"].replace(f"of {n_ref} paths", f"of {B} paths")
            rows.append(r)
    with_ratios(rows, lib)
    out["rows"] += rows
    out["refs"][p.name] = info
    k = np.asarray(measure_library(p, B, cfg.repeats)["sol"].stats["num_steps"])
    out.setdefault("measured", {})[(kind, "float64")] = dict(
        B=B, vmap_s=1e-3 * lib["ms_path"] * B, solve_batch_s=1e-3 * sb["ms_path"] * B,
        steps_mean=float(k.mean()), steps_max=int(k.max()))


def section_float32(cfg: Config, out: dict):
    """The same default solve with `jax_enable_x64` off (`cost_model.full_solve`), against
    the float64 solve of the same endpoints."""
    for kind in cfg.ms_sets:
        p = ms_problem(kind, cfg.ms_N)
        B = cfg.ms_B
        m64 = measure_library(p, B, cfg.repeats)
        jax.config.update("jax_enable_x64", False)
        try:
            r = cost_model.full_solve(p.endpoints(B), jnp.float32, n_nodes=p.n_nodes)
        finally:
            jax.config.update("jax_enable_x64", True)
        a64, c64 = np.asarray(m64["sol"].action), np.asarray(m64["sol"].converged)
        ok = r["converged"] & c64
        rel = np.abs(r["action"] - a64) / np.abs(a64)
        med, mx = (float(np.median(rel[ok])), float(np.max(rel[ok]))) if ok.any() else (None,) * 2
        ms64 = 1e3 * m64["wall"] / B
        ms32 = 1e3 * r["seconds"] / B
        mem = r["bytes_per_path"]
        out["rows"].append(row(
            p, "library, float32", B=B, compile_s=r["compile_s"], ms_path=ms32,
            steps=f"{r['steps_mean']:.0f}/{r['steps_max']}", S=float(np.median(r["action"])),
            conv=float(np.mean(r["converged"])), mem_MB=None if mem is None else mem * B / 1e6,
            ratio=ms32 / ms64,
            note=f"rel. action error vs float64 (converged): median {fmt(med, '{:.1e}')}, max "
                 f"{fmt(mx, '{:.1e}')}; S median over all {B} paths; one timed call"))
        log(f"  float32 {kind}: {ms32:.4g} ms/path, conv {np.mean(r['converged']):.4f}, "
            f"rel. error median {fmt(med, '{:.1e}')} max {fmt(mx, '{:.1e}')}")
        out.setdefault("measured", {})[(kind, "float32")] = dict(
            B=B, vmap_s=r["seconds"], steps_mean=r["steps_mean"], steps_max=r["steps_max"])


def section_rnn_gpu(cfg: Config, out: dict):
    """The RNN per-path time with the default solver (`nj.NewtonCG` for d > 8). Reference:
    `nj.NewtonCG` at tolerance 1e-13 on the same grid and on a 2× finer one (the CPU
    tables' reference, `nj.LBFGS` at 1e-12 for up to 20 000 steps, takes ~400 sequential
    steps at d = 1024 and 50 s of CPU time to compile and run: too long for this preset)."""
    for d in cfg.rnn_d:
        p = dataclasses.replace(rnn(d, n_nodes=cfg.rnn_N), n_fine=2 * (cfg.rnn_N - 1) + 1)
        log(f"{p.title}: N={p.n_nodes}")
        X1 = p.endpoints(1)
        refs, info = references(p, X1, 1, n_acc=1, solver=nj.NewtonCG(rtol=TIGHT, atol=TIGHT))
        info["note"] = "tight solver nj.NewtonCG(rtol=atol=1e-13)"
        lib = run_library(p, X1, refs, max(cfg.repeats, 3))
        lib["note"] = "reference: nj.NewtonCG at 1e-13 (same grid and 2× finer)"
        log(f"  library: {lib['ms_path']:.4g} ms/path, steps {lib['steps']}, conv {lib['conv']}")
        out["rows"].append(lib)
        out["refs"][p.name] = info


GPU_SPECS = {"H100": "H100 SXM", "H200": "H200 SXM"}


def section_roofline(cfg: Config, out: dict):
    """`cost_model.roofline` for the measured solves. Per-step counts as the cost model
    takes them (XLA's `cost_analysis()` of one `nj.BlockNewton` step compiled for the CPU):
    loop iterations and the lower bytes bound from the step as written at the preset's
    `N`; flops and the upper bytes bound from the step with every scan unrolled, which
    takes minutes to compile at N ≥ 100, so they are counted at a few small `N`
    (`roof_fit_N`) and extrapolated by a quadratic fit in `N` (shown at N = 101 beside the
    cost model's own count there). Also the measured time of one batched step on this
    device."""
    N, B = cfg.ms_N, cfg.ms_B
    cpu = jax.devices("cpu")[0]
    small = cost_model.endpoints("attractor", 16)
    with jax.default_device(cpu):
        fit = {n: cost_model.step_cost(small, jnp.float64, n_nodes=n, timed=False)["unrolled"]
               for n in cfg.roof_fit_N}
        written = cost_model.step_cost(small, jnp.float64, unrolled=False, n_nodes=N,
                                       timed=False)["as written"]
    Ns = list(fit)

    def quad(key, n):
        return float(np.polyval(np.polyfit(Ns, [fit[k][key] for k in Ns], 2), n))

    unrolled = {"flops": quad("flops", N), "bytes accessed": quad("bytes accessed", N)}
    step64 = {"as written": written, "unrolled": unrolled}
    half = lambda c: {**c, "bytes accessed": 0.5 * c["bytes accessed"]}  # noqa: E731
    step32 = {"as written": half(written), "unrolled": half(unrolled)}  # as the cost model
    log(f"  unrolled counts fitted on N={Ns}: {unrolled['flops']:.4g} flops, "
        f"{unrolled['bytes accessed']:.4g} bytes per step per path at N={N}")
    # One batched step on this device (the cost model's CPU check; here at the full batch).
    meas = cost_model.step_cost(cost_model.endpoints("attractor", B), jnp.float64,
                                unrolled=False, n_nodes=N, timed=True)
    kind = jax.devices()[0].device_kind
    gpu_name = next((v for k, v in GPU_SPECS.items() if k in kind), None)
    spec_name = gpu_name or "H200 SXM"
    gpu = cost_model.GPUS[spec_name]
    res = dict(N=N, B=B, fit_N=Ns, gpu=spec_name, on_gpu=gpu_name is not None,
               flops=unrolled["flops"], bytes_low=written["bytes accessed"],
               bytes_high=unrolled["bytes accessed"], loop_iterations=written["loop_iterations"],
               flops_101=quad("flops", 101), bytes_high_101=quad("bytes accessed", 101),
               step_s_measured=meas["cpu_step_s_per_path"] * B, rows=[])
    pred1 = cost_model.roofline(step64, 1, B, B, gpu, True)
    res["step_s_low"], res["step_s_high"] = pred1["seconds_low"], pred1["seconds_high"]
    for (kind_, dt), m in out.get("measured", {}).items():
        step = step64 if dt == "float64" else step32
        for method, key, which in (("vmap", "vmap_s", "steps_max"),
                                   ("solve_batch", "solve_batch_s", "steps_mean")):
            if key not in m:
                continue
            r = cost_model.roofline(step, m[which], m["B"], m["B"], gpu, dt == "float64")
            res["rows"].append(dict(set=kind_, dtype=dt, method=method, B=m["B"],
                                    steps=m[which], steps_kind=which.split("_")[1],
                                    measured_s=m[key], low_s=r["seconds_low"],
                                    high_s=r["seconds_high"], bound_low=r["bound_low"],
                                    bound_high=r["bound_high"]))
    out["roofline"] = res


# --------------------------------------------------------------------------- report


def fmt(x, spec="{:.3g}"):
    if x is None:
        return "—"
    if isinstance(x, float) and not np.isfinite(x):
        return "nan"
    return spec.format(x) if isinstance(x, (int, float, np.floating)) else str(x)


def machine_info(cfg: Config) -> dict:
    dev = jax.devices()[0]
    model = platform.processor() or ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(
        date=datetime.date.today().isoformat(),
        time=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        preset=cfg.name,
        cpu=f"{model}, {os.cpu_count()} cores",
        load=" ".join(f"{x:.1f}" for x in os.getloadavg()),
        device=f"{dev.platform}: {dev.device_kind}",
        python=platform.python_version(),
        versions=f"jax {jax.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
                 f"optax {optax.__version__}, noether_jax {nj.__version__}",
        blas=f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
        x64=True,
    )


def markdown(out: dict) -> str:
    m = out["machine"]
    L = [
        f"Date {m['date']} ({m['time']}); preset `{m['preset']}`; command "
        f"`{out['command']}`; {out['wall_s']:.0f} s in all.",
        f"Machine: {m['cpu']}, load average at start {m['load']}; {m['device']}; Python "
        f"{m['python']}; {m['versions']}; {m['blas']}; float64.",
        "",
        "| problem | method | B | N | d | compile s | ms/path | cpu ms/path | steps mean/max "
        "| S (median) | \\|ΔS\\| fine | \\|ΔS\\| opt | conv | mem MB | × library | "
        "× library cpu | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in out["rows"]:
        L.append(
            f"| {r['problem']} | {r['method']} | {r['B']} | {r['N']} | {r['d']} | "
            f"{fmt(r['compile_s'], '{:.1f}')} | {fmt(r['ms_path'], '{:.3g}')} | "
            f"{fmt(r['cpu_ms_path'], '{:.3g}')} | {r['steps']} | {fmt(r['S'], '{:.8g}')} | "
            f"{fmt(r['err_fine'], '{:.1e}')} | {fmt(r['err_opt'], '{:.1e}')} | "
            f"{fmt(r['conv'], '{:.3f}')} | {fmt(r['mem_MB'], '{:.3g}')} | "
            f"{fmt(r['ratio'], '{:.3g}')} | {fmt(r['ratio_cpu'], '{:.3g}')} | {r['note']} |"
        )
    if out["refs"]:
        L += ["", "References (same-grid `S_tight` at tolerance 1e-13; `S_fine` on the finer "
              "grid): discretisation error `|S_tight − S_fine|` and the accuracy threshold "
              "(1 % of its median).", "",
              "| problem | fine N | paths | median \\|S\\| | disc. error median | max | threshold "
              "| tight conv | fine conv |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, i in out["refs"].items():
            L.append(f"| {name} | {i['fine_N']} | {i['n_ref']} | {i['S_median']:.4g} | "
                     f"{i['disc_median']:.2e} | {i['disc_max']:.2e} | {i['threshold']:.1e} | "
                     f"{i['tight_conv']:.3f} | {i['fine_conv']:.3f} |")
    if out["gd"]:
        L += ["", "The paper's gradient descent (one path, the first endpoint; fixed `lr = 1/L`; "
              "same grid). Eager-loop, jitted-step-loop and NumPy-loop times are extrapolated "
              "linearly from a prefix of the steps (its length in brackets); the scan is timed "
              "whole. The NumPy loop uses the SciPy baseline's exact gradient; its action after "
              "the prefix matches the scan's to the relative difference given. "
              "The library's time is for the fewest Newton steps that reach the GD's final "
              "action (`k` of its `K`; '≤': the full solve, an upper bound). Ratios: GD time "
              "÷ the library's time to reach, wall (cpu).", "",
              "| problem | N | lr | steps | S_GD − S* | eager loop s (cpu) | jitted-step loop s "
              "(cpu) | NumPy loop s (cpu) | scan s (cpu) | library to reach S_GD, ms (cpu) | "
              "library full, ms | eager ÷ library | jitted loop ÷ library | NumPy loop ÷ "
              "library | scan ÷ library |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g in out["gd"]:
            le = "" if g["reach_exact"] else "≤ "
            L.append(
                f"| {g['problem']} | {g['N']} | {g['lr']:.3g} | {g['steps']} | {g['gap']:.1e} | "
                f"{g['eager_s']:.3g} ({g['eager_cpu_s']:.3g}) [{g['eager_prefix']}] | "
                f"{g['jitloop_s']:.3g} ({g['jitloop_cpu_s']:.3g}) [{g['jit_prefix']}] | "
                f"{g['numpy_s']:.3g} ({g['numpy_cpu_s']:.3g}) [{g['numpy_prefix']}; rel "
                f"{g['numpy_vs_scan_rel']:.0e}] | {g['scan_s']:.3g} ({g['scan_cpu_s']:.3g}) | "
                f"{le}{1e3 * g['lib_reach_s']:.3g} "
                f"({1e3 * g['lib_reach_cpu_s']:.3g}), k={g['lib_reach_steps']}/"
                f"{g['lib_full_steps']} | {1e3 * g['lib_full_s']:.3g} | "
                f"{g['ratio_eager']:.3g} ({g['ratio_eager_cpu']:.3g}) | "
                f"{g['ratio_jitloop']:.3g} ({g['ratio_jitloop_cpu']:.3g}) | "
                f"{g['ratio_numpy']:.3g} ({g['ratio_numpy_cpu']:.3g}) | "
                f"{g['ratio_scan']:.3g} ({g['ratio_scan_cpu']:.3g}) |")
        L += ["", "GD gap `S − S*` along the iteration (step: gap), and the steps it needs to "
              "come within the accuracy threshold: " + "; ".join(
                  f"{g['problem']}: " + ", ".join(
                      f"{k}: {v:.1e}" for k, v in g["gap_curve"].items())
                  + (f" (threshold after {g['steps_to_threshold']} steps)"
                     if g["steps_to_threshold"] is not None
                     else f" (threshold not reached in {g['steps']} steps)")
                  for g in out["gd"])]
    if "phases" in out:
        ph = out["phases"]
        L += ["", f"Where the library's time goes ({ph['problem']}, B={ph['B']}, N={ph['N']}): "
              f"Newton steps per element mean {ph['steps_mean']:.1f}, max {ph['steps_max']}; "
              f"full solve {ph['full_ms']:.3g} ms/path ({ph['full_cpu_ms']:.3g} cpu). The same "
              f"batch stopped after {ph['k_cut']} steps (the mean; {100 * ph['cut_conv']:.0f} % "
              f"of the elements had converged by then): {ph['cut_ms']:.3g} ms/path "
              f"({ph['cut_cpu_ms']:.3g} cpu). The rest is the slowest elements' extra steps "
              "(vmap runs every element until the last one stops) and the final "
              "second-order certification."]
    for key, var in (("scaling_N", "N"), ("scaling_B", "B")):
        if key in out:
            s = out[key]
            fixed = f"B={s['B']}" if var == "N" else f"N={s['N']}"
            L += ["", f"Library, Maier–Stein, {fixed}, varying {var}:", "",
                  f"| {var} | ms/path | cpu ms/path | steps mean/max | conv | compile s | mem MB |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
            for r in s["rows"]:
                L.append(f"| {r[var]} | {r['ms_path']:.3g} | {r['cpu_ms_path']:.3g} | "
                         f"{r['steps_mean']:.1f}/{r['steps_max']} | {r['conv']:.3f} | "
                         f"{r['compile_s']:.1f} | {fmt(r['mem_MB'])} |")
    if "roofline" in out:
        r = out["roofline"]
        where = (f"this {r['gpu']}" if r["on_gpu"] else
                 f"an {r['gpu']} (this device is not a GPU: the measured times are not "
                 "comparable with it)")
        L += ["", f"Roofline (`benchmarks/cost_model.py`) for {where}, Maier–Stein N={r['N']}: "
              f"per Newton step per path {r['flops']:.4g} flops (scans unrolled; fitted on "
              f"N = {', '.join(map(str, r['fit_N']))} and extrapolated: {r['flops_101']:.4g} at "
              f"N = 101, where the cost model counted 748 800), bytes {r['bytes_low']:.3g} (as "
              f"written) … {r['bytes_high']:.3g} (unrolled; {r['bytes_high_101']:.3g} at N = "
              f"101, cost model 12.4e6), {r['loop_iterations']} sequential loop iterations "
              f"(10 µs each assumed). One batched float64 step of B={r['B']} paths: measured "
              f"{r['step_s_measured']:.3g} s on this device, predicted {r['step_s_low']:.3g} … "
              f"{r['step_s_high']:.3g} s. Whole solves (steps: max for plain `vmap`, mean for "
              "`solve_batch`; float32 bytes are half float64's, as in the cost model):", "",
              "| set | dtype | method | B | steps | measured s | predicted s (bytes as written "
              "… unrolled) | dominant term | measured ÷ predicted |",
              "|---|---|---|---:|---:|---:|---:|---|---:|"]
        for x in r["rows"]:
            L.append(f"| {x['set']} | {x['dtype']} | {x['method']} | {x['B']} | "
                     f"{x['steps_kind']} {x['steps']:.1f} | {x['measured_s']:.3g} | "
                     f"{x['low_s']:.3g} … {x['high_s']:.3g} | {x['bound_low']} … "
                     f"{x['bound_high']} | {x['measured_s'] / x['high_s']:.3g} … "
                     f"{x['measured_s'] / x['low_s']:.3g} |")
    if out["slopes"]:
        L += ["", "Log–log slopes (least squares):", "", "| quantity | x | y | slope |",
              "|---|---|---|---:|"]
        for s in out["slopes"]:
            L.append(f"| {s['quantity']} | {', '.join(str(v) for v in s['x'])} | "
                     f"{', '.join(fmt(v) for v in s['y'])} | {s['slope']:.2f} |")
    if out.get("section_s"):
        L += ["", "Wall time per section: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in out["section_s"].items())
            + f"; total {out['wall_s']:.0f} s (with the start-up checks)."]
    L += ["", f"Peak resident memory of the whole process: {out['maxrss_MB']:.0f} MB"
          + ("." if out["device_peak_MB"] is None
             else f"; device peak memory: {out['device_peak_MB']:.0f} MB.")]
    return "\n".join(L)


def write_results(md: str, preset: str, path: pathlib.Path = HERE / "RESULTS.md") -> None:
    """Replace the generated block of this preset in RESULTS.md (other text is kept)."""
    begin, end = f"<!-- BEGIN GENERATED {preset} -->", f"<!-- END GENERATED {preset} -->"
    block = f"{begin}\n{md}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        post = rest.split(end, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip("\n") + f"\n\n## Run: preset `{preset}`\n\n{block}\n"
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes (~2 minutes)")
    g.add_argument("--gpu", action="store_true",
                   help="the library at 10⁵ paths on one GPU (< 5 minutes; its own sections)")
    ap.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(SECTIONS)
                    + "; with --gpu: " + ", ".join(GPU_SECTIONS))
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--json", default=None, help="also write all numbers to this JSON file")
    ap.add_argument("--scale", type=float, default=1.0, metavar="F",
                    help="multiply the preset's batch sizes by F (e.g. `--gpu --scale 0.01`: "
                    "the GPU preset end to end on a CPU); dimensions and nodes stay")
    opts = ap.parse_args()
    cfg = PRESETS["quick" if opts.quick else "gpu" if opts.gpu else "full"]
    if opts.scale != 1.0:
        size = lambda b: max(4, int(round(b * opts.scale)))  # noqa: E731
        # The focused preset's subsample is already small: it stays (within the batch).
        ref = cfg.ms_ref if cfg.focused else size(cfg.ms_ref)
        cfg = dataclasses.replace(
            cfg, name=f"{cfg.name}-x{opts.scale:g}", ms_B=size(cfg.ms_B),
            ms_ref=min(ref, size(cfg.ms_B)), ms_sub=min(cfg.ms_sub, size(cfg.ms_B)),
            scal_N_B=size(cfg.scal_N_B), scal_B=tuple(sorted({size(b) for b in cfg.scal_B})),
        )
    sections = GPU_SECTIONS if cfg.focused else SECTIONS
    only = [s for s in opts.only.split(",") if s] or list(sections)
    bad = [s for s in only if s not in sections]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {sections}")

    t_start = time.perf_counter()
    out = dict(machine=machine_info(cfg), command="python benchmarks/bench_suite.py "
               + " ".join(sys.argv[1:]), rows=[], refs={}, gd=[], slopes=[])
    for p in (maier_stein(), rate_network(), rnn(64)):
        c = check_problem(p)
        if max(c.values()) > 1e-6:
            raise RuntimeError(f"{p.name}: implementations disagree: {c}")
    if cfg.focused:
        run = dict(zip(GPU_SECTIONS, (
            lambda c, o: section_ms_gpu(c, o, "attractor"),
            lambda c, o: section_ms_gpu(c, o, "saddle"),
            section_float32, section_rnn_gpu, section_roofline)))
    else:
        run = dict(zip(SECTIONS, (section_maier_stein, section_rate_network, section_rnn,
                                  section_scaling_N, section_scaling_B)))
    out["section_s"] = {}
    for name in sections:
        if name in only:
            log(f"== {name}")
            t = time.perf_counter()
            run[name](cfg, out)
            out["section_s"][name] = time.perf_counter() - t
            log(f"== {name}: {out['section_s'][name]:.0f} s "
                f"(total {time.perf_counter() - t_start:.0f} s)")
    out["wall_s"] = time.perf_counter() - t_start
    out["maxrss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = device_peak_bytes()
    out["device_peak_MB"] = None if peak is None else peak / 1e6
    md = markdown(out)
    print(md)
    if opts.write:
        write_results(md, cfg.name if not opts.only else f"{cfg.name}-{'-'.join(only)}")
    if opts.json:
        out.pop("measured", None)  # tuple keys; the same numbers are in "roofline"
        pathlib.Path(opts.json).write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
