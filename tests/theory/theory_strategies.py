"""Hypothesis strategies shared by the tests of the ``theory`` package.

Parameters are small exact rationals. The η and ε values come from one small set
so that η_i = ε (a feature exactly on the edge of being flippable) and margins
exactly on the attack threshold happen often.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

from theory.classifiers import SignLinearClassifier
from theory.distributions import SignFlipDistribution

F = Fraction

#: η and ε values: 0, 1/100, 1/50 (= the paper's ε), 1/10, 1/2, 1, 2.
SCALES = (F(0), F(1, 100), F(1, 50), F(1, 10), F(1, 2), F(1), F(2))
POSITIVE_SCALES = SCALES[1:]

NORMS = ("linf", "l2")
TIES = ("wrong", "half")


def probabilities() -> st.SearchStrategy[Fraction]:
    """p = a/b strictly between 1/2 and 1, with 3 <= b <= 12."""
    return st.integers(3, 12).flatmap(lambda b: st.integers(b // 2 + 1, b - 1).map(lambda a: F(a, b)))


def epsilons() -> st.SearchStrategy[Fraction]:
    """ε from the same set as η, 0 included."""
    return st.sampled_from(SCALES)


def etas(d: int, *, positive: bool = False) -> st.SearchStrategy[list[Fraction]]:
    """d feature scales; with ``positive`` every η_i > 0."""
    values = POSITIVE_SCALES if positive else SCALES
    return st.lists(st.sampled_from(values), min_size=d, max_size=d)


def weights_list(d: int) -> st.SearchStrategy[list[Fraction]]:
    """d small rational weights, possibly zero or negative."""
    weight = st.builds(F, st.integers(-4, 4), st.integers(1, 3))
    return st.lists(weight, min_size=d, max_size=d)


@st.composite
def distributions(draw, *, min_d: int = 1, max_d: int = 7, positive: bool = False) -> SignFlipDistribution:
    """An instance of Eq. 16 with 1 <= d <= 7."""
    d = draw(st.integers(min_d, max_d))
    return SignFlipDistribution(p=draw(probabilities()), eta=draw(etas(d, positive=positive)))


@st.composite
def problems(
    draw, *, min_d: int = 1, max_d: int = 7, positive: bool = False
) -> tuple[SignFlipDistribution, SignLinearClassifier]:
    """An instance of Eq. 16 with a random sign-linear classifier of the same dimension."""
    dist = draw(distributions(min_d=min_d, max_d=max_d, positive=positive))
    classifier = SignLinearClassifier(weights=draw(weights_list(dist.d)), name="random")
    return dist, classifier
