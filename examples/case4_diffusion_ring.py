"""Case study 4 of the seed paper: reverse diffusion onto a ring, and its angular momentum.

    python examples/case4_diffusion_ring.py [--out DIR] [--quick]

A variance-exploding diffusion (σ(t) = t, so D = t) noises data on a ring of radius 5; the
most likely sampling paths of the reverse-time SDE dx = −2t ∇log p dt + sqrt(2t) dW run from
(0, 10) at t = 10^1.5 to the ring at t = 10^-0.4 (angles π/4, 0, −π/4, −π/2). Solves them
with the full Freidlin–Wentzell Lagrangian and with the paper's (cross term ẋ·∇log p
dropped), shows the quasi-angular momentum constant and the quasi-energy not, detects the
rotation symmetry, and integrates the probability-flow ODE (diffrax). Writes
`case4_diffusion_ring.png` to DIR (default
`noether_jax_out/examples/case4_diffusion_ring/`) and prints the Markdown section and
the physics checks.
"""

import jax

jax.config.update("jax_enable_x64", True)

from noether_jax.cli._cases._common import script_main  # noqa: E402
from noether_jax.cli._cases._diffusion_ring import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(script_main(
        run, __doc__.split("\n")[0], default_out="noether_jax_out/examples/case4_diffusion_ring"
    ))
