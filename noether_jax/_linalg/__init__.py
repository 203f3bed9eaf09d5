from ._operator import (
    BlockCholesky as BlockCholesky,
    BlockTridiagonalOperator as BlockTridiagonalOperator,
    blocks_by_colouring as blocks_by_colouring,
)
from ._precond import TridiagonalKronecker as TridiagonalKronecker
from ._vectors import generic_vector as generic_vector
