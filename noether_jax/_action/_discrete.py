"""Discrete action on a time grid and its discrete Legendre transform (node momenta)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._sde import SDE
from ._action import AbstractAction


def interval_lagrangians(
    action: AbstractAction, sde: SDE, ts: Float[Array, " n"], xs: Float[Array, "n d"], args
) -> Float[Array, " n-1"]:
    """The discrete Lagrangian of every interval `[t_i, t_{i+1}]`, the intervals mapped along
    the last axis of the states (XLA on CPU vectorises along the minor axis: the long one,
    not `d`)."""
    fn = lambda ta, tb, xa, xb: action.discrete_lagrangian(sde, ta, tb, xa, xb, args)
    xs_t = jnp.moveaxis(xs, 0, -1)
    return jax.vmap(fn, in_axes=-1)(ts[:-1], ts[1:], xs_t[..., :-1], xs_t[..., 1:])


def discrete_action(
    action: AbstractAction, sde: SDE, ts: Float[Array, " n"], xs: Float[Array, "n d"], args
) -> Float[Array, ""]:
    """The discrete (midpoint) action `S_h = Σ_i L_d(x_i, x_{i+1})` of a path."""
    return jnp.sum(interval_lagrangians(action, sde, ts, xs, args))


def node_momenta(
    action: AbstractAction, sde: SDE, ts: Float[Array, " n"], xs: Float[Array, "n d"], args
) -> Float[Array, "n d"]:
    r"""Momenta at the nodes by the discrete Legendre transform.

    With `L_d(x_i, x_{i+1})` the discrete Lagrangian of interval `i` and `s_i = sign(h_i)`,

    $$p_i^+ = -s_i\,\partial_{x_i} L_d(x_i, x_{i+1}), \qquad
      p_{i+1}^- = s_i\,\partial_{x_{i+1}} L_d(x_i, x_{i+1}).$$

    The discrete Euler–Lagrange equations say exactly `p_i^- = p_i^+` at interior nodes, and
    for every affine symmetry of `L_d` the charge `p_i · ξ(x_i)` is then the same at every
    node (discrete Noether theorem), to round-off. Both approximate the continuum momentum
    `p = ½ D⁻¹ (ẋ − f)` to second order. Interior nodes get the mean of the two, endpoints
    the one-sided value.
    """

    def one(ta, tb, xa, xb):
        ga, gb = jax.grad(
            lambda a, b: action.discrete_lagrangian(sde, ta, tb, a, b, args), argnums=(0, 1)
        )(xa, xb)
        s = jnp.sign(tb - ta)
        return -s * ga, s * gb

    p_plus, p_minus = jax.vmap(one)(ts[:-1], ts[1:], xs[:-1], xs[1:])
    interior = 0.5 * (p_plus[1:] + p_minus[:-1])
    return jnp.concatenate([p_plus[:1], interior, p_minus[-1:]], axis=0)
