"""The noisy system `dx = f(t, x; θ) dt + sqrt(2 D(t, x; θ)) dW` and its noise metric."""

import operator
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float


@eqx.filter_jit
def _call(fn, t, x, args):
    """`fn(t, x, args)` as a nested compiled call.

    The solvers evaluate the drift at many places of one program (the action, its gradient
    and block Hessian, line searches, relaxation steps), each under its own transformation.
    Through `filter_jit` the user's function is traced once per signature and its jaxpr is
    reused by every call site and transformation, instead of being traced afresh at each
    (a large share of the tracing time of a solve). The compiled program is the same: XLA
    inlines nested calls."""
    return fn(t, x, args)


class SDE(eqx.Module):
    r"""A noisy dynamical system

    $$\mathrm{d}x = f(t, x; θ)\,\mathrm{d}t + \sqrt{2 D(t, x; θ)}\,\mathrm{d}W, \qquad x ∈ \mathbb{R}^d.$$

    **Arguments:**

    - `drift`: the drift `f`, called as `drift(t, x, args) -> Array[d]` (diffrax's argument
      order). It may be any callable, including an `equinox.Module` holding parameters.
    - `diffusion`: the noise matrix `D` (not `sqrt(2D)`!). One of
        - a scalar (isotropic noise, `D = D·I`),
        - an array of shape `(d,)` (diagonal `D`),
        - an array of shape `(d, d)` (a full symmetric positive definite `D`),
        - a callable `diffusion(t, x, args)` returning any of the above.

    In 1-D, `dx = v dt + σ dW` has `D = σ²/2`; noise written `G η` has `D = ½ G Gᵀ`.
    """

    drift: Callable
    diffusion: Any

    def __check_init__(self):
        if not callable(self.drift):
            raise ValueError(
                "`SDE(drift, diffusion)`: `drift` must be a callable `drift(t, x, args)`, "
                f"got {type(self.drift).__name__}."
            )
        if not callable(self.diffusion):
            try:
                arr = jnp.asarray(self.diffusion)
            except TypeError as e:
                raise ValueError(
                    "`SDE(drift, diffusion)`: `diffusion` must be a scalar, an array of shape "
                    "(d,) or (d, d), or a callable `diffusion(t, x, args)`; got "
                    f"{type(self.diffusion).__name__}."
                ) from e
            if arr.ndim > 2:
                raise ValueError(
                    "`SDE`: a constant `diffusion` must be a scalar, (d,) or (d, d) array; got "
                    f"shape {arr.shape}."
                )
            if not jnp.issubdtype(arr.dtype, jnp.floating) and not jnp.issubdtype(
                arr.dtype, jnp.integer
            ):
                raise ValueError(
                    f"`SDE`: `diffusion` must be real, got dtype {arr.dtype}."
                )

    def f(self, t, x, args):
        return _call(self.drift, t, x, args)

    def D(self, t, x, args) -> Array:
        """The noise matrix at `(t, x)`: an array of shape `()`, `(d,)` or `(d, d)`."""
        if callable(self.diffusion):
            out = _call(self.diffusion, t, x, args)
        else:
            out = self.diffusion
        return jnp.asarray(out, dtype=x.dtype)


# Noise-metric algebra. `D` is a value of shape (), (d,) or (d, d) (decided at trace time).


def metric_solve(D: Array, r: Float[Array, " d"]) -> Float[Array, " d"]:
    """`D⁻¹ r`. For a full `D` this goes through a Cholesky factor, so a non-SPD `D` gives NaN."""
    if D.ndim < 2:
        return r / D
    chol = jnp.linalg.cholesky(D)
    return jax.scipy.linalg.cho_solve((chol, True), r)


def metric_matvec(D: Array, p: Float[Array, " d"]) -> Float[Array, " d"]:
    """`D p`."""
    if D.ndim < 2:
        return D * p
    return D @ p


def metric_whiten(D: Array, r: Float[Array, " d"]) -> Float[Array, " d"]:
    """`z` with `zᵀz = rᵀ D⁻¹ r`: `r/√D` for a scalar or diagonal `D`, `L⁻¹ r` for
    `D = L Lᵀ` (NaN if a full `D` is not positive definite)."""
    if D.ndim < 2:
        return r / jnp.sqrt(D)
    chol = jnp.linalg.cholesky(D)
    return jax.scipy.linalg.solve_triangular(chol, r, lower=True)


def metric_inner(D: Array, r: Float[Array, " d"]) -> Float[Array, ""]:
    """`rᵀ D⁻¹ r`; NaN if a full `D` is not positive definite."""
    if D.ndim < 2:
        return jnp.sum(r * r / D)
    z = metric_whiten(D, r)
    return jnp.sum(z * z)


def metric_is_spd(D: Array) -> Array:
    """Whether a noise value is symmetric positive definite (and finite)."""
    if D.ndim < 2:
        return jnp.all(jnp.isfinite(D)) & jnp.all(D > 0)
    sym = jnp.allclose(D, D.T, rtol=1e-6, atol=0.0)
    chol = jnp.linalg.cholesky(D)
    return sym & jnp.all(jnp.isfinite(chol))


def diffusion_is_spd(sde: SDE, ts, xs: Float[Array, "n d"], args) -> Bool[Array, ""]:
    """Whether the noise of `sde` is symmetric positive definite (and finite) along a path
    `xs` at times `ts` (`None`: `t = 0`, for time-free geometric paths): a constant `D` is
    checked once, a callable one at the midpoints of the segments."""
    if not callable(sde.diffusion):
        return metric_is_spd(jnp.asarray(sde.diffusion, dtype=xs.dtype))
    xm = 0.5 * (xs[:-1] + xs[1:])
    if ts is None:
        tm = jnp.zeros(xm.shape[:1], xs.dtype)
    else:
        tm = 0.5 * (ts[:-1] + ts[1:])
    return jnp.all(jax.vmap(lambda t, x: metric_is_spd(sde.D(t, x, args)))(tm, xm))


def check_diffusion_shape(D_struct, d: int, where: str = "`diffusion`") -> None:
    shape = tuple(D_struct.shape)
    if shape not in ((), (d,), (d, d)):
        raise ValueError(
            f"{where} must be a scalar, or have shape ({d},) (diagonal) or ({d}, {d}) "
            f"(full SPD matrix) for a {d}-dimensional state; got shape {shape}."
        )


def _prefix(where: str | None) -> str:
    """The start of an error message: "`where`: " (the function that checks), or nothing."""
    return "" if where is None else f"`{where}`: "


def is_concrete(x) -> bool:
    """Whether `x` is a value known now (not a tracer of `jit`/`vmap`/`grad`)."""
    return not isinstance(x, jax.core.Tracer)


def _default_float():
    """The default floating dtype: float64 with `jax_enable_x64`, else float32."""
    return jnp.zeros(()).dtype


def as_real_array(
    x,
    name: str,
    where: str | None = None,
    *,
    integers: bool = False,
    dtype=None,
) -> Array:
    """`x` as a real floating-point array, checked at trace time (shapes are the caller's).

    - Complex values are always refused (the action, the paths and the symmetry conditions
      are real), and so are booleans; the `ValueError` names the argument `name` (and
      `where`, the function that checks).
    - Python numbers and (nested) lists: integers become floats, so `x0=[1, 0]` works.
    - Integer arrays: refused unless `integers=True` (for times and grids, `t1=2`,
      `times=jnp.arange(4)`); then cast to float. Integers that the float type cannot hold
      exactly are refused when their values are known (not under `jit`).
    - Floating arrays keep their dtype; `dtype`, if given, is the dtype of the result.
    """
    p = _prefix(where)
    need = "real (float or int)" if integers else "a floating-point array"
    is_array = hasattr(x, "dtype") and hasattr(x, "shape")
    try:
        arr = x if isinstance(x, jax.Array) else jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as e:
        got = "complex values" if _has_complex(x) else repr(x)
        raise ValueError(f"{p}`{name}` must be {need}, got {got}.") from e
    dt = arr.dtype
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise ValueError(
            f"{p}`{name}` must be {need}, got complex dtype {dt}: only real values are "
            f"allowed (pass `jnp.real({name})` if its imaginary part is zero)."
        )
    if dt == jnp.bool_:
        raise ValueError(
            f"{p}`{name}` must be {need}, got dtype bool (a mask?); if 0/1 values are "
            f"meant, convert them with `jnp.asarray({name}, dtype=float)`."
        )
    if jnp.issubdtype(dt, jnp.integer):
        if is_array and not integers:
            raise ValueError(
                f"{p}`{name}` must be a floating-point array, got dtype {dt}; convert it "
                f"with `jnp.asarray({name}, dtype=float)`."
            )
        to = _default_float() if dtype is None else dtype
        out = arr.astype(to)
        if is_concrete(arr) and arr.size:
            with jax.ensure_compile_time_eval():
                exact = bool(jnp.all(jnp.isfinite(out)) & jnp.all(out.astype(dt) == arr))
            if not exact:
                raise ValueError(
                    f"{p}`{name}` holds integers too large to be represented exactly as "
                    f"{jnp.dtype(to).name}; give floats."
                )
        return out
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"{p}`{name}` must be {need}, got dtype {dt}.")
    return arr if dtype is None else arr.astype(dtype)


def _has_complex(x) -> bool:
    if isinstance(x, complex):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_complex(v) for v in x)
    return False


def as_time(t: ArrayLike, name: str, where: str | None = None) -> Array:
    """A real scalar time (a Python or NumPy int is allowed). Complex, boolean and
    non-scalar values are refused at trace time."""
    p = _prefix(where)
    if not (hasattr(t, "shape") or isinstance(t, (int, float, complex))):
        raise ValueError(f"{p}`{name}` must be a scalar time, got {t!r}.")
    t = as_real_array(t, name, where, integers=True)
    if t.ndim != 0:
        raise ValueError(f"{p}`{name}` must be a scalar time, got shape {t.shape}.")
    return t


def as_state(x, name: str, where: str | None = None) -> Array:
    """A floating-point state of shape (d,), d ≥ 1 (trace-time checks). Arrays must be
    floating; Python lists of numbers are converted. `where`, if given, names the calling
    function at the start of the error messages."""
    p = _prefix(where)
    arr = as_real_array(x, name, where)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(
            f"{p}`{name}` must be a 1-D array of shape (d,), got shape {arr.shape}. For a "
            f"one-dimensional system write `{name}=jnp.array([value])`."
        )
    return arr


def as_endpoints(
    x0, x1, names: tuple[str, str] = ("x0", "x1"), where: str | None = None
) -> tuple[Array, Array, Any]:
    """Two states of the same shape (see `as_state`), cast to their common real dtype.
    Returns `(x0, x1, dtype)`."""
    n0, n1 = names
    x0 = as_state(x0, n0, where)
    x1 = as_state(x1, n1, where)
    if x0.shape != x1.shape:
        raise ValueError(
            f"{_prefix(where)}`{n0}` and `{n1}` must have the same shape, got {x0.shape} and "
            f"{x1.shape}."
        )
    dtype = jnp.result_type(x0, x1)
    return x0.astype(dtype), x1.astype(dtype), dtype


def check_init_and_nodes(
    init, n_nodes, d: int, default: int, where: str | None = None
) -> tuple[Array | None, int]:
    """An initial path `init` of shape `(n_nodes, d)` (or None) and the number of nodes
    (from `n_nodes`, else from `init`, else `default`; at least 3). Returns
    `(init, n_nodes)`, `init` as a real floating array (not cast to the states' dtype;
    complex, boolean and integer arrays are refused, see `as_real_array`)."""
    p = _prefix(where)
    if init is not None:
        init = as_real_array(init, "init", where)
        if init.ndim != 2 or init.shape[1] != d:
            raise ValueError(f"{p}`init` must have shape (n_nodes, {d}), got {init.shape}.")
        if n_nodes is not None and init.shape[0] != n_nodes:
            raise ValueError(
                f"{p}`init` has {init.shape[0]} nodes but `n_nodes` is {n_nodes}."
            )
        n_nodes = init.shape[0]
    n_nodes = as_count(default if n_nodes is None else n_nodes, "n_nodes")
    if n_nodes < 3:
        raise ValueError(
            f"{p}`n_nodes` must be at least 3 (one interior node), got {n_nodes}."
        )
    return init, n_nodes


def as_grid(grid, n_nodes: int | None, dtype, where: str | None = None) -> tuple[Array, int]:
    """A grid of node positions `0 = s_0 < s_1 < ... < s_{n−1} = 1` (fractions of the
    duration), cast to `dtype`, and its number of nodes. Complex and boolean grids are
    refused; the order is checked when the values are known (under `jit` it is left to the
    solver's result code)."""
    p = _prefix(where)
    grid = as_real_array(grid, "grid", where, integers=True, dtype=dtype)
    if grid.ndim != 1:
        raise ValueError(f"{p}`grid` must be 1-D, got shape {grid.shape}.")
    if n_nodes is not None and n_nodes != grid.shape[0]:
        raise ValueError(
            f"{p}`n_nodes={n_nodes}` disagrees with `grid` of length {grid.shape[0]}."
        )
    n_nodes = grid.shape[0]
    if is_concrete(grid) and n_nodes >= 2:
        check_finite(grid, "grid", where)
        with jax.ensure_compile_time_eval():
            bad = bool((grid[0] != 0) | (grid[-1] != 1) | jnp.any(jnp.diff(grid) <= 0))
        if bad:
            raise ValueError(
                f"{p}`grid` must increase strictly from 0 to 1 (node positions as fractions "
                "of the duration)."
            )
    return grid, n_nodes


def _inexact_leaves(tree) -> list:
    """The floating (and complex) leaves of a pytree: arrays and Python/NumPy numbers.
    Integers, booleans and non-numeric leaves (functions, strings) are skipped."""
    out = []
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, (bool, int)):
            continue
        if isinstance(leaf, (float, complex)):
            out.append(leaf)
        elif hasattr(leaf, "dtype") and hasattr(leaf, "shape"):
            if jnp.issubdtype(leaf.dtype, jnp.inexact):
                out.append(leaf)
    return out


def args_are_finite(args) -> Bool[Array, ""]:
    """Whether every floating leaf of `args` is finite (no NaN, no ±inf). Integer, boolean
    and non-numeric leaves count as finite. Works on traced values (a result code, or
    `eqx.error_if`)."""
    ok = jnp.array(True)
    for leaf in _inexact_leaves(args):
        ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def check_finite(tree, name: str, where: str | None = None) -> Bool[Array, ""]:
    """Refuse NaN or ±inf in the floating leaves of `tree`: leaves whose values are known
    (not traced) raise `ValueError` now, naming `name` and the leaf; returns whether the
    traced leaves are finite (`True` if there are none), for `eqx.error_if` or a result
    code."""
    p = _prefix(where)
    ok = jnp.array(True)
    known = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not _inexact_leaves(leaf):
            continue
        if is_concrete(leaf):
            known.append((path, leaf))
        else:
            ok = ok & jnp.all(jnp.isfinite(leaf))
    if known:
        with jax.ensure_compile_time_eval():
            flags = [jnp.all(jnp.isfinite(leaf)) for _, leaf in known]
            all_finite = bool(jnp.all(jnp.stack(flags)))  # one transfer to the host
        if not all_finite:
            path = next(path for (path, _), f in zip(known, flags) if not bool(f))
            what = f"`{name}{jax.tree_util.keystr(path)}`" if path else f"`{name}`"
            raise ValueError(f"{p}{what} contains NaN or infinity.")
    return ok


def _eval_shape(fn, t, x, args):
    """The output structure of `fn(t, x, args)`. Arrays are passed as they are (the user's
    function sees them concrete); `jax.ShapeDtypeStruct`s are passed abstractly."""
    if isinstance(t, jax.ShapeDtypeStruct) or isinstance(x, jax.ShapeDtypeStruct):
        return jax.eval_shape(lambda t_, x_: fn(t_, x_, args), t, x)
    return jax.eval_shape(lambda: fn(t, x, args))


def check_drift_call(
    sde: SDE,
    t,
    x,
    args,
    *,
    where: str | None = None,
    like: str = "`x`",
    returns: str = "an array of shape",
    tail: str = ".",
) -> None:
    """Check at trace time that the drift accepts `(t, x, args)` and returns an array of
    the shape of `x`. `t` and `x` may be arrays or `jax.ShapeDtypeStruct`s. The message
    names the caller (`where`), the reference shape (`like`) and ends with `tail`."""
    p = _prefix(where)
    d = x.shape[0]
    try:
        out = _eval_shape(sde.f, t, x, args)
    except Exception as e:  # noqa: BLE001 - report the user's error with context
        raise ValueError(
            f"{p}calling `drift(t, x, args)` with x of shape {tuple(x.shape)} failed: {e}"
        ) from e
    shape = tuple(getattr(out, "shape", ()))
    if shape != (d,):
        raise ValueError(
            f"{p}`drift(t, x, args)` must return {returns} ({d},) like {like}, got shape "
            f"{shape}{tail}"
        )


def check_sde_calls(sde: SDE, t, x, args, *, where: str | None = None, **drift_message) -> None:
    """Check at trace time that the drift and the diffusion accept `(t, x, args)` and return
    arrays of the right shapes (`drift_message`: the wording options of `check_drift_call`)."""
    check_drift_call(sde, t, x, args, where=where, **drift_message)
    p = _prefix(where)
    try:
        D_struct = _eval_shape(sde.D, t, x, args)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{p}evaluating the diffusion `D` failed: {e}") from e
    check_diffusion_shape(
        D_struct, x.shape[0], "`diffusion`" if where is None else f"{p}the diffusion `D`"
    )


def as_count(n, name: str) -> int:
    """A Python int option (`n_nodes`, ...), also from a NumPy integer."""
    if isinstance(n, bool):
        raise ValueError(f"`{name}` must be a Python int, got {n!r}.")
    try:
        return operator.index(n)
    except TypeError as e:
        raise ValueError(f"`{name}` must be a Python int, got {n!r}.") from e


def float_args_as_arrays(args, dtype):
    """Python floats in `args` become arrays of the state's dtype: under `filter_jit` a
    Python float is a compile-time constant, so every new parameter value would otherwise
    recompile the solver."""
    return jax.tree.map(
        lambda a: jnp.asarray(a, dtype=dtype) if isinstance(a, float) else a, args
    )
