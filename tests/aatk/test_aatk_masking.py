"""aatk.masking: the gradient-masking checks flag what they should and pass what they should."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import aatk
from aatk.attacks import PGD
from aatk.attacks.base import Attack
from aatk.masking import CHECKS, gradient_masking_checks
from aatk_testutils import tiny_model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, size=(48, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 1.0).astype("int32") + (x[:, 2] > 0.7).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(11)
    x, y = data
    model = tiny_model(width=8)
    model.compile(optimizer=keras.optimizers.Adam(0.05), method="st")
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    return model


class Shift(Attack):
    """Moves every input by +shift (deterministic); gradient-free unless told otherwise."""

    name = "Shift"
    uses_gradients = False

    def __init__(self, *, shift: float, eps: float):
        super().__init__(norm="linf", eps=eps, bounds=(0.0, 1.0), seed=None, random=False)
        self.shift = shift

    def run(self, logits_fn, x, y):
        return self.clip_to_bounds(x + self._hooks.project(x * 0 + self.shift, self.eps))

    def get_config(self):
        return {"shift": self.shift, "eps": self.eps}


class TargetedShift(Shift):
    name = "TargetedShift"
    uses_gradients = True
    targeted = True


def test_a_plain_model_passes_the_model_only_checks(trained, data):
    x, y = data
    report = gradient_masking_checks(trained, (x, y), norm="linf", eps=0.1, steps=5, ways=("standard", "robust"))
    by_check = {(c.way, c.check): c for c in report.checks}
    for way in ("standard", "robust"):
        assert by_check[way, "large ε"].passed, by_check[way, "large ε"]
        assert by_check[way, "zero gradients"].value == 0.0
        assert by_check[way, "more iterations"].passed
    assert set(report.skipped) == {"black box", "targeted"}
    assert report.flagged_ways == []
    assert "No way flagged" in report.to_markdown()


def test_a_keras_classifier_without_ways_gets_the_model_only_checks(data):
    """Its standard way is the model itself; the zero-gradient check reads the gradient through it."""
    keras.utils.set_random_seed(12)
    x, y = data
    classifier = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    classifier.compile(optimizer=keras.optimizers.Adam(0.05),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    classifier.fit(x, y, epochs=20, batch_size=16, verbose=0)
    report = gradient_masking_checks(classifier, (x, y), norm="linf", eps=0.1, steps=5, ways=("standard",))
    by_check = {(c.way, c.check): c for c in report.checks}
    assert by_check["standard", "zero gradients"].value == 0.0 and by_check["standard", "more iterations"].passed
    assert {check for _, check in by_check} == {"large ε", "more iterations", "zero gradients"}
    assert {way for way, _ in by_check} == {"standard"}


def test_a_saturated_softmax_is_flagged(trained, data):
    x, y = data
    saturated = tiny_model(width=8)
    saturated(data[0][:1])
    saturated.set_weights(trained.get_weights())
    kernel, bias = saturated.head_logits.get_weights()
    saturated.head_logits.set_weights([kernel * 1e5, bias * 1e5])  # logits 10⁵× larger: softmax is 0/1 in float32
    report = gradient_masking_checks(saturated, (x, y), norm="linf", eps=0.1, steps=5, ways=("standard",))
    zero = next(c for c in report.checks if c.check == "zero gradients")
    assert not zero.passed and zero.value > 0.5
    assert report.flagged_ways == ["standard"]
    assert "**FLAG**" in report.to_markdown()


def test_the_black_box_and_targeted_checks_read_the_worst_case_report(trained, data):
    x, y = data
    attacks = [PGD(eps=1e-4, step_size=1e-4, steps=1), TargetedShift(shift=0.6, eps=0.6), Shift(shift=-0.6, eps=0.6)]
    evaluation = aatk.evaluate(trained, (x, y), attacks, adaptive=False, batch_size=16)
    report = gradient_masking_checks(trained, (x, y), norm="linf", eps=0.1, steps=2, report=evaluation,
                                     ways=("robust",))
    by_check = {c.check: c for c in report.checks}
    runs, labels = evaluation.details["attacks"], evaluation.details["labels"]
    fooled = {name: runs[name]["robust_attack"]["robust"] != labels for name in runs}
    expected_black_box = np.mean(fooled["Shift"] & ~fooled["PGD-1"] & ~fooled["TargetedShift"])
    expected_targeted = np.mean(fooled["TargetedShift"] & ~fooled["PGD-1"])
    assert by_check["black box"].value == pytest.approx(expected_black_box)
    assert by_check["targeted"].value == pytest.approx(expected_targeted)
    assert by_check["targeted"].value > 0.05 and not by_check["targeted"].passed  # a tiny PGD cannot keep up
    assert [c.check for c in report.checks] == [c for c in CHECKS if c in by_check]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ways": ("sideways",)}, "way must be one of"),
        ({"ways": ()}, "at least one way"),
        ({"eps": 0.0}, "eps"),
        ({"steps": 0}, "steps"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"norm": "l1"}, "norm"),
        ({"bounds": None}, "large_eps"),
    ],
)
def test_bad_arguments_are_refused(trained, data, kwargs, message):
    x, y = data
    arguments = {"norm": "linf", "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        gradient_masking_checks(trained, (x, y), **arguments)
