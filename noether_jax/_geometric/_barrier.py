r"""Barriers, paths and rates of noise-driven transitions between two attractors: through one
index-1 saddle, or through a chain of saddles and intermediate attractors
(docs/conventions.md, "Routes, rates and prefactors")."""

import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from .._mesh import Refine
from .._results import RESULTS
from .._sde import (
    SDE,
    as_endpoints,
    as_real_array,
    float_args_as_arrays,
    is_concrete,
)
from .._solution import PathSolution
from .._solver import stop_gradient_arrays as _stop
from ._candidates import stack_trees
from ._fixed_points import (
    FixedPoint,
    check_fixed_point,
    classify_fixed_point,
    find_fixed_points,
    kind_name,
)
from ._minimize import geometric_grid, minimize_geometric_action
from ._network import Route, RouteLeg, TransitionNetwork, transition_network
from ._polish import polish_fixed_point
from ._rates import escape_rate, rate_failure
from ._relax import Relaxation, leave_saddle

_RATE_METHODS = ("auto", "eyring-kramers", "bouchet-reygner")


class Transition(eqx.Module):
    r"""The most likely transition from one attractor to another: through one index-1
    saddle, or through a chain of saddles and intermediate attractors.

    **The picture** (docs/conventions.md). As the noise goes to zero the transition from the
    attractor `a` to the attractor `b` climbs from `a` to an index-1 saddle `s` along the
    minimiser of the geometric action (the *uphill leg*, action `Ŝ(a → s)`) and relaxes
    from `s` to `b` along the branch of the saddle's unstable manifold that reaches `b` (the
    *downhill leg*, `ẋ = f`, action 0). When no saddle joins `a` and `b` directly, the
    transition is a **route** `a = a₀ → s₁ → a₁ → s₂ → … → s_m → a_m = b` through
    intermediate attractors, `m` *hops*, each an uphill and a downhill leg; the hops are
    the least-action route of `nj.transition_network`.

    **Two exponents.** Let `B_k = Ŝ(a_{k−1} → s_k)` be the uphill action of hop `k` and
    `B'_k = Ŝ(a_k → s_k)` the action back over the same saddle. Define along the route the
    effective potential (in units of the action)

    $$U(a_0) = 0,\qquad U(s_k) = U(a_{k-1}) + B_k,\qquad U(a_k) = U(s_k) - B'_k .$$

    - `action` `= Σ_k B_k`: the least action of one path from `a` to `b` over unbounded
      time (downhill legs cost nothing); the `T → ∞` limit of the fixed-time minimal
      action, so `exp(−action)` is the probability of the single most likely path.
    - `barrier` `= max_k [U(s_k) − min_{j<k} U(a_j)]`: the exponent of the waiting time,
      `τ_{a→b} ≍ exp(barrier)` as the noise goes to zero. The chain of attractors along a
      route is a birth–death chain, which satisfies detailed balance with
      `π(a_j) ∝ exp(−U(a_j))`, and its mean first-passage time
      `τ = Σ_k (π(a_{k−1}) k_{k−1,k})⁻¹ Σ_{j<k} π(a_j)` is dominated by the highest saddle
      measured from the deepest attractor behind it. For gradient drift `f = −∇V`,
      `D = δI` this is `max_k [V(s_k) − min_{j<k} V(a_j)]/δ`, the critical depth. It is
      the exponent of the route's own chain; `rate` (below) is the whole network's.

    For one saddle (`m = 1`) both are `Ŝ(a → s)`. They differ for chains: the
    Müller–Brown transition from the deepest minimum to the middle one through the shallow
    one has `action = B₁ + B₂` but `barrier = B₁` (its first saddle is the higher).

    **Attributes:**

    - `start`, `end`: `nj.FixedPoint`s, the attractors `a` and `b` (their positions
      polished to round-off by Newton's method).
    - `saddle`: the `nj.FixedPoint` crossed; for a chain, the `m` saddles with a leading
      axis (in route order).
    - `barrier`, `action`: as above (`Ŝ(a → s)` both, for one saddle). NaN for a chain
      when a leg they need did not converge.
    - `uphill`: the `nj.PathSolution` of `nj.minimize_geometric_action` from `a` to the
      saddle (its `ts` is the recovered physical time); for a chain, the `m` uphill legs
      with a leading axis.
    - `downhill`: the `nj.Relaxation` from the saddle to `b`, along the branch of its
      unstable manifold that reaches `b`; for a chain, the `m` downhill legs with a
      leading axis.
    - `xs`: the whole path, the legs' nodes concatenated in order.
    - `uphill_converged`, `downhill_converged`: whether each uphill solve converged and
      each downhill leg settled (`Bool[]`, or `Bool[m]` for a chain).
    - `converged`: every leg converged (both flags above, all hops).
    - `failed_leg`: `−1` if every leg converged; otherwise the position of the first leg
      that failed in the sequence `uphill₁, downhill₁, uphill₂, downhill₂, …` (even: the
      uphill leg of hop `failed_leg // 2 + 1`, odd: its downhill leg). `message` (a
      property) names it in words, e.g. `"uphill leg a→s …"` or `"downhill leg s₂→b …"`.
    - `result`: an `nj.RESULTS` code, `successful` when `converged`; otherwise the failed
      leg's own code (`uphill.result` or `downhill.result`).
    - `candidates`: `Array[k, d]`, the index-1 saddles tried as direct connections
      (polished); `candidate_barriers`: `Array[k]`, `Ŝ(a → s)` through each (`inf` for
      saddles whose unstable manifold does not join `a` and `b`, or whose uphill solve
      failed). All `inf` for a chain.
    - `rate`: the rate of the transition, per unit time of the SDE, at the SDE's own noise:
      for one saddle the small-noise escape rate over it, `nj.escape_rate` (Eyring–Kramers
      for gradient drift, Bouchet–Reygner otherwise); for a chain `1/τ_{a→b}`, the mean
      first-passage time of the network's Markov chain (`route.rate`), which counts the
      returns and the detours. NaN when unknown (`rate_note` says why). Parallel saddles:
      for one saddle `rate` is the rate over the saddle chosen; other connecting saddles
      with nearly the same barrier (`candidate_barriers`) add their rates (as
      `nj.transition_network` does).
    - `prefactor`: `rate · exp(barrier)`, the sub-exponential factor (for one saddle,
      `nj.Rate.prefactor`: `(λ⁺/2π)·sqrt(det ∇²V(a)/|det ∇²V(s)|)·exp(∫∇·ℓ dt)`).
    - `rate_method`: `"eyring-kramers"`, `"bouchet-reygner"`, `"markov-chain"` (a chain),
      or `"none"`; `rate_note`: how the rate was computed, or why it is NaN.
    - `route`: the `nj.Route` for a chain (its `legs`, `action`, `mfpt`, `rate`), `None`
      for one saddle; `network`: the `nj.TransitionNetwork` it came from, or `None`.

    **Properties:** `mean_exit_time` (`1/rate`: the mean time to go from `a` to `b`),
    `error_estimate` (of each uphill leg's action, from `nj.Refine`; NaN on a fixed grid),
    `num_hops` (`m`), `legs` (a tuple of `nj.RouteLeg`, one per hop; for one saddle its
    indices refer to `(start, end)` and `saddle`), `message`.
    """

    start: FixedPoint
    end: FixedPoint
    saddle: FixedPoint
    barrier: Float[Array, ""]
    action: Float[Array, ""]
    uphill: PathSolution
    downhill: Relaxation
    xs: Float[Array, "n d"]
    converged: Bool[Array, ""]
    uphill_converged: Bool[Array, "*hops"]
    downhill_converged: Bool[Array, "*hops"]
    failed_leg: Int[Array, ""]
    result: RESULTS
    candidates: Float[Array, "k d"]
    candidate_barriers: Float[Array, " k"]
    rate: Float[Array, ""]
    prefactor: Float[Array, ""]
    rate_method: str = eqx.field(static=True)
    rate_note: str = eqx.field(static=True)
    route: Route | None = None
    network: TransitionNetwork | None = None

    @property
    def mean_exit_time(self) -> Float[Array, ""]:
        """`1/rate`: the mean time to go from `start` to `end` (for a chain, the mean
        first-passage time of the network's Markov chain)."""
        return 1.0 / self.rate

    @property
    def error_estimate(self) -> Float[Array, "*hops"]:
        """The estimated discretisation error of each uphill leg's action (absolute;
        `uphill.stats["error_estimate"]`, from `nj.Refine`), NaN on a fixed grid."""
        est = self.uphill.stats.get("error_estimate")
        return jnp.full_like(self.uphill.action, jnp.nan) if est is None else est

    @property
    def num_hops(self) -> int:
        """The number of saddles crossed (`1` unless the transition is a chain)."""
        return 1 if self.route is None else len(self.route.legs)

    @property
    def legs(self) -> tuple[RouteLeg, ...]:
        """One `nj.RouteLeg` per hop (`uphill`, `downhill`, `action`, `converged`). For a
        chain, `route.legs` (indices into `network`); for one saddle, one leg with
        `start = 0`, `saddle = 0`, `end = 1` (into `(start, end)` and `(saddle,)`)."""
        if self.route is not None:
            return self.route.legs
        return (
            RouteLeg(
                start=0, saddle=0, end=1, uphill=self.uphill, downhill=self.downhill,
                action=self.uphill.action, converged=self.uphill_converged,
            ),
        )

    @property
    def message(self) -> str:
        """`""` when every leg converged; otherwise which leg failed and why, e.g.
        `"uphill leg a→s (from [-1, 0] to the saddle [0, 0]) did not converge: …"`."""
        k = int(self.failed_leg)
        if k < 0:
            return ""
        m = self.num_hops
        hop = k // 2
        up = k % 2 == 0
        names = ["a"] + [f"a{i}" for i in range(1, m)] + ["b"] if m > 1 else ["a", "b"]
        s = "s" if m == 1 else f"s{hop + 1}"
        pick = (lambda x: x) if m == 1 else (lambda x: x[hop])
        sx = _vec(pick(self.saddle.x))
        if up:
            leg = jax.tree.map(pick, self.uphill)
            return (
                f"uphill leg {names[hop]}→{s} (from {_vec(leg.xs[0])} to the saddle {sx}) did "
                f"not converge: {RESULTS[leg.result] or 'failed'}"
            )
        leg = jax.tree.map(pick, self.downhill)
        return (
            f"downhill leg {s}→{names[hop + 1]} (from the saddle {sx}, ending at "
            f"{_vec(leg.x_end)}) did not settle: {RESULTS[leg.result] or 'failed'}"
        )


def _vec(x) -> str:
    vals = [float(v) + 0.0 for v in jnp.asarray(x).reshape(-1).tolist()]
    return "[" + ", ".join(f"{v:.5g}" for v in vals) + "]"


def _attractor(sde, x, args, name, check_rtol) -> None:
    """Refuse (with the numbers) a point that is not a stable fixed point."""
    try:
        check_fixed_point(sde, x, args, rtol=check_rtol)
    except ValueError as e:
        raise ValueError(
            f"`barrier`: `{name}` must be an attractor (a stable fixed point) of the drift. {e} "
            "Find the fixed points with `nj.find_fixed_points`, or use "
            "`nj.minimize_geometric_action` for a path between arbitrary points."
        ) from e
    fp = classify_fixed_point(sde, x, args)
    if int(fp.index) != 0 or int(fp.num_center) != 0:
        raise ValueError(
            f"`barrier`: `{name}` is a fixed point but not an attractor: it has "
            f"{int(fp.index)} unstable and {int(fp.num_center)} neutral directions (eigenvalues "
            f"{jax.device_get(fp.eigenvalues)})."
        )


def _is_attractor(fp: FixedPoint) -> Bool[Array, "..."]:
    return fp.is_fixed_point & (fp.index == 0) & (fp.num_center == 0)


def _is_saddle(fp: FixedPoint) -> Bool[Array, "..."]:
    return fp.is_fixed_point & (fp.index == 1) & (fp.num_center == 0)


_polish_jit = eqx.filter_jit(polish_fixed_point)

# ---------------------------------------------------------------------------------------
# One saddle: array code, `jit`/`vmap`/`grad`-able when the candidates are given.


class _Connections(eqx.Module):
    cand_ok: Bool[Array, " k"]  # polished to a hyperbolic index-1 fixed point
    cand_fp: FixedPoint  # classification of the polished candidates
    xc: Float[Array, "k d"]  # polished candidates
    connects: Bool[Array, " k"]  # its unstable manifold joins a and b
    down: Relaxation  # per candidate, the branch towards b


@eqx.filter_jit
def _candidates(sde, cands, args, check_rtol) -> tuple[FixedPoint, Any]:
    """The candidates polished by Newton's method, and classified there."""
    pol = jax.vmap(lambda x: polish_fixed_point(sde, x, args))(cands)
    classify = lambda x: classify_fixed_point(sde, x, args, rtol=check_rtol)
    return jax.vmap(classify)(pol.x), pol


def _connections(sde, a, b, cands, args, check_rtol, batched: bool) -> _Connections:
    """Which candidate saddles join `a` and `b`: both branches of each unstable manifold
    (`nj.leave_saddle`), the ends compared with `a` and `b`. No derivatives: the answer is
    discrete. `batched`: one vmapped call (under `jit`/`vmap`/`grad`), else a loop of
    eager calls, whose compiled integrator `nj.transition_network` shares."""
    sde, a, b, cands, args = _stop((sde, a, b, cands, args))
    leave = lambda s: leave_saddle(sde, s, args=args, check=False)
    if batched:
        cand_fp, pol = _candidates(sde, cands, args, check_rtol)
    else:
        # One compiled polish and classification, whatever the number of candidates.
        pol = stack_trees([_polish_jit(sde, x, args) for x in cands])
        cand_fp = stack_trees([classify_fixed_point(sde, x, args, rtol=check_rtol) for x in pol.x])
    ok = _is_saddle(cand_fp) & pol.ok
    # Follow a valid saddle in place of an invalid one: a point without a one-dimensional
    # unstable manifold would give NaN starts, which a batched integrator would carry to
    # its step limit.
    first = jnp.argmax(ok)
    safe = jnp.where(ok[:, None], pol.x, pol.x[first])
    man = jax.vmap(leave)(safe) if batched else stack_trees([leave(s) for s in safe])
    tol = 1e-3 * jnp.max(jnp.abs(b - a))
    near = lambda e, z: jnp.max(jnp.abs(e - z), axis=-1) < tol
    plus_b = near(man.plus.x_end, b) & near(man.minus.x_end, a)
    minus_b = near(man.minus.x_end, b) & near(man.plus.x_end, a)
    sel = lambda p, m: jnp.where(plus_b.reshape(plus_b.shape + (1,) * (p.ndim - 1)), p, m)
    down = jax.tree.map(sel, man.plus, man.minus)
    return _Connections(
        cand_ok=ok, cand_fp=cand_fp, xc=pol.x, connects=ok & (plus_b | minus_b), down=down
    )


@eqx.filter_jit
def _uphill_batch(sde, a, xc, connects, args, n_nodes, grid_controller, rtol, atol,
                  max_steps) -> PathSolution:
    """The uphill legs to all candidates in one batch, without derivatives (they choose
    the saddle). A candidate that does not connect is replaced by one that does: the
    batch runs until its slowest member converges, and a path to a far, unconnected
    saddle may never do so."""
    sde, a, xc, args = _stop((sde, a, xc, args))
    first = jnp.argmax(connects)
    ends = jnp.where(connects[:, None], xc, xc[first])
    solve = lambda s: minimize_geometric_action(
        sde, a, s, n_nodes=n_nodes, grid_controller=grid_controller, args=args, rtol=rtol,
        atol=atol, max_steps=max_steps, throw=False,
    )
    return jax.vmap(solve)(ends)


def _single_eager(sde, pa, pb, con: _Connections, args, *, n_nodes, grid_controller, rtol,
                  atol, max_steps):
    """`_single` with known values: the uphill solves only for the connecting candidates,
    one by one (one compiled solver, shared with every other solve of the system)."""
    k = con.xc.shape[0]
    solve = lambda s: minimize_geometric_action(
        sde, pa.x, s, n_nodes=n_nodes, grid_controller=grid_controller, args=args, rtol=rtol,
        atol=atol, max_steps=max_steps, throw=False,
    )
    ups = {i: solve(con.xc[i]) for i in range(k) if bool(con.connects[i])}
    acts = {i: float(u.action) for i, u in ups.items()}
    conv = {i: bool(u.converged) and math.isfinite(acts[i]) for i, u in ups.items()}
    barriers = [acts[i] if conv.get(i, False) else math.inf for i in range(k)]
    # None converged: report the lowest finite attempt, unconverged.
    pool = [i for i in ups if conv[i]] or [i for i in ups if math.isfinite(acts[i])] or list(ups)
    j = min(pool, key=lambda i: (acts[i] if math.isfinite(acts[i]) else math.inf, i))
    up = ups[j]
    down = jax.tree.map(lambda x: x[j], con.down)
    flags = dict(
        a_polished=pa.ok,
        b_polished=pb.ok,
        saddle_polished=jnp.array(True),
        candidates_ok=jnp.all(con.cand_ok),
        connected=jnp.any(con.connects),
    )
    return con.xc[j], up, down, jnp.asarray(barriers, pa.x.dtype), flags


def _single(sde, pa, pb, con: _Connections, args, *, n_nodes, grid_controller, rtol, atol,
            max_steps):
    """The transition over the connecting candidate of least barrier, as arrays (traced:
    under `jit`/`vmap`/`grad`), from the polished attractors `pa`, `pb` and the connection
    test `con`. Returns the saddle, the legs, the candidates' barriers and the validity
    flags."""
    k = con.xc.shape[0]
    if k == 1:
        ups = None
        j = jnp.zeros((), int)
        barriers = jnp.full((1,), jnp.inf, pa.x.dtype)
    else:
        ups = _uphill_batch(sde, pa.x, con.xc, con.connects, args, n_nodes, grid_controller,
                            rtol, atol, max_steps)
        vals = jnp.where(con.connects & ups.converged, ups.action, jnp.inf)
        # None converged: report the lowest connecting attempt, unconverged.
        tried = jnp.where(con.connects & jnp.isfinite(ups.action), ups.action, jnp.inf)
        j = jnp.where(
            jnp.isfinite(jnp.min(vals)),
            jnp.argmin(vals),
            jnp.where(jnp.isfinite(jnp.min(tried)), jnp.argmin(tried), jnp.argmax(con.connects)),
        )
        barriers = vals
    # The saddle moves with the parameters too; the geometric solve differentiates its
    # endpoints implicitly and its action by the envelope theorem. With several candidates
    # this is a warm restart from the batch's path (one round): the batch carries no
    # derivatives, so that a bad candidate's solve cannot put NaN into them.
    ps = polish_fixed_point(sde, con.xc[j], args)
    init = None if ups is None else jax.lax.stop_gradient(ups.xs[j])
    up = minimize_geometric_action(
        sde, pa.x, ps.x, n_nodes=n_nodes, grid_controller=grid_controller, args=args,
        init=init, rtol=rtol, atol=atol, max_steps=max_steps, throw=False,
    )
    if k == 1:
        barriers = jnp.where(con.connects & up.converged, up.action, jnp.inf)
    down = jax.tree.map(lambda x: x[j], con.down)
    flags = dict(
        a_polished=pa.ok,
        b_polished=pb.ok,
        saddle_polished=ps.ok,
        candidates_ok=jnp.all(con.cand_ok),
        connected=jnp.any(con.connects),
    )
    return ps.x, up, down, barriers, flags


_FLAG_MESSAGES = dict(
    a_fixed="`x_start` is not a fixed point of the drift (`nj.check_fixed_point`).",
    a_stable="`x_start` is not an attractor (a stable fixed point) of the drift.",
    b_fixed="`x_end` is not a fixed point of the drift (`nj.check_fixed_point`).",
    b_stable="`x_end` is not an attractor (a stable fixed point) of the drift.",
    distinct="`x_start` and `x_end` are the same attractor: there is no transition.",
    a_polished="Newton's method did not converge to the attractor from `x_start`.",
    b_polished="Newton's method did not converge to the attractor from `x_end`.",
    candidates_ok="a point in `saddles` is not a hyperbolic index-1 fixed point of the drift "
    "(or Newton's method did not converge to it).",
    saddle_polished="Newton's method did not converge to the saddle chosen.",
    connected="no saddle in `saddles` joins `x_start` and `x_end` through its unstable "
    "manifold. Call `nj.barrier` outside `jit`/`vmap`/`grad` to get the chain of saddles "
    "through intermediate attractors (`nj.transition_network`), or pass the right saddles.",
)


def _failure(up_conv, down_conv, up_res: RESULTS, down_res: RESULTS):
    """`failed_leg` and `result` from the legs' flags and codes (a leading axis for the
    hops of a chain): legs ordered `uphill₁, downhill₁, uphill₂, …`."""
    failed = jnp.stack([~up_conv, ~down_conv], axis=-1).reshape(-1)
    codes = jax.tree.map(lambda u, d: jnp.stack([u, d], axis=-1).reshape(-1), up_res, down_res)
    any_failed = jnp.any(failed)
    k = jnp.argmax(failed)
    failed_leg = jnp.where(any_failed, k, -1)
    first = jax.tree.map(lambda v: v[k], codes)
    return failed_leg, RESULTS.where(any_failed, first, RESULTS.successful)


# ---------------------------------------------------------------------------------------
# Rates.


def _rates_wanted(sde, with_rates) -> tuple[bool, str]:
    """Whether to compute rates, or why not (`ValueError` when asked for and impossible)."""
    if with_rates is False:
        return False, "not computed (with_rates=False)"
    if callable(sde.diffusion):
        why = (
            "unavailable: the prefactor formulas (Eyring–Kramers, Bouchet–Reygner) assume a "
            "constant D, and this system's D depends on the state"
        )
        if with_rates:
            raise ValueError(
                f"`barrier`: `with_rates=True`, but rates are {why}. Pass a constant D, or "
                "`with_rates=None` to get the barrier and the paths with a NaN rate."
            )
        return False, why
    return True, ""


# ---------------------------------------------------------------------------------------
# Chains: the least-action route through the network of attractors.


def _chain_barrier(net: TransitionNetwork, route: Route) -> float:
    """`max_k [U(s_k) − min_{j<k} U(a_j)]` along the route (see `Transition`), from the
    network's uphill actions over the route's saddles in both directions."""
    acts = net.leg_actions.tolist()
    conv = net.leg_converged.tolist()
    by = {
        (a, s): l for l, (a, s) in enumerate(zip(net.leg_attractor.tolist(),
                                                  net.leg_saddle.tolist()))
    }

    def act(a, s):
        l = by.get((a, s))
        return acts[l] if l is not None and conv[l] else math.nan

    u, low, best = 0.0, 0.0, -math.inf
    path = route.attractors
    for k, s in enumerate(route.saddles):
        up = u + act(path[k], s)
        best = max(best, up - low) if not math.isnan(up - low) else math.nan
        if math.isnan(best):
            return math.nan
        u = up - act(path[k + 1], s)
        low = min(low, u) if not math.isnan(u) else math.nan
    return best


def _merge(points: list, tol: float) -> list:
    out = []
    for x in points:
        if all(float(jnp.max(jnp.abs(x - y))) > tol for y in out):
            out.append(x)
    return out


def _chain(sde, a, b, cands, found, args, *, center, scale, key, num_starts, n_nodes,
           grid_controller, rtol, atol, max_steps, check_rtol, want_rates,
           rate_why) -> Transition:
    """No saddle joins `a` and `b` directly: the least-action route through the network of
    attractors in the box `center ± scale` (eager)."""
    dtype = a.dtype
    d = a.shape[0]
    a, b = _polish_jit(sde, a, args).x, _polish_jit(sde, b, args).x
    if found is None:
        found = find_fixed_points(
            sde, key=key, num_starts=num_starts, center=center, scale=scale, args=args,
            check_rtol=check_rtol,
        )
    tol = 1e-3 * float(jnp.max(jnp.abs(b - a)))
    stable = list(found.stable.xs.reshape(-1, d)) if len(found) else []
    atts = jnp.stack(_merge([a, b, *stable], tol))  # a and b are attractors #0 and #1
    net = transition_network(
        sde, center=center, scale=scale, args=args, attractors=atts,
        saddles=cands if cands.shape[0] else jnp.zeros((0, d), dtype), n_nodes=n_nodes,
        grid_controller=grid_controller, rtol=rtol, atol=atol, max_steps=max_steps, check_rtol=check_rtol,
        with_rates=want_rates,
    )
    try:
        route = net.route(0, 1)
    except ValueError as e:
        raise ValueError(
            f"`barrier`: no index-1 saddle joins `x_start` and `x_end` through its unstable "
            f"manifold, and no chain of saddles through other attractors joins them either. "
            f"{e}"
        ) from e
    legs = route.legs
    stack = lambda *xs: jnp.stack(xs)
    uphill = jax.tree.map(stack, *[leg.uphill for leg in legs])
    downhill = jax.tree.map(stack, *[leg.downhill for leg in legs])
    saddle = jax.tree.map(lambda x: x[jnp.asarray(route.saddles)], net.saddle_points)
    up_conv = jnp.asarray([bool(leg.converged) for leg in legs])
    down_conv = downhill.converged
    failed_leg, result = _failure(up_conv, down_conv, uphill.result, downhill.result)
    barrier = jnp.asarray(_chain_barrier(net, route), dtype)
    rate = jnp.asarray(route.rate, dtype) if want_rates else jnp.asarray(jnp.nan, dtype)
    note = (
        f"1/τ(a→b), the mean first-passage time of the network's Markov chain; leg rates: "
        f"{net.rate_note}"
        if want_rates
        else rate_why
    )
    pick = lambda i: jax.tree.map(lambda x: x[i], net.attractor_points)
    return Transition(
        start=pick(0),
        end=pick(1),
        saddle=saddle,
        barrier=barrier,
        action=jnp.asarray(route.action, dtype),
        uphill=uphill,
        downhill=downhill,
        xs=route.xs,
        converged=jnp.all(up_conv) & jnp.all(down_conv),
        uphill_converged=up_conv,
        downhill_converged=down_conv,
        failed_leg=failed_leg,
        result=result,
        candidates=cands,
        candidate_barriers=jnp.full((cands.shape[0],), jnp.inf, dtype),
        rate=rate,
        prefactor=rate * jnp.exp(barrier),
        rate_method="markov-chain" if want_rates else "none",
        rate_note=note,
        route=route,
        network=net,
    )


# ---------------------------------------------------------------------------------------


def barrier(
    sde: SDE,
    x_start: ArrayLike,
    x_end: ArrayLike,
    *,
    args: Any = None,
    saddles: ArrayLike | None = None,
    n_nodes: int | None = None,
    grid_controller: Refine | None = None,
    num_starts: int = 128,
    search_scale: float | None = None,
    key: PRNGKeyArray | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 1000,
    check_rtol: float | None = None,
    with_rates: bool | None = None,
    rate_method: Literal["auto", "eyring-kramers", "bouchet-reygner"] = "auto",
) -> Transition:
    r"""The barrier, the most likely path and the rate of the transition between two
    attractors of an autonomous drift.

    **One saddle.** The most likely transition from attractor `a` to attractor `b` over
    long times climbs from `a` to an index-1 saddle `s` whose unstable manifold leads to
    `b`, then relaxes. The uphill leg minimises the geometric action
    (`nj.minimize_geometric_action`, which gives `Ŝ(a → s)`); the downhill leg follows the
    deterministic flow and costs nothing (`nj.leave_saddle`). Among the saddles that join
    `a` and `b` (both branches of the unstable manifold tested) the one of least barrier
    is chosen:

    $$\mathrm{barrier} = \min_{s \text{ joins } a, b} \hat S(a \to s),\qquad
      k = \underbrace{\frac{λ^+}{2π}\sqrt{\frac{\det ∇^2V(a)}{|\det ∇^2V(s)|}}
          \,e^{\int ∇\cdot\ell\,dt}}_{\texttt{prefactor}}\;e^{-\mathrm{barrier}},$$

    the rate `k` from `nj.escape_rate` at the SDE's own noise level (docs/conventions.md).

    **A chain.** When no saddle joins `a` and `b` (Müller–Brown's two deepest minima are
    joined only through the shallow one), the network of attractors in the search box is
    built (`nj.transition_network`, with the saddles and attractors of the search) and
    the route of least action `a → s₁ → a₁ → … → b` is returned: `action = Σ_k Ŝ(a_{k−1} →
    s_k)`, `barrier` the exponent of the route's waiting time, `rate = 1/τ(a→b)` from the
    network's Markov chain (definitions in `nj.Transition`). Only when no chain exists
    either is a `ValueError` raised (naming the network's components).

    **Arguments:**

    - `sde`: the system (`D` scalar, diagonal, full or a callable of `x`).
    - `x_start`, `x_end`: the two attractors, arrays `(d,)`, polished to round-off by
      Newton's method. Outside `jit` each must pass the fixed-point test of
      `nj.check_fixed_point` and be stable, or a `ValueError` gives the numbers. Under
      `jit`/`vmap`/`grad` they are the *starting points* of Newton's method (so the fixed
      points found at one parameter value serve for nearby ones); the polished points must
      be stable and within the first-order bound of Newton's method from the start
      (`equinox` runtime errors otherwise).
    - `args`: passed to the drift and diffusion.
    - `saddles`: optional candidate saddles `(k, d)`, each a hyperbolic index-1 fixed point
      (tested as the attractors are, and polished the same way). Default: all index-1 fixed
      points found by `nj.find_fixed_points` in the box around the two attractors (centre
      their midpoint, half-width `search_scale`, default 1.5 times their largest
      coordinate difference, with `num_starts` starts seeded by `key`); the same box holds
      the network of a chain.
    - `n_nodes`, `grid_controller`, `rtol`, `atol`, `max_steps`: for the uphill solves
      (`nj.minimize_geometric_action`, with its defaults: `nj.Refine()` on 101 → 201 → 401
      nodes, so the barrier comes with `error_estimate` and is not `converged` when that
      exceeds `1e-4` of it; `n_nodes=101` alone is a fixed grid, cheaper, no estimate).
    - `check_rtol`: tolerance of the fixed-point tests.
    - `with_rates`: `None` (default): compute the rate where possible, else NaN with the
      reason in `rate_note` (a state-dependent `D`, which the prefactor formulas do not
      cover); `True`: the rate is required, and a state-dependent `D` raises `ValueError`;
      `False`: skip it (NaN).
    - `rate_method`: passed to `nj.escape_rate` (`"auto"`, `"eyring-kramers"`,
      `"bouchet-reygner"`). Under `jit`/`vmap`/`grad`, `"auto"` cannot test the drift and
      computes the Bouchet–Reygner divergence integral (zeroed for gradient drifts); pass
      `"eyring-kramers"` when the drift is gradient, or its transverse part `ℓ` is
      divergence-free (e.g. `ℓ = γJ∇V` with constant antisymmetric `J`), where the two
      formulas agree. (The legs of a chain use `nj.transition_network`'s rates, method
      `"auto"`.)

    **Returns:** an `nj.Transition` (fields and their maths there). `converged` is never
    ambiguous: `uphill_converged`, `downhill_converged`, `failed_leg`, `result` and
    `message` say which leg failed.

    **Errors.** `ValueError` (outside `jit`) when an endpoint is not an attractor, both are
    the same, a given saddle is not an index-1 fixed point, or no route joins them; under
    `jit`/`vmap`/`grad` the same checks raise at run time (`equinox.error_if`, without the
    numbers).

    **Transformations.** With `saddles=` given, `nj.barrier` is `jit`-, `vmap`- and
    `grad`-able with respect to `args` (and arrays in `sde`): `barrier`, `action`,
    `rate`, `prefactor`, the saddle and the attractors carry derivatives. The fixed points
    are roots of `f(x*) = 0` found by Newton's method from the given points with their
    gradients stopped (`optx.root_find`, `optx.ImplicitAdjoint`), so `dx*/dθ =
    −(∂f/∂x)⁻¹∂f/∂θ`; the barrier's derivative is the envelope theorem at the converged path
    plus the motion of its endpoints (`nj.minimize_geometric_action`); the rate's comes
    from `nj.escape_rate` on the differentiated path. The choice of saddle is discrete
    (array operations: the vmapped connection test and `argmin` over the barriers); the
    downhill legs carry no derivatives. Without `saddles=` the search and the chain run
    eagerly (data-dependent sizes).
    """
    where = "barrier"
    if not isinstance(sde, SDE):
        raise ValueError(f"`{where}`: `sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    if rate_method not in _RATE_METHODS:
        raise ValueError(
            f"`{where}`: `rate_method` must be one of {_RATE_METHODS}, got {rate_method!r}."
        )
    if with_rates not in (None, True, False):
        raise ValueError(f"`{where}`: `with_rates` must be None, True or False.")
    a, b, dtype = as_endpoints(x_start, x_end, names=("x_start", "x_end"), where=where)
    d = a.shape[0]
    args = float_args_as_arrays(args, dtype)
    _, n_nodes, grid_controller = geometric_grid(None, n_nodes, grid_controller, d, where)
    want_rates, rate_why = _rates_wanted(sde, with_rates)
    concrete = all(
        is_concrete(leaf)
        for leaf in jax.tree.leaves((eqx.filter(sde, eqx.is_array), a, b, args, saddles))
    )

    if concrete:
        _attractor(sde, a, args, "x_start", check_rtol)
        _attractor(sde, b, args, "x_end", check_rtol)
        dist = float(jnp.max(jnp.abs(b - a)))
        if dist == 0:
            raise ValueError(f"`{where}`: {_FLAG_MESSAGES['distinct']}")
    elif saddles is None:
        raise ValueError(
            f"`{where}`: under `jit`/`vmap`/`grad` pass `saddles=`: the saddle search and "
            "the network of a chain run eagerly (their sizes depend on the values)."
        )
    else:
        dist = None

    found = None
    scale = center = None
    if saddles is None:
        scale_v = 1.5 * dist if search_scale is None else float(search_scale)
        center, scale = 0.5 * (a + b), jnp.full((d,), scale_v, dtype)
        key = jax.random.key(0) if key is None else key
        found = find_fixed_points(
            sde, key=key, num_starts=num_starts, center=center, scale=scale, args=args,
            check_rtol=check_rtol,
        )
        cands = found.with_index(1).xs.reshape(-1, d)
    else:
        cands = as_real_array(saddles, "saddles", where, integers=True, dtype=dtype)
        if cands.ndim != 2 or cands.shape[1] != d:
            raise ValueError(f"`{where}`: `saddles` must have shape (k, {d}), got {cands.shape}.")
        for i in range(cands.shape[0] if concrete else 0):
            fp = classify_fixed_point(sde, cands[i], args, rtol=check_rtol)
            if not bool(_is_saddle(fp)):
                what = (
                    "not a fixed point of the drift (`nj.check_fixed_point`)"
                    if not bool(fp.is_fixed_point)
                    else f"a fixed point of kind '{kind_name(fp.kind)}' with {int(fp.index)} "
                    f"unstable and {int(fp.num_center)} neutral direction(s), not a hyperbolic "
                    "index-1 saddle"
                )
                raise ValueError(f"`{where}`: `saddles[{i}]` = {_vec(cands[i])} is {what}.")

    def chain():
        nonlocal center, scale, key
        if center is None:
            scale_v = 1.5 * dist if search_scale is None else float(search_scale)
            center, scale = 0.5 * (a + b), jnp.full((d,), scale_v, dtype)
            key = jax.random.key(0) if key is None else key
        return _chain(
            sde, a, b, cands, found, args, center=center, scale=scale, key=key,
            num_starts=num_starts, n_nodes=n_nodes, grid_controller=grid_controller, rtol=rtol,
            atol=atol, max_steps=max_steps, check_rtol=check_rtol, want_rates=want_rates, rate_why=rate_why,
        )

    if cands.shape[0] == 0:
        if not concrete:
            raise ValueError(f"`{where}`: `saddles` is empty.")
        return chain()

    # The attractors move with the parameters: roots of f, implicit derivatives.
    pa = _polish_jit(sde, a, args)
    pb = _polish_jit(sde, b, args)
    # Which saddles join a and b, before any uphill solve: none (known now) means a chain.
    con = _connections(sde, pa.x, pb.x, cands, args, check_rtol, batched=not concrete)
    opts = dict(n_nodes=n_nodes, grid_controller=grid_controller, rtol=rtol, atol=atol,
                max_steps=max_steps)
    if concrete:
        if not bool(jnp.any(con.connects)):
            return chain()
        xs_, up, down, barriers, flags = _single_eager(sde, pa, pb, con, args, **opts)
    else:
        xs_, up, down, barriers, flags = _single(sde, pa, pb, con, args, **opts)
    xa, xb = pa.x, pb.x
    fa = classify_fixed_point(sde, xa, args, rtol=check_rtol)
    fb = classify_fixed_point(sde, xb, args, rtol=check_rtol)
    fs = classify_fixed_point(sde, xs_, args, rtol=check_rtol)
    xs = jnp.concatenate([up.xs, down.xs], axis=0)
    failed_leg, result = _failure(up.converged, down.converged, up.result, down.result)

    rate = prefactor = jnp.asarray(jnp.nan, dtype)
    method, note = "none", rate_why
    if want_rates:
        try:
            r = escape_rate(sde, xa, xs_, up.xs, args=args, barrier=up.action,
                            method=rate_method)
        except ValueError as e:
            if with_rates:
                raise
            note = f"unavailable: {e}"
        else:
            rate = jnp.where(up.converged, r.rate, jnp.nan)
            prefactor = jnp.where(up.converged, r.prefactor, jnp.nan)
            method = r.method
            note = (
                f"{r.method} (nj.escape_rate) over the saddle chosen, at the SDE's noise "
                "level; NaN if the uphill leg did not converge or the Bouchet–Reygner "
                "self-check failed (`Rate.saddle_hessian_mismatch` > 1%)"
            )
            if (is_concrete(r.rate) and is_concrete(up.converged) and bool(up.converged)
                    and not math.isfinite(float(r.rate))):
                note += "; NaN here: " + rate_failure(r)

    tr = Transition(
        start=fa,
        end=fb,
        saddle=fs,
        barrier=up.action,
        action=up.action,
        uphill=up,
        downhill=down,
        xs=xs,
        converged=up.converged & down.converged,
        uphill_converged=up.converged,
        downhill_converged=down.converged,
        failed_leg=failed_leg,
        result=result,
        candidates=con.xc,
        candidate_barriers=barriers,
        rate=rate,
        prefactor=prefactor,
        rate_method=method,
        rate_note=note,
    )
    checks = dict(
        a_fixed=fa.is_fixed_point,
        a_stable=_is_attractor(fa),
        b_fixed=fb.is_fixed_point,
        b_stable=_is_attractor(fb),
        distinct=jnp.any(xb != xa),
        **flags,
    )
    if concrete:
        bad = [name for name, ok in checks.items() if not bool(ok)]
        if bad:
            raise ValueError(f"`{where}`: " + " ".join(_FLAG_MESSAGES[n] for n in bad))
        return tr
    for name, ok in checks.items():
        tr = eqx.error_if(tr, ~ok, f"`{where}`: {_FLAG_MESSAGES[name]}")
    return tr
