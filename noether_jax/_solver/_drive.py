"""One driver for every path solve: `optimistix.minimise` on a path problem."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx

from .._linalg import BlockCholesky, _blocktri
from .._problem import AbstractPathProblem, FixedTimeProblem, problem_value
from .._results import RESULTS
from .._sde import args_are_finite, diffusion_is_spd
from ._base import AbstractPathSolver
from ._lanes import (
    hoist_closures,
    solve_in_lanes,
    solve_stats,
    with_code,
    with_implicit_derivatives,
)
from ._newton import BlockNewton
from ._newton_cg import NewtonCG, finds_negative_curvature

# Solvers that look for negative curvature themselves and escape saddle points.
ESCAPES_SADDLES = (BlockNewton, NewtonCG)

# Above this block size the structured solve (3d Hessian-vector products to read off the
# blocks, O(N d³) to factor them) costs more than conjugate gradients.
_BLOCK_SOLVE_MAX_DIM = 64

# The Hessian of the action at a minimum is symmetric positive (semi)definite.
_TAGS = frozenset({lx.symmetric_tag, lx.positive_semidefinite_tag})


HESSIAN_TAGS = _TAGS


def hessian_solver(block_size: int, dtype) -> lx.AbstractLinearSolver:
    """The linear solver for the Hessian of a path problem with blocks of this size."""
    if block_size <= _BLOCK_SOLVE_MAX_DIM:
        return BlockCholesky()
    tol = 1e-10 if jnp.finfo(dtype).bits >= 64 else 1e-5
    return lx.CG(rtol=tol, atol=tol, max_steps=100_000)


def implicit_adjoint(block_size: int, dtype) -> optx.ImplicitAdjoint:
    """Implicit differentiation through the optimum (custom JVP, transposed for reverse
    mode) with the structured linear solve of the Hessian."""
    return optx.ImplicitAdjoint(linear_solver=hessian_solver(block_size, dtype))


def stop_gradient_arrays(tree):
    """`stop_gradient` on every array of a pytree (functions and other leaves pass)."""
    dynamic, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.lax.stop_gradient(dynamic), static)


def to_results(solver, sol: optx.Solution) -> RESULTS:
    """The `nj.RESULTS` code of an optimistix solve: the path solvers' own detailed code
    where they have one, optimistix's otherwise."""
    own = sol.state.result if isinstance(solver, AbstractPathSolver) else None
    return _combine_results(solver, sol.result, own)


def _combine_results(solver, result: optx.RESULTS, own: RESULTS | None) -> RESULTS:
    out_of_steps = result == optx.RESULTS.nonlinear_max_steps_reached
    if isinstance(solver, AbstractPathSolver):
        ok = result == optx.RESULTS.successful
        # A solver that is still running carries `max_steps_reached` in its state.
        combined = RESULTS.where(ok, RESULTS.successful, own)
        combined = RESULTS.where(result == optx.RESULTS.nonfinite, RESULTS.nonfinite, combined)
    else:
        combined = RESULTS.promote(result)
        combined = RESULTS.where(
            result == optx.RESULTS.nonlinear_divergence, RESULTS.stagnated, combined
        )
    return RESULTS.where(out_of_steps, RESULTS.max_steps_reached, combined)


def is_minimum(problem: AbstractPathProblem, y) -> jax.Array:
    r"""The second-order test of a stationary point: whether the exact block-tridiagonal
    Hessian plus `√ε·diag|H|` is positive definite (one block Cholesky factorisation).

    A gradient-based minimiser stops at any point where the gradient vanishes, minima and
    saddle points alike; the shift lets through flat directions (the timing of a long wait
    at a fixed point, curvature below `√ε` of the diagonal) and nothing else. Paths whose
    blocks are larger than 64 (their Hessian blocks cost more than the solve) get
    `nj.NewtonCG`'s cheaper check instead: 32 preconditioned CG iterations on
    Hessian-vector products looking for negative curvature (which can miss it)."""
    if y.shape[-1] > _BLOCK_SOLVE_MAX_DIM:
        return ~finds_negative_curvature(problem, y)
    H = problem.hessian(y)
    shift = jnp.sqrt(jnp.finfo(H.diag.dtype).eps) * _blocktri.scaled_identity(H.diag)
    _, pd = _blocktri.cholesky(H.diag + shift, H.off)
    return pd


def solve_problem(
    problem: AbstractPathProblem,
    solver: optx.AbstractMinimiser,
    y0,
    *,
    max_steps: int,
    adjoint: optx.AbstractAdjoint | None = None,
    certify: bool = True,
    lanes: int | None = None,
) -> tuple[Any, RESULTS, dict[str, Any]]:
    """Minimise `problem` from `y0` with any optimistix minimiser. Returns the free nodes, an
    `nj.RESULTS` code and stats (`num_steps`, `grad_norm`, the solver's own).

    With `certify` a successful stop of a solver other than `nj.BlockNewton` and
    `nj.NewtonCG` (which look for negative curvature themselves and escape saddle points)
    is tested by `is_minimum` (a certificate for `d ≤ 64`, a Krylov check above); a saddle
    point of the action becomes `RESULTS.saddle_point`, never `successful`.

    With `lanes`, a `vmap` of this solve runs in that many refilled lanes (a batch pays
    about its mean step count, not its maximum; see `_lanes`); each element's answer, result
    and stats are those of its own solve."""
    if adjoint is None:
        adjoint = implicit_adjoint(y0.shape[-1], y0.dtype)
    hoisted = None if lanes is None else hoist_closures(problem)
    if hoisted is None:
        sol = optx.minimise(
            problem_value,
            solver,
            y0,
            problem,
            max_steps=max_steps,
            adjoint=adjoint,
            throw=False,
            tags=_TAGS,
        )
        y = sol.value
        result = to_results(solver, sol)
        stats = solve_stats(sol.stats)
    else:
        out = solve_in_lanes(solver, hoisted, y0, max_steps=max_steps, lanes=lanes, tags=_TAGS)
        y = with_implicit_derivatives(problem, out.y, adjoint=adjoint, tags=_TAGS)
        own = (
            with_code(RESULTS.successful, out.own)
            if isinstance(solver, AbstractPathSolver) else None
        )
        result = _combine_results(solver, with_code(optx.RESULTS.successful, out.result), own)
        stats = dict(out.stats)
    g = problem.grad(jax.lax.stop_gradient(y))
    stats["grad_norm"] = jnp.max(jnp.abs(g))
    result = RESULTS.where(jnp.all(jnp.isfinite(g)), result, RESULTS.nonfinite)
    if certify and not isinstance(solver, ESCAPES_SADDLES):
        y_fix = jax.lax.stop_gradient(y)
        saddle = (result == RESULTS.successful) & ~is_minimum(problem, y_fix)
        result = RESULTS.where(saddle, RESULTS.saddle_point, result)
    return y, result, stats


@eqx.filter_custom_jvp
def minimal_value(problem: AbstractPathProblem, y):
    """`S_h(y)` at an optimum `y(θ)`, differentiated by the envelope theorem: the first
    derivative is `∂S_h/∂θ` at fixed `y` (no linear solve), while higher derivatives follow
    `y(θ)` (so `jax.hessian` is exact)."""
    return problem.value(y)


@minimal_value.def_jvp
def _minimal_value_jvp(primals, tangents):
    problem, y = primals
    t_problem, _ = tangents
    return eqx.filter_jvp(lambda p: p.value(y), (problem,), (t_problem,))


def solve_on_times(action, sde, ts, ts_safe, x0, x1, x0_safe, x1_safe, y0_safe, args,
                   solver, max_steps, lanes=None):
    """The fixed-time solve on the times `ts` from `y0_safe`, run on the safe stand-ins
    (`*_safe`: harmless values where the inputs are bad), evaluated on the real inputs.
    Returns `(xs, S, result, stats, spd)` for `finish_solution`."""
    # Implicit differentiation of the optimum (both modes) with respect to everything the
    # problem holds: endpoints, times, parameters in `args` and in `sde`.
    problem_safe = FixedTimeProblem(action, sde, ts_safe, x0_safe, x1_safe, args)
    y, result, stats = solve_problem(
        problem_safe, solver, y0_safe, max_steps=max_steps, lanes=lanes
    )
    result = RESULTS.where(args_are_finite(args), result, RESULTS.invalid_input)
    xs = jnp.concatenate([x0[None], y, x1[None]], axis=0)
    # Envelope theorem: at the optimum dS*/dθ = ∂S/∂θ at fixed path (no linear solve);
    # second derivatives follow the path.
    S = minimal_value(FixedTimeProblem(action, sde, ts, x0, x1, args), y)
    # The noise must be SPD along the whole path (matters for callable D).
    spd = diffusion_is_spd(sde, ts, xs, args)
    return xs, S, result, stats, spd
