"""TensorFlow implementations of the backend glue (see :mod:`aatk.backend`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

#: XLA compilation of fit's train step: measured slower than plain graph mode for
#: attack loops on CPU (benchmarks/train_step_speed.py), so off by default.
JIT_TRAIN_STEP = False

#: PGD's steps as one ``tf.while_loop``: measured on the MNIST small CNN (PGD-40, 256 images, CPU),
#: tracing takes 2.8 s instead of 7.4 s unrolled, and a call 3.1–3.7 s instead of 3.8–4.0 s.
ROLL_ATTACK_LOOPS = True


def input_gradient(loss_fn: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """∇_x of ``sum(loss_fn(x))``; the gradient never reaches any weight.

    The tape watches only ``x``, so the model's variables are read as constants:
    an attack built on this cannot leak a gradient into training.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(loss_fn(x))
    return tf.stop_gradient(tape.gradient(loss, x))


def value_and_weight_gradients(
    loss_fn: Callable[[], tuple[tf.Tensor, dict]], variables: Sequence[tf.Variable]
) -> tuple[tf.Tensor, dict, list[tf.Tensor]]:
    """Evaluates ``loss_fn()`` → (loss, aux) and the gradient of loss w.r.t. ``variables``.

    Under a ``tf.distribute`` strategy each replica sees its share of the global batch
    and the optimizer sums the replicas' gradients, so the gradient is taken of the
    loss divided by the number of replicas: the sum is then the gradient of the
    global batch's mean. The loss returned is the replica's own, unscaled.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
        loss, aux = loss_fn()
        scaled = loss / replicas if replicas > 1 else loss
    return loss, aux, tape.gradient(scaled, list(variables))


def batch_jacobian(fn: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Per-example Jacobian of ``fn`` (batch, out) w.r.t. ``x`` (batch, in): shape (batch, out, in)."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = fn(x)
    return tape.batch_jacobian(y, x)


def compile_function(fn: Callable, *, state: Sequence[keras.Variable]) -> Callable:
    """Compiles ``fn`` into a TensorFlow graph (XLA off: slower for attack loops on CPU).

    ``state`` (the Keras variables ``fn`` touches) is what the JAX backend needs; a
    ``tf.function`` reads and assigns variables itself.
    """
    del state
    return tf.function(fn, reduce_retracing=True)


def variable_scope(model: keras.Model):
    """Where new variables of ``model`` (e.g. the optimizer's) must be created: its
    ``tf.distribute`` strategy's scope, so that they are mirrored on every replica."""
    return model.distribute_strategy.scope()


def stateful_step(model: keras.Model, step_fn: Callable, data: Any) -> dict:
    """Runs ``step_fn(data)``: a TensorFlow step reads and assigns variables directly."""
    del model
    return step_fn(data)


def check_batch(x, y, *, num_classes: int, bounds: tuple[float, float] | None) -> list:
    """In-graph checks of one batch; a failure stops the computation with the message.

    Returns the assertion ops, for use as control dependencies. Under XLA these
    ops compile to nothing, which is why :func:`checked_dataset` runs them in the
    input pipeline as well.
    """
    x = tf.convert_to_tensor(x)
    y = tf.reshape(tf.convert_to_tensor(y), [-1])
    checks = [tf.debugging.assert_all_finite(tf.cast(x, tf.float32), "aatk: inputs contain NaN or inf")]
    if bounds is not None:
        checks += [
            tf.debugging.assert_greater_equal(
                tf.reduce_min(x), tf.cast(bounds[0], x.dtype),
                message=f"aatk: inputs below the attack's lower bound {bounds[0]} (nothing is clipped)",
            ),
            tf.debugging.assert_less_equal(
                tf.reduce_max(x), tf.cast(bounds[1], x.dtype),
                message=f"aatk: inputs above the attack's upper bound {bounds[1]} (nothing is clipped)",
            ),
        ]
    checks += [
        tf.debugging.assert_non_negative(y, message="aatk: negative label"),
        tf.debugging.assert_less(
            y, tf.cast(num_classes, y.dtype), message=f"aatk: label >= num_classes = {num_classes}"
        ),
    ]
    return [c for c in checks if c is not None]


def checked_dataset(dataset: tf.data.Dataset, *, num_classes: int, bounds: tuple[float, float] | None) -> tf.data.Dataset:
    """``dataset`` with :func:`check_batch` run on every (x, y[, sample_weight]) batch it yields."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        return dataset

    def check(*batch):
        with tf.control_dependencies(check_batch(batch[0], batch[1], num_classes=num_classes, bounds=bounds)):
            return tuple(tf.identity(part) for part in batch)

    return dataset.map(check)
