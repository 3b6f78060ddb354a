"""The three-way model of Section 2.2, trained with AAT/AAT++ through ``fit``.

Two encoders map an input to a robust representation z_r and a non-robust one
z_n (Eq. 4); a shared head f classifies their combination in three ways (Eq. 5):

* standard way   h_s(x) = f([z_r, z_n])
* robust way     h_r(x) = f([z_r, 0])
* non-robust way h_n(x) = f([0, z_n])

The zeroed half is a constant, not a function of x (an intervention do(z) = 0).
``train_step`` follows Algorithm 1: attacks run first, in inference mode, and
give constant adversarial inputs and labels; then one gradient of the weights
is taken through the objectives of [`aatk.objectives`][aatk.objectives].
"""

from __future__ import annotations

import dataclasses
import math
import types
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from aatk import backend
from aatk.attacks import PGD
from aatk.initializers import check_init, dense_kwargs
from aatk.objectives import (
    KEEP_RULES,
    L_AN,
    L_AR,
    L_AS,
    L_ST,
    ONE_WAY_TERMS,
    TERMS,
    Tensor,
    adversarial_labels,
    cross_entropy,
    L_one_way,
    resolve_weights,
)
from aatk.ways import WAYS, check_way

__all__ = ["DEFAULT_INPUT_RANGE", "InputChecks", "ThreeWayModel", "WAYS", "check_input_range", "check_way"]

_SHORT = {"standard": "s", "robust": "r", "non_robust": "n"}

DEFAULT_INPUT_RANGE = (0.0, 1.0)
"""The inputs a [`ThreeWayModel`][aatk.model.ThreeWayModel] accepts unless compiled otherwise: images scaled to [0, 1]."""


def _split(tensor: Tensor, like: list) -> list:
    """``tensor`` cut along the batch axis into pieces as long as the tensors in ``like``."""
    pieces, start = [], 0
    for reference in like:
        size = ops.shape(reference)[0]
        pieces.append(tensor[start : start + size])
        start = start + size
    return pieces


def _declared_input_shape(encoder: keras.layers.Layer) -> tuple | None:
    """The per-example input shape an encoder declares (Functional/Sequential with an Input)."""
    try:
        inputs = encoder.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def _encoder_output_shape(encoder: keras.layers.Layer, *, input_shape: tuple) -> tuple:
    """The output shape of ``encoder`` on inputs of ``input_shape`` (batch first), building it if need be.

    An encoder that is not built yet (a ``keras.Sequential`` without ``keras.Input``, a
    subclassed layer) is called on a symbolic input, which builds it the way Keras builds
    any layer on its first call: ``compute_output_spec`` alone would run the layers of an
    unbuilt Sequential one by one with arguments some of them do not take.
    """
    inputs = keras.KerasTensor(input_shape)
    if encoder.built:
        return tuple(encoder.compute_output_spec(inputs).shape)
    return tuple(encoder(inputs).shape)


def check_input_range(input_range: Any) -> tuple[float, float] | None:
    """``input_range`` as a ``(low, high)`` pair of floats, or ``None`` (unbounded inputs).

    Raises:
        ValueError: If it is neither ``None`` nor two finite numbers with low < high.
    """
    if input_range is None:
        return None
    if isinstance(input_range, (str, bytes)) or not isinstance(input_range, Iterable):
        raise ValueError(f"input_range must be (low, high) or None, got {input_range!r}")
    pair = tuple(input_range)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in pair):
        raise ValueError(f"input_range must be (low, high) or None, got {input_range!r}")
    low, high = float(pair[0]), float(pair[1])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"input_range must be two finite numbers with low < high, got {input_range!r}")
    return low, high


@dataclasses.dataclass(frozen=True)
class InputChecks:
    """What every input batch of a model must satisfy, checked with NumPy on the host.

    Plain data (no model, no tensors), so that it pickles into the worker processes of
    a ``keras.utils.PyDataset`` and costs one pass over the batch: a few milliseconds
    for a batch of 256 CIFAR-10 images, against a train step of far more.

    Attributes:
        num_classes: Labels must be integers in [0, num_classes).
        example_shape: The per-example input shape (``None`` entries match any size),
            or ``None`` when not known yet.
        input_range: The model's ``(low, high)`` input range, or ``None`` for unbounded inputs.
        attack_bounds: The training attack's ``bounds``, or ``None``.
    """

    num_classes: int
    example_shape: tuple | None = None
    input_range: tuple[float, float] | None = DEFAULT_INPUT_RANGE
    attack_bounds: tuple[float, float] | None = None

    def check_arrays(self, x: Tensor, y: Tensor | None = None, *, name: str = "x") -> None:
        """Checks inputs ``x`` (a batch or a whole array) and, if given, their labels ``y``.

        Args:
            x: Inputs, batch first.
            y: Integer class indices, shape (batch,) or (batch, 1); ``None`` to skip.
            name: What ``x`` is, for the messages (e.g. ``"validation_data"``).

        Raises:
            ValueError: On the wrong rank or per-example shape, a non-numeric or integer
                dtype, non-finite values, values outside the attack's bounds or the
                input range, labels that are not integers in [0, C), or a label count
                that does not match.
        """
        array = np.asarray(ops.convert_to_numpy(x))
        if self.example_shape is not None:
            expected = tuple(self.example_shape)
            got = array.shape[1:]
            if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
                raise ValueError(
                    f"{name} has per-example shape {got} but the model expects {expected} "
                    f"(batch first: (batch, {', '.join(map(str, expected))}))"
                )
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.integer):
            # Refused whatever the input range: 8-bit images given as they are stored would
            # train (and be attacked) in 0..255, with losses a hundred times too large.
            raise ValueError(
                f"{name} has integer dtype {array.dtype}; the model takes float inputs: convert to float "
                "in [0, 1], e.g. x / 255 for 8-bit images"
            )
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(f"{name} holds {int((~finite).sum())} non-finite value(s) (NaN or inf)")
        if array.size:
            low, high = float(array.min()), float(array.max())
            if self.attack_bounds is not None and (low < self.attack_bounds[0] or high > self.attack_bounds[1]):
                raise ValueError(
                    f"{name} has values in [{low:g}, {high:g}] but the attack's bounds are "
                    f"{self.attack_bounds}; rescale the inputs (e.g. images to [0, 1]) or pass "
                    "bounds=None for unbounded inputs"
                )
            if self.input_range is not None and (low < self.input_range[0] or high > self.input_range[1]):
                raise ValueError(
                    f"{name} has values in [{low:g}, {high:g}] outside the model's input_range "
                    f"{self.input_range}; scale images to [0, 1] (e.g. x / 255), or compile with "
                    "input_range=None if the inputs are not bounded (nothing is clipped)"
                )
        if y is not None:
            self.check_labels(y, count=array.shape[0] if array.ndim else None, name=name)

    def check_labels(self, y: Tensor, *, count: int | None = None, name: str = "x") -> None:
        """Checks labels: integer class indices in [0, C), shape (batch,) or (batch, 1).

        Args:
            y: The labels.
            count: The number of inputs they label, if known.
            name: What the labelled inputs are, for the messages.

        Raises:
            ValueError: On another shape, a count that differs from ``count``, a dtype
                that is not numeric (strings), non-integer values or values outside [0, C).
        """
        where = "" if name == "x" else f"{name}: "  # which batch or which data, when it is not plain x
        labels = np.asarray(ops.convert_to_numpy(y))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(
                f"{where}labels must be integer class indices of shape (batch,), got shape {labels.shape}"
            )
        if count is not None and labels.shape[0] != count:
            raise ValueError(f"{where}{labels.shape[0]} labels for {count} inputs")
        if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number):
            raise ValueError(
                f"{where}labels must be integer class indices in [0, {self.num_classes}), got dtype {labels.dtype}"
                + (" (strings: map class names to indices first)" if labels.dtype.kind in "USO" else "")
            )
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
                raise ValueError(f"{where}labels must be integer class indices, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{where}labels must lie in [0, {self.num_classes}), found values in [{labels.min()}, {labels.max()}]"
            )

    def check_batch(self, batch: Any, *, name: str, labels: bool) -> None:
        """Checks one batch as a data pipeline yields it: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)``.

        Args:
            batch: The batch.
            name: Where it comes from, for the messages.
            labels: Whether the batch must carry labels (fit, evaluate) or not (predict:
                labels, if any, are not read and not checked).

        Raises:
            ValueError: As
                [`check_arrays`][aatk.model.InputChecks.check_arrays], on a
                missing label when ``labels`` is true, or on sample weights.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        if not labels:
            self.check_arrays(x, name=name)
            return
        if sample_weight is not None:
            raise ValueError(f"{name} yields sample weights; ThreeWayModel does not support sample weights")
        if y is None:
            raise ValueError(f"{name} yields inputs without labels; expected (x, y) batches with integer labels")
        self.check_arrays(x, y, name=name)


def _checked_generator(first: Any, rest: Iterator, checks: InputChecks, *, name: str, labels: bool) -> Iterator:
    """A generator of ``first`` and then ``rest``, every batch checked on the host.

    ``first`` (the batch a caller drew already) is checked now, so that a wrong data
    source fails with a ValueError before any step; the others as they are drawn.
    """
    checks.check_batch(first, name=f"{name} (batch 1)", labels=labels)

    def batches():
        yield first
        for number, batch in enumerate(rest, start=2):
            checks.check_batch(batch, name=f"{name} (batch {number})", labels=labels)
            yield batch

    return batches()


class _CheckedPyDataset(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` whose batches are checked on the host as they are built.

    The check runs where the batch is built (a worker thread or process, if the dataset
    has workers) and its error reaches ``fit`` as the dataset's own errors do.
    """

    def __init__(self, dataset: keras.utils.PyDataset, checks: InputChecks, *, name: str, labels: bool) -> None:
        super().__init__(
            workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing, max_queue_size=dataset.max_queue_size
        )
        self.dataset = dataset
        self.checks = checks
        self.name = name
        self.labels = labels

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_batches(self) -> int | None:
        return self.dataset.num_batches

    def __getitem__(self, index: int) -> Any:
        batch = self.dataset[index]
        self.checks.check_batch(batch, name=f"{self.name} (batch index {index})", labels=self.labels)
        return batch

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


def _is_tf_dataset(data: Any) -> bool:
    return hasattr(data, "take") and hasattr(data, "element_spec")


def _shared_weighted_layers(encoder_r: keras.layers.Layer, encoder_n: keras.layers.Layer) -> list[str]:
    """Names of the layers with weights that both encoders contain (the same object)."""
    in_r = {id(layer) for layer in encoder_r._flatten_layers(include_self=True, recursive=True)}
    return [
        layer.name
        for layer in encoder_n._flatten_layers(include_self=True, recursive=True)
        if id(layer) in in_r and layer.weights
    ]


@keras.saving.register_keras_serializable(package="aatk")
class ThreeWayModel(keras.Model):
    """A robust and a non-robust encoder with a shared head, classified three ways.

    Paper: Section 2.2, Eq. 4–5; Appendix B.1 (the head: Linear(2H → H), ReLU, Linear(H → C)).

    Args:
        encoder_r: Keras layer or model mapping a batch of inputs to vectors z_r (batch, H_r).
        encoder_n: Keras layer or model mapping a batch of inputs to vectors z_n (batch, H_n).
        num_classes: Number of classes C ≥ 2.
        hidden: Width of the head's hidden layer; defaults to the encoders' width H
            (both encoders must then have the same width).
        init: Initialisation of the head: ``"keras"`` (Glorot-uniform kernels, zero
            biases) or ``"pytorch"`` (``nn.Linear``'s default, kernel and bias
            U(±1/√fan_in), as the paper's PyTorch head had; [`aatk.initializers`][aatk.initializers]).
            The encoders are initialised by whoever builds them.
        **kwargs: Passed to ``keras.Model`` (e.g. ``name``).

    Raises:
        ValueError: If an encoder is not a Keras layer or does not output vectors,
            if ``num_classes`` < 2, if ``hidden`` is not a positive integer, or if
            ``init`` is unknown.

    Examples:
        >>> enc = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu")])
        >>> model = ThreeWayModel(enc(), enc(), num_classes=3)
        >>> tuple(model(np.zeros((2, 4), "float32"), way="robust").shape)
        (2, 3)
    """

    def __init__(
        self,
        encoder_r: keras.layers.Layer,
        encoder_n: keras.layers.Layer,
        num_classes: int,
        *,
        hidden: int | None = None,
        init: str = "keras",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init = check_init(init)
        for name, encoder in (("encoder_r", encoder_r), ("encoder_n", encoder_n)):
            if not isinstance(encoder, keras.layers.Layer):
                raise ValueError(f"{name} must be a Keras layer or model, got {type(encoder).__name__}")
        if encoder_r is encoder_n:
            raise ValueError("encoder_r and encoder_n must be two different layers (separate weights)")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 1):
            raise ValueError(f"hidden must be a positive integer or None, got {hidden!r}")
        self.encoder_r = encoder_r
        self.encoder_n = encoder_n
        self.num_classes = int(num_classes)
        self.hidden = None if hidden is None else int(hidden)
        self.width_r: int | None = None
        self.width_n: int | None = None
        self.input_example_shape: tuple | None = None
        self.method: str | list[str] = "st"
        self.terms: tuple[str, ...] = ("st",)
        self.term_weights: dict[str, float] = {"st": 1.0}
        self.attack: PGD | None = None
        self.input_range: tuple[float, float] | None = DEFAULT_INPUT_RANGE
        # Every metric is created here: Keras locks a model's state once it is built.
        self._trackers = {"loss": keras.metrics.Mean(name="loss")}
        for term in TERMS + ONE_WAY_TERMS:
            self._trackers[f"l_{term}"] = keras.metrics.Mean(name=f"l_{term}")
        for way in WAYS:
            short = _SHORT[way]
            self._trackers[f"acc_{short}"] = keras.metrics.SparseCategoricalAccuracy(name=f"acc_{short}")
        for short in ("s", "n"):
            self._trackers[f"kept_{short}"] = keras.metrics.Mean(name=f"kept_{short}")
        self._trackers["attack_eps"] = keras.metrics.Mean(name="attack_eps")
        self.attack_warmup_steps = 0
        self.keep = "misclassified"
        self._active_metrics: tuple[str, ...] = ("loss", "l_st", "acc_s", "acc_r", "acc_n")
        # The training attack's random starts draw from the model's own generator: its state
        # is then part of the model's (checkpointed, and carried through a JAX train step).
        self.attack_seed_generator = keras.random.SeedGenerator(0, name="attack_seed_generator")
        declared = [s for s in map(_declared_input_shape, (encoder_r, encoder_n)) if s is not None]
        if len(declared) == 2 and declared[0] != declared[1]:
            raise ValueError(
                f"the encoders expect different inputs: encoder_r {declared[0]}, encoder_n {declared[1]}"
            )
        if declared:
            self.build((None, *declared[0]))

    # --- structure -----------------------------------------------------------------------

    def build(self, input_shape) -> None:
        input_shape = tuple(input_shape)
        widths = []
        for name, encoder in (("encoder_r", self.encoder_r), ("encoder_n", self.encoder_n)):
            output_shape = _encoder_output_shape(encoder, input_shape=input_shape)
            if len(output_shape) != 2 or output_shape[1] is None:
                raise ValueError(
                    f"{name} must output vectors of shape (batch, H), got {output_shape}; "
                    "end it with Flatten() or GlobalAveragePooling2D()"
                )
            widths.append(int(output_shape[1]))
        self.width_r, self.width_n = widths
        if self.hidden is None and self.width_r != self.width_n:
            raise ValueError(
                f"the encoders' widths differ ({self.width_r} and {self.width_n}); pass hidden= to size the head"
            )
        hidden = self.hidden or self.width_r
        self.input_example_shape = input_shape[1:]
        # The head computes in the model's own dtype policy (saved with it), not in whatever
        # global policy is set when a saved model is loaded.
        self.head_hidden = layers.Dense(
            hidden, activation="relu", name="head_hidden", dtype=self.dtype_policy,
            **dense_kwargs(self.init, fan_in=self.width_r + self.width_n),
        )
        self.head_logits = layers.Dense(
            self.num_classes, name="head_logits", dtype=self.dtype_policy, **dense_kwargs(self.init, fan_in=hidden)
        )
        for encoder in (self.encoder_r, self.encoder_n):
            if not encoder.built:
                encoder.build(input_shape)
        self.head_hidden.build((None, self.width_r + self.width_n))
        self.head_logits.build((None, hidden))
        self.built = True
        shared = _shared_weighted_layers(self.encoder_r, self.encoder_n)
        if shared:
            # Not an error: tying some weights on purpose is a legitimate experiment.
            warnings.warn(
                f"encoder_r and encoder_n share the layer(s) {shared}: their weights are the same, so the "
                "robust and non-robust representations are not separate (each encoder should have its own layers)",
                UserWarning,
                stacklevel=2,
            )

    def head(self, z_r, z_n):
        """The shared classifier f on [z_r, z_n] (Appendix B.1).

        The logits are float32 whatever the layers compute in (e.g. bfloat16 under a
        mixed-precision policy), so that losses and attack gradients keep their precision.
        """
        logits = self.head_logits(self.head_hidden(ops.concatenate([z_r, z_n], axis=-1)))
        return ops.cast(logits, "float32")

    def _zeros(self, reference, width: int):
        # do(z) = 0: a constant of the representation's shape, independent of x.
        return ops.zeros((ops.shape(reference)[0], width), dtype=reference.dtype)

    @property
    def batch_dependent(self) -> bool:
        """Whether an encoder mixes the examples of a batch in training mode (BatchNorm)."""
        return any(
            isinstance(layer, layers.BatchNormalization)
            for encoder in (self.encoder_r, self.encoder_n)
            for layer in encoder._flatten_layers(include_self=True, recursive=True)
        )

    def many_way_logits(self, requests: Iterable[tuple[Tensor, Iterable[str]]], *, training: bool | None = None) -> list:
        """[`way_logits`][aatk.model.ThreeWayModel.way_logits] for several batches, each encoder and the head run once on all of them.

        One large batch through each network costs less than several small ones (fewer
        kernel launches, better-filled matrix products). Fusing is exact when every
        example's output depends on that example alone: always in inference mode, and in
        training mode unless an encoder normalises over the batch (BatchNorm), where the
        batches run one by one as the paper's training does.

        Args:
            requests: ``(inputs, ways)`` pairs.
            training: Training mode of the encoders.

        Returns:
            One dict from way name to logits per request, in order.
        """
        requests = [(x, tuple(check_way(w) for w in ways)) for x, ways in requests]
        if len(requests) == 1 or (training and self.batch_dependent):
            return [self.way_logits(x, ways=ways, training=training) for x, ways in requests]

        def run(encoder, wanted):
            chosen = [i for i, (_, ways) in enumerate(requests) if wanted & set(ways)]
            if not chosen:
                return {}
            inputs = [requests[i][0] for i in chosen]
            outputs = encoder(ops.concatenate(inputs, axis=0) if len(inputs) > 1 else inputs[0], training=training)
            return dict(zip(chosen, _split(outputs, inputs)))

        z_r = run(self.encoder_r, {"standard", "robust"})
        z_n = run(self.encoder_n, {"standard", "non_robust"})
        head_r, head_n, keys = [], [], []
        for i, (_, ways) in enumerate(requests):
            for way in ways:  # Eq. 5a–5c: the zeroed half is a constant
                head_r.append(self._zeros(z_n[i], self.width_r) if way == "non_robust" else z_r[i])
                head_n.append(self._zeros(z_r[i], self.width_n) if way == "robust" else z_n[i])
                keys.append((i, way))
        logits = self.head(ops.concatenate(head_r, axis=0), ops.concatenate(head_n, axis=0))
        out: list[dict] = [{} for _ in requests]
        for (i, way), part in zip(keys, _split(logits, head_r)):
            out[i][way] = part
        return out

    def way_logits(self, x: Tensor, *, ways: Iterable[str] = WAYS, training: bool | None = None) -> dict:
        """Logits of several ways on the same inputs, running each encoder at most once.

        Paper: Eq. 5a–5c.

        Args:
            x: A batch of inputs.
            ways: Which of [`WAYS`][aatk.ways.WAYS] to compute.
            training: Training mode of the encoders (dropout, BatchNorm).

        Returns:
            A dict from way name to logits (batch, C).
        """
        ways = tuple(check_way(w) for w in ways)
        z_r = self.encoder_r(x, training=training) if {"standard", "robust"} & set(ways) else None
        z_n = self.encoder_n(x, training=training) if {"standard", "non_robust"} & set(ways) else None
        logits = {}
        if "standard" in ways:
            logits["standard"] = self.head(z_r, z_n)  # Eq. 5a
        if "robust" in ways:
            logits["robust"] = self.head(z_r, self._zeros(z_r, self.width_n))  # Eq. 5b
        if "non_robust" in ways:
            logits["non_robust"] = self.head(self._zeros(z_n, self.width_r), z_n)  # Eq. 5c
        return logits

    def call(self, inputs, training=None, way: str = "standard"):
        """Logits of one way (the standard way by default), shape (batch, C)."""
        return self.way_logits(inputs, ways=(way,), training=training)[way]

    def representations(self, x, training=None) -> tuple:
        """(z_r, z_n) for a batch of inputs (Eq. 4)."""
        return self.encoder_r(x, training=training), self.encoder_n(x, training=training)

    # --- compile / fit -------------------------------------------------------------------

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer = "sgd",
        *,
        method: str | Iterable[str] = "aat++",
        attack: PGD | None = None,
        attack_warmup_steps: int = 0,
        keep: str = "misclassified",
        input_range: tuple[float, float] | None = DEFAULT_INPUT_RANGE,
        **kwargs: Any,
    ) -> None:
        """Configures training with a method (a set of loss terms) and the training attack.

        Args:
            optimizer: Any Keras optimizer (the paper: SGD with momentum 0.9, Table 5).
            method: ``"st"`` (Eq. 6), ``"aat"`` (Eq. 8), ``"aat++"`` (Eq. 11), or a
                subset of ``("st", "as", "ar", "an")``.
            attack: The PGD used to craft x_adv^s, x_adv^r and x_adv^n; required
                whenever the method has an adversarial term.
            attack_warmup_steps: Grow the training attack's ε (and step size) linearly
                from ε/N to ε over the first N optimizer steps (0: full ε from the start),
                a curriculum often used for large ε. Not in the paper, and off in the
                shipped configurations: it did not prevent the collapse of AAT++ at
                Table 5's learning rate, ``keep="flipped"`` did (``docs/results.md``).
                The current ε is logged as ``attack_eps``.
            keep: Which adversarial examples of the standard and non-robust ways make
                pseudo-pairs (L_AS, L_AN): ``"misclassified"``, every x_adv with ŷ ≠ y
                (Algorithm 1), or ``"flipped"``, only those whose clean input the
                attacked way classified correctly
                ([`aatk.objectives.adversarial_labels`][aatk.objectives.adversarial_labels]).
            input_range: The ``(low, high)`` range every input of ``fit``, ``evaluate``,
                ``predict`` and [`aatk.evaluate`][aatk.evaluation.evaluate] must lie in; the default (0, 1) is
                that of images scaled by 1/255, and catches unscaled images whether or
                not an attack is compiled. ``None`` accepts unbounded inputs (e.g. the
                Gaussian toy of Appendix A.2). Inputs of an integer dtype are refused
                either way, and inputs must also lie within the attack's ``bounds``.
                Nothing is ever clipped. Saved with the model.
            **kwargs: Passed to ``keras.Model.compile`` (``steps_per_execution``,
                ``run_eagerly``, ``jit_compile``...). ``loss`` and ``metrics`` are
                not accepted: the objectives and metrics come from ``method``.

        Raises:
            ValueError: On an unknown method (``None`` and weighted terms included), a
                missing or wrong attack, a bad ``input_range``, or a ``loss``.
        """
        for forbidden in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            if kwargs.get(forbidden) is not None:
                raise ValueError(
                    f"ThreeWayModel.compile does not take {forbidden}=: the objective is set by method= "
                    "(see aatk.objectives) and the metrics are built in"
                )
            kwargs.pop(forbidden, None)
        weights = resolve_weights(method)
        terms = tuple(weights)
        if {"as", "ar", "an"} & set(terms) and attack is None:
            raise ValueError(f"method {method!r} has adversarial terms and needs attack=aatk.PGD(...)")
        if attack is not None and not isinstance(attack, PGD):
            raise ValueError(f"attack must be an aatk.PGD, got {type(attack).__name__}")
        if isinstance(attack_warmup_steps, bool) or not isinstance(attack_warmup_steps, (int, np.integer)) or attack_warmup_steps < 0:
            raise ValueError(f"attack_warmup_steps must be an integer >= 0, got {attack_warmup_steps!r}")
        if keep not in KEEP_RULES:
            raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
        input_range = check_input_range(input_range)
        super().compile(optimizer=optimizer, **kwargs)
        self.input_range = input_range
        self.attack_warmup_steps = int(attack_warmup_steps)
        self.keep = keep
        self.method = method if isinstance(method, str) else list(terms)
        self.terms = terms
        self.term_weights = weights
        self.attack = attack
        if attack is not None and attack.random_start:
            # Training draws the random starts the attack itself would draw next.
            # A copy: under JAX, fit donates the model's state buffers to the compiled step.
            self.attack_seed_generator.state.assign(ops.convert_to_numpy(attack.variables[0].value))
        self._active_metrics = (
            ("loss",)
            + tuple(f"l_{term}" for term in terms)
            + tuple(f"acc_{_SHORT[way]}" for way in WAYS)
            + (("kept_s",) if "as" in terms else ())
            + (("kept_n",) if "an" in terms else ())
            + (("attack_eps",) if self.attack_warmup_steps and {"as", "ar", "an"} & set(terms) else ())
        )

    @property
    def metrics(self) -> list:
        """The metrics shown by ``fit``: total loss, each active loss term, the clean
        accuracy of each way, and the fraction of adversarial examples kept (ŷ ≠ y).

        A train step logs the clean accuracy of the ways its clean terms compute (all
        three for ST, AAT and AAT++; none for one-way AT); validation logs all three."""
        return [self._trackers[name] for name in self._active_metrics]

    def get_compile_config(self) -> dict:
        config = super().get_compile_config()
        if config:
            config = dict(config)
            config["method"] = self.method
            config["attack"] = None if self.attack is None else keras.saving.serialize_keras_object(self.attack)
            config["attack_warmup_steps"] = self.attack_warmup_steps
            config["keep"] = self.keep
            config["input_range"] = None if self.input_range is None else list(self.input_range)
        return config

    def compile_from_config(self, config: dict) -> None:
        config = dict(config)
        method = config.pop("method", ["st"])
        attack = config.pop("attack", None)
        attack = None if attack is None else keras.saving.deserialize_keras_object(attack)
        attack_warmup_steps = config.pop("attack_warmup_steps", 0)
        keep = config.pop("keep", "misclassified")
        # Models saved before input_range existed were all trained on images in [0, 1].
        input_range = config.pop("input_range", DEFAULT_INPUT_RANGE)
        optimizer = keras.saving.deserialize_keras_object(config.pop("optimizer", "sgd"))
        for unused in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            config.pop(unused, None)
        self.compile(
            optimizer=optimizer, method=method, attack=attack, attack_warmup_steps=attack_warmup_steps, keep=keep,
            input_range=input_range, **config,
        )
        if self.built:
            with backend.variable_scope(self):
                self.optimizer.build(self.trainable_variables)

    def _adversarial_examples(self, x, y, *, eps_scale=None) -> dict:
        """Algorithm 1's attacks, in inference mode; every output is a constant.

        The attacks on the standard, robust and non-robust ways run as one PGD on the
        batch repeated once per attacked way: in inference mode every example's loss
        depends on that example alone, so the gradient of the summed loss is each
        attack's own gradient, and the networks run once per step instead of once per way.
        """
        attacked = [way for way, term in (("standard", "as"), ("robust", "ar"), ("non_robust", "an")) if term in self.terms]
        if not attacked:
            return {}
        copies = [x] * len(attacked)

        def loss_fn(points):
            slices = _split(points, copies)
            logits = self.many_way_logits([(part, (way,)) for part, way in zip(slices, attacked)], training=False)
            losses = [cross_entropy(result[way], y) for result, way in zip(logits, attacked)]
            return ops.concatenate(losses, axis=0) if len(losses) > 1 else losses[0]

        x_all = ops.concatenate(copies, axis=0) if len(copies) > 1 else x
        x_adv_all = self.attack.perturb(
            loss_fn, x_all, seed_generator=self.attack_seed_generator, eps_scale=eps_scale
        )
        x_adv = dict(zip(attacked, _split(x_adv_all, copies)))
        labelled = [way for way in attacked if way != "robust"]  # ŷ_s, ŷ_n and the masks of Eq. 7 and Eq. 10
        requests = [(x_adv[way], (way,)) for way in labelled]
        if labelled and self.keep == "flipped":  # the clean predictions of the same ways, for the mask
            requests.append((x, tuple(labelled)))
        logits = self.many_way_logits(requests, training=False) if labelled else []
        clean = logits[len(labelled)] if self.keep == "flipped" and labelled else {}
        adversarial = {way: {"x": x_adv[way]} for way in attacked}
        for way, result in zip(labelled, logits):
            predicted, kept = adversarial_labels(result[way], y, clean_logits=clean.get(way))
            adversarial[way].update(labels=predicted, kept=kept)
        return adversarial

    def _attack_eps_scale(self):
        """min(1, (t + 1) / N) at optimizer step t during the attack's ε warm-up, else None."""
        if not self.attack_warmup_steps:
            return None
        step = ops.cast(self.optimizer.iterations, "float32")
        return ops.minimum(1.0, (step + 1.0) / float(self.attack_warmup_steps))

    def _trained_variables(self) -> list:
        """The weights the method's terms reach: a one-way baseline leaves one encoder out.

        Under JAX an unreached weight gets a zero gradient rather than none, and momentum
        or weight decay would still move it; so the optimizer is given only these.
        """
        uses_r = bool(set(self.terms) - {"st_n", "an"})
        uses_n = bool(set(self.terms) - {"st_r", "ar"})
        excluded = set()
        if not uses_r:
            excluded |= {id(v) for v in self.encoder_r.trainable_variables}
        if not uses_n:
            excluded |= {id(v) for v in self.encoder_n.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in excluded]

    def _objective(self, x, y, adversarial: dict, training: bool) -> tuple:
        """Mean over the batch of the sum of the active terms; also the clean logits.

        The clean batch and every adversarial batch go through the networks together
        (see [`many_way_logits`][aatk.model.ThreeWayModel.many_way_logits]). The clean
        batch goes only through the ways a clean term needs: a one-way AT baseline
        trains on adversarial examples alone, and its clean accuracies come from
        validation instead of an extra forward pass.
        """
        clean_ways = WAYS if "st" in self.terms else tuple(
            way for way, term in (("robust", "st_r"), ("non_robust", "st_n")) if term in self.terms
        )
        requests = {"clean": (x, clean_ways)} if clean_ways else {}
        if "as" in self.terms:
            requests["as"] = (adversarial["standard"]["x"], ("robust", "non_robust"))
        if "ar" in self.terms:
            requests["ar"] = (adversarial["robust"]["x"], ("robust",))
        if "an" in self.terms:
            requests["an"] = (adversarial["non_robust"]["x"], ("non_robust",))
        logits = dict(zip(requests, self.many_way_logits(requests.values(), training=training)))
        clean = logits.get("clean", {})
        per_example = {}
        if "st" in self.terms:
            per_example["st"] = L_ST(clean["standard"], clean["robust"], clean["non_robust"], y)
        if "st_r" in self.terms:
            per_example["st_r"] = L_one_way(clean["robust"], y)
        if "st_n" in self.terms:
            per_example["st_n"] = L_one_way(clean["non_robust"], y)
        if "as" in self.terms:
            adv = adversarial["standard"]
            per_example["as"] = L_AS(logits["as"]["robust"], logits["as"]["non_robust"], y, adv["labels"], adv["kept"])
        if "ar" in self.terms:
            per_example["ar"] = L_AR(logits["ar"]["robust"], y)
        if "an" in self.terms:
            adv = adversarial["non_robust"]
            per_example["an"] = L_AN(logits["an"]["non_robust"], adv["labels"], adv["kept"])
        terms = {name: ops.mean(value) for name, value in per_example.items()}
        total = sum(self.term_weights[name] * value for name, value in terms.items())
        if training and self.losses:  # weight regularisers of the encoders, if any
            total = total + ops.sum(ops.stack(self.losses))
        return total, {"terms": terms, "clean": clean}

    def _labels(self, y):
        y = ops.convert_to_tensor(y)
        if len(y.shape) == 2 and y.shape[-1] == 1:
            y = ops.squeeze(y, axis=-1)
        return ops.cast(y, "int32")

    def train_step(self, *args):
        """Algorithm 1 for one batch; ``args`` is what the backend's trainer passes
        (``data``, or ``state, data`` under JAX: see [`aatk.backend.stateful_step`][aatk.backend])."""
        return backend.stateful_step(self, self._stateful_train_step, *args)

    def test_step(self, *args):
        """Clean validation: L_ST and the accuracy of each way (no attack; see aatk.evaluate)."""
        return backend.stateful_step(self, self._stateful_test_step, *args)

    def _stateful_train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("ThreeWayModel does not support sample weights")
        y = self._labels(y)
        # A second line of defence for inputs that are neither arrays nor datasets (see fit).
        backend.check_batch(
            x, y, num_classes=self.num_classes, bounds=self.attack.bounds if self.attack else None,
            input_range=self.input_range,
        )
        eps_scale = self._attack_eps_scale()  # before the step: the rate of this step's attack
        adversarial = self._adversarial_examples(x, y, eps_scale=eps_scale)
        variables = self._trained_variables()
        loss, aux, gradients = backend.value_and_weight_gradients(
            lambda: self._objective(x, y, adversarial, training=True), variables
        )
        self.optimizer.apply(gradients, variables)
        return self._update_metrics(loss, aux, y, adversarial, eps_scale=eps_scale)

    def _stateful_test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y = self._labels(y)
        clean = self.way_logits(x, training=False)
        l_st = ops.mean(L_ST(clean["standard"], clean["robust"], clean["non_robust"], y))
        self._trackers["loss"].update_state(l_st)
        logs = {"loss": self._trackers["loss"].result()}
        if "l_st" in self._active_metrics:
            self._trackers["l_st"].update_state(l_st)
            logs["l_st"] = self._trackers["l_st"].result()
        for way in WAYS:
            tracker = self._trackers[f"acc_{_SHORT[way]}"]
            tracker.update_state(y, clean[way])
            logs[tracker.name] = tracker.result()
        return logs

    def _update_metrics(self, loss, aux, y, adversarial, *, eps_scale=None) -> dict:
        """Updates the metrics this step measured and returns their values (fit's logs)."""
        updated = [self._trackers["loss"]]
        updated[0].update_state(loss)
        for name, value in aux["terms"].items():
            updated.append(self._trackers[f"l_{name}"])
            updated[-1].update_state(value)
        for way, logits in aux["clean"].items():  # the clean ways the objective computed
            updated.append(self._trackers[f"acc_{_SHORT[way]}"])
            updated[-1].update_state(y, logits)
        if "kept_s" in self._active_metrics:
            updated.append(self._trackers["kept_s"])
            updated[-1].update_state(ops.mean(adversarial["standard"]["kept"]))
        if "kept_n" in self._active_metrics:
            updated.append(self._trackers["kept_n"])
            updated[-1].update_state(ops.mean(adversarial["non_robust"]["kept"]))
        if "attack_eps" in self._active_metrics:
            updated.append(self._trackers["attack_eps"])
            updated[-1].update_state(self.attack.eps * eps_scale)
        return {m.name: m.result() for m in self.metrics if any(m is u for u in updated)}

    # --- input validation ----------------------------------------------------------------

    def input_checks(self) -> InputChecks:
        """What every input batch must satisfy now: shape, classes, input range, attack bounds."""
        return InputChecks(
            num_classes=self.num_classes,
            example_shape=None if self.input_example_shape is None else tuple(self.input_example_shape),
            input_range=self.input_range,
            attack_bounds=self.attack.bounds if self.attack is not None else None,
        )

    def validate_inputs(self, x: Tensor, y: Tensor | None = None, *, name: str = "x") -> None:
        """Checks a batch (or a whole array) before it reaches an attack or a train step.

        Args:
            x: Inputs, batch first.
            y: Their labels, or ``None`` to check the inputs alone.
            name: What ``x`` is, for the messages.

        Raises:
            ValueError: On the wrong rank or per-example shape (e.g. channel count),
                an integer or non-numeric dtype, non-finite values, values outside the
                attack's bounds or the model's ``input_range`` (see
                [`compile`][aatk.model.ThreeWayModel.compile]), labels that are not integers
                in [0, C), or a label count that does not match.
        """
        self.input_checks().check_arrays(x, y, name=name)

    def _checked_data(self, x: Any, y: Any, *, name: str, labels: bool) -> Any:
        """Validates the data of fit, evaluate or predict before the first step.

        Arrays are checked whole. A ``tf.data.Dataset`` is checked by its first batch
        now and every batch in its input pipeline. A Python generator and a
        ``keras.utils.PyDataset`` are checked batch by batch on the host, the first
        one now: under JAX nothing inside the compiled step can stop it.

        Args:
            x: What was passed as ``x`` (or the inputs of ``validation_data``).
            y: What was passed as ``y``, if anything.
            name: What the data is, for the messages.
            labels: Whether labels are required and checked (fit, evaluate) or not (predict).

        Returns:
            ``x``, or a checking wrapper of it for datasets, generators and PyDatasets.

        Raises:
            ValueError: As
                [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs],
                for arrays and first batches.
        """
        if x is None:
            return x
        if _is_tf_dataset(x):
            spec = x.element_spec
            self._build_for_inputs((spec[0] if isinstance(spec, tuple) else spec).shape)
            checks = self.input_checks()
            for batch in x.take(1):  # the first batch eagerly, with the friendliest messages
                checks.check_batch(batch, name=name, labels=labels)
            return backend.checked_dataset(
                x, num_classes=self.num_classes, bounds=checks.attack_bounds, input_range=checks.input_range,
                labels=labels,
            )
        if isinstance(x, types.GeneratorType):
            first = next(x, None)
            if first is None:
                return x  # empty: Keras reports it
            self._build_for_inputs(np.shape(keras.utils.unpack_x_y_sample_weight(first)[0]))
            return _checked_generator(first, x, self.input_checks(), name=name, labels=labels)
        if isinstance(x, keras.utils.PyDataset):
            if x.num_batches == 0:
                return x  # empty: Keras reports it
            first = x[0]
            self._build_for_inputs(np.shape(keras.utils.unpack_x_y_sample_weight(first)[0]))
            checks = self.input_checks()
            checks.check_batch(first, name=f"{name} (batch index 0)", labels=labels)
            return _CheckedPyDataset(x, checks, name=name, labels=labels)
        if isinstance(x, (np.ndarray, list, tuple)) or hasattr(x, "shape"):
            if labels and y is None:
                raise ValueError(f"{name} comes without labels; pass y= (integer class indices) as well")
            self._build_for_inputs(np.shape(x))
            self.input_checks().check_arrays(x, y if labels else None, name=name)
        return x

    def _build_for_inputs(self, shape: Any) -> None:
        """Builds the model, if it is not built, for inputs of ``shape`` (batch first)."""
        shape = tuple(shape)
        if not self.built and len(shape) >= 2:
            self.build((None, *shape[1:]))

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` after checking the data; see [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs].

        Arrays are checked whole before training starts. A ``tf.data.Dataset`` is
        checked by its first batch before training starts, and every later batch in
        the input pipeline (which XLA cannot compile away). A Python generator and a
        ``keras.utils.PyDataset`` are checked by their first batch before training
        starts and every later batch on the host as it is drawn, under both backends.
        The TensorFlow train step checks its batch again for other kinds of input.
        Nothing is clipped: a bad batch stops training with an error.

        Raises:
            ValueError: If not compiled; before the first step, as
                [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs] for arrays
                (and ``validation_data``) and the first batch of anything else; on a later
                bad batch of a generator or PyDataset (under TensorFlow, Keras draws those
                in a ``tf.data`` pipeline, which re-raises the error as a
                ``tf.errors.InvalidArgumentError`` with the same message, as it does for
                the checks of a ``tf.data.Dataset``'s later batches).
        """
        if not self.compiled:
            raise ValueError("call compile(optimizer=..., method=..., attack=...) before fit")
        if hasattr(x, "element_spec"):
            kwargs.setdefault("shuffle", False)  # Keras ignores it for a dataset (and warns): it shuffles itself
        x = self._checked_data(x, y, name="x", labels=True)  # builds the model from the data if need be
        self._build_optimizer_for_every_weight()
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and len(validation) >= 2:
            self._checked_data(validation[0], validation[1], name="validation_data", labels=True)
        elif validation is not None:
            kwargs["validation_data"] = self._checked_data(validation, None, name="validation_data", labels=True)
        # A bad batch can also stop training later, from the host-side checks (see _checked_data).
        with backend.state_kept_on_error(self):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.evaluate`` (clean L_ST and accuracies) after checking the data as [`fit`][aatk.model.ThreeWayModel.fit] does.

        Raises:
            ValueError: As
                [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs],
                before the first batch is evaluated (on missing labels too); a
                later bad batch stops evaluation as in
                [`fit`][aatk.model.ThreeWayModel.fit].
        """
        if kwargs.get("_use_cached_eval_dataset"):  # fit's validation data, checked by fit
            return super().evaluate(x, y, *args, **kwargs)
        x = self._checked_data(x, y, name="x", labels=True)
        with backend.state_kept_on_error(self):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """``keras.Model.predict`` (logits of the standard way) after checking the inputs.

        Labels in the data, if any, are not read. See
        [`fit`][aatk.model.ThreeWayModel.fit] for how each kind of data is
        checked.

        Raises:
            ValueError: As
                [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs]
                for the inputs, before the first batch; a later bad batch stops
                prediction as in [`fit`][aatk.model.ThreeWayModel.fit].
        """
        x = self._checked_data(x, None, name="x", labels=False)
        with backend.state_kept_on_error(self):
            return super().predict(x, *args, **kwargs)

    def _build_optimizer_for_every_weight(self) -> None:
        # Build the optimizer for every weight now: a one-way baseline updates only some of
        # them, and an optimizer built from that subset would not match the one rebuilt on loading.
        if not self.optimizer.built:
            with backend.variable_scope(self):
                self.optimizer.build(self.trainable_variables)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        """``keras.Model.train_on_batch`` after checking the batch (see [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs])."""
        if not self.compiled:
            raise ValueError("call compile(optimizer=..., method=..., attack=...) before train_on_batch")
        if not self.built:
            self.build((None, *np.shape(x)[1:]))
        self._build_optimizer_for_every_weight()
        if y is None:
            raise ValueError("train_on_batch needs labels y (integer class indices)")
        self.validate_inputs(x, y)
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        """``keras.Model.test_on_batch`` after checking the batch (see [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs])."""
        if y is None:
            raise ValueError("test_on_batch needs labels y (integer class indices)")
        self.validate_inputs(x, y)
        return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        """``keras.Model.predict_on_batch`` after checking the inputs (see [`validate_inputs`][aatk.model.ThreeWayModel.validate_inputs])."""
        self.validate_inputs(x)
        return super().predict_on_batch(x)

    # --- serialisation -------------------------------------------------------------------

    def get_config(self) -> dict:
        return {
            "encoder_r": keras.saving.serialize_keras_object(self.encoder_r),
            "encoder_n": keras.saving.serialize_keras_object(self.encoder_n),
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "init": self.init,
            "name": self.name,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config: dict) -> ThreeWayModel:
        config = dict(config)
        encoder_r = keras.saving.deserialize_keras_object(config.pop("encoder_r"))
        encoder_n = keras.saving.deserialize_keras_object(config.pop("encoder_n"))
        return cls(encoder_r, encoder_n, **config)
