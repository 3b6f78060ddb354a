"""TensorFlow implementations of the backend glue (see [`aatk.backend`][aatk.backend])."""

from __future__ import annotations

import contextlib
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
    # A loss with no gradient path to x (e.g. through a rounding) has gradient zero, as under JAX.
    return tf.stop_gradient(tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO))


def value_and_input_gradient(
    loss_fn: Callable[[tf.Tensor], tuple[tf.Tensor, Any]], x: tf.Tensor
) -> tuple[tf.Tensor, Any, tf.Tensor]:
    """``loss_fn(x)`` → (per-example losses, aux), and ∇_x of the losses' sum, in one forward pass.

    Like [`input_gradient`][aatk.backend.tensorflow.input_gradient], only ``x`` is watched;
    the losses and ``aux`` (any nest of tensors computed on the way, e.g. whether each
    example is misclassified) come back as constants.

    Returns:
        (losses, aux, gradient).
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        losses, aux = loss_fn(x)
        total = tf.reduce_sum(losses)
    gradient = tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return tf.stop_gradient(losses), tf.nest.map_structure(tf.stop_gradient, aux), tf.stop_gradient(gradient)


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
    return tf.function(_OwnFunction(fn), reduce_retracing=True)


class _OwnFunction:
    """A function with an identity of its own for TensorFlow's retracing statistics.

    TensorFlow counts the tracings of every ``tf.function`` by the Python code object it wraps,
    so many functions made by one factory (an attack compiled for each model and way, from one
    ``lambda``) would look like one function retraced in a loop and trigger its "excessive
    retracing" warning. Wrapped in an object, each is counted on its own: the warning still
    fires for a function that really is retraced again and again.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def variable_scope(model: keras.Model):
    """Where new variables of ``model`` (e.g. the optimizer's) must be created: its
    ``tf.distribute`` strategy's scope, so that they are mirrored on every replica."""
    return model.distribute_strategy.scope()


def stateful_step(model: keras.Model, step_fn: Callable, data: Any) -> dict:
    """Runs ``step_fn(data)``: a TensorFlow step reads and assigns variables directly."""
    del model
    return step_fn(data)


def state_kept_on_error(model: keras.Model):
    """Nothing to do under TensorFlow: its trainer updates the variables in place."""
    del model
    return contextlib.nullcontext()


def _check_dtypes(x: tf.Tensor, y: tf.Tensor | None) -> None:
    """Refuses, when the step or pipeline is traced, dtypes no batch of them could be right with."""
    if x.dtype.is_integer:
        raise ValueError(
            f"aatk: inputs of integer dtype {x.dtype.name}; the model takes float inputs: convert to float "
            "in [0, 1], e.g. x / 255 for 8-bit images"
        )
    if y is not None and not (y.dtype.is_integer or y.dtype.is_floating):
        raise ValueError(f"aatk: labels must be integer class indices, got dtype {y.dtype.name}")


def check_batch(
    x: tf.Tensor,
    y: tf.Tensor | None,
    *,
    num_classes: int,
    bounds: tuple[float, float] | None,
    input_range: tuple[float, float] | None = None,
) -> list:
    """In-graph checks of one batch; a failure stops the computation with the message.

    Returns the assertion ops, for use as control dependencies. Under XLA these
    ops compile to nothing, which is why
    [`checked_dataset`][aatk.backend.tensorflow.checked_dataset] runs them in
    the input pipeline as well.

    Args:
        x: The inputs.
        y: Their labels, or ``None`` to check the inputs alone.
        num_classes: Labels must lie in [0, num_classes).
        bounds: The attack's bounds, or ``None``.
        input_range: The model's input range, or ``None`` for unbounded inputs.

    Raises:
        ValueError: At tracing time, on inputs of an integer dtype or labels that are
            not numbers (the dtype is the same for every batch).
    """
    x = tf.convert_to_tensor(x)
    y = None if y is None else tf.reshape(tf.convert_to_tensor(y), [-1])
    _check_dtypes(x, y)
    checks = [tf.debugging.assert_all_finite(tf.cast(x, tf.float32), "aatk: inputs contain NaN or inf")]
    # No apostrophes in these messages: TensorFlow escapes them in the error it raises.
    for limits, what, advice in (
        (bounds, "the attack bounds", "nothing is clipped"),
        (input_range, "the model input_range", "scale images to [0, 1], e.g. x / 255, or compile with input_range=None"),
    ):
        if limits is None:
            continue
        checks += [
            tf.debugging.assert_greater_equal(
                tf.reduce_min(x), tf.cast(limits[0], x.dtype),
                message=f"aatk: inputs below the lower bound {limits[0]} of {what} ({advice})",
            ),
            tf.debugging.assert_less_equal(
                tf.reduce_max(x), tf.cast(limits[1], x.dtype),
                message=f"aatk: inputs above the upper bound {limits[1]} of {what} ({advice})",
            ),
        ]
    if y is not None:
        if y.dtype.is_floating:  # integer-valued floats are accepted as labels, fractions are not
            checks.append(
                tf.debugging.assert_equal(
                    y, tf.round(y), message="aatk: labels must be integer class indices, found a fractional or NaN label"
                )
            )
        checks += [
            tf.debugging.assert_non_negative(y, message="aatk: negative label"),
            tf.debugging.assert_less(
                y, tf.cast(num_classes, y.dtype), message=f"aatk: label >= num_classes = {num_classes}"
            ),
        ]
    return [c for c in checks if c is not None]


def checked_dataset(
    dataset: tf.data.Dataset,
    *,
    num_classes: int,
    bounds: tuple[float, float] | None,
    input_range: tuple[float, float] | None = None,
    labels: bool = True,
) -> tf.data.Dataset:
    """``dataset`` with [`check_batch`][aatk.backend.tensorflow.check_batch] run on every batch it yields.

    Args:
        dataset: Batches ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
        num_classes: As [`check_batch`][aatk.backend.tensorflow.check_batch].
        bounds: As [`check_batch`][aatk.backend.tensorflow.check_batch].
        input_range: As [`check_batch`][aatk.backend.tensorflow.check_batch].
        labels: Whether the labels are checked too (``False`` for predict, which does not read them).

    Returns:
        The dataset, its batches unchanged but checked; as given if its batches are not of those forms.
    """
    spec = dataset.element_spec
    inputs_spec = spec[0] if isinstance(spec, tuple) and 1 <= len(spec) <= 3 else spec
    if not isinstance(inputs_spec, tf.TensorSpec):  # several inputs, or a structure this cannot check
        return dataset

    def check(*batch):
        y = batch[1] if labels and len(batch) >= 2 else None
        with tf.control_dependencies(
            check_batch(batch[0], y, num_classes=num_classes, bounds=bounds, input_range=input_range)
        ):
            checked = tuple(tf.identity(part) for part in batch)
        return checked if isinstance(spec, tuple) else checked[0]

    return dataset.map(check)
