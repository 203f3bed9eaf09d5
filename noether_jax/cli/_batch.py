"""`noether-jax batch`: most likely paths for a file of boundary conditions, with
`nj.solve_batch` (chunked, sharded over the local devices, resumable)."""

import argparse
import hashlib
import json
import pathlib
import sys
import time

_EPILOG = """\
boundary conditions:
  BC.npz  arrays x0 and x1, each (N, d) or (d,) (shared by all problems), and
          optionally t0 and t1, each (N,) or a scalar (else --t0/--t1). A shared
          endpoint may also come from --x0/--x1.
  BC.npy  an (N, 2, d) array of (x0, x1) pairs, or an (N, d) array of x1 with
          --x0 on the command line.

outputs (in DIR):
  chunk_NNNNNN.npz, manifest.json,  one file per finished chunk and their SHA-256;
  checksums-pK.sha256               rerunning the same command resumes an interrupted
                                    run. A rerun with any other option, shared endpoint
                                    or model file is refused (exit 2, naming what
                                    differs) unless --restart is given; a damaged chunk
                                    is solved again
  results.npz                       every path: xs (N, n, d), ts, action, converged,
                                    result (nj.RESULTS code), stats.num_steps, ...
  summary.json                      counts, actions, steps, timings

example (my_ms.py defines sde = nj.SDE(maier_stein_drift, 1.0)):
  python -c "import numpy as np; np.savez('bc.npz', x0=[-1, 0],
      x1=np.random.default_rng(0).uniform([0.7, -0.5], [1.3, 0.5], (10000, 2)))"
  noether-jax batch my_ms.py:sde bc.npz --t1 10 --args 10 --straggler-steps 40

several processes (one per host or GPU, DIR on a shared file system): run the
same command in each with --distributed. Under SLURM (srun), Open MPI (mpirun) or
Kubernetes the job is detected; elsewhere give --coordinator HOST:PORT (process 0's
address, or $JAX_COORDINATOR_ADDRESS) --num-processes P --process-id K. Process K
solves chunks K, K+P, ...; process 0 waits for the others' chunks and writes
results.npz. A process that dies can be started again with the same command: it
rejoins, keeps its finished chunks and solves the rest.
  srun -N 4 --ntasks-per-node 1 noether-jax batch my_ms.py:sde bc.npz \\
      --t1 10 --args 10 --out /shared/run1 --distributed"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="most likely paths for a file of boundary conditions (chunked, resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Solve for the most likely paths of an nj.SDE defined in a Python file, for every
pair of endpoints in BC (fixed time t0 -> t1, or unbounded time with --geometric),
with nj.solve_batch: in chunks, sharded over all local devices, each finished chunk
saved to DIR so that an interrupted run resumes where it stopped. Exits with 1 if
some problems did not converge (their results are still written).""",
        epilog=_EPILOG,
    )
    parser.add_argument("system", metavar="FILE.py:NAME", help="where the nj.SDE is")
    parser.add_argument("bc", metavar="BC", help="boundary conditions, a .npz or .npy file")
    parser.add_argument("--x0", metavar="A,B,...", help="initial point shared by all problems")
    parser.add_argument("--x1", metavar="A,B,...", help="final point shared by all problems")
    parser.add_argument("--t0", metavar="T0", help="initial time (default 0)")
    parser.add_argument("--t1", metavar="T1", help="final time (unless BC holds t1)")
    parser.add_argument("--geometric", action="store_true",
                        help="unbounded time: minimise the geometric action")
    parser.add_argument("--n-nodes", type=int, default=101, metavar="N",
                        help="nodes per path including both ends, one fixed uniform grid "
                        "(default %(default)s; unlike the Python API's default, no refinement "
                        "and no error estimate: check that N resolves the drift)")
    parser.add_argument("--args", metavar="JSON",
                        help="the drift's args as JSON, e.g. 10 or '{\"beta\": 10}'")
    parser.add_argument("--max-steps", type=int, metavar="K",
                        help="the solver's step budget (default: the solver's)")
    parser.add_argument("--chunk-size", type=int, default=1024, metavar="C",
                        help="problems per chunk: compiled, saved and resumed as a unit "
                        "(default %(default)s)")
    parser.add_argument("--straggler-steps", type=int, metavar="K",
                        help="solve each chunk with at most K steps first, then finish the "
                        "problems that ran out of steps apart, warm-started (e.g. 40)")
    parser.add_argument("--lanes", type=int, metavar="L",
                        help="solve each chunk L problems at a time, a lane taking the next "
                        "problem as soon as its own stops: the chunk costs about its mean "
                        "step count instead of its maximum (64-128 on a CPU; fixed-time "
                        "paths only)")
    parser.add_argument("--polish-size", type=int, metavar="P",
                        help="batch size of that second pass (default 8)")
    parser.add_argument("--out", default="noether_jax_batch", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--restart", action="store_true",
                        help="discard the results already in DIR instead of resuming")
    parser.add_argument("--float32", action="store_true",
                        help="single precision (default: float64)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    group = parser.add_argument_group(
        "several processes (hosts or GPUs) sharing DIR, through jax.distributed")
    group.add_argument("--distributed", action="store_true",
                       help="join a multi-process job: the cluster is detected (SLURM, Open "
                       "MPI, Kubernetes, Cloud TPU) unless --coordinator/--num-processes/"
                       "--process-id say where it is")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS or "
                       "detected); implies --distributed")
    group.add_argument("--num-processes", type=int, metavar="P",
                       help="number of processes (with --coordinator)")
    group.add_argument("--process-id", type=int, metavar="K",
                       help="this process's index, 0 to P-1 (with --coordinator)")
    group.add_argument("--wait-timeout", type=float, metavar="S",
                       help="process 0 gives up after S seconds without a new chunk from the "
                       "others, naming the missing chunks (default: the longer of 600 s and "
                       "10x its slowest chunk)")
    parser.set_defaults(handler=_batch)
    return parser


def _batch(ns: argparse.Namespace) -> int:
    from ._main import CLIError, _parse_float, _parse_numbers, _precision

    spec = ns.system
    if ":" not in spec:
        raise CLIError(f"expected FILE.py:NAME, got {spec!r} (e.g. my_system.py:sde).")
    file_text, name = spec.rsplit(":", 1)
    if not name.isidentifier():
        raise CLIError(f"{name!r} (after the colon in {spec!r}) is not a Python name.")
    bc = pathlib.Path(ns.bc)
    if not bc.is_file():
        raise CLIError(f"{bc}: no such file.")
    if bc.suffix not in (".npz", ".npy"):
        raise CLIError(f"{bc}: expected a .npz or .npy file of boundary conditions.")
    cli = {
        "x0": None if ns.x0 is None else _parse_numbers(ns.x0, "--x0"),
        "x1": None if ns.x1 is None else _parse_numbers(ns.x1, "--x1"),
        "t0": _parse_float(ns.t0, "--t0"),
        "t1": _parse_float(ns.t1, "--t1"),
    }
    if ns.geometric and (cli["t0"] is not None or cli["t1"] is not None):
        raise CLIError("--geometric takes no --t0/--t1 (the duration is unbounded).")
    if ns.geometric and ns.lanes is not None:
        raise CLIError("--lanes applies to fixed-time paths; drop it with --geometric.")
    for option in ("n_nodes", "chunk_size", "max_steps", "straggler_steps", "polish_size",
                   "lanes"):
        value = getattr(ns, option)
        if value is not None and value < (3 if option == "n_nodes" else 1):
            flag = "--" + option.replace("_", "-")
            raise CLIError(f"{flag} must be at least {3 if option == 'n_nodes' else 1}.")
    try:
        user_args = None if ns.args is None else json.loads(ns.args)
    except json.JSONDecodeError as e:
        raise CLIError(f"--args: not valid JSON ({e}): {ns.args!r}.") from None
    _distributed(ns)
    with _precision(not ns.float32):
        return _run(ns, pathlib.Path(file_text), name, bc, cli, user_args)


def _distributed(ns: argparse.Namespace) -> None:
    """Join a `jax.distributed` job (before anything touches a device)."""
    from ._main import CLIError

    explicit = [ns.coordinator, ns.num_processes, ns.process_id]
    if not ns.distributed and all(v is None for v in explicit):
        return
    if any(v is not None for v in explicit[1:]) and None in explicit[1:]:
        raise CLIError("--num-processes and --process-id go together.")
    if ns.num_processes is not None:
        if ns.num_processes < 1 or not 0 <= ns.process_id < ns.num_processes:
            raise CLIError(
                f"--process-id must be in 0..{ns.num_processes - 1} and --num-processes "
                f"at least 1; got {ns.process_id} of {ns.num_processes}."
            )
    import jax

    # A process killed and started again (a requeued task) may rejoin the running job.
    jax.config.update("jax_enable_recoverability", True)
    try:
        jax.distributed.initialize(
            ns.coordinator, num_processes=ns.num_processes, process_id=ns.process_id
        )
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"--distributed: joining the job failed ({e}).") from None


def _read_bc(bc: pathlib.Path, cli: dict, geometric: bool) -> dict:
    """The boundary conditions as arrays: `x0`, `x1` of shape (N, d) or (d,), and (fixed
    time) `t0`, `t1` of shape (N,) or ()."""
    import jax.numpy as jnp

    from ._main import CLIError

    try:
        if bc.suffix == ".npz":
            with jnp.load(bc, allow_pickle=False) as data:
                found = {k: jnp.asarray(data[k]) for k in data.files}
            unknown = sorted(set(found) - {"x0", "x1", "t0", "t1"})
            if unknown:
                raise CLIError(
                    f"{bc}: unexpected arrays {', '.join(unknown)}; expected x0, x1 and "
                    "optionally t0, t1."
                )
        else:
            arr = jnp.asarray(jnp.load(bc, allow_pickle=False))
            if arr.ndim == 3 and arr.shape[1] == 2:
                found = {"x0": arr[:, 0], "x1": arr[:, 1]}
            elif arr.ndim == 2:
                found = {"x1": arr}
            else:
                raise CLIError(
                    f"{bc}: an array of shape {tuple(arr.shape)}; expected (N, 2, d) pairs "
                    "(x0, x1), or (N, d) final points with --x0."
                )
    except (OSError, ValueError) as e:
        raise CLIError(f"{bc}: cannot be read as a NumPy file ({e}).") from None
    parts = {}
    for key in ("x0", "x1") if geometric else ("x0", "x1", "t0", "t1"):
        if key in found and cli[key] is not None:
            raise CLIError(f"{key} is given both in {bc.name} and as --{key}; keep one.")
        if key in found:
            parts[key] = found[key]
        elif cli[key] is not None:
            parts[key] = jnp.asarray(cli[key])
        elif key == "t0":
            parts[key] = jnp.asarray(0.0)
        else:
            raise CLIError(f"give {key}: as an array in {bc.name} or as --{key}.")
    if geometric and ("t0" in found or "t1" in found):
        raise CLIError(f"--geometric: {bc.name} holds times, but the duration is unbounded.")
    for key, value in parts.items():
        ndim = 1 if key in ("x0", "x1") else 0
        if value.ndim not in (ndim, ndim + 1):
            expected = "(N, d) or (d,)" if ndim else "(N,) or a scalar"
            raise CLIError(f"{key} has shape {tuple(value.shape)}; expected {expected}.")
    return parts


def _run(ns, file: pathlib.Path, name: str, bc: pathlib.Path, cli: dict, user_args) -> int:
    import jax
    import jax.numpy as jnp

    import noether_jax as nj

    from noether_jax._batch import _store
    from noether_jax._progress import Progress

    from ._cases._common import jsonable
    from ._main import CLIError, _args_from_json, _check_dimension, _get_sde, _load_module

    module = _load_module(file)
    sde = _get_sde(module, file, name)
    args = _args_from_json(user_args)
    dtype = jnp.float32 if ns.float32 else jnp.float64
    parts = {k: v.astype(dtype) for k, v in _read_bc(bc, cli, ns.geometric).items()}

    # Batched quantities go through the batch; shared ones are closed over.
    batched = {k: v for k, v in parts.items() if v.ndim == (2 if k in ("x0", "x1") else 1)}
    shared = {k: v for k, v in parts.items() if k not in batched}
    # Shared times as Python floats: `minimize_action` checks `t0 != t1` eagerly when both
    # are concrete, which fails for arrays closed over in a traced function.
    shared = {k: float(v) if k in ("t0", "t1") else v for k, v in shared.items()}
    if not batched:
        raise CLIError(f"{bc.name} describes a single problem; use `noether-jax path` for it.")
    sizes = {k: int(v.shape[0]) for k, v in batched.items()}
    if len(set(sizes.values())) != 1:
        raise CLIError(
            "the batched boundary conditions differ in length: "
            + ", ".join(f"{k}: {n}" for k, n in sizes.items())
            + "."
        )
    n_problems = next(iter(sizes.values()))
    first = {k: (v[0] if k in batched else v) for k, v in parts.items()}
    d = _check_dimension(sde, name, first["x0"], first["x1"], first.get("t0", 0.0), args)

    options = dict(n_nodes=ns.n_nodes, args=args, throw=False)
    if ns.max_steps is not None:
        options["max_steps"] = ns.max_steps
    if ns.lanes is not None:
        options["lanes"] = ns.lanes

    def solve(b, **kw):
        p = {**shared, **b}
        # solve_batch's `max_steps` (the straggler cap) overrides --max-steps, which stays
        # the budget of the second pass.
        kw = {**options, **kw}
        if ns.geometric:
            return nj.minimize_geometric_action(sde, p["x0"], p["x1"], **kw)
        return nj.minimize_action(sde, p["x0"], p["x1"], p["t0"], p["t1"], **kw)

    out = pathlib.Path(ns.out)
    # What is solved, recorded in the manifest: a rerun into the same DIR with any other
    # option, shared endpoint or model file is refused instead of reusing the old chunks.
    identity = {
        "model": {
            "file": str(file.resolve()),
            "name": name,
            "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        },
        "options": {
            "x0": cli["x0"], "x1": cli["x1"], "t0": cli["t0"], "t1": cli["t1"],
            "geometric": ns.geometric, "n_nodes": ns.n_nodes, "args": user_args,
            "max_steps": ns.max_steps, "float32": ns.float32, "lanes": ns.lanes,
        },
        "shared": {k: jnp.asarray(v).tolist() for k, v in sorted(shared.items())},
    }
    label = f"{file.name}:{name}"
    mode = (
        "unbounded time (geometric)"
        if ns.geometric
        else "t from "
        + ("per-problem t0" if "t0" in batched else f"{float(parts['t0']):g}")
        + " to "
        + ("per-problem t1" if "t1" in batched else f"{float(parts['t1']):g}")
    )
    devices = jax.local_devices()
    process, processes = jax.process_index(), jax.process_count()
    where = "" if processes == 1 else f", process {process} of {processes}"
    print(f"{label}: {n_problems} problems, d = {d}, {ns.n_nodes} nodes, {mode}, "
          f"{jnp.dtype(dtype).name}, {len(devices)} x {devices[0].device_kind}{where}")
    start = time.perf_counter()
    try:
        # With several processes, process 0 assembles the results; the others only solve
        # their share of the chunks.
        sols = nj.solve_batch(
            solve, batched, chunk_size=ns.chunk_size, out_dir=out, resume=not ns.restart,
            straggler_steps=ns.straggler_steps, polish_size=ns.polish_size,
            progress=Progress("batch", quiet=ns.quiet), identity=identity,
            collect=process == 0, wait_timeout=ns.wait_timeout,
        )
    except TimeoutError as e:  # (an OSError: caught first) a process never delivered
        raise CLIError(str(e).replace("`wait_timeout`", "--wait-timeout")) from None
    except ValueError as e:
        message = str(e).replace("pass `resume=False`", "pass --restart")
        message = message.replace("`wait_timeout`", "--wait-timeout")
        raise CLIError(message.replace("`out_dir`", "--out")) from None
    except OSError as e:  # e.g. the disk filled up: finished chunks stay, rerun to resume
        raise CLIError(f"writing to {out} failed ({e}); rerun to resume.") from None
    seconds = time.perf_counter() - start
    if sols is None:
        print(f"process {process}: its chunks are in {out} ({seconds:.1f} s); process 0 "
              "writes results.npz")
        return 0

    names = _store.leaf_names(sols)
    host = jax.device_get(jax.tree.leaves(sols))
    results_file = out / "results.npz"
    try:
        _store.save_arrays(results_file, dict(zip(names, host)))
    except OSError as e:
        raise CLIError(f"writing {results_file} failed ({e}); the chunks in {out} are "
                       "complete: free space and rerun to assemble them.") from None

    converged = sols.converged
    n_ok = int(jnp.sum(converged))
    codes = {
        member: int(jnp.sum(sols.result == item))
        for member, item in nj.RESULTS._name_to_item.items()
    }
    codes = {k: v for k, v in codes.items() if v}
    actions = jnp.where(converged, sols.action, jnp.nan)
    steps = sols.stats.get("num_steps") if isinstance(sols.stats, dict) else None
    summary = {
        "system": label,
        "bc": str(bc),
        "problems": n_problems,
        "dimension": d,
        "n_nodes": ns.n_nodes,
        "mode": "geometric" if ns.geometric else "fixed-time",
        "dtype": jnp.dtype(dtype).name,
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "chunk_size": ns.chunk_size,
        "straggler_steps": ns.straggler_steps,
        "lanes": ns.lanes,
        "converged": n_ok,
        "results": codes,
        "action_min": float(jnp.nanmin(actions)) if n_ok else None,
        "action_median": float(jnp.nanmedian(actions)) if n_ok else None,
        "action_max": float(jnp.nanmax(actions)) if n_ok else None,
        "num_steps_median": None if steps is None else float(jnp.median(steps)),
        "num_steps_max": None if steps is None else int(jnp.max(steps)),
        "seconds": seconds,
        "results_file": str(results_file),
    }
    try:
        (out / "summary.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n",
                                          encoding="utf-8")
    except OSError as e:
        raise CLIError(f"writing {out / 'summary.json'} failed ({e}).") from None

    print(f"converged: {n_ok}/{n_problems}"
          + ("" if n_ok == n_problems else " (" + ", ".join(
              f"{k}: {v}" for k, v in codes.items() if k != "successful") + ")"))
    if n_ok:
        print(f"action (converged): min {summary['action_min']:.6g}, median "
              f"{summary['action_median']:.6g}, max {summary['action_max']:.6g}")
    if steps is not None:
        print(f"solver steps: median {summary['num_steps_median']:.0f}, max "
              f"{summary['num_steps_max']}")
    print(f"time: {seconds:.1f} s ({1e3 * seconds / n_problems:.3g} ms per problem)")
    print(f"results: {results_file} ({', '.join(names)}); summary: {out / 'summary.json'}; "
          f"chunks in {out} (rerun to resume)")
    if n_ok < n_problems:
        print(f"noether-jax batch: error: {n_problems - n_ok} problem(s) did not converge "
              "(see `result` in results.npz; nj.RESULTS explains the codes)",
              file=sys.stderr)
        return 1
    return 0
