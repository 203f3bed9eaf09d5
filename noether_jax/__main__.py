"""`python -m noether_jax ...` runs the `noether-jax` command."""

from noether_jax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
