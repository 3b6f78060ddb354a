"""Run folders: what makes them safe to interrupt, resume, share and point at by mistake.

A run folder written by ``aatk train`` holds

* ``config.json`` — the resolved configuration;
* ``checkpoints/epoch-NNNN.keras`` and ``checkpoints/epoch-NNNN.json`` — the model (weights,
  optimizer state) after epoch N and its record: the epoch count, the configuration's
  fingerprint, the random-number state and the SHA-256 of the ``.keras`` file. The record
  is written only once the ``.keras`` file is on disk, so a record always describes a
  complete checkpoint; the two newest pairs are kept, the older one to fall back to;
* ``state.json`` — a copy of the newest record (for people and scripts: ``epochs_done``);
* ``log.csv``, ``monitor.csv`` — one row per finished epoch;
* ``model.keras`` — the trained model, at the end; ``eval-<attack>.json`` / ``.md``;
* ``.lock`` — held (``flock``) by the one aatk process working in the folder.

The guarantees, each tested (``tests/aatk_cli/test_run_folders.py``):

1. One process at a time: [`locked`][aatk.runs.locked] holds an exclusive lock for a whole command; a
   second ``aatk train`` or ``aatk evaluate`` on the folder fails at once, naming the
   holder's pid. The lock dies with its process, so a killed run never leaves a stale lock.
2. Never into someone else's folder:
   [`check_run_folder`][aatk.runs.check_run_folder] refuses a non-empty folder that
   is not a run of the same configuration (``overwrite=True`` / ``--overwrite``
   replaces only aatk's own run files there).
3. A checkpoint is used only with its own record: same fingerprint, same SHA-256, and an
   optimizer that has taken exactly ``epochs_done × steps_per_epoch`` steps; a damaged or
   foreign checkpoint is named in a warning and the previous one is used instead.
4. Every file is written to a temporary name, flushed to disk (``fsync``) and renamed, so a
   kill at any moment leaves either the old or the new file; logs are cut back to the
   epochs of the checkpoint a run resumes from ([`trim_epoch_rows`][aatk.runs.trim_epoch_rows]).
5. Writability is checked before any work ([`locked`][aatk.runs.locked] writes the lock file first).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKPOINT_DIR",
    "RUN_FILES",
    "TENSORBOARD_DIR",
    "Checkpoint",
    "RunError",
    "RunLockedError",
    "RunWarning",
    "atomic_write",
    "check_run_folder",
    "config_fingerprint",
    "latest_checkpoint",
    "load_model_file",
    "locked",
    "read_json_file",
    "remove_run_files",
    "trim_epoch_rows",
    "write_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
"""Sub-folder of a run folder holding the per-epoch checkpoints and their records."""

LOCK_FILE = ".lock"

TENSORBOARD_DIR = "tensorboard"
"""Where ``aatk train --tensorboard`` writes TensorBoard's event files in a run folder."""

RUN_FILES = ("config.json", "state.json", "checkpoint.keras", CHECKPOINT_DIR, "log.csv", "monitor.csv",
             "model.keras", "eval-*.json", "eval-*.md", "eval-*.partial.npz", TENSORBOARD_DIR)
"""aatk's own files in a run folder (glob patterns): what ``--overwrite`` replaces."""

_RECORD_KEYS = ("epochs_done", "fingerprint", "rng", "checkpoint", "sha256")
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d{4,})\.json$")


class RunError(ValueError):
    """A run folder cannot be used: it holds another run, is damaged, locked or read-only."""


class RunLockedError(RunError):
    """Another process holds the run folder's lock."""


class RunWarning(UserWarning):
    """Something in a run folder was damaged and aatk worked around it (named in the message)."""


# --- files -------------------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` so that a kill at any moment leaves the old file or the new
    one: a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; these are ordinary result files
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


def read_json_file(path: str | Path, *, what: str) -> Any:
    """The JSON content of ``path``.

    Raises:
        RunError: Naming the file when it cannot be read or is not valid JSON
            (``what`` says what the file is, for the message).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path} ({what}) is damaged: not valid JSON ({error})") from None
    except IsADirectoryError:
        raise RunError(f"{path} ({what}) is a folder, not a file") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model_file(path: str | Path, *, expected: type | None = None):
    """``keras.models.load_model`` with errors that name the file and what to do.

    Args:
        path: A ``.keras`` file.
        expected: If given, the class the loaded model must be an instance of.

    Raises:
        RunError: If the file is missing, damaged (not a loadable ``.keras`` archive) or
            holds another kind of model.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        model = keras.models.load_model(path)
    except Exception as error:  # zipfile.BadZipFile, a bad CRC, a JSON or a deserialisation error
        raise RunError(
            f"{path} cannot be loaded: it is damaged or not a model saved by aatk "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    if expected is not None and not isinstance(model, expected):
        raise RunError(f"{path} holds a {type(model).__name__}, not a {expected.__name__}")
    return model


# --- the lock and the folder's identity -----------------------------------------------------


@contextlib.contextmanager
def locked(folder: str | Path, *, command: str) -> Iterator[None]:
    """Holds the exclusive lock of a run folder for the block.

    The lock is an ``flock`` on ``folder/.lock`` (POSIX): the operating system releases it
    when the process ends, however it ends. Taking it also checks that the folder can be
    written, before any work is done.

    Args:
        folder: An existing folder.
        command: What the holder does (e.g. ``"aatk train"``), recorded for the message a
            second process gets.

    Raises:
        RunLockedError: If another process holds the lock (its pid and command are named).
        RunError: If the folder cannot be written.
    """
    import fcntl

    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunError(_not_writable(folder, error)) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 512, 0).decode("utf-8", "replace").strip() or "pid unknown"
            raise RunLockedError(
                f"{folder} is in use by another aatk process ({holder}); wait for it to finish "
                "or stop it, or use another folder"
            ) from None
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"pid {os.getpid()}, {command}\n".encode(), 0)
            _probe_writable(folder)
        except OSError as error:
            raise RunError(_not_writable(folder, error)) from None
        yield
    finally:
        os.close(handle)  # releases the flock


def _probe_writable(folder: Path) -> None:
    """Raises OSError unless a new file can be created in ``folder`` (the lock file may exist
    already, so opening it proves nothing)."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def _not_writable(folder: Path, error: OSError) -> str:
    reason = "read-only file system" if error.errno == errno.EROFS else (error.strerror or str(error))
    return (f"cannot write to {folder} ({reason}); aatk writes its results there — "
            "make it writable or copy the run folder somewhere writable")


def config_fingerprint(config) -> str:
    """Identifies a run's configuration (an [`aatk.configs.Config`][aatk.configs.Config]). The epoch count is
    left out so that a finished run can be trained further with a larger ``--epochs`` (the
    milestones are absolute), and so is ``[monitor]`` (it reads the model only)."""
    described = config.as_dict()
    described.pop("source", None)
    described.pop("monitor", None)
    described["training"].pop("epochs", None)
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name != LOCK_FILE)


def check_run_folder(folder: str | Path, config, *, overwrite: bool = False) -> None:
    """Refuses a folder that ``aatk train`` must not write into, before anything is written.

    Accepted: a folder that does not exist or is empty, and a run of the same
    configuration (same fingerprint; to resume or to train further). With ``overwrite``,
    any folder (its aatk run files are then replaced by [`remove_run_files`][aatk.runs.remove_run_files]).

    Raises:
        RunError: If ``folder`` is a file, holds files but no run (no ``config.json``),
            holds a run of another configuration, or a damaged ``config.json``.
    """
    from aatk.configs import ConfigError, validate

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder} is a file, not a run folder")
    if overwrite or not folder.exists():
        return
    entries = _entries(folder)
    if not entries:
        return
    config_path = folder / "config.json"
    if not config_path.exists():
        shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
        raise RunError(
            f"{folder} is not empty ({shown}) and is not an aatk run (no config.json); choose a new or "
            "empty folder, or pass --overwrite (overwrite=True) to write the run there anyway"
        )
    stored = read_json_file(config_path, what="the run's configuration")
    if not isinstance(stored, dict):
        raise RunError(f"{config_path} (the run's configuration) is damaged: not a JSON object")
    stored.pop("source", None)
    try:
        previous = config_fingerprint(validate(stored, source=str(config_path)))
    except ConfigError as error:
        raise RunError(f"{config_path} is not a configuration this aatk can read ({error}); "
                       "pass --overwrite to start over in this folder") from None
    current = config_fingerprint(config)
    if previous != current:
        raise RunError(
            f"{folder} holds a run of a different configuration (fingerprint {previous}, this one "
            f"{current}); choose another --out, or pass --overwrite to replace that run"
        )


def remove_run_files(folder: str | Path) -> list[str]:
    """Deletes aatk's own run files ([`RUN_FILES`][aatk.runs.RUN_FILES]) in ``folder``; other files stay.

    Returns:
        The names removed.
    """
    folder = Path(folder)
    removed = []
    for pattern in RUN_FILES:
        for path in sorted(folder.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path.name)
    return removed


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint chosen to resume from: the loaded model and its record."""

    model: Any
    epochs_done: int
    rng: dict
    path: Path
    data_order: str | None = None
    """How the run drew its batches (``"tf.data"`` or ``"numpy"``); None in records written
    before aatk recorded it."""


def _checkpoint_paths(folder: Path, epochs_done: int) -> tuple[Path, Path]:
    stem = folder / CHECKPOINT_DIR / f"epoch-{epochs_done:04d}"
    return stem.with_suffix(".keras"), stem.with_suffix(".json")


def write_checkpoint(
    model, folder: str | Path, *, epochs_done: int, fingerprint: str, rng: dict, keep: int = 2,
    data_order: str | None = None,
) -> Path:
    """Saves the model after ``epochs_done`` epochs with its record, then ``state.json``.

    Order (each step durable before the next): the ``.keras`` file under a temporary name,
    renamed; its record (epoch count, fingerprint, random-number state, SHA-256); the copy
    in ``state.json``; then checkpoints older than the ``keep`` newest are deleted (and a
    ``checkpoint.keras`` of the single-file layout aatk used before).

    Returns:
        The path of the ``.keras`` file.
    """
    folder = Path(folder)
    (folder / CHECKPOINT_DIR).mkdir(exist_ok=True)
    keras_path, record_path = _checkpoint_paths(folder, epochs_done)
    temporary = keras_path.with_name(f".{keras_path.stem}.tmp.keras")
    model.save(temporary)
    with temporary.open("rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temporary, keras_path)
    _fsync_folder(keras_path.parent)
    record = {
        "epochs_done": epochs_done,
        "fingerprint": fingerprint,
        "rng": rng,
        "checkpoint": f"{CHECKPOINT_DIR}/{keras_path.name}",
        "sha256": _sha256(keras_path),
    }
    if data_order is not None:
        record["data_order"] = data_order
    text = json.dumps(record, indent=2)
    atomic_write(record_path, text)
    atomic_write(folder / "state.json", text)
    # Keep the newest pairs; drop older ones, files without a record and leftovers of a kill.
    kept = {path.name for done, _ in _records(folder)[:keep] for path in _checkpoint_paths(folder, done)}
    for path in (folder / CHECKPOINT_DIR).iterdir():
        if path.name not in kept and path.is_file():
            path.unlink(missing_ok=True)
    (folder / "checkpoint.keras").unlink(missing_ok=True)
    return keras_path


def _records(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoint records of a run folder, newest first."""
    found = []
    directory = folder / CHECKPOINT_DIR
    if directory.is_dir():
        for path in directory.iterdir():
            match = _CHECKPOINT_NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def latest_checkpoint(
    folder: str | Path,
    *,
    fingerprint: str,
    steps_per_epoch: int,
    load: Callable[[Path], Any] | None = None,
) -> Checkpoint | None:
    """The newest usable checkpoint of a run folder, loaded; None if the run has none.

    A checkpoint is usable when its record is valid JSON with every field, its ``.keras``
    file has the recorded SHA-256 and loads, and the loaded optimizer has taken
    ``epochs_done × steps_per_epoch`` steps. Each unusable one is named in a
    [`RunWarning`][aatk.runs.RunWarning] and the next older one is tried. A run folder of the single-file
    layout (``state.json`` + ``checkpoint.keras``) is read too.

    Args:
        folder: The run folder.
        fingerprint: The configuration's fingerprint ([`config_fingerprint`][aatk.runs.config_fingerprint]).
        steps_per_epoch: Optimizer steps of one epoch.
        load: Loads a ``.keras`` file (default [`load_model_file`][aatk.runs.load_model_file]).

    Raises:
        RunError: If a record belongs to another configuration (another fingerprint), or
            the folder has checkpoints but none is usable.
    """
    folder = Path(folder)
    load = load or load_model_file
    candidates = [(path, None) for _, path in _records(folder)]
    if not candidates and (folder / "state.json").exists():
        candidates = [(folder / "state.json", folder / "checkpoint.keras")]  # the single-file layout
    problems = []
    for record_path, legacy_checkpoint in candidates:
        try:
            record = read_json_file(record_path, what="a checkpoint record")
            if not isinstance(record, dict) or any(key not in record for key in _RECORD_KEYS[:3]):
                raise RunError(f"{record_path} is damaged: it lacks the fields {list(_RECORD_KEYS[:3])}")
            if record["fingerprint"] != fingerprint:
                raise _ForeignRun(
                    f"{record_path} belongs to a run of a different configuration (fingerprint "
                    f"{record['fingerprint']}, this one {fingerprint}); choose another --out or pass --overwrite"
                )
            epochs_done = int(record["epochs_done"])
            if legacy_checkpoint is None:
                if any(key not in record for key in _RECORD_KEYS):
                    raise RunError(f"{record_path} is damaged: it lacks the fields {list(_RECORD_KEYS)}")
                checkpoint_path = folder / record["checkpoint"]
                if not checkpoint_path.is_file():
                    raise RunError(f"{checkpoint_path} is missing")
                if _sha256(checkpoint_path) != record["sha256"]:
                    raise RunError(f"{checkpoint_path} is damaged or was replaced: its SHA-256 is not the recorded one")
            else:
                checkpoint_path = legacy_checkpoint
            model = load(checkpoint_path)
            optimizer = getattr(model, "optimizer", None)
            taken = int(np.asarray(optimizer.iterations.value)) if optimizer is not None else -1
            if taken != epochs_done * steps_per_epoch:
                raise RunError(
                    f"{checkpoint_path} does not belong to its record: its optimizer took {taken} steps, "
                    f"{epochs_done} epochs of {steps_per_epoch} steps make {epochs_done * steps_per_epoch}"
                )
        except _ForeignRun as error:
            raise RunError(str(error)) from None
        except RunError as error:
            problems.append(str(error))
            warnings.warn(f"{error}; trying the previous checkpoint", RunWarning, stacklevel=2)
            continue
        return Checkpoint(model=model, epochs_done=epochs_done, rng=record.get("rng", {}), path=checkpoint_path,
                          data_order=record.get("data_order"))
    if problems:
        raise RunError(
            f"{folder} has no usable checkpoint ({'; '.join(problems)}); pass --overwrite "
            "(overwrite=True) to start the run over"
        )
    return None


class _ForeignRun(Exception):
    pass


def trim_epoch_rows(path: str | Path, *, keep: Callable[[int], bool]) -> int:
    """Keeps only the rows of a per-epoch CSV (``log.csv``, ``monitor.csv``) whose ``epoch``
    passes ``keep`` — after a resume, the epochs the checkpoint holds.

    Returns:
        The number of rows removed.

    Raises:
        RunError: If the file has no ``epoch`` column or a row's epoch is not an integer.
    """
    path = Path(path)
    if not path.exists():
        return 0
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        fields = reader.fieldnames or []
        rows = list(reader)
    if "epoch" not in fields:
        raise RunError(f"{path} is damaged: it has no 'epoch' column")
    kept = []
    for row in rows:
        try:
            epoch = int(row["epoch"])
        except (TypeError, ValueError):
            raise RunError(f"{path} is damaged: epoch {row['epoch']!r} is not an integer") from None
        if keep(epoch):
            kept.append(row)
    if len(kept) != len(rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write(path, text.getvalue())
    return len(rows) - len(kept)
