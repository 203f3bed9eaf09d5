"""The solver core's promises, measured in one run (it prints numbers and asserts nothing;
the test suite asserts): resolution-invariant stopping at 10⁶ nodes against a closed form,
derivatives in both modes and to second order against central differences, optimistix
minimisers on fixed-time and geometric problems (and a saddle point of the action reported
as such), the Onsager–Machlup quasi-energy, import isolation, and three bad inputs.

    python benchmarks/solver_core_checks.py      # about a minute on 2 cores
"""

import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

import noether_jax as nj  # noqa: E402


def ou_closed_form(x0, x1, T):
    """`f = −x`, `D = 1`: `S = Σ (x1 − x0 e^{−T})² / (2 (1 − e^{−2T}))`."""
    e = np.exp(-T)
    return float(np.sum((np.asarray(x1) - np.asarray(x0) * e) ** 2) / (2 * (1 - e * e)))


def ms(t, x, beta):
    return jnp.stack([x[0] - x[0] ** 3 - beta * x[0] * x[1] ** 2, -(1 + x[0] ** 2) * x[1]])


def error_of(fn):
    try:
        fn()
        return "no error!"
    except Exception as e:  # noqa: BLE001 - the message is what is reported
        return f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"


def main():
    ou = nj.SDE(lambda t, x, a: -x, 1.0)
    a, b = jnp.array([-2.0, 2.0]), jnp.array([2.0, 2.0])
    for T, n in ((1.0, 1_000_001), (0.01, 10_001)):
        t = time.perf_counter()
        sol = nj.minimize_action(ou, a, b, 0.0, T, n_nodes=n, throw=False)
        ref = ou_closed_form(a, b, T)
        print(f"[stopping rule] OU T={T} n={n}: S={float(sol.action):.6f} closed form "
              f"{ref:.6f}, rel. error {abs(float(sol.action) - ref) / ref:.1e}, converged "
              f"{bool(sol.converged)}, {int(sol.stats['num_steps'])} steps, "
              f"{time.perf_counter() - t:.1f} s")

    sde = nj.SDE(ms, 0.1)
    x0, x1, beta = jnp.array([-1.0, 0.0]), jnp.array([0.8, 0.3]), 10.0

    def S(beta, x1=x1):
        return nj.minimize_action(sde, x0, x1, 0.0, 10.0, n_nodes=101, args=beta,
                                  candidates=None).action

    rev, fwd = jax.grad(S)(beta), jax.jacfwd(S)(beta)
    _, tan = jax.jvp(S, (beta,), (1.0,))
    h = 1e-4
    fd = (S(beta + h) - S(beta - h)) / (2 * h)
    print(f"[derivatives] dS/dβ: grad {float(rev):.10f}, jacfwd {float(fwd):.10f}, jvp "
          f"{float(tan):.10f}, central difference {float(fd):.10f} (rel. "
          f"{abs(float(rev - fd) / float(fd)):.1e})")
    h2 = 1e-3
    fd2 = (S(beta + h2) - 2 * S(beta) + S(beta - h2)) / h2**2
    hess = jax.hessian(S)(beta)
    print(f"[derivatives] d²S/dβ²: hessian {float(hess):.8f}, second difference "
          f"{float(fd2):.8f} (rel. {abs(float(hess - fd2) / float(fd2)):.1e})")
    gx = jax.jacrev(lambda y: S(beta, x1=y))(x1)
    fdx = np.array([(S(beta, x1=x1 + h * e) - S(beta, x1=x1 - h * e)) / (2 * h)
                    for e in jnp.eye(2)])
    print(f"[derivatives] dS/dx1 (jacrev) rel. error "
          f"{np.max(np.abs(np.asarray(gx) - fdx)) / np.max(np.abs(fdx)):.1e}")

    y1, saddle = jnp.array([-0.3, 0.2]), jnp.array([0.0, 0.0])
    ref = nj.minimize_action(sde, x0, x1, 0.0, 10.0, n_nodes=51, args=beta, candidates=None)
    gref = nj.minimize_geometric_action(sde, x0, y1, n_nodes=41, args=beta)
    for name, solver in (("optx.BFGS", optx.BFGS(rtol=1e-10, atol=1e-10)),
                         ("optx.NonlinearCG", optx.NonlinearCG(rtol=1e-10, atol=1e-10))):
        kw = dict(args=beta, solver=solver, max_steps=20000, throw=False)
        s = nj.minimize_action(sde, x0, x1, 0.0, 10.0, n_nodes=51, candidates=None, **kw)
        g = nj.minimize_geometric_action(sde, x0, y1, n_nodes=41, **kw)
        ax = nj.minimize_geometric_action(sde, x0, saddle, n_nodes=41, **kw)
        print(f"[solver=] {name}: fixed-time |ΔS| {abs(float(s.action - ref.action)):.1e} "
              f"(converged {bool(s.converged)}), geometric |ΔS| "
              f"{abs(float(g.action - gref.action)):.1e} (converged {bool(g.converged)}); "
              f"on the axis to the saddle S = {float(ax.action):.4f}, "
              f"saddle_point {bool(ax.result == nj.RESULTS.saddle_point)}, "
              f"converged {bool(ax.converged)}")

    om = nj.minimize_action(sde, x0, x1, 0.0, 10.0, n_nodes=401, args=beta,
                            action=nj.OnsagerMachlup(), candidates=None)
    E = nj.energy(sde, om, beta)
    print(f"[OM energy] relative variation along a 401-node OM path: "
          f"{float((E.max() - E.min()) / jnp.abs(E).mean()):.1e}")

    code = ("import sys, noether_jax; print(sorted(m for m in "
            "('matplotlib', 'scipy', 'noether_jax.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    print("[imports] heavy modules loaded by `import noether_jax`:", out.stdout.strip())

    print("[bad input] complex init:", error_of(lambda: nj.minimize_action(
        sde, x0, x1, 0.0, 10.0, args=beta, init=jnp.zeros((51, 2), jnp.complex128))))
    print("[bad input] Rotations(3) for d = 2:",
          error_of(lambda: nj.find_symmetries(sde, nj.Rotations(3), args=beta)))
    print("[bad input] NaN args:",
          error_of(lambda: nj.find_symmetries(sde, nj.Rotations(2), args=jnp.nan)))


if __name__ == "__main__":
    main()
