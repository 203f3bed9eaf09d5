"""Results of the path solvers."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class RESULTS(eqx.Enumeration):
    """Why a path solver stopped. The value of each member is its help message."""

    successful = ""
    max_steps_reached = (
        "The solver ran out of steps (`max_steps`) before meeting its tolerance. Increase "
        "`max_steps`, start from a better path (`init=`, e.g. a coarser grid's solution "
        "interpolated), or check that the problem has a minimum (is `n_nodes` large enough "
        "to resolve the drift's steepest features?)."
    )
    nonfinite = (
        "The action or its derivatives became NaN or infinite. Check that the drift and the "
        "diffusion are finite along the path (a drift that overflows far from the "
        "attractors can be tamed with a better initial path) and that `D` is symmetric "
        "positive definite."
    )
    nonfinite_input = (
        "The endpoints, times or initial path contain NaN or infinity, or `t0 == t1`."
    )
    invalid_diffusion = (
        "The diffusion `D` is not symmetric positive definite (or not finite) somewhere "
        "along the path."
    )
    stagnated = (
        "The solver could not decrease the action any further before meeting its tolerance "
        "(its damping grew without bound). The problem may be too stiff for this grid: "
        "increase `n_nodes`, or start from a better path."
    )
    grid_too_coarse = (
        "The path converged on every grid of `nj.Refine`, but the estimated discretisation "
        "error of the action (`|S_h − S_2h|/3`, in `sol.stats['error_estimate']`) exceeds "
        "its tolerance: increase `n_nodes` (the finest grid) or `levels`, or loosen `rtol`."
    )


class PathSolution(eqx.Module):
    """A most likely path and how it was found.

    **Attributes:**

    - `ts`: `Array[n]`, the times of the nodes, from `t0` to `t1` (decreasing if `t1 < t0`).
    - `xs`: `Array[n, d]`, the path; `xs[0] == x0` and `xs[-1] == x1`.
    - `action`: the action `S` of the returned path (CONVENTIONS.md normalisation, path
      probability `∝ exp(−S)`).
    - `result`: a `nj.RESULTS` member saying why the solver stopped
      (`nj.RESULTS[sol.result]` is its message).
    - `converged`: `True` only if the solver met its tolerance and the action is finite.
    - `stats`: a dict with `num_steps`, `num_accepted`, `grad_norm` (max-norm of the action's
      gradient with respect to the interior nodes), and solver-specific entries.
    """

    ts: Float[Array, " n"]
    xs: Float[Array, "n d"]
    action: Float[Array, ""]
    result: RESULTS
    converged: Bool[Array, ""]
    stats: dict[str, Any]


def finish_solution(
    ts, xs, S, result: RESULTS, stats, *, finite_in, spd, throw: bool
) -> PathSolution:
    """Assemble a `PathSolution`, overriding the solver's result with the more fundamental
    problems (later checks take precedence: bad input, then invalid noise, then a
    non-finite action), and raise on failure when `throw`."""
    result = RESULTS.where(jnp.isfinite(S), result, RESULTS.nonfinite)
    result = RESULTS.where(spd, result, RESULTS.invalid_diffusion)
    result = RESULTS.where(finite_in, result, RESULTS.nonfinite_input)
    converged = result == RESULTS.successful
    sol = PathSolution(ts=ts, xs=xs, action=S, result=result, converged=converged, stats=stats)
    if throw:
        sol = result.error_if(sol, ~converged)
    return sol
