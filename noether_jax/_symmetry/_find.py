r"""Detecting symmetries: null spaces of the linearised symmetry conditions.

A generator `ξ` makes the charge `Q_ξ = p·ξ` conserved along every most likely path when, for
every `t` (docs/conventions.md),

1. `[ξ, f] = (∂ξ/∂x) f − (∂f/∂x) ξ = 0`, and
2. `(∂ξ/∂x) D + D (∂ξ/∂x)ᵀ − (ξ·∇) D = 0` (ξ preserves the noise metric).

Both are linear in the coefficients `c` of `ξ_c = Σ c_j ξ_j`. Evaluated at sample points
`x_1..x_P` and times `t_1..t_T` they stack into a matrix `C` (one column per basis field);
the symmetries are its null space, found by an SVD.
"""

import math
import numbers
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from .._sde import SDE, as_real_array, check_finite, check_sde_calls
from . import _commutant, _matfree
from ._matfree import _full_metric
from ._families import (
    AffineGenerators,
    FamilySum,
    InSubspace,
    LinearGenerators,
    Rotations,
    Translations,
    AbstractGeneratorFamily,
    dimension_mismatch,
    family_label,
    Generator,
    _host_list,
    _is_int,
    _sqrt_eps,
)

# Times at which the explicit time dependence of `f` and `D` is measured when `times=None`.
# Irrational spacings, so that a periodic dependence is unlikely to vanish at all of them.
DEFAULT_CHECK_TIMES = (0.0, 1.0 / math.sqrt(2.0), math.sqrt(2.0), math.sqrt(5.0))


def default_rtol(dtype) -> float:
    """`sqrt(eps)`: about `1.5e-8` in float64, `3.5e-4` in float32."""
    return _sqrt_eps(dtype)


class SymmetryConditions(eqx.Module):
    r"""The linearised, normalised symmetry conditions of `nj.symmetry_conditions`.

    With `ℓ² = mean_k |x_k|² / d` (the typical size of a coordinate at the points) and `N`
    the number of (time, point) pairs:

    - `drift`: rows `[ξ_j, f](t, x) / (ℓ s_f √N)`, where
      `s_f² = mean_{t,x} (|f|²/ℓ² + ‖∂f/∂x‖²_F)` (a rate, 1/time).
    - `metric`: rows `((∂ξ_j/∂x) D + D (∂ξ_j/∂x)ᵀ − (ξ_j·∇)D) / (s_D √N)`, upper triangle,
      off-diagonal entries times `√2` (so the rows' norm is the Frobenius norm), where
      `s_D² = mean_{t,x} (4‖D‖²_F + ℓ² Σ_i ‖∂_i D‖²_F)`.
    - `norm`: rows `(ξ_j(x)/ℓ, ∂ξ_j/∂x) / √P` over the points: `‖norm @ c‖` is the size of
      the generator `ξ_c`, `(mean_x |ξ_c|²/ℓ² + ‖∂ξ_c/∂x‖²_F)^{1/2}`.

    At each sample, by Cauchy–Schwarz, `|[ξ, f]| / ℓ ≤ n_ξ(x) s_f(t, x)` and the metric
    defect is `≤ n_ξ(x) s_D(t, x)` (pointwise sizes, whose mean squares are the scales
    above). So for a generator of unit size each block's residual is a *relative* symmetry
    breaking, comparing the defect with the size of the terms that must cancel: dimensionless,
    independent of the units of `x`, `t` and of how the basis is scaled, and of order one
    (at most one when the sizes are uniform over the samples) for a badly broken symmetry.

    - `drift_time_dependence = RMS|∂f/∂t| / (ℓ ν²)` and
      `noise_time_dependence = RMS‖∂D/∂t‖_F / (ℓ² ν²)`, with the system's rate
      `ν = s_f + RMS‖D‖_F / ℓ²` (drift rate plus diffusion rate at scale `ℓ`): how much `f`
      and `D` change explicitly over the time `1/ν`, relative to their own size.
    """

    drift: Float[Array, "rows_f k"]
    metric: Float[Array, "rows_m k"]
    norm: Float[Array, "rows_n k"]
    length_scale: Float[Array, ""]
    drift_scale: Float[Array, ""]
    noise_scale: Float[Array, ""]
    rate: Float[Array, ""]
    drift_time_dependence: Float[Array, ""]
    noise_time_dependence: Float[Array, ""]


def _conditions(sde, family, points, times, check_times, args) -> SymmetryConditions:
    P, d = points.shape
    T = times.shape[0]
    k = family.size
    dtype = points.dtype
    noise_callable = callable(sde.diffusion)
    eye = jnp.eye(d, dtype=dtype)

    ell2 = jnp.mean(jnp.sum(points**2, axis=-1)) / d
    ell2 = jnp.where(ell2 > 0, ell2, 1.0)  # all points at the origin: use unit length
    ell = jnp.sqrt(ell2)

    # The family does not depend on time: its values and Jacobians once per point.
    vals = jax.vmap(family.basis)(points)  # (P, k, d)
    jacs = jax.vmap(family.jacobians)(points)  # (P, k, d, d)

    def D_full(t, x):
        return _full_metric(sde.D(t, x, args), d)

    def at(t, x, v, J):
        f, f_lin = jax.linearize(lambda y: sde.f(t, y, args), x)
        # [ξ_j, f] = (∂ξ_j/∂x) f − (∂f/∂x) ξ_j by JVPs: one of the basis along f, and the
        # drift, linearised once, applied to every ξ_j.
        Jxi_f = jax.jvp(family.basis, (x,), (f,))[1]
        Jf_xi = jax.vmap(f_lin)(v)
        comm = Jxi_f - Jf_xi  # (k, d)
        Jf = jax.vmap(f_lin)(eye)  # columns of ∂f/∂x, only for the scale
        if noise_callable:
            Dx, D_lin = jax.linearize(lambda y: D_full(t, y), x)
            dD_xi = jax.vmap(D_lin)(v)  # (ξ_j·∇) D
            dD = jax.vmap(D_lin)(eye)
        else:
            Dx = D_full(t, x)
            dD_xi = jnp.zeros((k, d, d), dtype)
            dD = jnp.zeros((d, d, d), dtype)
        met = J @ Dx + Dx @ jnp.swapaxes(J, -1, -2) - dD_xi  # (k, d, d)
        f_size2 = jnp.sum(f**2) / ell2 + jnp.sum(Jf**2)
        D_size2 = 4 * jnp.sum(Dx**2) + ell2 * jnp.sum(dD**2)
        return comm, met, f_size2, D_size2, jnp.sum(Dx**2)

    over_points = jax.vmap(at, in_axes=(None, 0, 0, 0))
    comm, met, f_size2, D_size2, D_norm2 = jax.vmap(over_points, in_axes=(0, None, None, None))(
        times, points, vals, jacs
    )
    N = T * P
    s_f = jnp.sqrt(jnp.mean(f_size2))
    s_D = jnp.sqrt(jnp.mean(D_size2))
    nu = s_f + jnp.sqrt(jnp.mean(D_norm2)) / ell2
    # A zero drift gives an all-zero block; any nonzero scale then leaves it zero.
    s_f_safe = jnp.where(s_f > 0, s_f, 1.0)
    s_D_safe = jnp.where(s_D > 0, s_D, 1.0)
    nu_safe = jnp.where(nu > 0, nu, 1.0)

    drift_rows = jnp.swapaxes(comm, -1, -2).reshape(N * d, k) / (ell * s_f_safe * math.sqrt(N))
    upper = [(i, j) for i in range(d) for j in range(i, d)]  # static, row-major (triu_indices)
    iu, ju = jnp.asarray([i for i, _ in upper]), jnp.asarray([j for _, j in upper])
    w = jnp.asarray([1.0 if i == j else math.sqrt(2.0) for i, j in upper], dtype)
    met_ut = met[..., iu, ju] * w  # (T, P, k, m)
    metric_rows = jnp.swapaxes(met_ut, -1, -2).reshape(N * len(upper), k)
    metric_rows = metric_rows / (s_D_safe * math.sqrt(N))
    norm_cols = jnp.concatenate([vals / ell, jacs.reshape(P, k, d * d)], axis=-1)
    norm_rows = jnp.swapaxes(norm_cols, -1, -2).reshape(P * (d + d * d), k) / math.sqrt(P)

    dt_at = _matfree.time_derivative_sizes(
        sde, args, D_full if noise_callable else None, d, dtype
    )

    ft2, Dt2 = jax.vmap(jax.vmap(dt_at, in_axes=(None, 0)), in_axes=(0, None))(
        check_times, points
    )
    r_f = jnp.sqrt(jnp.mean(ft2)) / (ell * nu_safe**2)
    r_D = jnp.sqrt(jnp.mean(Dt2)) / (ell2 * nu_safe**2)
    return SymmetryConditions(
        drift=drift_rows,
        metric=metric_rows,
        norm=norm_rows,
        length_scale=ell,
        drift_scale=s_f,
        noise_scale=s_D,
        rate=nu,
        drift_time_dependence=r_f,
        noise_time_dependence=r_D,
    )


def _checked_conditions(
    sde, family, points, times, check_times, args, inputs_finite, where
) -> SymmetryConditions:
    """`_conditions`, with a runtime error (`eqx.error_if`) for NaN or infinity: in the
    inputs (`inputs_finite`: what could not be checked at trace time, under `jit`/`vmap`), or
    in the conditions themselves (the drift or the noise not finite at the points). Every
    output depends on the checked conditions, so no answer comes out of bad values."""
    cond = _conditions(sde, family, points, times, check_times, args)
    cond = eqx.error_if(
        cond,
        ~inputs_finite,
        f"`{where}`: `args`, `points` or `times` contain NaN or infinity.",
    )
    finite = jnp.array(True)
    for a in jax.tree.leaves(cond):
        finite = finite & jnp.all(jnp.isfinite(a))
    return eqx.error_if(
        cond,
        inputs_finite & ~finite,
        f"`{where}`: the drift or the diffusion (or their derivatives in x or t) is NaN or "
        "infinite at some of the points and times: give points where the system is defined.",
    )


@eqx.filter_jit
def _conditions_jit(sde, family, points, times, check_times, args, inputs_finite):
    return _checked_conditions(
        sde, family, points, times, check_times, args, inputs_finite, "nj.symmetry_conditions"
    )


def _whitening(B: Float[Array, "m k"], rtol) -> tuple[Float[Array, "k k"], Bool[Array, " k"]]:
    """`W` with `(B W)ᵀ(B W) = diag(keep)`: coordinates in which every direction of
    coefficient space is a generator of unit size. Directions that give (to `rtol`) the zero
    field at the points — a family that spans a field twice — are dropped (`keep = False`)."""
    k = B.shape[1]
    if B.shape[0] < k:
        B = jnp.concatenate([B, jnp.zeros((k - B.shape[0], k), B.dtype)], axis=0)
    _, S, VT = jnp.linalg.svd(B, full_matrices=False)
    keep = S > rtol * S[0]
    inv = jnp.where(keep, 1.0 / jnp.where(keep, S, 1.0), 0.0)
    return VT.T * inv[None, :], keep


def _canonical_basis(directions, null):
    """An orthonormal basis (rows) of the span of the null directions, chosen canonically:
    pivoted QR of the orthogonal projector `Π` onto the span picks, one after another, the
    basis field with the largest component in what is left, so a symmetry that *is* a basis
    field comes out as that field. Rows past the number of symmetries are zero.

    `directions` is `(m, k)` with the null rows first. With `Q` (`k × m`) an orthonormal
    basis of the span, `Π = Q Qᵀ` and the column `Π e_j = Q (Qᵀ e_j)` have the norms and
    inner products of the columns of `Qᵀ`, so the pivoted QR of `Qᵀ` (`m × k`) gives the same
    pivots and `Q Q'` the same basis, without forming the `k × k` projector."""
    m, k = directions.shape
    num = jnp.sum(null)
    mk = jnp.arange(m) < num
    N = jnp.where(null[:, None], directions, 0.0).T  # (k, m)
    Q, _ = jnp.linalg.qr(N)
    Q = Q * mk[None, :]
    Qp, _, _ = jax.scipy.linalg.qr(Q.T, pivoting=True, mode="economic")
    B = Q @ Qp  # (k, m): the first `num` columns are the canonical basis
    # Sign: the first significant entry of each basis vector is positive.
    big = jnp.max(jnp.abs(B), axis=0)
    first = jnp.argmax(jnp.abs(B) > 1e-6 * big[None, :], axis=0)
    sign = jnp.sign(B[first, jnp.arange(m)])
    sign = jnp.where(sign == 0, 1.0, sign)
    basis = (B * sign[None, :]).T
    # Order: by the first significant entry (pivots of equal size, e.g. the three rotations
    # of an isotropic system, would otherwise be ordered by round-off).
    order = jnp.argsort(jnp.where(mk, first, k), stable=True)
    return jnp.where(mk[:, None], basis[order], 0.0)


def _split_null(directions, null, values, tol):
    """Split the null directions (rows of `directions` where `null`) into those whose field
    is seen at the points and those whose field vanishes at every point (`values(c)`: the
    values `ξ_c(x_p) / (ℓ √P)`; below `tol` in size): for the latter the points cannot tell
    whether the conditions hold (e.g. a rotation acting outside the subspace the points
    span). The split diagonalises the values' Gram matrix on the null span, so it does not
    depend on how the null directions were rotated. Returns the canonical bases (rows) and
    counts `(basis, num, undetermined_basis, num_undetermined)`."""
    m = directions.shape[0]
    Z = jnp.where(null[:, None], directions, 0.0)
    V = jax.vmap(lambda c: jnp.ravel(values(c)))(Z)  # (m, P d)
    G = V @ V.T
    big = 2.0 * (jnp.trace(G) + 1.0)
    G = G + jnp.diag(jnp.where(null, 0.0, big))
    lam, Q = jnp.linalg.eigh(G)  # the null span first (ascending), the rest at `big`
    num_null = jnp.sum(null)
    first = jnp.arange(m) < num_null
    und = first & (lam <= tol**2)
    det = first & ~und
    R = Q.T @ Z
    # `_canonical_basis` wants its group first: the undetermined rows already are; move the
    # determined ones to the front for theirs.
    order = jnp.argsort(jnp.where(det, 0, 1), stable=True)
    basis = _canonical_basis(R[order], det[order])
    ubasis = _canonical_basis(R, und)
    return basis, jnp.sum(det), ubasis, jnp.sum(und)


def _spectrum(C, W, keep, rtol):
    """Singular values (ascending), unit-size directions, canonical basis, count and cut."""
    A = C @ W
    big = 2.0 * (jnp.linalg.norm(A) + 1.0)
    # Dropped (redundant) directions get the singular value `big`, above every real one
    # (`σ ≤ ‖A‖_F`), so they separate cleanly and the sizes stay fixed (jit, vmap).
    A_aug = jnp.concatenate([A, jnp.diag(jnp.where(keep, 0.0, big))], axis=0)
    _, S, VT = jnp.linalg.svd(A_aug, full_matrices=False)
    S, Z = S[::-1], VT[::-1]
    redundant = S > 0.5 * big
    S = jnp.where(redundant, jnp.inf, S)
    directions = jnp.where(redundant[:, None], 0.0, Z @ W.T)
    # The normalisation makes a broken symmetry's σ of order one, so the cut is `rtol`;
    # relative to the largest σ should that exceed one.
    tol = rtol * jnp.maximum(1.0, jnp.max(jnp.where(redundant, 0.0, S)))
    null = S <= tol
    return S, directions, _canonical_basis(directions, null), jnp.sum(null), tol


def _concrete_count(n, what: str) -> int:
    if isinstance(n, jax.core.Tracer):
        raise ValueError(
            f"`{what}` is a Python list whose length depends on the data, so it is not "
            "available inside `jit`/`vmap`. Use the fixed-size arrays `basis`, "
            "`num_symmetries` (and their `drift_` versions) there."
        )
    if getattr(n, "ndim", 0) != 0:
        raise ValueError(
            f"`{what}` of a batched result (from `vmap`): select one system first, e.g. "
            "`jax.tree.map(lambda a: a[i], res)`."
        )
    return int(n)


class Symmetries(eqx.Module):
    r"""What `nj.find_symmetries` found. All arrays have fixed sizes (`k` = family size), so
    the result can come out of `jit` and `vmap`; the Python lists (`generators`, ...) need a
    concrete, unbatched result.

    **Symmetries (both conditions):**

    (Shapes below are those of the dense path; see **Shapes** for the matrix-free one.)

    - `generators`: list of `nj.Generator`, callables `g(x) -> Array[d]`; their number is the
      dimension of the symmetry algebra found in the family. Their coefficient vectors
      (`coefficients`, shape `(r, k)`) are orthonormal, and chosen canonically (a symmetry
      that is a basis field of the family is returned as that field).
    - `num_symmetries`, `basis` (`(k, k)`: the first `num_symmetries` rows are
      `coefficients`, the other rows zero).
    - `singular_values` (`(k,)`, ascending): the relative residual of the conditions along
      each direction of the family (see `nj.SymmetryConditions`: for a generator of unit size,
      the size of `[ξ, f]` and of the metric defect relative to the terms that must cancel;
      of order one when badly broken). Exact symmetries have `σ ≈ 0` (round-off); the
      smallest nonzero values
      measure how far each near-symmetry is from exact (a perturbation of size `ε` gives
      `σ ∝ ε`). Directions a family spans twice are reported as `inf`.
    - `directions` (`(k, k)`): row `i` is the coefficient vector of the unit-size generator
      with residual `singular_values[i]` (`near_generators` wraps them).

    **Drift-only symmetries** (`[ξ, f] = 0` only, the noise ignored; a superset): the same
    with the prefix `drift_`. A drift-only symmetry that is not in `generators` is broken by
    the noise, and its charge is *not* conserved.

    **Time translation:** `time_translation` is `True` when neither `f` nor `D` depends
    explicitly on `t` (to `tolerance`), so the quasi-energy `H` is conserved;
    `time_dependence` is the measured relative size (`nj.SymmetryConditions`),
    `drift_time_dependence` and `noise_time_dependence` its parts.

    `mask` (`(m,)`): which rows of `basis` are symmetries, usable on batched results.

    **Shapes.** With `method="dense"`, `m = k` (every direction). With
    `method="matrix_free"` or `"commutant"`, `m = num_smallest`: `singular_values`,
    `drift_singular_values` have shape `(m,)` (the smallest, ascending), `directions`,
    `basis`, `drift_directions`, `drift_basis`, `undetermined_basis` shape `(m, k)`;
    `converged` and `iterations` report the eigensolver, and `complete` is `False` when all
    `m` directions are below the cut (there may be more symmetries than returned); for the
    commutant search `converged` says whether its candidates hold every exact symmetry
    (`nj.find_symmetries`, "Commutant"). Dense results have `converged = True`,
    `iterations = 0`, `complete = True`; `method` says which path ran.

    **Undetermined directions.** A null direction whose field vanishes at every sample
    point (e.g. a rotation acting outside the subspace the points span) satisfies the
    conditions there trivially: it is not counted as a symmetry but listed in
    `undetermined_generators` (`undetermined_basis`, `num_undetermined`).

    `tolerance`: the cut on singular values, `rtol · max(1, σ_max)`; `scales`: the length
    `ℓ`, drift rate
    `s_f`, noise scale `s_D` and system rate `ν` used for the normalisation.
    """

    family: AbstractGeneratorFamily
    singular_values: Float[Array, " k"]
    directions: Float[Array, "k k"]
    basis: Float[Array, "k k"]
    num_symmetries: Int[Array, ""]
    drift_singular_values: Float[Array, " k"]
    drift_directions: Float[Array, "k k"]
    drift_basis: Float[Array, "k k"]
    num_drift_symmetries: Int[Array, ""]
    num_redundant: Int[Array, ""]
    time_translation: Bool[Array, ""]
    time_dependence: Float[Array, ""]
    drift_time_dependence: Float[Array, ""]
    noise_time_dependence: Float[Array, ""]
    tolerance: Float[Array, ""]
    scales: dict[str, Array]
    undetermined_basis: Float[Array, "m k"]
    num_undetermined: Int[Array, ""]
    converged: Bool[Array, ""]
    iterations: Int[Array, ""]
    complete: Bool[Array, ""]
    method: str = eqx.field(static=True, default="dense")

    @property
    def mask(self) -> Bool[Array, " m"]:
        """Which rows of `basis` are symmetries (fixed size; works on batched results)."""
        m = self.basis.shape[-2]
        return jnp.arange(m) < jnp.asarray(self.num_symmetries)[..., None]

    @property
    def undetermined_generators(self) -> list[Generator]:
        """Directions that satisfy the conditions only because their field vanishes at every
        sample point (e.g. rotations acting outside the subspace the points span): the
        points cannot tell whether they are symmetries. Not in `generators`."""
        n = _concrete_count(self.num_undetermined, "undetermined_generators")
        return [Generator(self.family, self.undetermined_basis[i]) for i in range(n)]

    @property
    def coefficients(self) -> Float[Array, "r k"]:
        """Orthonormal coefficient vectors (rows) of the symmetries."""
        return self.basis[: _concrete_count(self.num_symmetries, "coefficients")]

    @property
    def generators(self) -> list[Generator]:
        """The symmetries (both conditions): their charges `p·ξ` are conserved."""
        n = _concrete_count(self.num_symmetries, "generators")
        return [Generator(self.family, self.basis[i]) for i in range(n)]

    @property
    def drift_coefficients(self) -> Float[Array, "r k"]:
        return self.drift_basis[: _concrete_count(self.num_drift_symmetries, "drift_coefficients")]

    @property
    def drift_generators(self) -> list[Generator]:
        """Symmetries of the drift alone (`[ξ, f] = 0`), ignoring the noise. Includes
        `generators`; the others are broken by the noise: their charges are NOT conserved."""
        n = _concrete_count(self.num_drift_symmetries, "drift_generators")
        return [Generator(self.family, self.drift_basis[i]) for i in range(n)]

    def near_generators(self, threshold: float) -> list[tuple[float, Generator]]:
        """Approximate symmetries: `(σ, generator)` for every direction with singular value
        `σ ≤ threshold`, ascending (the exact ones first). Each generator has unit size
        (`nj.SymmetryConditions.norm`), so `σ` is its relative symmetry breaking."""
        S = _host_list(self.singular_values)
        if getattr(self.singular_values, "ndim", 1) != 1:
            _concrete_count(self.num_symmetries, "near_generators")
        # Compared in the array's dtype (a Python float `threshold` is cast to it).
        with jax.ensure_compile_time_eval():
            below = _host_list(self.singular_values <= threshold)
        return [
            (float(s), Generator(self.family, self.directions[i]))
            for i, (s, b) in enumerate(zip(S, below))
            if b
        ]

    def __str__(self):
        try:
            gens = self.generators
            drift = self.drift_generators
        except ValueError:
            return repr(self)
        lines = [
            f"{len(gens)} symmetr{'y' if len(gens) == 1 else 'ies'} in "
            f"{type(self.family).__name__} (k = {self.family.size}), tolerance "
            f"{float(self.tolerance):.1e}:"
        ]
        lines += [f"  {g.describe()}" for g in gens]
        if len(drift) > len(gens):
            lines.append(
                f"{len(drift)} drift-only symmetries (the noise breaks "
                f"{len(drift) - len(gens)} of them)"
            )
        S = _host_list(self.singular_values)
        shown = ", ".join(f"{s:.2e}" for s in S[:8])
        lines.append(f"singular values (ascending): {shown}{', ...' if len(S) > 8 else ''}")
        nu = _concrete_count(self.num_undetermined, "num_undetermined")
        if nu:
            lines.append(
                f"{nu} undetermined direction(s): their fields vanish at every point, so the "
                "points cannot tell (see `undetermined_generators`)"
            )
        if self.method == "matrix_free":
            lines.append(
                f"matrix-free: the {len(S)} smallest singular values, "
                f"{int(self.iterations)} LOBPCG iterations"
                + ("" if bool(self.converged) else ", NOT converged")
                + ("" if bool(self.complete) else "; all below the cut: there may be more "
                   "symmetries (raise `num_smallest`)")
            )
        if self.method == "commutant":
            lines.append(
                f"commutant search: the {len(S)} smallest singular values among the "
                "rotations that commute with the linearised drift at the origin"
                + ("" if bool(self.converged) else "; NOT complete: the linearisation has "
                   "too many nearly equal directions (or is not finite), so a symmetry may be "
                   "missed: use method=\"matrix_free\"")
            )
        tt = bool(self.time_translation)
        lines.append(
            f"time translation: {'yes (quasi-energy conserved)' if tt else 'no'} "
            f"(relative time dependence {float(self.time_dependence):.1e})"
        )
        return "\n".join(lines)


@eqx.filter_jit
def _dense_answer(family, C, C_drift, norm, values, rtol, *, time_dependence, scales):
    """The dense search's answer: every singular value of the conditions `C` (all of them)
    and `C_drift` (the drift's alone), in the coefficients whitened by the size rows `norm`
    (any matrices with these right singular vectors and values, e.g. triangular factors).
    `time_dependence = (r_f, r_D)`, `scales`: the normalisation (`length`, `drift`, `noise`,
    `rate`)."""
    W, keep = _whitening(norm, rtol)
    S, dirs, _, _, tol = _spectrum(C, W, keep, rtol)
    S_f, dirs_f, _, _, _ = _spectrum(C_drift, W, keep, rtol)
    basis, num, ubasis, num_u = _split_null(dirs, S <= tol, values, tol)
    basis_f, num_f, _, _ = _split_null(dirs_f, S_f <= tol, values, tol)
    r_f, r_D = time_dependence
    td = jnp.sqrt(r_f**2 + r_D**2)
    return Symmetries(
        family=family,
        singular_values=S,
        directions=dirs,
        basis=basis,
        num_symmetries=num,
        drift_singular_values=S_f,
        drift_directions=dirs_f,
        drift_basis=basis_f,
        num_drift_symmetries=num_f,
        num_redundant=jnp.sum(~keep),
        time_translation=td <= rtol,
        time_dependence=td,
        drift_time_dependence=r_f,
        noise_time_dependence=r_D,
        tolerance=tol,
        scales=scales,
        undetermined_basis=ubasis,
        num_undetermined=num_u,
        converged=jnp.array(True),
        iterations=jnp.array(0),
        complete=jnp.array(True),
        method="dense",
    )


def _find(sde, family, points, times, check_times, args, rtol, inputs_finite) -> Symmetries:
    cond = _checked_conditions(
        sde, family, points, times, check_times, args, inputs_finite, "nj.find_symmetries"
    )
    return _dense_answer(
        family,
        jnp.concatenate([cond.drift, cond.metric], axis=0),
        cond.drift,
        cond.norm,
        _values_op(family, points, cond.length_scale),
        rtol,
        time_dependence=(cond.drift_time_dependence, cond.noise_time_dependence),
        scales=dict(
            length=cond.length_scale, drift=cond.drift_scale, noise=cond.noise_scale,
            rate=cond.rate,
        ),
    )


def _scales_checked(sde, points, times, check_times, args, inputs_finite) -> _matfree.Scales:
    """The normalisation of the conditions (`_matfree.scales`), with the run-time checks of
    the inputs and of the system at the points."""
    sc = _matfree.scales(sde, points, times, check_times, args)
    finite = jnp.array(True)
    for a in jax.tree.leaves(sc):
        finite = finite & jnp.all(jnp.isfinite(a))
    sc = eqx.error_if(
        sc, ~inputs_finite, "`nj.find_symmetries`: `args`, `points` or `times` contain NaN or "
        "infinity."
    )
    return eqx.error_if(
        sc,
        inputs_finite & ~finite,
        "`nj.find_symmetries`: the drift or the diffusion (or their derivatives in x or t) is "
        "NaN or infinite at some of the points and times: give points where the system is "
        "defined.",
    )


@eqx.filter_jit
def _find_affine(sde, family, points, times, check_times, args, rtol, inputs_finite) -> Symmetries:
    """`method="dense"` for an affine family (`ξ_c(x) = M_c x + b_c`): the SVDs of `_find`,
    of the same conditions, with the matrices built column by column by the matrix-free
    operators (`_matfree.operators` applied to the unit coefficient vectors). An affine
    generator's Jacobian is the same at every point and a constant noise gives a single
    metric block, so the matrices hold `(T P d + d² + P d + d²) k` floats instead of the
    `O(P k d²)` of the per-point form (`Rotations(64)`: 0.3 GB instead of ~70 GB). Each
    tall matrix is reduced to its triangular factor (`C = Q R`: the same singular values and
    right singular vectors) before its SVD."""
    sc = _scales_checked(sde, points, times, check_times, args, inputs_finite)
    ops = _matfree.operators(sde, family, points, times, args, sc)
    eye = jnp.eye(family.size, dtype=points.dtype)
    drift = _matfree.flat_block(ops.drift, eye)
    metric = _matfree.flat_block(ops.metric, eye)
    r = lambda A: jnp.linalg.qr(A, mode="r")
    return _dense_answer(
        family,
        r(jnp.concatenate([drift, metric], axis=0)),
        r(drift),
        r(_matfree.flat_block(ops.norm, eye)),
        ops.values,
        rtol,
        time_dependence=(sc.drift_time_dependence, sc.noise_time_dependence),
        scales=dict(length=sc.length, drift=sc.drift, noise=sc.noise, rate=sc.rate),
    )


@eqx.filter_jit
def _find_commutant(
    sde, family, points, times, check_times, args, rtol, inputs_finite, num, q
) -> Symmetries:
    """`method="commutant"` (`nj.Rotations` only, see `_commutant.py`): the dense search of
    `_find_affine` on the span of the `q` candidate plane rotations, whose `num` smallest
    directions are returned as `nj.Rotations` coefficients. `converged` says whether the
    candidates hold every exact symmetry (the eigenvalue window, a finite drift at 0)."""
    sc = _scales_checked(sde, points, times, check_times, args, inputs_finite)
    d = points.shape[1]
    cand, window_ok = _commutant.candidates(sde, times[0], args, d, points.dtype, q)
    drift, vals = _commutant.blocks(
        sde, cand, points, times, args, sc.length,
        _matfree.drift_row_scale(sc, times.shape[0] * points.shape[0]),
    )
    eye = jnp.eye(q, dtype=points.dtype)
    r = lambda A: jnp.linalg.qr(A, mode="r")
    if _matfree.scalar_noise(sde):
        # A scalar `D`: the metric defect `D (A + Aᵀ)` of a rotation is exactly zero.
        C = r(drift)
    else:
        # `d² × q` floats (`find_symmetries` checks the size).
        ops = _matfree.operators(sde, cand, points, times, args, sc)
        C = r(jnp.concatenate([drift, _matfree.flat_block(ops.metric, eye)], axis=0))
    # The size rows: the values at the points and the Jacobians `M_l`, which are orthogonal
    # with `‖M_l‖_F² = 2`; `√2 I` has the same Gram matrix as their `d² × q` block.
    size = jnp.concatenate([vals, math.sqrt(2.0) * eye])
    W, keep = _whitening(r(size), rtol)
    S, dirs, _, _, tol = _spectrum(C, W, keep, rtol)
    S_f, dirs_f, _, _, _ = _spectrum(r(drift), W, keep, rtol)
    lift = jax.vmap(lambda a: _commutant.lift_to_rotations(family, cand, a))
    S, dirs, S_f, dirs_f = S[:num], lift(dirs[:num]), S_f[:num], lift(dirs_f[:num])
    return _smallest_answer(
        family, sc, _values_op(family, points, sc.length), rtol, tol, S, dirs, S_f, dirs_f,
        converged=window_ok,
        iterations=jnp.array(0),
        complete=window_ok & ((S[-1] > tol) & (S_f[-1] > tol) | (num >= q)),
        method="commutant",
    )


def _values_op(family, points, ell):
    """`c ↦ ξ_c(x_p) / (ℓ √P)` at the points (the part of a generator's size they see)."""
    P = points.shape[0]
    return lambda c: jax.vmap(lambda x: family(c, x))(points) / (ell * math.sqrt(P))


@eqx.filter_jit
def _find_matrix_free(
    sde, family, points, times, check_times, args, rtol, inputs_finite, key, num, max_iters
) -> Symmetries:
    sc = _scales_checked(sde, points, times, check_times, args, inputs_finite)
    ops = _matfree.operators(sde, family, points, times, args, sc)
    k = family.size
    block = min(k, num + max(4, num // 2))
    X0 = jax.random.normal(key, (k, block), points.dtype)
    # The LOBPCG residual tolerance, relative to `‖CᵀC‖`: `eps^(3/4)`, so that the vectors
    # are accurate to `eps^(3/4) / gap²` and `σ = ‖C v‖` to round-off for a separated gap.
    tol = float(jnp.finfo(points.dtype).eps) ** 0.75
    # Nonzero singular values: to relative accuracy ~ `value_tol / 2` at least (in practice
    # `value_tol²`, the Rayleigh quotient's error being quadratic).
    value_tol = VALUE_TOL

    # Both problems (all conditions; the drift alone) with one compiled solver: a scan over
    # the weight of the metric block. The drift-only problem starts from the full problem's
    # block (its null space contains theirs; when the noise adds nothing, the start block is
    # already converged).
    def solve(X, w):
        def C(c):
            return ops.drift(c), w * ops.metric(c)

        S, dirs, it, ok, smax, Xb = _matfree.smallest_singular(
            C, ops.norm, k, X, num=num, tol=tol, value_tol=value_tol, max_iters=max_iters,
            precondition=ops.precondition,
        )
        return Xb, (S, dirs, it, ok, smax)

    _, (Ss, Ds, its, oks, smaxs) = jax.lax.scan(
        solve, X0, jnp.asarray([1.0, 0.0], points.dtype)
    )
    S, S_f = Ss[0], Ss[1]
    dirs, dirs_f = Ds[0], Ds[1]
    it, it_f = its[0], its[1]
    ok, ok_f = oks[0], oks[1]
    smax = smaxs[0]
    cut = rtol * jnp.maximum(1.0, smax)
    return _smallest_answer(
        family, sc, ops.values, rtol, cut, S, dirs.T, S_f, dirs_f.T,
        converged=ok & ok_f,
        iterations=it + it_f,
        # All `num` returned directions below the cut: there may be more symmetries.
        complete=(S[-1] > cut) & (S_f[-1] > cut) | (num >= k),
        method="matrix_free",
    )


def _smallest_answer(
    family, sc, values, rtol, tol, S, dirs, S_f, dirs_f, *, converged, iterations, complete,
    method,
) -> Symmetries:
    """The answer of a search that returns only the smallest singular triplets (`S`,
    `dirs` rows: `m × k`; and the drift's alone), with the normalisation `sc`."""
    basis, n_sym, ubasis, num_u = _split_null(dirs, S <= tol, values, tol)
    basis_f, n_f, _, _ = _split_null(dirs_f, S_f <= tol, values, tol)
    td = jnp.sqrt(sc.drift_time_dependence**2 + sc.noise_time_dependence**2)
    return Symmetries(
        family=family,
        singular_values=S,
        directions=dirs,
        basis=basis,
        num_symmetries=n_sym,
        drift_singular_values=S_f,
        drift_directions=dirs_f,
        drift_basis=basis_f,
        num_drift_symmetries=n_f,
        num_redundant=jnp.array(0),
        time_translation=td <= rtol,
        time_dependence=td,
        drift_time_dependence=sc.drift_time_dependence,
        noise_time_dependence=sc.noise_time_dependence,
        tolerance=tol,
        scales=dict(length=sc.length, drift=sc.drift, noise=sc.noise, rate=sc.rate),
        undetermined_basis=ubasis,
        num_undetermined=num_u,
        converged=converged,
        iterations=iterations,
        complete=complete,
        method=method,
    )


def _check_system_dimension(sde, family, args, d: int, dtype, where: str) -> None:
    """The family's dimension `d` against the system's, where the system shows it: the shape
    of a constant diffusion, and what the drift accepts and returns for `x` of shape (d,)."""
    p = f"`{where}`: "
    if not callable(sde.diffusion):
        shape = jnp.shape(sde.diffusion)
        if len(shape) >= 1 and shape[0] != d:
            raise ValueError(
                p + dimension_mismatch(family, shape[0], f"its diffusion has shape {shape}")
            )
    x_s = jax.ShapeDtypeStruct((d,), dtype)
    t_s = jax.ShapeDtypeStruct((), dtype)
    try:
        out = jax.eval_shape(lambda t_, x_: sde.f(t_, x_, args), t_s, x_s)
    except Exception as e:  # noqa: BLE001 - report the user's error with context
        raise ValueError(
            f"{p}calling `drift(t, x, args)` with x of shape ({d},) failed: {e}. (The family "
            f"`{family_label(family)}` is {d}-dimensional, so x has shape ({d},): is the "
            f"system {d}-dimensional?)"
        ) from e
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) == 1 and shape != (d,):
        raise ValueError(
            p
            + dimension_mismatch(family, shape[0], f"its drift returns shape {shape}")
            + f" (`drift(t, x, args)` must return shape ({d},) for x of shape ({d},).)"
        )


def _prepare(sde, family, points, times, args, key, n_points, where: str):
    """Validate the inputs (ValueError at trace time) and fill in the defaults. Returns
    `(points, times, check_times, dtype, inputs_finite)`: NaN or infinity in `args`,
    `points` or `times` raises here when their values are known; `inputs_finite` covers
    the traced ones (checked at run time)."""
    if not isinstance(sde, SDE):
        raise ValueError(f"`{where}`: `sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    if not isinstance(family, AbstractGeneratorFamily):
        raise ValueError(
            f"`{where}`: `family` must be a generator family such as `nj.Rotations(d)`, "
            f"`nj.LinearGenerators(d)` or `nj.VectorFieldBasis([...])`; got "
            f"{type(family).__name__}."
        )
    d = family.dim
    if points is None:
        if d is None:
            raise ValueError(
                f"`{where}`: the family does not know the state dimension; pass `points` "
                "(shape (P, d)) or give the family `d=`."
            )
        if n_points is None:
            n_points = max(32, 4 * d)
        if not _is_int(n_points) or n_points < 1:
            raise ValueError(f"`{where}`: `n_points` must be a positive int, got {n_points!r}.")
        key = jax.random.key(0) if key is None else key
        points = jax.random.normal(key, (int(n_points), d), dtype=jnp.zeros(()).dtype)
    else:
        if n_points is not None:
            raise ValueError(f"`{where}`: pass either `points` or `n_points`, not both.")
        points = as_real_array(points, "points", where)
        if points.ndim != 2 or points.shape[0] < 1:
            raise ValueError(
                f"`{where}`: `points` must have shape (P, d) with P >= 1 (one point per row), "
                f"got shape {points.shape}. For a single point use `x[None]`."
            )
        if d is not None and points.shape[1] != d:
            raise ValueError(
                f"`{where}`: `points` has shape {points.shape} but the family "
                f"`{family_label(family)}` is {d}-dimensional: give points of shape (P, {d})."
            )
        d = points.shape[1]
    dtype = points.dtype
    if times is None:
        times = jnp.zeros((1,), dtype)
        check_times = jnp.asarray(DEFAULT_CHECK_TIMES, dtype)
    else:
        times = as_real_array(times, "times", where, integers=True, dtype=dtype)
        if times.ndim == 0:
            times = times[None]
        if times.ndim != 1 or times.shape[0] < 1:
            raise ValueError(
                f"`{where}`: `times` must be a 1-D array of times (shape (m,)), got shape "
                f"{times.shape}."
            )
        check_times = times

    if family.dim is not None:
        # The family's dimension against what the system shows of its own.
        _check_system_dimension(sde, family, args, d, dtype, where)
    # What the user's functions return, checked once at trace time.
    x_s = jax.ShapeDtypeStruct((d,), dtype)
    t_s = jax.ShapeDtypeStruct((), dtype)
    check_sde_calls(
        sde, t_s, x_s, args, where=where, like="the points", returns="shape",
        tail=". Is the family's / the points' dimension right?",
    )
    try:
        b_struct = jax.eval_shape(family.basis, x_s)
    except ValueError as e:
        raise ValueError(f"`{where}`: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"`{where}`: evaluating the family's vector fields failed: {e}") from e
    if tuple(b_struct.shape) != (family.size, d):
        raise ValueError(
            f"`{where}`: every vector field of the family must return shape ({d},) like `x`; "
            f"the basis evaluated to shape {tuple(b_struct.shape)} instead of "
            f"({family.size}, {d})."
        )

    # NaN or infinity: now if the values are known, else at run time.
    inputs_finite = (
        check_finite(args, "args", where)
        & check_finite(points, "points", where)
        & check_finite(times, "times", where)
    )
    return points, times, check_times, dtype, inputs_finite


def symmetry_conditions(
    sde: SDE,
    family: AbstractGeneratorFamily,
    points: ArrayLike,
    times: ArrayLike | None = None,
    args: Any = None,
) -> SymmetryConditions:
    r"""The matrices of the linearised symmetry conditions (see `nj.SymmetryConditions`),
    the heavy part of `nj.find_symmetries`: jit- and vmap-able, with fixed shapes.

    Column `j` belongs to basis field `ξ_j`; `ξ_c` is a symmetry iff
    `drift @ c = 0` and `metric @ c = 0`, evaluated at every point of `points` (shape
    `(P, d)`) and time of `times` (default `[0]`; the time dependence is then measured at a
    few fixed times, `DEFAULT_CHECK_TIMES`).
    """
    points, times, check_times, _, inputs_finite = _prepare(
        sde, family, points, times, args, None, None, "nj.symmetry_conditions"
    )
    return _conditions_jit(sde, family, points, times, check_times, args, inputs_finite)


def find_symmetries(
    sde: SDE,
    family: AbstractGeneratorFamily,
    *,
    points: ArrayLike | None = None,
    times: ArrayLike | None = None,
    args: Any = None,
    key: PRNGKeyArray | None = None,
    n_points: int | None = None,
    rtol: float | None = None,
    method: str = "auto",
    num_smallest: int | None = None,
    max_iters: int = 2000,
    subspace: int | ArrayLike | None = None,
) -> Symmetries:
    r"""The generators in `family` whose Noether charge `p·ξ` is conserved by `sde`.

    A generator `ξ_c = Σ_j c_j ξ_j` is returned when both conditions of docs/conventions.md hold
    at every point and time sampled:

    1. `[ξ, f] = (∂ξ/∂x) f − (∂f/∂x) ξ = 0` (the flow of `ξ` maps solutions of the drift to
       solutions);
    2. `(∂ξ/∂x) D + D (∂ξ/∂x)ᵀ = (ξ·∇) D` (`ξ` preserves the noise metric; for isotropic
       constant `D`, `ξ` is a translation or a rotation).

    Named cases: a translation `ξ = e` gives the quasi-momentum `p·e`; a rotation `ξ = A x`
    (`A = −Aᵀ`) the quasi-angular momentum `pᵀ A x`; time translation (no explicit `t` in
    `f` and `D`) the quasi-energy `H = pᵀDp + fᵀp` (`res.time_translation`).

    **Arguments:**

    - `sde`: an `nj.SDE`.
    - `family`: the candidates: `nj.Translations(d)`, `nj.Rotations(d)`,
      `nj.LinearGenerators(d)`, `nj.AffineGenerators(d)`, `nj.VectorFieldBasis([...])`, or a
      combination with `|`.
    - `points`: `Array[P, d]`, where the conditions are imposed. Default: `n_points`
      (default `max(32, 4d)`) standard normal points drawn with `key` (default
      `jax.random.key(0)`). Pass points at the scale of your system (e.g. a path's nodes, or
      data) when it is not of order one around the origin.
    - `times`: `Array[m]`, the times at which a time-dependent system is checked (every
      condition must hold at all of them). Default: `t = 0` for the generators; the
      time-translation check then uses a few fixed times (`DEFAULT_CHECK_TIMES`).
    - `args`: passed to the drift and diffusion.
    - `method`: `"dense"` (the SVD of the whole constraint matrix: every singular value,
      exact to round-off; memory `O(P k d²)`, or `O((P d + d²) k)` for an affine family
      with a constant `D`, whose matrix is built column by column by the matrix-free
      operators), `"matrix_free"` (the `num_smallest` smallest singular triplets by a
      preconditioned LOBPCG on the operator applied by JVPs, memory `O(P d + d²)` per
      vector for affine families and constant `D`; see below), `"commutant"`
      (`nj.Rotations(d)` only: the dense search on the span of the `d` rotations that
      commute best with the drift's Jacobian at the origin; see below), or `"auto"`
      (default: dense while its matrices hold at most `2**26` floats for an affine family,
      `2**24` otherwise: at the default points `nj.Rotations(d)` up to `d = 59`,
      `nj.LinearGenerators(d)` up to `d = 49`; beyond, commutant for `nj.Rotations(d)`
      and matrix-free otherwise, or where the commutant search cannot tell).
    - `num_smallest`: how many singular triplets the matrix-free path returns (default 8,
      at most `k`). If all of them are symmetries, `res.complete` is `False`: ask for more.
    - `max_iters`: iteration limit of the matrix-free eigensolver (default 2000;
      `res.converged` says whether it converged).
    - `subspace`: search only the generators acting inside a subspace: an int `r` (the `r`
      leading principal directions of `points`, uncentred) or an array `U` of shape
      `(d, r)`; the family becomes `nj.InSubspace(<same family in dimension r>, U)`.
    - `rtol`: the cut on the (relative, normalised) singular values; default `sqrt(eps)` of
      the points' dtype (`1.5e-8` in float64, `3.5e-4` in float32). Also the threshold for
      dropping redundant basis directions and for the time-translation check.

    **How.** Each condition is evaluated with forward-mode autodiff (`jax.jvp`,
    `jax.linearize`) at the points, for every basis field; the results stack into a matrix
    with one column per basis field. Rows are scaled by the sizes of the drift and the noise,
    and coefficient space by the size of the generators (see `nj.SymmetryConditions`), so
    each singular value is a dimensionless relative residual, of order one for a badly
    broken symmetry, and `rtol` is a relative tolerance by construction (the cut is
    `rtol · max(1, σ_max)`). The symmetries are the null space (SVD). Basis directions that
    give the same field twice are removed first (`res.num_redundant`).

    **Matrix-free.** `C c` and `Cᵀ r` are never formed as matrices: for an affine family
    (`ξ_c = M_c x + b_c`) `[ξ_c, f](x) = M_c f(x) − ∂f(x)(M_c x + b_c)`, one JVP of the drift
    (linearised once per point), and `Cᵀ` by `jax.linear_transpose`. The smallest
    eigenpairs of `CᵀC v = σ² NᵀN v` (`N`: the generator size) come from LOBPCG,
    preconditioned by the exact inverse of a Sylvester approximation of the drift block
    (`nj.find_symmetries` source: `_matfree._preconditioner`); the singular values are then
    recomputed as `‖C v‖` from the converged vectors (the squares `σ²` could not resolve
    `σ < √eps`), so they keep their meaning. Default points: `max(32, 2⌈k/d⌉ + 8)`. The
    result has `m = num_smallest` rows instead of `k` (see `nj.Symmetries`); it assumes a
    family without redundant directions (`num_redundant` is 0).

    **Commutant** (`nj.Rotations(d)`). A rotation `ξ = A x` fixes the origin, so
    `[ξ, f]` has the derivative `[A, J₀]` there (`J₀ = ∂f/∂x(t₀, 0)`, `t₀ = times[0]`): an
    exact symmetry commutes with `J₀`, hence (being antisymmetric) with the symmetric
    `S = (J₀ + J₀ᵀ)/2 + J₀ᵀJ₀/ν` (`ν = ‖J₀‖_F/√d`), and is a combination of the plane
    rotations `u_j u_iᵀ − u_i u_jᵀ` of eigenvectors of `S` with equal eigenvalues. The
    candidates are `d` such pair rotations: every pair of eigenvalues closer than
    `√eps · max|s|`, then those that commute best with `J₀` (smallest `‖[J₀, M]‖_F`, where
    a near-symmetry broken by `ε` sits at `O(ε)`). The conditions are imposed densely,
    exactly, on their span (QR and SVD of `P m d × d` matrices; `d² × d` more for a `D`
    that is not a scalar): every exact symmetry is found to round-off, provided every
    nearly equal pair fits among the `d` — `res.converged` says whether it does (and
    whether `J₀` is finite and nonzero). The singular values are the `num_smallest`
    smallest on that span: for a near-symmetry, the σ (∝ ε) of the candidate generator it
    is close to, an upper bound on the whole family's. Default
    points: 32. Cost: one `d × d` eigendecomposition, `d` JVPs of
    the drift per point and a QR of `P m d × d`: `Rotations(1024)` in seconds.

    **Returns:** an `nj.Symmetries`: `res.generators` (a list), `res.singular_values`
    (ascending, to see approximate symmetries), `res.drift_generators` (drift-only, kept
    apart), `res.time_translation`, ...

    **jit / vmap.** Everything is computed with fixed shapes, so `find_symmetries` can be
    called under `jax.jit`/`jax.vmap` (e.g. `vmap` over `args` of systems with different
    parameters gives batched `singular_values`, `basis` and `num_symmetries`); the lists
    (`generators`, ...) need a concrete, unbatched result. Families holding callables
    (`VectorFieldBasis`) need `eqx.filter_jit`/`eqx.filter_vmap`.

    **Bad input** is refused, never answered: a `ValueError` for a family whose dimension
    differs from the system's (as far as the points, a constant `D` or the drift's output
    show it), complex or boolean `points`/`times`, fewer conditions `P m d` than
    coefficients `k`, and NaN or infinity in `args`, `points` or `times` when their values
    are known; under `jit`/`vmap`, non-finite inputs, or a drift or noise that is not finite
    at the points, raise at run time (`eqx.error_if`).

    **Cost** of the dense search. `P m (k + d)` JVPs of the drift (and of `D` if callable),
    memory `O(P m k d²)`, and an SVD of a `P m (d + d(d+1)/2) × k` matrix; for an affine
    family (`nj.Rotations`, `nj.LinearGenerators`, ...) with a constant `D`, memory
    `O((P m d + d²) k)` and a QR of that matrix followed by an SVD of `k × k`: seconds up
    to `k ≈ 2000` (`nj.Rotations(64)`), and the commutant (rotations) or matrix-free
    search beyond.
    """
    where = "nj.find_symmetries"
    if method not in ("auto", "dense", "matrix_free", "commutant"):
        raise ValueError(
            f"`{where}`: `method` must be \"auto\", \"dense\", \"matrix_free\" or "
            f"\"commutant\", got {method!r}."
        )
    if method == "commutant" and (subspace is not None or type(family) is not Rotations):
        raise ValueError(
            f"`{where}`: `method=\"commutant\"` searches `nj.Rotations(d)` only (rotations "
            "about the origin, without `subspace=`); use \"dense\" or \"matrix_free\"."
        )
    if method == "commutant" and not _commutant_fits(family, sde):
        raise ValueError(
            f"`{where}`: `method=\"commutant\"` with a noise `D` that is not a scalar needs "
            f"the metric conditions as a `d² × d` matrix: too large for d = {family.dim}; "
            "use \"matrix_free\"."
        )
    if num_smallest is not None and (not _is_int(num_smallest) or num_smallest < 1):
        raise ValueError(
            f"`{where}`: `num_smallest` must be a positive int, got {num_smallest!r}."
        )
    if not _is_int(max_iters) or max_iters < 1:
        raise ValueError(f"`{where}`: `max_iters` must be a positive int, got {max_iters!r}.")
    if subspace is not None:
        family = _in_subspace(family, subspace, points, where)
    auto = method == "auto"
    if isinstance(family, AbstractGeneratorFamily) and auto:
        method = _choose_method(
            family, points, times, n_points, callable(getattr(sde, "diffusion", None))
        )
        if method == "matrix_free" and _commutant_fits(family, sde):
            method = "commutant"
    if (
        points is None
        and n_points is None
        and method in ("matrix_free", "commutant")
        and isinstance(family, AbstractGeneratorFamily)
        and family.dim is not None
    ):
        n_points = default_matrix_free_points(family, method)
    points, times, check_times, dtype, inputs_finite = _prepare(
        sde, family, points, times, args, key, n_points, where
    )
    # Fewer conditions than unknowns: the null space cannot be smaller than `k − rows`, so
    # there would be spurious symmetries whatever the system.
    P, d = points.shape
    rows = P * times.shape[0] * d
    # The commutant search has `q` unknowns (its candidates), the others `k`.
    unknowns = _commutant.num_candidates(d) if method == "commutant" else family.size
    if rows < unknowns:
        raise ValueError(
            f"`{where}`: too few points for the family `{family_label(family)}`: its "
            f"{unknowns} coefficients need at least {unknowns} conditions, but "
            f"{P} point(s) x {times.shape[0]} time(s) x d = {d} give only {rows} (any answer "
            f"would contain spurious symmetries). Pass at least {-(-unknowns // d)} points "
            "(more is safer; the default is `n_points = max(32, 4 d)`)."
        )
    if rtol is None:
        rtol = default_rtol(dtype)
    # A real float (Python or NumPy) or a Python int; not bool, NumPy ints or fractions.
    is_float = isinstance(rtol, numbers.Real) and not isinstance(rtol, numbers.Rational)
    if (
        isinstance(rtol, bool)
        or not (is_float or isinstance(rtol, int))
        or not rtol > 0
        or not math.isfinite(rtol)
    ):
        raise ValueError(
            f"`{where}`: `rtol` must be a positive, finite float, got {rtol!r}."
        )
    if method == "dense":
        find = _find_affine if _matfree.is_affine(family) else _find
        return find(
            sde, family, points, times, check_times, args, jnp.asarray(rtol, dtype),
            inputs_finite,
        )
    k = family.size
    num = min(k, 8 if num_smallest is None else int(num_smallest))
    if method == "commutant":
        q = _commutant.num_candidates(d)
        res = _find_commutant(
            sde, family, points, times, check_times, args, jnp.asarray(rtol, dtype),
            inputs_finite, min(num, q), q,
        )
        try:
            window_ok = bool(res.converged)
        except jax.errors.ConcretizationTypeError:
            return res  # under jit: `converged` reports it
        if window_ok or not auto:
            return res
        # Chosen automatically and its candidates may miss a symmetry: search them all.
        method = "matrix_free"
    key = jax.random.key(0) if key is None else key
    # The start block is drawn from a key of its own (the points may come from `key`).
    key = jax.random.fold_in(key, 1)
    return _find_matrix_free(
        sde, family, points, times, check_times, args, jnp.asarray(rtol, dtype),
        inputs_finite, key, num, int(max_iters),
    )


def _same_family(family, r: int):
    """The built-in family `family` in dimension `r` (`nj.Rotations(d)` -> `nj.Rotations(r)`)."""
    if isinstance(family, FamilySum):
        return FamilySum(tuple(_same_family(f, r) for f in family.families))
    if type(family) in (Rotations, LinearGenerators, Translations, AffineGenerators):
        return type(family)(r)
    raise ValueError(
        "`nj.find_symmetries`: `subspace=` needs a built-in affine family "
        "(`nj.Rotations`, `nj.LinearGenerators`, `nj.Translations`, `nj.AffineGenerators` "
        f"or a `|` of them), got {type(family).__name__}; for your own, use "
        "`nj.InSubspace(base, U)` directly."
    )


def _in_subspace(family, subspace, points, where):
    """`subspace=`: an int `r` (the `r` leading principal directions of `points`, uncentred:
    the span the states explore around the origin, where the family's generators act) or an
    array `U` of shape `(d, r)` (its columns are orthonormalised)."""
    if not isinstance(family, AbstractGeneratorFamily) or family.dim is None:
        raise ValueError(f"`{where}`: `subspace=` needs a family of known dimension.")
    d = family.dim
    if _is_int(subspace):
        r = int(subspace)
        if points is None:
            raise ValueError(
                f"`{where}`: `subspace={r}` takes the leading principal directions of "
                "`points`: pass `points` (e.g. states from trajectories), or pass `U` itself."
            )
        pts = as_real_array(points, "points", where)
        if pts.ndim != 2 or pts.shape[1] != d:
            raise ValueError(f"`{where}`: `points` must have shape (P, {d}), got {pts.shape}.")
        if not 1 <= r <= d:
            raise ValueError(f"`{where}`: `subspace` must be between 1 and d = {d}, got {r}.")
        _, _, VT = jnp.linalg.svd(pts, full_matrices=False)
        U = VT[:r].T
    else:
        U = as_real_array(subspace, "subspace", where)
        if U.ndim != 2 or U.shape[0] != d or not 1 <= U.shape[1] <= d:
            raise ValueError(
                f"`{where}`: `subspace` must be an int r or an array of shape ({d}, r) whose "
                f"columns span the subspace, got shape {U.shape}."
            )
        U, _ = jnp.linalg.qr(U)
    return InSubspace(_same_family(family, U.shape[1]), U)


# Above this many floats in the dense constraint matrices, `method="auto"` goes matrix-free.
DENSE_LIMIT = 2**24
# The same for the compact matrices of an affine family (`_find_affine`: 0.5 GB in float64).
AFFINE_DENSE_LIMIT = 2**26
VALUE_TOL = 1e-4


def default_matrix_free_points(family, method: str = "matrix_free") -> int:
    """Default number of sample points of the matrix-free (and commutant) search: twice as
    many drift conditions as unknowns (`P d ≥ 2 k`, `k` the family's size or the commutant
    search's number of candidates), plus 8, at least 32."""
    d, k = family.dim, family.size
    if method == "commutant":
        k = _commutant.num_candidates(d)
    return max(32, 2 * (-(-k // d)) + 8)


def _commutant_fits(family, sde) -> bool:
    """`nj.Rotations(d)`, and a scalar constant `D` or a metric block of at most
    `AFFINE_DENSE_LIMIT` floats (`method="commutant"`)."""
    if type(family) is not Rotations:
        return False
    if _matfree.scalar_noise(sde):
        return True
    d = family.dim
    return d * d * _commutant.num_candidates(d) <= AFFINE_DENSE_LIMIT


def _choose_method(family, points, times, n_points, noise_callable: bool) -> str:
    """`"dense"` when the dense matrices hold at most `DENSE_LIMIT` floats (the per-point form:
    drift, metric and size rows, `k` columns, and the basis Jacobians) or, for an affine
    family, `AFFINE_DENSE_LIMIT` (its compact form, see `_find_affine`); else
    `"matrix_free"`."""
    d = family.dim
    if d is None:
        d = jnp.shape(points)[1] if points is not None and jnp.ndim(points) == 2 else None
    if d is None:
        return "dense"
    P = (
        jnp.shape(points)[0]
        if points is not None and jnp.ndim(points) == 2
        else (n_points if _is_int(n_points) else max(32, 4 * d))
    )
    T = 1 if times is None else max(1, int(jnp.size(times)))
    k = family.size
    if _matfree.is_affine(family):
        # drift rows, metric rows (one block, or one per sample), size rows, and the `k`
        # generator matrices the columns are built from
        metric = T * P * d * d if noise_callable else d * d
        floats = k * (T * P * d + metric + P * d + 2 * d * d)
        return "dense" if floats <= AFFINE_DENSE_LIMIT else "matrix_free"
    floats = k * (P * T * (d + d * (d + 1) // 2) + P * (d + 2 * d * d))
    return "dense" if floats <= DENSE_LIMIT else "matrix_free"
