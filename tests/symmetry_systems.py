"""Systems shared by the test files: the same Python callables and shapes, so that compiled
solvers are reused across `test_symmetry.py` and `test_hamilton.py`; the one-rotation drift
of `benchmarks/bench_symmetry_scale.py` for `test_symmetry_scale.py` and
`test_fixed_time_path.py`."""

import jax
import jax.numpy as jnp

import noether_jax as nj

J2 = jnp.array([[0.0, -1.0], [1.0, 0.0]])


def helix(t, x, args):
    # A rotation about the x2 axis (R01) and the translation along it (e2) are symmetries of
    # the drift; with noise isotropic in the (x0, x1) plane they are symmetries of the system.
    r2 = x[0] ** 2 + x[1] ** 2
    plane = (1.0 - r2) * x[:2] + 0.7 * (J2 @ x[:2])
    return jnp.concatenate([plane, jnp.array([0.5 - 0.3 * jnp.cos(r2)])])


D_ISO = jnp.array([0.3, 0.3, 0.2])  # isotropic in the plane: R01 and e2 are symmetries
D_ANISO = jnp.array([0.3, 0.1, 0.2])  # breaks R01, keeps e2
SDE_HELIX = nj.SDE(helix, D_ISO)
SDE_HELIX_ANISO = nj.SDE(helix, D_ANISO)
X0, X1 = jnp.array([1.0, 0.0, 0.0]), jnp.array([-0.2, 0.4, 0.6])
T1 = 2.0
N_NODES = 61


def helix_path(sde=SDE_HELIX, n_nodes=N_NODES):
    return nj.minimize_action(sde, X0, X1, 0.0, T1, n_nodes=n_nodes)


def one_rotation_sde(d, seed=0):
    """A drift with exactly one rotation symmetry, `R0,1` (see the benchmark script):
    `f_y = (1 − |y|² + s v·tanh z) y + 0.7 J y + ε (y_0, 0)`,
    `f_z = −z + s (W tanh z + u |y|²)`, `args = (ε, s)`: `ε` breaks the symmetry; `s = 0`
    leaves every rotation of `z` a symmetry too. The noise `D` is a vector (equal on the
    `(x_0, x_1)` plane), so one compiled search serves every test below."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    m = d - 2
    W = 1.5 * jax.random.normal(k1, (m, m)) / jnp.sqrt(m)
    u = jax.random.normal(k2, (m,)) / jnp.sqrt(m)
    v = jax.random.normal(k3, (m,)) / jnp.sqrt(m)

    def f(t, x, a):
        eps, s = a
        y, z = x[:2], x[2:]
        r2 = y @ y
        fy = (1.0 - r2 + s * (v @ jnp.tanh(z))) * y + 0.7 * jnp.array([-y[1], y[0]])
        fy = fy + eps * jnp.array([y[0], 0.0])
        return jnp.concatenate([fy, -z + s * (W @ jnp.tanh(z) + u * r2)])

    return nj.SDE(f, 0.5 * jnp.ones(d))
