"""Full-length runs of Wang et al. (2020) on a machine with a GPU: Table 3 (MNIST) and Table 2's
CIFAR-10 PreAct-ResNet18 AAT++ row, with Keras's JAX backend.

For each configuration named by ``--configs`` (``configs/<name>.toml``, or the path of a TOML
file of one's own, e.g. one that ``extends`` a shipped file) it trains the model
for the configuration's own epochs (Table 5: 56 for MNIST, 105 for CIFAR-10; ``--epochs``
overrides) and evaluates it under every test attack of the configuration, all through aatk's
own command line (:func:`aatk.cli.main`: ``train`` then ``evaluate``), then prints the key
figures (clean S, R, N; R_adv, N_adv and DIA = R_adv − N_adv) as a Markdown table. The default
list is the MNIST rows of Table 3 with the CPU recipe (``mnist_st``, ``mnist_at_half``,
``mnist_aat``, ``mnist_aat++``: trained with ``mnist-linf-pgd5``), AAT and AAT++ trained with
YOPO's PGD-40 (``mnist_aat_pgd40``, ``mnist_aat++_pgd40``), then the CIFAR-10 AAT++ run
(``cifar10_res18_aat++``), which takes many hours and is meant to be resumed over several calls.
The MNIST configurations are tested under ``mnist-linf-pgd40`` first, then under the two literal
readings of Table 4a (``mnist-linf-test``, ``mnist-l2-test``); CIFAR-10 under
``cifar10-linf-test`` and ``cifar10-l2-test``.

It needs no TensorFlow: with ``KERAS_BACKEND=jax`` aatk reads MNIST's idx ``.gz`` files and
CIFAR-10's binary batches with NumPy, and draws each epoch's order and CIFAR-10's
pad-crop-flip augmentation with NumPy (``--without-tensorflow`` makes an environment where
TensorFlow is installed behave the same way, to check that path).

Where the machine with a GPU has network, install the project there with
``pip install -e ".[jax-cuda]"`` (README, "Install") and run this script with ``--out`` and
``--data-dir``. For a machine with a GPU but without network, prepare the repository once on a
machine with network::

    bash gpu/prepare.sh        # wheels into .whl/, MNIST and CIFAR-10 into .gpu-data/, both git-ignored
    bash gpu/prepare.sh mnist  # MNIST only (11 MiB instead of 187 MiB of data)

then copy the repository with its ``.whl/`` and ``.gpu-data/`` folders to the machine with the
GPU (which needs Python 3.12 with JAX for CUDA, NumPy and SciPy) and run, from the repository
root::

    bash gpu/run.sh --time-budget 3600        # any option of this script may follow

``gpu/run.sh`` installs the wheels into /tmp/site and runs this script as
``python3 gpu/table3.py --out "${OUT:-runs/gpu}" --runs-dir runs/gpu --data-dir .gpu-data ...``.
On a CPU, on tiny settings::

    KERAS_BACKEND=jax python gpu/table3.py --out /tmp/gpu_dry --configs mnist_aat --epochs 1 \\
        --subset 256 --eval-subset 64 --data-dir ../shared/data --without-tensorflow

(about three minutes on two CPU cores, most of it compiling the 40-step attacks of the monitor
and the first test attack).

What it writes:

* ``RUNS/<config>/`` (``--runs-dir``, default ``--out``): aatk's run folder (checkpoint after
  every epoch, ``log.csv``, ``monitor.csv`` where the configuration monitors, ``model.keras``,
  ``eval-<attack>.json``) plus ``table3.json``, this script's record of the folder (the wall
  seconds of every training chunk and evaluation, and the devices they ran on).
* ``OUT/summary.json``, rewritten after every step: the configurations, target epochs,
  learning-rate override, dtype, devices, versions, per configuration its run's dtype and
  learning rate, training and evaluation wall seconds, the last rows of ``log.csv`` and
  ``monitor.csv``, the evaluation records (``eval-*.json``) and the status (``done``,
  ``stopped: time budget`` or the error).
* ``OUT/table.md``: the Markdown table, also printed at the end: per configuration and test
  attack the epochs, test examples, S, R, N, R_adv, N_adv, DIA (in %; the ways a one-way
  baseline does not train are shown as ``-``, as ``aatk report`` does), the configuration's
  training seconds and that attack's evaluation seconds.
* ``OUT/<config>.tar`` (``+`` written ``p``: ``mnist_aatpp.tar``) when ``--runs-dir`` is not
  ``--out`` (``--pack`` decides otherwise): the run folder, to copy back from the machine with
  a GPU. An unfinished run's tar holds its checkpoint; a finished one's holds ``model.keras``
  instead (enough to evaluate it again; training it further needs the checkpoint, kept in
  ``RUNS``).

Time budget and resuming: aatk's ``train`` resumes a run folder from its last finished epoch.
Training runs in chunks (``train --epochs K`` with a growing K; the milestones are absolute,
so the schedule is the uninterrupted one). With ``--time-budget`` every chunk is sized to end
inside the budget from estimates made per configuration: before anything is measured, a guess
from the platform, the backbone and the network passes of one training example (the attack
steps of each attacked way; compilation grows with the steps too); then another
configuration's measurements (same dataset and backbone) scaled by that cost, while a first
one-epoch chunk measures this one; then a fit of overhead and seconds per epoch to this
configuration's own chunks, including those of earlier calls on the same kind of device
(``table3.json``). Evaluations are estimated alike. A step (a chunk, or the evaluation under one
attack) that would not fit is not started, the summary then says ``stopped: time budget`` and
the remaining configurations wait for the next call. Finished trainings and evaluations (same
epochs and number of test examples) are skipped, so the same command continues where the last
one stopped. To continue elsewhere from the tars that came back, unpack them into the runs
folder first::

    mkdir -p runs/gpu && for t in OUT/*.tar; do tar -xf "$t" -C runs/gpu; done

On SIGTERM (a scheduler's timeout, say) the summary and the tar of the run in progress are
written before the script exits with status 143.

Precision: ``--dtype`` is passed to ``aatk train`` (the configuration key ``training.dtype``):
``mixed_bfloat16`` by default on a GPU (``jax.default_backend() == "gpu"``), ``float32``
elsewhere. A resumed run keeps the dtype it was started with (its ``config.json``; ``aatk
train`` refuses a changed configuration): where the requested one differs, a warning says so.
Evaluation runs in the run's training dtype.

Learning rate: the configurations hold Table 5's rates (MNIST 0.1 with a 75-step warm-up,
CIFAR-10 0.05); ``--learning-rate`` overrides every configuration's. A run folder trained with
another rate (or subset) is refused before any work: use another ``--runs-dir``.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

START = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PROG = "table3.py"

DEFAULT_CONFIGS = (
    "mnist_st",
    "mnist_at_half",
    "mnist_aat",
    "mnist_aat++",
    "mnist_aat_pgd40",
    "mnist_aat++_pgd40",
    "cifar10_res18_aat++",
)
FIGURES = ("S", "R", "N", "R_adv", "N_adv", "DIA")
ONE_WAY_FIGURES = {"1way-st": ("N", "N_adv"), "1way-at": ("R", "R_adv"), "1way-at-half": ("R", "R_adv")}
"""The figures of a one-way baseline's trained way; its other ways are untrained (as in ``aatk report``)."""
DTYPES = ("float32", "mixed_bfloat16")
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")

# Cost model. A work unit is one example through one encoder, forward and backward; the standard
# way runs both encoders, the robust and the non-robust way one each.
ENCODERS = {"standard": 2, "robust": 1, "non_robust": 1}
ATTACKED_WAY = {"as": "standard", "ar": "robust", "an": "non_robust"}
TRAINED_WAYS = {"1way-st": ("non_robust",), "1way-at": ("robust",), "1way-at-half": ("robust",)}
# First guesses before anything is measured, per platform and backbone, on the safe side:
# (seconds of loading and compiling, compilation seconds per attack step, seconds per work unit).
# aatk's PGD unrolls its steps, so compilation grows with them. CPU: measured on two cores (an
# AAT++ MNIST epoch with 5-step attacks, 1.56 M units, took 1,054-1,420 s; an evaluation under
# a 40-step attack took 50 s longer than under a 10-step one). GPU: guesses for one current
# data-centre GPU in bfloat16, from the backbones' FLOPs.
GUESSES = {
    ("gpu", "small_cnn"): (20.0, 0.5, 5e-6),
    ("gpu", "preact_resnet18"): (60.0, 2.0, 1e-4),
    ("gpu", "wide_resnet34_10"): (120.0, 4.0, 1.2e-3),
    ("cpu", "small_cnn"): (10.0, 0.5, 1e-3),
    ("cpu", "preact_resnet18"): (60.0, 2.0, 5e-2),
    ("cpu", "wide_resnet34_10"): (120.0, 4.0, 0.6),
}
MARGIN = 15.0  # writing the summary and the tar, and slack
SAFETY = 1.15  # estimates are multiplied by this
BORROWED_SAFETY = 1.5  # and by this too when they come from another configuration's measurements


class Terminated(BaseException):
    """Raised by the SIGTERM handler (not an Exception, so that nothing on the way catches it)."""


class ArgumentProblem(ValueError):
    """A bad argument, found before any work; printed as one line, exit status 2."""


class NoTensorFlow(importlib.abc.MetaPathFinder):
    """An import hook under which ``import tensorflow`` fails as where it is not installed
    (``--without-tensorflow``). Unlike a ``None`` in ``sys.modules`` it leaves no
    ``"tensorflow"`` key there, which Keras reads as "TensorFlow was imported"."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        """Raises ModuleNotFoundError for TensorFlow and its submodules; None (next finder) otherwise."""
        if fullname == "tensorflow" or fullname.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (--without-tensorflow)", name=fullname)
        return None


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM handler: raises :class:`Terminated` in the main thread."""
    raise Terminated(f"signal {signum}")


def log(message: str) -> None:
    """Prints a progress line with the elapsed time, flushed at once."""
    print(f"[table3 {time.perf_counter() - START:7.1f}s] {message}", flush=True)


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


def last_csv_row(*, path: Path) -> dict[str, str] | None:
    """The last row of a CSV file with a header, or None where there is none."""
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
    except OSError:
        return None
    return rows[-1] if rows else None


def safe_name(*, name: str) -> str:
    """A file name for the configuration ``name``: '+' written 'p' (``mnist_aat++`` → ``mnist_aatpp``)."""
    return name.replace("+", "p")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of this script; checks that need no import (exit status 2 on a bad one)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder of summary.json, table.md (and the tars)")
    parser.add_argument("--runs-dir", help="folder of the run folders RUNS/<config> (default: --out)")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="NAME",
                        help="configurations in this order, each configs/NAME.toml or the path of a TOML file "
                             f"(default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--epochs", type=int,
                        help="training epochs of every configuration (default: each one's own, 56 MNIST, 105 CIFAR-10)")
    parser.add_argument("--learning-rate", type=float, help="override every configuration's learning rate")
    parser.add_argument("--subset", type=int, help="train on the first N training examples")
    parser.add_argument("--eval-subset", type=int, help="evaluate on the first N test examples (default all)")
    parser.add_argument("--dtype", choices=DTYPES,
                        help="aatk train --dtype (default: mixed_bfloat16 on a GPU, else float32); "
                             "a resumed run keeps its own")
    parser.add_argument("--data-dir", default=".gpu-data",
                        help="folder holding mnist/ and cifar10/cifar-10-batches-bin/ (default .gpu-data)")
    parser.add_argument("--time-budget", type=float,
                        help="seconds this script may run; a step that would not fit is not started")
    parser.add_argument("--pack", choices=("auto", "yes", "no"), default="auto",
                        help="write OUT/<config>.tar of each run folder (auto: when --runs-dir is not --out)")
    parser.add_argument("--without-tensorflow", action="store_true",
                        help="import no TensorFlow even where it is installed, as in an environment without it")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    for flag in ("subset", "eval_subset"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.learning_rate is not None and not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        parser.error(f"--learning-rate must be a finite number > 0, got {args.learning_rate}")
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        parser.error(f"--time-budget must be a finite number of seconds > 0, got {args.time_budget}")
    known = sorted(p.stem for p in (REPO / "configs").glob("*.toml") if not p.stem.startswith("_"))
    args.config_files = {}  # name (of the run folder) → TOML file
    for entry in dict.fromkeys(args.configs):
        if entry.endswith(".toml") or os.sep in entry:
            path = Path(entry)
            if not path.is_file():
                parser.error(f"--configs: {entry} is not a file")
        else:
            path = REPO / "configs" / f"{entry}.toml"
            if entry not in known:
                parser.error(f"--configs: no configs/{entry}.toml; known: {' '.join(known)}")
        name = path.stem
        if not SAFE_NAME.fullmatch(safe_name(name=name)):
            parser.error(f"--configs: {entry!r} gives no file name of letters, digits, '.', '_', '-' and '+'")
        if name in args.config_files or safe_name(name=name) in {safe_name(name=n) for n in args.config_files}:
            parser.error(f"--configs: two configurations would share the run folder or tar name {name!r}")
        args.config_files[name] = path
    args.configs = list(args.config_files)
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir: {args.data_dir} is not a folder (run 'bash gpu/prepare.sh' first)")
    return args


# --- what a configuration costs ----------------------------------------------------------------


def loss_terms(config: Any) -> tuple[str, ...]:
    """The loss terms a configuration's method trains (``st``, ``as``, ``ar``, ``an``, ``st_r``, ``st_n``)."""
    from aatk.objectives import BASELINES, METHODS

    method = config.method
    if isinstance(method, str):
        return tuple(BASELINES[method]) if method in BASELINES else tuple(METHODS[method])
    return tuple(method)


def train_units_per_example(config: Any) -> float:
    """Work units of one training example: the attack (its steps on every attacked way) plus
    the objective (the clean batch and every adversarial batch through their encoders)."""
    terms = loss_terms(config)
    attacked = [ATTACKED_WAY[t] for t in terms if t in ATTACKED_WAY]
    steps = int(config.train_attack["steps"]) if attacked else 0
    attack = steps * sum(ENCODERS[way] for way in attacked)
    clean = 2 if "st" in terms else sum(1 for t in ("st_r", "st_n") if t in terms)
    adversarial = sum(ENCODERS[way] for way in attacked)
    return float(attack + clean + adversarial)


def eval_units_per_example(*, steps: int) -> float:
    """Work units of one test example under one attack of ``steps`` steps in ``aatk evaluate``:
    attacks on the robust, non-robust and standard ways and the adaptive one on the detector
    (1 + 1 + 2 + 2 encoders), then forward passes."""
    return 6.0 * steps + 6.0


def monitored_ways(config: Any) -> tuple[str, ...]:
    """The ways the monitor attacks after an epoch (none without a monitor)."""
    if not config.monitor_subset:
        return ()
    return TRAINED_WAYS.get(config.method, ("robust", "non_robust")) if isinstance(config.method, str) \
        else ("robust", "non_robust")


def epoch_units(config: Any, *, train_examples: int, test_examples: int) -> float:
    """Work units of one epoch: training, the clean validation on the test split, the monitor."""
    units = train_examples * train_units_per_example(config)
    units += min(train_examples, test_examples) * 2 / 3  # validation: both encoders, forward only
    ways = monitored_ways(config)
    if ways:
        steps = int(config.test_attacks[config.monitor_attack]["steps"])
        units += config.monitor_subset * (steps * sum(ENCODERS[w] for w in ways) + 2) / config.monitor_every
    return units


def compiled_steps(config: Any) -> int:
    """Attack steps compiled by one ``aatk train`` call: the training attack's (one batched
    attack) and the monitor's (one attack per monitored way)."""
    train = int(config.train_attack["steps"]) if any(t in ATTACKED_WAY for t in loss_terms(config)) else 0
    ways = monitored_ways(config)
    monitor = len(ways) * int(config.test_attacks[config.monitor_attack]["steps"]) if ways else 0
    return train + monitor


@dataclass(frozen=True)
class Plan:
    """One configuration to train and evaluate, with what its estimates need.

    Attributes:
        name: The stem of its TOML file (``configs/<name>.toml``).
        config_path: Its TOML file.
        config: The configuration as ``aatk train`` will resolve it (overrides applied).
        folder: Its run folder, ``RUNS/<name>``.
        tar: ``<name>.tar`` with '+' written 'p'.
        epochs: Target epochs.
        dtype: The dtype passed to ``aatk train`` (a resumed run's own).
        train_examples: Training examples per epoch.
        test_examples: Test examples of each evaluation.
        epoch_units: Work units of one epoch.
        compiled_steps: Attack steps compiled by one ``aatk train`` call.
        attack_units: Test attack → work units of one evaluation under it.
        attack_steps: Test attack → its steps.
    """

    name: str
    config_path: Path
    config: Any
    folder: Path
    tar: str
    epochs: int
    dtype: str
    train_examples: int
    test_examples: int
    epoch_units: float
    compiled_steps: int
    attack_units: dict[str, float]
    attack_steps: dict[str, int]

    @property
    def cost_class(self) -> tuple[str, str]:
        """Which other configurations' measurements apply to this one: (dataset, backbone)."""
        return self.config.dataset, self.config.backbone


def _described(config_dict: dict) -> dict:
    """A resolved configuration without what a run may change when resumed (cf. aatk.training)."""
    described = json.loads(json.dumps(config_dict))
    for key in ("source", "monitor"):
        described.pop(key, None)
    described.get("training", {}).pop("epochs", None)
    return described


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two resolved configurations differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} there, {new!r} here"]


def make_plans(*, args: argparse.Namespace, runs: Path, dtype: str) -> list[Plan]:
    """The plan of every configuration, checking everything that would fail later.

    Raises:
        ArgumentProblem: On an invalid configuration or override, a subset larger than a
            split, missing data, or a run folder that holds another configuration.
    """
    from aatk import datasets
    from aatk.configs import ConfigError, PSEUDO_INPUT_METHOD, load_config

    plans = []
    checked_data = set()
    for name, path in args.config_files.items():
        try:
            base = load_config(path)
        except ConfigError as error:
            raise ArgumentProblem(f"{path}: {error}") from None
        if base.method == PSEUDO_INPUT_METHOD:
            raise ArgumentProblem(f"{name} trains on pseudo-inputs ('aatk pseudo-inputs'), "
                                  "which this script does not run")
        meta = datasets.info(base.dataset)
        train_total, test_total = meta.num_examples["train"], meta.num_examples["test"]
        if args.subset is not None and args.subset > train_total:
            raise ArgumentProblem(f"--subset {args.subset} exceeds {name}'s {base.dataset} training split "
                                  f"({train_total:,})")
        if args.eval_subset is not None and args.eval_subset > test_total:
            raise ArgumentProblem(f"--eval-subset {args.eval_subset} exceeds {name}'s {base.dataset} test split "
                                  f"({test_total:,})")
        if base.dataset not in checked_data:
            try:
                datasets.load_arrays(base.dataset, "test", data_dir=args.data_dir, subset=1)
            except Exception as error:  # aatk's message names the file and how to get it
                raise ArgumentProblem(f"--data-dir {args.data_dir}: {base.dataset}: {error}") from None
            checked_data.add(base.dataset)
        folder = runs / name
        epochs = args.epochs or base.epochs
        run_dtype = dtype
        state = read_json(path=folder / "state.json", default={})
        resumed = int(state.get("epochs_done", 0)) > 0
        recorded = read_json(path=folder / "config.json", default=None) if resumed else None
        if recorded is not None:
            started = recorded.get("training", {}).get("dtype", "float32")
            if started != dtype:
                log(f"warning: {folder} was started in {started}; it goes on in {started}, not {dtype} "
                    f"(aatk train refuses a changed configuration)")
                run_dtype = started
        overrides: dict[str, Any] = {"training.epochs": epochs, "training.dtype": run_dtype}
        if args.subset is not None:
            overrides["training.subset"] = args.subset
        if args.learning_rate is not None:
            overrides["training.learning_rate"] = args.learning_rate
        try:
            config = load_config(path, overrides=overrides)
        except ConfigError as error:
            raise ArgumentProblem(f"{path}: {error}") from None
        if recorded is not None:
            changed = _differences(_described(recorded), _described(config.as_dict()))
            if changed:
                raise ArgumentProblem(f"{folder} holds a run of another configuration ({'; '.join(changed)}): "
                                      "use another --runs-dir, or delete the folder")
        train_examples = min(config.subset or train_total, train_total)
        test_examples = min(args.eval_subset or test_total, test_total)
        plans.append(Plan(
            name=name,
            config_path=path,
            config=config,
            folder=folder,
            tar=f"{safe_name(name=name)}.tar",
            epochs=epochs,
            dtype=run_dtype,
            train_examples=train_examples,
            test_examples=test_examples,
            epoch_units=epoch_units(config, train_examples=train_examples, test_examples=test_total),
            compiled_steps=compiled_steps(config),
            attack_units={
                attack: test_examples * eval_units_per_example(steps=int(spec["steps"]))
                for attack, spec in config.test_attacks.items()
            },
            attack_steps={attack: int(spec["steps"]) for attack, spec in config.test_attacks.items()},
        ))
    return plans


# --- time estimates -----------------------------------------------------------------------------


class Estimator:
    """Training-time estimates of one configuration, from its own training chunks.

    A chunk of n epochs takes ``overhead + n * per_epoch`` seconds (the overhead: loading the
    checkpoint and compiling, once per ``aatk train`` call).
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[int, float]] = []  # (epochs, seconds)

    def record(self, *, epochs: int, seconds: float) -> None:
        """Adds a measured chunk of ``epochs`` epochs that took ``seconds``."""
        if epochs > 0 and seconds > 0:
            self.chunks.append((epochs, seconds))

    def fit(self) -> tuple[float, float] | None:
        """(overhead seconds, seconds per epoch), both on the safe side; None before any chunk."""
        if not self.chunks:
            return None
        if len({n for n, _ in self.chunks}) >= 2:
            count = len(self.chunks)
            mean_n = sum(n for n, _ in self.chunks) / count
            mean_t = sum(t for _, t in self.chunks) / count
            variance = sum((n - mean_n) ** 2 for n, _ in self.chunks)
            slope = sum((n - mean_n) * (t - mean_t) for n, t in self.chunks) / variance
            if slope > 0:
                overhead = max(max(t - slope * n for n, t in self.chunks), 0.0)  # the worst chunk's
                return overhead, slope
        return 0.0, max(t / n for n, t in self.chunks)  # all overhead counted as epoch time: an overestimate


class Estimates:
    """Time estimates of every step, per configuration, for one platform and kind of device.

    Training: a configuration's own chunks (:class:`Estimator`); before any, another
    configuration's of the same dataset and backbone scaled by the work units of an epoch
    (times :data:`BORROWED_SAFETY`); before any of those, :data:`GUESSES`. Evaluation: the guess
    from :data:`GUESSES`, calibrated by the evaluations of the same backbone measured so far.
    """

    def __init__(self, *, platform_name: str) -> None:
        self.platform = "cpu" if platform_name == "cpu" else "gpu"
        self.train: dict[str, Estimator] = {}
        self.eval_ratios: dict[str, list[float]] = {}  # backbone → measured / guessed seconds of evaluations

    def guess(self, *, plan: Plan) -> tuple[float, float, float]:
        """(base overhead seconds, compilation seconds per attack step, seconds per work unit)
        guessed for ``plan``'s backbone on this platform."""
        return GUESSES.get((self.platform, plan.config.backbone), GUESSES[(self.platform, "wide_resnet34_10")])

    def estimator(self, *, plan: Plan) -> Estimator:
        """The training estimator of ``plan``'s configuration."""
        return self.train.setdefault(plan.name, Estimator())

    def chunk_seconds(self, *, plan: Plan, epochs: int, plans: Sequence[Plan]) -> tuple[float, str]:
        """Estimated seconds of a training chunk of ``epochs`` epochs, and where it comes from."""
        fitted = self.estimator(plan=plan).fit()
        if fitted is not None:
            overhead, per_epoch = fitted
            return SAFETY * (overhead + epochs * per_epoch), "own measurements"
        borrowed = []
        for other in plans:
            other_fit = self.train.get(other.name, Estimator()).fit()
            if other is not plan and other_fit is not None and other.cost_class == plan.cost_class:
                overhead, per_epoch = other_fit
                borrowed.append((overhead, per_epoch / other.epoch_units))
        if borrowed:
            overhead = max(o for o, _ in borrowed)
            rate = max(r for _, r in borrowed)
            return BORROWED_SAFETY * SAFETY * (overhead + epochs * plan.epoch_units * rate), "other configurations"
        base, per_step, rate = self.guess(plan=plan)
        overhead = base + per_step * plan.compiled_steps
        return SAFETY * (overhead + epochs * plan.epoch_units * rate), "first guess"

    def epochs_fitting(self, *, plan: Plan, seconds: float) -> int:
        """How many epochs fit in ``seconds`` by ``plan``'s own measurements (0 before any)."""
        fitted = self.estimator(plan=plan).fit()
        if fitted is None:
            return 0
        overhead, per_epoch = fitted
        return max(0, math.floor((seconds / SAFETY - overhead) / per_epoch))

    def eval_guess(self, *, plan: Plan, attack: str) -> float:
        """The guessed seconds of one evaluation: loading, compiling four attacks, the work."""
        base, per_step, rate = self.guess(plan=plan)
        return 0.5 * base + per_step * 4 * plan.attack_steps[attack] + plan.attack_units[attack] * rate

    def record_eval(self, *, plan: Plan, attack: str, seconds: float) -> None:
        """Adds a measured evaluation of ``plan`` under ``attack`` that took ``seconds``."""
        if seconds > 0:
            self.eval_ratios.setdefault(plan.config.backbone, []).append(seconds / self.eval_guess(plan=plan, attack=attack))

    def eval_seconds(self, *, plan: Plan, attack: str) -> float:
        """Estimated seconds of evaluating ``plan`` under ``attack``: the guess, scaled by the
        worst ratio of measured to guessed seconds of the backbone's evaluations so far."""
        ratios = self.eval_ratios.get(plan.config.backbone)
        return SAFETY * (max(ratios) if ratios else 1.0) * self.eval_guess(plan=plan, attack=attack)


# --- the runs --------------------------------------------------------------------------------------


class Table3:
    """Trains and evaluates the configurations, keeping ``summary.json`` up to date."""

    def __init__(self, *, args: argparse.Namespace, plans: list[Plan], runs: Path, dtype: str, device: dict,
                 versions: dict) -> None:
        self.args = args
        self.plans = plans
        self.out = Path(args.out)
        self.runs = runs
        self.out.mkdir(parents=True, exist_ok=True)
        self.runs.mkdir(parents=True, exist_ok=True)
        same = self.out.resolve() == self.runs.resolve()
        self.pack = args.pack == "yes" or (args.pack == "auto" and not same)
        self.device = device
        self.estimates = Estimates(platform_name=device["platform"])
        self.summary: dict[str, Any] = {
            "title": "Wang et al. (2020): Table 3 (MNIST) and Table 2 (CIFAR-10), full-length runs",
            "status": "running",
            "configs": [plan.name for plan in plans],
            "epochs": {plan.name: plan.epochs for plan in plans},
            "learning_rate_override": args.learning_rate,
            "subset": args.subset,
            "eval_subset": args.eval_subset,
            "dtype": dtype,
            "run_dtypes": {plan.name: plan.dtype for plan in plans},
            "time_budget": args.time_budget,
            "device": device,
            "versions": versions,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "runs_dir": str(self.runs),
            "results": {},
        }
        for plan in plans:
            self.learn_from_earlier_calls(plan=plan)

    # --- bookkeeping ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the script started."""
        return time.perf_counter() - START

    def remaining(self) -> float:
        """Seconds left of the time budget (infinite without one)."""
        return math.inf if self.args.time_budget is None else self.args.time_budget - self.elapsed()

    def budget_text(self) -> str:
        """The time budget's state, for log lines."""
        return "no time budget" if self.args.time_budget is None else f"{self.remaining():.0f}s of the budget left"

    def epochs_done(self, *, plan: Plan) -> int:
        """Finished epochs of ``plan``'s run folder."""
        return int(read_json(path=plan.folder / "state.json", default={}).get("epochs_done", 0))

    def trained(self, *, plan: Plan) -> bool:
        """Whether ``plan``'s run has its target epochs and its ``model.keras``."""
        return self.epochs_done(plan=plan) >= plan.epochs and (plan.folder / "model.keras").exists()

    def record(self, *, plan: Plan) -> dict:
        """This script's record of a run folder (``table3.json``), across calls."""
        record = read_json(path=plan.folder / "table3.json", default={})
        record.setdefault("train_chunks", [])
        record.setdefault("evaluations", [])
        return record

    def save_record(self, *, plan: Plan, record: dict) -> None:
        """Writes ``table3.json`` of ``plan``'s run folder."""
        plan.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path=plan.folder / "table3.json", text=json.dumps(record, indent=2))

    def same_device(self, *, step: dict) -> bool:
        """Whether a recorded step ran on this platform and kind of device."""
        return step.get("platform") == self.device["platform"] and step.get("device_kind") == self.device["kind"]

    def learn_from_earlier_calls(self, *, plan: Plan) -> None:
        """Feeds the estimates with the steps of earlier calls on the same kind of device."""
        record = self.record(plan=plan)
        for chunk in record["train_chunks"]:
            if self.same_device(step=chunk) and chunk.get("status") == 0:
                self.estimates.estimator(plan=plan).record(epochs=chunk["to_epoch"] - chunk["from_epoch"],
                                                           seconds=chunk["seconds"])
        for step in record["evaluations"]:
            if self.same_device(step=step) and step.get("status") == 0 and step.get("attack") in plan.attack_steps \
                    and step.get("samples") == plan.test_examples:
                self.estimates.record_eval(plan=plan, attack=step["attack"], seconds=step["seconds"])

    def evaluations(self, *, plan: Plan) -> dict[str, dict]:
        """Test attack → the record of ``eval-<attack>.json`` (in the training dtype), where written."""
        found = {}
        for attack in plan.config.test_attacks:
            record = read_json(path=plan.folder / f"eval-{attack}.json", default=None)
            if record is not None:
                found[attack] = record
        return found

    def write_summary(self, *, status: str | None = None) -> None:
        """Rewrites ``summary.json`` and ``table.md``."""
        if status is not None:
            self.summary["status"] = status
        self.summary["elapsed_seconds"] = round(self.elapsed(), 1)
        for plan in self.plans:
            result = self.summary["results"].setdefault(plan.name, {"status": "waiting"})
            record = self.record(plan=plan)
            recorded = read_json(path=plan.folder / "config.json", default={}).get("training", {})
            eval_seconds: dict[str, float] = {}
            for step in record["evaluations"]:
                eval_seconds[step["attack"]] = eval_seconds.get(step["attack"], 0.0) + step["seconds"]
            result.update(
                run_folder=str(plan.folder),
                target_epochs=plan.epochs,
                epochs_done=self.epochs_done(plan=plan),
                dtype=recorded.get("dtype"),
                learning_rate=recorded.get("learning_rate"),
                train_seconds=round(sum(c["seconds"] for c in record["train_chunks"]), 1),
                eval_seconds=round(sum(eval_seconds.values()), 1),
                eval_seconds_per_attack={k: round(v, 1) for k, v in eval_seconds.items()},
                train_chunks=record["train_chunks"],
                evaluation_steps=record["evaluations"],
                evaluations=self.evaluations(plan=plan),
                last_epoch_log=last_csv_row(path=plan.folder / "log.csv"),
                last_monitor=last_csv_row(path=plan.folder / "monitor.csv"),
            )
        atomic_write(path=self.out / "summary.json", text=json.dumps(self.summary, indent=2))
        atomic_write(path=self.out / "table.md", text=self.table() + "\n")

    def pack_run(self, *, plan: Plan) -> None:
        """``OUT/<config>.tar``: the run folder, with the checkpoints only while unfinished."""
        if not self.pack or not plan.folder.is_dir():
            return
        leave_out = {"checkpoints", "checkpoint.keras"} if self.trained(plan=plan) else {"model.keras"}
        files = [path for path in sorted(plan.folder.rglob("*"))
                 if path.is_file() and not any(part.startswith(".") for part in path.relative_to(plan.folder).parts)
                 and path.relative_to(plan.folder).parts[0] not in leave_out]
        if not files:
            return
        target = self.out / plan.tar
        temporary = target.with_name(f".{target.name}.tmp")
        with tarfile.open(temporary, "w") as archive:
            for path in files:
                archive.add(path, arcname=f"{plan.folder.name}/{path.relative_to(plan.folder).as_posix()}")
        os.replace(temporary, target)
        log(f"packed {plan.folder} into {target} ({target.stat().st_size / 2**20:.1f} MiB)")

    def table(self) -> str:
        """The Markdown table of every configuration and test attack, with a status line each."""
        dtypes = sorted({plan.dtype for plan in self.plans})
        lines = [
            f"Wang et al. (2020), full-length runs: {len(self.plans)} configurations; "
            f"dtype {' and '.join(dtypes)}; status: {self.summary['status']}",
            "",
            "| config | attack | epochs | test ex. | " + " | ".join(FIGURES) + " | train s | eval s |",
            "|---|---|---|---|" + "---|" * len(FIGURES) + "---|---|",
        ]
        statuses = []
        for plan in self.plans:
            result = self.summary["results"].get(plan.name, {})
            evaluations = result.get("evaluations") or {}
            per_attack = result.get("eval_seconds_per_attack") or {}
            train_seconds = f"{result.get('train_seconds', 0):.0f}"
            method = plan.config.method if isinstance(plan.config.method, str) else "+".join(plan.config.method)
            shown = ONE_WAY_FIGURES.get(method, FIGURES)
            for attack in plan.config.test_attacks:
                record = evaluations.get(attack)
                eval_seconds = f"{per_attack[attack]:.0f}" if attack in per_attack else "-"
                if record is None:
                    cells = " | ".join("-" for _ in FIGURES)
                    epochs, examples = result.get("epochs_done", 0), "-"
                else:
                    figures = record.get("figures", {})
                    cells = " | ".join(f"{100 * figures[f]:.1f}" if f in figures and f in shown else "-" for f in FIGURES)
                    epochs, examples = record.get("epochs", "?"), record.get("samples", "?")
                lines.append(f"| {plan.name} | {attack} | {epochs} | {examples} | {cells} | {train_seconds} "
                             f"| {eval_seconds} |")
            statuses.append(f"{plan.name}: {result.get('status', 'waiting')} "
                            f"({result.get('epochs_done', 0)}/{plan.epochs} epochs)")
        lines += ["", "Status: " + "; ".join(statuses) + "."]
        return "\n".join(lines)

    # --- steps -----------------------------------------------------------------------------------

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

    def step_facts(self) -> dict:
        """What every recorded step notes about where it ran."""
        return {"platform": self.device["platform"], "device_kind": self.device["kind"],
                "devices": self.device["devices"]}

    def train(self, *, plan: Plan) -> str | None:
        """Trains ``plan`` to its target epochs in chunks; None when done, else why it stopped."""
        estimator = self.estimates.estimator(plan=plan)
        if self.trained(plan=plan):
            log(f"{plan.name}: {self.epochs_done(plan=plan)}/{plan.epochs} epochs already trained in {plan.folder}")
            return None
        while not self.trained(plan=plan):
            done = self.epochs_done(plan=plan)
            left = plan.epochs - done
            if left <= 0:
                chunk = 0  # every epoch is done but model.keras is missing: train writes it
            elif self.args.time_budget is None:
                chunk = left
            elif not estimator.chunks:
                chunk = 1  # first measure the compilation and one epoch of this configuration
            else:
                fitting = self.estimates.epochs_fitting(plan=plan, seconds=self.remaining() - MARGIN)
                chunk = max(1, min(left, fitting))
            needed, source = self.estimates.chunk_seconds(plan=plan, epochs=max(chunk, 1), plans=self.plans)
            if needed + MARGIN > self.remaining():
                log(f"{plan.name}: {done}/{plan.epochs} epochs; {max(chunk, 1)} more would take about "
                    f"{needed:.0f}s ({source}), {self.remaining():.0f}s left: stopping")
                return "stopped: time budget"
            target = done + chunk
            log(f"{plan.name}: training epochs {done + 1}..{target} of {plan.epochs} in {plan.dtype} "
                f"(estimate {needed:.0f}s from {source}, {self.budget_text()})")
            argv = ["train", "--config", str(plan.config_path), "--out", str(plan.folder),
                    "--data-dir", self.args.data_dir, "--epochs", str(target),
                    "--dtype", plan.dtype, "--verbose", "2"]
            if self.args.learning_rate is not None:
                argv += ["--learning-rate", repr(self.args.learning_rate)]
            if self.args.subset is not None:
                argv += ["--subset", str(self.args.subset)]
            status, seconds = self.cli(argv=argv)
            after = self.epochs_done(plan=plan)
            record = self.record(plan=plan)
            record["train_chunks"].append({"from_epoch": done, "to_epoch": after, "seconds": round(seconds, 2),
                                           "status": status, **self.step_facts()})
            self.save_record(plan=plan, record=record)
            if status == 0:
                estimator.record(epochs=after - done, seconds=seconds)
            log(f"{plan.name}: {done} -> {after} epochs trained in {seconds:.1f}s (exit status {status})")
            self.write_summary()
            self.pack_run(plan=plan)
            if status != 0:
                return f"error: aatk train exited with status {status}"
            if after < target:
                return f"error: aatk train ended at epoch {after}, not {target}"
        return None

    def evaluate(self, *, plan: Plan) -> str | None:
        """Evaluates ``plan`` under each test attack not yet evaluated; None when done."""
        # aatk evaluate records the epochs of the run's config.json: those of its last train call.
        epochs = read_json(path=plan.folder / "config.json", default={}).get("training", {}).get("epochs")
        for attack in plan.config.test_attacks:
            existing = self.evaluations(plan=plan).get(attack)
            if existing and existing.get("epochs") == epochs and existing.get("samples") == plan.test_examples:
                log(f"{plan.name}: {attack} already evaluated after {epochs} epochs on {plan.test_examples} examples")
                continue
            needed = self.estimates.eval_seconds(plan=plan, attack=attack)
            if needed + MARGIN > self.remaining():
                log(f"{plan.name}: evaluating {attack} would take about {needed:.0f}s, "
                    f"{self.remaining():.0f}s left: stopping")
                return "stopped: time budget"
            log(f"{plan.name}: evaluating under {attack} on {plan.test_examples} examples "
                f"(estimate {needed:.0f}s, {self.budget_text()})")
            argv = ["evaluate", "--run", str(plan.folder), "--data-dir", self.args.data_dir, "--attack", attack]
            if self.args.eval_subset is not None:
                argv += ["--subset", str(self.args.eval_subset)]
            status, seconds = self.cli(argv=argv)
            units = plan.attack_units[attack]
            record = self.record(plan=plan)
            record["evaluations"].append({"attack": attack, "samples": plan.test_examples, "units": units,
                                          "seconds": round(seconds, 2), "status": status, **self.step_facts()})
            self.save_record(plan=plan, record=record)
            if status == 0:
                self.estimates.record_eval(plan=plan, attack=attack, seconds=seconds)
            log(f"{plan.name}: evaluation under {attack} took {seconds:.1f}s (exit status {status})")
            self.write_summary()
            self.pack_run(plan=plan)
            if status != 0:
                return f"error: aatk evaluate exited with status {status}"
        return None

    def run(self) -> int:
        """Every configuration in order; the exit status (0 also when stopped by the time budget).

        An error in one configuration is recorded and the next one goes on; the time budget
        stops the list. On SIGTERM (or Ctrl-C) the summary and the tar of the configuration in
        progress (its checkpoint of the last finished epoch) are written before the script
        exits with status 143.
        """
        signal.signal(signal.SIGTERM, on_sigterm)
        self.write_summary()
        problems = []
        plan = None
        try:
            for plan in self.plans:
                result = self.summary["results"].setdefault(plan.name, {})
                result["status"] = "running"
                try:
                    stopped = self.train(plan=plan) or self.evaluate(plan=plan)
                except Exception as error:  # recorded, then the next configuration
                    traceback.print_exc()
                    stopped = f"error: {type(error).__name__}: {error}"
                result["status"] = stopped or "done"
                self.write_summary()
                self.pack_run(plan=plan)
                if stopped:
                    problems.append(f"{plan.name}: {stopped}")
                    if stopped == "stopped: time budget":
                        break
        except (Terminated, KeyboardInterrupt) as interruption:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            why = f"stopped: {type(interruption).__name__} {interruption}".strip()
            log(f"{why} during {plan.name if plan else 'the start'}: writing the summary and the run folder's tar")
            if plan is not None:
                self.summary["results"].setdefault(plan.name, {})["status"] = why
                self.pack_run(plan=plan)
            self.write_summary(status=why)
            print("\n" + self.table() + "\n", flush=True)
            return 143
        errors = [p for p in problems if not p.endswith("stopped: time budget")]
        status = "done" if not problems else ("; ".join(errors) if errors else "stopped: time budget")
        self.write_summary(status=status)
        log(f"status: {status}; summary in {self.out / 'summary.json'}")
        print("\n" + self.table() + "\n", flush=True)
        return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: checks the arguments, sets up JAX and Keras, then runs :class:`Table3`."""
    args = parse_args(argv)
    if args.without_tensorflow:
        sys.meta_path.insert(0, NoTensorFlow())
    import jax
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        log(f"warning: the Keras backend is {keras.backend.backend()!r}, not jax (KERAS_BACKEND)")
    platform_name = jax.default_backend()
    devices = jax.devices()
    device = {"platform": platform_name, "kind": devices[0].device_kind, "devices": [str(d) for d in devices]}
    dtype = args.dtype or ("mixed_bfloat16" if platform_name == "gpu" else "float32")
    runs = Path(args.runs_dir) if args.runs_dir else Path(args.out)
    try:
        plans = make_plans(args=args, runs=runs, dtype=dtype)
    except ArgumentProblem as problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    log(f"jax {jax.__version__}, platform {platform_name}, {len(devices)} x {device['kind']}; "
        f"keras {keras.__version__} ({keras.backend.backend()}); dtype {dtype}; "
        f"configurations: {', '.join(f'{p.name} ({p.epochs} epochs)' for p in plans)}")
    tensorflow = "not imported (--without-tensorflow)" if args.without_tensorflow else (
        "installed" if importlib.util.find_spec("tensorflow") is not None else "not installed")
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "tensorflow": tensorflow,
    }
    return Table3(args=args, plans=plans, runs=runs, dtype=dtype, device=device, versions=versions).run()


if __name__ == "__main__":
    sys.exit(main())
