"""The seed paper's four case studies (Vastola, NeurReps 2024), converged.

Each case module has `run(out, *, quick=False, progress=None) -> CaseReport`: `out` is the
output folder for figures, `quick=True` is the reduced size used by the tests, `progress` a
`Progress` (or any callable taking a message). Callers enable float64 first.
"""

from ._common import CaseReport as CaseReport, Progress as Progress

# CLI name -> module (imported lazily by the CLI and the examples).
CASES: dict[str, str] = {
    "drift-diffusion": "noether_jax.cli._cases._drift_diffusion",
    "ou-memory": "noether_jax.cli._cases._ou_memory",
    "attractor-network": "noether_jax.cli._cases._attractor_network",
    "diffusion-ring": "noether_jax.cli._cases._diffusion_ring",
}
