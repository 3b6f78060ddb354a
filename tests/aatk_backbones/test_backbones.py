"""The paper's backbones (aatk.backbones): shapes, published parameter counts, layer
details, normalization inside the CIFAR encoders, use in a ThreeWayModel, saving.

WRN-34-10 has 46M parameters per encoder: it is built once per module (two encoders
in one ThreeWayModel, reused by every WRN test) and never saved.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import aatk  # noqa: E402
from aatk import backbones  # noqa: E402
from aatk.backbones import (  # noqa: E402
    CIFAR10_MEAN,
    CIFAR10_STD,
    classifier,
    preact_resnet18,
    small_cnn,
    wide_resnet34_10,
)

WIDTHS = {"small_cnn": 200, "preact_resnet18": 512, "wide_resnet34_10": 640}
INPUTS = {"small_cnn": (28, 28, 1), "preact_resnet18": (32, 32, 3), "wide_resnet34_10": (32, 32, 3)}

# Trainable parameters of the published one-way classifiers (encoder + Linear(H, 10)).
PUBLISHED = {
    # TRADES SmallCNN: conv1 1·32·9+32 = 320, conv2 32·32·9+32 = 9,248, conv3 32·64·9+64 = 18,496,
    # conv4 64·64·9+64 = 36,928, fc1 1024·200+200 = 205,000, fc2 200·200+200 = 40,200,
    # fc3 200·10+10 = 2,010; total 312,202.
    "small_cnn": 312_202,
    # kuangliu PreActResNet18 (convs bias-free, BN = weight + bias = 2C, no final BN):
    #   stem conv 3·64·9 = 1,728
    #   stage 1: 2 × (BN 128 + 64·64·9 + BN 128 + 64·64·9) = 2 × 73,984 = 147,968
    #   stage 2: (BN 128 + 64·128·9 + BN 256 + 128·128·9 + shortcut 64·128) = 229,760
    #            + (BN 256 + 128·128·9 + BN 256 + 128·128·9) = 295,424          → 525,184
    #   stage 3: (256 + 128·256·9 + 512 + 256·256·9 + 128·256) = 918,272
    #            + (512 + 2·256·256·9 + 512) = 1,180,672                         → 2,098,944
    #   stage 4: (512 + 256·512·9 + 1,024 + 512·512·9 + 256·512) = 3,671,552
    #            + (1,024 + 2·512·512·9 + 1,024) = 4,720,640                     → 8,392,192
    #   linear 512·10+10 = 5,130
    #   1,728 + 147,968 + 525,184 + 2,098,944 + 8,392,192 + 5,130 = 11,171,146.
    # (A final BN(512) as in He et al. would add 1,024: 11,172,170.)
    "preact_resnet18": 11_171_146,
    # TRADES/Madry WideResNet(depth=34, widen_factor=10): n = 5 blocks per group, widths 16/160/320/640,
    # BasicBlock = BN(in) + conv3×3(in→out) + BN(out) + conv3×3(out→out) [+ 1×1 shortcut in·out if in ≠ out]:
    #   stem conv 3·16·9 = 432
    #   group 1: (32 + 16·160·9 + 320 + 160·160·9 + 16·160) = 256,352 + 4 × (320 + 2·160·160·9 + 320)
    #            = 256,352 + 4 × 461,440                                         → 2,102,112
    #   group 2: (320 + 160·320·9 + 640 + 320·320·9 + 160·320) = 1,434,560 + 4 × 1,844,480 → 8,812,480
    #   group 3: (640 + 320·640·9 + 1,280 + 640·640·9 + 320·640) = 5,736,320 + 4 × 7,375,360 → 35,237,760
    #   final BN 2·640 = 1,280, fc 640·10+10 = 6,410
    #   432 + 2,102,112 + 8,812,480 + 35,237,760 + 1,280 + 6,410 = 46,160,474.
    # (TRADES also creates an unused `sub_block1`, 2,102,112 more parameters; the published
    # 46,160,474 does not count it, and it is not built here.)
    "wide_resnet34_10": 46_160_474,
}


def count(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def images(name: str, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(batch, *INPUTS[name])).astype("float32")


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="module")
def wrn_model() -> aatk.ThreeWayModel:
    """The only WRN-34-10s of the session: a three-way model with two of them."""
    keras.utils.set_random_seed(0)
    return aatk.ThreeWayModel(wide_resnet34_10(), wide_resnet34_10(name="wrn_n"), num_classes=10)


def get_encoder(name: str, wrn_model: aatk.ThreeWayModel) -> keras.Model:
    """A new encoder by name; WRN-34-10 is the robust encoder of the shared three-way model."""
    return wrn_model.encoder_r if name == "wide_resnet34_10" else backbones.get(name)


ALL = pytest.mark.parametrize("name", list(WIDTHS))


# --- shapes and parameter counts ----------------------------------------------------------------


@ALL
def test_encoder_maps_a_batch_of_images_to_vectors(name, wrn_model):
    encoder = get_encoder(name, wrn_model)
    assert encoder.input_shape == (None, *INPUTS[name])
    out = encoder(images(name), training=False)
    assert tuple(out.shape) == (2, WIDTHS[name])
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


@ALL
def test_one_way_classifier_has_the_published_parameter_count(name, wrn_model):
    encoder = get_encoder(name, wrn_model)
    model = classifier(encoder, 10)
    assert model.output_shape == (None, 10)
    assert count(model) == PUBLISHED[name]
    # The only parameters besides the encoder's are the output layer's.
    assert count(model) - count(encoder) == WIDTHS[name] * 10 + 10


def test_final_bn_relu_option_adds_one_batchnorm():
    assert count(classifier(preact_resnet18(final_bn_relu=True), 10)) == PUBLISHED["preact_resnet18"] + 2 * 512


# --- layer details --------------------------------------------------------------------------------


def test_small_cnn_is_unpadded_with_the_expected_spatial_sizes():
    encoder = small_cnn()
    spatial = [
        layer.output.shape[1]
        for layer in encoder.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
    ]
    assert spatial == [26, 24, 12, 10, 8, 4]
    assert all(layer.padding == "valid" for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D))
    assert encoder.get_layer("flatten").output.shape[-1] == 1024
    assert not any(isinstance(layer, keras.layers.Normalization) for layer in encoder.layers)


def test_small_cnn_dropout_acts_only_in_training_mode():
    encoder = small_cnn()
    x = images("small_cnn", batch=4)
    inference = [keras.ops.convert_to_numpy(encoder(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    np.testing.assert_array_equal(inference[0], keras.ops.convert_to_numpy(encoder.predict(x, verbose=0)))
    training = keras.ops.convert_to_numpy(encoder(x, training=True))
    assert not np.allclose(training, inference[0])
    dropout = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropout) == 1 and dropout[0].rate == 0.5


@pytest.mark.parametrize("build", [preact_resnet18, wide_resnet34_10], ids=["preact_resnet18", "wide_resnet34_10"])
def test_resnet_layers_follow_the_pytorch_originals(build, wrn_model):
    encoder = get_encoder(build.__name__, wrn_model)
    convs = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    blocks = 8 if build is preact_resnet18 else 15
    assert len(convs) == 1 + 2 * blocks + 3  # stem, two per block, three 1×1 shortcuts
    assert not any(conv.use_bias for conv in convs)
    for bn in (layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)):
        assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.9, 1e-5, True, True)
    # Strided 3×3 convolutions are padded by one pixel on every side, as PyTorch's padding=1.
    for conv in convs:
        if conv.strides != (1, 1) and conv.kernel_size == (3, 3):
            assert conv.padding == "valid"
            assert encoder.get_layer(f"{conv.name}_pad").padding == ((1, 1), (1, 1))
    # Pre-activation: a changed shape goes through a 1×1 conv of BN-ReLU(x); otherwise the identity of x.
    first = "stage2_block1"
    assert encoder.get_layer(f"{first}_shortcut").input is encoder.get_layer(f"{first}_relu1").output
    second = "stage2_block2"
    assert encoder.get_layer(f"{second}_add").input[0] is encoder.get_layer(f"{first}_add").output
    # The stem is a plain convolution of the normalized image (no BN or ReLU before it).
    assert encoder.get_layer("stem_conv").input is encoder.get_layer("normalize").output
    sizes = [encoder.get_layer(f"stage{s}_block1_add").output.shape[1] for s in range(1, 5 if blocks == 8 else 4)]
    assert sizes == ([32, 16, 8, 4] if blocks == 8 else [32, 16, 8])
    final_bn = any(layer.name == "final_bn" for layer in encoder.layers)
    assert final_bn == (build is wide_resnet34_10)  # kuangliu/YOPO's PreActResNet18 pools the last block directly


# --- normalization inside the CIFAR encoders ------------------------------------------------------


def test_cifar_statistics_are_the_measured_training_set_values():
    # shared/data/README.md: mean 0.49140, 0.48216, 0.44653; std 0.24703, 0.24349, 0.26159.
    np.testing.assert_allclose(CIFAR10_MEAN, (0.49140, 0.48216, 0.44653), atol=5e-5)
    np.testing.assert_allclose(CIFAR10_STD, (0.24703, 0.24349, 0.26159), atol=5e-5)


@pytest.mark.parametrize("name", ["preact_resnet18", "wide_resnet34_10"])
def test_first_layer_computes_x_minus_mean_over_std(name, wrn_model):
    encoder = get_encoder(name, wrn_model)
    normalize = encoder.layers[1]
    assert isinstance(normalize, keras.layers.Normalization) and normalize.name == "normalize"
    assert not normalize.weights  # a fixed constant, untouched by training
    x = images("preact_resnet18", batch=2, seed=3)
    first = keras.Model(encoder.input, normalize.output)
    expected = (x - np.asarray(CIFAR10_MEAN, "float32")) / np.asarray(CIFAR10_STD, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first(x)), expected, rtol=1e-5, atol=1e-5)


def test_mean_image_gives_the_output_of_zeros_without_normalization():
    encoder = preact_resnet18()
    raw = preact_resnet18(mean=None, std=None)
    assert not any(isinstance(layer, keras.layers.Normalization) for layer in raw.layers)
    raw.set_weights(encoder.get_weights())
    mean_image = np.broadcast_to(np.asarray(CIFAR10_MEAN, "float32"), (2, 32, 32, 3))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(mean_image, training=False)),
        keras.ops.convert_to_numpy(raw(np.zeros((2, 32, 32, 3), "float32"), training=False)),
        rtol=1e-5, atol=1e-6,
    )


# --- inside a ThreeWayModel, saving -----------------------------------------------------------------


@ALL
def test_encoders_work_inside_a_three_way_model(name, wrn_model):
    if name == "wide_resnet34_10":
        model = wrn_model
    else:
        model = aatk.ThreeWayModel(backbones.get(name), backbones.get(name), num_classes=10)
    assert (model.width_r, model.width_n) == (WIDTHS[name], WIDTHS[name])
    x = images(name)
    for way in aatk.WAYS:
        logits = keras.ops.convert_to_numpy(model(x, way=way, training=False))
        assert logits.shape == (2, 10) and np.all(np.isfinite(logits)), way


def test_three_way_model_of_small_cnns_survives_save_and_load_in_safe_mode(tmp_path):
    model = aatk.ThreeWayModel(small_cnn(name="g_r"), small_cnn(name="g_n"), num_classes=10)
    x = images("small_cnn", batch=3)
    before = {way: keras.ops.convert_to_numpy(model(x, way=way, training=False)) for way in aatk.WAYS}
    path = tmp_path / "three_way_small_cnn.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, aatk.ThreeWayModel)
    assert [loaded.encoder_r.name, loaded.encoder_n.name] == ["g_r", "g_n"]
    for way in aatk.WAYS:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, way=way, training=False)), before[way])


def test_preact_resnet18_with_its_normalization_survives_save_and_load(tmp_path):
    encoder = preact_resnet18()
    x = images("preact_resnet18")
    before = keras.ops.convert_to_numpy(encoder(x, training=False))
    path = tmp_path / "preact_resnet18.keras"
    encoder.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), before)
    assert isinstance(loaded.layers[1], keras.layers.Normalization)


# --- lookup by name and argument checks ----------------------------------------------------------


def test_get_builds_fresh_encoders_and_passes_keyword_arguments():
    first, second = backbones.get("small_cnn"), backbones.get("small_cnn", name="g_n")
    assert first is not second and second.name == "g_n"
    assert backbones.get("preact_resnet18", input_shape=(16, 16, 3)).input_shape == (None, 16, 16, 3)
    assert set(backbones.ENCODERS) == set(WIDTHS)


@pytest.mark.parametrize("bad", ["resnet18", "", None, ["small_cnn"]])
def test_get_rejects_an_unknown_name_and_lists_the_known_ones(bad):
    with pytest.raises(ValueError, match="small_cnn.*preact_resnet18.*wide_resnet34_10"):
        backbones.get(bad)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: small_cnn(input_shape=(28, 28)), "height, width, channels"),
        (lambda: small_cnn(input_shape=(28, 0, 1)), "height, width, channels"),
        (lambda: small_cnn(input_shape=(12, 12, 1)), "at least 16"),
        (lambda: small_cnn(input_shape=5), "height, width, channels"),
        (lambda: preact_resnet18(input_shape=(32, 32, 1)), "one value per input channel"),
        (lambda: preact_resnet18(mean=CIFAR10_MEAN, std=None), "both mean and std"),
        (lambda: preact_resnet18(std=(0.2, 0.0, 0.2)), "std must be positive"),
        (lambda: preact_resnet18(mean=(0.5, float("nan"), 0.5)), "finite"),
        (lambda: classifier(small_cnn(), 1), "num_classes"),
        (lambda: classifier(small_cnn(), True), "num_classes"),
        (lambda: classifier("small_cnn", 10), "keras.Model"),
        (
            lambda: classifier(keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3)]), 10),
            r"vectors of shape \(batch, H\)",
        ),
    ],
)
def test_bad_arguments_raise_clear_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
