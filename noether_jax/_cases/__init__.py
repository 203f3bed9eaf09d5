"""The seed paper's four case studies (Vastola, NeurReps 2024), converged.

Each case module has `run(out, *, quick=False, progress=None) -> CaseReport`: `out` is the
output folder for figures, `quick=True` is the reduced size used by the tests, `progress` a
`Progress` (or any callable taking a message). Callers enable float64 first.
"""

from ._common import CaseReport as CaseReport, Progress as Progress
