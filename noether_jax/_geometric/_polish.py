r"""Fixed points polished to round-off as roots of the drift, differentiable with respect to
the parameters by the implicit function theorem.

A fixed point `x*(θ)` of an autonomous drift solves `f(x*, θ) = 0`. Where `∂f/∂x` is
invertible (a hyperbolic fixed point), it moves smoothly with `θ`:

$$\frac{\mathrm{d}x^*}{\mathrm{d}θ} = -\Big(\frac{∂f}{∂x}\Big)^{-1}\frac{∂f}{∂θ}.$$

`polish_fixed_point` finds `x*` by Newton's method (`optx.root_find` with `optx.Newton`)
from a point given to it with its gradient stopped, and gets the derivative above from
`optx.ImplicitAdjoint`, in both modes (`jax.grad`, `jax.jvp`), under `jit` and `vmap`.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float

from .._sde import SDE
from .._solver import stop_gradient_arrays as _stop


class Polished(eqx.Module):
    """A fixed point found by `polish_fixed_point`.

    - `x`: the root `x*` of `f(x*) = 0` (its derivatives with respect to `args` and the
      arrays of the `SDE` by the implicit function theorem).
    - `ok`: Newton's method converged, `x*` is finite, and `x*` lies within the first-order
      bound `2·|J⁻¹f(x)| + √ε·(|x| + 1)` of the start `x` (the root the start predicted,
      not another one that Newton wandered to).
    - `shift`: `|x* − x|₂`, how far polishing moved the start.
    """

    x: Float[Array, " d"]
    ok: Bool[Array, ""]
    shift: Float[Array, ""]


def _drift(y, inputs):
    sde, args = inputs
    return sde.f(jnp.zeros((), y.dtype), y, args)


def _newton_residual(y, inputs):
    # `J₀⁻¹ f(y)`, `J₀ = ∂f/∂x` at the start (a constant): the residual in units of `x`, so
    # that one absolute tolerance serves the steps and the residual; the root and its
    # implicit derivative `−J⁻¹ ∂f/∂θ` are those of `f`.
    lu, (sde, args) = inputs
    return jax.scipy.linalg.lu_solve(lu, _drift(y, (sde, args)))


def polish_fixed_point(sde: SDE, x: Float[Array, " d"], args: Any = None, *,
                       max_steps: int = 32) -> Polished:
    r"""Newton's method on `f(x*) = 0` from `stop_gradient(x)`, with implicit derivatives.

    The start carries no derivative: `x*` depends on the parameters only through the
    equation it solves (`dx*/dθ = −J⁻¹ ∂f/∂θ`, `J = ∂f/∂x(x*)`), which is what a fixed
    point given as a number (found once, reused for nearby parameters) should do.

    Newton's method runs on the preconditioned residual `r(y) = J₀⁻¹ f(y)` (`J₀ = ∂f/∂x`
    at the start, held constant), a length, and stops when both the step and `|r|` are
    below `τ·(1 + |x|)`, `τ = 10·ε^{3/4}` (2·10⁻¹¹ in float64): a start within the
    fixed-point test of `nj.check_fixed_point` converges quadratically, in two or three
    steps.

    `jit`-, `vmap`- and `grad`-able. Never raises: `ok` says whether it worked.
    """
    x0 = jax.lax.stop_gradient(x)
    dtype = x0.dtype
    eps = float(jnp.finfo(dtype).eps)
    inputs0 = _stop((sde, args))
    J0 = jax.jacfwd(_drift)(x0, inputs0)
    lu = jax.scipy.linalg.lu_factor(J0)
    ref = jnp.linalg.norm(x0) + 1
    tol = 10 * eps**0.75
    solver = optx.Newton(rtol=tol, atol=tol * ref, norm=optx.max_norm)
    sol = optx.root_find(
        _newton_residual, solver, x0, (lu, (sde, args)), max_steps=max_steps, throw=False,
        adjoint=optx.ImplicitAdjoint(),
    )
    xs = sol.value
    # The bound of the linear model at the start (Kantorovich: the root within twice the
    # first Newton step); a root further away is another fixed point.
    step = jnp.linalg.norm(jax.scipy.linalg.lu_solve(lu, _drift(x0, inputs0)))
    shift = jnp.linalg.norm(jax.lax.stop_gradient(xs) - x0)
    ok = (
        (sol.result == optx.RESULTS.successful)
        & jnp.all(jnp.isfinite(xs))
        & (shift <= 2 * step + eps**0.5 * ref)
    )
    return Polished(x=xs, ok=ok, shift=shift)
