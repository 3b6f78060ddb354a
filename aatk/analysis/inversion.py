"""Representation inversion: an input whose robust (or non-robust) representation matches a target's.

Starting from noise (or any given images), gradient descent on the input
minimises the distance between its representation and that of a target image,
‖g(x) − g(x_target)‖₂, with ℓ2-normalised steps clipped to the input bounds — the
procedure of Engstrom et al. (2019), "Adversarial robustness as a prior for learned
representations", also used by Ilyas et al. (2019) to build their robust dataset
(see [`aatk.baselines.robust_dataset`][aatk.baselines.robust_dataset]). Inverting the robust representation of
a robust model gives human-recognisable images; inverting a non-robust one gives
noise (the paper's Figure 2a and Figure 4).

Paper: Section 3.3 ("Visualization"), Appendix D.2 (learning rate 1.0, 10000 steps on
CIFAR-10), Figure 2a, Figure 4.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np
from keras import ops

from aatk import backend

__all__ = ["REPRESENTATIONS", "InversionResult", "invert_representation"]

REPRESENTATIONS = ("robust", "non_robust")
"""The representations that can be inverted: z_r (``"robust"``) and z_n (``"non_robust"``), Eq. 4."""

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class InversionResult:
    """What [`invert_representation`][aatk.analysis.inversion.invert_representation] found.

    Attributes:
        images: The inverted inputs, float32, shape of the targets, within the bounds.
        distances: ‖g(x) − g(target)‖₂ of each example at the end, float32 (n,).
        initial_distances: The same distance at the start point, float32 (n,).
    """

    images: np.ndarray
    distances: np.ndarray
    initial_distances: np.ndarray


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        low, high = bounds
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (low, high) or None, got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
    return low, high


def _check_images(
    images: Any, *, name: str, bounds: tuple[float, float] | None, example_shape: tuple | None
) -> np.ndarray:
    """``images`` as float32 after checking dtype, rank, shape, finiteness and bounds."""
    array = np.asarray(ops.convert_to_numpy(images) if not isinstance(images, np.ndarray) else images)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"{name} must be a batch (n, ...) of inputs, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if example_shape is not None:
        got = array.shape[1:]
        if len(got) != len(example_shape) or any(e is not None and e != g for e, g in zip(example_shape, got)):
            raise ValueError(f"{name} has per-example shape {got} but the model expects {tuple(example_shape)}")
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{name} holds {int((~finite).sum())} non-finite value(s) (NaN or inf)")
    if bounds is not None:
        low, high = float(array.min()), float(array.max())
        if low < bounds[0] or high > bounds[1]:
            raise ValueError(
                f"{name} has values in [{low:g}, {high:g}] outside bounds {bounds}; "
                "rescale the inputs or pass other bounds (nothing is clipped)"
            )
    return array.astype(np.float32, copy=False)


def _per_example_norm(t, keepdims: bool = False):
    axes = tuple(range(1, len(t.shape)))
    return ops.sqrt(ops.sum(ops.square(t), axis=axes, keepdims=keepdims))


def _inverter(model: Any, index: int, *, steps: int, step_size: float, bounds: tuple[float, float] | None):
    """A compiled function (start, target) → (images, initial distances, final distances) for one batch."""

    def represent(points):
        return model.representations(points, training=False)[index]

    def invert(start, targets):
        goal = ops.stop_gradient(represent(targets))

        def squared_distance(points):
            # The squared distance has the same ℓ2-normalised gradient as the distance
            # (∇‖v‖ = ∇‖v‖² / 2‖v‖) and, unlike it, a finite gradient (zero) at a perfect match.
            return ops.sum(ops.square(represent(points) - goal), axis=tuple(range(1, len(goal.shape))))

        def step(_, x):
            gradient = backend.input_gradient(squared_distance, x)
            x = x - step_size * gradient / ops.maximum(_per_example_norm(gradient, keepdims=True), _TINY)
            return x if bounds is None else ops.clip(x, bounds[0], bounds[1])

        images = ops.fori_loop(0, steps, step, start)  # a graph loop: no unrolling for 10000 steps
        initial = ops.sqrt(squared_distance(start))
        final = ops.sqrt(squared_distance(images))
        return ops.stop_gradient(images), initial, final

    return backend.compile_function(invert, state=model.variables)


def invert_representation(
    model: keras.Model,
    targets: Any,
    *,
    representation: str = "robust",
    start: str | np.ndarray = "noise",
    steps: int = 1000,
    step_size: float = 0.1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    batch_size: int = 256,
) -> InversionResult:
    """Finds inputs whose representation matches the targets' by normalised gradient descent.

    For each target t, minimises ‖g(x) − g(t)‖₂ over x, where g is the robust
    encoder (z_r) or the non-robust encoder (z_n) of ``model`` in inference mode,
    with ``steps`` steps x ← clip_bounds(x − step_size · ∇/‖∇‖₂) (Engstrom et al.
    2019; Ilyas et al. 2019, Sec. 3.1). The step has a fixed ℓ2 length, so the
    distance need not decrease monotonically; a smaller ``step_size`` settles closer.

    Paper: Section 3.3, Appendix D.2 (step 1.0 and 10000 steps for CIFAR-10; start
    from random noise), Figure 2a, Figure 4.

    Args:
        model: A [`ThreeWayModel`][aatk.model.ThreeWayModel] (or any model with
            ``representations(x, training=False) -> (z_r, z_n)``, such as
            [`CombinedOneWay`][aatk.baselines.CombinedOneWay]).
        targets: The target inputs, batch first, within ``bounds``.
        representation: ``"robust"`` (z_r) or ``"non_robust"`` (z_n).
        start: ``"noise"`` — uniform in ``bounds``, drawn from ``seed`` — or an array
            of start inputs of the targets' shape, within ``bounds``.
        steps: Number of gradient steps (≥ 1).
        step_size: ℓ2 length of each step (> 0).
        bounds: ``(low, high)`` of valid inputs; every iterate is clipped to them.
            ``None`` for unbounded inputs (then ``start`` must be an array).
        seed: Seed of the noise start.
        batch_size: Targets inverted together in one compiled loop.

    Returns:
        An [`InversionResult`][aatk.analysis.inversion.InversionResult] with the
            images and the distances before and after.

    Raises:
        ValueError: On an unknown representation, a model without ``representations``,
            steps < 1, step_size ≤ 0, bad bounds or batch_size, targets or start that
            are empty, non-finite, outside ``bounds`` or of the wrong shape.

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=2)
        >>> targets = np.full((2, 4), 0.5, "float32")
        >>> result = invert_representation(model, targets, steps=20, step_size=0.05)
        >>> result.images.shape, bool(result.images.min() >= 0.0 and result.images.max() <= 1.0)
        ((2, 4), True)
        >>> bool(np.all(result.distances < result.initial_distances))
        True
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    if not callable(getattr(model, "representations", None)):
        raise ValueError(
            f"model must have representations(x, training=False) -> (z_r, z_n) (e.g. an aatk.ThreeWayModel), "
            f"got {type(model).__name__}"
        )
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.integer, np.floating)):
        raise ValueError(f"step_size must be a number > 0, got {step_size!r}")
    if not (math.isfinite(float(step_size)) and step_size > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    step_size = float(step_size)
    bounds = _check_bounds(bounds)
    example_shape = getattr(model, "input_example_shape", None)
    targets = _check_images(targets, name="targets", bounds=bounds, example_shape=example_shape)
    if isinstance(start, str):
        if start != "noise":
            raise ValueError(f"start must be 'noise' or an array of the targets' shape, got {start!r}")
        if bounds is None:
            raise ValueError("start='noise' draws uniformly in bounds and needs bounds; pass a start array instead")
        rng = np.random.default_rng(seed)
        start = rng.uniform(bounds[0], bounds[1], size=targets.shape).astype(np.float32)
    else:
        start = _check_images(start, name="start", bounds=bounds, example_shape=None)
        if start.shape != targets.shape:
            raise ValueError(f"start has shape {start.shape} but targets have shape {targets.shape}; they must match")
    invert = _inverter(model, REPRESENTATIONS.index(representation), steps=steps, step_size=step_size, bounds=bounds)
    images, initial, final = [], [], []
    for begin in range(0, len(targets), batch_size):
        chunk = slice(begin, begin + batch_size)
        outputs = invert(ops.convert_to_tensor(start[chunk]), ops.convert_to_tensor(targets[chunk]))
        for collected, value in zip((images, initial, final), outputs):
            collected.append(np.asarray(ops.convert_to_numpy(value), dtype=np.float32))
    return InversionResult(
        images=np.concatenate(images), distances=np.concatenate(final), initial_distances=np.concatenate(initial)
    )
