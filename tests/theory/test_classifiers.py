"""theory.classifiers: sign-linear classifiers and their closed-form worst-case attacks."""

from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from theory_strategies import SCALES, epsilons, weights_list

from theory import PROPOSITION_1, PROPOSITION_1_EPS, SignFlipDistribution, SignLinearClassifier
from theory.classifiers import (
    attacked_mask,
    brute_force_perturbation,
    dual_norm,
    f_avg,
    f_rob,
    h0,
    h1,
    worst_case_perturbation,
)


def _sign(value: F) -> int:
    return (value > 0) - (value < 0)


def _exact_linf_attack(weights, y: int, eps: F, attacked=None) -> list[F]:
    """δ* = −ε·y·sign(w), restricted to the attacked features, in exact arithmetic."""
    return [
        -eps * y * _sign(w) if attacked is None or i in attacked else F(0)
        for i, w in enumerate(weights)
    ]


def _margin(weights, x, delta, y: int) -> F:
    return y * sum((w * (xi + di) for w, xi, di in zip(weights, x, delta)), F(0))


# --- SignLinearClassifier ---------------------------------------------------------------------


def test_weights_are_kept_exactly() -> None:
    h = SignLinearClassifier(weights=[0.1, "1/3", 2], name="h")
    assert h.weights == (F(1, 10), F(1, 3), F(2))
    assert h.d == 3 and h.name == "h"


def test_decision_and_predict() -> None:
    h = SignLinearClassifier(weights=[1, 1, 1])
    x = np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0], [1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(h.decision(x), [1.0, -1.0, 0.0, 0.0])
    prediction = h.predict(x)
    np.testing.assert_array_equal(prediction, [1, -1, 0, 0])  # sign(0) = 0: on the boundary
    assert prediction.dtype == np.int64
    negative = SignLinearClassifier(weights=[-2, 0, F(1, 2)])
    np.testing.assert_array_equal(negative.predict(np.array([[1.0, 5.0, 1.0], [0.0, 1.0, 1.0]])), [-1, 1])


@pytest.mark.parametrize("x", [np.zeros((2, 2)), np.zeros(3), np.zeros((1, 4)), np.zeros((1, 1, 3))])
def test_predict_rejects_the_wrong_shape(x) -> None:
    with pytest.raises(ValueError, match=r"^x must have shape \(n, 3\)"):
        SignLinearClassifier(weights=[1, 1, 1]).predict(x)


def test_classifier_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match=r"^weights must hold at least one entry"):
        SignLinearClassifier(weights=[])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        SignLinearClassifier(weights=[1, math.inf])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        SignLinearClassifier(weights=[math.nan])
    with pytest.raises(ValueError, match=r"^weights must be a sequence"):
        SignLinearClassifier(weights="1,2")
    with pytest.raises(TypeError):
        SignLinearClassifier([1, 2])  # type: ignore[misc]


def test_dual_norms() -> None:
    h = SignLinearClassifier(weights=[3, -4, 0])
    assert h.norm("linf") == F(7) and isinstance(h.norm("linf"), F)
    assert h.norm("l2") == pytest.approx(5.0, abs=1e-15)
    assert dual_norm([F(1, 2), F(-1, 3)], norm="linf") == F(5, 6)
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        dual_norm([F(1)], norm="l1")
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        h.norm("Linf")


# --- the classifiers of the paper -------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
def test_f_avg_and_f_rob(d: int) -> None:
    assert f_avg(d).weights == (F(0),) + (F(1, d),) * d  # Eq. 14
    assert f_rob(d).weights == (F(1),) + (F(0),) * d  # Eq. 15
    assert f_avg(d).d == f_rob(d).d == d + 1


@pytest.mark.parametrize("d", [0, -1, True, 2.0, "3"])
def test_f_avg_and_f_rob_reject_a_bad_d(d) -> None:
    with pytest.raises(ValueError, match=r"^d must be an integer >= 1"):
        f_avg(d)
    with pytest.raises(ValueError, match=r"^d must be an integer >= 1"):
        f_rob(d)


def test_h0_and_h1_on_proposition_1() -> None:
    assert h0(PROPOSITION_1).weights == (F(100),) * 4 + (F(1),) * 3  # Eq. 17: 1/eta_i
    assert h1(PROPOSITION_1, eps=PROPOSITION_1_EPS).weights == (F(0),) * 4 + (F(1),) * 3  # Eq. 18
    assert h1(PROPOSITION_1, eps=0.02) == h1(PROPOSITION_1, eps="1/50")
    # With eps = 0 every feature survives: h1 is h0.
    assert h1(PROPOSITION_1, eps=0).weights == h0(PROPOSITION_1).weights


def test_h1_drops_a_feature_exactly_at_eps() -> None:
    # A feature with eta_i = eps can be moved to 0, so it is not robust.
    dist = SignFlipDistribution(p=0.8, eta=[F(1, 50), F(1, 2), 2])
    assert h1(dist, eps=F(1, 50)).weights == (F(0), F(2), F(1, 2))
    assert h1(dist, eps=F(1, 2)).weights == (F(0), F(0), F(1, 2))


def test_h0_needs_positive_scales() -> None:
    with pytest.raises(ValueError, match=r"^h0 needs every eta_i > 0"):
        h0(SignFlipDistribution(p=0.8, eta=[1, 0, 2]))


def test_h1_needs_a_robust_feature() -> None:
    with pytest.raises(ValueError, match=r"^h1 needs a feature with eta_i > eps"):
        h1(SignFlipDistribution(p=0.8, eta=[0.01, 0.02]), eps=0.02)
    with pytest.raises(ValueError, match=r"^h1 needs a feature with eta_i > eps"):
        h1(SignFlipDistribution(p=0.8, eta=[0, 0]), eps=0)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        h1(PROPOSITION_1, eps=-0.01)


# --- attacked_mask ----------------------------------------------------------------------------


def test_attacked_mask() -> None:
    np.testing.assert_array_equal(attacked_mask(3, None), [True, True, True])
    np.testing.assert_array_equal(attacked_mask(3, []), [False, False, False])
    np.testing.assert_array_equal(attacked_mask(4, [3, 0]), [True, False, False, True])
    np.testing.assert_array_equal(attacked_mask(3, (np.int64(1),)), [False, True, False])


@pytest.mark.parametrize("attacked", [[3], [-1], [0, 0], [1, 2, 1], [True], [0.0], ["1"]])
def test_attacked_mask_rejects_bad_indices(attacked) -> None:
    with pytest.raises(ValueError, match=r"^attacked must list distinct feature indices in \[0, 3\)"):
        attacked_mask(3, attacked)


# --- the closed-form worst case ---------------------------------------------------------------


def test_worst_case_on_proposition_1() -> None:
    classifier = h0(PROPOSITION_1)
    x = np.array([[0.01, 0.01, -0.01, 0.01, 1.0, -1.0, 1.0]])
    delta = worst_case_perturbation(classifier, x, np.array([1]), eps=PROPOSITION_1_EPS)
    np.testing.assert_array_equal(delta, [[-0.02] * 7])
    # The four small features flip, so h0 is fooled (Prop. 1(1)).
    assert classifier.predict(x)[0] == 1
    assert classifier.predict(x + delta)[0] == -1
    only_small = worst_case_perturbation(
        classifier, x, np.array([-1]), eps=PROPOSITION_1_EPS, attacked=[0, 1, 2, 3]
    )
    np.testing.assert_array_equal(only_small, [[0.02] * 4 + [0.0] * 3])


def test_worst_case_l2_by_hand() -> None:
    classifier = SignLinearClassifier(weights=[3, -4])
    delta = worst_case_perturbation(classifier, np.zeros((2, 2)), np.array([1, -1]), eps=F(1, 2), norm="l2")
    np.testing.assert_allclose(delta, [[-0.3, 0.4], [0.3, -0.4]], rtol=0, atol=1e-15)
    attacked = worst_case_perturbation(
        classifier, np.zeros((1, 2)), np.array([1]), eps=1, norm="l2", attacked=[1]
    )
    np.testing.assert_allclose(attacked, [[0.0, 1.0]], rtol=0, atol=1e-15)
    # A classifier with no attacked weight cannot be attacked.
    none = worst_case_perturbation(classifier, np.zeros((1, 2)), np.array([1]), eps=1, norm="l2", attacked=[])
    np.testing.assert_array_equal(none, [[0.0, 0.0]])
    zero = SignLinearClassifier(weights=[0, 0])
    np.testing.assert_array_equal(
        worst_case_perturbation(zero, np.ones((1, 2)), np.array([1]), eps=1, norm="l2"), [[0.0, 0.0]]
    )


def test_worst_case_rejects_bad_arguments() -> None:
    classifier = SignLinearClassifier(weights=[1, 1])
    x, y = np.zeros((2, 2)), np.array([1, -1])
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        worst_case_perturbation(classifier, x, y, eps=-0.1)
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        worst_case_perturbation(classifier, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match=r"^y must have shape \(2,\)"):
        worst_case_perturbation(classifier, x, np.array([1]), eps=0.1)
    with pytest.raises(ValueError, match=r"^x must have shape"):
        worst_case_perturbation(classifier, np.zeros((2, 3)), y, eps=0.1)
    with pytest.raises(ValueError, match=r"^attacked must list"):
        worst_case_perturbation(classifier, x, y, eps=0.1, attacked=[2])


@st.composite
def attack_cases(draw, max_d: int = 3):
    d = draw(st.integers(1, max_d))
    weights = draw(weights_list(d))
    x = draw(st.lists(st.builds(F, st.integers(-6, 6), st.integers(1, 4)), min_size=d, max_size=d))
    y = draw(st.sampled_from([-1, 1]))
    eps = draw(epsilons())
    return SignLinearClassifier(weights=weights), x, y, eps


@given(attack_cases())
def test_brute_force_never_beats_the_linf_closed_form(case) -> None:
    classifier, x, y, eps = case
    exact_delta = _exact_linf_attack(classifier.weights, y, eps)
    closed_margin = _margin(classifier.weights, x, exact_delta, y)
    # The closed form lowers the margin by exactly eps·‖w‖₁.
    assert closed_margin == _margin(classifier.weights, x, [F(0)] * classifier.d, y) - eps * classifier.norm("linf")

    brute_delta, brute_margin = brute_force_perturbation(classifier, x, y, eps=eps, levels=5)
    assert brute_margin >= closed_margin
    # The grid holds every vertex of the cube, the closed form among them: the minimum is attained.
    assert brute_margin == closed_margin
    assert brute_margin == _margin(classifier.weights, x, brute_delta, y)
    assert all(abs(di) <= eps for di in brute_delta)

    delta = worst_case_perturbation(
        classifier, np.array([[float(v) for v in x]]), np.array([y]), eps=eps, norm="linf"
    )
    assert delta.shape == (1, classifier.d)
    np.testing.assert_array_equal(delta[0], [float(v) for v in exact_delta])
    assert np.max(np.abs(delta)) <= float(eps)


@given(attack_cases(), st.data())
def test_attacking_a_subset_matches_brute_force_on_that_subset(case, data) -> None:
    classifier, x, y, eps = case
    attacked = data.draw(st.lists(st.integers(0, classifier.d - 1), unique=True))
    exact_delta = _exact_linf_attack(classifier.weights, y, eps, attacked=attacked)
    delta = worst_case_perturbation(
        classifier, np.array([[float(v) for v in x]]), np.array([y]), eps=eps, attacked=attacked
    )
    np.testing.assert_array_equal(delta[0], [float(v) for v in exact_delta])
    # Brute force over the attacked coordinates only: freeze the others by zero weight
    # in a classifier of the attacked coordinates, then add the fixed part back.
    if attacked:
        sub = SignLinearClassifier(weights=[classifier.weights[i] for i in attacked])
        _, sub_margin = brute_force_perturbation(sub, [x[i] for i in attacked], y, eps=eps, levels=3)
        fixed = y * sum((classifier.weights[i] * x[i] for i in range(classifier.d) if i not in attacked), F(0))
        assert sub_margin + fixed == _margin(classifier.weights, x, exact_delta, y)


@given(attack_cases(max_d=4), st.integers(0, 2**32 - 1))
def test_l2_closed_form_is_the_worst_direction(case, seed: int) -> None:
    classifier, x, y, eps = case
    w = np.array([float(v) for v in classifier.weights])
    x_float = np.array([float(v) for v in x])
    delta = worst_case_perturbation(classifier, x_float[None, :], np.array([y]), eps=eps, norm="l2")[0]
    assert np.linalg.norm(delta) <= float(eps) + 1e-12
    closed_margin = y * w @ (x_float + delta)
    expected = y * w @ x_float - float(eps) * np.linalg.norm(w)
    assert closed_margin == pytest.approx(expected, abs=1e-9)

    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((200, classifier.d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for radius in (float(eps), float(eps) / 2):
        margins = y * (x_float[None, :] + radius * directions) @ w
        assert np.all(margins >= closed_margin - 1e-9)


@settings(max_examples=30)
@given(attack_cases(max_d=3))
def test_linf_closed_form_beats_random_vertices_and_interior_points(case) -> None:
    classifier, x, y, eps = case
    closed = _margin(classifier.weights, x, _exact_linf_attack(classifier.weights, y, eps), y)
    for vertex in np.array(np.meshgrid(*[[-1, 1]] * classifier.d)).T.reshape(-1, classifier.d):
        assert _margin(classifier.weights, x, [eps * int(s) for s in vertex], y) >= closed
        assert _margin(classifier.weights, x, [eps * int(s) / 3 for s in vertex], y) >= closed


def test_brute_force_by_hand() -> None:
    classifier = SignLinearClassifier(weights=[2, -1])
    delta, margin = brute_force_perturbation(classifier, [1, 1], 1, eps=F(1, 2))
    assert delta == (F(-1, 2), F(1, 2))
    assert margin == F(-1, 2)  # 2·1 − 1·1 − ε·(2 + 1)
    _, margin = brute_force_perturbation(classifier, [1, 1], -1, eps=F(1, 2))
    assert margin == F(-5, 2)  # −(2 − 1) − 3/2
    _, margin = brute_force_perturbation(classifier, [1, 1], 1, eps=0)
    assert margin == 1


def test_brute_force_rejects_bad_arguments() -> None:
    small = SignLinearClassifier(weights=[1, 1])
    with pytest.raises(ValueError, match=r"^brute force is limited to d <= 8, got d = 9"):
        brute_force_perturbation(SignLinearClassifier(weights=[1] * 9), [0] * 9, 1, eps=0.1)
    with pytest.raises(ValueError, match=r"^levels must be >= 2"):
        brute_force_perturbation(small, [0, 0], 1, eps=0.1, levels=1)
    with pytest.raises(ValueError, match=r"^y must be -1 or \+1"):
        brute_force_perturbation(small, [0, 0], 0, eps=0.1)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        brute_force_perturbation(small, [0, 0], 1, eps=-0.1)
    with pytest.raises(ValueError, match=r"^x must have 2 entries"):
        brute_force_perturbation(small, [0, 0, 0], 1, eps=0.1)


@pytest.mark.parametrize("eta", SCALES[1:])
def test_a_feature_is_flippable_exactly_when_eta_le_eps(eta: F) -> None:
    # Against a one-feature classifier the closed form flips x = eta·y exactly when eta <= eps.
    classifier = SignLinearClassifier(weights=[1])
    for y in (-1, 1):
        x = np.array([[float(eta) * y]])
        delta = worst_case_perturbation(classifier, x, np.array([y]), eps=PROPOSITION_1_EPS)
        prediction = classifier.predict(x + delta)[0]
        if eta > PROPOSITION_1_EPS:
            assert prediction == y
        else:
            assert prediction != y


def test_a_weight_beyond_the_float_range_raises_value_error() -> None:
    """A weight a float cannot hold raises ValueError naming it (not OverflowError)."""
    with pytest.raises(ValueError, match=r"weights\[\d\]"):
        SignLinearClassifier(weights=[1, "1e400"])
