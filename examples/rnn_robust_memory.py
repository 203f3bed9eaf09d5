"""Robust memory: train a noisy RNN to store a bit, and raise its barrier through the action.

    python examples/rnn_robust_memory.py [--out DIR] [--quick]

A continuous-time RNN `dx = (−x + W tanh(x) + b) dt + sqrt(2D) dW` (`nj.CTRNN`, d = 6 units)
learns a one-bit memory: started from `±u` (a "write" input), its readout `w·x` must settle
at `±1` and stay there. Its two memories are attractors `a` (bit 0) and `b` (bit 1); noise
makes it forget, at the rate `k ∝ exp(−Ŝ)` set by the quasipotential barrier `Ŝ`
(docs/conventions.md: `Ŝ` is the minimal action, for noise `D` it is `Ŝ₁/D`).

1. Train on the task alone (optax, Adam): the memory works, with some barrier.
2. Keep training with an extra term `λ·relu(S_target − S_T)²` on the fixed-time minimal action
   `S_T` (`nj.minimize_action`, over a long `T`) of both transitions `a → b` and `b → a`,
   a batch of two boundary conditions under `jax.vmap`. The gradient is exact and cheap:
   envelope theorem for the action, no backpropagation through the solver, and each step's
   paths are warm-started from the previous step's.
3. Before/after: the barriers `Ŝ₁` (`nj.barrier`, geometric action through the saddle), the
   predicted escape rates, and the rates measured by simulating the SDE with diffrax (many
   trajectories at once, mean escape time with censoring) at several noise levels:
   `log τ = Ŝ₁/D + log C + O(D)`, so the slope of `log τ` against `1/D` is the barrier and the
   intercept the prefactor `C`. `C` is estimated with the Eyring–Kramers formula of
   gradient systems, `C ≈ 2π/λ_u · sqrt(|det J_s| / det J_a)` (`J`: the drift's Jacobian at
   the saddle and the attractor, `λ_u` the unstable rate); a non-gradient drift multiplies
   it by O(1) factors (Bouchet–Reygner), so log-rates agree to O(1) plus O(D) finite-noise
   corrections, not exactly. Finally both networks at one common noise level.

Each training step's cost is measured against a step on the task loss alone (medians,
compilation excluded), and the solver steps of warm-started solves against solves started
from straight lines.

Prints the numbers; writes `rnn_robust_memory.png` into DIR (default
`noether_jax_out/examples/rnn_robust_memory/`).
"""

import argparse
import math
import pathlib
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import noether_jax as nj  # noqa: E402

# The action is computed for D = 1; for noise D it is S/D (docs/conventions.md).
SDE1 = nj.SDE(nj.ctrnn_drift, 1.0)


class MemoryTask(eqx.Module):
    """A one-bit memory: start at `s·write + noise` (`s = ±1`), keep the readout `readout·x`
    at `s·level` from `t_settle` to `t_task`."""

    write: jax.Array  # (d,)
    readout: jax.Array  # (d,)
    starts: jax.Array  # (m, d): the initial states of the batch (first two noise-free)
    signs: jax.Array  # (m,)
    level: float = 1.0
    t_task: float = eqx.field(static=True, default=10.0)
    t_settle: float = eqx.field(static=True, default=4.0)
    dt: float = eqx.field(static=True, default=0.1)


def make_task(key, d: int, *, batch: int = 16, jitter: float = 0.3) -> MemoryTask:
    kw, kr, kn = jax.random.split(key, 3)
    write = 2.0 * jax.random.normal(kw, (d,)) / math.sqrt(d)
    readout = jax.random.normal(kr, (d,))
    readout = readout / jnp.linalg.norm(readout)
    signs = jnp.where(jnp.arange(batch) % 2 == 0, -1.0, 1.0)
    noise = jitter * jax.random.normal(kn, (batch, d)).at[:2].set(0.0)
    return MemoryTask(write, readout, signs[:, None] * write + noise, signs)


def run_network(net, task: MemoryTask):
    """The noise-free trajectories of the batch (diffrax, fixed steps): `(ts, xs[m, n, d])`."""
    ts = jnp.arange(0.0, task.t_task + 0.5 * task.dt, task.dt)

    def one(x0):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(nj.ctrnn_drift), dfx.Tsit5(), 0.0, task.t_task, task.dt, x0, args=net,
            saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.ConstantStepSize(),
        )
        return sol.ys

    return ts, jax.vmap(one)(task.starts)


def task_loss(net, task: MemoryTask):
    """Mean squared error of the readout against `±level` after `t_settle`; also the end
    states of the two noise-free runs (`−write`, `+write`)."""
    ts, xs = run_network(net, task)
    r = xs @ task.readout
    late = ts >= task.t_settle
    err = (r - task.signs[:, None] * task.level) ** 2
    loss = jnp.sum(jnp.where(late, err, 0.0)) / (jnp.sum(late) * r.shape[0])
    return loss, xs[:2, -1]


def polish(net, x, num: int = 6):
    """A few Newton steps on `f(x) = 0` from `x` (no gradient: at an attractor the minimal
    action does not depend on the endpoint to first order, `p = 0` there)."""
    net = jax.lax.stop_gradient(net)

    def newton(_, x):
        J = jax.jacfwd(lambda y: net(0.0, y))(x)
        return x - jnp.linalg.solve(J, net(0.0, x))

    return jax.lax.fori_loop(0, num, newton, jax.lax.stop_gradient(x))


def transition_actions(net, ends, inits, *, t_path: float, throw: bool = False):
    """The fixed-time most likely paths (D = 1) of the transitions `ends[i, 0] → ends[i, 1]`
    in time `t_path`, one per row, warm-started from `inits[i]` (`(k, n, d)`): a vmapped
    batch of `nj.minimize_action`."""
    # Little initial damping: a warm start is already close to the optimum (3-4 Newton
    # steps instead of 6 with the default `lam0`).
    solver = nj.BlockNewton(lam0=1e-6)
    solve = lambda e, init: nj.minimize_action(
        SDE1, e[0], e[1], 0.0, t_path, args=net, init=init, solver=solver, throw=throw
    )
    return jax.vmap(solve)(ends, inits)


def straight_lines(ends, n_nodes: int):
    s = jnp.linspace(0.0, 1.0, n_nodes)[None, :, None]
    return ends[:, :1] + s * (ends[:, 1:] - ends[:, :1])


def memory_states(net, task):
    """The two memories `(a, b)`: the attractors reached from `∓write` (no gradient)."""
    _, xs = run_network(jax.lax.stop_gradient(net), task)
    return polish(net, xs[0, -1]), polish(net, xs[1, -1])


def both_ways(a, b):
    """Boundary conditions of the transitions `a → b` and `b → a`, shape `(2, 2, d)`."""
    return jnp.stack([jnp.stack([a, b]), jnp.stack([b, a])])


def full_loss(net, task, inits, cold, weight, target, *, t_path):
    """Task loss plus `weight · mean relu(target − S_T)²` over both transitions between the
    memories (starting from straight lines if `cold`, else from `inits`). Returns the loss
    and `(task loss, paths)`."""
    tl, (x_neg, x_pos) = task_loss(net, task)
    ends = both_ways(polish(net, x_neg), polish(net, x_pos))
    inits = jnp.where(cold, straight_lines(ends, inits.shape[1]), inits)
    sols = transition_actions(net, ends, inits, t_path=t_path)
    # An unconverged solve has no valid envelope gradient: leave it out of this step.
    gap = jnp.where(sols.converged, jax.nn.relu(target - sols.action), 0.0)
    return tl + weight * jnp.mean(gap**2), (tl, sols)


def make_task_step(optimizer):
    @eqx.filter_jit
    def task_step(net, opt_state, task):
        (loss, _), grads = eqx.filter_value_and_grad(task_loss, has_aux=True)(net, task)
        updates, opt_state = optimizer.update(grads, opt_state, net)
        return eqx.apply_updates(net, updates), opt_state, loss

    return task_step


def make_barrier_step(optimizer, *, t_path):
    """One optax step on `full_loss`; `weight` and `target` are traced (a new value does not
    recompile), so `weight = 0` gives a plain task step that also returns the paths."""

    @eqx.filter_jit
    def barrier_step(net, opt_state, task, inits, cold, weight, target):
        loss_fn = lambda n: full_loss(n, task, inits, cold, weight, target, t_path=t_path)
        (loss, (tl, sols)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(net)
        updates, opt_state = optimizer.update(grads, opt_state, net)
        return eqx.apply_updates(net, updates), opt_state, loss, tl, sols

    return barrier_step


@eqx.filter_jit
def paths_from(net, task, inits, cold, *, t_path):
    """The two transition paths, forward only (to count a cold start's solver steps)."""
    ends = both_ways(*memory_states(net, task))
    inits = jnp.where(cold, straight_lines(ends, inits.shape[1]), inits)
    return transition_actions(net, ends, inits, t_path=t_path)


def initial_network(key, d: int) -> nj.CTRNN:
    return nj.CTRNN.random(key, d, gain=0.8)


def train(
    net, task, *, task_steps, barrier_steps, weight=10.0, raise_by=2.0, t_path=12.0,
    n_nodes=121, lr=1e-2, lr_barrier=1e-3, compare_every=0, progress=print,
):
    """Phase 1: `task_steps` optax (Adam) steps of the task alone. Phase 2: `barrier_steps`
    with the barrier term, target `raise_by ×` the smaller action after phase 1, the paths
    warm-started from the previous step. Every `compare_every` steps (0: never) the solver
    steps of a cold start (straight lines) are counted too. Returns the networks after each
    phase and a history (times per step, losses, actions, solver steps)."""
    hist = dict(task_loss=[], task_time=[], loss=[], step_time=[], actions=[], num_steps=[],
                converged=[], cold_steps=[])
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_array))
    task_step = make_task_step(optimizer)
    for _ in range(task_steps):
        t = time.perf_counter()
        net, opt_state, loss = task_step(net, opt_state, task)
        hist["task_loss"].append(float(loss))
        hist["task_time"].append(time.perf_counter() - t)
    net_task = net

    optimizer = optax.adam(lr_barrier)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_array))
    barrier_step = make_barrier_step(optimizer, t_path=t_path)
    d = net.dim
    inits = jnp.zeros((2, n_nodes, d))
    target = jnp.asarray(0.0)
    for i in range(barrier_steps + 1):
        cold = jnp.asarray(i == 0)
        # Step 0 starts from straight lines with weight 0: it measures the actions after
        # phase 1 (the paths are those of the network before the update), which set the target.
        w = jnp.asarray(0.0 if i == 0 else weight)
        if compare_every and i > 0 and i % compare_every == 0:
            c = paths_from(net, task, inits, jnp.asarray(True), t_path=t_path)
            hist["cold_steps"].append((i, np.asarray(c.stats["num_steps"])))
        t = time.perf_counter()
        net, opt_state, loss, tl, sols = barrier_step(net, opt_state, task, inits, cold, w,
                                                      target)
        loss = float(loss)
        hist["step_time"].append(time.perf_counter() - t)
        inits = sols.xs  # warm start of the next step
        hist["loss"].append((loss, float(tl)))
        hist["actions"].append(np.asarray(sols.action))
        hist["num_steps"].append(np.asarray(sols.stats["num_steps"]))
        hist["converged"].append(np.asarray(sols.converged))
        if i == 0:
            target = jnp.asarray(raise_by * float(jnp.min(sols.action)))
            progress(
                f"after the task alone: S_T(a→b), S_T(b→a) = {float(sols.action[0]):.4f}, "
                f"{float(sols.action[1]):.4f} (D = 1, T = {t_path}); target {float(target):.4f}"
            )
    hist["target"] = float(target)
    return net_task, net, hist


# --- Barriers, predicted and simulated escape rates ---------------------------------------


def kramers_prefactor(net, tr: nj.Transition) -> float:
    """The gradient-form Eyring–Kramers prefactor `C = 2π/λ_u · sqrt(|det J_s| / det J_a)`
    of the transition `tr` (`J`: the drift's Jacobian at the saddle `s` and at the start
    `a`, `λ_u`: the saddle's unstable eigenvalue), so that the predicted
    mean escape time at noise `D` is `τ ≈ C exp(Ŝ₁/D)`. Exact for gradient drifts; for a
    non-gradient drift the prefactor has further O(1) factors (Bouchet–Reygner)."""
    J = lambda x: jax.jacfwd(lambda y: net(0.0, y))(x)
    Js, Ja = J(tr.saddle.x), J(tr.start.x)
    lam_u = float(jnp.max(jnp.real(jnp.linalg.eigvals(Js))))
    C = 2 * math.pi / lam_u * math.sqrt(abs(float(jnp.linalg.det(Js))) / float(jnp.linalg.det(Ja)))
    return C


@eqx.filter_jit
def _escape(net, a, b, D, keys, t_max, *, dt, max_steps, threshold):
    d = a.shape[0]
    ab = b - a
    progress = lambda x: jnp.dot(x - a, ab) / jnp.dot(ab, ab)  # 0 at a, 1 at b
    drift = dfx.ODETerm(nj.ctrnn_drift)
    event = dfx.Event(lambda t, y, args, **kw: progress(y) > threshold)
    sigma = jnp.sqrt(2 * D) * jnp.eye(d, dtype=a.dtype)  # sqrt(2D) dW (docs/conventions.md)

    def one(key):
        noise = dfx.ControlTerm(lambda t, y, args: sigma, dfx.UnsafeBrownianPath((d,), key))
        sol = dfx.diffeqsolve(
            dfx.MultiTerm(drift, noise), dfx.Euler(), 0.0, t_max, dt, a, args=net,
            saveat=dfx.SaveAt(t1=True), event=event, max_steps=max_steps, throw=False,
            adjoint=dfx.ForwardMode(),  # not differentiated; UnsafeBrownianPath needs this
        )
        return sol.ts[-1], sol.result == dfx.RESULTS.event_occurred

    return jax.vmap(one)(keys)


def escape_rate(net, a, b, D, key, *, n_traj=256, t_max=1000.0, dt=0.02, threshold=0.8):
    """Euler–Maruyama (diffrax) from `a` until the projection on `b − a` passes `threshold`
    (past the saddle), for `n_traj` trajectories at once, at most `t_max`. The rate is the
    censored exponential estimate `k = #escapes / Σ time at risk` (`±1/sqrt(#escapes)`
    relative). Returns `(k, number escaped)`."""
    keys = jax.random.split(key, n_traj)
    max_steps = int(math.ceil(t_max / dt)) + 8
    ts, escaped = _escape(net, a, b, jnp.asarray(D), keys, jnp.asarray(t_max), dt=dt,
                          max_steps=max_steps, threshold=threshold)
    n_esc = int(jnp.sum(escaped))
    return n_esc / float(jnp.sum(ts)), n_esc


def rate_study(net, tr: nj.Transition, key, *, levels, n_traj, dt, progress):
    """Prefactor of the transition `tr` (from `nj.barrier`, D = 1) and simulated rates at
    `D = Ŝ₁/s` for `s` in `levels` (so that `τ ≈ C e^s` stays affordable): rows
    `(D, k_sim, n_escaped, k_pred)`, and the fit of `log τ = Ŝ/D + log C`."""
    C = kramers_prefactor(net, tr)
    S = float(tr.barrier)
    a, b = tr.start.x, tr.end.x
    rows = []
    for i, s in enumerate(levels):
        D = S / s
        tau = C * math.exp(s)
        k, n = escape_rate(net, a, b, D, jax.random.fold_in(key, i), n_traj=n_traj,
                           t_max=2.5 * tau, dt=dt)
        rows.append((D, k, n, 1 / tau))
        progress(f"  D = {D:.4f} (Ŝ₁/D = {s}): simulated k = {k:.3e} ({n}/{n_traj} escaped), "
                 f"predicted C⁻¹e^(−Ŝ₁/D) = {1 / tau:.3e}, log ratio {math.log(k * tau):+.3f}")
    rows = np.array(rows)
    # log τ = Ŝ₁ (1/D) + log C: the slope is the barrier, the intercept the prefactor.
    slope, intercept = np.polyfit(1 / rows[:, 0], -np.log(rows[:, 1]), 1)
    return dict(transition=tr, barrier=S, prefactor=C, rows=rows, fit_barrier=slope,
                fit_prefactor=math.exp(intercept))


def run(out=None, *, quick=False, d=6, seed=0, progress=print):
    """The whole example; returns a dict of numbers. `quick`: fewer steps, no simulation."""
    out = pathlib.Path("noether_jax_out/examples/rnn_robust_memory" if out is None else out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(seed)
    k_task, k_net, k_sim = jax.random.split(key, 3)
    task = make_task(k_task, d)
    net0 = initial_network(k_net, d)
    task_steps, barrier_steps = (150, 10) if quick else (300, 150)
    progress(f"1-2. training a {d}-unit CTRNN: {task_steps} task steps, then {barrier_steps} "
             "with the barrier term")
    net_task, net_robust, hist = train(net0, task, task_steps=task_steps,
                                       barrier_steps=barrier_steps,
                                       compare_every=0 if quick else 10, progress=progress)
    # Timing: medians, compilation (first call) excluded.
    t_task = float(np.median(hist["task_time"][1:]))
    t_bar = float(np.median(hist["step_time"][2:]))
    warm = np.concatenate(hist["num_steps"][1:])
    res = dict(
        task_loss_before=hist["task_loss"][-1], task_loss_after=hist["loss"][-1][1],
        S_T_before=hist["actions"][0].tolist(), S_T_after=hist["actions"][-1].tolist(),
        target=hist["target"], step_time_task=t_task, step_time_barrier=t_bar,
        overhead=t_bar / t_task, newton_steps_warm=float(np.median(warm)),
        newton_steps_first=hist["num_steps"][0].tolist(),
    )
    progress(f"   task loss {res['task_loss_before']:.2e} -> {res['task_loss_after']:.2e}; "
             f"S_T (a→b, b→a) {np.round(res['S_T_before'], 4)} -> {np.round(res['S_T_after'], 4)}")
    progress(f"   per training step: task alone {1e3 * t_task:.1f} ms, with the two action "
             f"solves and their gradient {1e3 * t_bar:.1f} ms (x{t_bar / t_task:.2f}); Newton "
             f"steps per solve: warm start median {np.median(warm):.0f} (max {warm.max()})")
    if hist["cold_steps"]:
        cold = np.concatenate([c for _, c in hist["cold_steps"]])
        res["newton_steps_cold"] = float(np.median(cold))
        progress(f"   the same solves from straight lines: median {np.median(cold):.0f} steps")

    studies = {}
    for name, net in (("before", net_task), ("after", net_robust)):
        a, b = memory_states(net, task)
        tr_ab = nj.barrier(SDE1, a, b, args=net)
        tr_ba = nj.barrier(SDE1, b, a, args=net, saddles=tr_ab.saddle.x[None])
        barriers = (float(tr_ab.barrier), float(tr_ba.barrier))
        res[f"barriers_{name}"] = barriers
        progress(f"3. {name}: barriers Ŝ₁(a→b) = {barriers[0]:.4f}, Ŝ₁(b→a) = {barriers[1]:.4f}"
                 " (D = 1)")
        studies[name] = dict(a=a, b=b, paths=(tr_ab.xs, tr_ba.xs))
        if quick:
            continue
        # The weaker memory forgets first: simulate its escape.
        tr = tr_ab if barriers[0] <= barriers[1] else tr_ba
        st = rate_study(net, tr, k_sim, levels=(2.0, 2.75, 3.5), n_traj=256, dt=0.02,
                        progress=progress)
        studies[name].update(st)
        res[f"rates_{name}"] = st["rows"].tolist()
        res[f"prefactor_{name}"] = st["prefactor"]
        res[f"fit_barrier_{name}"] = st["fit_barrier"]
        res[f"fit_prefactor_{name}"] = st["fit_prefactor"]
        progress(f"   fit of log τ against 1/D: slope {st['fit_barrier']:.4f} (barrier "
                 f"{st['barrier']:.4f}), prefactor {st['fit_prefactor']:.2f} (gradient-form "
                 f"Eyring–Kramers {st['prefactor']:.2f})")
    if not quick:
        # Both networks at one noise level (the weaker memory of each): the measured ratio
        # of the mean memory times against exp(ΔŜ₁/D) and the prefactors.
        # (a level where the robust memory still forgets within affordable times).
        D = min(res["barriers_after"]) / 4.5
        taus = {}
        for i, name in enumerate(("before", "after")):
            st = studies[name]
            tau_pred = st["prefactor"] * math.exp(st["barrier"] / D)
            k, n = escape_rate(net_task if name == "before" else net_robust,
                               st["transition"].start.x, st["transition"].end.x, D,
                               jax.random.fold_in(k_sim, 100 + i), n_traj=256,
                               t_max=2.5 * tau_pred, dt=0.02)
            taus[name] = (1 / k, tau_pred, n)
            st["common"] = (D, k, n)
        ratio_sim = taus["after"][0] / taus["before"][0]
        ratio_pred = taus["after"][1] / taus["before"][1]
        dS = studies["after"]["barrier"] - studies["before"]["barrier"]
        res.update(D_common=D, tau_common=taus, tau_ratio_simulated=ratio_sim,
                   tau_ratio_predicted=ratio_pred)
        progress(
            f"   same noise D = {D:.4f}: mean memory time {taus['before'][0]:.1f} -> "
            f"{taus['after'][0]:.1f} (simulated, x{ratio_sim:.1f}); predicted "
            f"{taus['before'][1]:.1f} -> {taus['after'][1]:.1f} (x{ratio_pred:.1f}; "
            f"exp(ΔŜ₁/D) alone x{math.exp(dS / D):.1f})"
        )
    _figure(out / "rnn_robust_memory.png", hist, task, net_task, net_robust, studies)
    return res


def _figure(path, hist, task, net_task, net_robust, studies):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    n1 = len(hist["task_loss"])
    ax.semilogy(np.arange(n1), hist["task_loss"], label="task loss (phase 1)")
    steps2 = n1 + np.arange(len(hist["loss"]))
    ax.semilogy(steps2, [l[1] for l in hist["loss"]], label="task loss (phase 2)")
    ax2 = ax.twinx()
    acts = np.array(hist["actions"])
    ax2.plot(steps2, acts[:, 0], "C2", label="S_T(a→b)")
    ax2.plot(steps2, acts[:, 1], "C3", label="S_T(b→a)")
    ax2.axhline(hist["target"], color="k", ls=":", lw=1)
    ax.set_xlabel("training step")
    ax.set_title("training")
    ax.legend(loc="upper right", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    ax = axes[1]
    for name, net, ls in (("before", net_task, "--"), ("after", net_robust, "-")):
        st = studies[name]
        w = np.asarray(task.readout)
        for xs, c, lab in zip(st["paths"], ("C2", "C3"), ("a → b", "b → a")):
            xs = np.asarray(xs)
            r = xs @ w
            ax.plot(r, np.linalg.norm(xs - np.outer(r, w), axis=1), c, ls=ls,
                    label=f"{lab}, {name}")
    ax.set_xlabel("readout w·x")
    ax.set_ylabel("|x − (w·x) w|")
    ax.set_title("most likely transitions (through the saddle)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for name, c in (("before", "C0"), ("after", "C1")):
        st = studies[name]
        if "rows" not in st:
            continue
        rows = st["rows"]
        inv = 1 / rows[:, 0]
        err = 1 / np.sqrt(np.maximum(rows[:, 2], 1))
        ax.errorbar(inv, -np.log(rows[:, 1]), yerr=err, fmt="o", color=c,
                    label=f"{name}: simulated")
        if "common" in st:
            D, k, n = st["common"]
            ax.errorbar([1 / D], [-math.log(k)], yerr=[1 / math.sqrt(max(n, 1))], fmt="s",
                        color=c, mfc="none", label=f"{name}: simulated at a common D")
        right = max([inv.max()] + [1 / st["common"][0] for st in studies.values()
                                   if "common" in st])
        grid = np.linspace(0, right * 1.05, 50)
        ax.plot(grid, st["barrier"] * grid + math.log(st["prefactor"]), color=c,
                label=f"{name}: Ŝ₁/D + log C")
    ax.set_xlabel("1/D")
    ax.set_ylabel("log mean escape time")
    ax.set_title("escape: simulation vs barrier")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no simulation (--quick)", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="noether_jax_out/examples/rnn_robust_memory",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, no simulation")
    opts = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    t = time.perf_counter()
    run(opts.out, quick=opts.quick)
    print(f"done in {time.perf_counter() - t:.0f} s; figure in {opts.out}/rnn_robust_memory.png")


if __name__ == "__main__":
    main()
