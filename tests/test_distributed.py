"""`nj.solve_batch` over real processes (`jax.distributed`, coordinator on 127.0.0.1): two
processes with two fake CPU devices each share the chunks of one batch through a common
folder; one is killed with SIGKILL after its first chunk and started again; the results
assembled by both equal an uninterrupted single-process run bit for bit.

Cost: three processes compiling the same chunk program (the restarted one reads it from a
persistent compilation cache), about 30 s of wall time on 2 cores."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

TESTS = pathlib.Path(__file__).resolve().parent
CHUNK = 4  # 19 elements: chunks 0..4; process 0 solves 0, 2, 4 and process 1 solves 1, 3

_WORKER = """
import pathlib, sys, time
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_recoverability", True)  # a killed process may rejoin
port, pid, nproc, out, result, pause = sys.argv[1:7]
pid, nproc, pause = int(pid), int(nproc), float(pause)
if nproc > 1:
    jax.distributed.initialize(f"127.0.0.1:{{port}}", num_processes=nproc, process_id=pid,
                               initialization_timeout=120, shutdown_timeout_seconds=60)
assert jax.process_count() == nproc and jax.process_index() == pid
assert len(jax.local_devices()) == 2, jax.local_devices()
sys.path.insert(0, {tests!r})
import test_batch_runner as t
import noether_jax as nj

class Pause:  # slows this process down between chunks, so that it can be killed mid-run
    def bar(self, i, n, message=""):
        if 0 < i < n:
            time.sleep(pause)

sols = nj.solve_batch(t.solve, t.make_batch(), chunk_size={chunk}, out_dir=out,
                      progress=Pause())
np.savez(result, *jax.device_get(jax.tree.leaves(sols)))
print("solved", jax.process_index(), flush=True)
# Leave the job in order: the others disconnect while process 0, which runs the
# coordination service, is still there; then it exits.
done = [pathlib.Path(out) / f".done-{{k}}" for k in range(1, nproc)]
if pid > 0:
    jax.distributed.shutdown()
    done[pid - 1].touch()
else:
    deadline = time.monotonic() + 120
    while not all(d.exists() for d in done) and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: pathlib.Path) -> dict:
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        # Two devices per process, and cheap compilation (as in conftest.py).
        XLA_FLAGS="--xla_force_host_platform_device_count=2 "
        "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        PYTHONPATH=os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
    )


def _start(env, port, pid, nproc, out, result, pause=0.0, log=None):
    code = _WORKER.format(tests=str(TESTS), chunk=CHUNK)
    argv = [sys.executable, "-c", code, str(port), str(pid), str(nproc), str(out), str(result),
            str(pause)]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, log: pathlib.Path, timeout=240):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"timed out: {log.read_text()[-3000:]}")
    assert proc.returncode == 0, log.read_text()[-3000:]


def _lines(path: pathlib.Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_two_processes_one_killed_and_restarted_equal_one_process(tmp_path):
    env = _env(tmp_path / "cache")
    port = _free_port()
    shared = tmp_path / "shared"
    logs = {k: open(tmp_path / f"{k}.log", "wb") for k in ("ref", "p0", "p1", "p1b")}
    # The uninterrupted single-process run (2 local devices), alongside the others.
    ref = _start(env, 0, 0, 1, tmp_path / "ref", tmp_path / "ref.npz", log=logs["ref"])
    p0 = _start(env, port, 0, 2, shared, tmp_path / "p0.npz", log=logs["p0"])
    p1 = _start(env, port, 1, 2, shared, tmp_path / "p1.npz", pause=30.0, log=logs["p1"])

    # Kill process 1 once its first chunk is on disk (it then pauses before the next).
    sums = shared / "checksums-p1.sha256"
    deadline = time.monotonic() + 240
    while _lines(sums) < 1:
        assert p1.poll() is None, (tmp_path / "p1.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "process 1 wrote no chunk"
        time.sleep(0.1)
    p1.send_signal(signal.SIGKILL)
    p1.wait()
    assert p1.returncode == -signal.SIGKILL
    first = shared / "chunk_000001.npz"
    stat = first.stat()
    assert not (shared / "chunk_000003.npz").exists()
    assert p0.poll() is None  # process 0 survives the loss, waiting for chunks 1 and 3

    # Started again with the same command: it loads chunk 1 and solves chunk 3.
    p1b = _start(env, port, 1, 2, shared, tmp_path / "p1.npz", log=logs["p1b"])
    for proc, name in [(p1b, "p1b"), (p0, "p0"), (ref, "ref")]:
        _finish(proc, tmp_path / f"{name}.log")
    for f in logs.values():
        f.close()
    new = first.stat()
    assert (new.st_ino, new.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # not re-solved
    assert sorted(p.name for p in shared.glob("chunk_*.npz")) == [
        f"chunk_{i:06d}.npz" for i in range(5)
    ]
    assert _lines(sums) == 2 and _lines(shared / "checksums-p0.sha256") == 3

    with np.load(tmp_path / "ref.npz") as r, np.load(tmp_path / "p0.npz") as a, \
            np.load(tmp_path / "p1.npz") as b:
        assert len(r.files) == len(a.files) == len(b.files) > 5
        for key in r.files:
            assert r[key].shape[0] == 19
            np.testing.assert_array_equal(a[key], r[key])  # bit for bit (NaN == NaN)
            np.testing.assert_array_equal(b[key], r[key])
        assert r["arr_0"].dtype == np.float64
    # The chunk files themselves are identical too.
    for i in range(5):
        with np.load(shared / f"chunk_{i:06d}.npz") as a, \
                np.load(tmp_path / "ref" / f"chunk_{i:06d}.npz") as b:
            for key in b.files:
                np.testing.assert_array_equal(a[key], b[key])
