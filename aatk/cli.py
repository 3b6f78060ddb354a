"""The ``aatk`` command line: ``train``, ``evaluate`` and ``report``.

    aatk train --config configs/mnist_aat++.toml --data-dir ../shared/data
    aatk evaluate --run runs/mnist_aat++ --data-dir ../shared/data
    aatk report --runs runs/mnist_* --out table.md

``train`` writes a run folder (see :mod:`aatk.training`) and resumes it when run
again; ``evaluate`` attacks the trained model with every test attack of its
configuration and writes ``eval-<attack>.json`` and ``.md``; ``report`` gathers
evaluations into one Markdown table in the layout of the paper's Table 3.
Bad arguments or configurations get a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import json
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
    train.add_argument("--data-dir", help="folder of the original dataset files (default: $AATK_DATA_DIR, else tfds)")
    train.add_argument("--out", help="run folder (default: runs/<experiment.name>)")
    train.add_argument("--verbose", default="auto", help="Keras progress: auto, 0, 1 or 2")

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run under its test attacks")
    evaluate.add_argument("--run", required=True, help="a run folder written by 'aatk train'")
    evaluate.add_argument("--data-dir", help="folder of the original dataset files")
    evaluate.add_argument("--subset", type=int, help="evaluate on the first N test examples")
    evaluate.add_argument("--attack", action="append", help="only this test attack (repeatable)")
    evaluate.add_argument("--batch-size", type=int, default=500)
    evaluate.add_argument("--no-adaptive", action="store_true", help="skip the adaptive attack on the detector")

    report = commands.add_parser("report", help="gather evaluations into one Markdown table")
    report.add_argument("--runs", nargs="+", required=True, help="run folders")
    report.add_argument("--out", help="write the table to this file as well")
    return parser


def _verbosity(text: str) -> int | str:
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise ValueError(f"--verbose must be auto, 0, 1 or 2, got {text!r}")


def _train(args: argparse.Namespace) -> int:
    from aatk.configs import load_config
    from aatk.training import train

    overrides = {}
    for flag, key in (
        ("epochs", "training.epochs"),
        ("subset", "training.subset"),
        ("seed", "experiment.seed"),
        ("learning_rate", "training.learning_rate"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    config = load_config(args.config, overrides=overrides)
    out = Path(args.out) if args.out else Path("runs") / config.name
    train(config, out=out, data_dir=args.data_dir, verbose=_verbosity(args.verbose))
    print(f"{PROG}: trained {config.name} ({config.epochs} epochs) in {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import keras

    from aatk import datasets
    from aatk.configs import validate
    from aatk.evaluation import evaluate

    run = Path(args.run)
    if not (run / "model.keras").exists():
        raise ValueError(f"{run} has no model.keras: run 'aatk train' to the end first")
    resolved = json.loads((run / "config.json").read_text())
    resolved.pop("source", None)
    config = validate(resolved, source=str(run / "config.json"))
    attacks = config.test_pgds()
    if args.attack:
        unknown = sorted(set(args.attack) - set(attacks))
        if unknown:
            raise ValueError(f"--attack {unknown[0]!r} is not a test attack of this run; known: {sorted(attacks)}")
        attacks = {name: attacks[name] for name in args.attack}
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = keras.models.load_model(run / "model.keras")
    x, y = datasets.load_arrays(config.dataset, "test", data_dir=args.data_dir, subset=args.subset)
    for name, attack in attacks.items():
        report = evaluate(model, (x, y), attack, batch_size=args.batch_size, adaptive=not args.no_adaptive)
        record = {
            "run": config.name,
            "method": config.method if isinstance(config.method, str) else list(config.method),
            "attack": name,
            "attack_config": attack.get_config(),
            "samples": report.samples,
            "figures": dict(report),
        }
        (run / f"eval-{name}.json").write_text(json.dumps(record, indent=2))
        (run / f"eval-{name}.md").write_text(f"# {config.name} under {name}\n\n{report.to_markdown()}\n")
        print(f"{config.name} under {name}:\n{report}\n")
    return 0


_TABLE_COLUMNS = ("S", "R", "N", "R_adv", "N_adv", "DIA")
_ONE_WAY = {"1way-st": ("N", "N_adv"), "1way-at": ("R", "R_adv"), "1way-at-half": ("R", "R_adv")}


def _report(args: argparse.Namespace) -> int:
    records = []
    for folder in args.runs:
        evaluations = sorted(Path(folder).glob("eval-*.json"))
        if not evaluations:
            raise ValueError(f"{folder} has no evaluation: run 'aatk evaluate --run {folder}' first")
        records += [json.loads(path.read_text()) for path in evaluations]
    lines = []
    for attack in sorted({r["attack"] for r in records}):
        lines += [f"### Test attack: {attack}", "", "| run | method | " + " | ".join(_TABLE_COLUMNS) + " |",
                  "|---|---|" + "---|" * len(_TABLE_COLUMNS)]
        chosen = [r for r in records if r["attack"] == attack]
        for record in chosen:
            method = record["method"] if isinstance(record["method"], str) else "+".join(record["method"])
            shown = _ONE_WAY.get(method, _TABLE_COLUMNS)
            cells = [f"{100 * record['figures'][c]:.1f}" if c in shown else "-" for c in _TABLE_COLUMNS]
            lines.append(f"| {record['run']} | {method} | " + " | ".join(cells) + " |")
        by_method = {r["method"]: r for r in chosen if isinstance(r["method"], str)}
        if "1way-st" in by_method and ("1way-at" in by_method or "1way-at-half" in by_method):
            st = by_method["1way-st"]["figures"]
            at = (by_method.get("1way-at") or by_method["1way-at-half"])["figures"]
            cells = ["-", f"{100 * at['R']:.1f}", f"{100 * st['N']:.1f}", f"{100 * at['R_adv']:.1f}",
                     f"{100 * st['N_adv']:.1f}", f"{100 * (at['R_adv'] - st['N_adv']):.1f}"]
            lines.append("| ST+AT (the two one-way runs combined) | - | " + " | ".join(cells) + " |")
        lines.append("")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aatk`` / ``python -m aatk``; returns the exit status."""
    from aatk.configs import ConfigError

    try:
        args = _parser().parse_args(argv)
        handler = {"train": _train, "evaluate": _evaluate, "report": _report}[args.command]
        return handler(args)
    except (_ArgumentError, ConfigError, ValueError, FileNotFoundError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
