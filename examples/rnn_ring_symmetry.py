"""Symmetries of recurrent networks: a trained ring attractor, and an equivariant network.

    python examples/rnn_ring_symmetry.py [--out DIR] [--quick] [--d D]

1. A trained network. A CTRNN `f(x) = −x + W tanh(x) + b` (`nj.CTRNN`, d = 8 units) learns to
   remember an angle: started at `r₀ Q u(θ)` (`u(θ) = (cos θ, sin θ)`, `Q` a random
   orthonormal `d × 2` embedding), its readout `Qᵀx` must stay at `u(θ)`. The solution is
   a ring attractor, symmetric under rotations of the angle. `nj.find_symmetries` on the
   trained drift, restricted to the states the network visits (`points=`), with the
   family of all rotations of `R^d` (`nj.Rotations(d)`, isotropic noise), finds how close
   to a symmetry the network is: the singular spectrum, the nearly-conserved generator
   (compared with the rotation `Q J Qᵀ` of the readout plane), and the variation of its
   charge `p·ξ` along the most likely path between two memories (`nj.charge_report`),
   against those of the broken directions. A tanh network is only approximately
   symmetric (the elementwise nonlinearity breaks rotations): its near symmetry has a
   relative breaking of a few percent and its charge is far from constant.
2. A network symmetric by construction: units in pairs, weights `W = A ⊗ I₂ + B ⊗ J₂` that
   commute with the simultaneous rotation of every pair, and the radial nonlinearity
   `φ(z) = z / sqrt(1 + |z|²)` on each pair (equivariant), `b = 0`. The rotation
   `ξ = (I ⊗ J₂) x` is found with a singular value at round-off, and its charge is constant
   along the most likely path to round-off (the midpoint discretisation is a variational
   integrator).

At network scale (`--d 64`): the same task with 64 units (Adam with a cosine-decaying
learning rate from 3e-3), and the search over the whole of `nj.Rotations(64)` (2016
generators, every singular value: `method="auto"` takes the dense search, whose matrices
for an affine family are built by the matrix-free operators), no projection. The noise-free
task states span too few directions (rotations of the others are unconstrained there), so
the points are states visited under noise `D = 0.1` (`noisy_visited_states`), which have
extent in every direction. What it finds (see benchmarks/RESULTS.md): the trained tanh
network has no isolated near symmetry. Its smallest singular values form a dense cluster
near 1e-2 whose directions are generic combinations of rotations (overlap with `Q J Qᵀ` a
few percent), while the readout-plane rotation itself is broken at ~8% at the same states:
the trained network is not close to rotation-equivariant in `R^64`, and no charge is nearly
constant along the path between two memories. The equivariant network of the same size
(32 pairs) has exactly one symmetry among the 2016 rotations, found with a singular value
at round-off (the next at ~2e-3): the simultaneous rotation of every pair, whose charge is
constant to round-off along the most likely path. Both are printed side by side.

Prints the numbers (and, from the command line, wall time, CPU time and peak memory);
writes `rnn_ring_symmetry.png` into DIR (default `noether_jax_out/examples/rnn_ring_symmetry/`).
"""

import argparse
import math
import pathlib
import resource
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

SDE1 = nj.SDE(nj.ctrnn_drift, 1.0)  # isotropic noise: only rotations can be symmetries
J2 = jnp.array([[0.0, -1.0], [1.0, 0.0]])


# --- 1. A trained ring attractor ----------------------------------------------------------


class AngleTask(eqx.Module):
    """Remember an angle: start at `radius · Q u(θ) + noise`, keep `Qᵀx` at `u(θ)` from
    `t_settle` to `t_task`."""

    embed: jax.Array  # Q, (d, 2), orthonormal columns
    angles: jax.Array  # (m,)
    starts: jax.Array  # (m, d)
    t_task: float = eqx.field(static=True, default=20.0)
    t_settle: float = eqx.field(static=True, default=5.0)
    dt: float = eqx.field(static=True, default=0.2)


def make_angle_task(key, d: int, *, batch: int = 16, radius: float = 1.5, jitter: float = 0.2):
    kq, kn = jax.random.split(key)
    Q, _ = jnp.linalg.qr(jax.random.normal(kq, (d, 2)))
    angles = jnp.linspace(0.0, 2 * jnp.pi, batch, endpoint=False)
    u = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    starts = radius * u @ Q.T + jitter * jax.random.normal(kn, (batch, d))
    return AngleTask(Q, angles, starts)


def run_network(net, task, starts=None):
    """Noise-free trajectories (diffrax, fixed steps) from `starts` (default the task's)."""
    starts = task.starts if starts is None else starts
    ts = jnp.arange(0.0, task.t_task + 0.5 * task.dt, task.dt)

    def one(x0):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(nj.ctrnn_drift), dfx.Tsit5(), 0.0, task.t_task, task.dt, x0, args=net,
            saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.ConstantStepSize(),
        )
        return sol.ys

    return ts, jax.vmap(one)(starts)


def angle_loss(net, task):
    ts, xs = run_network(net, task)
    u = jnp.stack([jnp.cos(task.angles), jnp.sin(task.angles)], axis=1)
    err = jnp.sum((xs @ task.embed - u[:, None]) ** 2, axis=-1)
    late = ts >= task.t_settle
    return jnp.sum(jnp.where(late, err, 0.0)) / (jnp.sum(late) * err.shape[0])


def train_ring(key, d: int = 8, *, steps: int = 400, lr=1e-2):
    """Adam on the angle task from a random network (`lr`: a float or an optax schedule).
    Returns `(net, task, losses)`."""
    k_task, k_net = jax.random.split(key)
    task = make_angle_task(k_task, d)
    net = nj.CTRNN.random(k_net, d, gain=0.8)
    optimizer = optax.adam(lr)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit
    def step(net, opt_state):
        loss, grads = eqx.filter_value_and_grad(angle_loss)(net, task)
        updates, opt_state = optimizer.update(grads, opt_state, net)
        return eqx.apply_updates(net, updates), opt_state, loss

    losses = []
    for _ in range(steps):
        net, opt_state, loss = step(net, opt_state)
        losses.append(float(loss))
    return net, task, losses


def visited_states(net, task, *, num: int = 96):
    """States the network visits doing the task: points of its trajectories, from every
    angle of the task, spread over the whole duration."""
    _, xs = run_network(net, task)
    idx = jnp.linspace(0, xs.shape[1] - 1, num // xs.shape[0] + 1).astype(int)
    return xs[:, idx].reshape(-1, xs.shape[-1])


def noisy_visited_states(net, task, key, *, noise: float = 0.1, num: int = 112,
                         t: float = 5.0, dt: float = 0.05):
    """States the network visits under noise: `num` of its noise-free task states, each
    then run for a time `t` under `dx = f dt + sqrt(2 · noise) dW` (Euler–Maruyama). Unlike
    the noise-free states (which hug a low-dimensional set), they have extent in every
    direction of `R^d`, so a rotation of directions the task never visits is constrained,
    not free: the search over all of `nj.Rotations(d)` needs no projection."""
    k_pick, k_noise = jax.random.split(key)
    x = visited_states(net, task)
    x = x[jax.random.choice(k_pick, x.shape[0], (num,))]
    drift = jax.vmap(lambda y: nj.ctrnn_drift(0.0, y, net))

    def step(x, k):
        return x + dt * drift(x) + jnp.sqrt(2 * noise * dt) * jax.random.normal(k, x.shape), None

    x, _ = jax.lax.scan(step, x, jax.random.split(k_noise, round(t / dt)))
    return x


def memory_state(net, task, angle):
    """Where the network holds `angle` at the end of the task (noise-free)."""
    start = 1.5 * task.embed @ jnp.array([jnp.cos(angle), jnp.sin(angle)])
    _, xs = run_network(net, task, start[None])
    return xs[0, -1]


def skew_of(generator, d: int):
    """The skew matrix `A` of a linear generator `ξ(x) = A x`."""
    return jax.jacfwd(generator)(jnp.zeros(d))


def plane_rotation(Q):
    """`Q J Qᵀ`: the unit rotation of the plane spanned by the columns of `Q`."""
    return Q @ J2 @ Q.T


def generator_overlap(A, B):
    """`|⟨A, B⟩| / (|A| |B|)` (Frobenius): 1 if the two generators are parallel."""
    return float(jnp.abs(jnp.sum(A * B)) / (jnp.linalg.norm(A) * jnp.linalg.norm(B)))


class SubspaceRotation(eqx.Module):
    """`ξ(x) = M (x − c)`: a rotation (`M = −Mᵀ`) about the centre `c` (arrays, so a new
    matrix does not recompile the symmetry search)."""

    M: jax.Array
    c: jax.Array

    def __call__(self, x):
        return self.M @ (x - self.c)


def principal_rotations(points, r: int = 3) -> nj.VectorFieldBasis:
    """The rotations of the `r` principal directions of `points` about their mean:
    `P E_ij Pᵀ (x − c)` (`P`: the top `r` right singular vectors of the centred points,
    `E_ij = e_j e_iᵀ − e_i e_jᵀ`). A symmetry search restricted to the subspace the network
    actually visits: rotations of directions it never visits are unconstrained by the data
    (`[ξ, f] ≈ 0` trivially where `x` has no extent), so in the full `nj.Rotations(d)` they
    look like near-symmetries."""
    c = jnp.mean(points, axis=0)
    _, _, Vt = jnp.linalg.svd(points - c, full_matrices=False)
    P = Vt[:r].T
    fields, names = [], []
    for i in range(r):
        for j in range(i + 1, r):
            E = jnp.zeros((r, r)).at[j, i].set(1.0).at[i, j].set(-1.0)
            fields.append(SubspaceRotation(P @ E @ P.T, c))
            names.append(f"PC{i}{j}")
    return nj.VectorFieldBasis(fields, d=points.shape[1], names=names)


def unit_rotation(d: int, i: int = 0, j: int = 1):
    """`E_ij = e_j e_iᵀ − e_i e_jᵀ`: the rotation of units `i` and `j` (a generic, broken
    direction of `nj.Rotations(d)`)."""
    return jnp.zeros((d, d)).at[j, i].set(1.0).at[i, j].set(-1.0)


def ring_study(net, task, *, r: int = 3, t_path: float = 10.0, n_nodes: int = 101,
               noise=None, key=None):
    """Symmetries of a trained ring network at the states it visits, and the charges along
    the most likely path between the memories of the angles 0 and π/2.

    `noise=None`: the noise-free task states; the near symmetry is taken from the rotations
    of their `r` principal directions (the full family has no gap there). `noise`: the
    states visited under that noise (`noisy_visited_states`, `key`); the near symmetry is
    the smallest singular direction of the full `nj.Rotations(d)`, no projection."""
    d = net.dim
    if noise is None:
        pts = visited_states(net, task)
    else:
        pts = noisy_visited_states(net, task, key, noise=noise)
    t = time.perf_counter()
    full = nj.find_symmetries(SDE1, nj.Rotations(d), points=pts, args=net)
    full_s = time.perf_counter() - t
    fam = principal_rotations(pts, r)
    sub = nj.find_symmetries(SDE1, fam, points=pts, args=net)
    a, b = memory_state(net, task, 0.0), memory_state(net, task, jnp.pi / 2)
    sol = nj.minimize_action(SDE1, a, b, 0.0, t_path, n_nodes=n_nodes, args=net)
    plane = plane_rotation(task.embed)
    if noise is None:
        dirs = sub.near_generators(jnp.inf)  # every direction, σ ascending
        sigma, near = dirs[0]
        # The charge of each direction of the family (the near symmetry first, then the
        # broken ones), and of the rotation of the readout plane.
        gens = [g for _, g in dirs] + [lambda x: plane @ x]
        names = [f"σ = {s:.3f}: {g.describe()}" for s, g in dirs]
        names.append("readout-plane rotation QJQᵀ")
    else:
        sigma, near = full.near_generators(jnp.inf)[0]
        E01 = unit_rotation(d)
        gens = [near, lambda x: E01 @ x, lambda x: plane @ x]
        names = [f"σ = {sigma:.4f}: near symmetry of Rotations({d})", "broken: R0,1 (units 0, 1)",
                 "readout-plane rotation QJQᵀ"]
    report = nj.charge_report(SDE1, sol, gens, args=net, names=names)
    plane_sigma = None
    if noise is not None:  # the breaking of QJQᵀ alone, at the same states
        one = nj.VectorFieldBasis([SubspaceRotation(plane, jnp.zeros(d))], d=d, names=["QJQᵀ"])
        plane_sigma = float(nj.find_symmetries(SDE1, one, points=pts, args=net)
                            .singular_values[0])
    return dict(points=pts, full=full, full_s=full_s, plane_sigma=plane_sigma, family=fam,
                sub=sub, near=near,
                near_sigma=sigma, a=a, b=b, path=sol, report=report)


# --- 2. Symmetric by construction -------------------------------------------------------


def radial_pairs(x):
    """`φ(z) = z / sqrt(1 + |z|²)` on each pair `z = (x_{2k}, x_{2k+1})`: equivariant under
    any rotation of the pairs (a function of `|z|` times `z`)."""
    z = x.reshape(-1, 2)
    return (z / jnp.sqrt(1.0 + jnp.sum(z * z, axis=-1, keepdims=True))).reshape(x.shape)


def equivariant_network(A, B) -> nj.CTRNN:
    """`W = A ⊗ I₂ + B ⊗ J₂` (`A`, `B`: `m × m`), `b = 0`, radial nonlinearity on pairs:
    `f(R x) = R f(x)` for `R = I_m ⊗ R(α)`, the same rotation of every pair."""
    W = jnp.kron(A, jnp.eye(2)) + jnp.kron(B, J2)
    return nj.CTRNN(W, jnp.zeros(W.shape[0]), activation=radial_pairs)


def pair_rotation(d: int):
    """The generator `ξ(x) = (I ⊗ J₂) x` of the simultaneous rotation of every pair."""
    M = jnp.kron(jnp.eye(d // 2), J2)
    return lambda x: M @ x


def rotate_pairs(x, alpha):
    """`(I ⊗ R(α)) x`: every pair of units rotated by `α`."""
    c, s = jnp.cos(alpha), jnp.sin(alpha)
    z = x.reshape(-1, 2)
    return jnp.stack([c * z[:, 0] - s * z[:, 1], s * z[:, 0] + c * z[:, 1]], axis=1).ravel()


def _ring_weights(key, m, gain, b_scale):
    kA, kB, ku = jax.random.split(key, 3)
    u = jax.random.normal(ku, (m,))
    u = u / jnp.linalg.norm(u)
    A = gain * jnp.outer(u, u) + 0.3 * jax.random.normal(kA, (m, m)) / math.sqrt(m)
    return A, b_scale * jax.random.normal(kB, (m, m))


def symmetric_case(key, m: int = 3, *, gain: float = 2.5, b_scale: float = 0.0, x_star=None,
                   t_path: float = 6.0, n_nodes: int = 101):
    """An equivariant network with a ring attractor: `A = gain · u uᵀ + 0.3 N(0, 1)/√m`
    (one unstable mode of the origin, `u` random), `B = b_scale N(0, 1)` (`B ≠ 0` makes the
    ring rotate). Its symmetries in `nj.Rotations(2m)` at states around the ring, and the
    charges along the most likely path from `x_star` (default: a point of the ring) to its
    image a quarter turn further, for the symmetry found and for a rotation that is not
    one (of the first unit of the first two pairs)."""
    k_net, k_start, k_pts = jax.random.split(key, 3)
    A, B = jax.jit(_ring_weights, static_argnums=1)(k_net, m, gain, b_scale)
    net = equivariant_network(A, B)
    d = 2 * m
    if x_star is None:
        # A memory: relax from a generic state (the ring is neutral along itself, so the
        # relaxation is not "settled" by `nj.relax`'s test; its end is on the ring).
        x_star = nj.relax(SDE1, jax.random.normal(k_start, (d,)), args=net, t_max=50.0).x_end

    # 12 points on the ring and a cloud around it: 24, or at large d as many as the
    # matrix-free search's default (`2⌈k/d⌉ + 8` for `k = d(d−1)/2` rotations) in all.
    n_cloud = max(24, 2 * -(-(d * (d - 1) // 2) // d) + 8 - 12)

    @eqx.filter_jit
    def points_and_end(x_star, n_cloud):
        ring = jax.vmap(lambda al: rotate_pairs(x_star, al))(
            jnp.linspace(0, 2 * jnp.pi, 12, endpoint=False))
        cloud = x_star + 0.5 * jax.random.normal(k_pts, (n_cloud, d))
        return jnp.concatenate([ring, cloud]), rotate_pairs(x_star, jnp.pi / 2)

    points, x_end = points_and_end(jnp.asarray(x_star), n_cloud)
    sym = nj.find_symmetries(SDE1, nj.Rotations(d), points=points, args=net)
    sol = nj.minimize_action(SDE1, x_star, x_end, 0.0, t_path, n_nodes=n_nodes, args=net)
    G = jnp.zeros((d, d)).at[0, 2].set(-1.0).at[2, 0].set(1.0)
    # The symmetries found (or, if none passed the cut, the smallest singular direction).
    found = sym.generators or [sym.near_generators(jnp.inf)[0][1]]
    gens = found + [lambda x: G @ x]
    names = [f"symmetry {g.describe()}" if d <= 8 else f"symmetry {i} (σ-ascending)"
             for i, g in enumerate(found)] + ["not a symmetry: R02"]
    expected_sigma = None
    if d > 8:  # the breaking of the known pair rotation alone, at the same points
        one = nj.VectorFieldBasis([SubspaceRotation(jnp.kron(jnp.eye(m), J2), jnp.zeros(d))],
                                  d=d, names=["I⊗J"])
        expected_sigma = float(nj.find_symmetries(SDE1, one, points=points, args=net)
                               .singular_values[0])
    return dict(net=net, x_star=x_star, symmetries=sym, path=sol, found=found,
                expected_sigma=expected_sigma,
                report=nj.charge_report(SDE1, sol, gens, args=net, names=names),
                expected=pair_rotation(d))


# --- The whole example ----------------------------------------------------------------------


def run(out=None, *, quick=False, d=8, seed=0, progress=print):
    """Both parts; returns a dict of numbers. `quick`: a shorter training. `d`: units of the
    trained network and of the equivariant one (`d/2` pairs) when `d > 8`; at `d > 8` the
    symmetry search is over all of `nj.Rotations(d)` at noisy visited states (see
    `ring_study`), and the training uses a decaying learning rate."""
    out = pathlib.Path("noether_jax_out/examples/rnn_ring_symmetry" if out is None else out)
    out.mkdir(parents=True, exist_ok=True)
    k_train, k_sym = jax.random.split(jax.random.key(seed))
    large = d > 8
    steps = 150 if quick else 400
    # A fixed 1e-2 diverges into a poor minimum (loss ~0.2) at d = 64; a cosine decay from
    # 3e-3 learns the memory.
    lr = optax.cosine_decay_schedule(3e-3, steps) if large else 1e-2
    progress(f"1. training a {d}-unit tanh CTRNN to remember an angle ({steps} Adam steps)")
    t = time.perf_counter()
    net, task, losses = train_ring(k_train, d, steps=steps, lr=lr)
    progress(f"   task loss {losses[0]:.3f} -> {losses[-1]:.4f} ({time.perf_counter() - t:.0f} s)")
    noise = 0.1 if large else None
    st = ring_study(net, task, noise=noise, key=jax.random.fold_in(k_train, 1))
    full, sub = st["full"], st["sub"]
    sv_full = np.asarray(full.singular_values)
    sv_sub = np.asarray(sub.singular_values)
    if large:
        progress(f"   nj.Rotations({d}) ({d * (d - 1) // 2} generators, "
                 f"{full.method.replace('_', '-')}"
                 f", {st['full_s']:.0f} s) at {st['points'].shape[0]} states visited under noise "
                 f"D = {noise}: smallest singular values "
                 f"{np.array2string(sv_full[:8], precision=4)}")
    else:
        progress(f"   nj.Rotations({d}) at {st['points'].shape[0]} visited states: singular values "
                 f"{np.array2string(sv_full[:6], precision=3)} ... (no gap: rotations of "
                 "directions the network never visits are unconstrained)")
    progress(f"   rotations of the 3 principal directions of the visited states: singular values "
             f"{np.array2string(sv_sub, precision=3)}")
    progress(f"   near symmetry (σ = {st['near_sigma']:.4f}): "
             f"{st['near'].describe() if not large else '(a combination of many rotations)'}")
    A = skew_of(st["near"], d)
    overlap = generator_overlap(A, plane_rotation(task.embed))
    progress(f"   its overlap with the rotation of the readout plane QJQᵀ: {overlap:.3f}")
    if large:
        progress(f"   relative breaking of QJQᵀ itself at the same states: σ = "
                 f"{st['plane_sigma']:.4f}")
    rep = st["report"]
    progress(f"   charges along the most likely path memory(0) → memory(π/2), T = "
             f"{float(st['path'].ts[-1]):.0f}, S = {float(st['path'].action):.4f} (D = 1):")
    for line in str(rep).splitlines():
        progress("     " + line)

    m = d // 2 if large else 3
    progress(f"2. a network symmetric by construction ({m} pairs, W = A⊗I + B⊗J, radial φ)")
    t = time.perf_counter()
    sym_case = symmetric_case(k_sym, m)
    sym_s = time.perf_counter() - t
    sym = sym_case["symmetries"]
    sv_sym = np.asarray(sym.singular_values)
    overlap_sym = generator_overlap(skew_of(sym_case["found"][0], 2 * m),
                                    skew_of(sym_case["expected"], 2 * m))
    progress(f"   {int(sym.num_symmetries)} symmetry among nj.Rotations({2 * m}) ({sym_s:.0f} s): "
             f"{sym_case['found'][0].describe() if not large else '(a combination of rotations)'} "
             f"(expected: the same rotation of every pair; overlap {overlap_sym:.15f})")
    progress(f"   singular values {np.array2string(sv_sym[:5], precision=3)} ..."
             + (f" (converged: {bool(sym.converged)}, {int(sym.iterations)} iterations)"
                if large else ""))
    if large:
        progress(f"   relative breaking of the known pair rotation I⊗J alone at the same points: "
                 f"σ = {sym_case['expected_sigma']:.1e}")
    progress(f"   |f(x*)| = {float(jnp.linalg.norm(sym_case['net'](0.0, sym_case['x_star']))):.1e} "
             "at the memory x*; charges along the most likely path x* → quarter turn:")
    for line in str(sym_case["report"]).splitlines():
        progress("     " + line)
    var = np.asarray(rep.relative_variations)
    svar = np.asarray(sym_case["report"].relative_variations)
    progress(f"   side by side (d = {d} and {2 * m}):      trained (tanh)   equivariant")
    progress(f"     smallest σ in Rotations(d):      {sv_full[0]:.3e}      {sv_sym[0]:.3e}")
    progress(f"     next σ:                          {sv_full[1]:.3e}      {sv_sym[1]:.3e}")
    progress(f"     overlap with expected rotation:  {overlap:.3e}      {overlap_sym:.15f}")
    progress(f"     charge variation, near symmetry: {var[0]:.3e}      {svar[0]:.3e}")
    progress(f"     charge variation, broken:        {var[1]:.3e}      "
             f"{svar[-1]:.3e}")

    res = dict(
        task_loss=losses[-1],
        singular_values_rotations=sv_full.tolist(),
        singular_values_principal=sv_sub.tolist(),
        near_sigma=st["near_sigma"],
        overlap_readout_plane=overlap,
        trained_charge_variations=var.tolist(),
        trained_energy_variation=float(rep.energy_relative_variation),
        symmetric_singular_values=sv_sym.tolist(),
        symmetric_overlap=overlap_sym,
        symmetric_charge_variations=svar.tolist(),
    )
    if large:
        res["plane_sigma"] = st["plane_sigma"]
        res["symmetric_expected_sigma"] = sym_case["expected_sigma"]
        res["symmetric_converged"] = bool(sym.converged)
    _figure(out / "rnn_ring_symmetry.png", net, task, st, sym_case)
    return res


def _figure(path, net, task, st, sym_case):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    pts = np.asarray(st["points"])
    c = pts.mean(axis=0)
    _, _, Vt = np.linalg.svd(pts - c, full_matrices=False)
    proj = lambda x: (np.asarray(x) - c) @ Vt[:2].T
    ax = axes[0]
    _, xs = run_network(net, task)
    for traj in np.asarray(xs):
        p = proj(traj)
        ax.plot(p[:, 0], p[:, 1], color="0.7", lw=0.8)
        ax.plot(p[-1, 0], p[-1, 1], "o", color="C0", ms=4)
    p = proj(st["path"].xs)
    ax.plot(p[:, 0], p[:, 1], "C3", lw=2, label="most likely path memory(0) → memory(π/2)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("trained network: trajectories and memories")
    ax.legend(fontsize=8, loc="lower center")
    ax.set_aspect("equal")
    ax = axes[1]
    for i, (name, sv) in enumerate((
        ("trained, Rotations(d)", st["full"].singular_values),
        ("trained, principal rotations", st["sub"].singular_values),
        (f"equivariant, Rotations({sym_case['x_star'].shape[0]})",
         sym_case["symmetries"].singular_values),
    )):
        sv = np.maximum(np.asarray(sv), 1e-18)
        ax.semilogy(np.arange(len(sv)), sv, "o-", color=f"C{i}", ms=4, label=name)
    ax.set_xlabel("index (ascending)")
    ax.set_ylabel("singular value (relative breaking)")
    ax.set_title("symmetry spectra")
    ax.legend(fontsize=8)
    ax = axes[2]
    rep = st["report"]
    ts = np.asarray(rep.ts)
    for i, name in enumerate(rep.names):
        q = np.asarray(rep.charges[i]) / float(rep.scales[i])
        ax.plot(ts, q - q.mean(), label=f"trained: {name.split(': ')[0]}")
    srep = sym_case["report"]
    q = np.asarray(srep.charges[0]) / float(srep.scales[0])
    ax.plot(np.asarray(srep.ts), q - q.mean(), "k", lw=2, label="equivariant: symmetry")
    ax.set_xlabel("t")
    ax.set_ylabel("(Q − mean Q) / mean |p||ξ|")
    ax.set_title("charges along most likely paths")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="noether_jax_out/examples/rnn_ring_symmetry",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a shorter training")
    parser.add_argument("--d", type=int, default=8,
                        help="units of the networks (default %(default)s; e.g. 64)")
    opts = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    t, c = time.perf_counter(), time.process_time()
    run(opts.out, quick=opts.quick, d=opts.d)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"done in {time.perf_counter() - t:.0f} s wall, {time.process_time() - c:.0f} s CPU, "
          f"peak RSS {peak:.2f} GiB; figure in {opts.out}/rnn_ring_symmetry.png")


if __name__ == "__main__":
    main()
