"""ROC curves of adversarial detection by the disagreement of the two ways.

Eq. 12's rule flags an input as adversarial when the robust and the non-robust
way predict different classes; [`aatk.evaluation.detection_score`][aatk.evaluation.detection_score] is its
continuous version (the Jensen–Shannon divergence of the two softmaxes).
Sweeping a threshold over that score gives a ROC curve, whose area is the
``AUC`` figure of [`aatk.evaluate`][aatk.evaluation.evaluate].

Paper: Section 2.4 (Eq. 12), Section 3.3 and Table 4b (natural + standard-way
adversarial mixture).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from aatk.evaluation import EvaluationReport, _checked_scores

__all__ = ["roc_curve", "detection_curves"]


def roc_curve(scores: ArrayLike, positives: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact ROC curve of a score that is higher for positives.

    At threshold t an example is called positive when its score is ≥ t. The
    thresholds are +inf (nothing called positive: the point (0, 0)) followed by
    every distinct score in decreasing order (the last calls everything
    positive: the point (1, 1)). Examples with tied scores cross the threshold
    together, so a tie is one diagonal step; hence the trapezoidal area under the
    curve is exactly the Mann–Whitney AUC with ties counted ½
    ([`aatk.evaluation.roc_auc`][aatk.evaluation.roc_auc]).

    Paper: beyond the paper, which reports the thresholded rule of Eq. 12 only (RAD,
    Table 4b); Eq. 12 is one point of this curve when the score is the disagreement.

    Args:
        scores: Real scores, shape (n,), larger meaning "more likely positive".
        positives: Booleans (or 0/1), shape (n,): True for positive examples.

    Returns:
        ``(fpr, tpr, thresholds)``: float64 arrays of equal length (distinct scores + 1);
        fpr and tpr are non-decreasing from 0 to 1, thresholds strictly decreasing.

    Raises:
        ValueError: On non-real or non-finite scores, non-boolean labels, a shape
            mismatch or a non-1-D input, or without both positives and negatives.

    Examples:
        >>> fpr, tpr, thresholds = roc_curve([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
        >>> thresholds.tolist()
        [inf, 0.8, 0.4, 0.35, 0.1]
    """
    scores, labels = _checked_scores(scores, positives)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # The last index of each run of equal scores: the curve moves once per distinct score.
    last_of_run = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    true_positives = np.cumsum(sorted_labels)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    fpr = np.r_[0, false_positives] / n_neg
    tpr = np.r_[0, true_positives] / n_pos
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def _trapezoid_area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the piecewise-linear curve through the points (fpr, tpr)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _curve(report: EvaluationReport, group: str, rad_key: str) -> dict:
    details = report.details
    clean_scores = np.asarray(details["clean"]["score"])
    adversarial_scores = np.asarray(details[group]["score"])
    scores = np.concatenate([clean_scores, adversarial_scores])
    is_adversarial = np.concatenate([np.zeros(clean_scores.shape, bool), np.ones(adversarial_scores.shape, bool)])
    fpr, tpr, thresholds = roc_curve(scores, is_adversarial)
    return {
        "fpr": fpr,
        "tpr": tpr,
        "thresholds": thresholds,
        "auc": _trapezoid_area(fpr, tpr),
        "rad": float(report[rad_key]) if rad_key in report else float("nan"),
    }


def detection_curves(report: EvaluationReport) -> dict:
    """ROC curves of the continuous detection score, from an evaluation report.

    Positives are the adversarial halves of the equal mixtures [`aatk.evaluate`][aatk.evaluation.evaluate]
    scores: each natural example with its standard-way adversarial example
    (``"naive"``, Table 4b's setting, an attack that ignores the detector), and,
    if the report ran it, with its adaptive adversarial example (``"adaptive"``,
    the attack that pushes both ways to the same wrong class).

    Paper: Section 3.3 and Table 4b (RAD on the natural + adversarial mixture);
    the curve and its AUC go beyond the paper.

    Args:
        report: An [`EvaluationReport`][aatk.evaluation.EvaluationReport] from
            [`aatk.evaluate`][aatk.evaluation.evaluate], which keeps the
            per-example scores in ``report.details``.

    Returns:
        A dict from ``"naive"`` (and ``"adaptive"``, when present) to a dict with
        ``"fpr"``, ``"tpr"``, ``"thresholds"`` (see
        [`roc_curve`][aatk.analysis.detection.roc_curve]), ``"auc"`` (the trapezoidal area:
        equals the report's ``AUC`` / ``AUC_adaptive``) and
        ``"rad"`` (the report's ``RAD`` / ``RAD_adaptive``: the accuracy of Eq. 12's
        thresholded rule on the same mixture; NaN if the report lacks it).

    Raises:
        ValueError: If ``report`` is not an EvaluationReport, has no details, or its
            details lack the detection scores; or as [`roc_curve`][aatk.analysis.detection.roc_curve].
    """
    if not isinstance(report, EvaluationReport):
        raise ValueError(f"report must be an aatk.EvaluationReport (from aatk.evaluate), got {type(report).__name__}")
    details = report.details
    if not details:
        raise ValueError("the report has no details (per-example scores); use a report returned by aatk.evaluate")
    for group in ("clean", "standard_attack"):
        if "score" not in details.get(group, {}):
            raise ValueError(f"the report's details lack {group!r} detection scores (details['{group}']['score'])")
    curves = {"naive": _curve(report, "standard_attack", "RAD")}
    if "adaptive_attack" in details:
        if "score" not in details["adaptive_attack"]:
            raise ValueError("the report's details lack 'adaptive_attack' detection scores")
        curves["adaptive"] = _curve(report, "adaptive_attack", "RAD_adaptive")
    return curves
