"""Case study 3 of the seed paper: the multistable 2-unit attractor network (its Eq. 19).

    python examples/case3_attractor_network.py [--out DIR] [--quick]

Finds and classifies all fixed points (four stable states), solves the most likely paths
from (3, 0.1) to (0.1, 3) in T = 1 and T = 40 on adaptive grids of 201, 401 and 801 nodes
(action converged at second order), compares T = 40 with the infinite-time route through
the saddles, and simulates the stationary density with diffrax. Writes
`case3_attractor_network.png` to DIR (default
`noether_jax_out/examples/case3_attractor_network/`) and prints the Markdown
section and the physics checks.
"""

import jax

jax.config.update("jax_enable_x64", True)

from noether_jax.cli._cases._attractor_network import run  # noqa: E402
from noether_jax.cli._cases._common import script_main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(script_main(
        run, __doc__.split("\n")[0], default_out="noether_jax_out/examples/case3_attractor_network"
    ))
