"""Evaluation of robustness disentanglement: the figures of Tables 1–4 and more.

[`evaluate`][aatk.evaluation.evaluate] attacks each way of a
[`ThreeWayModel`][aatk.model.ThreeWayModel], measures the accuracy gap between
the robust and the non-robust way (DIA), detects adversarial examples by the
disagreement of the two ways (RAD, Eq. 12), calibrates predictions with that
detector, scores detection continuously (ROC AUC), and finally attacks the
detector itself.

Paper: Section 2.4–2.5, Section 3.3, Table 4b, Appendix C.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from scipy import stats

from aatk import backend
from aatk.attacks import PGD
from aatk.model import ThreeWayModel
from aatk.objectives import cross_entropy
from aatk.progress import Progress, as_progress

__all__ = ["EvaluationReport", "evaluate", "detection_score", "roc_auc"]

_GROUPS = (
    ("Clean", ("S", "R", "N")),
    ("Way-specific attack", ("R_adv", "N_adv", "DIA")),
    ("Standard-way attack (App. C)", ("S_adv_s", "R_adv_s", "N_adv_s", "DIA_s")),
    ("Detection, natural + standard-way adversarial (Table 4b)", ("RAD", "raw_acc", "calibrated_acc", "AUC", "evasion")),
    ("Adaptive attack on the detector", ("S_adv_adaptive", "RAD_adaptive", "calibrated_acc_adaptive", "AUC_adaptive", "evasion_adaptive")),
)


class EvaluationReport(dict):
    """The figures of [`evaluate`][aatk.evaluation.evaluate] (a dict of floats), printable like the paper's tables.

    Attributes:
        samples: Number of test examples evaluated.
        attack: The attack used.
        details: Per-example arrays behind the figures, for plots (ROC curves,
            confusion of the ways): ``details["labels"]`` (samples,) and, for each
            input group — ``"clean"``, ``"robust_attack"``, ``"non_robust_attack"``,
            ``"standard_attack"`` and, if run, ``"adaptive_attack"`` — a dict of the
            predicted class of each way evaluated on it (``"standard"``, ``"robust"``,
            ``"non_robust"``) and, where both the robust and the non-robust way were
            evaluated, the detection ``"score"`` ([`detection_score`][aatk.evaluation.detection_score]).
    """

    def __init__(self, figures: dict, *, samples: int, attack: PGD, details: dict | None = None) -> None:
        super().__init__(figures)
        self.samples = samples
        self.attack = attack
        self.details = details if details is not None else {}

    def intervals(self, *, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
        """Confidence intervals of the accuracies and of DIA, from the per-example details.

        Accuracies (S, R, N, R_adv, N_adv and the standard-way attack's S/R/N_adv_s) get
        the Clopper–Pearson (exact binomial) interval. DIA and DIA_s are means of the
        per-example differences dᵢ = [robust way right] − [non-robust way right] ∈ {−1, 0, 1}
        over the same examples (paired), with the normal interval mean ± z·sd(d)/√n.

        Args:
            confidence: Confidence level in (0, 1).

        Returns:
            Figure name → (lower, upper), for the figures this report has details for.

        Raises:
            ValueError: If ``confidence`` is not in (0, 1), or the report has no details.
        """
        from theory.simulation import estimate_from_counts

        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        if "labels" not in self.details:
            raise ValueError("this report has no per-example details to compute intervals from")
        labels = self.details["labels"]
        correct = {}
        for key, group, way in (
            ("S", "clean", "standard"), ("R", "clean", "robust"), ("N", "clean", "non_robust"),
            ("R_adv", "robust_attack", "robust"), ("N_adv", "non_robust_attack", "non_robust"),
            ("S_adv_s", "standard_attack", "standard"), ("R_adv_s", "standard_attack", "robust"),
            ("N_adv_s", "standard_attack", "non_robust"),
        ):
            predictions = self.details.get(group, {}).get(way)
            if predictions is not None:
                correct[key] = np.asarray(predictions) == labels
        out = {}
        for key, hits in correct.items():
            estimate = estimate_from_counts(int(hits.sum()), int(hits.size), confidence=confidence)
            out[key] = (float(estimate.lower), float(estimate.upper))
        z = float(stats.norm.ppf(0.5 + confidence / 2))
        for key, (robust, non_robust) in (("DIA", ("R_adv", "N_adv")), ("DIA_s", ("R_adv_s", "N_adv_s"))):
            if robust in correct and non_robust in correct:
                differences = correct[robust].astype(float) - correct[non_robust].astype(float)
                half = z * float(differences.std(ddof=1)) / np.sqrt(differences.size) if differences.size > 1 else 1.0
                out[key] = (float(differences.mean() - half), float(differences.mean() + half))
        return out

    def to_markdown(self) -> str:
        """A Markdown table, one row per figure, in percent."""
        lines = [f"Attack: {self.attack!r}; {self.samples} test examples.", "", "| group | figure | % |", "|---|---|---|"]
        for group, keys in _GROUPS:
            for key in keys:
                if key in self:
                    lines.append(f"| {group} | {key} | {100 * self[key]:.1f} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = [f"{self.samples} test examples; attack {self.attack!r}"]
        for group, keys in _GROUPS:
            present = [k for k in keys if k in self]
            if present:
                cells = "  ".join(f"{k} {100 * self[k]:5.1f}" for k in present)
                lines.append(f"  {group + ':':58s} {cells}")
        return "\n".join(lines)


def detection_score(robust_logits, non_robust_logits):
    """Continuous disagreement of the two ways: the Jensen–Shannon divergence of their softmaxes.

    0 when the robust and non-robust ways agree exactly, up to log 2 when they
    put their mass on different classes. A continuous version of Eq. 12's rule
    D(x) = [argmax h_r(x) ≠ argmax h_n(x)].
    """
    p = ops.softmax(robust_logits, axis=-1)
    q = ops.softmax(non_robust_logits, axis=-1)
    m = 0.5 * (p + q)
    tiny = 1e-12

    def kl(a, b):
        return ops.sum(a * (ops.log(ops.maximum(a, tiny)) - ops.log(ops.maximum(b, tiny))), axis=-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _checked_scores(scores, positives) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and positives as bool, both 1-D of one length, or ValueError."""
    scores_in = np.asarray(scores)
    if scores_in.dtype == bool or not (
        np.issubdtype(scores_in.dtype, np.integer) or np.issubdtype(scores_in.dtype, np.floating)
    ):
        raise ValueError(f"scores must be real numbers, got dtype {scores_in.dtype}")
    scores_in = scores_in.astype(np.float64)
    labels = np.asarray(positives)
    if scores_in.ndim != 1:
        raise ValueError(f"scores must be 1-D (one score per example), got shape {scores_in.shape}")
    if labels.shape != scores_in.shape:
        raise ValueError(f"positives has shape {labels.shape} but scores has shape {scores_in.shape}; they must match")
    if labels.dtype != bool:
        if not (np.issubdtype(labels.dtype, np.number) and np.isin(labels, (0, 1)).all()):
            raise ValueError("positives must be booleans (or 0/1): True for a positive (adversarial) example")
        labels = labels.astype(bool)
    finite = np.isfinite(scores_in)
    if not finite.all():
        raise ValueError(f"scores hold {int((~finite).sum())} non-finite value(s) (NaN or inf)")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise ValueError(
            f"a ROC curve needs both positive and negative examples, got {n_pos} positive(s) "
            f"and {labels.size - n_pos} negative(s)"
        )
    return scores_in, labels


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve, exactly, by the Mann–Whitney statistic (ties count ½).

    Raises:
        ValueError: If the scores are not finite real numbers, the shapes differ,
            positives are not booleans (or 0/1), or there is no positive or no
            negative example.
    """
    scores, positives = _checked_scores(scores, positives)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    ranks = stats.rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _most_likely_wrong_class(logits, labels):
    """argmax over classes other than y (the adaptive attack's common target)."""
    mask = ops.one_hot(labels, ops.shape(logits)[-1])
    return ops.cast(ops.argmax(logits - 1e9 * mask, axis=-1), "int32")


_PHASES = (
    ("robust_attack", "attack on the robust way"),
    ("non_robust_attack", "attack on the non-robust way"),
    ("standard_attack", "attack on the standard way"),
    ("adaptive_attack", "adaptive attack on the detector"),
)
"""The attacks [`evaluate`][aatk.evaluation.evaluate] runs on every batch, in this order: the
group of per-example results each one fills, and its name in the progress bar."""


def _phase_evaluators(model: ThreeWayModel, attack: PGD, adaptive: bool):
    """Compiled functions from one batch to per-example predictions and scores, one per phase.

    Returns:
        ``clean(x, y) -> (predictions, adaptive target)`` and a list of ``(group, step name,
        attacked(x, y, target) -> predictions)``, one per attack of
        [`_PHASES`][aatk.evaluation._PHASES] that is run. Each is compiled on its own, so that
        progress can be shown between them; they draw the attack's random starts in the order
        listed, batch by batch.
    """

    def predictions(x, ways=("standard", "robust", "non_robust")):
        logits = model.way_logits(x, ways=ways, training=False)
        out = {way: ops.argmax(value, axis=-1) for way, value in logits.items()}
        if "robust" in logits and "non_robust" in logits:
            out["score"] = detection_score(logits["robust"], logits["non_robust"])
        return out, logits

    def way_loss(way, labels):
        return lambda points: cross_entropy(model(points, training=False, way=way), labels)

    def clean(x, y):
        out, logits = predictions(x)
        # The adaptive attack's common target: the standard way's most likely wrong class.
        return out, _most_likely_wrong_class(logits["standard"], y)

    # One function (one code object) per phase: TensorFlow counts retracings per code object,
    # and three phases sharing one would look like a function retraced in a loop.
    def robust_attack(x, y, target):
        del target
        return predictions(attack.perturb(way_loss("robust", y), x), ("robust",))[0]

    def non_robust_attack(x, y, target):
        del target
        return predictions(attack.perturb(way_loss("non_robust", y), x), ("non_robust",))[0]

    def standard_attack(x, y, target):
        del target
        return predictions(attack.perturb(way_loss("standard", y), x))[0]

    def adaptive_attack(x, y, target):
        del y

        # Push both ways to the same wrong class, so that they agree and Eq. 12 sees nothing.
        def agreement_loss(points):
            logits = model.way_logits(points, ways=("robust", "non_robust"), training=False)
            return -(cross_entropy(logits["robust"], target) + cross_entropy(logits["non_robust"], target))

        return predictions(attack.perturb(agreement_loss, x))[0]

    functions = {
        "robust_attack": robust_attack,
        "non_robust_attack": non_robust_attack,
        "standard_attack": standard_attack,
        "adaptive_attack": adaptive_attack,
    }
    state = model.variables + attack.variables
    phases = [
        (group, step, backend.compile_function(functions[group], state=state))
        for group, step in _PHASES
        if adaptive or group != "adaptive_attack"
    ]
    return backend.compile_function(clean, state=model.variables), phases


_DATASET_KINDS = "a tf.data.Dataset of (x, y) batches or a tuple (x, y) of arrays"


def _check_dataset(dataset: Any) -> None:
    """Checks what can be checked of ``dataset`` before any batch is evaluated.

    Raises:
        ValueError: If it is neither kind [`evaluate`][aatk.evaluation.evaluate] takes, has no labels, or is a
            tuple whose inputs and labels differ in number.
    """
    if hasattr(dataset, "element_spec"):
        spec = dataset.element_spec
        if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
            raise ValueError(
                f"dataset yields batches without labels (element_spec {spec}); expected {_DATASET_KINDS}"
            )
        return
    if not (isinstance(dataset, tuple) and len(dataset) == 2):
        what = f"a tuple of {len(dataset)}" if isinstance(dataset, tuple) else type(dataset).__name__
        raise ValueError(f"dataset must be {_DATASET_KINDS}, got {what}")
    x, y = dataset
    for name, part in (("x", x), ("y", y)):
        if part is None or not (hasattr(part, "shape") or isinstance(part, (list, tuple))):
            raise ValueError(
                f"dataset must be {_DATASET_KINDS}; its {name} is {type(part).__name__}"
                + (" (labels are required: evaluation compares predictions with them)" if name == "y" else "")
            )
    if np.ndim(x) == 0 or np.ndim(y) == 0:
        raise ValueError(f"dataset's x and y must be arrays with a batch axis, got shapes {np.shape(x)} and {np.shape(y)}")
    if len(x) != len(y):
        raise ValueError(f"dataset has {len(x)} inputs but {len(y)} labels; expected one label per input")


def _batches(data, batch_size: int):
    """(x, y) batches of a dataset that passed `_check_dataset`."""
    if hasattr(data, "element_spec"):
        for batch in data:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
            yield x, y
        return
    x, y = data
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def _detection(clean: dict, adversarial: dict, labels: np.ndarray) -> dict:
    """RAD, raw and calibrated accuracy, AUC and evasion on the equal mixture of clean and adversarial."""
    detected_clean = clean["robust"] != clean["non_robust"]  # Eq. 12 on natural inputs
    detected_adv = adversarial["robust"] != adversarial["non_robust"]  # Eq. 12 on adversarial inputs
    is_adversarial = np.concatenate([np.zeros_like(labels, bool), np.ones_like(labels, bool)])
    detected = np.concatenate([detected_clean, detected_adv])
    standard = np.concatenate([clean["standard"], adversarial["standard"]])
    robust = np.concatenate([clean["robust"], adversarial["robust"]])
    mixture_labels = np.concatenate([labels, labels])
    calibrated = np.where(detected, robust, standard)
    return {
        "RAD": float(np.mean(detected == is_adversarial)),
        "raw_acc": float(np.mean(standard == mixture_labels)),
        "calibrated_acc": float(np.mean(calibrated == mixture_labels)),
        "AUC": roc_auc(np.concatenate([clean["score"], adversarial["score"]]), is_adversarial),
        "evasion": float(np.mean((adversarial["standard"] != labels) & ~detected_adv)),
    }


def evaluate(
    model: ThreeWayModel,
    dataset: Any,
    attack: PGD,
    *,
    adaptive: bool = True,
    batch_size: int = 256,
    progress: bool | Progress = False,
    verbose: bool = False,
) -> EvaluationReport:
    """Evaluates disentanglement of a three-way model under ``attack``.

    Every figure is a fraction of test examples (in [0, 1]) except DIA and DIA_s,
    differences of two such fractions (in [−1, 1]):

    * ``S``, ``R``, ``N``: clean accuracy of the standard, robust, non-robust way.
    * ``R_adv``: robust way's accuracy under an attack on the robust-way loss;
      ``N_adv``: non-robust way's accuracy under an attack on the non-robust-way
      loss; ``DIA = R_adv − N_adv`` (Sec. 2.5, Tables 1–3).
    * ``S_adv_s``, ``R_adv_s``, ``N_adv_s``: accuracy of each way on adversarial
      examples of the *standard-way* loss; ``DIA_s = R_adv_s − N_adv_s`` (Appendix C).
    * On the equal mixture of each natural example and its standard-way adversarial
      example (Table 4b): ``RAD``, the accuracy of the detector D(x) = [robust and
      non-robust predictions differ] (Eq. 12) at telling natural (D = 0) from
      adversarial (D = 1); ``raw_acc``, the standard way's accuracy on the mixture;
      ``calibrated_acc``, the accuracy when the robust way answers for inputs with
      D = 1 and the standard way otherwise (Sec. 3.3).
    * Beyond the paper: ``AUC``, the ROC AUC of the continuous detection score
      ([`detection_score`][aatk.evaluation.detection_score]) on the same mixture; ``evasion``, the fraction of
      adversarial examples that fool the standard way *and* pass the detector.
    * Adaptive attack (``adaptive=True``): PGD with the same budget that pushes the
      robust and the non-robust way to the *same* wrong class (the standard way's
      most likely wrong class), so that D sees agreement. ``S_adv_adaptive``,
      ``RAD_adaptive``, ``calibrated_acc_adaptive``, ``AUC_adaptive`` and
      ``evasion_adaptive`` are the figures above on the mixture of natural and
      adaptive examples. A detector is only as good as its worst attack.

    Args:
        model: The three-way model (evaluated in inference mode), or a
            [`aatk.baselines.CombinedOneWay`][aatk.baselines.CombinedOneWay] (ST+AT).
        dataset: A ``tf.data.Dataset`` of (x, y) batches, or a tuple (x, y) of arrays.
        attack: The test attack (e.g. Table 4a's configuration).
        adaptive: Also run the adaptive attack on the detector.
        batch_size: Batch size when ``dataset`` is a tuple of arrays.
        progress: Show a progress bar on standard error: the examples done and the attack
            under way (each way's attack, then the adaptive attack on the detector), with
            the time left. ``True``, ``False`` or a ``aatk.progress.Progress``
            (e.g. one labelled with the run and the attack's name).
        verbose: The same as ``progress=True`` (its former name).

    Returns:
        An [`EvaluationReport`][aatk.evaluation.EvaluationReport].

    Raises:
        ValueError: Before anything is evaluated, on a model that is not built, a
            ``dataset`` of another kind, without labels, or with more or fewer labels than
            inputs, or a ``batch_size`` that is not a positive integer; then, before each
            batch, as
            [`ThreeWayModel.validate_inputs`][aatk.model.ThreeWayModel.validate_inputs]
            (inputs outside the attack's bounds or the model's input range, non-finite
            inputs, bad labels); or on an empty dataset.
    """
    from aatk.baselines import CombinedOneWay  # local: aatk.baselines imports aatk.model and aatk.attacks

    if not isinstance(model, (ThreeWayModel, CombinedOneWay)):
        raise ValueError(
            f"model must be an aatk.ThreeWayModel or aatk.baselines.CombinedOneWay, got {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built: train it (fit), load a trained one, or build it for its inputs "
            "(model.build((None, *input_shape))) before evaluating it"
        )
    if not isinstance(attack, PGD):
        raise ValueError(f"attack must be an aatk.PGD, got {type(attack).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    reporter = as_progress(True if verbose and progress is False else progress)
    _check_dataset(dataset)
    evaluate_clean, phases = _phase_evaluators(model, attack, adaptive)
    collected: dict = {}
    labels_seen = []
    total = None if hasattr(dataset, "element_spec") else len(dataset[1])
    with reporter.bar(total, what="evaluate", unit="examples") as bar:
        done = 0
        for x, y in _batches(dataset, batch_size):
            model.validate_inputs(x, y)
            attack.check_inputs(x)
            y = np.asarray(ops.convert_to_numpy(y)).reshape(-1).astype(np.int32)
            x, y_tensor = ops.convert_to_tensor(x, dtype="float32"), ops.convert_to_tensor(y)
            bar.update(done, step="clean inputs")
            clean, target = evaluate_clean(x, y_tensor)
            outputs = {"clean": clean}
            for index, (group, step, attacked) in enumerate(phases):
                bar.update(done + len(y) * (index + 0.5) / (len(phases) + 0.5), step=step)
                outputs[group] = attacked(x, y_tensor, target)
            for group, values in outputs.items():
                for key, value in values.items():
                    collected.setdefault(group, {}).setdefault(key, []).append(np.asarray(ops.convert_to_numpy(value)))
            labels_seen.append(y)
            done += len(y)
            bar.update(done)
    if not labels_seen:
        raise ValueError("dataset is empty")
    labels = np.concatenate(labels_seen)
    out = {group: {key: np.concatenate(parts) for key, parts in values.items()} for group, values in collected.items()}

    def accuracy(predictions):
        return float(np.mean(predictions == labels))

    clean = out["clean"]
    figures = {
        "S": accuracy(clean["standard"]),
        "R": accuracy(clean["robust"]),
        "N": accuracy(clean["non_robust"]),
        "R_adv": accuracy(out["robust_attack"]["robust"]),
        "N_adv": accuracy(out["non_robust_attack"]["non_robust"]),
    }
    figures["DIA"] = figures["R_adv"] - figures["N_adv"]
    standard_attack = out["standard_attack"]
    figures.update(
        S_adv_s=accuracy(standard_attack["standard"]),
        R_adv_s=accuracy(standard_attack["robust"]),
        N_adv_s=accuracy(standard_attack["non_robust"]),
    )
    figures["DIA_s"] = figures["R_adv_s"] - figures["N_adv_s"]
    figures.update(_detection(clean, standard_attack, labels))
    if adaptive:
        adaptive_attack = out["adaptive_attack"]
        detection = _detection(clean, adaptive_attack, labels)
        figures["S_adv_adaptive"] = accuracy(adaptive_attack["standard"])
        for key in ("RAD", "calibrated_acc", "AUC", "evasion"):
            figures[f"{key}_adaptive"] = detection[key]
    return EvaluationReport(figures, samples=int(labels.size), attack=attack, details={"labels": labels, **out})
