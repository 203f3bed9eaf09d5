"""Case study 1 of the seed paper: a drift-diffusion decision model reaching the wrong bound.

    python examples/case1_drift_diffusion.py [--out DIR] [--quick]

Solves the most likely path from x0 = 0.5 to the wrong bound −1 (dx = 0.1 dt + dW, T = 1),
compares it with its closed forms (straight line, constant quasi-momentum and quasi-energy),
and with 100 000 Euler–Maruyama paths (diffrax) stopped at the bound near T. Writes
`case1_drift_diffusion.png` to DIR (default `noether_jax_out/`) and prints the Markdown
section and the physics checks.
"""

import argparse

import jax

jax.config.update("jax_enable_x64", True)

from noether_jax._cases._drift_diffusion import run  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="noether_jax_out", help="output folder")
    parser.add_argument("--quick", action="store_true", help="the reduced size of the tests")
    opts = parser.parse_args(argv)
    report = run(opts.out, quick=opts.quick)
    print(f"## {report.title}\n")
    print(report.markdown)
    for name, ok in report.checks.items():
        print(f"[{'ok' if ok else 'FAILED'}] {name}")
    print(f"figures: {', '.join(report.figures)} in {opts.out}; {report.seconds:.1f} s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
