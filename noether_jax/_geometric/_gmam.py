r"""The geometric (infinite-time) action and its minimiser.

For a curve `φ` from `x0` to `x1` and constant `D`, with `⟨u, v⟩ = uᵀ D⁻¹ v`,

$$\hat S[φ] = \tfrac12 \int \big(|φ'|\,|f(φ)| - ⟨φ', f(φ)⟩\big)\,\mathrm{d}s
            = \inf_T \min_{x(0)=x_0,\,x(T)=x_1} S_T[x]$$

(docs/conventions.md). Discretisation: on a polyline with nodes `φ_0 .. φ_{n-1}`, each segment
contributes the midpoint value `½(|Δφ_i| |f(m_i)| − ⟨Δφ_i, f(m_i)⟩)`, `m_i` the segment's
midpoint. This is exactly the fixed-time midpoint action of the segment minimised over its
duration, `h_i = |Δφ_i| / |f(m_i)|`, so a physical time is recovered from the same numbers.

The discrete action is (to `O(h²)`) invariant under sliding nodes along the curve, so the
minimiser is made unique by fixing where the nodes sit along the curve: they equidistribute
the monitor mass `ρ dσ` (`dσ` the arclength in the noise metric, `ρ` large where the drift is
slow; see `node_masses`). The solver alternates (i) damped Newton on the *normal*
displacements of the interior nodes, with the tangential positions frozen (a smooth,
well-posed problem with a block-tridiagonal Hessian, solved by any path solver,
`nj.BlockNewton` by default for `d ≤ 9`, including its escape from saddle points of the
action, `nj.NewtonCG` above), and
(ii) redistribution of the nodes along the curve by the monitor, by linear interpolation.
A fixed point of this map is an equidistributed polyline on which the normal components of
`∇Ŝ_h` vanish; the action there converges at second order in the node spacing (the monitor
is a fixed function of the curve, so the node density converges as the nodes are refined).
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
    ESCAPES_SADDLES,
    HESSIAN_TAGS,
    is_minimum,
    default_solver,
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


def reparametrise(
    xs: Float[Array, "m d"],
    masses: Float[Array, " m-1"] | None = None,
    *,
    n: int | None = None,
) -> Float[Array, "n d"]:
    """Redistribute the nodes of a polyline so that every segment carries the same share of
    `masses` (one non-negative number per segment, spread evenly along it; default: the
    Euclidean length, i.e. equal arclength), by linear interpolation. The endpoints stay
    put. `n`: the number of nodes of the result (default: as many as `xs`).

    With `n` unchanged, an equidistributed polyline is returned unchanged (to round-off),
    and so is a polyline whose total mass is zero or not finite; with another `n`, such a
    polyline is resampled at equal steps of its node index."""
    m = xs.shape[0]
    n = m if n is None else n
    if masses is None:
        masses = jnp.diff(_arclength(xs))
    W = jnp.concatenate([jnp.zeros((1,), xs.dtype), jnp.cumsum(masses)])
    total = W[-1]
    ok = (total > 0) & jnp.isfinite(total)
    target = jnp.linspace(0.0, 1.0, n, dtype=xs.dtype) * jnp.where(ok, total, 1.0)
    safe_W = jnp.where(ok, W, jnp.linspace(0.0, 1.0, m, dtype=xs.dtype))
    new = jax.vmap(lambda col: jnp.interp(target, safe_W, col), in_axes=1, out_axes=1)(xs)
    new = new.at[0].set(xs[0]).at[-1].set(xs[-1])
    return jnp.where(ok, new, xs) if n == m else new


# The monitor (`node_masses`): below a fifth of the drift's mean size along the curve the
# density grows like `1/|f|`, up to 30 times the density of the fast part of the path. The
# cap keeps the density a fixed function of the curve (so refinement converges at second
# order) and keeps nodes from piling into the fixed point, where `∫ dσ/|f|` diverges. On
# the rotating test family (a spiral out of a focus) a threshold of 1/5 beats both 1 (which
# takes nodes from the fast part, where the error is made) and 1/20 (which leaves the inner
# turns to too few nodes on coarse grids).
MONITOR_SLOW = 0.2
MONITOR_CAP = 30.0
# Passes of a [¼, ½, ¼] filter over the density: neighbouring segments differ gradually.
MONITOR_SMOOTHING = 2


def segment_metrics(
    sde: SDE, xs: Float[Array, "n d"], args=None
) -> tuple[Float[Array, " n-1"], Float[Array, " n-1"]]:
    """Per segment: its length `|Δφ_i|` and the drift's size `|f(m_i)|` at its midpoint,
    both in the noise metric `|u| = sqrt(uᵀ D⁻¹ u)` (with `D` at the midpoint)."""

    def one(m, du):
        D = sde.D(0.0, m, args)
        zu = metric_whiten(D, du)
        zf = metric_whiten(D, sde.f(0.0, m, args))
        return _safe_sqrt(jnp.sum(zu * zu)), _safe_sqrt(jnp.sum(zf * zf))

    return jax.vmap(one)(0.5 * (xs[:-1] + xs[1:]), xs[1:] - xs[:-1])


def node_masses(sde: SDE, xs: Float[Array, "n d"], args=None) -> Float[Array, " n-1"]:
    r"""The monitor mass of each segment, `σ_i ρ_i`: the nodes of a geometric solution
    equidistribute it. With `σ_i = |Δφ_i|` and `F_i = |f(m_i)|` in the noise metric,
    `F̄ = Σ σ_i F_i / Σ σ_i` the drift's mean size along the curve and `F_s = F̄/5`,

    $$\rho_i = \sqrt{1 + \frac{F_s^2}{F_i^2 + (F_s/\rho_{\max})^2}},
      \qquad \rho_{\max} = 30,$$

    smoothed by two passes of a `[¼, ½, ¼]` filter. Where the drift is not slow
    (`F ≳ F_s`) the nodes are equidistant in arclength; towards a fixed point (`F → 0`)
    their spacing shrinks like `|f|`, i.e. like the distance to the fixed point, down to
    `1/ρ_max` of the fast spacing. So a path that spirals out of a focus (rotating drift:
    the spiral turns by a fixed angle per e-fold of the radius) gets a fixed number of
    nodes per turn instead of cutting across the inner turns (a uniform grid converges to
    the wrong winding there, errors of percents), and a slow approach is resolved on the
    scale of its own distance. Non-finite densities (a drift that overflows) count as 1."""
    sig, F = segment_metrics(sde, xs, args)
    tiny = jnp.finfo(xs.dtype).tiny
    Fbar = jnp.sum(sig * jnp.where(jnp.isfinite(F), F, 0.0)) / jnp.maximum(jnp.sum(sig), tiny)
    Fs = MONITOR_SLOW * Fbar
    Fe = jnp.sqrt(F**2 + (Fs / MONITOR_CAP) ** 2)
    ratio = jnp.where(Fe > 0, Fs / jnp.where(Fe > 0, Fe, 1.0), 0.0)
    rho = jnp.sqrt(1.0 + ratio**2)
    rho = jnp.where(jnp.isfinite(rho), rho, 1.0)

    def smooth(_, r):
        padded = jnp.concatenate([r[:1], r, r[-1:]])
        return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]

    rho = jax.lax.fori_loop(0, MONITOR_SMOOTHING, smooth, rho)
    return sig * rho



def redistribute(sde: SDE, xs: Float[Array, "n d"], args=None) -> Float[Array, "n d"]:
    """The nodes of `xs` moved along the polyline to equidistribute `node_masses`."""
    return reparametrise(xs, node_masses(sde, xs, args))


def bisect_curve(xs: Float[Array, "n d"]) -> Float[Array, "2n-1 d"]:
    """The polyline with a node added at the middle of every segment (same curve; the
    warm start of the next finer grid, with the same node density)."""
    mid = 0.5 * (xs[:-1] + xs[1:])
    inner = jnp.stack([xs[:-1], mid], axis=1).reshape(-1, xs.shape[-1])
    return jnp.concatenate([inner, xs[-1:]], axis=0)


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


def _crumpled(xs: Float[Array, "n d"]) -> Bool[Array, ""]:
    """Whether the polyline turns back somewhere: two consecutive segments at more than a
    right angle (a zero-length segment does not count)."""
    u = xs[1:] - xs[:-1]
    return jnp.any(jnp.sum(u[:-1] * u[1:], axis=-1) < 0)


class _Carry(eqx.Module):
    c: Float[Array, "n d"]
    a: Float[Array, "n-2 k"]
    shift: Float[Array, ""]
    num_rounds: Int[Array, ""]
    num_steps: Int[Array, ""]
    done: Bool[Array, ""]
    result: RESULTS
    inner_result: RESULTS


def find_curve(
    sde: SDE,
    c0: Float[Array, "n d"],
    args,
    *,
    solver: optx.AbstractMinimiser,
    rtol: float | None,
    max_steps: int,
    max_inner_steps: int,
) -> tuple[Float[Array, "n d"], RESULTS, dict[str, Any]]:
    """The rounds of the geometric solve (no derivatives flow through them): from the curve
    `c0` (its endpoints fixed, `d ≥ 2`), alternate normal solves (at most `max_inner_steps`
    each) and redistribution until a round moves no node by more than `rtol ×` the curve's
    extent, with its solve converged. Returns the curve, a result code and stats
    (`num_steps`, `num_rounds`, `shift`)."""
    n, d = c0.shape
    dtype = c0.dtype
    rtol_ = default_tol(rtol, dtype)
    eps = jnp.finfo(dtype).eps
    sde, c0, args = _stop((sde, c0, args))
    extent = jnp.max(jnp.abs(c0[-1] - c0[0])) + jnp.max(jnp.abs(c0))
    move_tol = jnp.maximum(rtol_ * extent, 64 * eps * extent)

    def cond(carry: _Carry):
        return ~carry.done & (carry.num_steps < max_steps)

    def body(carry: _Carry):
        N = _normal_bases(carry.c)
        problem = GeometricProblem(sde, carry.c, N, args)
        a, res, st = solve_problem(
            problem, solver, carry.a, max_steps=max_inner_steps,
            adjoint=optx.RecursiveCheckpointAdjoint(), certify=False,
        )
        moved = problem.full(a)
        solved = res == RESULTS.successful
        # Redistributing often lets the curve make large moves in good coordinates, but far
        # from its optimum a damped solve passes through curves crumpled on the scale of
        # the node spacing (where the drift is slow the normal stiffness is small). Once
        # redistributed, a crumple is frozen into the curve and unfolds only over many
        # rounds (the normal solves cannot slide nodes along the curve). So a crumpled,
        # unconverged curve is not redistributed: its solve goes on in the next round.
        # Nodes that have run together are no crumple: redistribution frees them.
        again = ~solved & _crumpled(moved)
        new = jnp.where(again, carry.c, redistribute(sde, moved, args))
        shift = jnp.max(jnp.abs(jnp.where(again, moved, new) - carry.c))
        finite = jnp.all(jnp.isfinite(new)) & jnp.all(jnp.isfinite(a))
        converged = (shift <= move_tol) & solved & finite
        hard_fail = (res == RESULTS.nonfinite) | ~finite
        result = RESULTS.where(
            converged,
            RESULTS.successful,
            RESULTS.where(hard_fail, RESULTS.nonfinite, RESULTS.max_steps_reached),
        )
        keep = finite & ~again
        return _Carry(
            c=jnp.where(keep, new, carry.c),
            a=jnp.where(finite & again, a, jnp.zeros_like(a)),
            shift=shift,
            num_rounds=carry.num_rounds + 1,
            num_steps=carry.num_steps + jnp.maximum(st["num_steps"], 1).astype(jnp.int32),
            done=converged | hard_fail,
            result=result,
            inner_result=res,
        )

    init = _Carry(
        c=redistribute(sde, c0, args),
        a=jnp.zeros((n - 2, d - 1), dtype),
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
    stats = dict(num_steps=out.num_steps, num_rounds=out.num_rounds, shift=out.shift)
    return out.c, result, stats


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
    """Find the curve (`find_curve`), then differentiate it implicitly at the root of its
    last normal problem. Returns the nodes, the action (envelope theorem), a result code
    and stats."""
    n, d = c0.shape
    dtype = c0.dtype
    if solver is None:
        solver = default_solver(d - 1, rtol, None)

    if d == 1:
        # A 1-D curve between two points is the segment itself: nothing to optimise.
        c = redistribute(sde, c0, args).at[0].set(x0).at[-1].set(x1)
        stats = dict(
            num_steps=jnp.array(0, jnp.int32),
            num_rounds=jnp.array(0, jnp.int32),
            shift=jnp.zeros((), dtype),
        )
        return c, geometric_action_of(sde, c, args), RESULTS.successful, stats

    c_found, result, st = find_curve(
        sde, c0, args, solver=solver, rtol=rtol, max_steps=max_steps,
        max_inner_steps=max_inner_steps,
    )
    # The curve is a fixed point of the rounds: its normal displacements `a = 0` are
    # stationary for `Ŝ_h`. The implicit function theorem at that root gives the derivatives
    # of the nodes with respect to the endpoints and parameters (both modes), without
    # tracing the solver again.
    c = c_found.at[0].set(x0).at[-1].set(x1)
    problem = GeometricProblem(sde, c, _normal_bases(c_found), args)
    a0 = jnp.zeros((n - 2, d - 1), dtype)
    adjoint = optx.ImplicitAdjoint(linear_solver=hessian_solver(d - 1, dtype))
    a, _ = adjoint.apply(_at_root, _normal_gradient, (problem, a0), HESSIAN_TAGS)
    if not isinstance(solver, ESCAPES_SADDLES):
        # The rounds' solves stop at any stationary curve; test the last one (the
        # library's Newton solvers escape saddle points themselves).
        saddle = (result == RESULTS.successful) & ~is_minimum(problem, a0)
        result = RESULTS.where(saddle, RESULTS.saddle_point, result)
    g = problem.grad(jax.lax.stop_gradient(a))
    xs = problem.full(a)
    S = minimal_value(problem, a)
    stats = dict(st, grad_norm=jnp.max(jnp.abs(g)))
    return xs, S, result, stats
