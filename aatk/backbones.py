"""The paper's backbones as headless Keras encoders (inputs in [0, 1] → vectors).

Section 3.1 builds the three-way model from canonical CNNs with their output
layer removed; each beheaded network is one encoder of [`aatk.ThreeWayModel`][aatk.model.ThreeWayModel].
The architectures (and the hyper-parameters of Table 5) come from the YOPO
repository, which took them from TRADES and kuangliu/pytorch-cifar:

* [`small_cnn`][aatk.backbones.small_cnn] — MNIST, the small CNN of TRADES/YOPO → 200-vector;
* [`preact_resnet18`][aatk.backbones.preact_resnet18] — CIFAR-10,
  PreAct-ResNet18 (He et al., 2016) → 512-vector;
* [`wide_resnet34_10`][aatk.backbones.wide_resnet34_10] — CIFAR-10, WRN-34-10
  (Madry et al.; TRADES) → 640-vector.

Attacks work in [0, 1] pixel space, so the CIFAR encoders start with a fixed,
non-trainable per-channel normalization (x − mean) / std. Every encoder is a
functional ``keras.Model`` made of built-in layers only: it saves with
``model.save`` and loads with ``keras.models.load_model`` in safe mode.

Layers follow the PyTorch originals: BatchNorm with momentum 0.9 (PyTorch's 0.1)
and epsilon 1e-5, convolutions of the ResNets without bias, and strided 3×3
convolutions padded by one pixel on every side, as PyTorch's ``padding=1`` does
(Keras' ``"same"`` would pad only the bottom and right of an even-sized input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from aatk.initializers import check_init, conv_kwargs, dense_kwargs

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "ENCODERS",
    "classifier",
    "get",
    "preact_resnet18",
    "small_cnn",
    "wide_resnet34_10",
]

# Per-channel statistics (R, G, B) of the 50,000 CIFAR-10 training images in [0, 1],
# measured on shared/data: mean 0.49140, 0.48216, 0.44653; std 0.24703, 0.24349, 0.26159.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

# PyTorch's BatchNorm2d defaults: running averages updated by 0.1 (Keras' momentum 0.9), eps 1e-5.
_BN = {"momentum": 0.9, "epsilon": 1e-5}


# --- argument checks -------------------------------------------------------------------------


def _check_input_shape(input_shape: Sequence[int], *, min_size: int = 1) -> tuple[int, int, int]:
    """``input_shape`` as a tuple (height, width, channels) of positive ints, or ValueError."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}") from None
    if len(shape) != 3 or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape
    ):
        raise ValueError(f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}")
    if min(shape[:2]) < min_size:
        raise ValueError(f"input_shape {shape} is too small: height and width must be at least {min_size}")
    return tuple(int(d) for d in shape)


def _normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int
) -> layers.Layer | None:
    """The fixed input layer (x − mean) / std, or None when both are None."""
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ValueError("pass both mean and std (or neither, for inputs that are already normalized)")
    mean_array = np.asarray(mean, dtype="float64").reshape(-1)
    std_array = np.asarray(std, dtype="float64").reshape(-1)
    for label, array in (("mean", mean_array), ("std", std_array)):
        if array.shape != (channels,):
            raise ValueError(f"{label} must have one value per input channel ({channels}), got {array.size}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{label} must be finite, got {array.tolist()}")
    if np.any(std_array <= 0):
        raise ValueError(f"std must be positive, got {std_array.tolist()}")
    # Normalization with a given mean and variance has no weights: a constant, untouched by training.
    return layers.Normalization(
        axis=-1, mean=mean_array.tolist(), variance=(std_array**2).tolist(), name="normalize"
    )


# --- MNIST: the small CNN ----------------------------------------------------------------------


def small_cnn(
    *, input_shape: Sequence[int] = (28, 28, 1), init: str = "keras", name: str = "small_cnn"
) -> keras.Model:
    """The small CNN of TRADES/YOPO for MNIST, without its output layer.

    Conv(32, 3×3) ReLU, Conv(32, 3×3) ReLU, MaxPool 2, Conv(64, 3×3) ReLU,
    Conv(64, 3×3) ReLU, MaxPool 2, Flatten, Dense(200) ReLU, Dropout(0.5),
    Dense(200) ReLU. Convolutions are unpadded ("valid"): a 28×28 image becomes
    26, 24, 12, 10, 8 and 4 pixels wide, and Flatten gives 4·4·64 = 1024 features.
    Inputs are pixels in [0, 1], with no normalization. Dropout acts only in
    training mode.

    Paper: Section 3.1 ("For MNIST, we adapt from a small CNN [32]"); Appendix B.1
    (H = 200); Table 5 (row "CNN").

    Args:
        input_shape: Shape of one image (height, width, channels); at least 16×16.
        init: ``"keras"`` (Glorot-uniform kernels, zero biases) or ``"pytorch"``, YOPO's
            initialisation of this network: convolutions N(0, 2/fan_in) with zero bias,
            dense layers PyTorch's U(±1/√fan_in) ([`aatk.initializers`][aatk.initializers]).
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` from images to vectors of shape (batch, 200);
        with a ``Dense(10)`` on top ([`classifier`][aatk.backbones.classifier]) it has the 312,202 trainable
        parameters of TRADES' SmallCNN.

    Raises:
        ValueError: If ``input_shape`` is not (height, width, channels) of positive
            integers, or is smaller than 16×16 (the last pooling would be empty), or
            ``init`` is unknown.

    Examples:
        >>> encoder = small_cnn()
        >>> tuple(encoder(np.zeros((2, 28, 28, 1), "float32")).shape)
        (2, 200)
    """
    shape = _check_input_shape(input_shape, min_size=16)
    check_init(init)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for index, filters in enumerate((32, 32, 64, 64), start=1):
        initializers = conv_kwargs(init, fan_in=9 * x.shape[-1], kaiming_normal=True)
        x = layers.Conv2D(filters, 3, padding="valid", activation="relu", name=f"conv{index}", **initializers)(x)
        if index in (2, 4):
            x = layers.MaxPooling2D(2, name=f"maxpool{index // 2}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(200, activation="relu", name="fc1", **dense_kwargs(init, fan_in=x.shape[-1]))(x)
    x = layers.Dropout(0.5, name="drop")(x)
    x = layers.Dense(200, activation="relu", name="fc2", **dense_kwargs(init, fan_in=200))(x)
    return keras.Model(inputs, x, name=name)


# --- CIFAR-10: residual networks --------------------------------------------------------------


def _bias_free(init: str, *, fan_in: int) -> dict:
    """Kernel initialiser arguments of a convolution without bias."""
    return {k: v for k, v in conv_kwargs(init, fan_in=fan_in).items() if k != "bias_initializer"}


def _conv3x3(x, filters: int, stride: int, name: str, init: str = "keras"):
    """A bias-free 3×3 convolution padded by one pixel on every side (PyTorch's padding=1)."""
    initializers = _bias_free(init, fan_in=9 * x.shape[-1])
    if stride == 1:
        return layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name, **initializers)(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, 3, strides=stride, padding="valid", use_bias=False, name=name, **initializers)(x)


def _preact_block(x, filters: int, stride: int, name: str, init: str = "keras"):
    """A pre-activation basic block: BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus a shortcut.

    Shared by PreActBlock (kuangliu) and WRN's BasicBlock (TRADES): when the shape
    changes, the shortcut is a bias-free 1×1 convolution of the *activated* input;
    otherwise it is the identity on the raw input.
    """
    in_channels = x.shape[-1]
    activated = layers.ReLU(name=f"{name}_relu1")(layers.BatchNormalization(**_BN, name=f"{name}_bn1")(x))
    if stride != 1 or in_channels != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, padding="valid", use_bias=False, name=f"{name}_shortcut",
            **_bias_free(init, fan_in=in_channels),
        )(activated)
    else:
        shortcut = x
    out = _conv3x3(activated, filters, stride, name=f"{name}_conv1", init=init)
    out = layers.ReLU(name=f"{name}_relu2")(layers.BatchNormalization(**_BN, name=f"{name}_bn2")(out))
    out = _conv3x3(out, filters, 1, name=f"{name}_conv2", init=init)
    return layers.Add(name=f"{name}_add")([shortcut, out])


def _residual_encoder(
    *,
    input_shape: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    stem_filters: int,
    stages: Sequence[tuple[int, int, int]],
    final_bn_relu: bool,
    init: str,
    name: str,
) -> keras.Model:
    """normalize → conv3×3 stem → stages of (filters, stride, blocks) → [BN-ReLU] → global mean."""
    shape = _check_input_shape(input_shape)
    check_init(init)
    inputs = keras.Input(shape, name="image")
    x = inputs
    normalize = _normalization(mean, std, shape[-1])
    if normalize is not None:
        x = normalize(x)
    x = _conv3x3(x, stem_filters, 1, name="stem_conv", init=init)
    for stage, (filters, stride, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            x = _preact_block(x, filters, stride if block == 1 else 1, name=f"stage{stage}_block{block}", init=init)
    if final_bn_relu:
        x = layers.ReLU(name="final_relu")(layers.BatchNormalization(**_BN, name="final_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


def preact_resnet18(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    final_bn_relu: bool = False,
    init: str = "keras",
    name: str = "preact_resnet18",
) -> keras.Model:
    """PreAct-ResNet18 for CIFAR (kuangliu/pytorch-cifar, as used by YOPO), without its output layer.

    Normalization (x − mean) / std, a bias-free 3×3 convolution with 64 filters (no
    BN or ReLU before it), then four stages of two pre-activation blocks with widths
    64, 128, 256, 512 and strides 1, 2, 2, 2 (a bias-free 1×1 convolution as shortcut
    where the shape changes), then global average pooling.

    As in kuangliu's and YOPO's code, the last block's output is pooled directly:
    there is no final BN + ReLU (He et al.'s full pre-activation network has one;
    ``final_bn_relu=True`` adds it, with 1,024 more parameters).

    Paper: Section 3.1 (CIFAR-10 backbone "PreAct-ResNet18 [9]"); Appendix B.1
    (H = 512); Table 5 (row "Res18").

    Args:
        input_shape: Shape of one image (height, width, channels), pixels in [0, 1].
        mean: Per-channel mean subtracted inside the model; ``None`` together with
            ``std=None`` for inputs that are already normalized.
        std: Per-channel standard deviation divided by inside the model.
        final_bn_relu: Adds BN + ReLU before the pooling (He et al., 2016).
        init: ``"keras"`` (Glorot-uniform kernels) or ``"pytorch"`` (``nn.Conv2d``'s
            default U(±1/√fan_in), which kuangliu's and YOPO's code keep).
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` from images to vectors of shape (batch, 512);
        with a ``Dense(10)`` on top ([`classifier`][aatk.backbones.classifier]) it has the 11,171,146
        trainable parameters of kuangliu's PreActResNet18.

    Raises:
        ValueError: On a malformed ``input_shape``, or a ``mean``/``std`` that is
            given alone, has not one value per channel, or has a ``std`` ≤ 0.

    Examples:
        >>> encoder = preact_resnet18()
        >>> tuple(encoder(np.zeros((2, 32, 32, 3), "float32")).shape)
        (2, 512)
    """
    return _residual_encoder(
        input_shape=input_shape,
        mean=mean,
        std=std,
        stem_filters=64,
        stages=((64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)),
        final_bn_relu=bool(final_bn_relu),
        init=init,
        name=name,
    )


def wide_resnet34_10(
    *,
    input_shape: Sequence[int] = (32, 32, 3),
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    init: str = "keras",
    name: str = "wide_resnet34_10",
) -> keras.Model:
    """WRN-34-10 of Madry et al. and TRADES (as used by YOPO), without its output layer.

    Normalization (x − mean) / std, a bias-free 3×3 convolution with 16 filters,
    three groups of n = (34 − 4) / 6 = 5 pre-activation basic blocks with widths
    160, 320, 640 (widen factor 10) and strides 1, 2, 2 (dropout 0; a bias-free
    1×1 convolution as shortcut where the width changes), then BN + ReLU and
    global average pooling.

    TRADES' ``WideResNet`` also creates a ``sub_block1`` that its forward pass never
    uses; it is left out here (and from the published parameter count).

    Paper: Section 3.1 (CIFAR-10 backbone "WideResNet34 [30]"); Appendix B.1
    (H = 640); Table 5 (row "Wide34").

    Args:
        input_shape: Shape of one image (height, width, channels), pixels in [0, 1].
        mean: Per-channel mean subtracted inside the model; ``None`` together with
            ``std=None`` for inputs that are already normalized.
        std: Per-channel standard deviation divided by inside the model.
        init: ``"keras"`` (Glorot-uniform kernels) or ``"pytorch"`` (``nn.Conv2d``'s
            default U(±1/√fan_in): YOPO's WideResNet leaves its custom initialisation
            commented out).
        name: Name of the model.

    Returns:
        A functional ``keras.Model`` from images to vectors of shape (batch, 640);
        with a ``Dense(10)`` on top ([`classifier`][aatk.backbones.classifier]) it has the 46,160,474
        trainable parameters of TRADES' ``WideResNet(depth=34, widen_factor=10)``.

    Raises:
        ValueError: On a malformed ``input_shape``, or a ``mean``/``std`` that is
            given alone, has not one value per channel, or has a ``std`` ≤ 0.

    Examples:
        >>> encoder = wide_resnet34_10()
        >>> tuple(encoder(np.zeros((1, 32, 32, 3), "float32")).shape)
        (1, 640)
    """
    return _residual_encoder(
        input_shape=input_shape,
        mean=mean,
        std=std,
        stem_filters=16,
        stages=((160, 1, 5), (320, 2, 5), (640, 2, 5)),
        final_bn_relu=True,
        init=init,
        name=name,
    )


# --- one-way classifiers and lookup by name ---------------------------------------------------


ENCODERS: dict[str, Callable[..., keras.Model]] = {
    "small_cnn": small_cnn,
    "preact_resnet18": preact_resnet18,
    "wide_resnet34_10": wide_resnet34_10,
}


def classifier(encoder: keras.Model, num_classes: int, *, name: str | None = None) -> keras.Model:
    """A one-way classifier: the encoder followed by a linear output layer.

    Puts back the layer that Section 3.1 removes, e.g. to compare parameter counts
    with the published one-way models or to train the paper's 1-way baselines.
    The encoder's weights are shared, not copied.

    Paper: Section 3.1 ("we remove the output layer and take the remaining modules
    as an encoder"); Tables 1–3, rows "1-way".

    Args:
        encoder: A Keras model with a declared input (e.g. from [`get`][aatk.backbones.get]) that
            outputs vectors of shape (batch, H).
        num_classes: Number of classes C ≥ 2.
        name: Name of the model; defaults to ``"<encoder name>_classifier"``.

    Returns:
        A functional ``keras.Model`` from the encoder's inputs to logits (batch, C).

    Raises:
        ValueError: If ``encoder`` is not a Keras model with one declared input and
            vector outputs, or if ``num_classes`` is not an integer ≥ 2.

    Examples:
        >>> model = classifier(small_cnn(), 10)
        >>> sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        312202
    """
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"encoder must be a keras.Model, got {type(encoder).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    try:
        declared = encoder.inputs
    except (AttributeError, ValueError):
        declared = None
    if not declared or len(declared) != 1:
        raise ValueError("encoder must declare exactly one input (build it from keras.Input, e.g. with get())")
    inputs = keras.Input(tuple(declared[0].shape[1:]), name="image")
    features = encoder(inputs)
    if len(features.shape) != 2 or features.shape[-1] is None:
        raise ValueError(f"encoder must output vectors of shape (batch, H), got {tuple(features.shape)}")
    logits = layers.Dense(int(num_classes), name="logits")(features)
    return keras.Model(inputs, logits, name=name or f"{encoder.name}_classifier")


def get(name: str, /, **kwargs: Any) -> keras.Model:
    """A new encoder by name, e.g. for command lines and configuration files.

    Args:
        name: One of ``"small_cnn"``, ``"preact_resnet18"``, ``"wide_resnet34_10"``.
        **kwargs: Keyword arguments of that function (``input_shape``, ``mean``,
            ``std``, and ``name`` for the model's own name).

    Returns:
        A freshly built encoder (new weights at every call).

    Raises:
        ValueError: If ``name`` is not one of the names above.

    Examples:
        >>> encoder = get("small_cnn", name="g_r")
        >>> encoder.name, encoder.output_shape
        ('g_r', (None, 200))
    """
    if not isinstance(name, str) or name not in ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(map(repr, ENCODERS))}")
    return ENCODERS[name](**kwargs)
