"""`nj.solve_batch`: chunks equal one vmap, sharded equals unsharded, interrupted runs resume
to identical results without recomputing, stragglers are polished, bad inputs refused.

Cost: four compilations of the batched solver (the reference vmap, the capped chunk, the
polish batch, and the sharded chunk in a subprocess); every other call reuses them."""

import errno
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
import noether_jax._batch._runner as batch_runner

# Maier–Stein, β = 10, D = 1, T = 10, on a coarse grid (cheap; the solver's work is the same).
BETA, T, N_NODES = 10.0, 10.0, 21
CHUNK, CAP = 8, 30
N = 19  # chunks of 8, 8, 3 (+5 padding)
HARD = 11  # index of the element far up the quartic wall: ~70 Newton steps, others < 25


def drift(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


SDE = nj.SDE(drift, 1.0)


def solve(b, **kw):
    return nj.minimize_action(
        SDE, b["x0"], b["x1"], 0.0, T, n_nodes=N_NODES, args=BETA, throw=False, **kw
    )


def make_batch():
    u = np.linspace(-1.0, 1.0, N)
    x1 = np.stack([1.0 + 0.3 * u, 0.3 + 0.15 * np.sin(3.0 * u)], axis=1)
    x1[HARD] = [6.0, 0.0]
    x0 = np.tile([-1.0, 0.0], (N, 1))
    return {"x0": x0, "x1": x1}


class Recorder:
    """A progress object that records the chunks it is told about, and can interrupt."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def bar(self, i, n, message=""):
        self.calls.append((i, n))
        if self.stop_after is not None and i >= self.stop_after:
            raise KeyboardInterrupt("simulated interruption")


def assert_trees_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    batch = make_batch()
    ref = jax.vmap(solve)(jax.tree.map(jnp.asarray, batch))
    out = tmp_path_factory.mktemp("full")
    rec = Recorder()
    sols = nj.solve_batch(
        solve, batch, chunk_size=CHUNK, out_dir=out, straggler_steps=CAP, progress=rec
    )
    return dict(batch=batch, ref=ref, sols=sols, out=out, progress=rec.calls)


def test_chunked_equals_one_vmap_and_polishes_the_straggler(runs):
    ref, sols = runs["ref"], runs["sols"]
    steps = np.asarray(ref.stats["num_steps"])
    easy = np.arange(N) != HARD
    # The setting the test relies on: one element needs more steps than the cap.
    assert steps[HARD] > CAP and np.all(steps[easy] < CAP)
    assert sols.xs.shape == (N, N_NODES, 2) and sols.action.shape == (N,)
    assert bool(jnp.all(ref.converged)) and bool(jnp.all(sols.converged))
    # Elements that met the tolerance within the cap went through the same iterations.
    sols, ref = jax.device_get((sols, ref))  # NumPy indexing below: no eager JAX ops
    for name in ("xs", "action", "ts"):
        np.testing.assert_allclose(
            getattr(sols, name)[easy], getattr(ref, name)[easy], rtol=0, atol=1e-12
        )
    np.testing.assert_array_equal(sols.stats["num_steps"][easy], steps[easy])
    # The straggler: stopped at the cap, polished from there to the same minimum.
    assert sols.stats["num_steps"][HARD] > CAP
    assert float(sols.action[HARD]) == pytest.approx(float(ref.action[HARD]), rel=1e-10)
    np.testing.assert_allclose(sols.xs[HARD], ref.xs[HARD], atol=1e-6)
    assert runs["progress"] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    names = sorted(p.name for p in runs["out"].iterdir())
    assert names == ["checksums-p0.sha256", "chunk_000000.npz", "chunk_000001.npz",
                     "chunk_000002.npz", "manifest.json"]
    with np.load(runs["out"] / "chunk_000002.npz") as data:  # padding dropped
        assert data["xs"].shape == (3, N_NODES, 2)
        np.testing.assert_array_equal(data["action"], np.asarray(sols.action[16:]))


def test_interrupted_run_resumes_identically_without_recomputing(runs, tmp_path):
    batch = runs["batch"]
    rec = Recorder(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        nj.solve_batch(
            solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP, progress=rec
        )
    files = {p.name: p.stat() for p in tmp_path.glob("chunk_*.npz")}
    assert sorted(files) == ["chunk_000000.npz", "chunk_000001.npz"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
    # What a run killed (SIGKILL) while writing chunk 2 leaves: a temporary file, removed.
    (tmp_path / ".chunk_000002.npz.x1y2.tmp").write_bytes(b"PK partial")

    rec = Recorder()
    sols = nj.solve_batch(
        solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP, progress=rec
    )
    assert rec.calls == [(2, 3), (3, 3)]  # only the last chunk was solved
    assert not list(tmp_path.glob(".*.tmp"))
    for name, st in files.items():  # finished chunks were not rewritten
        new = (tmp_path / name).stat()
        assert (new.st_ino, new.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert_trees_equal(sols, runs["sols"])

    # Everything on disk: nothing solved, same results.
    rec = Recorder()
    again = nj.solve_batch(
        solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP, progress=rec
    )
    assert rec.calls == [(3, 3)]
    assert_trees_equal(again, runs["sols"])

    # Damaged chunk files are detected by their SHA-256 and solved again, with a warning:
    # garbage, a truncated file, and a valid .npz of the right shapes holding another
    # chunk's results (which only the checksum can tell apart).
    sums = (tmp_path / "checksums-p0.sha256").read_text()
    assert len(sums.splitlines()) == 3
    good = (tmp_path / "chunk_000001.npz").read_bytes()
    for damaged, why in [
        (b"not a zip file", "SHA-256 differs"),
        (good[: len(good) // 2], "SHA-256 differs"),
        ((tmp_path / "chunk_000000.npz").read_bytes(), "SHA-256 differs"),
    ]:
        (tmp_path / "chunk_000001.npz").write_bytes(damaged)
        rec = Recorder()
        with pytest.warns(UserWarning, match=f"chunk_000001.npz is unusable.*{why}"):
            again = nj.solve_batch(
                solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP,
                progress=rec,
            )
        assert rec.calls == [(2, 3), (3, 3)]
        assert_trees_equal(again, runs["sols"])
        assert (tmp_path / "chunk_000001.npz").read_bytes() == good
    # A chunk without a recorded checksum (its line lost) is not trusted either.
    (tmp_path / "checksums-p0.sha256").write_text(
        "".join(l + "\n" for l in sums.splitlines() if "chunk_000001" not in l)
    )
    with pytest.warns(UserWarning, match="chunk_000001.npz is unusable.*no checksum"):
        nj.solve_batch(
            solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP,
            progress=False,
        )


def test_disk_full_loses_nothing_and_resumes(runs, tmp_path, monkeypatch):
    # The disk fills up while chunk 1 is being written: the error reaches the caller, chunk
    # 0 stays whole with its checksum, nothing half-written is left, and a rerun (space
    # freed) solves only the rest and equals an uninterrupted run.
    batch, store = runs["batch"], batch_runner._store
    real = store._atomic_write

    def full(path, write, **kw):
        if path.name != "chunk_000001.npz":
            return real(path, write, **kw)

        def partial(f):
            f.write(b"PK\x03\x04 first bytes")
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(path, partial, **kw)

    monkeypatch.setattr(store, "_atomic_write", full)
    with pytest.raises(OSError, match="No space left"):
        nj.solve_batch(solve, batch, chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP,
                       progress=False)
    assert [p.name for p in tmp_path.glob("chunk_*.npz")] == ["chunk_000000.npz"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert "chunk_000000.npz" in (tmp_path / "checksums-p0.sha256").read_text()
    monkeypatch.setattr(store, "_atomic_write", real)
    rec = Recorder()
    sols = nj.solve_batch(solve, batch, chunk_size=CHUNK, out_dir=tmp_path,
                          straggler_steps=CAP, progress=rec)
    assert rec.calls == [(1, 3), (2, 3), (3, 3)]
    assert_trees_equal(sols, runs["sols"])


def test_runs_without_implicit_transfers(runs):
    # GPU-readiness: with the inputs on the device, a batched solve (chunks, the capped
    # first pass, the straggler polish, the assembled result) makes no implicit transfer
    # between host and device (`jax.transfer_guard("disallow")` raises on any); the
    # compilations are those of the `runs` fixture.
    batch = jax.device_put(runs["batch"])
    with jax.transfer_guard("disallow"):
        sols = nj.solve_batch(solve, batch, chunk_size=CHUNK, straggler_steps=CAP,
                              progress=False)
        assert isinstance(sols.xs, jax.Array)
    assert_trees_equal(sols, runs["sols"])
    # The guard is live: an implicit transfer of a host array is refused.
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed"):
        jnp.asarray(runs["batch"]["x1"]) + 1.0


def test_resume_refuses_a_different_batch(runs):
    batch = runs["batch"]
    other = {"x0": batch["x0"], "x1": batch["x1"].copy()}
    other["x1"][3, 1] += 1e-9
    kw = dict(out_dir=runs["out"], progress=False)
    with pytest.raises(ValueError, match="different batch.*sha256"):
        nj.solve_batch(solve, other, chunk_size=CHUNK, straggler_steps=CAP, **kw)
    with pytest.raises(ValueError, match="chunk_size"):
        nj.solve_batch(solve, batch, chunk_size=CHUNK - 1, straggler_steps=CAP, **kw)
    with pytest.raises(ValueError, match="straggler_steps"):
        nj.solve_batch(solve, batch, chunk_size=CHUNK, straggler_steps=CAP + 1, **kw)
    # Nothing was overwritten.
    again = nj.solve_batch(solve, batch, chunk_size=CHUNK, straggler_steps=CAP, **kw)
    assert_trees_equal(again, runs["sols"])


def make_solve(x0=(-1.0, 0.0), t1=T, beta=BETA, max_steps=None, f=drift):
    """A `solve_fn` that closes over the problem: only `x1` is batched."""
    sde = nj.SDE(f, 1.0)
    x0 = jnp.asarray(x0)
    kw = {} if max_steps is None else {"max_steps": max_steps}

    def solve(b):
        return nj.minimize_action(
            sde, x0, b["x1"], 0.0, t1, n_nodes=N_NODES, args=beta, throw=False, **kw
        )

    return solve


def drift_edited(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1] ** 1])


def drift_other(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + 2 * x[0] ** 2) * x[1]])


def test_resume_refuses_a_different_problem(tmp_path):
    # The manifest is written before the first chunk is solved; a progress object that
    # interrupts at once leaves it alone, so no solve is compiled here.
    batch = {"x1": make_batch()["x1"]}

    def start(fn, **kw):
        with pytest.raises(KeyboardInterrupt):
            nj.solve_batch(fn, batch, chunk_size=CHUNK, out_dir=tmp_path,
                           progress=Recorder(stop_after=0), **kw)

    start(make_solve())
    fingerprint = json.loads((tmp_path / "manifest.json").read_text())["problem"]
    start(make_solve())  # the same problem, traced again: accepted
    start(make_solve(x0=np.array([-1.0, 0.0])))  # equal values from another array type
    jaxpr, consts = "problem.jaxpr_sha256", "problem.constants_sha256"
    for fn, what, only in [
        (make_solve(x0=(-1.0, 1e-12)), consts, True),  # a closed-over array
        (make_solve(t1=T + 1e-9), jaxpr, True),  # a Python scalar (a literal)
        (make_solve(beta=BETA + 1.0), jaxpr, True),
        (make_solve(max_steps=77), jaxpr, True),
        (make_solve(f=drift_other), jaxpr, True),  # an edited drift
        # args as an array: a constant now, no longer a literal of the program
        (make_solve(beta=jnp.asarray(BETA)), consts, False),
    ]:
        with pytest.raises(ValueError) as info:
            nj.solve_batch(fn, batch, chunk_size=CHUNK, out_dir=tmp_path, progress=False)
        message = str(info.value)
        assert "\n" not in message and "different batch" in message, message
        assert what in message and "resume=False" in message, message
        if only:
            assert ({jaxpr, consts} - {what}).pop() not in message, message
    # `x1 ** 1` traces to a different program though it computes the same values:
    # refused too (the fingerprint is of the program, not of its results).
    with pytest.raises(ValueError, match="jaxpr_sha256"):
        nj.solve_batch(make_solve(f=drift_edited), batch, chunk_size=CHUNK, out_dir=tmp_path,
                       progress=False)
    # `identity` is checked before `solve_fn` is even traced.
    with pytest.raises(ValueError, match=r"identity\.t1: null on disk, 5 now"):
        nj.solve_batch(make_solve(), batch, chunk_size=CHUNK, out_dir=tmp_path,
                       progress=False, identity={"t1": 5})
    # Two runs started into the same empty folder at once: the second finds no manifest
    # (read before the first wrote it), but creating it fails and the one there is checked.
    before = (tmp_path / "manifest.json").read_bytes()
    real, calls = batch_runner._store.read_manifest, []

    def late(root):
        calls.append(root)
        return None if len(calls) == 1 else real(root)

    batch_runner._store.read_manifest = late
    try:
        with pytest.raises(ValueError, match=r"different batch .*problem\.jaxpr_sha256"):
            nj.solve_batch(make_solve(t1=T + 1.0), batch, chunk_size=CHUNK, out_dir=tmp_path,
                           progress=False)
    finally:
        batch_runner._store.read_manifest = real
    assert len(calls) == 2 and (tmp_path / "manifest.json").read_bytes() == before
    # A restart (resume=False) accepts the new problem and records it.
    start(make_solve(t1=T + 1.0), resume=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["problem"] != fingerprint


_FINGERPRINT = """
import sys
import time
import jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
import test_batch_runner as t
from noether_jax._batch import _store
element = {{"x1": jax.ShapeDtypeStruct((2,), "float64")}}
fp = _store.problem_fingerprint(t.make_solve(x0=(-1.0, 0.25)), element)
print(fp["jaxpr_sha256"], fp["constants_sha256"])
"""


def test_problem_fingerprint_is_the_same_in_every_process(tmp_path):
    # No object ids or memory addresses: two fresh processes and this one agree.
    tests = pathlib.Path(__file__).parent
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        [str(tests.parent), os.environ.get("PYTHONPATH", "")]))
    code = _FINGERPRINT.format(tests=str(tests))
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out.split())
    element = {"x1": jax.ShapeDtypeStruct((2,), jnp.float64)}
    here = batch_runner._store.problem_fingerprint(make_solve(x0=(-1.0, 0.25)), element)
    expected = [here["jaxpr_sha256"], here["constants_sha256"]]
    assert outs[0] == outs[1] == expected
    other = batch_runner._store.problem_fingerprint(make_solve(x0=(-1.0, 0.5)), element)
    assert other["jaxpr_sha256"] == here["jaxpr_sha256"]
    assert other["constants_sha256"] != here["constants_sha256"]


def test_out_dir_must_be_a_writable_folder(tmp_path):
    batch = make_batch()
    file = tmp_path / "a_file"
    file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        nj.solve_batch(solve, batch, out_dir=file, progress=False)
    with pytest.raises(ValueError, match="cannot be created or written to"):
        nj.solve_batch(solve, batch, out_dir=file / "sub", progress=False)
    assert file.read_text() == "x"


def test_chunks_split_between_processes(runs, tmp_path, monkeypatch):
    # Multi-host: process p of P solves chunks i % P == p; the last to finish reads all.
    batch = runs["batch"]
    kw = dict(chunk_size=CHUNK, out_dir=tmp_path, straggler_steps=CAP)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    barriers = []  # jax.distributed is not initialised: record the barriers instead
    monkeypatch.setattr(batch_runner, "_barrier", barriers.append)
    rec = Recorder()
    assert nj.solve_batch(solve, batch, progress=rec, collect=False, **kw) is None
    assert rec.calls == [(0, 1), (1, 1)]  # one chunk of three
    assert [p.name for p in tmp_path.glob("chunk_*.npz")] == ["chunk_000001.npz"]
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    rec = Recorder()
    sols = nj.solve_batch(solve, batch, progress=rec, **kw)
    assert rec.calls == [(0, 2), (1, 2), (2, 2)]
    assert_trees_equal(sols, runs["sols"])
    # Resumable runs meet only in the folder; a restart (process 0 clears) needs a barrier.
    assert barriers == []
    rec = Recorder()
    nj.solve_batch(solve, batch, progress=rec, resume=False, collect=False, **kw)
    assert barriers == ["noether_jax.solve_batch:setup"]
    assert rec.calls == [(0, 2), (1, 2), (2, 2)]
    # Process 1's chunk never comes (it was cleared by the restart): a collecting process
    # gives up after `wait_timeout` without a new chunk, naming what is missing.
    tic = time.monotonic()
    with pytest.raises(TimeoutError, match=r"missing chunks 1 of 3, owned by process\(es\) 1 "):
        nj.solve_batch(solve, batch, progress=False, wait_timeout=0.5, **kw)
    assert 0.5 < time.monotonic() - tic < 30
    for bad in (0, -1.0, True, "10"):
        with pytest.raises(ValueError, match="wait_timeout"):
            nj.solve_batch(solve, batch, progress=False, wait_timeout=bad, **kw)
    with pytest.raises(ValueError, match="out_dir"):
        nj.solve_batch(solve, batch, chunk_size=CHUNK, progress=False)


_SHARDED = """
import sys
import time
import jax
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 4, jax.devices()
sys.path.insert(0, {tests!r})
import test_batch_runner as t
import noether_jax as nj
nj.solve_batch(t.solve, t.make_batch(), chunk_size=6, out_dir={out!r}, progress=False)
"""


def test_sharded_over_four_devices_equals_unsharded(runs, tmp_path):
    # Chunks of 6 padded to 8 (two elements per device), solved with shard_map.
    tests = pathlib.Path(__file__).parent
    path = os.pathsep.join([str(tests.parent), os.environ.get("PYTHONPATH", "")])
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=path,
    )
    code = _SHARDED.format(tests=str(tests), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = runs["ref"]
    for i, start in enumerate(range(0, N, 6)):
        with np.load(tmp_path / f"chunk_{i:06d}.npz") as data:
            stop = min(start + 6, N)
            np.testing.assert_allclose(data["xs"], ref.xs[start:stop], rtol=0, atol=1e-12)
            np.testing.assert_allclose(data["action"], ref.action[start:stop], rtol=1e-13)
            steps = ref.stats["num_steps"][start:stop]
            np.testing.assert_array_equal(data["stats.num_steps"], steps)
            assert data["converged"].all()


def test_bad_inputs():
    batch = make_batch()
    with pytest.raises(ValueError, match="leading"):
        nj.solve_batch(solve, {"x0": batch["x0"], "x1": batch["x1"][:-1]})
    with pytest.raises(ValueError, match="scalar"):
        nj.solve_batch(solve, {"x0": batch["x0"], "x1": batch["x1"], "t": 1.0})
    with pytest.raises(ValueError, match="empty"):
        nj.solve_batch(solve, {"x0": batch["x0"][:0], "x1": batch["x1"][:0]})
    with pytest.raises(ValueError, match="chunk_size"):
        nj.solve_batch(solve, batch, chunk_size=0)
    no_kwargs = lambda b: solve(b)
    with pytest.raises(ValueError, match="max_steps"):
        nj.solve_batch(no_kwargs, batch, straggler_steps=10)
    with pytest.raises(ValueError, match="progress"):
        nj.solve_batch(solve, batch, progress="yes")
    # The default grid (nested, with an error estimate) and a warm-started second pass (one
    # grid) return different structures: refused before anything is solved (before, the
    # first pass ran and the merge then failed with a pytree error).
    def default_grid(b, **kw):
        return nj.minimize_action(SDE, b["x0"], b["x1"], 0.0, T, args=BETA, throw=False, **kw)

    with pytest.raises(ValueError, match="init=xs"):
        nj.solve_batch(default_grid, batch, chunk_size=CHUNK, straggler_steps=CAP,
                       progress=False)


def test_cli_reports_bad_boundary_conditions(tmp_path):
    # The `noether-jax batch` subcommand's checks (no solve, nothing compiled).
    import argparse

    from noether_jax.cli._batch import add_parser
    from noether_jax.cli._main import CLIError

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    system = tmp_path / "ms.py"
    system.write_text(
        "import jax.numpy as jnp\nimport noether_jax as nj\n"
        "sde = nj.SDE(lambda t, x, b: jnp.array([x[0] - x[0] ** 3 - b * x[0] * x[1] ** 2,"
        " -(1 + x[0] ** 2) * x[1]]), 1.0)\n"
    )
    batch = make_batch()

    def run(*argv):
        ns = parser.parse_args(["batch", f"{system}:sde", *argv, "--out", str(tmp_path / "o")])
        with pytest.raises(CLIError) as info:
            ns.handler(ns)
        return str(info.value)

    np.savez(tmp_path / "bc.npz", x0=batch["x0"], x1=batch["x1"][:-1])
    assert "differ in length: x0: 19, x1: 18" in run(str(tmp_path / "bc.npz"), "--t1", "10")
    np.savez(tmp_path / "bc.npz", x0=batch["x0"], x1=batch["x1"])
    assert "give t1" in run(str(tmp_path / "bc.npz"))
    assert "both in bc.npz and as --x0" in run(str(tmp_path / "bc.npz"), "--x0=-1,0", "--t1", "1")
    np.savez(tmp_path / "bc.npz", x0=batch["x0"][:, :1], x1=batch["x1"][:, :1])
    assert "give 2 numbers" in run(str(tmp_path / "bc.npz"), "--t1", "10", "--args", "10")
    np.save(tmp_path / "bc.npy", np.zeros((4, 3, 2)))
    assert "expected (N, 2, d)" in run(str(tmp_path / "bc.npy"), "--t1", "10")
    np.savez(tmp_path / "bc.npz", x0=batch["x0"], x1=batch["x1"])
    assert "--lanes must be at least 1" in run(str(tmp_path / "bc.npz"), "--t1", "1",
                                                 "--lanes", "0")
    assert "--lanes applies to fixed-time paths" in run(str(tmp_path / "bc.npz"),
                                                       "--geometric", "--lanes", "8")
