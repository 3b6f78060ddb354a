"""The three ways of a three-way model, by name.

A module of its own because both the models ([`aatk.model`][aatk.model]) and the attacks
([`aatk.attacks`][aatk.attacks]) speak of ways, and neither should import the other for it.

Paper: Eq. 4–5 (the standard way [z_r, z_n], the robust way [z_r, 0], the non-robust way [0, z_n]).
"""

from __future__ import annotations

__all__ = ["WAYS", "check_way"]

WAYS = ("standard", "robust", "non_robust")
"""The ways of a three-way model: standard [z_r, z_n], robust [z_r, 0], non-robust [0, z_n]."""


def check_way(way: str) -> str:
    """Returns ``way`` if it names one of [`WAYS`][aatk.ways.WAYS], else raises ValueError.

    Examples:
        >>> check_way("robust")
        'robust'
    """
    if way not in WAYS:
        raise ValueError(f"way must be one of {WAYS}, got {way!r}")
    return way
