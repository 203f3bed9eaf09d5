"""The methods compared by `bench_suite.py`, and how they are timed.

1. `library_fn`: the library's default, `jax.jit(jax.vmap(nj.minimize_action))`.
2. `scipy_loop`: SciPy L-BFGS-B over one path at a time with the exact NumPy gradient
   (`_problems.action_and_grad_np`), from the straight line.
3. `gd_eager` / `gd_jit_loop` / `gd_numpy` / `gd_scan_fn`: the paper's method, plain
   gradient descent at a fixed learning rate on a fixed grid, as an eager Python loop of
   autodiff gradient steps (what its PyTorch-style scripts did), a Python loop over a
   jitted step, a Python loop of exact NumPy gradient steps (as a NumPy user writes it),
   and a jit-compiled `lax.scan` (the strongest variant).
4. `optax_lbfgs_fn`: a straightforward `optax.lbfgs` (zoom line search) in a `lax.while_loop`,
   vmapped over the batch and jit-compiled.

JAX functions are compiled ahead of time (`jit(...).lower(...).compile()`), so compile time
is measured apart from run time, and XLA's memory analysis of the compiled program gives
its peak memory (arguments + outputs + temporaries) on any backend. Run times are the
median of `repeats` calls (wall clock, and the process's CPU time for a shared machine).
"""

import statistics
import time
import tracemalloc
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize

import noether_jax as nj

from _problems import Problem, action_and_grad_np, action_jnp, straight_line


# --------------------------------------------------------------------------- timing


class Timed:
    """A compiled JAX function with its compile time and XLA memory estimate."""

    def __init__(self, fn, *example_args):
        t = time.perf_counter()
        self.compiled = jax.jit(fn).lower(*example_args).compile()
        self.compile_s = time.perf_counter() - t
        self.mem_bytes = xla_memory(self.compiled)

    def __call__(self, *args):
        return jax.block_until_ready(self.compiled(*args))

    def time(self, *args, repeats: int = 3, warmup: bool = True) -> tuple[float, float, Any]:
        """Median (wall s, CPU s) per call over `repeats` calls, and the last output."""
        if warmup:
            self(*args)  # first run: allocations, thread pools
        walls, cpus = [], []
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            out = self(*args)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        return statistics.median(walls), statistics.median(cpus), out


def xla_memory(compiled) -> float | None:
    """Peak bytes of a compiled program by XLA's analysis: arguments + outputs +
    temporaries (minus aliased buffers). `None` where the backend gives none."""
    try:
        m = compiled.memory_analysis()
        return float(
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None


def device_peak_bytes() -> float | None:
    """The device's peak memory in use so far (GPU/TPU), `None` on CPU."""
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    return float(stats.get("peak_bytes_in_use", 0))


# --------------------------------------------------------------------------- 1. library


def library_fn(p: Problem, *, n_nodes: int | None = None, solver=None, max_steps: int = 256,
               with_init: bool = False, grid_controller=None, lanes: int | None = None):
    """`(x1s[, inits]) -> PathSolution` batched over endpoints (and initial paths).
    `grid_controller`: e.g. `nj.Refine(levels=3, adapt=None, rtol=float("inf"))`, nested
    uniform grids ending on the same `n_nodes` (so the same discrete problem). `lanes`: the
    batch's solves in that many refilled lanes (`minimize_action(lanes=...)`)."""
    n = p.n_nodes if n_nodes is None else n_nodes
    x0 = jnp.asarray(p.x0)
    kw = {} if grid_controller is None else dict(grid_controller=grid_controller)
    if lanes is not None:
        kw["lanes"] = lanes

    def one(b, init=None):
        return nj.minimize_action(
            p.sde, x0, b, p.t0, p.t1, n_nodes=n, args=p.args, init=init, solver=solver,
            max_steps=max_steps, throw=False, **kw,
        )

    return jax.vmap(one) if with_init else jax.vmap(lambda b: one(b))


def batch_runner_fn(p: Problem, *, straggler_steps: int, polish_size: int | None = None):
    """`x1s -> PathSolution` through `nj.solve_batch` with the straggler polish, the whole
    batch as one chunk: every path capped at `straggler_steps` Newton steps, those that ran
    out finished apart, warm-started, `polish_size` at a time (the runner's default 8).
    `solve_batch` compiles on its first call and reuses the programs afterwards."""
    x0 = jnp.asarray(p.x0)

    def solve(x1, **kw):  # one object: solve_batch reuses its compilation across calls
        return nj.minimize_action(p.sde, x0, x1, p.t0, p.t1, n_nodes=p.n_nodes, args=p.args,
                                  throw=False, **kw)

    def run(x1s):
        return nj.solve_batch(solve, x1s, chunk_size=len(x1s), straggler_steps=straggler_steps,
                              polish_size=polish_size, progress=False)

    return run


# --------------------------------------------------------------------------- 2. SciPy


SCIPY_LADDER = (  # (gtol, ftol), loosest first; the first is SciPy's default
    (1e-5, 2.2e-9),
    (1e-6, 1e-11),
    (1e-7, 1e-12),
    (1e-8, 1e-13),
    (1e-10, 1e-15),
)


def scipy_solve(p: Problem, x1: np.ndarray, gtol: float, ftol: float) -> dict:
    """One path by L-BFGS-B from the straight line, exact NumPy gradient."""
    y0 = straight_line(p, x1)[1:-1].ravel()
    res = scipy.optimize.minimize(
        action_and_grad_np, y0, args=(p, x1), jac=True, method="L-BFGS-B",
        options=dict(gtol=gtol, ftol=ftol, maxiter=100_000, maxfun=200_000),
    )
    xs = np.concatenate([p.x0[None], res.x.reshape(-1, p.d), x1[None]])
    return dict(S=float(res.fun), ok=bool(res.success), nit=int(res.nit), xs=xs)


def scipy_loop(p: Problem, x1s: np.ndarray, gtol: float, ftol: float, repeats: int = 1):
    """The Python loop over paths. Returns (median wall s/path, median CPU s/path, peak
    traced NumPy bytes, per-path results)."""
    walls, cpus, out = [], [], None
    tracemalloc.start()
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = [scipy_solve(p, b, gtol, ftol) for b in x1s]
        walls.append((time.perf_counter() - w) / len(x1s))
        cpus.append((time.process_time() - c) / len(x1s))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(walls), statistics.median(cpus), float(peak), out


# --------------------------------------------------------------------------- 3. gradient descent


def gd_learning_rate(p: Problem, x1, iters: int = 100) -> float:
    """`1/L`, `L` the largest eigenvalue of the Hessian of `S_h` at the straight initial
    path (power iteration on Hessian–vector products): the textbook fixed step of gradient
    descent on an `L`-smooth function."""
    x1 = jnp.asarray(x1)
    y0 = jnp.asarray(straight_line(p, np.asarray(x1))[1:-1])
    grad = jax.grad(lambda y: action_jnp(y, p, x1, p.args))

    @jax.jit
    def power(v):
        def body(_, c):
            v, _ = c
            w = jax.jvp(grad, (y0,), (v,))[1]
            return w / jnp.linalg.norm(w), jnp.vdot(v, w)

        return jax.lax.fori_loop(0, iters, body, (v / jnp.linalg.norm(v), 0.0))[1]

    lam = float(power(jax.random.normal(jax.random.key(0), y0.shape, y0.dtype)))
    return 1.0 / lam


def gd_eager(p: Problem, x1, lr: float, steps: int) -> tuple[float, float, np.ndarray]:
    """The paper's loop: eager (un-jitted) autodiff gradient steps in Python,
    `y ← y − lr ∇S_h(y)`. Returns (wall s, CPU s, final interior nodes)."""
    x1 = jnp.asarray(x1)
    y = jnp.asarray(straight_line(p, np.asarray(x1))[1:-1])
    grad = jax.grad(lambda y: action_jnp(y, p, x1, p.args))
    jax.block_until_ready(grad(y))  # warm the per-op compilation caches
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        y = y - lr * grad(y)
    y = jax.block_until_ready(y)
    return time.perf_counter() - w, time.process_time() - c, np.asarray(y)


def gd_jit_loop(p: Problem, x1, lr: float, steps: int) -> tuple[float, float, np.ndarray]:
    """The same loop with the step jit-compiled: one dispatch per step from Python. A
    closer stand-in for an eager PyTorch loop (a few fused kernels per step) than eager
    JAX, whose per-operation dispatch is slower. Returns (wall s, CPU s, final nodes)."""
    x1 = jnp.asarray(x1)
    y = jnp.asarray(straight_line(p, np.asarray(x1))[1:-1])
    grad = jax.grad(lambda y: action_jnp(y, p, x1, p.args))
    step = jax.jit(lambda y: y - lr * grad(y))
    jax.block_until_ready(step(y))  # compile
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        y = step(y)
    y = jax.block_until_ready(y)
    return time.perf_counter() - w, time.process_time() - c, np.asarray(y)


def gd_numpy(p: Problem, x1, lr: float, steps: int) -> tuple[float, float, np.ndarray]:
    """The same loop in plain NumPy with the exact gradient the SciPy baseline uses
    (`action_and_grad_np`), from the same straight path. Returns (wall s, CPU s, final
    interior nodes `(n − 2, d)`)."""
    x1 = np.asarray(x1, dtype=float)
    y = straight_line(p, x1)[1:-1].ravel()
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        S, g = action_and_grad_np(y, p, x1)  # S unused: the user's one call gives both
        y -= lr * g
    return time.perf_counter() - w, time.process_time() - c, y.reshape(-1, p.d)


def gd_scan_fn(p: Problem, lr: float, steps: int, record_every: int):
    """`x1 -> (y, actions)`: the same iteration jit-compiled as one `lax.scan`, recording
    the action every `record_every` steps (for the action-versus-step curve)."""

    def run(x1):
        f = lambda y: action_jnp(y, p, x1, p.args)
        vg = jax.value_and_grad(f)
        y0 = jnp.asarray(p.x0)[None] + jnp.linspace(0.0, 1.0, p.n_nodes)[1:-1, None] * (
            x1 - jnp.asarray(p.x0)
        )[None]

        def inner(y, _):
            return y - lr * jax.grad(f)(y), None

        def outer(y, _):
            S, _ = vg(y)
            y, _ = jax.lax.scan(inner, y, None, length=record_every)
            return y, S

        y, Ss = jax.lax.scan(outer, y0, None, length=steps // record_every)
        return y, jnp.append(Ss, f(y))

    return run


# --------------------------------------------------------------------------- 4. optax L-BFGS


def optax_lbfgs_fn(p: Problem, max_iter: int):
    """`(x1s, gtol) -> (xs, S, num_iter, converged)`: optax L-BFGS (memory 10, zoom line
    search) from the straight line until `max |∇S_h| ≤ gtol`, vmapped over endpoints."""
    opt = optax.lbfgs()

    def one(x1, gtol):
        f = lambda y: action_jnp(y, p, x1, p.args)
        vg = optax.value_and_grad_from_state(f)
        y0 = jnp.asarray(p.x0)[None] + jnp.linspace(0.0, 1.0, p.n_nodes)[1:-1, None] * (
            x1 - jnp.asarray(p.x0)
        )[None]

        def cond(c):
            y, state, k, gmax = c
            return (k < max_iter) & (gmax > gtol)

        def body(c):
            y, state, k, _ = c
            S, g = vg(y, state=state)
            updates, state = opt.update(g, state, y, value=S, grad=g, value_fn=f)
            y = optax.apply_updates(y, updates)
            # The line search stores the gradient at the new point in the state.
            g_new = optax.tree.get(state, "grad")
            return y, state, k + 1, jnp.max(jnp.abs(g_new))

        g0 = jax.grad(f)(y0)
        y, _, k, gmax = jax.lax.while_loop(
            cond, body, (y0, opt.init(y0), jnp.array(0), jnp.max(jnp.abs(g0)))
        )
        xs = jnp.concatenate([jnp.asarray(p.x0)[None], y, x1[None]])
        return xs, f(y), k, gmax <= gtol

    return jax.vmap(one, in_axes=(0, None))
