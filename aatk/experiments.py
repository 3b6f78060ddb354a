"""The analyses of Section 3.3 and Appendix D on trained runs: each writes its table or figure.

These are the functions behind ``aatk analyze …``, ``aatk combine`` and
``aatk pseudo-inputs``. Each takes run folders written by ``aatk train``, runs one
analysis from [`aatk.analysis`][aatk.analysis] or [`aatk.baselines`][aatk.baselines] on the test set, and
writes its results to an output folder: a JSON file of the numbers and a PNG (or a
Markdown table). Nothing here trains a model except [`pseudo_input_run`][aatk.experiments.pseudo_input_run].

Paper: Section 3.1 (baselines), Section 3.3 (ablation, detection, visualisation),
Table 4b, Appendix D (gradients, inversion), Figures 2–4.
"""

from __future__ import annotations

import dataclasses

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from aatk import datasets
from aatk.attacks import PGD
from aatk.configs import Config, attack_settings, build_attack
from aatk.model import WAYS
from aatk.progress import Progress, as_progress

__all__ = [
    "EPS_GRIDS",
    "INVERSION_DEFAULTS",
    "PI_NON_ROBUST_ATTACKS",
    "class_examples",
    "combine_runs",
    "dead_relu_figure",
    "detection_figure",
    "detector_attacks",
    "masking_report",
    "eps_curve_figure",
    "gradient_figure",
    "inversion_figure",
    "monitor_figure",
    "pseudo_input_run",
]

EPS_GRIDS: dict[tuple[str, str], tuple[float, ...]] = {
    ("mnist", "linf"): (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    ("mnist", "l2"): (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    ("cifar10", "linf"): (0.0, 2 / 255, 4 / 255, 6 / 255, 8 / 255, 12 / 255, 16 / 255),
    ("cifar10", "l2"): (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
}
"""Default ε grids of [`eps_curve_figure`][aatk.experiments.eps_curve_figure]: each reaches past the paper's training budget
(MNIST ℓ∞ 0.3 as in YOPO/Madry; CIFAR-10 ℓ∞ 8/255 and ℓ2 0.3 of Table 4a) far enough to show
where each way breaks."""

INVERSION_DEFAULTS: dict[str, dict[str, float]] = {
    "mnist": {"steps": 1000, "step_size": 0.1},
    "cifar10": {"steps": 10000, "step_size": 1.0},  # Appendix D.2
}
"""Default steps and step size of [`inversion_figure`][aatk.experiments.inversion_figure] per dataset (CIFAR-10: Appendix D.2)."""


PI_NON_ROBUST_ATTACKS: dict[str, dict] = {
    # Ilyas et al. (2019), Table 4 (CIFAR-10 D_rand / D_det): l2, eps 0.5, step 0.1, 100 steps.
    "cifar10": {"norm": "l2", "eps": 0.5, "step_size": 0.1, "steps": 100, "random_start": False, "bounds": (0.0, 1.0)},
    # No MNIST construction was published; the YOPO/Madry MNIST budget (linf 0.3, step 0.01) with
    # Madry's 40 training steps, so that the targeted attack can reach its target.
    "mnist": {"norm": "linf", "eps": 0.3, "step_size": 0.01, "steps": 40, "random_start": False, "bounds": (0.0, 1.0)},
}
"""The targeted attack that builds the non-robust pseudo-input dataset, per dataset."""


_TRAINED_WAYS = {"1way-st": ("non_robust",), "1way-at": ("robust",), "1way-at-half": ("robust",)}
"""The way a one-way baseline trains; its other ways are untrained and not worth plotting."""


def _trained_ways(config: Config) -> tuple[str, ...]:
    """The ways a run trained: all three, or the one way of a one-way baseline."""
    return _TRAINED_WAYS.get(config.method, WAYS) if isinstance(config.method, str) else WAYS


COMBINED_FILE = "combined.json"
"""What `aatk combine` writes into its output folder: the ST and AT runs it combined, so that the
analyses that take run folders (masking, detector) load that folder as the ST+AT model."""


def _load(run: str | Path, *, combined: bool = False) -> tuple[Config, keras.Model]:
    """A finished run's configuration and model; with ``combined``, also an `aatk combine` folder
    (its configuration is the AT run's, named ``<st>+<at>``, with the test attacks both share)."""
    import aatk.baselines  # noqa: F401  registers the baselines' models (a PI run's) for loading
    from aatk.runs import load_model_file
    from aatk.training import load_run_config

    pair = Path(run) / COMBINED_FILE
    if pair.exists() and not (Path(run) / "config.json").exists():
        if not combined:
            raise ValueError(f"{run} holds the ST+AT evaluations of aatk combine, not a trained run; "
                             "this command needs a run folder of aatk train")
        return _load_combined(pair)
    config = load_run_config(run)
    return config, load_model_file(Path(run) / "model.keras", expected=keras.Model)


def _st_at_pair(st_run: str | Path, at_run: str | Path) -> tuple[Config, Config, keras.Model]:
    """The two runs of ST+AT, checked, and the [`CombinedOneWay`][aatk.baselines.CombinedOneWay] model."""
    from aatk.baselines import CombinedOneWay

    st_config, st_model = _load(st_run)
    at_config, at_model = _load(at_run)
    if st_config.method != "1way-st":
        raise ValueError(f"{st_run} was trained with method {st_config.method!r}; ST+AT needs a '1way-st' run")
    if at_config.method not in ("1way-at", "1way-at-half"):
        raise ValueError(f"{at_run} was trained with method {at_config.method!r}; ST+AT needs a '1way-at' or '1way-at-half' run")
    if st_config.dataset != at_config.dataset:
        raise ValueError(f"the runs are of different datasets: {st_config.dataset} and {at_config.dataset}")
    return st_config, at_config, CombinedOneWay(st_model=st_model, at_model=at_model)


def _shared_test_attacks(st_config: Config, at_config: Config) -> dict[str, dict]:
    return {name: spec for name, spec in st_config.test_attacks.items() if name in at_config.test_attacks}


def _load_combined(pair: Path) -> tuple[Config, keras.Model]:
    try:
        runs = json.loads(pair.read_text())
        st_run, at_run = runs["st_run"], runs["at_run"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{pair} cannot be read ({error!r}); run aatk combine again to rewrite it") from None
    st_config, at_config, model = _st_at_pair(st_run, at_run)
    config = dataclasses.replace(at_config, name=f"{st_config.name}+{at_config.name}", method="st+at",
                                 test_attacks=_shared_test_attacks(st_config, at_config))
    return config, model


def _write_json(path: Path, data: dict) -> None:
    from aatk.runs import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2))


def class_examples(x: np.ndarray, y: np.ndarray, *, per_class: int = 1, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` examples of each class, in class order (for figures).

    Raises:
        ValueError: If a class has fewer than ``per_class`` examples.

    Examples:
        >>> x = np.arange(6).reshape(6, 1); y = np.array([1, 0, 1, 0, 2, 2])
        >>> class_examples(x, y, num_classes=3)[0].ravel().tolist()
        [1, 0, 4]
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    indices = []
    for label in range(num_classes):
        found = np.flatnonzero(y == label)[:per_class]
        if found.size < per_class:
            raise ValueError(f"class {label} has {found.size} example(s) in the data, {per_class} needed")
        indices.extend(found.tolist())
    indices = np.asarray(indices)
    return x[indices], y[indices]


def _test_examples(config: Config, data_dir: str | None, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    meta = datasets.info(config.dataset)
    x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=min(10_000, 200 * per_class * meta.num_classes))
    return class_examples(x, y, per_class=per_class, num_classes=meta.num_classes)


def gradient_figure(
    run: str | Path,
    *,
    out: str | Path,
    data_dir: str | None = None,
    per_class: int = 1,
    progress: bool | Progress = False,
) -> Path:
    """Input gradients of each way's loss on natural test images, as a PNG grid (Fig. 3).

    Rows: the natural images (the first ``per_class`` test images of each class), then
    the gradient of the standard, robust and non-robust way's cross-entropy, each shown
    with Appendix D.1's transform
    ([`aatk.analysis.gradient_image`][aatk.analysis.gradients.gradient_image]). A
    one-way run shows only the way it trained.

    Paper: Appendix D.1, Figure 3.

    Args:
        run: A finished run folder.
        out: Output folder.
        data_dir: Folder of the original dataset files.
        per_class: Test images per class.
        progress: Say on standard error what is being computed (``True``, ``False`` or a
            ``aatk.progress.Progress``).

    Returns:
        The PNG's path, ``out/gradients.png``.
    """
    from aatk.analysis import gradient_image, image_grid, input_gradients

    progress = as_progress(progress)
    config, model = _load(run)
    ways = _trained_ways(config)
    x, y = _test_examples(config, data_dir, per_class)
    progress.note(f"{config.name}: input gradients of {len(x)} test images, {', '.join(ways)} way(s)")
    gradients = input_gradients(model, x, y, ways=ways)
    rows = {"natural": x}
    rows.update({f"∇ {way.replace('_', '-')} way": gradient_image(gradients[way]) for way in ways})
    return image_grid(rows, Path(out) / "gradients.png", column_titles=[str(int(c)) for c in y],
                      title=f"Input gradients, {config.name}")


def inversion_figure(
    run: str | Path,
    *,
    out: str | Path,
    data_dir: str | None = None,
    per_class: int = 1,
    steps: int | None = None,
    step_size: float | None = None,
    seed: int = 0,
    progress: bool | Progress = False,
) -> Path:
    """Inverts the robust and the non-robust representation of test images from noise (Fig. 2a, 4).

    Rows: the target images, the robust-representation inversion and the
    non-robust-representation inversion (a one-way run: only the representation it
    trained). The final representation distances are
    written beside the figure (``out/inversion.json``): an inversion that did not
    converge is visible there.

    Paper: Appendix D.2, Figures 2a and 4.

    Args:
        run: A finished run folder.
        out: Output folder.
        data_dir: Folder of the original dataset files.
        per_class: Test images per class.
        steps: Optimisation steps (default: [`INVERSION_DEFAULTS`][aatk.experiments.INVERSION_DEFAULTS]).
        step_size: Step size (default: as ``steps``).
        seed: Seed of the starting noise.
        progress: Show which representation is being inverted, on standard error (``True``,
            ``False`` or a ``aatk.progress.Progress``).

    Returns:
        The PNG's path, ``out/inversion.png``.
    """
    from aatk.analysis import image_grid, invert_representation

    progress = as_progress(progress)
    config, model = _load(run)
    defaults = INVERSION_DEFAULTS[config.dataset]
    steps = int(defaults["steps"]) if steps is None else steps
    step_size = float(defaults["step_size"]) if step_size is None else step_size
    x, y = _test_examples(config, data_dir, per_class)
    rows, record = {"target": x}, {"run": config.name, "steps": steps, "step_size": step_size, "seed": seed}
    representations = [way for way in ("robust", "non_robust") if way in _trained_ways(config)]
    with progress.within(config.name).bar(len(representations), what="inversion", unit="representations") as bar:
        for index, representation in enumerate(representations):
            bar.update(index, step=f"{representation.replace('_', '-')} representation of {len(x)} images, {steps} steps")
            result = invert_representation(
                model, x, representation=representation, start="noise", steps=steps, step_size=step_size, seed=seed
            )
            _record_inversion(rows, record, representation, result)
            bar.update(index + 1)
    _write_json(Path(out) / "inversion.json", record)
    return image_grid(rows, Path(out) / "inversion.png", column_titles=[str(int(c)) for c in y],
                      title=f"Representation inversion from noise, {config.name} ({steps} steps)")


def _record_inversion(rows: dict, record: dict, representation: str, result) -> None:
    """Adds one representation's inversion to the figure's rows and the JSON record."""
    rows[f"{representation.replace('_', '-')} inversion"] = result.images
    record[representation] = {
        "initial_distance": np.asarray(result.initial_distances).tolist(),
        "final_distance": np.asarray(result.distances).tolist(),
    }


def eps_curve_figure(
    runs: Sequence[str | Path],
    *,
    out: str | Path,
    norm: str,
    data_dir: str | None = None,
    subset: int = 1000,
    eps_values: Sequence[float] | None = None,
    steps: int = 10,
    progress: bool | Progress = False,
) -> Path:
    """Accuracy of each way against the attack budget ε, one panel per run.

    Each way is attacked on its own loss (as R_adv and N_adv are), with PGD of
    ``steps`` steps of size 2.5·ε/steps. One-way runs show only the way they trained
    (the non-robust way of "1way-st", the robust way of "1way-at"). The numbers go to
    ``out/eps-<norm>.json``.

    Args:
        runs: Finished run folders of one dataset.
        out: Output folder.
        norm: ``"linf"`` or ``"l2"``.
        data_dir: Folder of the original dataset files.
        subset: The first N test examples.
        eps_values: The ε grid (default: [`EPS_GRIDS`][aatk.experiments.EPS_GRIDS]).
        steps: PGD steps.
        progress: Show a bar per run on standard error, one unit per ε (``True``, ``False``
            or a ``aatk.progress.Progress``).

    Returns:
        The PNG's path, ``out/eps-<norm>.png``.

    Raises:
        ValueError: If the runs are of different datasets, or no run is given.
    """
    from aatk.analysis import plot_accuracy_vs_eps
    from aatk.analysis.curves import _check_eps_values

    progress = as_progress(progress)

    if not runs:
        raise ValueError("give at least one run folder")
    loaded = [_load(run) for run in runs]
    names = {config.dataset for config, _ in loaded}
    if len(names) != 1:
        raise ValueError(f"the runs are of different datasets ({sorted(names)}); compare runs of one dataset")
    dataset = names.pop()
    grid = tuple(EPS_GRIDS[(dataset, norm)] if eps_values is None else eps_values)
    _check_eps_values(grid)  # the whole grid, before the curves are computed one ε at a time
    x, y = datasets.load_arrays(dataset, "test", data_dir=data_dir, subset=subset)
    curves, record = {}, {"norm": norm, "steps": steps, "samples": int(len(y)), "eps": list(grid), "runs": {}}
    for config, model in loaded:
        ways = _trained_ways(config)
        curve = _accuracy_curve(model, x, y, norm=norm, grid=grid, steps=steps, ways=ways,
                                progress=progress.within(config.name))
        curves[config.name] = curve
        record["runs"][config.name] = {way: np.asarray(acc).tolist() for way, acc in curve["accuracy"].items()}
    _write_json(Path(out) / f"eps-{norm}.json", record)
    return plot_accuracy_vs_eps(curves, Path(out) / f"eps-{norm}.png",
                                title=f"Accuracy of each way under PGD-{steps} ({norm}), {len(y)} test images")


def _accuracy_curve(model, x, y, *, norm: str, grid: Sequence[float], steps: int, ways, progress: Progress) -> dict:
    """[`accuracy_vs_eps`][aatk.analysis.curves.accuracy_vs_eps] over ``grid``, one ε at a time.

    The same numbers as one call on the whole grid (each ε has its own attacks, seeded
    alike), with progress shown between the radii.
    """
    from aatk.analysis import accuracy_vs_eps

    parts = []
    with progress.bar(len(grid), what="eps-curve", unit="radii") as bar:
        for index, radius in enumerate(grid):
            bar.update(index, step=f"ε={radius:g}, {len(x)} images, {', '.join(ways)} way(s)")
            parts.append(accuracy_vs_eps(model, x, y, norm=norm, eps_values=[radius], steps=steps, ways=ways))
            bar.update(index + 1)
    curve = dict(parts[0])
    curve["eps"] = np.concatenate([part["eps"] for part in parts])
    curve["step_sizes"] = np.concatenate([part["step_sizes"] for part in parts])
    curve["accuracy"] = {way: np.concatenate([part["accuracy"][way] for part in parts]) for way in parts[0]["accuracy"]}
    return curve


def detection_figure(
    runs: Sequence[str | Path],
    *,
    out: str | Path,
    attack: str | None = None,
    data_dir: str | None = None,
    subset: int = 1000,
    progress: bool | Progress = False,
) -> Path:
    """Detection and calibration (Table 4b) with the naive and the adaptive attack, and ROC curves.

    For each run: RAD, raw and calibrated accuracy on the equal mixture of natural and
    standard-way adversarial test images (Table 4b), the ROC AUC of the continuous score,
    and the same figures when the attacker knows the detector (the adaptive attack of
    [`aatk.evaluate`][aatk.evaluation.evaluate]). Writes ``out/detection.md`` (the
    table), ``out/detection.json`` and ``out/roc-<run>.png`` (naive and adaptive ROC
    curves of each run).

    Paper: Section 2.4 (Eq. 12), Section 3.3, Table 4b.

    Args:
        runs: Finished run folders.
        out: Output folder.
        attack: The test attack's name (default: each run's first).
        data_dir: Folder of the original dataset files.
        subset: The first N test examples.
        progress: Show each run's evaluation on standard error (``True``, ``False`` or a
            ``aatk.progress.Progress``).

    Returns:
        The path of ``out/detection.md``.
    """
    from aatk.analysis import detection_curves, plot_roc
    from aatk.evaluation import evaluate
    from aatk.runs import atomic_write

    progress = as_progress(progress)

    if not runs:
        raise ValueError("give at least one run folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, record = [], {}
    for run in runs:
        config, model = _load(run)
        name = attack or next(iter(config.test_attacks))
        attacks = config.make_test_attacks()
        if name not in attacks:
            raise ValueError(f"{run}: {name!r} is not a test attack of this run; known: {sorted(attacks)}")
        x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=subset)
        report = evaluate(model, (x, y), attacks[name], adaptive=True,
                          cascade=bool(config.test_attacks[name].get("cascade", False)),
                          progress=progress.within(f"{config.name} under {name}"))
        curves = detection_curves(report)
        plot_roc(curves, out / f"roc-{config.name}.png", title=f"Detection score (JS divergence), {config.name}, {name}")
        figures = {key: report[key] for key in ("RAD", "raw_acc", "calibrated_acc", "AUC", "S_adv_s",
                                                "RAD_adaptive", "calibrated_acc_adaptive", "AUC_adaptive",
                                                "S_adv_adaptive", "evasion", "evasion_adaptive")}
        record[config.name] = {"attack": name, "samples": report.samples, "figures": figures}
        rows.append(
            f"| {config.name} | {name} | "
            + " | ".join(f"{100 * figures[k]:.1f}" for k in ("RAD", "raw_acc", "calibrated_acc", "AUC", "evasion",
                                                             "RAD_adaptive", "calibrated_acc_adaptive", "AUC_adaptive",
                                                             "evasion_adaptive"))
            + " |"
        )
    table = "\n".join(
        [
            f"Equal mixture of {subset} natural test images and their adversarial examples. Percent.",
            "",
            "| run | attack | RAD | raw | calibrated | AUC | evasion | RAD (adaptive) | calibrated (adaptive) "
            "| AUC (adaptive) | evasion (adaptive) |",
            "|---|---|" + "---|" * 9,
            *rows,
        ]
    )
    _write_json(out / "detection.json", record)
    atomic_write(out / "detection.md", table + "\n")
    return out / "detection.md"


STRONG_PRESETS = {"mnist": "mnist-strong", "cifar10": "cifar10-strong"}
"""aatk's strong evaluation (APGD-CE, APGD-T, Square; worst case, cascade) for each dataset."""


def _strong_preset(config: Config, attack: str | None) -> tuple[str, dict]:
    from aatk.configs import attack_from_spec

    name = attack or STRONG_PRESETS[config.dataset]
    if name in config.test_attacks:
        return name, config.test_attacks[name]
    return name, attack_from_spec(name, key=f"--attack {name}")[1]


def masking_report(
    run: str | Path,
    *,
    out: str | Path,
    attack: str | None = None,
    data_dir: str | None = None,
    subset: int = 1000,
    steps: int = 20,
    progress: bool | Progress = False,
) -> Path:
    """The gradient-masking checks of [`aatk.masking`][aatk.masking] for one run, every trained way.

    Evaluates the run on the first ``subset`` test images under a worst-case ensemble (the
    dataset's strong preset by default), then runs the checks with that report on every way
    the run trained (a one-way run: its one way). Writes ``out/masking-<run>.md`` (the checks,
    then the worst-case evaluation) and ``.json``. The evaluation saves its progress in
    ``out/masking-<run>.partial.npz`` and, run again, resumes from it.

    Args:
        run: A finished run folder, or the output folder of [`combine_runs`][aatk.experiments.combine_runs]
            (ST+AT: its three ways are checked).
        out: Output folder.
        attack: An ensemble preset or test attack of the run (default ``mnist-strong`` /
            ``cifar10-strong``); its first attack's norm and ε are the checks' threat model.
        data_dir: Folder of the original dataset files.
        subset: The first N test examples.
        steps: PGD steps of the checks' cheaper attack.
        progress: Show progress on standard error.

    Returns:
        The path of ``out/masking-<run>.md``.
    """
    from aatk.evaluation import evaluate
    from aatk.masking import gradient_masking_checks
    from aatk.progress import as_progress
    from aatk.runs import atomic_write

    progress = as_progress(progress)
    config, model = _load(run, combined=True)
    name, spec = _strong_preset(config, attack)
    built = build_attack(spec, seed=0)
    attacks = built if isinstance(built, list) else [built]
    x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=subset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The worst-case evaluation is most of the cost: it resumes from its checkpoint if interrupted.
    report = evaluate(model, (x, y), attacks, cascade=bool(spec.get("cascade", False)), adaptive=False,
                      progress=progress.within(f"{config.name} under {name}"),
                      checkpoint=out / f"masking-{config.name}.partial.npz")
    ways = _trained_ways(config)  # a one-way run's other ways were never trained: nothing to check there
    checks = gradient_masking_checks(
        model, (x, y), norm=attacks[0].norm, eps=attacks[0].eps, bounds=attacks[0].bounds, report=report, ways=ways,
        steps=steps, progress=progress.within(f"{config.name}: masking checks"),
    )
    untrained = "" if ways == WAYS else (
        f"This is a one-way run ({config.method}): only its {' and '.join(w.replace('_', '-') for w in ways)} "
        "way was trained, and the figures of the other ways below mean nothing.\n\n")
    text = (f"# Gradient-masking checks: {config.name}\n\n{checks.to_markdown()}\n\n"
            f"## The worst-case evaluation they read ({name})\n\n{untrained}{report.to_markdown()}\n")
    atomic_write(out / f"masking-{config.name}.md", text)
    _write_json(out / f"masking-{config.name}.json", {
        "run": config.name, "attack": name, "attack_config": attack_settings(built, spec), "samples": report.samples,
        "checks": [dataclasses.asdict(check) for check in checks.checks], "skipped": checks.skipped,
        "flagged_ways": checks.flagged_ways, "figures": dict(report), "per_attack": report.per_attack,
    })
    return out / f"masking-{config.name}.md"


def detector_attacks(
    runs: Sequence[str | Path],
    *,
    out: str | Path,
    data_dir: str | None = None,
    subset: int = 1000,
    steps: int = 100,
    weights: Sequence[float] | None = None,
    progress: bool | Progress = False,
) -> Path:
    """The detector of Eq. 12 under the adaptive attacks of [`aatk.detector`][aatk.detector], per run.

    Every attack uses APGD (``steps`` steps) in the threat model of the run's first test attack
    (MNIST: ℓ∞, ε 0.3). Writes ``out/detector.md`` (one table per run, and a summary of the
    strongest attack of each run) and ``out/detector.json``.

    Args:
        runs: Finished run folders of three-way models, or output folders of
            [`combine_runs`][aatk.experiments.combine_runs] (ST+AT).
        out: Output folder.
        data_dir: Folder of the original dataset files.
        subset: The first N test examples.
        steps: APGD steps of every adaptive attack.
        weights: The weights λ of the divergence attack (default
            [`DEFAULT_WEIGHTS`][aatk.detector.DEFAULT_WEIGHTS]).
        progress: Show progress on standard error.

    Returns:
        The path of ``out/detector.md``.
    """
    from aatk.attacks import APGD
    from aatk.detector import DEFAULT_WEIGHTS, attack_detector
    from aatk.progress import as_progress
    from aatk.runs import atomic_write

    progress = as_progress(progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, summary, record = [], [], {}
    for run in runs:
        config, model = _load(run, combined=True)
        if not config.test_attacks:
            raise ValueError(f"{run}: the ST and AT runs share no test attack, so the detector's threat model is unknown")
        first = next(iter(config.test_attacks.values()))
        first = first["attacks"][0] if "attacks" in first else first
        optimiser = APGD(norm=first["norm"], eps=first["eps"], steps=steps, bounds=first.get("bounds", (0.0, 1.0)),
                         seed=0)
        x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=subset)
        report = attack_detector(model, (x, y), attack=optimiser, weights=tuple(weights or DEFAULT_WEIGHTS),
                                 progress=progress.within(f"{config.name}: attacks on the detector"))
        sections.append(f"## {config.name}\n\n{report.to_markdown()}\n")
        strongest = report.rows[report.strongest]
        summary.append(
            f"| {config.name} | {report.strongest} | {100 * strongest['evasion']:.1f} | {100 * strongest['RAD']:.1f} "
            f"| {100 * strongest['calibrated_acc']:.1f} | {100 * report.worst_case['evasion']:.1f} |"
        )
        record[config.name] = {"samples": report.samples, "attack": repr(optimiser), "rows": report.rows,
                               "strongest": report.strongest, "worst_case": report.worst_case}
    header = [
        f"# The detector under adaptive attacks ({subset} test images each)", "",
        "| run | strongest attack | evasion % | RAD % | calibrated % | evasion, worst case per example % |",
        "|---|---|---|---|---|---|", *summary, "",
    ]
    atomic_write(out / "detector.md", "\n".join(header) + "\n" + "\n".join(sections))
    _write_json(out / "detector.json", record)
    return out / "detector.md"


def combine_runs(
    st_run: str | Path,
    at_run: str | Path,
    *,
    out: str | Path,
    data_dir: str | None = None,
    subset: int | None = None,
    attacks: list[str] | None = None,
    adaptive: bool = False,
    progress: bool | Progress = False,
) -> dict[str, dict]:
    """ST+AT of Section 3.1: evaluates a one-way ST and a one-way AT run as one three-way model.

    Writes ``eval-<attack>.json`` and ``.md`` for every test attack the two runs share (or
    every attack asked for) into ``out``, in the format of ``aatk evaluate`` (so that
    ``aatk report`` lists it): ``epochs``, ``epochs_trained`` and ``seed`` are pairs (the ST
    run's, then the AT run's), and ``provenance`` says where the result comes from. Like
    ``aatk evaluate``, each evaluation saves its progress in ``out/eval-<attack>.partial.npz``
    and resumes from it when run again. ``out/combined.json`` names the two runs, so that
    [`masking_report`][aatk.experiments.masking_report] and
    [`detector_attacks`][aatk.experiments.detector_attacks] take ``out`` as the ST+AT model.

    Paper: Section 3.1 ("ST+AT"), Tables 1–3.

    Args:
        st_run: A finished run of method ``"1way-st"``.
        at_run: A finished run of method ``"1way-at"`` or ``"1way-at-half"``.
        out: Folder for the evaluations.
        data_dir: Folder of the original dataset files.
        subset: Evaluate on the first N test examples (default: all).
        attacks: Names of the attacks to run: test attacks both runs share or any preset of
            [`ATTACK_PRESETS`][aatk.configs.ATTACK_PRESETS], such as ``"mnist-strong"``
            (default: every shared test attack).
        adaptive: Also run the adaptive attack on the detector.
        progress: Show a progress bar per attack on standard error (``True``, ``False`` or a
            ``aatk.progress.Progress``).

    Returns:
        attack name → the record written, plus the
        [`EvaluationReport`][aatk.evaluation.EvaluationReport] under ``"report"``.

    Raises:
        ValueError: If the runs are not a "1way-st" and a "1way-at"/"1way-at-half" run
            of one dataset, share no test attack (when none is asked for), an attack asked
            for is neither shared nor a preset, ``out`` is a trained run's folder, or an
            ``eval-<attack>.partial.npz`` in ``out`` is damaged or was left by another evaluation.
    """
    from aatk.evaluation import evaluate
    from aatk.provenance import environment
    from aatk.runs import atomic_write
    from aatk.training import _can_attack_the_detector, _epochs_trained, chosen_test_attacks

    progress = as_progress(progress)
    st_config, at_config, model = _st_at_pair(st_run, at_run)
    shared = _shared_test_attacks(st_config, at_config)
    if not shared and not attacks:
        raise ValueError("the two runs share no test attack; name one with attacks=[...] (e.g. a preset)")
    specs = chosen_test_attacks(shared, attacks, owner="both runs")
    x, y = datasets.load_arrays(st_config.dataset, "test", data_dir=data_dir, subset=subset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        raise ValueError(f"{out} is the folder of a trained run; give aatk combine a folder of its own")
    _write_json(out / COMBINED_FILE, {"st_run": str(Path(st_run).resolve()), "at_run": str(Path(at_run).resolve())})
    records = {}
    dtype = getattr(model.dtype_policy, "name", None)
    trained = [_epochs_trained(Path(run)) for run in (st_run, at_run)]
    for name, spec in specs.items():
        attack = build_attack(spec, seed=0)
        report = evaluate(model, (x, y), attack, adaptive=adaptive and _can_attack_the_detector(attack),
                          cascade=bool(spec.get("cascade", False)), checkpoint=out / f"eval-{name}.partial.npz",
                          progress=progress.within(f"{st_config.name}+{at_config.name} under {name}"))
        record = {
            "run": f"{st_config.name}+{at_config.name}",
            "method": "st+at",
            "attack": name,
            "attack_config": attack_settings(attack, spec),
            "samples": report.samples,
            "epochs": [st_config.epochs, at_config.epochs],
            "epochs_trained": [configured if done is None else done
                               for configured, done in zip((st_config.epochs, at_config.epochs), trained)],
            "seed": [st_config.seed, at_config.seed],
            "evaluated_dtype": dtype,
            "figures": dict(report),
            "intervals_95": {key: list(bounds) for key, bounds in report.intervals(confidence=0.95).items()},
            "provenance": environment(dtype_policy=dtype),
        }
        atomic_write(out / f"eval-{name}.json", json.dumps(record, indent=2))
        atomic_write(out / f"eval-{name}.md", f"# ST+AT ({record['run']}) under {name}\n\n{report.to_markdown()}\n")
        records[name] = {**record, "report": report}
    return records


def pseudo_input_run(
    config: Config,
    *,
    st_run: str | Path,
    at_run: str | Path,
    out: str | Path,
    data_dir: str | None = None,
    inversion_steps: int = 200,
    inversion_step_size: float = 0.1,
    targets: str = "random",
    verbose: int | str = "auto",
    overwrite: bool = False,
    progress: bool | Progress = False,
) -> keras.Model:
    """PI of Section 3.1: builds Ilyas et al.'s pseudo-input datasets, then trains a three-way model.

    1. The robust dataset: every training image's robust representation, taken from the
       one-way AT run's robust way, inverted from another training image
       ([`aatk.baselines.robust_dataset`][aatk.baselines.robust_dataset]).
    2. The non-robust dataset: targeted adversarial examples of the one-way ST run's
       non-robust way, labelled with their target
       ([`aatk.baselines.non_robust_dataset`][aatk.baselines.non_robust_dataset]),
       with the attack of
       [`PI_NON_ROBUST_ATTACKS`][aatk.experiments.PI_NON_ROBUST_ATTACKS] (the
       configuration's training attack is not used).
    3. A [`aatk.baselines.PseudoInputModel`][aatk.baselines.PseudoInputModel]
       trained on them with the configuration's optimiser and schedule (robust way
       on the robust set, non-robust way on the non-robust set, standard way on
       the natural images).

    The datasets are cached in ``out/pseudo_inputs.npz`` (built once; a later call reuses
    them), then training runs in ``out`` like ``aatk train`` (``config.json``, ``log.csv``,
    ``model.keras``; it is not resumable mid-way: an interrupted training starts over).
    Like ``aatk train``, it locks ``out`` and refuses a folder that is neither new, empty,
    nor a run of this configuration unless ``overwrite`` ([`aatk.runs`][aatk.runs]).

    Paper: Section 3.1 ("PI"), Tables 1, 2, 4b; Ilyas et al. (2019), Section 3.

    Args:
        config: A configuration with method ``"pi"``.
        st_run: A finished one-way ST run (the non-robust dataset's model).
        at_run: A finished one-way AT run (the robust dataset's model).
        out: The run folder.
        data_dir: Folder of the original dataset files.
        inversion_steps: Steps of the inversion that builds the robust dataset.
        inversion_step_size: Its step size.
        targets: ``"random"`` or ``"deterministic"`` target classes of the non-robust dataset.
        verbose: Keras progress-bar verbosity while training.
        overwrite: Start over in ``out``.
        progress: Show which dataset is being built, on standard error (``True``, ``False``
            or a ``aatk.progress.Progress``); training shows Keras's own bar.

    Returns:
        The trained model (also saved as ``out/model.keras``).
    """
    from aatk.configs import PSEUDO_INPUT_METHOD
    from aatk.runs import check_run_folder, locked, remove_run_files

    if config.method != PSEUDO_INPUT_METHOD:
        raise ValueError(f"the configuration's method is {config.method!r}; pseudo-input training needs method = 'pi'")
    out = Path(out)
    check_run_folder(out, config, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, command="aatk pseudo-inputs"):
        if overwrite:
            remove_run_files(out)
            (out / "pseudo_inputs.npz").unlink(missing_ok=True)
        return _pseudo_input_run_locked(
            config, st_run=st_run, at_run=at_run, out=out, data_dir=data_dir, inversion_steps=inversion_steps,
            inversion_step_size=inversion_step_size, targets=targets, verbose=verbose, progress=as_progress(progress),
        )


def _pseudo_input_run_locked(config: Config, *, st_run, at_run, out: Path, data_dir, inversion_steps,
                             inversion_step_size, targets, verbose, progress: Progress) -> keras.Model:
    import math
    import os

    from aatk.baselines import PseudoInputModel, non_robust_dataset, robust_dataset
    from aatk.runs import atomic_write
    from aatk.training import _EpochLog, _TestSplitAccuracy, build_model, build_optimizer

    _, st_model = _load(st_run)
    at_config, at_model = _load(at_run)
    if at_config.dataset != config.dataset:
        raise ValueError(f"{at_run} is a {at_config.dataset} run; the configuration is {config.dataset}")
    x, y = datasets.load_arrays(config.dataset, "train", data_dir=data_dir, subset=config.subset or None)
    # First, so that a folder killed while the datasets are built is recognised as this run.
    atomic_write(out / "config.json", json.dumps(config.as_dict(), indent=2))
    cache = out / "pseudo_inputs.npz"
    if cache.exists():
        with np.load(cache) as stored:
            parts = {key: stored[key] for key in stored.files}
        if len(parts["y_robust"]) != len(y):
            raise ValueError(f"{cache} was built for {len(parts['y_robust'])} images, not {len(y)}; delete it to rebuild")
        progress.note(f"the pseudo-input datasets of {len(y)} images are read from {cache}")
    else:
        attack = PGD(**PI_NON_ROBUST_ATTACKS[config.dataset])
        with progress.bar(2, what="pseudo-input datasets", unit="datasets") as bar:
            bar.update(0, step=f"robust: inverting {len(y)} images, {inversion_steps} steps")
            x_robust, y_robust = robust_dataset(at_model, x, y, steps=inversion_steps, step_size=inversion_step_size,
                                                seed=config.seed)
            bar.update(1, step=f"non-robust: targeted attack on {len(y)} images, {attack.steps} steps")
            x_non_robust, y_non_robust = non_robust_dataset(st_model, x, y, attack=attack, targets=targets,
                                                            seed=config.seed)
            bar.update(2)
        parts = {"x_robust": x_robust, "y_robust": y_robust, "x_non_robust": x_non_robust, "y_non_robust": y_non_robust}
        temporary = out / ".pseudo_inputs.tmp.npz"
        np.savez(temporary, **parts)
        os.replace(temporary, cache)
    atomic_write(out / "pseudo_inputs.json", json.dumps({
        "st_run": str(st_run), "at_run": str(at_run), "inversion_steps": inversion_steps,
        "inversion_step_size": inversion_step_size, "targets": targets, "images": int(len(y))}, indent=2))
    keras.utils.set_random_seed(config.seed)
    base = build_model(config)
    model = PseudoInputModel(base.encoder_r, base.encoder_n, num_classes=base.num_classes)
    model.compile(optimizer=build_optimizer(config, steps_per_epoch=math.ceil(len(y) / config.batch_size)))
    x_test, y_test = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=2000)
    progress.note(f"training on the natural, robust and non-robust datasets ({len(y)} images each), "
                  f"{config.epochs} epoch(s)")
    model.fit(
        x=(x, parts["x_robust"], parts["x_non_robust"]),
        y=(y, parts["y_robust"], parts["y_non_robust"]),
        batch_size=config.batch_size,
        epochs=config.epochs,
        # The first 2,000 test images' clean figures as test_* columns, as aatk train logs them.
        callbacks=[_TestSplitAccuracy(x_test, y_test), _EpochLog(out / "log.csv")],
        verbose=verbose,
    )
    model.save(out / "model.keras")
    return model


def dead_relu_figure(
    config_path: str | Path,
    *,
    out: str | Path,
    variants: Sequence[tuple[str, dict]] = (("as configured", {}), ("no warm-up", {"training.warmup_steps": 0})),
    seeds: Sequence[int] = (0,),
    steps: int = 300,
    every: int = 5,
    probe: int = 512,
    data_dir: str | None = None,
    progress: bool | Progress = False,
) -> Path:
    """Dead ReLUs per layer over the first ``steps`` optimizer steps, for several training recipes.

    Each variant is the configuration with some keys overridden (e.g.
    ``{"training.warmup_steps": 0}``); each is trained from scratch for every seed, on
    the configuration's training images (``training.subset`` if set), with its
    optimiser, learning-rate schedule, method and training attack, one
    ``train_on_batch`` per step
    ([`aatk.analysis.dead_relus.dead_relu_trajectory`][aatk.analysis.dead_relus.dead_relu_trajectory]).
    Dead units are counted on the first ``probe`` training images; the clean accuracy
    of each way on the first 2,000 test images after the last step goes in the panel
    titles. Writes ``out/dead-relus.json`` and ``out/dead-relus.png``.

    Args:
        config_path: The configuration file to train from.
        out: Output folder.
        variants: ``(label, overrides)`` pairs.
        seeds: Seeds; every variant is trained once per seed.
        steps: Optimizer steps.
        every: Count dead units every N steps.
        probe: Training images the dead units are counted on.
        data_dir: Folder of the original dataset files.
        progress: Show a bar over the (variant, seed) trainings on standard error (``True``,
            ``False`` or a ``aatk.progress.Progress``).

    Returns:
        The PNG's path.

    Raises:
        ValueError: On no variant or seed, or an invalid override (as ConfigError).
    """
    import math

    from aatk.analysis.dead_relus import dead_relu_trajectory, plot_dead_relus
    from aatk.configs import read_config_data, with_overrides
    from aatk.training import attacked_accuracies, build_model, build_optimizer

    if not variants or not seeds:
        raise ValueError("give at least one variant and one seed")
    progress = as_progress(progress)
    data = read_config_data(config_path)  # read once: every variant derives from the same text
    base = with_overrides(data, source=str(config_path))
    x, y = datasets.load_arrays(base.dataset, "train", data_dir=data_dir, subset=base.subset or None)
    x_test, y_test = datasets.load_arrays(base.dataset, "test", data_dir=data_dir, subset=2000)
    results: dict = {}
    record: dict = {"config": str(config_path), "steps": steps, "every": every, "probe": probe, "variants": {}}
    with progress.bar(len(variants) * len(seeds), what="dead ReLUs", unit="trainings") as bar:
        for label, overrides in variants:
            record["variants"][label] = {"overrides": dict(overrides), "seeds": {}}
            for seed in seeds:
                config = with_overrides(data, {**overrides, "experiment.seed": int(seed)}, source=str(config_path))
                bar.update(bar.done, step=f"{label!r}, seed {seed}: {steps} steps")
                keras.utils.set_random_seed(config.seed)
                model = build_model(config)
                model.compile(
                    optimizer=build_optimizer(config, steps_per_epoch=math.ceil(len(x) / config.batch_size)),
                    method=config.method,
                    attack=config.make_train_attack(),
                    attack_warmup_steps=config.attack_warmup_steps,
                    keep=config.keep,
                )
                trajectory = dead_relu_trajectory(
                    model, x, y, probe=x[:probe], steps=steps, batch_size=config.batch_size, every=every, seed=config.seed
                )
                clean = attacked_accuracies(model, x_test, y_test, config.make_train_attack(), ways=())
                trajectory["accuracy"] = {"standard": clean["S"], "robust": clean["R"], "non_robust": clean["N"]}
                results.setdefault(label, {})[str(seed)] = trajectory
                record["variants"][label]["seeds"][str(seed)] = trajectory
                bar.update(bar.done + 1)
    _write_json(Path(out) / "dead-relus.json", record)
    return plot_dead_relus(
        results, Path(out) / "dead-relus.png",
        title=f"Dead ReLUs over the first {steps} steps, {base.name} ({base.method}), lr {base.learning_rate:g}",
    )


def monitor_figure(runs: Sequence[str | Path], *, out: str | Path, title: str | None = None) -> Path:
    """Training curves of runs from their ``monitor.csv``: clean S, R, N and attacked R_adv,
    N_adv, DIA after every monitored epoch, one panel per run (finished or not).

    Writes ``out/monitor.png`` and ``out/monitor.json`` (the curves).

    Returns:
        The PNG's path.

    Raises:
        ValueError: If no run is given, or a run folder has no ``monitor.csv``.
    """
    import csv

    from aatk.analysis.plots import plot_training_curves

    if not runs:
        raise ValueError("give at least one run folder")
    curves = {}
    for run in runs:
        run = Path(run)
        path = run / "monitor.csv"
        if not path.exists():
            raise ValueError(f"{run} has no monitor.csv (train with monitor.subset > 0)")
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        if not rows:
            raise ValueError(f"{path} has no epoch yet")
        config = json.loads((run / "config.json").read_text())
        name = config.get("experiment", {}).get("name", run.name)
        curve = {"epoch": [int(r["epoch"]) for r in rows]}
        for key in ("S", "R", "N", "R_adv", "N_adv", "DIA"):
            values = [float(r[key]) if r.get(key) not in (None, "") else None for r in rows]
            if any(v is not None for v in values):
                curve[key] = values
        for key in _ONE_WAY_HIDDEN.get(config.get("experiment", {}).get("method"), ()):
            curve.pop(key, None)
        curve["subtitle"] = (f"{rows[-1]['attack']}, {rows[-1]['samples']} test images, "
                             f"{curve['epoch'][-1]}/{config.get('training', {}).get('epochs', '?')} epochs")
        curves[name] = curve
    _write_json(Path(out) / "monitor.json", curves)
    return plot_training_curves(curves, Path(out) / "monitor.png", title=title)


_ONE_WAY_HIDDEN = {"1way-st": ("S", "R"), "1way-at": ("S", "N"), "1way-at-half": ("S", "N")}
"""Clean accuracies a one-way run does not train (not worth plotting)."""
