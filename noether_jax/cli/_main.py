"""The `noether-jax` command line (also `python -m noether_jax`).

Subcommands:

- `demo`: the seed paper's case studies, all of them, with a Markdown and a JSON report;
- `reproduce CASE`: one of them;
- `path FILE.py:NAME ...`: the most likely path of your own `nj.SDE`, its action, momenta,
  quasi-energy and the Noether charges of the symmetries found among translations and
  rotations, with a figure and a JSON file;
- `batch FILE.py:NAME BC`: paths for a file of boundary conditions (`_batch.py`);
- `network FILE.py:NAME --center .. --scale ..`: the attractors in a box, the saddles joining
  them, barriers, rates, mean first-passage times and routes (`_network.py`).

Each subcommand is an entry of `_SUBCOMMANDS`: a function `add_parser(subparsers)` (or the
string `"module:function"` of one, imported only when the parser is built) that adds its
`argparse` parser and sets its handler with `parser.set_defaults(handler=fn)`, where
`fn(namespace) -> int` returns the exit code and raises `CLIError` for a user error (printed
as one line, no traceback). Heavy modules (matplotlib, the case studies) are imported inside
the handlers, so `noether-jax --help` costs little more than importing the package.
"""

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import json
import pathlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


PROG = "noether-jax"


class CLIError(Exception):
    """A user error: printed as `noether-jax <command>: error: <message>`, exit code 2."""


# ---------------------------------------------------------------------------------------
# Shared helpers


@contextlib.contextmanager
def _precision(x64: bool):
    """Run with float64 on or off, and restore the previous setting (so in-process callers,
    e.g. the tests, keep theirs)."""
    import jax

    old = bool(jax.config.read("jax_enable_x64"))
    jax.config.update("jax_enable_x64", x64)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def _case_registry() -> dict[str, str]:
    # The cases register themselves in `noether_jax.cli._cases.CASES` (CLI name -> module
    # path).
    cases = importlib.import_module("noether_jax.cli._cases")
    return dict(getattr(cases, "CASES", {}))


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _fmt_vector(v, max_items: int = 8) -> str:
    vals = [float(a) for a in v.tolist()]
    text = ", ".join(f"{a:.5g}" for a in vals[:max_items])
    if len(vals) > max_items:
        text += f", ... ({len(vals)} entries)"
    return f"[{text}]"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _machine() -> dict[str, Any]:
    import os
    import platform

    import jax

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "cpu": cpu or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "float64": bool(jax.config.read("jax_enable_x64")),
    }


# ---------------------------------------------------------------------------------------
# demo / reproduce


def _crashed_report(name: str, error: BaseException):
    from ._cases._common import CaseReport

    message = f"{type(error).__name__}: {error}"
    return CaseReport(
        name=name,
        title=f"{name} (crashed)",
        numbers={"error": message},
        markdown=f"The case raised `{message}` (traceback on stderr).",
        figures=[],
        checks={"ran without error": False},
    )


def _key_result(report) -> str:
    # A case may name its headline in `numbers["key_result"]`; otherwise its title.
    key = report.numbers.get("key_result") if isinstance(report.numbers, dict) else None
    return str(key) if key is not None else report.title


def _checks_cell(report) -> str:
    n_ok = sum(bool(v) for v in report.checks.values())
    return f"{n_ok}/{len(report.checks)}" + ("" if report.ok else " ✗")


def _write_reports(out: pathlib.Path, reports, *, title: str, quick: bool, total: float):
    import datetime

    from ._cases._common import jsonable

    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = _machine()
    lines = [
        f"# {title}",
        "",
        f"- date: {date}",
        f"- machine: {machine['cpu']} ({machine['cpu_count']} cores), {machine['platform']}",
        f"- jax {machine['jax']}, backend `{machine['backend']}` ({machine['devices']}), "
        f"Python {machine['python']}, float64 {'on' if machine['float64'] else 'off'}",
        f"- size: {'quick (reduced, as in the tests)' if quick else 'full'}; "
        f"total {total:.1f} s",
        "",
        "| case | key result | checks passed | seconds |",
        "|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {_md_cell(r.name)} | {_md_cell(_key_result(r))} | {_checks_cell(r)} "
            f"| {r.seconds:.1f} |"
        )
    for r in reports:
        lines += ["", f"## {r.title} (`{r.name}`)", "", r.markdown.strip(), ""]
        for fig in r.figures:
            lines += [f"![{_md_cell(r.title)}: {fig}]({fig})", ""]
        lines.append("Checks:")
        lines.append("")
        for check, ok in r.checks.items():
            lines.append(f"- {'✓' if ok else '✗ FAILED'} {check}")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {
        "title": title,
        "date": date,
        "machine": machine,
        "quick": quick,
        "total_seconds": total,
        "ok": all(r.ok for r in reports),
        "cases": [r.to_json() for r in reports],
    }
    text = json.dumps(jsonable(data), indent=2, default=str)  # default: never lose a run
    (out / "report.json").write_text(text + "\n", encoding="utf-8")


def _run_cases(names: Sequence[str], out, *, quick: bool, title: str) -> int:
    import traceback

    from noether_jax._progress import Progress

    from ._cases._common import out_dir

    registry = _case_registry()
    start = time.perf_counter()
    out = out_dir(out)
    reports = []
    for i, name in enumerate(names):
        progress = Progress(name)
        progress(f"case {i + 1}/{len(names)}: {'quick' if quick else 'full'} run")
        t = time.perf_counter()
        try:
            module = importlib.import_module(registry[name])
            report = module.run(out, quick=quick, progress=progress)
        except Exception as e:  # a crashed case is reported as failed; the others still run
            traceback.print_exc()
            report = _crashed_report(name, e)
        report.seconds = time.perf_counter() - t
        progress(f"{_checks_cell(report)} checks passed")
        reports.append(report)
    total = time.perf_counter() - start
    _write_reports(out, reports, title=title, quick=quick, total=total)

    width = max(len(r.name) for r in reports)
    print(f"{'case':<{width}}  {'checks':>7}  {'seconds':>8}  key result")
    for r in reports:
        print(f"{r.name:<{width}}  {_checks_cell(r):>7}  {r.seconds:>8.1f}  {_key_result(r)}")
    print(f"reports: {out / 'report.md'}, {out / 'report.json'}")
    print(f"total time {total:.1f} s")
    failed = [f"{r.name}: {c}" for r in reports for c, ok in r.checks.items() if not ok]
    if failed:
        print(f"{PROG}: {len(failed)} check(s) failed:", file=sys.stderr)
        for f in failed:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def _demo(ns: argparse.Namespace) -> int:
    names = list(_case_registry())
    if not names:
        raise CLIError(
            "no case studies are installed (`noether_jax.cli._cases.CASES` is empty)."
        )
    with _precision(True):
        return _run_cases(
            names, ns.out, quick=ns.quick, title="noether_jax: the seed paper's case studies"
        )


def _reproduce(ns: argparse.Namespace) -> int:
    registry = _case_registry()
    if ns.case not in registry:
        valid = ", ".join(registry) or "none installed"
        raise CLIError(f"unknown case {ns.case!r}; valid cases: {valid}.")
    with _precision(True):
        return _run_cases(
            [ns.case], ns.out, quick=ns.quick, title=f"noether_jax: case study `{ns.case}`"
        )


def _add_out_quick(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument(
        "--out",
        default=default_out,
        metavar="DIR",
        help="output folder for the figures, report.md and report.json "
        "(default: %(default)s; created if missing)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced sizes (as in the tests): seconds instead of minutes, same checks",
    )


def _add_demo(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="run all of the seed paper's case studies and write a report",
        description="Run the seed paper's case studies (Vastola, NeurReps 2024) in order, in "
        "float64, converged: figures, DIR/report.md (summary table and one section per case) "
        "and DIR/report.json (all numbers, checks and timings). Progress goes to stderr. "
        "Exits with 1 if any physics check fails (after writing the reports).",
    )
    _add_out_quick(parser, "noether_jax_out/demo")
    parser.set_defaults(handler=_demo)
    return parser


def _add_reproduce(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "reproduce",
        help="run one case study and write its report",
        description="Run one of the seed paper's case studies, with the same outputs as "
        "`demo` (report for that case only). Cases: "
        + (", ".join(_case_registry()) or "none installed")
        + ".",
    )
    parser.add_argument("case", metavar="CASE", help="the case's name, e.g. drift-diffusion")
    _add_out_quick(parser, "noether_jax_out/reproduce")
    parser.set_defaults(handler=_reproduce)
    return parser


# ---------------------------------------------------------------------------------------
# path


def _parse_numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise CLIError(
            f"{option}: cannot read {text!r} as comma-separated numbers (e.g. {option} 1.5,-2)."
        ) from None
    return values


def _parse_float(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise CLIError(f"{option}: cannot read {text!r} as a number.") from None


def _args_from_json(value):
    """JSON -> a pytree for `args`: lists of numbers become arrays, the rest is kept."""
    import jax.numpy as jnp

    if isinstance(value, dict):
        return {k: _args_from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        try:
            return jnp.asarray(value)
        except (TypeError, ValueError):  # ragged or mixed: keep a list
            return [_args_from_json(v) for v in value]
    return value


def _load_module(file: pathlib.Path):
    """Import a Python file by its path (not through `sys.path`)."""
    if not file.exists():
        raise CLIError(f"{file}: no such file.")
    if not file.is_file():
        raise CLIError(f"{file}: not a file.")
    if file.suffix != ".py":
        raise CLIError(f"{file}: not a Python file (expected a .py file).")
    # A name of its own per file, registered while it runs (dataclasses and equinox modules
    # defined in the file look themselves up in `sys.modules`).
    name = "_noether_jax_user_" + re.sub(r"\W", "_", str(file.resolve()))
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CLIError(f"{file}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise CLIError(f"{file}: not valid Python: {e.msg} (line {e.lineno}).") from None
    except Exception as e:
        sys.modules.pop(name, None)
        tb = e.__traceback__
        line = None
        while tb is not None:  # the deepest frame in the user's file
            if pathlib.Path(tb.tb_frame.f_code.co_filename).resolve() == file.resolve():
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f" (line {line})" if line is not None else ""
        raise CLIError(
            f"{file}: importing it failed{where}: {type(e).__name__}: {e}"
        ) from None
    return module


def _get_sde(module, file: pathlib.Path, name: str):
    from noether_jax import SDE

    def found() -> str:
        sdes = sorted(k for k, v in vars(module).items() if isinstance(v, SDE))
        return (
            f"nj.SDE objects in {file.name}: {', '.join(sdes)}."
            if sdes
            else f"{file.name} defines no nj.SDE."
        )

    if not hasattr(module, name):
        raise CLIError(f"{file.name} has no {name!r}. {found()}")
    obj = getattr(module, name)
    if isinstance(obj, SDE):
        return obj
    if callable(obj) and not isinstance(obj, type):
        try:
            required = [
                p
                for p in inspect.signature(obj).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            required = []
        if required:
            raise CLIError(
                f"{name!r} is a callable with required arguments "
                f"({', '.join(p.name for p in required)}): is it the drift? Pass the nj.SDE "
                f"(or a function of no arguments returning one). {found()}"
            )
        try:
            obj = obj()
        except Exception as e:
            raise CLIError(f"calling {name}() failed: {type(e).__name__}: {e}") from None
        if isinstance(obj, SDE):
            return obj
        raise CLIError(f"{name}() returned a {type(obj).__name__}, not an nj.SDE. {found()}")
    raise CLIError(
        f"{name!r} is a {type(obj).__name__}, not an nj.SDE (or a function returning one). "
        f"{found()}"
    )


def _numbers(n: int) -> str:
    return f"{n} number" + ("" if n == 1 else "s")


def _check_dimension(sde, name: str, x0, x1, t0, args) -> int:
    """Call the drift once at `x0`: it must return a vector of the same length."""
    import jax
    import jax.numpy as jnp

    try:  # traced, not run: no compilation
        f = jax.eval_shape(lambda t, x: jnp.asarray(sde.drift(t, x, args)),
                           jnp.asarray(t0, x0.dtype), x0)
    except Exception as e:
        raise CLIError(
            f"calling the drift of {name} at x0 = {_fmt_vector(x0)} failed: "
            f"{type(e).__name__}: {e} (does --x0 have the system's dimension? is --args "
            "what the drift expects?)"
        ) from None
    if f.shape != x0.shape:
        if f.ndim == 1:
            raise CLIError(
                f"--x0 has {_numbers(x0.shape[0])} but the drift of {name} returns a vector of "
                f"length {f.shape[0]} there: give {f.shape[0]} numbers."
            )
        raise CLIError(
            f"the drift of {name} returns shape {f.shape} at x0 (shape {x0.shape}); it must "
            "return a vector like x."
        )
    d = x0.shape[0]
    if x1.shape != x0.shape:
        raise CLIError(f"--x1 has {_numbers(x1.shape[0])}; the system is {d}-dimensional.")
    if callable(sde.diffusion):
        try:
            jax.eval_shape(lambda t, x: jnp.asarray(sde.diffusion(t, x, args)),
                           jnp.asarray(t0, x0.dtype), x0)
        except Exception as e:
            raise CLIError(
                f"calling the diffusion of {name} at x0 = {_fmt_vector(x0)} failed: "
                f"{type(e).__name__}: {e}"
            ) from None
    return d


def _symmetry_points(xs, key):
    """Path nodes plus normal points at the path's scale: the symmetry conditions are
    checked where the path lives, and off it (a path alone may lie on a line)."""
    import jax
    import jax.numpy as jnp

    n, d = xs.shape
    scale = jnp.max(jnp.max(xs, axis=0) - jnp.min(xs, axis=0))
    scale = jnp.where(scale > 0, scale, 1.0)
    extra = jnp.mean(xs, axis=0) + scale * jax.random.normal(key, (max(32, 4 * d), d), xs.dtype)
    return jnp.concatenate([xs[:: max(1, n // 16)], extra])


def _constant_looks_constant(ax, values: list[float]) -> None:
    """Show a charge constant to round-off as a flat line (no autoscaled 1e-13 wiggles)."""
    values = [v for v in values if v == v and abs(v) != float("inf")]
    if not values:
        return
    lo, hi = min(values), max(values)
    pad = max(hi - lo, 0.1 * max(abs(lo), abs(hi)), 1e-12)
    ax.set_ylim(lo - pad, hi + pad)
    ax.ticklabel_format(axis="y", useOffset=False)


def _plot_path(file: pathlib.Path, *, ts, xs, report, geometric: bool, label: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    # Plain lists for matplotlib (the library itself does not import NumPy).
    n, d = xs.shape
    along = [i / (n - 1) for i in range(n)] if geometric else ts.tolist()
    along_label = "s (arclength fraction)" if geometric else "t"
    cols = xs.T.tolist()
    fig = Figure(figsize=(15, 4.5))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    if d == 1:
        ax1.plot(along, cols[0], "C0", lw=2)
        ax1.set(xlabel=along_label, ylabel="x", title=f"{label}: most likely path")
    else:
        ax1.plot(cols[0], cols[1], "C0", lw=2, label="path")
        ax1.plot(cols[0][0], cols[1][0], "ko", label="x0")
        ax1.plot(cols[0][-1], cols[1][-1], "k*", ms=12, label="x1")
        ax1.set(xlabel="x[0]", ylabel="x[1]", title=f"{label}: most likely path")
        ax1.legend()
    rel = report.relative_variations.tolist()
    for name, q, v in zip(report.names, report.charges.tolist(), rel):
        ax2.plot(along, q, label=f"{name} (rel. variation {v:.1e})")
    ax2.set(xlabel=along_label, ylabel="p·ξ(x)", title="Noether charges of the symmetries found")
    if len(report.names):
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no translation or rotation symmetry", ha="center",
                 transform=ax2.transAxes)
    energy = report.energy.tolist()
    ax3.plot(along, energy, "C3",
             label=f"rel. variation {float(report.energy_relative_variation):.1e}")
    ax3.legend(fontsize=8)
    _constant_looks_constant(ax2, [v for q in report.charges.tolist() for v in q])
    _constant_looks_constant(ax3, energy)
    ax3.set(xlabel=along_label, ylabel="H = pᵀDp + fᵀp", title="quasi-energy")
    fig.tight_layout()
    fig.savefig(file, dpi=110)


def _writable_folder(path) -> pathlib.Path:
    """`path` as an existing, writable folder (created if needed), or a `CLIError`."""
    from noether_jax._batch._store import prepare_folder

    try:
        return prepare_folder(path)
    except ValueError as e:
        raise CLIError(str(e).replace("`out_dir` ", "--out ")) from None


def _path(ns: argparse.Namespace) -> int:
    spec = ns.system
    if ":" not in spec:
        raise CLIError(f"expected FILE.py:NAME, got {spec!r} (e.g. my_system.py:sde).")
    file_text, name = spec.rsplit(":", 1)
    file = pathlib.Path(file_text)
    if not name.isidentifier():
        raise CLIError(f"{name!r} (after the colon in {spec!r}) is not a Python name.")
    x0_vals = _parse_numbers(ns.x0, "--x0")
    x1_vals = _parse_numbers(ns.x1, "--x1")
    t0 = _parse_float(ns.t0, "--t0")
    t1 = _parse_float(ns.t1, "--t1")
    if ns.geometric:
        if t0 is not None or t1 is not None:
            raise CLIError("--geometric takes no --t0/--t1 (the duration is unbounded).")
    elif t1 is None:
        raise CLIError("give the final time --t1 (or --geometric for unbounded time).")
    t0 = 0.0 if t0 is None else t0
    try:
        user_args = None if ns.args is None else json.loads(ns.args)
    except json.JSONDecodeError as e:
        raise CLIError(f"--args: not valid JSON ({e}): {ns.args!r}.") from None

    with _precision(not ns.float32):
        return _solve_path(ns, file, name, x0_vals, x1_vals, t0, t1, user_args)


def _solve_path(ns, file, name, x0_vals, x1_vals, t0, t1, user_args) -> int:
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import noether_jax as nj

    from ._cases._common import jsonable

    # Arrays only after the precision is set, and the file imported under it too.
    module = _load_module(file)
    sde = _get_sde(module, file, name)
    args = _args_from_json(user_args)
    dtype = jnp.float32 if ns.float32 else jnp.float64
    x0 = jnp.asarray(x0_vals, dtype)
    x1 = jnp.asarray(x1_vals, dtype)
    d = _check_dimension(sde, name, x0, x1, t0, args)
    out = _writable_folder(ns.out)  # before the solve, not after it

    label = f"{file.name}:{name}"
    start = time.perf_counter()
    try:
        if ns.geometric:
            sol = nj.minimize_geometric_action(
                sde, x0, x1, n_nodes=ns.n_nodes, args=args, throw=False
            )
        else:
            sol = nj.minimize_action(
                sde, x0, x1, t0, t1, n_nodes=ns.n_nodes, args=args, throw=False
            )
        family = nj.Translations(d) if d == 1 else nj.Translations(d) | nj.Rotations(d)
        times = None if ns.geometric else jnp.linspace(t0, t1, 5, dtype=dtype)
        # Compiled once each, rather than op by op.
        points = jax.jit(_symmetry_points)(sol.xs, jax.random.key(0))
        res = nj.find_symmetries(sde, family, args=args, times=times, points=points)
        p = eqx.filter_jit(nj.momentum)(sde, sol, args)
        report = nj.charge_report(sde, sol, res, args=args, momenta=p)
    except ValueError as e:  # the library's input checks (shapes, dtypes, n_nodes, D)
        raise CLIError(str(e)) from None
    seconds = time.perf_counter() - start
    converged = bool(sol.converged)
    message = nj.RESULTS[sol.result] or "successful"

    kind = "geometric action Ŝ" if ns.geometric else "action S"
    print(f"{label}: d = {d}, {sol.ts.shape[0]} nodes, "
          + ("unbounded time (geometric)" if ns.geometric else f"t from {t0:g} to {t1:g}")
          + f", {jnp.dtype(dtype).name}")
    meaning = "transition rate ∝ exp(-Ŝ)" if ns.geometric else "path probability ∝ exp(-S)"
    print(f"{kind} = {_fmt(float(sol.action))}   ({meaning})")
    print(f"converged: {converged} ({message})")
    if "error_estimate" in sol.stats:
        print(f"estimated discretisation error of the action: "
              f"{float(sol.stats['error_estimate']):.2e} (Richardson value "
              f"{_fmt(float(sol.stats['action_extrapolated']))})")
    print(f"quasi-energy H: mean {float(report.energy_mean):.6e}, relative variation "
          f"{float(report.energy_relative_variation):.3e}")
    print(f"momentum p = ½D⁻¹(ẋ − f): p(start) = {_fmt_vector(p[0])}, "
          f"p(end) = {_fmt_vector(p[-1])}")
    gens = res.generators
    print(
        f"symmetries among translations and rotations: "
        + (", ".join(g.describe() for g in gens) if gens else "none")
        + (
            ""
            if ns.geometric
            else f"; time translation: {'yes' if bool(res.time_translation) else 'no'}"
        )
    )
    print(str(report))

    fig_file = out / f"path_{name}.png"
    json_file = out / f"path_{name}.json"
    data = {
        "system": label,
        "mode": "geometric" if ns.geometric else "fixed-time",
        "dtype": jnp.dtype(dtype).name,
        "x0": x0, "x1": x1, "t0": None if ns.geometric else t0,
        "t1": None if ns.geometric else t1,
        "n_nodes": int(sol.ts.shape[0]), "args": user_args,
        "action": sol.action, "converged": converged, "result": message,
        "stats": sol.stats, "seconds": seconds,
        "ts": sol.ts, "xs": sol.xs, "momenta": p,
        "energy": report.energy, "energy_mean": report.energy_mean,
        "energy_relative_variation": report.energy_relative_variation,
        "time_translation": res.time_translation,
        "singular_values": res.singular_values,
        "charges": [
            {"name": n, "values": q, "mean": m, "relative_variation": v}
            for n, q, m, v in zip(
                report.names, report.charges, report.means, report.relative_variations
            )
        ],
    }
    text = json.dumps(jsonable(data), indent=2, default=str)
    try:  # the JSON first: it holds the numbers
        json_file.write_text(text + "\n", encoding="utf-8")
        _plot_path(fig_file, ts=sol.ts, xs=sol.xs, report=report, geometric=ns.geometric,
                   label=label)
    except OSError as e:  # the folder became unwritable, or the disk is full
        raise CLIError(f"writing to {out} failed ({e}); the numbers are printed above.") from None
    print(f"figure: {fig_file}\njson: {json_file}")
    if not converged:
        print(f"{PROG} path: error: the solver did not converge: {message}", file=sys.stderr)
        return 1
    return 0


def _add_path(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "path",
        help="the most likely path of your own nj.SDE, with its Noether charges",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Solve for the most likely path of an nj.SDE defined in a Python file, from x0 at
t0 to x1 at t1 (or over unbounded time with --geometric), and print its action,
momenta, quasi-energy and the Noether charges p·ξ of the symmetries found among
translations and rotations. Writes DIR/path_NAME.png and DIR/path_NAME.json.

NAME is an nj.SDE in the file, or a function of no arguments returning one. The
drift is called as drift(t, x, args), with args from --args (JSON; lists of
numbers become arrays).""",
        epilog="""\
example: the model file my_ou.py, an OU process whose stiffness k is the drift's args,

    import noether_jax as nj
    sde = nj.SDE(lambda t, x, k: -k * x, 0.5)

and the command (--args is required when the drift uses its args):

  noether-jax path my_ou.py:sde --x0 0,0 --x1 1,-1 --t1 2 --args 1.5""",
    )
    parser.add_argument("system", metavar="FILE.py:NAME", help="where the nj.SDE is")
    parser.add_argument("--x0", required=True, metavar="A,B,...",
                        help="initial point, comma-separated (e.g. --x0 -1,0)")
    parser.add_argument("--x1", required=True, metavar="A,B,...", help="final point")
    parser.add_argument("--t0", metavar="T0", help="initial time (default 0)")
    parser.add_argument("--t1", metavar="T1", help="final time (required without --geometric)")
    parser.add_argument("--n-nodes", type=int, default=None, metavar="N",
                        help="time nodes including both ends on a uniform grid (default: the "
                        "library's nested grids, refined to 801 nodes with an estimate of the "
                        "discretisation error; 101 with --geometric)")
    parser.add_argument("--args", metavar="JSON",
                        help="the drift's args as JSON, e.g. 10 or '{\"beta\": 10}'")
    parser.add_argument("--geometric", action="store_true",
                        help="unbounded time: minimise the geometric action (no --t0/--t1)")
    parser.add_argument("--out", default="noether_jax_out/path", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--float32", action="store_true",
                        help="single precision (default: float64)")
    parser.set_defaults(handler=_path)
    return parser


# ---------------------------------------------------------------------------------------
# The registry and the entry point

# name -> `add_parser(subparsers)` or "module:function" naming one (imported lazily). The
# batch runner plugs in here: "batch": "noether_jax.cli._batch:add_parser".
_SUBCOMMANDS: dict[str, Callable | str] = {
    "demo": _add_demo,
    "reproduce": _add_reproduce,
    "path": _add_path,
    "batch": "noether_jax.cli._batch:add_parser",
    "network": "noether_jax.cli._network:add_parser",
}

# Options whose values may start with "-" (negative numbers like -1,0 that argparse would
# otherwise take for options); "--x0 -1,0" is rewritten as "--x0=-1,0".
_NUMERIC_OPTIONS = ("--x0", "--x1", "--t0", "--t1", "--args", "--center")
_NEGATIVE_VALUE = re.compile(r"^-[\d.]")


def _join_negative_values(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in _NUMERIC_OPTIONS and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    from noether_jax import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Most likely paths of noisy dynamical systems and their Noether charges "
        "(noether_jax). Run `noether-jax COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add in _SUBCOMMANDS.items():
        if isinstance(add, str):
            module, _, function = add.partition(":")
            add = getattr(importlib.import_module(module), function or "add_parser")
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `noether-jax` with `argv` (default `sys.argv[1:]`); returns the exit code."""
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else 2
    # `handler` by our convention; `func` is argparse's usual name.
    handler = getattr(ns, "handler", None) or getattr(ns, "func", None)
    try:
        return int(handler(ns) or 0)
    except CLIError as e:
        print(f"{PROG} {ns.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {ns.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
