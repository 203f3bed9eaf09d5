r"""Candidate rotations from the linearisation at the origin (`method="commutant"`).

Every rotation `ξ = A x` fixes the origin, so its bracket with the drift,
`[ξ, f](x) = A f(x) − J(x) A x`, has the derivative `[A, J(0)]·` at `x = 0` (with
`J = ∂f/∂x`): an exact rotation symmetry commutes with `J₀ = J(t₀, 0)`. Being antisymmetric,
it then also commutes with `J₀ᵀ`, and so with the *symmetric* matrix

$$S = \tfrac12 (J_0 + J_0^\top) + J_0^\top J_0 / \nu, \qquad \nu = \|J_0\|_F / \sqrt d .$$

A matrix that commutes with a symmetric `S = U diag(s) Uᵀ` is block diagonal in the basis
`U`, with one block per group of equal eigenvalues; antisymmetric, it is a combination of
the plane rotations `u_j u_iᵀ − u_i u_jᵀ` over the pairs `s_i = s_j`. Every pair closer
than `√eps · max|s|` (the "window") is therefore a candidate, and the remaining places of
the `q` go to the pairs whose rotation commutes best with `J₀`: a near-symmetry broken by
`ε` has a commutator `O(ε)` and stays among them (its `σ ∝ ε` keeps its meaning). The
search then runs densely, exactly, on their span: an eigendecomposition of one `d × d`
matrix instead of an iteration on `d(d−1)/2` unknowns.

The window fails (more nearly equal eigenvalues than `q` pairs, e.g. a drift whose
Jacobian at the origin is a multiple of the identity), or the drift is not finite at the
origin: then the candidates may miss a symmetry, and the search says so.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._families import AbstractAffineFamily, _rotation_index
from ._matfree import linearised_drift


class PairRotations(AbstractAffineFamily):
    r"""The rotations `ξ_l(x) = (u_{j_l} u_{i_l}ᵀ − u_{i_l} u_{j_l}ᵀ) x` of the planes of
    pairs of orthonormal vectors (columns of `U`), named `P0, P1, ...`. In the basis `U`
    these are `nj.Rotations` generators, so their coefficients in `nj.Rotations(d)` are
    `Rotations.affine_transpose(M) / 2`."""

    U: Float[Array, "d d"]
    i: Int[Array, " q"]
    j: Int[Array, " q"]

    @property
    def dim(self):
        return self.U.shape[0]

    @property
    def size(self):
        return self.i.shape[0]

    def _cols(self, dtype):
        U = self.U.astype(dtype)
        return U[:, self.i], U[:, self.j]

    def matrices(self):
        Ui, Uj = self._cols(self.U.dtype)
        return jnp.einsum("rq,sq->qrs", Uj, Ui) - jnp.einsum("rq,sq->qrs", Ui, Uj)

    def offsets(self):
        return jnp.zeros((self.size, self.dim), self.U.dtype)

    def affine(self, coefficients):
        c = jnp.asarray(coefficients)
        Ui, Uj = self._cols(c.dtype)
        return (Uj * c) @ Ui.T - (Ui * c) @ Uj.T, jnp.zeros((self.dim,), c.dtype)

    def affine_transpose(self, M_bar, b_bar):
        Ui, Uj = self._cols(M_bar.dtype)
        return jnp.sum(Uj * (M_bar @ Ui), axis=0) - jnp.sum(Ui * (M_bar @ Uj), axis=0)

    def basis(self, x):
        self.check_state(x)
        Ui, Uj = self._cols(x.dtype)
        # Row `l`: `u_j (u_i·x) − u_i (u_j·x)`.
        return (Uj * (Ui.T @ x)).T - (Ui * (Uj.T @ x)).T

    def names(self):
        return tuple(f"P{l}" for l in range(self.size))


def num_candidates(d: int) -> int:
    """How many plane rotations the commutant search keeps: `d` (at most `d(d−1)/2`)."""
    return min(d * (d - 1) // 2, d)


def pair_commutators(K: Float[Array, "d d"], i, j) -> Float[Array, " n"]:
    """`‖[K, E_ij]‖_F` for the pairs `(i, j)`, `E_ij = e_j e_iᵀ − e_i e_jᵀ`, in `O(1)` each:
    `[K, E_ij]` holds the columns `i, j` and the rows `i, j` of `K`, which overlap in four
    entries."""
    col, row = jnp.sum(K**2, axis=0), jnp.sum(K**2, axis=1)
    overlap = K[i, j] * K[j, i] - K[i, i] * K[j, j]
    return jnp.sqrt(jnp.clip(col[i] + col[j] + row[i] + row[j] + 4 * overlap, 0.0))


def candidates(sde, t, args, d: int, dtype, q: int) -> tuple[PairRotations, Bool[Array, ""]]:
    """The `q` candidate plane rotations (module docstring) and whether they hold every
    exact symmetry: every pair of eigenvalues of `S` closer than `√eps · max|s|` is kept
    (such pairs span the symmetries), and the other places go to the pairs whose rotation
    commutes best with `J₀` (smallest `‖[J₀, M_ij]‖_F`: a near-symmetry, broken by `ε`, has
    a commutator `O(ε)`)."""
    J = jax.jacfwd(lambda x: sde.f(t, x, args))(jnp.zeros((d,), dtype))
    finite = jnp.all(jnp.isfinite(J))
    J = jnp.where(finite, J, 0.0)
    nu = jnp.linalg.norm(J) / math.sqrt(d)
    nu_safe = jnp.where(nu > 0, nu, 1.0)
    S = 0.5 * (J + J.T) + (J.T @ J) / nu_safe
    s, U = jnp.linalg.eigh(0.5 * (S + S.T))
    ii, jj = (np.asarray(a, dtype=np.int32) for a in _rotation_index(d))
    scale = jnp.max(jnp.abs(s))
    scale = jnp.where(scale > 0, scale, 1.0)
    window = float(jnp.finfo(dtype).eps) ** 0.5
    degenerate = jnp.abs(s[jj] - s[ii]) <= window * scale
    score = jnp.where(degenerate, -1.0, pair_commutators(U.T @ J @ U, ii, jj))
    k = ii.shape[0]
    neg, idx = jax.lax.top_k(-score, min(q + 1, k))
    # Complete: every degenerate pair is kept (the first one left out is not degenerate).
    complete = (-neg[q] >= 0) if q < k else jnp.asarray(True)
    ok = finite & (nu > 0) & complete
    sel = idx[:q]
    return PairRotations(U, jnp.asarray(ii)[sel], jnp.asarray(jj)[sel]), ok


def lift_to_rotations(family, cand: PairRotations, a: Float[Array, " q"]) -> Float[Array, " k"]:
    """The `nj.Rotations(d)` coefficients of the candidate combination `a` (its basis
    matrices have Frobenius norm² 2)."""
    M, b = cand.affine(a)
    return family.affine_transpose(M, b) / 2



def blocks(sde, cand: PairRotations, points, times, args, length, drift_scale):
    """The drift rows `[ξ_l, f](t, x_p) / (ℓ s_f √N)` and the value rows
    `ξ_l(x_p) / (ℓ √P)` of every candidate, as matrices with one column per candidate,
    without forming the `q` matrices `M_l` (`q d²` floats): with `a = U[:, i_l]`,
    `b = U[:, j_l]`, `M_l x = b (a·x) − a (b·x)`, so
    `[ξ_l, f] = b (a·f) − a (b·f) − (a·x) J b + (b·x) J a`, from the projections of the
    drift and the states on `U` and the Jacobian-vector products `J U` at the points."""
    T, (P, d) = times.shape[0], points.shape
    U = cand.U.astype(points.dtype)
    F, f_lin = linearised_drift(sde, points, times, args)
    JU = jax.lax.map(lambda u: f_lin(jnp.broadcast_to(u, (T, P, d))), U.T)  # (d, T, P, d)
    Fu, Xu = F @ U, points @ U  # (T, P, d), (P, d)
    i, j = cand.i, cand.j
    Ua, Ub = U[:, i], U[:, j]  # (d, q)
    Ja = jnp.moveaxis(JU[i], 0, -1)  # (T, P, d, q): J a_l
    Jb = jnp.moveaxis(JU[j], 0, -1)
    xa, xb = Xu[:, None, i], Xu[:, None, j]  # (P, 1, q)
    drift = (
        Ub * Fu[..., None, i] - Ua * Fu[..., None, j] - xa * Jb + xb * Ja
    ) * drift_scale
    values = (Ub * xa - Ua * xb) / (length * math.sqrt(P))
    q = i.shape[0]
    return drift.reshape(-1, q), values.reshape(-1, q)
