import jax.numpy as jnp


def generic_vector(y):
    """A fixed, deterministic unit vector shaped like `y`, with no symmetry of the problem
    (a start for inverse iteration and Lanczos that is not orthogonal to what it seeks)."""
    k = jnp.arange(y.size, dtype=y.dtype).reshape(y.shape)
    v = jnp.sin(1.0 + 12.9898 * k) * jnp.cos(0.5 + 78.233 * k)
    return v / jnp.sqrt(jnp.sum(v * v))
