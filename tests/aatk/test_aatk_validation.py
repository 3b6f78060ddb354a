"""Bad input gets a clear ValueError naming the problem, before any training step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import aatk
from aatk.attacks import PGD
from aatk_testutils import conv_encoder, mlp_encoder, tiny_model


def _compiled_model(method="aat++", **compile_kwargs):
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), method=method, attack=PGD(eps=0.1, step_size=0.05, steps=1), **compile_kwargs)
    return model


def _snapshot(model):
    return [w.copy() for w in model.get_weights()]


def _assert_unchanged(model, before):
    after = model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 0  # not a single step was taken


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(n, 6)).astype("float32"), rng.integers(0, 3, size=n).astype("int32")


def _poison(x, value, index=(3, 2)):
    x = x.copy()
    x[index] = value
    return x


FIT_CASES = {
    "above bounds": (lambda x, y: (_poison(x, 1.5), y), r"bounds are \(0\.0, 1\.0\)"),
    "below bounds": (lambda x, y: (_poison(x, -0.01), y), "bounds"),
    "wrong rank": (lambda x, y: (x[:, :, None], y), r"per-example shape \(6, 1\).*expects \(6,\)"),
    "wrong width": (lambda x, y: (np.concatenate([x, x], axis=1), y), r"per-example shape \(12,\)"),
    "NaN": (lambda x, y: (_poison(x, np.nan), y), "non-finite"),
    "inf": (lambda x, y: (_poison(x, np.inf), y), "non-finite"),
    "-inf": (lambda x, y: (_poison(x, -np.inf), y), "non-finite"),
    "negative label": (lambda x, y: (x, np.where(np.arange(len(y)) == 5, -1, y)), r"labels must lie in \[0, 3\)"),
    "label = C": (lambda x, y: (x, np.where(np.arange(len(y)) == 5, 3, y)), r"labels must lie in \[0, 3\)"),
    "label > C": (lambda x, y: (x, y + 10), r"labels must lie in \[0, 3\)"),
    "fractional float labels": (lambda x, y: (x, y.astype("float32") + 0.5), "integer class indices"),
    "NaN float labels": (lambda x, y: (x, np.where(np.arange(len(y)) == 0, np.nan, y.astype("float32"))), "integer class indices"),
    "one-hot labels": (lambda x, y: (x, np.eye(3, dtype="float32")[y]), r"shape \(batch,\)"),
    "label count": (lambda x, y: (x, y[:-1]), "15 labels for 16 inputs"),
    "string inputs": (lambda x, y: (x.astype(str), y), "numeric"),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_rejects_bad_arrays_before_training(case):
    corrupt, message = FIT_CASES[case]
    x, y = corrupt(*_data())
    model = _compiled_model()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    _assert_unchanged(model, before)


def test_integer_valued_float_labels_are_accepted():
    x, y = _data()
    model = _compiled_model(method="st")
    model.fit(x, y.astype("float32"), epochs=1, batch_size=16, verbose=0)


def test_fit_rejects_bad_images_and_channels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=8)
    model = aatk.ThreeWayModel(conv_encoder(), conv_encoder(), num_classes=3)
    model.compile(method="aat", attack=PGD(eps=0.1, step_size=0.1, steps=1))
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"per-example shape \(4, 4, 3\).*expects \(4, 4, 1\)"):
        model.fit(rng.uniform(size=(8, 4, 4, 3)).astype("float32"), y, verbose=0)
    with pytest.raises(ValueError, match=r"per-example shape \(4, 4\)"):
        model.fit(rng.uniform(size=(8, 4, 4)).astype("float32"), y, verbose=0)
    with pytest.raises(ValueError, match="bounds"):
        model.fit(rng.uniform(0, 255, size=(8, 4, 4, 1)).astype("float32"), y, verbose=0)  # unscaled images
    _assert_unchanged(model, before)


def test_fit_rejects_a_bad_first_dataset_batch_and_bad_validation_data():
    x, y = _data()
    model = _compiled_model()
    before = _snapshot(model)
    bad = tf.data.Dataset.from_tensor_slices((_poison(x, 2.0, (0, 0)), y)).batch(8)
    with pytest.raises(ValueError, match="bounds"):
        model.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data.*non-finite"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(_poison(x, np.nan), y))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=tf.data.Dataset.from_tensor_slices((x, y + 3)).batch(8))
    _assert_unchanged(model, before)


def test_fit_before_compile():
    x, y = _data()
    with pytest.raises(ValueError, match="compile"):
        tiny_model().fit(x, y, verbose=0)


def test_sample_weights_are_refused():
    x, y = _data()
    model = _compiled_model(method="st")
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(x, y, sample_weight=np.ones(len(y)), epochs=1, batch_size=16, verbose=0)


def _two_batches(second_x=None, second_y=None):
    x, y = _data()
    x2 = x.copy() if second_x is None else second_x
    y2 = y.copy() if second_y is None else second_y
    return tf.data.Dataset.from_tensor_slices((np.concatenate([x, x2]), np.concatenate([y, y2]))).batch(16)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"second_x": _poison(_data()[0], 1.5)}, "bound"),
        ({"second_x": _poison(_data()[0], -0.5)}, "bound"),
        ({"second_x": _poison(_data()[0], np.nan)}, "NaN or inf"),
        # The input pipeline checks each batch before it reaches the step, so aatk's message wins.
        ({"second_y": np.full(16, 3, "int32")}, r"aatk: label >= num_classes = 3"),
        ({"second_y": np.full(16, -1, "int32")}, r"aatk: negative label"),
    ],
    ids=["above-bound", "below-bound", "NaN", "label=C", "label<0"],
)
def test_a_bad_later_dataset_batch_stops_training(second, message):
    """The first batch passes the eager checks; the pipeline's checks stop training at the second."""
    model = _compiled_model()
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(_two_batches(**second), epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"second_x": _poison(_data()[0], 1.5)}, "bound"),
        ({"second_y": np.full(16, 5, "int32")}, r"aatk: label >= num_classes"),
    ],
    ids=["out-of-bounds", "label>=C"],
)
def test_a_bad_later_dataset_batch_stops_training_with_xla(second, message):
    """compile() passes jit_compile on to Keras; the later-batch checks must still hold under XLA.

    XLA compiles tf.debugging asserts inside the step to no-ops; the checks in the input
    pipeline (aatk.backend.checked_dataset) are not compiled by XLA and still stop training,
    so bad inputs are never silently clipped and bad labels never turn the weights into NaN.
    """
    model = _compiled_model(jit_compile=True)
    try:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            model.fit(_two_batches(**second), epochs=1, verbose=0)
    finally:
        assert all(np.isfinite(w).all() for w in model.get_weights()), "training went on and produced NaN weights"


# --- the attack's and the model's own arguments ---------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"eps": float("nan")}, "eps must be finite"),
        ({"eps": float("inf")}, "eps must be finite"),
        ({"eps": "0.1"}, "eps must be a number"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": -3}, "steps must be an integer >= 1"),
        ({"steps": 1.5}, "steps must be an integer >= 1"),
        ({"steps": True}, "steps must be an integer >= 1"),
        ({"step_size": 0.0}, "step_size must be > 0"),
        ({"step_size": -0.01}, "step_size must be > 0"),
        ({"norm": "l1"}, "norm must be one of"),
        ({"norm": "Linf"}, "norm must be one of"),
        ({"bounds": (1.0, 0.0)}, "low < high"),
        ({"bounds": (0.0, 0.0)}, "low < high"),
        ({"bounds": (0.0, 1.0, 2.0)}, r"\(low, high\) or None"),
        ({"bounds": (0.0, float("nan"))}, "bounds must be finite"),
    ],
)
def test_pgd_rejects_bad_configuration(kwargs, message):
    config = {"norm": "linf", "eps": 0.1, "step_size": 0.01, "steps": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        PGD(**config)


def test_unknown_way():
    x, y = _data()
    model = _compiled_model()
    with pytest.raises(ValueError, match="way must be one of"):
        model(x, way="x")
    with pytest.raises(ValueError, match="way must be one of"):
        model.way_logits(x, ways=("robust", "adversarial"))
    with pytest.raises(ValueError, match="way must be one of"):
        model.attack(model, x, y, way="x")


def test_attack_rejects_bad_inputs():
    x, y = _data()
    model = _compiled_model()
    attack = model.attack
    with pytest.raises(ValueError, match="bounds"):
        attack(model, x * 4.0, y)
    with pytest.raises(ValueError, match="non-finite"):
        attack(model, _poison(x, np.nan), y)
    with pytest.raises(ValueError, match=r"y must have shape \(16,\)"):
        attack(model, x, y[:, None, None])
    with pytest.raises(ValueError, match=r"y must have shape \(16,\)"):
        attack(model, x, y[:4])
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\), found 3"):
        attack(model, x, np.full(16, 3))
    with pytest.raises(ValueError, match="non-negative integer class indices"):
        attack(model, x, np.full(16, -1))
    with pytest.raises(ValueError, match="non-negative integer class indices"):
        attack(model, x, y.astype("float32") + 0.5)
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="needs a model with ways"):
        attack(plain, x, y, way="robust")
    assert np.asarray(attack(plain, x, y)).shape == x.shape  # a plain classifier, standard way


def test_encoder_must_output_vectors():
    image_map = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, padding="same")])
    with pytest.raises(ValueError, match=r"encoder_r must output vectors of shape \(batch, H\)"):
        aatk.ThreeWayModel(image_map, conv_encoder(), num_classes=3)
    with pytest.raises(ValueError, match="encoder_n must output vectors"):
        aatk.ThreeWayModel(conv_encoder(), keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(4, 3)]), num_classes=3)


@pytest.mark.parametrize("num_classes", [1, 0, -2, 2.0, True, "3", None])
def test_num_classes_must_be_an_integer_of_at_least_2(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        aatk.ThreeWayModel(mlp_encoder(), mlp_encoder(), num_classes=num_classes)


def test_other_construction_errors():
    encoder = mlp_encoder()
    with pytest.raises(ValueError, match="two different layers"):
        aatk.ThreeWayModel(encoder, encoder, num_classes=3)
    with pytest.raises(ValueError, match="must be a Keras layer"):
        aatk.ThreeWayModel(lambda x: x, mlp_encoder(), num_classes=3)
    with pytest.raises(ValueError, match="different inputs"):
        aatk.ThreeWayModel(mlp_encoder(6), mlp_encoder(5), num_classes=3)
    with pytest.raises(ValueError, match="widths differ"):
        aatk.ThreeWayModel(mlp_encoder(6, 4), mlp_encoder(6, 5), num_classes=3)
    model = aatk.ThreeWayModel(mlp_encoder(6, 4), mlp_encoder(6, 5), num_classes=3, hidden=7)
    assert tuple(model(np.zeros((2, 6), "float32"), way="non_robust").shape) == (2, 3)
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        aatk.ThreeWayModel(mlp_encoder(), mlp_encoder(), num_classes=3, hidden=0)


def test_compile_errors():
    model = tiny_model()
    for method in ("aat", "aat++", ("st", "ar")):
        with pytest.raises(ValueError, match="needs attack=aatk.PGD"):
            model.compile(method=method)
    with pytest.raises(ValueError, match="method must be one of"):
        model.compile(method="madry", attack=PGD(eps=0.1, step_size=0.1, steps=1))
    with pytest.raises(ValueError, match="does not take loss="):
        model.compile(loss="sparse_categorical_crossentropy", method="st")
    with pytest.raises(ValueError, match="does not take metrics="):
        model.compile(metrics=["accuracy"], method="st")
    with pytest.raises(ValueError, match="attack must be an aatk.PGD"):
        model.compile(method="aat", attack="pgd")
    model.compile(method="st")  # no attack needed for standard training
    assert model.terms == ("st",) and model.attack is None
