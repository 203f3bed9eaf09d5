"""Momenta and Noether charges along a discrete path."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._action import AbstractAction, FreidlinWentzell, discrete_action, node_momenta
from ._sde import SDE, metric_matvec
from ._solution import PathSolution


def _path(sol) -> tuple[Array, Array]:
    if isinstance(sol, PathSolution):
        return sol.ts, sol.xs
    try:
        ts, xs = sol
    except (TypeError, ValueError) as e:
        raise ValueError("expected an `nj.PathSolution` or a pair `(ts, xs)`.") from e
    ts, xs = jnp.asarray(ts), jnp.asarray(xs)
    if ts.ndim != 1 or xs.ndim != 2 or xs.shape[0] != ts.shape[0]:
        raise ValueError(
            f"expected `ts` of shape (n,) and `xs` of shape (n, d), got {ts.shape} and {xs.shape}."
        )
    return ts, xs


def _action(action):
    return FreidlinWentzell() if action is None else action


def momentum(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, "n d"]:
    r"""The momentum `p = ∂L/∂ẋ = ½ D⁻¹ (ẋ − f)` at the nodes of a path.

    Computed by the discrete Legendre transform of the discrete action (see
    `nj.AbstractAction`), so that on a converged path the charge `p·ξ` of every affine
    symmetry (translation, rotation, linear generator preserving the drift and noise) is the
    same at every node to round-off, and `p` approximates the continuum momentum to second
    order. `sol` is an `nj.PathSolution` or a pair `(ts, xs)`; pass the same `args` as to the
    solver. Returns an array of shape `(n, d)` (one row per node).
    """
    ts, xs = _path(sol)
    return node_momenta(_action(action), sde, ts, xs, args)


def energy(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, " n"]:
    r"""The quasi-energy `H = pᵀ D p + fᵀ p` at the nodes (CONVENTIONS.md).

    Constant along a most likely path when neither `f` nor `D` depends explicitly on `t`
    (to `O(h²)` on the discrete path), and equal to `−∂S*/∂T`.
    """
    ts, xs = _path(sol)
    p = momentum(sde, (ts, xs), args, action=action)

    def h(t, x, p):
        return jnp.dot(p, metric_matvec(sde.D(t, x, args), p)) + jnp.dot(sde.f(t, x, args), p)

    return jax.vmap(h)(ts, xs, p)


def angular_momentum(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, "n d d"]:
    r"""The quasi-angular-momentum tensor `𝐋 = x pᵀ − p xᵀ` at the nodes.

    Its `(i, j)` entry `x_i p_j − p_i x_j` is the Noether charge `p·ξ` of the rotation
    generator `ξ(x) = x_i e_j − x_j e_i` (`ξ = A x` with `A = e_j e_iᵀ − e_i e_jᵀ`). In 2-D,
    `𝐋[0, 1] = x p_y − y p_x` is the charge of the counter-clockwise rotation.
    """
    ts, xs = _path(sol)
    p = momentum(sde, (ts, xs), args, action=action)
    return xs[:, :, None] * p[:, None, :] - p[:, :, None] * xs[:, None, :]


def noether_charge(
    sde: SDE,
    sol: PathSolution,
    xi: Callable[[Array], Array],
    args: Any = None,
    *,
    action: AbstractAction | None = None,
) -> Float[Array, " n"]:
    r"""The Noether charge `Q_ξ = p · ξ(x)` of a generator `xi: x -> Array[d]` at the nodes.

    Conserved along most likely paths when `[ξ, f] = 0` and `ξ` preserves the noise metric
    (CONVENTIONS.md). Quasi-momentum: `ξ = e`; quasi-angular momentum: `ξ = A x`, `A = −Aᵀ`.
    """
    ts, xs = _path(sol)
    p = momentum(sde, (ts, xs), args, action=action)
    xis = jax.vmap(xi)(xs)
    if xis.shape != xs.shape:
        raise ValueError(
            f"`xi(x)` must return an array of shape {xs.shape[1:]} like `x`, got "
            f"{xis.shape[1:]}."
        )
    return jnp.sum(p * xis, axis=-1)


def action_of(
    sde: SDE, sol, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, ""]:
    """The discrete action of any path `(ts, xs)` (or of a `PathSolution`'s path)."""
    ts, xs = _path(sol)
    return discrete_action(_action(action), sde, ts, xs, args)
