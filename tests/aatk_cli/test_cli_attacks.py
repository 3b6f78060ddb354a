"""Attacks in configurations: APGD and Square by name, ensembles evaluated as a worst case, and the
strong presets from the command line (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aatk import evaluation
from aatk.attacks import APGD, PGD, SquareAttack
from aatk.cli import _attack_summary, main
from aatk.configs import ATTACK_PRESETS, ConfigError, attack_from_spec, build_attack, load_config

from cli_testutils import data_dir, tensorflow_pass_only

DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="MNIST files not found (set AATK_DATA_DIR or ../shared/data)")

BASE = """
[experiment]
name = "tiny"
dataset = "mnist"
backbone = "small_cnn"
method = "aat"
seed = 1

[training]
epochs = 1
batch_size = 64
learning_rate = 0.05
subset = 128

[attack]
train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}
test = [
  {name = "weak", norm = "linf", eps = 0.1, step_size = 0.05, steps = 2},
  {name = "ensemble", cascade = true, attacks = [
    {norm = "linf", eps = 0.1, step_size = 0.05, steps = 2},
    {attack = "apgd", norm = "linf", eps = 0.1, steps = 3},
    {attack = "square", norm = "linf", eps = 0.1, queries = 5},
  ]},
]

[monitor]
subset = 0
"""


def _config(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_ensembles_and_attack_kinds_load(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    attacks = config.make_test_attacks()
    assert isinstance(attacks["weak"], PGD)
    ensemble = attacks["ensemble"]
    assert [type(a) for a in ensemble] == [PGD, APGD, SquareAttack]
    assert config.test_attacks["ensemble"]["cascade"] is True
    assert ensemble[2].queries == 5 and ensemble[1].steps == 3


@pytest.mark.parametrize("name", ["mnist-strong", "mnist-autoattack", "cifar10-strong", "cifar10-autoattack"])
def test_strong_presets_are_apgd_ce_apgd_t_and_square(name: str) -> None:
    _, spec = attack_from_spec(name, key="test")
    attacks = build_attack(spec, seed=0)
    assert [type(a) for a in attacks] == [APGD, APGD, SquareAttack] and spec["cascade"]
    untargeted, targeted, square = attacks
    assert (untargeted.loss, untargeted.targeted) == ("ce", False)
    assert (targeted.loss, targeted.targeted) == ("dlr", True)
    assert {a.norm for a in attacks} == {"linf"} and len({a.eps for a in attacks}) == 1
    assert attacks[0].eps == (0.3 if name.startswith("mnist") else 8 / 255)
    full = name.endswith("autoattack")
    assert (targeted.target_classes, square.queries) == ((9, 5000) if full else (3, 1000))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('attack = "apgd", norm', 'attack = "fgsm", norm'), "unknown attack 'fgsm'"),
        (("steps = 3}", "steps = 3, step_size = 0.1}"), "unknown argument of APGD"),
        (("queries = 5}", "queries = 0}"), "queries"),
        (("cascade = true", 'cascade = "yes"'), "cascade"),
        (("cascade = true", "cascade = true, colour = 1"), "unknown key of an ensemble"),
        (("attacks = [", "attacks = [\n    [],"), "attack.test"),
        (("subset = 0", 'subset = 0\nattack = "ensemble"'), "is an ensemble"),
        (('train = {norm = "linf"', 'train = {attack = "apgd", norm = "linf"'), "unknown argument of APGD"),
        (('train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}',
          'train = "mnist-apgd-ce"'), "training attack must be PGD"),
        (('train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}',
          'train = "mnist-strong"'), "not an ensemble"),
    ],
)
def test_bad_attack_tables_name_the_key(tmp_path: Path, edit, message: str) -> None:
    old, new = edit
    assert old in BASE
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, BASE.replace(old, new)))


def test_attack_summaries_in_reports() -> None:
    assert _attack_summary({"norm": "linf", "eps": 0.3, "step_size": 0.01, "steps": 40, "random_start": True}) == (
        "linf ε=0.3, 40 steps of 0.01, random start"
    )
    _, spec = attack_from_spec("mnist-strong", key="test")
    assert _attack_summary(spec) == (
        "worst case of [APGD-CE linf ε=0.3, 100 steps; APGD-T linf ε=0.3, 100 steps, 3 target classes; "
        "Square linf ε=0.3, 1000 queries], cascade"
    )


@needs_data
@tensorflow_pass_only("trains and evaluates a tiny run: the backend-independent command path")
def test_evaluate_an_ensemble_and_a_preset_the_run_does_not_list(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--config", str(_config(tmp_path)), "--data-dir", str(DATA), "--out", str(run),
                 "--verbose", "0"]) == 0
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "24", "--attack", "ensemble",
                 "--no-adaptive", "--quiet"]) == 0
    record = json.loads((run / "eval-ensemble.json").read_text())
    assert record["samples"] == 24 and record["attack_config"]["cascade"] is True
    assert [a.get("attack", "pgd") for a in record["attack_config"]["attacks"]] == ["pgd", "apgd", "square"]
    markdown = (run / "eval-ensemble.md").read_text()
    assert "Worst case per example over" in markdown and "| APGD-CE |" in markdown
    # A preset that is not among the run's test attacks; the adaptive attack runs with its APGD.
    assert ATTACK_PRESETS["mnist-apgd-ce"]["attack"] == "apgd"
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--attack",
                 "mnist-apgd-ce", "--quiet"]) == 0
    preset = json.loads((run / "eval-mnist-apgd-ce.json").read_text())
    assert "RAD_adaptive" in preset["figures"]
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--attack", "nonsense", "--quiet"]) == 2
    assert "neither a test attack of this run" in capsys.readouterr().err
    assert main(["report", "--runs", str(run)]) == 0
    assert "worst case of [" in capsys.readouterr().out
    # The masking checks and the detector's adaptive attacks, from the command line.
    checks = tmp_path / "checks"
    assert main(["analyze", "masking", "--run", str(run), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "16", "--attack", "ensemble", "--steps", "2", "--quiet"]) == 0
    masking = json.loads((checks / "masking-tiny.json").read_text())
    assert {c["check"] for c in masking["checks"]} == {"large ε", "more iterations", "zero gradients", "black box"}
    assert {c["way"] for c in masking["checks"]} == {"standard", "robust", "non_robust"}
    assert "targeted" in masking["skipped"]  # the ensemble has no targeted attack
    assert "Gradient-masking checks" in (checks / "masking-tiny.md").read_text()
    assert main(["analyze", "detector", "--runs", str(run), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "8", "--steps", "2", "--weights", "0", "1", "--quiet"]) == 0
    detector = json.loads((checks / "detector.json").read_text())["tiny"]
    assert set(detector["rows"]) == {"agreement-ce", "agreement-margin", "divergence λ=0", "divergence λ=1"}
    assert detector["strongest"] in detector["rows"] and "| tiny |" in (checks / "detector.md").read_text()


class _Killed(Exception):
    """Stands for a kill of ``aatk evaluate`` between two saves."""


def killed_after_saves(patch: pytest.MonkeyPatch, saves: int) -> None:
    """Makes evaluations raise ``_Killed`` right after their ``saves``-th checkpoint write (it lands)."""
    original, writes = evaluation._Checkpoint._write, []

    def write_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        writes.append(1)
        if len(writes) == saves:
            raise _Killed

    patch.setattr(evaluation._Checkpoint, "_write", write_then_die)


@needs_data
@tensorflow_pass_only("trains a tiny one-way run: the backend-independent command path")
def test_masking_checks_of_a_one_way_run_cover_its_trained_way_only(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    one_way = BASE.replace('method = "aat"', 'method = "1way-at-half"')
    assert main(["train", "--config", str(_config(tmp_path, one_way)), "--data-dir", str(DATA), "--out", str(run),
                 "--verbose", "0"]) == 0
    checks = tmp_path / "checks"
    arguments = ["analyze", "masking", "--run", str(run), "--data-dir", str(DATA), "--out", str(checks),
                 "--subset", "8", "--attack", "ensemble", "--steps", "2", "--quiet"]
    # Interrupted during its worst-case evaluation, the analysis resumes from its checkpoint.
    with monkeypatch.context() as patch:
        killed_after_saves(patch, 3)
        with pytest.raises(_Killed):
            main(arguments)
    assert (checks / "masking-tiny.partial.npz").exists()
    assert main(arguments) == 0
    assert not (checks / "masking-tiny.partial.npz").exists()
    masking = json.loads((checks / "masking-tiny.json").read_text())
    assert {c["way"] for c in masking["checks"]} == {"robust"}, "the untrained ways of a one-way run are not checked"
    assert "only its robust way was trained" in (checks / "masking-tiny.md").read_text()


@needs_data
@tensorflow_pass_only("the command path; tests/aatk/test_aatk_resume_evaluation.py resumes under both backends")
def test_an_interrupted_evaluation_resumes_where_it_stopped(tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    assert main(["train", "--config", str(_config(tmp_path)), "--data-dir", str(DATA), "--out", str(run),
                 "--verbose", "0"]) == 0
    command = ["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "24", "--batch-size", "8",
               "--attack", "ensemble"]
    assert main([*command, "--quiet"]) == 0
    whole = json.loads((run / "eval-ensemble.json").read_text())
    (run / "eval-ensemble.json").unlink()
    with monkeypatch.context() as patch:
        killed_after_saves(patch, 5)
        with pytest.raises(_Killed):
            main([*command, "--quiet"])
    partial = run / "eval-ensemble.partial.npz"
    assert partial.exists() and not (run / "eval-ensemble.json").exists()
    capsys.readouterr()
    assert main(command) == 0
    assert "resuming the evaluation saved in" in capsys.readouterr().err
    resumed = json.loads((run / "eval-ensemble.json").read_text())
    assert resumed["figures"] == whole["figures"] and not partial.exists()
    # A checkpoint left by another evaluation (here: other test examples) stops the command.
    with monkeypatch.context() as patch:
        killed_after_saves(patch, 5)
        with pytest.raises(_Killed):
            main([*command, "--quiet"])
    assert main([*command[:-6], "--subset", "16", "--batch-size", "8", "--attack", "ensemble", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "eval-ensemble.partial.npz was written by another evaluation" in error and "remove it" in error
