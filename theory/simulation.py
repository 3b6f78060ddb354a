"""Monte Carlo estimates with confidence intervals, to set beside the exact figures.

The simulation is deliberately independent of the enumeration in
[`theory.exact`][theory.exact]: it draws real-valued samples, applies the closed-form attack
in floating point and asks the classifier for its prediction, so agreement of
the two is evidence that both are right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats

from theory._rational import RationalLike, check_nonnegative
from theory.classifiers import Norm, SignLinearClassifier, worst_case_perturbation
from theory.exact import Tie, _check_tie

__all__ = [
    "MonteCarloEstimate",
    "estimate_from_counts",
    "estimate_mean_difference",
    "monte_carlo_accuracy",
    "monte_carlo_correct",
]


class _Sampler(Protocol):
    def sample(self, n: int, *, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class _Predictor(Protocol):
    name: str

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A quantity estimated by simulation, with a confidence interval.

    Attributes:
        value: The point estimate.
        lower: Lower end of the interval.
        upper: Upper end of the interval.
        samples: Number of independent samples behind it.
        confidence: Confidence level of the interval.
        method: ``"clopper-pearson"`` (exact binomial, for a proportion) or
            ``"normal"`` (central limit theorem, for a mean difference).
    """

    value: float
    lower: float
    upper: float
    samples: int
    confidence: float
    method: str

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval."""
        return self.lower <= float(value) <= self.upper

    def __str__(self) -> str:
        return f"{self.value:.6f} [{self.lower:.6f}, {self.upper:.6f}]"


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def estimate_from_counts(successes: int, samples: int, *, confidence: float = 0.95) -> MonteCarloEstimate:
    """A proportion successes / samples with its Clopper–Pearson interval.

    The Clopper–Pearson (exact binomial) interval covers the true proportion with
    probability at least ``confidence``, whatever that proportion is.

    Raises:
        ValueError: If counts are inconsistent or ``confidence`` is not in (0, 1).
    """
    if samples < 1 or not 0 <= successes <= samples:
        raise ValueError(f"need 0 <= successes <= samples and samples >= 1, got {successes}/{samples}")
    _check_confidence(confidence)
    interval = stats.binomtest(int(successes), int(samples)).proportion_ci(
        confidence_level=confidence, method="exact"
    )
    return MonteCarloEstimate(
        value=successes / samples,
        lower=float(interval.low),
        upper=float(interval.high),
        samples=int(samples),
        confidence=float(confidence),
        method="clopper-pearson",
    )


def estimate_mean_difference(
    first: np.ndarray, second: np.ndarray, *, confidence: float = 0.95
) -> MonteCarloEstimate:
    """Mean of ``first − second`` over paired samples, with a normal-approximation interval.

    Used for a difference of two accuracies measured on the same samples (common
    random numbers), which is far more precise than differencing two independent runs.

    Raises:
        ValueError: If the arrays differ in shape, are empty, or ``confidence`` is not in (0, 1).
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1 or first.size < 2:
        raise ValueError(f"need two 1-D arrays of equal length >= 2, got {first.shape} and {second.shape}")
    _check_confidence(confidence)
    differences = first - second
    mean = float(differences.mean())
    half_width = float(
        stats.norm.ppf(0.5 + confidence / 2) * differences.std(ddof=1) / np.sqrt(differences.size)
    )
    return MonteCarloEstimate(
        value=mean,
        lower=mean - half_width,
        upper=mean + half_width,
        samples=int(differences.size),
        confidence=float(confidence),
        method="normal",
    )


def monte_carlo_correct(
    classifier: _Predictor,
    distribution: _Sampler,
    *,
    eps: RationalLike = 0,
    norm: Norm = "linf",
    samples: int = 100_000,
    seed: int | np.random.Generator | None = 0,
    tie: Tie = "wrong",
    attacked: Sequence[int] | None = None,
) -> np.ndarray:
    """Per-sample correctness (bool array) of ``classifier`` under the worst ε-attack.

    See [`monte_carlo_accuracy`][theory.simulation.monte_carlo_accuracy] for the
    arguments; the same seed draws the same samples, so two classifiers can be
    compared on common samples.
    """
    _check_tie(tie)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    eps_exact = check_nonnegative(eps, name="eps")
    rng = np.random.default_rng(seed)
    x, y = distribution.sample(int(samples), seed=rng)
    if eps_exact > 0:
        if not isinstance(classifier, SignLinearClassifier):
            raise ValueError(
                "the closed-form attack needs a SignLinearClassifier; "
                f"got {type(classifier).__name__}"
            )
        x = x + worst_case_perturbation(classifier, x, y, eps=eps_exact, norm=norm, attacked=attacked)
    predictions = np.asarray(classifier.predict(x))
    if tie == "half":
        undecided = predictions == 0
        coin = rng.integers(0, 2, size=predictions.shape) * 2 - 1
        predictions = np.where(undecided, coin, predictions)
    return predictions == y


def monte_carlo_accuracy(
    classifier: _Predictor,
    distribution: _Sampler,
    *,
    eps: RationalLike = 0,
    norm: Norm = "linf",
    samples: int = 100_000,
    seed: int | np.random.Generator | None = 0,
    confidence: float = 0.95,
    tie: Tie = "wrong",
    attacked: Sequence[int] | None = None,
) -> MonteCarloEstimate:
    """Estimates the accuracy of ``classifier`` under the worst ε-attack by simulation.

    Draws ``samples`` pairs from ``distribution``, perturbs each x with the
    closed-form worst case (ε > 0 needs a
    [`SignLinearClassifier`][theory.classifiers.SignLinearClassifier]) and
    counts the predictions equal to y.

    Args:
        classifier: Anything with ``predict(x) -> labels in {−1, 0, +1}``.
        distribution: Anything with ``sample(n, seed=...) -> (x, y)``.
        eps: Attack radius ε ≥ 0 (0 gives the standard accuracy).
        norm: ``"linf"`` or ``"l2"``.
        samples: Number of samples, ≥ 1.
        seed: Seed or Generator; the same seed gives the same estimate.
        confidence: Level of the Clopper–Pearson interval.
        tie: ``"wrong"`` counts a prediction of 0 as an error; ``"half"`` breaks
            it with a fair coin, matching [`theory.exact.accuracy`][theory.exact.accuracy].
        attacked: Indices of the features the adversary may perturb (default: all).

    Returns:
        The estimate with its interval.

    Raises:
        ValueError: On samples < 1, ε < 0, or ε > 0 with a non-linear classifier.
    """
    correct = monte_carlo_correct(
        classifier, distribution, eps=eps, norm=norm, samples=samples, seed=seed, tie=tie,
        attacked=attacked,
    )
    return estimate_from_counts(int(np.count_nonzero(correct)), correct.size, confidence=confidence)
