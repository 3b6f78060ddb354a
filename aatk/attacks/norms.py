"""The per-norm hooks every attack shares: random start, steepest-ascent direction, projection.

One class per threat model, in the shape of Foolbox 3's gradient-descent attacks: an
attack's loop is written once and calls these hooks, so ℓ∞ and ℓ2 differ only here.
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["NORMS", "LinfBall", "L2Ball", "per_example_norm"]

_TINY = 1e-12


def per_example_norm(t):
    """ℓ2 norm of every example of a batch, shape (batch, 1, …, 1) for broadcasting."""
    axes = tuple(range(1, len(t.shape)))
    return ops.sqrt(ops.sum(ops.square(t), axis=axes, keepdims=True))


class LinfBall:
    """Hooks for the ℓ∞ ball {δ : max_i |δ_i| ≤ ε}."""

    name = "linf"

    @staticmethod
    def random_start(shape, eps: float, seed) -> object:
        """A point uniform in the cube [−ε, ε]ᴰ."""
        return keras.random.uniform(shape, minval=-eps, maxval=eps, seed=seed)

    @staticmethod
    def normalize(gradient):
        """The steepest-ascent direction for ℓ∞: sign(∇)."""
        return ops.sign(gradient)

    @staticmethod
    def project(delta, eps: float):
        """Clips every coordinate of δ to [−ε, ε]."""
        return ops.clip(delta, -eps, eps)

    @staticmethod
    def norm(delta):
        """‖δ‖∞ of every example, shape (batch,)."""
        return ops.max(ops.abs(ops.reshape(delta, (ops.shape(delta)[0], -1))), axis=-1)


class L2Ball:
    """Hooks for the ℓ2 ball {δ : ‖δ‖₂ ≤ ε} (one ball per example)."""

    name = "l2"

    @staticmethod
    def random_start(shape, eps: float, seed) -> object:
        """A point uniform in the volume of the ℓ2 ball (not on its sphere).

        A Gaussian direction is uniform on the sphere; the radius ε·U^(1/D) (the D-th
        root of U) with U uniform on [0, 1] makes the density uniform in the D-dimensional volume.
        """
        direction = keras.random.normal(shape, seed=seed)
        direction = direction / ops.maximum(per_example_norm(direction), _TINY)
        dims = math.prod(int(s) for s in shape[1:])
        uniform = keras.random.uniform((shape[0],) + (1,) * (len(shape) - 1), seed=seed)
        radius = eps * ops.exp(ops.log(ops.maximum(uniform, _TINY)) / dims)
        return direction * radius

    @staticmethod
    def normalize(gradient):
        """The steepest-ascent direction for ℓ2: ∇ / ‖∇‖₂ (zero where ∇ = 0)."""
        return gradient / ops.maximum(per_example_norm(gradient), _TINY)

    @staticmethod
    def project(delta, eps: float):
        """Scales δ back onto the ball when ‖δ‖₂ > ε."""
        norm = per_example_norm(delta)
        return delta * ops.minimum(1.0, eps / ops.maximum(norm, _TINY))

    @staticmethod
    def norm(delta):
        """‖δ‖₂ of every example, shape (batch,)."""
        return ops.sqrt(ops.sum(ops.square(ops.reshape(delta, (ops.shape(delta)[0], -1))), axis=-1))


NORMS = {"linf": LinfBall, "l2": L2Ball}
"""The threat models by name: ``"linf"`` → [`LinfBall`][aatk.attacks.norms.LinfBall], ``"l2"`` → [`L2Ball`][aatk.attacks.norms.L2Ball]."""
