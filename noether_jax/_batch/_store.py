"""On-disk results of `solve_batch`: one `.npz` file per chunk, written atomically; a
`manifest.json` that identifies the run (the inputs *and* the problem solved) so that a
resumed run cannot mix results; and per-process checksum files (`sha256sum` format) so
that a damaged chunk is detected and solved again."""

import errno
import hashlib
import io
import json
import os
import pathlib
import re
import tempfile
import warnings
from typing import Any

import jax
import jax.numpy as jnp

MANIFEST = "manifest.json"
FORMAT = "noether_jax.solve_batch"
VERSION = 2
_CHUNK_NAME = re.compile(r"^chunk_\d{6}\.npz$")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


def chunk_path(root: pathlib.Path, i: int) -> pathlib.Path:
    return root / f"chunk_{i:06d}.npz"


def leaf_names(tree) -> list[str]:
    """Readable, unique names of a pytree's leaves: `xs`, `stats.num_steps`, `result`.
    They are the keys of the chunk files (plain `numpy.load` reads them)."""
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    names = [jax.tree_util.keystr(p, simple=True, separator=".") or "value" for p in paths]
    # An `nj.RESULTS` code is stored as `result`, not `result._value`.
    names = [name.removesuffix("._value") for name in names]
    if len(set(names)) != len(names):  # e.g. dict keys containing "."
        names = [f"leaf_{k:03d}" for k in range(len(names))]
    return names


def describe(names, leaves, *, batched: bool) -> list[dict[str, Any]]:
    """Name, per-element shape and dtype of each leaf (JSON-serialisable)."""
    return [
        {
            "name": name,
            "shape": list(leaf.shape[1:] if batched else leaf.shape),
            "dtype": jnp.dtype(leaf.dtype).name,
        }
        for name, leaf in zip(names, leaves)
    ]


def inputs_sha256(leaves, dtypes) -> str:
    """A hash of the inputs' values, shapes and (canonical) dtypes."""
    h = hashlib.sha256()
    for leaf, dtype in zip(leaves, dtypes):
        host = jax.device_get(leaf)
        h.update(f"{tuple(host.shape)}|{jnp.dtype(dtype).name}|{host.dtype}|".encode())
        # Row-major bytes whatever the memory layout (`tobytes` copies when needed).
        h.update(host.tobytes(order="C"))
    return h.hexdigest()


def _update_with_array(h, value) -> None:
    host = jax.device_get(value)
    shape, dtype = tuple(getattr(host, "shape", ())), getattr(host, "dtype", type(host))
    h.update(f"{shape}|{dtype}|".encode())
    h.update(host.tobytes(order="C") if hasattr(host, "tobytes") else repr(host).encode())


def _closed_jaxprs(closed):
    """`closed` and every closed jaxpr nested in its equations' parameters (`jit`,
    `while_loop`, `cond`, custom derivatives), each once."""
    seen, stack, out = set(), [closed], []
    while stack:
        c = stack.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        out.append(c)
        jaxpr = getattr(c, "jaxpr", c)
        for eqn in getattr(jaxpr, "eqns", ()):
            for value in eqn.params.values():
                for v in value if isinstance(value, (tuple, list)) else (value,):
                    if hasattr(v, "consts") and hasattr(v, "jaxpr"):
                        stack.append(v)
                    elif hasattr(v, "eqns"):  # an open jaxpr (no constants of its own)
                        stack.append(v)
    return out


def problem_fingerprint(fn, element) -> dict[str, str]:
    """What `fn` computes on one element: SHA-256 hashes of the jaxpr of `fn` traced on
    `element` (a pytree of `jax.ShapeDtypeStruct`s) and of the arrays it closes over.

    The printed jaxpr holds the program (the drift, the solver, its static options such as
    `n_nodes` or `max_steps`, and Python scalars such as `t1`, which are literals); the
    constants hold closed-over arrays (a shared `x0`, `args`). Memory addresses, which
    some parameters print, are removed, so the hashes agree between processes."""
    closed = jax.make_jaxpr(fn)(element)
    text = _ADDRESS.sub("", str(closed))
    h = hashlib.sha256()
    for c in _closed_jaxprs(closed):
        for const in getattr(c, "consts", ()):
            _update_with_array(h, const)
    return {
        "jaxpr_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "constants_sha256": h.hexdigest(),
    }


def _atomic_write(path: pathlib.Path, write, *, exclusive: bool = False) -> bool:
    """Write through a temporary file in the same folder, flushed to disk, then renamed over
    `path` (`os.replace` is atomic): a reader sees the old file or the whole new one, and a
    run killed mid-write leaves at most a stray temporary file, never a truncated result.

    `exclusive=True`: only if `path` does not exist yet, by a hard link of the complete
    temporary file (atomic, and failing if the name exists; a file system without hard
    links falls back to the rename). Returns whether `path` was written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                os.replace(tmp, path)
    finally:
        try:  # (gone after `os.replace`)
            os.unlink(tmp)
        except OSError:
            pass
    try:  # make the new name itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return True
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return True


def save_arrays(path: pathlib.Path, arrays: dict) -> None:
    """Host arrays to a standard `.npz` (`jnp.savez` is NumPy's), atomically."""
    _atomic_write(path, lambda f: jnp.savez(f, **arrays))


def checksums_path(root: pathlib.Path, process: int) -> pathlib.Path:
    return root / f"checksums-p{process}.sha256"


def save_chunk(root: pathlib.Path, i: int, names, host_leaves, *, process: int = 0) -> None:
    """Chunk `i` to its file (atomically), then its SHA-256 appended to this process's
    checksum file (`sha256sum -c` reads it). Each process appends to its own file, so
    processes sharing the folder never write the same file."""
    buffer = io.BytesIO()
    jnp.savez(buffer, **dict(zip(names, host_leaves)))
    data = buffer.getvalue()
    path = chunk_path(root, i)
    _atomic_write(path, lambda f: f.write(data))
    line = f"{hashlib.sha256(data).hexdigest()}  {path.name}\n"
    with open(checksums_path(root, process), "a", encoding="ascii") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_checksums(root: pathlib.Path) -> dict[str, str]:
    """Chunk file name -> SHA-256, from every process's checksum file (the last entry of a
    name wins; a line cut short by a killed process is ignored)."""
    sums: dict[str, str] = {}
    for path in sorted(root.glob("checksums-p*.sha256")):
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and _CHUNK_NAME.match(name):
                sums[name] = digest
    return sums


def load_chunk(
    root: pathlib.Path, i: int, expected: list[dict[str, Any]], count: int,
    checksums: dict[str, str] | None = None,
):
    """The leaves of chunk `i` as host arrays, or `None` (with a warning) if the file does
    not match its recorded checksum or does not hold what this run expects (then the chunk
    is solved again). `checksums`: from `read_checksums` (read again when `None`)."""
    path = chunk_path(root, i)
    if checksums is None:
        checksums = read_checksums(root)
    try:
        raw = path.read_bytes()
        recorded = checksums.get(path.name)
        if recorded is None:
            raise ValueError("no checksum recorded for it")
        if hashlib.sha256(raw).hexdigest() != recorded:
            raise ValueError(
                f"its SHA-256 differs from the one recorded when it was written ({len(raw)} "
                "bytes: damaged or truncated)"
            )
        with jnp.load(io.BytesIO(raw), allow_pickle=False) as data:
            leaves = []
            for spec in expected:
                arr = data[spec["name"]]
                if (
                    tuple(arr.shape) != (count, *spec["shape"])
                    or jnp.dtype(arr.dtype).name != spec["dtype"]
                ):
                    raise ValueError(
                        f"{spec['name']}: shape {tuple(arr.shape)} dtype {arr.dtype}, expected "
                        f"{(count, *spec['shape'])} {spec['dtype']}"
                    )
                leaves.append(arr)
    except Exception as e:  # unreadable, truncated by something else, or foreign
        warnings.warn(f"solve_batch: {path} is unusable ({e}); solving that chunk again.")
        return None
    return leaves


def prepare_folder(out_dir) -> pathlib.Path:
    """`out_dir` as a folder that exists and can be written to, or a `ValueError` saying
    why not (checked before anything is solved)."""
    root = pathlib.Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"`out_dir` {root} is a file, not a folder: pass a folder's path.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(prefix=".probe.", dir=root):
            pass
    except OSError as e:
        raise ValueError(
            f"`out_dir` {root} cannot be created or written to ({e.strerror or e}): pass a "
            "writable folder."
        ) from None
    return root


def read_manifest(root: pathlib.Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"`out_dir`: {path} is not a readable solve_batch manifest ({e}). Pass "
            "`resume=False` to start afresh in this folder, or use another `out_dir`."
        ) from None


def write_manifest(root: pathlib.Path, manifest: dict[str, Any], *, replace: bool) -> None:
    """Record `manifest` in `root`. With `replace=False` only if none is there yet: two runs
    started into the same empty folder at once (another problem, or the same process index
    twice) would otherwise both find no manifest and write their chunks side by side. If
    one is there, it must describe this batch (`check_manifest`)."""
    text = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    if not _atomic_write(root / MANIFEST, lambda f: f.write(text), exclusive=not replace):
        other = read_manifest(root)
        if other is not None:
            check_manifest(root, other, manifest)


def check_manifest(
    root: pathlib.Path, old: dict[str, Any], new: dict[str, Any], *, ignore=()
) -> None:
    """Refuse to resume a run whose inputs, problem or settings differ from this one, with
    one line naming what differs (e.g. `problem.constants_sha256`, `identity.t1`)."""
    old = {k: v for k, v in old.items() if k not in ignore}
    new = {k: v for k, v in new.items() if k not in ignore}
    differ = _differences(old, new)
    if differ:
        what = "; ".join(
            f"{_describe_key(k)}: {_short(a)} on disk, {_short(b)} now" for k, a, b in differ
        )
        raise ValueError(
            f"`out_dir` {root} holds results of a different batch ({what}). Resuming would "
            "mix results of different problems: pass `resume=False` to overwrite them, or use "
            "another `out_dir`."
        )


_KEY_NOTES = {
    "problem.jaxpr_sha256": "the program of `solve_fn`",
    "problem.constants_sha256": "the arrays `solve_fn` closes over",
    "inputs.sha256": "the batch's values",
}


def _describe_key(key: str) -> str:
    note = _KEY_NOTES.get(key)
    return f"{key} ({note})" if note else key


def _differences(old, new, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf of two JSON trees that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        return [(prefix.removesuffix(".") or "manifest", old, new)]
    return []


def _short(value) -> str:
    text = json.dumps(value)
    if isinstance(value, str) and len(value) == 64:  # a hash: its first digits suffice
        return value[:12] + "..."
    return text if len(text) <= 80 else text[:77] + "..."


def existing_chunks(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(root.glob("chunk_[0-9][0-9][0-9][0-9][0-9][0-9].npz"))


def remove_temporaries(root: pathlib.Path) -> None:
    """Remove the temporary files of writes that a killed run left unfinished."""
    for pattern in (".chunk_*.tmp", f".{MANIFEST}.*.tmp"):
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)


def clear(root: pathlib.Path) -> None:
    """Remove a previous run's files (only those solve_batch writes)."""
    for path in existing_chunks(root):
        path.unlink()
    remove_temporaries(root)
    for path in root.glob("checksums-p*.sha256"):
        path.unlink()
    (root / MANIFEST).unlink(missing_ok=True)
