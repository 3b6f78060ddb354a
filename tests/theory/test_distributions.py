"""theory.distributions: the samplers of Eq. 13 and Eq. 16 and the label mapping."""

from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from theory_strategies import distributions, probabilities

from theory import PROPOSITION_1, PROPOSITION_1_EPS, SignFlipDistribution, TsiprasDistribution
from theory.distributions import indices_to_labels, labels_to_indices
from theory.simulation import estimate_from_counts

STRICT = 1 - 1e-6  # confidence of the statistical checks: a false alarm once in a million


# --- Proposition 1's instance -----------------------------------------------------------------


def test_proposition_1_instance() -> None:
    assert PROPOSITION_1.p == F(4, 5)
    assert PROPOSITION_1.eta == (F(1, 100),) * 4 + (F(1),) * 3
    assert PROPOSITION_1.d == 7
    assert PROPOSITION_1_EPS == F(1, 50)
    assert all(isinstance(e, F) for e in PROPOSITION_1.eta)


def test_equal_parameters_give_equal_distributions() -> None:
    same = SignFlipDistribution(p=0.8, eta=[0.01] * 4 + [1.0] * 3)
    assert same == PROPOSITION_1
    assert hash(same) == hash(PROPOSITION_1)
    assert SignFlipDistribution(p="4/5", eta=["1/100"] * 4 + [1] * 3) == PROPOSITION_1
    assert SignFlipDistribution(p=0.8, eta=[0.01] * 4 + [1.0] * 2 + [2]) != PROPOSITION_1
    assert SignFlipDistribution(p=0.7, eta=PROPOSITION_1.eta) != PROPOSITION_1


def test_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        SignFlipDistribution(0.8, [1.0])  # type: ignore[misc]
    with pytest.raises(TypeError):
        TsiprasDistribution(0.8, 1.0, 3)  # type: ignore[misc]


def test_restricted_to_keeps_p_and_the_chosen_scales() -> None:
    restricted = PROPOSITION_1.restricted_to([4, 5, 6])
    assert restricted == SignFlipDistribution(p=F(4, 5), eta=[1, 1, 1])
    assert PROPOSITION_1.restricted_to((0, 6)).eta == (F(1, 100), F(1))
    with pytest.raises(ValueError, match="features"):
        PROPOSITION_1.restricted_to([])


# --- invalid parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 1.5, "3/2", math.nan, math.inf, -math.inf, True, "abc", None])
def test_sign_flip_rejects_a_bad_p(p) -> None:
    with pytest.raises(ValueError, match=r"^p\b"):
        SignFlipDistribution(p=p, eta=[1])


@pytest.mark.parametrize(
    ("eta", "pattern"),
    [
        ([0.01, -1], r"eta\[1\] must be >= 0"),
        ([-0.01], r"eta\[0\] must be >= 0"),
        ([], r"^eta must hold at least one"),
        (np.array([]), r"^eta must hold at least one"),
        ([1, math.nan], r"eta\[1\]"),
        ([math.inf], r"eta\[0\]"),
        (["abc"], r"eta\[0\]"),
        (1.0, r"^eta must be a sequence"),
        ("0.1,0.2", r"^eta must be a sequence"),
    ],
)
def test_sign_flip_rejects_a_bad_eta(eta, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        SignFlipDistribution(p=0.8, eta=eta)


def test_boundary_parameters_are_accepted() -> None:
    assert SignFlipDistribution(p=0, eta=[0]).p == 0
    assert SignFlipDistribution(p=1, eta=[0, 0]).d == 2


@pytest.mark.parametrize("n", [-1, 2.5, True, "10", None])
def test_sample_rejects_a_bad_n(n) -> None:
    with pytest.raises(ValueError, match=r"^n must be a non-negative integer"):
        PROPOSITION_1.sample(n)
    with pytest.raises(ValueError, match=r"^n must be a non-negative integer"):
        TsiprasDistribution(p=0.9, eta=0.5, d=2).sample(n)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(p=0.9, eta=0.5, d=0), r"^d must be an integer >= 1"),
        (dict(p=0.9, eta=0.5, d=-3), r"^d must be an integer >= 1"),
        (dict(p=0.9, eta=0.5, d=True), r"^d must be an integer >= 1"),
        (dict(p=0.9, eta=0.5, d=2.0), r"^d must be an integer >= 1"),
        (dict(p=1.1, eta=0.5, d=2), r"^p must lie in \[0, 1\]"),
        (dict(p=math.nan, eta=0.5, d=2), r"^p\b"),
        (dict(p=0.9, eta=-0.5, d=2), r"^eta must be >= 0"),
        (dict(p=0.9, eta=math.inf, d=2), r"^eta\b"),
    ],
)
def test_tsipras_rejects_bad_parameters(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        TsiprasDistribution(**kwargs)


# --- the sampler of Eq. 16 --------------------------------------------------------------------


@settings(max_examples=40)
@given(dist=distributions(), seed=st.integers(0, 2**32 - 1))
def test_sample_is_reproducible_and_on_the_support(dist: SignFlipDistribution, seed: int) -> None:
    x, y = dist.sample(300, seed=seed)
    x_again, y_again = dist.sample(300, seed=seed)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    x_gen, y_gen = dist.sample(300, seed=np.random.default_rng(seed))
    np.testing.assert_array_equal(x, x_gen)
    np.testing.assert_array_equal(y, y_gen)

    assert x.shape == (300, dist.d) and x.dtype == np.float64
    assert y.shape == (300,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) <= {-1, 1}
    eta = np.array([float(e) for e in dist.eta])
    assert np.all((x == eta) | (x == -eta)), "every x_i must be +eta_i or -eta_i"


def test_different_seeds_give_different_samples() -> None:
    x0, y0 = PROPOSITION_1.sample(200, seed=0)
    x1, y1 = PROPOSITION_1.sample(200, seed=1)
    assert not (np.array_equal(x0, x1) and np.array_equal(y0, y1))


def test_empty_sample() -> None:
    x, y = PROPOSITION_1.sample(0, seed=0)
    assert x.shape == (0, 7) and y.shape == (0,)


@settings(max_examples=30)
@given(p=probabilities(), d=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_feature_agreement_frequency_matches_p(p: F, d: int, seed: int) -> None:
    eta = [F(1, 100), F(1), F(2), F(1, 2), F(1, 50), F(1, 10), F(3)][:d]
    dist = SignFlipDistribution(p=p, eta=eta)
    n = 4000
    x, y = dist.sample(n, seed=seed)
    for i in range(d):
        agree = int(np.count_nonzero(x[:, i] * y > 0))
        assert estimate_from_counts(agree, n, confidence=STRICT).contains(p), (i, agree / n, p)
    positives = int(np.count_nonzero(y == 1))
    assert estimate_from_counts(positives, n, confidence=STRICT).contains(0.5)


def test_features_are_independent_given_the_label() -> None:
    # P(both x_1 and x_2 agree with y) = p^2 under Eq. 16.
    dist = SignFlipDistribution(p="3/4", eta=[1, 1])
    x, y = dist.sample(20_000, seed=7)
    both = int(np.count_nonzero((x[:, 0] * y > 0) & (x[:, 1] * y > 0)))
    assert estimate_from_counts(both, 20_000, confidence=STRICT).contains(9 / 16)


def test_degenerate_p_and_zero_scales() -> None:
    x, y = SignFlipDistribution(p=1, eta=[1, 2]).sample(500, seed=0)
    np.testing.assert_array_equal(x, y[:, None] * np.array([1.0, 2.0]))
    x, y = SignFlipDistribution(p=0, eta=[1, 2]).sample(500, seed=0)
    np.testing.assert_array_equal(x, -y[:, None] * np.array([1.0, 2.0]))
    x, _ = SignFlipDistribution(p=0.8, eta=[0, 1]).sample(500, seed=0)
    assert np.all(x[:, 0] == 0)


# --- labels <-> class indices -----------------------------------------------------------------


def test_label_mapping() -> None:
    np.testing.assert_array_equal(labels_to_indices(np.array([-1, 1, 1, -1])), [0, 1, 1, 0])
    np.testing.assert_array_equal(indices_to_labels(np.array([0, 1, 1, 0])), [-1, 1, 1, -1])
    assert labels_to_indices(np.array([-1.0, 1.0])).dtype == np.int64
    assert indices_to_labels(np.array([0, 1])).dtype == np.int64


@given(st.lists(st.sampled_from([-1, 1]), max_size=50))
def test_label_mapping_round_trips(labels: list[int]) -> None:
    y = np.array(labels, dtype=np.int64)
    indices = labels_to_indices(y)
    assert set(indices.tolist()) <= {0, 1}
    np.testing.assert_array_equal(indices_to_labels(indices), y)
    np.testing.assert_array_equal(labels_to_indices(indices_to_labels(indices)), indices)


@pytest.mark.parametrize("labels", [[0, 1], [-1, 2], [1, -1, 0.5], [3], [-2, -1]])
def test_labels_to_indices_rejects_other_labels(labels) -> None:
    with pytest.raises(ValueError, match=r"^labels must be -1 or \+1"):
        labels_to_indices(np.array(labels))


@pytest.mark.parametrize("indices", [[-1, 0], [2], [0, 1, 0.5]])
def test_indices_to_labels_rejects_other_indices(indices) -> None:
    with pytest.raises(ValueError, match=r"^class indices must be 0 or 1"):
        indices_to_labels(np.array(indices))


# --- the sampler of Eq. 13 --------------------------------------------------------------------


def test_tsipras_keeps_its_parameters() -> None:
    dist = TsiprasDistribution(p="9/10", eta="1/2", d=3)
    assert (dist.p, dist.eta, dist.d) == (0.9, 0.5, 3)


@settings(max_examples=20)
@given(
    p=probabilities(),
    eta=st.sampled_from([0, 0.1, 0.5, 1, 2]),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_tsipras_sample(p: F, eta: float, d: int, seed: int) -> None:
    dist = TsiprasDistribution(p=p, eta=eta, d=d)
    n = 4000
    x, y = dist.sample(n, seed=seed)
    assert x.shape == (n, d + 1) and x.dtype == np.float64
    assert y.shape == (n,) and set(np.unique(y).tolist()) <= {-1, 1}
    assert np.all(np.abs(x[:, 0]) == 1), "x_1 must be +1 or -1"
    x_again, y_again = dist.sample(n, seed=seed)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)

    agree = int(np.count_nonzero(x[:, 0] == y))
    assert estimate_from_counts(agree, n, confidence=STRICT).contains(p)
    # y·x_j ~ N(eta, 1) for every weak feature: the mean is within 6 standard errors.
    shifted = x[:, 1:] * y[:, None]
    assert np.all(np.abs(shifted.mean(axis=0) - eta) < 6 / math.sqrt(n))
    assert np.all(np.abs(shifted.std(axis=0) - 1) < 0.1)


@pytest.mark.parametrize("eta", [["1e400"], [1, 10**400]])
def test_a_scale_beyond_the_float_range_raises_value_error(eta) -> None:
    """A scale a float cannot hold is rejected with ValueError naming it (as NaN and inf are)."""
    with pytest.raises(ValueError, match=r"eta\[\d\]"):
        SignFlipDistribution(p=0.8, eta=eta)


def test_tsipras_eta_beyond_the_float_range_raises_value_error() -> None:
    """TsiprasDistribution(eta="1e400") raises ValueError, not OverflowError."""
    with pytest.raises(ValueError, match=r"^eta\b"):
        TsiprasDistribution(p=0.8, eta="1e400", d=2)
