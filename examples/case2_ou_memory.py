"""Case study 2 of the seed paper: a single-attractor memory (2-D Ornstein-Uhlenbeck).

    python examples/case2_ou_memory.py [--out DIR] [--quick]

Solves the most likely paths of dx = −x dt + √2 dW from (−2, 2) to (2, 2) in T = 1 (direct)
and T = 10 (through the attractor), compares them, their action, quasi-energy and
quasi-angular momentum with the closed forms, and refines the grid to show second-order
convergence. Writes `case2_ou_memory.png` to DIR (default
`noether_jax_out/examples/case2_ou_memory/`) and prints the
Markdown section and the physics checks.
"""

import jax

jax.config.update("jax_enable_x64", True)

from noether_jax.cli._cases._common import script_main  # noqa: E402
from noether_jax.cli._cases._ou_memory import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(script_main(
        run, __doc__.split("\n")[0], default_out="noether_jax_out/examples/case2_ou_memory"
    ))
