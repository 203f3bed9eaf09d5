"""Batches of boundary conditions or parameters: chunked, sharded, resumable (`solve_batch`)."""

from ._runner import solve_batch as solve_batch
