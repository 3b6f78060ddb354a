"""Table 3 of Wang et al. (2020), MNIST rows AAT and AAT++, on one GPU with Keras's JAX backend.

For each method it trains ``configs/mnist_<method>.toml`` (the paper's 56-epoch schedule,
Table 5) and evaluates the model under every test attack of the configuration, all through
aatk's own command line (:func:`aatk.cli.main`: ``train`` then ``evaluate``), then prints
the key figures of Table 3 (clean S, R, N; R_adv, N_adv and DIA = R_adv − N_adv) as a
Markdown table. It needs no TensorFlow: with ``KERAS_BACKEND=jax`` aatk reads MNIST's idx
``.gz`` files with NumPy and draws each epoch's order with NumPy.

Prepare here (CPU machine, repository root), once::

    bash gpu/prepare.sh        # wheels into .whl/, MNIST into .gpu-data/, both git-ignored

Launch on the lent GPU machine: the device tool's ``run`` with the command
``bash gpu/run.sh --time-budget 540``, ``timeout_s`` 600 and ``carry`` ``[".whl", ".gpu-data"]``
(plus ``"runs/gpu"`` to resume earlier calls). Keep ``--time-budget`` about a minute under
``timeout_s``: installing the wheels and importing JAX come first. ``gpu/run.sh`` installs
the wheels into /tmp/site and runs this script as
``python3 gpu/table3.py --out "$OUT" --runs-dir runs/gpu --data-dir .gpu-data ...``.

Learning rate: the configurations keep Table 5's 0.1, the default here; in our CPU runs
0.1 collapsed the three-way model and 0.01 was used (docs/results.md): pass
``--learning-rate 0.01`` for that setting (the run folder records the rate, and a folder
trained with one rate refuses another: use another ``--runs-dir``).
Locally (CPU, tiny)::

    KERAS_BACKEND=jax python gpu/table3.py --out /tmp/gpu_dry --epochs 1 --subset 512 \\
        --eval-subset 200 --data-dir .gpu-data --methods aat

What it writes:

* ``RUNS/mnist_<method>/`` (``--runs-dir``, default ``--out``): aatk's run folder
  (checkpoint after every epoch, ``model.keras``, ``eval-<attack>.json``) plus
  ``table3.json``, this script's record of the folder (precision, timings of every call).
* ``OUT/summary.json``, rewritten after every step: methods, epochs, learning rate,
  precision, devices, versions, per-method training and evaluation wall seconds, the
  evaluation records (``eval-*.json``), and the status (``done``, ``stopped: time budget``
  or the error).
* ``OUT/table.md``: the Markdown table, also printed at the end.
* ``OUT/mnist_<aat|aatpp>.tar`` when ``--runs-dir`` is not ``--out``: the run folder,
  small enough to come back from the device machine (the device tool returns at most 8
  files, one folder down at most, named in letters, digits, ``.``, ``_`` and ``-``: a
  run folder ``mnist_aat++/`` itself would not come back). An unfinished run's tar holds
  its checkpoint; a finished one's holds ``model.keras`` instead.

Resuming: aatk's ``train`` resumes a run folder from its last finished epoch. Training
runs in chunks (``train --epochs K`` with a growing K; the milestones are absolute, so
the schedule is the uninterrupted one): with ``--time-budget`` each chunk is sized to end
inside the budget, and a step (a chunk, or the evaluation under one attack) that would
not fit is not started; the summary then says ``stopped: time budget``. To continue in
a later device call, unpack the tars that came back into ``runs/gpu`` here and carry it::

    mkdir -p runs/gpu && for t in FILES_AT/mnist_*.tar; do tar -xf "$t" -C runs/gpu; done

Finished trainings and evaluations (same epochs and number of test examples) are skipped.
On SIGTERM (a timeout that sends it before killing) the summary and the tar of the run in
progress are written before the script exits with status 143.

Precision: ``mixed_bfloat16`` by default on a GPU (``jax.default_backend() == "gpu"``),
float32 elsewhere; a resumed run keeps the dtype policy it was started with (saved in its
checkpoint).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

START = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

METHODS = ("aat", "aat++")
FIGURES = ("S", "R", "N", "R_adv", "N_adv", "DIA")
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000
# Rough guesses used until this process has measured something (seconds, full MNIST, one GPU).
GUESS_FIRST_CHUNK = 120.0  # compilation + one epoch of AAT
GUESS_EVAL_ATTACK = 90.0  # compilation + one test attack on 10,000 examples
MARGIN = 15.0  # writing the summary and the tar, and slack
SAFETY = 1.15  # estimates are multiplied by this


class Terminated(BaseException):
    """Raised by the SIGTERM handler: the device tool's timeout, say (not an Exception,
    so that nothing on the way catches it)."""


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM handler: raises :class:`Terminated` in the main thread."""
    raise Terminated(f"signal {signum}")


def log(message: str) -> None:
    """Prints a progress line with the elapsed time, flushed at once."""
    print(f"[table3 {time.perf_counter() - START:7.1f}s] {message}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder of summary.json, table.md (and the tars)")
    parser.add_argument("--runs-dir", help="folder of the run folders mnist_<method> (default: --out)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--epochs", type=int, default=56, help="training epochs (default 56, Table 5)")
    parser.add_argument("--learning-rate", type=float, help="override the configuration's learning rate")
    parser.add_argument("--subset", type=int, help="train on the first N training examples")
    parser.add_argument("--eval-subset", type=int, help="evaluate on the first N test examples (default all)")
    parser.add_argument("--precision", choices=("mixed_bfloat16", "float32"),
                        help="Keras dtype policy (default: mixed_bfloat16 on a GPU, else float32)")
    parser.add_argument("--data-dir", default=".gpu-data", help="folder holding mnist/*.gz (default .gpu-data)")
    parser.add_argument("--time-budget", type=float,
                        help="seconds this script may run; a step that would not fit is not started")
    parser.add_argument("--pack", choices=("auto", "yes", "no"), default="auto",
                        help="write OUT/mnist_<method>.tar of each run folder (auto: when --runs-dir is not --out)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    for flag in ("subset", "eval_subset"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    args.methods = list(dict.fromkeys(args.methods))
    return args


def atomic_write(*, path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def read_json(*, path: Path, default: Any) -> Any:
    """The JSON content of ``path``, or ``default`` where it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def safe_name(*, method: str) -> str:
    """A file name for ``method`` made of letters, digits, '.', '_' and '-' only."""
    return "mnist_" + method.replace("+", "p")


def adversarial_terms(*, method: str) -> int:
    """How many PGD attacks one training step of ``method`` runs (AAT: 1, AAT++: 3)."""
    return {"aat": 1, "aat++": 3}[method]


class Estimator:
    """Rough training-time estimates for one method, refined by what this process measures.

    A chunk of n epochs takes ``overhead + n * epoch`` seconds (the overhead: loading the
    checkpoint and compiling). Times are kept per *work unit*, one epoch of AAT on all of
    MNIST; an epoch of AAT++ (three 5-step attacks per step instead of one) counts
    (1 + 5 * 3) / (1 + 5 * 1) units, so that another method's measurements give a first guess.
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[float, float]] = []  # (work units, seconds)

    @staticmethod
    def epoch_work(*, method: str, train_examples: int) -> float:
        return train_examples * (1 + 5 * adversarial_terms(method=method)) / (MNIST_TRAIN * 6)

    def record_chunk(self, *, work: float, seconds: float) -> None:
        self.chunks.append((work, seconds))

    def fit(self) -> tuple[float, float]:
        """(overhead seconds, seconds per work unit), both on the safe side."""
        if not self.chunks:
            return 0.25 * GUESS_FIRST_CHUNK, 0.75 * GUESS_FIRST_CHUNK
        if len({w for w, _ in self.chunks}) >= 2:
            n = len(self.chunks)
            mean_w = sum(w for w, _ in self.chunks) / n
            mean_t = sum(t for _, t in self.chunks) / n
            var = sum((w - mean_w) ** 2 for w, _ in self.chunks)
            slope = sum((w - mean_w) * (t - mean_t) for w, t in self.chunks) / var
            if slope > 0:
                overhead = max(max(t - slope * w for w, t in self.chunks), 0.0)  # the worst chunk's
                return overhead, slope
        work, seconds = max(self.chunks)
        return 0.0, seconds / work  # all overhead counted as epoch time: an overestimate

    def chunk_seconds(self, *, epochs: int, epoch_work: float, safety: float = SAFETY) -> float:
        overhead, per_work = self.fit()
        return safety * (overhead + epochs * epoch_work * per_work)

    def epochs_fitting(self, *, seconds: float, epoch_work: float) -> int:
        overhead, per_work = self.fit()
        return max(0, math.floor((seconds / SAFETY - overhead) / (epoch_work * per_work)))


class Table3:
    """Trains and evaluates the methods, keeping ``summary.json`` up to date."""

    def __init__(self, *, args: argparse.Namespace, precision: str, devices: list[str], versions: dict) -> None:
        self.args = args
        self.out = Path(args.out)
        self.runs = Path(args.runs_dir) if args.runs_dir else self.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.runs.mkdir(parents=True, exist_ok=True)
        same = self.out.resolve() == self.runs.resolve()
        self.pack = args.pack == "yes" or (args.pack == "auto" and not same)
        self.precision = precision
        self.estimators = {method: Estimator() for method in args.methods}
        self.eval_per_example: float | None = None  # seconds per test example and attack, measured
        self.summary: dict[str, Any] = {
            "table": "Wang et al. (2020), Table 3, MNIST",
            "status": "running",
            "methods": args.methods,
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "subset": args.subset,
            "eval_subset": args.eval_subset,
            "precision": precision,
            "time_budget": args.time_budget,
            "devices": devices,
            "versions": versions,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "runs_dir": str(self.runs),
            "results": {},
        }

    # --- bookkeeping -------------------------------------------------------------------------

    def run_folder(self, *, method: str) -> Path:
        return self.runs / f"mnist_{method}"

    def config_path(self, *, method: str) -> Path:
        return REPO / "configs" / f"mnist_{method}.toml"

    def elapsed(self) -> float:
        return time.perf_counter() - START

    def remaining(self) -> float:
        return math.inf if self.args.time_budget is None else self.args.time_budget - self.elapsed()

    def budget_text(self) -> str:
        return "no time budget" if self.args.time_budget is None else f"{self.remaining():.0f}s of the budget left"

    def epochs_done(self, *, method: str) -> int:
        state = read_json(path=self.run_folder(method=method) / "state.json", default={})
        return int(state.get("epochs_done", 0))

    def record(self, *, method: str) -> dict:
        """This script's record of a run folder (``table3.json``), across calls."""
        return read_json(path=self.run_folder(method=method) / "table3.json",
                         default={"precision": None, "train_chunks": [], "evaluations": []})

    def save_record(self, *, method: str, record: dict) -> None:
        atomic_write(path=self.run_folder(method=method) / "table3.json", text=json.dumps(record, indent=2))

    def evaluations(self, *, method: str) -> dict[str, dict]:
        found = {}
        for path in sorted(self.run_folder(method=method).glob("eval-*.json")):
            record = read_json(path=path, default=None)
            if record is not None:
                found[record.get("attack", path.stem[5:])] = record
        return found

    def test_attacks(self, *, method: str) -> list[str]:
        from aatk.configs import load_config

        return list(load_config(str(self.config_path(method=method))).test_pgds())

    def first_chunk_seconds(self, *, method: str, epoch_work: float) -> float:
        """The estimate for a method's first, one-epoch chunk: from another method's
        measurements where there are some (with extra safety), else the guess."""
        measured = [e for m, e in self.estimators.items() if m != method and e.chunks]
        if measured:
            return measured[0].chunk_seconds(epochs=1, epoch_work=epoch_work, safety=1.5 * SAFETY)
        return self.estimators[method].chunk_seconds(epochs=1, epoch_work=epoch_work)

    def eval_seconds(self, *, examples: int) -> float:
        """The estimate for one evaluation under one test attack."""
        if self.eval_per_example is None:
            return SAFETY * GUESS_EVAL_ATTACK * max(examples / MNIST_TEST, 0.2)
        return SAFETY * (10.0 + examples * self.eval_per_example)

    def expected_eval_samples(self) -> int:
        return min(self.args.eval_subset or MNIST_TEST, MNIST_TEST)

    def write_summary(self, *, status: str | None = None) -> None:
        if status is not None:
            self.summary["status"] = status
        self.summary["elapsed_seconds"] = round(self.elapsed(), 1)
        for method in self.args.methods:
            folder = self.run_folder(method=method)
            result = self.summary["results"].setdefault(method, {})
            record = self.record(method=method)
            result.update(
                run_folder=str(folder),
                epochs_done=self.epochs_done(method=method),
                run_precision=record.get("precision"),
                learning_rate=read_json(path=folder / "config.json", default={}).get("training", {}).get("learning_rate"),
                train_seconds=round(sum(c["seconds"] for c in record["train_chunks"]), 1),
                eval_seconds=round(sum(e["seconds"] for e in record["evaluations"]), 1),
                train_chunks=record["train_chunks"],
                evaluation_steps=record["evaluations"],
                evaluations=self.evaluations(method=method),
            )
            log_csv = folder / "log.csv"
            if log_csv.exists():
                lines = log_csv.read_text().strip().splitlines()
                if len(lines) >= 2:
                    result["last_epoch_log"] = dict(zip(lines[0].split(","), lines[-1].split(",")))
        atomic_write(path=self.out / "summary.json", text=json.dumps(self.summary, indent=2))
        atomic_write(path=self.out / "table.md", text=self.table() + "\n")

    def pack_run(self, *, method: str) -> None:
        """``OUT/mnist_<aat|aatpp>.tar``: the run folder, with the checkpoint only while unfinished."""
        if not self.pack:
            return
        folder = self.run_folder(method=method)
        if not folder.exists():
            return
        finished = self.epochs_done(method=method) >= self.args.epochs and (folder / "model.keras").exists()
        leave_out = {"checkpoint.keras" if finished else "model.keras"}
        target = self.out / f"{safe_name(method=method)}.tar"
        temporary = target.with_name(f".{target.name}.tmp")
        with tarfile.open(temporary, "w") as archive:
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.name not in leave_out and not path.name.startswith("."):
                    archive.add(path, arcname=f"{folder.name}/{path.name}")
        os.replace(temporary, target)
        log(f"packed {folder} into {target} ({target.stat().st_size / 2**20:.1f} MiB)")

    def table(self) -> str:
        lines = [
            f"Table 3, MNIST: {', '.join(self.args.methods)}; target {self.args.epochs} epochs; "
            f"precision {self.precision}; status: {self.summary['status']}",
            "",
            "| method | attack | epochs | test ex. | " + " | ".join(FIGURES) + " | train s | eval s |",
            "|---|---|---|---|" + "---|" * len(FIGURES) + "---|---|",
        ]
        for method in self.args.methods:
            result = self.summary["results"].get(method, {})
            evaluations = result.get("evaluations") or {}
            seconds = f"{result.get('train_seconds', 0):.0f} | {result.get('eval_seconds', 0):.0f}"
            if not evaluations:
                blank = " | ".join("-" for _ in FIGURES)
                lines.append(f"| {method} | - | {result.get('epochs_done', 0)} | - | {blank} | {seconds} |")
            for attack, record in sorted(evaluations.items()):
                figures = record.get("figures", {})
                cells = " | ".join(f"{100 * figures[f]:.1f}" if f in figures else "-" for f in FIGURES)
                lines.append(f"| {method} | {attack} | {record.get('epochs', '?')} | {record.get('samples', '?')} "
                             f"| {cells} | {seconds} |")
        return "\n".join(lines)

    # --- steps ---------------------------------------------------------------------------------

    def cli(self, *, argv: list[str]) -> tuple[int, float]:
        """Runs ``aatk <argv>`` in this process: (exit status, wall seconds)."""
        from aatk.cli import main

        log("aatk " + " ".join(argv))
        began = time.perf_counter()
        try:
            status = main(argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return status, time.perf_counter() - began

    def train(self, *, method: str) -> str | None:
        """Trains ``method`` to the target epochs in chunks; None when done, else why it stopped."""
        folder = self.run_folder(method=method)
        folder.mkdir(parents=True, exist_ok=True)
        record = self.record(method=method)
        if record["precision"] is None:
            record["precision"] = self.precision
            self.save_record(method=method, record=record)
        elif record["precision"] != self.precision and self.epochs_done(method=method) > 0:
            log(f"warning: {folder} was started with {record['precision']}; the checkpoint keeps its layers' "
                f"dtype policies, so it goes on in {record['precision']} whatever --precision says")
        train_examples = min(self.args.subset or MNIST_TRAIN, MNIST_TRAIN)
        epoch_work = Estimator.epoch_work(method=method, train_examples=train_examples)
        estimator = self.estimators[method]
        if self.epochs_done(method=method) >= self.args.epochs and (folder / "model.keras").exists():
            log(f"{method}: {self.epochs_done(method=method)}/{self.args.epochs} epochs already trained in {folder}")
        while (done := self.epochs_done(method=method)) < self.args.epochs or not (folder / "model.keras").exists():
            left = self.args.epochs - done
            if left <= 0:
                chunk = 0  # every epoch is done but model.keras is missing: train writes it
            elif self.args.time_budget is None:
                chunk = left
            elif not estimator.chunks:
                chunk = 1  # first measure the compilation and one epoch of this method
            else:
                chunk = max(1, min(left, estimator.epochs_fitting(seconds=self.remaining() - MARGIN,
                                                                   epoch_work=epoch_work)))
            if estimator.chunks:
                needed = estimator.chunk_seconds(epochs=max(chunk, 1), epoch_work=epoch_work)
            else:
                needed = self.first_chunk_seconds(method=method, epoch_work=epoch_work)
            needed += MARGIN
            if needed > self.remaining():
                log(f"{method}: {done}/{self.args.epochs} epochs; {max(chunk, 1)} more would take about "
                    f"{needed:.0f}s, {self.remaining():.0f}s left: stopping")
                return "stopped: time budget"
            target = done + chunk
            log(f"{method}: training epochs {done + 1}..{target} of {self.args.epochs} "
                f"(estimate {needed - MARGIN:.0f}s, {self.budget_text()})")
            argv = ["train", "--config", str(self.config_path(method=method)), "--out", str(folder),
                    "--data-dir", self.args.data_dir, "--epochs", str(target), "--verbose", "2"]
            if self.args.learning_rate is not None:
                argv += ["--learning-rate", repr(self.args.learning_rate)]
            if self.args.subset is not None:
                argv += ["--subset", str(self.args.subset)]
            status, seconds = self.cli(argv=argv)
            after = self.epochs_done(method=method)
            record = self.record(method=method)
            record["train_chunks"].append({"from_epoch": done, "to_epoch": after, "seconds": round(seconds, 2),
                                           "status": status, "devices": self.summary["devices"]})
            self.save_record(method=method, record=record)
            if after > done:
                estimator.record_chunk(work=(after - done) * epoch_work, seconds=seconds)
            log(f"{method}: epochs {done + 1}..{after} took {seconds:.1f}s (exit status {status})")
            self.write_summary()
            self.pack_run(method=method)
            if status != 0:
                return f"error: aatk train exited with status {status}"
        return None

    def evaluate(self, *, method: str) -> str | None:
        """Evaluates ``method`` under each test attack not yet evaluated; None when done."""
        folder = self.run_folder(method=method)
        samples = self.expected_eval_samples()
        for attack in self.test_attacks(method=method):
            existing = self.evaluations(method=method).get(attack)
            if existing and existing.get("epochs") == self.args.epochs and existing.get("samples") == samples:
                log(f"{method}: {attack} already evaluated on {samples} examples: skipped")
                continue
            needed = self.eval_seconds(examples=samples) + MARGIN
            if needed > self.remaining():
                log(f"{method}: evaluating {attack} would take about {needed:.0f}s, {self.remaining():.0f}s left: stopping")
                return "stopped: time budget"
            argv = ["evaluate", "--run", str(folder), "--data-dir", self.args.data_dir, "--attack", attack]
            if self.args.eval_subset is not None:
                argv += ["--subset", str(self.args.eval_subset)]
            status, seconds = self.cli(argv=argv)
            record = self.record(method=method)
            record["evaluations"].append({"attack": attack, "samples": samples, "seconds": round(seconds, 2),
                                          "status": status, "devices": self.summary["devices"]})
            self.save_record(method=method, record=record)
            if status == 0:
                per_example = max(seconds - 10.0, 0.5 * seconds) / samples
                self.eval_per_example = max(self.eval_per_example or 0.0, per_example)
            log(f"{method}: evaluation under {attack} took {seconds:.1f}s (exit status {status})")
            self.write_summary()
            self.pack_run(method=method)
            if status != 0:
                return f"error: aatk evaluate exited with status {status}"
        return None

    def run(self) -> int:
        """All methods; the exit status (0 also when stopped by the time budget).

        On SIGTERM (or Ctrl-C) the summary and the tar of the method in progress are written
        (its checkpoint of the last finished epoch) before the script exits with status 143.
        """
        signal.signal(signal.SIGTERM, on_sigterm)
        self.write_summary()
        problems = []
        method = None
        try:
            for method in self.args.methods:
                result = self.summary["results"].setdefault(method, {})
                try:
                    stopped = self.train(method=method) or self.evaluate(method=method)
                except Exception as error:  # recorded, then the next method
                    traceback.print_exc()
                    stopped = f"error: {type(error).__name__}: {error}"
                result["status"] = stopped or "done"
                self.write_summary()
                self.pack_run(method=method)
                if stopped:
                    problems.append(f"{method}: {stopped}")
                    if stopped == "stopped: time budget":
                        break
        except (Terminated, KeyboardInterrupt) as interruption:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            why = f"stopped: {type(interruption).__name__} {interruption}".strip()
            log(f"{why} during {method}: writing the summary and the run folder's tar")
            if method is not None:
                self.summary["results"].setdefault(method, {})["status"] = why
                self.pack_run(method=method)
            self.write_summary(status=why)
            print("\n" + self.table() + "\n", flush=True)
            return 143
        budget_stop = any(p.endswith("stopped: time budget") for p in problems)
        status = "done" if not problems else ("stopped: time budget" if budget_stop else "; ".join(problems))
        self.write_summary(status=status)
        log(f"status: {status}; summary in {self.out / 'summary.json'}")
        print("\n" + self.table() + "\n", flush=True)
        return 0 if not problems or (budget_stop and len(problems) == 1) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: sets up JAX and Keras, then runs :class:`Table3`."""
    args = parse_args(argv)
    import jax
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        log(f"warning: the Keras backend is {keras.backend.backend()!r}, not jax (KERAS_BACKEND)")
    devices = [str(d) for d in jax.devices()]
    log(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {devices}")
    precision = args.precision or ("mixed_bfloat16" if jax.default_backend() == "gpu" else "float32")
    keras.mixed_precision.set_global_policy(precision)
    log(f"keras {keras.__version__} ({keras.backend.backend()}), dtype policy {precision}")
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
    }
    return Table3(args=args, precision=precision, devices=devices, versions=versions).run()


if __name__ == "__main__":
    sys.exit(main())
