"""The default path solver for a problem's block size."""

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
