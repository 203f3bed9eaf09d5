"""Momenta and Noether charges along a discrete path."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._action import AbstractAction, FreidlinWentzell, discrete_action, node_momenta
from ._sde import SDE
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


def _action(sol, action) -> AbstractAction:
    """The functional of the charges: an explicit `action` wins, then the one a solution
    minimised (`sol.functional`), then Freidlin–Wentzell (a raw `(ts, xs)` pair)."""
    if action is not None:
        if not isinstance(action, AbstractAction):
            raise ValueError(
                f"`action` must be an `nj.AbstractAction`, got {type(action).__name__}."
            )
        return action
    functional = getattr(sol, "functional", None)
    if isinstance(functional, AbstractAction):
        return functional
    return FreidlinWentzell()


# Compiled once per system and functional: called eagerly, the vmapped discrete Legendre
# transform would be traced op by op on every call.
_node_momenta = eqx.filter_jit(node_momenta)


@eqx.filter_jit
def _energies(functional, sde, ts, xs, args):
    p = node_momenta(functional, sde, ts, xs, args)
    return jax.vmap(lambda t, x, q: functional.hamiltonian(sde, t, x, q, args))(ts, xs, p)


def momentum(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, "n d"]:
    r"""The momentum at the nodes of a path,

    $$p = \partial L/\partial \dot x = \tfrac12 D^{-1} (\dot x - f)$$

    (the same for `nj.FreidlinWentzell` and `nj.OnsagerMachlup`, whose extra `½∇·f` does not
    depend on `ẋ`).

    Computed by the discrete Legendre transform of the discrete action of the functional
    (see `nj.AbstractAction`), so that on a converged path the charge `p·ξ` of every affine
    symmetry (translation, rotation, linear generator preserving the drift and noise) is the
    same at every node to round-off, and `p` approximates the continuum momentum to second
    order. `sol` is an `nj.PathSolution` or a pair `(ts, xs)`; pass the same `args` as to the
    solver. Returns an array of shape `(n, d)` (one row per node).

    **Functional:** an explicit `action=` wins; otherwise the one a `nj.PathSolution`
    minimised (`sol.functional`); for a raw pair `(ts, xs)`, `nj.FreidlinWentzell()`.
    """
    ts, xs = _path(sol)
    return _node_momenta(_action(sol, action), sde, ts, xs, args)


def energy(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, " n"]:
    r"""The quasi-energy `H(t, x, p)` at the nodes: the functional's Hamiltonian
    (`AbstractAction.hamiltonian`, docs/conventions.md) at the node momenta of `nj.momentum`.

    - Freidlin–Wentzell: $H = p^\top D p + f^\top p$.
    - Onsager–Machlup: $H_{OM} = p^\top D p + f^\top p - \tfrac12 \nabla\!\cdot f$
      (with the functional's divergence, exact or Hutchinson).

    Constant along a most likely path of the same functional when neither `f` nor `D`
    depends explicitly on `t` (to `O(h²)` on the discrete path), and equal to `−∂S*/∂T`
    for the minimal action over a duration `T` (`∂S*_OM/∂T = −H_OM` for Onsager–Machlup).
    The Freidlin–Wentzell formula evaluated on an Onsager–Machlup path is not conserved.

    **Functional:** an explicit `action=` wins; otherwise the one a `nj.PathSolution`
    minimised (`sol.functional`); for a raw pair `(ts, xs)`, `nj.FreidlinWentzell()`.
    """
    ts, xs = _path(sol)
    return _energies(_action(sol, action), sde, ts, xs, args)


def angular_momentum(
    sde: SDE, sol: PathSolution, args: Any = None, *, action: AbstractAction | None = None
) -> Float[Array, "n d d"]:
    r"""The quasi-angular-momentum tensor `𝐋 = x pᵀ − p xᵀ` at the nodes.

    Its `(i, j)` entry `x_i p_j − p_i x_j` is the Noether charge `p·ξ` of the rotation
    generator `ξ(x) = x_i e_j − x_j e_i` (`ξ = A x` with `A = e_j e_iᵀ − e_i e_jᵀ`). In 2-D,
    `𝐋[0, 1] = x p_y − y p_x` is the charge of the counter-clockwise rotation.

    **Functional:** an explicit `action=` wins; otherwise the one a `nj.PathSolution`
    minimised (`sol.functional`); for a raw pair `(ts, xs)`, `nj.FreidlinWentzell()`.
    """
    ts, xs = _path(sol)
    p = _node_momenta(_action(sol, action), sde, ts, xs, args)
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
    (docs/conventions.md). Quasi-momentum: `ξ = e`; quasi-angular momentum: `ξ = A x`, `A = −Aᵀ`.
    Along an Onsager–Machlup path this needs `∇·f` invariant under `ξ` as well. Along a
    converged fixed-time path the charge of an affine symmetry is constant to round-off;
    along a geometric path (`nj.minimize_geometric_action`) only to `O(h²)`:
    `nj.fixed_time_path(sde, geo, args)` gives the path on the same times along which it is
    constant to round-off.

    **Functional:** an explicit `action=` wins; otherwise the one a `nj.PathSolution`
    minimised (`sol.functional`); for a raw pair `(ts, xs)`, `nj.FreidlinWentzell()`.
    """
    ts, xs = _path(sol)
    p = _node_momenta(_action(sol, action), sde, ts, xs, args)
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
    r"""The discrete (midpoint) action `S_h = Σ_i |h_i| L(t_m, x_m, Δx/h_i)` of any path
    `(ts, xs)` or of a `PathSolution`'s path (then `sol.action` up to round-off).

    **Functional:** an explicit `action=` wins; otherwise the one a `nj.PathSolution`
    minimised (`sol.functional`); for a raw pair `(ts, xs)`, `nj.FreidlinWentzell()`.
    """
    ts, xs = _path(sol)
    return discrete_action(_action(sol, action), sde, ts, xs, args)
