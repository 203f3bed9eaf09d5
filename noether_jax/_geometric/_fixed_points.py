r"""Fixed points of an autonomous drift: finding them and classifying them.

A fixed point `x*` of the drift has `f(x*) = 0`. Its linearisation `ẋ ≈ J (x − x*)`, with
`J = ∂f/∂x (x*)`, decides its type when it is *hyperbolic* (no eigenvalue of `J` on the
imaginary axis):

- **index** `k` = the number of eigenvalues with `Re λ > 0` = the dimension of the unstable
  manifold;
- **stable** (`k = 0`, an attractor), **saddle** (`0 < k < d`), **unstable** (`k = d`, a
  source).

Transitions between attractors cross index-1 points: in `d ≥ 2` these are saddles, in
`d = 1` they are maxima of the potential, which by the definition above are *unstable*
(`k = d = 1`). `FixedPoints.with_index(1)` returns the index-1 points whatever their kind;
use it (not `saddles()`) to find transition states.

A time-dependent drift is frozen at the time `t` given (default `0`).

**Devices.** The eigenvalues come from `jnp.linalg.eig` (LAPACK `geev`). On GPU, the JAX this
package is tested with (0.10) runs it with cuSOLVER's `geev` (cuSOLVER ≥ 11.7.1) or else with
LAPACK on the host through a callback (see `jax.lax.linalg.eig`); both work under `jit` and
`vmap` (older JAX versions may have it on CPU only). TPUs have no non-symmetric eigensolver:
classify on CPU there (`with jax.default_device(jax.devices("cpu")[0]): ...`).

**Derivatives.** The eigenvalues are differentiable (with respect to `x`, `args`, parameters in
the drift) where they are simple; the eigenvectors, `index` and `kind` are not.
"""

import math
import operator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int, PRNGKeyArray

from .._sde import SDE, as_state, as_time, check_drift_call


class FIXED_POINT_KINDS(eqx.Enumeration):
    """The type of a fixed point, from the eigenvalues `λ` of the Jacobian `∂f/∂x` there.
    The value of each member is its description. `d` is the dimension of the state."""

    stable = "stable: every eigenvalue has Re λ < 0 (an attractor; index 0)."
    saddle = "saddle: 0 < index < d eigenvalues have Re λ > 0, none has Re λ ≈ 0."
    unstable = (
        "unstable: every eigenvalue has Re λ > 0 (a source; index d; in 1-D a maximum of "
        "the potential, the index-1 point a transition crosses)."
    )
    non_hyperbolic = (
        "non-hyperbolic: some eigenvalue has |Re λ| below the hyperbolicity tolerance (or "
        "the Jacobian is not finite), so the linearisation does not decide the stability."
    )


_KIND_NAMES = {int(item._value): name for name, item in FIXED_POINT_KINDS._name_to_item.items()}


def kind_name(kind) -> str | list[str]:
    """The name (`"stable"`, `"saddle"`, ...) of a `FIXED_POINT_KINDS` item, or the list of
    names of a batch of them."""
    value = getattr(kind, "_value", kind)  # an enumeration item, or its integer codes
    value = jnp.asarray(value)
    if value.ndim == 0:
        return _KIND_NAMES[int(value)]
    return [_KIND_NAMES[int(v)] for v in value.reshape(-1).tolist()]


class FixedPoint(eqx.Module):
    r"""A point `x` and the linearisation of the drift there.

    **Attributes** (for a batch from `jax.vmap`, each has a leading batch axis):

    - `x`: `Array[d]`, the point.
    - `drift`: `Array[d]`, `f(x)`.
    - `residual`: `|f(x)|₂`.
    - `distance`: `|f(x)|₂ / σ_min(J)`, a first-order bound on the distance from `x` to the
      fixed point nearby (the length of the largest Newton step `J⁻¹f` can take); `0` if
      `f(x) = 0`, `inf` if `f(x) ≠ 0` and `J` is singular.
    - `is_fixed_point`: `distance ≤ rtol·(|x|₂ + scale)` (see `classify_fixed_point`).
    - `jacobian`: `Array[d, d]`, `J = ∂f/∂x (x)`.
    - `eigenvalues`: complex `Array[d]`, the eigenvalues of `J`, by decreasing real part
      (then decreasing imaginary part).
    - `eigenvectors`: complex `Array[d, d]`, unit columns, in the same order.
    - `index`: the number of eigenvalues with `Re λ > tol` (the dimension of the unstable
      manifold), `tol` the hyperbolicity tolerance.
    - `num_center`: the number of eigenvalues with `|Re λ| ≤ tol`.
    - `kind`: a `nj.FIXED_POINT_KINDS` item (`nj.FIXED_POINT_KINDS[fp.kind]` describes it;
      compare with `fp.kind == nj.FIXED_POINT_KINDS.saddle`).
    - `unstable_direction`: `Array[d]`, the real unit eigenvector of the eigenvalue with the
      largest real part, when that eigenvalue is real and positive (for an index-1 point:
      the tangent of its one-dimensional unstable manifold). Sign convention: its first
      component larger than `√ε` times its largest one is positive. NaN otherwise.
    """

    x: Float[Array, " d"]
    drift: Float[Array, " d"]
    residual: Float[Array, ""]
    distance: Float[Array, ""]
    is_fixed_point: Bool[Array, ""]
    jacobian: Float[Array, "d d"]
    eigenvalues: Complex[Array, " d"]
    eigenvectors: Complex[Array, "d d"]
    index: Int[Array, ""]
    num_center: Int[Array, ""]
    kind: FIXED_POINT_KINDS
    unstable_direction: Float[Array, " d"]


# ---------------------------------------------------------------------------------------------
# Defaults and input checks.


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def default_check_rtol(dtype) -> float:
    """Default relative tolerance of the fixed-point test: `ε^(1/3)` (6e-6 in float64,
    5e-3 in float32)."""
    return _eps(dtype) ** (1 / 3)


def default_hyperbolic_rtol(dtype) -> float:
    """Default hyperbolicity tolerance, relative to the eigenvalue scale: `ε^(1/3)`."""
    return _eps(dtype) ** (1 / 3)


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def _check_sde(sde, where: str) -> None:
    if not isinstance(sde, SDE):
        raise ValueError(f"`{where}`: `sde` must be an `nj.SDE`, got {type(sde).__name__}.")


def _check_drift(sde: SDE, t, x, args, where: str) -> None:
    """The drift must map a state of shape (d,) to an array of shape (d,) (trace-time)."""
    check_drift_call(sde, t, x, args, where=where, tail="; is `x` of the system's dimension?")


def _check_start(sde, x, t, args, where: str, names=("x", "t")) -> tuple[Array, Array]:
    """The checks of a function that starts from a state `x` at a time `t`: `sde` is an
    `nj.SDE`, `x` a real state of shape (d,), `t` a scalar time (returned in `x`'s dtype)
    and the drift accepts them."""
    x_name, t_name = names
    _check_sde(sde, where)
    x = as_state(x, x_name, where)
    t = as_time(t, t_name).astype(x.dtype)
    _check_drift(sde, t, x, args, where)
    return x, t


def _positive_float(value, name: str, where: str) -> None:
    """A positive finite number (checked when it is a Python or concrete value)."""
    if value is None or isinstance(value, jax.core.Tracer):
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{where}`: `{name}` must be a positive number, got {value!r}.") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"`{where}`: `{name}` must be a positive number, got {value!r}.")


# ---------------------------------------------------------------------------------------------
# Classification.


def _unstable_direction(w, v, tol):
    """Real unit eigenvector of the leading eigenvalue `w[0]`, NaN unless it is real > 0."""
    v0 = v[:, 0]
    k = jnp.argmax(jnp.abs(v0))
    # Undo the arbitrary complex phase of the eigenvector before taking the real part.
    phase = jnp.conj(v0[k]) / jnp.where(jnp.abs(v0[k]) > 0, jnp.abs(v0[k]), 1.0)
    u = jnp.real(v0 * phase)
    u = u / jnp.linalg.norm(u)
    big = jnp.abs(u) > jnp.sqrt(_eps(u.dtype)) * jnp.max(jnp.abs(u))
    first = jnp.argmax(big)
    u = jnp.where(u[first] < 0, -u, u)
    ok = (jnp.real(w[0]) > tol) & (jnp.abs(jnp.imag(w[0])) <= tol)
    return jnp.where(ok, u, jnp.nan)


def _distance(fx, J):
    residual = jnp.linalg.norm(fx)
    smin = jnp.linalg.svd(J, compute_uv=False)[-1]
    # 0 at an exact zero, inf where f ≠ 0 and J is singular (no Newton step bounds it).
    distance = jnp.where(residual == 0, 0.0, residual / jnp.where(smin > 0, smin, 0.0))
    return residual, distance.astype(fx.dtype)


def fixed_point_distance(fun, x) -> tuple[Array, Array]:
    """`(|f(x)|, |f(x)|/σ_min(∂f/∂x))` for `fun = f`: the residual, and a first-order bound
    on the distance from `x` to the fixed point nearby."""
    return _distance(fun(x), jax.jacfwd(fun)(x))


def _classify(sde, x, t, args, rtol, scale, hyperbolic_rtol, rate_scale) -> FixedPoint:
    d = x.shape[0]
    fun = lambda y: sde.f(t, y, args)
    fx = fun(x)
    J = jax.jacfwd(fun)(x)
    residual, distance = _distance(fx, J)
    is_fp = distance <= rtol * (jnp.linalg.norm(x) + scale)

    w, v = jnp.linalg.eig(jax.lax.stop_gradient(J))
    order = jnp.lexsort((-jnp.imag(w), -jnp.real(w)))  # primary key: the last one
    w, v = w[order], v[:, order]
    # JAX does not differentiate non-symmetric eigenvectors; eigenvalues get their
    # first-order perturbation dλ_i = (V⁻¹ dJ V)_ii (simple eigenvalues), added with a zero
    # forward value so that `w` stays exactly LAPACK's.
    pert = jnp.diagonal(jnp.linalg.solve(v, J.astype(v.dtype) @ v))
    w = w + (pert - jax.lax.stop_gradient(pert))
    # Scale-aware: |Re λ| is compared with the eigenvalue scale of this point, or with a
    # rate typical of the drift (`rate_scale`), which matters where J is nearly zero.
    lam_scale = jnp.maximum(jnp.max(jnp.abs(w)), rate_scale)
    tol = hyperbolic_rtol * lam_scale
    re = jnp.real(w)
    finite = jnp.all(jnp.isfinite(w)) & jnp.all(jnp.isfinite(J))
    index = jnp.sum(re > tol)
    num_center = jnp.sum(jnp.abs(re) <= tol)
    K = FIXED_POINT_KINDS
    kind = K.where(index == d, K.unstable, K.saddle)
    kind = K.where(index == 0, K.stable, kind)
    kind = K.where((num_center > 0) | ~finite, K.non_hyperbolic, kind)
    u = _unstable_direction(w, v, tol)
    return FixedPoint(
        x=x,
        drift=fx,
        residual=residual,
        distance=distance,
        is_fixed_point=is_fp,
        jacobian=J,
        eigenvalues=w,
        eigenvectors=v,
        index=index,
        num_center=num_center,
        kind=kind,
        unstable_direction=u,
    )


_classify_jit = eqx.filter_jit(_classify)


def _tolerances(dtype, rtol, scale, hyperbolic_rtol, rate_scale):
    rtol = default_check_rtol(dtype) if rtol is None else rtol
    hyperbolic_rtol = default_hyperbolic_rtol(dtype) if hyperbolic_rtol is None else hyperbolic_rtol
    rate_scale = 0.0 if rate_scale is None else rate_scale
    # Arrays, so that new values do not recompile.
    return tuple(jnp.asarray(a, dtype=dtype) for a in (rtol, scale, hyperbolic_rtol, rate_scale))


def _not_fixed_message(fp: FixedPoint, rtol, scale, where: str, rtol_name: str = "rtol") -> str:
    xn = float(jnp.linalg.norm(fp.x))
    return (
        f"`{where}`: x is not a fixed point of the drift: |f(x)| = {float(fp.residual):.3e}, "
        f"so the fixed point nearby is up to |f(x)|/σ_min(∂f/∂x) = {float(fp.distance):.3e} "
        f"away, more than rtol·(|x| + scale) = {float(rtol) * (xn + float(scale)):.3e} "
        f"({rtol_name} = {float(rtol):.1e}, |x| = {xn:.3e}, scale = {float(scale):g}). Use a "
        f"fixed point (e.g. from `nj.find_fixed_points`), or loosen `{rtol_name}`."
    )


_NOT_FIXED_STATIC = (
    "x is not a fixed point of the drift: |f(x)|/σ_min(∂f/∂x) > rtol·(|x| + scale). (Called "
    "under jit/vmap, so the numbers are not shown; call it outside jit to see them.)"
)


def classify_fixed_point(
    sde: SDE,
    x: ArrayLike,
    args: Any = None,
    *,
    t: ArrayLike = 0.0,
    check: bool = False,
    rtol: float | None = None,
    scale: float = 1.0,
    hyperbolic_rtol: float | None = None,
    rate_scale: float | None = None,
) -> FixedPoint:
    r"""Linearise the drift at `x` and classify `x` as a fixed point.

    **Arguments:**

    - `sde`: the system, an `nj.SDE` (only its drift is used).
    - `x`: the point, shape `(d,)`.
    - `args`: passed to the drift, `drift(t, x, args)`.
    - `t`: the time at which the drift is evaluated (for an autonomous drift it does not
      matter).
    - `check`: if `True`, raise if `x` is not a fixed point (as `nj.check_fixed_point`).
    - `rtol`, `scale`: the fixed-point test is

      $$\frac{|f(x)|}{σ_{\min}(J)} \le \mathrm{rtol}\,(|x| + \mathrm{scale}),$$

      i.e. the fixed point that Newton's method would reach is within a relative distance
      `rtol` of `x` (`scale`, default `1`, is the length below which distances count as
      absolute). Default `rtol = ε^(1/3)` (6e-6 in float64, 5e-3 in float32), loose enough
      for a fixed point located numerically and tight enough to refuse any point visibly
      off. A degenerate fixed point (singular `J`) passes only if `f(x) = 0` exactly or `x`
      is within that distance.
    - `hyperbolic_rtol`, `rate_scale`: an eigenvalue with
      `|Re λ| ≤ hyperbolic_rtol · max(max|λ|, rate_scale)` counts as on the imaginary axis,
      making the point non-hyperbolic. Default `hyperbolic_rtol = ε^(1/3)`, `rate_scale = 0`.
      At a nearly degenerate point every eigenvalue is small, so pass a rate typical of the
      drift as `rate_scale` (`nj.find_fixed_points` passes the median of `‖∂f/∂x‖₂` over its
      starting points).

    **Returns:** an `nj.FixedPoint`. It is computed for any `x`; whether `x` is a fixed point
    is in `is_fixed_point`, `residual` and `distance`.

    `jit`- and `vmap`-able. With `check=True` under `jit`/`vmap` the error is raised at run
    time by `equinox.error_if`, without the numbers.
    """
    where = "check_fixed_point" if check else "classify_fixed_point"
    x, t = _check_start(sde, x, t, args, where)
    _positive_float(rtol, "rtol", where)
    _positive_float(scale, "scale", where)
    _positive_float(hyperbolic_rtol, "hyperbolic_rtol", where)
    rtol_, scale_, hyp_, rate_ = _tolerances(x.dtype, rtol, scale, hyperbolic_rtol, rate_scale)
    fp = _classify_jit(sde, x, t, args, rtol_, scale_, hyp_, rate_)
    if check:
        if _is_concrete(fp.is_fixed_point):
            if not bool(fp.is_fixed_point):
                raise ValueError(_not_fixed_message(fp, rtol_, scale_, where))
        else:
            fp = eqx.error_if(fp, ~fp.is_fixed_point, f"`{where}`: {_NOT_FIXED_STATIC}")
    return fp


def check_fixed_point(
    sde: SDE,
    x: ArrayLike,
    args: Any = None,
    *,
    t: ArrayLike = 0.0,
    rtol: float | None = None,
    scale: float = 1.0,
    hyperbolic_rtol: float | None = None,
    rate_scale: float | None = None,
) -> FixedPoint:
    r"""`classify_fixed_point(..., check=True)`: classify `x`, and raise if it is not a fixed
    point of the drift, i.e. if `|f(x)|/σ_min(∂f/∂x) > rtol·(|x| + scale)` (see
    `nj.classify_fixed_point` for the tolerances).

    Called outside `jit` it raises a `ValueError` whose message gives `|f(x)|`, the distance
    bound and the tolerance; under `jit`/`vmap` an `equinox` runtime error.
    """
    return classify_fixed_point(
        sde,
        x,
        args,
        t=t,
        check=True,
        rtol=rtol,
        scale=scale,
        hyperbolic_rtol=hyperbolic_rtol,
        rate_scale=rate_scale,
    )


# ---------------------------------------------------------------------------------------------
# Search.


class FixedPoints(eqx.Module):
    """The fixed points found by `nj.find_fixed_points`, sorted by index, then (among equal
    indices, hyperbolic first) by their coordinates.

    **Attributes:**

    - `points`: an `nj.FixedPoint` whose fields have a leading axis of length `k` (one per
      fixed point); the shortcuts `xs` `(k, d)`, `index` `(k,)`, `kind` `(k,)`,
      `eigenvalues` `(k, d)`, `eigenvectors`, `jacobians`, `residual`, `num_center`,
      `unstable_direction` read them.
    - `hits`: `Array[k]`, how many starting points converged to each fixed point (a rough
      measure of the size of its basin under the root-finder, not of the dynamics).
    - `num_starts`: the number of starting points; `num_converged`: how many of them
      converged to some fixed point.

    **Selecting:** `fps.stable`, `fps.unstable`, `fps.non_hyperbolic`,
    `fps.saddles(index=None)` (kind `saddle`, optionally of one index),
    `fps.with_index(k)` (hyperbolic points of index `k`, whatever their kind: with `k = 1`
    the transition states, including a 1-D maximum), `fps[i]` (one `nj.FixedPoint`),
    `fps[mask_or_indices]` (a `FixedPoints`), `fps.nearest(x)`, `len(fps)`, iteration.
    `print(fps)` shows a table.
    """

    points: FixedPoint
    hits: Int[Array, " k"]
    num_starts: int = eqx.field(static=True)
    num_converged: int = eqx.field(static=True)

    # Shortcuts.
    @property
    def xs(self) -> Float[Array, "k d"]:
        return self.points.x

    @property
    def index(self) -> Int[Array, " k"]:
        return self.points.index

    @property
    def kind(self) -> FIXED_POINT_KINDS:
        return self.points.kind

    @property
    def eigenvalues(self) -> Complex[Array, "k d"]:
        return self.points.eigenvalues

    @property
    def eigenvectors(self) -> Complex[Array, "k d d"]:
        return self.points.eigenvectors

    @property
    def jacobians(self) -> Float[Array, "k d d"]:
        return self.points.jacobian

    @property
    def residual(self) -> Float[Array, " k"]:
        return self.points.residual

    @property
    def num_center(self) -> Int[Array, " k"]:
        return self.points.num_center

    @property
    def unstable_direction(self) -> Float[Array, "k d"]:
        return self.points.unstable_direction

    @property
    def kind_names(self) -> list[str]:
        """The kinds as strings, e.g. `["stable", "saddle", ...]`."""
        return kind_name(self.points.kind)

    def __len__(self) -> int:
        return int(self.points.x.shape[0])

    def __getitem__(self, item):
        if hasattr(item, "__index__") and jnp.ndim(item) == 0:  # int, NumPy/JAX integer
            i, n = operator.index(item), len(self)
            if not -n <= i < n:
                raise IndexError(f"fixed point {i} out of range for {n} fixed points.")
            return _take(self.points, jnp.asarray(i % n))
        item = jnp.asarray(item)
        if item.dtype == jnp.bool_:
            item = jnp.nonzero(item)[0]
        pts, hits = _take((self.points, self.hits), item)
        return FixedPoints(pts, hits, self.num_starts, self.num_converged)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def _of_kind(self, kind) -> "FixedPoints":
        return self[self.points.kind == kind]

    @property
    def stable(self) -> "FixedPoints":
        """The attractors (kind `stable`, index 0)."""
        return self._of_kind(FIXED_POINT_KINDS.stable)

    @property
    def unstable(self) -> "FixedPoints":
        """The sources (kind `unstable`, index `d`)."""
        return self._of_kind(FIXED_POINT_KINDS.unstable)

    @property
    def non_hyperbolic(self) -> "FixedPoints":
        return self._of_kind(FIXED_POINT_KINDS.non_hyperbolic)

    def saddles(self, index: int | None = None) -> "FixedPoints":
        """The points of kind `saddle` (`0 < index < d`), all or those of one `index`. In 1-D
        there are none: use `with_index(1)` for transition states in any dimension."""
        mask = self.points.kind == FIXED_POINT_KINDS.saddle
        if index is not None:
            mask = mask & (self.points.index == index)
        return self[mask]

    def with_index(self, index: int) -> "FixedPoints":
        """The hyperbolic points with `index` unstable directions, whatever their kind
        (`with_index(0)` is `stable`; `with_index(1)` the transition states, including the
        maximum between two wells in 1-D)."""
        mask = (self.points.index == index) & (
            self.points.kind != FIXED_POINT_KINDS.non_hyperbolic
        )
        return self[mask]

    def nearest(self, x: ArrayLike) -> FixedPoint:
        """The fixed point nearest to `x` (Euclidean distance)."""
        if len(self) == 0:
            raise ValueError("`FixedPoints.nearest`: no fixed points.")
        x = jnp.asarray(x)
        i = int(jnp.argmin(jnp.linalg.norm(self.points.x - x, axis=-1)))
        return self[i]

    def _table(self) -> str:
        k = len(self)
        head = (
            f"FixedPoints: {k} found from {self.num_starts} starting points "
            f"({self.num_converged} converged)"
        )
        if k == 0:
            return head
        names = kind_name(self.points.kind)
        rows = [("#", "kind", "index", "x", "eigenvalues", "|f(x)|", "hits")]
        for i in range(k):
            row = self.points.x[i].tolist()
            big = 1e-12 * (1.0 + max(abs(v) for v in row))  # hide round-off
            x = ", ".join(f"{(v if abs(v) > big else 0.0): .6g}" for v in row)
            ev = ", ".join(_fmt_complex(z) for z in self.points.eigenvalues[i].tolist())
            rows.append(
                (
                    str(i),
                    names[i],
                    str(int(self.points.index[i])),
                    f"[{x}]",
                    f"[{ev}]",
                    f"{float(self.points.residual[i]):.1e}",
                    str(int(self.hits[i])),
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(len(r))).rstrip() for r in rows]
        return head + "\n" + "\n".join("  " + line for line in lines)

    def __repr__(self) -> str:
        if not _is_concrete(self.points):
            return super().__repr__()
        return self._table()

    __str__ = __repr__


@eqx.filter_jit
def _take(tree, index):
    """Every array of `tree` indexed along its first axis by `index` (an integer array, of
    any shape): one small compiled program per structure and shape, not one per leaf and
    index (as eager indexing with a Python integer would compile)."""
    return jax.tree.map(lambda a: a[index], tree)


def _fmt_complex(z: complex) -> str:
    z = complex(z.real + 0.0, z.imag + 0.0)  # no "-0"
    if z.imag == 0:
        return f"{z.real:.4g}"
    sign = "+" if z.imag > 0 else "-"
    return f"{z.real:.4g}{sign}{abs(z.imag):.4g}j"


@eqx.filter_jit
def _solve_all(sde, starts, center, length, t, args, rtol, atol, max_steps, check_rtol, hyp_rtol):
    """Root-find from every start (vmapped) and classify every end point."""
    fun = lambda x: sde.f(t, x, args)
    jac = jax.vmap(jax.jacfwd(fun))(starts)
    # Reference scales from the search box: a typical rate ‖∂f/∂x‖ and a typical change of
    # the drift across one box half-width. They make the root-finding dimensionless.
    rate = jnp.nanmedian(jax.vmap(lambda J: jnp.linalg.norm(J, 2))(jac))
    rate = jnp.where(jnp.isfinite(rate) & (rate > 0), rate, 1.0)
    dscale = jnp.nanmedian(jax.vmap(lambda J: jnp.linalg.norm(J * length[None, :], 2))(jac))
    dscale = jnp.where(jnp.isfinite(dscale) & (dscale > 0), dscale, 1.0)

    def g(z, _):
        return fun(center + length * z) / dscale

    # Dogleg trust region on ½|g|²: globally convergent, Gauss–Newton (quadratic) near a
    # regular root, and, unlike Levenberg–Marquardt, it does not stall at a degenerate root
    # (f = −x³), where its damping would dominate the vanishing Jacobian. A local minimum
    # of |g| that is not a root is rejected below.
    solver = optx.Dogleg(rtol=rtol, atol=atol)

    def one(x0):
        sol = optx.root_find(
            g, solver, (x0 - center) / length, max_steps=max_steps, throw=False
        )
        return center + length * sol.value, sol.stats["num_steps"]

    xs, num_steps = jax.vmap(one)(starts)
    box = jnp.max(length)
    fps = jax.vmap(lambda x: _classify(sde, x, t, args, check_rtol, box, hyp_rtol, rate))(xs)
    gmax = jnp.max(jnp.abs(jax.vmap(lambda x: fun(x) / dscale)(xs)), axis=-1)
    accept = (
        jnp.all(jnp.isfinite(xs), axis=-1)
        & (gmax <= jnp.sqrt(atol))
        & fps.is_fixed_point
    )
    return fps, accept, num_steps


def find_fixed_points(
    sde: SDE,
    *,
    points: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    num_starts: int = 128,
    scale: ArrayLike = 1.0,
    center: ArrayLike = 0.0,
    args: Any = None,
    t: ArrayLike = 0.0,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
    min_separation: float | None = None,
    check_rtol: float | None = None,
    hyperbolic_rtol: float | None = None,
) -> FixedPoints:
    r"""Find the fixed points `f(x) = 0` of the drift in a region, and classify them.

    A dogleg trust-region method (optimistix) minimises `½|f|²` from many starting points in one
    jitted, vmapped call; the end points where `f` vanishes are kept, merged when closer than
    `min_separation`, classified (`nj.classify_fixed_point`) and sorted.

    **Arguments:**

    - `sde`: the system, an `nj.SDE` (only its drift is used).
    - `points`: the starting points, shape `(k, d)`. If not given, `num_starts` points
      uniform in the box `center ± scale` (the first one is `center` itself), drawn with
      `key` (default `jax.random.key(0)`, so the same call gives the same answer).
    - `center`, `scale`: the search box, scalars or arrays of shape `(d,)`. Without
      `points`, the dimension `d` is read from `center` or `scale`, so one of them must be
      an array of shape `(d,)`. `scale` is also the length unit of the search: the
      root-finder works in `z = (x − center)/scale`.
    - `args`, `t`: passed to the drift (a time-dependent drift is frozen at `t`).
    - `rtol`, `atol`: tolerances of the root-finder on the dimensionless problem
      `g(z) = f(center + scale·z)/F`, `F` the median of `‖∂f/∂x · diag(scale)‖₂` over the
      starting points (the typical change of the drift across the box). Defaults `ε^(2/3)`
      (4e-11 in float64, 2e-5 in float32). A fixed point is kept when
      `max|g| ≤ √atol` *and* it passes the fixed-point test of `nj.classify_fixed_point`
      with `rtol = check_rtol` (default `ε^(1/3)`) and `scale = max(scale)`.
    - `max_steps`: root-finder iterations per start.
    - `min_separation`: fixed points closer than `min_separation` in the scaled coordinates
      `z` (for a scalar `scale`: closer than `min_separation·scale`) are merged, keeping the
      one with the smallest `|f|`. Default `ε^(1/3)` (6e-6 in float64).
    - `hyperbolic_rtol`: see `nj.classify_fixed_point`; the rate it is relative to is at
      least the median of `‖∂f/∂x‖₂` over the starting points, so that a degenerate point
      (e.g. `f = −x³` at `0`, located only to about `atol^(1/3)`) is reported as
      non-hyperbolic.

    **Returns:** an `nj.FixedPoints`.

    Not itself `jit`-able (the number of fixed points is data-dependent): the root-finding
    and classification run in one compiled call, the merging and sorting afterwards.
    Fixed points outside the box can be found (the root-finder is not confined), and
    fixed points inside can be missed if no start lies in their basin: increase
    `num_starts`, or pass `points`.
    """
    where = "find_fixed_points"
    _check_sde(sde, where)
    if not _is_concrete(points, center, scale, args, t):
        raise ValueError(
            f"`{where}` cannot run under `jit`/`vmap`/`grad`: the number of fixed points it "
            "returns depends on the data. Call it outside, then `jit`/`vmap` "
            "`nj.classify_fixed_point` or `nj.relax` on its results."
        )
    for name, v in (("num_starts", num_starts), ("max_steps", max_steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{where}`: `{name}` must be a positive int, got {v!r}.")
    for name, v in (
        ("rtol", rtol),
        ("atol", atol),
        ("min_separation", min_separation),
        ("check_rtol", check_rtol),
        ("hyperbolic_rtol", hyperbolic_rtol),
    ):
        _positive_float(v, name, where)
    center = jnp.asarray(center)
    scale = jnp.asarray(scale)
    for name, v in (("center", center), ("scale", scale)):
        if v.ndim > 1:
            raise ValueError(
                f"`{where}`: `{name}` must be a scalar or of shape (d,), got {v.shape}."
            )
        if not jnp.issubdtype(v.dtype, jnp.floating) and not jnp.issubdtype(v.dtype, jnp.integer):
            raise ValueError(f"`{where}`: `{name}` must be real, got dtype {v.dtype}.")

    if points is not None:
        points = jnp.asarray(points)
        if points.ndim != 2:
            raise ValueError(
                f"`{where}`: `points` must have shape (k, d) (one starting point per row), "
                f"got shape {points.shape}."
            )
        if not jnp.issubdtype(points.dtype, jnp.floating):
            if jnp.issubdtype(points.dtype, jnp.integer):
                points = points.astype(float)
            else:
                raise ValueError(f"`{where}`: `points` must be real, got dtype {points.dtype}.")
        d = points.shape[1]
        if points.shape[0] == 0 or d == 0:
            raise ValueError(f"`{where}`: `points` is empty (shape {points.shape}).")
    else:
        dims = {v.shape[0] for v in (center, scale) if v.ndim == 1}
        if not dims:
            raise ValueError(
                f"`{where}`: the dimension of the state is unknown: pass `points` of shape "
                "(k, d), or a `center` (or `scale`) of shape (d,), e.g. "
                "`center=jnp.zeros(d)`."
            )
        (d,) = dims if len(dims) == 1 else (None,)
        if d is None:
            raise ValueError(
                f"`{where}`: `center` and `scale` have different lengths "
                f"{center.shape} and {scale.shape}."
            )
    for name, v in (("center", center), ("scale", scale)):
        if v.ndim == 1 and v.shape[0] != d:
            raise ValueError(
                f"`{where}`: `{name}` has shape {v.shape} but the state has dimension {d}."
            )
    dtype = jnp.result_type(float) if points is None else points.dtype
    center = jnp.broadcast_to(center, (d,)).astype(dtype)
    scale = jnp.broadcast_to(scale, (d,)).astype(dtype)
    if not bool(jnp.all(scale > 0)):
        raise ValueError(f"`{where}`: `scale` must be positive, got {scale}.")
    t = as_time(t, "t").astype(dtype)
    _check_drift(sde, t, center, args, where)

    if points is None:
        key = jax.random.key(0) if key is None else key
        u = jax.random.uniform(key, (num_starts, d), dtype=dtype, minval=-1.0, maxval=1.0)
        points = center + scale * u
        points = points.at[0].set(center)

    eps = _eps(dtype)
    rtol = eps ** (2 / 3) if rtol is None else rtol
    atol = eps ** (2 / 3) if atol is None else atol
    min_separation = eps ** (1 / 3) if min_separation is None else min_separation
    check_rtol = default_check_rtol(dtype) if check_rtol is None else check_rtol
    hyp = default_hyperbolic_rtol(dtype) if hyperbolic_rtol is None else hyperbolic_rtol
    arr = lambda a: jnp.asarray(a, dtype=dtype)

    fps, accept, _ = _solve_all(
        sde, points, center, scale, t, args, rtol, atol, max_steps, arr(check_rtol), arr(hyp)
    )

    # Eager, on a few arrays: merge duplicates, then sort.
    ok = [i for i, a in enumerate(accept.tolist()) if a]
    if not ok:
        empty = jax.tree.map(lambda a: a[:0], fps)
        return FixedPoints(empty, jnp.zeros((0,), jnp.int32), int(points.shape[0]), 0)
    ok_idx = jnp.asarray(ok)
    zs = (fps.x[ok_idx] - center) / scale
    near = (jnp.linalg.norm(zs[:, None] - zs[None], axis=-1) <= min_separation).tolist()
    res = fps.residual[ok_idx].tolist()
    reps: list[int] = []  # positions in `ok`
    hits: list[int] = []
    for i in sorted(range(len(ok)), key=lambda i: res[i]):
        for r, j in enumerate(reps):
            if near[i][j]:
                hits[r] += 1
                break
        else:
            reps.append(i)
            hits.append(1)
    # Sort by index, hyperbolic before non-hyperbolic, then coordinates (rounded to the
    # merging resolution, so that round-off does not decide the order).
    index = fps.index[ok_idx].tolist()
    center_n = fps.num_center[ok_idx].tolist()
    grid = [[round(v / min_separation) for v in row] for row in zs.tolist()]
    order = sorted(
        range(len(reps)),
        key=lambda r: (index[reps[r]], center_n[reps[r]] > 0, grid[reps[r]]),
    )
    sel = jnp.asarray([ok[reps[r]] for r in order])
    pts = _take(fps, sel)
    return FixedPoints(
        pts, jnp.asarray([hits[r] for r in order], jnp.int32), int(points.shape[0]), len(ok)
    )
