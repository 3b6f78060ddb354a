"""Input gradients of each way's loss and their display transform.

The gradient of a way's cross-entropy with respect to the input shows what that
way is sensitive to: for a robust classifier it is perceptually aligned (edges,
shapes of the object), for a non-robust one it looks like noise (Tsipras et al.,
2019). Comparing the robust and the non-robust way of one model on the same
images is the gradient visualisation of the paper's Appendix D.1 (Figure 3).

Paper: Appendix D.1 (Figure 3), following Tsipras et al. (2019).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from keras import ops

from aatk import backend
from aatk.model import WAYS, ThreeWayModel, check_way
from aatk.objectives import Tensor, cross_entropy

__all__ = ["input_gradients", "gradient_image"]


# --- shared argument checks (also used by aatk.analysis.curves) ---------------------------


def _check_model(model) -> ThreeWayModel:
    if not isinstance(model, ThreeWayModel):
        raise ValueError(f"model must be an aatk.ThreeWayModel, got {type(model).__name__}")
    return model


def _resolve_ways(ways: Iterable[str]) -> tuple[str, ...]:
    """The ways as a tuple; ValueError if empty, repeated or unknown."""
    if isinstance(ways, str):
        raise ValueError(f"ways must be a collection of way names such as ('robust',), got the string {ways!r}")
    try:
        resolved = tuple(ways)
    except TypeError:
        raise ValueError(f"ways must be a collection of names among {WAYS}, got {ways!r}") from None
    if not resolved:
        raise ValueError(f"ways must name at least one of {WAYS}, got an empty collection")
    for way in resolved:
        check_way(way)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"ways must not repeat a way, got {resolved}")
    return resolved


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _checked_data(model: ThreeWayModel, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(x as float32, y as int32 of shape (n,)) after the model's own checks; ValueError if empty."""
    model.validate_inputs(x, y)
    array = np.asarray(ops.convert_to_numpy(x))
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (batch first), got shape {array.shape}")
    labels = np.asarray(ops.convert_to_numpy(y)).reshape(-1).astype(np.int32)
    return array.astype(np.float32, copy=False), labels


# --- public API ----------------------------------------------------------------------------


def input_gradients(
    model: ThreeWayModel,
    x: Tensor,
    y: Tensor,
    *,
    ways: Iterable[str] = WAYS,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """∇_x l(h_way(x), y) of the per-example cross-entropy, for each requested way.

    The model runs in inference mode (dropout off, BatchNorm on its moving
    statistics), so the examples of a batch do not interact and the gradient of
    the summed loss is the per-example gradient. Batches go through one compiled
    function built for this call (traced once per batch shape).

    Paper: Appendix D.1 (Tsipras et al., 2019): "the gradient for a clean image
    w.r.t. the robust and non-robust way loss". Display it with
    [`gradient_image`][aatk.analysis.gradients.gradient_image].

    Args:
        model: A [`ThreeWayModel`][aatk.model.ThreeWayModel].
        x: Clean inputs, batch first, e.g. (n, H, W, C) images.
        y: Integer labels, shape (n,) or (n, 1).
        ways: Which of ``aatk.model.WAYS`` (``"standard"``, ``"robust"``, ``"non_robust"``).
        batch_size: Examples per gradient computation.

    Returns:
        A dict from way to a float32 array of the shape of ``x``.

    Raises:
        ValueError: If ``model`` is not a ThreeWayModel; on an unknown, repeated or
            empty ``ways``; a ``batch_size`` < 1; an empty ``x``; or whatever
            ``model.validate_inputs`` rejects (wrong per-example shape, non-finite
            inputs, bad or mismatched labels).

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu")])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=2)
        >>> grads = input_gradients(model, np.full((5, 3), 0.5, "float32"), np.array([0, 1, 0, 1, 1]), ways=("robust",))
        >>> sorted(grads), grads["robust"].shape, grads["robust"].dtype
        (['robust'], (5, 3), dtype('float32'))
    """
    model = _check_model(model)
    ways = _resolve_ways(ways)
    batch_size = _positive_int(batch_size, "batch_size")
    x, y = _checked_data(model, x, y)

    def gradients(inputs, labels):
        out = {}
        for way in ways:

            def loss_fn(points, way=way):
                return cross_entropy(model(points, training=False, way=way), labels)

            out[way] = backend.input_gradient(loss_fn, inputs)
        return out

    compiled = backend.compile_function(gradients, state=model.variables)
    parts: dict[str, list[np.ndarray]] = {way: [] for way in ways}
    for start in range(0, len(x), batch_size):
        batch = compiled(
            ops.convert_to_tensor(x[start : start + batch_size], dtype="float32"),
            ops.convert_to_tensor(y[start : start + batch_size], dtype="int32"),
        )
        for way in ways:
            parts[way].append(np.asarray(ops.convert_to_numpy(batch[way]), dtype=np.float32))
    return {way: np.concatenate(parts[way], axis=0) for way in ways}


def gradient_image(gradients: Tensor) -> np.ndarray:
    """Appendix D.1's display transform of input gradients, one example at a time.

    For each example: compute the mean m and standard deviation s of its values
    (over all its pixels and channels together), clip them to [m − 3s, m + 3s],
    then rescale linearly so that the smallest clipped value becomes 0 and the
    largest 1. The result is invariant to multiplying an example by a positive
    number and to adding a constant, and preserves the order of the values.

    An example whose values are all equal (s = 0, e.g. the zero gradient of a
    dead network or of a way that ignores its input) has no contrast to show and
    maps to 0.5 everywhere (mid-grey).

    Paper: Appendix D.1: "We clip gradients to ±3 standard deviations of their
    mean and rescale them to the range [0, 1]."

    Args:
        gradients: Real array (batch, ...) of gradients, e.g. the output of
            [`input_gradients`][aatk.analysis.gradients.input_gradients] for one way, shape (n, H, W, C).

    Returns:
        A float32 array of the same shape with values in [0, 1], ready for
        [`aatk.analysis.image_grid`][aatk.analysis.plots.image_grid].

    Raises:
        ValueError: If the array is not real-valued, has fewer than 2 dimensions,
            has examples with no values, or holds NaN or inf.

    Examples:
        >>> gradient_image(np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])).round(3)
        array([[0.   , 0.333, 0.667, 1.   ],
               [0.5  , 0.5  , 0.5  , 0.5  ]], dtype=float32)
    """
    if isinstance(gradients, (np.ndarray, np.generic, list, tuple, int, float)):
        array = np.asarray(gradients)
    else:  # a backend tensor
        array = np.asarray(ops.convert_to_numpy(gradients))
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"gradients must be a real-valued array, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"gradients must have shape (batch, ...) with at least 2 dimensions, got shape {array.shape}")
    per_example = int(np.prod(array.shape[1:]))
    if per_example == 0:
        raise ValueError(f"gradients must have at least one value per example, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"gradients hold {int((~finite).sum())} non-finite value(s) (NaN or inf)")
    flat = array.reshape(array.shape[0], per_example).astype(np.float64)
    out = np.full(flat.shape, 0.5, dtype=np.float64)
    for i, values in enumerate(flat):
        # Centre and scale first (the result does not depend on either): no overflow for huge values.
        centred = values - values.mean()
        spread = np.abs(centred).max()
        if spread == 0.0:
            continue  # a constant example: 0.5 everywhere
        centred = centred / spread
        mean, std = centred.mean(), centred.std()
        clipped = np.clip(centred, mean - 3.0 * std, mean + 3.0 * std)
        low, high = clipped.min(), clipped.max()
        if high > low:
            out[i] = (clipped - low) / (high - low)
    return out.reshape(array.shape).astype(np.float32)
