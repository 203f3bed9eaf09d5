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
