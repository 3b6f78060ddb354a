"""gpu/table3.py, the full-length runs prepared for a machine with a GPU, on tiny settings on the CPU.

It must keep working while nobody runs it on a GPU: this runs the same script with the JAX
backend and without TensorFlow (``--without-tensorflow``, as on a GPU machine that has none)
on a tiny configuration of its own — ``configs/mnist_aat.toml`` whose test and monitor attack
is the 5-step training attack, since compiling the shipped 40-step ones takes minutes on a
CPU — for one epoch on 256 images and evaluation on 64, and checks what it writes; then that a second call
skips the finished work and keeps the run's dtype, that a time budget stops before any work,
and that bad arguments are refused before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "gpu" / "table3.py"


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

TINY_CONFIG = """\
extends = "{base}"

[experiment]
name = "tiny_aat++"

[attack]
test = ["mnist-linf-pgd5"]

[monitor]
subset = 16
attack = "mnist-linf-pgd5"
"""


def _run(arguments: list[str], *, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_tiny_run_writes_summary_table_and_tar_then_resumes(tmp_path: Path) -> None:
    config = tmp_path / "tiny_aat++.toml"
    config.write_text(TINY_CONFIG.format(base=(ROOT / "configs" / "mnist_aat.toml").as_posix()))
    out, runs = tmp_path / "out", tmp_path / "runs"
    common = ["--out", str(out), "--runs-dir", str(runs), "--configs", str(config), "--epochs", "1",
              "--subset", "256", "--eval-subset", "64", "--data-dir", str(DATA), "--without-tensorflow"]
    done = _run(common + ["--dtype", "float32"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "--dtype float32" in done.stdout  # passed on to aatk train
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "done" and summary["versions"]["tensorflow"].startswith("not imported")
    result = summary["results"]["tiny_aat++"]
    assert result["epochs_done"] == 1 and result["dtype"] == "float32" and result["status"] == "done"
    assert result["last_monitor"]["samples"] == "16"
    assert set(result["evaluations"]) == {"mnist-linf-pgd5"}
    table = (out / "table.md").read_text()
    assert table.startswith("Wang et al. (2020), full-length runs: 1 configurations; dtype float32; status: done")
    assert "\n| config | attack | epochs | test ex. | S | R | N | R_adv | N_adv | DIA | train s | eval s |" in table
    assert "| tiny_aat++ | mnist-linf-pgd5 | 1 | 64 |" in done.stdout
    with tarfile.open(out / "tiny_aatpp.tar") as archive:  # '+' written 'p' in the file name
        names = set(archive.getnames())
    assert {"tiny_aat++/model.keras", "tiny_aat++/monitor.csv", "tiny_aat++/table3.json"} <= names
    assert not any(name.startswith("tiny_aat++/checkpoints") for name in names)  # finished: the model only

    again = _run(common + ["--dtype", "mixed_bfloat16"])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "was started in float32; it goes on in float32, not mixed_bfloat16" in again.stdout
    assert "already trained" in again.stdout and "already evaluated" in again.stdout
    assert "] aatk train " not in again.stdout and "] aatk evaluate " not in again.stdout
    assert "; dtype float32; status: done" in again.stdout


def test_time_budget_stops_before_any_work(tmp_path: Path) -> None:
    done = _run(["--out", str(tmp_path), "--configs", "mnist_st", "--epochs", "1", "--subset", "256",
                 "--data-dir", str(DATA), "--without-tensorflow", "--time-budget", "1"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "stopped: time budget"
    assert summary["results"]["mnist_st"]["epochs_done"] == 0
    assert "] aatk train " not in done.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--configs", "mnist_aat", "no_such_config"], "no configs/no_such_config.toml"),
        (["--configs", "mnist_pi"], "pseudo-inputs"),
        (["--configs", "mnist_aat", "--eval-subset", "20000"], "exceeds mnist_aat's mnist test split"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, arguments: list[str], message: str) -> None:
    out = tmp_path / "out"
    done = _run(["--out", str(out), "--data-dir", str(DATA), *arguments], timeout=300)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert message in done.stderr and len(done.stderr.strip().splitlines()[-1]) > 0
    assert not out.exists()
