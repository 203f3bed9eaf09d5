r"""The geometric (infinite-time) action and its minimiser.

For a curve `φ` from `x0` to `x1` and constant `D`, with `⟨u, v⟩ = uᵀ D⁻¹ v`,

$$\hat S[φ] = \tfrac12 \int \big(|φ'|\,|f(φ)| - ⟨φ', f(φ)⟩\big)\,\mathrm{d}s
            = \inf_T \min_{x(0)=x_0,\,x(T)=x_1} S_T[x]$$

(CONVENTIONS.md). Discretisation: on a polyline with nodes `φ_0 .. φ_{n-1}`, each segment
contributes the midpoint value `½(|Δφ_i| |f(m_i)| − ⟨Δφ_i, f(m_i)⟩)`, `m_i` the segment's
midpoint. This is exactly the fixed-time midpoint action of the segment minimised over its
duration, `h_i = |Δφ_i| / |f(m_i)|`, so a physical time is recovered from the same numbers.

The discrete action is (to `O(h²)`) invariant under sliding nodes along the curve, so the
minimiser is made unique by asking the nodes to be equidistant in arclength. The solver
alternates (i) damped Newton on the *normal* displacements of the interior nodes, with the
tangential positions frozen (a smooth, well-posed problem with a block-tridiagonal Hessian,
solved by any path solver, `nj.BlockNewton` by default, including its escape from saddle
points of the action), and
(ii) redistribution of the nodes to equal arclength by linear interpolation. A fixed point
of this map is an equidistant polyline on which the normal components of `∇Ŝ_h` vanish; the
action there converges at second order in the node spacing.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._linalg import BlockTridiagonalOperator, TridiagonalKronecker, _blocktri
from .._problem import AbstractPathProblem
from .._results import RESULTS
from .._sde import SDE, metric_whiten
from .._solver import (
    HESSIAN_TAGS,
    BlockNewton,
    default_tol,
    hessian_solver,
    minimal_value,
    solve_problem,
)
from .._solver import stop_gradient_arrays as _stop


def _safe_sqrt(q):
    # sqrt with a zero (sub)gradient at 0: a curve may pass through a fixed point (|f| = 0)
    # or have a zero-length segment without producing NaN.
    pos = q > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, q, 1.0)), 0.0)


def segment_action(sde: SDE, xa, xb, args, t=0.0) -> Float[Array, ""]:
    """`½(|Δφ| |f(m)| − ⟨Δφ, f(m)⟩)` for the segment from `xa` to `xb` (midpoint `m`)."""
    m = 0.5 * (xa + xb)
    D = sde.D(t, m, args)
    zu = metric_whiten(D, xb - xa)
    zf = metric_whiten(D, sde.f(t, m, args))
    return 0.5 * (_safe_sqrt(jnp.sum(zu * zu)) * _safe_sqrt(jnp.sum(zf * zf)) - jnp.sum(zu * zf))


def segment_time(sde: SDE, xa, xb, args, t=0.0) -> Float[Array, ""]:
    """The duration `|Δφ| / |f(m)|` that makes a segment's fixed-time action minimal
    (infinite where `f(m) = 0` and the segment has positive length, 0 for zero length)."""
    m = 0.5 * (xa + xb)
    D = sde.D(t, m, args)
    zu = metric_whiten(D, xb - xa)
    zf = metric_whiten(D, sde.f(t, m, args))
    lu = _safe_sqrt(jnp.sum(zu * zu))
    lf = _safe_sqrt(jnp.sum(zf * zf))
    return jnp.where(lu == 0, 0.0, lu / jnp.where(lf > 0, lf, 0.0))


def geometric_action_of(sde: SDE, xs: Float[Array, "n d"], args=None) -> Float[Array, ""]:
    """The discrete geometric action `Ŝ_h` of a polyline `xs`."""
    return jnp.sum(jax.vmap(lambda a, b: segment_action(sde, a, b, args))(xs[:-1], xs[1:]))


def physical_times(sde: SDE, xs: Float[Array, "n d"], args=None) -> Float[Array, " n"]:
    """Times `t_i` (with `t_0 = 0`) at the nodes of a geometric path, from
    `dt = |dφ| / |f|` on each segment (at its midpoint). Infinite after a segment on which
    the drift vanishes; the true time to leave or reach a fixed point is infinite, the
    discrete one is finite and grows like `log(n)`."""
    h = jax.vmap(lambda a, b: segment_time(sde, a, b, args))(xs[:-1], xs[1:])
    return jnp.concatenate([jnp.zeros((1,), xs.dtype), jnp.cumsum(h)])


def _normal_bases(c: Float[Array, "n d"]) -> Float[Array, "n d d-1"]:
    """Orthonormal bases of the planes normal to the (central-difference) tangents of a
    polyline, via Householder reflections."""
    n, d = c.shape
    tang = jnp.concatenate([c[1:2] - c[:1], c[2:] - c[:-2], c[-1:] - c[-2:-1]], axis=0)
    norm = jnp.sqrt(jnp.sum(tang * tang, axis=-1, keepdims=True))
    # A zero tangent (coincident nodes) gets an arbitrary direction: any basis will do.
    tang = jnp.where(norm > 0, tang / jnp.where(norm > 0, norm, 1.0), jnp.eye(d, dtype=c.dtype)[0])

    def one(t):
        k = jnp.argmax(jnp.abs(t))
        ek = jnp.zeros_like(t).at[k].set(1.0)
        sign = jnp.where(t[k] >= 0, 1.0, -1.0)
        # H = I − 2wwᵀ/wᵀw maps e_k to ∓t; its other columns span t⊥ (w avoids cancellation).
        w = t + sign * ek
        H = jnp.eye(d, dtype=t.dtype) - 2.0 * jnp.outer(w, w) / jnp.sum(w * w)
        keep = jnp.arange(d - 1) + (jnp.arange(d - 1) >= k)
        return H[:, keep]

    return jax.vmap(one)(tang)


def _arclength(xs):
    seg = _safe_sqrt(jnp.sum((xs[1:] - xs[:-1]) ** 2, axis=-1))
    return jnp.concatenate([jnp.zeros((1,), xs.dtype), jnp.cumsum(seg)])


def reparametrise(xs: Float[Array, "n d"]) -> Float[Array, "n d"]:
    """Redistribute the nodes of a polyline to equal (Euclidean) arclength, by linear
    interpolation. An equidistant polyline is returned unchanged (to round-off)."""
    n = xs.shape[0]
    s = _arclength(xs)
    total = s[-1]
    target = jnp.linspace(0.0, 1.0, n, dtype=xs.dtype) * total
    safe_s = jnp.where(total > 0, s, jnp.linspace(0.0, 1.0, n, dtype=xs.dtype))
    new = jax.vmap(lambda col: jnp.interp(target, safe_s, col), in_axes=1, out_axes=1)(xs)
    new = new.at[0].set(xs[0]).at[-1].set(xs[-1])
    return jnp.where(total > 0, new, xs)


class GeometricProblem(AbstractPathProblem):
    """`a ↦ Ŝ_h(c + N a)`: the discrete geometric action over normal displacements `a` of the
    interior nodes of a reference polyline `c` (normal bases `N`). A path problem like the
    fixed-time one, so every path solver runs on it."""

    sde: SDE
    c: Float[Array, "n d"]
    N: Float[Array, "n d k"]
    args: Any

    def full(self, a: Float[Array, "m k"]) -> Float[Array, "n d"]:
        disp = jnp.einsum("mdk,mk->md", self.N[1:-1], a)
        return self.c.at[1:-1].add(disp)

    def value(self, a):
        return geometric_action_of(self.sde, self.full(a), self.args)

    def hessian(self, a):
        k = a.shape[-1]
        zero = jnp.zeros((1, k), a.dtype)
        ap = jnp.concatenate([zero, a, zero], axis=0)

        def seg(ca, cb, Na, Nb, za, zb):
            return segment_action(self.sde, ca + Na @ za, cb + Nb @ zb, self.args)

        blocks = _blocktri.interval_hessians(
            seg, self.c[:-1], self.c[1:], self.N[:-1], self.N[1:], ap[:-1], ap[1:]
        )
        return BlockTridiagonalOperator(*_blocktri.blocks_from_intervals(*blocks))

    def scale(self, a):
        return jnp.max(jnp.abs(self.c[-1] - self.c[0])) + jnp.max(jnp.abs(self.c))

    def preconditioner(self, a):
        r"""`P = T ⊗ I`, `T` the stiffness of the normal displacements: a segment's
        `½|Δφ| |f|` has second derivative `½|f| / |Δφ|` across the segment (norms in the
        `D⁻¹` metric), so interval `i` contributes `w_i [[1, −1], [−1, 1]]` with
        `w_i = ½|f(m_i)| / |Δφ_i|`."""
        xs = self.full(a)
        m = 0.5 * (xs[:-1] + xs[1:])
        D = jax.vmap(lambda x: self.sde.D(0.0, x, self.args))(m)
        du = xs[1:] - xs[:-1]
        f = jax.vmap(lambda x: self.sde.f(0.0, x, self.args))(m)
        zu = jax.vmap(metric_whiten)(D, du)
        zf = jax.vmap(metric_whiten)(D, f)
        w = 0.5 * _safe_sqrt(jnp.sum(zf * zf, -1)) / jnp.maximum(
            _safe_sqrt(jnp.sum(zu * zu, -1)), jnp.finfo(a.dtype).tiny
        )
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        w = jnp.maximum(w, 1e-8 * jnp.mean(w) + jnp.finfo(a.dtype).tiny)
        return TridiagonalKronecker.from_intervals(w, jnp.zeros_like(w), jnp.ones((), a.dtype))


def _at_root(inputs):
    # `inputs` ends with the adjoint's while loop, which a known root does not need.
    return jax.lax.stop_gradient(inputs[1]), None


def _normal_gradient(root, _, inputs):
    return inputs[0].grad(root)


class _Carry(eqx.Module):
    c: Float[Array, "n d"]
    shift: Float[Array, ""]
    num_rounds: Int[Array, ""]
    num_steps: Int[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS
    inner_result: RESULTS


def solve_geometric(
    sde: SDE,
    x0: Float[Array, " d"],
    x1: Float[Array, " d"],
    c0: Float[Array, "n d"],
    args,
    *,
    solver: optx.AbstractMinimiser | None,
    rtol: float | None,
    max_steps: int,
    max_inner_steps: int,
):
    """Alternate normal solves and arclength redistribution until the polyline stops moving,
    then one last normal solve that is differentiated implicitly. Returns the nodes, the
    action (envelope theorem), a result code and stats."""
    n, d = c0.shape
    dtype = c0.dtype
    rtol_ = default_tol(rtol, dtype)
    eps = jnp.finfo(dtype).eps
    extent = jnp.max(jnp.abs(c0[-1] - c0[0])) + jnp.max(jnp.abs(c0))
    move_tol = rtol_ * extent
    if solver is None:
        solver = BlockNewton(rtol=rtol)

    if d == 1:
        # A 1-D curve between two points is the segment itself: nothing to optimise.
        c = reparametrise(c0).at[0].set(x0).at[-1].set(x1)
        stats = dict(
            num_steps=jnp.array(0, jnp.int32),
            num_rounds=jnp.array(0, jnp.int32),
            shift=jnp.zeros((), dtype),
        )
        return c, geometric_action_of(sde, c, args), RESULTS.successful, stats

    # The rounds only find the curve; derivatives come from the last solve below.
    sde_c, args_c = _stop((sde, args))

    def cond(carry: _Carry):
        return ~carry.done & (carry.num_steps < max_steps)

    def body(carry: _Carry):
        N = _normal_bases(carry.c)
        problem = GeometricProblem(sde_c, carry.c, N, args_c)
        a0 = jnp.zeros((n - 2, d - 1), dtype)
        a, res, st = solve_problem(
            problem, solver, a0, max_steps=max_inner_steps,
            adjoint=optx.RecursiveCheckpointAdjoint(),
        )
        new = reparametrise(problem.full(a))
        shift = jnp.max(jnp.abs(new - carry.c))
        small = shift <= jnp.maximum(move_tol, 64 * eps * extent)
        finite = jnp.all(jnp.isfinite(new))
        converged = small & (res == RESULTS.successful) & finite
        hard_fail = (res == RESULTS.nonfinite) | ~finite
        result = RESULTS.where(
            converged,
            RESULTS.successful,
            RESULTS.where(hard_fail, RESULTS.nonfinite, RESULTS.max_steps_reached),
        )
        return _Carry(
            c=jnp.where(finite, new, carry.c),
            shift=shift,
            num_rounds=carry.num_rounds + 1,
            num_steps=carry.num_steps + jnp.maximum(st["num_steps"], 1).astype(jnp.int32),
            done=converged | hard_fail,
            result=result,
            inner_result=res,
        )

    init = _Carry(
        c=reparametrise(jax.lax.stop_gradient(c0)),
        shift=jnp.asarray(jnp.inf, dtype),
        num_rounds=jnp.array(0, jnp.int32),
        num_steps=jnp.array(0, jnp.int32),
        done=jnp.array(False),
        result=RESULTS.max_steps_reached,
        inner_result=RESULTS.successful,
    )
    out = jax.lax.while_loop(cond, body, init)
    # A stagnated last inner solve is reported as such when the outer loop did not finish.
    result = RESULTS.where(
        (out.result == RESULTS.max_steps_reached) & (out.inner_result == RESULTS.stagnated),
        RESULTS.stagnated,
        out.result,
    )
    # The curve is a fixed point of the rounds: its normal displacements `a = 0` are
    # stationary for `Ŝ_h`. The implicit function theorem at that root gives the derivatives
    # of the nodes with respect to the endpoints and parameters (both modes), without
    # tracing the solver again.
    c = out.c.at[0].set(x0).at[-1].set(x1)
    problem = GeometricProblem(sde, c, _normal_bases(out.c), args)
    a0 = jnp.zeros((n - 2, d - 1), dtype)
    adjoint = optx.ImplicitAdjoint(linear_solver=hessian_solver(d - 1, dtype))
    a, _ = adjoint.apply(_at_root, _normal_gradient, (problem, a0), HESSIAN_TAGS)
    g = problem.grad(jax.lax.stop_gradient(a))
    st_last = dict(num_steps=jnp.array(0, jnp.int32), grad_norm=jnp.max(jnp.abs(g)))
    xs = problem.full(a)
    S = minimal_value(problem, a)
    stats = dict(
        num_steps=out.num_steps + st_last["num_steps"],
        num_rounds=out.num_rounds,
        shift=out.shift,
        grad_norm=st_last["grad_norm"],
    )
    return xs, S, result, stats
