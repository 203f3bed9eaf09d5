"""On-disk results of `solve_batch`: one `.npz` file per chunk, written atomically, and a
`manifest.json` that identifies the run so that a resumed run cannot mix results."""

import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from typing import Any

import jax
import jax.numpy as jnp

MANIFEST = "manifest.json"
FORMAT = "noether_jax.solve_batch"
VERSION = 1


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


def _atomic_write(path: pathlib.Path, write) -> None:
    """Write through a temporary file in the same folder, flushed to disk, then renamed over
    `path` (`os.replace` is atomic): a reader sees the old file or the whole new one, and a
    run killed mid-write leaves at most a stray temporary file, never a truncated result."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_arrays(path: pathlib.Path, arrays: dict) -> None:
    """Host arrays to a standard `.npz` (`jnp.savez` is NumPy's), atomically."""
    _atomic_write(path, lambda f: jnp.savez(f, **arrays))


def save_chunk(root: pathlib.Path, i: int, names, host_leaves) -> None:
    save_arrays(chunk_path(root, i), dict(zip(names, host_leaves)))


def load_chunk(root: pathlib.Path, i: int, expected: list[dict[str, Any]], count: int):
    """The leaves of chunk `i` as host arrays, or `None` (with a warning) if the file does
    not hold what this run expects (then the chunk is solved again)."""
    path = chunk_path(root, i)
    try:
        with jnp.load(path, allow_pickle=False) as data:
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


def write_manifest(root: pathlib.Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(root / MANIFEST, lambda f: f.write(text.encode("utf-8")))


def check_manifest(
    root: pathlib.Path, old: dict[str, Any], new: dict[str, Any], *, ignore=()
) -> None:
    """Refuse to resume a run whose inputs or settings differ from this one."""
    keys = sorted((set(old) | set(new)) - set(ignore))
    differ = [k for k in keys if old.get(k) != new.get(k)]
    if differ:
        what = "; ".join(
            f"{k}: {_short(old.get(k))} on disk, {_short(new.get(k))} now" for k in differ
        )
        raise ValueError(
            f"`out_dir` {root} holds results of a different batch ({what}). Resuming would "
            "mix results of different problems: pass `resume=False` to overwrite them, or use "
            "another `out_dir`."
        )


def _short(value) -> str:
    text = json.dumps(value)
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
    (root / MANIFEST).unlink(missing_ok=True)
