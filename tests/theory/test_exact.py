"""theory.exact: exact accuracies on Eq. 16, posteriors, Bayes and robust optima, Eq. 13's closed form."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from theory_strategies import NORMS, TIES, distributions, epsilons, probabilities, problems, weights_list

from theory import (
    PROPOSITION_1,
    PROPOSITION_1_EPS,
    BayesOptimalClassifier,
    SignFlipDistribution,
    SignLinearClassifier,
    TsiprasDistribution,
    accuracy,
    bayes_accuracy,
    best_robust_accuracy,
    f_avg,
    f_rob,
    h0,
    h1,
    posterior,
    robust_accuracy,
    standard_accuracy,
    tsipras_accuracy,
    tsipras_bayes_classifier,
)
from theory.exact import (
    MAX_ENUMERATION_DIM,
    decision_rule_accuracy,
    likelihood,
    margin_table,
    posterior_as_printed,
    robust_features,
)

EPS = PROPOSITION_1_EPS
P = F(3, 4)


def _support(dist: SignFlipDistribution):
    """Every distinct input of the support (features with eta_i = 0 are the constant 0)."""
    choices = [[e, -e] if e > 0 else [F(0)] for e in dist.eta]
    return [list(point) for point in itertools.product(*choices)]


def _majority(d: int, p: F, *, tie: str = "wrong") -> F:
    """P(a d-vote majority with votes right w.p. p is right), ties per ``tie``, by the binomial formula."""
    right = sum((math.comb(d, k) * p**k * (1 - p) ** (d - k) for k in range(d + 1) if 2 * k > d), F(0))
    if d % 2 == 0 and tie == "half":
        right += math.comb(d, d // 2) * (p * (1 - p)) ** (d // 2) / 2
    return right


# --- Proposition 1, by hand -------------------------------------------------------------------


def test_proposition_1_exact_figures() -> None:
    classifier_h0 = h0(PROPOSITION_1)
    classifier_h1 = h1(PROPOSITION_1, eps=EPS)
    # h0: a 7-vote majority, right when at most 3 votes are wrong.
    assert standard_accuracy(classifier_h0, PROPOSITION_1) == F(15104, 15625)
    assert F(15104, 15625) == sum(math.comb(7, k) * F(1, 5) ** k * F(4, 5) ** (7 - k) for k in range(4))
    # The adversary flips all four small features: every margin 100·(±4) ± 3 ... drops by 0.02·403 > 7.
    assert robust_accuracy(classifier_h0, PROPOSITION_1, eps=EPS) == 0
    # h1: a 3-vote majority of robust features.
    assert standard_accuracy(classifier_h1, PROPOSITION_1) == F(112, 125)
    assert robust_accuracy(classifier_h1, PROPOSITION_1, eps=EPS) == F(112, 125)
    assert F(112, 125) == F(4, 5) ** 3 + 3 * F(4, 5) ** 2 * F(1, 5)
    assert bayes_accuracy(PROPOSITION_1) == F(15104, 15625)
    assert best_robust_accuracy(PROPOSITION_1, eps=EPS) == F(112, 125)
    # Attacking only the four non-robust features is enough to defeat h0.
    assert robust_accuracy(classifier_h0, PROPOSITION_1, eps=EPS, attacked=[0, 1, 2, 3]) == 0
    # Attacking only the robust ones is not: their 3 units of weight cost 0.06 < any margin >= 1.
    assert robust_accuracy(classifier_h0, PROPOSITION_1, eps=EPS, attacked=[4, 5, 6]) == F(15104, 15625)
    for tie in TIES:
        assert accuracy(classifier_h0, PROPOSITION_1, tie=tie) == F(15104, 15625)  # d odd: no ties


def test_proposition_1_posterior_eq_22() -> None:
    against = [F(-1, 100)] * 4 + [F(1)] * 3  # 4 of 7 features against y = +1
    assert posterior(PROPOSITION_1, against, y=1) == F(1, 5)
    assert posterior(PROPOSITION_1, [-v for v in against], y=-1) == F(1, 5)
    assert posterior(PROPOSITION_1, against, y=-1) == F(4, 5)
    mixed = [F(1, 100), F(-1, 100), F(1, 100), F(-1, 100), F(-1), F(-1), F(1)]  # also 4 against +1
    assert posterior(PROPOSITION_1, mixed, y=1) == F(1, 5)
    # Floats and strings are read exactly.
    assert posterior(PROPOSITION_1, [-0.01] * 4 + [1.0] * 3, y=1) == F(1, 5)
    # Three against: p^4(1-p)^3 / (p^4(1-p)^3 + p^3(1-p)^4) = p.
    assert posterior(PROPOSITION_1, [F(-1, 100)] * 3 + [F(1, 100)] + [F(1)] * 3, y=1) == F(4, 5)
    # All agree: p^7 / (p^7 + (1-p)^7).
    assert posterior(PROPOSITION_1, [F(1, 100)] * 4 + [F(1)] * 3, y=1) == F(4**7, 4**7 + 1)


def test_eq_20_as_printed_is_the_likelihood_not_the_posterior() -> None:
    point = [F(-1, 100)] * 4 + [F(1)] * 3
    printed = posterior_as_printed(PROPOSITION_1, point, y=1)
    assert printed == F(4, 5) ** 3 * F(1, 5) ** 4 == likelihood(PROPOSITION_1, point, y=1)
    total = printed + posterior_as_printed(PROPOSITION_1, point, y=-1)
    assert total == F(64, 15625) != 1


def test_h1_is_not_robust_optimal_when_eps_eats_its_margin() -> None:
    # eps = 1/2 cannot flip an eta = 1 feature, but it lowers h1's margin by 3/2 > 1:
    # only the unanimous 3-0 votes survive, p^3, below the robust optimum.
    classifier = h1(PROPOSITION_1, eps=F(1, 2))
    assert classifier.weights == (F(0),) * 4 + (F(1),) * 3
    assert robust_accuracy(classifier, PROPOSITION_1, eps=F(1, 2)) == F(64, 125)
    assert best_robust_accuracy(PROPOSITION_1, eps=F(1, 2)) == F(112, 125)


# --- small instances by hand ------------------------------------------------------------------


def test_one_feature_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[1])
    w = SignLinearClassifier(weights=[1])
    assert standard_accuracy(w, dist) == F(3, 4)
    assert robust_accuracy(w, dist, eps=F(1, 2)) == F(3, 4)  # margin 1 > 1/2
    assert robust_accuracy(w, dist, eps=1) == 0  # margin 1 - 1 = 0: on the boundary
    # Half credit for the agreeing case (3/4) now on the boundary; the other is wrong.
    assert robust_accuracy(w, dist, eps=1, tie="half") == F(3, 8)
    assert robust_accuracy(w, dist, eps=2, tie="half") == 0
    assert standard_accuracy(SignLinearClassifier(weights=[-1]), dist) == F(1, 4)
    for tie in TIES:
        assert robust_accuracy(w, dist, eps=F(1, 2), norm="l2", tie=tie) == F(3, 4)  # d = 1: l2 = linf
    assert robust_accuracy(w, dist, eps=1, norm="l2") == 0
    assert robust_accuracy(w, dist, eps=1, norm="l2", tie="half") == F(3, 8)
    assert bayes_accuracy(dist) == F(3, 4)
    assert best_robust_accuracy(dist, eps=F(1, 2)) == F(3, 4)
    assert best_robust_accuracy(dist, eps=1) == F(1, 2)  # eta = eps: the feature can be erased


def test_two_features_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[1, 1])
    vote = SignLinearClassifier(weights=[1, 1])
    # Right only when both agree (9/16); they disagree with probability 2·3/16 = 3/8.
    assert standard_accuracy(vote, dist, tie="wrong") == F(9, 16)
    assert standard_accuracy(vote, dist, tie="half") == F(9, 16) + F(3, 16) == F(3, 4)
    assert bayes_accuracy(dist) == F(3, 4)
    # A heavier first feature never ties: it alone decides.
    assert standard_accuracy(SignLinearClassifier(weights=[2, 1]), dist) == F(3, 4)
    # Different scales, same votes: h0 re-scales them.
    scaled = SignFlipDistribution(p=P, eta=[F(1, 100), 2])
    assert h0(scaled).weights == (F(100), F(1, 2))
    assert standard_accuracy(h0(scaled), scaled, tie="half") == F(3, 4)
    # eps = 1/100 cannot flip 2 but flips 1/100; h0's margins 2 or 0 drop by (100 + 1/2)/100 > 1.
    assert robust_accuracy(h0(scaled), scaled, eps=F(1, 100)) == F(9, 16)
    assert robust_accuracy(h0(scaled), scaled, eps=F(1, 50)) == 0
    assert best_robust_accuracy(scaled, eps=F(1, 100)) == F(3, 4)


def test_three_features_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[1, 1, 1])
    vote = h0(dist)
    # Majority of 3: p^3 + 3p^2(1-p) = 27/64 + 27/64.
    assert standard_accuracy(vote, dist) == F(27, 32)
    assert bayes_accuracy(dist) == F(27, 32)
    # linf eps = 1/3: margins 3 or 1 drop by 1 -> 2 or 0: only unanimity survives with tie = wrong.
    assert robust_accuracy(vote, dist, eps=F(1, 3)) == F(27, 64)
    assert robust_accuracy(vote, dist, eps=F(1, 3), tie="half") == F(27, 64) + F(27, 128)
    # l2 eps = 1/3 lowers it by sqrt(3)/3 < 1 only.
    assert robust_accuracy(vote, dist, eps=F(1, 3), norm="l2") == F(27, 32)


def test_zero_scale_and_zero_weight_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[0, 1])
    # x_1 = 0 always: the classifier reads x_2 only.
    assert standard_accuracy(SignLinearClassifier(weights=[5, 1]), dist) == F(3, 4)
    assert bayes_accuracy(dist) == F(3, 4)
    assert bayes_accuracy(SignFlipDistribution(p=P, eta=[0, 0])) == F(1, 2)
    zero = SignLinearClassifier(weights=[0, 0])
    assert standard_accuracy(zero, dist, tie="wrong") == 0
    assert standard_accuracy(zero, dist, tie="half") == F(1, 2)


@given(p=probabilities(), d=st.integers(1, 7))
def test_majority_matches_the_binomial_formula(p: F, d: int) -> None:
    dist = SignFlipDistribution(p=p, eta=[1] * d)
    for tie in TIES:
        assert standard_accuracy(h0(dist), dist, tie=tie) == _majority(d, p, tie=tie)
    assert bayes_accuracy(dist) == _majority(d, p, tie="half")


def test_l2_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[1, 1])
    w = SignLinearClassifier(weights=[3, 4])  # margins ±3 ± 4 ∈ {7, 1, -1, -7}; ‖w‖₂ = 5
    # eps = 1/5: threshold 1, exactly the margin when x_1 disagrees and x_2 agrees.
    assert robust_accuracy(w, dist, eps=F(1, 5), norm="l2") == F(9, 16)
    assert robust_accuracy(w, dist, eps=F(1, 5), norm="l2", tie="half") == F(9, 16) + F(3, 32)
    # Just below the threshold the tie is a win, just above a loss.
    assert robust_accuracy(w, dist, eps=F(199, 1000), norm="l2") == F(9, 16) + F(3, 16)
    assert robust_accuracy(w, dist, eps=F(201, 1000), norm="l2", tie="half") == F(9, 16)
    # eps = 7/5: threshold 7 = the unanimous margin.
    assert robust_accuracy(w, dist, eps=F(7, 5), norm="l2") == 0
    assert robust_accuracy(w, dist, eps=F(7, 5), norm="l2", tie="half") == F(9, 32)
    # linf with eps = 1/5 lowers by 7/5 instead: only the unanimous case survives.
    assert robust_accuracy(w, dist, eps=F(1, 5), norm="linf") == F(9, 16)
    assert robust_accuracy(w, dist, eps=F(1, 7), norm="linf", tie="half") == F(9, 16) + F(3, 32)
    # An irrational threshold: weights [1, 1], ‖w‖₂ = sqrt 2; margins 2 or 0.
    vote = SignLinearClassifier(weights=[1, 1])
    assert robust_accuracy(vote, dist, eps=F(7, 5), norm="l2") == F(9, 16)  # 1.4·1.414 = 1.98 < 2
    assert robust_accuracy(vote, dist, eps=F(71, 50), norm="l2") == 0  # 1.42·1.414 = 2.008 > 2
    # Proposition 1 under l2 with eps = 0.02: threshold 0.02·sqrt(40003) ≈ 4.0001 > 3 but < 5,
    # so h0 needs at least 6 of 7 votes: p^7 + 7p^6(1-p).
    assert robust_accuracy(h0(PROPOSITION_1), PROPOSITION_1, eps=EPS, norm="l2") == (
        F(4, 5) ** 7 + 7 * F(4, 5) ** 6 * F(1, 5)
    )


def test_margin_table_by_hand() -> None:
    dist = SignFlipDistribution(p=P, eta=[F(1, 2), 1])
    w = SignLinearClassifier(weights=[2, F(-1, 3)])
    table = margin_table(w, dist, eps=F(1, 10))
    assert table.patterns.shape == (4, 2) and table.outcome.shape == (4, 2)
    for row, t in enumerate(table.patterns):
        for column, y in enumerate((1, -1)):
            margin = y * (2 * F(1, 2) * int(t[0]) - F(1, 3) * int(t[1])) - F(1, 10) * F(7, 3)
            assert F(int(table.margins_scaled[row, column]), table.scale) - F(7, 30) == margin
            assert table.outcome[row, column] == (margin > 0) - (margin < 0)
            assert table.agreements[row, column] == sum(1 for s in t if s == y)
    assert sum(table.probability().ravel()) == 1


# --- properties of the exact accuracies -------------------------------------------------------


@given(problem=problems(), eps=epsilons(), norm=st.sampled_from(NORMS))
def test_every_exact_figure_is_a_probability(problem, eps: F, norm: str) -> None:
    dist, classifier = problem
    for tie in TIES:
        value = accuracy(classifier, dist, eps=eps, norm=norm, tie=tie)
        assert isinstance(value, F) and 0 <= value <= 1
    assert 0 <= bayes_accuracy(dist) <= 1
    assert F(1, 2) <= best_robust_accuracy(dist, eps=eps) <= bayes_accuracy(dist)
    point = _support(dist)[0]
    for y in (-1, 1):
        assert 0 <= posterior(dist, point, y=y) <= 1
        assert 0 <= likelihood(dist, point, y=y) <= 1


@given(problem=problems(), eps=epsilons(), larger=epsilons(), norm=st.sampled_from(NORMS), tie=st.sampled_from(TIES))
def test_robust_accuracy_is_at_most_standard_and_decreases_with_eps(problem, eps, larger, norm, tie) -> None:
    dist, classifier = problem
    eps, larger = sorted((eps, larger))
    standard = standard_accuracy(classifier, dist, tie=tie)
    robust = robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie)
    assert robust <= standard
    assert robust_accuracy(classifier, dist, eps=larger, norm=norm, tie=tie) <= robust
    assert robust_accuracy(classifier, dist, eps=0, norm=norm, tie=tie) == standard
    # ‖w‖₂ <= ‖w‖₁: an l2 ball of radius eps is inside the linf ball, so it hurts less.
    assert robust_accuracy(classifier, dist, eps=eps, norm="l2", tie=tie) >= robust_accuracy(
        classifier, dist, eps=eps, norm="linf", tie=tie
    )
    # A coin on the boundary is never worse than calling it wrong.
    assert accuracy(classifier, dist, eps=eps, norm=norm, tie="half") >= accuracy(
        classifier, dist, eps=eps, norm=norm, tie="wrong"
    )


@given(problem=problems(), eps=epsilons(), norm=st.sampled_from(NORMS), scale=st.sampled_from([F(1, 3), F(2), F(7, 2)]))
def test_accuracy_is_invariant_to_rescaling_the_weights(problem, eps, norm, scale) -> None:
    dist, classifier = problem
    scaled = SignLinearClassifier(weights=[scale * w for w in classifier.weights])
    for tie in TIES:
        assert accuracy(scaled, dist, eps=eps, norm=norm, tie=tie) == accuracy(
            classifier, dist, eps=eps, norm=norm, tie=tie
        )


@given(problem=problems())
def test_negated_weights_swap_right_and_wrong(problem) -> None:
    dist, classifier = problem
    negated = SignLinearClassifier(weights=[-w for w in classifier.weights])
    assert standard_accuracy(classifier, dist, tie="half") + standard_accuracy(negated, dist, tie="half") == 1
    on_boundary = standard_accuracy(classifier, dist, tie="half") - standard_accuracy(classifier, dist, tie="wrong")
    assert standard_accuracy(classifier, dist) + standard_accuracy(negated, dist) == 1 - 2 * on_boundary


def _direct_accuracy(classifier, dist, *, eps: F, norm: str) -> dict[str, F]:
    """An independent enumeration: every (pattern, y) with its probability and exact margin."""
    p, w = dist.p, classifier.weights
    squared_norm = sum((v * v for v in w), F(0))
    expected = {"wrong": F(0), "half": F(0)}
    for t in itertools.product((-1, 1), repeat=dist.d):
        for y in (-1, 1):
            agree = sum(1 for s in t if s == y)
            probability = p**agree * (1 - p) ** (dist.d - agree) / 2
            clean = y * sum((wi * e * s for wi, e, s in zip(w, dist.eta, t)), F(0))
            if norm == "linf":
                robust = clean - eps * sum((abs(v) for v in w), F(0))
                sign = (robust > 0) - (robust < 0)
            else:  # clean - eps·sqrt(Σw²) compared with 0 by squares
                threshold_squared = eps * eps * squared_norm
                if clean < 0 or clean * clean < threshold_squared:
                    sign = -1
                else:
                    sign = 0 if clean * clean == threshold_squared else 1
            expected["wrong"] += probability * (sign > 0)
            expected["half"] += probability * ((sign > 0) + F(sign == 0, 2))
    return expected


@given(problem=problems(max_d=5), eps=epsilons(), norm=st.sampled_from(NORMS))
def test_accuracy_agrees_with_a_direct_enumeration(problem, eps, norm) -> None:
    dist, classifier = problem
    expected = _direct_accuracy(classifier, dist, eps=eps, norm=norm)
    for tie in TIES:
        assert accuracy(classifier, dist, eps=eps, norm=norm, tie=tie) == expected[tie]


_BIG_PRIMES = (10**12 + 39, 10**12 + 61, 10**13 + 37, 2**61 - 1)


@settings(max_examples=30)
@given(
    p=probabilities(),
    d=st.integers(1, 4),
    norm=st.sampled_from(NORMS),
    data=st.data(),
)
def test_huge_denominators_stay_exact(p, d, norm, data) -> None:
    """Scaled margins beyond int64 are kept as Python ints, and the result stays exact."""
    big = st.sampled_from(_BIG_PRIMES)
    eta = [F(data.draw(st.integers(1, 5)), data.draw(big)) for _ in range(d)]
    weights = [F(data.draw(st.integers(-5, 5)), data.draw(big)) for _ in range(d)]
    eps = data.draw(st.sampled_from([F(0), F(1, _BIG_PRIMES[0] * _BIG_PRIMES[1]), F(1, 10**30)]))
    dist = SignFlipDistribution(p=p, eta=eta)
    classifier = SignLinearClassifier(weights=weights)
    expected = _direct_accuracy(classifier, dist, eps=eps, norm=norm)
    for tie in TIES:
        assert accuracy(classifier, dist, eps=eps, norm=norm, tie=tie) == expected[tie]


def test_huge_scale_uses_python_integers() -> None:
    dist = SignFlipDistribution(p=P, eta=[F(1, _BIG_PRIMES[0]), F(1, _BIG_PRIMES[1])])
    classifier = SignLinearClassifier(weights=[F(1, _BIG_PRIMES[2]), F(-1, _BIG_PRIMES[3])])
    table = margin_table(classifier, dist, eps=F(1, _BIG_PRIMES[0]))
    assert table.scale > 2**62 and table.margins_scaled.dtype == object
    for norm in NORMS:
        for tie in TIES:
            eps = F(1, 10**40)
            assert accuracy(classifier, dist, eps=eps, norm=norm, tie=tie) == (
                _direct_accuracy(classifier, dist, eps=eps, norm=norm)[tie]
            )
    # The first feature's weighted scale 1/(p0·p2) dwarfs the second's 1/(p1·p3): it alone decides.
    assert standard_accuracy(classifier, dist) == F(3, 4)


@given(dist=distributions(positive=True))
def test_majority_vote_h0_is_bayes_optimal(dist: SignFlipDistribution) -> None:
    bayes = bayes_accuracy(dist)
    assert standard_accuracy(h0(dist), dist, tie="half") == bayes
    if dist.d % 2 == 1:
        assert standard_accuracy(h0(dist), dist, tie="wrong") == bayes
    else:
        # An even vote ties with positive probability, and a tie counted wrong costs accuracy.
        assert standard_accuracy(h0(dist), dist, tie="wrong") < bayes


@given(problem=problems(), eps=epsilons())
def test_no_sign_linear_classifier_beats_the_optima(problem, eps: F) -> None:
    dist, classifier = problem
    for tie in TIES:
        assert standard_accuracy(classifier, dist, tie=tie) <= bayes_accuracy(dist)
        assert robust_accuracy(classifier, dist, eps=eps, norm="linf", tie=tie) <= best_robust_accuracy(dist, eps=eps)


@settings(max_examples=50)
@given(dist=distributions(max_d=6))
def test_bayes_accuracy_is_the_sum_of_the_larger_joint(dist: SignFlipDistribution) -> None:
    points = _support(dist)
    expected = sum((max(likelihood(dist, x, y=1), likelihood(dist, x, y=-1)) / 2 for x in points), F(0))
    assert bayes_accuracy(dist) == expected
    bayes = BayesOptimalClassifier(dist)
    assert decision_rule_accuracy(dist, bayes.decide) == expected
    # The vectorised predict agrees with the exact decide on every point of the support.
    predicted = bayes.predict(np.array([[float(v) for v in x] for x in points]))
    assert predicted.tolist() == [bayes.decide(x) for x in points]
    # Any other rule does no better, e.g. always +1 or a single feature's sign.
    assert decision_rule_accuracy(dist, lambda x: 1) == F(1, 2) <= expected


@settings(max_examples=50)
@given(dist=distributions(max_d=6))
def test_posterior_sums_to_one_and_printed_eq_20_is_the_likelihood(dist: SignFlipDistribution) -> None:
    total_positive = total_negative = F(0)
    for x in _support(dist):
        assert posterior(dist, x, y=1) + posterior(dist, x, y=-1) == 1
        for y in (-1, 1):
            assert posterior_as_printed(dist, x, y=y) == likelihood(dist, x, y=y)
        assert posterior(dist, x, y=1) == likelihood(dist, x, y=1) / (
            likelihood(dist, x, y=1) + likelihood(dist, x, y=-1)
        )
        total_positive += likelihood(dist, x, y=1)
        total_negative += likelihood(dist, x, y=-1)
    assert total_positive == total_negative == 1


@given(dist=distributions(max_d=6), eps=epsilons())
def test_best_robust_accuracy_is_the_bayes_accuracy_of_the_robust_features(dist, eps) -> None:
    robust = robust_features(dist, eps=eps)
    assert robust == [i for i, e in enumerate(dist.eta) if e > eps]
    expected = bayes_accuracy(dist.restricted_to(robust)) if robust else F(1, 2)
    assert best_robust_accuracy(dist, eps=eps) == expected
    # It is reached: the Bayes rule on the signs of the robust features cannot be moved by the adversary.
    if robust:
        assert best_robust_accuracy(dist, eps=eps) == decision_rule_accuracy(
            dist, lambda x: 1 if sum(1 if x[i] > 0 else -1 for i in robust) >= 0 else -1
        )


@given(problem=problems(), eps=epsilons(), norm=st.sampled_from(NORMS), tie=st.sampled_from(TIES), data=st.data())
def test_attacking_fewer_features_never_hurts_more(problem, eps, norm, tie, data) -> None:
    dist, classifier = problem
    subset = data.draw(st.lists(st.integers(0, dist.d - 1), unique=True))
    everything = robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie)
    partial = robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie, attacked=subset)
    assert everything <= partial <= standard_accuracy(classifier, dist, tie=tie)
    assert robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie, attacked=[]) == standard_accuracy(
        classifier, dist, tie=tie
    )
    assert robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie, attacked=list(range(dist.d))) == everything
    # Attacking features whose weight is 0 is the same as not attacking them.
    useful = [i for i in subset if classifier.weights[i] != 0]
    assert robust_accuracy(classifier, dist, eps=eps, norm=norm, tie=tie, attacked=useful) == partial


@given(problem=problems(), eps=epsilons(), norm=st.sampled_from(NORMS))
def test_margin_table_outcomes_are_the_exact_signs(problem, eps, norm) -> None:
    dist, classifier = problem
    table = margin_table(classifier, dist, eps=eps, norm=norm)
    assert table.patterns.shape == (2**dist.d, dist.d)
    assert set(np.unique(table.outcome).tolist()) <= {-1, 0, 1}
    assert sum(table.probability().ravel()) == 1
    np.testing.assert_array_equal(table.margins_scaled[:, 0], -table.margins_scaled[:, 1])
    # Column 0 is y = +1: the scaled margin is scale·w·(eta ⊙ t).
    for row in range(0, 2**dist.d, max(1, 2**dist.d // 8)):
        t = table.patterns[row]
        clean = sum((w * e * int(s) for w, e, s in zip(classifier.weights, dist.eta, t)), F(0))
        assert F(int(table.margins_scaled[row, 0]), table.scale) == clean


# --- errors -----------------------------------------------------------------------------------


def test_accuracy_rejects_bad_arguments() -> None:
    dist = SignFlipDistribution(p=P, eta=[1, 1])
    w = SignLinearClassifier(weights=[1, 1])
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        accuracy(w, dist, eps=-0.1)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        robust_accuracy(w, dist, eps=F(-1, 100))
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        accuracy(w, dist, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match=r"^tie must be one of"):
        accuracy(w, dist, tie="coin")
    with pytest.raises(ValueError, match=r"^tie must be one of"):
        standard_accuracy(w, dist, tie="right")
    with pytest.raises(ValueError, match=r"^classifier has 3 weights but the distribution has d = 2"):
        accuracy(SignLinearClassifier(weights=[1, 1, 1]), dist)
    with pytest.raises(ValueError, match=r"^attacked must list distinct"):
        accuracy(w, dist, eps=0.1, attacked=[2])
    with pytest.raises(ValueError, match=r"^attacked must list distinct"):
        accuracy(w, dist, eps=0.1, attacked=[0, 0])
    with pytest.raises(TypeError):
        accuracy(w, dist, 0.1)  # type: ignore[misc]


def test_enumeration_is_limited() -> None:
    d = MAX_ENUMERATION_DIM + 1
    dist = SignFlipDistribution(p=P, eta=[1] * d)
    with pytest.raises(ValueError, match=rf"^exact enumeration is limited to d <= {MAX_ENUMERATION_DIM}"):
        standard_accuracy(SignLinearClassifier(weights=[1] * d), dist)
    with pytest.raises(ValueError, match=r"limited to d <= "):
        decision_rule_accuracy(dist, lambda x: 1)


def test_posterior_rejects_points_off_the_support() -> None:
    with pytest.raises(ValueError, match=r"^y must be -1 or \+1"):
        posterior(PROPOSITION_1, [F(1, 100)] * 4 + [1] * 3, y=0)
    with pytest.raises(ValueError, match=r"^y must be -1 or \+1"):
        posterior_as_printed(PROPOSITION_1, [F(1, 100)] * 4 + [1] * 3, y=2)
    with pytest.raises(ValueError, match=r"^x must have d = 7 entries"):
        posterior(PROPOSITION_1, [1, 1], y=1)
    with pytest.raises(ValueError, match=r"x\[4\] must be \+eta\[4\] or -eta\[4\]"):
        posterior(PROPOSITION_1, [F(1, 100)] * 4 + [F(1, 2)] + [1] * 2, y=1)
    with pytest.raises(ValueError, match=r"x\[0\] must be 0 because eta\[0\] = 0"):
        likelihood(SignFlipDistribution(p=P, eta=[0, 1]), [1, 1], y=1)
    # p = 1 puts no mass on a point with a disagreeing feature.
    with pytest.raises(ValueError, match="probability 0"):
        posterior(SignFlipDistribution(p=1, eta=[1, 1]), [1, -1], y=1)
    assert BayesOptimalClassifier(SignFlipDistribution(p=1, eta=[1, 1])).decide([1, -1]) == 1


def test_decision_rule_accuracy_rejects_a_non_label() -> None:
    with pytest.raises(ValueError, match=r"^decide must return -1 or \+1"):
        decision_rule_accuracy(SignFlipDistribution(p=P, eta=[1]), lambda x: 0)


def test_bayes_predict_rejects_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"^x must have shape \(n, 7\)"):
        BayesOptimalClassifier(PROPOSITION_1).predict(np.zeros((2, 6)))


# --- Eq. 13: Tsipras et al. -------------------------------------------------------------------


def test_tsipras_closed_forms_by_hand() -> None:
    d, eta, p = 9, 0.5, 0.9
    dist = TsiprasDistribution(p=p, eta=eta, d=d)
    phi = stats.norm.cdf
    # f_avg: the mean of d N(eta y, 1) features is N(eta y, 1/d).
    assert tsipras_accuracy(f_avg(d), dist) == pytest.approx(phi(eta * math.sqrt(d)), abs=1e-12)
    # An linf attack of 2·eta shifts the mean to -eta (Tsipras et al.'s argument).
    assert tsipras_accuracy(f_avg(d), dist, eps=2 * eta) == pytest.approx(phi(-eta * math.sqrt(d)), abs=1e-12)
    # l2: the attack costs eps·‖w‖₂ = eps/sqrt(d) instead of eps·‖w‖₁ = eps.
    assert tsipras_accuracy(f_avg(d), dist, eps=0.3, norm="l2") == pytest.approx(
        phi((eta - 0.3 / math.sqrt(d)) * math.sqrt(d)), abs=1e-12
    )
    # f_rob has accuracy p until eps reaches the size 1 of x_1, then 0 (a tie counts as wrong).
    assert tsipras_accuracy(f_rob(d), dist) == pytest.approx(p)
    assert tsipras_accuracy(f_rob(d), dist, eps=0.99) == pytest.approx(p)
    assert tsipras_accuracy(f_rob(d), dist, eps=1) == 0
    assert tsipras_accuracy(f_rob(d), dist, eps=0.5, norm="l2") == pytest.approx(p)


def test_tsipras_bayes_classifier_weights() -> None:
    dist = TsiprasDistribution(p=0.9, eta=0.25, d=3)
    classifier = tsipras_bayes_classifier(dist)
    assert float(classifier.weights[0]) == pytest.approx(math.log(9))
    assert [float(w) for w in classifier.weights[1:]] == [0.5] * 3
    for p in (0, 1):
        with pytest.raises(ValueError, match=r"0 < p < 1"):
            tsipras_bayes_classifier(TsiprasDistribution(p=p, eta=0.25, d=3))


def test_tsipras_accuracy_rejects_bad_arguments() -> None:
    dist = TsiprasDistribution(p=0.9, eta=0.5, d=3)
    with pytest.raises(ValueError, match=r"^classifier has 3 weights; Eq. 13 with d = 3 has 4 coordinates"):
        tsipras_accuracy(f_avg(2), dist)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        tsipras_accuracy(f_avg(3), dist, eps=-1)
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        tsipras_accuracy(f_avg(3), dist, norm="l1")


@given(
    p=probabilities(),
    eta=st.sampled_from([0.1, 0.5, 1.0, 2.0]),
    d=st.integers(1, 6),
    eps=st.sampled_from([0, 0.02, 0.1, 0.5, 1.0]),
    norm=st.sampled_from(NORMS),
    data=st.data(),
)
def test_tsipras_properties(p, eta, d, eps, norm, data) -> None:
    dist = TsiprasDistribution(p=p, eta=eta, d=d)
    weights = data.draw(weights_list(d + 1))
    classifier = SignLinearClassifier(weights=weights)
    standard = tsipras_accuracy(classifier, dist)
    robust = tsipras_accuracy(classifier, dist, eps=eps, norm=norm)
    assert 0 <= robust <= standard + 1e-12 <= 1 + 1e-12
    # No sign-linear classifier beats the Bayes-optimal one on clean data.
    bayes = tsipras_accuracy(tsipras_bayes_classifier(dist), dist)
    assert standard <= bayes + 1e-12
    assert max(tsipras_accuracy(f_avg(d), dist), tsipras_accuracy(f_rob(d), dist)) <= bayes + 1e-12
