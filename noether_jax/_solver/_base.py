"""Interface of the path solvers."""

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._solution import RESULTS
from ._objective import PathObjective


def default_tol(tol: float | None, dtype) -> float:
    if tol is not None:
        return tol
    return 1e-8 if jnp.finfo(dtype).bits >= 64 else 1e-5


class AbstractPathSolver(eqx.Module):
    """A minimiser of the discrete action over the interior nodes of a path.

    Iterative solvers implement `init`, `step`, `terminate` and `postprocess` (the
    optimistix pattern) and are driven by `iterate`; wrappers of optimistix solvers override
    `solve`. `linear_solve` solves with the Hessian at the optimum, for implicit
    differentiation of the path.
    """

    rtol: eqx.AbstractVar[float | None]
    atol: eqx.AbstractVar[float | None]

    @abc.abstractmethod
    def solve(
        self, objective: PathObjective, y0: Float[Array, "m d"], max_steps: int
    ) -> tuple[Float[Array, "m d"], RESULTS, dict[str, Any]]:
        """Minimise `objective` from `y0`. Returns the interior nodes, a result code, stats."""

    @abc.abstractmethod
    def linear_solve(
        self, objective: PathObjective, y: Float[Array, "m d"], rhs: Float[Array, "m d"]
    ) -> Float[Array, "m d"]:
        """Solve `(∂²S_h/∂y²) w = rhs` at `y`."""
