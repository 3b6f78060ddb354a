"""theory.simulation: Monte Carlo estimates, their intervals, and their agreement with the exact figures."""

from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from theory_strategies import NORMS, TIES, distributions, epsilons, probabilities, problems, weights_list

from theory import (
    PROPOSITION_1,
    PROPOSITION_1_EPS,
    BayesOptimalClassifier,
    MonteCarloEstimate,
    SignFlipDistribution,
    SignLinearClassifier,
    TsiprasDistribution,
    accuracy,
    bayes_accuracy,
    f_avg,
    f_rob,
    h0,
    h1,
    monte_carlo_accuracy,
    tsipras_accuracy,
    tsipras_bayes_classifier,
)
from theory.classifiers import worst_case_perturbation
from theory.exact import margin_table
from theory.simulation import estimate_from_counts, estimate_mean_difference, monte_carlo_correct

STRICT = 1 - 1e-6  # each check below fails by chance with probability at most 1e-6
SAMPLES = 20_000


# --- Clopper–Pearson intervals ----------------------------------------------------------------


@pytest.mark.parametrize(("successes", "samples"), [(0, 10), (10, 10), (3, 10), (500, 1000), (1, 1)])
def test_clopper_pearson_matches_the_beta_quantiles(successes: int, samples: int) -> None:
    alpha = 0.05
    estimate = estimate_from_counts(successes, samples)
    expected_low = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, samples - successes + 1)
    expected_high = 1.0 if successes == samples else stats.beta.ppf(1 - alpha / 2, successes + 1, samples - successes)
    assert estimate.lower == pytest.approx(expected_low, abs=1e-9)
    assert estimate.upper == pytest.approx(expected_high, abs=1e-9)
    assert estimate.value == successes / samples
    assert estimate.lower <= estimate.value <= estimate.upper
    assert (estimate.samples, estimate.confidence, estimate.method) == (samples, 0.95, "clopper-pearson")


def test_wider_confidence_gives_a_wider_interval() -> None:
    narrow = estimate_from_counts(300, 1000, confidence=0.9)
    wide = estimate_from_counts(300, 1000, confidence=STRICT)
    assert wide.lower < narrow.lower < 0.3 < narrow.upper < wide.upper


def test_clopper_pearson_coverage() -> None:
    """Over 400 independent experiments the 95% interval covers the true p at least ~95% of the time."""
    rng = np.random.default_rng(20200101)
    true_p, n, runs = 0.3, 200, 400
    counts = rng.binomial(n, true_p, size=runs)
    covered = sum(estimate_from_counts(int(k), n).contains(true_p) for k in counts)
    assert covered / runs >= 0.9
    # And not trivially: the intervals are not the whole unit interval.
    widths = [estimate_from_counts(int(k), n).upper - estimate_from_counts(int(k), n).lower for k in counts[:20]]
    assert max(widths) < 0.2


@pytest.mark.parametrize(("successes", "samples"), [(-1, 10), (11, 10), (0, 0), (1, 0), (5, -5)])
def test_estimate_from_counts_rejects_bad_counts(successes: int, samples: int) -> None:
    with pytest.raises(ValueError, match=r"^need 0 <= successes <= samples and samples >= 1"):
        estimate_from_counts(successes, samples)


@pytest.mark.parametrize("confidence", [0, 1, -0.5, 1.5, math.nan])
def test_confidence_must_lie_in_the_open_unit_interval(confidence: float) -> None:
    with pytest.raises(ValueError, match=r"^confidence must lie in \(0, 1\)"):
        estimate_from_counts(5, 10, confidence=confidence)
    with pytest.raises(ValueError, match=r"^confidence must lie in \(0, 1\)"):
        estimate_mean_difference(np.zeros(5), np.ones(5), confidence=confidence)


def test_monte_carlo_estimate_contains_and_str() -> None:
    estimate = MonteCarloEstimate(value=0.5, lower=0.4, upper=0.6, samples=10, confidence=0.95, method="x")
    assert estimate.contains(0.4) and estimate.contains(0.6) and estimate.contains(F(1, 2))
    assert not estimate.contains(0.39) and not estimate.contains(0.61)
    assert str(estimate) == "0.500000 [0.400000, 0.600000]"


# --- paired differences -----------------------------------------------------------------------


def test_mean_difference_by_hand() -> None:
    first = np.array([1.0, 1.0, 0.0, 1.0])
    second = np.array([0.0, 1.0, 0.0, 0.0])
    estimate = estimate_mean_difference(first, second)
    assert estimate.value == 0.5
    half = stats.norm.ppf(0.975) * np.std([1, 0, 0, 1], ddof=1) / 2
    assert estimate.lower == pytest.approx(0.5 - half) and estimate.upper == pytest.approx(0.5 + half)
    assert estimate.method == "normal" and estimate.samples == 4
    same = estimate_mean_difference(first, first)
    assert (same.value, same.lower, same.upper) == (0.0, 0.0, 0.0)


def test_mean_difference_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"^need two 1-D arrays of equal length >= 2"):
        estimate_mean_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"^need two 1-D arrays of equal length >= 2"):
        estimate_mean_difference(np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match=r"^need two 1-D arrays of equal length >= 2"):
        estimate_mean_difference(np.zeros((2, 2)), np.zeros((2, 2)))


def test_mean_difference_covers_the_exact_accuracy_cost() -> None:
    correct_h0 = monte_carlo_correct(h0(PROPOSITION_1), PROPOSITION_1, samples=SAMPLES, seed=3)
    correct_h1 = monte_carlo_correct(h1(PROPOSITION_1, eps=PROPOSITION_1_EPS), PROPOSITION_1, samples=SAMPLES, seed=3)
    estimate = estimate_mean_difference(correct_h0, correct_h1, confidence=STRICT)
    assert estimate.contains(F(15104, 15625) - F(112, 125))


# --- monte_carlo_accuracy: arguments ----------------------------------------------------------


def test_monte_carlo_is_reproducible() -> None:
    classifier = h0(PROPOSITION_1)
    first = monte_carlo_accuracy(classifier, PROPOSITION_1, samples=2000, seed=5)
    again = monte_carlo_accuracy(classifier, PROPOSITION_1, samples=2000, seed=5)
    assert first == again
    correct = monte_carlo_correct(classifier, PROPOSITION_1, samples=2000, seed=5)
    assert correct.dtype == bool and correct.shape == (2000,)
    assert first.value == correct.mean() and first.samples == 2000


@pytest.mark.parametrize("samples", [0, -5, True, 2.5, "100"])
def test_monte_carlo_rejects_a_bad_sample_count(samples) -> None:
    with pytest.raises(ValueError, match=r"^samples must be an integer >= 1"):
        monte_carlo_accuracy(h0(PROPOSITION_1), PROPOSITION_1, samples=samples)


def test_monte_carlo_rejects_bad_arguments() -> None:
    classifier = h0(PROPOSITION_1)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        monte_carlo_accuracy(classifier, PROPOSITION_1, eps=-0.02, samples=10)
    with pytest.raises(ValueError, match=r"^tie must be one of"):
        monte_carlo_accuracy(classifier, PROPOSITION_1, samples=10, tie="coin")
    with pytest.raises(ValueError, match=r"^norm must be one of"):
        monte_carlo_accuracy(classifier, PROPOSITION_1, eps=0.02, samples=10, norm="l1")
    with pytest.raises(ValueError, match=r"^confidence must lie in \(0, 1\)"):
        monte_carlo_accuracy(classifier, PROPOSITION_1, samples=10, confidence=1.0)
    with pytest.raises(ValueError, match=r"^attacked must list distinct"):
        monte_carlo_accuracy(classifier, PROPOSITION_1, eps=0.02, samples=10, attacked=[7])
    with pytest.raises(ValueError, match=r"^x must have shape \(n, 3\)"):
        monte_carlo_accuracy(SignLinearClassifier(weights=[1, 1, 1]), PROPOSITION_1, samples=10)
    # The closed-form attack needs a sign-linear classifier.
    with pytest.raises(ValueError, match="SignLinearClassifier"):
        monte_carlo_accuracy(BayesOptimalClassifier(PROPOSITION_1), PROPOSITION_1, eps=0.02, samples=10)


# --- Monte Carlo agrees with the exact figures on Eq. 16 ---------------------------------------


def test_monte_carlo_on_proposition_1() -> None:
    dist, eps = PROPOSITION_1, PROPOSITION_1_EPS
    cases = [
        (h0(dist), 0, F(15104, 15625)),
        (h0(dist), eps, F(0)),
        (h1(dist, eps=eps), 0, F(112, 125)),
        (h1(dist, eps=eps), eps, F(112, 125)),
    ]
    for classifier, radius, exact in cases:
        estimate = monte_carlo_accuracy(classifier, dist, eps=radius, samples=SAMPLES, seed=11, confidence=STRICT)
        assert estimate.contains(exact), (classifier.name, radius, str(estimate))
        assert abs(estimate.value - float(exact)) < 0.01


def test_monte_carlo_breaks_exact_ties_as_the_enumeration_does() -> None:
    # Two votes of weight 1 on eta = (1, 1): they tie whenever they disagree (probability 3/8).
    dist = SignFlipDistribution(p=F(3, 4), eta=[1, 1])
    vote = SignLinearClassifier(weights=[1, 1])
    for tie, exact in (("wrong", F(9, 16)), ("half", F(3, 4))):
        assert accuracy(vote, dist, tie=tie) == exact
        estimate = monte_carlo_accuracy(vote, dist, samples=SAMPLES, seed=2, confidence=STRICT, tie=tie)
        assert estimate.contains(exact), (tie, str(estimate))
    # Under attack: eps = 1/2 turns the unanimous margin 2 into 1 and the split margin 0 into -1.
    for tie in TIES:
        estimate = monte_carlo_accuracy(vote, dist, eps=F(1, 2), samples=SAMPLES, seed=2, confidence=STRICT, tie=tie)
        assert estimate.contains(F(9, 16))
    # eps = 1 puts the unanimous case exactly on the boundary: half of 9/16 under tie = "half".
    estimate = monte_carlo_accuracy(vote, dist, eps=1, samples=SAMPLES, seed=2, confidence=STRICT, tie="half")
    assert accuracy(vote, dist, eps=1, tie="half") == F(9, 32)
    assert estimate.contains(F(9, 32))
    assert monte_carlo_accuracy(vote, dist, eps=1, samples=SAMPLES, seed=2, tie="wrong").value == 0


@settings(max_examples=60)
@given(problem=problems(), eps=epsilons(), norm=st.sampled_from(NORMS))
def test_float_prediction_sees_every_exact_tie_as_a_tie(problem, eps, norm) -> None:
    """Where the enumeration finds a margin exactly on the threshold, the float simulation's
    prediction at the attacked point is 0 (on the boundary) despite rounding."""
    dist, classifier = problem
    table = margin_table(classifier, dist, eps=eps, norm=norm)
    rows, columns = np.nonzero(table.outcome == 0)
    if rows.size:
        eta = np.array([float(e) for e in dist.eta])
        x = table.patterns[rows] * eta
        y = np.where(columns == 0, 1, -1)
        delta = worst_case_perturbation(classifier, x, y, eps=eps, norm=norm)
        assert np.all(classifier.predict(x + delta) == 0)
    decided = np.nonzero(table.outcome != 0)
    if decided[0].size:
        eta = np.array([float(e) for e in dist.eta])
        x = table.patterns[decided[0]] * eta
        y = np.where(decided[1] == 0, 1, -1)
        delta = worst_case_perturbation(classifier, x, y, eps=eps, norm=norm)
        assert np.array_equal(classifier.predict(x + delta) * y, table.outcome[decided])


@settings(max_examples=60)
@given(
    problem=problems(),
    eps=epsilons(),
    norm=st.sampled_from(NORMS),
    tie=st.sampled_from(TIES),
    seed=st.integers(0, 2**32 - 1),
)
def test_monte_carlo_contains_the_exact_accuracy(problem, eps, norm, tie, seed) -> None:
    dist, classifier = problem
    exact = accuracy(classifier, dist, eps=eps, norm=norm, tie=tie)
    estimate = monte_carlo_accuracy(
        classifier, dist, eps=eps, norm=norm, samples=SAMPLES, seed=seed, confidence=STRICT, tie=tie
    )
    assert estimate.contains(exact), (float(exact), str(estimate))


@settings(max_examples=40)
@given(problem=problems(), eps=epsilons(), tie=st.sampled_from(TIES), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_monte_carlo_with_an_attacked_subset(problem, eps, tie, seed, data) -> None:
    dist, classifier = problem
    attacked = data.draw(st.lists(st.integers(0, dist.d - 1), unique=True))
    exact = accuracy(classifier, dist, eps=eps, tie=tie, attacked=attacked)
    estimate = monte_carlo_accuracy(
        classifier, dist, eps=eps, samples=SAMPLES, seed=seed, confidence=STRICT, tie=tie, attacked=attacked
    )
    assert estimate.contains(exact), (float(exact), str(estimate))


def test_exact_ties_survive_float_rounding() -> None:
    # eta = (1/50, 1/50), w = (1, 1/3), linf eps = 1/100: the threshold eps·‖w‖₁ = 1/75 equals
    # the margin 1/50 − 1/150 of the inputs whose second feature disagrees, an exact tie.
    # In floats 1·0.01 + (1/3)·(−0.03) is not 0.0; predict's relative tolerance treats it as a tie.
    dist = SignFlipDistribution(p=F(2, 3), eta=[F(1, 50), F(1, 50)])
    classifier = SignLinearClassifier(weights=[1, F(1, 3)])
    table = margin_table(classifier, dist, eps=F(1, 100))
    assert np.any(table.outcome == 0)
    exact = accuracy(classifier, dist, eps=F(1, 100), tie="half")
    # Both features agree (4/9): right. Only the first agrees (2/9): margin 2/150 = threshold, a tie.
    # Only the second (2/9) or neither (1/9): wrong. With ties worth half: 4/9 + 1/9.
    assert exact == F(4, 9) + F(2, 9) / 2 == F(5, 9)
    estimate = monte_carlo_accuracy(
        classifier, dist, eps=F(1, 100), samples=SAMPLES, seed=0, confidence=STRICT, tie="half"
    )
    assert estimate.contains(exact), (float(exact), str(estimate))


@settings(max_examples=40)
@given(dist=distributions(), seed=st.integers(0, 2**32 - 1))
def test_monte_carlo_of_the_bayes_classifier_contains_bayes_accuracy(dist, seed) -> None:
    estimate = monte_carlo_accuracy(
        BayesOptimalClassifier(dist), dist, samples=SAMPLES, seed=seed, confidence=STRICT
    )
    assert estimate.contains(bayes_accuracy(dist)), (float(bayes_accuracy(dist)), str(estimate))


@settings(max_examples=40)
@given(problem=problems(positive=True), seed=st.integers(0, 2**32 - 1))
def test_common_samples_compare_two_classifiers(problem, seed) -> None:
    dist, classifier = problem
    mine = monte_carlo_correct(classifier, dist, samples=SAMPLES, seed=seed, tie="wrong")
    vote = monte_carlo_correct(h0(dist), dist, samples=SAMPLES, seed=seed, tie="wrong")
    estimate = estimate_mean_difference(vote, mine, confidence=STRICT)
    exact = accuracy(h0(dist), dist) - accuracy(classifier, dist)
    assume(not np.any(margin_table(classifier, dist).outcome == 0))
    assume(not np.any(margin_table(h0(dist), dist).outcome == 0))
    # The normal approximation is poor for a degenerate difference; skip those.
    assume(estimate.upper > estimate.lower)
    assert estimate.contains(exact), (float(exact), str(estimate))


# --- Monte Carlo agrees with the closed form on Eq. 13 ------------------------------------------


@settings(max_examples=60)
@given(
    p=probabilities(),
    eta=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    d=st.integers(1, 6),
    eps=st.sampled_from([0, 0, 0.02, 0.1, 0.5, 1.0]),
    norm=st.sampled_from(NORMS),
    which=st.sampled_from(["f_avg", "f_rob", "bayes", "random"]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_tsipras_closed_form_inside_the_monte_carlo_interval(p, eta, d, eps, norm, which, seed, data) -> None:
    dist = TsiprasDistribution(p=p, eta=eta, d=d)
    if which == "f_avg":
        classifier = f_avg(d)
    elif which == "f_rob":
        classifier = f_rob(d)
    elif which == "bayes":
        classifier = tsipras_bayes_classifier(dist)
    else:
        classifier = SignLinearClassifier(weights=data.draw(weights_list(d + 1)))
    closed = tsipras_accuracy(classifier, dist, eps=eps, norm=norm)
    estimate = monte_carlo_accuracy(classifier, dist, eps=eps, norm=norm, samples=SAMPLES, seed=seed, confidence=STRICT)
    assert estimate.contains(closed), (which, closed, str(estimate))


def test_tsipras_f_avg_loses_to_an_attack_of_two_eta() -> None:
    # The paper: with eps = 2 eta, f_avg relies on non-robust features and collapses.
    d, eta = 100, 0.25  # 2·eta = 1/2 < 1: x_1 cannot be flipped
    dist = TsiprasDistribution(p=0.9, eta=eta, d=d)
    standard = monte_carlo_accuracy(f_avg(d), dist, samples=SAMPLES, seed=1, confidence=STRICT)
    attacked = monte_carlo_accuracy(f_avg(d), dist, eps=2 * eta, samples=SAMPLES, seed=1, confidence=STRICT)
    assert standard.contains(stats.norm.cdf(eta * math.sqrt(d)))
    assert attacked.contains(stats.norm.cdf(-eta * math.sqrt(d)))
    assert attacked.upper < 0.02 < 0.98 < standard.lower
    robust = monte_carlo_accuracy(f_rob(d), dist, eps=2 * eta, samples=SAMPLES, seed=1, confidence=STRICT)
    assert robust.contains(0.9)
