"""The `noether-jax` command line: `path` on a user file against the closed form, every user
error (one line, non-zero exit, no traceback), and `demo`/`reproduce` with a fake fast case.

Cheap: one 2-D Ornstein-Uhlenbeck solve (41 nodes), everything else fails before compiling.
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noether_jax.cli._cases as cases
from noether_jax.cli import main
from noether_jax.cli._cases import CaseReport

from helpers import linear_action

REPO = pathlib.Path(__file__).resolve().parents[1]

K, D, T = 1.5, 0.5, 2.0
X0, X1 = [-1.0, 0.0], [1.0, 0.5]

USER_FILE = """
import jax.numpy as jnp
import noether_jax as nj

def drift(t, x, k):
    # written per component, so a state of the wrong length is detected
    return jnp.stack([-k * x[0], -k * x[1]])

ou = nj.SDE(drift, {D})

def make_ou():
    return nj.SDE(drift, {D})

not_an_sde = 3
"""


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_ou.py"
    path.write_text(USER_FILE.format(D=D))
    return path


def _error(capsys, argv, code=2) -> str:
    """Run `main(argv)`, expecting a one-line user error; return it."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_path_ou_closed_form(user_file, tmp_path, capsys):
    out = tmp_path / "out"
    # "--x0 -1,0": a negative first number must not be taken for an option.
    argv = ["path", f"{user_file}:ou", "--x0", "-1,0", "--x1", "1,0.5", "--t1", str(T),
            "--n-nodes", "41", "--args", str(K), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    S_exact, pT = linear_action(-K * np.eye(2), D * np.eye(2), X0, X1, T)

    printed = float(text.split("action S = ")[1].split()[0])
    # Midpoint rule, h = 0.05: O(h²) relative error ~1e-4; a factor-2 slip is far outside.
    assert printed == pytest.approx(S_exact, rel=5e-4)
    assert "converged: True" in text
    assert "R01" in text  # the rotation of the isotropic OU process

    data = json.loads((out / "path_ou.json").read_text())
    assert data["action"] == pytest.approx(printed, rel=1e-5)
    assert data["converged"] is True
    np.testing.assert_allclose(data["xs"][0], X0)
    np.testing.assert_allclose(data["xs"][-1], X1)
    # Final momentum p(T) = G⁻¹ r, to the discretisation error.
    np.testing.assert_allclose(data["momenta"][-1], pT, rtol=2e-3)
    (charge,) = data["charges"]
    assert charge["relative_variation"] < 1e-8  # angular momentum: constant to round-off
    assert charge["mean"] == pytest.approx(pT[1] * X1[0] - pT[0] * X1[1], rel=2e-3)
    assert (out / "path_ou.png").stat().st_size > 10_000


def test_path_user_errors(user_file, tmp_path, capsys):
    base = ["--x0", "0,0", "--x1", "1,0", "--t1", "1", "--out", str(tmp_path), "--args", "1"]
    f = str(user_file)

    assert "no such file" in _error(capsys, ["path", str(tmp_path / "nope.py") + ":ou", *base])
    txt = tmp_path / "system.txt"
    txt.write_text("x = 1\n")
    assert "not a Python file" in _error(capsys, ["path", f"{txt}:ou", *base])
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    assert "not valid Python" in _error(capsys, ["path", f"{bad}:ou", *base])
    boom = tmp_path / "boom.py"
    boom.write_text("import math\n\nx = 1 / 0\n")
    err = _error(capsys, ["path", f"{boom}:ou", *base])
    assert "ZeroDivisionError" in err and "line 3" in err
    assert "FILE.py:NAME" in _error(capsys, ["path", f, *base])

    err = _error(capsys, ["path", f"{f}:missing", *base])
    assert "has no 'missing'" in err and "nj.SDE objects in my_ou.py: ou" in err
    assert "is a int, not an nj.SDE" in _error(capsys, ["path", f"{f}:not_an_sde", *base])
    assert "is it the drift?" in _error(capsys, ["path", f"{f}:drift", *base])
    err = _error(capsys, ["path", f"{f}:jnp", *base])
    assert "module, not an nj.SDE" in err

    # Dimension, from one call of the drift (here through a function returning the SDE).
    for x0 in ["0,0,0", "0"]:
        err = _error(capsys, ["path", f"{f}:make_ou", "--x0", x0, *base[2:]])
        assert f"--x0 has {len(x0.split(','))} number" in err and "give 2 numbers" in err
    err = _error(capsys, ["path", f"{f}:ou", "--x0", "0,0", "--x1", "1", *base[4:]])
    assert "--x1 has 1 number; the system is 2-dimensional" in err
    # A drift that fails (no --args: k is None) shows its error.
    err = _error(capsys, ["path", f"{f}:ou", *base[:-2]])
    assert "calling the drift of ou at x0 = [0, 0] failed: TypeError" in err

    assert "cannot read '1,a'" in _error(capsys, ["path", f"{f}:ou", "--x0", "1,a", *base[2:]])
    assert "--t1: cannot read 'soon'" in _error(
        capsys, ["path", f"{f}:ou", *base[:4], "--t1", "soon"])
    assert "--args: not valid JSON" in _error(capsys, ["path", f"{f}:ou", *base, "--args", "{k"])
    assert "--geometric takes no --t0/--t1" in _error(
        capsys, ["path", f"{f}:ou", *base, "--geometric"])
    assert "--t1" in _error(capsys, ["path", f"{f}:ou", *base[:4]])
    # argparse's own usage errors: exit code 2, no traceback.
    assert main(["path", f"{f}:ou", "--x1", "1,0", "--t1", "1"]) == 2
    assert "--x0" in capsys.readouterr().err
    # An output folder that cannot be written to: said before the solve, exit 2.
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    err = _error(capsys, ["path", f"{f}:ou", *base[:6], "--args", "1", "--out", str(blocker)])
    assert f"--out {blocker} is a file" in err
    err = _error(capsys, ["path", f"{f}:ou", *base[:6], "--args", "1",
                          "--out", str(blocker / "sub")])
    assert "cannot be created or written to" in err


BATCH_MODEL = """
import jax.numpy as jnp
import noether_jax as nj

sde = nj.SDE(lambda t, x, k: jnp.stack([-k * x[0], -k * x[1] ** 3]), 0.5)
"""


def test_batch_refuses_to_resume_a_different_problem(tmp_path, capsys, monkeypatch):
    # `noether-jax batch` rerun into the same --out with any other option, shared endpoint
    # or model file: exit 2 and one line naming what differs, unless --restart. The runs
    # are interrupted once the manifest is written (before the first chunk), so nothing
    # is compiled here.
    from noether_jax._progress import Progress

    def interrupt(self, i, n, message=""):
        raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "bar", interrupt)
    model = tmp_path / "model.py"
    model.write_text(BATCH_MODEL)
    bc = tmp_path / "bc.npz"
    rng = np.random.default_rng(0)
    np.savez(bc, x0=[-1.0, 0.0], x1=rng.uniform(0.5, 1.0, (5, 2)))
    out = tmp_path / "out"
    base = ["batch", f"{model}:sde", str(bc), "--t1", "2", "--args", "1.5", "--n-nodes", "11",
            "--chunk-size", "4", "--out", str(out), "--quiet"]
    assert main(base) == 130
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["options"]["t1"] == 2.0
    assert manifest["identity"]["shared"]["x0"] == [-1.0, 0.0]
    capsys.readouterr()
    assert main(base) == 130  # the same problem resumes
    capsys.readouterr()

    def refused(argv, *what):
        err = _error(capsys, argv)
        assert "different batch" in err and "pass --restart" in err, err
        assert f"--out {out} holds" in err and "`out_dir`" not in err, err
        for w in what:
            assert w in err, err
        return err

    refused([*base, "--t1", "3"], "identity.options.t1: 2.0 on disk, 3.0 now")
    refused([*base, "--args", "1.25"], "identity.options.args: 1.5 on disk, 1.25 now")
    refused([*base, "--max-steps", "50"], "identity.options.max_steps: null on disk, 50 now")
    refused([*base, "--n-nodes", "21"], "identity.options.n_nodes: 11 on disk, 21 now")
    refused([*base, "--float32"], "identity.options.float32")
    refused([*base, "--straggler-steps", "9"], "straggler_steps: null on disk, 9 now")
    refused([*base, "--lanes", "2"], "identity.options.lanes: null on disk, 2 now")
    refused([*base, "--chunk-size", "3"], "chunk_size: 4 on disk, 3 now")
    with np.load(bc) as data:
        x1 = data["x1"]
    np.savez(bc, x0=[-1.0, 1e-9], x1=x1)
    refused(base, "identity.shared.x0: [-1.0, 0.0] on disk, [-1.0, 1e-09] now")
    np.savez(bc, x0=[-1.0, 0.0], x1=x1 + np.array([0.0, 1e-12]))
    refused(base, "inputs.sha256 (the batch's values)")
    np.savez(bc, x0=[-1.0, 0.0], x1=x1)
    model.write_text(BATCH_MODEL.replace("x[1] ** 3", "x[1] ** 2"))
    refused(base, "identity.model.sha256")
    # Nothing was overwritten by the refusals; --restart replaces the manifest.
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert main([*base, "--restart"]) == 130
    new = json.loads((out / "manifest.json").read_text())
    assert new["identity"]["model"]["sha256"] != manifest["identity"]["model"]["sha256"]
    assert new["problem"]["jaxpr_sha256"] != manifest["problem"]["jaxpr_sha256"]


def test_batch_distributed_options_checked_before_joining(tmp_path, capsys):
    # (A real two-process run is in test_distributed.py; these fail before any process
    # starts, so no coordinator is contacted.)
    model = tmp_path / "model.py"
    model.write_text(BATCH_MODEL)
    bc = tmp_path / "bc.npz"
    np.savez(bc, x0=[-1.0, 0.0], x1=np.ones((3, 2)))
    base = ["batch", f"{model}:sde", str(bc), "--t1", "2", "--out", str(tmp_path / "o")]
    err = _error(capsys, [*base, "--coordinator", "127.0.0.1:1", "--num-processes", "2"])
    assert "--num-processes and --process-id go together" in err
    err = _error(capsys, [*base, "--num-processes", "2", "--process-id", "2"])
    assert "--process-id must be in 0..1" in err
    assert not (tmp_path / "o").exists()


# --- demo / reproduce with a fake case (the real cases are tested in their own files)


def _fake_run(out, *, quick=False, progress=None, fail=False):
    progress("computing")
    (pathlib.Path(out) / "fake.png").write_bytes(b"not really a png")
    return CaseReport(
        name="fail" if fail else "fake",
        title="A fake case",
        numbers={"key_result": "S = 1.25", "action": jnp.asarray(1.25), "quick": quick,
                 "x64": bool(jax.config.read("jax_enable_x64"))},
        markdown="The fake case | shows a table cell escape.",
        figures=["fake.png"],
        checks={"action is 1.25": True, "always fails": not fail},
    )


def _crash(out, *, quick=False, progress=None):
    raise RuntimeError("a bug in the case")


@pytest.fixture
def fake_cases(monkeypatch):
    for name, run in [("fake", _fake_run), ("fail", lambda *a, **k: _fake_run(*a, **k, fail=True)),
                      ("crash", _crash)]:
        m = types.ModuleType(f"_fake_case_{name}")
        m.run = run
        monkeypatch.setitem(sys.modules, m.__name__, m)
    monkeypatch.setattr(cases, "CASES", {"fake": "_fake_case_fake"}, raising=False)
    return monkeypatch


def test_demo_quick(fake_cases, tmp_path, capsys):
    jax.config.update("jax_enable_x64", False)
    try:
        code = main(["demo", "--quick", "--out", str(tmp_path)])
        assert not jax.config.read("jax_enable_x64")  # restored after the run
    finally:
        jax.config.update("jax_enable_x64", True)
    assert code == 0
    captured = capsys.readouterr()
    assert "[fake] computing" in captured.err  # progress on stderr
    assert "total time" in captured.out
    md = (tmp_path / "report.md").read_text()
    assert "| fake | S = 1.25 | 2/2 |" in md
    assert "![A fake case: fake.png](fake.png)" in md
    assert "jax " + jax.__version__ in md
    data = json.loads((tmp_path / "report.json").read_text())
    (case,) = data["cases"]
    assert case["numbers"]["action"] == 1.25 and case["numbers"]["quick"] is True
    assert case["numbers"]["x64"] is True  # demo runs in float64
    assert case["checks"] == {"action is 1.25": True, "always fails": True}
    assert data["ok"] is True and case["seconds"] > 0


def test_demo_failures_still_write_reports(fake_cases, tmp_path, capsys):
    fake_cases.setattr(cases, "CASES", {"fail": "_fake_case_fail", "crash": "_fake_case_crash",
                                        "fake": "_fake_case_fake"})
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "fail: always fails" in err and "crash: ran without error" in err
    data = json.loads((tmp_path / "report.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["fail", "crash", "fake"]
    assert [c["ok"] for c in data["cases"]] == [False, False, True]  # the crash didn't stop it
    assert "RuntimeError: a bug in the case" in data["cases"][1]["numbers"]["error"]
    assert "✗ FAILED always fails" in (tmp_path / "report.md").read_text()


def test_reproduce(fake_cases, tmp_path, capsys):
    fake_cases.setattr(cases, "CASES", {"fake": "_fake_case_fake", "fail": "_fake_case_fail"})
    assert main(["reproduce", "fake", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["fake"]
    capsys.readouterr()
    err = _error(capsys, ["reproduce", "nope", "--out", str(tmp_path)])
    assert "unknown case 'nope'; valid cases: fake, fail" in err


def test_help_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "noether_jax", "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: noether-jax")
    for command in ("demo", "reproduce", "path"):
        assert command in proc.stdout


def test_default_output_folders_are_distinct():
    # demo, reproduce, path and network each write into their own folder by default, so one
    # command's report never overwrites another's; the example scripts use their own too.
    from noether_jax.cli._main import build_parser

    parser = build_parser()
    outs = {
        cmd: parser.parse_args([cmd, *rest]).out
        for cmd, rest in {
            "demo": [],
            "reproduce": ["ou-memory"],
            "path": ["m.py:sde", "--x0=0", "--x1=1", "--t1", "1"],
            "network": ["m.py:sde", "--center=0", "--scale", "1"],
        }.items()
    }
    assert outs == {c: f"noether_jax_out/{c}" for c in outs}
    scripts = sorted((REPO / "examples").glob("*.py"))
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert 'default="noether_jax_out"' not in text, script.name
        if "noether_jax_out" in text:
            assert f"noether_jax_out/examples/{script.stem}" in text, script.name
