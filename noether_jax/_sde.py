"""The noisy system `dx = f(t, x; θ) dt + sqrt(2 D(t, x; θ)) dW` and its noise metric."""

import operator
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


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
        return self.drift(t, x, args)

    def D(self, t, x, args) -> Array:
        """The noise matrix at `(t, x)`: an array of shape `()`, `(d,)` or `(d, d)`."""
        if callable(self.diffusion):
            out = self.diffusion(t, x, args)
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


def metric_inner(D: Array, r: Float[Array, " d"]) -> Float[Array, ""]:
    """`rᵀ D⁻¹ r`; NaN if a full `D` is not positive definite."""
    if D.ndim < 2:
        return jnp.sum(r * r / D)
    chol = jnp.linalg.cholesky(D)
    z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
    return jnp.sum(z * z)


def metric_is_spd(D: Array) -> Array:
    """Whether a noise value is symmetric positive definite (and finite)."""
    if D.ndim < 2:
        return jnp.all(jnp.isfinite(D)) & jnp.all(D > 0)
    sym = jnp.allclose(D, D.T, rtol=1e-6, atol=0.0)
    chol = jnp.linalg.cholesky(D)
    return sym & jnp.all(jnp.isfinite(chol))


def check_diffusion_shape(D_struct, d: int, where: str = "`diffusion`") -> None:
    shape = tuple(D_struct.shape)
    if shape not in ((), (d,), (d, d)):
        raise ValueError(
            f"{where} must be a scalar, or have shape ({d},) (diagonal) or ({d}, {d}) "
            f"(full SPD matrix) for a {d}-dimensional state; got shape {shape}."
        )


def as_time(t: ArrayLike, name: str) -> Array:
    t = jnp.asarray(t)
    if t.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar time, got shape {t.shape}.")
    if not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer)):
        raise ValueError(f"`{name}` must be a real number, got dtype {t.dtype}.")
    return t


def _prefix(where: str | None) -> str:
    """The start of an error message: "`where`: " (the function that checks), or nothing."""
    return "" if where is None else f"`{where}`: "


def as_state(x, name: str, where: str | None = None) -> Array:
    """A floating-point state of shape (d,), d ≥ 1 (trace-time checks). `where`, if given,
    names the calling function at the start of the error messages."""
    p = _prefix(where)
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(
                f"{p}`{name}` must be a floating-point array, got dtype {x.dtype}; convert it "
                f"with `jnp.asarray({name}, dtype=float)`."
            )
        arr = jnp.asarray(x)
    else:
        try:
            arr = jnp.asarray(x, dtype=float)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{p}`{name}` must be an array of shape (d,), got {x!r}.") from e
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(
            f"{p}`{name}` must be a 1-D array of shape (d,), got shape {arr.shape}. For a "
            f"one-dimensional system write `{name}=jnp.array([value])`."
        )
    return arr


def as_endpoints(x0, x1, names: tuple[str, str] = ("x0", "x1")) -> tuple[Array, Array, Any]:
    """Two states of the same shape (see `as_state`), cast to their common real dtype.
    Returns `(x0, x1, dtype)`."""
    n0, n1 = names
    x0 = as_state(x0, n0)
    x1 = as_state(x1, n1)
    if x0.shape != x1.shape:
        raise ValueError(
            f"`{n0}` and `{n1}` must have the same shape, got {x0.shape} and {x1.shape}."
        )
    dtype = jnp.result_type(x0, x1)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"`{n0}` and `{n1}` must be real.")
    return x0.astype(dtype), x1.astype(dtype), dtype


def check_init_and_nodes(init, n_nodes, d: int, default: int) -> tuple[Array | None, int]:
    """An initial path `init` of shape `(n_nodes, d)` (or None) and the number of nodes
    (from `n_nodes`, else from `init`, else `default`; at least 3). Returns
    `(init, n_nodes)`, `init` as an array (not cast)."""
    if init is not None:
        init = jnp.asarray(init)
        if init.ndim != 2 or init.shape[1] != d:
            raise ValueError(f"`init` must have shape (n_nodes, {d}), got {init.shape}.")
        if n_nodes is not None and init.shape[0] != n_nodes:
            raise ValueError(f"`init` has {init.shape[0]} nodes but `n_nodes` is {n_nodes}.")
        n_nodes = init.shape[0]
    n_nodes = as_count(default if n_nodes is None else n_nodes, "n_nodes")
    if n_nodes < 3:
        raise ValueError(f"`n_nodes` must be at least 3 (one interior node), got {n_nodes}.")
    return init, n_nodes


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
