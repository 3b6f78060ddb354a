"""What every attack of aatk shares, and the one thing it needs from a model.

An attack depends on a small protocol, not on the model classes (as Foolbox's attacks
depend only on a model's call): a model with ways provides

* ``way_logits(x, *, ways, training)`` → a dict from way name to logits (batch, C), and
* ``num_classes``,

as [`ThreeWayModel`][aatk.model.ThreeWayModel] and
[`CombinedOneWay`][aatk.baselines.CombinedOneWay] do; any other Keras classifier that
returns logits is a model with the standard way only.

[`Attack`][aatk.attacks.base.Attack] holds what is common: the threat model (norm, ε,
bounds), input and label checks, the random-start seed, calling on one way of a model
(compiled once per model and way), and Keras serialisation. Each algorithm is one
subclass with one loop: [`PGD`][aatk.attacks.pgd.PGD], [`APGD`][aatk.attacks.apgd.APGD],
[`SquareAttack`][aatk.attacks.square.SquareAttack].
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from aatk import backend
from aatk.attacks.norms import NORMS
from aatk.objectives import Tensor
from aatk.ways import WAYS, check_way

__all__ = ["Attack", "way_logits_function", "model_num_classes", "finite_number", "positive_int"]


def finite_number(value, name: str) -> float:
    """``value`` as a float, or ValueError naming ``name`` if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int, or ValueError naming ``name`` if it is not an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_bounds(bounds) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise ValueError(f"bounds must be (low, high) or None, got {bounds!r}")
    low, high = (finite_number(b, "bounds") for b in bounds)
    if not low < high:
        raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
    return low, high


def way_logits_function(model: keras.Model, way: str) -> Callable[[Tensor], Tensor]:
    """The function x ↦ logits of one way of ``model``, in inference mode.

    Args:
        model: A model with ways (a ``way_logits`` method, see the module's protocol) or any
            Keras classifier returning logits (then it has the standard way only).
        way: One of [`WAYS`][aatk.ways.WAYS].

    Returns:
        A function from a batch of inputs to logits (batch, C).

    Raises:
        ValueError: On an unknown way, or a way other than ``"standard"`` of a model without ways.
    """
    check_way(way)
    if hasattr(model, "way_logits"):

        def logits_of_way(points):
            return model.way_logits(points, ways=(way,), training=False)[way]

        return logits_of_way
    if way != WAYS[0]:
        raise ValueError(f"way={way!r} needs a model with ways (way_logits); {type(model).__name__} has one way only")

    def logits_of_model(points):
        return model(points, training=False)

    return logits_of_model


def model_num_classes(model) -> int | None:
    """The model's number of classes if it declares one (``num_classes``), else None."""
    value = getattr(model, "num_classes", None)
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else None


class Attack:
    """Base class of aatk's attacks: an ε-ball around each input, within ``bounds``.

    Subclasses implement [`run`][aatk.attacks.base.Attack.run] (one loop, graph-friendly)
    and list their arguments in ``get_config``; calling an attack on a model, its checks
    and its compilation are shared.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: Radius ε ≥ 0 of the ball.
        bounds: ``(low, high)`` of valid inputs (default images in [0, 1]), or ``None``
            for unbounded inputs. Inputs outside the bounds are rejected by
            [`check_inputs`][aatk.attacks.base.Attack.check_inputs], never silently clipped.
        seed: Seed of the attack's random draws (random starts, random search).
        random: Whether the attack draws random numbers (it then owns a seed generator).

    Raises:
        ValueError: On an unknown norm, ε < 0 or bad bounds.
    """

    #: Short name of the algorithm, used in reports (e.g. ``"PGD"``).
    name = "attack"
    #: Whether the attack follows input gradients (False for a gradient-free, black-box attack).
    uses_gradients = True

    def __init__(
        self, *, norm: str, eps: float, bounds: tuple[float, float] | None, seed: int | None, random: bool
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        eps = finite_number(eps, "eps")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if seed is not None:
            seed = positive_int(seed, "seed", minimum=0)
        self.norm = norm
        self.eps = eps
        self.bounds = _check_bounds(bounds)
        self.seed = seed
        self._hooks = NORMS[norm]
        self._seed_generator = keras.random.SeedGenerator(seed) if random else None
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- what subclasses provide ------------------------------------------------------------

    def run(self, logits_fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
        """The adversarial batch for the way whose logits ``logits_fn`` computes (graph-friendly, unchecked).

        Args:
            logits_fn: Function from a batch of inputs to logits (batch, C).
            x: The clean batch (float32).
            y: Integer labels (batch,) (int32).

        Returns:
            x_adv, a constant, in the ε-ball around ``x`` and within ``bounds``.
        """
        raise NotImplementedError

    def get_config(self) -> dict:
        """Keras serialisation config (the constructor's arguments)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """A short label for reports and progress bars (e.g. ``"PGD-40"``, ``"APGD-T"``)."""
        return self.name

    @classmethod
    def from_config(cls, config: dict):
        """Rebuilds the attack from ``get_config``."""
        config = dict(config)
        if config.get("bounds") is not None:
            config["bounds"] = tuple(config["bounds"])
        return cls(**config)

    def __repr__(self) -> str:
        def show(value):
            return f"{value:g}" if isinstance(value, float) else repr(value)

        config = {k: v for k, v in self.get_config().items() if k != "seed"}
        if config.get("bounds") is not None:
            config["bounds"] = tuple(config["bounds"])
        return f"{type(self).__name__}(" + ", ".join(f"{k}={show(v)}" for k, v in config.items()) + ")"

    def clip_to_bounds(self, x):
        """``x`` clipped to ``bounds`` (unchanged for unbounded inputs)."""
        if self.bounds is None:
            return x
        return ops.clip(x, self.bounds[0], self.bounds[1])

    @property
    def variables(self) -> list:
        """The attack's own state: its seed generator's state (empty for a deterministic attack)."""
        return [] if self._seed_generator is None else [self._seed_generator.state]

    def reset_seed(self, seed: int) -> None:
        """Restarts the random draws from ``seed``, as a new attack with ``seed=seed`` would draw them.

        Lets one attack (compiled once) evaluate a changing model from the same random
        starts every time, e.g. after every training epoch.

        Raises:
            ValueError: If the attack draws nothing at random, or ``seed`` is not an integer ≥ 0.
        """
        if self._seed_generator is None:
            raise ValueError(f"this {type(self).__name__} draws nothing at random: there is no seed to reset")
        seed = positive_int(seed, "seed", minimum=0)
        state = self._seed_generator.state
        state.assign(np.asarray([seed, 0], dtype=state.dtype))

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

    @staticmethod
    def check_labels(y: Tensor, *, batch: int, num_classes: int | None) -> np.ndarray:
        """``y`` as int32 class indices of shape (batch,), or ValueError saying what is wrong."""
        labels = np.asarray(ops.convert_to_numpy(y))
        if labels.ndim != 1 or labels.shape[0] != batch:
            raise ValueError(f"y must have shape ({batch},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError(f"y must hold non-negative integer class indices, got {labels.dtype} {labels[:5]}")
        if num_classes is not None and labels.max(initial=0) >= num_classes:
            raise ValueError(f"y must lie in [0, {num_classes}), found {labels.max()}")
        return labels.astype(np.int32)

    def compiled_for(self, model, way: str) -> Callable[[Tensor, Tensor], Tensor]:
        """``run`` on one way of ``model``, compiled once per model and way: (x, y) → x_adv."""
        per_model = self._compiled.setdefault(model, {})
        if way not in per_model:
            logits_fn = way_logits_function(model, way)

            def attack_way(inputs, targets):
                return self.run(logits_fn, inputs, targets)

            per_model[way] = backend.compile_function(attack_way, state=model.variables + self.variables)
        return per_model[way]

    def __call__(self, model: keras.Model, x: Tensor, y: Tensor, *, way: str = "standard") -> Tensor:
        """Attacks one way of a model with ways (or the only way of any Keras classifier).

        The model runs in inference mode (dropout off, BatchNorm statistics untouched).

        Args:
            model: A [`ThreeWayModel`][aatk.model.ThreeWayModel], a
                [`CombinedOneWay`][aatk.baselines.CombinedOneWay], or a Keras model
                returning logits (then ``way`` must be ``"standard"``).
            x: Clean inputs (batch first).
            y: Integer labels, shape (batch,).
            way: ``"standard"``, ``"robust"`` or ``"non_robust"``.

        Returns:
            The adversarial inputs as a tensor of the shape of ``x``.

        Raises:
            ValueError: On an unknown way, inputs outside the bounds or non-finite,
                or labels of the wrong shape or range.
        """
        check_way(way)
        way_logits_function(model, way)  # the way must exist before anything runs
        self.check_inputs(x)
        labels = self.check_labels(y, batch=int(np.shape(x)[0]), num_classes=model_num_classes(model))
        attack = self.compiled_for(model, way)
        return attack(ops.convert_to_tensor(x, dtype="float32"), ops.convert_to_tensor(labels, dtype="int32"))
