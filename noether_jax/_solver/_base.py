"""What the library's path solvers share: the optimistix contract, tolerances, the ratio test."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Bool, Float

from .._problem import AbstractPathProblem


def default_tol(tol: float | None, dtype) -> float:
    """The default `rtol`/`atol` of every solver: `1e-8` in float64, `1e-5` in float32."""
    if tol is not None:
        return tol
    return 1e-8 if jnp.finfo(dtype).bits >= 64 else 1e-5


def ratio_test(S_old, S_new, pred, ok) -> tuple[Bool[Array, ""], Float[Array, ""]]:
    """Accept a step whose actual decrease `S_old − S_new` is a fair share of the decrease
    `pred` its model predicted. Below round-off the ratio is noise: then any step that does
    not visibly increase the action is accepted. Returns `(accept, rho)`."""
    eps = jnp.finfo(S_old.dtype).eps
    actual = S_old - S_new
    roundoff = 64 * eps * jnp.maximum(jnp.abs(S_old), 1.0)
    tiny = pred <= roundoff
    rho = jnp.where(tiny, 1.0, actual / jnp.where(pred > 0, pred, 1.0))
    accept = ok & jnp.where(tiny, actual >= -roundoff, rho > 1e-4)
    return accept, rho


@custom_vmap
def any_in_batch(x: Bool[Array, "..."]) -> Bool[Array, ""]:
    """`jnp.any(x)`, and under `vmap` the same over the whole batch: the result is never
    batched. As the predicate of a `lax.cond` it keeps a real conditional under `vmap`
    (a batched predicate turns the `cond` into a select that runs both branches, loops
    included, in every step), taking the branch when any element of the batch needs it.
    The branch must then give the right result for elements that do not need it."""
    return jnp.any(x)


@any_in_batch.def_vmap
def _any_in_batch_vmap(axis_size, in_batched, x):
    return jnp.any(x), False


def as_problem(args, solver) -> AbstractPathProblem:
    if not isinstance(args, AbstractPathProblem):
        raise ValueError(
            f"`{type(solver).__name__}` minimises a path problem: call it through "
            "`nj.minimize_action` or `nj.minimize_geometric_action`, or pass an "
            f"`nj.AbstractPathProblem` as `args` to `optx.minimise` (got {type(args).__name__})."
        )
    return args


class AbstractPathSolver(optx.AbstractMinimiser):
    """A minimiser of a discrete action, in the optimistix contract
    (`init / step / terminate / postprocess`, driven by `optx.minimise`).

    It reads its problem from `args`, which must be an `nj.AbstractPathProblem`, and uses
    what the problem exposes (value, gradient, Hessian-vector products, the block-
    tridiagonal Hessian, a preconditioner, a length scale). Its state carries a detailed
    `nj.RESULTS` code in `state.result`; `terminate` reports the optimistix code.

    Any `optx.AbstractMinimiser` (e.g. `optx.BFGS`, `optx.OptaxMinimiser`) can be passed as
    `solver=` too; these solvers are the ones that use the path's structure.
    """

    rtol: eqx.AbstractVar[float | None]
    atol: eqx.AbstractVar[float | None]
    norm: eqx.AbstractVar[Callable]
