"""The documentation: the strict site build (which executes every tutorial), what the
built pages show (API reference, tutorial navigation), the docstrings' Markdown, and the
figures the docs quote from ``python -m theory.prop1``."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aatk", "theory")

# mkdocstrings renders docstrings as Markdown: a Sphinx role shows literally, and a Google
# "Example:" header is a generic admonition whose doctest lines collapse into one paragraph
# (the parser wants "Examples:").
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`")
EXAMPLE_HEADER = re.compile(r"^\s*Example:\s*$")
EXAMPLES_HEADER = re.compile(r"^\s*Examples:\s*$", flags=re.MULTILINE)
# TeX that nothing on the site renders: x_{i+1}, p^{7-k}, \frac, $...$.
PSEUDO_TEX = re.compile(
    r"[_^]\{|\\(?:frac|sum|prod|mathbb|mathcal|epsilon|eta|ell|infty|cdot|leq?|geq?)\b|\$[^$\s`][^$`]*\$"
)


def source_files() -> list[Path]:
    """Every Python file of the packages whose docstrings the API reference renders."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def docstrings(path: Path) -> Iterator[tuple[str, int, str]]:
    """(dotted path, line, text) of every docstring in a file: module, classes, functions and
    attributes (a string right after an assignment, as griffe reads them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, str]]:
        body = getattr(node, "body", [])
        for index, child in enumerate(body):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                # merge_init_into_class: __init__'s docstring is rendered under the class.
                name = prefix if child.name == "__init__" else f"{prefix}.{child.name}"
                if (text := ast.get_docstring(child, clean=True)) is not None:
                    yield name, child.lineno, text
                if isinstance(child, ast.ClassDef):
                    yield from walk(child, name)
            elif isinstance(child, (ast.Assign, ast.AnnAssign)) and index + 1 < len(body):
                following = body[index + 1]
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                if (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                    and len(targets) == 1
                    and isinstance(targets[0], ast.Name)
                ):
                    yield f"{prefix}.{targets[0].id}", following.lineno, following.value.value

    module = module_name(path)
    if (text := ast.get_docstring(tree, clean=True)) is not None:
        yield module, 1, text
    yield from walk(tree, module)


def _prose(html: str) -> str:
    """The text a reader sees outside code: code blocks, code spans and tags removed."""
    html = re.sub(r"<pre\b.*?</pre>", " ", html, flags=re.DOTALL)
    html = re.sub(r"<code\b.*?</code>", " ", html, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", html)


def api_reference_problems(site: Path) -> list[str]:
    """What is wrong with the built API reference: Sphinx roles shown literally, doctest
    examples not rendered as code, fewer rendered Examples sections than the rendered
    objects' docstrings have, or signatures left on one line."""
    pages = sorted((site / "api").glob("*/index.html"))
    if not pages:
        return [f"no API reference pages under {site / 'api'}"]
    # mkdocstrings wraps signatures at its line_length only when ruff or black is installed;
    # without one, a signature is a single line of 100-200 characters. Some slack for what
    # the formatter cannot split (a long default value).
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    line_length = int(re.search(r"^\s*line_length:\s*(\d+)", config, flags=re.MULTILINE).group(1))
    expected: dict[str, int] = {}
    for path in source_files():
        for name, _, text in docstrings(path):
            if count := len(EXAMPLES_HEADER.findall(text)):
                expected[name] = expected.get(name, 0) + count  # a class and its __init__ add up
    problems = []
    rendered = expected_here = 0
    for page in pages:
        where = page.relative_to(site)
        html = page.read_text(encoding="utf-8")
        prose = _prose(html)
        problems += [
            f"{where}: literal Sphinx role {match.group(0)!r}"
            for match in re.finditer(r":(?:class|func|meth|mod|data|attr|exc|obj):", prose)
        ]
        if "&gt;&gt;&gt;" in prose or ">>>" in prose:
            problems.append(f"{where}: a doctest prompt (>>>) outside a code block")
        if re.search(r"<summary>\s*Example\s*</summary>|<blockquote>\s*<blockquote>", html):
            problems.append(f"{where}: an 'Example:' admonition (doctest lines read as nested quotes)")
        for signature in re.findall(r'<div class="doc-signature highlight"><pre>(.*?)</pre>', html, flags=re.DOTALL):
            text = unescape(re.sub(r"<[^>]+>", "", signature))
            if max(len(line) for line in text.splitlines()) > line_length + 10:
                problems.append(f"{where}: signature not wrapped (ruff or black missing?): {text[:60]!r}")
        examples = r'<span class="doc-section-title">Examples:</span></p>\s*(<div class="highlight"><pre>)?'
        for match in re.finditer(examples, html):
            rendered += 1
            if match.group(1) is None:
                problems.append(f"{where}: an Examples section that does not start with a code block")
        expected_here += sum(count for name, count in expected.items() if f'id="{name}"' in html)
    if rendered != expected_here:
        problems.append(f"{rendered} Examples sections rendered, {expected_here} in the rendered objects' docstrings")
    return problems


def tutorial_navigation_problems(site: Path, tutorials: list[Path]) -> list[str]:
    """Every tutorial page has previous and next links in its footer, in the tutorials' order."""
    problems = []
    for index, tutorial in enumerate(tutorials):
        html = (site / "tutorials" / tutorial.stem / "index.html").read_text(encoding="utf-8")
        links = {}
        for tag in re.findall(r"<a\b[^>]*\bmd-footer__link--(?:prev|next)\b[^>]*>", html):
            direction = re.search(r"md-footer__link--(prev|next)", tag).group(1)
            links[direction] = re.search(r'href="([^"]*)"', tag).group(1)
        for direction, neighbour in (("prev", index - 1), ("next", index + 1)):
            if direction not in links:
                problems.append(f"{tutorial.name}: no {direction} link in the footer")
            elif 0 <= neighbour < len(tutorials) and links[direction] != f"../{tutorials[neighbour].stem}/":
                wanted = tutorials[neighbour].stem
                problems.append(f"{tutorial.name}: {direction} link goes to {links[direction]}, not {wanted}")
    return problems


@pytest.mark.docs
def test_site_builds_strictly_and_every_tutorial_executes(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env.pop("MPLBACKEND", None)  # the kernel's inline backend must capture the figures
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,  # the tutorials run MNIST jobs: about a quarter of an hour on 2 cores
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    tutorials = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    assert tutorials, "no tutorials found"
    for tutorial in tutorials:
        page = tmp_path / "site" / "tutorials" / tutorial.stem / "index.html"
        assert page.exists(), f"{tutorial.name} was not published"
        html = page.read_text(encoding="utf-8")
        assert "Traceback" not in html, f"{tutorial.name} shows a traceback"
        # Executed: printed outputs are present, and every figure shown was captured.
        assert "jp-RenderedText" in html, f"{tutorial.name} has no outputs"
        figures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]{10000,})", html)
        shown = tutorial.read_text(encoding="utf-8").count("plt.show()")
        assert len(figures) == shown, f"{tutorial.name}: {shown} figures shown, {len(figures)} rendered"
    # What the reader sees: cross-references instead of Sphinx roles, every example a code
    # block, and previous/next links from each tutorial to its neighbours.
    site = tmp_path / "site"
    problems = api_reference_problems(site) + tutorial_navigation_problems(site, tutorials)
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "jax",
    reason="the TensorFlow pass executes this tutorial in the docs build",
)
def test_backend_tutorial_runs_as_a_script_under_jax(tmp_path: Path) -> None:
    """The docs build (all tutorials) runs in the TensorFlow pass only; the one tutorial
    with JAX-specific branches runs here, as the plain script a jupytext percent file is."""
    env = dict(os.environ, MPLBACKEND="Agg", KERAS_BACKEND="jax")
    result = subprocess.run(
        [sys.executable, "05_backends_and_devices.py"],
        cwd=ROOT / "tutorials", capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert "Keras backend: jax" in result.stdout
    assert "largest difference between the runs" in result.stdout


def test_every_tutorial_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for tutorial in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        assert f"tutorials/{tutorial.name}" in config, f"{tutorial.name} missing from mkdocs.yml nav"


def test_paper_notes_quote_the_programs_exact_figures() -> None:
    """docs/paper-notes.md shows the claims of theory.prop1 as a Markdown table (the program's
    own table is 207 characters wide): each row's paper figure, exact figure and verdict must
    be what the program computes now."""
    result = subprocess.run(
        [sys.executable, "-m", "theory.prop1", "--json", "--samples", "1000"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    claims = json.loads(result.stdout)["claims"]
    notes = (ROOT / "docs" / "paper-notes.md").read_text(encoding="utf-8")
    rows = {}
    for line in notes.splitlines():
        # | # | claim (where) | paper | exact | Monte Carlo | verdict |; "\|" is a | inside a cell.
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if line.startswith("|") and cells and cells[0].isdigit():
            assert len(cells) == 6, line
            rows[int(cells[0])] = cells
    assert sorted(rows) == list(range(1, len(claims) + 1)), sorted(rows)
    for number, claim in enumerate(claims, start=1):
        _, _, paper, exact, _, verdict = rows[number]
        assert verdict.split(" [")[0] == claim["verdict"], (number, claim["verdict"], verdict)
        if claim["paper"] is None:
            assert paper == "—", (number, paper)
        else:
            assert float(re.search(r"\d+(?:\.\d+)?", paper).group()) == claim["paper"], (number, claim["paper"], paper)
        # The exact fraction (and its decimal), or every fraction of the evidence for a claim
        # that compares two figures.
        if claim["exact"] is not None:
            figures = [claim["exact"]]
            if "/" in claim["exact"]:
                figures.append(f"{claim['exact_float']:g}")
        else:
            figures = re.findall(r"\d+/\d+", claim["evidence"])
        for figure in figures:
            assert re.search(rf"(?<![\d/.]){re.escape(figure)}(?![\d/])", exact), (number, figure, exact)


def test_docstrings_are_markdown_for_mkdocstrings() -> None:
    """No Sphinx roles (use [`name`][full.dotted.path] cross-references or `code`) and no
    "Example:" headers (Google style's section is "Examples:") in aatk/ and theory/."""
    problems = []
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if SPHINX_ROLE.search(line) or EXAMPLE_HEADER.match(line):
                problems.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not problems, "\n".join(problems)


def _markdown_prose(text: str) -> str:
    """Markdown without its fenced code blocks and code spans."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+).+?\1", "", text, flags=re.DOTALL)


def test_math_is_written_in_unicode() -> None:
    """The site loads no math renderer (it must read the same offline), so formulas are plain
    Unicode or HTML <sub>/<sup>: no TeX in the pages, the docstrings or the tutorials' text."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert not re.findall(r"https?://\S+\.m?js\b", config), "mkdocs.yml loads a script from the network"
    pages = sorted((ROOT / "docs").glob("*.md"))
    texts = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in pages}
    for path in source_files():
        for name, line, docstring in docstrings(path):
            # Doctest lines are code.
            prose = "\n".join(row for row in docstring.splitlines() if not row.lstrip().startswith((">>>", "...")))
            texts[f"{path.relative_to(ROOT)}:{line} ({name})"] = prose
    for path in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        cells = re.split(r"^# %%", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
        markdown = [cell for cell in cells if cell.startswith(" [markdown]")]
        texts[str(path.relative_to(ROOT))] = "\n".join(
            re.sub(r"^# ?", "", row) for cell in markdown for row in cell.splitlines()[1:]
        )
    problems = [
        f"{where}: {match.group(0)!r}"
        for where, text in texts.items()
        for match in PSEUDO_TEX.finditer(_markdown_prose(text))
    ]
    assert not problems, "\n".join(problems)
