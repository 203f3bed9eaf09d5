r"""Families of candidate symmetry generators: finite bases of vector fields.

A family is a linear space of vector fields spanned by `k` basis fields `ξ_1, ..., ξ_k`,

$$ξ_c(x) = \sum_{j=1}^k c_j\, ξ_j(x), \qquad c ∈ \mathbb{R}^k,$$

so that both symmetry conditions of docs/conventions.md are *linear* in the coefficients `c`.
`nj.find_symmetries` finds the subspace of coefficients whose field is a symmetry.
"""

import abc
import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def _is_int(n) -> bool:
    """Whether `n` is a Python or NumPy integer scalar (not `bool`, not an array)."""
    if isinstance(n, bool):
        return False
    try:
        operator.index(n)
        hash(n)  # integer arrays also have `__index__` (0-d ones), but are unhashable
    except TypeError:
        return False
    return True


def _sqrt_eps(dtype) -> float:
    """`sqrt(eps)` of the floating `dtype`, correctly rounded to `dtype`'s `p` mantissa bits
    (the float64 root rounded again to `p` bits: exact for sqrt when `53 >= 2 p + 2`)."""
    fi = jnp.finfo(dtype)
    m, e = math.frexp(math.sqrt(float(fi.eps)))
    scale = 2.0 ** (fi.nmant + 1)
    return math.ldexp(round(m * scale) / scale, e)


def _host_list(x) -> list:
    """A concrete array (or sequence) copied to the host as (nested) Python lists."""
    if isinstance(x, jax.core.Tracer):
        raise jax.errors.TracerArrayConversionError(x)
    host = jax.device_get(x)
    return host.tolist() if hasattr(host, "tolist") else list(host)


def _check_dim(d, cls: str) -> int:
    if not _is_int(d) or d < 1:
        raise ValueError(f"`nj.{cls}(d)`: `d` must be a positive Python int, got {d!r}.")
    return int(d)


def family_label(family, d: int | None = None) -> str:
    """How a family is written in messages: `nj.Rotations(3)`, `nj.Translations(3) |
    nj.Rotations(3)`, ...; with `d`, the same family in dimension `d` (a suggestion)."""
    if isinstance(family, FamilySum):
        return " | ".join(family_label(f, d) for f in family.families)
    cls = type(family).__name__
    if isinstance(family, VectorFieldBasis):
        dim = family.dim if d is None else d
        return f"nj.VectorFieldBasis(..., d={dim})" if dim is not None else "nj.VectorFieldBasis"
    dim = family.dim if d is None else d
    prefix = "nj." if type(family).__module__.startswith("noether_jax") else ""
    if hasattr(family, "d") and dim is not None:
        return f"{prefix}{cls}({dim})"
    return f"{prefix}{cls}"


def dimension_mismatch(family, d_sys: int, because: str) -> str:
    """The message for a family of dimension `family.dim` used on a `d_sys`-dimensional
    system (`because`: how the system's dimension is known)."""
    d = family.dim
    suggestion = (
        f" (e.g. `{family_label(family, d_sys)}`)"
        if not isinstance(family, VectorFieldBasis) and _is_builtin(family)
        else ""
    )
    return (
        f"the family `{family_label(family)}` is {d}-dimensional but the system is "
        f"{d_sys}-dimensional ({because}): use a family of dimension {d_sys}{suggestion}."
    )


def _is_builtin(family) -> bool:
    if isinstance(family, FamilySum):
        return all(_is_builtin(f) for f in family.families)
    return type(family).__module__ == __name__ and hasattr(family, "d")


def _format_combination(coefficients, names: Sequence[str]) -> str:
    if hasattr(coefficients, "shape") and hasattr(coefficients, "dtype"):
        dtype = coefficients.dtype
    else:  # a sequence: its entries' common dtype when they agree, else float64 (Python floats)
        coefficients = list(coefficients)
        dtypes = {getattr(cj, "dtype", None) for cj in coefficients}
        dtype = dtypes.pop() if len(dtypes) == 1 and None not in dtypes else None
    # Entries below sqrt(eps) of the largest are round-off of an orthonormal basis.
    rel_tol = _sqrt_eps(dtype if dtype is not None and dtype.kind == "f" else float)
    c = [float(cj) for cj in _host_list(coefficients)]
    if len(c) == 0 or not all(math.isfinite(cj) for cj in c):
        return "0" if len(c) == 0 else "nan"
    big = max(abs(cj) for cj in c)
    if big == 0:
        return "0"
    terms = []
    for cj, name in zip(c, names):
        if abs(cj) <= rel_tol * big:
            continue
        sign = "-" if cj < 0 else "+"
        mag = abs(cj)
        coef = "" if abs(mag - 1) < 1e-12 else f"{mag:.4g}·"
        terms.append(f"{sign} {coef}{name}")
    out = " ".join(terms)
    return out[2:] if out.startswith("+ ") else "-" + out[2:]


_NO_STATE = object()  # `family(coefficients)` without a state: a family used as a generator


class AbstractGeneratorFamily(eqx.Module):
    r"""A finite-dimensional space of candidate generators (vector fields on `ℝ^d`),

    $$ξ_c(x) = \sum_{j=1}^k c_j\,ξ_j(x),$$

    spanned by `k = size` basis fields. Subclasses implement `basis(x) -> Array[k, d]`
    (the values of all basis fields at `x`) and `dim`; `jacobians(x)` defaults to forward-mode
    autodiff of `basis` and is overridden with exact constant matrices by the affine families.

    Families can be combined with `|`: `nj.Translations(3) | nj.Rotations(3)` spans the
    Euclidean algebra (`k = 6`). A family that spans a field twice (e.g.
    `nj.Rotations(3) | nj.LinearGenerators(3)`) is fine: `nj.find_symmetries` discards the
    redundant directions.
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int | None:
        """The state dimension `d` (`None` if unknown until points are given)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The number `k` of basis fields."""

    @abc.abstractmethod
    def basis(self, x: Float[Array, " d"]) -> Float[Array, "k d"]:
        """The values `ξ_j(x)` of all basis fields at `x`, one per row."""

    def jacobians(self, x: Float[Array, " d"]) -> Float[Array, "k d d"]:
        """`∂ξ_j/∂x` at `x`: entry `[j, a, b] = ∂ξ_j^a / ∂x_b`."""
        return jax.jacfwd(self.basis)(x)

    def check_state(self, x) -> None:
        """Refuse (`ValueError`, at trace time) a state whose shape is not `(dim,)`: a family
        of one dimension used on a system of another."""
        d = self.dim
        shape = tuple(jnp.shape(x))
        if d is not None and shape != (d,):
            if len(shape) == 1:
                raise ValueError(dimension_mismatch(self, shape[0], f"a state has shape {shape}"))
            raise ValueError(
                f"the family `{family_label(self)}` takes one state of shape ({d},), got shape "
                f"{shape}."
            )

    def names(self) -> tuple[str, ...]:
        """Short names of the basis fields (used by `describe`)."""
        return tuple(f"ξ{j}" for j in range(self.size))

    def affine(self, coefficients) -> tuple[Float[Array, "d d"], Float[Array, " d"]]:
        """For affine families, `(M, b)` with `ξ_c(x) = M x + b`."""
        raise ValueError(
            f"`{type(self).__name__}` is not an affine family: its generators are not of the "
            "form `M x + b`."
        )

    def describe(self, coefficients) -> str:
        """`ξ_c` as a readable combination of the named basis fields."""
        return _format_combination(coefficients, self.names())

    def __call__(
        self, coefficients: Float[Array, " k"], x: Float[Array, " d"] = _NO_STATE
    ) -> Float[Array, " d"]:
        """`ξ_c(x) = Σ_j c_j ξ_j(x)`."""
        if x is _NO_STATE:
            raise ValueError(
                f"the family `{family_label(self)}` is a space of generators, not one generator: "
                "call it as `family(coefficients, x)`, or, for the charges of every basis "
                "field, use `[nj.Generator(family, c) for c in jnp.eye(family.size)]`."
            )
        self.check_state(x)
        return jnp.asarray(coefficients, x.dtype) @ self.basis(x)

    def __or__(self, other: "AbstractGeneratorFamily") -> "FamilySum":
        return FamilySum((self, other))


class AbstractAffineFamily(AbstractGeneratorFamily):
    r"""A family of affine fields `ξ_j(x) = M_j x + b_j`, given by the constant matrices
    `M_j` (`matrices()`, shape `(k, d, d)`) and offsets `b_j` (`offsets()`, shape `(k, d)`).
    Jacobians are exact (`∂ξ_j/∂x = M_j`); `affine(c)` returns `(Σ c_j M_j, Σ c_j b_j)`.

    The Noether charge of `ξ = M x + b` is `Q = pᵀ M x + p·b`.
    """

    @abc.abstractmethod
    def matrices(self) -> Float[Array, "k d d"]:
        """The linear parts `M_j`."""

    @abc.abstractmethod
    def offsets(self) -> Float[Array, "k d"]:
        """The constant parts `b_j`."""

    def basis(self, x):
        self.check_state(x)
        M = self.matrices().astype(x.dtype)
        b = self.offsets().astype(x.dtype)
        return M @ x + b

    def jacobians(self, x):
        self.check_state(x)
        return self.matrices().astype(x.dtype)

    def affine(self, coefficients):
        c = jnp.asarray(coefficients)
        M = jnp.tensordot(c, self.matrices().astype(c.dtype), axes=1)
        b = c @ self.offsets().astype(c.dtype)
        return M, b

    def affine_transpose(
        self, M_bar: Float[Array, "d d"], b_bar: Float[Array, " d"]
    ) -> Float[Array, " k"]:
        """The adjoint of `c ↦ (M_c, b_c)` (`affine`): `c_j = ⟨M_j, M̄⟩_F + b_j·b̄`. Used by
        the matrix-free symmetry search; the built-in families override it (and `affine`)
        with index arithmetic, so that their `(k, d, d)` matrices are never formed."""
        Ms = self.matrices().astype(M_bar.dtype)
        bs = self.offsets().astype(M_bar.dtype)
        return jnp.tensordot(Ms, M_bar, axes=2) + bs @ b_bar

    def __call__(self, coefficients, x=_NO_STATE):
        """`ξ_c(x) = M_c x + b_c`."""
        if x is _NO_STATE:
            return super().__call__(coefficients)
        self.check_state(x)
        M, b = self.affine(jnp.asarray(coefficients, x.dtype))
        return M @ x + b


class Translations(AbstractAffineFamily):
    r"""The `d` translations `ξ_i(x) = e_i` (named `e0, e1, ...`).

    A drift that does not depend on `x_i` (and a noise that does not either) has the symmetry
    `e_i`; its charge is the quasi-momentum `p·e_i = p_i`.
    """

    d: int = eqx.field(static=True)

    def __check_init__(self):
        _check_dim(self.d, "Translations")

    @property
    def dim(self):
        return self.d

    @property
    def size(self):
        return self.d

    def matrices(self):
        return jnp.zeros((self.d, self.d, self.d))

    def offsets(self):
        return jnp.eye(self.d)

    def names(self):
        return tuple(f"e{i}" for i in range(self.d))

    def affine(self, coefficients):
        c = jnp.asarray(coefficients)
        return jnp.zeros((self.d, self.d), c.dtype), c

    def affine_transpose(self, M_bar, b_bar):
        return b_bar

    def basis(self, x):
        self.check_state(x)
        return jnp.eye(self.d, dtype=x.dtype)


def _rotation_pairs(d: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(d), 2))


@functools.lru_cache(maxsize=16)
def _rotation_index(d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The rows and columns `(i, j)`, `i < j`, of `_rotation_pairs(d)` (row-major, as
    `triu_indices(d, k=1)`)."""
    pairs = _rotation_pairs(d)
    return tuple(i for i, _ in pairs), tuple(j for _, j in pairs)


class Rotations(AbstractAffineFamily):
    r"""The `d(d−1)/2` infinitesimal rotations `ξ_{ij}(x) = A_{ij} x`, `i < j`, with
    `A_{ij} = e_j e_iᵀ − e_i e_jᵀ` (antisymmetric), i.e. `ξ_{ij} = x_i e_j − x_j e_i`: the
    rotation from axis `i` towards axis `j` (named `R01, R02, ...`).

    Its charge is the quasi-angular momentum `pᵀ A_{ij} x = x_i p_j − x_j p_i = 𝐋_{ij}`, the
    entry of `nj.angular_momentum`. Pairs are in lexicographic order `(0,1), (0,2), ...`.
    """

    d: int = eqx.field(static=True)

    def __check_init__(self):
        _check_dim(self.d, "Rotations")
        if self.d < 2:
            raise ValueError("`nj.Rotations(d)` needs `d >= 2` (there are no rotations in 1-D).")

    @property
    def dim(self):
        return self.d

    @property
    def size(self):
        return self.d * (self.d - 1) // 2

    def matrices(self):
        pairs = _rotation_pairs(self.d)
        # Built eagerly, so that it stays a constant inside `jit` (as a host array would).
        with jax.ensure_compile_time_eval():
            n = jnp.asarray(list(range(len(pairs))))
            i = jnp.asarray([i for i, _ in pairs])
            j = jnp.asarray([j for _, j in pairs])
            A = jnp.zeros((len(pairs), self.d, self.d), dtype=jnp.zeros(()).dtype)
            return A.at[n, j, i].set(1.0).at[n, i, j].set(-1.0)

    def offsets(self):
        return jnp.zeros((self.size, self.d))

    def names(self):
        sep = "," if self.d > 10 else ""
        return tuple(f"R{i}{sep}{j}" for i, j in _rotation_pairs(self.d))

    def _pairs(self):
        # Index arrays built from host integers: constants inside `jit`, and no small
        # program compiled per dimension (as `jnp.triu_indices` evaluated eagerly would).
        i, j = _rotation_index(self.d)
        return jnp.asarray(i, dtype=jnp.int32), jnp.asarray(j, dtype=jnp.int32)

    def affine(self, coefficients):
        # `M = Σ c_ij (e_j e_iᵀ − e_i e_jᵀ)`: `M[j, i] = c_ij`, `M[i, j] = −c_ij`.
        # The pairs are in bounds by construction: no bounds checks (at d = 1024 their
        # reductions over the 523,776 pairs took XLA seconds to constant-fold).
        c = jnp.asarray(coefficients)
        i, j = self._pairs()
        M = jnp.zeros((self.d, self.d), c.dtype)
        M = M.at[j, i].add(c, mode="promise_in_bounds").at[i, j].add(-c, mode="promise_in_bounds")
        return M, jnp.zeros((self.d,), c.dtype)

    def affine_transpose(self, M_bar, b_bar):
        i, j = self._pairs()
        get = lambda r, s: M_bar.at[r, s].get(mode="promise_in_bounds")
        return get(j, i) - get(i, j)

    def basis(self, x):
        # Row `ij`: `x_i e_j − x_j e_i`.
        self.check_state(x)
        i, j = self._pairs()
        n = jnp.arange(i.shape[0])
        out = jnp.zeros((i.shape[0], self.d), x.dtype)
        return out.at[n, j].set(x[i]).at[n, i].set(-x[j])


class LinearGenerators(AbstractAffineFamily):
    r"""All `d²` linear fields `ξ(x) = M x`: the basis `E_{ab}` (a single 1 in row `a`,
    column `b`, i.e. `ξ = x_b e_a`, named `E01` etc.), in row-major order, so the coefficient
    vector reshaped to `(d, d)` *is* `M`.

    For a linear drift `f = A x` and constant `D`, the symmetries in this family are the
    matrices `M` with `[M, A] = 0` and `M D + D Mᵀ = 0`.
    """

    d: int = eqx.field(static=True)

    def __check_init__(self):
        _check_dim(self.d, "LinearGenerators")

    @property
    def dim(self):
        return self.d

    @property
    def size(self):
        return self.d * self.d

    def matrices(self):
        return jnp.eye(self.d * self.d).reshape(self.d * self.d, self.d, self.d)

    def offsets(self):
        return jnp.zeros((self.size, self.d))

    def names(self):
        sep = "," if self.d > 10 else ""
        return tuple(f"E{a}{sep}{b}" for a in range(self.d) for b in range(self.d))

    def affine(self, coefficients):
        c = jnp.asarray(coefficients)
        return c.reshape(self.d, self.d), jnp.zeros((self.d,), c.dtype)

    def affine_transpose(self, M_bar, b_bar):
        return M_bar.reshape(-1)

    def basis(self, x):
        # Row `(a, b)`: `x_b e_a`.
        self.check_state(x)
        eye = jnp.eye(self.d, dtype=x.dtype)
        return (eye[:, None, :] * x[None, :, None]).reshape(self.d * self.d, self.d)


class AffineGenerators(AbstractAffineFamily):
    r"""All `d² + d` affine fields `ξ(x) = M x + b`: first the `d²` fields of
    `nj.LinearGenerators(d)` (row-major `M`), then the `d` translations `e_i`."""

    d: int = eqx.field(static=True)

    def __check_init__(self):
        _check_dim(self.d, "AffineGenerators")

    @property
    def dim(self):
        return self.d

    @property
    def size(self):
        return self.d * self.d + self.d

    def matrices(self):
        d = self.d
        return jnp.concatenate(
            [jnp.eye(d * d).reshape(d * d, d, d), jnp.zeros((d, d, d))], axis=0
        )

    def offsets(self):
        d = self.d
        return jnp.concatenate([jnp.zeros((d * d, d)), jnp.eye(d)], axis=0)

    def names(self):
        return LinearGenerators(self.d).names() + Translations(self.d).names()

    def affine(self, coefficients):
        c = jnp.asarray(coefficients)
        d = self.d
        return c[: d * d].reshape(d, d), c[d * d :]

    def affine_transpose(self, M_bar, b_bar):
        return jnp.concatenate([M_bar.reshape(-1), b_bar])

    def basis(self, x):
        self.check_state(x)
        lin = LinearGenerators(self.d).basis(x)
        return jnp.concatenate([lin, jnp.eye(self.d, dtype=x.dtype)], axis=0)


class VectorFieldBasis(AbstractGeneratorFamily):
    r"""Your own family: a finite basis of vector fields, each a callable `x -> Array[d]`
    (a function, or an `equinox.Module`, e.g. a small network). Jacobians come from
    forward-mode autodiff.

    **Arguments:**

    - `fields`: a sequence of callables `ξ_j(x)`.
    - `d`: the state dimension; optional (taken from `points` by `nj.find_symmetries`).
    - `names`: optional names of the fields, for `describe()`.

    Example: `nj.VectorFieldBasis([lambda x: x, lambda x: x**2 - 1])` (scalings and a
    nonlinear field).
    """

    fields: tuple[Callable, ...]
    d: int | None = eqx.field(static=True, default=None)
    field_names: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __init__(self, fields: Sequence[Callable], d: int | None = None, names=None):
        fields = tuple(fields)
        if len(fields) == 0:
            raise ValueError("`nj.VectorFieldBasis(fields)`: give at least one vector field.")
        for i, g in enumerate(fields):
            if not callable(g):
                raise ValueError(
                    f"`nj.VectorFieldBasis(fields)`: field {i} is a {type(g).__name__}, not a "
                    "callable `x -> Array[d]`."
                )
        if d is not None:
            d = _check_dim(d, "VectorFieldBasis")
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(names) != len(fields):
                raise ValueError(
                    f"`nj.VectorFieldBasis`: {len(names)} names for {len(fields)} fields."
                )
        self.fields = fields
        self.d = d
        self.field_names = names

    @property
    def dim(self):
        return self.d

    @property
    def size(self):
        return len(self.fields)

    def basis(self, x):
        self.check_state(x)
        return jnp.stack([jnp.asarray(g(x), dtype=x.dtype) for g in self.fields])

    def names(self):
        if self.field_names is not None:
            return self.field_names
        return tuple(f"ξ{j}" for j in range(self.size))


class FamilySum(AbstractGeneratorFamily):
    r"""The span of several families (`fam_a | fam_b`): their bases concatenated, in order.
    Each part keeps its own (exact) Jacobians. Affine if every part is."""

    families: tuple[AbstractGeneratorFamily, ...]

    def __init__(self, families: Sequence[AbstractGeneratorFamily]):
        flat = []
        for fam in families:
            if not isinstance(fam, AbstractGeneratorFamily):
                raise ValueError(
                    "families combine with `|` only with other families (e.g. "
                    f"`nj.Translations(d) | nj.Rotations(d)`), got {type(fam).__name__}."
                )
            flat.extend(fam.families if isinstance(fam, FamilySum) else [fam])
        dims = {fam.dim for fam in flat if fam.dim is not None}
        if len(dims) > 1:
            raise ValueError(
                f"families of different dimensions cannot be combined: got d = {sorted(dims)}."
            )
        self.families = tuple(flat)

    @property
    def dim(self):
        dims = [fam.dim for fam in self.families if fam.dim is not None]
        return dims[0] if dims else None

    @property
    def size(self):
        return sum(fam.size for fam in self.families)

    def basis(self, x):
        return jnp.concatenate([fam.basis(x) for fam in self.families], axis=0)

    def jacobians(self, x):
        return jnp.concatenate([fam.jacobians(x) for fam in self.families], axis=0)

    def names(self):
        return tuple(n for fam in self.families for n in fam.names())

    def _split(self, coefficients):
        sizes = list(itertools.accumulate(fam.size for fam in self.families))[:-1]
        return jnp.split(jnp.asarray(coefficients), sizes)

    def affine(self, coefficients):
        if not all(isinstance(f, AbstractAffineFamily) for f in self.families):
            return super().affine(coefficients)
        parts = [fam.affine(c) for fam, c in zip(self.families, self._split(coefficients))]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def is_affine(self) -> bool:
        return all(
            isinstance(f, AbstractAffineFamily) or (isinstance(f, FamilySum) and f.is_affine())
            for f in self.families
        )

    def affine_transpose(self, M_bar, b_bar):
        return jnp.concatenate([f.affine_transpose(M_bar, b_bar) for f in self.families])


class InSubspace(AbstractAffineFamily):
    r"""An affine family of dimension `r` acting inside the subspace spanned by the
    orthonormal columns of `U` (`d × r`): `ξ_c(x) = U (M_c Uᵀ x + b_c)`, i.e. the matrices
    `U M_j Uᵀ` and offsets `U b_j`. `nj.InSubspace(nj.Rotations(r), U)` are the rotations of
    that `r`-dimensional subspace of `R^d` (`r(r−1)/2` of them instead of `d(d−1)/2`).

    Used by `nj.find_symmetries(..., subspace=...)` to search where data live (e.g. the
    leading principal directions of a network's visited states). Names are the base
    family's with a `u` prefix (`uR0,1`: the rotation from `U[:, 0]` towards `U[:, 1]`).
    """

    base: AbstractAffineFamily
    U: Float[Array, "d r"]

    def __check_init__(self):
        if not isinstance(self.base, AbstractAffineFamily) or self.base.dim is None:
            raise ValueError(
                "`nj.InSubspace(base, U)`: `base` must be an affine family of known dimension "
                "(e.g. `nj.Rotations(r)`)."
            )
        shape = jnp.shape(self.U)
        if len(shape) != 2 or shape[1] != self.base.dim or shape[0] < shape[1]:
            raise ValueError(
                f"`nj.InSubspace(base, U)`: `U` must have shape (d, {self.base.dim}) with "
                f"d >= {self.base.dim} (orthonormal columns), got {shape}."
            )

    @property
    def dim(self):
        return self.U.shape[0]

    @property
    def size(self):
        return self.base.size

    def matrices(self):
        U = self.U
        return jnp.einsum("ia,kab,jb->kij", U, self.base.matrices().astype(U.dtype), U)

    def offsets(self):
        return self.base.offsets().astype(self.U.dtype) @ self.U.T

    def affine(self, coefficients):
        M, b = self.base.affine(coefficients)
        U = self.U.astype(M.dtype)
        return U @ M @ U.T, U @ b

    def affine_transpose(self, M_bar, b_bar):
        U = self.U.astype(M_bar.dtype)
        return self.base.affine_transpose(U.T @ M_bar @ U, U.T @ b_bar)

    def basis(self, x):
        self.check_state(x)
        U = self.U.astype(x.dtype)
        return self.base.basis(U.T @ x) @ U.T

    def names(self):
        return tuple(f"u{n}" for n in self.base.names())


class Generator(eqx.Module):
    r"""A vector field `ξ(x) = Σ_j c_j ξ_j(x)` of a family, callable as `g(x) -> Array[d]`
    (so it can be passed to `nj.noether_charge`).

    **Attributes:** `family`, `coefficients` (`Array[k]`).

    `describe()` writes it in terms of the family's named basis fields; for affine families
    `affine()` returns `(M, b)` with `ξ(x) = M x + b` (a rotation has `b = 0`, `M = −Mᵀ`).
    """

    family: AbstractGeneratorFamily
    coefficients: Float[Array, " k"]

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.family(self.coefficients, x)

    def affine(self) -> tuple[Float[Array, "d d"], Float[Array, " d"]]:
        """`(M, b)` with `ξ(x) = M x + b` (affine families only)."""
        return self.family.affine(self.coefficients)

    def describe(self) -> str:
        return self.family.describe(self.coefficients)

    def __repr__(self):
        if isinstance(self.coefficients, jax.core.Tracer) or jnp.ndim(self.coefficients) != 1:
            return f"Generator({type(self.family).__name__}, coefficients={self.coefficients})"
        return f"Generator({self.describe()})"
