"""theory._rational: exact conversion of parameters, their validation and formatting."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theory._rational import (
    check_nonnegative,
    check_probability,
    format_fraction,
    to_fraction,
    to_fractions,
)

# --- to_fraction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.8, F(4, 5)),  # the shortest decimal, not the binary double
        (0.01, F(1, 100)),
        (0.02, F(1, 50)),
        (1.0, F(1)),
        (-0.5, F(-1, 2)),
        (3, F(3)),
        ("4/5", F(4, 5)),
        ("0.8", F(4, 5)),
        ("  0.01 ", F(1, 100)),
        ("-3/6", F(-1, 2)),
        ("1e-2", F(1, 100)),
        (Decimal("0.125"), F(1, 8)),
        (np.int64(7), F(7)),
        (np.float64(0.1), F(1, 10)),
        (np.float32(0.5), F(1, 2)),
    ],
)
def test_to_fraction_reads_the_number_a_person_means(value, expected) -> None:
    result = to_fraction(value, name="v")
    assert isinstance(result, F)
    assert result == expected


def test_to_fraction_differs_from_the_binary_double() -> None:
    # Fraction(0.8) is the double closest to 0.8; to_fraction reads "0.8".
    assert F(0.8) != F(4, 5)
    assert to_fraction(0.8, name="p") == F(4, 5)


def test_to_fraction_returns_fractions_unchanged() -> None:
    value = F(15104, 15625)
    assert to_fraction(value, name="v") is value


@pytest.mark.parametrize(
    "value",
    [True, False, math.nan, math.inf, -math.inf, "abc", "", "1/0", "nan", "inf", "0.8.1",
     None, 1 + 2j, [0.5], Decimal("NaN"), Decimal("Infinity"), np.float64("nan")],
)
def test_to_fraction_rejects_non_numbers_naming_the_parameter(value) -> None:
    with pytest.raises(ValueError, match=r"^my_param\b"):
        to_fraction(value, name="my_param")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_to_fraction_of_a_float_is_its_shortest_decimal(value: float) -> None:
    result = to_fraction(value, name="v")
    assert result == F(repr(value))
    assert float(result) == value  # repr round-trips


@given(st.integers(-10**6, 10**6), st.integers(1, 10**6))
def test_to_fraction_of_a_ratio_string(numerator: int, denominator: int) -> None:
    assert to_fraction(f"{numerator}/{denominator}", name="v") == F(numerator, denominator)


# --- to_fractions -----------------------------------------------------------------------------


def test_to_fractions_converts_every_entry() -> None:
    assert to_fractions([0.01, "1/2", 3], name="eta") == (F(1, 100), F(1, 2), F(3))
    assert to_fractions(np.array([0.25, 1.0]), name="eta") == (F(1, 4), F(1))
    assert to_fractions((), name="eta") == ()


def test_to_fractions_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"eta\[2\]"):
        to_fractions([1, 2, "x"], name="eta")
    with pytest.raises(ValueError, match=r"eta\[1\]"):
        to_fractions([1, math.nan], name="eta")


@pytest.mark.parametrize("value", ["0.1,0.2", b"12", 5, 0.5, None])
def test_to_fractions_rejects_a_string_or_a_scalar(value) -> None:
    with pytest.raises(ValueError, match=r"^eta must be a sequence"):
        to_fractions(value, name="eta")


# --- checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, "0", "1", 0.5, F(1, 3), "4/5"])
def test_check_probability_accepts_the_closed_unit_interval(value) -> None:
    result = check_probability(value)
    assert 0 <= result <= 1
    assert result == to_fraction(value, name="p")


@pytest.mark.parametrize("value", [-0.01, 1.01, "101/100", -1, 2, F(-1, 10**9)])
def test_check_probability_rejects_values_outside_naming_p(value) -> None:
    with pytest.raises(ValueError, match=r"^p must lie in \[0, 1\]"):
        check_probability(value)
    with pytest.raises(ValueError, match=r"^reliability must lie"):
        check_probability(value, name="reliability")


@pytest.mark.parametrize("value", [math.nan, math.inf, True, "abc"])
def test_check_probability_rejects_non_numbers(value) -> None:
    with pytest.raises(ValueError, match=r"^p\b"):
        check_probability(value)


def test_check_nonnegative() -> None:
    assert check_nonnegative(0, name="eps") == 0
    assert check_nonnegative("0.02", name="eps") == F(1, 50)
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        check_nonnegative(-0.1, name="eps")
    with pytest.raises(ValueError, match=r"^eps must be >= 0"):
        check_nonnegative(F(-1, 10**12), name="eps")
    with pytest.raises(ValueError, match=r"^eps\b"):
        check_nonnegative(math.inf, name="eps")


# --- format_fraction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (F(15104, 15625), "15104/15625 (= 0.966656)"),
        (F(112, 125), "112/125 (= 0.896)"),
        (F(1, 5), "1/5 (= 0.2)"),
        (F(1, 3), "1/3 (≈ 0.333333)"),
        (F(2, 3), "2/3 (≈ 0.666667)"),
        (F(0), "0"),
        (F(1), "1"),
        (F(7), "7"),
    ],
)
def test_format_fraction(value: F, expected: str) -> None:
    assert format_fraction(value) == expected


@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_format_fraction_is_faithful(numerator: int, denominator: int) -> None:
    value = F(numerator, denominator)
    text = format_fraction(value)
    if value.denominator == 1:
        assert text == str(value.numerator)
        return
    head, _, tail = text.partition(" (")
    assert head == f"{value.numerator}/{value.denominator}"
    relation, decimal = tail.rstrip(")").split(" ")
    assert abs(F(decimal) - value) <= F(1, 2 * 10**6)
    # "=" exactly when six decimals represent the value exactly.
    assert (relation == "=") == ((value * 10**6).denominator == 1)
    if relation == "=":
        assert F(decimal) == value
