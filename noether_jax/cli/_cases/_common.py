"""Shared pieces of the paper's case studies: the report each case returns, the output
folder, and the body of the example scripts. Progress is the core's `Progress`."""

import dataclasses
import json
import pathlib
from typing import Any, Callable

from noether_jax._progress import Progress as Progress


@dataclasses.dataclass
class CaseReport:
    """What a case study returns: numbers for the JSON report, a Markdown section for the
    Markdown report, the figures it wrote, and named physics checks (all must hold)."""

    name: str  # the CLI name, e.g. "drift-diffusion"
    title: str  # a one-line title
    numbers: dict[str, Any]  # JSON-serialisable (floats, ints, strings, lists, dicts)
    markdown: str  # a section body (no top-level heading): results and what they show
    figures: list[str]  # file names written into the output folder
    checks: dict[str, bool]  # e.g. {"action matches closed form (rel. err < 1e-6)": True}
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}


def jsonable(x: Any) -> Any:
    """Arrays and scalars (JAX or Python) as plain JSON values."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


def dumps(report: CaseReport) -> str:
    return json.dumps(jsonable(report.to_json()), indent=2)


ProgressLike = Callable[[str], None]


def out_dir(out: str | pathlib.Path | None) -> pathlib.Path:
    path = pathlib.Path("noether_jax_out" if out is None else out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def script_main(run: Callable[..., CaseReport], description: str, argv=None, *,
                default_out: str = "noether_jax_out/examples") -> int:
    """The body of an `examples/caseN_*.py` script: `--out` (default `default_out`, one
    folder per script so that no script overwrites another's outputs), `--quick`, run the
    case, print its Markdown section and checks; exit status 1 if a check fails."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out,
                        help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the reduced size of the tests")
    opts = parser.parse_args(argv)
    report = run(opts.out, quick=opts.quick)
    print(f"## {report.title}\n")
    print(report.markdown)
    for name, ok in report.checks.items():
        print(f"[{'ok' if ok else 'FAILED'}] {name}")
    print(f"figures: {', '.join(report.figures)} in {opts.out}; {report.seconds:.1f} s")
    return 0 if report.ok else 1
