"""Samplers for the two toy distributions of Appendix A.2.

* [`TsiprasDistribution`][theory.distributions.TsiprasDistribution] — Eq. 13,
  the example of Tsipras et al. (2019): one robust feature that agrees with the
  label with probability p, and d weakly correlated Gaussian features N(ηy, 1).
* [`SignFlipDistribution`][theory.distributions.SignFlipDistribution] — Eq. 16,
  the paper's variant: d features x_i = ±η_i·y, each agreeing with the label
  independently with probability p.
  [`PROPOSITION_1`][theory.distributions.PROPOSITION_1] is the instance of
  Proposition 1.

Labels are in {−1, +1};
[`labels_to_indices`][theory.distributions.labels_to_indices] maps them to class
indices {0, 1} for a Keras classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from theory._rational import (
    RationalLike,
    check_nonnegative,
    check_probability,
    to_float,
    to_fractions,
)

__all__ = [
    "SignFlipDistribution",
    "TsiprasDistribution",
    "PROPOSITION_1",
    "PROPOSITION_1_EPS",
    "labels_to_indices",
    "indices_to_labels",
]

SeedLike = int | np.random.Generator | None


def _check_sample_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def _sample_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    # y ~ uniform on {−1, +1}
    return rng.integers(0, 2, size=n, dtype=np.int64) * 2 - 1


@dataclass(frozen=True)
class SignFlipDistribution:
    """The paper's distribution of Eq. 16.

    ``y`` is uniform on {−1, +1}; independently for each i, ``x_i = +η_i·y`` with
    probability ``p`` and ``−η_i·y`` otherwise. Every feature is equally reliable
    (same p); η_i only sets its scale, hence how easily an ℓ∞ adversary of radius
    ε can flip it (it can when η_i ≤ ε).

    Paper: Appendix A.2, Eq. 16.

    Args:
        p: Probability that a feature agrees with the label, in [0, 1]. Kept exact.
        eta: Feature scales η_1..η_d, each ≥ 0 (d ≥ 1). Kept exact.

    Raises:
        ValueError: If p is outside [0, 1], an η_i is negative or not finite, or η is empty.

    Examples:
        >>> dist = SignFlipDistribution(p="4/5", eta=[0.01, 1.0])
        >>> x, y = dist.sample(3, seed=0)
        >>> x.shape, set(y.tolist()) <= {-1, 1}
        ((3, 2), True)
    """

    p: Fraction
    eta: tuple[Fraction, ...]
    _eta_float: np.ndarray = field(init=False, repr=False, compare=False)

    def __init__(self, *, p: RationalLike, eta: object) -> None:
        p_exact = check_probability(p, name="p")
        eta_exact = to_fractions(eta, name="eta")  # type: ignore[arg-type]
        if len(eta_exact) < 1:
            raise ValueError("eta must hold at least one feature scale (d >= 1), got none")
        for i, value in enumerate(eta_exact):
            check_nonnegative(value, name=f"eta[{i}]")
        object.__setattr__(self, "p", p_exact)
        object.__setattr__(self, "eta", eta_exact)
        eta_float = [to_float(e, name=f"eta[{i}]") for i, e in enumerate(eta_exact)]
        object.__setattr__(self, "_eta_float", np.array(eta_float))

    @property
    def d(self) -> int:
        """Number of features."""
        return len(self.eta)

    def sample(self, n: int, *, seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``n`` independent pairs (x, y).

        Args:
            n: Number of samples.
            seed: An int seed or a ``numpy.random.Generator``; the same seed gives
                the same samples.

        Returns:
            ``x`` of shape (n, d), float64, and ``y`` of shape (n,), int64 in {−1, +1}.

        Raises:
            ValueError: If ``n`` is not a non-negative integer.
        """
        n = _check_sample_count(n)
        rng = np.random.default_rng(seed)
        y = _sample_labels(rng, n)
        agrees = rng.random((n, self.d)) < float(self.p)
        signs = np.where(agrees, 1.0, -1.0)
        signs *= y[:, None]
        signs *= self._eta_float
        return signs, y

    def restricted_to(self, features: list[int] | tuple[int, ...]) -> SignFlipDistribution:
        """The same distribution on a subset of the features (used for robust optima)."""
        if not features:
            raise ValueError("features must name at least one feature")
        return SignFlipDistribution(p=self.p, eta=[self.eta[i] for i in features])


@dataclass(frozen=True)
class TsiprasDistribution:
    """The distribution of Tsipras et al. (2019), Eq. 13.

    ``y`` is uniform on {−1, +1}; x₁ = +y with probability ``p`` and −y otherwise;
    x₂, …, x_(d+1) are i.i.d. N(η·y, 1). Inputs have d + 1 coordinates.

    Paper: Appendix A.2, Eq. 13.

    Args:
        p: Reliability of the robust feature x_1, in [0, 1].
        eta: Mean shift η ≥ 0 of the d weak Gaussian features.
        d: Number of weak features, ≥ 1.

    Raises:
        ValueError: If a parameter is out of range.
    """

    p: float
    eta: float
    d: int

    def __init__(self, *, p: RationalLike, eta: RationalLike, d: int) -> None:
        p_exact = check_probability(p, name="p")
        eta_exact = check_nonnegative(eta, name="eta")
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be an integer >= 1, got {d!r}")
        object.__setattr__(self, "p", float(p_exact))
        object.__setattr__(self, "eta", to_float(eta_exact, name="eta"))
        object.__setattr__(self, "d", int(d))

    def sample(self, n: int, *, seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``n`` pairs; ``x`` has shape (n, d + 1), ``y`` is int64 in {−1, +1}.

        Raises:
            ValueError: If ``n`` is not a non-negative integer.
        """
        n = _check_sample_count(n)
        rng = np.random.default_rng(seed)
        y = _sample_labels(rng, n)
        x = np.empty((n, self.d + 1))
        x[:, 0] = np.where(rng.random(n) < self.p, 1.0, -1.0) * y
        x[:, 1:] = rng.standard_normal((n, self.d))
        x[:, 1:] += self.eta * y[:, None]
        return x, y


PROPOSITION_1 = SignFlipDistribution(p=Fraction(4, 5), eta=["0.01"] * 4 + [1] * 3)
"""The instance of Proposition 1: p = 0.8, d = 7, η = (0.01, 0.01, 0.01, 0.01, 1, 1, 1)."""

PROPOSITION_1_EPS = Fraction(1, 50)
"""The ℓ∞ radius ε = 0.02 of Proposition 1."""


def labels_to_indices(y: np.ndarray) -> np.ndarray:
    """Maps labels in {−1, +1} to class indices {0, 1} (−1 → 0, +1 → 1).

    Raises:
        ValueError: If a label is not −1 or +1.

    Examples:
        >>> labels_to_indices(np.array([-1, 1, 1])).tolist()
        [0, 1, 1]
    """
    y = np.asarray(y)
    bad = ~np.isin(y, (-1, 1))
    if bad.any():
        raise ValueError(
            f"labels must be -1 or +1; found {np.unique(y[bad])[:5].tolist()} "
            f"at {int(bad.sum())} position(s)"
        )
    return ((y.astype(np.int64) + 1) // 2).astype(np.int64)


def indices_to_labels(indices: np.ndarray) -> np.ndarray:
    """Maps class indices {0, 1} back to labels {−1, +1}.

    Raises:
        ValueError: If an index is not 0 or 1.
    """
    indices = np.asarray(indices)
    bad = ~np.isin(indices, (0, 1))
    if bad.any():
        raise ValueError(
            f"class indices must be 0 or 1; found {np.unique(indices[bad])[:5].tolist()}"
        )
    return indices.astype(np.int64) * 2 - 1
