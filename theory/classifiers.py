"""Sign-linear classifiers h(x) = sign(w·x) and their worst-case perturbations.

The classifiers of Appendix A.2 — f_avg (Eq. 14), f_rob (Eq. 15), h_0 (Eq. 17)
and h_1 (Eq. 18) — are all of this form. Against such a classifier the worst
ℓ∞ (or ℓ2) perturbation has a closed form, so robust accuracy can be computed
exactly ([`theory.exact`][theory.exact]) rather than estimated with an iterative attack.

Convention: ``sign(0) = 0``, a prediction equal to neither label, so a point on
the decision boundary counts as an error (as ``numpy.sign`` gives).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

from theory._rational import RationalLike, check_nonnegative, to_float, to_fractions
from theory.distributions import SignFlipDistribution

__all__ = [
    "Norm",
    "SignLinearClassifier",
    "f_avg",
    "f_rob",
    "h0",
    "h1",
    "attacked_mask",
    "dual_norm",
    "worst_case_perturbation",
    "brute_force_perturbation",
]

Norm = Literal["linf", "l2"]
_NORMS = ("linf", "l2")


def _check_norm(norm: str) -> str:
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    return norm


@dataclass(frozen=True)
class SignLinearClassifier:
    """The classifier h(x) = sign(w·x), with exact rational weights.

    Args:
        weights: The weight vector w (any numbers; kept as Fractions).
        name: A label for tables and plots.

    Raises:
        ValueError: If ``weights`` is empty or holds a non-finite value.

    Examples:
        >>> h = SignLinearClassifier(weights=[1, 1, 1], name="vote")
        >>> h.predict(np.array([[1.0, -1.0, 1.0]])).tolist()
        [1]
    """

    weights: tuple[Fraction, ...]
    name: str = ""
    _w: np.ndarray = field(init=False, repr=False, compare=False)

    def __init__(self, *, weights: Sequence[RationalLike], name: str = "") -> None:
        exact = to_fractions(weights, name="weights")
        if not exact:
            raise ValueError("weights must hold at least one entry")
        object.__setattr__(self, "weights", exact)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_w", np.array([to_float(w, name=f"weights[{i}]") for i, w in enumerate(exact)]))

    @property
    def d(self) -> int:
        """Input dimension."""
        return len(self.weights)

    def _check_inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}), got {x.shape}")
        return x

    def decision(self, x: np.ndarray) -> np.ndarray:
        """The score w·x for each row of ``x`` (shape (n, d)) as float64."""
        return self._check_inputs(x) @ self._w

    def predict(self, x: np.ndarray, *, rtol: float = 1e-12) -> np.ndarray:
        """sign(w·x) in {−1, 0, +1} (int64); 0 marks a point on the boundary.

        A score within ``rtol · Σ|w_i x_i|`` of zero counts as on the boundary: an
        input on the boundary in exact arithmetic (a tie) comes out of floating point
        as ±1e-16 or so, and would otherwise be decided by rounding.
        """
        x = self._check_inputs(x)
        scores = x @ self._w
        scale = np.abs(x) @ np.abs(self._w)
        return np.where(np.abs(scores) <= rtol * scale, 0, np.sign(scores)).astype(np.int64)

    def norm(self, norm: Norm) -> Fraction | float:
        """‖w‖ in the dual of ``norm``: ‖w‖₁ (exact) for ℓ∞, ‖w‖₂ (float) for ℓ2."""
        return dual_norm(self.weights, norm=norm)


def dual_norm(weights: Sequence[Fraction], *, norm: Norm) -> Fraction | float:
    """The dual norm of w for an attack in ``norm``: ‖w‖₁ for ℓ∞, ‖w‖₂ for ℓ2.

    A perturbation with ‖δ‖ ≤ ε changes w·x by at most ε times this value.
    ‖w‖₁ is returned exactly; ‖w‖₂ is generally irrational and is returned as a float.
    """
    _check_norm(norm)
    if norm == "linf":
        return sum((abs(w) for w in weights), Fraction(0))
    return float(np.sqrt(float(sum((w * w for w in weights), Fraction(0)))))


def f_avg(d: int) -> SignLinearClassifier:
    """Eq. 14: f_avg = sign(w·x), w = [0, 1/d, …, 1/d], for Eq. 13 with d weak features.

    Paper: Appendix A.2, Eq. 14.
    """
    _check_dimension(d)
    return SignLinearClassifier(weights=[0] + [Fraction(1, d)] * d, name="f_avg")


def f_rob(d: int) -> SignLinearClassifier:
    """Eq. 15: f_rob = sign(x_1), w = [1, 0, …, 0], for Eq. 13 with d weak features.

    Paper: Appendix A.2, Eq. 15.
    """
    _check_dimension(d)
    return SignLinearClassifier(weights=[1] + [0] * d, name="f_rob")


def h0(distribution: SignFlipDistribution) -> SignLinearClassifier:
    """Eq. 17: h_0 = sign(Σ x_i / η_i), a majority vote of the re-scaled features.

    Paper: Appendix A.2, Eq. 17.

    Raises:
        ValueError: If some η_i is 0 (the weight 1/η_i is undefined).
    """
    if any(e == 0 for e in distribution.eta):
        raise ValueError("h0 needs every eta_i > 0: its weights are 1/eta_i (Eq. 17)")
    return SignLinearClassifier(weights=[1 / e for e in distribution.eta], name="h0")


def h1(distribution: SignFlipDistribution, *, eps: RationalLike) -> SignLinearClassifier:
    """Eq. 18 generalised: weights 1/η_i on the features an ℓ∞ adversary of radius ε cannot flip.

    A feature ±η_i survives an ℓ∞ perturbation of radius ε exactly when η_i > ε;
    h_1 votes with those features only. For Proposition 1 (ε = 0.02) they are
    x_5, x_6, x_7 and the weights are [0, 0, 0, 0, 1, 1, 1], as in Eq. 18.

    Paper: Appendix A.2, Eq. 18.

    Raises:
        ValueError: If ε < 0 or no feature has η_i > ε.
    """
    eps_exact = check_nonnegative(eps, name="eps")
    weights = [1 / e if e > eps_exact else Fraction(0) for e in distribution.eta]
    if not any(weights):
        raise ValueError(
            f"h1 needs a feature with eta_i > eps = {eps_exact}; every feature can be flipped"
        )
    return SignLinearClassifier(weights=weights, name="h1")


def _check_dimension(d: int) -> None:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")


def attacked_mask(d: int, attacked: Sequence[int] | None) -> np.ndarray:
    """Boolean mask of the features the adversary may perturb (all when ``attacked`` is None).

    Raises:
        ValueError: If an index is out of range or repeated.
    """
    if attacked is None:
        return np.ones(d, dtype=bool)
    indices = list(attacked)
    if len(set(indices)) != len(indices) or any(
        isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < d for i in indices
    ):
        raise ValueError(f"attacked must list distinct feature indices in [0, {d}), got {indices}")
    mask = np.zeros(d, dtype=bool)
    mask[indices] = True
    return mask


def worst_case_perturbation(
    classifier: SignLinearClassifier,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: RationalLike,
    norm: Norm = "linf",
    attacked: Sequence[int] | None = None,
) -> np.ndarray:
    """The perturbation in the ε-ball that minimises the margin y·w·(x + δ).

    The margin is linear in δ, so its minimum over the ball is attained at
    δ* = −ε·y·sign(w) for ℓ∞ (a vertex of the cube, lowering the margin by ε‖w‖₁)
    and δ* = −ε·y·w/‖w‖₂ for ℓ2 (lowering it by ε‖w‖₂). No iterative attack can do
    better;
    [`brute_force_perturbation`][theory.classifiers.brute_force_perturbation]
    checks this on small cases.

    Args:
        classifier: The sign-linear classifier under attack.
        x: Inputs of shape (n, d).
        y: Labels in {−1, +1} of shape (n,).
        eps: Radius ε ≥ 0.
        norm: ``"linf"`` or ``"l2"``.
        attacked: Indices of the features the adversary may change (default: all);
            the others keep δ_i = 0 and the formulas use w restricted to them.

    Returns:
        δ* of shape (n, d), float64.

    Raises:
        ValueError: On a negative ε, an unknown norm, or mismatched shapes.
    """
    _check_norm(norm)
    eps_value = float(check_nonnegative(eps, name="eps"))
    x = classifier._check_inputs(x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {y.shape}")
    w = np.where(attacked_mask(classifier.d, attacked), classifier._w, 0.0)
    if norm == "linf":
        direction = np.sign(w)
    else:
        length = np.linalg.norm(w)
        direction = w / length if length > 0 else np.zeros_like(w)
    return -eps_value * y[:, None].astype(np.float64) * direction[None, :]


def brute_force_perturbation(
    classifier: SignLinearClassifier,
    x: Sequence[RationalLike],
    y: int,
    *,
    eps: RationalLike,
    levels: int = 5,
) -> tuple[tuple[Fraction, ...], Fraction]:
    """Exhaustive search of an ℓ∞ ball for the perturbation with the lowest margin.

    Tries every δ on a grid of ``levels`` evenly spaced values in [−ε, ε] per
    coordinate (the grid contains all vertices), in exact arithmetic. Exponential
    in d: for checking
    [`worst_case_perturbation`][theory.classifiers.worst_case_perturbation] on
    small cases only.

    Args:
        classifier: A sign-linear classifier of dimension d ≤ 8.
        x: One input of length d.
        y: Its label, −1 or +1.
        eps: Radius ε ≥ 0.
        levels: Grid points per coordinate, ≥ 2.

    Returns:
        The best δ found and its margin y·w·(x + δ), both exact.

    Raises:
        ValueError: On d > 8, levels < 2, a label other than ±1, or ε < 0.
    """
    eps_exact = check_nonnegative(eps, name="eps")
    x_exact = to_fractions(x, name="x")
    if len(x_exact) != classifier.d:
        raise ValueError(f"x must have {classifier.d} entries, got {len(x_exact)}")
    if classifier.d > 8:
        raise ValueError(f"brute force is limited to d <= 8, got d = {classifier.d}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    if y not in (-1, 1):
        raise ValueError(f"y must be -1 or +1, got {y!r}")
    grid = [-eps_exact + 2 * eps_exact * Fraction(k, levels - 1) for k in range(levels)]
    best_delta: tuple[Fraction, ...] = ()
    best_margin: Fraction | None = None
    for delta in itertools.product(grid, repeat=classifier.d):
        margin = y * sum(
            (w * (xi + di) for w, xi, di in zip(classifier.weights, x_exact, delta)),
            Fraction(0),
        )
        if best_margin is None or margin < best_margin:
            best_delta, best_margin = tuple(delta), margin
    assert best_margin is not None
    return best_delta, best_margin
