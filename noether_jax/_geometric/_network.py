r"""The network of attractors of an autonomous drift: which index-1 saddles join which
attractors, the barriers of the transitions, their rates, and the routes between attractors
through intermediate ones (docs/conventions.md, "Routes, rates and prefactors")."""

import functools
import heapq
import math
import operator
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from .._mesh import Refine
from .._results import RESULTS
from .._sde import SDE, as_real_array, float_args_as_arrays
from .._solution import PathSolution
from ._candidates import stack_trees
from ._fixed_points import FixedPoint, classify_fixed_point, find_fixed_points, kind_name
from ._minimize import geometric_grid, minimize_geometric_action
from ._rates import escape_rate, rate_failure
from ._relax import Relaxation, UnstableManifold, leave_saddle

# A routing cost for a pair joined by saddles whose uphill solves all gave a non-finite
# action: the pair stays connected (its route is then reported as failed, naming the leg)
# instead of looking disconnected.
_UNKNOWN_COST = 1e300


class RouteLeg(eqx.Module):
    r"""One step `start → saddle → end` of a route: the uphill leg (geometric action) and
    the downhill leg (the branch of the saddle's unstable manifold that reaches `end`).

    **Attributes:**

    - `start`, `saddle`, `end`: indices into `network.attractors`, `network.saddles`,
      `network.attractors`.
    - `uphill`: the `nj.PathSolution` of `nj.minimize_geometric_action` from the attractor
      `start` to the saddle.
    - `downhill`: the `nj.Relaxation` from the saddle to `end`.
    - `action`: `uphill.action`, the barrier `Ŝ(start → saddle)`.
    - `converged`: the uphill solve converged (the downhill leg reaches `end` by
      construction: that is how the saddle was found to join the two attractors).
    """

    start: int = eqx.field(static=True)
    saddle: int = eqx.field(static=True)
    end: int = eqx.field(static=True)
    uphill: PathSolution
    downhill: Relaxation
    action: Float[Array, ""]
    converged: Bool[Array, ""]

    @property
    def xs(self) -> Float[Array, "n d"]:
        """The whole leg: the uphill nodes, then the downhill trajectory."""
        return jnp.concatenate([self.uphill.xs, self.downhill.xs], axis=0)


class Route(eqx.Module):
    r"""The route of least action from one attractor to another through the network:
    `a → s₁ → a₁ → s₂ → … → b`.

    **Attributes:**

    - `start`, `end`: the indices of the two attractors in `network.attractors`.
    - `attractors`: the attractors visited, `(start, a₁, …, end)`; `saddles`: the saddles
      crossed, `(s₁, s₂, …)` (indices, one fewer).
    - `legs`: a tuple of `RouteLeg`s, one per saddle (`uphill`, `downhill`, `action`,
      `converged`).
    - `action`: `Σ Ŝ(a_{k−1} → s_k)`, the sum of the uphill actions (downhill legs cost
      nothing): the least action of a path from `start` to `end` over unbounded time. NaN
      unless every leg converged.
    - `converged`: every uphill leg converged.
    - `failed_leg`: the index in `legs` of the first leg that failed (`None` if none), and
      `message`: what failed, or `""`.
    - `mfpt`: the mean first-passage time from `start` to `end` of the Markov chain of the
      network (`network.mean_first_passage_times()[start, end]`), and `rate = 1/mfpt`, the
      effective rate of the whole chain of transitions (it counts the returns to `start` and
      the detours, not only this route). NaN where the network's rates are unknown.
    - `xs` (property): the whole path, the legs' `xs` concatenated.
    """

    start: int = eqx.field(static=True)
    end: int = eqx.field(static=True)
    attractors: tuple[int, ...] = eqx.field(static=True)
    saddles: tuple[int, ...] = eqx.field(static=True)
    legs: tuple[RouteLeg, ...]
    action: Float[Array, ""]
    converged: Bool[Array, ""]
    failed_leg: int | None = eqx.field(static=True)
    message: str = eqx.field(static=True)
    mfpt: Float[Array, ""]
    rate: Float[Array, ""]

    @property
    def xs(self) -> Float[Array, "n d"]:
        return jnp.concatenate([leg.xs for leg in self.legs], axis=0)


class TransitionNetwork(eqx.Module):
    r"""The attractors of an autonomous drift in a box, the index-1 saddles that join them,
    the barriers and rates of the transitions, and routes between any two attractors.

    **The picture.** As the noise `δ → 0`, the process spends its time near the attractors
    `a_i` and hops between them, each hop climbing from `a_i` to an index-1 saddle `s`
    along the most likely (uphill) path and relaxing from `s` to the attractor `a_j` on the
    other side (downhill, along the unstable manifold of `s`, at no cost). The *barrier* of
    the hop is the geometric action of the uphill leg (docs/conventions.md),

    $$B_{ij} = \min_{s \text{ joins } i, j} \hat S(a_i \to s),$$

    (`= (V(s) − V(a_i))/δ` for gradient drift `f = −∇V`, `D = δ I`). The hops form a
    continuous-time Markov chain on the attractors with the off-diagonal rates

    $$k_{ij} = \sum_{s \text{ joins } i, j} k(a_i \to s),$$

    each term an Eyring–Kramers (gradient) or Bouchet–Reygner (non-gradient) rate
    `∝ exp(−Ŝ(a_i → s))` (`nj.escape_rate`); the saddles joining the same pair are parallel
    channels. With `q_i = Σ_j k_ij`, the mean first-passage times `τ_ij` to `a_j` solve

    $$q_x τ_{xj} − \sum_{y ≠ j} k_{xy} τ_{yj} = 1 \quad (x ≠ j), \qquad τ_{jj} = 0,$$

    and the stationary distribution solves `π Q = 0`, `Σ π = 1`, `Q = k − diag(q)`.

    A **route** `a → s₁ → a₁ → … → b` (`route(a, b)`) is the chain of hops of least total
    action `Σ_k B_{a_{k−1} a_k}`: Dijkstra's algorithm on the directed graph of barriers.

    **Attributes:**

    - `attractor_points`, `saddle_points`: the `nj.FixedPoint`s (batched, `k` and `m` of
      them); `attractors` `(k, d)` and `saddles` `(m, d)` are their positions.
    - `joins`: `Int[m, 2]`, the attractors reached by the `plus` and `minus` branches of each
      saddle's unstable manifold; `(−1, −1)` where the saddle joins nothing (a branch does
      not settle at one of the attractors, leaves the box, or both branches reach the same
      attractor); `join_notes[s]` says why (`""` where it joins two).
    - `manifolds`: a tuple of the `m` `nj.UnstableManifold`s (the downhill legs).
    - The uphill legs, one per (attractor, joining saddle) pair, `n_legs` of them (solved
      one by one by the same compiled solver): `leg_attractor`, `leg_saddle`, `leg_target`
      (`Int[n_legs]`: from, over, to),
      `uphill` (an `nj.PathSolution` with a leading axis `n_legs`, or `None` if no saddle
      joins two attractors), `leg_actions`, `leg_converged`, `leg_rates` (the escape rate of
      each leg, NaN where unknown or the leg failed) and `leg_prefactors`; the property
      `leg_error_estimates` (each leg's estimated discretisation error, NaN on a fixed grid).
    - `barriers`: `Float[k, k]`, `B_ij` as above: `inf` where no saddle joins `i` and `j`
      (and on the diagonal), NaN where the uphill solve of the saddle achieving the
      minimum did not converge. `saddle_of[i, j]`: that saddle (`−1` if none);
      `leg_of[i, j]`: its leg (index into the leg arrays, `−1` if none).
    - `rates`: `Float[k, k]`, `k_ij` (`0` on the diagonal and between pairs no saddle
      joins; NaN where a joining leg failed or rates are unavailable); `rate_note` says how
      they were computed or why they are missing.
    - `center`, `scale`: the search box `center ± scale`; `match_tol`: the distance within
      which a branch's end counts as reaching an attractor.

    **Methods:** `route(a, b)`, `mean_first_passage_times()`, `occupation()`,
    `components()`, `nearest_attractor(x)`, `table()` (also `str(network)`).
    """

    attractor_points: FixedPoint
    saddle_points: FixedPoint
    joins: Int[Array, "m 2"]
    join_notes: tuple[str, ...] = eqx.field(static=True)
    manifolds: tuple[UnstableManifold, ...]
    leg_attractor: Int[Array, " n_legs"]
    leg_saddle: Int[Array, " n_legs"]
    leg_target: Int[Array, " n_legs"]
    uphill: PathSolution | None
    leg_actions: Float[Array, " n_legs"]
    leg_converged: Bool[Array, " n_legs"]
    leg_rates: Float[Array, " n_legs"]
    leg_prefactors: Float[Array, " n_legs"]
    barriers: Float[Array, "k k"]
    saddle_of: Int[Array, "k k"]
    leg_of: Int[Array, "k k"]
    rates: Float[Array, "k k"]
    rate_note: str = eqx.field(static=True)
    center: Float[Array, " d"]
    scale: Float[Array, " d"]
    match_tol: float = eqx.field(static=True)

    @property
    def attractors(self) -> Float[Array, "k d"]:
        return self.attractor_points.x

    @property
    def saddles(self) -> Float[Array, "m d"]:
        return self.saddle_points.x

    @property
    def leg_results(self) -> RESULTS | None:
        """The `nj.RESULTS` code of each uphill leg (`uphill.result`), `None` if no legs."""
        return None if self.uphill is None else self.uphill.result

    @property
    def num_attractors(self) -> int:
        return int(self.attractor_points.x.shape[0])

    @property
    def num_saddles(self) -> int:
        return int(self.saddle_points.x.shape[0])

    # -- the graph ---------------------------------------------------------------------

    def components(self) -> list[list[int]]:
        """The connected components of the network (lists of attractor indices, in order of
        their smallest member): two attractors are connected when a saddle joins them."""
        k = self.num_attractors
        parent = list(range(k))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in self.joins.tolist():
            if i >= 0 and j >= 0:
                parent[root(i)] = root(j)
        groups: dict[int, list[int]] = {}
        for i in range(k):
            groups.setdefault(root(i), []).append(i)
        return sorted(groups.values())

    def nearest_attractor(self, x: ArrayLike, tol: float | None = None) -> int:
        """The index of the attractor nearest to the position `x` (Euclidean). Raises a
        `ValueError` unless it lies within `tol` (default: a quarter of the smallest
        distance between two attractors, or of the box's largest half-width if there is only
        one attractor)."""
        A = self.attractors
        x = as_real_array(x, "x", "TransitionNetwork.nearest_attractor").astype(A.dtype)
        if x.shape != (A.shape[1],):
            raise ValueError(
                f"`TransitionNetwork`: an attractor given by position must have shape "
                f"({A.shape[1]},), got {x.shape}."
            )
        dist = jnp.linalg.norm(A - x, axis=-1)
        i = int(jnp.argmin(dist))
        if tol is None:
            tol = 0.25 * self._separation()
        if not float(dist[i]) <= tol:
            raise ValueError(
                f"`TransitionNetwork`: no attractor near {_vec(x)}: the nearest, #{i} at "
                f"{_vec(A[i])}, is {float(dist[i]):.3g} away (tolerance {tol:.3g}). The "
                f"attractors found in the box {_vec(self.center)} ± {_vec(self.scale)} are: "
                + "; ".join(f"#{j} {_vec(a)}" for j, a in enumerate(A))
                + ". Move or enlarge the box, or give the attractor's index."
            )
        return i

    def _separation(self) -> float:
        A = self.attractors
        if A.shape[0] < 2:
            return float(jnp.max(self.scale))
        d = jnp.linalg.norm(A[:, None] - A[None], axis=-1)
        d = jnp.where(jnp.eye(A.shape[0], dtype=bool), jnp.inf, d)
        return float(jnp.min(d))

    def _index(self, a, name: str) -> int:
        """An attractor given by index (a Python or NumPy/JAX integer) or by position."""
        k = self.num_attractors
        if isinstance(a, bool):
            raise ValueError(f"`TransitionNetwork.route`: `{name}` must be an index or a position.")
        is_int = isinstance(a, int) or (
            hasattr(a, "dtype") and jnp.ndim(a) == 0 and jnp.issubdtype(a.dtype, jnp.integer)
        )
        if is_int:
            i = operator.index(a)
            if not -k <= i < k:
                raise ValueError(
                    f"`TransitionNetwork.route`: `{name}` = {i} is not an attractor index "
                    f"(there are {k} attractors, 0 … {k - 1})."
                )
            return i % k
        if jnp.ndim(a) == 0 and self.attractors.shape[1] == 1:  # a 1-D position as a number
            a = jnp.reshape(jnp.asarray(a, self.attractors.dtype), (1,))
        return self.nearest_attractor(a)

    def route(self, start, end) -> Route:
        """The route of least total action from attractor `start` to attractor `end` (each
        an index into `attractors`, or a position: the nearest attractor, which must lie
        within a quarter of the smallest distance between attractors).

        Raises a `ValueError` when an endpoint is not near any attractor, when both are the
        same attractor, and when no chain of saddles joins them (naming the components of
        the network). A route through a leg whose uphill solve failed is returned with
        `converged = False`, `action = NaN` and `failed_leg`/`message` naming the leg.
        """
        i = self._index(start, "start")
        j = self._index(end, "end")
        if i == j:
            raise ValueError(
                f"`TransitionNetwork.route`: start and end are the same attractor #{i}: there "
                "is no transition."
            )
        cost = self._routing_costs()
        path = _dijkstra(cost, i, j)
        if path is None:
            comps = self.components()
            text = " | ".join("{" + ", ".join(map(str, c)) + "}" for c in comps)
            lone = [s for s, n in enumerate(self.join_notes) if n]
            raise ValueError(
                f"`TransitionNetwork.route`: no route from attractor #{i} to #{j}: no chain of "
                f"saddles joins them. The network's components are {text}."
                + (
                    f" Saddle(s) {', '.join(map(str, lone))} join nothing "
                    "(see `join_notes`)."
                    if lone
                    else ""
                )
                + " A saddle outside the box or missed by the search may join them: enlarge "
                "the box or `num_starts`, or pass `saddles=`."
            )
        leg_of = self.leg_of.tolist()
        legs = []
        for a, b in zip(path[:-1], path[1:]):
            leg_index = leg_of[a][b]
            s = int(self.leg_saddle[leg_index])
            up = jax.tree.map(lambda x: x[leg_index], self.uphill)
            m = self.manifolds[s]
            down = m.plus if int(self.joins[s, 0]) == b else m.minus
            legs.append(
                RouteLeg(
                    start=a, saddle=s, end=b, uphill=up, downhill=down, action=up.action,
                    converged=self.leg_converged[leg_index],
                )
            )
        ok = [bool(leg.converged) for leg in legs]
        failed = None if all(ok) else ok.index(False)
        message = ""
        if failed is not None:
            leg = legs[failed]
            message = (
                f"leg {failed} (attractor #{leg.start} → saddle #{leg.saddle} → attractor "
                f"#{leg.end}): the uphill solve did not converge: "
                f"{RESULTS[leg.uphill.result] or 'failed'}"
            )
        total = sum(leg.action for leg in legs)
        converged = jnp.asarray(failed is None)
        tau = self.mean_first_passage_times()[i, j]
        return Route(
            start=i,
            end=j,
            attractors=tuple(path),
            saddles=tuple(leg.saddle for leg in legs),
            legs=tuple(legs),
            action=jnp.where(converged, total, jnp.nan),
            converged=converged,
            failed_leg=failed,
            message=message,
            mfpt=tau,
            rate=1.0 / tau,
        )

    def _routing_costs(self) -> list[list[float]]:
        k = self.num_attractors
        acts = self.leg_actions.tolist()
        cost = [[math.inf] * k for _ in range(k)]
        leg_of = self.leg_of.tolist()
        for a in range(k):
            for b in range(k):
                leg = leg_of[a][b]
                if leg >= 0:
                    cost[a][b] = acts[leg] if math.isfinite(acts[leg]) else _UNKNOWN_COST
        return cost

    # -- the Markov chain --------------------------------------------------------------

    def mean_first_passage_times(self) -> Float[Array, "k k"]:
        """`τ[i, j]`: the mean first-passage time from attractor `i` to attractor `j` of the
        continuous-time Markov chain with the rates `rates` (see the class docstring); `0` on
        the diagonal, `inf` where `j` cannot be reached from `i` (another component), NaN
        where a rate needed is unknown. Valid as the noise `δ → 0`."""
        return _mfpt(self.rates, self.components())

    def occupation(self) -> Float[Array, " k"]:
        """The stationary distribution `π` of the Markov chain (`π Q = 0`), normalised to 1
        on each connected component (`components()`): when the network is connected it is
        the long-time fraction of time spent near each attractor; otherwise it is the one
        conditioned on starting in that component (the chain is not irreducible and never
        leaves its component). An attractor that no saddle joins has occupation 1. NaN in
        a component whose rates are unknown."""
        return _stationary(self.rates, self.components())

    # -- printing ----------------------------------------------------------------------

    @property
    def leg_error_estimates(self) -> Float[Array, " n_legs"]:
        """The estimated discretisation error of each uphill leg's action (absolute;
        `uphill.stats["error_estimate"]`, from `nj.Refine`), NaN on a fixed grid."""
        if self.uphill is None:
            return jnp.zeros((0,), self.leg_actions.dtype)
        est = self.uphill.stats.get("error_estimate")
        return jnp.full_like(self.leg_actions, jnp.nan) if est is None else est

    def table(self) -> str:
        """A printable summary: attractors (with occupations), saddles (what they join, the
        uphill actions from both sides), and the matrices of barriers, rates and mean
        first-passage times (row: from, column: to)."""
        k, m = self.num_attractors, self.num_saddles
        tau = self.mean_first_passage_times()
        occ = self.occupation().tolist()
        comps = self.components()
        lines = [
            f"TransitionNetwork: {k} attractor(s), {m} saddle(s) in the box "
            f"{_vec(self.center)} ± {_vec(self.scale)}; "
            f"{len(comps)} component(s): "
            + " | ".join("{" + ", ".join(map(str, c)) + "}" for c in comps),
            "",
            "attractors",
        ]
        rows = [("#", "x", "eigenvalues of ∂f/∂x", "occupation")]
        for i in range(k):
            ev = self.attractor_points.eigenvalues[i].tolist()
            rows.append(
                (str(i), _vec(self.attractors[i]), "[" + ", ".join(_cplx(z) for z in ev) + "]",
                 _num(occ[i]))
            )
        lines += _columns(rows)
        lines += ["", "saddles (uphill action Ŝ from each attractor it joins, ± its estimated "
                  "discretisation error)"]
        rows = [("#", "x", "joins", "Ŝ from first", "Ŝ from second", "note")]
        acts = self.leg_actions.tolist()
        conv = self.leg_converged.tolist()
        est = self.leg_error_estimates.tolist()
        by_pair = {
            (a, s): l
            for l, (a, s) in enumerate(zip(self.leg_attractor.tolist(), self.leg_saddle.tolist()))
        }
        for s in range(m):
            i, j = self.joins[s].tolist()
            cells = []
            for a in (i, j):
                l = by_pair.get((a, s))
                if l is None:
                    cells.append("—")
                else:
                    pm = "" if math.isnan(est[l]) else f" ± {est[l]:.1e}"
                    cells.append(_num(acts[l]) + pm + ("" if conv[l] else " (not converged)"))
            joins = f"{i} ↔ {j}" if i >= 0 else "nothing"
            rows.append((str(s), _vec(self.saddles[s]), joins, *cells, self.join_notes[s]))
        lines += _columns(rows) if m else ["  (none)"]
        for title, mat in (
            ("barriers B[i, j] = min over saddles of Ŝ(a_i → s) (row: from, column: to)",
             self.barriers),
            (f"rates k[i, j] ({self.rate_note})", self.rates),
            ("mean first-passage times τ[i, j]", tau),
        ):
            lines += ["", title]
            vals = mat.tolist()
            rows = [("from \\ to", *map(str, range(k)))]
            for i in range(k):
                rows.append((str(i), *("—" if i == j else _num(vals[i][j]) for j in range(k))))
            lines += _columns(rows)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ---------------------------------------------------------------------------------------
# Helpers (eager, on the few attractors and saddles).


def _num(v: float) -> str:
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def _vec(x) -> str:
    vals = [float(v) + 0.0 for v in jnp.asarray(x).reshape(-1).tolist()]
    return "[" + ", ".join(f"{v:.5g}" for v in vals) + "]"


def _cplx(z: complex) -> str:
    z = complex(z.real + 0.0, z.imag + 0.0)
    if z.imag == 0:
        return f"{z.real:.4g}"
    return f"{z.real:.4g}{'+' if z.imag > 0 else '-'}{abs(z.imag):.4g}j"


def _columns(rows) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  " + "  ".join(r[c].ljust(widths[c]) for c in range(len(r))).rstrip() for r in rows]


def _dijkstra(cost: list[list[float]], i: int, j: int) -> list[int] | None:
    """The path of least total cost from `i` to `j` (ties: the lower indices), or None."""
    k = len(cost)
    dist = [math.inf] * k
    prev = [-1] * k
    dist[i] = 0.0
    heap = [(0.0, i)]
    while heap:
        d, a = heapq.heappop(heap)
        if d > dist[a]:
            continue
        if a == j:
            break
        for b in range(k):
            c = cost[a][b]
            if math.isfinite(c) and d + c < dist[b]:
                dist[b] = d + c
                prev[b] = a
                heapq.heappush(heap, (dist[b], b))
    if not math.isfinite(dist[j]):
        return None
    path = [j]
    while path[-1] != i:
        path.append(prev[path[-1]])
    return path[::-1]


def _mfpt(rates: Float[Array, "k k"], comps) -> Float[Array, "k k"]:
    return _mfpt_jit(rates, tuple(tuple(c) for c in comps))


def _stationary(rates: Float[Array, "k k"], comps) -> Float[Array, " k"]:
    return _stationary_jit(rates, tuple(tuple(c) for c in comps))


# Compiled per network structure (the components are static): one compilation instead of
# dozens of small eager ones.
@functools.partial(jax.jit, static_argnums=1)
def _mfpt_jit(rates, comps):
    k = rates.shape[0]
    out = jnp.full((k, k), jnp.inf, rates.dtype).at[jnp.arange(k), jnp.arange(k)].set(0.0)
    for comp in comps:
        for j in comp:
            rest = jnp.asarray([x for x in comp if x != j], dtype=int)
            if rest.shape[0] == 0:
                continue
            R = rates[rest][:, rest]
            # Leaving x for any state (j included) at rate q_x; the time to reach j is one
            # holding time plus the time from where it jumped.
            q = jnp.sum(rates[rest], axis=1)
            tau = jnp.linalg.solve(jnp.diag(q) - R, jnp.ones_like(q))
            out = out.at[rest, j].set(tau)
    return out


@functools.partial(jax.jit, static_argnums=1)
def _stationary_jit(rates, comps):
    k = rates.shape[0]
    out = jnp.zeros((k,), rates.dtype)
    for comp in comps:
        idx = jnp.asarray(comp, dtype=int)
        R = rates[idx][:, idx]
        Q = R - jnp.diag(jnp.sum(R, axis=1))
        n = len(comp)
        # πQ = 0 has a one-dimensional solution space on an irreducible component; the
        # normalisation Σπ = 1 replaces one (redundant) balance equation.
        M = Q.T.at[-1].set(1.0)
        rhs = jnp.zeros((n,), rates.dtype).at[-1].set(1.0)
        out = out.at[idx].set(jnp.linalg.solve(M, rhs))
    return out


def _stack(items: list) -> Any:
    return jax.tree.map(lambda *a: jnp.stack(a), *items)


def _given_points(sde, points, args, dtype, d, name, want_index, check_rtol) -> FixedPoint:
    """Classify user-given attractors (`want_index = 0`) or saddles (`1`), refusing points
    that are not fixed points of that index."""
    pts = as_real_array(points, name, "transition_network").astype(dtype)
    if pts.ndim != 2 or pts.shape[1] != d:
        raise ValueError(
            f"`transition_network`: `{name}` must have shape (k, {d}), got {pts.shape}."
        )
    fps = []
    for r, x in enumerate(pts):
        try:
            fp = classify_fixed_point(sde, x, args, check=True, rtol=check_rtol)
        except ValueError as e:
            raise ValueError(f"`transition_network`: `{name}[{r}]`: {e}") from e
        if int(fp.index) != want_index or int(fp.num_center) != 0:
            what = "an attractor (index 0)" if want_index == 0 else "an index-1 saddle"
            raise ValueError(
                f"`transition_network`: `{name}[{r}]` = {_vec(x)} is a fixed point of kind "
                f"'{kind_name(fp.kind)}' with {int(fp.index)} unstable and "
                f"{int(fp.num_center)} neutral direction(s), not {what}."
            )
        fps.append(fp)
    return _stack(fps) if fps else None


def _branch_note(sign: str, rel: Relaxation, dist: float, in_box: bool) -> str:
    x = _vec(rel.x_end)
    if not bool(jnp.all(jnp.isfinite(rel.x_end))):
        return f"branch {sign} diverges ({RESULTS[rel.result].split('.')[0]})"
    if not in_box:
        return f"branch {sign} leaves the box (ends at {x})"
    if bool(rel.converged):
        return (
            f"branch {sign} settles at {x}, not one of the attractors found (nearest "
            f"{dist:.3g} away; missed by the search? increase `num_starts` or pass "
            "`attractors=`)"
        )
    return f"branch {sign} does not settle ({RESULTS[rel.result].split('.')[0]}; ends at {x})"


# ---------------------------------------------------------------------------------------


def transition_network(
    sde: SDE,
    *,
    center: ArrayLike,
    scale: ArrayLike,
    args: Any = None,
    key: PRNGKeyArray | None = None,
    num_starts: int = 256,
    saddles: ArrayLike | None = None,
    attractors: ArrayLike | None = None,
    n_nodes: int | None = None,
    grid_controller: Refine | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 1000,
    match_tol: float | None = None,
    check_rtol: float | None = None,
    with_rates: bool = True,
    progress: Callable[[str], None] | None = None,
) -> TransitionNetwork:
    r"""The network of attractors of an autonomous drift in the box `center ± scale`: its
    attractors, the index-1 saddles that join them, the barriers, the escape rates, and
    (through `TransitionNetwork.route`) the routes of least action between attractors.

    **Steps.**

    1. The fixed points in the box (`nj.find_fixed_points`, `num_starts` starts drawn with
       `key`): the attractors are the stable ones, the saddles the hyperbolic index-1 ones
       (in 1-D, the maxima of the potential). Points found outside the box are dropped.
    2. For each saddle, both branches of its unstable manifold (`nj.leave_saddle`): the
       attractors where they end (within `match_tol`) are the two it joins. A saddle with a
       branch that does not end at a known attractor (it leaves the box, settles elsewhere
       or does not settle), or whose branches reach the same attractor, joins nothing; the
       reason is in `join_notes`.
    3. For each joining saddle `s` between attractors `i` and `j`, the uphill legs `i → s`
       and `j → s` by `nj.minimize_geometric_action`, all in one `jax.vmap` batch
       (`throw=False`: each leg has its own `result` and `converged`).
    4. The barriers `B_ij`, and the escape rates of the legs (`nj.escape_rate`) summed over
       the saddles joining each pair into the rate matrix.

    **Arguments:**

    - `sde`: an autonomous `nj.SDE` (drift and diffusion evaluated at `t = 0`).
    - `center`, `scale`: the box, scalars or arrays of shape `(d,)` (one of them, or
      `attractors`/`saddles`, must give `d`).
    - `args`: passed to the drift and diffusion.
    - `key`, `num_starts`: the random starts of the fixed-point search (default key
      `jax.random.key(0)`, so the same call gives the same network).
    - `attractors`, `saddles`: optional `(k, d)` arrays that replace the search's
      attractors or saddles (each checked: a fixed point of index 0, resp. 1).
    - `n_nodes`, `grid_controller`, `rtol`, `atol`, `max_steps`: for the uphill solves
      (`nj.minimize_geometric_action`, with its defaults: `nj.Refine()` on 101 → 201 → 401
      nodes, so each barrier carries `uphill.stats["error_estimate"]` and a leg whose
      estimated error exceeds `1e-4` of its action is not converged; `n_nodes=101` alone
      is a fixed grid, about 7 times cheaper and without an estimate).
    - `match_tol`: a branch of an unstable manifold reaches an attractor when it ends
      within this (Euclidean) distance of it. Default `10⁻³ · max(scale)`.
    - `check_rtol`: the tolerance of the fixed-point tests (`nj.classify_fixed_point`).
    - `with_rates`: compute the escape rates (else `rates` is NaN).
    - `progress`: a callable receiving one-line messages at each stage (e.g.
      `nj._progress.Progress("network")`), or `None`.

    **Returns:** an `nj.TransitionNetwork`.

    **Errors.** A `ValueError` when the box holds no attractor (the message lists the
    fixed points found), or when `attractors`/`saddles` are not what they claim. Rates
    that cannot be computed for the system (e.g. a state-dependent `D`) are NaN, and
    `rate_note` says why.

    Runs eagerly (the numbers of fixed points are data-dependent): one compiled search,
    one relaxation per saddle branch (the same compiled integrator), and the uphill legs
    one by one with one compiled solver (the one every geometric solve of the system with
    the same options uses).
    """
    where = "transition_network"
    say = progress if progress is not None else (lambda message: None)
    if not isinstance(sde, SDE):
        raise ValueError(f"`{where}`: `sde` must be an `nj.SDE`, got {type(sde).__name__}.")
    center = as_real_array(center, "center", where, integers=True)
    scale = as_real_array(scale, "scale", where, integers=True)
    for name, v in (("center", center), ("scale", scale)):
        if v.ndim > 1:
            raise ValueError(
                f"`{where}`: `{name}` must be a scalar or of shape (d,), got {v.shape}."
            )
    dims = {v.shape[0] for v in (center, scale) if v.ndim == 1}
    for v in (attractors, saddles):
        if v is not None and jnp.ndim(v) == 2:
            dims.add(jnp.shape(v)[1])
    if len(dims) != 1:
        raise ValueError(
            f"`{where}`: "
            + (
                "the dimension of the state is unknown: give `center` (or `scale`) of shape "
                "(d,), e.g. `center=jnp.zeros(d)`."
                if not dims
                else f"`center`, `scale`, `attractors` and `saddles` disagree on the dimension "
                f"({sorted(dims)})."
            )
        )
    (d,) = dims
    dtype = jnp.result_type(center.dtype, scale.dtype)
    center = jnp.broadcast_to(center, (d,)).astype(dtype)
    scale = jnp.broadcast_to(scale, (d,)).astype(dtype)
    if not bool(jnp.all(scale > 0) & jnp.all(jnp.isfinite(scale))):
        raise ValueError(f"`{where}`: `scale` must be positive and finite, got {_vec(scale)}.")
    if not bool(jnp.all(jnp.isfinite(center))):
        raise ValueError(f"`{where}`: `center` must be finite, got {_vec(center)}.")
    _, n_nodes, grid_controller = geometric_grid(None, n_nodes, grid_controller, d, where)
    args = float_args_as_arrays(args, dtype)
    tol = 1e-3 * float(jnp.max(scale)) if match_tol is None else float(match_tol)
    if not tol > 0:
        raise ValueError(f"`{where}`: `match_tol` must be positive, got {match_tol!r}.")

    def in_box(x) -> Bool[Array, "..."]:
        # A relative margin: a fixed point on the box's edge counts as inside.
        return jnp.all(jnp.abs(x - center) <= scale * (1 + 1e-9), axis=-1)

    found = None
    if attractors is None or saddles is None:
        found = find_fixed_points(
            sde, key=key, num_starts=num_starts, center=center, scale=scale, args=args,
            check_rtol=check_rtol,
        )
        found = found[in_box(found.xs)] if len(found) else found
        say(f"{len(found)} fixed point(s) in the box")
    if attractors is None:
        att = found.stable.points
    else:
        att = _given_points(sde, attractors, args, dtype, d, "attractors", 0, check_rtol)
    k = 0 if att is None else int(att.x.shape[0])
    if k == 0:
        kinds = (
            ", ".join(f"{n} at {_vec(x)}" for n, x in zip(found.kind_names, found.xs))
            if found is not None and len(found)
            else "none"
        )
        raise ValueError(
            f"`{where}`: no attractor in the box {_vec(center)} ± {_vec(scale)} (fixed points "
            f"found there: {kinds}). Move or enlarge the box, increase `num_starts`, or pass "
            "`attractors=`."
        )
    if saddles is None:
        sad = found.with_index(1).points
    else:
        sad = _given_points(sde, saddles, args, dtype, d, "saddles", 1, check_rtol)
        if sad is None:  # an empty (0, d) array: no saddles, same structure as `att`
            sad = jax.tree.map(lambda a: a[:0], att)
    m = int(sad.x.shape[0])
    A = att.x

    # Which attractors each saddle joins: where the two branches of its unstable manifold end.
    manifolds, joins, notes = [], [], []
    for s in range(m):
        man = leave_saddle(sde, sad.x[s], args=args, check_rtol=check_rtol)
        manifolds.append(man)
        ends, note = [], []
        for sign, rel in (("+", man.plus), ("−", man.minus)):
            dist = jnp.linalg.norm(A - rel.x_end, axis=-1)
            i = int(jnp.argmin(dist))
            if float(dist[i]) <= tol:
                ends.append(i)
            else:
                ends.append(-1)
                note.append(_branch_note(sign, rel, float(dist[i]), bool(in_box(rel.x_end))))
        if not note and ends[0] == ends[1]:
            note.append(f"both branches reach attractor #{ends[0]}")
        joins.append(ends if not note else [-1, -1])
        notes.append("; ".join(note))
    say(f"{m} saddle(s) followed, {sum(not n for n in notes)} join two attractors")

    # The uphill legs.
    legs = []  # (from, over, to)
    for s, (i, j) in enumerate(joins):
        if i >= 0:
            legs += [(i, s, j), (j, s, i)]
    n_legs = len(legs)
    leg_a = jnp.asarray([a for a, _, _ in legs], dtype=int).reshape(-1)
    leg_s = jnp.asarray([s for _, s, _ in legs], dtype=int).reshape(-1)
    leg_b = jnp.asarray([b for _, _, b in legs], dtype=int).reshape(-1)
    if n_legs:
        solve = lambda x0, x1: minimize_geometric_action(
            sde, x0, x1, n_nodes=n_nodes, grid_controller=grid_controller, args=args,
            rtol=rtol, atol=atol, max_steps=max_steps, throw=False,
        )
        # One by one: the compiled solver is the one every other geometric solve of the
        # system uses (a batched copy would compile again, for a handful of legs).
        uphill = stack_trees([solve(A[a], sad.x[s]) for a, s, _ in legs])
        actions, converged = uphill.action, uphill.converged
        say(f"{n_legs} uphill leg(s) solved, {int(jnp.sum(converged))} converged")
    else:
        uphill = None
        actions = jnp.zeros((0,), dtype)
        converged = jnp.zeros((0,), bool)

    barriers, saddle_of, leg_of = _barrier_matrices(legs, actions.tolist(), converged.tolist(), k)

    leg_rates, leg_pref, note = _leg_rates(
        sde, A, sad.x, legs, uphill, actions, converged, args, dtype, with_rates
    )
    rates = jnp.zeros((k, k), dtype)
    if n_legs:
        rates = rates.at[leg_a, leg_b].add(leg_rates)
    if n_legs and with_rates:
        say("escape rates: " + note)

    return TransitionNetwork(
        attractor_points=att,
        saddle_points=sad,
        joins=jnp.asarray(joins, dtype=int).reshape(m, 2),
        join_notes=tuple(notes),
        manifolds=tuple(manifolds),
        leg_attractor=leg_a,
        leg_saddle=leg_s,
        leg_target=leg_b,
        uphill=uphill,
        leg_actions=actions,
        leg_converged=converged,
        leg_rates=leg_rates,
        leg_prefactors=leg_pref,
        barriers=jnp.asarray(barriers, dtype).reshape(k, k),
        saddle_of=jnp.asarray(saddle_of, dtype=int).reshape(k, k),
        leg_of=jnp.asarray(leg_of, dtype=int).reshape(k, k),
        rates=rates,
        rate_note=note,
        center=center,
        scale=scale,
        match_tol=tol,
    )


def _barrier_matrices(legs, acts, conv, k):
    """Per ordered pair `(i, j)`: the leg of least uphill action among the saddles joining
    them (`leg_of`), its saddle (`saddle_of`) and its action (`barriers`; NaN if that leg
    did not converge, `inf` where no saddle joins the pair). A leg with a non-finite action
    cannot be excluded from the minimum, so it wins (and makes the barrier NaN)."""
    rank = lambda l: acts[l] if math.isfinite(acts[l]) else -math.inf
    best: dict[tuple[int, int], int] = {}
    for l, (a, _, b) in enumerate(legs):
        if (a, b) not in best or rank(l) < rank(best[(a, b)]):
            best[(a, b)] = l
    barriers = [[math.inf] * k for _ in range(k)]
    saddle_of = [[-1] * k for _ in range(k)]
    leg_of = [[-1] * k for _ in range(k)]
    for (a, b), l in best.items():
        barriers[a][b] = acts[l] if conv[l] else math.nan
        saddle_of[a][b] = legs[l][1]
        leg_of[a][b] = l
    return barriers, saddle_of, leg_of


def _leg_rates(sde, A, S, legs, uphill, actions, converged, args, dtype, with_rates):
    """The escape rate and prefactor of each uphill leg (NaN where unknown), and a note."""
    n = len(legs)
    nan = jnp.full((n,), jnp.nan, dtype)
    if not with_rates:
        return nan, nan, "not computed (with_rates=False)"
    if n == 0:
        return nan, nan, "no saddle joins two attractors"
    if callable(sde.diffusion):
        return nan, nan, (
            "unavailable: the prefactor formulas assume a constant D, and this system's D "
            "depends on the state"
        )
    rates, prefs, methods, problems = [], [], set(), []
    for l, (a, s, _) in enumerate(legs):
        r = None
        if not bool(converged[l]):
            problems.append(f"leg {l} failed")
        else:
            try:
                r = escape_rate(sde, A[a], S[s], uphill.xs[l], args=args, barrier=actions[l])
            except ValueError as e:
                problems.append(f"leg {l}: {e}")
        if r is not None and not math.isfinite(float(r.rate)):
            problems.append(f"leg {l}: " + rate_failure(r))
        rates.append(jnp.nan if r is None else r.rate)
        prefs.append(jnp.nan if r is None else r.prefactor)
        if r is not None:
            methods.add(r.method)
    rates, prefs = jnp.asarray(rates, dtype), jnp.asarray(prefs, dtype)
    nonfinite = [l for l, v in enumerate(rates.tolist()) if not math.isfinite(v)]
    note = (
        " and ".join(sorted(methods) or ["none"])
        + " (nj.escape_rate), summed over the saddles joining each pair"
    )
    if problems or nonfinite:
        note += "; NaN for " + "; ".join(
            problems or [f"leg(s) {', '.join(map(str, nonfinite))} (the rate's integration failed)"]
        )
    return rates, prefs, note
