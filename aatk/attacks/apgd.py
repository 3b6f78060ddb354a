"""Auto-PGD (APGD): projected gradient ascent with momentum and an adaptive step size.

APGD (Croce & Hein, 2020) needs no step size: it starts at η = 2ε and halves η, per
example, at fixed checkpoints when the loss stopped rising (Algorithm 1, Section 3.2).
With the cross-entropy or the difference-of-logits-ratio (DLR) loss, untargeted or
targeted (APGD-T), it is the white-box part of AutoAttack.

[`APGD.perturb`][aatk.attacks.apgd.APGD.perturb] maximises any per-example loss (e.g. an
adaptive loss against a detector); [`APGD.run`][aatk.attacks.apgd.APGD.run] attacks a
classifier's logits with CE or DLR, over restarts and target classes.

Where AutoAttack's code (``autoattack/autopgd_base.py``) differs from Algorithm 1 and
Section 3.2 of the paper, this module follows the paper:

* Checkpoints: w_j = ⌈p_j·N⌉ with p_j computed exactly
  ([`checkpoints`][aatk.attacks.apgd.checkpoints]). AutoAttack floors 0.22·N, 0.03·N and
  0.06·N separately; both give 0, 22, 41, 57, 70, 80, 87, 93, 99 for N = 100 and may
  differ for other N.
* Condition 1 counts the increases f(x⁽ⁱ⁺¹⁾) > f(x⁽ⁱ⁾), i = w(j−1), …, w_j − 1, and holds
  when the count is *<* ρ·(w_j − w(j−1)). AutoAttack tests *≤*, and its first comparison
  is f(x⁽¹⁾) > 0 instead of f(x⁽¹⁾) > f(x⁽⁰⁾) (a wrapped-around index into zeros).
* Condition 2 (η not halved at the previous checkpoint, f_max unchanged since) applies
  from the first checkpoint w₁ on, whose previous checkpoint is w₀ = 0 with η unchanged;
  AutoAttack skips it at w₁.
* After a restart the iterate x⁽ʷʲ⁾ is x_max, so the next increase is counted against
  f_max; AutoAttack compares with the loss of the iterate before the restart.

Where the paper is ambiguous, this module does as AutoAttack:

* When a checkpoint is tested: Algorithm 1 tests "k ∈ W" after computing x⁽ᵏ⁺¹⁾, but
  the conditions involve f only up to x⁽ʷʲ⁾. The test is made as soon as f(x⁽ʷʲ⁾) is
  known; a restart replaces x⁽ʷʲ⁾ by x_max, η is halved from the step to x⁽ʷʲ⁺¹⁾ on,
  and that step's momentum term is x_max − x⁽ʷʲ⁻¹⁾.
* The first step (line 3, x⁽¹⁾) has no momentum (α = 1).

Other differences from AutoAttack, none of which weakens the attack: every restart and
target class runs on the whole batch (AutoAttack attacks only the points not yet
fooled, so its later random starts differ); a run's adversarial point is its
misclassified iterate of highest loss (AutoAttack: its last misclassified iterate), or
x_max if none is misclassified; as in AutoAttack, examples the clean input already
misclassifies are returned unchanged.

Paper: Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML: Algorithm 1 (APGD), Section 3.2
(checkpoints and conditions), Section 4 (the DLR loss and its targeted version).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from aatk import backend
from aatk.attacks.base import Attack, finite_number, model_num_classes, positive_int
from aatk.objectives import Tensor, cross_entropy

__all__ = ["APGD", "LOSSES", "checkpoints", "dlr_loss", "targeted_dlr_loss"]

LOSSES = ("ce", "dlr")
"""The losses of [`APGD`][aatk.attacks.apgd.APGD]: cross-entropy and DLR (each with a targeted version)."""

MOMENTUM = 0.75
"""α of Algorithm 1: weight of the new gradient step against the previous update."""

#: Added to the DLR losses' denominators (as in the paper) and used as the floor of norms.
_TINY = 1e-12


# --- the schedule and the losses ----------------------------------------------------------------


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j at which APGD may halve its step size, for ``steps`` = N iterations.

    p₀ = 0, p₁ = 0.22, p(j+1) = p_j + max(p_j − p(j−1) − 0.03, 0.06), for p_j ≤ 1, and
    w_j = ⌈p_j·N⌉, computed in exact (rational) arithmetic so that, e.g., 0.22·100 is 22
    and not 23. Equal values (small N) appear once.

    Paper: Section 3.2 ("we identify checkpoints w₀ = 0, w₁, …, w_n").

    Args:
        steps: The number N ≥ 1 of iterations.

    Returns:
        The increasing list w₀ = 0 < w₁ < … ≤ N.

    Raises:
        ValueError: If ``steps`` is not an integer ≥ 1.

    Examples:
        >>> checkpoints(100)
        [0, 22, 41, 57, 70, 80, 87, 93, 99]
        >>> checkpoints(10)
        [0, 3, 5, 6, 7, 8, 9, 10]
    """
    steps = positive_int(steps, "steps")
    fractions = [Fraction(0), Fraction(22, 100)]
    while True:
        gap = max(fractions[-1] - fractions[-2] - Fraction(3, 100), Fraction(6, 100))
        if fractions[-1] + gap > 1:
            break
        fractions.append(fractions[-1] + gap)
    iterations: list[int] = []
    for fraction in fractions:
        iteration = math.ceil(fraction * steps)
        if not iterations or iteration != iterations[-1]:
            iterations.append(iteration)
    return iterations


def _static_num_classes(logits: Tensor, *, minimum: int, what: str) -> int:
    num_classes = logits.shape[-1]
    if num_classes is None:
        raise ValueError(f"{what} needs logits with a known number of classes, got shape {logits.shape}")
    if num_classes < minimum:
        raise ValueError(f"{what} needs at least {minimum} classes, got logits of {num_classes}")
    return int(num_classes)


def _label_logit(logits: Tensor, labels: Tensor) -> Tensor:
    """z_y of every example, shape (batch,)."""
    labels = ops.cast(ops.reshape(labels, (-1, 1)), "int32")
    return ops.take_along_axis(logits, labels, axis=-1)[:, 0]


def dlr_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The untargeted difference-of-logits-ratio loss, per example.

    DLR(z, y) = −(z_y − max over i ≠ y of z_i) / (z_π1 − z_π3 + 10⁻¹²), π the classes sorted by
    decreasing logit. It is invariant to shifting and rescaling the logits, and > 0
    exactly when the example is misclassified.

    Paper: Croce & Hein (2020), Section 4 (DLR loss).

    Args:
        logits: Logits (batch, C), C ≥ 3 (cast to float32).
        labels: Integer labels (batch,).

    Returns:
        The loss (batch,), float32.

    Raises:
        ValueError: If the logits have fewer than 3 classes (z_π3 does not exist).

    Examples:
        >>> loss = dlr_loss(np.array([[3.0, 1.0, 0.5, 0.0]]), np.array([0]))
        >>> round(float(loss[0]), 6)  # −(3 − 1) / (3 − 0.5)
        -0.8
    """
    logits = ops.cast(logits, "float32")
    num_classes = _static_num_classes(logits, minimum=3, what="the DLR loss")
    is_label = ops.one_hot(ops.cast(labels, "int32"), num_classes) > 0
    best_other = ops.max(ops.where(is_label, float("-inf"), logits), axis=-1)
    top = ops.top_k(logits, 3)[0]
    return -(_label_logit(logits, labels) - best_other) / (top[:, 0] - top[:, 2] + _TINY)


def targeted_dlr_loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """The targeted DLR loss, per example (to maximise: it rises as z_t overtakes z_y).

    DLR-T(z, y, t) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 10⁻¹²), π the classes sorted
    by decreasing logit.

    Paper: Croce & Hein (2020), Section 4 (targeted DLR loss, used by APGD-T).

    Args:
        logits: Logits (batch, C), C ≥ 4 (cast to float32).
        labels: Integer true labels y (batch,).
        targets: Integer target classes t (batch,).

    Returns:
        The loss (batch,), float32.

    Raises:
        ValueError: If the logits have fewer than 4 classes (z_π4 does not exist).

    Examples:
        >>> z = np.array([[4.0, 2.0, 1.0, 0.0]])
        >>> loss = targeted_dlr_loss(z, np.array([0]), np.array([1]))
        >>> round(float(loss[0]), 6)  # −(4 − 2) / (4 − (1 + 0)/2)
        -0.571429
    """
    logits = ops.cast(logits, "float32")
    _static_num_classes(logits, minimum=4, what="the targeted DLR loss")
    top = ops.top_k(logits, 4)[0]
    denominator = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + _TINY
    return -(_label_logit(logits, labels) - _label_logit(logits, targets)) / denominator


# --- the ascent ---------------------------------------------------------------------------------


class _Ascent(NamedTuple):
    """What one run of Algorithm 1 found, per example."""

    x_max: Tensor  # the point of highest loss
    loss_max: Tensor  # its loss (batch,)
    step_size: Tensor  # η at the end (batch,)
    x_success: Tensor  # the misclassified iterate of highest loss (x_max where there is none)
    success: Tensor  # whether an iterate was misclassified (batch,), bool


def _per_example(values: Tensor, ndim: int) -> Tensor:
    """(batch,) → (batch, 1, …, 1), to scale examples of rank ``ndim``."""
    return ops.reshape(values, (-1,) + (1,) * (ndim - 1))


def _values_and_gradient(
    objective: Callable[[Tensor], tuple[Tensor, Tensor | None]], points: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The loss, the misclassification indicator and ∇ loss at ``points``, in one forward-backward pass.

    Args:
        objective: points → (loss (batch,), indicator (batch,) in {0, 1} or ``None``).
        points: The batch.

    Returns:
        (loss, indicator, gradient): float32 (batch,), float32 (batch,) (zeros if
        ``objective`` gives none) and the gradient in the shape of ``points``.
    """

    def losses_and_indicator(values):
        loss, indicator = objective(values)
        loss = ops.cast(loss, "float32")
        return loss, ops.zeros_like(loss) if indicator is None else ops.cast(indicator, "float32")

    return backend.value_and_input_gradient(losses_and_indicator, points)


@keras.saving.register_keras_serializable(package="aatk")
class APGD(Attack):
    """Auto-PGD: Algorithm 1 of Croce & Hein (2020), with CE or (targeted) DLR loss.

    From a random point of the ball's surface (clipped to ``bounds``), each step goes
    along the normalised gradient (sign for ℓ∞, unit ℓ2 direction for ℓ2) with step size
    η, projects, and mixes in the previous update with weight 1 − α = 0.25; the point
    of highest loss x_max is kept. η starts at 2ε and, at every checkpoint
    (see [`checkpoints`][aatk.attacks.apgd.checkpoints]), is halved for the examples
    whose loss rose in fewer than ρ of the steps since the previous checkpoint
    (condition 1), or whose best loss did not improve since the previous checkpoint
    when η was not halved there (condition 2); those restart from x_max. Every iterate
    lies in the ε-ball and in the bounds. The module's docstring lists where this
    differs from AutoAttack's code.

    With ``targeted=True`` (APGD-T) the attack runs once per target class t, the
    ``target_classes`` classes of highest clean logit other than y, on the targeted DLR
    loss (or −CE to t), each with ``restarts`` random starts; untargeted, it runs
    ``restarts`` times. An example's result is the first misclassified point found: the
    clean input if it is already misclassified, else the misclassified iterate of highest
    loss of the first run that met one; for examples never misclassified, the last run's x_max.

    Paper: Croce & Hein (2020), ICML, Algorithm 1 and Section 3.2 (APGD), Section 4 (DLR losses);
    AutoAttack's APGD-CE is ``APGD(loss="ce")``, its APGD-T ``APGD(loss="dlr", targeted=True)``.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: Radius ε ≥ 0 of the ball.
        steps: Iterations N ≥ 1 per run (AutoAttack: 100).
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (difference of logits ratio).
        targeted: Attack towards each of ``target_classes`` classes (APGD-T) instead of
            away from y.
        restarts: Random starts per run (per target class when targeted), ≥ 1.
        target_classes: Number of target classes (AutoAttack: 9 for 10 classes); at most
            C − 1 are used for C classes.
        rho: ρ ∈ (0, 1) of condition 1 (AutoAttack: 0.75).
        bounds: ``(low, high)`` of valid inputs (default images in [0, 1]), or ``None``.
        seed: Seed of the random starts.

    Raises:
        ValueError: On an unknown norm or loss, ε < 0, steps, restarts or target_classes
            < 1, ρ outside (0, 1), a ``targeted`` that is not a bool, or bad bounds; when
            called, on a model with too few classes for the loss (DLR: 3, targeted DLR: 4).

    Examples:
        >>> attack = APGD(norm="linf", eps=0.3, steps=20, loss="dlr", targeted=True, seed=0)
        >>> attack
        APGD(norm='linf', eps=0.3, steps=20, loss='dlr', targeted=True, restarts=1, target_classes=9,
             rho=0.75, bounds=(0.0, 1.0))
        >>> x = np.array([[0.2, 0.4, 0.9]], "float32")
        >>> x_adv = attack.perturb(lambda points: keras.ops.sum(points, axis=1), x)  # maximise the sum
        >>> np.round(np.asarray(x_adv, "float64"), 3).tolist()
        [[0.5, 0.7, 1.0]]
    """

    name = "APGD"

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float,
        steps: int = 100,
        loss: str = "ce",
        targeted: bool = False,
        restarts: int = 1,
        target_classes: int = 9,
        rho: float = 0.75,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(norm=norm, eps=eps, bounds=bounds, seed=seed, random=True)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} (targeted or not), got {loss!r}")
        if not isinstance(targeted, (bool, np.bool_)):
            raise ValueError(f"targeted must be a bool, got {targeted!r}")
        rho = finite_number(rho, "rho")
        if not 0.0 < rho < 1.0:
            raise ValueError(f"rho must lie in (0, 1), got {rho}")
        self.steps = positive_int(steps, "steps")
        self.loss = loss
        self.targeted = bool(targeted)
        self.restarts = positive_int(restarts, "restarts")
        self.target_classes = positive_int(target_classes, "target_classes")
        self.rho = rho

    # --- the loss to maximise ------------------------------------------------------------------

    def _min_classes(self) -> int:
        if self.loss == "dlr":
            return 4 if self.targeted else 3
        return 2

    def _check_num_classes(self, num_classes: int | None) -> None:
        minimum = self._min_classes()
        if num_classes is not None and num_classes < minimum:
            kind = f"{'targeted ' if self.targeted else ''}{self.loss.upper()} loss"
            raise ValueError(f"APGD with the {kind} needs at least {minimum} classes, the model has {num_classes}")

    def _classifier_loss(self, logits: Tensor, labels: Tensor, targets: Tensor | None) -> Tensor:
        if self.targeted:
            if self.loss == "dlr":
                return targeted_dlr_loss(logits, labels, targets)
            return -cross_entropy(logits, targets)
        if self.loss == "dlr":
            return dlr_loss(logits, labels)
        return cross_entropy(logits, labels)

    # --- Algorithm 1 ---------------------------------------------------------------------------

    def _project(self, x: Tensor, points: Tensor) -> Tensor:
        """P: onto the ε-ball around ``x`` (per-norm hook), then into the bounds."""
        return self.clip_to_bounds(x + self._hooks.project(points - x, self.eps))

    def _random_start(self, x: Tensor, seed_generator: keras.random.SeedGenerator) -> Tensor:
        """AutoAttack's start: x + ε·t/‖t‖, t uniform in [−1, 1]ᴰ (ℓ∞) or Gaussian (ℓ2), clipped to the bounds.

        It lies on the ball's surface (ℓ∞: one coordinate at ±ε), not uniformly inside
        it as PGD's [`random_start`][aatk.attacks.norms.LinfBall.random_start] hook.
        """
        if self.norm == "linf":
            direction = keras.random.uniform(ops.shape(x), minval=-1.0, maxval=1.0, seed=seed_generator)
        else:
            direction = keras.random.normal(ops.shape(x), seed=seed_generator)
        length = _per_example(ops.maximum(self._hooks.norm(direction), _TINY), len(x.shape))
        return self._project(x, x + self.eps * direction / length)

    def _maximize(
        self, objective: Callable[[Tensor], tuple[Tensor, Tensor | None]], x: Tensor, start: Tensor
    ) -> _Ascent:
        """Algorithm 1 from ``start`` on ``objective`` (points → (loss, misclassified indicator or None)).

        Graph-friendly: ``self.steps`` is static; the loop is one ``ops.fori_loop`` when
        [`backend.ROLL_ATTACK_LOOPS`][aatk.backend], else unrolled. Each iterate costs one
        forward-backward pass (``_values_and_gradient``),
        N + 1 in all, as in AutoAttack.

        Returns:
            An ``_Ascent``: x_max, f_max, the final η per example, the misclassified iterate
            of highest loss (x_max where none) and whether there was one.
        """
        ndim = len(x.shape)
        loss, misclassified, gradient = _values_and_gradient(objective, start)
        step_size = ops.full_like(loss, 2.0 * self.eps)  # η⁽⁰⁾ = 2ε per example
        found = misclassified > 0
        state = (
            # x⁽ᵏ⁾, x⁽ᵏ⁻¹⁾, ∇f(x⁽ᵏ⁾), f(x⁽ᵏ⁾), η:
            start, start, gradient, loss, step_size,
            # x_max, ∇f(x_max), f_max:
            start, gradient, loss,
            # increases of f since the last checkpoint, f_max at it, whether η was halved at it:
            ops.zeros_like(loss, dtype="int32"), loss, ops.zeros_like(found),
            # the misclassified iterate of highest loss, its loss, whether there is one:
            start, loss, found,
        )
        schedule = checkpoints(self.steps)
        at_iterations = ops.convert_to_tensor(schedule[1:], dtype="int32")
        interval_lengths = ops.convert_to_tensor(np.diff(schedule), dtype="int32")

        def step(k, state):
            (x_k, x_previous, gradient, loss, step_size, x_max, gradient_max, loss_max,
             increases, loss_max_at_check, halved_at_check, x_success, loss_success, found) = state
            # x⁽ᵏ⁺¹⁾ (lines 3, 7–8): a projected gradient step z, then momentum (none at k = 0).
            alpha = ops.where(ops.equal(k, 0), 1.0, MOMENTUM)
            z = self._project(x, x_k + _per_example(step_size, ndim) * self._hooks.normalize(gradient))
            x_next = self._project(x, x_k + alpha * (z - x_k) + (1.0 - alpha) * (x_k - x_previous))
            loss_next, misclassified, gradient_next = _values_and_gradient(objective, x_next)
            increases = increases + ops.cast(loss_next > loss, "int32")
            # Lines 9–11: the best point so far.
            improved = loss_next > loss_max
            improved_x = _per_example(improved, ndim)
            x_max = ops.where(improved_x, x_next, x_max)
            gradient_max = ops.where(improved_x, gradient_next, gradient_max)
            loss_max = ops.where(improved, loss_next, loss_max)
            better_success = (misclassified > 0) & (~found | (loss_next > loss_success))
            x_success = ops.where(_per_example(better_success, ndim), x_next, x_success)
            loss_success = ops.where(better_success, loss_next, loss_success)
            found = found | better_success
            # Lines 12–16, once x⁽ʷʲ⁾ is known: halve η and restart from x_max where a condition holds.
            is_checkpoint_now = ops.equal(k + 1, at_iterations)
            is_checkpoint = ops.any(is_checkpoint_now)
            interval = ops.sum(ops.where(is_checkpoint_now, interval_lengths, 0))
            condition_1 = ops.cast(increases, "float32") < self.rho * ops.cast(interval, "float32")
            condition_2 = ~halved_at_check & (loss_max <= loss_max_at_check)
            halve = is_checkpoint & (condition_1 | condition_2)
            halve_x = _per_example(halve, ndim)
            step_size = ops.where(halve, 0.5 * step_size, step_size)
            x_next = ops.where(halve_x, x_max, x_next)
            gradient_next = ops.where(halve_x, gradient_max, gradient_next)
            loss_next = ops.where(halve, loss_max, loss_next)
            increases = ops.where(is_checkpoint, 0, increases)
            loss_max_at_check = ops.where(is_checkpoint, loss_max, loss_max_at_check)
            halved_at_check = ops.where(is_checkpoint, halve, halved_at_check)
            return (x_next, x_k, gradient_next, loss_next, step_size, x_max, gradient_max, loss_max,
                    increases, loss_max_at_check, halved_at_check, x_success, loss_success, found)

        if backend.ROLL_ATTACK_LOOPS:  # one compiled loop body, whatever the number of steps
            state = ops.fori_loop(0, self.steps, step, state)
        else:  # unrolled: each step compiled on its own
            for index in range(self.steps):
                state = step(index, state)
        x_max, loss_max, step_size, x_success, found = state[5], state[7], state[4], state[11], state[13]
        x_success = ops.where(_per_example(found, ndim), x_success, x_max)
        return _Ascent(
            ops.stop_gradient(x_max), ops.stop_gradient(loss_max), step_size, ops.stop_gradient(x_success), found
        )

    @property
    def label(self) -> str:
        """``"APGD-CE"``, ``"APGD-DLR"`` or, targeted, ``"APGD-T"`` (AutoAttack's names)."""
        return "APGD-T" if self.targeted else f"APGD-{self.loss.upper()}"

    def perturb(
        self,
        loss_fn: Callable[[Tensor], Tensor],
        x: Tensor,
        *,
        seed_generator: keras.random.SeedGenerator | None = None,
    ) -> Tensor:
        """Maximises ``loss_fn`` (per-example losses of a batch) in the ε-ball around ``x``: one run of Algorithm 1.

        Graph-friendly and unchecked: callers validate inputs first. Any loss works, e.g.
        an adaptive loss against a detector; [`run`][aatk.attacks.apgd.APGD.run] is this
        on a classifier's loss, over restarts and targets.

        Args:
            loss_fn: Function from a batch of inputs to per-example losses (batch,) to maximise.
            x: The clean batch.
            seed_generator: Where the random start draws from; default the attack's own.

        Returns:
            x_max, the iterate of highest loss (a constant), with ‖x_max − x‖ ≤ ε and
            x_max within bounds.
        """
        x = ops.stop_gradient(ops.convert_to_tensor(x, dtype="float32"))
        start = self._random_start(x, seed_generator or self._seed_generator)
        return self._maximize(lambda points: (loss_fn(points), None), x, start).x_max

    def run(self, logits_fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
        """APGD (or APGD-T) on the logits ``logits_fn`` computes (see [`Attack.run`][aatk.attacks.base.Attack.run]).

        Every run (each restart, of each target class) attacks the whole batch; an
        example keeps the first misclassified point found (the clean input if already
        misclassified), else the last run's x_max. Logits are cast to float32.
        With more than one run, the runs are one ``ops.fori_loop`` (their random starts
        drawn before it), so the compiled graph holds Algorithm 1 once whatever their number.

        Raises:
            ValueError: When traced, if the logits have too few classes for the loss.
        """
        x = ops.stop_gradient(ops.convert_to_tensor(x, dtype="float32"))
        y = ops.cast(y, "int32")
        ndim = len(x.shape)
        clean_logits = ops.cast(logits_fn(x), "float32")
        num_classes = clean_logits.shape[-1]
        if num_classes is None:
            raise ValueError(f"APGD needs logits with a known number of classes, got shape {clean_logits.shape}")
        self._check_num_classes(int(num_classes))
        if self.targeted:
            num_targets = min(self.target_classes, int(num_classes) - 1)
            is_label = ops.one_hot(y, int(num_classes)) > 0
            _, targets = ops.top_k(ops.where(is_label, float("-inf"), clean_logits), num_targets)
            runs = num_targets * self.restarts
        else:
            targets, runs = None, self.restarts
        starts = [self._random_start(x, self._seed_generator) for _ in range(runs)]

        def attack_once(run_index, start, carry):
            adversarial, fooled = carry
            target = None
            if targets is not None:
                target = ops.take(targets, ops.floor_divide(run_index, self.restarts), axis=1)

            def objective(points):
                logits = ops.cast(logits_fn(points), "float32")
                misclassified = ops.not_equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), y)
                return self._classifier_loss(logits, y, target), ops.cast(misclassified, "float32")

            result = self._maximize(objective, x, start)
            point = ops.where(_per_example(result.success, ndim), result.x_success, result.x_max)
            adversarial = ops.where(_per_example(fooled, ndim), adversarial, point)
            return adversarial, fooled | result.success

        clean_misclassified = ops.not_equal(ops.cast(ops.argmax(clean_logits, axis=-1), "int32"), y)
        carry = (x, clean_misclassified)
        if runs == 1:
            carry = attack_once(0, starts[0], carry)
        else:
            stacked = ops.stack(starts)
            carry = ops.fori_loop(
                0, runs, lambda index, carry: attack_once(index, ops.take(stacked, index, axis=0), carry), carry
            )
        return ops.stop_gradient(carry[0])

    def __call__(self, model: keras.Model, x: Tensor, y: Tensor, *, way: str = "standard") -> Tensor:
        """As [`Attack.__call__`][aatk.attacks.base.Attack.__call__], first checking the model's number of classes.

        Raises:
            ValueError: Also if the model declares fewer classes than the loss needs
                (DLR: 3, targeted DLR: 4).
        """
        self._check_num_classes(model_num_classes(model))
        return super().__call__(model, x, y, way=way)

    def get_config(self) -> dict:
        """Keras serialisation config (the constructor's arguments)."""
        return {
            "norm": self.norm,
            "eps": self.eps,
            "steps": self.steps,
            "loss": self.loss,
            "targeted": self.targeted,
            "restarts": self.restarts,
            "target_classes": self.target_classes,
            "rho": self.rho,
            "bounds": None if self.bounds is None else list(self.bounds),
            "seed": self.seed,
        }
