"""Backend glue: the only code in aatk that depends on the Keras backend.

Everything else — the objectives, the attack's per-norm hooks, the train step's
logic, the evaluation — is written with ``keras.ops`` and is backend-agnostic.
This package exposes the few operations that cannot be, one module per backend
([`aatk.backend.tensorflow`][aatk.backend.tensorflow], [`aatk.backend.jax`][aatk.backend.jax]):

* ``input_gradient(loss_fn, x)``: the gradient of a loss with respect to the
  *inputs* (for attacks); ``value_and_input_gradient(loss_fn, x)`` gives the per-example
  losses (and what else ``loss_fn`` returns) with it, from the same forward pass (APGD);
* ``value_and_weight_gradients(loss_fn, variables)``: the gradient with respect to
  the *weights* (for the train step);
* ``stateful_step(model, step_fn, *args)``: runs a stateful step as the backend's
  trainer calls it (TensorFlow: ``step_fn(data)``; JAX: a functional
  ``(state, data) → (logs, state)``);
* ``compile_function(fn, state=...)``: compiles a function of tensors that reads
  the given Keras variables;
* ``variable_scope(model)``: where the model's new variables must be created
  (a ``tf.distribute`` strategy's scope);
* ``state_kept_on_error(model)``: around ``fit``/``evaluate``/``predict``, gives the
  model its variables back if the loop stops on an error (JAX: Keras detaches them);
* ``batch_jacobian``, ``check_batch``, ``checked_dataset``, ``JIT_TRAIN_STEP``
  (whether ``fit`` should XLA-compile the train step) and ``ROLL_ATTACK_LOOPS``
  (whether PGD's steps run as one compiled loop or unrolled), both chosen by measurement.

Selecting another backend (torch, numpy) raises a clear error at import time
rather than a confusing one mid-training.
"""

from __future__ import annotations

import keras

BACKEND = keras.backend.backend()
"""The active Keras backend: ``"tensorflow"`` or ``"jax"``."""

if BACKEND == "tensorflow":
    from aatk.backend.tensorflow import (  # noqa: F401
        JIT_TRAIN_STEP,
        ROLL_ATTACK_LOOPS,
        batch_jacobian,
        check_batch,
        checked_dataset,
        compile_function,
        input_gradient,
        value_and_input_gradient,
        state_kept_on_error,
        stateful_step,
        value_and_weight_gradients,
        variable_scope,
    )
elif BACKEND == "jax":
    from aatk.backend.jax import (  # noqa: F401
        JIT_TRAIN_STEP,
        ROLL_ATTACK_LOOPS,
        batch_jacobian,
        check_batch,
        checked_dataset,
        compile_function,
        input_gradient,
        value_and_input_gradient,
        state_kept_on_error,
        stateful_step,
        value_and_weight_gradients,
        variable_scope,
    )
else:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"aatk supports the TensorFlow and JAX backends (KERAS_BACKEND=tensorflow or jax); "
        f"the active Keras backend is {BACKEND!r}."
    )

__all__ = [
    "BACKEND",
    "JIT_TRAIN_STEP",
    "ROLL_ATTACK_LOOPS",
    "batch_jacobian",
    "check_batch",
    "checked_dataset",
    "compile_function",
    "input_gradient",
    "value_and_input_gradient",
    "state_kept_on_error",
    "stateful_step",
    "value_and_weight_gradients",
    "variable_scope",
]
