"""Systems shared by `test_symmetry.py` and `test_hamilton.py`: the same Python callables
and shapes, so that compiled solvers are reused across the two files."""

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
