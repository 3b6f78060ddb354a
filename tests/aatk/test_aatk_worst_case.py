"""aatk.evaluate with several attacks: the per-example worst case, cascade, and its bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aatk
from aatk.attacks import PGD
from aatk.attacks.base import Attack
from aatk.evaluation import _worst_case, attack_labels, attack_list
from aatk_testutils import briefly_trained


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained briefly by AAT (read-only)."""
    return briefly_trained(seed=3, samples=40, method="aat")


class ShiftAttack(Attack):
    """A deterministic, gradient-free test attack: moves every input by ``shift`` (clipped to the ball)."""

    name = "Shift"

    def __init__(self, *, shift: float, eps: float = 0.3, bounds=(0.0, 1.0)):
        super().__init__(norm="linf", eps=eps, bounds=bounds, seed=None, random=False)
        self.shift = shift

    def run(self, logits_fn, x, y):
        del logits_fn, y
        delta = self._hooks.project(x * 0 + self.shift, self.eps)
        return self.clip_to_bounds(x + delta)

    def get_config(self):
        return {"shift": self.shift, "eps": self.eps, "bounds": list(self.bounds)}


ATTACKS = (
    lambda: PGD(eps=0.05, step_size=0.02, steps=3),
    lambda: PGD(eps=0.2, step_size=0.05, steps=5),
    lambda: ShiftAttack(shift=0.2),
)


def test_worst_case_is_never_above_any_attack(trained):
    model, x, y = trained
    report = aatk.evaluate(model, (x, y), [make() for make in ATTACKS], adaptive=False, batch_size=16)
    assert list(report.per_attack) == ["PGD-3", "PGD-5", "Shift"]
    for key in ("R_adv", "N_adv", "S_adv_s"):
        assert report[key] <= min(figures[key] for figures in report.per_attack.values()), key
    # Each attack's own figures are those of evaluating it alone.
    for make, label in zip(ATTACKS, report.per_attack):
        alone = aatk.evaluate(model, (x, y), make(), adaptive=False, batch_size=16)
        for key, value in report.per_attack[label].items():
            assert value == pytest.approx(alone[key]), (label, key)
    # The worst case by hand: correct only if every attack's example leaves the way correct.
    runs = report.details["attacks"]
    for group, way, key in (("robust_attack", "robust", "R_adv"), ("non_robust_attack", "non_robust", "N_adv")):
        survive = np.all([runs[label][group][way] == y for label in runs], axis=0)
        assert report[key] == pytest.approx(survive.mean())
    assert report["DIA"] == report["R_adv"] - report["N_adv"]
    text = report.to_markdown()
    assert "Worst case per example over" in text and "| PGD-5 |" in text and "worst case" in text


def test_cascade_gives_the_same_worst_case_for_deterministic_attacks(trained):
    model, x, y = trained
    full = aatk.evaluate(model, (x, y), [make() for make in ATTACKS], adaptive=False, batch_size=16)
    cascade = aatk.evaluate(model, (x, y), [make() for make in ATTACKS], adaptive=False, batch_size=16, cascade=True)
    for key in ("R_adv", "N_adv", "DIA", "S_adv_s", "R_adv_s", "N_adv_s", "DIA_s", "RAD", "evasion"):
        assert cascade[key] == pytest.approx(full[key]), key
    assert cascade.cascade and not full.cascade
    # Later attacks ran only where every earlier one had failed.
    runs = cascade.details["attacks"]
    first, second = runs["PGD-3"]["robust_attack"], runs["PGD-5"]["robust_attack"]
    assert first["attacked"].all()
    np.testing.assert_array_equal(second["attacked"], first["robust"] == y)
    # The cascade's per-attack figures are the worst case so far: never increasing, ending at the worst case.
    values = [figures["R_adv"] for figures in cascade.per_attack.values()]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(cascade["R_adv"])


def test_one_attack_in_a_list_is_that_attack(trained):
    model, x, y = trained
    single = aatk.evaluate(model, (x, y), PGD(eps=0.2, step_size=0.05, steps=5), adaptive=False)
    listed = aatk.evaluate(model, (x, y), [PGD(eps=0.2, step_size=0.05, steps=5)], adaptive=False)
    assert dict(single) == dict(listed) and listed.per_attack == {}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_worst_case_bookkeeping(data):
    count = data.draw(st.integers(1, 12))
    attacks = data.draw(st.integers(1, 4))
    labels = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=count, max_size=count)))
    runs = []
    for _ in range(attacks):
        attacked = np.asarray(data.draw(st.lists(st.booleans(), min_size=count, max_size=count)))
        if not runs:
            attacked[:] = True  # the first attack always runs on every example
        predictions = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=count, max_size=count)))
        other = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=count, max_size=count)))
        runs.append({"attacked": attacked, "robust": np.where(attacked, predictions, -1), "standard": other})
    worst, chosen = _worst_case(runs, "robust", labels)
    fooled = np.array([run["attacked"] & (run["robust"] != labels) for run in runs])
    # Correct in the worst case exactly when no attack that ran fooled the way.
    np.testing.assert_array_equal(worst["robust"] == labels, ~fooled.any(axis=0))
    for i in range(count):
        expected = int(np.argmax(fooled[:, i])) if fooled[:, i].any() else 0
        assert chosen[i] == expected
        # Every way's output comes from the same attack's example.
        assert worst["standard"][i] == runs[expected]["standard"][i]


def test_labels_are_distinct():
    attacks = [PGD(eps=0.1, step_size=0.1, steps=2), PGD(eps=0.2, step_size=0.1, steps=2), ShiftAttack(shift=0.1)]
    assert attack_labels(attacks) == ["PGD-2", "PGD-2 #2", "Shift"]


@pytest.mark.parametrize(
    "attack, message",
    [
        ([], "non-empty list"),
        ("pgd", "aatk attack"),
        ([PGD(eps=0.1, step_size=0.1, steps=1), "pgd"], r"attack\[1\]"),
    ],
)
def test_bad_attack_lists_are_refused(trained, attack, message):
    model, x, y = trained
    with pytest.raises(ValueError, match=message):
        aatk.evaluate(model, (x, y), attack)
    with pytest.raises(ValueError, match=message):
        attack_list(attack)


def test_adaptive_needs_an_attack_that_maximises_any_loss(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="adaptive=True needs an attack"):
        aatk.evaluate(model, (x, y), [ShiftAttack(shift=0.1)])
    report = aatk.evaluate(model, (x, y), [ShiftAttack(shift=0.1), PGD(eps=0.1, step_size=0.05, steps=2)])
    assert "RAD_adaptive" in report


def test_a_cascade_whose_later_attacks_have_nothing_left_to_attack(trained):
    """Labels the model gets wrong everywhere: the first attack leaves no survivor, the others skip."""
    model, x, y = trained
    predictions = np.argmax(np.asarray(model(x, way="standard")), -1)
    wrong = ((predictions + 1) % 3).astype("int32")
    attacks = [ShiftAttack(shift=0.0), PGD(eps=0.1, step_size=0.05, steps=2), ShiftAttack(shift=0.2)]
    report = aatk.evaluate(model, (x, wrong), attacks, cascade=True, adaptive=False, batch_size=16)
    runs = report.details["attacks"]
    standard = runs["PGD-2"]["standard_attack"]
    assert not standard["attacked"].any() and (standard["standard"] == -1).all()
    assert np.isnan(standard["score"]).all()
    assert report["S_adv_s"] == 0.0 and report.per_attack["Shift #2"]["S_adv_s"] == 0.0
