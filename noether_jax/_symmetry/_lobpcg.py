r"""A small block eigensolver: LOBPCG for the *smallest* eigenpairs of `A v = λ B v`.

`A` and `B` are symmetric positive semi-definite operators given as functions on blocks
(`(k, n) -> (k, n)`), `B` positive definite on the vectors searched. One iteration
(Knyazev 2001) is a Rayleigh–Ritz step on the span of the current block `X`, the
(preconditioned) residuals `W = T(A X − B X Θ)` and the previous search directions `P`:

$$[X\ W\ P]^\top A\,[X\ W\ P]\,y = θ\,[X\ W\ P]^\top B\,[X\ W\ P]\,y .$$

`W` and `P` are first made `B`-orthogonal to `X` and `B`-orthonormalised by an eigenvalue
decomposition of their Gram matrix (SVQB, Stathopoulos & Wu 2002): columns that are
(numerically) dependent are dropped by zeroing them, so the shapes stay fixed and the loop
runs in `lax.while_loop`. The new `X` and `P` get `A` and `B` applied afresh (not by the
usual recurrences through the small transformations, which can be large: the vectors and
their images then drift apart and convergence stalls near `√eps`), so one iteration applies
`A` and `B` to `3n` vectors. Converged columns are soft-locked (no new residual direction).

`jax.experimental.sparse.linalg.lobpcg_standard` finds the *largest* eigenvalues of a standard
problem; a shift `λ_max − A` would make the wanted ones largest, but it also flattens their
relative gaps (they sit next to `λ_max` instead of `0`), so convergence is no faster and the
small eigenvalues lose their relative accuracy. Hence this generalised, smallest-first version.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def _sym(G):
    return 0.5 * (G + G.T)


def _svqb(Q, AQ, BQ, drop):
    """`B`-orthonormalise the columns of `Q` (and transform `AQ`, `BQ` alike). Columns of
    relative `B`-norm below `drop` after orthogonalisation are set to zero (`keep = False`)."""
    G = _sym(Q.T @ BQ)
    s = jnp.sqrt(jnp.clip(jnp.diag(G), 0.0))
    smax = jnp.max(s)
    ok = s > drop * jnp.where(smax > 0, smax, 1.0)
    Dinv = jnp.where(ok, 1.0 / jnp.where(ok, s, 1.0), 0.0)
    Gs = Dinv[:, None] * G * Dinv[None, :]
    th, V = jnp.linalg.eigh(Gs)
    keep = th > drop * jnp.maximum(jnp.max(th), 1e-300)
    T = Dinv[:, None] * V * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, th, 1.0)), 0.0)
    return Q @ T, AQ @ T, BQ @ T, keep


def _b_orthogonalise(Q, AQ, BQ, X, AX, BX):
    # Q ← Q − X (BXᵀ Q): B-orthogonal to the B-orthonormal X (twice, for round-off).
    for _ in range(2):
        H = BX.T @ Q
        Q, AQ, BQ = Q - X @ H, AQ - AX @ H, BQ - BX @ H
    return Q, AQ, BQ


def lobpcg_smallest(
    A: Callable[[Array], Array],
    B: Callable[[Array], Array],
    X0: Float[Array, "k n"],
    *,
    num_wanted: int,
    tol: float,
    value_tol: float = 0.0,
    max_iters: int,
    precondition: Callable[[Array], Array] | None = None,
) -> tuple[
    Float[Array, " n"], Float[Array, "k n"], Int[Array, ""], Bool[Array, ""], Float[Array, ""]
]:
    r"""The `n` smallest eigenpairs of `A v = λ B v`, from the start block `X0`.

    Stops when the first `num_wanted` residuals satisfy
    `‖A x_i − θ_i B x_i‖ ≤ max(tol · θ_max, value_tol · θ_i) ‖B x_i‖`, where `θ_max` is the
    largest Ritz value seen (an estimate of `‖A‖` in the `B`-metric), or after `max_iters`
    iterations.

    Returns `(θ, X, iterations, converged, θ_max)`: Ritz values (ascending), `B`-orthonormal
    vectors (columns), and the largest Ritz value seen (a lower bound on `λ_max`).
    """
    n = X0.shape[1]
    dtype = X0.dtype
    drop = 10 * jnp.finfo(dtype).eps ** 0.5 * jnp.finfo(dtype).eps ** 0.25
    T = (lambda R: R) if precondition is None else precondition

    X, AX, BX, _ = _svqb(X0, A(X0), B(X0), drop)
    # Rayleigh–Ritz on X alone.
    th, Y = jnp.linalg.eigh(_sym(X.T @ AX))
    X, AX, BX = X @ Y, AX @ Y, BX @ Y
    Pz = jnp.zeros_like(X)
    lam_max = jnp.max(jnp.abs(th))

    def residual_ok(th, AX, BX, lam_max):
        R = AX - BX * th[None, :]
        rn = jnp.linalg.norm(R, axis=0)
        bn = jnp.linalg.norm(BX, axis=0)
        # Converged: a residual at round-off level (for the null and near-null vectors,
        # whose directions matter), or small relative to the eigenvalue itself
        # (`|θ − λ| ≤ ‖r‖`, so θ has relative accuracy `value_tol`: enough for the
        # singular values of a cluster, whose vectors are not unique anyway).
        ok = (rn <= tol * jnp.maximum(lam_max, jnp.finfo(dtype).tiny) * bn) | (
            rn <= value_tol * jnp.abs(th) * bn
        )
        return R, ok

    def cond(state):
        it, _, _, _, _, _, _, _, _, done = state
        return (it < max_iters) & ~done

    def body(state):
        it, th, X, AX, BX, P, AP, BP, lam_max, _ = state
        R, conv = residual_ok(th, AX, BX, lam_max)
        # Soft locking: converged columns add no new direction (their residual is noise).
        W = T(R) * (~conv)[None, :]
        Q = jnp.concatenate([W, P], axis=1)
        AQ = jnp.concatenate([A(W), AP], axis=1)
        BQ = jnp.concatenate([B(W), BP], axis=1)
        Q, AQ, BQ = _b_orthogonalise(Q, AQ, BQ, X, AX, BX)
        Q, AQ, BQ, keep = _svqb(Q, AQ, BQ, drop)
        Q, AQ, BQ = _b_orthogonalise(Q, AQ, BQ, X, AX, BX)
        S = jnp.concatenate([X, Q], axis=1)
        AS = jnp.concatenate([AX, AQ], axis=1)
        H = _sym(S.T @ AS)
        # Dropped columns are zero: give them a Ritz value above every real one
        # (Gershgorin: of the size of `‖H‖`, so the small eigenvalues keep their accuracy).
        big = 2.0 * jnp.max(jnp.sum(jnp.abs(H), axis=1)) + jnp.finfo(dtype).tiny
        H = H + jnp.diag(jnp.concatenate([jnp.zeros((n,), dtype), jnp.where(keep, 0.0, big)]))
        th_all, Y = jnp.linalg.eigh(H)
        lam_max = jnp.maximum(lam_max, jnp.max(jnp.where(th_all < 0.5 * big, th_all, 0.0)))
        Yn = Y[:, :n]
        # The new block and search directions (the part of the step outside X), with
        # `A`, `B` applied afresh: recurrences through the (possibly large) transformations
        # above would let a vector and its images drift apart, and stall convergence.
        Xn = S @ Yn
        Pn = Q @ Yn[n:]
        # B-orthonormalise Xn by its Gram matrix (B applied once to [Xn, Pn] together).
        XP = jnp.concatenate([Xn, Pn], axis=1)
        BXP = B(XP)
        Xn, _, BXn, _ = _svqb(Xn, Xn, BXP[:, :n], drop)
        BPn = BXP[:, n:]
        AXP = A(jnp.concatenate([Xn, Pn], axis=1))
        AXn, APn = AXP[:, :n], AXP[:, n:]
        th, Z = jnp.linalg.eigh(_sym(Xn.T @ AXn))
        Xn, AXn, BXn = Xn @ Z, AXn @ Z, BXn @ Z
        _, ok = residual_ok(th, AXn, BXn, lam_max)
        return it + 1, th, Xn, AXn, BXn, Pn, APn, BPn, lam_max, jnp.all(ok[:num_wanted])

    _, ok0 = residual_ok(th, AX, BX, lam_max)
    done0 = jnp.all(ok0[:num_wanted])
    state = (jnp.array(0), th, X, AX, BX, Pz, jnp.zeros_like(X), jnp.zeros_like(X), lam_max, done0)
    it, th, X, AX, BX, _, _, _, lam_max, done = jax.lax.while_loop(cond, body, state)
    return th, X, it, done, lam_max
