"""Benchmark problems, each written three ways: for the library (an `nj.SDE`), for NumPy
(drift and vector–Jacobian product on arrays of states, for the SciPy baseline) and as a
vectorised `jax.numpy` drift on all nodes at once (what the paper's scripts did, for the
gradient-descent baseline).

All problems have a constant scalar noise `D` and an autonomous drift, so the midpoint
discrete action of docs/conventions.md on a uniform grid of step `h` is

    S_h = Σ_i |h| / (4D) · |(x_{i+1} − x_i)/h − f((x_i + x_{i+1})/2)|²,

which `action_and_grad_np` evaluates (with its exact gradient) and `action_jnp` writes in
`jax.numpy`. Both equal `nj.action_of` of the same path (checked by `check_problem`).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import noether_jax as nj


@dataclasses.dataclass(frozen=True)
class Problem:
    """One benchmark problem: `dx = f(x) dt + sqrt(2D) dW` from `x0` to endpoints `x1`.

    - `drift_np(x)`, `vjp_np(x, w)`: `f` and `(∂f/∂x)ᵀ w` on arrays of states `(..., d)`.
    - `drift_nodes(xs, args)`: `f` on all nodes `(n, d)` at once, in `jax.numpy`.
    - `endpoints(B)`: `(B, d)` NumPy array, a prefix of one fixed stream (so a smaller batch
      is the first rows of a larger one).
    """

    name: str
    title: str
    d: int
    D: float
    t0: float
    t1: float
    n_nodes: int
    n_fine: int
    x0: np.ndarray
    endpoints: Callable[[int], np.ndarray]
    sde: nj.SDE
    args: Any
    drift_np: Callable[[np.ndarray], np.ndarray]
    vjp_np: Callable[[np.ndarray, np.ndarray], np.ndarray]
    drift_nodes: Callable[[Any, Any], Any]
    notes: str = ""

    @property
    def h(self) -> float:
        return (self.t1 - self.t0) / (self.n_nodes - 1)

    def with_nodes(self, n_nodes: int) -> "Problem":
        return dataclasses.replace(self, n_nodes=n_nodes)


# --------------------------------------------------------------------------- Maier–Stein


def maier_stein(beta: float = 10.0, D: float = 1.0, T: float = 10.0, n_nodes: int = 101):
    """Maier–Stein, `f = (x − x³ − β x y², −(1 + x²) y)`, from the attractor `(−1, 0)`
    to endpoints `(1 + 0.3u, 0.5v)`, `u, v ~ U[−1, 1]` (fixed seed), near the other
    attractor `(1, 0)`. D = 1 as the benchmark issue asks (for scalar `D` the path does
    not depend on `D`; the action scales as `1/D`)."""

    def drift(t, z, args):
        x, y = z[0], z[1]
        return jnp.stack([x - x**3 - beta * x * y**2, -(1 + x**2) * y])

    def drift_np(z):
        x, y = z[..., 0], z[..., 1]
        return np.stack([x - x**3 - beta * x * y**2, -(1 + x**2) * y], axis=-1)

    def vjp_np(z, w):
        x, y = z[..., 0], z[..., 1]
        w0, w1 = w[..., 0], w[..., 1]
        # J = [[1 − 3x² − βy², −2βxy], [−2xy, −(1 + x²)]];  returns Jᵀw.
        return np.stack(
            [
                (1 - 3 * x**2 - beta * y**2) * w0 - 2 * x * y * w1,
                -2 * beta * x * y * w0 - (1 + x**2) * w1,
            ],
            axis=-1,
        )

    def drift_nodes(xs, args):
        x, y = xs[:, 0], xs[:, 1]
        return jnp.stack([x - x**3 - beta * x * y**2, -(1 + x**2) * y], axis=1)

    def endpoints(n):
        uv = np.random.default_rng(0).uniform(-1.0, 1.0, size=(max(n, 1024), 2))[:n]
        return np.stack([1.0 + 0.3 * uv[:, 0], 0.5 * uv[:, 1]], axis=1)

    return Problem(
        name="maier-stein",
        title=f"Maier–Stein β={beta:g}, D={D:g}, T={T:g}",
        d=2,
        D=D,
        t0=0.0,
        t1=T,
        n_nodes=n_nodes,
        n_fine=16 * (n_nodes - 1) + 1,
        x0=np.array([-1.0, 0.0]),
        endpoints=endpoints,
        sde=nj.SDE(drift, D),
        args=None,
        drift_np=drift_np,
        vjp_np=vjp_np,
        drift_nodes=drift_nodes,
    )


# --------------------------------------------------------------------------- rate network


def rate_network(n_nodes: int = 401, width: float = 0.01):
    """The seed paper's multistable 2-unit rate network,

        τẋ = μ0 + A s((x − c)/n) − I s((y − c)/n) − x   (and symmetrically for y),

    `s` logistic, τ = 1, μ0 = 1.25, c = 1.5, A = 2, I = 0.9, n = `width` = 0.01. The noise is
    `D = σ²/τ = 0.16` with σ = 0.4, as the benchmark issue specifies (with τ = 1 the drift in
    the `dx = f dt + sqrt(2D) dW` form of docs/conventions.md is the right-hand side above). The
    path goes from (3, 0.1) to (0.1, 3) in T = 1. The sigmoids switch over a width 0.01,
    which the path crosses in about 0.003 time units: hundreds of nodes are needed.
    """
    mu0, A, I, c = 1.25, 2.0, 0.9, 1.5

    def drift(t, z, args):
        s = jax.nn.sigmoid((z - c) / width)
        return mu0 + A * s - I * s[::-1] - z

    def sig_np(u):
        return 0.5 * (1.0 + np.tanh(0.5 * u))  # logistic, overflow-free

    def drift_np(z):
        s = sig_np((z - c) / width)
        return mu0 + A * s - I * s[..., ::-1] - z

    def vjp_np(z, w):
        s = sig_np((z - c) / width)
        ds = s * (1 - s) / width
        # ∂f_x/∂x = A s'(x) − 1, ∂f_x/∂y = −I s'(y) (and symmetrically): Jᵀw.
        return (A * ds - 1.0) * w - I * ds * w[..., ::-1]

    def drift_nodes(xs, args):
        s = jax.nn.sigmoid((xs - c) / width)
        return mu0 + A * s - I * s[:, ::-1] - xs

    def endpoints(n):
        return np.tile(np.array([[0.1, 3.0]]), (n, 1))

    return Problem(
        name="rate-network",
        title=f"2-unit rate network, n={width:g}, D=0.16, T=1",
        d=2,
        D=0.4**2,
        t0=0.0,
        t1=1.0,
        n_nodes=n_nodes,
        n_fine=8 * (n_nodes - 1) + 1,
        x0=np.array([3.0, 0.1]),
        endpoints=endpoints,
        sde=nj.SDE(drift, 0.4**2),
        args=None,
        drift_np=drift_np,
        vjp_np=vjp_np,
        drift_nodes=drift_nodes,
    )


# --------------------------------------------------------------------------- RNN


def rnn(d: int, rho: float = 0.9, T: float = 5.0, n_nodes: int = 51, D: float = 1.0):
    """A random recurrent network `f = −x + W tanh(x)` in dimension `d`, `W = ρ G / r(G)`
    with `G` i.i.d. Gaussian (seed `d`) and `r(G)` its spectral radius, so `W` has spectral
    radius ρ = 0.9 < 1: the origin is the stable fixed point (Jacobian `−I + W`). The path
    goes from the origin to a displaced point with i.i.d. `N(0, 0.5²)` coordinates (seed
    `d + 1`) in `T = 5` (relaxation time ~1/(1 − ρ) = 10 along the slowest mode).
    """
    rng = np.random.default_rng(d)
    G = rng.standard_normal((d, d)) / np.sqrt(d)
    W_np = rho * G / np.max(np.abs(np.linalg.eigvals(G)))
    W = jnp.asarray(W_np)

    def drift(t, x, W):
        return -x + W @ jnp.tanh(x)

    def drift_np(x):
        return -x + np.tanh(x) @ W_np.T

    def vjp_np(x, w):
        # J = −I + W diag(1 − tanh²x):  Jᵀw = −w + (1 − tanh²x) ⊙ (Wᵀw).
        return -w + (1.0 - np.tanh(x) ** 2) * (w @ W_np)

    def drift_nodes(xs, W):
        return -xs + jnp.tanh(xs) @ W.T

    def endpoints(n):
        return 0.5 * np.random.default_rng(d + 1).standard_normal((max(n, 1), d))[:n]

    return Problem(
        name=f"rnn-{d}",
        title=f"RNN d={d}, ρ(W)={rho:g}, D={D:g}, T={T:g}",
        d=d,
        D=D,
        t0=0.0,
        t1=T,
        n_nodes=n_nodes,
        n_fine=4 * (n_nodes - 1) + 1,
        x0=np.zeros(d),
        endpoints=endpoints,
        sde=nj.SDE(drift, D),
        args=W,
        drift_np=drift_np,
        vjp_np=vjp_np,
        drift_nodes=drift_nodes,
    )


# --------------------------------------------------------------------------- discrete action


def straight_line(p: Problem, x1: np.ndarray, n_nodes: int | None = None) -> np.ndarray:
    """The straight initial path `(n, d)`, the library's default `init`."""
    n = p.n_nodes if n_nodes is None else n_nodes
    s = np.linspace(0.0, 1.0, n)[:, None]
    return p.x0[None] + s * (x1 - p.x0)[None]


def interpolate(xs: np.ndarray, n: int) -> np.ndarray:
    """Paths `(B, m, d)` on uniform nodes, linearly interpolated onto `n` uniform nodes (a
    coarse solution as the initial path of a finer grid)."""
    m = xs.shape[1]
    s = np.linspace(0.0, m - 1, n)
    i = np.minimum(np.floor(s).astype(int), m - 2)
    w = (s - i)[None, :, None]
    return (1 - w) * xs[:, i] + w * xs[:, i + 1]


def action_and_grad_np(y: np.ndarray, p: Problem, x1: np.ndarray) -> tuple[float, np.ndarray]:
    """`S_h` and its exact gradient with respect to the interior nodes `y` (flattened
    `(n − 2) d`), in NumPy: what a NumPy user hands to `scipy.optimize.minimize`."""
    h, d = p.h, p.d
    xs = np.concatenate([p.x0[None], y.reshape(-1, d), x1[None]])
    xm = 0.5 * (xs[1:] + xs[:-1])
    r = (xs[1:] - xs[:-1]) / h - p.drift_np(xm)
    c = abs(h) / (4 * p.D)
    S = c * np.sum(r * r)
    # dS/dr_i = 2c r_i;  ∂r_i/∂x_{i+1} = I/h − ½J_i,  ∂r_i/∂x_i = −I/h − ½J_i.
    w = 2 * c * r
    JTw = p.vjp_np(xm, w)
    g = (w / h - 0.5 * JTw)[:-1] + (-w / h - 0.5 * JTw)[1:]
    return float(S), g.ravel()


def action_jnp(y, p: Problem, x1, args):
    """`S_h` of the interior nodes `y` `(n − 2, d)` in vectorised `jax.numpy`: the action
    as the paper's scripts wrote it (tensor operations over all nodes)."""
    xs = jnp.concatenate([jnp.asarray(p.x0)[None], y, x1[None]])
    xm = 0.5 * (xs[1:] + xs[:-1])
    r = (xs[1:] - xs[:-1]) / p.h - p.drift_nodes(xm, args)
    return abs(p.h) / (4 * p.D) * jnp.sum(r * r)


def check_problem(p: Problem, seed: int = 1) -> dict[str, float]:
    """Consistency of the three implementations on a perturbed straight path: the NumPy
    gradient against central differences (a few random directions), and the NumPy and
    `jax.numpy` actions against the library's `nj.action_of`."""
    rng = np.random.default_rng(seed)
    x1 = p.endpoints(1)[0]
    xs = straight_line(p, x1)
    xs[1:-1] += 0.05 * rng.standard_normal(xs[1:-1].shape)
    y = xs[1:-1].ravel()
    S, g = action_and_grad_np(y, p, x1)
    eps, err = 1e-6, 0.0
    for _ in range(4):
        v = rng.standard_normal(y.shape)
        S_plus = action_and_grad_np(y + eps * v, p, x1)[0]
        S_minus = action_and_grad_np(y - eps * v, p, x1)[0]
        fd = (S_plus - S_minus) / (2 * eps)
        err = max(err, abs(fd - g @ v) / (abs(fd) + np.linalg.norm(g) * np.linalg.norm(v) * 1e-3))
    ts = jnp.linspace(p.t0, p.t1, p.n_nodes)
    S_lib = float(nj.action_of(p.sde, (ts, jnp.asarray(xs)), args=p.args))
    S_jnp = float(action_jnp(jnp.asarray(xs[1:-1]), p, jnp.asarray(x1), p.args))
    return dict(grad_fd_rel=err, np_vs_lib=abs(S - S_lib) / abs(S_lib),
                jnp_vs_lib=abs(S_jnp - S_lib) / abs(S_lib))
