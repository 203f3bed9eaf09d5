"""`import noether_jax` loads the core only: no matplotlib, no SciPy, not the command line
(applications live in `noether_jax.cli`); and the version comes from the installed metadata.

A fresh interpreter each: the test process has imported all of these already."""

import importlib.metadata
import json
import subprocess
import sys

_HEAVY = ("matplotlib", "scipy", "noether_jax.cli")


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_loads_core_only():
    found = _run(
        "import json, sys; import noether_jax; "
        f"print(json.dumps({{'loaded': [m for m in {_HEAVY!r} if m in sys.modules], "
        "'version': noether_jax.__version__}))"
    )
    assert found["loaded"] == []
    assert found["version"] == importlib.metadata.version("noether-jax")


def test_cli_is_importable_and_light():
    # The command line's parser is built without matplotlib (imported inside the handlers).
    found = _run(
        "import json, sys; from noether_jax.cli._main import build_parser; build_parser(); "
        "print(json.dumps({'loaded': [m for m in ('matplotlib', 'scipy') if m in sys.modules]}))"
    )
    assert found["loaded"] == []
