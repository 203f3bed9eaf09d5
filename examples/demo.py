"""noether_jax demo: most likely paths, their action and their Noether charges.

    python examples/demo.py [--out DIR]

1. A 2-D Ornstein–Uhlenbeck process (`f = −x`, `D = 1`) from (−2, 2) to (2, 2) in T = 1 and
   T = 10: the action against the closed form, and the conserved quasi-energy and
   quasi-angular momentum (the drift and noise are rotation symmetric).
2. The Maier–Stein system (β = 10, non-gradient), a batch of 256 endpoints solved at once
   with `jax.vmap`, each element with its own convergence flag.
3. Symmetries of the OU system found by autodiff Lie derivatives, and the report of their
   charges along the T = 10 path.
4. The Maier–Stein barrier between its two attractors: fixed points, the uphill leg by the
   geometric (infinite-time) action, the downhill leg by relaxation.
Writes `demo.png` to DIR (default `noether_jax_out/examples/demo/`).
"""

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import noether_jax as nj  # noqa: E402

jax.config.update("jax_enable_x64", True)


def ou_closed_form(x0, x1, T, D=1.0):
    # f = −x: G = D (1 − e^{−2T}) I, S* = ½ |x1 − e^{−T} x0|² / G (docs/conventions.md).
    G = D * (1 - np.exp(-2 * T))
    return 0.5 * np.sum((x1 - np.exp(-T) * x0) ** 2) / G


def maier_stein(t, x, beta):
    return jnp.array([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="noether_jax_out/examples/demo", help="output folder")
    opts = parser.parse_args(argv)
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)

    print("1. Ornstein-Uhlenbeck f = -x, D = 1, from (-2, 2) to (2, 2)")
    ou = nj.SDE(lambda t, x, args: -x, 1.0)
    x0, x1 = jnp.array([-2.0, 2.0]), jnp.array([2.0, 2.0])
    ou_paths = {}
    for T, n in ((1.0, 201), (10.0, 801)):
        t = time.perf_counter()
        sol = nj.minimize_action(ou, x0, x1, 0.0, T, n_nodes=n)
        dt = time.perf_counter() - t
        exact = ou_closed_form(np.asarray(x0), np.asarray(x1), T)
        E = nj.energy(ou, sol)
        L = nj.angular_momentum(ou, sol)[:, 0, 1]
        ou_paths[T] = (sol, E, L)
        print(
            f"   T = {T:4.0f}: S = {float(sol.action):.8f}  closed form {exact:.8f}  "
            f"rel. error {abs(float(sol.action) - exact) / exact:.1e}  "
            f"({int(sol.stats['num_steps'])} Newton steps, {dt:.2f} s incl. compile)"
        )
        print(
            f"            quasi-energy {float(E.mean()):+.6f} (spread {float(jnp.ptp(E)):.1e}), "
            f"angular momentum {float(L.mean()):+.6f} (spread {float(jnp.ptp(L)):.1e})"
        )

    print("2. Maier-Stein, beta = 10, D = 0.1, T = 10: a batch of 256 endpoints")
    ms = nj.SDE(maier_stein, 0.1)
    angles = jnp.linspace(0, 2 * jnp.pi, 256, endpoint=False)
    ends = jnp.stack([0.5 * jnp.cos(angles), 0.5 * jnp.sin(angles)], axis=1) + jnp.array([0.5, 0.0])
    start = jnp.array([-1.0, 0.0])
    batch = jax.jit(
        jax.vmap(lambda b: nj.minimize_action(ms, start, b, 0.0, 10.0, n_nodes=101, args=10.0, throw=False))
    )
    t = time.perf_counter()
    sols = batch(ends)
    sols.action.block_until_ready()
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    sols = batch(ends)
    sols.action.block_until_ready()
    t_run = time.perf_counter() - t
    print(
        f"   {int(sols.converged.sum())}/256 converged; {1e3 * t_run / 256:.2f} ms per path "
        f"(first call with compile {t_first:.1f} s); action from {float(sols.action.min()):.4f} "
        f"to {float(sols.action.max()):.4f}"
    )

    print("3. Symmetries of the OU system (translations and rotations tried)")
    res = nj.find_symmetries(ou, nj.Translations(2) | nj.Rotations(2))
    print("   found: " + ", ".join(g.describe() for g in res.generators)
          + f"; singular values {np.array2string(np.asarray(res.singular_values), precision=2)}")
    report = nj.charge_report(ou, ou_paths[10.0][0], res)
    print("   " + str(report).replace("\n", "\n   "))

    print("4. Maier-Stein barrier, beta = 10, D = 0.1, from (-1, 0) to (1, 0)")
    t = time.perf_counter()
    tr = nj.barrier(ms, jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0]), args=10.0, n_nodes=201)
    print(
        f"   saddle {np.asarray(tr.saddle.x).round(6)}, barrier S = {float(tr.barrier):.6f} "
        f"(= Ŝ/D; rate ∝ exp(-S)), converged {bool(tr.converged)}, "
        f"{time.perf_counter() - t:.1f} s incl. fixed-point search and compile"
    )

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    g = np.linspace(-3, 3, 21)
    X, Y = np.meshgrid(g, g)
    ax.streamplot(X, Y, -X, -Y, color="0.8", density=0.8)
    for T, (sol, _, _) in ou_paths.items():
        ax.plot(sol.xs[:, 0], sol.xs[:, 1], lw=2, label=f"T = {T:g}")
    ax.plot(*x0, "ko"), ax.plot(*x1, "k*", ms=12)
    ax.set(title="OU: most likely paths", xlabel="x", ylabel="y", aspect="equal")
    ax.legend()
    ax = axes[1]
    for T, (sol, E, L) in ou_paths.items():
        s = (sol.ts - sol.ts[0]) / (sol.ts[-1] - sol.ts[0])
        ax.plot(s, E, label=f"quasi-energy, T = {T:g}")
        ax.plot(s, L, "--", label=f"angular momentum, T = {T:g}")
    ax.set(title="OU: conserved charges", xlabel="t / T")
    ax.legend(fontsize=8)
    ax = axes[2]
    g = np.linspace(-1.3, 1.3, 25)
    X, Y = np.meshgrid(g, g)
    U = X - X**3 - 10 * X * Y**2
    V = -(1 + X**2) * Y
    ax.streamplot(X, Y, U, V, color="0.8", density=0.8)
    cmap = plt.get_cmap("viridis")
    amax = float(sols.action.max())
    for i in range(0, 256, 8):
        ax.plot(sols.xs[i, :, 0], sols.xs[i, :, 1], color=cmap(float(sols.action[i]) / amax), lw=1)
    ax.plot(tr.uphill.xs[:, 0], tr.uphill.xs[:, 1], "r", lw=2.5, label="uphill (geometric)")
    ax.plot(tr.downhill.xs[:, 0], tr.downhill.xs[:, 1], "r--", lw=2.5, label="downhill (relaxation)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set(title="Maier-Stein (β = 10): 256 paths, T = 10\n(colour = action) and the barrier path",
           xlabel="x", ylabel="y", aspect="equal")
    fig.tight_layout()
    path = out / "demo.png"
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()
