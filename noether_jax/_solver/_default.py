"""The default path solver for a problem's block size."""

import equinox as eqx
import optimistix as optx

from ._newton import BlockNewton
from ._newton_cg import NewtonCG

# Up to this block size (the state dimension `d` of a fixed-time path; the `d − 1` normal
# displacements per node of a geometric one) assembling and factorising the exact Hessian
# blocks beats conjugate gradients on Hessian-vector products; above it, it does not
# (`benchmarks/RESULTS.md`: the RNN with d = 64, 142 ms with block Newton against 12.9 ms;
# a geometric path at d = 256, 41 nodes: 52 s against 22 s).
NEWTON_MAX_DIM = 8


def default_solver(block_size: int, rtol: float | None, atol: float | None):
    """`nj.BlockNewton` for blocks of at most `NEWTON_MAX_DIM`, `nj.NewtonCG` above."""
    cls = BlockNewton if block_size <= NEWTON_MAX_DIM else NewtonCG
    return cls(rtol=rtol, atol=atol)


def solver_for(block_size: int, solver, rtol: float | None, atol: float | None, where: str):
    """The solver of an entry point: `solver` if given (then `rtol`/`atol` must not be,
    they belong to it), else `default_solver(block_size, rtol, atol)`. Refuses anything
    but an `optx.AbstractMinimiser`, naming the entry point `where`."""
    if solver is None:
        return default_solver(block_size, rtol, atol)
    if rtol is not None or atol is not None:
        raise ValueError(f"Pass `rtol`/`atol` to the solver you give, not to `{where}`.")
    if not isinstance(solver, optx.AbstractMinimiser):
        raise ValueError(
            "`solver` must be an `optx.AbstractMinimiser`: `nj.BlockNewton()`, "
            f"`nj.NewtonCG()`, `nj.LBFGS()`, `optx.BFGS(...)`, ...; got {solver!r}."
        )
    return solver


# Initial damping of a solve warm-started from a converged coarser level: the start is
# `O(h²)` from the optimum, inside Newton's quadratic basin, so it need not start cautious
# (the ratio test still raises the damping if a step fails). 7 → 5 steps per level on
# Maier–Stein.
WARM_LAM0 = 1e-6


def provisional(solver):
    """`solver` for an answer that a later solve refines and certifies (a coarser level of
    `nj.Refine`): `nj.BlockNewton(certify=False)`; other solvers unchanged."""
    if isinstance(solver, BlockNewton) and solver.certify:
        return eqx.tree_at(lambda s: s.certify, solver, False)
    return solver


def warm_started(solver):
    """`solver` for a warm start: `nj.BlockNewton` with `lam0 = min(lam0, WARM_LAM0)`, no
    first-damping search (the Hessian near the optimum is positive definite: the search
    would cost a factorisation and find `lam0`) and no tracked direction of negative
    curvature (`track_curvature`: the start is in a minimum's basin, and the certificate
    still catches a saddle); other solvers unchanged."""
    if isinstance(solver, BlockNewton):
        return eqx.tree_at(
            lambda s: (s.lam0, s.search_damping, s.track_curvature),
            solver,
            (min(solver.lam0, WARM_LAM0), False, False),
        )
    return solver
