r"""Matrix-free symmetry detection: the constraint operator applied, never formed.

The symmetry conditions of `nj.SymmetryConditions` are linear in the coefficients `c`. Here
the normalised constraint operator `C` (drift rows `[ξ_c, f](t, x) / (ℓ s_f √N)`, metric
rows `(∂ξ_c D + D ∂ξ_cᵀ − (ξ_c·∇)D) / (s_D √N)`) and the generator-size operator `N`
(`(ξ_c(x)/ℓ, ∂ξ_c/∂x) / √P`) are applied to a coefficient vector by forward-mode autodiff,
and their transposes by `jax.linear_transpose`:

- an affine family (`ξ_c(x) = M_c x + b_c`, e.g. `nj.Rotations(d)`, `nj.LinearGenerators(d)`)
  gives `[ξ_c, f](x) = M_c f(x) − ∂f(x)·(M_c x + b_c)`: one JVP of the drift per point
  (through `jax.linearize`, linearised once), and `M_c` from `family.affine(c)` by index
  arithmetic. Memory `O(P d + d²)` per vector; never `O(k²)` or `O(k d²)`.
- a constant noise `D` gives the metric defect `M_c D + D M_cᵀ`, the same at every sample
  (one `d × d` block); a state-dependent `D` gives one block per sample (memory `O(N d²)`).
- other families use JVPs of `x ↦ ξ_c(x)` (and, for the size and the metric, its Jacobian
  at each point: memory `O(P d²)` per vector).

The generalised eigenproblem `CᵀC v = σ² NᵀN v` is solved for its smallest eigenpairs by
LOBPCG (`_lobpcg.py`). Its eigenvalues are squares, so they cannot resolve `σ` below
`√eps ‖C‖`; the singular values are therefore recomputed from the converged vectors as
`σ = ‖C v‖` (an SVD of the small block `C V`), accurate to `eps ‖C‖` plus
`‖residual‖ / gap` — far below the cut `rtol` for a separated null space.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._families import AbstractAffineFamily, FamilySum
from ._lobpcg import lobpcg_smallest


def is_affine(family) -> bool:
    if isinstance(family, AbstractAffineFamily):
        return True
    return isinstance(family, FamilySum) and family.is_affine()


def _full_metric(D: Array, d: int) -> Float[Array, "d d"]:
    """`D` (a scalar, a diagonal `(d,)` or a `(d, d)` matrix) as a `(d, d)` matrix."""
    if D.ndim == 0:
        return D * jnp.eye(d, dtype=D.dtype)
    if D.ndim == 1:
        return jnp.diag(D)
    return D


def time_derivative_sizes(sde, args, D_full, d: int, dtype):
    """`(t, x) ↦ (|∂f/∂t|², ‖∂D/∂t‖²_F)` at one sample (`D_full`: `D` as a `(d, d)`
    matrix, or `None` for a constant `D`), by forward mode in `t`."""

    def sizes(t, x):
        one = jnp.ones_like(t)
        ft = jax.jvp(lambda s: sde.f(s, x, args), (t,), (one,))[1]
        if D_full is not None:
            Dt = jax.jvp(lambda s: D_full(s, x), (t,), (one,))[1]
        else:
            Dt = jnp.zeros((d, d), dtype)
        return jnp.sum(ft**2), jnp.sum(Dt**2)

    return sizes


class Scales(eqx.Module):
    """The normalisation of `nj.SymmetryConditions`, computed without the family."""

    length: Float[Array, ""]
    drift: Float[Array, ""]
    noise: Float[Array, ""]
    rate: Float[Array, ""]
    drift_time_dependence: Float[Array, ""]
    noise_time_dependence: Float[Array, ""]
    jac_gram: Float[Array, "d d"]  # mean over samples of `JᵀJ`, `J = ∂f/∂x` (preconditioner)
    jac_mean: Float[Array, "d d"]  # mean of `J` (preconditioner)


def scales(sde, points, times, check_times, args) -> Scales:
    """`ℓ`, `s_f`, `s_D`, `ν` and the relative time dependences, with the formulas of
    `nj.SymmetryConditions`. The Jacobian norms `‖∂f/∂x‖_F` (and `‖∂D/∂x‖`) are computed
    point by point and their means accumulated (`lax.scan`), so memory stays `O(d²)` (`O(d³)`
    for a callable `D`)."""
    P, d = points.shape
    dtype = points.dtype
    noise_callable = callable(sde.diffusion)
    eye = jnp.eye(d, dtype=dtype)
    ell2 = jnp.mean(jnp.sum(points**2, axis=-1)) / d
    ell2 = jnp.where(ell2 > 0, ell2, 1.0)

    def D_full(t, x):
        return _full_metric(sde.D(t, x, args), d)

    def at(tx):
        t, x = tx
        f, f_lin = jax.linearize(lambda y: sde.f(t, y, args), x)
        Jf = jax.vmap(f_lin)(eye)
        if noise_callable:
            Dx, D_lin = jax.linearize(lambda y: D_full(t, y), x)
            dD = jax.vmap(D_lin)(eye)
            D_size2 = 4 * jnp.sum(Dx**2) + ell2 * jnp.sum(dD**2)
        else:
            Dx = D_full(t, x)
            D_size2 = 4 * jnp.sum(Dx**2)
        # `Jf` holds the columns `∂f/∂x_i` as rows: `Jf = Jᵀ`.
        return (
            jnp.sum(f**2) / ell2 + jnp.sum(Jf**2), D_size2, jnp.sum(Dx**2), Jf @ Jf.T, Jf.T
        )

    T = times.shape[0]
    tt = jnp.repeat(times, P)
    xx = jnp.tile(points, (T, 1))
    f_size2, D_size2, D_norm2, JtJ, Jm = _mean_over_samples(at, tt, xx)
    s_f = jnp.sqrt(f_size2)
    s_D = jnp.sqrt(D_size2)
    nu = s_f + jnp.sqrt(D_norm2) / ell2
    nu_safe = jnp.where(nu > 0, nu, 1.0)

    dt_sizes = time_derivative_sizes(sde, args, D_full if noise_callable else None, d, dtype)

    def dt_at(tx):
        return dt_sizes(*tx)

    Tc = check_times.shape[0]
    ft2, Dt2 = jax.lax.map(
        dt_at, (jnp.repeat(check_times, P), jnp.tile(points, (Tc, 1))), batch_size=8
    )
    ell = jnp.sqrt(ell2)
    return Scales(
        length=ell,
        drift=s_f,
        noise=s_D,
        rate=nu,
        drift_time_dependence=jnp.sqrt(jnp.mean(ft2)) / (ell * nu_safe**2),
        noise_time_dependence=jnp.sqrt(jnp.mean(Dt2)) / (ell2 * nu_safe**2),
        jac_gram=JtJ,
        jac_mean=Jm,
    )


def _mean_over_samples(fn, tt, xx, batch: int = 8):
    """The mean of `fn((t, x))` (a tuple of arrays) over the samples `(tt[i], xx[i])`,
    accumulated `batch` samples at a time: memory of one batch, not of every sample (the
    `d × d` Jacobian products of `scales` at a thousand points and `d = 1024` would take
    17 GB)."""
    n = tt.shape[0]
    pad = -n % batch
    weight = (jnp.arange(n + pad) < n).astype(xx.dtype).reshape(-1, batch)
    tt = jnp.concatenate([tt, jnp.broadcast_to(tt[-1:], (pad,))]).reshape(-1, batch)
    xx = jnp.concatenate([xx, jnp.broadcast_to(xx[-1:], (pad, xx.shape[1]))])
    xx = xx.reshape(-1, batch, xx.shape[1])
    many = jax.vmap(lambda t, x: fn((t, x)))

    def add(total, chunk):
        t, x, w = chunk
        out = many(t, x)
        return jax.tree.map(lambda a, o: a + jnp.tensordot(w, o, axes=1), total, out), None

    zeros = jax.tree.map(
        lambda o: jnp.zeros(o.shape[1:], o.dtype), jax.eval_shape(many, tt[0], xx[0])
    )
    total, _ = jax.lax.scan(add, zeros, (tt, xx, weight))
    return jax.tree.map(lambda a: a / n, total)


def linearised_drift(sde, points, times, args):
    """The drift at every sample, `F` of shape `(T, P, d)`, and its linearisation
    `V ↦ ∂f(t, x_p)·V[t, p]` (`jax.linearize`, once for every product)."""
    T, (P, d) = times.shape[0], points.shape

    def f_all(X):
        return jax.vmap(lambda t, Xt: jax.vmap(lambda x: sde.f(t, x, args))(Xt))(times, X)

    return jax.linearize(f_all, jnp.broadcast_to(points, (T, P, d)))


def drift_row_scale(sc: Scales, num_samples: int):
    """The factor `1 / (ℓ s_f √N)` of the drift rows (`nj.SymmetryConditions`)."""
    s_f = jnp.where(sc.drift > 0, sc.drift, 1.0)
    return 1.0 / (sc.length * s_f * math.sqrt(num_samples))


def scalar_noise(sde) -> bool:
    """A constant scalar `D` (then no rotation has a metric defect)."""
    return not callable(sde.diffusion) and jnp.ndim(sde.diffusion) == 0


class Operators(eqx.Module):
    """The linear maps `c ↦ C c` (drift and metric parts) and `c ↦ N c` as closures."""

    drift: object
    metric: object
    norm: object
    values: object  # `c ↦ ξ_c(x_p) / (ℓ √P)`: the part of the size seen at the points
    precondition: object  # blocks (k, n) -> (k, n), or None


def operators(sde, family, points, times, args, sc: Scales):
    P, d = points.shape
    T = times.shape[0]
    N = T * P
    dtype = points.dtype
    ell = sc.length
    s_D = jnp.where(sc.noise > 0, sc.noise, 1.0)
    affine = is_affine(family)
    noise_callable = callable(sde.diffusion)
    Xs = jnp.broadcast_to(points, (T, P, d))
    F, f_lin = linearised_drift(sde, points, times, args)  # F: (T, P, d)
    drift_scale = drift_row_scale(sc, N)

    if noise_callable:

        def D_all(X):
            return jax.vmap(
                lambda t, Xt: jax.vmap(lambda x: _full_metric(sde.D(t, x, args), d))(Xt)
            )(times, X)

        Dxs, D_lin = jax.linearize(D_all, Xs)  # (T, P, d, d)
    else:
        Dc = _full_metric(jnp.asarray(sde.D(times[0], points[0], args), dtype), d)

    def values(c):
        if affine:
            M, b = family.affine(c)
            return points @ M.T + b
        return jax.vmap(lambda x: family(c, x))(points)

    def jac_along(c, V):
        # `∂ξ_c(x) · v` at the points, for `V` of shape (T, P, d).
        if affine:
            M, _ = family.affine(c)
            return V @ M.T
        return jax.vmap(
            lambda Vt: jax.vmap(lambda x, v: jax.jvp(lambda y: family(c, y), (x,), (v,))[1])(
                points, Vt
            )
        )(V)

    def jacobians(c):
        # `∂ξ_c/∂x`: one matrix (affine), or one per point.
        if affine:
            return family.affine(c)[0]
        return jax.vmap(jax.jacfwd(lambda y: family(c, y)))(points)

    def drift(c):
        V = values(c)
        return (jac_along(c, F) - f_lin(jnp.broadcast_to(V, (T, P, d)))) * drift_scale

    def metric(c):
        J = jacobians(c)
        if noise_callable:
            V = jnp.broadcast_to(values(c), (T, P, d))
            JD = J @ Dxs if J.ndim == 2 else J[None] @ Dxs
            E = JD + jnp.swapaxes(JD, -1, -2) - D_lin(V)
            return E / (s_D * math.sqrt(N))
        if J.ndim == 2:
            JD = J @ Dc
            return (JD + JD.T) / s_D
        JD = J @ Dc  # (P, d, d): a family that is not affine, a constant D
        return (JD + jnp.swapaxes(JD, -1, -2)) / (s_D * math.sqrt(P))

    def norm(c):
        J = jacobians(c)
        vals = values(c) / (ell * math.sqrt(P))
        return vals, (J if J.ndim == 2 else J / math.sqrt(P))

    def vals_only(c):
        return values(c) / (ell * math.sqrt(P))

    precondition = _preconditioner(family, points, F, sc) if affine else None
    return Operators(
        drift=drift, metric=metric, norm=norm, values=vals_only, precondition=precondition
    )


def _preconditioner(family, points, F, sc: Scales):
    r"""An approximate inverse of the drift block's Gram operator for affine families.

    For `ξ = M x + b` the drift residual at a sample is `M f − J M x − J b`. It does not
    change when `f` is replaced by `f' = f − α x` (`J' = J − α I`): `[M x, x] = 0`. With
    `α = mean tr J / d` the large isotropic part (`−x` in a network `−x + W φ(x)`) drops out,
    and neglecting the correlation between `f'` and `J'` the Gram operator becomes the
    generalised Sylvester operator

    $$K(M) = M F' + \bar G M X,\qquad F' = \sum f' f'^\top,\ X = \sum x x^\top,\
    \bar G = \operatorname{mean} J'^\top J',$$

    inverted exactly by an eigendecomposition `Ḡ = U g Uᵀ` and the generalised one
    `F' V = X V φ`, `Vᵀ X V = I`: `K⁻¹(R) = U [(Uᵀ R V) / (g_i + φ_j)] Vᵀ`. In coefficient
    space (`M = L c`, `L` = `family.affine`) the preconditioner is `Lᵀ K⁻¹ L` (the offsets
    `b` scaled by `1 / mean tr Ḡ`). Setup `O(d³)`, each application `O(d³)`: the cost of
    one application of the operator itself."""
    P, d = points.shape
    Fs = F.reshape(-1, d)
    Xs = jnp.broadcast_to(points, F.shape).reshape(-1, d)
    alpha = jnp.trace(sc.jac_mean) / d
    Fp = Fs - alpha * Xs
    Fg = Fp.T @ Fp
    Xg = Xs.T @ Xs
    # mean (J − αI)ᵀ(J − αI)
    G = sc.jac_gram - alpha * (sc.jac_mean + sc.jac_mean.T) + alpha**2 * jnp.eye(d)
    g, U = jnp.linalg.eigh(0.5 * (G + G.T))
    g = jnp.clip(g, 0.0)
    # The generalised eigenproblem `F' v = φ X v` through `X = L Lᵀ` (X regularised).
    Lx = jnp.linalg.cholesky(Xg + 1e-12 * jnp.trace(Xg) / d * jnp.eye(d))
    Li = jax.scipy.linalg.solve_triangular(Lx, jnp.eye(d), lower=True)
    Fl = Li @ Fg @ Li.T
    phi, Z = jnp.linalg.eigh(0.5 * (Fl + Fl.T))
    V = Li.T @ Z  # Vᵀ X V = I, Vᵀ F' V = diag(φ)
    # K(U Y Vᵀ) V = U (Y φ + g Y): divide by `g_i + φ_j` (bounded away from zero).
    den = g[:, None] + jnp.clip(phi, 0.0)[None, :]
    den = jnp.maximum(den, 1e-12 * jnp.max(den))
    gbar = jnp.maximum(jnp.trace(G) / d, jnp.finfo(points.dtype).tiny)

    def Kinv(R):
        return U @ (((U.T @ R @ V) / den) @ V.T)

    def one(r):
        M, b = family.affine(r)
        return family.affine_transpose(Kinv(M), b / gbar)

    return jax.vmap(one, in_axes=1, out_axes=1)


def _gram(op, k, dtype):
    """`c ↦ opᵀ(op(c))` on blocks `(k, n)`, the transpose by `jax.linear_transpose`."""
    c0 = jnp.zeros((k,), dtype)
    opT = jax.linear_transpose(op, c0)

    def one(c):
        return opT(op(c))[0]

    return jax.vmap(one, in_axes=1, out_axes=1)


def flat_block(op, V):
    """The matrix `[op(v_1), ..., op(v_n)]` (rows: every output entry)."""

    def one(v):
        return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(op(v))])

    return jax.vmap(one, in_axes=1, out_axes=1)(V)


def smallest_singular(C, Nop, k, X0, *, num, tol, value_tol, max_iters, precondition=None):
    """The `num` smallest generalised singular triplets of `(C, N)`: `σ_i = ‖C v_i‖` with
    `‖N v_i‖ = 1`, ascending. Returns `(σ, V (k, num), iterations, converged, σ_max, X)`
    (`σ_max`: the largest generalised singular value seen, a lower bound; `X`: the whole
    final block, to start a related problem from)."""
    dtype = X0.dtype
    A = _gram(C, k, dtype)
    B = _gram(Nop, k, dtype)
    _, X, it, ok, lam_max = lobpcg_smallest(
        A, B, X0, num_wanted=num, tol=tol, value_tol=value_tol, max_iters=max_iters,
        precondition=precondition,
    )
    # σ from `C V` itself (not from the squared eigenvalues): an SVD of the tall block. The
    # columns of X are N-orthonormal; re-orthonormalise them exactly first (`N X = Q R`).
    NX = flat_block(Nop, X)
    _, Rn = jnp.linalg.qr(NX)
    X = jax.scipy.linalg.solve_triangular(Rn.T, X.T, lower=True).T
    CX = flat_block(C, X)
    _, S, VT = jnp.linalg.svd(CX, full_matrices=False)
    S, V = S[::-1], VT[::-1].T
    dirs = X @ V
    return S[:num], dirs[:, :num], it, ok, jnp.sqrt(jnp.maximum(lam_max, 0.0)), dirs
