"""Exact rational parameters and their validation.

Every parameter of the toy distributions (p, η, ε, weights) is kept as a
`fractions.Fraction`, so the enumerations in [`theory.exact`][theory.exact] are exact.
A float is read by its shortest decimal representation (``0.8`` means ``4/5``,
not the binary double closest to 0.8), which is what a person typing 0.8 means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from numbers import Rational, Real

RationalLike = Fraction | int | float | str | Decimal

__all__ = [
    "RationalLike",
    "to_fraction",
    "to_fractions",
    "check_probability",
    "check_nonnegative",
    "format_fraction",
    "to_float",
]


def to_fraction(value: RationalLike, *, name: str) -> Fraction:
    """Converts a number or a string such as ``"4/5"`` or ``"0.8"`` to a Fraction.

    Args:
        value: A Fraction, int, float, Decimal or string. Floats are read through
            their shortest ``repr`` so that ``0.01`` becomes exactly ``1/100``.
        name: The parameter's name, used in error messages.

    Returns:
        The exact rational value.

    Raises:
        ValueError: If ``value`` is a bool, not finite, or not a number.

    Examples:
        >>> to_fraction(0.8, name="p")
        Fraction(4, 5)
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got the bool {value!r}")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, Rational):
        return Fraction(int(value.numerator), int(value.denominator))
    if isinstance(value, str):
        text = value.strip()
        try:
            result = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"{name} must be a finite number such as 0.8 or 4/5, got {value!r}"
            ) from None
        return result
    if isinstance(value, (float, Decimal, Real)):
        as_float = float(value)
        if not math.isfinite(as_float):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return Fraction(repr(as_float)) if isinstance(value, float) else Fraction(str(value))
    raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")


def to_fractions(values: Iterable[RationalLike], *, name: str) -> tuple[Fraction, ...]:
    """Converts every entry of ``values`` with `to_fraction`.

    Args:
        values: An iterable of numbers (a list, tuple or 1-D NumPy array).
        name: The parameter's name; entries are reported as ``name[i]``.

    Returns:
        A tuple of Fractions.

    Raises:
        ValueError: If ``values`` is a string or not iterable, or if an entry is invalid.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    return tuple(to_fraction(v, name=f"{name}[{i}]") for i, v in enumerate(values))


def check_probability(value: RationalLike, *, name: str = "p") -> Fraction:
    """Returns ``value`` as a Fraction after checking that it lies in [0, 1].

    Raises:
        ValueError: If ``value`` is not a number in [0, 1].
    """
    result = to_fraction(value, name=name)
    if not 0 <= result <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return result


def check_nonnegative(value: RationalLike, *, name: str) -> Fraction:
    """Returns ``value`` as a Fraction after checking that it is ≥ 0.

    Raises:
        ValueError: If ``value`` is negative or not a finite number.
    """
    result = to_fraction(value, name=name)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return result


def to_float(value: Fraction, *, name: str) -> float:
    """``float(value)``, refusing values that a float cannot represent.

    Sampling and prediction run in floating point; a value that overflows to inf or
    underflows to 0 would silently change the model, so it is an error instead.

    Raises:
        ValueError: If ``value`` is too large or (non-zero and) too small for a float.
    """
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise ValueError(f"{name} = {_magnitude(value)} is too large for floating point")
    if result == 0 and value != 0:
        raise ValueError(f"{name} = {_magnitude(value)} is too small for floating point (it would become 0)")
    return result


def _magnitude(value: Fraction) -> str:
    """A short description of a huge or tiny fraction, such as ``about 1e+400``."""
    text = str(value)
    if len(text) <= 40:
        return text
    exponent = len(str(abs(value.numerator))) - len(str(value.denominator))
    sign = "-" if value < 0 else ""
    return f"about {sign}1e{exponent:+d}"


def format_fraction(value: Fraction, *, digits: int = 6) -> str:
    """Formats a Fraction as ``"a/b (= 0.xyz)"``, or ``"≈"`` when the decimal is rounded.

    Examples:
        >>> format_fraction(Fraction(15104, 15625))
        '15104/15625 (= 0.966656)'
        >>> format_fraction(Fraction(1, 3))
        '1/3 (≈ 0.333333)'
    """
    scaled = value * 10**digits
    rounded = Fraction(round(scaled), 10**digits)
    relation = "=" if scaled.denominator == 1 else "≈"
    decimal = f"{float(rounded):.{digits}f}".rstrip("0").rstrip(".") if relation == "=" else f"{float(rounded):.{digits}f}"
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator} ({relation} {decimal})"
