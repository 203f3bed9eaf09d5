import os

# Compile fast rather than run fast: the suite's cost is mostly XLA compilation of many small
# programs, each run a few times. Set before JAX initialises its CPU backend.
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_backend_optimization_level=0",
        "--xla_cpu_use_fusion_emitters=false",
    ]
).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import gc  # noqa: E402

import pytest  # noqa: E402

# Every compiled XLA executable holds memory mappings for its JIT-compiled code (a few per
# small program, about 2,000 for the largest of the suite). A test worker that compiles a few
# thousand programs passes the kernel's limit (`vm.max_map_count`, 65530 by default) and its
# next compilation aborts the process. Free the compiled programs between test files once a
# worker holds many: tests of one file share programs (module fixtures, the same system), so
# clearing in the middle of a file would compile them again. Within a file, clear only near
# the limit (one test adds at most ~3,000). Linux; elsewhere the check is skipped.
_MAX_MAPS_BETWEEN_FILES = 40_000
_MAX_MAPS = 58_000


def _num_maps() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _release():
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_between_files():
    yield
    if _num_maps() > _MAX_MAPS_BETWEEN_FILES:
        _release()


@pytest.fixture(autouse=True)
def _release_compiled_programs_near_the_limit():
    yield
    if _num_maps() > _MAX_MAPS:
        _release()
