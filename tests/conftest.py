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

# Every compiled XLA executable holds a few hundred memory mappings (its JIT-compiled code).
# A test worker that compiles a few thousand programs passes the kernel's limit
# (`vm.max_map_count`, 65530 by default) and its next compilation aborts the process. Free
# the compiled programs once a worker holds many (Linux; elsewhere the check is skipped).
_MAX_MAPS = 40_000


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    yield
    try:
        with open("/proc/self/maps", "rb") as f:
            n = f.read().count(b"\n")
    except OSError:
        return
    if n > _MAX_MAPS:
        jax.clear_caches()
        gc.collect()
