"""The documentation cannot rot: every Python code block of the site (`docs/**/*.md`) and of
the README runs, and every public name of `noether_jax` is in the API reference.

Each page's ```python blocks run in order in one namespace (a later block may use what an
earlier one defined), in a temporary working folder, with matplotlib's Agg backend. A block
that must not run here (it needs a cluster or a GPU, or runs for minutes) is fenced as
```python {.no-test}: mkdocs still highlights it, and the page says why it is not run. Keep
that rare, and keep the examples small (few nodes, small batches): this whole file should
cost under a minute on one core. Shell commands are ```bash blocks, not run.
"""

import pathlib
import re
import types

import pytest

import noether_jax as nj

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# An opening fence, its info string and body, and the closing fence at the same indent.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
NO_TEST = ".no-test"


def _pages() -> list[pathlib.Path]:
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def python_blocks(text: str) -> list[tuple[str, bool]]:
    """(code, runs) for each ```python block of a Markdown text, in order."""
    blocks = []
    for m in _FENCE.finditer(text):
        info = m.group("info").strip()
        if info.split("{")[0].strip() not in ("python", "py"):
            continue
        indent = m.group("indent")
        code = "\n".join(
            line[len(indent):] if line.startswith(indent) else line
            for line in m.group("body").splitlines()
        )
        blocks.append((code, NO_TEST not in info))
    return blocks


def _pages_with_code() -> list[pathlib.Path]:
    return [p for p in _pages() if python_blocks(p.read_text(encoding="utf-8"))]


def test_fence_parser():
    text = "a\n```python\nx = 1\n```\n\n```bash\nls\n```\n  ```python {.no-test}\n  y = 2\n  ```\n"
    assert python_blocks(text) == [("x = 1", True), ("y = 2", False)]


@pytest.mark.parametrize(
    "page", _pages_with_code(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import jax

    monkeypatch.chdir(tmp_path)  # what the examples write goes here
    x64 = bool(jax.config.read("jax_enable_x64"))
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    try:
        for i, (code, runs) in enumerate(python_blocks(page.read_text(encoding="utf-8"))):
            if not runs:
                continue
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}[block {i}]", "exec"), namespace)
            except Exception as e:
                raise AssertionError(
                    f"{page.relative_to(ROOT)}, code block {i} failed:\n{code}"
                ) from e
    finally:
        jax.config.update("jax_enable_x64", x64)
        import matplotlib.pyplot as plt

        plt.close("all")


def test_every_public_name_is_in_the_api_reference():
    text = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: noether_jax\.(\w+)\s*$", text, re.MULTILINE))
    # Subpackages (`noether_jax.cli`, an attribute once imported) are not API names.
    public = {
        n for n in dir(nj)
        if not n.startswith("_") and not isinstance(getattr(nj, n), types.ModuleType)
    }
    assert len(public) >= 66
    assert public - documented == set(), "public names missing from docs/api/*.md"
    assert documented - public == set(), "docs/api/*.md documents names that are not public"


def test_links_between_pages_resolve():
    """Relative links (pages, figures) point at files of the checkout, so that they work on
    GitHub as well as in the built site."""
    link = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s]+?)(?:#[^)]*)?\)")
    broken = []
    for page in _pages():
        for target in link.findall(page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_test_blocks_are_rare():
    skipped = sum(
        not runs for p in _pages() for _, runs in python_blocks(p.read_text(encoding="utf-8"))
    )
    assert skipped <= 3, f"{skipped} code blocks are marked {NO_TEST}"

