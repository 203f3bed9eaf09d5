"""How well charges and the quasi-energy are conserved along a path."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._action import AbstractAction, FreidlinWentzell
from .._charges import momentum
from .._sde import SDE, metric_matvec
from .._solution import PathSolution
from ._families import Generator, _host_list
from ._find import Symmetries


def _as_path(sol) -> tuple[Array, Array]:
    if isinstance(sol, PathSolution) or (hasattr(sol, "ts") and hasattr(sol, "xs")):
        ts, xs = sol.ts, sol.xs
    else:
        try:
            ts, xs = sol
        except (TypeError, ValueError) as e:
            raise ValueError(
                "`nj.charge_report`: `sol` must be an `nj.PathSolution` (or any solution with "
                "`ts` and `xs`) or a pair `(ts, xs)`."
            ) from e
    ts, xs = jnp.asarray(ts), jnp.asarray(xs)
    if ts.ndim != 1 or xs.ndim != 2 or xs.shape[0] != ts.shape[0] or ts.shape[0] < 2:
        raise ValueError(
            "`nj.charge_report`: expected `ts` of shape (n,) and `xs` of shape (n, d) with "
            f"n >= 2, got {ts.shape} and {xs.shape}."
        )
    return ts, xs


def _relative_variation(q, scale):
    """`(max − min) / scale` along the last axis (`n >= 2` nodes)."""
    ptp = jnp.max(q, axis=-1) - jnp.min(q, axis=-1)
    # A deterministic path has p = 0, so every charge and its scale vanish.
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale > 0, ptp / safe, jnp.where(ptp > 0, jnp.inf, 0.0))


class ChargeReport(eqx.Module):
    r"""Charges and quasi-energy along one path (`nj.charge_report`).

    For each generator `ξ_i` (row `i`) and for the quasi-energy `H` (the functional's
    Hamiltonian: `pᵀDp + fᵀp` for Freidlin–Wentzell, `pᵀDp + fᵀp − ½∇·f` for
    Onsager–Machlup):

    - `charges` (`(r, n)`), `energy` (`(n,)`): the values at the nodes;
    - `means`, `energy_mean`: their mean over the nodes;
    - `relative_variations`, `energy_relative_variation`: `(max − min) / s`, with the scale
      `s = mean_n |p_n| |ξ(x_n)|` for a charge and
      `s = mean_n (|p_nᵀ D p_n| + |f_n| |p_n| + |H_n − H_FW,n|)` for the energy (`scales`,
      `energy_scale`; the last term is `½|∇·f|` for Onsager–Machlup, zero for
      Freidlin–Wentzell). By Cauchy–Schwarz `s ≥ |mean|`, and `s` is
      the size of the factors whose product is the charge, so a conserved charge that
      happens to be zero is not divided by zero, and a variation is always compared with
      how large the charge could be.

    `str(report)` prints a table; `conserved(rtol)` says which variations are below `rtol`.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    ts: Float[Array, " n"]
    charges: Float[Array, "r n"]
    means: Float[Array, " r"]
    relative_variations: Float[Array, " r"]
    scales: Float[Array, " r"]
    energy: Float[Array, " n"]
    energy_mean: Float[Array, ""]
    energy_relative_variation: Float[Array, ""]
    energy_scale: Float[Array, ""]

    def conserved(self, rtol: float = 1e-6) -> Bool[Array, " r"]:
        """Whether each charge varies by at most `rtol` (relative, see above)."""
        return self.relative_variations <= rtol

    def __str__(self):
        if isinstance(self.means, jax.core.Tracer) or getattr(self.means, "ndim", 0) != 1:
            return repr(self)
        width = max([len("quasi-energy H")] + [len(n) for n in self.names])
        lines = [f"{'charge':<{width}}  {'mean':>12}  {'rel. variation':>14}"]
        rows = list(zip(self.names, _host_list(self.means), _host_list(self.relative_variations)))
        rows.append(
            ("quasi-energy H", float(self.energy_mean), float(self.energy_relative_variation))
        )
        for name, m, v in rows:
            lines.append(f"{name:<{width}}  {m:>12.5e}  {v:>14.3e}")
        return "\n".join(lines)


def _generator_list(generators) -> tuple[list[Callable], list[str]]:
    if isinstance(generators, Symmetries):
        gens = generators.generators
    elif callable(generators):
        gens = [generators]
    else:
        try:
            gens = list(generators)
        except TypeError as e:
            raise ValueError(
                "`nj.charge_report`: `generators` must be an `nj.Symmetries` (from "
                "`nj.find_symmetries`), a callable `ξ(x) -> Array[d]` or a list of them; got "
                f"{type(generators).__name__}."
            ) from e
    for i, g in enumerate(gens):
        if not callable(g):
            raise ValueError(
                f"`nj.charge_report`: generator {i} is a {type(g).__name__}, not a callable "
                "`ξ(x) -> Array[d]`."
            )
    names = []
    for i, g in enumerate(gens):
        if isinstance(g, Generator) and not isinstance(g.coefficients, jax.core.Tracer):
            names.append(f"Q{i}: {g.describe()}")
        else:
            names.append(f"Q{i}")
    return gens, names


def charge_report(
    sde: SDE,
    sol,
    generators,
    args: Any = None,
    *,
    momenta: Float[Array, "n d"] | None = None,
    action: AbstractAction | None = None,
    names: Sequence[str] | None = None,
) -> ChargeReport:
    r"""The Noether charges `Q_ξ = p·ξ(x)` of `generators` and the quasi-energy `H` along a
    path: values, means and relative variations.

    `H` is the functional's Hamiltonian (`AbstractAction.hamiltonian`):
    $H = p^\top D p + f^\top p$ for Freidlin–Wentzell and
    $H_{OM} = p^\top D p + f^\top p - \tfrac12 \nabla\!\cdot f$ for Onsager–Machlup
    (the one conserved along an OM path, with `∂S*_OM/∂T = −H_OM`).

    **Arguments:**

    - `sde`: the `nj.SDE` the path belongs to.
    - `sol`: an `nj.PathSolution` (or any solution object with `ts`, `xs`), or a pair
      `(ts, xs)`.
    - `generators`: an `nj.Symmetries` (its `generators` are used), one callable
      `ξ(x) -> Array[d]`, or a list of them (e.g. `nj.Generator`s, lambdas).
    - `args`: as passed to the solver.
    - `momenta`: optional `(n, d)` momenta at the nodes (e.g. from `nj.integrate_hamilton`).
      Default: `nj.momentum(sde, sol)`, the discrete Legendre transform of the path, so the
      charges equal `nj.noether_charge(sde, sol, ξ)` and `H` equals `nj.energy(sde, sol)`
      (with the same `action`).
    - `action`: the functional of the momenta and of `H`. Default: `sol.functional` for an
      `nj.PathSolution` (the functional it minimised), `nj.FreidlinWentzell()` for a pair
      `(ts, xs)`; an explicit `action` wins.
    - `names`: optional names of the charges (default `Q0`, `Q1`, ... with a description).

    On a converged fixed-time path, affine symmetries have charges constant to round-off
    (the discretisation is a variational integrator) and the quasi-energy (for a
    time-independent system) is constant to `O(h²)`. Along a geometric path
    (`nj.minimize_geometric_action`) they are constant only to `O(h²)` (its nodes are
    placed along the curve by a monitor); `nj.fixed_time_path(sde, geo, args)`, one
    fixed-time solve on the geometric path's own times, makes them constant to round-off.
    Jit-compatible (with `eqx.filter_jit`).
    """
    if not isinstance(sde, SDE):
        raise ValueError(
            f"`nj.charge_report`: `sde` must be an `nj.SDE`, got {type(sde).__name__}."
        )
    ts, xs = _as_path(sol)
    if action is None:
        action = getattr(sol, "functional", None)
        if not isinstance(action, AbstractAction):
            action = FreidlinWentzell()
    elif not isinstance(action, AbstractAction):
        raise ValueError(
            "`nj.charge_report`: `action` must be an `nj.AbstractAction`, got "
            f"{type(action).__name__}."
        )
    gens, default_names = _generator_list(generators)
    if names is None:
        names = default_names
    else:
        names = [str(n) for n in names]
        if len(names) != len(gens):
            raise ValueError(
                f"`nj.charge_report`: {len(names)} names for {len(gens)} generators."
            )
    if momenta is not None:
        momenta = jnp.asarray(momenta)
        if momenta.shape != xs.shape:
            raise ValueError(
                f"`nj.charge_report`: `momenta` must have the shape {xs.shape} of the path, "
                f"got {momenta.shape}."
            )
    for i, g in enumerate(gens):
        out = jax.eval_shape(g, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype))
        if getattr(out, "shape", None) != xs.shape[1:]:
            raise ValueError(
                f"`nj.charge_report`: generator {i} must return shape {xs.shape[1:]} like `x`, "
                f"got {getattr(out, 'shape', type(out).__name__)}."
            )
    return _report(sde, ts, xs, gens, args, momenta, action, tuple(names))


@eqx.filter_jit
def _report(sde, ts, xs, gens, args, momenta, action, names):
    # One compiled function per system and list of generators (their coefficients traced).
    if momenta is None:
        p = momentum(sde, (ts, xs), args, action=action)
    else:
        p = momenta.astype(xs.dtype)
    pnorm = jnp.linalg.norm(p, axis=-1)
    qs, scales = [], []
    for g in gens:
        xi = jax.vmap(g)(xs)
        qs.append(jnp.sum(p * xi, axis=-1))
        scales.append(jnp.mean(pnorm * jnp.linalg.norm(xi, axis=-1)))
    n = ts.shape[0]
    charges = jnp.stack(qs) if qs else jnp.zeros((0, n), p.dtype)
    scales = jnp.stack(scales) if scales else jnp.zeros((0,), p.dtype)

    def h_parts(t, x, p):
        # H from the functional (the one definition); the scale from the sizes of its terms.
        H = action.hamiltonian(sde, t, x, p, args)
        extra = H - FreidlinWentzell().hamiltonian(sde, t, x, p, args)
        f = sde.f(t, x, args)
        pDp = jnp.dot(p, metric_matvec(sde.D(t, x, args), p))
        size = jnp.abs(pDp) + jnp.linalg.norm(f) * jnp.linalg.norm(p) + jnp.abs(extra)
        return H, size

    H, H_size = jax.vmap(h_parts)(ts, xs, p)
    H_scale = jnp.mean(H_size)
    return ChargeReport(
        names=names,
        ts=ts,
        charges=charges,
        means=jnp.mean(charges, axis=-1),
        relative_variations=_relative_variation(charges, scales),
        scales=scales,
        energy=H,
        energy_mean=jnp.mean(H),
        energy_relative_variation=_relative_variation(H, H_scale),
        energy_scale=H_scale,
    )
