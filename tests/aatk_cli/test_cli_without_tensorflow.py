"""``aatk train``, ``evaluate`` and ``report`` where TensorFlow is not installed (Keras's JAX backend alone).

The three commands run in one subprocess whose imports of ``tensorflow`` and
``tensorflow_datasets`` fail as where they are not installed (an import hook: TensorFlow is
installed here). CIFAR-10, whose training batches are also augmented, is read from its binary
files and trained on a tiny configuration; MNIST takes the same path in
``tests/aatk_cli/test_gpu_script.py``. Then the same commands without any data folder stop at
once with a one-line error that says how to get the data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_testutils import ROOT, data_dir

DATA = data_dir()
CIFAR10 = DATA / "cifar10" / "cifar-10-batches-bin" if DATA else None

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "jax",
    reason="without TensorFlow only the JAX backend exists; tested once, in the JAX pass",
)

TINY_CIFAR10 = """\
[experiment]
name = "tiny_cifar10"
dataset = "cifar10"
backbone = "small_cnn"
method = "aat++"
keep = "flipped"
seed = 3

[training]
epochs = 1
batch_size = 32
learning_rate = 0.05
momentum = 0.9
weight_decay = 5e-4
milestones = []
subset = 64
init = "pytorch"
optimizer = "sgd-pytorch"

[attack]
train = {norm = "linf", eps = 0.03, step_size = 0.03, steps = 1, random_start = true}
test = [{name = "weak", norm = "linf", eps = 0.03, step_size = 0.03, steps = 1, random_start = true}]
"""

WITHOUT_TENSORFLOW = """\
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, NoTensorFlow())
from aatk.cli import main

statuses = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"statuses": statuses,
                  "tensorflow_imported": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
"""


def run_commands(*, commands: list[list[str]], cwd: Path) -> tuple[dict, str]:
    """Runs aatk's commands in order in one process without TensorFlow: (its summary, its output)."""
    env = {k: v for k, v in os.environ.items() if k != "AATK_DATA_DIR"}
    env.update(KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, json.dumps(commands)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), output


@pytest.mark.skipif(
    CIFAR10 is None or not (CIFAR10 / "data_batch_1.bin").is_file(),
    reason="CIFAR-10 binary files not found (set AATK_DATA_DIR or ../shared/data)",
)
def test_train_evaluate_report_cifar10_without_tensorflow(tmp_path: Path) -> None:
    config = tmp_path / "tiny_cifar10.toml"
    config.write_text(TINY_CIFAR10)
    run = tmp_path / "runs" / "tiny_cifar10"
    summary, output = run_commands(
        commands=[
            ["train", "--config", str(config), "--out", str(run), "--data-dir", str(DATA), "--verbose", "0"],
            ["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "32"],
            ["report", "--runs", str(run), "--out", str(tmp_path / "table.md")],
        ],
        cwd=tmp_path,
    )
    assert summary == {"statuses": [0, 0, 0], "tensorflow_imported": False}, output[-3000:]
    assert (run / "model.keras").is_file()
    evaluation = json.loads((run / "eval-weak.json").read_text())
    assert evaluation["samples"] == 32
    assert "| tiny_cifar10 |" in (tmp_path / "table.md").read_text()


def test_without_tensorflow_or_data_folder_the_error_says_how_to_get_the_data(tmp_path: Path) -> None:
    config = tmp_path / "tiny_cifar10.toml"
    config.write_text(TINY_CIFAR10)
    summary, output = run_commands(
        commands=[["train", "--config", str(config), "--out", str(tmp_path / "run"), "--verbose", "0"]], cwd=tmp_path
    )
    assert summary == {"statuses": [2], "tensorflow_imported": False}, output[-3000:]
    assert "no local copy of cifar10" in output and "--data-dir" in output and "cifar-10-binary.tar.gz" in output
    assert "Traceback" not in output
