"""Continuous action functionals (Lagrangians) and their midpoint discretisation."""

import abc
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._sde import SDE, metric_inner, metric_matvec


def _fw_hamiltonian(sde: SDE, t, x, p, args) -> Float[Array, ""]:
    """`pᵀ D p + fᵀ p`: the Legendre transform of the Freidlin–Wentzell Lagrangian."""
    return jnp.dot(p, metric_matvec(sde.D(t, x, args), p)) + jnp.dot(sde.f(t, x, args), p)


class AbstractAction(eqx.Module):
    r"""An action functional `S[x] = ∫ L(t, x, ẋ) |dt|`.

    Subclasses define the continuous Lagrangian `L`. The discrete action used by the solvers
    is the midpoint rule on a time grid `t_0, ..., t_{N-1}` (steps `h_i = t_{i+1} − t_i`,
    negative for a process run backwards in time):

    $$S_h = \sum_i |h_i|\, L\Big(\tfrac{t_i + t_{i+1}}{2},\ \tfrac{x_i + x_{i+1}}{2},\
    \tfrac{x_{i+1} - x_i}{h_i}\Big),$$

    which is symmetric in time and second-order accurate: its minimum differs from the
    continuum minimal action by `O(h²)`. It is also a *variational integrator*: its
    discrete Euler–Lagrange equations conserve the discrete Noether charges of every affine
    symmetry (translations, rotations) exactly, see `nj.momentum`.

    Each functional also defines its Hamiltonian (`hamiltonian`), the one definition of the
    quasi-energy used by `nj.energy`, `nj.charge_report`, `nj.hamiltonian` and
    `nj.integrate_hamilton`.
    """

    @abc.abstractmethod
    def lagrangian(self, sde: SDE, t, x: Float[Array, " d"], xdot: Float[Array, " d"], args):
        """The Lagrangian `L(t, x, ẋ)`."""

    def hamiltonian(
        self, sde: SDE, t, x: Float[Array, " d"], p: Float[Array, " d"], args
    ) -> Float[Array, ""]:
        r"""The Hamiltonian (quasi-energy) `H(t, x, p)`, the Legendre transform of `L`:

        $$H(t, x, p) = p \cdot \dot x - L(t, x, \dot x)
          \quad\text{at the } \dot x \text{ with } \partial L/\partial \dot x = p.$$

        It is constant along a most likely path of a system without explicit time
        dependence, and `∂S*/∂T = −H` for the minimal action over a duration `T`.

        This generic version solves `∂L/∂ẋ = p` by one Newton step from `ẋ = f`, which is
        exact for Lagrangians quadratic in `ẋ` (all of this library's); the built-in
        functionals override it with the closed form.
        """
        f = sde.f(t, x, args)
        dL = jax.grad(lambda v: self.lagrangian(sde, t, x, v, args))
        xdot = f + jnp.linalg.solve(jax.jacfwd(dL)(f), p - dL(f))
        return jnp.dot(p, xdot) - self.lagrangian(sde, t, x, xdot, args)

    def discrete_lagrangian(self, sde: SDE, ta, tb, xa, xb, args) -> Float[Array, ""]:
        """Midpoint discrete Lagrangian `|h| L(t_m, x_m, (x_b − x_a)/h)` of one interval."""
        h = tb - ta
        return jnp.abs(h) * self.lagrangian(
            sde, 0.5 * (ta + tb), 0.5 * (xa + xb), (xb - xa) / h, args
        )


class FreidlinWentzell(AbstractAction):
    r"""The Freidlin–Wentzell action (the default; the seed paper calls it Onsager–Machlup):

    $$L(t, x, \dot x) = \tfrac14 (\dot x - f)^\top D^{-1} (\dot x - f).$$

    Path probabilities are `∝ exp(−S)` (docs/conventions.md normalisation). The momentum and
    Hamiltonian (quasi-energy) are

    $$p = \partial L/\partial \dot x = \tfrac12 D^{-1}(\dot x - f), \qquad
      H(t, x, p) = p^\top D p + f^\top p,$$

    and `∂S*/∂T = −H` for the minimal action over a duration `T`.
    """

    def lagrangian(self, sde, t, x, xdot, args):
        r = xdot - sde.f(t, x, args)
        return 0.25 * metric_inner(sde.D(t, x, args), r)

    def hamiltonian(self, sde, t, x, p, args):
        """`H(t, x, p) = pᵀ D p + fᵀ p`."""
        return _fw_hamiltonian(sde, t, x, p, args)


class OnsagerMachlup(AbstractAction):
    r"""The Onsager–Machlup action with the divergence term (additive noise,
    midpoint/Stratonovich reading):

    $$L_{OM} = \tfrac14 (\dot x - f)^\top D^{-1} (\dot x - f) + \tfrac12 \nabla\!\cdot f.$$

    **Arguments:**

    - `divergence`: `"exact"` (trace of the Jacobian by forward-mode autodiff: `d` JVPs, for
      small `d`) or `"hutchinson"` (the unbiased estimator `E[zᵀ (∂f/∂x) z]` with
      `num_probes` Rademacher probes `z`, for large `d`).
    - `num_probes`: number of Hutchinson probes.
    - `key`: PRNG key for the probes. The probes are drawn once and held fixed, so the discrete
      action stays a deterministic, smooth function of the path and can be minimised.

    For linear drift `f = A x` the extra term is the constant `½ tr(A) T`: the most likely
    path is unchanged. With state-dependent `D` this is still the additive-noise form.

    The momentum is the same as for `nj.FreidlinWentzell` (the extra term does not depend on
    `ẋ`), and the Legendre transform gives the OM quasi-energy

    $$p = \tfrac12 D^{-1}(\dot x - f), \qquad
      H_{OM}(t, x, p) = p^\top D p + f^\top p - \tfrac12 \nabla\!\cdot f,$$

    constant along an OM most likely path of an autonomous system, with
    `∂S*_OM/∂T = −H_OM` for the minimal OM action over a duration `T` (docs/conventions.md). The
    Freidlin–Wentzell `pᵀDp + fᵀp` is *not* conserved along an OM path. Hamilton's equations
    gain `ṗ = … + ½ ∇(∇·f)`.

    `divergence` and `num_probes` are static (configuration, not data), so a solution that
    carries this functional (`nj.PathSolution.functional`) can be batched and indexed.
    """

    divergence: Literal["exact", "hutchinson"] = eqx.field(default="exact", static=True)
    num_probes: int = eqx.field(default=16, static=True)
    key: PRNGKeyArray | None = None

    def __check_init__(self):
        if self.divergence not in ("exact", "hutchinson"):
            raise ValueError(
                "`OnsagerMachlup(divergence=...)` must be 'exact' or 'hutchinson', got "
                f"{self.divergence!r}."
            )
        if self.divergence == "hutchinson" and self.num_probes < 1:
            raise ValueError("`OnsagerMachlup(num_probes=...)` must be at least 1.")

    def div_f(self, sde, t, x, args):
        """`∇·f(t, x)`, exactly or by Hutchinson's estimator as configured."""
        fx = lambda y: sde.f(t, y, args)
        if self.divergence == "exact":
            jac = jax.jacfwd(fx)(x)
            return jnp.trace(jac)
        key = jax.random.key(0) if self.key is None else self.key
        z = jax.random.rademacher(key, (self.num_probes,) + x.shape, dtype=x.dtype)
        jz = jax.vmap(lambda zi: jax.jvp(fx, (x,), (zi,))[1])(z)
        return jnp.mean(jnp.sum(z * jz, axis=-1))

    def lagrangian(self, sde, t, x, xdot, args):
        r = xdot - sde.f(t, x, args)
        return 0.25 * metric_inner(sde.D(t, x, args), r) + 0.5 * self.div_f(sde, t, x, args)

    def hamiltonian(self, sde, t, x, p, args):
        """`H_OM(t, x, p) = pᵀ D p + fᵀ p − ½ ∇·f` (with this functional's `div_f`)."""
        return _fw_hamiltonian(sde, t, x, p, args) - 0.5 * self.div_f(sde, t, x, args)
