"""Reference solutions (NumPy/SciPy) for the tests."""

import numpy as np
from scipy.integrate import quad_vec
from scipy.linalg import expm


def linear_gramian(A, D, T):
    """`G = ∫₀ᵀ e^{As} (2D) e^{Aᵀs} ds` (CONVENTIONS.md closed form)."""
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
