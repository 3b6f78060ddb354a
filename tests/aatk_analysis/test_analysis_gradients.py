"""aatk.analysis.gradients: input gradients of each way's loss and Appendix D.1's display transform."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aatk import ThreeWayModel
from aatk.analysis import gradient_image, input_gradients
from aatk.model import WAYS
from analysis_testutils import affine_model, affine_parts, conv_encoder, np_softmax, tiny_model


def _weights(seed=0, input_dim=3, width=2, hidden=3, classes=3):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-0.5, 0.5, (input_dim, width)),  # W_r
        rng.uniform(-0.5, 0.5, (input_dim, width)),  # W_n
        rng.uniform(-0.5, 0.5, (2 * width, hidden)),  # W1
        rng.uniform(-0.5, 0.5, (hidden, classes)),  # W2
        rng.uniform(-0.5, 0.5, classes),  # b2: the logits' offset
    )


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(3)
    return tiny_model(input_dim=4, width=3, num_classes=3)


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    return rng.uniform(0, 1, (6, 4)).astype("float32"), rng.integers(0, 3, 6).astype("int32")


# --- input_gradients -----------------------------------------------------------------------


def test_gradient_of_an_affine_model_is_softmax_minus_onehot_times_weights():
    """logits = x A + c  ⇒  ∇_x CE = (softmax(logits) − onehot(y)) Aᵀ, for every way, to 1e-5."""
    weights = _weights()
    model = affine_model(*weights)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (7, 3)).astype("float32")
    y = rng.integers(0, 3, 7)
    grads = input_gradients(model, x, y, batch_size=3)  # three batches, the last one short
    assert list(grads) == list(WAYS)
    for way, (a, c) in affine_parts(*weights).items():
        logits = x.astype(np.float64) @ a + c
        np.testing.assert_allclose(np.asarray(model(x, way=way)), logits, atol=1e-5)  # the model is affine
        expected = (np_softmax(logits) - np.eye(3)[y]) @ a.T
        assert grads[way].shape == x.shape and grads[way].dtype == np.float32
        np.testing.assert_allclose(grads[way], expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-2  # the comparison is not between two zeros


def test_ways_subset_labels_as_column_and_batching(small_model, data):
    x, y = data
    whole = input_gradients(small_model, x, y, ways=("non_robust", "robust"))
    assert list(whole) == ["non_robust", "robust"]
    batched = input_gradients(small_model, x, y[:, None], ways=("non_robust", "robust"), batch_size=4)
    for way in whole:
        np.testing.assert_allclose(batched[way], whole[way], atol=1e-6)
    assert not np.allclose(whole["robust"], whole["non_robust"])  # two different encoders


def test_images_keep_their_shape():
    model = ThreeWayModel(conv_encoder(), conv_encoder(), num_classes=2)
    x = np.random.default_rng(0).uniform(0, 1, (3, 4, 4, 1)).astype("float32")
    grads = input_gradients(model, x, np.array([0, 1, 1]), ways=("robust",))
    assert grads["robust"].shape == (3, 4, 4, 1)
    assert gradient_image(grads["robust"]).shape == (3, 4, 4, 1)


def test_inference_mode_dropout_is_off():
    def encoder():
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.5)]
        )

    model = ThreeWayModel(encoder(), encoder(), num_classes=3)
    x = np.random.default_rng(2).uniform(0, 1, (5, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])
    first = input_gradients(model, x, y, ways=("standard",))["standard"]
    second = input_gradients(model, x, y, ways=("standard",))["standard"]
    np.testing.assert_array_equal(first, second)
    assert np.abs(first).max() > 0


def test_a_way_that_ignores_its_input_has_zero_gradient_shown_mid_grey():
    w_r, w_n, w1, w2, b2 = _weights()
    model = affine_model(np.zeros_like(w_r), w_n, w1, w2, b2)  # dead robust encoder: z_r = 0
    x = np.random.default_rng(4).uniform(0, 1, (4, 3)).astype("float32")
    grads = input_gradients(model, x, np.array([0, 1, 2, 0]), ways=("robust", "non_robust"))
    np.testing.assert_array_equal(grads["robust"], 0.0)
    np.testing.assert_array_equal(gradient_image(grads["robust"]), 0.5)
    assert np.abs(grads["non_robust"]).max() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": ("robust", "sideways")}, "way must be one of"),
        ({"ways": ()}, "at least one"),
        ({"ways": "robust"}, "string"),
        ({"ways": ("robust", "robust")}, "repeat"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_bad_options(small_model, data, kwargs, message):
    x, y = data
    with pytest.raises(ValueError, match=message):
        input_gradients(small_model, x, y, **kwargs)


def test_bad_data(small_model, data):
    x, y = data
    with pytest.raises(ValueError, match="ThreeWayModel"):
        input_gradients(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), x, y)
    with pytest.raises(ValueError, match="per-example shape"):
        input_gradients(small_model, x[:, :3], y)
    with pytest.raises(ValueError, match="labels for"):
        input_gradients(small_model, x, y[:-1])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        input_gradients(small_model, x, np.full(len(x), 3))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        input_gradients(small_model, bad, y)
    with pytest.raises(ValueError, match="non-empty"):
        input_gradients(small_model, x[:0], y[:0])


# --- gradient_image: hand-computed cases ---------------------------------------------------


def test_ramp_is_rescaled_linearly():
    out = gradient_image(np.array([[0.0, 1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(out, [[0.0, 1 / 3, 2 / 3, 1.0]], atol=1e-7)
    assert out.dtype == np.float32


def test_outlier_is_clipped_at_three_standard_deviations():
    # 98 zeros, a 1 and a 100: mean 1.01, std √(100.01 − 1.01²), so the 100 is clipped to
    # 1.01 + 3·std ≈ 30.858 and the 1 lands at 1/30.858 instead of 1/100.
    values = np.r_[np.zeros(98), 1.0, 100.0]
    mean, std = values.mean(), np.sqrt((1.0 + 100.0**2) / 100 - 1.01**2)
    upper = mean + 3 * std
    assert 30.85 < upper < 30.87
    out = gradient_image(values.reshape(1, 10, 10, 1)).reshape(-1)
    np.testing.assert_allclose(out[:98], 0.0, atol=1e-7)
    np.testing.assert_allclose(out[98], 1.0 / upper, rtol=1e-6)
    np.testing.assert_allclose(out[99], 1.0, atol=1e-7)


def test_examples_are_transformed_independently_and_constants_are_mid_grey():
    batch = np.stack([np.arange(8.0).reshape(2, 2, 2), np.full((2, 2, 2), -7.0), 1e6 * np.arange(8.0).reshape(2, 2, 2)])
    out = gradient_image(batch)
    assert out.shape == (3, 2, 2, 2)
    np.testing.assert_allclose(out[0], np.arange(8.0).reshape(2, 2, 2) / 7, atol=1e-7)
    np.testing.assert_array_equal(out[1], 0.5)
    np.testing.assert_allclose(out[2], out[0], atol=1e-7)
    np.testing.assert_allclose(gradient_image(batch[:1]), out[:1])


def test_empty_batch_gives_an_empty_result():
    assert gradient_image(np.zeros((0, 4))).shape == (0, 4)


def test_lists_and_backend_tensors_are_accepted():
    expected = gradient_image(np.array([[1.0, 2.0, 4.0]]))
    np.testing.assert_array_equal(gradient_image([[1, 2, 4]]), expected)
    np.testing.assert_array_equal(gradient_image(keras.ops.convert_to_tensor([[1.0, 2.0, 4.0]])), expected)


@pytest.mark.parametrize(
    ("gradients", "message"),
    [
        (np.array([[0.0, np.nan]]), "non-finite"),
        (np.array([[0.0, np.inf]]), "non-finite"),
        (np.array([[-np.inf, 1.0]]), "non-finite"),
        (np.arange(4.0), "at least 2 dimensions"),
        (np.float64(3.0), "at least 2 dimensions"),
        (np.zeros((2, 0)), "at least one value per example"),
        (np.array([["a", "b"]]), "real-valued"),
        (np.array([[True, False]]), "real-valued"),
        (np.array([[1 + 2j, 0j]]), "real-valued"),
    ],
)
def test_gradient_image_rejects_bad_input(gradients, message):
    with pytest.raises(ValueError, match=message):
        gradient_image(gradients)


# --- gradient_image: properties ------------------------------------------------------------

# Integer-valued gradients: shifts by integers are exact in float64, so the invariances
# can be checked tightly without near-constant examples that floating point cannot resolve.
integer_gradients = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5),
    elements=st.integers(-1000, 1000).map(float),
)


@settings(deadline=None, max_examples=60)
@given(integer_gradients)
def test_output_in_unit_interval_shape_preserved_full_range(gradients):
    out = gradient_image(gradients)
    assert out.shape == gradients.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    flat_in = gradients.reshape(len(gradients), -1)
    flat_out = out.reshape(len(out), -1)
    for values, image in zip(flat_in, flat_out):
        if values.min() == values.max():
            np.testing.assert_array_equal(image, 0.5)
        else:  # every example with contrast uses the whole range
            assert image.min() == 0.0 and image.max() == 1.0


@settings(deadline=None, max_examples=60)
@given(integer_gradients, st.sampled_from([1e-3, 0.37, 1.0, 2.0, 7.5, 1e4]), st.integers(-10**6, 10**6))
def test_invariant_to_positive_scaling_and_to_adding_a_constant(gradients, scale, shift):
    out = gradient_image(gradients)
    np.testing.assert_allclose(gradient_image(scale * gradients), out, atol=1e-6)
    np.testing.assert_allclose(gradient_image(gradients + shift), out, atol=1e-6)


@settings(deadline=None, max_examples=60)
@given(integer_gradients)
def test_monotone_within_each_example(gradients):
    flat_in = gradients.reshape(len(gradients), -1)
    flat_out = gradient_image(gradients).reshape(len(gradients), -1)
    for values, image in zip(flat_in, flat_out):
        order = np.argsort(values, kind="stable")
        assert (np.diff(image[order]) >= 0).all()
        # equal gradients give equal pixels
        for value in np.unique(values):
            assert np.unique(image[values == value]).size == 1


@settings(deadline=None, max_examples=40)
@given(hnp.arrays(np.float32, (2, 3, 3), elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_any_finite_float32_input_gives_a_valid_image(gradients):
    out = gradient_image(gradients)
    assert out.shape == gradients.shape and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
