"""aatk.detector: adaptive attacks on the detector of Eq. 12, their losses and the strongest one."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from aatk.attacks import PGD
from aatk.detector import DEFAULT_WEIGHTS, agreement_margin_loss, attack_detector, divergence_evasion_loss
from aatk.evaluation import detection_score
from aatk_testutils import briefly_trained


@pytest.fixture(scope="module")
def trained():
    return briefly_trained(seed=5, samples=32, method="aat++")


def test_margin_loss_by_hand():
    robust = np.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]], "float32")
    non_robust = np.array([[2.0, 1.0, 0.0], [0.0, 4.0, 1.0]], "float32")
    target = np.array([1, 1])
    # Example 0: robust margin 3 − 1 = 2, non-robust 1 − 2 = −1 → −1. Example 1: 0 − 5 = −5 and 4 − 1 = 3 → −5.
    np.testing.assert_allclose(np.asarray(agreement_margin_loss(robust, non_robust, target)), [-1.0, -5.0])


def test_divergence_loss_by_hand():
    logits = {
        "standard": np.array([[0.0, 0.0]], "float32"),
        "robust": np.array([[2.0, 0.0]], "float32"),
        "non_robust": np.array([[0.0, 2.0]], "float32"),
    }
    labels = np.array([0])
    js = float(np.asarray(detection_score(logits["robust"], logits["non_robust"]))[0])
    for weight in (0.0, 1.0, 10.0):
        value = float(np.asarray(divergence_evasion_loss(logits, labels, weight))[0])
        assert value == pytest.approx(np.log(2.0) - weight * js, rel=1e-5)


def test_attack_detector_reports_every_attack_and_the_worst_case(trained):
    model, x, y = trained
    attack = PGD(eps=0.3, step_size=0.05, steps=10, random_start=True, seed=1)
    report = attack_detector(model, (x, y), attack=attack, weights=(0.0, 10.0), batch_size=16)
    assert list(report.rows) == ["agreement-ce", "agreement-margin", "divergence λ=0", "divergence λ=10"]
    assert report.strongest == max(report.rows, key=lambda name: report.rows[name]["evasion"])
    for figures in report.rows.values():
        assert all(0.0 <= value <= 1.0 for value in figures.values())
    # The per-example worst case evades at least as often as any single attack.
    assert report.worst_case["evasion"] >= max(figures["evasion"] for figures in report.rows.values()) - 1e-12
    # Evasion by hand for one attack: fooled the standard way and both other ways agree.
    row = report.details["agreement-margin"]
    by_hand = np.mean((row["standard"] != y) & (row["robust"] == row["non_robust"]))
    assert report.rows["agreement-margin"]["evasion"] == pytest.approx(by_hand)
    text = report.to_markdown()
    assert "(strongest)" in text and "worst case per example" in text


def test_default_weights_start_with_the_blind_attack():
    assert DEFAULT_WEIGHTS[0] == 0.0 and list(DEFAULT_WEIGHTS) == sorted(DEFAULT_WEIGHTS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attack": "pgd"}, "maximises any loss"),
        ({"weights": ()}, "weights"),
        ({"weights": (-1.0,)}, "weights"),
        ({"weights": (float("nan"),)}, "weights"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_are_refused(trained, kwargs, message):
    model, x, y = trained
    arguments = {"attack": PGD(eps=0.1, step_size=0.1, steps=1), **kwargs}
    with pytest.raises(ValueError, match=message):
        attack_detector(model, (x, y), **arguments)


def test_a_model_without_ways_is_refused(trained):
    _, x, y = trained
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="must have ways"):
        attack_detector(plain, (x, y), attack=PGD(eps=0.1, step_size=0.1, steps=1))


def test_inputs_outside_the_bounds_are_refused(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="bounds"):
        attack_detector(model, (x + 2.0, y), attack=PGD(eps=0.1, step_size=0.1, steps=1))
