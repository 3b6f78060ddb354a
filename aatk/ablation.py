"""The ablation of Fig. 2b: the three-way model trained with every combination of the four terms.

AAT++'s objective (Eq. 11) is the sum of four terms — L_ST (Eq. 6), L_AS (Eq. 7),
L_AR (Eq. 9) and L_AN (Eq. 10). [`run_ablation`][aatk.ablation.run_ablation] trains one run per
combination of them from one base configuration (same data, backbone, optimiser,
schedule and training attack; only the method changes), evaluates each run under
one test attack, and gathers the figures into a table and a grouped bar chart.

Every combination is an ordinary resumable run folder ([`aatk.training`][aatk.training]), so an
interrupted ablation started again with the same command carries on where it
stopped and does not retrain or re-evaluate what is finished.

Paper: Section 3.3 ("Ablation study"), Figure 2b.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

from aatk import datasets
from aatk.configs import Config
from aatk.objectives import TERMS
from aatk.progress import Progress, as_progress

__all__ = ["COMBINATIONS", "label", "parse_combination", "run_ablation", "ablation_table"]

COMBINATIONS: tuple[tuple[str, ...], ...] = tuple(
    combo for size in range(1, len(TERMS) + 1) for combo in itertools.combinations(TERMS, size)
)
"""All 15 non-empty combinations of ("st", "as", "ar", "an"), smallest first, in Eq. 11's order."""

_FIGURES = ("S", "R", "N", "R_adv", "N_adv", "DIA")


def label(terms: Sequence[str]) -> str:
    """The display name of a combination, e.g. ``("st", "as") → "ST+AS"``.

    Examples:
        >>> label(("st", "as", "ar", "an"))
        'ST+AS+AR+AN'
    """
    return "+".join(term.upper() for term in terms)


def parse_combination(text: str) -> tuple[str, ...]:
    """Parses ``"st+as"`` (any case, any order) into terms in Eq. 11's order.

    Raises:
        ValueError: On an empty combination, an unknown or a repeated term.

    Examples:
        >>> parse_combination("AS+st")
        ('st', 'as')
    """
    parts = [part.strip().lower() for part in text.split("+")]
    if not text.strip() or any(not part for part in parts):
        raise ValueError(f"a combination is terms joined by '+', e.g. 'st+as', got {text!r}")
    unknown = [part for part in parts if part not in TERMS]
    if unknown:
        raise ValueError(f"unknown term {unknown[0]!r} in {text!r}; terms are {TERMS}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"repeated term in {text!r}")
    return tuple(term for term in TERMS if term in parts)


def ablation_table(results: dict[str, dict[str, float]], *, attack: str, samples: int) -> str:
    """A Markdown table of the ablation figures (percent), one row per combination."""
    lines = [
        f"Test attack: {attack}; {samples} test examples. Percent.",
        "",
        "| terms | " + " | ".join(_FIGURES) + " |",
        "|---|" + "---|" * len(_FIGURES),
    ]
    for name, figures in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * figures[key]:.1f}" for key in _FIGURES) + " |")
    return "\n".join(lines)


def run_ablation(
    config: Config,
    *,
    out: str | Path,
    combinations: Sequence[Sequence[str]] | None = None,
    attack: str | None = None,
    eval_subset: int | None = None,
    data_dir: str | None = None,
    verbose: int | str = "auto",
    progress: bool | Progress = False,
) -> dict[str, dict[str, float]]:
    """Trains and evaluates the three-way model for each combination of loss terms.

    Each combination trains in ``out/<label>/`` (e.g. ``out/ST+AS/``) with ``config``'s
    settings and the method replaced by the combination, then is evaluated under the
    test attack ``attack`` (without the adaptive attack). The gathered figures are
    written to ``out/ablation.json``, ``out/ablation.md`` and the bar chart
    ``out/ablation.png``.

    Paper: Section 3.3, Figure 2b.

    Args:
        config: The base configuration (its method is ignored).
        out: Folder of the ablation (created if needed).
        combinations: The combinations to run (default: all 15, [`COMBINATIONS`][aatk.ablation.COMBINATIONS]).
        attack: The test attack's name (default: the configuration's first one).
        eval_subset: Evaluate on the first N test examples (default: all).
        data_dir: Folder of the original dataset files.
        verbose: Keras progress-bar verbosity while training.
        progress: Say on standard error which combination is trained or evaluated, with a bar
            during each evaluation (``True``, ``False`` or a ``aatk.progress.Progress``).

    Returns:
        label → the evaluation figures (fractions; DIA a difference of fractions).

    Raises:
        ValueError: On an unknown attack, an empty or repeated combination, or an unknown term.
    """
    from aatk.analysis.plots import plot_ablation
    from aatk.runs import atomic_write
    from aatk.training import evaluate_run, train

    out = Path(out)
    chosen = COMBINATIONS if combinations is None else tuple(parse_combination("+".join(c)) for c in combinations)
    if not chosen:
        raise ValueError("combinations is empty: give at least one combination of terms")
    if len(set(chosen)) != len(chosen):
        raise ValueError("combinations holds the same combination twice")
    attack = attack or next(iter(config.test_attacks))
    if attack not in config.test_attacks:
        raise ValueError(f"attack {attack!r} is not a test attack of the configuration; known: {sorted(config.test_attacks)}")
    test_size = datasets.info(config.dataset).num_examples["test"]
    expected_samples = test_size if eval_subset is None else min(eval_subset, test_size)
    out.mkdir(parents=True, exist_ok=True)
    results, samples = {}, 0
    progress = as_progress(progress)
    for index, terms in enumerate(chosen):
        name = label(terms)
        run = out / name
        run_config = dataclasses.replace(config, method=tuple(terms), name=f"{config.name}_{name}")
        progress.note(f"ablation [{index + 1}/{len(chosen)}] {name}: training ({config.epochs} epochs; resumed if started)")
        train(run_config, out=run, data_dir=data_dir, verbose=verbose)
        evaluation = run / f"eval-{attack}.json"
        record = json.loads(evaluation.read_text()) if evaluation.exists() else None
        if record is None or record["samples"] != expected_samples or record.get("epochs") != config.epochs:
            record = evaluate_run(run, data_dir=data_dir, subset=eval_subset, attacks=[attack], adaptive=False,
                                  progress=progress.within(f"ablation [{index + 1}/{len(chosen)}]"))[attack]
        else:
            progress.note(f"ablation [{index + 1}/{len(chosen)}] {name}: already evaluated under {attack}")
        results[name] = {key: record["figures"][key] for key in _FIGURES}
        samples = record["samples"]
    summary = {"attack": attack, "samples": samples, "base_config": config.as_dict(), "results": results}
    atomic_write(out / "ablation.json", json.dumps(summary, indent=2))
    atomic_write(out / "ablation.md", ablation_table(results, attack=attack, samples=samples) + "\n")
    plot_ablation(results, out / "ablation.png", title=f"Ablation of Eq. 11's terms ({config.dataset}, {attack})")
    return results
