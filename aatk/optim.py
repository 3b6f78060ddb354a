"""The optimiser and learning-rate schedule of the paper's code, in Keras.

The paper trained with PyTorch's ``torch.optim.SGD`` (momentum 0.9, weight decay,
Table 5) and ``MultiStepLR``. Keras's SGD differs in two ways that matter:

* **Weight decay.** Keras applies it decoupled from the gradient, w ← w − lr·wd·w,
  once per step. PyTorch adds wd·w to the gradient *before* momentum, so with
  momentum μ the decay accumulates in the buffer and acts as lr·wd/(1 − μ) per step
  at steady state: ten times Keras's at μ = 0.9.
* **Where the learning rate enters momentum.** Keras keeps v ← μ·v − lr·g (the
  rate inside the buffer); PyTorch keeps b ← μ·b + g and steps by lr·b. They agree
  while the rate is constant and differ just after a milestone, where PyTorch's old
  momentum is scaled by the new rate at once.

[`TorchSGD`][aatk.optim.TorchSGD] is ``torch.optim.SGD`` (no dampening, no Nesterov) in Keras.
[`PiecewiseConstantWithWarmup`][aatk.optim.PiecewiseConstantWithWarmup] is
``MultiStepLR`` on steps (the rate changes exactly at the first step of a
milestone epoch), optionally with a linear warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = ["OPTIMIZERS", "PiecewiseConstantWithWarmup", "TorchSGD"]

OPTIMIZERS = ("sgd-pytorch", "sgd-keras")
"""Optimiser names of a configuration: [`TorchSGD`][aatk.optim.TorchSGD] or ``keras.optimizers.SGD``."""


@keras.saving.register_keras_serializable(package="aatk")
class TorchSGD(keras.optimizers.Optimizer):
    """SGD with momentum and weight decay as ``torch.optim.SGD`` computes them.

    For every weight w with gradient ∇ (dampening 0, no Nesterov):

        g ← ∇ + wd·w        (weight decay coupled to the gradient)
        b ← μ·b + g         (b starts at 0, so the first step has b = g, as PyTorch's)
        w ← w − lr·b

    Every trainable weight is decayed, biases and normalisation parameters included,
    as ``torch.optim.SGD(net.parameters(), ...)`` does.

    Paper: Appendix B.2 and Table 5 (SGD, momentum 0.9, weight decay 5e-4 or 2e-4,
    from YOPO's ``SGDOptimizerMaker``, a ``torch.optim.SGD``).

    Args:
        learning_rate: A float or a ``LearningRateSchedule`` (from
            ``keras.optimizers.schedules``).
        momentum: μ in [0, 1).
        weight_decay: wd ≥ 0 (PyTorch's meaning: added to the gradient).
        name: Name of the optimizer.
        **kwargs: Other arguments of ``keras.optimizers.Optimizer`` (clipping, EMA...),
            except ``weight_decay``'s decoupled form, which this class replaces.

    Raises:
        ValueError: If momentum is not in [0, 1) or weight_decay is negative or not finite.

    Examples:
        >>> w = keras.Variable([1.0])
        >>> sgd = TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5)
        >>> sgd.apply([keras.ops.convert_to_tensor([0.0])], [w])   # g = 0 + 0.5·1; w = 1 − 0.1·0.5
        >>> round(float(w.numpy()[0]), 6)
        0.95
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 0.01,
        *,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        name: str = "torch_sgd",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        momentum, weight_decay = float(momentum), float(weight_decay)
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not math.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        self.momentum = momentum
        self.coupled_weight_decay = weight_decay

    def build(self, variables: Sequence[keras.Variable]) -> None:
        """Creates one momentum buffer per weight (none without momentum)."""
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def update_step(self, gradient: Any, variable: keras.Variable, learning_rate: Any) -> None:
        """One PyTorch SGD update of ``variable``."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            gradient = gradient + ops.cast(self.coupled_weight_decay, variable.dtype) * variable
        if self.momentum:
            buffer = self.momentum_buffers[self._get_variable_index(variable)]
            self.assign(buffer, ops.cast(self.momentum, variable.dtype) * buffer + gradient)
            gradient = buffer
        self.assign_sub(variable, learning_rate * gradient)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(momentum=self.momentum, weight_decay=self.coupled_weight_decay)
        return config


@keras.saving.register_keras_serializable(package="aatk")
class PiecewiseConstantWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A piecewise-constant learning rate (``MultiStepLR``) with an optional linear warm-up.

    The rate of optimizer step s (counted from 0) is ``values[i]``, where i is the number
    of boundaries ≤ s: a boundary b is the first step at the new rate, so with
    boundaries at milestone·steps_per_epoch the rate changes exactly at the first step
    of the milestone epoch, as PyTorch's ``MultiStepLR`` stepped once per epoch does.
    During the first ``warmup_steps`` steps the rate is scaled by (s + 1) / warmup_steps,
    rising linearly to the full rate at step ``warmup_steps − 1``.

    Paper: Table 5 (learning rate, milestones; gamma 0.1 from YOPO). The warm-up is
    not the paper's: it is aatk's remedy for the dead ReLUs that Table 5's peak rate
    causes in the three-way model (see ``docs/results.md``).

    Args:
        boundaries: Increasing step indices ≥ 1 at which the rate changes.
        values: One more rate than boundaries, each > 0.
        warmup_steps: Length of the linear warm-up (0: none).

    Raises:
        ValueError: On boundaries that are not increasing positive integers, a wrong
            number of values, a non-positive or non-finite rate, or warmup_steps < 0.

    Examples:
        >>> schedule = PiecewiseConstantWithWarmup(boundaries=[4], values=[0.1, 0.01], warmup_steps=2)
        >>> tuple(round(float(schedule(s)), 4) for s in range(6))
        (0.05, 0.1, 0.1, 0.1, 0.01, 0.01)
    """

    def __init__(self, *, boundaries: Sequence[int], values: Sequence[float], warmup_steps: int = 0) -> None:
        boundaries = list(boundaries)
        values = [float(v) for v in values]
        if any(isinstance(b, bool) or int(b) != b or b < 1 for b in boundaries) or boundaries != sorted(set(boundaries)):
            raise ValueError(f"boundaries must be increasing integers >= 1, got {boundaries}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries ({len(boundaries) + 1}), got {len(values)}")
        if any(not math.isfinite(v) or v <= 0 for v in values):
            raise ValueError(f"values must be finite rates > 0, got {values}")
        if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.boundaries = [int(b) for b in boundaries]
        self.values = values
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.values[0], dtype="float32")
        for boundary, value in zip(self.boundaries, self.values[1:]):
            rate = ops.where(step >= boundary, ops.convert_to_tensor(value, dtype="float32"), rate)
        if self.warmup_steps:
            rate = rate * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return rate

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "warmup_steps": self.warmup_steps}
