"""JAX implementations of the backend glue (see [`aatk.backend`][aatk.backend]).

Keras's JAX backend is functional: inside a compiled step, a variable's value is
whatever a `keras.StatelessScope` maps it to, and an assignment is recorded
in the scope instead of changing the variable. The stateful code of aatk — the
train step, the attacks, the metrics, ``optimizer.apply`` — therefore runs
unchanged inside [`stateful_step`][aatk.backend.jax.stateful_step], which opens one scope over the whole
state Keras hands to ``train_step`` / ``test_step`` and returns the new state.
Gradients are ``jax.grad`` of the same Python functions the TensorFlow path tapes.

Nothing here imports TensorFlow: with ``KERAS_BACKEND=jax`` aatk trains from
NumPy arrays on a machine without it (a ``tf.data.Dataset`` still works where
TensorFlow is installed).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras

#: XLA compilation of fit's train step: jitting is what makes JAX fast, on every device.
JIT_TRAIN_STEP = True

#: PGD's steps unrolled: measured on the MNIST small CNN (PGD-40, 256 images, CPU), a call of the
#: jitted attack takes 13 s unrolled against 47 s as a ``lax.fori_loop``, for 18 s more of
#: compilation once.
ROLL_ATTACK_LOOPS = False

# The variables of the step in progress, so that a gradient taken inside it can map
# every one of them (an inner StatelessScope does not fall back to the outer one).
_STEP_VARIABLES: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("aatk_step_variables", default=None)


@contextlib.contextmanager
def _scope(variables: Sequence[keras.Variable], values: Sequence[Any]):
    """A StatelessScope mapping ``variables`` to ``values``; yields a function giving the
    value of each variable when the block ends (``None`` for those left unchanged)."""
    variables = tuple(variables)
    values = tuple(values)
    token = _STEP_VARIABLES.set(variables)
    try:
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            initial = [scope.get_current_value(v) for v in variables]  # as the scope stored them
            yield lambda: [
                None if scope.get_current_value(v) is value else scope.get_current_value(v)
                for v, value in zip(variables, initial)
            ]
    finally:
        _STEP_VARIABLES.reset(token)


def input_gradient(loss_fn: Callable[[Any], Any], x: Any) -> Any:
    """∇_x of ``sum(loss_fn(x))``; the gradient never reaches any weight.

    ``jax.grad`` differentiates with respect to ``x`` only: the model's variables
    enter as constants, so an attack built on this cannot leak a gradient into training.
    """
    x = jnp.asarray(x)
    gradient = jax.grad(lambda points: jnp.sum(loss_fn(points)))(x)
    return jax.lax.stop_gradient(gradient)


def value_and_input_gradient(loss_fn: Callable[[Any], tuple[Any, Any]], x: Any) -> tuple[Any, Any, Any]:
    """``loss_fn(x)`` → (per-example losses, aux), and ∇_x of the losses' sum, in one forward pass.

    ``jax.value_and_grad`` with respect to ``x`` only (``has_aux``); everything returned
    is a constant.

    Returns:
        (losses, aux, gradient).
    """

    def total(points):
        losses, aux = loss_fn(points)
        return jnp.sum(losses), (losses, aux)

    (_, (losses, aux)), gradient = jax.value_and_grad(total, has_aux=True)(jnp.asarray(x))
    return jax.lax.stop_gradient(losses), jax.tree_util.tree_map(jax.lax.stop_gradient, aux), jax.lax.stop_gradient(gradient)


def value_and_weight_gradients(
    loss_fn: Callable[[], tuple[Any, dict]], variables: Sequence[keras.Variable]
) -> tuple[Any, dict, list]:
    """Evaluates ``loss_fn()`` → (loss, aux) and the gradient of loss w.r.t. ``variables``.

    Must run inside [`stateful_step`][aatk.backend.jax.stateful_step] (Keras's JAX ``train_step``). The other
    variables of the step keep their current values; the updates ``loss_fn`` makes
    to them (BatchNorm statistics, dropout seeds) are carried back to the step.

    Raises:
        RuntimeError: If called outside a train step.
    """
    step_variables = _STEP_VARIABLES.get()
    if step_variables is None:
        raise RuntimeError("value_and_weight_gradients runs inside a train step (aatk.backend.stateful_step)")
    variables = list(variables)
    differentiated = {id(v) for v in variables}
    others = [v for v in step_variables if id(v) not in differentiated]
    other_values = [v.value for v in others]  # read in the step's scope

    def loss_of(values):
        with _scope(variables + others, list(values) + other_values) as updates:
            loss, aux = loss_fn()
            new_values = updates()[len(variables) :]
        return loss, (aux, new_values)

    (loss, (aux, new_values)), gradients = jax.value_and_grad(loss_of, has_aux=True)(
        [v.value for v in variables]
    )
    for variable, value in zip(others, new_values):
        if value is not None:
            variable.assign(value)  # recorded in the step's scope
    return loss, aux, list(gradients)


def batch_jacobian(fn: Callable[[Any], Any], x: Any) -> Any:
    """Per-example Jacobian of ``fn`` (batch, out) w.r.t. ``x`` (batch, in): shape (batch, out, in)."""
    x = jnp.asarray(x)
    return jax.vmap(jax.jacrev(lambda example: fn(example[None])[0]))(x)


def compile_function(fn: Callable, *, state: Sequence[keras.Variable]) -> Callable:
    """``jax.jit`` of ``fn``, with the Keras variables it reads passed in, not baked in.

    A jitted function that read a variable directly would capture its value at
    tracing time and never see later training; here the current values of
    ``state`` are arguments of every call, and the variables ``fn`` assigns (e.g.
    a SeedGenerator's state) are written back after it.

    Args:
        fn: Function of tensors that may read (and assign) the variables in ``state``.
        state: Every Keras variable ``fn`` touches: typically ``model.variables``
            plus the attack's ``variables``.

    Returns:
        A function with ``fn``'s signature.
    """
    state = tuple(state)
    assigned: list[bool] = []

    def pure(values, *args):
        with _scope(state, values) as updates:
            outputs = fn(*args)
            new_values = updates()
        assigned[:] = [value is not None for value in new_values]  # fixed at tracing time
        return outputs, [value for value in new_values if value is not None]

    jitted = jax.jit(pure)

    def call(*args):
        outputs, new_values = jitted([v.value for v in state], *args)
        for variable, value in zip((v for v, a in zip(state, assigned) if a), new_values):
            variable.assign(value)
        return outputs

    return call


def variable_scope(model: keras.Model):
    """Where new variables of ``model`` must be created: anywhere under JAX (a
    ``keras.distribution`` lays them out itself)."""
    del model
    return contextlib.nullcontext()


def stateful_step(model: keras.Model, step_fn: Callable, state: tuple, data: Any) -> tuple[dict, tuple]:
    """Runs a stateful ``step_fn(data)`` as Keras's functional JAX step.

    Keras calls ``train_step(state, data)`` with state = (trainable, non-trainable,
    optimizer, metrics variables) and ``test_step(state, data)`` with the optimizer's
    left out; ``step_fn`` reads and assigns variables as under TensorFlow.

    Returns:
        ``(logs, new_state)``, as Keras's JAX trainer expects.
    """
    groups = [model.trainable_variables, model.non_trainable_variables]
    if len(state) == 4:
        groups.append(model.optimizer.variables)
    groups.append(model.metrics_variables)
    if len(groups) != len(state) or any(len(g) != len(s) for g, s in zip(groups, state)):
        raise RuntimeError(
            f"the step's state does not match the model's variables ({[len(s) for s in state]} values for "
            f"{[len(g) for g in groups]} variables); was the model changed after compile()?"
        )
    variables = [v for group in groups for v in group]
    values = [value for group in state for value in group]
    with _scope(variables, values) as updates:
        logs = step_fn(data)
        new_values = updates()
    new_values = [old if new is None else new for old, new in zip(values, new_values)]
    new_state, start = [], 0
    for group in groups:
        new_state.append(new_values[start : start + len(group)])
        start += len(group)
    return logs, tuple(new_state)


@contextlib.contextmanager
def state_kept_on_error(model: keras.Model):
    """Gives the model back its variables if ``fit``, ``evaluate`` or ``predict`` fails midway.

    Keras's JAX trainer detaches every variable's value when a loop starts (the state
    travels through the compiled steps, which consume their input buffers) and
    reattaches the latest state when the loop ends; ``evaluate`` and ``predict`` do not
    when an error stops them, nor does ``fit`` when the error comes before its first
    step has returned. A bad batch found by the host-side checks (or any error of the
    data source) would then leave the model without weights. On an error, this
    reattaches the latest state the loop produced, and for variables still empty the
    values they had on entry (references, not copies), unless a step consumed them.
    """
    variables, seen = [], set()
    optimizer = getattr(model, "optimizer", None)
    groups = [model.trainable_variables, model.non_trainable_variables, model.metrics_variables]
    if optimizer is not None:
        groups.append(optimizer.variables)
    for variable in (v for group in groups for v in group):
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    values = [variable._value for variable in variables]  # what Keras's own purge clears
    try:
        yield
    except BaseException:
        if getattr(model, "_jax_state", None) is not None:
            model.jax_state_sync()  # the state after the last step that ran
            model._jax_state = None
        for variable, value in zip(variables, values):
            deleted = getattr(value, "is_deleted", None)
            if variable._value is None and value is not None and not (deleted and deleted()):
                variable._value = value
        raise


def check_batch(
    x: Any,
    y: Any | None,
    *,
    num_classes: int,
    bounds: tuple[float, float] | None,
    input_range: tuple[float, float] | None = None,
) -> list:
    """No value checks in the compiled JAX step (it cannot raise without a host round trip).

    Arrays are checked whole before training, every batch of a ``tf.data.Dataset`` in
    its input pipeline ([`checked_dataset`][aatk.backend.jax.checked_dataset]), and
    every batch of a Python generator or a ``keras.utils.PyDataset`` on the host before
    it reaches the step; see ``ThreeWayModel.fit``. Only dtypes, known when the step is
    traced, are checked here.

    Raises:
        ValueError: At tracing time, on inputs of an integer dtype or labels that are not numbers.
    """
    del num_classes, bounds, input_range
    if jnp.issubdtype(jnp.result_type(x), jnp.integer):
        raise ValueError(
            f"aatk: inputs of integer dtype {jnp.result_type(x)}; the model takes float inputs: convert to float "
            "in [0, 1], e.g. x / 255 for 8-bit images"
        )
    if y is not None and not jnp.issubdtype(jnp.result_type(y), jnp.number):
        raise ValueError(f"aatk: labels must be integer class indices, got dtype {jnp.result_type(y)}")
    return []


def checked_dataset(
    dataset,
    *,
    num_classes: int,
    bounds: tuple[float, float] | None,
    input_range: tuple[float, float] | None = None,
    labels: bool = True,
):
    """``dataset`` with every batch checked in its ``tf.data`` pipeline.

    The pipeline runs in TensorFlow whatever the Keras backend, so this is the
    TensorFlow implementation, imported only when a ``tf.data.Dataset`` is given.
    """
    from aatk.backend.tensorflow import checked_dataset as tensorflow_checked_dataset

    return tensorflow_checked_dataset(
        dataset, num_classes=num_classes, bounds=bounds, input_range=input_range, labels=labels
    )
