"""Backend glue: the only code in aatk that depends on the Keras backend.

Everything else — the objectives, the attack's per-norm hooks, the evaluation —
is written with ``keras.ops`` and is backend-agnostic. This package exposes the
few operations that cannot be: the gradient of a loss with respect to the
*inputs* (for attacks), the gradient with respect to the *weights* (for the
train step), and compilation of a Python function into a graph.

Only the TensorFlow backend is implemented; selecting another raises a clear
error at import time rather than a confusing one mid-training.
"""

from __future__ import annotations

import keras

_BACKEND = keras.backend.backend()

if _BACKEND == "tensorflow":
    from aatk.backend.tensorflow import (  # noqa: F401
        batch_jacobian,
        check_batch,
        checked_dataset,
        compile_function,
        input_gradient,
        value_and_weight_gradients,
    )
else:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"aatk supports the TensorFlow backend only (KERAS_BACKEND=tensorflow); "
        f"the active Keras backend is {_BACKEND!r}."
    )

__all__ = ["batch_jacobian", "check_batch", "checked_dataset", "compile_function", "input_gradient", "value_and_weight_gradients"]
