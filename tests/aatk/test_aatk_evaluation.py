"""aatk.evaluate: DIA, RAD (Eq. 12), calibrated accuracy, AUC and the adaptive attack.

Paper: Section 2.4 (Eq. 12), Section 2.5, Table 4b, Appendix C.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import aatk
from aatk.attacks import PGD
from aatk.evaluation import detection_score, roc_auc
from aatk_testutils import briefly_trained

FRACTIONS = (
    "S", "R", "N", "R_adv", "N_adv", "S_adv_s", "R_adv_s", "N_adv_s", "RAD", "raw_acc", "calibrated_acc",
    "AUC", "evasion", "S_adv_adaptive", "RAD_adaptive", "calibrated_acc_adaptive", "AUC_adaptive", "evasion_adaptive",
)
DIFFERENCES = ("DIA", "DIA_s")


@pytest.fixture(scope="module")
def trained():
    """One tiny model trained briefly by AAT++, shared by the tests of this module (read-only)."""
    return briefly_trained(seed=7, samples=32, method="aat++")


def _predictions(model, x, way):
    return np.argmax(np.asarray(model(x, way=way)), -1)


def test_report_keys_and_ranges(trained):
    model, x, y = trained
    attack = PGD(norm="linf", eps=0.2, step_size=0.1, steps=3)
    report = aatk.evaluate(model, (x, y), attack, batch_size=12)
    assert isinstance(report, aatk.EvaluationReport)
    assert set(report) == set(FRACTIONS) | set(DIFFERENCES)
    for key in FRACTIONS:
        assert 0.0 <= report[key] <= 1.0, key
    for key in DIFFERENCES:
        assert -1.0 <= report[key] <= 1.0, key
    assert report["DIA"] == report["R_adv"] - report["N_adv"]
    assert report["DIA_s"] == report["R_adv_s"] - report["N_adv_s"]
    assert report.samples == len(x) and report.attack is attack
    assert "RAD" in report.to_markdown() and "DIA" in str(report)
    # The figures agree with the model and the attack used directly.
    assert report["S"] == np.mean(_predictions(model, x, "standard") == y)
    assert report["R"] == np.mean(_predictions(model, x, "robust") == y)
    assert report["N"] == np.mean(_predictions(model, x, "non_robust") == y)
    x_r, x_n, x_s = (np.asarray(attack(model, x, y, way=w)) for w in ("robust", "non_robust", "standard"))
    assert report["R_adv"] == pytest.approx(np.mean(_predictions(model, x_r, "robust") == y))
    assert report["N_adv"] == pytest.approx(np.mean(_predictions(model, x_n, "non_robust") == y))
    assert report["S_adv_s"] == pytest.approx(np.mean(_predictions(model, x_s, "standard") == y))
    assert report["R_adv_s"] == pytest.approx(np.mean(_predictions(model, x_s, "robust") == y))
    assert report["N_adv_s"] == pytest.approx(np.mean(_predictions(model, x_s, "non_robust") == y))
    # Attacks cannot help (first-order attacks usually hurt): the way under its own attack is no better.
    assert report["S_adv_s"] <= report["S"]
    # RAD by hand on the mixture (Eq. 12): D = [y_r ≠ y_n]; natural should get D = 0, adversarial D = 1.
    d_clean = _predictions(model, x, "robust") != _predictions(model, x, "non_robust")
    d_adv = _predictions(model, x_s, "robust") != _predictions(model, x_s, "non_robust")
    assert report["RAD"] == pytest.approx((np.sum(~d_clean) + np.sum(d_adv)) / (2 * len(x)))
    assert report["raw_acc"] == pytest.approx((report["S"] + report["S_adv_s"]) / 2)
    wrong_and_missed = (_predictions(model, x_s, "standard") != y) & ~d_adv
    assert report["evasion"] == pytest.approx(np.mean(wrong_and_missed))


def test_tuple_and_dataset_give_the_same_report(trained):
    model, x, y = trained
    attack = PGD(norm="l2", eps=0.3, step_size=0.2, steps=2)
    from_arrays = aatk.evaluate(model, (x, y), attack, batch_size=16, adaptive=False)
    from_dataset = aatk.evaluate(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), attack, adaptive=False)
    assert set(from_arrays) == set(FRACTIONS[:13]) | set(DIFFERENCES)  # no *_adaptive keys
    for key in from_arrays:
        assert from_arrays[key] == pytest.approx(from_dataset[key], abs=1e-12), key


def test_eps_zero_adversarial_figures_equal_the_clean_ones(trained):
    model, x, y = trained
    report = aatk.evaluate(model, (x, y), PGD(eps=0.0, step_size=0.1, steps=2), batch_size=32)
    assert report["R_adv"] == report["R_adv_s"] == report["R"]
    assert report["N_adv"] == report["N_adv_s"] == report["N"]
    assert report["S_adv_s"] == report["S_adv_adaptive"] == report["raw_acc"] == report["S"]
    assert report["DIA"] == report["R"] - report["N"]
    # Each example appears once as natural and once as "adversarial" with the same D(x):
    # exactly one of the two is classified right, so RAD = 1/2 whatever the model.
    assert report["RAD"] == 0.5 and report["RAD_adaptive"] == 0.5
    # Identical score distributions in both halves: AUC = 1/2 (ties count 1/2).
    assert report["AUC"] == pytest.approx(0.5) and report["AUC_adaptive"] == pytest.approx(0.5)
    y_s, y_r, y_n = (_predictions(model, x, w) for w in aatk.WAYS)
    detected = y_r != y_n
    assert report["calibrated_acc"] == pytest.approx(np.mean(np.where(detected, y_r, y_s) == y))
    assert report["evasion"] == pytest.approx(np.mean((y_s != y) & ~detected))


def test_evaluate_rejects_bad_arguments(trained):
    model, x, y = trained
    attack = PGD(eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="bounds"):
        aatk.evaluate(model, (x + 2.0, y), attack)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        aatk.evaluate(model, (x, y + 3), attack)
    with pytest.raises(ValueError, match="ThreeWayModel"):
        aatk.evaluate(object(), (x, y), attack)
    with pytest.raises(ValueError, match="PGD"):
        aatk.evaluate(model, (x, y), None)
    with pytest.raises(ValueError, match="tuple"):
        aatk.evaluate(model, [x, y], attack)
    with pytest.raises(ValueError, match="empty"):
        aatk.evaluate(model, (x[:0], y[:0]), attack)


# --- roc_auc and detection_score -------------------------------------------------------------


def test_roc_auc_by_hand():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0
    assert roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([1.0, 2.0], [0, 0])


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=30))
def test_roc_auc_equals_pair_counting(pairs):
    scores = np.array([s for s, _ in pairs], float)
    positives = np.array([p for _, p in pairs])
    if positives.all() or not positives.any():
        with pytest.raises(ValueError):
            roc_auc(scores, positives)
        return
    wins = 0.0
    for p, n in itertools.product(scores[positives], scores[~positives]):
        wins += 1.0 if p > n else 0.5 if p == n else 0.0
    assert roc_auc(scores, positives) == pytest.approx(wins / (positives.sum() * (~positives).sum()), abs=1e-12)


LOGITS = st.lists(st.floats(-30, 30), min_size=2, max_size=5)


@settings(max_examples=25)
@given(st.lists(LOGITS, min_size=1, max_size=4).filter(lambda rows: len({len(r) for r in rows}) == 1), st.data())
def test_detection_score_is_a_bounded_symmetric_divergence(rows, data):
    p = np.array(rows, "float32")
    q = np.array(data.draw(st.lists(st.lists(st.floats(-30, 30), min_size=p.shape[1], max_size=p.shape[1]), min_size=len(p), max_size=len(p))), "float32")
    same = np.asarray(detection_score(p, p))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    pq, qp = np.asarray(detection_score(p, q)), np.asarray(detection_score(q, p))
    assert pq.shape == (len(p),)
    assert (pq >= -1e-6).all() and (pq <= math.log(2) + 1e-6).all()
    np.testing.assert_allclose(pq, qp, atol=1e-6)
    # Against a float64 Jensen–Shannon divergence.
    def softmax(z):
        z = np.asarray(z, np.float64)
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    a, b = softmax(p), softmax(q)
    m = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda u, v: np.where(u > 0, u * (np.log(u) - np.log(v)), 0.0).sum(-1)  # noqa: E731
        js = 0.5 * kl(a, m) + 0.5 * kl(b, m)
    np.testing.assert_allclose(pq, js, atol=1e-5)


def test_detection_score_reaches_log_2_for_disjoint_predictions():
    robust = np.array([[50.0, -50.0], [0.0, 0.0]], "float32")
    non_robust = np.array([[-50.0, 50.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(detection_score(robust, non_robust)), [math.log(2), 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "scores, positives, message",
    [
        ([0.1, np.nan, 0.3], [0, 1, 1], "non-finite"),
        ([0.1, 0.2], [0, 1, 1], "shape"),
        ([0.1, 0.2, 0.3], [0, 2, 1], "booleans"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
        (["a", "b"], [0, 1], "real numbers"),
    ],
)
def test_roc_auc_rejects_bad_inputs(scores, positives, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(scores, positives)


def test_intervals_are_clopper_pearson_for_accuracies_and_paired_for_dia():
    from scipy import stats

    labels = np.zeros(40, dtype=np.int32)
    robust = np.where(np.arange(40) < 30, 0, 1)  # 30 of 40 right
    non_robust = np.where(np.arange(40) < 10, 0, 2)  # 10 of 40 right, all among the robust way's
    details = {
        "labels": labels,
        "clean": {"standard": labels, "robust": labels, "non_robust": labels},
        "robust_attack": {"robust": robust},
        "non_robust_attack": {"non_robust": non_robust},
    }
    report = aatk.EvaluationReport({"R_adv": 0.75, "N_adv": 0.25, "DIA": 0.5}, samples=40,
                                   attack=PGD(eps=0.1, step_size=0.1, steps=1), details=details)
    intervals = report.intervals(confidence=0.95)
    assert set(intervals) == {"S", "R", "N", "R_adv", "N_adv", "DIA"}
    exact = stats.binomtest(30, 40).proportion_ci(confidence_level=0.95, method="exact")
    assert intervals["R_adv"] == pytest.approx((exact.low, exact.high))
    assert intervals["S"][1] == 1.0 and intervals["S"][0] == pytest.approx(0.025 ** (1 / 40))
    d = np.r_[np.zeros(10), np.ones(20), np.zeros(10)]  # robust right − non-robust right, per example
    half = stats.norm.ppf(0.975) * d.std(ddof=1) / np.sqrt(40)
    assert intervals["DIA"] == pytest.approx((0.5 - half, 0.5 + half))
    with pytest.raises(ValueError, match="confidence must be in"):
        report.intervals(confidence=1.0)
    with pytest.raises(ValueError, match="no per-example details"):
        aatk.EvaluationReport({}, samples=0, attack=PGD(eps=0.1, step_size=0.1, steps=1)).intervals()
