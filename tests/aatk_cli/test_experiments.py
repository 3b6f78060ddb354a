"""The analysis and baseline commands on tiny real-MNIST runs: ablation, analyze, combine, pseudo-inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from aatk.ablation import COMBINATIONS, label, parse_combination
from aatk.cli import main
from aatk.experiments import class_examples

from cli_testutils import DATA, needs_data, tensorflow_pass_only

# These drive whole analyses end to end (minutes each); what they compute is tested under both
# backends in tests/aatk_analysis and tests/aatk_baselines, so they run in the TensorFlow pass only.
pytestmark = tensorflow_pass_only("end-to-end analyses run in the TensorFlow pass; their parts are tested under both backends")

TINY = """
[experiment]
name = "{name}"
dataset = "mnist"
backbone = "small_cnn"
method = "{method}"
seed = 5

[training]
epochs = 1
batch_size = 64
learning_rate = 0.01
momentum = 0.9
subset = 128

[attack]
train = {{norm = "linf", eps = 0.1, step_size = 0.05, steps = 1}}
test = [{{name = "weak", norm = "linf", eps = 0.1, step_size = 0.05, steps = 2, random_start = false}}]
"""


def _config(folder: Path, name: str, method: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(TINY.format(name=name, method=method))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three tiny trained runs: one-way ST, one-way AT and AAT++."""
    if DATA is None:
        pytest.skip("MNIST files not found")
    folder = tmp_path_factory.mktemp("runs")
    out = {}
    for name, method in (("st", "1way-st"), ("at", "1way-at"), ("aatpp", "aat++")):
        config = _config(folder, name, method)
        assert main(["train", "--config", str(config), "--data-dir", str(DATA), "--out", str(folder / name), "--verbose", "0"]) == 0
        out[name] = folder / name
    out["folder"] = folder
    return out


def _png(path: Path) -> np.ndarray:
    assert path.exists(), path
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50
    return pixels


# --- pure helpers ------------------------------------------------------------------------------


def test_the_fifteen_combinations_in_eq11_order() -> None:
    assert len(COMBINATIONS) == 15 and len(set(COMBINATIONS)) == 15
    assert COMBINATIONS[0] == ("st",) and COMBINATIONS[-1] == ("st", "as", "ar", "an")
    assert [label(c) for c in COMBINATIONS[4:7]] == ["ST+AS", "ST+AR", "ST+AN"]
    assert all(parse_combination(label(c)) == c for c in COMBINATIONS)


@pytest.mark.parametrize("text", ["", "st+", "st+xx", "st+st", "+"])
def test_bad_combinations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_combination(text)


def test_class_examples_takes_the_first_of_each_class() -> None:
    y = np.array([2, 0, 1, 0, 2, 1])
    x = np.arange(6)
    chosen_x, chosen_y = class_examples(x, y, per_class=2, num_classes=3)
    assert chosen_x.tolist() == [1, 3, 2, 5, 0, 4] and chosen_y.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="class 0 has 2 example"):
        class_examples(x, y, per_class=3, num_classes=3)


# --- commands on tiny runs ----------------------------------------------------------------------


@needs_data
def test_gradients_and_inversion_figures(runs, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    assert main(["analyze", "gradients", "--run", str(runs["aatpp"]), "--data-dir", str(DATA), "--out", str(out)]) == 0
    _png(out / "gradients.png")
    assert main(["analyze", "inversion", "--run", str(runs["aatpp"]), "--data-dir", str(DATA), "--out", str(out),
                 "--steps", "20", "--step-size", "0.05"]) == 0
    _png(out / "inversion.png")
    record = json.loads((out / "inversion.json").read_text())
    for representation in ("robust", "non_robust"):
        initial = np.array(record[representation]["initial_distance"])
        final = np.array(record[representation]["final_distance"])
        assert initial.shape == final.shape == (10,)
        assert np.mean(final < initial) >= 0.8  # gradient descent on the distance brings most closer
    # A one-way run shows only the way it trained: one gradient row, one inversion.
    one_way = tmp_path / "one_way"
    assert main(["analyze", "gradients", "--run", str(runs["at"]), "--data-dir", str(DATA), "--out", str(one_way)]) == 0
    assert _png(one_way / "gradients.png").shape[0] < _png(out / "gradients.png").shape[0]
    assert main(["analyze", "inversion", "--run", str(runs["at"]), "--data-dir", str(DATA), "--out", str(one_way),
                 "--steps", "2"]) == 0
    assert "robust" in (record := json.loads((one_way / "inversion.json").read_text())) and "non_robust" not in record


@needs_data
def test_eps_curve_and_detection(runs, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    assert main(["analyze", "eps-curve", "--runs", str(runs["st"]), str(runs["aatpp"]), "--norm", "linf",
                 "--eps", "0", "0.1", "0.3", "--steps", "2", "--subset", "40", "--data-dir", str(DATA),
                 "--out", str(out)]) == 0
    _png(out / "eps-linf.png")
    record = json.loads((out / "eps-linf.json").read_text())
    assert record["eps"] == [0.0, 0.1, 0.3] and record["samples"] == 40
    assert set(record["runs"]) == {"st", "aatpp"}
    assert all(len(acc) == 3 for acc in record["runs"]["aatpp"].values())
    assert set(record["runs"]["aatpp"]) == {"standard", "robust", "non_robust"}
    assert set(record["runs"]["st"]) == {"non_robust"}  # a one-way run shows the way it trained

    assert main(["analyze", "detection", "--runs", str(runs["aatpp"]), "--subset", "40", "--data-dir", str(DATA),
                 "--out", str(out)]) == 0
    _png(out / "roc-aatpp.png")
    table = (out / "detection.md").read_text()
    assert "| aatpp | weak |" in table
    figures = json.loads((out / "detection.json").read_text())["aatpp"]["figures"]
    assert all(0.0 <= value <= 1.0 for value in figures.values())


@needs_data
def test_combine_is_evaluated_like_a_three_way_model_and_reported(runs, tmp_path: Path, capsys) -> None:
    combined = tmp_path / "st+at"
    assert main(["combine", "--st-run", str(runs["st"]), "--at-run", str(runs["at"]), "--out", str(combined),
                 "--subset", "60", "--data-dir", str(DATA)]) == 0
    record = json.loads((combined / "eval-weak.json").read_text())
    assert record["method"] == "st+at" and record["samples"] == 60
    for run, keys in ((runs["st"], ("N", "N_adv")), (runs["at"], ("R", "R_adv"))):
        assert main(["evaluate", "--run", str(run), "--subset", "60", "--data-dir", str(DATA), "--no-adaptive"]) == 0
        own = json.loads((run / "eval-weak.json").read_text())["figures"]
        for key in keys:  # the test attack has no random start: the figures must agree exactly
            assert record["figures"][key] == own[key], key
    capsys.readouterr()
    assert main(["report", "--runs", str(runs["st"]), str(runs["at"]), str(combined)]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| run |"))
    row = next(line for line in table.splitlines() if "| st+at |" in line)
    cells = dict(zip((cell.strip() for cell in header.split("|")), (cell.strip() for cell in row.split("|"))))
    assert cells["S"] == "-"  # no standard way of its own: S is not reported
    assert cells["epochs"] == "1+1"  # the ST run's epochs, then the AT run's
    provenance = next(line for line in table.splitlines() if line.startswith(f"- {record['run']}: evaluated"))
    assert "; float32; seed [" in provenance, "the dtype the combined model was evaluated in"
    # Any preset, e.g. the strong evaluation; an attack that is neither shared nor a preset is refused.
    assert main(["combine", "--st-run", str(runs["st"]), "--at-run", str(runs["at"]), "--out", str(combined),
                 "--subset", "8", "--data-dir", str(DATA), "--attack", "mnist-apgd-ce", "--quiet"]) == 0
    preset = json.loads((combined / "eval-mnist-apgd-ce.json").read_text())
    assert preset["attack_config"]["attack"] == "apgd" and preset["samples"] == 8
    assert not list(combined.glob("*.partial.npz")), "a finished evaluation leaves no checkpoint"
    assert main(["combine", "--st-run", str(runs["st"]), "--at-run", str(runs["at"]), "--out", str(combined),
                 "--attack", "nonsense", "--data-dir", str(DATA)]) == 2
    assert "neither a test attack of both runs" in capsys.readouterr().err
    # The wrong kinds of runs are refused with a one-line error.
    assert main(["combine", "--st-run", str(runs["at"]), "--at-run", str(runs["st"]), "--out", str(combined)]) == 2
    assert "needs a '1way-st' run" in capsys.readouterr().err


@needs_data
def test_the_combine_folder_is_the_st_at_model_for_the_masking_and_detector_analyses(runs, tmp_path: Path,
                                                                                     capsys) -> None:
    combined = tmp_path / "st+at"
    assert main(["combine", "--st-run", str(runs["st"]), "--at-run", str(runs["at"]), "--out", str(combined),
                 "--subset", "8", "--data-dir", str(DATA), "--quiet"]) == 0
    pair = json.loads((combined / "combined.json").read_text())
    assert pair == {"st_run": str(runs["st"].resolve()), "at_run": str(runs["at"].resolve())}
    checks = tmp_path / "checks"
    assert main(["analyze", "detector", "--runs", str(combined), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "8", "--steps", "2", "--weights", "0", "--quiet"]) == 0
    detector = json.loads((checks / "detector.json").read_text())
    assert list(detector) == ["st+at"] and detector["st+at"]["samples"] == 8
    assert main(["analyze", "masking", "--run", str(combined), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "8", "--attack", "weak", "--steps", "2", "--quiet"]) == 0
    masking = json.loads((checks / "masking-st+at.json").read_text())
    assert {check["way"] for check in masking["checks"]} == {"standard", "robust", "non_robust"}
    assert masking["run"] == "st+at" and masking["samples"] == 8
    capsys.readouterr()
    # Where a trained run is needed, the combine folder is refused, and combine never writes into a run.
    assert main(["analyze", "gradients", "--run", str(combined), "--data-dir", str(DATA), "--out", str(checks)]) == 2
    assert "holds the ST+AT evaluations of aatk combine, not a trained run" in capsys.readouterr().err
    assert main(["combine", "--st-run", str(runs["st"]), "--at-run", str(runs["at"]), "--out", str(runs["at"]),
                 "--data-dir", str(DATA), "--quiet"]) == 2
    assert "is the folder of a trained run" in capsys.readouterr().err
    (combined / "combined.json").write_text("{")
    assert main(["analyze", "detector", "--runs", str(combined), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "8", "--quiet"]) == 2
    assert "combined.json cannot be read" in capsys.readouterr().err


@needs_data
def test_ablation_runs_each_combination_once_and_resumes(runs, tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, "abl", "aat++")
    out = tmp_path / "ablation"
    command = ["ablation", "--config", str(config), "--combinations", "st", "st+as", "--eval-subset", "40",
               "--data-dir", str(DATA), "--out", str(out), "--verbose", "0"]
    assert main(command) == 0
    table = (out / "ablation.md").read_text()
    assert "| ST |" in table and "| ST+AS |" in table and "| ST+AR |" not in table
    _png(out / "ablation.png")
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["samples"] == 40 and list(summary["results"]) == ["ST", "ST+AS"]
    assert json.loads((out / "ST+AS" / "config.json").read_text())["experiment"]["method"] == ["st", "as"]
    # A second call reuses the finished runs and their evaluations.
    stamps = {name: (out / name / "model.keras").stat().st_mtime_ns for name in ("ST", "ST+AS")}
    evaluations = {name: (out / name / "eval-weak.json").stat().st_mtime_ns for name in ("ST", "ST+AS")}
    assert main(command) == 0
    assert evaluations == {name: (out / name / "eval-weak.json").stat().st_mtime_ns for name in ("ST", "ST+AS")}
    assert json.loads((out / "ablation.json").read_text())["results"] == summary["results"]
    assert all((out / name / "model.keras").stat().st_mtime_ns >= stamps[name] for name in stamps)
    capsys.readouterr()
    assert main([*command[:4], "st+xx", *command[5:]]) == 2
    assert "unknown term 'xx'" in capsys.readouterr().err


@needs_data
def test_pseudo_inputs_build_and_train(runs, tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, "pi", "pi")
    out = tmp_path / "pi"
    assert main(["pseudo-inputs", "--config", str(config), "--st-run", str(runs["st"]), "--at-run", str(runs["at"]),
                 "--inversion-steps", "3", "--data-dir", str(DATA), "--out", str(out), "--verbose", "0"]) == 0
    with np.load(out / "pseudo_inputs.npz") as parts:
        assert parts["x_robust"].shape == parts["x_non_robust"].shape == (128, 28, 28, 1)
        assert np.all(parts["y_non_robust"] != parts["y_robust"])  # targets differ from the true labels
        assert parts["x_robust"].min() >= 0 and parts["x_robust"].max() <= 1
    assert main(["evaluate", "--run", str(out), "--subset", "40", "--data-dir", str(DATA), "--no-adaptive"]) == 0
    assert json.loads((out / "eval-weak.json").read_text())["method"] == "pi"
    capsys.readouterr()
    # 'pi' cannot be trained by 'aatk train', and pseudo-inputs needs method 'pi'.
    assert main(["train", "--config", str(config), "--data-dir", str(DATA), "--out", str(tmp_path / "x")]) == 2
    assert "aatk pseudo-inputs" in capsys.readouterr().err
    other = _config(tmp_path, "notpi", "aat")
    assert main(["pseudo-inputs", "--config", str(other), "--st-run", str(runs["st"]), "--at-run", str(runs["at"]),
                 "--out", str(tmp_path / "y")]) == 2
    assert "needs method = 'pi'" in capsys.readouterr().err


@needs_data
def test_dead_relu_figure_compares_recipes(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, "dead", "st")
    out = tmp_path / "dead"
    argv = ["analyze", "dead-relus", "--config", str(config), "--data-dir", str(DATA), "--out", str(out),
            "--steps", "3", "--every", "2", "--probe", "16", "--seeds", "0", "1",
            "--variant", "as configured", "--variant", 'keras;training.init="keras";training.warmup_steps=2']
    assert main(argv) == 0
    _png(out / "dead-relus.png")
    record = json.loads((out / "dead-relus.json").read_text())
    assert list(record["variants"]) == ["as configured", "keras"]
    assert record["variants"]["keras"]["overrides"] == {"training.init": "keras", "training.warmup_steps": 2}
    trajectory = record["variants"]["keras"]["seeds"]["1"]
    assert trajectory["steps"] == [0, 2, 3]  # every 2 steps and after the last
    assert trajectory["learning_rate"][1:] == pytest.approx([0.01, 0.01])  # warm-up over 2 steps: steps 1, 2 reach it
    assert len(trajectory["shares"]) == 13  # six ReLU layers per small CNN, and the head
    assert all(len(v) == 3 and all(0 <= s <= 1 for s in v) for v in trajectory["shares"].values())
    assert set(trajectory["accuracy"]) == {"standard", "robust", "non_robust"}
    assert main(["analyze", "dead-relus", "--config", str(config), "--out", str(out), "--variant", "x;training=1"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err
