r"""Solves that, under `vmap`, run in refilled lanes: a batch pays the mean step count.

`vmap` of a solver's `while_loop` steps every element until the slowest has finished, so a
batch costs its maximum number of steps times the batch size. Here a batched solve runs
`lanes` elements at a time instead; when one finishes, its lane takes the next element that
has not started. The batch then costs about its *mean* number of steps (plus one tail of
the slowest elements, run `lanes` wide), at the price of a smaller vector width. Fresh
elements are initialised `lanes` at a time into a buffer that the refills draw from, so
an expensive `init` (`nj.BlockNewton`'s Hessian and first-damping search) runs once per
element, not once per lane at every refill.

Every element follows exactly the iteration of `optx.minimise` (the same `init`, `step`,
`terminate`, `postprocess`, the same stopping rule and result codes), so its answer is the
one an unbatched solve gives; only the order in which elements run changes. The rule is a
`jax.custom_batching.custom_vmap`: callers write a per-element solve and `vmap` it as usual
(also through `nj.solve_batch`); a solve that is not batched is `optx.minimise` itself.

Derivatives: the loop is not differentiated; the optimum gets its derivatives from the
implicit function theorem by `optx.minimise` with `optx.ImplicitAdjoint` and a solver that
is handed the optimum (`_AtOptimum`, zero steps), as an ordinary solve does.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jax.custom_batching import custom_vmap

from .._problem import AbstractPathProblem, FixedTimeProblem, problem_value


def check_lanes(lanes, where: str) -> None:
    """Refuse anything but `None` or a positive int, naming the entry point."""
    if lanes is not None and (
        not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1
    ):
        raise ValueError(
            f"`lanes` of `{where}` must be None (every element of a `vmap` in lockstep) or a "
            f"positive int (e.g. 64 to 128 on a CPU), got {lanes!r}."
        )


class _AtOptimum(optx.AbstractMinimiser):
    """A minimiser handed the optimum: no steps. `optx.minimise` with it attaches the
    implicit-function derivatives of the optimum to a point found elsewhere."""

    rtol: float = 0.0
    atol: float = 0.0
    norm: Callable = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        return None

    def step(self, fn, y, args, options, state, tags):
        return y, state, None

    def terminate(self, fn, y, args, options, state, tags):
        return jnp.array(True), optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}


def with_implicit_derivatives(problem, y, *, adjoint, tags):
    """`y` (an optimum of `problem`, found without derivatives) with the derivatives of
    the optimum with respect to everything `problem` holds."""
    sol = optx.minimise(
        problem_value, _AtOptimum(), jax.lax.stop_gradient(y), problem,
        max_steps=1, adjoint=adjoint, throw=False, tags=tags,
    )
    return sol.value


def _with_aux(y, problem):
    return problem_value(y, problem), None


def with_code(item, code):
    """The item of `item`'s enumeration (`optx.RESULTS`, `nj.RESULTS`) with integer `code`."""
    return eqx.tree_at(lambda r: r._value, item, code)


def solve_stats(stats: dict) -> dict:
    """`optx.minimise`'s stats as a path solve reports them: `num_steps` as int32, no
    `max_steps`."""
    out = {k: v for k, v in stats.items() if k != "max_steps"}
    out["num_steps"] = jnp.asarray(out["num_steps"], jnp.int32)
    return out


def _select(mask, new, old):
    """`new` where `mask` (one flag per lane), else `old`, leaf by leaf."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (jnp.ndim(a) - 1)), a, b),
        new, old,
    )


class _Outcome(eqx.Module):
    """What a solve returns to `solve_problem`: the optimum, optimistix's result code (its
    integer), the solver's own code where its state has one (`-1` otherwise) and the
    stats (`solve_stats`)."""

    y: Any
    result: Any
    own: Any
    stats: dict


def _own_code(state):
    own = getattr(state, "result", None)
    return jnp.asarray(-1, jnp.int32) if own is None else own._value.astype(jnp.int32)


def _single(solver, problem, y0, max_steps, tags) -> _Outcome:
    sol = optx.minimise(
        problem_value, solver, y0, problem, max_steps=max_steps, throw=False, tags=tags,
    )
    return _Outcome(
        sol.value,
        sol.result._value.astype(jnp.int32),
        _own_code(sol.state),
        solve_stats(sol.stats),
    )


def _lanes(solver, static, dynamic, batched, y0, batch_size, lanes, max_steps, tags):
    """The batched solve: `lanes` elements at a time, each lane refilled when its element
    stops. Returns an `_Outcome` with a leading batch axis."""
    # What `optx.minimise` hands its solver: the function with an (empty) aux output.
    fn, options = _with_aux, {}
    n_lanes = min(lanes, batch_size)
    problem_at = lambda dyn: eqx.combine(dyn, static)
    f_struct = jax.ShapeDtypeStruct((), y0.dtype)
    in_axes = jax.tree.map(lambda b: 0 if b else None, batched)

    def take(tree, idx):
        # Batched leaves are gathered; shared leaves stay as they are. Lanes without an
        # element (`idx` past the end of the batch, or −1 before the first refill) read
        # some element's data and are never written back.
        safe = jnp.clip(idx, 0, batch_size - 1)
        return jax.tree.map(lambda a, b: a[safe] if b else a, tree, batched)

    def ask_terminate(problem, y, state):
        # As `optx.minimise`: a non-finite iterate stops the solve as `nonfinite`.
        stop, code = solver.terminate(fn, y, problem, options, state, tags)
        code = optx.RESULTS.where(jnp.all(jnp.isfinite(y)), code, optx.RESULTS.nonfinite)
        return stop, code._value.astype(jnp.int32)

    def init_one(dyn, y):
        problem = problem_at(dyn)
        state = solver.init(fn, y, problem, options, f_struct, None, tags)
        return y, state, *ask_terminate(problem, y, state)

    def step_one(dyn, y, state):
        problem = problem_at(dyn)
        y_new, state_new, _ = solver.step(fn, y, problem, options, state, tags)
        # As `optx.minimise`: `terminate` is asked at the old `y` with the new state.
        return y_new, state_new, *ask_terminate(problem, y, state_new)

    def finish_one(dyn, y, state, stop, code):
        problem = problem_at(dyn)
        ok = optx.RESULTS.successful._value
        code = jnp.where((code == ok) & ~stop, optx.RESULTS.nonlinear_max_steps_reached._value,
                         code)
        result = with_code(optx.RESULTS.successful, code)
        y, _, stats = solver.postprocess(fn, y, None, problem, options, state, tags, result)
        return y, code, _own_code(state), stats

    lane_axes = (in_axes, 0)
    v_init = jax.vmap(init_one, in_axes=lane_axes)
    v_step = jax.vmap(step_one, in_axes=(in_axes, 0, 0))
    v_finish = jax.vmap(finish_one, in_axes=(in_axes, 0, 0, 0, 0))

    # The lanes start empty (`idx = −1`, zeros of the right structure): the first refill
    # initialises them, so `init` has a single call site in the compiled program.
    idx = jnp.full(n_lanes, -1, jnp.int32)
    struct = eqx.filter_eval_shape(v_init, take(dynamic, idx), y0[:n_lanes])
    is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct)
    zeros = jax.tree.map(
        lambda x: jnp.zeros(x.shape, x.dtype) if is_struct(x) else x, struct, is_leaf=is_struct
    )
    y, state, stop, code = zeros
    state_dyn, state_static = eqx.partition(state, eqx.is_array)
    out_struct = jax.eval_shape(
        v_finish, take(dynamic, idx), y, state, stop, code
    )
    outputs = jax.tree.map(
        lambda s: jnp.zeros((batch_size,) + s.shape[1:], s.dtype), out_struct
    )
    num_steps = jnp.zeros(n_lanes, jnp.int32)
    out_steps = jnp.zeros(batch_size, jnp.int32)
    ok = optx.RESULTS.successful._value

    def running(idx, stop, code, num_steps):
        return (idx >= 0) & (idx < batch_size) & ~stop & (code == ok) & (num_steps < max_steps)

    def cond(carry):
        return jnp.any(carry[0] < batch_size)

    def init_at(start):
        # Elements `start, …, start + n_lanes − 1` initialised (past the end: another's
        # data, never used).
        i = start + jnp.arange(n_lanes, dtype=jnp.int32)
        y_i, st_i, stop_i, code_i = v_init(take(dynamic, i), y0[jnp.minimum(i, batch_size - 1)])
        return y_i, eqx.filter(st_i, eqx.is_array), stop_i, code_i

    def body(carry):
        (idx, next_idx, y, state_dyn, stop, code, num_steps, outputs, out_steps, buf_start,
         buffer) = carry
        state = eqx.combine(state_dyn, state_static)
        # Lanes whose element has stopped write it out; they and the empty lanes take the
        # next elements.
        done = (idx >= 0) & (idx < batch_size) & ~running(idx, stop, code, num_steps)
        free = done | (idx < 0)

        def refill():
            dyn = take(dynamic, idx)
            fin = v_finish(dyn, y, state, stop, code)
            where = jnp.where(done, idx, batch_size)  # out of range: dropped
            new_outputs = jax.tree.map(
                lambda o, v: o.at[where].set(v, mode="drop"), outputs, fin
            )
            new_steps = out_steps.at[where].set(num_steps, mode="drop")
            num_free = jnp.sum(free).astype(jnp.int32)
            new_idx = jnp.where(
                free, jnp.minimum(next_idx + jnp.cumsum(free) - 1, batch_size), idx
            ).astype(jnp.int32)
            fresh = free & (new_idx < batch_size)
            # Fresh elements come from the buffer of initialised ones, which is refilled
            # (the next `n_lanes` elements, initialised together) when it runs short: an
            # `init` (e.g. `nj.BlockNewton`'s Hessian and first-damping search) then runs
            # once per `n_lanes` elements, not for every lane at every refill.
            # (Past the end of the batch there is nothing left to initialise.)
            short = (next_idx < batch_size) & (next_idx + num_free > buf_start + n_lanes)
            buf_start_new, buffer_new = jax.lax.cond(
                short, lambda: (next_idx, init_at(next_idx)), lambda: (buf_start, buffer)
            )
            slot = jnp.clip(new_idx - buf_start_new, 0, n_lanes - 1)
            from_buffer = jax.tree.map(lambda a: a[slot], buffer_new)
            return (
                new_idx,
                next_idx + num_free,
                *_select(fresh, from_buffer, (y, state_dyn, stop, code)),
                jnp.where(fresh, 0, num_steps),
                new_outputs,
                new_steps,
                buf_start_new,
                buffer_new,
            )

        idx, next_idx, y, state_dyn, stop, code, num_steps, outputs, out_steps, buf_start, \
            buffer = jax.lax.cond(
                jnp.any(free),
                refill,
                lambda: (idx, next_idx, y, state_dyn, stop, code, num_steps, outputs,
                         out_steps, buf_start, buffer),
            )
        # One step of every lane that is running (the others keep their values).
        go = running(idx, stop, code, num_steps)
        state = eqx.combine(state_dyn, state_static)
        y_n, state_n, stop_n, code_n = v_step(take(dynamic, idx), y, state)
        state_n_dyn = eqx.filter(state_n, eqx.is_array)
        return (
            idx,
            next_idx,
            *_select(go, (y_n, state_n_dyn, stop_n, code_n), (y, state_dyn, stop, code)),
            num_steps + go.astype(jnp.int32),
            outputs,
            out_steps,
            buf_start,
            buffer,
        )

    # An empty buffer (it ends where the batch starts): the first refill fills it.
    carry = (idx, jnp.asarray(0, jnp.int32), y, state_dyn, stop, code, num_steps,
             outputs, out_steps, jnp.asarray(-n_lanes, jnp.int32), (y, state_dyn, stop, code))
    carry = jax.lax.while_loop(cond, body, carry)
    (y_out, code_out, own_out, stats_out), steps_out = carry[7], carry[8]
    return _Outcome(y_out, code_out, own_out, dict(stats_out, num_steps=steps_out))


def hoist_closures(problem):
    """The problem with its drift and diffusion closure-converted, or `None` where lanes
    cannot run it.

    Values the drift or diffusion close over (e.g. a parameter of an outer `vmap` captured
    by a `lambda`) become array leaves of the problem, which the lanes gather per element
    like any other input (a `custom_vmap` cannot close over batched values). Values traced
    by an outer `jit`, `grad` or `jvp` and captured the same way cannot cross the lanes'
    `custom_vmap` (they are not inputs of the compiled solve): then `None`, and the caller
    solves in lockstep. Parameters passed in `args` or held by the `nj.SDE` never need this.
    """
    if not isinstance(problem, FixedTimeProblem):
        return problem
    sde = problem.sde
    t, x, args = problem.ts[0], problem.x0, problem.args
    converted = {"drift": eqx.filter_closure_convert(sde.drift, t, x, args)}
    if callable(sde.diffusion):
        converted["diffusion"] = eqx.filter_closure_convert(sde.diffusion, t, x, args)
    # A tracer of an outer `vmap` carries its batch dimension; any other tracer here
    # belongs to a transformation outside the solve.
    outer = [
        c for c in jax.tree.leaves(converted)
        if isinstance(c, jax.core.Tracer) and not hasattr(c, "batch_dim")
    ]
    if outer:
        return None
    for name, fn in converted.items():
        sde = eqx.tree_at(lambda s: getattr(s, name), sde, fn)
    return eqx.tree_at(lambda p: p.sde, problem, sde)


def solve_in_lanes(
    solver: optx.AbstractMinimiser,
    problem: AbstractPathProblem,
    y0,
    *,
    max_steps: int,
    lanes: int,
    tags: frozenset,
) -> _Outcome:
    """Minimise `problem` (from `hoist_closures`) from `y0` with `solver`; under `vmap`, in
    `lanes` refilled lanes. No derivatives flow through it (see
    `with_implicit_derivatives`)."""
    dynamic, static = eqx.partition(problem, eqx.is_array)
    dynamic = jax.lax.stop_gradient(dynamic)
    y0 = jax.lax.stop_gradient(y0)

    @custom_vmap
    def solve(dynamic, y0):
        return _single(solver, eqx.combine(dynamic, static), y0, max_steps, tags)

    @solve.def_vmap
    def _rule(axis_size, in_batched, dynamic, y0):
        dyn_batched, y0_batched = in_batched
        if not y0_batched:
            y0 = jnp.broadcast_to(y0, (axis_size,) + y0.shape)
        out = _lanes(solver, static, dynamic, dyn_batched, y0, axis_size, lanes, max_steps,
                     tags)
        return out, jax.tree.map(lambda _: True, out)

    return solve(dynamic, y0)
