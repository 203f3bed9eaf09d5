"""L-BFGS (optimistix) for paths whose state dimension makes Hessian blocks too costly."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optimistix as optx

from ._base import default_tol


def _work_dtype(dtype):
    # optimistix's L-BFGS builds part of its state in the default float dtype, so a float32
    # path with x64 enabled fails on a scan carry's dtype: iterate in the default dtype then
    # (float64, which only tightens the float32 solve) and cast back.
    default = jnp.zeros(()).dtype
    return default if jnp.finfo(dtype).bits < jnp.finfo(default).bits else dtype


class LBFGS(optx.AbstractMinimiser):
    """Limited-memory BFGS (`optimistix.LBFGS`) on the discrete action, for drifts without
    Hessian-vector products (`nj.NewtonCG` is the default for `d > 8`). Converges linearly;
    use many more `max_steps` than for `nj.BlockNewton`. It uses nothing of the path's
    structure, so it minimises any function (it is an `optx.AbstractMinimiser`). It stops at
    any stationary point; `nj.minimize_action` and `nj.minimize_geometric_action` test each
    stop for a saddle point of the action (`RESULTS.saddle_point`).

    **Arguments:**

    - `rtol`, `atol`: Cauchy termination on the path and the action (optimistix's).
      Defaults `1e-8` (float64), `1e-5` (float32).
    - `norm`: the norm of the Cauchy test.
    - `history_length`: number of stored curvature pairs.
    """

    rtol: float | None = None
    atol: float | None = None
    norm: Callable = optx.max_norm
    history_length: int = 20

    def _inner(self, dtype) -> optx.LBFGS:
        return optx.LBFGS(
            rtol=default_tol(self.rtol, dtype),
            atol=default_tol(self.atol, dtype),
            norm=self.norm,
            history_length=self.history_length,
        )

    @staticmethod
    def _fn(fn, dtype, work):
        def fn_work(y, args):
            f, aux = fn(y.astype(dtype), args)
            return f.astype(work), aux

        return fn_work

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        dt, work = y.dtype, _work_dtype(y.dtype)
        f_struct = jax.ShapeDtypeStruct(f_struct.shape, work)
        return self._inner(dt).init(
            self._fn(fn, dt, work), y.astype(work), args, options, f_struct, aux_struct, tags
        )

    def step(self, fn, y, args, options, state, tags):
        dt, work = y.dtype, _work_dtype(y.dtype)
        y_new, state, aux = self._inner(dt).step(
            self._fn(fn, dt, work), y.astype(work), args, options, state, tags
        )
        return y_new.astype(dt), state, aux

    def terminate(self, fn, y, args, options, state, tags):
        dt, work = y.dtype, _work_dtype(y.dtype)
        return self._inner(dt).terminate(
            self._fn(fn, dt, work), y.astype(work), args, options, state, tags
        )

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}
