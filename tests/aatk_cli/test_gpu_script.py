"""gpu/table3.py, the prepared full-length GPU run of Table 3, on tiny settings on the CPU.

It must keep working between the sessions that are lent a GPU: this runs the same
script with the JAX backend — one epoch on 128 images, evaluation on 100 — and checks
what it writes. (Whether TensorFlow is installed does not matter to it: aatk then
reads MNIST with NumPy; tests/aatk_cli/test_cli.py checks that path.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _data_dir() -> Path | None:
    for candidate in (os.environ.get("AATK_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


DATA = _data_dir()

pytestmark = [
    pytest.mark.skipif(DATA is None, reason="MNIST files not found (set AATK_DATA_DIR or ../shared/data)"),
    pytest.mark.skipif(
        os.environ.get("KERAS_BACKEND", "tensorflow") != "jax",
        reason="the script always runs JAX; it is tested once, in the JAX pass",
    ),
]


def test_tiny_table3_run_writes_the_summary_and_the_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, str(ROOT / "gpu" / "table3.py"), "--out", str(out), "--runs-dir", str(tmp_path / "runs"),
        "--methods", "aat", "--epochs", "1", "--subset", "128", "--eval-subset", "100",
        "--learning-rate", "0.01", "--data-dir", str(DATA),
    ]
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "done"
    assert "\n| method | attack | epochs |" in (out / "table.md").read_text()
    assert "| aat | mnist-linf-test | 1 | 100 |" in done.stdout
    assert (out / "mnist_aat.tar").exists()  # the run folder, packed to come back from the device


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "gpu" / "table3.py"), "--out", str(tmp_path), "--epochs", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and "epochs" in done.stderr
