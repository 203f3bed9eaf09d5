"""XLA compiler options for the solvers' programs on CPU."""

import functools

import jax
import jax.numpy as jnp


# XLA's CPU "fusion emitters" (its current default code generator) compile a fusion that
# reads a block of a `lax.scan` input at the loop counter (a dynamic slice) into a scalar
# loop that reloads the counter for every element; the older emitters hoist it and
# vectorise. The block-tridiagonal scans of every Newton step are made of such fusions, so
# on CPU they run about 1.6x faster with the older emitters (benchmarks/RESULTS.md).
_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def _supported() -> bool:
    # The option is a field of XLA's debug options; a jaxlib without it refuses the name.
    try:
        fn = jax.jit(lambda x: x + 1, compiler_options=_OPTIONS)
        fn.lower(jax.ShapeDtypeStruct((), jnp.float32)).compile()
    except Exception:  # noqa: BLE001 - any refusal means: compile without the options
        return False
    return True


def cpu_compiler_options() -> dict:
    """XLA options that make the solvers' compiled programs faster on CPU.

    Pass them to the outermost `jax.jit` of a batch of solves that runs on CPU:

    ```python
    solve_all = jax.jit(jax.vmap(lambda x1: nj.minimize_action(...)),
                        compiler_options=nj.cpu_compiler_options())
    ```

    They select XLA's older CPU code generator, which vectorises the per-block arithmetic
    of the block-tridiagonal solves in every Newton step across the batch (the default one
    compiles it into scalar loops). Measured on 1024 Maier–Stein endpoints with nested grids
    (`benchmarks/bench_core.py`): 1.29× faster in `lanes=64` and 1.17× in lockstep around
    the saddle, 1.20× and 1.18× near the other attractor; the answers agree to round-off.
    `nj.solve_batch` uses them on CPU devices. JAX accepts them only on a top-level
    `jax.jit` (not on one nested in another `jit`).

    Returns an empty dict where this jaxlib does not know the option, so the call is always
    safe to pass on.
    """
    return dict(_OPTIONS) if _supported() else {}
