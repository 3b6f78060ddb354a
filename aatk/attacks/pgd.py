"""Projected gradient descent (PGD) attacks in ℓ∞ and ℓ2.

One loop, three per-norm hooks — random start, step normalisation, projection
onto the ε-ball — in the shape of Foolbox 3's gradient-descent attacks. The loop
maximises a per-example loss; the input gradient is the only backend-specific
operation and comes from [`aatk.backend`][aatk.backend], which watches the input alone, so
no gradient of an attack can reach the model's weights.

Paper: Eq. 2 (the adversarial example), Table 4a (the configurations), Madry et al. (2018).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from aatk import backend
from aatk.attacks.base import Attack, finite_number, positive_int
from aatk.objectives import Tensor, cross_entropy

__all__ = ["PGD"]


@keras.saving.register_keras_serializable(package="aatk")
class PGD(Attack):
    """Projected gradient descent on the cross-entropy of one way of a model.

    Each step moves x_adv by ``step_size`` along the normalised input gradient of
    the loss (sign for ℓ∞, unit ℓ2 direction for ℓ2), projects the perturbation
    back onto the ε-ball around x and clips to ``bounds``. Every iterate therefore
    lies in the ball and in the bounds.

    Paper: Eq. 2; Table 4a lists the configurations used in the paper.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: Radius ε ≥ 0 of the ball.
        step_size: Step α > 0.
        steps: Number of steps k ≥ 1.
        random_start: Start from a uniform point of the ball instead of x.
        bounds: ``(low, high)`` of valid inputs (default images in [0, 1]), or
            ``None`` for unbounded inputs. Inputs outside the bounds are rejected
            by [`check_inputs`][aatk.attacks.base.Attack.check_inputs], never silently clipped.
        seed: Seed of the random start.

    Raises:
        ValueError: On an unknown norm, ε < 0, step_size ≤ 0, steps < 1 or bad bounds.

    Examples:
        >>> attack = PGD(norm="linf", eps=0.3, step_size=0.01, steps=5)
        >>> attack.eps, attack.steps
        (0.3, 5)
    """

    name = "PGD"

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float,
        step_size: float,
        steps: int,
        random_start: bool = False,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(norm=norm, eps=eps, bounds=bounds, seed=seed, random=bool(random_start))
        step_size = finite_number(step_size, "step_size")
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        self.step_size = step_size
        self.steps = positive_int(steps, "steps")
        self.random_start = bool(random_start)

    @property
    def label(self) -> str:
        """``"PGD-<steps>"``."""
        return f"PGD-{self.steps}"

    def perturb(
        self,
        loss_fn: Callable[[Tensor], Tensor],
        x: Tensor,
        *,
        seed_generator: keras.random.SeedGenerator | None = None,
        eps_scale: Tensor | float | None = None,
    ) -> Tensor:
        """Maximises ``loss_fn`` (per-example losses of a batch) in the ε-ball around ``x``.

        Graph-friendly and unchecked: callers validate inputs first. The result is
        a constant (no gradient flows back through it).

        Args:
            loss_fn: Function from a batch of inputs to per-example losses.
            x: The clean batch.
            seed_generator: Where the random start draws from; default the attack's
                own. A model passes its own generator so that the draws are part of
                its state (see ``ThreeWayModel.attack_seed_generator``).
            eps_scale: A factor in [0, 1] (a scalar, possibly a tensor) applied to ε
                and to the step size: the attack of a smaller ball, with the same
                number of steps (a training attack's ε warm-up).

        Returns:
            The adversarial batch x_adv, with ‖x_adv − x‖ ≤ ε·eps_scale and x_adv within bounds.
        """
        x = ops.stop_gradient(ops.convert_to_tensor(x, dtype="float32"))
        eps, step_size = self.eps, self.step_size
        if eps_scale is not None:
            eps_scale = ops.cast(eps_scale, "float32")
            eps, step_size = eps * eps_scale, step_size * eps_scale
        if self.random_start:
            start = self._hooks.random_start(ops.shape(x), eps, seed_generator or self._seed_generator)
            x_adv = self.clip_to_bounds(x + start)
        else:
            x_adv = x

        def step(_, x_adv):
            gradient = backend.input_gradient(loss_fn, x_adv)
            x_adv = x_adv + step_size * self._hooks.normalize(gradient)
            return self.clip_to_bounds(x + self._hooks.project(x_adv - x, eps))

        if backend.ROLL_ATTACK_LOOPS:  # one compiled loop body, whatever the number of steps
            x_adv = ops.fori_loop(0, self.steps, step, x_adv)
        else:  # unrolled: each step compiled on its own
            for index in range(self.steps):
                x_adv = step(index, x_adv)
        return ops.stop_gradient(x_adv)

    def run(self, logits_fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Maximises the cross-entropy of the way ``logits_fn`` computes (see [`Attack.run`][aatk.attacks.base.Attack.run])."""
        return self.perturb(lambda points: cross_entropy(logits_fn(points), y), x)

    def get_config(self) -> dict:
        """Keras serialisation config."""
        return {
            "norm": self.norm,
            "eps": self.eps,
            "step_size": self.step_size,
            "steps": self.steps,
            "random_start": self.random_start,
            "bounds": None if self.bounds is None else list(self.bounds),
            "seed": self.seed,
        }
