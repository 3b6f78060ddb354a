"""The aatk command line: configurations, training with resume after a real kill, evaluation, report."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aatk.cli import main
from aatk.configs import ATTACK_PRESETS, ConfigError, load_config

from cli_testutils import tensorflow_pass_only

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("[a-z]*.toml"))


def _data_dir() -> Path | None:
    candidates = [os.environ.get("AATK_DATA_DIR"), ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


DATA = _data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="MNIST files not found (set AATK_DATA_DIR or ../shared/data)")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    assert config.test_attacks, "every row is evaluated"
    assert config.make_train_attack().eps > 0
    if config.dataset == "mnist":
        # YOPO's PGD-40 first (Table 3 is compared under it), then both literal readings of Table 4a.
        assert list(config.test_attacks) == ["mnist-linf-pgd40", "mnist-linf-test", "mnist-l2-test"]
        assert config.test_attacks["mnist-linf-pgd40"] == {
            "norm": "linf", "eps": 0.3, "step_size": 0.01, "steps": 40, "random_start": True,
        }
        assert config.monitor_attack == "mnist-linf-pgd40"
        # The paper's numerics and the warm-up that lets lr 0.1 train; the lr reaches 0.1 within the
        # first epoch even on 20,000 images (79 steps of 256).
        assert (config.init, config.optimizer, config.learning_rate) == ("pytorch", "sgd-pytorch", 0.1)
        assert 0 < config.warmup_steps < 20_000 / config.batch_size
        # The remedies for the adversarial methods' collapse at lr 0.1 (docs/results.md).
        assert (config.keep, config.clipnorm) == ("flipped", 10.0)
        from aatk.training import build_optimizer

        assert build_optimizer(config, steps_per_epoch=235).global_clipnorm == 10.0
        train = config.make_train_attack()
        if path.stem.endswith("_l2"):
            assert train.norm == "l2"  # Table 4a's literal l2 reading
        else:
            assert (train.norm, train.random_start) == ("linf", True)
            assert train.steps * train.step_size >= train.eps == 0.3, "the training attack reaches eps 0.3"


def test_the_two_mnist_readings_differ_only_in_the_norm() -> None:
    linf, l2 = ATTACK_PRESETS["mnist-linf-test"], ATTACK_PRESETS["mnist-l2-test"]
    assert {k: v for k, v in linf.items() if k != "norm"} == {k: v for k, v in l2.items() if k != "norm"}
    assert load_config(ROOT / "configs" / "mnist_aat++_l2.toml").train_attack["norm"] == "l2"
    assert load_config(ROOT / "configs" / "mnist_aat++.toml").train_attack["norm"] == "linf"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


TINY = """
[experiment]
name = "tiny"
dataset = "mnist"
backbone = "small_cnn"
method = "aat++"
seed = 3

[training]
epochs = 3
batch_size = 64
learning_rate = 0.05
momentum = 0.9
weight_decay = 5e-4
milestones = [2]
subset = 256
init = "pytorch"
optimizer = "sgd-pytorch"
warmup_steps = 3

[attack]
train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}
test = [{name = "weak", norm = "linf", eps = 0.1, step_size = 0.05, steps = 2, random_start = true}]

[monitor]
subset = 32
"""


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("seed = 3", "seed = 3\ncolour = 1"), "experiment.colour"),
        (("[attack]", "[attack]\nfoo = 1"), "attack.foo"),
        (("epochs = 3", "epochs = 0"), "training.epochs"),
        (("epochs = 3", 'epochs = "3"'), "training.epochs"),
        (("batch_size = 64", "batch_size = true"), "training.batch_size"),
        (('method = "aat++"', 'method = "bogus"'), "experiment.method"),
        (('method = "aat++"', 'method = ["st", "xx"]'), "experiment.method"),
        (('dataset = "mnist"', 'dataset = "svhn"'), "experiment.dataset"),
        (('backbone = "small_cnn"', 'backbone = "vgg"'), "experiment.backbone"),
        (("milestones = [2]", "milestones = [2, 1]"), "training.milestones"),
        (("milestones = [2]", "milestones = [0, 2]"), "training.milestones"),
        (("learning_rate = 0.05", "learning_rate = -1"), "training.learning_rate"),
        (("eps = 0.1, step_size = 0.05, steps = 1,", "eps = -0.1, step_size = 0.05, steps = 1,"), "attack.train"),
        (("steps = 1,", "steps = 1, colour = 2,"), "attack.train.colour"),
        (('test = [{name = "weak"', 'test = ["nope", {name = "weak"'), "attack.test[0]"),
        (("[training]", "[training]\n[extra]"), "extra"),
        (('name = "tiny"\n', ""), "experiment.name"),
        (('init = "pytorch"', 'init = "torch"'), "training.init"),
        (('optimizer = "sgd-pytorch"', 'optimizer = "adam"'), "training.optimizer"),
        (("warmup_steps = 3", "warmup_steps = -1"), "training.warmup_steps"),
        (("warmup_steps = 3", 'warmup_steps = 3\ndtype = "float16"'), "training.dtype"),
        (("subset = 32", "subset = -5"), "monitor.subset"),
        (("subset = 32", "subset = 32\nevery = 0"), "monitor.every"),
        (("subset = 32", 'subset = 32\nattack = "strong"'), "monitor.attack"),
        (("subset = 32", "subset = 32\ncolour = 1"), "monitor.colour"),
        (("seed = 3", 'seed = 3\nkeep = "all"'), "experiment.keep"),
        (("warmup_steps = 3", "warmup_steps = 3\nclipnorm = -1.0"), "training.clipnorm"),
        (("warmup_steps = 3", "warmup_steps = 3\nattack_warmup_steps = -2"), "training.attack_warmup_steps"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, edit, key) -> None:
    text = TINY.replace(*edit, 1)
    assert text != TINY
    with pytest.raises(ConfigError, match="^" + re.escape(key) + "[:.]"):
        load_config(_write(tmp_path, text))


def test_cli_config_errors_are_one_line_with_status_2(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["train", "--config", str(_write(tmp_path, TINY.replace("seed = 3", "seed = 3\nxx = 1")))]) == 2
    assert main(["train", "--config", str(_write(tmp_path, "not [ toml"))]) == 2
    assert main(["frobnicate"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("aatk: error: ") for line in errors)
    assert "experiment.xx" in errors[1]


def test_extends_and_overrides(tmp_path: Path) -> None:
    base = tmp_path / "_base.toml"
    base.write_text(TINY)
    child = tmp_path / "child.toml"
    child.write_text('extends = "_base.toml"\n[experiment]\nname = "child"\nmethod = "aat"\n')
    config = load_config(child, overrides={"training.epochs": 7})
    assert (config.name, config.method, config.epochs, config.batch_size) == ("child", "aat", 7, 64)
    with pytest.raises(ConfigError, match="^training.nope"):
        load_config(child, overrides={"training.nope": 1})
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop.toml"\n')
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def _command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "aatk", "train", "--config", str(config), "--data-dir", str(DATA), "--out", str(out), "--verbose", "0"]


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.models.load_model(path).get_weights()]


@needs_data
@tensorflow_pass_only("a real SIGKILL and resume of the command-line process; the bit-identical resume itself "
                      "is checked under both backends in test_training_fit.py")
def test_training_killed_mid_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    config = _write(tmp_path, TINY)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    straight = tmp_path / "straight"
    subprocess.run(_command(config, straight), check=True, env=env, capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_command(config, interrupted), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = interrupted / "state.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads(state.read_text())["epochs_done"] < 3
    assert not (interrupted / "model.keras").exists()

    resumed = subprocess.run(_command(config, interrupted), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for a, b in zip(_weights(straight / "model.keras"), _weights(interrupted / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    straight_log = (straight / "log.csv").read_text().splitlines()
    resumed_log = (interrupted / "log.csv").read_text().splitlines()
    assert len(resumed_log) == 4 and resumed_log[0] == straight_log[0]
    assert [line.split(",")[0] for line in resumed_log[1:]] == ["0", "1", "2"]
    # Each epoch's rate (of its last step): the 3-step warm-up ends inside the 4-step first epoch,
    # and milestone 2 divides the rate by 10 from the first step of the third epoch on.
    with (straight / "log.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005])
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    # The attacked monitor after every epoch, the same after the kill and the resume.
    monitor = (straight / "monitor.csv").read_text().splitlines()
    assert monitor[0] == "epoch,attack,samples,S,R,N,R_adv,N_adv,DIA"
    assert [line.split(",")[:3] for line in monitor[1:]] == [[str(e), "weak", "32"] for e in (1, 2, 3)]
    assert (interrupted / "monitor.csv").read_text() == (straight / "monitor.csv").read_text()

    # The run folder refuses another configuration.
    other = _write(tmp_path, TINY.replace("seed = 3", "seed = 4"))
    failed = subprocess.run(_command(other, interrupted), env=env, capture_output=True, text=True, timeout=600)
    assert failed.returncode == 2 and "different configuration" in failed.stderr

    # Evaluate and report; once more in bfloat16, written beside the float32 figures.
    assert main(["evaluate", "--run", str(straight), "--data-dir", str(DATA), "--subset", "100", "--no-adaptive"]) == 0
    record = json.loads((straight / "eval-weak.json").read_text())
    assert record["samples"] == 100 and 0 <= record["figures"]["S"] <= 1
    assert (record["trained_dtype"], record["evaluated_dtype"]) == ("float32", "float32")
    assert main(["evaluate", "--run", str(straight), "--data-dir", str(DATA), "--subset", "20", "--no-adaptive",
                 "--dtype", "mixed_bfloat16"]) == 0
    recast = json.loads((straight / "eval-weak.mixed_bfloat16.json").read_text())
    assert (recast["run"], recast["evaluated_dtype"], recast["samples"]) == ("tiny [mixed_bfloat16]", "mixed_bfloat16", 20)
    assert json.loads((straight / "eval-weak.json").read_text()) == record
    table = tmp_path / "table.md"
    assert main(["report", "--runs", str(straight), "--out", str(table)]) == 0
    assert "| tiny | aat++ |" in table.read_text()


def test_evaluate_and_report_need_finished_runs(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert main(["report", "--runs", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert "not a run folder (no config.json)" in errors and "no evaluation" in errors
    (tmp_path / "config.json").write_text("{}")
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "no model.keras" in capsys.readouterr().err
    (tmp_path / "state.json").write_text(json.dumps({"epochs_done": 3}))
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "stopped after epoch 3" in (error := capsys.readouterr().err) and "--epochs 3 --out" in error


# --- without TensorFlow (KERAS_BACKEND=jax on a GPU machine) ----------------------------------


def test_epoch_order_is_a_seeded_permutation_redrawn_every_epoch() -> None:
    from aatk.training import epoch_order

    first = epoch_order(50, seed=3, epoch=0)
    assert sorted(first.tolist()) == list(range(50))
    np.testing.assert_array_equal(first, epoch_order(50, seed=3, epoch=0))
    assert not np.array_equal(first, epoch_order(50, seed=3, epoch=1))
    assert not np.array_equal(first, epoch_order(50, seed=4, epoch=0))
