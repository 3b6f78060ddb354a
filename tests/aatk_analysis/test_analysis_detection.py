"""aatk.analysis.detection: exact ROC curves and the detection curves of an evaluation report."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aatk
from aatk import PGD, EvaluationReport
from aatk.analysis import detection_curves, roc_curve
from aatk.evaluation import roc_auc
from analysis_testutils import tiny_model


def _area(fpr, tpr):
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


# --- roc_curve -----------------------------------------------------------------------------


def test_hand_computed_curve():
    fpr, tpr, thresholds = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert _area(fpr, tpr) == 0.75 == roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])


def test_ties_are_one_diagonal_step():
    # One positive and one negative tied at 1, the same at 0: the curve is the diagonal, AUC ½.
    fpr, tpr, thresholds = roc_curve([1.0, 1.0, 0.0, 0.0], [True, False, True, False])
    np.testing.assert_array_equal(fpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(thresholds, [np.inf, 1.0, 0.0])
    assert _area(fpr, tpr) == 0.5
    # All scores equal: from (0, 0) straight to (1, 1).
    fpr, tpr, _ = roc_curve(np.zeros(5), [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 1.0])


def test_perfect_and_inverted_detectors():
    fpr, tpr, _ = roc_curve([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert _area(fpr, tpr) == 1.0 and tpr[fpr == 0].max() == 1.0
    fpr, tpr, _ = roc_curve([0.1, 0.2, 0.8, 0.9], [True, True, False, False])
    assert _area(fpr, tpr) == 0.0


@st.composite
def scored_examples(draw):
    n = draw(st.integers(2, 40))
    positives = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda p: 0 < sum(p) < len(p)))
    # Few distinct values force ties; a float alternative checks the general case.
    element = draw(st.sampled_from([st.integers(0, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False)]))
    scores = draw(st.lists(element, min_size=n, max_size=n))
    return np.array(scores), np.array(positives)


@settings(deadline=None, max_examples=150)
@given(scored_examples())
def test_area_equals_mann_whitney_auc_and_curve_is_well_formed(example):
    scores, positives = example
    fpr, tpr, thresholds = roc_curve(scores, positives)
    assert _area(fpr, tpr) == pytest.approx(roc_auc(scores, positives), abs=1e-12)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert thresholds[0] == np.inf and (np.diff(thresholds) < 0).all()
    assert len(thresholds) == len(np.unique(scores)) + 1
    # Each point is the rate of examples scored at or above its threshold.
    for f, t, threshold in zip(fpr[1:], tpr[1:], thresholds[1:]):
        flagged = scores >= threshold
        assert t == pytest.approx(flagged[positives].mean()) and f == pytest.approx(flagged[~positives].mean())


@pytest.mark.parametrize(
    ("scores", "positives", "message"),
    [
        ([0.1, 0.2], [True, True], "both positive and negative"),
        ([0.1, 0.2], [False, False], "both positive and negative"),
        ([], [], "both positive and negative"),
        ([0.1, 0.2, 0.3], [True, False], "must match"),
        ([0.1, np.nan], [True, False], "non-finite"),
        ([0.1, np.inf], [True, False], "non-finite"),
        ([[0.1, 0.2]], [[True, False]], "1-D"),
        ([0.1, 0.2], [2, 0], "booleans"),
        ([0.1, 0.2], ["yes", "no"], "booleans"),
        (["a", "b"], [True, False], "real numbers"),
        ([True, False], [True, False], "real numbers"),
    ],
)
def test_roc_curve_rejects_bad_input(scores, positives, message):
    with pytest.raises(ValueError, match=message):
        roc_curve(scores, positives)


# --- detection_curves ----------------------------------------------------------------------


def _fake_report(adaptive: bool) -> EvaluationReport:
    rng = np.random.default_rng(0)
    clean, adversarial = rng.uniform(0, 0.5, 20), rng.uniform(0.2, 0.7, 20)
    figures = {"RAD": 0.6, "AUC": roc_auc(np.r_[clean, adversarial], np.r_[np.zeros(20), np.ones(20)] == 1)}
    details = {"labels": np.zeros(20, int), "clean": {"score": clean}, "standard_attack": {"score": adversarial}}
    if adaptive:
        details["adaptive_attack"] = {"score": np.round(rng.uniform(0, 0.5, 20), 1)}  # with ties
        figures["RAD_adaptive"] = 0.4
    return EvaluationReport(figures, samples=20, attack=PGD(eps=0.1, step_size=0.1, steps=1), details=details)


@pytest.mark.parametrize("adaptive", [False, True])
def test_curves_of_a_hand_made_report(adaptive):
    report = _fake_report(adaptive)
    curves = detection_curves(report)
    assert list(curves) == (["naive", "adaptive"] if adaptive else ["naive"])
    details = report.details
    for name, group, rad in (("naive", "standard_attack", 0.6), ("adaptive", "adaptive_attack", 0.4)):
        if name not in curves:
            continue
        curve = curves[name]
        assert set(curve) == {"fpr", "tpr", "thresholds", "auc", "rad"}
        positives = np.r_[np.zeros(20), np.ones(20)] == 1
        scores = np.r_[details["clean"]["score"], details[group]["score"]]
        fpr, tpr, _ = roc_curve(scores, positives)
        np.testing.assert_array_equal(curve["fpr"], fpr)
        np.testing.assert_array_equal(curve["tpr"], tpr)
        assert curve["auc"] == pytest.approx(roc_auc(scores, positives), abs=1e-12)
        assert curve["rad"] == rad
    assert curves["naive"]["auc"] == pytest.approx(report["AUC"], abs=1e-12)


def test_curves_of_a_real_evaluation_match_its_figures():
    keras.utils.set_random_seed(4)
    model = tiny_model(input_dim=4, width=4, num_classes=3)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1, (12, 4)).astype("float32"), rng.integers(0, 3, 12)
    report = aatk.evaluate(model, (x, y), PGD(eps=0.3, step_size=0.3, steps=1))
    curves = detection_curves(report)
    assert set(curves) == {"naive", "adaptive"}
    assert curves["naive"]["auc"] == pytest.approx(report["AUC"], abs=1e-12)
    assert curves["adaptive"]["auc"] == pytest.approx(report["AUC_adaptive"], abs=1e-12)
    assert curves["naive"]["rad"] == report["RAD"] and curves["adaptive"]["rad"] == report["RAD_adaptive"]


def test_detection_curves_rejects_reports_without_scores():
    attack = PGD(eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="EvaluationReport"):
        detection_curves({"AUC": 0.5})
    with pytest.raises(ValueError, match="no details"):
        detection_curves(EvaluationReport({"AUC": 0.5}, samples=3, attack=attack))
    report = _fake_report(adaptive=False)
    del report.details["standard_attack"]["score"]
    with pytest.raises(ValueError, match="standard_attack"):
        detection_curves(report)
    report = _fake_report(adaptive=True)
    del report.details["adaptive_attack"]["score"]
    with pytest.raises(ValueError, match="adaptive_attack"):
        detection_curves(report)
