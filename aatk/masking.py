"""Gradient-masking checks per way: signs that an attack, not the model, is weak.

A robust accuracy is only as trustworthy as the attack behind it. Athalye, Carlini &
Wagner (2018) and Croce & Hein (2020) list the signs of gradient masking (obfuscated
gradients) that a careful evaluation checks; [`gradient_masking_checks`][aatk.masking.gradient_masking_checks]
runs them for each way of a three-way model, because a three-way model may mask the
gradient of one way and not of another:

* ``large ε``: accuracy under attack falls to (about) zero when ε is large enough to
  reach any input (ℓ∞: the width of the bounds; ℓ2: their diagonal);
* ``more iterations``: more steps and random restarts never raise accuracy;
* ``black box``: a gradient-free attack (the Square Attack) does not fool examples that
  every white-box attack failed on;
* ``targeted``: a targeted attack does not fool many more examples than the untargeted ones;
* ``zero gradients``: the cross-entropy's input gradient is not exactly zero (a saturated
  softmax in float32 stops sign-gradient attacks dead).

Three of the five need only the model and the data; the black-box and targeted checks read
the per-example results of a worst-case [`evaluate`][aatk.evaluation.evaluate] over a list of
attacks that holds a gradient-free one and a targeted one (the ``strong`` presets do).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from keras import ops

from aatk.attacks.base import Attack, way_logits_function
from aatk.attacks.pgd import PGD
from aatk.evaluation import EvaluationReport, _check_dataset, _gather
from aatk.progress import Progress, as_progress
from aatk.ways import WAYS, check_way

__all__ = ["MaskingCheck", "MaskingReport", "gradient_masking_checks", "CHECKS"]

CHECKS = ("large ε", "more iterations", "black box", "targeted", "zero gradients")
"""The checks, in the order reported."""

_GROUP_OF_WAY = {"robust": "robust_attack", "non_robust": "non_robust_attack", "standard": "standard_attack"}


@dataclasses.dataclass(frozen=True)
class MaskingCheck:
    """One check on one way.

    Attributes:
        way: The way checked.
        check: One of [`CHECKS`][aatk.masking.CHECKS].
        value: The measured fraction (see ``detail``).
        threshold: The largest value that passes.
        passed: ``value <= threshold``.
        detail: What was measured, in words, with the figures behind it.
    """

    way: str
    check: str
    value: float
    threshold: float
    passed: bool
    detail: str


@dataclasses.dataclass
class MaskingReport:
    """The checks of [`gradient_masking_checks`][aatk.masking.gradient_masking_checks].

    Attributes:
        samples: Number of test examples the checks ran on.
        checks: Every check, way by way.
        skipped: Check name → why it was not run (e.g. no gradient-free attack in the report).
    """

    samples: int
    checks: list[MaskingCheck]
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def flagged_ways(self) -> list[str]:
        """The ways that failed at least one check, in [`WAYS`][aatk.ways.WAYS] order."""
        failed = {check.way for check in self.checks if not check.passed}
        return [way for way in WAYS if way in failed]

    def to_markdown(self) -> str:
        """A Markdown table, one row per way and check, then the flagged ways."""
        lines = [
            f"Gradient-masking checks on {self.samples} test examples.",
            "",
            "| way | check | value % | passes if ≤ % | result | what was measured |",
            "|---|---|---|---|---|---|",
        ]
        for check in self.checks:
            result = "pass" if check.passed else "**FLAG**"
            lines.append(
                f"| {check.way} | {check.check} | {100 * check.value:.1f} | {100 * check.threshold:.1f} | {result} | {check.detail} |"
            )
        for name, why in self.skipped.items():
            lines.append(f"| – | {name} | – | – | not run | {why} |")
        flagged = self.flagged_ways
        lines += ["", f"Flagged ways: {', '.join(flagged)}." if flagged else "No way flagged."]
        return "\n".join(lines)


def _way_accuracy(model, x, y, attacks: list[Attack], way: str, batch_size: int) -> float:
    """Accuracy of ``way`` on the per-example worst case over ``attacks`` (each on that way's loss)."""
    logits_fn = way_logits_function(model, way)
    correct = np.ones(len(y), bool)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        for attack in attacks:
            adversarial = attack(model, xb, yb, way=way)
            predicted = np.argmax(np.asarray(ops.convert_to_numpy(logits_fn(adversarial))), axis=-1)
            correct[start : start + batch_size] &= predicted == yb
    return float(correct.mean())


def _zero_gradient_share(model, x, y, way: str, batch_size: int) -> tuple[float, float]:
    """Shares of examples whose cross-entropy input gradient is all zero, and whose true-class
    probability is exactly 1 in float32 (through ``way``'s logits, so any model with ways or a
    plain classifier)."""
    from aatk import backend
    from aatk.objectives import cross_entropy

    logits_fn = way_logits_function(model, way)

    def gradient_and_probabilities(inputs, labels):
        def loss_fn(points):
            return cross_entropy(logits_fn(points), labels)

        return backend.input_gradient(loss_fn, inputs), ops.softmax(ops.cast(logits_fn(inputs), "float32"))

    compiled = backend.compile_function(gradient_and_probabilities, state=model.variables)
    zero, saturated = [], []
    for start in range(0, len(y), batch_size):
        labels = y[start : start + batch_size]
        gradient, probabilities = compiled(ops.convert_to_tensor(x[start : start + batch_size], dtype="float32"),
                                           ops.convert_to_tensor(labels, dtype="int32"))
        gradient = np.asarray(ops.convert_to_numpy(gradient)).reshape(len(labels), -1)
        zero.append(np.all(gradient == 0, axis=1))
        saturated.append(np.asarray(ops.convert_to_numpy(probabilities))[np.arange(len(labels)), labels] == 1.0)
    return float(np.concatenate(zero).mean()), float(np.concatenate(saturated).mean())


def _report_checks(report: EvaluationReport, ways: tuple[str, ...], black_box_tolerance: float, targeted_margin: float):
    """The black-box and targeted checks from the per-example results of a worst-case report."""
    checks, skipped = [], {}
    attacks = report.attacks
    runs = report.details.get("attacks")
    labels = report.details.get("labels")
    if len(attacks) < 2 or runs is None:
        why = "needs a worst-case evaluate over a list of attacks (e.g. the strong preset)"
        return [], {"black box": why, "targeted": why}
    names = list(runs)
    gradient_free = [n for n, a in zip(names, attacks) if not a.uses_gradients]
    targeted = [n for n, a in zip(names, attacks) if a.uses_gradients and getattr(a, "targeted", False)]
    untargeted = [n for n, a in zip(names, attacks) if a.uses_gradients and not getattr(a, "targeted", False)]
    white_box = [n for n, a in zip(names, attacks) if a.uses_gradients]

    def fooled(name, way):
        run = runs[name][_GROUP_OF_WAY[way]]
        return run["attacked"] & (run[way] != labels)

    def fooled_any(chosen, way):
        return np.any([fooled(name, way) for name in chosen], axis=0) if chosen else np.zeros(labels.shape, bool)

    for way in ways:
        if gradient_free and white_box:
            extra = fooled_any(gradient_free, way) & ~fooled_any(white_box, way)
            value = float(extra.mean())
            checks.append(MaskingCheck(
                way, "black box", value, black_box_tolerance, value <= black_box_tolerance,
                f"fooled by {', '.join(gradient_free)} but by none of {', '.join(white_box)}",
            ))
        if targeted and untargeted:
            extra = fooled_any(targeted, way) & ~fooled_any(untargeted, way)
            value = float(extra.mean())
            checks.append(MaskingCheck(
                way, "targeted", value, targeted_margin, value <= targeted_margin,
                f"fooled by {', '.join(targeted)} but by none of {', '.join(untargeted)}",
            ))
    if not (gradient_free and white_box):
        skipped["black box"] = "the report's attacks hold no gradient-free attack (or no white-box one)"
    if not (targeted and untargeted):
        skipped["targeted"] = "the report's attacks hold no targeted white-box attack (or no untargeted one)"
    return checks, skipped


def gradient_masking_checks(
    model: keras.Model,
    dataset: Any,
    *,
    norm: str,
    eps: float,
    report: EvaluationReport | None = None,
    ways: tuple[str, ...] = WAYS,
    steps: int = 20,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    large_eps: float | None = None,
    tolerance: float = 0.02,
    black_box_tolerance: float = 0.01,
    targeted_margin: float = 0.05,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool | Progress = False,
) -> MaskingReport:
    """Runs the gradient-masking checks for each way of ``model``.

    The attacks of the ``large ε`` and ``more iterations`` checks are PGD with a random start
    and Madry et al.'s step 2.5·ε/steps: ``steps`` steps, against 5·``steps`` steps from three
    random starts (worst case per example). Accuracies are fractions of ``dataset``'s examples.

    Args:
        model: A [`ThreeWayModel`][aatk.model.ThreeWayModel] or
            [`CombinedOneWay`][aatk.baselines.CombinedOneWay] (built), or any Keras
            classifier with ``ways=("standard",)``.
        dataset: A ``tf.data.Dataset`` of (x, y) batches, or a tuple (x, y) of arrays; a
            subset of the test set keeps the checks quick.
        norm: ``"linf"`` or ``"l2"``: the threat model evaluated.
        eps: Its radius ε.
        report: A worst-case [`evaluate`][aatk.evaluation.evaluate] report over a list of
            attacks, for the black-box and targeted checks (skipped without one).
        ways: The ways to check.
        steps: PGD steps of the cheaper attack.
        bounds: Valid inputs, as for the attacks.
        large_eps: The ε that reaches any input (default: the bounds' width for ℓ∞, their
            diagonal for ℓ2).
        tolerance: The accuracy allowed at ``large_eps``, and by how much more iterations may
            raise accuracy (sampling noise between random starts).
        black_box_tolerance: The share of examples the gradient-free attack may fool that no
            white-box attack fooled.
        targeted_margin: The share of examples the targeted attacks may fool that no
            untargeted one fooled.
        batch_size: Examples per batch.
        seed: Seed of the random starts.
        progress: Show progress on standard error.

    Returns:
        A [`MaskingReport`][aatk.masking.MaskingReport].

    Raises:
        ValueError: On an unknown way or norm, a non-positive ε or ``steps``, thresholds
            outside [0, 1], unbounded inputs without ``large_eps``, or a bad dataset.
    """
    ways = tuple(check_way(way) for way in ways)
    if not ways:
        raise ValueError("ways must name at least one way")
    for name, value in (("tolerance", tolerance), ("black_box_tolerance", black_box_tolerance),
                        ("targeted_margin", targeted_margin)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a number > 0, got {eps!r}")
    _check_dataset(dataset)
    x, y = _gather(dataset, batch_size)
    if large_eps is None:
        if bounds is None:
            raise ValueError("unbounded inputs (bounds=None) need large_eps: the radius that reaches any input")
        width = bounds[1] - bounds[0]
        large_eps = width if norm == "linf" else width * float(np.sqrt(np.prod(x.shape[1:])))

    def pgd(radius, count, seed_offset):
        return PGD(norm=norm, eps=radius, step_size=2.5 * radius / count, steps=count, random_start=True,
                   bounds=bounds, seed=seed + seed_offset)

    weak = pgd(eps, steps, 0)
    weak.check_inputs(x)  # also validates norm and bounds, before anything runs
    strong = [pgd(eps, 5 * steps, offset) for offset in (1, 2, 3)]
    checks: list[MaskingCheck] = []
    reporter = as_progress(progress)
    with reporter.bar(len(ways) * 4, what="masking checks", unit="checks") as bar:
        for index, way in enumerate(ways):
            bar.update(4 * index, step=f"{way}: large ε")
            at_large = _way_accuracy(model, x, y, [pgd(large_eps, steps, 4)], way, batch_size)
            checks.append(MaskingCheck(
                way, "large ε", at_large, tolerance, at_large <= tolerance,
                f"accuracy under PGD-{steps} at ε = {large_eps:g}",
            ))
            bar.update(4 * index + 1, step=f"{way}: more iterations")
            weak_accuracy = _way_accuracy(model, x, y, [weak], way, batch_size)
            bar.update(4 * index + 2, step=f"{way}: more iterations")
            strong_accuracy = _way_accuracy(model, x, y, strong, way, batch_size)
            rise = strong_accuracy - weak_accuracy
            checks.append(MaskingCheck(
                way, "more iterations", max(rise, 0.0), tolerance, rise <= tolerance,
                f"PGD-{steps}: {100 * weak_accuracy:.1f}%; PGD-{5 * steps} × 3 restarts: {100 * strong_accuracy:.1f}%",
            ))
            bar.update(4 * index + 3, step=f"{way}: zero gradients")
            zero, saturated = _zero_gradient_share(model, x, y, way, batch_size)
            checks.append(MaskingCheck(
                way, "zero gradients", zero, tolerance, zero <= tolerance,
                f"all-zero input gradient of the cross-entropy; true-class probability exactly 1: {100 * saturated:.1f}%",
            ))
            bar.update(4 * index + 4)
    skipped = {}
    if report is not None:
        report_checks, skipped = _report_checks(report, ways, black_box_tolerance, targeted_margin)
        checks += report_checks
    else:
        skipped = {name: "needs a worst-case evaluate report (report=...)" for name in ("black box", "targeted")}
    order = {name: index for index, name in enumerate(CHECKS)}
    checks.sort(key=lambda check: (WAYS.index(check.way), order[check.check]))
    return MaskingReport(samples=int(y.size), checks=checks, skipped=skipped)
