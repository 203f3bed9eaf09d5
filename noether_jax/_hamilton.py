r"""Hamilton's equations of the action, integrated with diffrax.

The Hamiltonian is the functional's own (`AbstractAction.hamiltonian`, the one definition
of the quasi-energy). For Freidlin–Wentzell, `H(t, x, p) = pᵀ D p + fᵀ p` (docs/conventions.md),

$$\dot x = \partial_p H = f + 2 D p, \qquad
  \dot p = -\partial_x H = -(\partial f/\partial x)^\top p - \partial_x (p^\top D p);$$

for Onsager–Machlup, `H_OM = H − ½ ∇·f`: the same `ẋ`, and `ṗ` gains `+ ½ ∇(∇·f)`.

A most likely path is the `x`-part of the solution from its initial point and initial
momentum: an independent check of a path found by minimising the action.
"""

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._action import AbstractAction, FreidlinWentzell
from ._sde import SDE, check_sde_calls


def _functional(action, where: str) -> AbstractAction:
    if action is None:
        return FreidlinWentzell()
    if not isinstance(action, AbstractAction):
        raise ValueError(
            f"`{where}`: `action` must be an `nj.AbstractAction`, got {type(action).__name__}."
        )
    return action


def hamiltonian(
    sde: SDE,
    t,
    x: Float[Array, " d"],
    p: Float[Array, " d"],
    args,
    *,
    action: AbstractAction | None = None,
) -> Float[Array, ""]:
    r"""The Hamiltonian (quasi-energy) `H(t, x, p)` of a functional: `action.hamiltonian`.

    - `nj.FreidlinWentzell()` (default): $H = p^\top D p + f^\top p$.
    - `nj.OnsagerMachlup()`: $H_{OM} = p^\top D p + f^\top p - \tfrac12 \nabla\!\cdot f$.

    Constant along a most likely path of that functional when neither `f` nor `D` depends
    explicitly on `t`, and `∂S*/∂T = −H` (`∂S*_OM/∂T = −H_OM`).
    """
    return _functional(action, "nj.hamiltonian").hamiltonian(sde, t, x, p, args)


def _vector_field(t, y, sde_args):
    sde, action, args = sde_args
    x, p = y
    # ∂H/∂x and ∂H/∂p in one reverse pass: the equations are exactly Hamilton's, with
    # the derivative of D included for state-dependent noise (and of ∇·f for OM).
    dH_dx, dH_dp = jax.grad(
        lambda x_, p_: action.hamiltonian(sde, t, x_, p_, args), argnums=(0, 1)
    )(x, p)
    return dH_dp, -dH_dx


@eqx.filter_jit
def _integrate(
    sde, action, x0, p0, ts, args, solver, rtol, atol, dt0, max_steps, throw, step_at_ts
):
    term = diffrax.ODETerm(_vector_field)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    if step_at_ts:
        # Every saved value is the end of a step: no dense-output interpolation error.
        controller = diffrax.ClipStepSizeController(controller, step_ts=ts)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=dt0,
        y0=(x0, p0),
        args=(sde, action, args),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=throw,
    )
    xs, ps = sol.ys
    return xs, ps


def integrate_hamilton(
    sde: SDE,
    x0: ArrayLike,
    p0: ArrayLike,
    ts: ArrayLike,
    args: Any = None,
    *,
    action: AbstractAction | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 16**4,
    throw: bool = True,
    step_at_ts: bool = True,
) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
    r"""Integrate Hamilton's equations `ẋ = ∂H/∂p`, `ṗ = −∂H/∂x` of a functional's
    Hamiltonian from `(x0, p0)` at `ts[0]`, saving at every time of `ts`. For
    Freidlin–Wentzell (default) `ẋ = f + 2Dp`, `ṗ = −(∂f/∂x)ᵀp − ∂ₓ(pᵀDp)`; for
    Onsager–Machlup `ṗ` gains `+ ½ ∇(∇·f)`.

    **Arguments:**

    - `sde`: an `nj.SDE` (any drift and diffusion, time- and state-dependent included).
    - `x0`, `p0`: initial state and momentum, shape `(d,)`; e.g. `sol.xs[0]` and
      `nj.momentum(sde, sol)[0]` for a path `sol` from `nj.minimize_action`.
    - `ts`: strictly monotonic times, shape `(n,)`, `n >= 2`. Decreasing times integrate
      backwards, which is how a process run backwards in time (`t1 < t0`) is described: the
      equations are the same.
    - `action`: the functional whose Hamiltonian is used (`AbstractAction.hamiltonian`;
      default `nj.FreidlinWentzell()`), e.g. `sol.functional` of the path being checked.
    - `solver`: a diffrax solver (default `diffrax.Dopri8()`, 8th order, suited to tight
      tolerances).
    - `rtol`, `atol`: for diffrax's `PIDController`; default `1e-10` in float64 and `1e-6`
      in float32.
    - `dt0`: initial step (default: chosen by the controller).
    - `max_steps`, `throw`: passed to `diffrax.diffeqsolve`.
    - `step_at_ts`: if `True` (default) every time of `ts` is the end of a step
      (`diffrax.ClipStepSizeController(step_ts=ts)`), so the saved values carry no
      dense-output interpolation error; steps are then at most the spacing of `ts`. With
      `False` the controller alone chooses the steps and the values at `ts` are interpolated
      (cheaper for a sparse `ts`).

    **Returns:** `(xs, ps)`, each of shape `(n, d)`: states and momenta at `ts`.

    The Hamiltonian flow is typically unstable (for a stable linear drift `f = A x`,
    `ṗ = −Aᵀp` grows exponentially), so over long durations small errors in `p0` are
    amplified: compare with a path over moderate times.
    Jit- and vmap-compatible.
    """
    if not isinstance(sde, SDE):
        raise ValueError(
            f"`nj.integrate_hamilton`: `sde` must be an `nj.SDE`, got {type(sde).__name__}."
        )
    action = _functional(action, "nj.integrate_hamilton")
    x0, p0, ts = jnp.asarray(x0), jnp.asarray(p0), jnp.asarray(ts)
    for name, a in (("x0", x0), ("p0", p0)):
        if a.ndim != 1:
            raise ValueError(
                f"`nj.integrate_hamilton`: `{name}` must have shape (d,), got {a.shape}."
            )
    if x0.shape != p0.shape:
        raise ValueError(
            f"`nj.integrate_hamilton`: `x0` and `p0` must have the same shape, got {x0.shape} "
            f"and {p0.shape}."
        )
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(
            f"`nj.integrate_hamilton`: `ts` must be a 1-D array of at least 2 times, got shape "
            f"{ts.shape}."
        )
    dtype = jnp.result_type(x0, p0, ts, float)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"`nj.integrate_hamilton`: inputs must be real, got dtype {dtype}.")
    x0, p0, ts = x0.astype(dtype), p0.astype(dtype), ts.astype(dtype)
    if not isinstance(ts, jax.core.Tracer):
        # On the host: jnp ops on a concrete `ts` would be traced inside an enclosing `jit`.
        t = jax.device_get(ts).tolist()
        if not (all(a < b for a, b in zip(t, t[1:])) or all(a > b for a, b in zip(t, t[1:]))):
            raise ValueError(
                "`nj.integrate_hamilton`: `ts` must be strictly increasing or strictly "
                "decreasing."
            )
    check_sde_calls(
        sde, ts[0], x0, args, where="nj.integrate_hamilton", like="`x0`", returns="shape"
    )
    f64 = dtype == jnp.float64
    rtol = (1e-10 if f64 else 1e-6) if rtol is None else rtol
    atol = (1e-10 if f64 else 1e-6) if atol is None else atol
    # Arrays, not Python floats: a new tolerance does not recompile.
    rtol, atol = jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype)
    solver = diffrax.Dopri8() if solver is None else solver
    if not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(
            f"`nj.integrate_hamilton`: `solver` must be a diffrax solver, got {solver!r}."
        )
    return _integrate(
        sde, action, x0, p0, ts, args, solver, rtol, atol, dt0, max_steps, throw, bool(step_at_ts)
    )
