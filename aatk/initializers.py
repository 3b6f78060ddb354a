"""Weight initialisation: Keras's defaults, or the PyTorch code the paper's settings come from.

The paper ran PyTorch with YOPO's settings (Appendix B.2), and its networks started
from PyTorch's initialisation, not Keras's. The two differ a lot for these layers:

* Keras: every kernel Glorot-uniform, every bias zero.
* PyTorch's defaults (``nn.Linear`` and ``nn.Conv2d``): kernel U(±1/√fan_in), from
  ``kaiming_uniform_(a=√5)``, and bias U(±1/√fan_in).
* YOPO's (TRADES') small CNN for MNIST (``lib/base_model/small_cnn.py``): its four
  convolutions ``kaiming_normal_`` — N(0, 2/fan_in), the ReLU gain, not truncated —
  with zero bias; its linear layers PyTorch's defaults. (Its output layer fc3 starts
  at zero, but the encoder drops that layer: Section 3.1.)

Glorot's standard deviation is 0.17–0.71 times the Kaiming-normal one on the small
CNN's convolutions and 1.7–2.4 times PyTorch's on its dense layers; see
``docs/results.md`` for what that does to training at Table 5's learning rate.

``init="keras"`` keeps Keras's defaults; ``init="pytorch"`` gives the PyTorch/YOPO
initialisation above. The functions here return keyword arguments for Keras layers.
"""

from __future__ import annotations

import math
from typing import Any

import keras

__all__ = ["INITS", "check_init", "conv_kwargs", "dense_kwargs"]

INITS = ("keras", "pytorch")
"""The initialisation schemes: Keras's defaults or PyTorch's (YOPO's for the small CNN)."""


def check_init(init: str) -> str:
    """Returns ``init`` if it names one of [`INITS`][aatk.initializers.INITS], else raises ValueError."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def _torch_default(fan_in: int) -> dict[str, Any]:
    """``nn.Linear`` / ``nn.Conv2d`` defaults: kernel and bias U(±1/√fan_in).

    PyTorch draws the kernel with ``kaiming_uniform_(a=√5)``: gain √(2/(1+5)) = √(1/3),
    bound gain·√(3/fan_in) = 1/√fan_in — Keras's VarianceScaling with scale 1/3, fan-in
    mode, uniform distribution. The bias bound is 1/√fan_in of the kernel's fan-in.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
        "bias_initializer": keras.initializers.RandomUniform(minval=-bound, maxval=bound),
    }


def dense_kwargs(init: str, *, fan_in: int) -> dict[str, Any]:
    """Initialiser arguments of a ``Dense`` layer with ``fan_in`` inputs.

    ``"pytorch"``: PyTorch's ``nn.Linear`` default (kernel and bias U(±1/√fan_in)).

    Examples:
        >>> sorted(dense_kwargs("pytorch", fan_in=400))
        ['bias_initializer', 'kernel_initializer']
        >>> dense_kwargs("keras", fan_in=400)
        {}
    """
    if check_init(init) == "keras":
        return {}
    return _torch_default(int(fan_in))


def conv_kwargs(init: str, *, fan_in: int, kaiming_normal: bool = False) -> dict[str, Any]:
    """Initialiser arguments of a ``Conv2D`` layer whose kernel has ``fan_in`` = kh·kw·C_in.

    ``"pytorch"``: PyTorch's ``nn.Conv2d`` default (kernel and bias U(±1/√fan_in)), or,
    with ``kaiming_normal=True``, YOPO's small-CNN convolutions: kernel N(0, 2/fan_in)
    (``nn.init.kaiming_normal_``, not truncated) and zero bias.
    """
    if check_init(init) == "keras":
        return {}
    if kaiming_normal:
        return {
            "kernel_initializer": keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_in", distribution="untruncated_normal"
            ),
            "bias_initializer": "zeros",
        }
    return _torch_default(int(fan_in))
