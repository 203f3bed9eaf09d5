"""`nj.cpu_compiler_options()`: the XLA options for batches of solves on CPU. They change
how XLA generates code, not what is computed: the answers agree with XLA's defaults to
round-off, and `nj.solve_batch` compiles with them on CPU devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax as nj
from helpers import maier_stein
import noether_jax._batch._runner as batch_runner
import noether_jax._xla as xla


SDE = nj.SDE(maier_stein, 0.1)
X0 = jnp.array([-1.0, 0.0])
# Around the saddle, where the step counts spread (and lanes refill).
X1S = 0.3 * jax.random.uniform(jax.random.key(3), (12, 2), minval=-1.0, maxval=1.0)


def solve(x1, **kw):
    return nj.minimize_action(SDE, X0, x1, 0.0, 10.0, n_nodes=26, args=10.0, throw=False, **kw)


def test_options_are_known_to_this_jaxlib():
    if not xla._supported():  # a later jaxlib may drop the older generator
        pytest.skip("this jaxlib does not know xla_cpu_use_fusion_emitters")
    opts = nj.cpu_compiler_options()
    assert opts == {"xla_cpu_use_fusion_emitters": False}
    opts["xla_cpu_use_fusion_emitters"] = True  # a copy: the library's stays as it was
    assert nj.cpu_compiler_options() == {"xla_cpu_use_fusion_emitters": False}


def test_unknown_option_gives_empty_options(monkeypatch):
    monkeypatch.setattr(xla, "_OPTIONS", {"xla_cpu_no_such_option_anywhere": True})
    xla._supported.cache_clear()
    try:
        assert nj.cpu_compiler_options() == {}
    finally:
        monkeypatch.undo()
        xla._supported.cache_clear()
    assert nj.cpu_compiler_options() == (dict(xla._OPTIONS) if xla._supported() else {})


def test_same_answers_as_xla_defaults():
    batched = jax.vmap(lambda b: solve(b, lanes=4))
    # XLA's default generator, named: conftest.py selects the older one for the whole suite
    # (it compiles faster).
    current = {"xla_cpu_use_fusion_emitters": True} if xla._supported() else None
    ref = jax.jit(batched, compiler_options=current)(X1S)
    sol = jax.jit(batched, compiler_options=nj.cpu_compiler_options())(X1S)
    assert bool(jnp.all(ref.converged)) and bool(jnp.all(sol.converged))
    np.testing.assert_array_equal(sol.stats["num_steps"], ref.stats["num_steps"])
    np.testing.assert_allclose(sol.action, ref.action, rtol=1e-13, atol=0)
    np.testing.assert_allclose(sol.xs, ref.xs, rtol=0, atol=1e-11)


def test_solve_batch_compiles_with_the_options_on_cpu():
    runner = batch_runner._Solver(solve, jax.devices("cpu")[:1])
    assert runner.solve is batch_runner._solve_chunk(True)
    assert runner.solve is not batch_runner._solve_chunk(False)
    sols = nj.solve_batch(solve, X1S, chunk_size=6, progress=False)
    own = jax.jit(jax.vmap(solve), compiler_options=nj.cpu_compiler_options())
    ref = jnp.concatenate([own(X1S[:6]).action, own(X1S[6:]).action])
    np.testing.assert_array_equal(sols.action, ref)
