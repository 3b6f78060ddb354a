"""The ``aatk`` command line: training, evaluation, baselines and analyses.

    aatk train --config configs/mnist_aat++.toml --data-dir ../shared/data
    aatk evaluate --run runs/mnist_aat++ --data-dir ../shared/data
    aatk report --runs runs/mnist_* --out table.md
    aatk ablation --config configs/mnist_aat++.toml --epochs 1 --out runs/ablation
    aatk analyze gradients --run runs/mnist_aat++ --out figures
    aatk analyze inversion --run runs/mnist_aat++ --out figures
    aatk analyze eps-curve --runs runs/mnist_st runs/mnist_aat++ --norm linf --out figures
    aatk analyze detection --runs runs/mnist_aat runs/mnist_aat++ --out figures
    aatk combine --st-run runs/mnist_st --at-run runs/mnist_at --out runs/mnist_st+at
    aatk pseudo-inputs --config configs/mnist_pi.toml --st-run runs/mnist_st --at-run runs/mnist_at

``train`` writes a run folder (see [`aatk.training`][aatk.training]) and resumes it when run
again; ``evaluate`` attacks the trained model with every test attack of its
configuration and writes ``eval-<attack>.json`` and ``.md`` (an interrupted evaluation
resumes when run again, from ``eval-<attack>.partial.npz``); ``report`` gathers
evaluations into one Markdown table in the layout of the paper's Table 3;
``ablation`` runs Fig. 2b ([`aatk.ablation`][aatk.ablation]); ``analyze``, ``combine`` (ST+AT)
and ``pseudo-inputs`` (PI) are the analyses and baselines of [`aatk.experiments`][aatk.experiments].
Bad arguments or configurations get a one-line error and exit status 2.

``aatk --help``, ``aatk --version`` and argument errors answer at once: arguments are parsed
before Keras, TensorFlow or JAX is imported, and TensorFlow's C++ start-up messages are
kept quiet (``TF_CPP_MIN_LOG_LEVEL=2``) unless that variable is already set. The long
commands (``evaluate``, ``ablation``, ``analyze``, ``combine``, ``pseudo-inputs``) show their
progress on standard error (``--quiet`` turns it off), so what they print on standard
output stays the same. ``report`` writes its table as Markdown, CSV and JSON (``--out``,
``--format``), each row with its test examples, epochs, attack, 95% intervals and where it
comes from (aatk's version and commit, the libraries, the date and the device).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

PROG = "aatk"

# What 'aatk --help', '--version' and argument errors need is argparse alone: Keras, TensorFlow
# and JAX are imported by the command that runs, after its arguments are parsed.


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(message)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default: ``(default: X)`` unless the text already says it.

    Flags (on when given) and required options have no default to show; an option whose
    default is None says in its own help what happens without it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.required
            or action.nargs == 0
            or action.default in (None, argparse.SUPPRESS)
        ):
            return text
        shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from aatk.provenance import aatk_version

        print(f"{PROG} {aatk_version()}")
        parser.exit()


_VERBOSITY = ("auto", "0", "1", "2")
_DATA_DIR_HELP = "folder of the original dataset files (default: $AATK_DATA_DIR, else tensorflow-datasets)"
_QUIET_HELP = "print no progress (default: a progress bar on standard error)"


def _options(*, data_dir: bool = True, quiet: bool = True) -> _Parser:
    """A parent parser with the options many commands share."""
    parent = _Parser(add_help=False)
    if data_dir:
        parent.add_argument("--data-dir", help=_DATA_DIR_HELP)
    if quiet:
        parent.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Adversarial Asymmetric Training: train, evaluate, report.",
                     formatter_class=_HelpFormatter,
                     epilog="Each command has its own help: aatk COMMAND --help.")
    parser.add_argument("--version", action=_VersionAction, help="print aatk's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    shared = _options()

    def command(name: str, help_text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=list(parents),
                                   formatter_class=_HelpFormatter)

    train = command("train", "train (or resume) a configuration", _options(quiet=False))
    train.add_argument("--config", required=True, help="a TOML file from configs/")
    train.add_argument("--epochs", type=int, help="override training.epochs (default: the configuration's)")
    train.add_argument("--subset", type=int,
                       help="train on the first N training examples (default: the configuration's training.subset)")
    train.add_argument("--seed", type=int, help="override experiment.seed (default: the configuration's)")
    train.add_argument("--learning-rate", type=float,
                       help="override training.learning_rate (default: the configuration's)")
    train.add_argument("--dtype", choices=("float32", "mixed_bfloat16"),
                       help="override training.dtype (default: the configuration's)")
    train.add_argument("--out", help="run folder (default: runs/<experiment.name>)")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in --out even if it holds other files or another run (aatk's run files "
                            "there are replaced; other files stay)")
    train.add_argument("--verbose", default="auto", choices=_VERBOSITY,
                       help="Keras progress: auto, 0 (none), 1 (a bar) or 2 (a line per epoch)")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard event files to <run>/tensorboard (view them with "
                            "'tensorboard --logdir <run>/tensorboard')")

    evaluate = command("evaluate", "evaluate a trained run under its test attacks", shared)
    evaluate.add_argument("--run", required=True, help="a run folder written by 'aatk train'")
    evaluate.add_argument("--subset", type=int, help="evaluate on the first N test examples (default: all)")
    evaluate.add_argument("--attack", action="append",
                          help="only this attack, repeatable: a test attack of the run or any preset, e.g. "
                               "mnist-strong (default: every test attack of the run)")
    evaluate.add_argument("--batch-size", type=int, default=500, help="test examples per batch")
    evaluate.add_argument("--no-adaptive", action="store_true", help="skip the adaptive attack on the detector")
    evaluate.add_argument("--dtype", choices=("float32", "mixed_bfloat16"),
                          help="evaluate in this dtype policy (default: the run's training one)")

    report = command("report", "gather evaluations into one table (Markdown, CSV, JSON)")
    report.add_argument("--runs", nargs="+", required=True, help="run folders holding eval-*.json files")
    report.add_argument("--out", help="write the Markdown table to this file and its CSV and JSON forms beside it "
                                      "(same name, suffixes .csv and .json) (default: print only)")
    report.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown",
                        help="what to print on standard output")

    ablation = command("ablation", "train and evaluate every combination of the four loss terms (Fig. 2b)", shared)
    ablation.add_argument("--config", required=True, help="the base configuration (its method is ignored)")
    ablation.add_argument("--combinations", nargs="+", help="e.g. st st+as st+as+ar+an (default: all 15)")
    ablation.add_argument("--epochs", type=int, help="override training.epochs (default: the configuration's)")
    ablation.add_argument("--subset", type=int,
                          help="train on the first N training examples (default: the configuration's training.subset)")
    ablation.add_argument("--seed", type=int, help="override experiment.seed (default: the configuration's)")
    ablation.add_argument("--learning-rate", type=float,
                          help="override training.learning_rate (default: the configuration's)")
    ablation.add_argument("--attack", help="the test attack (default: the configuration's first)")
    ablation.add_argument("--eval-subset", type=int, help="evaluate on the first N test examples (default: all)")
    ablation.add_argument("--out", help="ablation folder (default: runs/<experiment.name>_ablation)")
    ablation.add_argument("--verbose", default="auto", choices=_VERBOSITY,
                          help="Keras progress while training: auto, 0 (none), 1 (a bar) or 2 (a line per epoch)")

    analyze = command("analyze", "figures of trained runs: gradients, inversion, eps-curve, detection, "
                                 "masking, detector, dead-relus, monitor")
    analyses = analyze.add_subparsers(dest="analysis", required=True, parser_class=_Parser, metavar="ANALYSIS")

    def analysis(name: str, help_text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = analyses.add_parser(name, help=help_text, description=help_text, parents=list(parents),
                                  formatter_class=_HelpFormatter)
        return sub

    sub = analysis("gradients", "input gradients of each way (App. D.1, Fig. 3)", shared)
    sub.add_argument("--run", required=True, help="a finished run folder")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--per-class", type=int, default=1, help="test images per class")

    sub = analysis("inversion", "representation inversion from noise (App. D.2, Fig. 2a, 4)", shared)
    sub.add_argument("--run", required=True, help="a finished run folder")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--per-class", type=int, default=1, help="test images per class")
    sub.add_argument("--steps", type=int, help="optimisation steps (default: 1000 on MNIST, 10000 on CIFAR-10)")
    sub.add_argument("--step-size", type=float, help="step size (default: 0.1 on MNIST, 1.0 on CIFAR-10)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the starting noise")

    sub = analysis("eps-curve", "accuracy of each way against epsilon", shared)
    sub.add_argument("--runs", required=True, nargs="+", help="finished run folders of one dataset")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--norm", choices=("linf", "l2"), required=True, help="the attack's norm")
    sub.add_argument("--eps", type=float, nargs="+",
                     help="the epsilon grid (default: per dataset and norm, aatk.experiments.EPS_GRIDS)")
    sub.add_argument("--steps", type=int, default=10, help="PGD steps")
    sub.add_argument("--subset", type=int, default=1000, help="first N test examples")

    sub = analysis("detection", "detection and calibration, naive and adaptive attack, ROC curves (Table 4b)", shared)
    sub.add_argument("--runs", required=True, nargs="+", help="finished run folders")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--subset", type=int, default=1000, help="first N test examples")
    sub.add_argument("--attack", help="test attack (default: each run's first)")

    sub = analysis("masking", "gradient-masking checks of every trained way, from a worst-case evaluation (resumes)", shared)
    sub.add_argument("--run", required=True, help="a finished run folder, or an aatk combine --out folder (ST+AT)")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--subset", type=int, default=1000, help="first N test examples")
    sub.add_argument("--attack", help="the ensemble to evaluate under (default: the dataset's strong preset, "
                                      "e.g. mnist-strong)")
    sub.add_argument("--steps", type=int, default=20, help="PGD steps of the checks' cheaper attack")

    sub = analysis("detector", "the detector (Eq. 12) under adaptive attacks: RAD, calibration, evasion", shared)
    sub.add_argument("--runs", required=True, nargs="+",
                     help="finished run folders of three-way models, or aatk combine --out folders (ST+AT)")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--subset", type=int, default=1000, help="first N test examples")
    sub.add_argument("--steps", type=int, default=100, help="APGD steps of every adaptive attack")
    sub.add_argument("--weights", type=float, nargs="+",
                     help="weights of the divergence attack (default: 0 0.1 1 10 100)")

    sub = analysis("dead-relus", "dead ReLU units per layer over the first training steps, for several recipes",
                   shared)
    sub.add_argument("--config", required=True, help="the configuration to train from")
    sub.add_argument("--variant", action="append",
                     help='"label;section.key=value;..." (repeatable; default: as configured, and no warm-up)')
    sub.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds")
    sub.add_argument("--steps", type=int, default=300, help="optimizer steps")
    sub.add_argument("--every", type=int, default=5, help="count dead units every N steps")
    sub.add_argument("--probe", type=int, default=512, help="training images the dead units are counted on")
    sub.add_argument("--out", required=True, help="output folder")

    sub = analysis("monitor", "training curves of runs from their monitor.csv (R_adv, N_adv, DIA per epoch)")
    sub.add_argument("--runs", required=True, nargs="+", help="run folders (finished or not)")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--title", help="title of the figure (default: none)")

    combine = command("combine", "ST+AT: evaluate a one-way ST and a one-way AT run as one model", shared)
    combine.add_argument("--st-run", required=True, help="a finished run of method '1way-st'")
    combine.add_argument("--at-run", required=True, help="a finished run of method '1way-at' or '1way-at-half'")
    combine.add_argument("--out", required=True, help="folder for the evaluations (then use 'aatk report')")
    combine.add_argument("--subset", type=int, help="evaluate on the first N test examples (default: all)")
    combine.add_argument("--attack", action="append",
                         help="only this attack, repeatable: a test attack both runs share or any preset, e.g. "
                              "mnist-strong (default: every shared test attack)")

    pseudo = command("pseudo-inputs", "PI: build pseudo-input datasets and train on them", shared)
    pseudo.add_argument("--config", required=True, help="a configuration with method = 'pi'")
    pseudo.add_argument("--st-run", required=True, help="a trained one-way ST run (non-robust dataset)")
    pseudo.add_argument("--at-run", required=True, help="a trained one-way AT run (robust dataset)")
    pseudo.add_argument("--epochs", type=int, help="override training.epochs (default: the configuration's)")
    pseudo.add_argument("--subset", type=int,
                        help="use the first N training examples (default: the configuration's training.subset)")
    pseudo.add_argument("--learning-rate", type=float,
                        help="override training.learning_rate (default: the configuration's)")
    pseudo.add_argument("--inversion-steps", type=int, default=200,
                        help="steps of the representation inversion that builds the robust dataset")
    pseudo.add_argument("--inversion-step-size", type=float, default=0.1, help="step size of that inversion")
    pseudo.add_argument("--targets", choices=("random", "deterministic"), default="random",
                        help="target classes of the non-robust dataset: Ilyas et al.'s D_rand or D_det")
    pseudo.add_argument("--out", help="run folder (default: runs/<experiment.name>)")
    pseudo.add_argument("--overwrite", action="store_true", help="start over in --out (as for 'aatk train')")
    pseudo.add_argument("--verbose", default="auto", choices=_VERBOSITY,
                        help="Keras progress while training: auto, 0 (none), 1 (a bar) or 2 (a line per epoch)")
    return parser


_OVERRIDES = (
    ("epochs", "training.epochs"),
    ("subset", "training.subset"),
    ("seed", "experiment.seed"),
    ("learning_rate", "training.learning_rate"),
    ("dtype", "training.dtype"),
)


def _config(args: argparse.Namespace):
    """The configuration of ``--config`` with the command line's overrides."""
    from aatk.configs import load_config

    overrides = {key: getattr(args, flag) for flag, key in _OVERRIDES if getattr(args, flag, None) is not None}
    return load_config(args.config, overrides=overrides)


def _verbosity(text: str) -> int | str:
    return text if text == "auto" else int(text)


def _progress(args: argparse.Namespace, label: str = ""):
    """The progress reporter of a command: a bar on standard error unless ``--quiet``."""
    from aatk.progress import Progress

    return Progress(enabled=not getattr(args, "quiet", False), label=label)


def _train(args: argparse.Namespace) -> int:
    from aatk.training import train

    config = _config(args)
    out = Path(args.out) if args.out else Path("runs") / config.name
    train(config, out=out, data_dir=args.data_dir, verbose=_verbosity(args.verbose), overwrite=args.overwrite,
          tensorboard=args.tensorboard)
    print(f"{PROG}: trained {config.name} ({config.epochs} epochs) in {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from aatk.training import evaluate_run

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    records = evaluate_run(
        args.run, data_dir=args.data_dir, subset=args.subset, attacks=args.attack,
        batch_size=args.batch_size, adaptive=not args.no_adaptive, dtype=args.dtype, progress=_progress(args),
    )
    for record in records.values():
        print(f"{record['run']} under {record['attack']}:\n{record['report']}\n")
    return 0


# --- report -----------------------------------------------------------------------------------

_TABLE_COLUMNS = ("S", "R", "N", "R_adv", "N_adv", "DIA")
_ONE_WAY = {
    "1way-st": ("N", "N_adv"),
    "1way-at": ("R", "R_adv"),
    "1way-at-half": ("R", "R_adv"),
    # ST+AT has no standard way of its own (the paper reports none; ours is an ensemble).
    "st+at": ("R", "N", "R_adv", "N_adv", "DIA"),
}
_UNKNOWN = "unknown"

_ROW_FIELDS = (
    "run", "method", "attack", "attack_norm", "attack_eps", "attack_step_size", "attack_steps",
    "attack_random_start", "samples", "epochs", "seed", "evaluated_dtype",
    *(name for column in _TABLE_COLUMNS for name in (column, f"{column}_low", f"{column}_high")),
    "aatk_version", "git_commit", "git_dirty", "date_utc", "keras_version", "keras_backend",
    "tensorflow_version", "jax_version", "numpy_version", "device", "source",
)
"""The columns of the CSV form of ``aatk report`` and the keys of each row of its JSON form."""


def _method(record: dict) -> str:
    return record["method"] if isinstance(record["method"], str) else "+".join(map(str, record["method"]))


def _cell(record: dict, key: str) -> str:
    """A figure in percent, with the half-width of its 95% interval where the record has one."""
    value = 100 * record["figures"][key]
    bounds = record.get("intervals_95", {}).get(key)
    if bounds is None:
        return f"{value:.1f}"
    return f"{value:.1f} ±{100 * (bounds[1] - bounds[0]) / 2:.1f}"


_RECORD_FIELDS = {"run": str, "method": (str, list), "attack": str, "figures": dict}
_OPTIONAL_FIELDS = {"provenance": dict, "attack_config": dict, "intervals_95": dict}


def _read_evaluation(path: Path) -> dict:
    """An ``eval-*.json`` record, checked for the fields the table needs.

    Records written before provenance was recorded are accepted (their provenance is
    reported as unknown); a field that is present but of the wrong kind is damage.
    """
    from aatk.runs import RunError, read_json_file

    record = read_json_file(path, what="an evaluation record")
    if not isinstance(record, dict):
        raise RunError(f"{path} is damaged: not a JSON object; run 'aatk evaluate' again")
    for field, types in _RECORD_FIELDS.items():
        if not isinstance(record.get(field), types):
            raise RunError(f"{path} is damaged: no valid {field!r} field; run 'aatk evaluate' again")
    for field, types in _OPTIONAL_FIELDS.items():
        if field in record and not isinstance(record[field], types):
            raise RunError(f"{path} is damaged: its {field!r} field is not a JSON object; run 'aatk evaluate' again")
    shown = _ONE_WAY.get(_method(record), _TABLE_COLUMNS)
    missing = [key for key in shown if not isinstance(record["figures"].get(key), (int, float))]
    if missing:
        raise RunError(f"{path} is damaged: figure {missing[0]!r} is missing or not a number; run 'aatk evaluate' again")
    for key, bounds in record.get("intervals_95", {}).items():
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
            raise RunError(f"{path} is damaged: interval {key!r} is not a pair of numbers; run 'aatk evaluate' again")
    return {**record, "source": str(path)}


def _attack_summary(settings: dict | None) -> str:
    """An attack's recorded settings in words.

    ``{"norm": "linf", "eps": 0.3, "steps": 40, ...}`` → ``"linf ε=0.3, 40 steps of 0.01, random start"``;
    APGD, the Square Attack and ensembles (``"attacks"``) likewise.
    """
    import json

    if not settings:
        return f"settings {_UNKNOWN}"
    try:
        if "attacks" in settings:
            parts = "; ".join(_attack_summary(item) for item in settings["attacks"])
            return f"worst case of [{parts}]" + (", cascade" if settings.get("cascade") else "")
        kind = settings.get("attack", "pgd")
        ball = f"{settings['norm']} ε={float(settings['eps']):g}"
        if kind == "apgd":
            loss = "T" if settings.get("targeted") else str(settings.get("loss", "ce")).upper()
            text = f"APGD-{loss} {ball}, {int(settings.get('steps', 100))} steps"
            if settings.get("targeted"):
                text += f", {int(settings.get('target_classes', 9))} target classes"
            restarts = int(settings.get("restarts", 1))
            return text + (f", {restarts} restarts" if restarts > 1 else "")
        if kind == "square":
            return f"Square {ball}, {int(settings.get('queries', 5000))} queries"
        steps = int(settings["steps"])
        text = f"{ball}, {steps} step{'s' * (steps != 1)} of {float(settings['step_size']):g}"
    except (KeyError, TypeError, ValueError):
        return json.dumps(settings, sort_keys=True)
    return text + (", random start" if settings.get("random_start") else "")


def _device_summary(device: dict | None) -> str | None:
    """``{"cpu": "AMD EPYC", "cpu_count": 2, "accelerators": ["GPU: NVIDIA H200"]}`` → one phrase."""
    if not isinstance(device, dict):
        return None
    accelerators = device.get("accelerators") or []
    cpu = device.get("cpu") or "CPU"
    count = device.get("cpu_count")
    phrase = f"{cpu} ×{count}" if count else str(cpu)
    return "; ".join([*map(str, accelerators), phrase]) if accelerators else phrase


def _epochs(record: dict):
    """Epochs trained: the record's ``epochs_trained`` if written, else its configured ``epochs``."""
    return record.get("epochs_trained", record.get("epochs"))


def _row(record: dict) -> dict:
    """One row of the CSV and JSON forms of the report (figures as fractions, None where unknown)."""
    settings = record.get("attack_config") or {}
    provenance = record.get("provenance") or {}
    versions = provenance.get("versions") if isinstance(provenance.get("versions"), dict) else {}
    shown = _ONE_WAY.get(_method(record), _TABLE_COLUMNS)
    intervals = record.get("intervals_95", {})
    row = {
        "run": record["run"], "method": _method(record), "attack": record["attack"],
        "attack_norm": settings.get("norm"), "attack_eps": settings.get("eps"),
        "attack_step_size": settings.get("step_size"), "attack_steps": settings.get("steps"),
        "attack_random_start": settings.get("random_start"),
        "samples": record.get("samples"), "epochs": _epochs(record), "seed": record.get("seed"),
        # Older `aatk combine` records keep the dtype in their provenance only.
        "evaluated_dtype": record.get("evaluated_dtype") or provenance.get("dtype_policy"),
    }
    for column in _TABLE_COLUMNS:
        bounds = intervals.get(column) if column in shown else None
        row[column] = record["figures"][column] if column in shown else None
        row[f"{column}_low"], row[f"{column}_high"] = bounds if bounds is not None else (None, None)
    row.update({
        "aatk_version": provenance.get("aatk_version"), "git_commit": provenance.get("git_commit"),
        "git_dirty": provenance.get("git_dirty"), "date_utc": provenance.get("date_utc"),
        "keras_version": versions.get("keras"), "keras_backend": provenance.get("keras_backend"),
        "tensorflow_version": versions.get("tensorflow"), "jax_version": versions.get("jax"),
        "numpy_version": versions.get("numpy"), "device": _device_summary(provenance.get("device")),
        "source": record["source"],
    })
    assert tuple(row) == _ROW_FIELDS
    return row


def _provenance_line(row: dict) -> str:
    """The Markdown list item saying where a row comes from."""
    if row["aatk_version"] is None and row["date_utc"] is None:
        return f"- {row['run']}: provenance {_UNKNOWN} (evaluated before aatk recorded it); seed {row['seed'] or _UNKNOWN}"
    commit = row["git_commit"][:10] if row["git_commit"] else f"commit {_UNKNOWN}"
    if row["git_dirty"]:
        commit += " with uncommitted changes"
    backend = row["keras_backend"] or _UNKNOWN
    engine = row.get(f"{backend}_version") if backend in ("tensorflow", "jax") else None
    parts = [
        f"evaluated {row['date_utc'] or _UNKNOWN}",
        f"aatk {row['aatk_version'] or _UNKNOWN} ({commit})",
        f"Keras {row['keras_version'] or _UNKNOWN} on {backend}" + (f" {engine}" if engine else ""),
        f"{row['evaluated_dtype'] or _UNKNOWN}",
        f"seed {_UNKNOWN if row['seed'] is None else row['seed']}",
        row["device"] or f"device {_UNKNOWN}",
    ]
    return f"- {row['run']}: " + "; ".join(parts)


def _markdown(records: list[dict]) -> str:
    lines = []
    for attack in sorted({r["attack"] for r in records}):
        chosen = [r for r in records if r["attack"] == attack]
        settings = {}
        for record in chosen:
            settings.setdefault(_attack_summary(record.get("attack_config")), []).append(record["run"])
        heading = f"### Test attack: {attack}" + (f" ({next(iter(settings))})" if len(settings) == 1 else "")
        lines += [heading, ""]
        if len(settings) > 1:
            lines += ["**The runs were evaluated with different settings of this attack:** "
                      + "; ".join(f"{summary} ({', '.join(runs)})" for summary, runs in settings.items()), ""]
        lines += ["Percent; ± the half-width of the 95% interval (Clopper–Pearson; DIA: paired normal).", "",
                  "| run | method | epochs | test images | " + " | ".join(_TABLE_COLUMNS) + " |",
                  "|---|---|---|---|" + "---|" * len(_TABLE_COLUMNS)]
        for record in chosen:
            method = _method(record)
            shown = _ONE_WAY.get(method, _TABLE_COLUMNS)
            epochs = _epochs(record)
            epochs = "+".join(map(str, epochs)) if isinstance(epochs, list) else (_UNKNOWN if epochs is None else epochs)
            samples = record.get("samples", _UNKNOWN)
            cells = [_cell(record, c) if c in shown else "-" for c in _TABLE_COLUMNS]
            lines.append(f"| {record['run']} | {method} | {epochs} | {samples} | " + " | ".join(cells) + " |")
        by_method = {r["method"]: r for r in chosen if isinstance(r["method"], str)}
        if "st+at" not in by_method and "1way-st" in by_method and ("1way-at" in by_method or "1way-at-half" in by_method):
            st = by_method["1way-st"]["figures"]
            at = (by_method.get("1way-at") or by_method["1way-at-half"])["figures"]
            cells = ["-", f"{100 * at['R']:.1f}", f"{100 * st['N']:.1f}", f"{100 * at['R_adv']:.1f}",
                     f"{100 * st['N_adv']:.1f}", f"{100 * (at['R_adv'] - st['N_adv']):.1f}"]
            lines.append("| ST+AT (the two one-way runs combined) | - | - | - | " + " | ".join(cells) + " |")
        lines += ["", "Where each row comes from:", ""]
        lines += [_provenance_line(_row(record)) for record in chosen]
        lines.append("")
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    def value(item):
        if item is None:
            return ""
        if isinstance(item, list):
            return "+".join(map(str, item))
        return str(item).lower() if isinstance(item, bool) else item

    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=_ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: value(item) for key, item in row.items()})
    return stream.getvalue()


def _json(rows: list[dict]) -> str:
    import json

    return json.dumps({"columns": list(_ROW_FIELDS), "figures_are": "fractions in [0, 1]; DIA a difference of two",
                       "rows": rows}, indent=2) + "\n"


def _report(args: argparse.Namespace) -> int:
    records = []
    for folder in args.runs:
        if not Path(folder).is_dir():
            raise ValueError(f"{folder} is not a folder" if Path(folder).exists() else f"{folder} does not exist")
        evaluations = sorted(Path(folder).glob("eval-*.json"))
        if not evaluations:
            raise ValueError(f"{folder} has no evaluation: run 'aatk evaluate --run {folder}' first")
        records += [_read_evaluation(path) for path in evaluations]
    records.sort(key=lambda record: record["attack"])
    rows = [_row(record) for record in records]
    forms = {"markdown": _markdown(records), "csv": _csv(rows), "json": _json(rows)}
    print(forms[args.format], end="" if args.format != "markdown" else "\n")
    if args.out:
        from aatk.runs import atomic_write

        out = Path(args.out)
        markdown = out.with_suffix(".md") if out.suffix in (".csv", ".json") else out
        atomic_write(markdown, forms["markdown"] + "\n")
        atomic_write(out.with_suffix(".csv"), forms["csv"])
        atomic_write(out.with_suffix(".json"), forms["json"])
    return 0


# --- the other commands -----------------------------------------------------------------------


def _ablation(args: argparse.Namespace) -> int:
    from aatk.ablation import parse_combination, run_ablation

    config = _config(args)
    combinations = [parse_combination(text) for text in args.combinations] if args.combinations else None
    out = Path(args.out) if args.out else Path("runs") / f"{config.name}_ablation"
    results = run_ablation(
        config, out=out, combinations=combinations, attack=args.attack, eval_subset=args.eval_subset,
        data_dir=args.data_dir, verbose=_verbosity(args.verbose), progress=_progress(args),
    )
    print((out / "ablation.md").read_text())
    print(f"{PROG}: {len(results)} combinations; table, JSON and bar chart in {out}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from aatk import experiments

    progress = _progress(args, label=f"analyze {args.analysis}") if args.analysis != "monitor" else None
    if args.analysis == "gradients":
        path = experiments.gradient_figure(args.run, out=args.out, data_dir=args.data_dir, per_class=args.per_class,
                                           progress=progress)
    elif args.analysis == "inversion":
        path = experiments.inversion_figure(
            args.run, out=args.out, data_dir=args.data_dir, per_class=args.per_class,
            steps=args.steps, step_size=args.step_size, seed=args.seed, progress=progress,
        )
    elif args.analysis == "dead-relus":
        from aatk.analysis.dead_relus import _variants

        kwargs = {"variants": _variants(args.variant)} if args.variant else {}
        path = experiments.dead_relu_figure(
            args.config, out=args.out, seeds=args.seeds, steps=args.steps, every=args.every, probe=args.probe,
            data_dir=args.data_dir, progress=progress, **kwargs,
        )
    elif args.analysis == "monitor":
        path = experiments.monitor_figure(args.runs, out=args.out, title=args.title)
    elif args.analysis == "masking":
        path = experiments.masking_report(args.run, out=args.out, attack=args.attack, data_dir=args.data_dir,
                                          subset=args.subset, steps=args.steps, progress=progress)
        print(path.read_text())
    elif args.analysis == "detector":
        path = experiments.detector_attacks(args.runs, out=args.out, data_dir=args.data_dir, subset=args.subset,
                                            steps=args.steps, weights=args.weights, progress=progress)
        print(path.read_text())
    elif args.analysis == "eps-curve":
        path = experiments.eps_curve_figure(
            args.runs, out=args.out, norm=args.norm, data_dir=args.data_dir, subset=args.subset,
            eps_values=args.eps, steps=args.steps, progress=progress,
        )
    else:
        path = experiments.detection_figure(args.runs, out=args.out, attack=args.attack, data_dir=args.data_dir,
                                            subset=args.subset, progress=progress)
        print(path.read_text())
    print(f"{PROG}: wrote {path}")
    return 0


def _combine(args: argparse.Namespace) -> int:
    from aatk.experiments import combine_runs

    records = combine_runs(args.st_run, args.at_run, out=args.out, data_dir=args.data_dir, subset=args.subset,
                           attacks=args.attack, progress=_progress(args))
    for record in records.values():
        print(f"ST+AT ({record['run']}) under {record['attack']}:\n{record['report']}\n")
    return 0


def _pseudo_inputs(args: argparse.Namespace) -> int:
    from aatk.experiments import pseudo_input_run

    config = _config(args)
    out = Path(args.out) if args.out else Path("runs") / config.name
    pseudo_input_run(
        config, st_run=args.st_run, at_run=args.at_run, out=out, data_dir=args.data_dir,
        inversion_steps=args.inversion_steps, inversion_step_size=args.inversion_step_size,
        targets=args.targets, verbose=_verbosity(args.verbose), overwrite=args.overwrite,
        progress=_progress(args, label="pseudo-inputs"),
    )
    print(f"{PROG}: trained {config.name} on pseudo-inputs in {out}; evaluate it with 'aatk evaluate --run {out}'")
    return 0


def _os_error_message(error: OSError) -> str:
    """One line for a file-system error: what happened, to which file, what to do."""
    import errno

    where = f": {error.filename}" if error.filename else ""
    if isinstance(error, PermissionError) or error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "read-only file system" if error.errno == errno.EROFS else "permission denied"
        return f"{what}{where}; make it writable (or readable), or choose another folder"
    if isinstance(error, IsADirectoryError):
        return f"a folder where a file was expected{where}"
    if isinstance(error, NotADirectoryError):
        return f"a file where a folder was expected{where}"
    if error.errno == errno.ENOSPC:
        return f"no space left on the device{where}; free some space and run the command again (runs resume)"
    return f"{error.strerror or error}{where}"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"{PROG}: warning: {message}\n"


# Abseil's log line: severity, MMDD, time, thread, file:line] ("I0000 00:00:1796313072.103160   16591 port.cc:153] ").
_NATIVE_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] ")
_NATIVE_LOG_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NATIVE_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def _native_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it: a value that is not a number shows everything."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _native_lines_to_show(text: str, level: int) -> str:
    """``text`` (what a native library wrote to standard error) without its Abseil log lines below ``level``.

    Only lines in Abseil's format with a severity under ``level`` (0 INFO, 1 WARNING, 2 ERROR,
    3 FATAL) are dropped, and Abseil's "before InitializeLog" notice when no log line is left;
    everything else (Python warnings, errors) is kept, in its order.
    """
    kept, dropped_notice = [], False
    for line in text.splitlines(keepends=True):
        record = _NATIVE_LOG_LINE.match(line)
        if record and _NATIVE_SEVERITY[record.group(1)] < level:
            continue
        if line.rstrip("\n") == _NATIVE_LOG_NOTICE:
            dropped_notice = True
            continue
        kept.append(line)
    if dropped_notice and any(_NATIVE_LOG_LINE.match(line) for line in kept):
        kept.insert(0, _NATIVE_LOG_NOTICE + "\n")
    return "".join(kept)


def _import_with_native_logs_filtered(module: str, *, level: int) -> None:
    """Imports ``module`` with what it writes to file descriptor 2 filtered by ``level``.

    TensorFlow 2.21 logs through Abseil before Abseil's logging is initialised, and those lines
    ignore ``TF_CPP_MIN_LOG_LEVEL`` ("oneDNN custom operations are on", printed twice at import on
    CPUs where oneDNN is on; see tensorflow/tensorflow#102212). The import's native output is held
    in a temporary file and written back through ``_native_lines_to_show``, so nothing but those
    lines is lost, even when the import fails.
    """
    import importlib
    import tempfile

    sys.stderr.flush()
    saved_descriptor = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            importlib.import_module(module)
        finally:
            sys.stderr.flush()
            os.dup2(saved_descriptor, 2)
            os.close(saved_descriptor)
            held.seek(0)
            shown = _native_lines_to_show(held.read().decode(errors="replace"), level)
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()


def _quiet_native_logging(command: str) -> None:
    """Keeps TensorFlow's C++ start-up messages (CPU features, oneDNN, absl) off the terminal.

    Only when the user has not chosen a level: ``TF_CPP_MIN_LOG_LEVEL=0`` brings them back.
    Level 2 hides INFO and WARNING lines, not errors. It must be set before TensorFlow is
    imported, which is why the commands import it only after this. TensorFlow, where it is
    installed, is then imported here for every command but ``report`` (the TensorFlow backend
    needs it, and ``tf.data`` feeds training under every backend), with the lines that the level
    no longer reaches filtered out. Where that import fails (TensorFlow absent, hidden or
    broken), the command goes on: under JAX it may not need TensorFlow at all.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = _native_log_level()
    if command != "report" and level > 0 and "tensorflow" not in sys.modules:
        try:
            _import_with_native_logs_filtered("tensorflow", level=level)
        except ImportError:
            # Not installed, or hidden (as the no-TensorFlow tests do): the JAX backend needs no
            # TensorFlow, and a command that does need it names the failed import itself.
            pass


_HANDLERS = {
    "train": _train, "evaluate": _evaluate, "report": _report, "ablation": _ablation,
    "analyze": _analyze, "combine": _combine, "pseudo-inputs": _pseudo_inputs,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aatk`` / ``python -m aatk``; returns the exit status.

    The arguments are parsed before anything heavy is imported: ``--help``, ``--version``
    and bad arguments answer at once, without Keras, TensorFlow or JAX.

    Every expected failure — a bad argument or configuration, a run folder that is locked,
    foreign, damaged or read-only, a damaged model or evaluation file, a file-system error —
    is printed as one line naming the file and what to do, with exit status 2.
    """
    import warnings

    previous_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        args = _parser().parse_args(argv)
        _quiet_native_logging(args.command)
        return _HANDLERS[args.command](args)
    except (_ArgumentError, ValueError, FileNotFoundError) as error:  # ConfigError and RunError are ValueErrors
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{PROG}: error: {_os_error_message(error)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
