"""`noether-jax network`: the network of attractors of a user's `nj.SDE` in a box (the
attractors, the saddles that join them, barriers, rates, mean first-passage times and
routes), printed as a table, drawn as a figure and written as JSON. Plotting lives here,
never in the core."""

import argparse
import json
import pathlib
import sys
import time

from ._main import (
    PROG,
    CLIError,
    _args_from_json,
    _get_sde,
    _load_module,
    _parse_numbers,
    _precision,
)

_EPILOG = """\
outputs (in DIR): network_NAME.png (the network over the drift), network_NAME.json
(every number: attractors, saddles, joins, uphill legs, barriers, rates, mean
first-passage times, occupations and the route between every pair of attractors).

example (my_mb.py defines sde = nj.SDE(drift, 0.1), a Mueller-Brown drift):
  noether-jax network my_mb.py:sde --center -0.5,0.75 --scale 1.25,1"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "network",
        help="the attractors of your nj.SDE in a box, the saddles joining them, barriers, "
        "rates and routes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Find the fixed points of an nj.SDE's drift in the box CENTER ± SCALE, follow the
unstable manifold of every index-1 saddle to the attractors it joins, solve the
uphill legs (geometric action) and compute the escape rates, the mean first-passage
times and the stationary occupations of the Markov chain between the attractors
(nj.transition_network). Prints a table; writes a figure and a JSON file. Exits
with 1 if some uphill leg did not converge (the outputs are still written).

NAME is an nj.SDE in the file, or a function of no arguments returning one. The
drift is called as drift(t, x, args), with args from --args (JSON; lists of
numbers become arrays).""",
        epilog=_EPILOG,
    )
    parser.add_argument("system", metavar="FILE.py:NAME", help="where the nj.SDE is")
    parser.add_argument("--center", required=True, metavar="A,B,...",
                        help="centre of the search box, one number per coordinate")
    parser.add_argument("--scale", required=True, metavar="A,B,...",
                        help="half-widths of the box: one number, or one per coordinate")
    parser.add_argument("--args", metavar="JSON",
                        help="the drift's args as JSON, e.g. 10 or '{\"beta\": 10}'")
    parser.add_argument("--num-starts", type=int, default=256, metavar="N",
                        help="starting points of the fixed-point search (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of those starts (default 0)")
    parser.add_argument("--n-nodes", type=int, default=None, metavar="N",
                        help="nodes of each uphill leg on a fixed grid (default: refinement "
                        "101 -> 201 -> 401 nodes with an error estimate per barrier)")
    parser.add_argument("--out", default="noether_jax_out/network", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--float32", action="store_true",
                        help="single precision (default: float64)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.set_defaults(handler=_network)
    return parser


def _network(ns: argparse.Namespace) -> int:
    spec = ns.system
    if ":" not in spec:
        raise CLIError(f"expected FILE.py:NAME, got {spec!r} (e.g. my_system.py:sde).")
    file_text, name = spec.rsplit(":", 1)
    if not name.isidentifier():
        raise CLIError(f"{name!r} (after the colon in {spec!r}) is not a Python name.")
    center = _parse_numbers(ns.center, "--center")
    scale = _parse_numbers(ns.scale, "--scale")
    if len(scale) not in (1, len(center)):
        raise CLIError(
            f"--scale has {len(scale)} numbers and --center {len(center)}: give one half-width, "
            "or one per coordinate."
        )
    if any(not v > 0 for v in scale):
        raise CLIError(f"--scale: the half-widths must be positive, got {ns.scale}.")
    for option in ("num_starts", "n_nodes"):
        value = getattr(ns, option)
        low = 3 if option == "n_nodes" else 1
        if value is not None and value < low:
            raise CLIError(f"--{option.replace('_', '-')} must be at least {low}.")
    try:
        user_args = None if ns.args is None else json.loads(ns.args)
    except json.JSONDecodeError as e:
        raise CLIError(f"--args: not valid JSON ({e}): {ns.args!r}.") from None
    with _precision(not ns.float32):
        return _run(ns, pathlib.Path(file_text), name, center, scale, user_args)


def _run(ns, file: pathlib.Path, name: str, center, scale, user_args) -> int:
    import jax
    import jax.numpy as jnp

    from noether_jax import transition_network
    from noether_jax._progress import Progress

    from ._cases._common import jsonable

    module = _load_module(file)
    sde = _get_sde(module, file, name)
    args = _args_from_json(user_args)
    dtype = jnp.float32 if ns.float32 else jnp.float64
    c = jnp.asarray(center, dtype)
    s = jnp.broadcast_to(jnp.asarray(scale, dtype), c.shape)
    label = f"{file.name}:{name}"
    start = time.perf_counter()
    try:
        net = transition_network(
            sde, center=c, scale=s, args=args, key=jax.random.key(ns.seed),
            num_starts=ns.num_starts, n_nodes=ns.n_nodes,
            progress=Progress("network", quiet=ns.quiet),
        )
    except ValueError as e:  # no attractor in the box, a drift of the wrong shape, ...
        raise CLIError(str(e)) from None
    routes = _all_routes(net)
    seconds = time.perf_counter() - start

    print(f"{label}: d = {c.shape[0]}, {jnp.dtype(dtype).name}, {seconds:.1f} s")
    print(net.table())
    if routes:
        print("\nroutes of least action (Σ of the uphill legs' Ŝ; rate = 1/τ of the chain)")
        for r in routes:
            via = " → ".join(str(a) for a in r["attractors"])
            text = f"  {r['start']} → {r['end']}: via {via}, action "
            text += f"{r['action']:.6g}" if r["converged"] else f"unknown ({r['message']})"
            text += f", rate {r['rate']:.4g}"
            print(text)

    out = pathlib.Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    fig_file = out / f"network_{name}.png"
    json_file = out / f"network_{name}.json"
    plot_network(fig_file, net, sde, args, label=label)
    legs = [
        {
            "from": int(a), "saddle": int(sd), "to": int(b), "action": act,
            "converged": bool(ok), "result": _result_text(net, i),
            "rate": rate, "prefactor": pref,
        }
        for i, (a, sd, b, act, ok, rate, pref) in enumerate(zip(
            net.leg_attractor.tolist(), net.leg_saddle.tolist(), net.leg_target.tolist(),
            net.leg_actions.tolist(), net.leg_converged.tolist(), net.leg_rates.tolist(),
            net.leg_prefactors.tolist(),
        ))
    ]
    data = {
        "system": label,
        "dtype": jnp.dtype(dtype).name,
        "center": c, "scale": s, "args": user_args,
        "num_starts": ns.num_starts, "seed": ns.seed,
        "n_nodes": ns.n_nodes, "refined": ns.n_nodes is None,
        "seconds": seconds,
        "attractors": net.attractors,
        "saddles": net.saddles,
        "joins": net.joins,
        "join_notes": list(net.join_notes),
        "legs": legs,
        "barriers": net.barriers,
        "saddle_of": net.saddle_of,
        "rates": net.rates,
        "rate_note": net.rate_note,
        "mean_first_passage_times": net.mean_first_passage_times(),
        "occupation": net.occupation(),
        "components": net.components(),
        "routes": routes,
    }
    # Python's JSON writes inf/NaN as Infinity/NaN (read back by json.loads), like `path`.
    json_file.write_text(json.dumps(jsonable(data), indent=2) + "\n", encoding="utf-8")
    print(f"figure: {fig_file}\njson: {json_file}")
    failed = [leg for leg in legs if not leg["converged"]]
    if failed:
        print(f"{PROG} network: error: {len(failed)} uphill leg(s) did not converge: "
              + "; ".join(f"{f['from']} → saddle {f['saddle']}: {f['result']}" for f in failed),
              file=sys.stderr)
        return 1
    return 0


def _result_text(net, i: int) -> str:
    """The name of leg `i`'s `nj.RESULTS` code (e.g. `successful`, `max_steps_reached`)."""
    import noether_jax as nj

    code = int(net.uphill.result._value[i])
    names = [k for k, v in nj.RESULTS._name_to_item.items() if int(v._value) == code]
    return names[0] if names else str(code)


def _all_routes(net) -> list[dict]:
    """The route between every ordered pair of attractors in the same component."""
    routes = []
    for comp in net.components():
        for i in comp:
            for j in comp:
                if i == j:
                    continue
                r = net.route(i, j)
                routes.append({
                    "start": i, "end": j, "attractors": list(r.attractors),
                    "saddles": list(r.saddles), "action": float(r.action),
                    "leg_actions": [float(leg.action) for leg in r.legs],
                    "converged": bool(r.converged), "failed_leg": r.failed_leg,
                    "message": r.message, "mfpt": float(r.mfpt), "rate": float(r.rate),
                })
    return routes


def plot_network(file: pathlib.Path, net, sde, args, *, label: str = "") -> None:
    """Draw the network: attractors (dots), saddles (crosses), uphill legs (solid, labelled
    with their action Ŝ) and downhill legs (dashed) over the drift (a quiver in 2-D; the
    drift itself against x in 1-D). In more dimensions the first two coordinates are drawn
    (the quiver then takes the others at the box's centre)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    c = np.asarray(net.center)
    s = np.asarray(net.scale)
    d = c.shape[0]
    A = np.asarray(net.attractors)
    S = np.asarray(net.saddles)
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.subplots()
    f = lambda x: sde.f(jnp.zeros((), x.dtype), x, args)
    if d == 1:
        xs = np.linspace(c[0] - s[0], c[0] + s[0], 401)
        fx = np.asarray(jax.vmap(f)(jnp.asarray(xs)[:, None]))[:, 0]
        ax.plot(xs, fx, "0.4", lw=1, label="drift f(x)")
        ax.axhline(0.0, color="0.7", lw=0.8)
        ax.plot(A[:, 0], np.zeros(len(A)), "o", color="C0", ms=9, label="attractors")
        if len(S):
            ax.plot(S[:, 0], np.zeros(len(S)), "x", color="C3", ms=10, mew=2, label="saddles")
        for l, (a, sd) in enumerate(zip(net.leg_attractor.tolist(), net.leg_saddle.tolist())):
            mid = 0.5 * (A[a, 0] + S[sd, 0])
            ax.annotate(f"a{a}→s{sd}: Ŝ={float(net.leg_actions[l]):.3g}", (mid, 0.0),
                        xytext=(0, 8 + 12 * (l % 2)), textcoords="offset points", ha="center",
                        fontsize=8, color="C2")
        ax.set(xlabel="x", ylabel="f(x)")
    else:
        n = 25
        gx, gy = np.meshgrid(np.linspace(c[0] - s[0], c[0] + s[0], n),
                             np.linspace(c[1] - s[1], c[1] + s[1], n))
        pts = np.tile(c, (n * n, 1))
        pts[:, 0], pts[:, 1] = gx.ravel(), gy.ravel()
        F = np.asarray(jax.vmap(f)(jnp.asarray(pts, net.center.dtype)))
        u, v = F[:, 0], F[:, 1]
        speed = np.hypot(u, v)
        # Directions only (unit arrows, shaded by speed): drifts vary over decades.
        norm = np.where(speed > 0, speed, 1.0)
        ax.quiver(gx, gy, (u / norm).reshape(n, n), (v / norm).reshape(n, n),
                  np.log10(np.where(speed > 0, speed, np.nan)).reshape(n, n),
                  cmap="Greys", alpha=0.5, angles="xy", pivot="mid")
        for l, (a, sd) in enumerate(zip(net.leg_attractor.tolist(), net.leg_saddle.tolist())):
            xs = np.asarray(net.uphill.xs[l])
            ok = bool(net.leg_converged[l])
            ax.plot(xs[:, 0], xs[:, 1], "-" if ok else ":", color=f"C{l % 10}", lw=2)
            mid = xs[len(xs) // 2]
            ax.annotate(f"a{a}→s{sd}: Ŝ={float(net.leg_actions[l]):.3g}"
                        + ("" if ok else " (failed)"),
                        (mid[0], mid[1]), xytext=(4, 4), textcoords="offset points",
                        fontsize=8, color=f"C{l % 10}")
        for sd, man in enumerate(net.manifolds):
            for branch in (man.plus, man.minus):
                xs = np.asarray(branch.xs)
                ax.plot(xs[:, 0], xs[:, 1], "--", color="k", lw=1)
        ax.plot(A[:, 0], A[:, 1], "o", color="C0", ms=9, label="attractors")
        if len(S):
            ax.plot(S[:, 0], S[:, 1], "x", color="C3", ms=10, mew=2, label="saddles")
        ax.plot([], [], "-", color="C0", label="uphill legs (Ŝ)")
        ax.plot([], [], "--", color="k", label="downhill legs")
        ax.set(xlabel="x[0]", ylabel="x[1]",
               xlim=(c[0] - s[0], c[0] + s[0]), ylim=(c[1] - s[1], c[1] + s[1]))
    for i, a in enumerate(A):
        ax.annotate(f"a{i}", (a[0], a[1] if d > 1 else 0.0), xytext=(-14, -14),
                    textcoords="offset points", fontsize=10, weight="bold")
    for j, x in enumerate(S):
        ax.annotate(f"s{j}", (x[0], x[1] if d > 1 else 0.0), xytext=(6, -14),
                    textcoords="offset points", fontsize=10, color="C3")
    ax.set_title(f"{label}: {len(A)} attractor(s), {len(S)} saddle(s)".strip(": "))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(file, dpi=110)
