"""Case study 1 of the seed paper: a drift-diffusion decision model reaching the wrong bound.

    python examples/case1_drift_diffusion.py [--out DIR] [--quick]

Solves the most likely path from x0 = 0.5 to the wrong bound −1 (dx = 0.1 dt + dW, T = 1),
compares it with its closed forms (straight line, constant quasi-momentum and quasi-energy),
and with 100 000 Euler–Maruyama paths (diffrax) stopped at the bound near T. Writes
`case1_drift_diffusion.png` to DIR (default
`noether_jax_out/examples/case1_drift_diffusion/`) and prints the Markdown
section and the physics checks.
"""

import jax

jax.config.update("jax_enable_x64", True)

from noether_jax.cli._cases._common import script_main  # noqa: E402
from noether_jax.cli._cases._drift_diffusion import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(script_main(
        run, __doc__.split("\n")[0], default_out="noether_jax_out/examples/case1_drift_diffusion"
    ))
