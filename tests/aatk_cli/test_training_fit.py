"""How ``aatk.training.train`` drives Keras: one ``fit`` over all epochs (also without
TensorFlow), the test split logged as ``test_*``, a resume announced and bit-identical under
either backend, legacy ``val_*`` logs renamed, and TensorBoard's event files."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from aatk import datasets, runs, training
from aatk.configs import load_config
from aatk.model import ThreeWayModel

from cli_testutils import DATA, TINY, needs_data

pytestmark = needs_data


def _config(tmp_path: Path, text: str = TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_config(path)


def _rows(run: Path) -> tuple[list[str], list[dict]]:
    with (run / "log.csv").open(newline="") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames or []), list(reader)


def _forget_last_epoch(run: Path) -> None:
    """As if the run had been killed during its last epoch: its checkpoint and model gone."""
    for name in ("epoch-0002.keras", "epoch-0002.json"):
        (run / runs.CHECKPOINT_DIR / name).unlink()
    (run / "model.keras").unlink()


def test_one_fit_over_all_epochs_logs_the_test_split_as_test(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []
    original_fit = ThreeWayModel.fit

    def recording_fit(self, *args, **kwargs):
        calls.append((kwargs.get("initial_epoch"), kwargs.get("epochs")))
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(ThreeWayModel, "fit", recording_fit)
    run = tmp_path / "run"
    training.train(_config(tmp_path), out=run, data_dir=str(DATA), verbose=2)
    assert calls == [(0, 2)]
    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed  # Keras's own epoch headers
    assert "resuming" not in printed
    fields, rows = _rows(run)
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"test_acc_s", "test_acc_r", "test_acc_n", "test_loss"} <= set(fields)
    assert not [field for field in fields if field.startswith("val_")]
    # test_* is the clean accuracy of each way on the test split (subset 128: its first 128 images).
    model = runs.load_model_file(run / "model.keras")
    x_test, y_test = datasets.load_arrays("mnist", "test", data_dir=str(DATA), subset=128)
    logits = model.way_logits(x_test, ways=("standard", "robust", "non_robust"), training=False)
    for way, short in (("standard", "s"), ("robust", "r"), ("non_robust", "n")):
        accuracy = np.mean(np.argmax(np.asarray(logits[way]), axis=-1) == y_test)
        assert float(rows[-1][f"test_acc_{short}"]) == pytest.approx(accuracy, abs=1e-6)


def test_a_resume_is_announced_ends_with_the_same_weights_and_renames_legacy_columns(
    tmp_path: Path, capsys
) -> None:
    """Under either backend (the kill-and-resume test of test_cli.py runs in one pass): the
    optimizer, random-number and data state of the checkpoint give the uninterrupted weights."""
    config = _config(tmp_path)
    straight, run = tmp_path / "straight", tmp_path / "run"
    training.train(config, out=straight, data_dir=str(DATA), verbose=0)
    training.train(config, out=run, data_dir=str(DATA), verbose=0)
    fields, rows = _rows(run)
    # A log written before the test split was named test_*: Keras's val_* columns.
    legacy = [field.replace("test_", "val_") for field in fields]
    text = (run / "log.csv").read_text().splitlines()
    (run / "log.csv").write_text("\n".join([",".join(legacy), *text[1:]]) + "\n")
    _forget_last_epoch(run)

    training.train(config, out=run, data_dir=str(DATA), verbose=2)
    printed = capsys.readouterr().out
    assert f"aatk: resuming {run} after epoch 1 of 2 (epoch-0001.keras)" in printed
    assert "Epoch 2/2" in printed and "Epoch 1/2" not in printed
    resumed_fields, resumed_rows = _rows(run)
    assert resumed_fields == fields  # one table: the legacy columns renamed, none duplicated
    assert resumed_rows[0] == rows[0]  # the first epoch's row kept as it was
    assert [row["epoch"] for row in resumed_rows] == ["0", "1"]
    for a, b in zip(runs.load_model_file(straight / "model.keras").get_weights(),
                    runs.load_model_file(run / "model.keras").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    training.train(config, out=run, data_dir=str(DATA), verbose=2)
    assert f"aatk: {run} has finished all 2 epochs; nothing to train" in capsys.readouterr().out


def test_numpy_batches_without_tensorflow_in_one_fit(tmp_path: Path, monkeypatch) -> None:
    """As on a machine with JAX and no TensorFlow: no tf.data anywhere, NumPy's epoch order."""
    monkeypatch.setattr(training, "_tensorflow_or_none", lambda: None)
    monkeypatch.setattr(training, "epoch_batches", None)  # any use of the tf.data path would fail
    first_labels, fit_calls = [], []
    original_batches, original_fit = training._numpy_epoch_batches, ThreeWayModel.fit

    def recording_batches(*args, **kwargs):
        for x_batch, y_batch in original_batches(*args, **kwargs):
            first_labels.append(y_batch[:5].tolist())
            yield x_batch, y_batch

    def recording_fit(self, x=None, *args, **kwargs):
        fit_calls.append(type(x).__name__)
        return original_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(training, "_numpy_epoch_batches", recording_batches)
    monkeypatch.setattr(ThreeWayModel, "fit", recording_fit)
    training.train(_config(tmp_path), out=tmp_path / "run", data_dir=str(DATA), verbose=0)
    _, labels = datasets.load_arrays("mnist", "train", data_dir=str(DATA), subset=128)
    expected = [labels[training.epoch_order(128, seed=3, epoch=epoch)] for epoch in range(2)]
    assert fit_calls == ["generator"]
    # Two batches of 64 an epoch, each epoch in its own order.
    assert first_labels[:4] == [expected[0][:5].tolist(), expected[0][64:69].tolist(),
                                expected[1][:5].tolist(), expected[1][64:69].tolist()]
    assert (tmp_path / "run" / "model.keras").exists()


def test_tensorboard_event_files_hold_every_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    training.train(_config(tmp_path), out=run, data_dir=str(DATA), verbose=0, tensorboard=True)
    events = EventAccumulator(str(run / runs.TENSORBOARD_DIR / "train"))
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_acc_s", "epoch_test_acc_r", "epoch_learning_rate"} <= tags
    assert [event.step for event in events.Tensors("epoch_test_acc_r")] == [0, 1]
    # The folder belongs to the run: --overwrite replaces it with the other run files.
    runs.remove_run_files(run)
    assert not (run / runs.TENSORBOARD_DIR).exists()


def test_tensorboard_without_its_package_is_a_clear_error_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(runs.RunError, match="TensorBoard logging needs the tensorflow and tensorboard packages"):
        training.train(_config(tmp_path), out=tmp_path / "run", data_dir=str(DATA), verbose=0, tensorboard=True)
    assert not list((tmp_path / "run" / runs.CHECKPOINT_DIR).glob("*.keras"))


def test_a_run_resumes_only_with_the_data_order_it_started_with(tmp_path: Path, monkeypatch) -> None:
    """tf.data and NumPy draw different epoch orders: resuming a tf.data run without TensorFlow
    is refused rather than continued with other batches."""
    config, run = _config(tmp_path), tmp_path / "run"
    training.train(config, out=run, data_dir=str(DATA), verbose=0)
    record = runs.read_json_file(run / "state.json", what="the record")
    expected = "numpy" if training._tensorflow_or_none() is None else "tf.data"
    assert record["data_order"] == expected
    _forget_last_epoch(run)
    if expected == "tf.data":
        monkeypatch.setattr(training, "_tensorflow_or_none", lambda: None)
        with pytest.raises(runs.RunError, match="trained with tf.data batches, but this environment has no TensorFlow"):
            training.train(config, out=run, data_dir=str(DATA), verbose=0)
        monkeypatch.undo()
    training.train(config, out=run, data_dir=str(DATA), verbose=0)  # where it started: resumes
    assert (run / "model.keras").exists()


def test_a_run_whose_data_cannot_be_read_leaves_no_configuration_behind(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError):
        training.train(_config(tmp_path), out=run, data_dir=str(tmp_path / "no-data"), verbose=0)
    assert not (run / "config.json").exists()
