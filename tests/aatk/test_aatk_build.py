"""ThreeWayModel with encoders that declare no input shape: built from the data, as any Keras model.

"Any two Keras encoders" includes a ``keras.Sequential`` without ``keras.Input`` and a
subclassed layer whose sublayers are built on their first call: the model builds them from
the first batch's shape before it asks for their output width. Runs under both backends.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from aatk import PGD, ThreeWayModel


def sequential_encoder(*, width: int = 5, name: str | None = None) -> keras.Sequential:
    """Conv → Flatten → Dense, with no ``keras.Input``: unbuilt until it sees data."""
    return keras.Sequential(
        [layers.Conv2D(2, 3, activation="relu"), layers.Flatten(), layers.Dense(width, activation="relu")], name=name
    )


class TwoDenseEncoder(keras.layers.Layer):
    """A subclassed encoder without a ``build`` method: its sublayers are built on the first call."""

    def __init__(self, *, width: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.flatten = layers.Flatten()
        self.dense = layers.Dense(width, activation="relu")

    def call(self, inputs):
        return self.dense(self.flatten(inputs))


def compiled(model: ThreeWayModel) -> ThreeWayModel:
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        method="aat++",
        attack=PGD(norm="linf", eps=0.1, step_size=0.05, steps=1, random_start=True),
    )
    return model


def test_sequential_encoders_without_input_fit_predict_save_and_load(image_data, tmp_path: Path) -> None:
    x, y = image_data
    model = compiled(ThreeWayModel(sequential_encoder(name="g_r"), sequential_encoder(name="g_n"), num_classes=3))
    assert not model.built  # nothing declares the input shape: the data will
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # two train steps
    assert np.isfinite(history.history["loss"]).all()
    assert model.input_example_shape == (4, 4, 1)
    assert (model.width_r, model.width_n) == (5, 5)
    logits = {way: keras.ops.convert_to_numpy(model(x, way=way)) for way in ("standard", "robust", "non_robust")}
    assert all(value.shape == (16, 3) for value in logits.values())

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for way, expected in logits.items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, way=way)), expected, rtol=1e-5, atol=1e-6)
    compiled(loaded).fit(x, y, batch_size=8, epochs=1, verbose=0)  # and it trains on after loading


def test_unbuilt_encoder_beside_a_functional_one(image_data) -> None:
    x, y = image_data
    declared = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(5, activation="relu")])
    model = ThreeWayModel(declared, sequential_encoder(), num_classes=3)
    assert model.built and model.encoder_n.built  # built at once from encoder_r's declared input
    compiled(model).fit(x, y, batch_size=16, epochs=1, verbose=0)


def test_subclassed_encoder_is_built_from_the_data_without_warnings(image_data) -> None:
    x, y = image_data
    model = compiled(ThreeWayModel(TwoDenseEncoder(), TwoDenseEncoder(), num_classes=3))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*does not have a `build\\(\\)` method.*")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.encoder_r.dense.built and len(model.encoder_r.trainable_weights) == 2


def test_unbuilt_encoder_without_vectors_is_refused(image_data) -> None:
    x, y = image_data
    maps = keras.Sequential([layers.Conv2D(2, 3)])  # (batch, 2, 2, 2): not vectors
    model = compiled(ThreeWayModel(maps, keras.Sequential([layers.Conv2D(2, 3)]), num_classes=3))
    with pytest.raises(ValueError, match=r"encoder_r must output vectors of shape \(batch, H\).*Flatten"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
