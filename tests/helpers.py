"""Reference solutions (NumPy/SciPy) for the tests."""

import jax.numpy as jnp
import numpy as np
from scipy.integrate import quad_vec
from scipy.linalg import expm


def linear_gramian(A, D, T):
    """`G = ∫₀ᵀ e^{As} (2D) e^{Aᵀs} ds` (docs/conventions.md closed form)."""
    A, D = np.asarray(A, float), np.asarray(D, float)
    fn = lambda s: expm(A * s) @ (2 * D) @ expm(A.T * s)
    return quad_vec(fn, 0.0, T, epsabs=1e-14, epsrel=1e-14)[0]


def linear_action(A, D, x0, x1, T):
    """Minimal action and final momentum for `f = A x`, constant `D`, duration `T`."""
    A, D = np.asarray(A, float), np.asarray(D, float)
    G = linear_gramian(A, D, T)
    r = np.asarray(x1, float) - expm(A * T) @ np.asarray(x0, float)
    pT = np.linalg.solve(G, r)
    return 0.5 * r @ pT, pT


def linear_momentum(A, pT, T, ts):
    """`p(t) = e^{Aᵀ(T − t)} p(T)`."""
    A = np.asarray(A, float)
    return np.stack([expm(A.T * (T - t)) @ pT for t in np.asarray(ts)])


def fit_order(hs, errors):
    """Slope of log(error) against log(h)."""
    return np.polyfit(np.log(np.asarray(hs)), np.log(np.abs(np.asarray(errors))), 1)[0]


# Müller–Brown: `V = Σ_i A_i exp(a_i dx² + b_i dx dy + c_i dy²)`, `dx = x − X0_i`,
# `dy = y − Y0_i`, standard parameters.
MB_A = np.array([-200.0, -100.0, -170.0, 15.0])
MB_a = np.array([-1.0, -1.0, -6.5, 0.7])
MB_b = np.array([0.0, 0.0, 11.0, 0.6])
MB_c = np.array([-10.0, -10.0, -6.5, 0.7])
MB_X0 = np.array([1.0, 0.0, -0.5, -1.0])
MB_Y0 = np.array([0.0, 0.5, 1.5, 1.0])


def muller_brown_terms(z):
    """The four terms `A_i exp(...)` of the Müller–Brown potential at `z = (x, y)`, and the
    offsets `(dx, dy)` (for a gradient written out by hand)."""
    dx, dy = z[0] - MB_X0, z[1] - MB_Y0
    return MB_A * jnp.exp(MB_a * dx**2 + MB_b * dx * dy + MB_c * dy**2), dx, dy


def muller_brown(z):
    """The Müller–Brown potential at `z = (x, y)` (JAX-traceable)."""
    return jnp.sum(muller_brown_terms(z)[0])


def maier_stein(t, z, beta):
    """The Maier–Stein drift `(x − x³ − β x y², −(1 + x²) y)`: attractors `(±1, 0)`, a saddle
    at the origin; not a gradient unless `β = 1`."""
    x, y = z[0], z[1]
    return jnp.stack([x - x**3 - beta * x * y**2, -(1 + x**2) * y])
