"""Exact accuracies on the toy distributions of Appendix A.2.

For the paper's distribution (Eq. 16) every figure here is an exact rational
number (`fractions.Fraction`), obtained by enumerating all 2ᵈ sign
patterns of the features together with both labels — no sampling, no floating
point. For the Gaussian distribution of Tsipras et al. (Eq. 13) the accuracies of
sign-linear classifiers have closed forms in the normal CDF Φ, which is not
rational; those are returned as floats and called closed forms, not exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from scipy import stats

from theory._rational import RationalLike, check_nonnegative, to_fractions
from theory.classifiers import Norm, SignLinearClassifier, _check_norm, attacked_mask, dual_norm
from theory.distributions import SignFlipDistribution, TsiprasDistribution

__all__ = [
    "MAX_ENUMERATION_DIM",
    "Tie",
    "MarginTable",
    "margin_table",
    "accuracy",
    "standard_accuracy",
    "robust_accuracy",
    "likelihood",
    "posterior",
    "posterior_as_printed",
    "BayesOptimalClassifier",
    "bayes_accuracy",
    "decision_rule_accuracy",
    "robust_features",
    "best_robust_accuracy",
    "tsipras_accuracy",
    "tsipras_bayes_classifier",
]

MAX_ENUMERATION_DIM = 20
"""Largest d enumerated exactly (2²⁰ patterns); beyond it use Monte Carlo."""

Tie = Literal["wrong", "half"]
_TIES = ("wrong", "half")


def _check_tie(tie: str) -> str:
    if tie not in _TIES:
        raise ValueError(f"tie must be one of {_TIES}, got {tie!r}")
    return tie


def _check_enumerable(d: int) -> None:
    if d > MAX_ENUMERATION_DIM:
        raise ValueError(
            f"exact enumeration is limited to d <= {MAX_ENUMERATION_DIM} "
            f"(2^d patterns), got d = {d}; use theory.simulation.monte_carlo_accuracy"
        )


def _sign_patterns(d: int) -> np.ndarray:
    """All 2ᵈ vectors of {−1, +1}ᵈ, one per row (int64)."""
    bits = (np.arange(2**d, dtype=np.int64)[:, None] >> np.arange(d, dtype=np.int64)) & 1
    return 1 - 2 * bits


def _outcome_probabilities(p: Fraction, d: int) -> list[Fraction]:
    """P(pattern | y) for a pattern with k features agreeing with y, for k = 0..d."""
    return [p**k * (1 - p) ** (d - k) for k in range(d + 1)]


@dataclass(frozen=True)
class MarginTable:
    """Every (sign pattern, label) pair of Eq. 16 with its exact worst-case margin.

    Row j of ``patterns`` is t ∈ {−1, +1}ᵈ, the input x = η ⊙ t. For label y the
    margin under attack is ``y·w·x − ε‖w‖``; ``margins_scaled`` holds
    ``scale · y·w·x`` as exact integers (column 0 for y = +1, column 1 for y = −1)
    and ``outcome`` holds sign(margin under attack) ∈ {−1, 0, +1}: correct (+1),
    on the boundary (0) or wrong (−1). ``agreements`` counts the features of t
    that agree with y.
    """

    patterns: np.ndarray
    margins_scaled: np.ndarray
    scale: int
    outcome: np.ndarray
    agreements: np.ndarray
    probability_by_agreements: tuple[Fraction, ...]

    def probability(self) -> np.ndarray:
        """P(x, y) of each (pattern, label) cell, an object array of Fractions."""
        table = np.empty(self.agreements.shape, dtype=object)
        for k, value in enumerate(self.probability_by_agreements):
            table[self.agreements == k] = value / 2
        return table


def margin_table(
    classifier: SignLinearClassifier,
    distribution: SignFlipDistribution,
    *,
    eps: RationalLike = 0,
    norm: Norm = "linf",
    attacked: Sequence[int] | None = None,
) -> MarginTable:
    """Enumerates all 2ᵈ patterns and both labels with their exact margins under attack.

    Margins are computed in integers: every w_i·η_i is scaled by the least common
    multiple of the denominators, so comparisons with the threshold ε‖w‖ are exact
    (for ℓ2, where ‖w‖₂ may be irrational, by comparing squares).

    Raises:
        ValueError: If dimensions differ, d exceeds [`MAX_ENUMERATION_DIM`][theory.exact.MAX_ENUMERATION_DIM],
            ε < 0 or the norm is unknown.
    """
    _check_norm(norm)
    eps_exact = check_nonnegative(eps, name="eps")
    d = distribution.d
    if classifier.d != d:
        raise ValueError(
            f"classifier has {classifier.d} weights but the distribution has d = {d} features"
        )
    _check_enumerable(d)
    coefficients = [w * e for w, e in zip(classifier.weights, distribution.eta)]
    mask = attacked_mask(d, attacked)
    attacked_weights = [w for w, free in zip(classifier.weights, mask) if free]
    linf_threshold = eps_exact * dual_norm(attacked_weights, norm="linf")
    scale = math.lcm(*(c.denominator for c in coefficients), linf_threshold.denominator)
    integer_coefficients = [int(c * scale) for c in coefficients]
    bound = sum(abs(c) for c in integer_coefficients)
    dtype = np.int64 if bound < 2**62 else object  # Python ints never overflow
    patterns = _sign_patterns(d)
    positive = patterns.astype(dtype) @ np.array(integer_coefficients, dtype=dtype)
    margins = np.stack([positive, -positive], axis=1)  # y = +1, y = −1

    if norm == "linf":
        threshold = int(linf_threshold * scale)
        # Comparisons rather than np.sign: they also work on object arrays of Python ints.
        outcome = (margins > threshold).astype(np.int64) - (margins < threshold).astype(np.int64)
    else:
        # m/scale − ε‖w‖₂ compared with 0 exactly: m > 0 and m² > scale²·ε²·Σw².
        squared = (scale * eps_exact) ** 2 * sum((w * w for w in attacked_weights), Fraction(0))
        outcome = np.zeros(margins.shape, dtype=np.int64)
        for value in np.unique(margins):
            m = int(value)
            if m < 0 or m * m < squared:
                sign = -1
            elif m * m == squared:
                sign = 0
            else:
                sign = 1
            outcome[margins == value] = sign

    agree_positive = (patterns == 1).sum(axis=1)
    agreements = np.stack([agree_positive, d - agree_positive], axis=1)
    return MarginTable(
        patterns=patterns,
        margins_scaled=margins,
        scale=scale,
        outcome=outcome,
        agreements=agreements,
        probability_by_agreements=tuple(_outcome_probabilities(distribution.p, d)),
    )


def accuracy(
    classifier: SignLinearClassifier,
    distribution: SignFlipDistribution,
    *,
    eps: RationalLike = 0,
    norm: Norm = "linf",
    tie: Tie = "wrong",
    attacked: Sequence[int] | None = None,
) -> Fraction:
    """Exact accuracy of sign(w·x) on Eq. 16 under the worst ε-perturbation.

    Sums P(x, y) over every pattern and label where y·w·(x + δ∗) > 0, with δ∗ the
    closed-form worst case
    ([`theory.classifiers.worst_case_perturbation`][theory.classifiers.worst_case_perturbation]).
    With ε = 0 this is the standard accuracy.

    Args:
        classifier: The sign-linear classifier.
        distribution: An instance of Eq. 16.
        eps: Attack radius ε ≥ 0.
        norm: ``"linf"`` or ``"l2"``.
        tie: How a point on the decision boundary counts: ``"wrong"`` (sign(0) = 0
            matches no label) or ``"half"`` (a fair coin breaks the tie).
        attacked: Indices of the features the adversary may perturb (default: all).

    Returns:
        The accuracy as a Fraction in [0, 1].

    Raises:
        ValueError: On mismatched dimensions, d > 20, ε < 0, or an unknown norm or tie rule.

    Examples:
        >>> from theory.distributions import PROPOSITION_1
        >>> from theory.classifiers import h1
        >>> accuracy(h1(PROPOSITION_1, eps="0.02"), PROPOSITION_1, eps="0.02")
        Fraction(112, 125)
    """
    _check_tie(tie)
    table = margin_table(classifier, distribution, eps=eps, norm=norm, attacked=attacked)
    credit_by_agreements = [Fraction(0)] * (distribution.d + 1)
    correct = np.bincount(table.agreements[table.outcome > 0], minlength=distribution.d + 1)
    ties = np.bincount(table.agreements[table.outcome == 0], minlength=distribution.d + 1)
    for k in range(distribution.d + 1):
        credit_by_agreements[k] = int(correct[k]) + (Fraction(int(ties[k]), 2) if tie == "half" else 0)
    # The two labels have prior 1/2 each.
    return sum(
        (c * q for c, q in zip(credit_by_agreements, table.probability_by_agreements)),
        Fraction(0),
    ) / 2


def standard_accuracy(
    classifier: SignLinearClassifier, distribution: SignFlipDistribution, *, tie: Tie = "wrong"
) -> Fraction:
    """Exact standard accuracy P(sign(w·x) = y) on Eq. 16 (``accuracy`` with ε = 0)."""
    return accuracy(classifier, distribution, eps=0, tie=tie)


def robust_accuracy(
    classifier: SignLinearClassifier,
    distribution: SignFlipDistribution,
    *,
    eps: RationalLike,
    norm: Norm = "linf",
    tie: Tie = "wrong",
    attacked: Sequence[int] | None = None,
) -> Fraction:
    """Exact accuracy under the worst ε-bounded attack (``accuracy`` with the given ε)."""
    return accuracy(classifier, distribution, eps=eps, norm=norm, tie=tie, attacked=attacked)


def _observed_signs(distribution: SignFlipDistribution, x: Sequence[RationalLike]) -> list[int]:
    """x̂_i = x_i / η_i ∈ {−1, +1} for the informative features (η_i > 0)."""
    values = to_fractions(x, name="x")
    if len(values) != distribution.d:
        raise ValueError(f"x must have d = {distribution.d} entries, got {len(values)}")
    signs = []
    for i, (value, scale) in enumerate(zip(values, distribution.eta)):
        if scale == 0:
            if value != 0:
                raise ValueError(f"x[{i}] must be 0 because eta[{i}] = 0, got {value}")
            continue
        if value not in (scale, -scale):
            raise ValueError(f"x[{i}] must be +eta[{i}] or -eta[{i}] = ±{scale}, got {value}")
        signs.append(1 if value > 0 else -1)
    return signs


def likelihood(distribution: SignFlipDistribution, x: Sequence[RationalLike], *, y: int) -> Fraction:
    """P(X = x | Y = y) = pᵃ(1 − p)ᵇ, exactly: a features agree with y, b disagree.

    Eq. 20's per-feature factor p^((x̂ᵢy + 1)/2)·(1 − p)^((1 − x̂ᵢy)/2), with x̂ᵢ the sign
    of xᵢ, is p where x̂ᵢ = y and 1 − p where x̂ᵢ ≠ y. Features with ηᵢ = 0 are the constant 0 under both labels and contribute 1.

    Raises:
        ValueError: If y is not ±1 or x is not a point of the support (x_i = ±η_i).
    """
    if y not in (-1, 1):
        raise ValueError(f"y must be -1 or +1, got {y!r}")
    signs = _observed_signs(distribution, x)
    agreeing = sum(1 for s in signs if s == y)
    return distribution.p**agreeing * (1 - distribution.p) ** (len(signs) - agreeing)


def posterior(distribution: SignFlipDistribution, x: Sequence[RationalLike], *, y: int = 1) -> Fraction:
    """P(Y = y | X = x) by Bayes' rule with the uniform prior on y, exactly.

    This is Eq. 20 with the normalising sum over y taken *outside* the product,
    as Eq. 22 does: P(x | y) / (P(x | +1) + P(x | −1)).

    Paper: Appendix A.2, Eq. 20 and Eq. 22.

    Raises:
        ValueError: If y is not ±1, x is off the support, or P(x) = 0.
    """
    numerator = likelihood(distribution, x, y=y)
    evidence = likelihood(distribution, x, y=1) + likelihood(distribution, x, y=-1)
    if evidence == 0:
        raise ValueError(f"x = {list(x)} has probability 0 under this distribution")
    return numerator / evidence


def posterior_as_printed(
    distribution: SignFlipDistribution, x: Sequence[RationalLike], *, y: int = 1
) -> Fraction:
    """Eq. 20 exactly as printed: a product of per-feature normalised factors.

    Πᵢ [qᵢ(y) / Σ_y′ qᵢ(y′)], where qᵢ(y) = p^((x̂ᵢy + 1)/2)·(1 − p)^((1 − x̂ᵢy)/2) is p
    if the sign x̂ᵢ of xᵢ is y and 1 − p otherwise. Each per-feature denominator equals p + (1 − p) = 1, so this is the likelihood
    P(x | y), not the posterior: it does not sum to 1 over y. Kept to show the
    difference (see ``python -m theory.prop1``).

    Paper: Appendix A.2, Eq. 20 (as printed).
    """
    if y not in (-1, 1):
        raise ValueError(f"y must be -1 or +1, got {y!r}")
    p = distribution.p
    result = Fraction(1)
    for sign in _observed_signs(distribution, x):
        factors = {label: p if sign * label == 1 else 1 - p for label in (-1, 1)}
        result *= factors[y] / (factors[1] + factors[-1])
    return result


class BayesOptimalClassifier:
    """The Bayes-optimal classifier of Eq. 16: h*(x) = +1 iff P(Y = +1 | X = x) ≥ 1/2.

    Paper: Appendix A.2, Eq. 21.

    Args:
        distribution: An instance of Eq. 16.

    Examples:
        >>> from theory.distributions import PROPOSITION_1
        >>> BayesOptimalClassifier(PROPOSITION_1).decide([0.01] * 3 + [-0.01] + [-1, 1, 1])
        1
    """

    name = "bayes"

    def __init__(self, distribution: SignFlipDistribution) -> None:
        self.distribution = distribution

    def decide(self, x: Sequence[RationalLike]) -> int:
        """The exact decision of Eq. 21 for one point of the support.

        An input of probability 0 (possible when p is 0 or 1) has no posterior;
        any decision is optimal there and +1 is returned.
        """
        evidence = likelihood(self.distribution, x, y=1) + likelihood(self.distribution, x, y=-1)
        if evidence == 0:
            return 1
        return 1 if posterior(self.distribution, x, y=1) >= Fraction(1, 2) else -1

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Vectorised decisions for inputs of shape (n, d), from the log-odds.

        With a single p the log-odds are (Σ_i x̂_i)·log(p / (1 − p)) over the
        informative features, so h* predicts +1 iff (2p − 1)·Σ x̂_i ≥ 0.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.distribution.d:
            raise ValueError(f"x must have shape (n, {self.distribution.d}), got {x.shape}")
        eta = np.array([float(e) for e in self.distribution.eta])
        informative = eta > 0
        votes = np.rint(x[:, informative] / eta[informative]).sum(axis=1)
        direction = np.sign(float(self.distribution.p) - 0.5)
        return np.where(direction * votes >= 0, 1, -1).astype(np.int64)


def _informative_patterns(distribution: SignFlipDistribution) -> tuple[np.ndarray, list[list[Fraction]]]:
    """All distinct inputs of the support: patterns over the features with η_i > 0."""
    informative = [i for i, e in enumerate(distribution.eta) if e > 0]
    _check_enumerable(len(informative))
    patterns = _sign_patterns(len(informative))
    inputs = []
    for row in patterns:
        x = [Fraction(0)] * distribution.d
        for sign, i in zip(row, informative):
            x[i] = distribution.eta[i] * int(sign)
        inputs.append(x)
    return patterns, inputs


def decision_rule_accuracy(
    distribution: SignFlipDistribution, decide: Callable[[list[Fraction]], int]
) -> Fraction:
    """Exact accuracy Σ_x P(x, decide(x)) of any decision rule, over the whole support.

    Args:
        distribution: An instance of Eq. 16.
        decide: A function from one input (a list of Fractions) to −1 or +1.

    Raises:
        ValueError: If ``decide`` returns something other than ±1.
    """
    _, inputs = _informative_patterns(distribution)
    total = Fraction(0)
    for x in inputs:
        label = decide(x)
        if label not in (-1, 1):
            raise ValueError(f"decide must return -1 or +1, got {label!r} for x = {x}")
        total += likelihood(distribution, x, y=label) / 2
    return total


def bayes_accuracy(distribution: SignFlipDistribution) -> Fraction:
    """Exact accuracy of the Bayes-optimal classifier (Eq. 20–21) on Eq. 16.

    Decides every input of the support by its exact posterior (Eq. 21) and sums
    P(x, h*(x)); this equals Σ_x max_y P(x, y), the best standard accuracy of any
    classifier. All features share one p, so the posterior of an input depends
    only on k, its number of +1 votes among the m informative features (η_i > 0):
    the C(m, k) inputs with the same k are summed at once. The pattern-by-pattern
    sum, ``decision_rule_accuracy(dist, BayesOptimalClassifier(dist).decide)``,
    gives the same fraction (the tests check it) but costs 2ᵐ posteriors.

    Paper: Appendix A.2, Eq. 20–21.
    """
    p = distribution.p
    m = sum(1 for e in distribution.eta if e > 0)
    total = Fraction(0)
    for k in range(m + 1):
        joint_positive = p**k * (1 - p) ** (m - k) / 2  # P(x, y = +1) for one input with k votes for +1
        joint_negative = p ** (m - k) * (1 - p) ** k / 2
        if joint_positive + joint_negative == 0:
            continue  # inputs of probability 0 (p = 0 or 1) add nothing
        posterior_positive = joint_positive / (joint_positive + joint_negative)  # Eq. 20 (Eq. 22's form)
        decided = joint_positive if posterior_positive >= Fraction(1, 2) else joint_negative  # Eq. 21
        total += math.comb(m, k) * decided
    return total


def robust_features(distribution: SignFlipDistribution, *, eps: RationalLike) -> list[int]:
    """Indices of the features an ℓ∞ adversary of radius ε cannot flip: η_i > ε."""
    eps_exact = check_nonnegative(eps, name="eps")
    return [i for i, e in enumerate(distribution.eta) if e > eps_exact]


def best_robust_accuracy(distribution: SignFlipDistribution, *, eps: RationalLike) -> Fraction:
    """The highest ℓ∞ robust accuracy any classifier can reach on Eq. 16, exactly.

    A feature with η_i ≤ ε can be moved from either +η_i or −η_i to 0, so the
    adversary can erase it; a feature with η_i > ε keeps its sign under every
    perturbation. Hence no classifier beats the Bayes-optimal classifier of the
    robust features alone (erasing the others is always available to the
    adversary), and that classifier reaches its accuracy under any attack because
    it reads only signs the adversary cannot change. With no robust feature the
    best is 1/2.

    Raises:
        ValueError: If ε < 0.
    """
    features = robust_features(distribution, eps=eps)
    if not features:
        return Fraction(1, 2)
    return bayes_accuracy(distribution.restricted_to(features))


def tsipras_accuracy(
    classifier: SignLinearClassifier,
    distribution: TsiprasDistribution,
    *,
    eps: RationalLike = 0,
    norm: Norm = "linf",
) -> float:
    """Closed-form accuracy of sign(w·x) on Eq. 13 under the worst ε-perturbation.

    Given x₁ = s·y (s = ±1 w.p. p, 1 − p), the margin y·w·(x + δ∗) is normal with
    mean w₁·s + μ, where μ = η·(w₂ + … + w_(d+1)) − ε‖w‖∗ (‖·‖∗ the dual norm), and
    variance σ² = w₂² + … + w_(d+1)², so the accuracy is
    p·Φ((w₁ + μ)/σ) + (1 − p)·Φ((−w₁ + μ)/σ). A float (Φ is not rational).

    Paper: Appendix A.2, Eq. 13–15.

    Raises:
        ValueError: On a classifier of the wrong dimension, ε < 0 or an unknown norm.
    """
    _check_norm(norm)
    eps_value = float(check_nonnegative(eps, name="eps"))
    if classifier.d != distribution.d + 1:
        raise ValueError(
            f"classifier has {classifier.d} weights; Eq. 13 with d = {distribution.d} "
            f"has {distribution.d + 1} coordinates"
        )
    w = np.array([float(v) for v in classifier.weights])
    mean_shift = distribution.eta * w[1:].sum() - eps_value * float(dual_norm(classifier.weights, norm=norm))
    sigma = float(np.linalg.norm(w[1:]))
    p = distribution.p
    if sigma == 0:
        return p * float(w[0] + mean_shift > 0) + (1 - p) * float(-w[0] + mean_shift > 0)
    return float(
        p * stats.norm.cdf((w[0] + mean_shift) / sigma)
        + (1 - p) * stats.norm.cdf((-w[0] + mean_shift) / sigma)
    )


def tsipras_bayes_classifier(distribution: TsiprasDistribution) -> SignLinearClassifier:
    """The Bayes-optimal classifier of Eq. 13, which is sign-linear.

    The log-odds are x₁·log(p/(1 − p)) + 2η·(x₂ + … + x_(d+1)), so h* = sign(w·x) with
    w = [log(p/(1 − p)), 2η, …, 2η] (weights rounded to floats: log is irrational).

    Raises:
        ValueError: If p is 0 or 1 (infinite log-odds; x₁ alone then decides).
    """
    p = distribution.p
    if not 0 < p < 1:
        raise ValueError(f"the Bayes weights need 0 < p < 1, got p = {p}")
    weights = [math.log(p / (1 - p))] + [2 * distribution.eta] * distribution.d
    return SignLinearClassifier(weights=weights, name="bayes")
