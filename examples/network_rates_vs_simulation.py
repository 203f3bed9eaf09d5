r"""A network of four attractors: `nj.transition_network`'s rates against direct simulation.

    python examples/network_rates_vs_simulation.py            # full run (≈ 17 min, one core)
    python examples/network_rates_vs_simulation.py --quick    # one noise level, a few minutes

**The system.** A 2-unit CTRNN (`nj.CTRNN`, `nj.ctrnn_drift`),

    dx = (−x + W tanh(x) + b) dt + sqrt(2D) dW,   W = [[2.5, −g], [g, 2.5]],  b = (0.1, 0.05),

with four attractors near `(±2.4, ±2.4)`, four index-1 saddles between neighbouring ones
(one unit near 0) and an index-2 point near the origin. Two members of the family:

- `gradient` (`g = 0`): the units decouple, `f = −∇V` with `V = Σ(x²/2 − 2.5 log cosh x −
  b·x)`: Eyring–Kramers applies, so this row set checks the simulation and the network's
  bookkeeping (which saddle joins which pair, the competing exits, the Markov chain);
- `rotating` (`g = 0.2`): a weak antisymmetric coupling, non-gradient (Bouchet–Reygner), with
  different barriers for the clockwise and anticlockwise hops.

**Why not the paper's 2-unit network** (`noether_jax/cli/_cases/_attractor_network.py`,
the issue's first choice). Measured with `nj.transition_network` at the paper's `D = 0.16`
(given its four attractors and four saddles): the barriers span a factor 64 — `0.149` out of
the low-low state, `2.17` and `4.05` between the high-high state and the two switched states,
`9.53` from a switched state to low-low — so at any noise level either the low-low state is
not metastable at all (barrier `0.15`) or the other hops are far too rare to simulate
(at a `D` where the low-low barrier is 5, the others are 70–320). Its saddles sit inside
sigmoid layers of width 0.01 where `λ⁺ ≈ 49`: the Eyring–Kramers/Bouchet–Reygner prefactor
needs the noise width at the saddle `sqrt(D/λ⁺)` well below the layer width, i.e.
`D ≲ 0.005`, where every barrier except the low-low one is in the hundreds; at simulable
noise the drift is effectively discontinuous there and the rate has a different prefactor
(`∝ sqrt(D)`). Finally, six of its eight uphill legs do not pass `nj.Refine`'s error check
(steep layers), so their rates are NaN, and the two that do (the `0.149` legs) also came
back with NaN rates. The CTRNN above has smooth `tanh` units, `λ⁺ ≈ 1.5`, barriers within a
factor 2–3 of each other, and stiffness ≈ 1, so Euler–Maruyama with `dt = 0.01` is accurate.

**The simulated event.** From attractor `i`, `N` independent Euler–Maruyama paths (diffrax
`Euler` on a `MultiTerm` of the drift and `sqrt(2D) dW` from an `UnsafeBrownianPath`, float64,
all paths one batched state, as in `examples/rates_vs_simulation.py`) run until each first
enters the ball of radius `R = 0.5` around another attractor `j` (deep inside `j`'s basin:
crossing the saddle *and* being committed). A path that has arrived is frozen and its clock
stops. The solve ends when a fraction `--fraction` (default 0.6) of the paths have arrived
(a `diffrax.Event`): type-II censoring. With exponential exit times the maximum-likelihood
estimates are

    k̂_ij = n_ij / Σ_paths τ_path,    relative standard error 1/sqrt(n_ij),

`τ_path` each path's clock (arrival time, or the stopping time if it has not arrived), `n_ij`
the number of arrivals at `j`. (The time spent relaxing from the saddle into the ball,
`O(log 1/D)`, is small against `1/k`.)

**Noise levels.** `D = D0·ε`, with `D0` chosen so that the slowest attractor's lowest barrier
(`max_i min_j B_ij`) is 4 at `ε = 1`; barriers scale as `1/ε`. At each `D` the network is
rebuilt from the same fixed points (`attractors=`, `saddles=`; uphill legs on a fixed grid of
`--nodes 101`, several times cheaper than `nj.Refine`), and its `rates` are compared with the
simulated `k̂_ij` for every hop with at least `--min-count` simulated arrivals.

**Also measured:** the Euler–Maruyama step (`dt` halved once, one start, one noise level);
and the mean first-passage time between the two diagonally opposite attractors (the analogue
of the paper's `X0 = (3, 0.1) → X1 = (0.1, 3)`, which must pass through an intermediate
attractor), simulated to the end (every path arrives), against
`net.mean_first_passage_times()` and against the Markov chain of the *simulated* rates.

The measured tables are in examples/RATES.md ("A network of four attractors").
"""

import argparse
import math
import sys
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

import noether_jax as nj

jax.config.update("jax_enable_x64", True)

GAIN = 2.5
BIAS = (0.1, 0.05)
SYSTEMS = {"gradient": 0.0, "rotating": 0.2}  # g, the antisymmetric coupling
RADIUS = 0.5
BOX_CENTER, BOX_SCALE = jnp.zeros(2), jnp.array([4.0, 4.0])


def say(msg):
    print(f"[network-rates] {msg}", file=sys.stderr, flush=True)


def make_net(g: float) -> nj.CTRNN:
    return nj.CTRNN(jnp.array([[GAIN, -g], [g, GAIN]]), jnp.asarray(BIAS))


def fixed_points(net):
    """The attractors (sorted by angle, anticlockwise from the (+, +) quadrant) and index-1
    saddles of the CTRNN, found once (they do not depend on `D`)."""
    sde = nj.SDE(nj.ctrnn_drift, 1.0)
    fps = nj.find_fixed_points(sde, center=BOX_CENTER, scale=BOX_SCALE, args=net,
                               num_starts=128, key=jax.random.key(0))
    att, sad = np.asarray(fps.stable.xs), np.asarray(fps.saddles(index=1).xs)
    order = np.argsort(np.mod(np.arctan2(att[:, 1], att[:, 0]), 2 * np.pi))
    return jnp.asarray(att[order]), jnp.asarray(sad)


def network(net, D, att, sad, n_nodes=None):
    sde = nj.SDE(nj.ctrnn_drift, D)
    return nj.transition_network(sde, center=BOX_CENTER, scale=BOX_SCALE, args=net,
                                 attractors=att, saddles=sad, n_nodes=n_nodes)


# ---------------------------------------------------------------------------------------------
# Simulation.


@eqx.filter_jit
def _first_passage(key, net, x0, targets, radius, D, dt, t_max, n_stop, n_paths: int):
    """`n_paths` Euler–Maruyama paths from `x0`, each frozen (clock stopped) on first entering
    the ball of `radius` around one of `targets`. Ends when `n_stop` paths have arrived, or
    at `t_max`. Returns each path's clock `τ` and the index of the target reached (−1: none)."""
    field = jax.vmap(nj.ctrnn_drift, in_axes=(None, 0, None))

    def arrived(z):
        d2 = jnp.sum((z[:, None, :] - targets[None]) ** 2, axis=-1)
        return jnp.any(d2 < radius**2, axis=1)

    def vf(t, state, args):
        z, _ = state
        live = 1.0 - arrived(z).astype(z.dtype)
        return field(t, z, net) * live[:, None], live

    def noise(t, state, args):
        z, tau = state
        live = 1.0 - arrived(z).astype(z.dtype)
        amp = jnp.sqrt(2 * D) * live[:, None] * jnp.ones_like(z)
        return lx.DiagonalLinearOperator((amp, jnp.zeros_like(tau)))

    d = x0.shape[0]
    shape = (jax.ShapeDtypeStruct((n_paths, d), x0.dtype),
             jax.ShapeDtypeStruct((n_paths,), x0.dtype))
    bm = diffrax.UnsafeBrownianPath(shape=shape, key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(vf), diffrax.ControlTerm(noise, bm))
    enough = diffrax.Event(lambda t, s, args, **kw: jnp.sum(arrived(s[0])) >= n_stop)
    s0 = (jnp.broadcast_to(x0, (n_paths, d)), jnp.zeros((n_paths,), x0.dtype))
    sol = diffrax.diffeqsolve(
        terms, diffrax.Euler(), 0.0, t_max, dt, s0, event=enough,
        saveat=diffrax.SaveAt(t1=True), max_steps=None, throw=False,
        adjoint=diffrax.ForwardMode(),  # forward only (UnsafeBrownianPath)
    )
    z, tau = sol.ys[0][-1], sol.ys[1][-1]
    d2 = jnp.sum((z[:, None, :] - targets[None]) ** 2, axis=-1)
    which = jnp.where(jnp.min(d2, axis=1) < radius**2, jnp.argmin(d2, axis=1), -1)
    return tau, which


def simulate_exits(net, att, i, D, *, n_paths, dt, fraction, seed, t_max=1e7):
    """Empirical escape rates from attractor `i` into the balls around the others (type-II
    censored maximum likelihood). Returns `(k, counts, total_time)` with `k[j]`, `counts[j]`
    over all attractors (`k[i] = 0`)."""
    others = [j for j in range(att.shape[0]) if j != i]
    tau, which = _first_passage(
        jax.random.key(seed), net, att[i], att[jnp.asarray(others)], jnp.asarray(RADIUS),
        jnp.asarray(D), jnp.asarray(dt), jnp.asarray(t_max),
        jnp.asarray(math.ceil(fraction * n_paths)), n_paths,
    )
    which = np.asarray(which)
    total = float(jnp.sum(tau))
    counts = np.zeros(att.shape[0], int)
    for m, j in enumerate(others):
        counts[j] = int(np.sum(which == m))
    return counts / total, counts, total


def simulate_mfpt(net, att, i, j, D, *, n_paths, dt, seed, t_max=1e7):
    """First-passage times from attractor `i` into the ball around `j` (every path run to
    arrival): mean and its standard error."""
    tau, which = _first_passage(
        jax.random.key(seed), net, att[i], att[j][None], jnp.asarray(RADIUS), jnp.asarray(D),
        jnp.asarray(dt), jnp.asarray(t_max), jnp.asarray(n_paths), n_paths,
    )
    tau = np.asarray(tau)
    if not np.all(np.asarray(which) >= 0):
        raise RuntimeError("not every path arrived by t_max")
    return float(tau.mean()), float(tau.std(ddof=1) / math.sqrt(n_paths))


def chain_mfpt(k, i, j):
    """Mean first-passage time `i → j` of the Markov chain with off-diagonal rates `k`."""
    n = k.shape[0]
    rest = [x for x in range(n) if x != j]
    R = k[np.ix_(rest, rest)]
    q = k[rest].sum(axis=1)
    tau = np.linalg.solve(np.diag(q) - R, np.ones(len(rest)))
    return float(tau[rest.index(i)])


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="one noise level, few paths, no time-step and MFPT checks")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--eps", type=float, nargs="+", default=None,
                    help="noise levels D = D0·ε (default 1 0.75 0.6; --quick: 1)")
    ap.add_argument("--paths", type=int, default=None, help="paths per start (default 1000; "
                    "--quick: 300)")
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--fraction", type=float, default=0.6)
    ap.add_argument("--min-count", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=101,
                    help="n_nodes of the uphill solves (default 101, a fixed grid; 0: nj.Refine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", action="store_true",
                    help="save network_rates.png in "
                    "noether_jax_out/examples/network_rates_vs_simulation/")
    a = ap.parse_args(argv)
    a.nodes = a.nodes or None
    eps = a.eps or ([1.0] if a.quick else [1.0, 0.75, 0.6])
    n_paths = a.paths or (300 if a.quick else 1000)
    t_start = time.perf_counter()

    rows, records = [], {}
    for name in a.systems:
        net = make_net(SYSTEMS[name])
        say(f"{name}: fixed points")
        att, sad = fixed_points(net)
        say(f"{name}: network at D = 1 (barriers Ŝ₁)")
        t0 = time.perf_counter()
        net1 = network(net, 1.0, att, sad, a.nodes)
        say(f"{name}: network built in {time.perf_counter() - t0:.0f} s")
        # D0: the slowest attractor's lowest barrier is 4 at ε = 1.
        D0 = float(np.max(np.min(np.asarray(net1.barriers), axis=1))) / 4.0
        print(f"\n## {name} (g = {SYSTEMS[name]}), D0 = {D0:.5f}\n")
        print(net1.table())
        for e in eps:
            D = D0 * e
            say(f"{name}: ε = {e:g} (D = {D:.5f}): network")
            nw = network(net, D, att, sad, a.nodes)
            k_pred = np.asarray(nw.rates)
            print(f"\n### {name}, ε = {e:g}, D = {D:.5f}\n")
            print("barriers\n", np.asarray(nw.barriers).round(4))
            print("rates\n", k_pred)
            print("mean first-passage times\n", np.asarray(nw.mean_first_passage_times()))
            print("occupation", np.asarray(nw.occupation()))
            k_sim = np.zeros_like(k_pred)
            counts = np.zeros(k_pred.shape, int)
            for i in range(att.shape[0]):
                t0 = time.perf_counter()
                k_sim[i], counts[i], total = simulate_exits(
                    net, att, i, D, n_paths=n_paths, dt=a.dt, fraction=a.fraction,
                    seed=a.seed + 1000 * i + int(100 * e))
                say(f"{name}: ε = {e:g}: from #{i}: arrivals {counts[i].tolist()}, "
                    f"{time.perf_counter() - t0:.0f} s")
                for j in range(att.shape[0]):
                    if j != i and counts[i, j] >= a.min_count:
                        rows.append((name, e, D, i, j, float(nw.barriers[i, j]),
                                     k_pred[i, j], k_sim[i, j], counts[i, j]))
            records[(name, e)] = dict(net=nw, att=att, k_sim=k_sim, k_pred=k_pred,
                                      counts=counts, D=D)

    print("\n## Rates: predicted (nj.transition_network) against simulated\n")
    print(f"{n_paths} paths per start, Euler–Maruyama dt = {a.dt}, stop at "
          f"{a.fraction:.0%} arrived, ball radius {RADIUS}\n")
    print("| system | ε | D | i→j | barrier | k predicted | k simulated ± s.e. | "
          "log(sim/pred) ± s.e. |")
    print("|---|---|---|---|---|---|---|---|")
    for name, e, D, i, j, B, kp, ks, n in rows:
        se = 1 / math.sqrt(n)
        lr = math.log(ks / kp) if kp > 0 and math.isfinite(kp) else float("nan")
        print(f"| {name} | {e:g} | {D:.4f} | {i}→{j} | {B:.3f} | {kp:.4g} | "
              f"{ks:.4g} ± {ks * se:.2g} | {lr:+.3f} ± {se:.3f} |")

    if not a.quick:
        name, e = a.systems[-1], min(eps)
        r = records[(name, e)]
        net = make_net(SYSTEMS[name])
        i = int(np.argmax(r["k_sim"].sum(axis=1)))  # the cheapest start
        say(f"time step: {name}, ε = {e:g}, from #{i}, dt = {a.dt / 2:g}")
        k_half, c_half, _ = simulate_exits(net, r["att"], i, r["D"], n_paths=n_paths,
                                           dt=a.dt / 2, fraction=a.fraction,
                                           seed=a.seed + 77)
        q, qh = r["k_sim"][i].sum(), k_half.sum()
        n, nh = r["counts"][i].sum(), c_half.sum()
        print(f"\n## Euler–Maruyama step ({name}, ε = {e:g}, from #{i}, total escape rate)\n")
        print(f"dt = {a.dt:g}: q = {q:.5g} ± {q / math.sqrt(n):.2g}; dt = {a.dt / 2:g}: "
              f"q = {qh:.5g} ± {qh / math.sqrt(nh):.2g}; log ratio {math.log(qh / q):+.3f} "
              f"± {math.sqrt(1 / n + 1 / nh):.3f}")

        print("\n## Mean first-passage time between the opposite attractors #0 → #2\n")
        print("| system | ε | τ predicted (network) | τ chain of simulated rates | "
              "τ simulated ± s.e. | log(sim/pred) |")
        print("|---|---|---|---|---|---|")
        for name in a.systems:
            e = max(eps)
            r = records[(name, e)]
            net = make_net(SYSTEMS[name])
            say(f"MFPT #0 → #2: {name}, ε = {e:g}")
            tp = float(r["net"].mean_first_passage_times()[0, 2])
            tc = chain_mfpt(r["k_sim"], 0, 2)
            ts, se = simulate_mfpt(net, r["att"], 0, 2, r["D"], n_paths=max(n_paths // 3, 100),
                                   dt=a.dt, seed=a.seed + 99)
            print(f"| {name} | {e:g} | {tp:.4g} | {tc:.4g} | {ts:.4g} ± {se:.2g} | "
                  f"{math.log(ts / tp):+.3f} |")

    print(f"\nwall time {time.perf_counter() - t_start:.0f} s")
    if a.figure:
        _figure(records)


def _figure(records):
    import pathlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for (name, e), r in records.items():
        ok = (r["counts"] > 0) & (r["k_pred"] > 0)
        ax.loglog(r["k_pred"][ok], r["k_sim"][ok], "o" if name == "gradient" else "s",
                  label=f"{name}, ε = {e:g}")
    lim = ax.get_xlim()
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set(xlabel="k predicted (nj.transition_network)", ylabel="k simulated",
           title="Escape rates of the 4-attractor CTRNN")
    ax.legend(fontsize=7)
    out = pathlib.Path("noether_jax_out/examples/network_rates_vs_simulation")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "network_rates.png", dpi=110)


if __name__ == "__main__":
    main()
