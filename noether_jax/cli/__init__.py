"""The `noether-jax` command line and the seed paper's case studies: applications of the
library, kept out of the core (`import noether_jax` does not import this package, nor
matplotlib). Run it as `noether-jax` or `python -m noether_jax`; `main(argv)` runs it in
process and returns the exit code."""

from ._main import main as main
