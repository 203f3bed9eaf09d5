"""Continuous-time recurrent neural networks as drifts."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class CTRNN(eqx.Module):
    r"""A continuous-time recurrent neural network, as the drift of a noisy system:

    $$f(x; θ) = -x + W\,φ(x) + b, \qquad θ = (W, b).$$

    With noise, `dx = f(x; θ) dt + sqrt(2D) dW` (docs/conventions.md), its memories are attractors
    of `f`, and the minimal action between them (`nj.minimize_action`, `nj.barrier`) says how
    robust they are: the mean time to forget is `∝ exp(barrier)`.

    **Arguments:**

    - `W`: `Array[d, d]`, the recurrent weights.
    - `b`: `Array[d]`, the biases.
    - `activation`: `φ`, applied to the whole state: a function `(d,) -> (d,)`. An
      elementwise function (`jnp.tanh`, the default; `jax.nn.relu`, ...) works as is; a
      function of the whole vector can make the network equivariant (e.g. a radial
      nonlinearity `φ(x) = x g(|x|)` on pairs of units commutes with their rotations).
      Held as a static field: a new function (not new weights) recompiles.

    **Use.** Either as the drift itself, `nj.SDE(net, D)` (the weights then live in the
    `nj.SDE`), or, usually more convenient for training, as `args` of a system whose drift
    calls it:

    ```python
    sde = nj.SDE(nj.ctrnn_drift, D)          # drift(t, x, net) = net(t, x)
    loss = lambda net: nj.minimize_action(sde, a, b, 0.0, T, args=net).action
    grads = jax.grad(loss)(net)              # a CTRNN of gradients: grads.W, grads.b
    ```

    **Training.** `jax.grad` of the minimal action uses the envelope theorem, and derivatives
    of the path `sol.xs` implicit differentiation (one linear solve with the Hessian), so
    neither backpropagates through solver iterations. Warm-start each training step from
    the previous step's path (`init=sol.xs`) with little initial damping
    (`solver=nj.BlockNewton(lam0=1e-6)`): after a small change of the weights a solve then
    takes 3–4 Newton steps instead of 9–15 from a straight line. `jax.vmap` the solve over a
    batch of boundary conditions inside the loss (e.g. both transitions between two
    memories); pass `throw=False` and leave unconverged elements out of the loss.

    **Symmetries.** The leak `−x` commutes with every linear generator `ξ = A x`, so a linear
    symmetry of `f` is one of `W φ(x) + b` (with isotropic noise: a rotation that commutes
    with `W` and `φ` and fixes `b`).
    """

    W: Float[Array, "d d"] = eqx.field(converter=jnp.asarray)
    b: Float[Array, " d"] = eqx.field(converter=jnp.asarray)
    activation: Callable = eqx.field(static=True, default=jnp.tanh)

    def __check_init__(self):
        W, b = self.W, self.b
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(
                f"`nj.CTRNN`: `W` must be a square matrix of shape (d, d), got shape {W.shape}."
            )
        if b.shape != (W.shape[0],):
            raise ValueError(
                f"`nj.CTRNN`: `b` must have shape ({W.shape[0]},) like the rows of `W`, got "
                f"shape {b.shape}."
            )
        for name, a in (("W", W), ("b", b)):
            if not jnp.issubdtype(a.dtype, jnp.floating):
                raise ValueError(
                    f"`nj.CTRNN`: `{name}` must be a floating-point array, got dtype {a.dtype}."
                )
        if not callable(self.activation):
            raise ValueError(
                "`nj.CTRNN`: `activation` must be a callable `(d,) -> (d,)` such as `jnp.tanh`, "
                f"got {type(self.activation).__name__}."
            )

    @property
    def dim(self) -> int:
        """The number of units `d`."""
        return self.W.shape[-1]

    def __call__(self, t: Any, x: Float[Array, " d"], args: Any = None) -> Float[Array, " d"]:
        """The drift `f(x) = −x + W φ(x) + b` (autonomous: `t` and `args` are ignored)."""
        d = self.dim
        if jnp.shape(x) != (d,):
            raise ValueError(
                f"`nj.CTRNN` with {d} units: the state must have shape ({d},), got shape "
                f"{jnp.shape(x)}."
            )
        phi = self.activation(x)
        if jnp.shape(phi) != (d,):
            raise ValueError(
                f"`nj.CTRNN`: `activation` must map shape ({d},) to ({d},), got "
                f"{jnp.shape(phi)}."
            )
        return -x + self.W @ phi + self.b

    @classmethod
    def random(
        cls,
        key: PRNGKeyArray,
        d: int,
        *,
        gain: float = 1.0,
        bias: float = 0.0,
        activation: Callable = jnp.tanh,
        dtype: Any = None,
    ) -> "CTRNN":
        r"""A random network: `W` with i.i.d. `N(0, gain²/d)` entries (so its spectral
        radius is `≈ gain`; `gain > 1` gives multistable or chaotic networks) and `b` with
        i.i.d. `N(0, bias²)` entries."""
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"`nj.CTRNN.random`: `d` must be a positive int, got {d!r}.")
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        kW, kb = jax.random.split(key)
        W = gain / jnp.sqrt(d) * jax.random.normal(kW, (d, d), dtype)
        b = bias * jax.random.normal(kb, (d,), dtype)
        return cls(W, b, activation=activation)


def ctrnn_drift(t: Any, x: Float[Array, " d"], net: CTRNN) -> Float[Array, " d"]:
    """The drift of the network passed as `args`: `nj.SDE(nj.ctrnn_drift, D)` with
    `args=net` (an `nj.CTRNN`, or any callable `net(t, x)`), so that `jax.grad` with respect
    to `args` gives the gradient with respect to the weights."""
    if not callable(net):
        raise ValueError(
            "`nj.ctrnn_drift(t, x, net)`: `args` must be the network (an `nj.CTRNN`), got "
            f"{type(net).__name__}. Pass `args=net` to the solver."
        )
    return net(t, x)

