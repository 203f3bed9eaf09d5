"""Results of the path solvers."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._action import AbstractAction, FreidlinWentzell
from ._results import RESULTS


class PathSolution(eqx.Module):
    """A most likely path and how it was found.

    **Attributes:**

    - `ts`: `Array[n]`, the times of the nodes, from `t0` to `t1` (decreasing if `t1 < t0`).
    - `xs`: `Array[n, d]`, the path; `xs[0] == x0` and `xs[-1] == x1`.
    - `action`: the action `S` of the returned path (docs/conventions.md normalisation, path
      probability `∝ exp(−S)`).
    - `result`: a `nj.RESULTS` member saying why the solver stopped
      (`nj.RESULTS[sol.result]` is its message).
    - `converged`: `True` only if the solver met its tolerance and the action is finite.
    - `stats`: a dict with `num_steps`, `num_accepted`, `grad_norm` (max-norm of the action's
      gradient with respect to the interior nodes), and solver-specific entries.
    - `functional`: the `nj.AbstractAction` the path minimises (`action=` of
      `nj.minimize_action`; `nj.FreidlinWentzell()` by default and for geometric solutions,
      whose physical times make the Freidlin–Wentzell charges meaningful). `nj.momentum`,
      `nj.energy`, `nj.noether_charge`, `nj.angular_momentum`, `nj.action_of` and
      `nj.charge_report` use it when called without `action=`: along an
      `nj.OnsagerMachlup()` path the conserved quasi-energy is
      `H_OM = pᵀDp + fᵀp − ½∇·f`, not the Freidlin–Wentzell `pᵀDp + fᵀp`.
    """

    ts: Float[Array, " n"]
    xs: Float[Array, "n d"]
    action: Float[Array, ""]
    result: RESULTS
    converged: Bool[Array, ""]
    stats: dict[str, Any]
    functional: AbstractAction = eqx.field(default_factory=FreidlinWentzell)


def finish_solution(
    ts,
    xs,
    S,
    result: RESULTS,
    stats,
    *,
    finite_in,
    spd,
    throw: bool,
    functional: AbstractAction | None = None,
) -> PathSolution:
    """Assemble a `PathSolution`, overriding the solver's result with the more fundamental
    problems (later checks take precedence: bad input, then invalid noise, then a
    non-finite action), and raise on failure when `throw`. `functional` is the action the
    path minimises (`None`: `nj.FreidlinWentzell()`)."""
    if functional is None:
        functional = FreidlinWentzell()
    elif not isinstance(functional, AbstractAction):
        raise ValueError(
            f"`functional` must be an `nj.AbstractAction`, got {type(functional).__name__}."
        )
    result = RESULTS.where(jnp.isfinite(S), result, RESULTS.nonfinite)
    result = RESULTS.where(spd, result, RESULTS.invalid_diffusion)
    result = RESULTS.where(finite_in, result, RESULTS.invalid_input)
    converged = result == RESULTS.successful
    sol = PathSolution(
        ts=ts,
        xs=xs,
        action=S,
        result=result,
        converged=converged,
        stats=stats,
        functional=functional,
    )
    return raise_if_failed(sol) if throw else sol


def raise_if_failed(sol: PathSolution) -> PathSolution:
    """Raise the solution's result message unless it converged (an `equinox` runtime error,
    so it works the same under `jit`)."""
    # On the arrays of the answer (the functional may hold a PRNG key, which the runtime
    # check cannot carry).
    ts, xs, S = sol.result.error_if((sol.ts, sol.xs, sol.action), ~sol.converged)
    return eqx.tree_at(lambda s: (s.ts, s.xs, s.action), sol, (ts, xs, S))
