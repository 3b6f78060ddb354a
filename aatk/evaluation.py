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

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops
from scipy import stats

from aatk import backend
from aatk.attacks.base import Attack, way_logits_function
from aatk.model import ThreeWayModel
from aatk.objectives import cross_entropy
from aatk.progress import Progress, as_progress

__all__ = ["EvaluationReport", "evaluate", "attack_list", "attack_labels", "detection_score", "roc_auc"]

_GROUPS = (
    ("Clean", ("S", "R", "N")),
    ("Way-specific attack", ("R_adv", "N_adv", "DIA")),
    ("Standard-way attack (App. C)", ("S_adv_s", "R_adv_s", "N_adv_s", "DIA_s")),
    ("Detection, natural + standard-way adversarial (Table 4b)", ("RAD", "raw_acc", "calibrated_acc", "AUC", "evasion")),
    ("Adaptive attack on the detector", ("S_adv_adaptive", "RAD_adaptive", "calibrated_acc_adaptive", "AUC_adaptive", "evasion_adaptive")),
)


_PER_ATTACK_KEYS = ("R_adv", "N_adv", "DIA", "S_adv_s", "R_adv_s", "N_adv_s", "DIA_s")
"""The figures reported for each attack of a worst-case evaluation."""


class EvaluationReport(dict):
    """The figures of [`evaluate`][aatk.evaluation.evaluate] (a dict of floats), printable like the paper's tables.

    Attributes:
        samples: Number of test examples evaluated.
        attack: The attack used, or the list of attacks of a worst-case evaluation.
        per_attack: For a list of attacks, each attack's own figures by its label
            ([`attack_labels`][aatk.evaluation.attack_labels]): ``R_adv``, ``N_adv``, ``DIA``,
            ``S_adv_s``, ``R_adv_s``, ``N_adv_s``, ``DIA_s`` under that attack alone, or, with
            ``cascade``, the worst case over it and every attack before it.
        cascade: Whether each attack ran only on the examples the earlier ones had not fooled.
        details: Per-example arrays behind the figures, for plots (ROC curves,
            confusion of the ways): ``details["labels"]`` (samples,) and, for each
            input group — ``"clean"``, ``"robust_attack"``, ``"non_robust_attack"``,
            ``"standard_attack"`` and, if run, ``"adaptive_attack"`` — a dict of the
            predicted class of each way evaluated on it (``"standard"``, ``"robust"``,
            ``"non_robust"``) and, where both the robust and the non-robust way were
            evaluated, the detection ``"score"`` ([`detection_score`][aatk.evaluation.detection_score]).
            With several attacks these groups hold the per-example worst case, and
            ``details["attacks"][label]`` each attack's own groups, with ``"attacked"``
            marking the examples it ran on (all of them unless ``cascade``; −1 predictions elsewhere)
            and ``details["worst_attack"][group]`` the index of the attack each example's
            worst case comes from.
    """

    def __init__(
        self,
        figures: dict,
        *,
        samples: int,
        attack: Attack | list[Attack],
        details: dict | None = None,
        per_attack: dict[str, dict[str, float]] | None = None,
        cascade: bool = False,
    ) -> None:
        super().__init__(figures)
        self.samples = samples
        self.attack = attack
        self.details = details if details is not None else {}
        self.per_attack = per_attack if per_attack is not None else {}
        self.cascade = cascade

    @property
    def attacks(self) -> list[Attack]:
        """The attacks evaluated, in order (one for a single attack)."""
        return list(self.attack) if isinstance(self.attack, (list, tuple)) else [self.attack]

    def describe_attacks(self) -> str:
        """One line naming the attack, or the attacks of a worst case and how they were run."""
        if len(self.attacks) == 1:
            return f"Attack: {self.attacks[0]!r}"
        how = (
            "each on the examples every earlier one failed on (cascade)" if self.cascade
            else "each on every example"
        )
        return "Worst case per example over " + "; ".join(repr(a) for a in self.attacks) + f" ({how})"

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
        lines = [f"{self.describe_attacks()}; {self.samples} test examples.", "", "| group | figure | % |", "|---|---|---|"]
        for group, keys in _GROUPS:
            for key in keys:
                if key in self:
                    lines.append(f"| {group} | {key} | {100 * self[key]:.1f} |")
        if self.per_attack:
            keys = [k for k in _PER_ATTACK_KEYS if any(k in f for f in self.per_attack.values())]
            what = "worst case up to and including each attack" if self.cascade else "each attack alone"
            lines += ["", f"Per attack ({what}), %:", "", "| attack | " + " | ".join(keys) + " |",
                      "|---|" + "---|" * len(keys)]
            for label, figures in self.per_attack.items():
                cells = " | ".join(f"{100 * figures[k]:.1f}" if k in figures else "–" for k in keys)
                lines.append(f"| {label} | {cells} |")
            lines.append("| **worst case** | " + " | ".join(f"**{100 * self[k]:.1f}**" for k in keys) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = [f"{self.samples} test examples; {self.describe_attacks()}"]
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


_WAY_GROUPS = (
    ("robust_attack", "robust", ("robust",)),
    ("non_robust_attack", "non_robust", ("non_robust",)),
    ("standard_attack", "standard", ("standard", "robust", "non_robust")),
)
"""The attacks [`evaluate`][aatk.evaluation.evaluate] runs with every attack it is given: the group of
per-example results each fills, the way it attacks, and the ways evaluated on its examples."""

_STEP_NAMES = {
    "robust_attack": "attack on the robust way",
    "non_robust_attack": "attack on the non-robust way",
    "standard_attack": "attack on the standard way",
    "adaptive_attack": "adaptive attack on the detector",
}


def attack_list(attack: Attack | Any) -> list[Attack]:
    """``attack`` as a non-empty list of aatk attacks (one attack, or a list or tuple of them).

    Raises:
        ValueError: On anything else, naming what was given.
    """
    attacks = [attack] if isinstance(attack, Attack) else list(attack) if isinstance(attack, (list, tuple)) else None
    if not attacks:
        raise ValueError(
            "attack must be an aatk attack (aatk.PGD, aatk.APGD, aatk.SquareAttack) or a non-empty list of them, "
            f"got {attack!r}"
        )
    for index, item in enumerate(attacks):
        if not isinstance(item, Attack):
            raise ValueError(f"attack[{index}] must be an aatk attack (PGD, APGD, SquareAttack), got {type(item).__name__}")
    return attacks


def attack_labels(attacks: list[Attack]) -> list[str]:
    """Short, distinct labels of ``attacks`` for reports (``"PGD-40"``, ``"APGD-T"``; ``" #2"`` added to repeats)."""
    labels, seen = [], {}
    for item in attacks:
        label = item.label
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def _predictions(model, x, ways=("standard", "robust", "non_robust")):
    """Per-example predicted class of ``ways`` on ``x`` and, with both the robust and the
    non-robust way, the detection score; plus the logits."""
    logits = model.way_logits(x, ways=ways, training=False)
    out = {way: ops.argmax(value, axis=-1) for way, value in logits.items()}
    if "robust" in logits and "non_robust" in logits:
        out["score"] = detection_score(logits["robust"], logits["non_robust"])
    return out, logits


def _clean_evaluator(model):
    """Compiled ``(x, y) -> predictions`` on the clean inputs, with the adaptive attack's ``"target"``."""

    def clean(x, y):
        out, logits = _predictions(model, x)
        # The adaptive attack's common target: the standard way's most likely wrong class.
        return {**out, "target": _most_likely_wrong_class(logits["standard"], y)}

    return backend.compile_function(clean, state=model.variables)


def _way_attack_evaluator(model, attack: Attack, group: str):
    """Compiled ``(x, y) -> predictions`` on ``attack``'s examples of one group of `_WAY_GROUPS`."""
    _, way, predicted_ways = next(item for item in _WAY_GROUPS if item[0] == group)
    logits_fn = way_logits_function(model, way)

    def attacked_predictions(x, y):
        return _predictions(model, attack.run(logits_fn, x, y), predicted_ways)[0]

    return backend.compile_function(attacked_predictions, state=model.variables + attack.variables)


def _adaptive_evaluator(model, attack: Attack):
    """Compiled ``(x, target) -> predictions`` of the adaptive attack on the detector."""

    def adaptive_attack(x, target):
        # Push both ways to the same wrong class, so that they agree and Eq. 12 sees nothing.
        def agreement_loss(points):
            logits = model.way_logits(points, ways=("robust", "non_robust"), training=False)
            return -(cross_entropy(logits["robust"], target) + cross_entropy(logits["non_robust"], target))

        return _predictions(model, attack.perturb(agreement_loss, x))[0]

    return backend.compile_function(adaptive_attack, state=model.variables + attack.variables)


def _run_batched(function, inputs: tuple, indices: np.ndarray, batch_size: int, bar, done: float, step: str,
                 *, checkpoint: _Checkpoint | None = None) -> dict:
    """``function`` on the examples ``indices`` of ``inputs``, in batches of ``batch_size``.

    The last batch is padded (with its last example) to the full size, so that every call
    has one shape and each function is compiled once; the padding's outputs are dropped.
    With a ``checkpoint``, a step it holds as finished is not computed again, a step it holds
    in part continues after its last saved batch, and every batch is saved.

    Returns:
        Output name → array over ``indices``.
    """
    if checkpoint is not None:
        finished = checkpoint.begin_step()
        if finished is not None:
            bar.restore(done + len(indices), step=step)
            return finished
        first, outputs = checkpoint.partial_outputs()
        if first:
            bar.restore(done + first, step=step)
    else:
        first, outputs = 0, {}
    for start in range(first, len(indices), batch_size):
        chosen = indices[start : start + batch_size]
        padded = np.concatenate([chosen, np.repeat(chosen[-1:], batch_size - len(chosen))]) if len(indices) > batch_size else chosen
        bar.update(done + start, step=step)
        result = function(*(ops.convert_to_tensor(part[padded]) for part in inputs))
        for key, value in result.items():
            outputs.setdefault(key, []).append(np.asarray(ops.convert_to_numpy(value))[: len(chosen)])
        if checkpoint is not None and start + batch_size < len(indices):
            checkpoint.save_partial(outputs, start + len(chosen))
    bar.update(done + len(indices), step=step)
    outputs = {key: np.concatenate(parts) for key, parts in outputs.items()}
    if checkpoint is not None:
        checkpoint.finish_step(outputs)
    return outputs


class _Checkpoint:
    """Where an interrupted ``evaluate`` resumes: one ``.npz`` file.

    An evaluation is a fixed sequence of steps (the clean inputs, then each attack on each
    way's loss, then the adaptive attack), each run in batches. The file holds the outputs of
    every finished step, those of the batches done in the current one, and the state of every
    attack's seed generator at that moment, so that the resumed evaluation draws the random
    numbers an uninterrupted one would and ends with the same figures. A fingerprint of the
    model's weights, the data, the attacks' settings and the batch size ties the file to one
    evaluation. Steps call ``begin_step`` in order.
    """

    def __init__(self, path: str | os.PathLike, *, fingerprint: str, attacks: list[Attack]) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.seed_states = [variable for attack in attacks for variable in attack.variables]
        self.finished: dict[int, dict[str, np.ndarray]] = {}
        self.saved_step, self.saved_position, self.saved_partial = 0, 0, {}
        self.current = -1
        self.resumed = self.path.exists()
        if self.resumed:
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                content = {name: data[name] for name in data.files}
            fingerprint = str(content["fingerprint"])
            step, position = int(content["step"]), int(content["position"])
            states = content["seed_states"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"the evaluation checkpoint {self.path} cannot be read ({error}); remove it to start the evaluation over"
            ) from None
        if fingerprint != self.fingerprint:
            raise ValueError(
                f"the evaluation checkpoint {self.path} was written by another evaluation (other model weights, "
                "test examples, attack settings or batch size); remove it to start this evaluation over, or "
                "run the evaluation that wrote it again to finish that one"
            )
        if states.shape != (len(self.seed_states), 2):
            raise ValueError(f"the evaluation checkpoint {self.path} is damaged (seed states of shape {states.shape}); "
                             "remove it to start the evaluation over")
        for name, value in content.items():
            index, _, key = name.partition(".")
            if not (index.startswith("step") and key):
                continue
            number = int(index[4:])
            if number < step:
                self.finished.setdefault(number, {})[key] = value
            else:
                self.saved_partial[key] = value
        self.saved_step, self.saved_position = step, position
        for variable, value in zip(self.seed_states, states):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def summary(self, steps: int) -> str:
        """How far the loaded evaluation got, in words (of ``steps`` steps in all)."""
        text = f"{self.saved_step} of {steps} steps done"
        return text + (f", {self.saved_position} examples into the next" if self.saved_position else "")

    def begin_step(self) -> dict | None:
        """Moves to the next step: its outputs if the file holds it finished, else None."""
        self.current += 1
        if self.current < self.saved_step:
            return {key: value.copy() for key, value in self.finished.get(self.current, {}).items()}
        return None

    def restored_step(self) -> bool:
        """Whether the current step came whole from the file."""
        return self.current < self.saved_step

    def partial_outputs(self) -> tuple[int, dict[str, list]]:
        """The examples of the current step already done, and their outputs (as batch lists)."""
        if self.current == self.saved_step and self.saved_position:
            return self.saved_position, {key: [value] for key, value in self.saved_partial.items()}
        return 0, {}

    def save_partial(self, outputs: dict[str, list], position: int) -> None:
        """Saves the current step's outputs up to ``position`` examples."""
        self._write(self.current, position, {key: np.concatenate(parts) for key, parts in outputs.items()})

    def finish_step(self, outputs: dict[str, np.ndarray]) -> None:
        """Saves the current step as finished (an empty step, e.g. no survivor to attack, too)."""
        self.finished[self.current] = {key: value.copy() for key, value in outputs.items()}
        self._write(self.current + 1, 0, {})

    def skip_step(self) -> None:
        """A step with nothing to compute (no examples): moves past it and records it finished."""
        if self.begin_step() is None:
            self.finish_step({})

    def _write(self, step: int, position: int, partial: dict[str, np.ndarray]) -> None:
        arrays = {
            "fingerprint": np.array(self.fingerprint),
            "step": np.array(step),
            "position": np.array(position),
            "seed_states": np.array([ops.convert_to_numpy(variable) for variable in self.seed_states],
                                    dtype=np.int64).reshape(len(self.seed_states), 2),
        }
        for index, outputs in self.finished.items():
            arrays.update({f"step{index}.{key}": value for key, value in outputs.items()})
        arrays.update({f"step{step}.{key}": value for key, value in partial.items()})
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def remove(self) -> None:
        """Deletes the file: the evaluation finished."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _fingerprint(model, attacks: list[Attack], *, x: np.ndarray, labels: np.ndarray, cascade: bool,
                 adaptive: bool, batch_size: int) -> str:
    """A digest of everything an evaluation's outputs depend on (for ``_Checkpoint``)."""
    settings = {
        "attacks": [[type(attack).__name__, attack.get_config()] for attack in attacks],
        "cascade": bool(cascade), "adaptive": bool(adaptive), "batch_size": int(batch_size),
        "model": type(model).__name__, "dtype_policy": getattr(model.dtype_policy, "name", None),
        "backend": keras.backend.backend(),
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(ops.convert_to_numpy(weight)).tobytes())
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def _worst_case(runs: list[dict], way: str, labels: np.ndarray) -> tuple[dict, np.ndarray]:
    """The per-example worst case over attacks of one group.

    Each example takes the outputs (every way's prediction, the score) of the first attack
    whose example fooled ``way``, or of the first attack if none did: all ways are then
    evaluated on one adversarial example per input.

    Args:
        runs: Per attack, in order, the group's outputs (arrays over all examples, −1 where the
            attack did not run) and ``"attacked"`` (bool).
        way: The way the group attacks.
        labels: True labels.

    Returns:
        The worst-case outputs, and the index of the attack each example's come from.
    """
    chosen = np.full(labels.shape, -1)
    for index, run in enumerate(runs):
        fooled = run["attacked"] & (run[way] != labels)
        chosen[(chosen == -1) & fooled] = index
    chosen[chosen == -1] = 0
    rows = np.arange(labels.size)
    keys = [key for key in runs[0] if key != "attacked"]
    return {key: np.stack([run[key] for run in runs])[chosen, rows] for key in keys}, chosen


def _attacked_figures(groups: dict, labels: np.ndarray) -> dict:
    """R_adv, N_adv, DIA and the standard-way attack's figures from the three groups' predictions."""

    def accuracy(predictions):
        return float(np.mean(predictions == labels))

    figures = {
        "R_adv": accuracy(groups["robust_attack"]["robust"]),
        "N_adv": accuracy(groups["non_robust_attack"]["non_robust"]),
    }
    figures["DIA"] = figures["R_adv"] - figures["N_adv"]
    standard_attack = groups["standard_attack"]
    figures.update(
        S_adv_s=accuracy(standard_attack["standard"]),
        R_adv_s=accuracy(standard_attack["robust"]),
        N_adv_s=accuracy(standard_attack["non_robust"]),
    )
    figures["DIA_s"] = figures["R_adv_s"] - figures["N_adv_s"]
    return figures


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


def _gather(dataset, batch_size: int, check=None) -> tuple[np.ndarray, np.ndarray]:
    """The inputs (float32) and labels (int32) of a dataset that passed `_check_dataset`, as two
    arrays, each batch first passed to ``check(x, y)`` (which raises on bad input).

    Raises:
        ValueError: From ``check``, or on an empty dataset.
    """
    inputs, labels = [], []
    for x, y in _batches(dataset, batch_size):
        if check is not None:
            check(x, y)
        inputs.append(np.asarray(ops.convert_to_numpy(x), dtype=np.float32))
        labels.append(np.asarray(ops.convert_to_numpy(y)).reshape(-1).astype(np.int32))
    if not labels:
        raise ValueError("dataset is empty")
    return np.concatenate(inputs), np.concatenate(labels)


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
    attack: Attack | list[Attack],
    *,
    cascade: bool = False,
    adaptive: bool = True,
    batch_size: int = 256,
    checkpoint: str | os.PathLike | None = None,
    progress: bool | Progress = False,
    verbose: bool = False,
) -> EvaluationReport:
    """Evaluates disentanglement of a three-way model under ``attack`` (or the worst case over several).

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
      adaptive examples. A detector is only as good as its worst attack. It needs an
      attack that can maximise any loss (a ``perturb`` method: PGD or APGD) and uses the
      first such attack of the list; see [`aatk.detector`][aatk.detector] for stronger ones.

    With a list of attacks every figure is the **per-example worst case**: an example counts
    as correct for a way only if it survives every attack on that way, and for the
    standard-way attack every way is evaluated on the first example (in the attacks' order)
    that fooled the standard way. ``report.per_attack`` holds each attack's own figures
    beside it. The worst case is never above any single attack's figure.

    Args:
        model: The three-way model (evaluated in inference mode), or a
            [`aatk.baselines.CombinedOneWay`][aatk.baselines.CombinedOneWay] (ST+AT).
        dataset: A ``tf.data.Dataset`` of (x, y) batches, or a tuple (x, y) of arrays.
        attack: The test attack (e.g. Table 4a's configuration), or a list of attacks whose
            per-example worst case is wanted (e.g. APGD-CE, APGD-T and the Square Attack).
        cascade: Run each attack of a list only on the examples (per way) that every earlier
            attack failed to fool, as AutoAttack does: the worst case is the same and costs
            far less, but ``per_attack`` then holds the worst case up to each attack instead
            of each attack's own figure.
        adaptive: Also run the adaptive attack on the detector.
        batch_size: Examples per batch of every attack (the dataset is gathered into memory first).
        checkpoint: A file (``.npz``) where the evaluation saves its progress after every
            batch, so that an interrupted one resumes: called again with the same model,
            data, attacks and settings, ``evaluate`` continues after the last saved batch,
            restores the attacks' random state and returns the figures an uninterrupted
            evaluation would. The file is removed when the evaluation finishes. Default: none.
        progress: Show a progress bar on standard error: the examples done and the attack
            under way (each way's attack, then the adaptive attack on the detector), with
            the time left. It counts attacked examples: each example once per way's attack and
            per attack of a list. ``True``, ``False`` or a ``aatk.progress.Progress``
            (e.g. one labelled with the run and the attack's name).
        verbose: The same as ``progress=True`` (its former name).

    Returns:
        An [`EvaluationReport`][aatk.evaluation.EvaluationReport].

    Raises:
        ValueError: Before anything is evaluated, on a model that is not built, a
            ``dataset`` of another kind, without labels, or with more or fewer labels than
            inputs, an ``attack`` that is not an aatk attack or a non-empty list of them,
            ``adaptive`` without an attack that can maximise any loss, or a ``batch_size``
            that is not a positive integer; then, before each
            batch, as
            [`ThreeWayModel.validate_inputs`][aatk.model.ThreeWayModel.validate_inputs]
            (inputs outside the attack's bounds or the model's input range, non-finite
            inputs, bad labels); or on an empty dataset; then, before any attack, on a
            ``checkpoint`` that is not a path, sits in a missing folder, cannot be read, or
            was written by another evaluation (other weights, examples, attacks or batch size).
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
    attacks = attack_list(attack)
    perturbing = next((item for item in attacks if hasattr(item, "perturb")), None)
    if adaptive and perturbing is None:
        raise ValueError(
            "adaptive=True needs an attack that maximises any loss (aatk.PGD or aatk.APGD) among the attacks; "
            "pass adaptive=False or add one"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise ValueError(f"checkpoint must be a file path (str or os.PathLike) or None, got {type(checkpoint).__name__}")
    if checkpoint is not None and not Path(checkpoint).parent.is_dir():
        raise ValueError(f"checkpoint {checkpoint}: its folder {Path(checkpoint).parent} does not exist")
    reporter = as_progress(True if verbose and progress is False else progress)
    _check_dataset(dataset)

    def check(x, y):
        model.validate_inputs(x, y)
        for item in attacks:
            item.check_inputs(x)

    x_all, labels = _gather(dataset, batch_size, check)
    count = labels.size
    every = np.arange(count)
    names = attack_labels(attacks)
    phases = len(attacks) * len(_WAY_GROUPS) + (1 if adaptive else 0)
    saved = None
    if checkpoint is not None:
        saved = _Checkpoint(checkpoint, attacks=attacks, fingerprint=_fingerprint(
            model, attacks, x=x_all, labels=labels, cascade=cascade, adaptive=adaptive, batch_size=batch_size))
        if saved.resumed:
            reporter.note(f"resuming the evaluation saved in {checkpoint}: {saved.summary(phases + 1)}")
    runs: dict = {group: [] for group, _, _ in _WAY_GROUPS}
    with reporter.bar(count * (phases + 1), what="evaluate", unit="attacked examples") as bar:
        clean = _run_batched(_clean_evaluator(model), (x_all, labels), every, batch_size, bar, 0, "clean inputs",
                             checkpoint=saved)
        target = clean.pop("target")
        done = count
        for item, name in zip(attacks, names):
            for group, way, _ in _WAY_GROUPS:
                if cascade and runs[group]:
                    survivors = np.ones(count, bool)
                    for run in runs[group]:
                        survivors &= ~(run["attacked"] & (run[way] != labels))
                    indices = every[survivors]
                else:
                    indices = every
                step = f"{name}: {_STEP_NAMES[group]}" if len(attacks) > 1 else _STEP_NAMES[group]
                if indices.size:
                    outputs = _run_batched(_way_attack_evaluator(model, item, group), (x_all, labels), indices,
                                           batch_size, bar, done, step, checkpoint=saved)
                else:
                    outputs = {}
                    if saved is not None:
                        saved.skip_step()
                run = {"attacked": np.zeros(count, bool)}
                run["attacked"][indices] = True
                # Outputs where the attack ran; elsewhere −1 (NaN scores). An attack that had no
                # survivor to run on gets the keys of the first attack's run, all unset.
                shapes = outputs or {key: value[:0] for key, value in runs[group][0].items() if key != "attacked"}
                for key, value in shapes.items():
                    full = np.full(count, -1, dtype=value.dtype) if key != "score" else np.full(count, np.nan, value.dtype)
                    full[indices] = value
                    run[key] = full
                runs[group].append(run)
                done += count
                if saved is not None and saved.restored_step():
                    bar.restore(done)  # the examples this step skipped (cascade) were restored too
        out = {"clean": clean}
        worst_attack = {}
        for group, way, _ in _WAY_GROUPS:
            out[group], worst_attack[group] = _worst_case(runs[group], way, labels)
        if adaptive:
            out["adaptive_attack"] = _run_batched(
                _adaptive_evaluator(model, perturbing), (x_all, target), every, batch_size, bar, done,
                _STEP_NAMES["adaptive_attack"], checkpoint=saved,
            )
    if saved is not None:
        saved.remove()

    def accuracy(predictions):
        return float(np.mean(predictions == labels))

    figures = {"S": accuracy(clean["standard"]), "R": accuracy(clean["robust"]), "N": accuracy(clean["non_robust"])}
    figures.update(_attacked_figures(out, labels))
    figures.update(_detection(clean, out["standard_attack"], labels))
    if adaptive:
        adaptive_attack = out["adaptive_attack"]
        detection = _detection(clean, adaptive_attack, labels)
        figures["S_adv_adaptive"] = accuracy(adaptive_attack["standard"])
        for key in ("RAD", "calibrated_acc", "AUC", "evasion"):
            figures[f"{key}_adaptive"] = detection[key]
    details = {"labels": labels, **out}
    per_attack = {}
    if len(attacks) > 1:
        details["attacks"] = {name: {group: runs[group][index] for group in runs} for index, name in enumerate(names)}
        details["worst_attack"] = worst_attack
        for index, name in enumerate(names):
            if cascade:
                groups = {group: _worst_case(runs[group][: index + 1], way, labels)[0] for group, way, _ in _WAY_GROUPS}
            else:
                groups = {group: runs[group][index] for group in runs}
            per_attack[name] = _attacked_figures(groups, labels)
    return EvaluationReport(
        figures, samples=int(count), attack=attacks[0] if len(attacks) == 1 and isinstance(attack, Attack) else attacks,
        details=details, per_attack=per_attack, cascade=bool(cascade) and len(attacks) > 1,
    )
