"""The command line's manners (issue points 5, 6 and 8): a quick and quiet start, --version,
help and defaults for every option, progress on standard error, and reports that can be
compared (provenance in every evaluation record; the report as Markdown, CSV and JSON)."""

from __future__ import annotations

import argparse
import csv
import datetime
import doctest
import io
import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from aatk import cli as cli_module
from aatk import progress as progress_module
from aatk import provenance
from aatk.cli import _HelpFormatter, _parser, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("keras", "tensorflow", "jax")
# What TensorFlow's C++ and absl logging print at import: "I0000 00:00:... cpu_feature_guard.cc", "WARNING: All
# log messages before absl::InitializeLog()", "oneDNN custom operations are on", "To enable the following instructions".
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::|oneDNN|cpu_feature_guard|To enable the following instructions|"
                         r"tensorflow|TensorFlow", re.MULTILINE)


def _environment_without_tf_settings() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


# --- 5. a quick, quiet start ------------------------------------------------------------------


def test_help_version_and_argument_errors_import_no_framework() -> None:
    """In a fresh interpreter: parsing (help, version, errors) imports neither Keras nor a backend."""
    script = """
import sys
from aatk.cli import main
for argv in (["--help"], ["evaluate", "--help"], ["analyze", "eps-curve", "--help"], ["--version"]):
    try:
        main(argv)
    except SystemExit as done:
        assert done.code == 0, (argv, done.code)
assert main(["evaluate"]) == 2          # --run missing
assert main(["frobnicate"]) == 2        # no such command
assert main(["train", "--config", "c.toml", "--verbose", "9"]) == 2
print("HEAVY", sorted(name for name in sys.modules if name.split(".")[0] in ("keras", "tensorflow", "jax")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=_environment_without_tf_settings())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout, done.stdout[-2000:]
    assert "aatk: error: the following arguments are required: --run" in done.stderr
    assert "invalid choice: '9'" in done.stderr


def test_import_aatk_is_lazy_but_complete() -> None:
    script = """
import sys
import aatk
assert not any(name in sys.modules for name in ("keras", "tensorflow", "jax")), "import aatk loaded a framework"
assert set(aatk.__all__) <= set(dir(aatk))
assert aatk.ThreeWayModel.__module__ == "aatk.model" and callable(aatk.evaluate)
from aatk import PGD, datasets
import keras
# The first use loaded everything, so every Keras class of aatk can be deserialised.
for name in ("ThreeWayModel", "PGD", "PseudoInputModel", "CombinedOneWay", "TorchSGD"):
    assert keras.saving.get_registered_object("aatk>" + name) is not None, name
try:
    aatk.no_such_name
except AttributeError as error:
    assert "no_such_name" in str(error)
else:
    raise AssertionError("an unknown attribute did not raise")
print("OK")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("how", ["console script", "python -m aatk"])
def test_help_is_quick_and_prints_no_tensorflow_logs(how: str) -> None:
    script = Path(sys.executable).parent / "aatk"
    if how == "console script":
        if not script.exists():
            pytest.skip("the aatk console script is not installed next to this Python")
        command = [str(script), "--help"]
    else:
        command = [sys.executable, "-m", "aatk", "--help"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=_environment_without_tf_settings())
    seconds = time.monotonic() - started
    assert done.returncode == 0
    assert done.stdout.startswith("usage: aatk ")
    assert done.stderr == ""
    assert not TF_LOG_LINE.search(done.stdout), done.stdout
    assert seconds < 5, f"aatk --help took {seconds:.1f} s"


def test_version_is_the_installed_distributions(capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"aatk {metadata.version('aatk')}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    import aatk

    monkeypatch.setattr(provenance.metadata, "version", not_installed)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"aatk {aatk.__version__}\n"


def test_tensorflow_logging_is_quieted_only_when_the_user_did_not_choose(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = str(tmp_path / "missing")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert main(["report", "--runs", missing]) == 2
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert main(["report", "--runs", missing]) == 2
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert capsys.readouterr().err.count("does not exist") == 2


# What TensorFlow 2.21 writes at import on a CPU where oneDNN is on, whatever TF_CPP_MIN_LOG_LEVEL says,
# around lines that must survive: a Python warning, an error and an unprefixed line.
NATIVE_OUTPUT = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796313072.103160   16591 port.cc:153] oneDNN custom operations are on.\n"
    "/x/site.py:3: DeprecationWarning: old\n"
    "W0000 00:00:1796313072.2   16591 loader.cc:7] a warning\n"
    "E1203 15:50:54.5 77 op.cc:12] an error\n"
    "To enable the following instructions: AVX2\n"
)


@pytest.mark.parametrize("level, expected", [
    (0, NATIVE_OUTPUT),
    (1, "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "/x/site.py:3: DeprecationWarning: old\n"
        "W0000 00:00:1796313072.2   16591 loader.cc:7] a warning\n"
        "E1203 15:50:54.5 77 op.cc:12] an error\n"
        "To enable the following instructions: AVX2\n"),
    (2, "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "/x/site.py:3: DeprecationWarning: old\n"
        "E1203 15:50:54.5 77 op.cc:12] an error\n"
        "To enable the following instructions: AVX2\n"),
    (3, "/x/site.py:3: DeprecationWarning: old\n"
        "To enable the following instructions: AVX2\n"),
])
def test_native_log_lines_are_filtered_by_severity_and_nothing_else_is_lost(level: int, expected: str) -> None:
    assert cli_module._native_lines_to_show(NATIVE_OUTPUT, level) == expected


def test_an_import_that_writes_to_descriptor_2_is_filtered_and_a_failing_one_still_shows_its_output(
        tmp_path: Path, monkeypatch, capfd) -> None:
    """Written with os.write, below Python's sys.stderr, as TensorFlow's C++ code writes."""
    writes = f"import os\nos.write(2, {NATIVE_OUTPUT.encode()!r})\n"
    (tmp_path / "noisy_native_module.py").write_text(writes)
    (tmp_path / "broken_native_module.py").write_text(writes + "raise ImportError('the library is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cli_module._import_with_native_logs_filtered("noisy_native_module", level=2)
    assert capfd.readouterr().err == cli_module._native_lines_to_show(NATIVE_OUTPUT, 2)
    with pytest.raises(ImportError, match="the library is broken"):
        cli_module._import_with_native_logs_filtered("broken_native_module", level=3)
    assert capfd.readouterr().err == "/x/site.py:3: DeprecationWarning: old\nTo enable the following instructions: AVX2\n"
    print("descriptor 2 is back", file=sys.stderr)
    assert capfd.readouterr().err == "descriptor 2 is back\n"


def test_a_command_that_imports_tensorflow_prints_its_error_alone() -> None:
    """End to end, with TF_CPP_MIN_LOG_LEVEL unset: on a CPU where TensorFlow 2.21 turns oneDNN on,
    its import writes Abseil lines that the variable does not reach; the CLI filters them."""
    pytest.importorskip("tensorflow")
    done = subprocess.run([sys.executable, "-m", "aatk", "evaluate", "--run", "no/such/run"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=_environment_without_tf_settings())
    assert done.returncode == 2
    assert done.stderr.startswith("aatk: error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


HIDDEN_TENSORFLOW = """\
import importlib.abc, json, sys

class HiddenTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "tensorflow":
            raise {error}
        return None

sys.meta_path.insert(0, HiddenTensorFlow())
from aatk.cli import main
status = main(["evaluate", "--run", "no/such/run"])
print(json.dumps({{"status": status, "tensorflow_imported": "tensorflow" in sys.modules}}))
"""


@pytest.mark.parametrize("error", [
    "ModuleNotFoundError(f'No module named {fullname!r}', name=fullname)",  # not installed, as an import hook says it
    "ImportError('libtensorflow_framework.so.2: cannot open shared object file')",  # installed but broken
])
def test_commands_run_where_tensorflow_cannot_be_imported(error: str) -> None:
    """Filtering TensorFlow's start-up lines must not make it a requirement: under JAX a command
    that needs no TensorFlow goes on to its own answer (here, that the run does not exist)."""
    pytest.importorskip("jax")
    environment = {**_environment_without_tf_settings(), "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", HIDDEN_TENSORFLOW.format(error=error)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 2, "tensorflow_imported": False}
    assert done.stderr.startswith("aatk: error: ") and "no/such/run" in done.stderr, done.stderr


def _parsers(parser: argparse.ArgumentParser, name: str = "aatk"):
    """Every parser of the command line, with its command path."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {command}")


def test_every_option_has_help_and_shows_its_default() -> None:
    lacking, without_default, seen = [], [], 0
    for name, parser in _parsers(_parser()):
        formatter = _HelpFormatter(prog=name)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                lacking += [f"{name} {choice.dest}" for choice in action._choices_actions if not choice.help]
                continue
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            seen += 1
            option = f"{name} {'/'.join(action.option_strings)}"
            if not (action.help or "").strip():
                lacking.append(option)
                continue
            if action.required or action.nargs == 0:  # nothing to default / a flag that is off unless given
                continue
            shown = formatter._get_help_string(action) % {"default": action.default}
            if "default" not in shown:
                without_default.append(option)
    assert seen > 60  # every command's options were walked
    assert not lacking, f"options without help: {lacking}"
    assert not without_default, f"options whose help shows no default: {without_default}"


def test_help_shows_the_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 500)" in text and "--quiet" in text and "(default: all)" in text


# --- 6. progress ------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_in_a_log() -> None:
    terminal = _Terminal()
    reporter = progress_module.Progress(stream=terminal, label="run under attack", interval=0.0)
    with reporter.bar(10, what="evaluate") as bar:
        bar.update(5, step="attack on the robust way")
        bar.update(10)
    drawn = terminal.getvalue()
    assert "\r" in drawn and drawn.endswith("\n")
    assert "aatk: run under attack: evaluate: [" in drawn and "5/10 examples, attack on the robust way" in drawn
    assert "10/10 examples in 0:0" in drawn

    log = io.StringIO()
    with progress_module.Progress(stream=log, log_every=3600).bar(1000, what="evaluate") as bar:
        for done in range(0, 1001, 10):
            bar.update(done, step=f"batch {done}")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "aatk: evaluate: 1000 examples" and lines[-1].startswith("aatk: evaluate: 1000/1000 examples in ")
    assert len(lines) == 2  # a long bar in a log: its start and its end, not a line per update

    few = io.StringIO()
    with progress_module.Progress(stream=few).bar(3, what="eps-curve", unit="radii") as bar:
        for index in range(3):
            bar.update(index, step=f"ε={index}")
    assert [line.split(", ")[1] for line in few.getvalue().splitlines()[1:-1]] == ["ε=0", "ε=1", "ε=2"]

    silent = io.StringIO()
    with progress_module.Progress(enabled=False, stream=silent).bar(3, what="x") as bar:
        bar.update(3)
    silent_progress = progress_module.Progress(enabled=False, stream=silent)
    silent_progress.note("nothing")
    assert silent.getvalue() == ""
    with pytest.raises(ValueError, match="progress must be"):
        progress_module.as_progress("yes")


def test_a_failed_bar_says_where_it_stopped() -> None:
    log = io.StringIO()
    with pytest.raises(RuntimeError), progress_module.Progress(stream=log).bar(4, what="evaluate") as bar:
        bar.update(2)
        raise RuntimeError("boom")
    assert log.getvalue().splitlines()[-1].startswith("aatk: evaluate: stopped at 2/4 examples after ")


def test_restored_units_do_not_shorten_the_estimated_time_left(monkeypatch) -> None:
    """A resumed evaluation restores 80 of 100 units at once; the ETA must come from the 10 it then works."""
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    terminal = _Terminal()
    with progress_module.Progress(stream=terminal, interval=0.0).bar(100, what="evaluate") as bar:
        bar.restore(80, step="attack on the robust way")
        clock[0] = 10.0
        bar.update(90)
        assert bar._line().endswith("0:10 elapsed, ETA 0:10")  # 10 units in 10 s, 10 left
        bar.restore(95)
        assert bar._line().endswith("ETA 0:05")
    plain = progress_module.Progress(stream=io.StringIO()).bar(100, what="evaluate")
    plain.update(90)
    clock[0] = 20.0
    assert plain._line().endswith("0:10 elapsed, ETA 0:01")  # without restored units, all 90 count as work
    plain.close()


@pytest.mark.parametrize("module", [progress_module, provenance], ids=["progress", "provenance"])
def test_docstring_examples_of_the_new_modules(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def _tiny_model():
    import keras

    from aatk import ThreeWayModel

    def encoder():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu")])

    keras.utils.set_random_seed(0)
    model = ThreeWayModel(encoder(), encoder(), num_classes=3)
    model(np.zeros((1, 4), "float32"))  # built by a first call
    return model


def _tiny_data(n: int = 24):
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (n, 4)).astype("float32"), rng.integers(0, 3, n).astype("int32")


def test_evaluate_shows_each_attack_as_a_step_and_is_silent_by_default(capsys) -> None:
    from aatk import PGD, evaluate

    model, (x, y) = _tiny_model(), _tiny_data()
    attack = PGD(eps=0.1, step_size=0.05, steps=1)
    quiet = evaluate(model, (x, y), attack, batch_size=8)
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    shown = evaluate(model, (x, y), attack, batch_size=8,
                     progress=progress_module.Progress(stream=terminal, label="tiny under weak", interval=0.0))
    drawn = terminal.getvalue()
    for step in ("clean inputs", "attack on the robust way", "attack on the non-robust way",
                 "attack on the standard way", "adaptive attack on the detector"):
        assert step in drawn, step
    # 24 examples: clean, three way attacks and the adaptive attack, each counted once per example.
    assert "aatk: tiny under weak: evaluate: 120/120 attacked examples in " in drawn
    # The bar changes nothing: the same attacks in the same order, the same random starts.
    assert dict(shown) == dict(quiet)
    assert capsys.readouterr().out == ""


def test_the_eps_curve_computed_one_radius_at_a_time_equals_one_call() -> None:
    from aatk.analysis import accuracy_vs_eps
    from aatk.experiments import _accuracy_curve

    model, (x, y) = _tiny_model(), _tiny_data(40)
    grid = (0.0, 0.1, 0.3)
    whole = accuracy_vs_eps(model, x, y, norm="linf", eps_values=grid, steps=2, ways=("robust", "non_robust"))
    log = io.StringIO()
    pieces = _accuracy_curve(model, x, y, norm="linf", grid=grid, steps=2, ways=("robust", "non_robust"),
                             progress=progress_module.Progress(stream=log, label="tiny"))
    np.testing.assert_array_equal(pieces["eps"], whole["eps"])
    np.testing.assert_array_equal(pieces["step_sizes"], whole["step_sizes"])
    assert set(pieces["accuracy"]) == set(whole["accuracy"])
    for way in whole["accuracy"]:
        np.testing.assert_array_equal(pieces["accuracy"][way], whole["accuracy"][way])
    assert (pieces["norm"], pieces["steps"], pieces["samples"]) == (whole["norm"], whole["steps"], whole["samples"])
    assert "aatk: tiny: eps-curve: 3/3 radii in " in log.getvalue() and "ε=0.3" in log.getvalue()


# --- 8. provenance and comparable reports -----------------------------------------------------

RUN_CONFIG = """
[experiment]
name = "tiny"
dataset = "mnist"
backbone = "small_cnn"
method = "aat++"
seed = 7

[training]
epochs = 5
batch_size = 8
learning_rate = 0.05

[attack]
train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}
test = [{name = "weak", norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = false}]
"""


@pytest.fixture
def untrained_run(tmp_path: Path, monkeypatch) -> Path:
    """A run folder with an untrained model whose state says 4 epochs were trained, and synthetic
    'MNIST' test images (nothing is downloaded or read)."""
    from aatk import datasets
    from aatk.configs import load_config
    from aatk.training import build_model

    (tmp_path / "c.toml").write_text(RUN_CONFIG)
    config = load_config(tmp_path / "c.toml")
    run = tmp_path / "run"
    run.mkdir()
    model = build_model(config)
    model(np.zeros((1, 28, 28, 1), "float32"))  # built by a first call
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps(config.as_dict(), indent=2))
    (run / "state.json").write_text(json.dumps({"epochs_done": 4}))

    def synthetic(name, split, *, data_dir=None, subset=None):
        rng = np.random.default_rng(1)
        n = subset or 64
        return rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n).astype("int32")

    monkeypatch.setattr(datasets, "load_arrays", synthetic)
    return run


def test_evaluation_records_provenance_and_the_report_shows_it(untrained_run: Path, tmp_path: Path, capsys) -> None:
    import keras

    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    assert main(["evaluate", "--run", str(untrained_run), "--subset", "16", "--batch-size", "8", "--no-adaptive"]) == 0
    captured = capsys.readouterr()
    assert "aatk: tiny under weak: evaluate: 64/64 attacked examples in " in captured.err  # progress, on stderr only
    assert "aatk: tiny under weak" not in captured.out and "16 test examples" in captured.out

    record = json.loads((untrained_run / "eval-weak.json").read_text())
    assert (record["samples"], record["epochs"], record["epochs_trained"], record["seed"]) == (16, 5, 4, 7)
    assert record["attack_config"] == {"norm": "linf", "eps": 0.1, "step_size": 0.05, "steps": 1,
                                       "random_start": False, "bounds": [0.0, 1.0], "seed": 0}
    found = record["provenance"]
    assert found["aatk_version"] == metadata.version("aatk")
    assert found["versions"]["keras"] == keras.__version__ and found["versions"]["numpy"] == np.__version__
    assert found["keras_backend"] == keras.backend.backend()
    assert found["dtype_policy"] == "float32"
    assert before <= datetime.datetime.fromisoformat(found["date_utc"]) <= datetime.datetime.now(datetime.timezone.utc)
    assert found["device"]["cpu_count"] == os.cpu_count() and found["device"]["platform"]
    assert isinstance(found["device"]["accelerators"], list)
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", found["git_commit"] or "") and isinstance(found["git_dirty"], bool)

    # Quiet: nothing on stderr.
    assert main(["evaluate", "--run", str(untrained_run), "--subset", "8", "--no-adaptive", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["evaluate", "--run", str(untrained_run), "--subset", "16", "--batch-size", "8", "--no-adaptive"]) == 0
    capsys.readouterr()
    record = json.loads((untrained_run / "eval-weak.json").read_text())
    found = record["provenance"]

    table = tmp_path / "out" / "table.md"
    table.parent.mkdir()
    assert main(["report", "--runs", str(untrained_run), "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    markdown = table.read_text()
    assert printed.strip() == markdown.strip()
    assert "### Test attack: weak (linf ε=0.1, 1 step of 0.05)" in markdown
    assert "| tiny | aat++ | 4 | 16 | " in markdown  # epochs trained, test images
    provenance_line = next(line for line in markdown.splitlines() if line.startswith("- tiny: evaluated "))
    assert f"aatk {metadata.version('aatk')}" in provenance_line and "seed 7" in provenance_line
    assert f"Keras {keras.__version__} on {keras.backend.backend()}" in provenance_line

    with (tmp_path / "out" / "table.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 1
    row = rows[0]
    assert (row["run"], row["attack"], row["samples"], row["epochs"], row["seed"]) == ("tiny", "weak", "16", "4", "7")
    assert (row["attack_norm"], row["attack_eps"], row["attack_steps"], row["attack_random_start"]) == ("linf", "0.1", "1", "false")
    assert float(row["S_low"]) <= float(row["S"]) <= float(row["S_high"])
    assert row["S"] == repr(record["figures"]["S"]) and row["aatk_version"] == found["aatk_version"]
    assert row["date_utc"] == found["date_utc"] and row["source"].endswith("eval-weak.json")
    document = json.loads((tmp_path / "out" / "table.json").read_text())
    assert document["columns"] == list(rows[0]) and len(document["rows"]) == 1
    assert document["rows"][0]["samples"] == 16 and document["rows"][0]["S"] == record["figures"]["S"]
    assert document["rows"][0]["S_low"] == record["intervals_95"]["S"][0]
    assert document["rows"][0]["git_commit"] == found["git_commit"]

    # The same rows on standard output.
    assert main(["report", "--runs", str(untrained_run), "--format", "csv"]) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == rows
    assert main(["report", "--runs", str(untrained_run), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == document["rows"]


def _old_record(**extra) -> dict:
    """An evaluation record as aatk wrote it before provenance was recorded."""
    return {"run": "old", "method": "1way-st", "attack": "weak", "samples": 500, "epochs": 3,
            "figures": {"N": 0.9, "N_adv": 0.1}, "intervals_95": {"N": [0.87, 0.92]}, **extra}


def test_old_records_report_with_provenance_unknown(tmp_path: Path, capsys) -> None:
    run = tmp_path / "old"
    run.mkdir()
    (run / "eval-weak.json").write_text(json.dumps(_old_record()))
    assert main(["report", "--runs", str(run), "--out", str(tmp_path / "table.md")]) == 0
    markdown = capsys.readouterr().out
    assert "### Test attack: weak (settings unknown)" in markdown
    assert "| old | 1way-st | 3 | 500 | - | - | 90.0 ±2.5 | - | 10.0 | - |" in markdown
    assert "- old: provenance unknown (evaluated before aatk recorded it); seed unknown" in markdown
    with (tmp_path / "table.csv").open(newline="") as stream:
        row = next(csv.DictReader(stream))
    assert (row["N"], row["N_low"], row["S"], row["aatk_version"], row["git_commit"]) == ("0.9", "0.87", "", "", "")
    assert json.loads((tmp_path / "table.json").read_text())["rows"][0]["date_utc"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"provenance": "yesterday"}, "its 'provenance' field is not a JSON object"),
        ({"attack_config": [1, 2]}, "its 'attack_config' field is not a JSON object"),
        ({"intervals_95": {"N": [0.8]}}, "interval 'N' is not a pair of numbers"),
    ],
)
def test_malformed_records_stay_one_line_errors(tmp_path: Path, capsys, extra: dict, message: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval-weak.json").write_text(json.dumps(_old_record(**extra)))
    assert main(["report", "--runs", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aatk: error: ") and message in lines[0], lines


def test_runs_evaluated_with_different_attack_settings_are_flagged(tmp_path: Path, capsys) -> None:
    for name, steps in (("a", 40), ("b", 10)):
        run = tmp_path / name
        run.mkdir()
        settings = {"norm": "linf", "eps": 0.3, "step_size": 0.01, "steps": steps, "random_start": True}
        (run / "eval-weak.json").write_text(json.dumps(_old_record(run=name, attack_config=settings)))
    assert main(["report", "--runs", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    markdown = capsys.readouterr().out
    assert "different settings of this attack" in markdown
    assert "linf ε=0.3, 40 steps of 0.01, random start (a)" in markdown and "10 steps of 0.01, random start (b)" in markdown


def test_source_revision_outside_a_checkout_and_without_git(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path)
    assert provenance.source_revision() == {"commit": None, "dirty": None}
    (tmp_path / ".git").mkdir()  # looks like a checkout, but git cannot be run
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert provenance.source_revision() == {"commit": None, "dirty": None}
    found = provenance.environment()
    assert found["git_commit"] is None and found["aatk_version"] == metadata.version("aatk")


def test_a_saved_model_loads_whatever_the_import_order(tmp_path: Path) -> None:
    """``import aatk`` is lazy, so Keras knows aatk's classes only after their first use:
    aatk.load_model registers them itself, and so does importing aatk after Keras."""
    save = f"""
import numpy as np, keras, aatk
encoder = lambda name: keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4, activation="relu")], name=name)
model = aatk.ThreeWayModel(encoder("g_r"), encoder("g_n"), num_classes=3)
model.compile(optimizer="sgd", method="st")
model.fit(np.zeros((4, 2, 2, 1), "float32"), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
model.save({str(tmp_path / "m.keras")!r})
"""
    loads = {
        "aatk.load_model": "import aatk\nmodel = aatk.load_model(PATH)",
        "keras first": "import keras\nimport aatk\nmodel = keras.models.load_model(PATH)",
    }
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", save], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for how, code in loads.items():
        script = f"PATH = {str(tmp_path / 'm.keras')!r}\n{code}\nprint(type(model).__name__)"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env=env)
        assert done.returncode == 0 and "ThreeWayModel" in done.stdout, (how, done.stderr[-3000:])
