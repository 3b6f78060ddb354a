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

``train`` writes a run folder (see :mod:`aatk.training`) and resumes it when run
again; ``evaluate`` attacks the trained model with every test attack of its
configuration and writes ``eval-<attack>.json`` and ``.md``; ``report`` gathers
evaluations into one Markdown table in the layout of the paper's Table 3;
``ablation`` runs Fig. 2b (:mod:`aatk.ablation`); ``analyze``, ``combine`` (ST+AT)
and ``pseudo-inputs`` (PI) are the analyses and baselines of :mod:`aatk.experiments`.
Bad arguments or configurations get a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

PROG = "aatk"


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Adversarial Asymmetric Training: train, evaluate, report.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train (or resume) a configuration")
    train.add_argument("--config", required=True, help="a TOML file from configs/")
    train.add_argument("--epochs", type=int, help="override training.epochs")
    train.add_argument("--subset", type=int, help="train on the first N training examples")
    train.add_argument("--seed", type=int, help="override experiment.seed")
    train.add_argument("--learning-rate", type=float, help="override training.learning_rate")
    train.add_argument("--dtype", choices=("float32", "mixed_bfloat16"), help="override training.dtype")
    train.add_argument("--data-dir", help="folder of the original dataset files (default: $AATK_DATA_DIR, else tfds)")
    train.add_argument("--out", help="run folder (default: runs/<experiment.name>)")
    train.add_argument("--overwrite", action="store_true",
                       help="start over in --out even if it holds other files or another run (aatk's run files "
                            "there are replaced; other files stay)")
    train.add_argument("--verbose", default="auto", help="Keras progress: auto, 0, 1 or 2")

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run under its test attacks")
    evaluate.add_argument("--run", required=True, help="a run folder written by 'aatk train'")
    evaluate.add_argument("--data-dir", help="folder of the original dataset files")
    evaluate.add_argument("--subset", type=int, help="evaluate on the first N test examples")
    evaluate.add_argument("--attack", action="append", help="only this test attack (repeatable)")
    evaluate.add_argument("--batch-size", type=int, default=500)
    evaluate.add_argument("--no-adaptive", action="store_true", help="skip the adaptive attack on the detector")
    evaluate.add_argument("--dtype", choices=("float32", "mixed_bfloat16"),
                          help="evaluate in this dtype policy (default: the run's training one)")

    report = commands.add_parser("report", help="gather evaluations into one Markdown table")
    report.add_argument("--runs", nargs="+", required=True, help="run folders")
    report.add_argument("--out", help="write the table to this file as well")

    ablation = commands.add_parser("ablation", help="train and evaluate every combination of the four loss terms (Fig. 2b)")
    ablation.add_argument("--config", required=True, help="the base configuration (its method is ignored)")
    ablation.add_argument("--combinations", nargs="+", help="e.g. st st+as st+as+ar+an (default: all 15)")
    ablation.add_argument("--epochs", type=int, help="override training.epochs")
    ablation.add_argument("--subset", type=int, help="train on the first N training examples")
    ablation.add_argument("--seed", type=int, help="override experiment.seed")
    ablation.add_argument("--learning-rate", type=float, help="override training.learning_rate")
    ablation.add_argument("--attack", help="the test attack (default: the configuration's first)")
    ablation.add_argument("--eval-subset", type=int, help="evaluate on the first N test examples")
    ablation.add_argument("--data-dir", help="folder of the original dataset files")
    ablation.add_argument("--out", help="ablation folder (default: runs/<experiment.name>_ablation)")
    ablation.add_argument("--verbose", default="auto", help="Keras progress: auto, 0, 1 or 2")

    analyze = commands.add_parser("analyze", help="figures of trained runs: gradients, inversion, eps-curve, detection")
    analyses = analyze.add_subparsers(dest="analysis", required=True, parser_class=_Parser)
    for name, help_text in (
        ("gradients", "input gradients of each way (App. D.1, Fig. 3)"),
        ("inversion", "representation inversion from noise (App. D.2, Fig. 2a, 4)"),
        ("eps-curve", "accuracy of each way against epsilon"),
        ("detection", "detection and calibration, naive and adaptive attack, ROC curves (Table 4b)"),
        ("dead-relus", "dead ReLU units per layer over the first training steps, for several recipes"),
        ("monitor", "training curves of runs from their monitor.csv (R_adv, N_adv, DIA per epoch)"),
    ):
        if name == "monitor":
            sub = analyses.add_parser(name, help=help_text)
            sub.add_argument("--runs", required=True, nargs="+", help="run folders (finished or not)")
            sub.add_argument("--out", required=True, help="output folder")
            sub.add_argument("--title", help="title of the figure")
            continue
        if name == "dead-relus":
            sub = analyses.add_parser(name, help=help_text)
            sub.add_argument("--config", required=True, help="the configuration to train from")
            sub.add_argument("--variant", action="append",
                             help='"label;section.key=value;..." (repeatable; default: as configured, and no warm-up)')
            sub.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
            sub.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
            sub.add_argument("--every", type=int, default=5, help="count dead units every N steps (default 5)")
            sub.add_argument("--probe", type=int, default=512, help="probe training images (default 512)")
            sub.add_argument("--out", required=True, help="output folder")
            sub.add_argument("--data-dir", help="folder of the original dataset files")
            continue
        sub = analyses.add_parser(name, help=help_text)
        sub.add_argument("--runs" if name in ("eps-curve", "detection") else "--run", required=True,
                         nargs="+" if name in ("eps-curve", "detection") else None, help="run folder(s)")
        sub.add_argument("--out", required=True, help="output folder")
        sub.add_argument("--data-dir", help="folder of the original dataset files")
        if name in ("gradients", "inversion"):
            sub.add_argument("--per-class", type=int, default=1, help="test images per class (default 1)")
        if name == "inversion":
            sub.add_argument("--steps", type=int, help="optimisation steps (default per dataset)")
            sub.add_argument("--step-size", type=float, help="step size (default per dataset)")
            sub.add_argument("--seed", type=int, default=0)
        if name == "eps-curve":
            sub.add_argument("--norm", choices=("linf", "l2"), required=True)
            sub.add_argument("--eps", type=float, nargs="+", help="the epsilon grid (default per dataset and norm)")
            sub.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
        if name in ("eps-curve", "detection"):
            sub.add_argument("--subset", type=int, default=1000, help="first N test examples (default 1000)")
        if name == "detection":
            sub.add_argument("--attack", help="test attack (default: each run's first)")

    combine = commands.add_parser("combine", help="ST+AT: evaluate a one-way ST and a one-way AT run as one model")
    combine.add_argument("--st-run", required=True)
    combine.add_argument("--at-run", required=True)
    combine.add_argument("--out", required=True, help="folder for the evaluations (then use 'aatk report')")
    combine.add_argument("--data-dir")
    combine.add_argument("--subset", type=int, help="evaluate on the first N test examples")

    pseudo = commands.add_parser("pseudo-inputs", help="PI: build pseudo-input datasets and train on them")
    pseudo.add_argument("--config", required=True, help="a configuration with method = 'pi'")
    pseudo.add_argument("--st-run", required=True, help="a trained one-way ST run (non-robust dataset)")
    pseudo.add_argument("--at-run", required=True, help="a trained one-way AT run (robust dataset)")
    pseudo.add_argument("--epochs", type=int, help="override training.epochs")
    pseudo.add_argument("--subset", type=int, help="use the first N training examples")
    pseudo.add_argument("--learning-rate", type=float, help="override training.learning_rate")
    pseudo.add_argument("--inversion-steps", type=int, default=200)
    pseudo.add_argument("--inversion-step-size", type=float, default=0.1)
    pseudo.add_argument("--targets", choices=("random", "deterministic"), default="random")
    pseudo.add_argument("--data-dir")
    pseudo.add_argument("--out", help="run folder (default: runs/<experiment.name>)")
    pseudo.add_argument("--overwrite", action="store_true", help="start over in --out (as for 'aatk train')")
    pseudo.add_argument("--verbose", default="auto")
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
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise ValueError(f"--verbose must be auto, 0, 1 or 2, got {text!r}")


def _train(args: argparse.Namespace) -> int:
    from aatk.training import train

    config = _config(args)
    out = Path(args.out) if args.out else Path("runs") / config.name
    train(config, out=out, data_dir=args.data_dir, verbose=_verbosity(args.verbose), overwrite=args.overwrite)
    print(f"{PROG}: trained {config.name} ({config.epochs} epochs) in {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from aatk.training import evaluate_run

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    records = evaluate_run(
        args.run, data_dir=args.data_dir, subset=args.subset, attacks=args.attack,
        batch_size=args.batch_size, adaptive=not args.no_adaptive, dtype=args.dtype,
    )
    for record in records.values():
        print(f"{record['run']} under {record['attack']}:\n{record['report']}\n")
    return 0


_TABLE_COLUMNS = ("S", "R", "N", "R_adv", "N_adv", "DIA")
_ONE_WAY = {
    "1way-st": ("N", "N_adv"),
    "1way-at": ("R", "R_adv"),
    "1way-at-half": ("R", "R_adv"),
    # ST+AT has no standard way of its own (the paper reports none; ours is an ensemble).
    "st+at": ("R", "N", "R_adv", "N_adv", "DIA"),
}


def _cell(record: dict, key: str) -> str:
    """A figure in percent, with the half-width of its 95% interval where the record has one."""
    value = 100 * record["figures"][key]
    bounds = record.get("intervals_95", {}).get(key)
    if bounds is None:
        return f"{value:.1f}"
    return f"{value:.1f} ±{100 * (bounds[1] - bounds[0]) / 2:.1f}"


_RECORD_FIELDS = {"run": str, "method": (str, list), "attack": str, "figures": dict}


def _read_evaluation(path: Path) -> dict:
    """An ``eval-*.json`` record, checked for the fields the table needs."""
    from aatk.runs import RunError, read_json_file

    record = read_json_file(path, what="an evaluation record")
    if not isinstance(record, dict):
        raise RunError(f"{path} is damaged: not a JSON object; run 'aatk evaluate' again")
    for field, types in _RECORD_FIELDS.items():
        if not isinstance(record.get(field), types):
            raise RunError(f"{path} is damaged: no valid {field!r} field; run 'aatk evaluate' again")
    method = record["method"] if isinstance(record["method"], str) else "+".join(map(str, record["method"]))
    shown = _ONE_WAY.get(method, _TABLE_COLUMNS)
    missing = [key for key in shown if not isinstance(record["figures"].get(key), (int, float))]
    if missing:
        raise RunError(f"{path} is damaged: figure {missing[0]!r} is missing or not a number; run 'aatk evaluate' again")
    return record


def _report(args: argparse.Namespace) -> int:
    records = []
    for folder in args.runs:
        if not Path(folder).is_dir():
            raise ValueError(f"{folder} is not a folder" if Path(folder).exists() else f"{folder} does not exist")
        evaluations = sorted(Path(folder).glob("eval-*.json"))
        if not evaluations:
            raise ValueError(f"{folder} has no evaluation: run 'aatk evaluate --run {folder}' first")
        records += [_read_evaluation(path) for path in evaluations]
    lines = []
    for attack in sorted({r["attack"] for r in records}):
        lines += [f"### Test attack: {attack}", "",
                  "Percent; ± the half-width of the 95% interval (Clopper–Pearson; DIA: paired normal).", "",
                  "| run | method | epochs | test images | " + " | ".join(_TABLE_COLUMNS) + " |",
                  "|---|---|---|---|" + "---|" * len(_TABLE_COLUMNS)]
        chosen = [r for r in records if r["attack"] == attack]
        for record in chosen:
            method = record["method"] if isinstance(record["method"], str) else "+".join(record["method"])
            shown = _ONE_WAY.get(method, _TABLE_COLUMNS)
            epochs = record.get("epochs", "?")
            epochs = "+".join(map(str, epochs)) if isinstance(epochs, list) else epochs
            cells = [_cell(record, c) if c in shown else "-" for c in _TABLE_COLUMNS]
            lines.append(f"| {record['run']} | {method} | {epochs} | {record.get('samples', '?')} | " + " | ".join(cells) + " |")
        by_method = {r["method"]: r for r in chosen if isinstance(r["method"], str)}
        if "st+at" not in by_method and "1way-st" in by_method and ("1way-at" in by_method or "1way-at-half" in by_method):
            st = by_method["1way-st"]["figures"]
            at = (by_method.get("1way-at") or by_method["1way-at-half"])["figures"]
            cells = ["-", f"{100 * at['R']:.1f}", f"{100 * st['N']:.1f}", f"{100 * at['R_adv']:.1f}",
                     f"{100 * st['N_adv']:.1f}", f"{100 * (at['R_adv'] - st['N_adv']):.1f}"]
            lines.append("| ST+AT (the two one-way runs combined) | - | - | - | " + " | ".join(cells) + " |")
        lines.append("")
    table = "\n".join(lines)
    print(table)
    if args.out:
        from aatk.runs import atomic_write

        atomic_write(Path(args.out), table + "\n")
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from aatk.ablation import ablation_table, parse_combination, run_ablation

    config = _config(args)
    combinations = [parse_combination(text) for text in args.combinations] if args.combinations else None
    out = Path(args.out) if args.out else Path("runs") / f"{config.name}_ablation"
    results = run_ablation(
        config, out=out, combinations=combinations, attack=args.attack, eval_subset=args.eval_subset,
        data_dir=args.data_dir, verbose=_verbosity(args.verbose),
    )
    print((out / "ablation.md").read_text())
    print(f"{PROG}: {len(results)} combinations; table, JSON and bar chart in {out}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from aatk import experiments

    if args.analysis == "gradients":
        path = experiments.gradient_figure(args.run, out=args.out, data_dir=args.data_dir, per_class=args.per_class)
    elif args.analysis == "inversion":
        path = experiments.inversion_figure(
            args.run, out=args.out, data_dir=args.data_dir, per_class=args.per_class,
            steps=args.steps, step_size=args.step_size, seed=args.seed,
        )
    elif args.analysis == "dead-relus":
        from aatk.analysis.dead_relus import _variants

        kwargs = {"variants": _variants(args.variant)} if args.variant else {}
        path = experiments.dead_relu_figure(
            args.config, out=args.out, seeds=args.seeds, steps=args.steps, every=args.every, probe=args.probe,
            data_dir=args.data_dir, **kwargs,
        )
    elif args.analysis == "monitor":
        path = experiments.monitor_figure(args.runs, out=args.out, title=args.title)
    elif args.analysis == "eps-curve":
        path = experiments.eps_curve_figure(
            args.runs, out=args.out, norm=args.norm, data_dir=args.data_dir, subset=args.subset,
            eps_values=args.eps, steps=args.steps,
        )
    else:
        path = experiments.detection_figure(args.runs, out=args.out, attack=args.attack, data_dir=args.data_dir,
                                            subset=args.subset)
        print(path.read_text())
    print(f"{PROG}: wrote {path}")
    return 0


def _combine(args: argparse.Namespace) -> int:
    from aatk.experiments import combine_runs

    records = combine_runs(args.st_run, args.at_run, out=args.out, data_dir=args.data_dir, subset=args.subset)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aatk`` / ``python -m aatk``; returns the exit status.

    Every expected failure — a bad argument or configuration, a run folder that is locked,
    foreign, damaged or read-only, a damaged model or evaluation file, a file-system error —
    is printed as one line naming the file and what to do, with exit status 2.
    """
    import warnings

    from aatk.configs import ConfigError

    previous_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        args = _parser().parse_args(argv)
        handler = {
            "train": _train, "evaluate": _evaluate, "report": _report, "ablation": _ablation,
            "analyze": _analyze, "combine": _combine, "pseudo-inputs": _pseudo_inputs,
        }[args.command]
        return handler(args)
    except (_ArgumentError, ConfigError, ValueError, FileNotFoundError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{PROG}: error: {_os_error_message(error)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
