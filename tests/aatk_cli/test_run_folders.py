"""Run folders that cannot be lost or mixed up (issue 12): the lock, foreign folders, checkpoints
tied to their records, logs cut back on resume, damaged files named, read-only folders, and the
CLI's one-line errors for files it cannot use."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from aatk import runs
from aatk.cli import main
from aatk.configs import ConfigError, load_config

from cli_testutils import DATA, ROOT, TINY, needs_data, tensorflow_pass_only

# The folder logic is the same under both backends; the slowest end-to-end cases run in one pass.
tensorflow_pass = tensorflow_pass_only("backend-independent run-folder logic, tested end to end in the TensorFlow pass")

STEPS_PER_EPOCH = 2


def _config(tmp_path: Path, text: str = TINY, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train(config: Path, out: Path, *extra: str) -> int:
    return main(["train", "--config", str(config), "--data-dir", str(DATA), "--out", str(out), "--verbose", "0", *extra])


def _cli(*arguments: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "aatk", *arguments], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _log_epochs(run: Path) -> list[int]:
    with (run / "log.csv").open(newline="") as stream:
        return [int(row["epoch"]) for row in csv.DictReader(stream)]


def _iterations(path: Path) -> int:
    return int(np.asarray(runs.load_model_file(path).optimizer.iterations.value))


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aatk: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 2-epoch run, copied by the tests that damage it."""
    if DATA is None:
        pytest.skip("MNIST files not found")
    folder = tmp_path_factory.mktemp("finished")
    assert _train(_config(folder), folder / "run") == 0
    return folder / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


# --- 1. one process at a time --------------------------------------------------------------


@tensorflow_pass
@needs_data
def test_a_second_train_on_a_locked_run_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    """End to end, real processes: a second 'aatk train' while one runs fails at once with the
    holder's pid; after the holder is killed (SIGKILL) the lock is gone and the run resumes."""
    config = _config(tmp_path, TINY.replace("epochs = 2", "epochs = 400"))
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "aatk", "train", "--config", str(config), "--data-dir", str(DATA),
               "--out", str(out), "--verbose", "0"]
    holder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints").is_dir() and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.1)  # training has started: the lock is held
        assert holder.poll() is None, holder.stderr.read().decode()[-2000:]
        started = time.monotonic()
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert second.returncode == 2
        assert f"is in use by another aatk process (pid {holder.pid}, aatk train)" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert time.monotonic() - started < 120  # at once: it did not wait for the holder
        assert holder.poll() is None  # and the holder goes on
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    done = runs.read_json_file(out / "state.json", what="state")["epochs_done"]
    resumed = _cli("train", "--config", str(config), "--data-dir", str(DATA), "--out", str(out), "--verbose", "0",
                   "--epochs", str(done + 1))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _log_epochs(out) == list(range(done + 1))


@needs_data
def test_evaluate_refuses_a_run_another_process_holds(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    with runs.locked(run, command="aatk train"):
        assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--no-adaptive"]) == 2
    assert f"in use by another aatk process (pid {os.getpid()}, aatk train)" in _one_error_line(capsys)
    assert not list(run.glob("eval-*"))
    # Released at the end of the block: the evaluation now runs.
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--no-adaptive"]) == 0


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with runs.locked(tmp_path, command="first"):
        assert (tmp_path / ".lock").read_text() == f"pid {os.getpid()}, first\n"
        with pytest.raises(runs.RunLockedError, match=f"pid {os.getpid()}, first"):
            with runs.locked(tmp_path, command="second"):
                pass
    with runs.locked(tmp_path, command="third"):
        pass


# --- 2. never into a folder that is not this run -------------------------------------------


@tensorflow_pass
@needs_data
def test_train_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    """End to end, a real process: nothing of the folder is touched; --overwrite writes the run
    and leaves the foreign files alone."""
    config = _config(tmp_path)
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    (out / "log.csv").write_text("my,own,log\n")
    refused = _cli("train", "--config", str(config), "--data-dir", str(DATA), "--out", str(out))
    assert refused.returncode == 2
    assert "is not empty (chapter1.tex, log.csv) and is not an aatk run (no config.json)" in refused.stderr
    assert "--overwrite" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex", "log.csv"]  # not even a lock file
    assert (out / "log.csv").read_text() == "my,own,log\n"

    assert _train(config, out, "--overwrite", "--epochs", "1") == 0
    assert (out / "chapter1.tex").read_text() == "precious"
    assert _log_epochs(out) == [0] and (out / "model.keras").exists()


@tensorflow_pass
@needs_data
def test_train_refuses_a_run_of_another_configuration_unless_overwritten(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    (run / "notes.md").write_text("mine")
    (run / "eval-weak.partial.npz").write_bytes(b"an unfinished evaluation of the old model")
    other = _config(tmp_path, TINY.replace("seed = 3", "seed = 4"), name="other.toml")
    before = (run / "config.json").read_text()
    assert _train(other, run) == 2
    assert "holds a run of a different configuration" in _one_error_line(capsys)
    assert (run / "config.json").read_text() == before and _log_epochs(run) == [0, 1]
    assert _train(other, run, "--overwrite", "--epochs", "1") == 0
    assert json.loads((run / "config.json").read_text())["experiment"]["seed"] == 4
    assert _log_epochs(run) == [0] and not list(run.glob("eval-*"))
    assert (run / "notes.md").read_text() == "mine"


@tensorflow_pass
@needs_data
def test_a_run_killed_in_its_first_epoch_is_still_recognised(tmp_path: Path) -> None:
    """config.json but no checkpoint yet: the same configuration starts over there."""
    config = _config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(load_config(config, overrides={"training.epochs": 9}).as_dict()))
    (out / "log.csv").write_text("epoch,loss\n0,1.0\n")
    assert _train(config, out, "--epochs", "1") == 0
    assert _log_epochs(out) == [0]


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", ".", "", " padded", "tab\there"])
def test_experiment_name_must_be_a_plain_folder_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="^experiment.name: must be a plain folder name"):
        load_config(_config(tmp_path, TINY.replace('name = "tiny"', f"name = {json.dumps(name)}")))


def test_check_run_folder_refuses_a_file_and_a_damaged_config(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(runs.RunError, match="is a file, not a run folder"):
        runs.check_run_folder(tmp_path / "file", config)
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(runs.RunError, match=r"config.json \(the run's configuration\) is damaged: not valid JSON"):
        runs.check_run_folder(folder, config)
    runs.check_run_folder(folder, config, overwrite=True)  # the explicit flag accepts it
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".lock").write_text("")
    runs.check_run_folder(empty, config)  # a lock file alone is no content


# --- 3-5. checkpoints tied to their records; logs cut back; damaged files named --------------


@tensorflow_pass
@needs_data
def test_a_checkpoint_without_its_record_is_not_used(finished_run: Path, tmp_path: Path) -> None:
    """A kill after the checkpoint's rename but before its record: the epoch is trained again,
    not counted twice (24 steps, not 36, in the issue's run)."""
    run = _copy(finished_run, tmp_path)
    (run / "checkpoints" / "epoch-0002.json").unlink()  # its .keras stays, without a record
    assert _train(_config(tmp_path), run, "--epochs", "3") == 0
    assert _iterations(run / "model.keras") == 3 * STEPS_PER_EPOCH
    assert _log_epochs(run) == [0, 1, 2]


@tensorflow_pass
@needs_data
def test_a_checkpoint_copied_in_from_another_run_is_refused(finished_run: Path, tmp_path: Path) -> None:
    """Another run's checkpoint under this run's name: its SHA-256 is not the recorded one; the
    previous checkpoint is used, named in a warning, and the steps add up."""
    run = _copy(finished_run, tmp_path)
    other = tmp_path / "other"
    assert _train(_config(tmp_path, TINY.replace("seed = 3", "seed = 5"), name="o.toml"), other, "--epochs", "1") == 0
    shutil.copy(other / "checkpoints" / "epoch-0001.keras", run / "checkpoints" / "epoch-0002.keras")
    with pytest.warns(runs.RunWarning, match=r"epoch-0002.keras is damaged or was replaced"):
        assert _train(_config(tmp_path), run, "--epochs", "3") == 0
    assert _iterations(run / "model.keras") == 3 * STEPS_PER_EPOCH
    assert _log_epochs(run) == [0, 1, 2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0002.json", "epoch-0002.keras", "epoch-0003.json", "epoch-0003.keras"]
    assert runs.read_json_file(run / "state.json", what="state")["epochs_done"] == 3


@needs_data
def test_a_checkpoint_whose_optimizer_disagrees_with_its_record_is_refused(finished_run: Path, tmp_path: Path) -> None:
    """The single-file layout of earlier aatk versions (state.json + checkpoint.keras, no hash):
    a checkpoint of another epoch is caught by its optimizer's step count."""
    run = _copy(finished_run, tmp_path)
    shutil.copy(run / "checkpoints" / "epoch-0001.keras", run / "checkpoint.keras")
    state = runs.read_json_file(run / "checkpoints" / "epoch-0002.json", what="record")
    (run / "state.json").write_text(json.dumps({key: state[key] for key in ("epochs_done", "fingerprint", "rng")}))
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(runs.RunError, match=r"checkpoint.keras does not belong to its record: its optimizer took 2 "
                                            r"steps, 2 epochs of 2 steps make 4"):
        runs.latest_checkpoint(run, fingerprint=state["fingerprint"], steps_per_epoch=STEPS_PER_EPOCH)


@needs_data
def test_a_legacy_run_folder_resumes(finished_run: Path, tmp_path: Path) -> None:
    run = _copy(finished_run, tmp_path)
    shutil.copy(run / "checkpoints" / "epoch-0002.keras", run / "checkpoint.keras")
    state = runs.read_json_file(run / "checkpoints" / "epoch-0002.json", what="record")
    (run / "state.json").write_text(json.dumps({key: state[key] for key in ("epochs_done", "fingerprint", "rng")}))
    shutil.rmtree(run / "checkpoints")
    assert _train(_config(tmp_path), run, "--epochs", "3") == 0
    assert _iterations(run / "model.keras") == 3 * STEPS_PER_EPOCH
    assert not (run / "checkpoint.keras").exists()  # replaced by checkpoints/


@tensorflow_pass
@needs_data
def test_log_rows_beyond_the_checkpoint_are_cut_on_resume(finished_run: Path, tmp_path: Path) -> None:
    """A kill between an epoch's log row and its checkpoint left a row the resumed run writes again."""
    run = _copy(finished_run, tmp_path)
    for name in ("epoch-0002.json", "epoch-0002.keras"):
        (run / "checkpoints" / name).unlink()
    lines = (run / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1"]
    assert _train(_config(tmp_path), run) == 0
    assert _log_epochs(run) == [0, 1]
    assert _iterations(run / "model.keras") == 2 * STEPS_PER_EPOCH


@needs_data
@pytest.mark.parametrize("damage", ["truncate", "garbage-json", "missing-field"])
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_used(finished_run: Path, tmp_path: Path, damage: str) -> None:
    run = _copy(finished_run, tmp_path)
    keras_path, record_path = run / "checkpoints" / "epoch-0002.keras", run / "checkpoints" / "epoch-0002.json"
    if damage == "truncate":
        keras_path.write_bytes(keras_path.read_bytes()[:1000])
        expected = "epoch-0002.keras is damaged or was replaced"
    elif damage == "garbage-json":
        record_path.write_text('{"epochs_done": 2, "finger')
        expected = r"epoch-0002.json \(a checkpoint record\) is damaged: not valid JSON"
    else:
        record = json.loads(record_path.read_text())
        del record["sha256"]
        record_path.write_text(json.dumps(record))
        expected = r"epoch-0002.json is damaged: it lacks the fields"
    with pytest.warns(runs.RunWarning, match=expected):
        assert _train(_config(tmp_path), run) == 0
    assert _iterations(run / "model.keras") == 2 * STEPS_PER_EPOCH
    assert _log_epochs(run) == [0, 1]


@needs_data
def test_no_usable_checkpoint_is_one_line_naming_each_file(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    for path in (run / "checkpoints").glob("*.keras"):
        path.write_bytes(b"PK\x03\x04 not a zip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runs.RunWarning)
        assert _train(_config(tmp_path), run, "--epochs", "3") == 2
    line = _one_error_line(capsys)
    assert "has no usable checkpoint" in line and "epoch-0002.keras" in line and "epoch-0001.keras" in line
    assert "--overwrite" in line


def test_trim_epoch_rows_keeps_the_header_and_refuses_a_log_without_epochs(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.5\n1,1.2\n1,1.2\n2,1.0\n")
    assert runs.trim_epoch_rows(log, keep=lambda epoch: epoch < 1) == 3
    assert log.read_text() == "epoch,loss\n0,1.5\n"
    assert runs.trim_epoch_rows(log, keep=lambda epoch: epoch < 1) == 0
    log.write_text("loss\n1.5\n")
    with pytest.raises(runs.RunError, match="has no 'epoch' column"):
        runs.trim_epoch_rows(log, keep=lambda epoch: True)
    log.write_text("epoch,loss\nseven,1.5\n")
    with pytest.raises(runs.RunError, match="epoch 'seven' is not an integer"):
        runs.trim_epoch_rows(log, keep=lambda epoch: True)


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    runs.atomic_write(target, "one")
    runs.atomic_write(target, "two")
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        runs.atomic_write(tmp_path / "d", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "state.json"]


# --- 6. read-only folders; the CLI's one-line errors ----------------------------------------


@needs_data
def test_evaluate_checks_writability_before_any_attack(finished_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import errno

    import aatk.evaluation

    run = _copy(finished_run, tmp_path)

    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran before the folder was found read-only")

    monkeypatch.setattr(runs, "_probe_writable", read_only)
    monkeypatch.setattr(aatk.evaluation, "evaluate", never)
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--no-adaptive"]) == 2
    line = _one_error_line(capsys)
    assert f"cannot write to {run} (read-only file system)" in line


@needs_data
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_evaluate_on_a_read_only_folder(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    run.chmod(0o555)
    try:
        assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--no-adaptive"]) == 2
    finally:
        run.chmod(0o755)
    assert "cannot write to" in _one_error_line(capsys)


@needs_data
def test_damaged_model_files_are_one_line_errors(finished_run: Path, tmp_path: Path, capsys) -> None:
    import keras

    run = _copy(finished_run, tmp_path)
    data = bytearray((run / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte: a bad CRC-32 inside the archive
    (run / "model.keras").write_bytes(bytes(data))
    assert main(["evaluate", "--run", str(run), "--data-dir", str(DATA), "--subset", "8", "--no-adaptive"]) == 2
    assert f"{run / 'model.keras'} cannot be loaded: it is damaged or not a model saved by aatk" in _one_error_line(capsys)

    # A checkpoint that is a Keras model but not a ThreeWayModel, with a valid record.
    run = _copy(finished_run, tmp_path / "second")
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    for done in (1, 2):
        keras_path = run / "checkpoints" / f"epoch-{done:04d}.keras"
        plain.save(keras_path)
        record_path = keras_path.with_suffix(".json")
        record = json.loads(record_path.read_text())
        record["sha256"] = runs._sha256(keras_path)
        record_path.write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runs.RunWarning)
        assert _train(_config(tmp_path), run, "--epochs", "3") == 2
    assert "holds a Sequential, not a ThreeWayModel" in _one_error_line(capsys)


@needs_data
def test_report_names_a_malformed_evaluation(finished_run: Path, tmp_path: Path, capsys) -> None:
    run = _copy(finished_run, tmp_path)
    (run / "eval-weak.json").write_text("{ truncated")
    assert main(["report", "--runs", str(run)]) == 2
    assert "eval-weak.json (an evaluation record) is damaged: not valid JSON" in _one_error_line(capsys)
    (run / "eval-weak.json").write_text(json.dumps({"run": "x", "method": "st", "attack": "weak", "figures": {"S": 0.5}}))
    assert main(["report", "--runs", str(run)]) == 2
    assert "eval-weak.json is damaged: figure 'R' is missing or not a number" in _one_error_line(capsys)


def test_file_system_errors_are_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "table").mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval-a.json").write_text(json.dumps({
        "run": "r", "method": "aat", "attack": "a",
        "figures": {key: 0.5 for key in ("S", "R", "N", "R_adv", "N_adv", "DIA")}}))
    assert main(["report", "--runs", str(run), "--out", str(tmp_path / "table")]) == 2
    assert "a folder where a file was expected" in _one_error_line(capsys)


# --- configurations that are folders, cycles through other spellings, extends outside -------


def test_config_errors_for_folders_cycles_and_escapes_are_one_line(tmp_path: Path, capsys) -> None:
    configs = tmp_path / "cfg"
    configs.mkdir()
    assert main(["train", "--config", str(configs)]) == 2
    assert "is a folder; give a configuration file" in _one_error_line(capsys)

    (configs / "child.toml").write_text('extends = "cfg"\n')
    (configs / "cfg").mkdir()
    assert main(["train", "--config", str(configs / "child.toml")]) == 2
    assert "is a folder" in _one_error_line(capsys)

    # A cycle through an unnormalised spelling of the same file.
    (configs / "a.toml").write_text('extends = "../cfg/b.toml"\n')
    (configs / "b.toml").write_text('extends = "./a.toml"\n')
    with pytest.raises(ConfigError, match=r"circular 'extends' \(a.toml -> b.toml -> a.toml\)"):
        load_config(configs / "a.toml")

    # A relative extends that leaves the configuration's folder; an absolute one is explicit.
    (tmp_path / "outside.toml").write_text(TINY)
    (configs / "escape.toml").write_text('extends = "../outside.toml"\n')
    with pytest.raises(ConfigError, match=r"resolves to .*outside.toml, outside .*cfg .*give an absolute path"):
        load_config(configs / "escape.toml")
    (configs / "explicit.toml").write_text(f"extends = {json.dumps(str(tmp_path / 'outside.toml'))}\n")
    assert load_config(configs / "explicit.toml").name == "tiny"
    # A shipped configuration extended by absolute path keeps its own relative extends.
    (configs / "mine.toml").write_text(f"extends = {json.dumps(str(ROOT / 'configs' / 'mnist_aat.toml'))}\n")
    assert load_config(configs / "mine.toml").dataset == "mnist"
