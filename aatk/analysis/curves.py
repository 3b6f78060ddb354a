"""Accuracy of each way against the attack budget ε.

One PGD attack per way and per ε, each on that way's *own* loss: the robust
way's accuracy should stay up as ε grows while the non-robust way's falls to
zero almost at once. A curve over ε is the strongest single picture of
robustness disentanglement; the paper's Tables 1–3 (R, N, DIA) are one vertical
slice of it at the training budget.

Paper: Section 2.5 (R, N, DIA under way-specific attacks), Section 3.3.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from keras import ops

from aatk import backend
from aatk.analysis.gradients import _check_model, _checked_data, _positive_int, _resolve_ways
from aatk.attacks import NORMS, PGD
from aatk.model import WAYS, ThreeWayModel
from aatk.objectives import Tensor, cross_entropy

__all__ = ["accuracy_vs_eps"]

MADRY_STEP_FACTOR = 2.5
"""Default step size α = 2.5·ε / steps (Madry et al., 2018): the steps together can
cross the ball 2.5 times, so PGD reaches its boundary from any start."""


def _check_step_size(step_size) -> float | None:
    if step_size is None:
        return None
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.integer, np.floating)):
        raise ValueError(f"step_size must be a number or None, got {step_size!r}")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a finite number > 0 or None (Madry's 2.5·ε/steps), got {step_size}")
    return float(step_size)


def _check_eps_values(eps_values) -> np.ndarray:
    if isinstance(eps_values, (str, bytes)):
        raise ValueError(f"eps_values must be a sequence of numbers, got {eps_values!r}")
    try:
        eps = np.asarray(eps_values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"eps_values must be a sequence of numbers, got {eps_values!r}") from None
    if np.asarray(eps_values).dtype == bool:
        raise ValueError(f"eps_values must be numbers, got booleans {eps_values!r}")
    if eps.ndim != 1:
        raise ValueError(f"eps_values must be a 1-D sequence of radii, got shape {eps.shape}")
    if eps.size == 0:
        raise ValueError("eps_values is empty; give at least one radius, e.g. (0.0, 0.1, 0.3)")
    if not np.isfinite(eps).all():
        raise ValueError(f"eps_values must be finite, got {eps.tolist()}")
    if (eps < 0).any():
        raise ValueError(f"eps_values must be >= 0, got {eps.tolist()}")
    if (np.diff(eps) <= 0).any():
        raise ValueError(f"eps_values must be strictly increasing, got {eps.tolist()}")
    return eps


def _batch_counter(model: ThreeWayModel, attacks: dict):
    """A compiled function from one batch to, per way, whether each example is classified correctly.

    ``attacks`` maps a way to its PGD, or to None for clean inputs (ε = 0).
    """

    def correct(x, y):
        out = {}
        if all(attack is None for attack in attacks.values()):
            logits = model.way_logits(x, ways=tuple(attacks), training=False)
        else:
            logits = {}
            for way, attack in attacks.items():

                def loss_fn(points, way=way):
                    return cross_entropy(model(points, training=False, way=way), y)

                points = x if attack is None else attack.perturb(loss_fn, x)
                logits[way] = model(points, training=False, way=way)
        for way, value in logits.items():
            out[way] = ops.equal(ops.cast(ops.argmax(value, axis=-1), "int32"), y)
        return out

    attack_state = [v for attack in attacks.values() if attack is not None for v in attack.variables]
    return backend.compile_function(correct, state=model.variables + attack_state)


def accuracy_vs_eps(
    model: ThreeWayModel,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    eps_values: Iterable[float],
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    ways: Iterable[str] = WAYS,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
    seed: int | None = 0,
) -> dict:
    """Accuracy of each way under a PGD attack on its own loss, for every ε.

    For every ε in ``eps_values`` and every way, PGD maximises the cross-entropy
    of *that* way, l(h_way(x + δ), y) with ‖δ‖ ≤ ε, and the accuracy of that way on
    the result is recorded. ε = 0 is the clean accuracy, without any attack.

    The step size is ``step_size`` if given, else Madry's rule α = 2.5·ε / steps
    (so it scales with ε). Every attack of one ε (one per way) uses its own PGD
    with the same ``seed``, so a way's curve does not depend on which other ways
    are requested. With ``random_start=True`` the random starts are drawn batch
    by batch, so results depend on ``batch_size``; with ``random_start=False``
    the attack is deterministic.

    Paper: Section 2.5 (way-specific attacks: R and N of Tables 1–3 are the
    points of these curves at the test ε), Section 3.3.

    Args:
        model: A [`ThreeWayModel`][aatk.model.ThreeWayModel] (run in inference mode).
        x: Clean inputs, batch first, within ``bounds``.
        y: Integer labels, shape (n,) or (n, 1).
        norm: ``"linf"`` or ``"l2"``.
        eps_values: Radii ε: non-negative, finite and strictly increasing.
        steps: PGD steps k ≥ 1.
        step_size: PGD step α > 0; default 2.5·ε / steps for each ε.
        random_start: Start each attack from a uniform point of the ε-ball.
        ways: Which of ``aatk.model.WAYS`` to attack and measure.
        bounds: ``(low, high)`` of valid inputs, or None (see [`PGD`][aatk.attacks.pgd.PGD]).
        batch_size: Examples per attack batch.
        seed: Seed of the random starts.

    Returns:
        A dict with ``"eps"`` (the radii, float64 array), ``"accuracy"`` (a dict from
        way to a float64 array of accuracies in [0, 1], one per ε), ``"step_sizes"``
        (the step used at each ε, NaN at ε = 0 where nothing is attacked),
        ``"norm"``, ``"steps"`` and ``"samples"`` (the number of examples).

    Raises:
        ValueError: If ``model`` is not a ThreeWayModel; on empty, negative,
            non-finite or not strictly increasing ``eps_values``; an unknown norm
            or way; steps < 1, step_size ≤ 0, batch_size < 1 or bad bounds; inputs
            outside ``bounds``, non-finite or empty; or bad labels.

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu")])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=2)
        >>> x, y = np.full((4, 3), 0.5, "float32"), np.array([0, 1, 0, 1])
        >>> curves = accuracy_vs_eps(model, x, y, norm="linf", eps_values=[0.0, 0.1], steps=1, ways=("robust",))
        >>> accuracy = curves["accuracy"]
        >>> curves["eps"].tolist(), accuracy["robust"].shape, curves["samples"]
        ([0.0, 0.1], (2,), 4)
    """
    model = _check_model(model)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    eps = _check_eps_values(eps_values)
    steps = _positive_int(steps, "steps")
    step_size = _check_step_size(step_size)
    if not isinstance(random_start, (bool, np.bool_)):
        raise ValueError(f"random_start must be True or False, got {random_start!r}")
    ways = _resolve_ways(ways)
    batch_size = _positive_int(batch_size, "batch_size")
    # A probe attack validates bounds (and norm, steps) with PGD's own messages, then the inputs.
    probe = PGD(norm=norm, eps=0.0, step_size=1.0, steps=steps, bounds=bounds)
    x, y = _checked_data(model, x, y)
    probe.check_inputs(x)

    accuracy = {way: np.zeros(len(eps), dtype=np.float64) for way in ways}
    step_sizes = np.full(len(eps), np.nan, dtype=np.float64)
    for index, radius in enumerate(eps):
        if radius == 0.0:
            attacks = {way: None for way in ways}
        else:
            step_sizes[index] = step_size if step_size is not None else MADRY_STEP_FACTOR * radius / steps
            attacks = {
                way: PGD(
                    norm=norm, eps=float(radius), step_size=float(step_sizes[index]), steps=steps,
                    random_start=bool(random_start), bounds=bounds, seed=seed,
                )
                for way in ways
            }
        counter = _batch_counter(model, attacks)
        correct = {way: 0 for way in ways}
        for start in range(0, len(x), batch_size):
            batch = counter(
                ops.convert_to_tensor(x[start : start + batch_size], dtype="float32"),
                ops.convert_to_tensor(y[start : start + batch_size], dtype="int32"),
            )
            for way in ways:
                correct[way] += int(np.sum(ops.convert_to_numpy(batch[way])))
        for way in ways:
            accuracy[way][index] = correct[way] / len(x)
    return {
        "eps": eps,
        "accuracy": accuracy,
        "step_sizes": step_sizes,
        "norm": norm,
        "steps": steps,
        "samples": int(len(x)),
    }
