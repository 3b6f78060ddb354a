"""The baselines of Section 3.1 beyond the one-way methods: ST+AT and PI (pseudo-input).

* **One-way ST & AT** are methods of [`ThreeWayModel`][aatk.model.ThreeWayModel] itself
  (``compile(method="1way-st")``, ``"1way-at"``, ``"1way-at-half"``; see
  [`aatk.objectives.BASELINES`][aatk.objectives.BASELINES]).
* **ST+AT** — [`CombinedOneWay`][aatk.baselines.CombinedOneWay] puts a one-way ST model and a
  one-way AT model side by side and evaluates them like one three-way model: the robust way is the
  AT model's robust way, the non-robust way the ST model's non-robust way.
* **PI (pseudo-input)** — Ilyas et al. (2019), "Adversarial examples are not bugs,
  they are features", Sec. 3.1 there, published a robust and non-robust versions of
  CIFAR-10; the paper trains the robust way on the robust dataset and the non-robust
  way on the non-robust datasets. The files cannot be downloaded here, so
  [`robust_dataset`][aatk.baselines.robust_dataset] and
  [`non_robust_dataset`][aatk.baselines.non_robust_dataset] rebuild them the way
  Ilyas et al. did, from a robust (one-way AT) and a standard (one-way ST) model,
  and [`PseudoInputModel`][aatk.baselines.PseudoInputModel] trains a three-way model
  on them.

Paper: Section 3.1 ("One-way ST & AT", "ST+AT", "PI (Pseudo-Input)"), Tables 1–3, Table 4b.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

from aatk import backend
from aatk.analysis.inversion import invert_representation
from aatk.attacks import PGD
from aatk.model import DEFAULT_INPUT_RANGE, WAYS, ThreeWayModel, check_way, check_input_range
from aatk.objectives import Tensor, cross_entropy

__all__ = [
    "PI_TERMS",
    "CombinedOneWay",
    "PseudoInputModel",
    "non_robust_dataset",
    "random_derangement",
    "robust_dataset",
]

PI_TERMS = ("pi_s", "pi_r", "pi_n")
"""The three terms of [`PseudoInputModel`][aatk.baselines.PseudoInputModel]'s loss: standard way on natural images,
robust way on the robust dataset, non-robust way on the non-robust dataset."""

_PI_PARTS = ("x_natural", "x_robust", "x_non_robust")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _label_array(y: Any, n: int, *, name: str = "y") -> np.ndarray:
    """Labels (n,) or (n, 1) as int32 (n,); assumes the model already checked their range."""
    labels = np.asarray(ops.convert_to_numpy(y))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    return labels.astype(np.int32)


# --- ST+AT ---------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="aatk")
class CombinedOneWay(keras.Model):
    """ST+AT: a one-way ST model and a one-way AT model evaluated as one three-way model.

    * robust way     h_r(x) = the AT model's robust way
    * non-robust way h_n(x) = the ST model's non-robust way
    * standard way   h_s(x) = log(½ (softmax(h_r(x)) + softmax(h_n(x)))) — **our choice**:
      the paper reports no S for ST+AT (Tables 1–3 leave it blank), but the
      standard-way attack and the detection figures of [`aatk.evaluate`][aatk.evaluation.evaluate]
      (Appendix C, Table 4b) need one. We take the ensemble of the two classifiers:
      its logits are the log of their averaged probabilities, so its softmax is
      that average and its argmax the ensemble's prediction.

    The representations are z_r of the AT model and z_n of the ST model. The two
    models are trained separately (``method="1way-at"`` and ``method="1way-st"``);
    this model is for evaluation only and cannot be fitted.

    Paper: Section 3.1 ("ST+AT"), Tables 1–3.

    Args:
        st_model: A ThreeWayModel trained by one-way standard training (its non-robust way).
        at_model: A ThreeWayModel trained by one-way adversarial training (its robust way).
        **kwargs: Passed to ``keras.Model`` (e.g. ``name``).

    Raises:
        ValueError: If either is not a ThreeWayModel, they are the same model, their
            class counts or input shapes differ, or they were compiled for the wrong
            baseline (an ST model compiled with a one-way AT method or vice versa).

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu")])
        >>> st, at = ThreeWayModel(enc(), enc(), num_classes=3), ThreeWayModel(enc(), enc(), num_classes=3)
        >>> combined = CombinedOneWay(st_model=st, at_model=at)
        >>> x = np.random.default_rng(0).random((2, 4)).astype("float32")
        >>> bool(np.array_equal(combined(x, way="robust"), at(x, way="robust")))
        True
        >>> probabilities = keras.ops.softmax(combined(x))  # the standard way: the ensemble
        >>> expected = (keras.ops.softmax(at(x, way="robust")) + keras.ops.softmax(st(x, way="non_robust"))) / 2
        >>> bool(np.allclose(probabilities, expected, atol=1e-6))
        True
    """

    def __init__(self, *, st_model: ThreeWayModel, at_model: ThreeWayModel, **kwargs: Any) -> None:
        kwargs.setdefault("name", "st_plus_at")
        super().__init__(**kwargs)
        for name, model in (("st_model", st_model), ("at_model", at_model)):
            if not isinstance(model, ThreeWayModel):
                raise ValueError(f"{name} must be an aatk.ThreeWayModel, got {type(model).__name__}")
        if st_model is at_model:
            raise ValueError("st_model and at_model must be two separately trained models, got the same one twice")
        if st_model.num_classes != at_model.num_classes:
            raise ValueError(
                f"st_model has {st_model.num_classes} classes but at_model has {at_model.num_classes}; they must match"
            )
        shapes = [m.input_example_shape for m in (st_model, at_model)]
        if None not in shapes and tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"st_model expects inputs {shapes[0]} but at_model expects {shapes[1]}; they must match")
        if isinstance(st_model.method, str) and st_model.method.lower() in ("1way-at", "1way-at-half"):
            raise ValueError(
                f"st_model was compiled with method {st_model.method!r}; did you swap st_model and at_model?"
            )
        if isinstance(at_model.method, str) and at_model.method.lower() == "1way-st":
            raise ValueError("at_model was compiled with method '1way-st'; did you swap st_model and at_model?")
        self.st_model = st_model
        self.at_model = at_model
        self.num_classes = st_model.num_classes
        if st_model.built and at_model.built:
            self.built = True

    def build(self, input_shape) -> None:
        for model in (self.st_model, self.at_model):
            if not model.built:
                model.build(input_shape)
        self.built = True

    @property
    def input_example_shape(self) -> tuple | None:
        """The per-example input shape both models expect (None if not known yet)."""
        return self.at_model.input_example_shape or self.st_model.input_example_shape

    def way_logits(self, x: Tensor, *, ways: Iterable[str] = WAYS, training: bool | None = None) -> dict:
        """Logits of several ways; each underlying model runs at most once.

        Args:
            x: A batch of inputs.
            ways: Which of [`WAYS`][aatk.ways.WAYS] to compute.
            training: Training mode passed to both models.

        Returns:
            A dict from way name to logits (batch, C).
        """
        ways = tuple(check_way(w) for w in ways)
        robust = self.at_model.way_logits(x, ways=("robust",), training=training)["robust"] if (
            {"standard", "robust"} & set(ways)
        ) else None
        non_robust = self.st_model.way_logits(x, ways=("non_robust",), training=training)["non_robust"] if (
            {"standard", "non_robust"} & set(ways)
        ) else None
        logits = {}
        if "standard" in ways:
            both = ops.stack([ops.log_softmax(robust, axis=-1), ops.log_softmax(non_robust, axis=-1)], axis=0)
            logits["standard"] = ops.logsumexp(both, axis=0) - math.log(2.0)
        if "robust" in ways:
            logits["robust"] = robust
        if "non_robust" in ways:
            logits["non_robust"] = non_robust
        return logits

    def call(self, inputs, training=None, way: str = "standard"):
        """Logits of one way (the standard way, i.e. the ensemble, by default), shape (batch, C)."""
        return self.way_logits(inputs, ways=(way,), training=training)[way]

    def representations(self, x, training=None) -> tuple:
        """(z_r of the AT model, z_n of the ST model)."""
        return self.at_model.encoder_r(x, training=training), self.st_model.encoder_n(x, training=training)

    def validate_inputs(self, x: Tensor, y: Tensor | None = None, *, name: str = "x") -> None:
        """Checks inputs (and labels) against both models; see [`ThreeWayModel.validate_inputs`][aatk.model.ThreeWayModel.validate_inputs].

        Raises:
            ValueError: As
                [`ThreeWayModel.validate_inputs`][aatk.model.ThreeWayModel.validate_inputs]
                of either model.
        """
        self.at_model.validate_inputs(x, y, name=name)
        self.st_model.validate_inputs(x, y, name=name)

    def fit(self, *args: Any, **kwargs: Any) -> None:
        """Not supported: ST+AT combines two models trained separately.

        Raises:
            ValueError: Always.
        """
        raise ValueError(
            "CombinedOneWay is not trained: fit a ThreeWayModel with method='1way-st' and another with "
            "method='1way-at', then combine them"
        )

    def get_config(self) -> dict:
        return {
            "st_model": keras.saving.serialize_keras_object(self.st_model),
            "at_model": keras.saving.serialize_keras_object(self.at_model),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> CombinedOneWay:
        config = dict(config)
        st_model = keras.saving.deserialize_keras_object(config.pop("st_model"))
        at_model = keras.saving.deserialize_keras_object(config.pop("at_model"))
        return cls(st_model=st_model, at_model=at_model, **config)


# --- the pseudo-input datasets of Ilyas et al. (2019) ---------------------------------------


def _check_way_model(model: Any, name: str) -> None:
    if not isinstance(model, (ThreeWayModel, CombinedOneWay)):
        raise ValueError(f"{name} must be an aatk.ThreeWayModel (or CombinedOneWay), got {type(model).__name__}")


def random_derangement(n: int, *, seed: int = 0) -> np.ndarray:
    """A uniformly random permutation of range(n) with no fixed point (p[i] ≠ i for every i).

    Drawn by rejection: a random permutation is a derangement with probability ≈ 1/e.

    Args:
        n: Length, at least 2.
        seed: Seed of the draw.

    Returns:
        An int64 array p of length n.

    Raises:
        ValueError: If n < 2 (no derangement exists).

    Examples:
        >>> p = random_derangement(5, seed=0)
        >>> sorted(p.tolist()), bool(np.all(p != np.arange(5)))
        ([0, 1, 2, 3, 4], True)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"a derangement needs n >= 2 elements, got {n!r}")
    rng = np.random.default_rng(seed)
    identity = np.arange(n)
    while True:
        permutation = rng.permutation(n)
        if not np.any(permutation == identity):
            return permutation


def robust_dataset(
    robust_model: ThreeWayModel,
    x: Tensor,
    y: Tensor,
    *,
    steps: int = 1000,
    step_size: float = 0.1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """The robust dataset D̂_R of Ilyas et al. (2019): images carrying only robust features.

    For each training image x_i (the target), start from a *different* training
    image x_p(i), p a random derangement from ``seed``, and move it until its robust
    representation matches x_i's: minimise ‖g_r(x) − g_r(x_i)‖₂ by ℓ2-normalised
    gradient descent ([`invert_representation`][aatk.analysis.inversion.invert_representation]). The
    result keeps the label y_i: what the robust model sees of x_i, on another image.
    Use the robust way of a one-way AT model (``method="1way-at"``). Ilyas et al. use
    1000 steps of size 0.1 on CIFAR-10 from a robust (ℓ2, ε = 0.5) ResNet-50.

    Paper: Section 3.1 ("PI (Pseudo-Input)"), the robust CIFAR-10 of Ilyas et al. (2019), Sec. 3.1 there.

    Args:
        robust_model: The model whose robust representation z_r is matched.
        x: Training images, within ``bounds``; at least two.
        y: Their integer labels, shape (n,).
        steps: Gradient steps per image.
        step_size: ℓ2 length of each step.
        bounds: Valid input range; every iterate is clipped to it.
        seed: Seed of the derangement choosing the start images.
        batch_size: Images inverted together.

    Returns:
        ``(x_robust, y_robust)``: float32 images of x's shape, within ``bounds``, and
        int32 labels equal to y.

    Raises:
        ValueError: On a model without ways, fewer than two images, bad labels, or as
            [`invert_representation`][aatk.analysis.inversion.invert_representation].

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu")])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=3)
        >>> x = np.random.default_rng(0).random((3, 4)).astype("float32")
        >>> x_robust, y_robust = robust_dataset(model, x, np.array([0, 1, 2]), steps=5, step_size=0.01)
        >>> x_robust.shape, y_robust.tolist()
        ((3, 4), [0, 1, 2])
    """
    _check_way_model(robust_model, "robust_model")
    robust_model.validate_inputs(x, y, name="x")
    array = np.asarray(ops.convert_to_numpy(x), dtype=np.float32)
    labels = _label_array(y, len(array))
    start = array[random_derangement(len(array), seed=seed)]
    result = invert_representation(
        robust_model, array, representation="robust", start=start, steps=steps, step_size=step_size,
        bounds=bounds, batch_size=batch_size,
    )
    return result.images, labels


def non_robust_dataset(
    standard_model: ThreeWayModel,
    x: Tensor,
    y: Tensor,
    *,
    attack: PGD,
    targets: str = "random",
    seed: int = 0,
    batch_size: int = 256,
    way: str = "non_robust",
) -> tuple[np.ndarray, np.ndarray]:
    """A non-robust dataset of Ilyas et al. (2019): targeted adversarial examples, relabelled.

    Each image x_i gets a target class t_i ≠ y_i and becomes a targeted adversarial
    example of the standard model: the attack *maximises* −l(h(x'), t_i) in its
    ε-ball, i.e. pushes the prediction towards t_i. It is returned with the label
    t_i. To a human the image still shows class y_i; only non-robust features point
    to t_i.

    * ``targets="random"``: t uniform over the classes other than y (D̂_rand).
    * ``targets="deterministic"``: t = (y + 1) mod C (D̂_det).

    Ilyas et al. use an ℓ2 PGD with ε = 0.5, step 0.1 and 100 steps on CIFAR-10:
    ``PGD(norm="l2", eps=0.5, step_size=0.1, steps=100)``. The standard model is a
    one-way ST model (``method="1way-st"``), whose trained way is its non-robust way
    (hence the default ``way``).

    Paper: Section 3.1 ("PI (Pseudo-Input)"), the non-robust CIFAR-10 datasets of
    Ilyas et al. (2019), Sec. 3.1 there.

    Args:
        standard_model: The standard classifier.
        x: Images within the attack's bounds.
        y: Their integer labels, shape (n,).
        attack: The PGD that crafts the targeted examples (deterministic without ``random_start``).
        targets: ``"random"`` or ``"deterministic"``.
        seed: Seed of the random targets.
        batch_size: Images attacked together.
        way: The way of ``standard_model`` that is attacked.

    Returns:
        ``(x_non_robust, t)``: float32 images with ‖x' − x‖ ≤ ε and within the
        attack's bounds, and int32 target labels t ≠ y.

    Raises:
        ValueError: On a model without ways, an attack that is not a PGD, unknown
            ``targets`` or ``way``, inputs outside the bounds or non-finite, or bad labels.

    Examples:
        >>> from aatk import ThreeWayModel
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu")])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=3)
        >>> x = np.random.default_rng(0).random((3, 4)).astype("float32")
        >>> attack = PGD(norm="l2", eps=0.5, step_size=0.1, steps=3)
        >>> x_non_robust, t = non_robust_dataset(model, x, np.array([0, 1, 2]), attack=attack, targets="deterministic")
        >>> x_non_robust.shape, t.tolist()
        ((3, 4), [1, 2, 0])
    """
    _check_way_model(standard_model, "standard_model")
    if not isinstance(attack, PGD):
        raise ValueError(f"attack must be an aatk.PGD, got {type(attack).__name__}")
    if targets not in ("random", "deterministic"):
        raise ValueError(f"targets must be 'random' (D_rand) or 'deterministic' (D_det), got {targets!r}")
    check_way(way)
    batch_size = _positive_int(batch_size, "batch_size")
    standard_model.validate_inputs(x, y, name="x")
    attack.check_inputs(np.asarray(ops.convert_to_numpy(x)), name="x")
    array = np.asarray(ops.convert_to_numpy(x), dtype=np.float32)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"x must be a non-empty batch (n, ...) of inputs, got shape {array.shape}")
    labels = _label_array(y, len(array))
    num_classes = standard_model.num_classes
    if targets == "deterministic":
        target_labels = (labels + 1) % num_classes
    else:  # y + U{1, …, C−1} (mod C) is uniform over the classes other than y
        shifts = np.random.default_rng(seed).integers(1, num_classes, size=len(labels))
        target_labels = (labels + shifts) % num_classes
    target_labels = target_labels.astype(np.int32)

    def craft(inputs, target):
        def loss_fn(points):  # maximised by PGD: minimises the cross-entropy towards the target
            return -cross_entropy(standard_model(points, training=False, way=way), target)

        return attack.perturb(loss_fn, inputs)

    craft = backend.compile_function(craft, state=standard_model.variables + attack.variables)
    crafted = []
    for begin in range(0, len(array), batch_size):
        chunk = slice(begin, begin + batch_size)
        result = craft(ops.convert_to_tensor(array[chunk]), ops.convert_to_tensor(target_labels[chunk]))
        crafted.append(np.asarray(ops.convert_to_numpy(result), dtype=np.float32))
    return np.concatenate(crafted), target_labels


# --- PI: the three-way model trained on pseudo inputs ---------------------------------------


@keras.saving.register_keras_serializable(package="aatk")
class PseudoInputModel(ThreeWayModel):
    """The PI baseline: a three-way model whose ways learn from different pseudo-input datasets.

    Each training batch holds three aligned parts — natural images, the robust
    dataset ([`robust_dataset`][aatk.baselines.robust_dataset]) and a non-robust
    dataset ([`non_robust_dataset`][aatk.baselines.non_robust_dataset]) — and
    one weight gradient is taken of

        L_PI = mean l(h_s(x_nat), y_nat) + mean l(h_r(x_rob), y_rob) + mean l(h_n(x_non), y_non).

    The paper: "We train the robust way with the robust dataset and train the
    non-robust way with the non-robust datasets." It does not say what trains the
    standard way; **our choice** is the natural images, like the first term of L_ST
    (Eq. 6). Evaluation is that of a ThreeWayModel: ``validation_data`` and
    ``keras.Model.evaluate`` take natural (x, y) and report L_ST and the clean
    accuracy of each way, and [`aatk.evaluate`][aatk.evaluation.evaluate] accepts it. With BatchNorm
    encoders the moving statistics see natural and pseudo inputs alike.

    Paper: Section 3.1 ("PI (Pseudo-Input)"), Tables 1, 2, 4b, 6, 7.

    Args:
        encoder_r: As [`ThreeWayModel`][aatk.model.ThreeWayModel].
        encoder_n: As [`ThreeWayModel`][aatk.model.ThreeWayModel].
        num_classes: As [`ThreeWayModel`][aatk.model.ThreeWayModel].
        hidden: As [`ThreeWayModel`][aatk.model.ThreeWayModel].
        **kwargs: Passed to ``keras.Model``.

    Raises:
        ValueError: As [`ThreeWayModel`][aatk.model.ThreeWayModel].

    Examples:
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu")])
        >>> model = PseudoInputModel(enc(), enc(), num_classes=3)
        >>> model.compile(optimizer="adam")
        >>> x = np.random.default_rng(0).random((6, 4)).astype("float32")
        >>> y = np.array([0, 1, 2, 0, 1, 2])
        >>> history = model.fit((x, x[::-1], x), (y, y, (y + 1) % 3), batch_size=3, epochs=1, verbose=0)
        >>> sorted(history.history)
        ['acc_n', 'acc_r', 'acc_s', 'l_pi_n', 'l_pi_r', 'l_pi_s', 'loss']
    """

    def __init__(
        self,
        encoder_r: keras.layers.Layer,
        encoder_n: keras.layers.Layer,
        num_classes: int,
        *,
        hidden: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Created before ThreeWayModel.__init__, which builds the model: Keras locks a
        # built model's state, and the parent's tracker dict cannot grow afterwards.
        self._pi_trackers = {f"l_{term}": keras.metrics.Mean(name=f"l_{term}") for term in PI_TERMS}
        super().__init__(encoder_r, encoder_n, num_classes, hidden=hidden, **kwargs)

    @property
    def metrics(self) -> list:
        """Total loss, the three PI terms and the clean accuracy of each way (on the natural part)."""
        return [self._pi_trackers[n] if n in self._pi_trackers else self._trackers[n] for n in self._active_metrics]

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer = "sgd",
        *,
        input_range: tuple[float, float] | None = DEFAULT_INPUT_RANGE,
        **kwargs: Any,
    ) -> None:
        """Configures training; the objective is fixed (L_PI) and needs no attack.

        Args:
            optimizer: Any Keras optimizer.
            input_range: The ``(low, high)`` range the natural images (training and
                validation) must lie in, or ``None`` for unbounded inputs; as
                [`ThreeWayModel.compile`][aatk.model.ThreeWayModel.compile]. The
                pseudo inputs need not lie in it.
            **kwargs: Passed to ``keras.Model.compile`` (``steps_per_execution``,
                ``run_eagerly``, ``jit_compile``...).

        Raises:
            ValueError: On ``loss``, ``metrics``, ``method`` or ``attack``: the objective
                and metrics are built in.
        """
        for forbidden in ("loss", "loss_weights", "metrics", "weighted_metrics", "method", "attack"):
            if kwargs.get(forbidden) is not None:
                raise ValueError(
                    f"PseudoInputModel.compile does not take {forbidden}=: it trains the pseudo-input objective "
                    "(standard way on natural, robust way on robust, non-robust way on non-robust images)"
                )
            kwargs.pop(forbidden, None)
        input_range = check_input_range(input_range)
        keras.Model.compile(self, optimizer=optimizer, **kwargs)
        self.input_range = input_range
        self.method = "pi"
        self.terms = PI_TERMS
        self.term_weights = {term: 1.0 for term in PI_TERMS}
        self.attack = None
        self._active_metrics = ("loss",) + tuple(f"l_{t}" for t in PI_TERMS) + ("acc_s", "acc_r", "acc_n")

    def compile_from_config(self, config: dict) -> None:
        config = dict(config)
        # ThreeWayModel's training settings, which the pseudo-input objective does not use.
        for unused in ("method", "attack", "attack_warmup_steps", "keep", "loss", "loss_weights", "metrics",
                       "weighted_metrics"):
            config.pop(unused, None)
        optimizer = keras.saving.deserialize_keras_object(config.pop("optimizer", "sgd"))
        input_range = config.pop("input_range", DEFAULT_INPUT_RANGE)  # absent from models saved before it existed
        self.compile(optimizer=optimizer, input_range=input_range, **config)
        if self.built:
            with backend.variable_scope(self):
                self.optimizer.build(self.trainable_variables)

    @staticmethod
    def _parts(x, y) -> tuple:
        if not (isinstance(x, (tuple, list)) and len(x) == 3 and isinstance(y, (tuple, list)) and len(y) == 3):
            raise ValueError(
                "PseudoInputModel trains on batches ((x_natural, x_robust, x_non_robust), "
                "(y_natural, y_robust, y_non_robust))"
            )
        return tuple(x), tuple(y)

    def _pi_objective(self, x: tuple, y: tuple, training: bool) -> tuple:
        """L_PI (mean over the batch of each term, summed) and the clean logits of the natural part."""
        x_natural, x_robust, x_non_robust = x
        y_natural, y_robust, y_non_robust = y
        clean = self.way_logits(x_natural, training=training)  # the robust and non-robust ways only for metrics
        robust = self.way_logits(x_robust, ways=("robust",), training=training)["robust"]
        non_robust = self.way_logits(x_non_robust, ways=("non_robust",), training=training)["non_robust"]
        terms = {
            "pi_s": ops.mean(cross_entropy(clean["standard"], y_natural)),
            "pi_r": ops.mean(cross_entropy(robust, y_robust)),
            "pi_n": ops.mean(cross_entropy(non_robust, y_non_robust)),
        }
        total = terms["pi_s"] + terms["pi_r"] + terms["pi_n"]
        if training and self.losses:  # weight regularisers of the encoders, if any
            total = total + ops.sum(ops.stack(self.losses))
        return total, {"terms": terms, "clean": clean}

    def train_step(self, *args):
        """One step of L_PI; ``args`` as the backend's trainer passes them (see aatk.backend)."""
        return backend.stateful_step(self, self._stateful_pi_train_step, *args)

    def _stateful_pi_train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("PseudoInputModel does not support sample weights")
        x, y = self._parts(x, y)
        y = tuple(self._labels(part) for part in y)
        for index, (part, labels) in enumerate(zip(x, y)):  # a second line of defence (see fit)
            # Only the natural images must lie in the input range (see validate_pseudo_inputs).
            input_range = self.input_range if index == 0 else None
            backend.check_batch(part, labels, num_classes=self.num_classes, bounds=None, input_range=input_range)
        loss, aux, gradients = backend.value_and_weight_gradients(
            lambda: self._pi_objective(x, y, training=True), self.trainable_variables
        )
        self.optimizer.apply(gradients, self.trainable_variables)
        self._trackers["loss"].update_state(loss)
        for term, value in aux["terms"].items():
            self._pi_trackers[f"l_{term}"].update_state(value)
        for way, short in zip(WAYS, ("s", "r", "n")):
            self._trackers[f"acc_{short}"].update_state(y[0], aux["clean"][way])
        return {m.name: m.result() for m in self.metrics}

    def validate_pseudo_inputs(self, x: Any, y: Any) -> None:
        """Checks the three parts of the training data before training.

        The natural images must lie in the model's input range ([0, 1] unless compiled
        with another ``input_range``), which catches unscaled data at its source. The
        pseudo inputs need not: the robust and non-robust datasets of other recipes
        may leave [0, 1]; but every value must be finite and no part may have an
        integer dtype.

        Args:
            x: ``(x_natural, x_robust, x_non_robust)``, arrays of equal shape.
            y: ``(y_natural, y_robust, y_non_robust)``, integer labels in [0, C).

        Raises:
            ValueError: If x or y is not a triple, the parts differ in length or
                per-example shape, or a part fails
                [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs] (shape,
                non-finite values, labels).
        """
        x, y = self._parts(x, y)
        arrays = [np.asarray(ops.convert_to_numpy(part)) for part in x]
        for name, array in zip(_PI_PARTS, arrays):
            if array.ndim < 2:
                raise ValueError(f"{name} must be a batch (n, ...) of inputs, got shape {array.shape}")
        shapes = {name: array.shape for name, array in zip(_PI_PARTS, arrays)}
        if len({shape for shape in shapes.values()}) != 1:
            raise ValueError(
                f"the three parts must have equal shapes (same length and per-example shape), got {shapes}"
            )
        natural_checks = self.input_checks()
        pseudo_checks = dataclasses.replace(natural_checks, input_range=None)
        for name, array, labels in zip(_PI_PARTS, arrays, y):
            checks = natural_checks if name == "x_natural" else pseudo_checks
            checks.check_arrays(array, labels, name=name)

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` on ``x=(x_natural, x_robust, x_non_robust)``, ``y=(y_natural, y_robust, y_non_robust)``.

        Arrays are checked whole before training
        ([`validate_pseudo_inputs`][aatk.baselines.PseudoInputModel.validate_pseudo_inputs]);
        a ``tf.data.Dataset`` of such batches is checked by its first batch, and
        every batch again in the train step. ``validation_data`` is natural
        ``(x, y)``.

        Raises:
            ValueError: If not compiled, on bad data (see
                [`validate_pseudo_inputs`][aatk.baselines.PseudoInputModel.validate_pseudo_inputs]),
                on ``validation_split`` or on validation data that is not natural (x, y).
        """
        if not self.compiled:
            raise ValueError("call compile(optimizer=...) before fit")
        if kwargs.get("validation_split"):
            raise ValueError("validation_split is not supported: pass validation_data=(x, y) of natural images")
        if hasattr(x, "element_spec"):  # a tf.data.Dataset
            for batch in x.take(1):
                inputs, labels, _ = keras.utils.unpack_x_y_sample_weight(batch)
                self.validate_pseudo_inputs(inputs, labels)
            first_shape = tuple(x.element_spec[0][0].shape)
            kwargs.setdefault("shuffle", False)
        else:
            self.validate_pseudo_inputs(x, y)
            first_shape = (None, *np.shape(x[0])[1:])
        if not self.built:
            self.build(first_shape)
        if not self.optimizer.built:
            with backend.variable_scope(self):
                self.optimizer.build(self.trainable_variables)
        validation = kwargs.get("validation_data")
        if validation is not None:
            if not (isinstance(validation, tuple) and len(validation) >= 2):
                raise ValueError("validation_data must be (x, y) arrays of natural images")
            if isinstance(validation[0], (tuple, list)):
                raise ValueError("validation_data must be natural (x, y), not the three pseudo-input parts")
            self.validate_inputs(validation[0], validation[1], name="validation_data")
        return keras.Model.fit(self, x, y, *args, **kwargs)
