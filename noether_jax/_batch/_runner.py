"""`solve_batch`: a solver mapped over a very large batch, in chunks, sharded over devices,
with results written to disk as it goes (resumable) and slow elements finished apart."""

import functools
import inspect
import json
import math
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import ArrayLike, PyTree

from .._progress import Progress
from .._solution import RESULTS
from .._xla import cpu_compiler_options
from . import _store

_AXIS = "batch"
_POLL_SECONDS = 0.2  # how often a process looks for the other processes' chunks
# Default patience for the other processes' chunks: no new chunk for this long, and for
# `_WAIT_FACTOR` times the slowest chunk this process solved, means a process is gone.
_WAIT_FLOOR_SECONDS = 600.0
_WAIT_FACTOR = 10.0


# ---------------------------------------------------------------------------------------
# The compiled chunk: vmap of the user's solver, sharded over a mesh.


def _chunk(dynamic_fn, chunk, init, *, static_fn, max_steps, mesh):
    def local(dynamic_fn, chunk, init):
        fn = eqx.combine(dynamic_fn, static_fn)

        def one(element, init_i):
            kwargs = {}
            if max_steps is not None:
                kwargs["max_steps"] = max_steps
            if init_i is not None:
                kwargs["init"] = init_i
            return fn(element, **kwargs)

        return jax.vmap(one)(chunk, init)

    if mesh is None:
        return local(dynamic_fn, chunk, init)
    # shard_map, not a sharded vmap: each device runs its own solver loop and stops when
    # *its* elements are done, instead of every device iterating until the slowest element
    # of the whole chunk has converged (and synchronising at every step).
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(_AXIS), P(_AXIS)),
        out_specs=P(_AXIS),
        # The solvers' loop carries start replicated and become per-device; no collectives
        # are used, so the replication check has nothing to protect.
        check_vma=False,
    )(dynamic_fn, chunk, init)


@functools.cache
def _solve_chunk(on_cpu: bool):
    """The compiled chunk; on CPU devices with `cpu_compiler_options()`."""
    return jax.jit(
        _chunk,
        static_argnames=("static_fn", "max_steps", "mesh"),
        compiler_options=cpu_compiler_options() if on_cpu else None,
    )


class _Solver:
    """Runs padded chunks of a fixed size through `_solve_chunk` (one compilation per
    size)."""

    def __init__(self, solve_fn, devices: list):
        self.dynamic_fn, self.static_fn = eqx.partition(solve_fn, eqx.is_array)
        self.devices = devices
        if len(devices) > 1:
            self.mesh = Mesh(devices, (_AXIS,))
            self.sharding = NamedSharding(self.mesh, P(_AXIS))
            self.replicated = NamedSharding(self.mesh, P())
        else:
            self.mesh = None
            self.sharding = self.replicated = devices[0]
        self.solve = _solve_chunk(all(d.platform == "cpu" for d in devices))

    def size(self, n: int) -> int:
        """`n` rounded up to a multiple of the number of devices."""
        k = len(self.devices)
        return -(-n // k) * k

    def __call__(self, chunk, *, init=None, max_steps=None):
        chunk = jax.device_put(chunk, self.sharding)
        if init is not None:
            init = jax.device_put(init, self.sharding)
        dynamic_fn = jax.device_put(self.dynamic_fn, self.replicated)
        return self.solve(
            dynamic_fn, chunk, init, static_fn=self.static_fn, max_steps=max_steps,
            mesh=self.mesh,
        )

    def eval_shape(self, chunk_struct, max_steps, init=None):
        return self.solve.eval_shape(
            self.dynamic_fn, chunk_struct, init, static_fn=self.static_fn,
            max_steps=max_steps, mesh=None,
        )


# ---------------------------------------------------------------------------------------
# Input checks


def _as_batch(batch) -> tuple[list, Any, int]:
    leaves, treedef = jax.tree.flatten(batch)
    if not leaves:
        raise ValueError(
            "`batch` has no arrays: pass a pytree of arrays with a leading batch axis."
        )
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
            leaf = jnp.asarray(leaf)
        if leaf.ndim == 0:
            raise ValueError(
                f"`batch{jax.tree_util.keystr(path)}` is a scalar; every leaf of `batch` needs a "
                "leading batch axis (put values shared by all elements inside `solve_fn`)."
            )
        out.append(leaf)
    sizes = {int(leaf.shape[0]) for leaf in out}
    if len(sizes) != 1:
        shapes = ", ".join(
            f"batch{jax.tree_util.keystr(p)}: {tuple(leaf.shape)}"
            for (p, _), leaf in zip(jax.tree_util.tree_flatten_with_path(batch)[0], out)
        )
        raise ValueError(
            f"The leaves of `batch` must share their leading (batch) axis; got {shapes}."
        )
    n = sizes.pop()
    if n == 0:
        raise ValueError("`batch` is empty (leading axis of length 0).")
    return out, treedef, n


def _check_signature(solve_fn) -> None:
    try:
        inspect.signature(solve_fn).bind(None, max_steps=1, init=None)
    except TypeError:
        raise ValueError(
            "`straggler_steps` needs a `solve_fn` that accepts the keyword arguments "
            "`max_steps` and `init` and passes them to the solver, e.g. "
            "`lambda b, **kw: nj.minimize_action(sde, b['x0'], b['x1'], 0.0, 10.0, "
            "throw=False, **kw)`."
        ) from None
    except ValueError:  # no signature to inspect (some builtins): trust the caller
        pass


def _check_polishable(out_struct, polish_struct=None) -> None:
    """The first pass must return a solution; the second (warm-started from its `xs`) the
    same structure, or the two could not be merged (checked before anything is solved)."""
    if not (hasattr(out_struct, "converged") and hasattr(out_struct, "xs")):
        raise ValueError(
            "`straggler_steps` needs `solve_fn` to return a solution with `converged` and `xs` "
            f"(such as `nj.PathSolution`); got {type(out_struct).__name__}."
        )
    if polish_struct is None:
        return
    first = {jax.tree_util.keystr(k): (v.shape[1:], v.dtype)
             for k, v in jax.tree_util.tree_leaves_with_path(out_struct)}
    second = {jax.tree_util.keystr(k): (v.shape[1:], v.dtype)
              for k, v in jax.tree_util.tree_leaves_with_path(polish_struct)}
    if first != second:
        diff = sorted(set(first) ^ set(second)) or sorted(
            k for k in first if first[k] != second[k])
        raise ValueError(
            "With `straggler_steps`, `solve_fn(element, init=xs)` must return what "
            "`solve_fn(element)` returns, but they differ at "
            f"{', '.join(diff[:4])}. `nj.minimize_action` without `n_nodes`, `grid`, "
            "`grid_controller` and `init` uses nested grids (`nj.Refine()`) and with `init` "
            "one grid: pass `n_nodes=` (one grid) or `grid_controller=nj.Refine(...)` "
            "explicitly in `solve_fn`."
        )


def _polish_mask(out) -> jax.Array:
    """Elements worth a longer solve: unconverged because they ran out of steps (not those
    with bad inputs or a failed solve, which more steps do not help)."""
    mask = ~out.converged
    result = getattr(out, "result", None)
    if isinstance(result, type(RESULTS.successful)):
        mask = mask & (result == RESULTS.max_steps_reached)
    return mask


def _barrier(name: str) -> None:
    """Wait for every process (`jax.distributed`)."""
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _default_progress(progress):
    if progress is True:
        return Progress("solve_batch")
    if progress is False or progress is None:
        return None
    if not hasattr(progress, "bar"):
        raise ValueError(
            "`progress` must be True, False, or an object with a method `bar(i, n, message)` "
            "(e.g. `noether_jax._progress.Progress`)."
        )
    return progress


# ---------------------------------------------------------------------------------------


def solve_batch(
    solve_fn: Callable[..., PyTree],
    batch: PyTree[ArrayLike],
    *,
    chunk_size: int = 1024,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    devices: Sequence[jax.Device] | None = None,
    straggler_steps: int | None = None,
    polish_size: int | None = None,
    progress: Any = True,
    collect: bool = True,
    identity: dict[str, Any] | None = None,
    wait_timeout: float | None = None,
) -> PyTree | None:
    r"""Map a solver over a very large batch of problems: in chunks, sharded over the local
    devices, with every finished chunk saved to disk so that an interrupted run resumes where
    it stopped.

    ```python
    sde = nj.SDE(drift, 1.0)
    batch = {"x1": x1s, "t1": t1s}                    # leading axis: one element per problem
    solve = lambda b, **kw: nj.minimize_action(
        sde, x0, b["x1"], 0.0, b["t1"], n_nodes=101, args=10.0, throw=False, **kw)
    sols = nj.solve_batch(solve, batch, chunk_size=4096, out_dir="runs/ms",
                          straggler_steps=40)
    sols.xs.shape, sols.converged                     # (N, 101, d), (N,)
    ```

    **Arguments:**

    - `solve_fn`: maps one element of `batch` (the pytree with the leading axis removed) to
      a pytree of arrays, usually an `nj.PathSolution` (pass `throw=False` to the solver so
      that every element reports its own `converged` and `result`). It is `jit`-compiled
      and `vmap`ped once per chunk shape, and the compilation is reused by later calls with
      the same `solve_fn` object (define it once, not inline in a loop). Arrays it closes
      over are baked into the program; an `eqx.Module` (or `eqx.Partial`) passes its
      arrays as arguments instead.
    - `batch`: a pytree of arrays (NumPy or JAX) sharing their leading axis `N`.
    - `chunk_size`: elements per chunk: the unit of compilation, of saving and of resuming.
      The last chunk is padded (with copies of the last element, dropped from the results),
      so every chunk has one shape and compiles once.
    - `out_dir`: folder for the results: `chunk_{i:06d}.npz` per chunk (keys are the leaf
      names of the output, e.g. `xs`, `action`, `stats.num_steps`; `numpy.load` reads them),
      each written to a temporary file then renamed over its name (atomic), and
      `manifest.json` (size, chunk size, a SHA-256 of the inputs, a fingerprint of the
      problem, the output structure and the straggler settings), and
      `checksums-p{k}.sha256`: the SHA-256 of every chunk file written by process `k`
      (`sha256sum -c` reads it). `None`: nothing is written (no resuming). A path that is a
      file, or a folder that cannot be created or written to, raises `ValueError` before
      anything is solved.
    - `resume`: with `out_dir`, load the chunks already there and solve only the missing
      ones. A folder holding a different batch is refused with a one-line `ValueError` that
      names what differs: the inputs, the chunk size, the output structure, the straggler
      settings, `identity`, or the **problem**: `solve_fn` is traced on one element
      (`jax.make_jaxpr`) and the manifest records SHA-256 hashes of that program and of the
      arrays it closes over, so another drift, `x0`, `t1`, `args`, `n_nodes` or `max_steps`
      inside `solve_fn` is caught (`problem.jaxpr_sha256`: the program, including Python
      scalars; `problem.constants_sha256`: closed-over arrays). A chunk file whose SHA-256
      differs from the one recorded when it was written (damaged, truncated) or that has
      none is solved again, with a warning. `resume=False` deletes the previous results in
      `out_dir` and starts afresh (a restart).
    - `devices`: the devices to shard each chunk over along its batch axis (default: all
      local devices, `jax.local_devices()`). Each device runs the solver on its share with
      `jax.shard_map`, and stops when its own elements are done (a straggler delays only
      its own device). The chunk is padded to a multiple of the device count; chunk files
      do not depend on it, so a run may resume on another machine.
    - `straggler_steps`: mitigation of stragglers. `vmap` of a solver's `while_loop` runs
      until the slowest element stops, so one hard problem makes a chunk of easy ones as
      slow as itself. With `straggler_steps=k`, each chunk is first solved with
      `solve_fn(element, max_steps=k)`; the elements that ran out of steps (unconverged,
      `nj.RESULTS.max_steps_reached`) are then gathered into small batches and solved
      again, warm-started, with `solve_fn(element, init=xs)`: with the solver's own step
      budget, from the path where the first pass stopped. `solve_fn` must accept and
      forward these keywords (`lambda b, **kw: nj.minimize_action(..., **kw)`) and return
      `converged` and `xs`, the same structure from both calls (checked before solving:
      `nj.minimize_action` needs `n_nodes=` or an explicit `grid_controller=nj.Refine(...)`
      there, since its default nested grids become one grid when `init` is given). For
      such elements `stats["num_steps"]` counts both passes.
      Choose `k` a little above the step count of typical elements (e.g. twice their
      median; `BlockNewton` needs 15–40 steps on typical problems): too small a cap sends
      easy elements to the second pass, and elements that never converge are solved twice.
      Default `None`: one pass, no cap. (Measured on CPU: a Maier–Stein chunk of 1023
      easy elements, ≤ 37 steps each, and one that needs 173 costs 4.2–4.7× the easy chunk
      alone in one pass, 1.1–1.2× with `straggler_steps=40`;
      `benchmarks/bench_batch_stragglers.py`.)
    - `polish_size`: batch size of the second pass (default `min(chunk_size, 8)`, rounded
      up to a multiple of the device count); one compilation. More stragglers than this in
      a chunk are solved in several rounds.
    - `progress`: `True` (a progress bar on stderr), `False`, or an object with a method
      `bar(i, n, message)` called after each chunk.
    - `collect`: return the results. With `False`, results stay on disk only (for batches
      larger than memory) and `None` is returned; call again with `resume=True` to load them.
    - `identity`: a JSON-serialisable `dict` describing the problem in your own terms
      (e.g. the options of a command line and a hash of a model file), recorded in the
      manifest; a resume with a different one is refused, naming the differing key
      (`identity.t1: 10.0 on disk, 5.0 now`). Default: nothing beyond the fingerprint.
    - `wait_timeout`: with several processes, how long (seconds) a collecting process waits
      for the other processes' chunks while none arrives; then it raises a `TimeoutError`
      that names the missing chunks and the processes that own them (the finished chunks
      stay on disk: start the missing process again, or rerun the whole job, to finish).
      Default `None`: the longer of 10 minutes and 10× the slowest chunk this process
      solved. `math.inf`: wait without a limit.

    **Returns:** the output of `solve_fn` stacked along a leading axis of length `N` (e.g. an
    `nj.PathSolution` with `xs` of shape `(N, n, d)` and per-element `converged`, `result`).

    **Multi-host.** After `jax.distributed.initialize()`, call `solve_batch` in every process
    with the same arguments and an `out_dir` on a file system they share. Process `p` of
    `P` (`jax.process_index()`, `jax.process_count()`) solves the chunks `i` with
    `i % P == p` on its own local devices, with no communication while solving; then every
    process with `collect=True` waits for the other chunks to appear in `out_dir` (each
    once its checksum is recorded) and loads them, so all of them return the same result,
    equal bit for bit to a single-process run with as many devices of the same kind. Pass
    `collect=False` in the processes that need no results (memory). The processes meet
    only in the shared folder: a process killed (`SIGKILL`, a lost node) and started
    again with the same arguments loads its finished chunks, solves the rest, and the
    others, still waiting, pick them up. For a process to rejoin a running job, JAX's
    coordination service must allow it: `jax.config.update("jax_enable_recoverability",
    True)` before `jax.distributed.initialize`. A process gives up on the others after
    `wait_timeout` without a new chunk. With `resume=False` the processes meet once more
    (a barrier) so that process 0 clears the folder before anyone writes.

    On a cluster, start one process per host (or per GPU) with the same command:

    ```python
    jax.distributed.initialize()   # SLURM, Open MPI, Kubernetes, Cloud TPU: detected
    # elsewhere: jax.distributed.initialize("10.0.0.1:1234", num_processes=4, process_id=k)
    sols = nj.solve_batch(solve, batch, out_dir="/shared/run1", chunk_size=4096,
                          collect=jax.process_index() == 0)
    ```

    e.g. `srun --ntasks-per-node=1 python run.py` under SLURM (`jax.distributed` reads
    `SLURM_JOB_NODELIST`, `SLURM_PROCID`, ... itself), or `noether-jax batch --distributed`.

    **Resuming.** Each finished chunk is one file, renamed into place only when complete, so
    a run killed at any moment (Ctrl-C, a lost node, a time limit) loses at most the chunks
    being solved; running the same call again loads the finished ones and solves the rest.
    Chunks solved again are computed with the same shapes, so results are identical to an
    uninterrupted run.
    """
    if not callable(solve_fn):
        raise ValueError(f"`solve_fn` must be callable, got {type(solve_fn).__name__}.")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
    if straggler_steps is not None and (
        not isinstance(straggler_steps, int) or isinstance(straggler_steps, bool)
        or straggler_steps < 1
    ):
        raise ValueError(
            f"`straggler_steps` must be None or a positive int, got {straggler_steps!r}."
        )
    if polish_size is not None and (
        not isinstance(polish_size, int) or isinstance(polish_size, bool) or polish_size < 1
    ):
        raise ValueError(f"`polish_size` must be None or a positive int, got {polish_size!r}.")
    if wait_timeout is not None and (
        isinstance(wait_timeout, bool) or not isinstance(wait_timeout, (int, float))
        or not wait_timeout > 0
    ):
        raise ValueError(
            f"`wait_timeout` must be None or a positive number of seconds, got {wait_timeout!r}."
        )
    progress = _default_progress(progress)

    leaves, treedef, n = _as_batch(batch)
    dtypes = [jax.dtypes.canonicalize_dtype(leaf.dtype) for leaf in leaves]
    num_chunks = math.ceil(n / chunk_size)
    chunk_size = min(chunk_size, n)  # a batch smaller than one chunk is not padded up

    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty.")
    solver = _Solver(solve_fn, devices)
    padded = solver.size(chunk_size)
    if straggler_steps is not None:
        polish_size = min(chunk_size, 8) if polish_size is None else polish_size
        polish = solver.size(polish_size)
    else:
        polish_size = polish = None

    if identity is not None:
        if not isinstance(identity, dict):
            raise ValueError(
                f"`identity` must be None or a dict, got {type(identity).__name__}."
            )
        try:  # as it reads back from the manifest (tuples become lists)
            identity = json.loads(json.dumps(identity))
        except (TypeError, ValueError) as e:
            raise ValueError(f"`identity` must be JSON-serialisable ({e}).") from None

    num_processes, process = jax.process_count(), jax.process_index()
    root = old = None
    if out_dir is not None:
        root = _store.prepare_folder(out_dir)
        manifest = {
            "format": _store.FORMAT,
            "version": _store.VERSION,
            "total": n,
            "chunk_size": chunk_size,
            "num_chunks": num_chunks,
            "inputs": {
                "sha256": _store.inputs_sha256(leaves, dtypes),
                "leaves": _store.describe(_store.leaf_names(batch), leaves, batched=True),
            },
            "straggler_steps": straggler_steps,
            "polish_size": polish_size,
            "identity": identity or {},
        }
        old = _store.read_manifest(root) if resume else None
        if old is not None:  # before tracing `solve_fn`: a refusal costs nothing
            _store.check_manifest(root, old, manifest, ignore=("problem", "outputs"))
        elif resume and _store.existing_chunks(root):
            raise ValueError(
                f"`out_dir` {root} holds chunk files but no manifest.json, so they cannot be "
                "checked against this batch: pass `resume=False` to overwrite them, or use "
                "another `out_dir`."
            )

    # The output's structure, traced without compiling (checked against files on resuming).
    chunk_struct = jax.tree.unflatten(
        treedef,
        [jax.ShapeDtypeStruct((padded, *leaf.shape[1:]), dt) for leaf, dt in zip(leaves, dtypes)],
    )
    if straggler_steps is not None:
        _check_signature(solve_fn)
    out_struct = solver.eval_shape(chunk_struct, straggler_steps)
    if straggler_steps is not None:
        _check_polishable(out_struct)
        _check_polishable(out_struct, solver.eval_shape(chunk_struct, None, out_struct.xs))
    out_leaves_struct, out_treedef = jax.tree.flatten(out_struct)
    names = _store.leaf_names(out_struct)
    out_spec = _store.describe(names, out_leaves_struct, batched=True)

    if root is not None:
        # What is solved: the program of `solve_fn` on one element, and its constants.
        element = jax.tree.unflatten(
            treedef,
            [jax.ShapeDtypeStruct(leaf.shape[1:], dt) for leaf, dt in zip(leaves, dtypes)],
        )
        manifest["problem"] = _store.problem_fingerprint(solve_fn, element)
        manifest["outputs"] = out_spec
        if old is not None:
            _store.check_manifest(root, old, manifest)
        if not resume and process == 0:
            _store.clear(root)
        elif num_processes == 1:  # (with several, another process may be writing now)
            _store.remove_temporaries(root)
        if not resume:
            if process == 0:  # (the others wait at the barrier below)
                _store.write_manifest(root, manifest, replace=True)
        elif old is None:
            # Every process writes the same content: created once, then checked by the
            # others (and by any other run that started into this folder at the same time).
            _store.write_manifest(root, manifest, replace=False)
        if num_processes > 1 and not resume:
            # Process 0 clears the folder and writes the manifest before anyone writes a
            # chunk. (A resumed run needs no barrier: every process creates or checks the
            # same manifest, and a process restarted alone joins in without the others.)
            _barrier("noether_jax.solve_batch:setup")
    elif num_processes > 1:
        raise ValueError(
            "With several processes (`jax.distributed`), pass an `out_dir` on a file system "
            "they share: each process solves its own chunks and the results meet there."
        )

    def bounds(i):
        start = i * chunk_size
        return start, min(start + chunk_size, n)

    def take(i):
        """Chunk `i` of the inputs, padded to `padded` with copies of its last element."""
        start, stop = bounds(i)
        parts = []
        for leaf, dt in zip(leaves, dtypes):
            # An explicit transfer (allowed under `jax.transfer_guard("disallow")`); a
            # no-op for inputs already on the device.
            # (`lax.slice`: static bounds, where indexing would send them as arrays).
            part = (
                jax.lax.slice_in_dim(leaf, start, stop)
                if isinstance(leaf, jax.Array) else leaf[start:stop]
            )
            part = jax.device_put(part).astype(dt)
            if stop - start < padded:
                last = jax.lax.slice_in_dim(part, stop - start - 1, stop - start)
                fill = jnp.broadcast_to(last, (padded - (stop - start), *part.shape[1:]))
                part = jnp.concatenate([part, fill])
            parts.append(part)
        return jax.tree.unflatten(treedef, parts)

    def solve(i):
        start, stop = bounds(i)
        chunk = take(i)
        out = solver(chunk, max_steps=straggler_steps)
        if straggler_steps is not None:
            out = _polish(solver, chunk, out, polish, valid=stop - start)
        # One device -> host transfer per chunk.
        return [leaf[: stop - start] for leaf in jax.device_get(jax.tree.leaves(out))]

    mine = [i for i in range(num_chunks) if i % num_processes == process]
    results: dict[int, list] = {}
    todo = []
    checksums = _store.read_checksums(root) if root is not None and resume else {}
    for i in mine:
        loaded = None
        if root is not None and resume and _store.chunk_path(root, i).exists():
            start, stop = bounds(i)
            loaded = _store.load_chunk(root, i, out_spec, stop - start, checksums)
        if loaded is None:
            todo.append(i)
        elif collect:
            results[i] = loaded
    done = len(mine) - len(todo)
    message = f"{n} elements, {num_chunks} chunks of {chunk_size}"
    if done:
        message += f" ({done} loaded from {root})"
    if progress is not None:
        progress.bar(done, len(mine), message)
    slowest = 0.0  # seconds, of the chunks solved here
    for i in todo:
        tic = time.monotonic()
        host = solve(i)
        slowest = max(slowest, time.monotonic() - tic)
        if root is not None:
            _store.save_chunk(root, i, names, host, process=process)
        if collect:
            results[i] = host
        done += 1
        if progress is not None:
            progress.bar(done, len(mine), message)

    if num_processes > 1 and collect:
        # The other processes' chunks, as they appear in the shared folder (each once its
        # checksum is recorded). No device collective: a process killed and restarted
        # (e.g. requeued by the cluster) finishes its share and this one picks it up.
        others = [i for i in range(num_chunks) if i not in results]
        absent = sum(not _store.chunk_path(root, i).exists() for i in others)
        if absent and progress is not None:
            progress.bar(done, len(mine), f"{message}; waiting for {absent} chunks of the "
                         "other processes")
        patience = (
            max(_WAIT_FLOOR_SECONDS, _WAIT_FACTOR * slowest)
            if wait_timeout is None else float(wait_timeout)
        )
        last_arrival = time.monotonic()
        while others:
            checksums = _store.read_checksums(root)
            waiting = []
            for i in others:
                path = _store.chunk_path(root, i)
                if not (path.exists() and path.name in checksums):
                    waiting.append(i)
                    continue
                start, stop = bounds(i)
                loaded = _store.load_chunk(root, i, out_spec, stop - start, checksums)
                if loaded is None:  # damaged after it was written: solved here instead
                    loaded = solve(i)
                    _store.save_chunk(root, i, names, loaded, process=process)
                results[i] = loaded
            if len(waiting) < len(others):
                last_arrival = time.monotonic()
            others = waiting
            if others and time.monotonic() - last_arrival > patience:
                owners = sorted({i % num_processes for i in others})
                raise TimeoutError(
                    f"solve_batch: no chunk from the other processes for {patience:.0f} s; "
                    f"missing chunks {_ranges(others)} of {num_chunks}, owned by process(es) "
                    f"{', '.join(map(str, owners))} (chunk i belongs to process "
                    f"i % {num_processes}). The finished chunks are kept in {root}: start "
                    "the missing process(es) again with the same arguments, or rerun the "
                    "job, to finish (or pass a larger `wait_timeout`)."
                )
            if others:
                time.sleep(_POLL_SECONDS)
    if not collect:
        return None
    stacked = [
        jnp.concatenate(jax.device_put([results[i][k] for i in range(num_chunks)]))
        for k in range(len(out_leaves_struct))
    ]
    return jax.tree.unflatten(out_treedef, stacked)


def _ranges(indices: Sequence[int]) -> str:
    """`[0, 1, 2, 5, 7, 8]` as `"0-2, 5, 7-8"`."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


@functools.partial(jax.jit, static_argnums=1)
def _stragglers(out, valid: int):
    """The indices of the stragglers among the first `valid` elements (then padding), and
    their number; on the device, so that no host array is sent back."""
    mask = _polish_mask(out)
    mask = mask & (jnp.arange(mask.shape[0]) < valid)
    (order,) = jnp.nonzero(mask, size=mask.shape[0], fill_value=0)
    return order.astype(jnp.int32), jnp.sum(mask)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _round(order, count, start: int, size: int):
    """Stragglers `start` to `start + size`, padded with copies of the first of them: they
    take its path in lockstep, no extra steps."""
    k = jnp.arange(size)
    padded = jnp.concatenate([order, jnp.zeros(size, order.dtype)])
    part = jax.lax.dynamic_slice(padded, (start,), (size,))
    return jnp.where(start + k < count, part, order[start])


@jax.jit
def _gather(tree, sel):
    return jax.tree.map(lambda a: a[sel], tree)


@jax.jit
def _merge(out, again, sel):
    """Write the second pass's solutions `again` into `out` at `sel`; for `nj.PathSolution`s,
    `num_steps` counts both passes."""
    stats = getattr(again, "stats", None)
    if isinstance(stats, dict) and "num_steps" in stats:
        total = stats["num_steps"] + out.stats["num_steps"][sel]
        again = eqx.tree_at(lambda s: s.stats["num_steps"], again, total)
    # `sel` repeats an index where it was padded; those rows hold identical solutions.
    return jax.tree.map(lambda a, b: a.at[sel].set(b), out, again)


def _polish(solver: _Solver, chunk, out, size: int, *, valid: int):
    """Solve again, warm-started with the solver's full budget, the elements of `out` that
    ran out of steps (among the first `valid`: the rest is padding); `size` of them at a
    time (one compilation)."""
    order, on_device = _stragglers(out, valid)
    count = int(jax.device_get(on_device))
    for start in range(0, count, size):
        sel = _round(order, on_device, start, size)
        elements, init = _gather((chunk, out.xs), sel)
        out = _merge(out, solver(elements, init=init), sel)
    return out
