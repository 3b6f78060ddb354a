"""Projected gradient descent (PGD) attacks in ℓ∞ and ℓ2.

One loop, three per-norm hooks — random start, step normalisation, projection
onto the ε-ball — in the shape of Foolbox 3's gradient-descent attacks. The loop
maximises a per-example loss; the input gradient is the only backend-specific
operation and comes from [`aatk.backend`][aatk.backend], which watches the input alone, so
no gradient of an attack can reach the model's weights.

Paper: Eq. 2 (the adversarial example), Table 4a (the configurations), Madry et al. (2018).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from aatk import backend
from aatk.objectives import Tensor

__all__ = ["PGD", "NORMS", "LinfBall", "L2Ball"]

_TINY = 1e-12


def _per_example_norm(t):
    """ℓ2 norm of every example of a batch, shape (batch, 1, …, 1) for broadcasting."""
    axes = tuple(range(1, len(t.shape)))
    return ops.sqrt(ops.sum(ops.square(t), axis=axes, keepdims=True))


class LinfBall:
    """Hooks of PGD for the ℓ∞ ball {δ : max_i |δ_i| ≤ ε}."""

    name = "linf"

    @staticmethod
    def random_start(shape, eps: float, seed) -> object:
        """A point uniform in the cube [−ε, ε]ᴰ."""
        return keras.random.uniform(shape, minval=-eps, maxval=eps, seed=seed)

    @staticmethod
    def normalize(gradient):
        """The steepest-ascent direction for ℓ∞: sign(∇)."""
        return ops.sign(gradient)

    @staticmethod
    def project(delta, eps: float):
        """Clips every coordinate of δ to [−ε, ε]."""
        return ops.clip(delta, -eps, eps)


class L2Ball:
    """Hooks of PGD for the ℓ2 ball {δ : ‖δ‖₂ ≤ ε} (one ball per example)."""

    name = "l2"

    @staticmethod
    def random_start(shape, eps: float, seed) -> object:
        """A point uniform in the volume of the ℓ2 ball (not on its sphere).

        A Gaussian direction is uniform on the sphere; the radius ε·U^(1/D) (the D-th
        root of U) with U uniform on [0, 1] makes the density uniform in the D-dimensional volume.
        """
        direction = keras.random.normal(shape, seed=seed)
        direction = direction / ops.maximum(_per_example_norm(direction), _TINY)
        dims = math.prod(int(s) for s in shape[1:])
        uniform = keras.random.uniform((shape[0],) + (1,) * (len(shape) - 1), seed=seed)
        radius = eps * ops.exp(ops.log(ops.maximum(uniform, _TINY)) / dims)
        return direction * radius

    @staticmethod
    def normalize(gradient):
        """The steepest-ascent direction for ℓ2: ∇ / ‖∇‖₂ (zero where ∇ = 0)."""
        return gradient / ops.maximum(_per_example_norm(gradient), _TINY)

    @staticmethod
    def project(delta, eps: float):
        """Scales δ back onto the ball when ‖δ‖₂ > ε."""
        norm = _per_example_norm(delta)
        return delta * ops.minimum(1.0, eps / ops.maximum(norm, _TINY))


NORMS = {"linf": LinfBall, "l2": L2Ball}


def _finite_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@keras.saving.register_keras_serializable(package="aatk")
class PGD:
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
            by [`check_inputs`][aatk.attacks.PGD.check_inputs], never silently clipped.
        seed: Seed of the random start.

    Raises:
        ValueError: On an unknown norm, ε < 0, step_size ≤ 0, steps < 1 or bad bounds.

    Examples:
        >>> attack = PGD(norm="linf", eps=0.3, step_size=0.01, steps=5)
        >>> attack.eps, attack.steps
        (0.3, 5)
    """

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
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        eps = _finite_number(eps, "eps")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        step_size = _finite_number(step_size, "step_size")
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if bounds is not None:
            if len(bounds) != 2:
                raise ValueError(f"bounds must be (low, high) or None, got {bounds!r}")
            low, high = (_finite_number(b, "bounds") for b in bounds)
            if not low < high:
                raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
            bounds = (low, high)
        self.norm = norm
        self.eps = eps
        self.step_size = step_size
        self.steps = int(steps)
        self.random_start = bool(random_start)
        self.bounds = bounds
        self.seed = seed
        self._hooks = NORMS[norm]
        self._seed_generator = keras.random.SeedGenerator(seed) if random_start else None
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return (
            f"PGD(norm={self.norm!r}, eps={self.eps:g}, step_size={self.step_size:g}, steps={self.steps}, "
            f"random_start={self.random_start}, bounds={self.bounds})"
        )

    def _clip_to_bounds(self, x):
        if self.bounds is None:
            return x
        return ops.clip(x, self.bounds[0], self.bounds[1])

    @property
    def variables(self) -> list:
        """The attack's own state: its random-start generator's state (empty without random start)."""
        return [] if self._seed_generator is None else [self._seed_generator.state]

    def reset_seed(self, seed: int) -> None:
        """Restarts the random starts from ``seed``, as a new ``PGD(seed=seed)`` would draw them.

        Lets one attack (compiled once) evaluate a changing model from the same random
        starts every time, e.g. after every training epoch.

        Raises:
            ValueError: If the attack has no random start, or ``seed`` is not an integer ≥ 0.
        """
        if self._seed_generator is None:
            raise ValueError("this PGD has no random start (random_start=False): there is no seed to reset")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        state = self._seed_generator.state
        state.assign(np.asarray([int(seed), 0], dtype=state.dtype))

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
            x_adv = self._clip_to_bounds(x + start)
        else:
            x_adv = x

        def step(_, x_adv):
            gradient = backend.input_gradient(loss_fn, x_adv)
            x_adv = x_adv + step_size * self._hooks.normalize(gradient)
            return self._clip_to_bounds(x + self._hooks.project(x_adv - x, eps))

        if backend.ROLL_ATTACK_LOOPS:  # one compiled loop body, whatever the number of steps
            x_adv = ops.fori_loop(0, self.steps, step, x_adv)
        else:  # unrolled: each step compiled on its own
            for index in range(self.steps):
                x_adv = step(index, x_adv)
        return ops.stop_gradient(x_adv)

    def check_inputs(self, x: Tensor, *, name: str = "x") -> None:
        """Raises ValueError if ``x`` has non-finite values or leaves ``bounds``.

        Raises:
            ValueError: Naming the offending value and the expected range.
        """
        array = np.asarray(ops.convert_to_numpy(x)) if not isinstance(x, np.ndarray) else x
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(f"{name} holds {int((~finite).sum())} non-finite value(s) (NaN or inf)")
        if self.bounds is not None and array.size:
            low, high = float(array.min()), float(array.max())
            if low < self.bounds[0] or high > self.bounds[1]:
                raise ValueError(
                    f"{name} has values in [{low:g}, {high:g}] but the attack's bounds are "
                    f"{self.bounds}; rescale the inputs (e.g. images to [0, 1]) or pass "
                    "bounds=None for unbounded inputs"
                )

    def __call__(self, model: keras.Model, x: Tensor, y: Tensor, *, way: str = "standard") -> Tensor:
        """Attacks one way of a [`ThreeWayModel`][aatk.model.ThreeWayModel] (or any Keras classifier).

        The model runs in inference mode (dropout off, BatchNorm statistics untouched).

        Args:
            model: A ThreeWayModel, or a Keras model returning logits (then ``way``
                must be ``"standard"``).
            x: Clean inputs (batch first).
            y: Integer labels, shape (batch,).
            way: ``"standard"``, ``"robust"`` or ``"non_robust"``.

        Returns:
            The adversarial inputs as a tensor of the shape of ``x``.

        Raises:
            ValueError: On an unknown way, inputs outside the bounds or non-finite,
                or labels of the wrong shape.
        """
        from aatk.baselines import CombinedOneWay  # local: baselines imports this module
        from aatk.model import WAYS, ThreeWayModel, check_way  # local: model imports this module

        check_way(way)
        self.check_inputs(x)
        labels = np.asarray(ops.convert_to_numpy(y))
        if labels.ndim != 1 or labels.shape[0] != np.shape(x)[0]:
            raise ValueError(f"y must have shape ({np.shape(x)[0]},), got {labels.shape}")
        is_three_way = isinstance(model, (ThreeWayModel, CombinedOneWay))
        num_classes = model.num_classes if is_three_way else None
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError(f"y must hold non-negative integer class indices, got {labels.dtype} {labels[:5]}")
        if num_classes is not None and labels.max(initial=0) >= num_classes:
            raise ValueError(f"y must lie in [0, {num_classes}), found {labels.max()}")
        if not is_three_way and way != WAYS[0]:
            raise ValueError(f"way={way!r} needs a ThreeWayModel; {type(model).__name__} has one way only")
        per_model = self._compiled.setdefault(model, {})
        if way not in per_model:

            def attack(inputs, targets):
                def loss_fn(points):
                    logits = model(points, training=False, way=way) if is_three_way else model(points, training=False)
                    return keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)

                return self.perturb(loss_fn, inputs)

            per_model[way] = backend.compile_function(attack, state=model.variables + self.variables)
        return per_model[way](ops.convert_to_tensor(x, dtype="float32"), ops.convert_to_tensor(labels, dtype="int32"))

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

    @classmethod
    def from_config(cls, config: dict) -> PGD:
        """Rebuilds a PGD from [`get_config`][aatk.attacks.PGD.get_config]."""
        config = dict(config)
        if config.get("bounds") is not None:
            config["bounds"] = tuple(config["bounds"])
        return cls(**config)
