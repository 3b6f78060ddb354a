"""The documentation: the strict site build (which executes every tutorial) and the
figures the docs quote from ``python -m theory.prop1``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    """docs/paper-notes.md shows the output of theory.prop1; its exact figures and verdicts
    must be what the program computes now."""
    result = subprocess.run(
        [sys.executable, "-m", "theory.prop1", "--json", "--samples", "1000"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    claims = json.loads(result.stdout)["claims"]
    notes = (ROOT / "docs" / "paper-notes.md").read_text(encoding="utf-8")
    rows = {
        int(match.group(1)): match.group(0)
        for match in re.finditer(r"^(\d+)\s{2,}.*$", notes, flags=re.MULTILINE)
    }
    assert len(rows) == len(claims)
    for number, claim in enumerate(claims, start=1):
        row = rows[number]
        assert claim["verdict"] in row, (number, claim["verdict"], row)
        if claim["exact"] is not None:
            assert re.search(rf"(?<![\d/]){re.escape(claim['exact'])}(?![\d/])", row), (number, claim["exact"], row)
