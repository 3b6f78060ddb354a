"""The README's examples run as written, so that they cannot rot.

The example of "Using aatk" (the first ``python`` block of that section) runs in a subprocess
from an empty folder with ``AATK_DATA_DIR`` pointing at MNIST's idx files, and must finish and
print a report whose clean accuracies a correct run reaches and a broken one does not (in the
TensorFlow pass only). The section "Install" must name only extras that ``pyproject.toml``
defines, and its recipes that install aatk with ``--no-deps`` must list pyproject's other
dependencies: a dependency added to one must be added to the other.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _data_dir() -> Path | None:
    """The folder holding MNIST's idx files: ``$AATK_DATA_DIR`` or ``../shared/data``, else None."""
    for candidate in (os.environ.get("AATK_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


DATA = _data_dir()


def readme_section(*, title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def code_blocks(*, section: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in a section, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def clean_accuracies(*, report: str) -> dict[str, float]:
    """S, R and N (in %) from the ``Clean:`` line that ``print(report)`` writes."""
    match = re.search(r"Clean:\s+S\s+([\d.]+)\s+R\s+([\d.]+)\s+N\s+([\d.]+)", report)
    assert match, f"no 'Clean: S .. R .. N ..' line in the output:\n{report[-3000:]}"
    return dict(zip(("S", "R", "N"), map(float, match.groups())))


def test_using_aatk_has_one_runnable_example() -> None:
    blocks = code_blocks(section=readme_section(title="Using aatk"), language="python")
    assert blocks, "the section 'Using aatk' has no ```python block"
    example = blocks[0]
    compile(example, "README.md (Using aatk)", "exec")
    # Complete as written: data, encoders, recipe, fit, ways, PGD-40, save and load.
    for needed in ("aatk.datasets.load(", "aatk.optim.TorchSGD(", "PiecewiseConstantWithWarmup(", "model.fit(",
                   "way=way", "steps=40", "aatk.evaluate(", "model.save(", "aatk.load_model("):
        assert needed in example, f"the example lost {needed!r}"


@pytest.mark.skipif(DATA is None, reason="MNIST files not found (set AATK_DATA_DIR or ../shared/data)")
@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the example is the same code under both backends (aatk/backend/ is tested on both); it runs in the "
    "TensorFlow pass only: under JAX on a 2-core CPU it takes about 9 minutes (compiling the 40-step attacks)",
)
def test_using_aatk_example_runs_as_written(tmp_path: Path) -> None:
    example = code_blocks(section=readme_section(title="Using aatk"), language="python")[0]
    script = tmp_path / "readme_example.py"
    script.write_text(example, encoding="utf-8")
    env = dict(os.environ, AATK_DATA_DIR=str(DATA), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - began
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    # 100 AAT++ steps reach S ≈ 92, R ≈ 82, N ≈ 90 and DIA ≈ 20 (seed 0); an untrained or collapsed way is near 10.
    figures = clean_accuracies(report=done.stdout)
    assert figures["S"] >= 80 and figures["R"] >= 60 and figures["N"] >= 80, (figures, done.stdout[-3000:])
    dia = re.search(r"R_adv\s+([\d.]+)\s+N_adv\s+([\d.]+)\s+DIA", done.stdout)
    assert dia and float(dia.group(1)) > float(dia.group(2)), done.stdout[-3000:]  # robust way is the robust one
    for way in ("standard", "robust", "non_robust"):
        assert re.search(rf"^{way} way: [\d.]+% of one test batch right$", done.stdout, flags=re.MULTILINE)
    assert (tmp_path / "aat++_mnist.keras").is_file()
    print(f"README example: {seconds:.0f} s")  # shown with -s; the example is sized for about a minute


# --- Install ---------------------------------------------------------------------------------------


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirement_name(requirement: str) -> str:
    """The distribution a requirement names, normalised (``importlib_resources`` → ``importlib-resources``)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def without_marker(requirement: str) -> str:
    return requirement.split(";")[0].replace(" ", "")


def quoted_requirements(*, line: str) -> list[str]:
    """The quoted arguments of one ``pip install`` line of the README, without spaces."""
    return [argument.replace(" ", "") for argument in re.findall(r'"([^"]+)"', line.split("#")[0])]


def install_lines() -> list[str]:
    """The command lines of the bash blocks of "Install", a line continued with ``\\`` joined to the next."""
    section = readme_section(title="Install")
    blocks = code_blocks(section=section, language="bash")
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def test_install_names_only_extras_that_pyproject_defines() -> None:
    extras = pyproject()["optional-dependencies"]
    readme = README.read_text(encoding="utf-8")
    named = {extra for group in re.findall(r'pip install -e "\.\[([^\]]+)\]"', readme) for extra in group.split(",")}
    assert {"jax", "jax-cuda"} <= named <= set(extras), named - set(extras)
    assert extras["jax-cuda"] == ["jax[cuda12]>=0.4.30"] and extras["jax"] == ["jax>=0.4.30"]
    for requirements in extras.values():
        for requirement in requirements:
            Requirement(requirement)  # valid PEP 508, as pip will read it
    jax_cuda = Requirement(extras["jax-cuda"][0])
    assert (jax_cuda.name, jax_cuda.extras) == ("jax", {"cuda12"})  # JAX's own extra: CUDA 12 wheels from PyPI
    # aatk is installed from the source tree: no index has a package of that name to offer.
    assert not re.search(r"pip install\s+(-U\s+)?[\"']?aatk\b", readme)


def test_install_by_hand_lists_every_other_dependency() -> None:
    """The recipes that install aatk with --no-deps name pyproject's other dependencies, so that a
    dependency added to pyproject.toml must be added to the README's "Install" too."""
    dependencies = [without_marker(r) for r in pyproject()["dependencies"]]
    tensorflow = {"tensorflow", "tensorflow-cpu"}
    # tensorflow-datasets and what it needs; tensorboard, for tf.summary (aatk train --tensorboard)
    tensorflow_only = tensorflow | {"tensorflow-datasets", "importlib-resources", "tensorboard"}
    lines = install_lines()
    by_hand = [line for line in lines if line.startswith('pip install "keras')]
    assert len(by_hand) == 2, by_hand
    with_tensorflow, with_jax = (quoted_requirements(line=line) for line in by_hand)
    expected = [r for r in dependencies if requirement_name(r) not in tensorflow]
    assert sorted(with_tensorflow) == sorted(expected), "README 'Install' (TensorFlow on a GPU) lacks or adds a dependency"
    expected = [r for r in dependencies if requirement_name(r) not in tensorflow_only]
    expected += pyproject()["optional-dependencies"]["jax-cuda"]
    assert sorted(with_jax) == sorted(expected), "README 'Install' (without TensorFlow) lacks or adds a dependency"
    # The GPU build of TensorFlow with pyproject's bound on TensorFlow.
    bound = next(r for r in dependencies if requirement_name(r) == "tensorflow").removeprefix("tensorflow")
    assert f'pip install "tensorflow[and-cuda]{bound}"' in lines
    assert lines.count("pip install --no-deps -e .") == 2
