"""The detector of Eq. 12 under adaptive attacks: attacks that know the detector is there.

The paper evaluates its detector D(x) = [argmax h_r(x) ≠ argmax h_n(x)] (Eq. 12) only on
adversarial examples of the standard way, made by an attacker who ignores it (Table 4b).
A detector is only as good as the strongest attack aimed at it (Tramèr et al., 2020,
"On adaptive attacks to adversarial example defenses"), so
[`attack_detector`][aatk.detector.attack_detector] runs the attacks a reviewer would try
first, each within the same ε-ball and with the same optimiser (PGD or APGD's step schedule):

* ``agreement-ce``: push the robust and the non-robust way to the same wrong class t (the
  standard way's most likely wrong class on the clean input) by cross-entropy — the
  adaptive attack of [`aatk.evaluate`][aatk.evaluation.evaluate];
* ``agreement-margin``: the same target with a margin loss, min over the two ways of
  z_t − max over j ≠ t of z_j, so that the attack only stops helping once *both* ways predict t;
* ``divergence λ``: fool the standard way while keeping the two ways' predictions close:
  maximise l(h_s(x'), y) − λ·JS(h_r(x'), h_n(x')), with the weight λ swept (λ = 0 is the
  detector-blind attack of Table 4b).

For each it reports, on the equal mixture of natural and adversarial examples as Table 4b
does: RAD, the calibrated accuracy, the standard way's accuracy S_adv, the ROC AUC of the
continuous score, and the **evasion** rate — adversarial examples that fool the standard
way *and* pass the detector — then the strongest attack (highest evasion) and the
per-example worst case over all of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from keras import ops

from aatk import backend
from aatk.attacks.base import Attack
from aatk.evaluation import (
    _check_dataset,
    _clean_evaluator,
    _detection,
    _gather,
    _predictions,
    _run_batched,
    detection_score,
)
from aatk.objectives import Tensor, cross_entropy
from aatk.progress import Progress, as_progress

__all__ = ["DetectorReport", "attack_detector", "agreement_margin_loss", "divergence_evasion_loss", "DEFAULT_WEIGHTS"]

DEFAULT_WEIGHTS = (0.0, 0.1, 1.0, 10.0, 100.0)
"""The weights λ of the divergence attack swept by default (λ = 0: the detector-blind attack)."""

_FIGURES = ("evasion", "RAD", "calibrated_acc", "S_adv", "AUC")


def agreement_margin_loss(robust_logits: Tensor, non_robust_logits: Tensor, target: Tensor) -> Tensor:
    """The smaller of the two ways' margins towards ``target``: min over ways of z_t − max over j ≠ t of z_j.

    Positive exactly when both the robust and the non-robust way predict ``target``, so
    maximising it drives both ways to one wrong class (the detector of Eq. 12 then sees
    agreement) and keeps pushing the way that lags behind.

    Args:
        robust_logits: Logits of the robust way (batch, C).
        non_robust_logits: Logits of the non-robust way (batch, C).
        target: Target class per example (batch,).

    Returns:
        Per-example loss (batch,), to be maximised.

    Examples:
        >>> r = keras.ops.convert_to_tensor([[0.0, 3.0, 1.0]])
        >>> n = keras.ops.convert_to_tensor([[2.0, 1.0, 0.0]])
        >>> float(agreement_margin_loss(r, n, keras.ops.convert_to_tensor([1]))[0])
        -1.0
    """

    def margin(logits):
        logits = ops.cast(logits, "float32")
        mask = ops.one_hot(target, ops.shape(logits)[-1])
        target_logit = ops.sum(logits * mask, axis=-1)
        other = ops.max(logits - 1e9 * mask, axis=-1)
        return target_logit - other

    return ops.minimum(margin(robust_logits), margin(non_robust_logits))


def divergence_evasion_loss(logits: dict, labels: Tensor, weight: Tensor | float) -> Tensor:
    """l(h_s(x), y) − λ·JS(h_r(x), h_n(x)): fool the standard way, keep the two ways together.

    JS is [`detection_score`][aatk.evaluation.detection_score], the continuous version of the
    detector; λ trades fooling the standard way against being detected.

    Args:
        logits: Way name → logits, with ``"standard"``, ``"robust"`` and ``"non_robust"``.
        labels: True labels (batch,).
        weight: λ ≥ 0, a scalar or one per example (batch,).

    Returns:
        Per-example loss (batch,), to be maximised.
    """
    return cross_entropy(logits["standard"], labels) - weight * detection_score(logits["robust"], logits["non_robust"])


@dataclasses.dataclass
class DetectorReport:
    """Figures of the detector under each adaptive attack of
    [`attack_detector`][aatk.detector.attack_detector] (fractions in [0, 1]).

    Attributes:
        samples: Number of test examples.
        attack: The optimiser every adaptive attack used (its norm, ε and steps).
        rows: Attack name → figures: ``evasion`` (fooled the standard way and not detected),
            ``RAD``, ``calibrated_acc``, ``S_adv``, ``AUC`` on the mixture of natural and
            adversarial examples.
        strongest: The name of the attack with the highest evasion.
        worst_case: The same figures on the per-example worst case: each example's first
            adversarial example (in the rows' order) that evaded the detector, else the
            strongest attack's.
        details: Per attack, the per-example predictions and scores behind the figures.
    """

    samples: int
    attack: Attack
    rows: dict[str, dict[str, float]]
    strongest: str
    worst_case: dict[str, float]
    details: dict = dataclasses.field(default_factory=dict, repr=False)

    def to_markdown(self) -> str:
        """A Markdown table, one row per attack, then the strongest and the worst case, in percent."""
        lines = [
            f"Adaptive attacks on the detector (Eq. 12) with {self.attack!r}; {self.samples} test examples.",
            "",
            "| attack | " + " | ".join(_FIGURES) + " |",
            "|---|" + "---|" * len(_FIGURES),
        ]

        def row(name, figures, bold=False):
            cells = [f"{100 * figures[key]:.1f}" for key in _FIGURES]
            if bold:
                cells = [f"**{cell}**" for cell in cells]
            return f"| {name} | " + " | ".join(cells) + " |"

        for name, figures in self.rows.items():
            lines.append(row(name + (" (strongest)" if name == self.strongest else ""), figures))
        lines.append(row("**worst case per example**", self.worst_case, bold=True))
        return "\n".join(lines)


def _agreement_evaluators(model, attack):
    """Compiled ``(x, target) -> predictions`` of the two agreement attacks."""

    def agreement_ce(x, target):
        def loss(points):
            logits = model.way_logits(points, ways=("robust", "non_robust"), training=False)
            return -(cross_entropy(logits["robust"], target) + cross_entropy(logits["non_robust"], target))

        return _predictions(model, attack.perturb(loss, x))[0]

    def agreement_margin(x, target):
        def loss(points):
            logits = model.way_logits(points, ways=("robust", "non_robust"), training=False)
            return agreement_margin_loss(logits["robust"], logits["non_robust"], target)

        return _predictions(model, attack.perturb(loss, x))[0]

    state = model.variables + attack.variables
    return {
        "agreement-ce": backend.compile_function(agreement_ce, state=state),
        "agreement-margin": backend.compile_function(agreement_margin, state=state),
    }


def _divergence_evaluator(model, attack):
    """Compiled ``(x, y, weight) -> predictions`` of the divergence attack (λ per example, an input)."""

    def divergence(x, y, weight):
        def loss(points):
            return divergence_evasion_loss(model.way_logits(points, training=False), y, weight)

        return _predictions(model, attack.perturb(loss, x))[0]

    return backend.compile_function(divergence, state=model.variables + attack.variables)


def attack_detector(
    model: keras.Model,
    dataset: Any,
    *,
    attack: Attack,
    weights: tuple[float, ...] = DEFAULT_WEIGHTS,
    batch_size: int = 256,
    progress: bool | Progress = False,
) -> DetectorReport:
    """Attacks the detector of Eq. 12 adaptively and reports it under the strongest attack.

    Paper: Eq. 12 (the detector), Table 4b (its figures under a detector-blind attack).

    Args:
        model: A [`ThreeWayModel`][aatk.model.ThreeWayModel] or
            [`CombinedOneWay`][aatk.baselines.CombinedOneWay] (built).
        dataset: A ``tf.data.Dataset`` of (x, y) batches, or a tuple (x, y) of arrays.
        attack: The optimiser of every adaptive attack: an attack that maximises any loss
            (``perturb``): [`APGD`][aatk.attacks.apgd.APGD] (the step schedule of Croce &
            Hein) or [`PGD`][aatk.attacks.pgd.PGD]. Its norm, ε and steps are the budget.
        weights: The weights λ ≥ 0 of the divergence attack to sweep.
        batch_size: Examples per batch.
        progress: Show a progress bar on standard error (``True``, ``False`` or a
            ``aatk.progress.Progress``).

    Returns:
        A [`DetectorReport`][aatk.detector.DetectorReport].

    Raises:
        ValueError: On a model without ways or not built, an attack without ``perturb``,
            weights that are not non-negative finite numbers, a bad ``batch_size``, a
            dataset of another kind, inputs outside the attack's bounds, or an empty dataset.
    """
    if not hasattr(model, "way_logits"):
        raise ValueError(f"model must have ways (a ThreeWayModel or CombinedOneWay), got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: train or load it before attacking its detector")
    if not isinstance(attack, Attack) or not hasattr(attack, "perturb"):
        raise ValueError(
            f"attack must be an aatk attack that maximises any loss (aatk.APGD or aatk.PGD), got {attack!r}"
        )
    weights = tuple(weights)
    if not weights or any(
        isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not np.isfinite(w) or w < 0
        for w in weights
    ):
        raise ValueError(f"weights must be a non-empty sequence of finite numbers >= 0, got {weights!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_dataset(dataset)

    def check(x, y):
        model.validate_inputs(x, y)
        attack.check_inputs(x)

    x_all, labels = _gather(dataset, batch_size, check)
    count, every = labels.size, np.arange(labels.size)
    reporter = as_progress(progress)
    outputs: dict[str, dict] = {}
    with reporter.bar(count * (3 + len(weights)), what="attack the detector", unit="attacked examples") as bar:
        clean = _run_batched(_clean_evaluator(model), (x_all, labels), every, batch_size, bar, 0, "clean inputs")
        target = clean.pop("target")
        done = count
        for name, function in _agreement_evaluators(model, attack).items():
            outputs[name] = _run_batched(function, (x_all, target), every, batch_size, bar, done, name)
            done += count
        divergence = _divergence_evaluator(model, attack)
        for weight in weights:
            name = f"divergence λ={weight:g}"
            # λ as a per-example input: one compilation serves the whole sweep.
            weight_column = np.full(count, weight, dtype=np.float32)
            outputs[name] = _run_batched(divergence, (x_all, labels, weight_column), every, batch_size, bar, done, name)
            done += count

    def figures_of(adversarial):
        detection = _detection(clean, adversarial, labels)
        return {
            "evasion": detection["evasion"],
            "RAD": detection["RAD"],
            "calibrated_acc": detection["calibrated_acc"],
            "S_adv": float(np.mean(adversarial["standard"] == labels)),
            "AUC": detection["AUC"],
        }

    rows = {name: figures_of(adversarial) for name, adversarial in outputs.items()}
    strongest = max(rows, key=lambda name: rows[name]["evasion"])
    names = list(outputs)
    chosen = np.full(count, names.index(strongest))
    undecided = np.ones(count, bool)
    for index, name in enumerate(names):
        adversarial = outputs[name]
        evaded = (adversarial["standard"] != labels) & (adversarial["robust"] == adversarial["non_robust"])
        take = undecided & evaded
        chosen[take] = index
        undecided &= ~take
    rows_index = np.arange(count)
    worst = {key: np.stack([outputs[name][key] for name in names])[chosen, rows_index] for key in outputs[names[0]]}
    return DetectorReport(
        samples=int(count), attack=attack, rows=rows, strongest=strongest, worst_case=figures_of(worst),
        details={"labels": labels, "clean": clean, **outputs, "worst_attack": chosen},
    )
