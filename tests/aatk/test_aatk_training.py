"""fit, its metrics, and the save/load round trip of a ThreeWayModel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import aatk
from aatk.attacks import PGD
from aatk_testutils import conv_encoder, tiny_model

TRAIN_KEYS = {
    "st": {"loss", "l_st", "acc_s", "acc_r", "acc_n"},
    "aat": {"loss", "l_st", "l_as", "acc_s", "acc_r", "acc_n", "kept_s"},
    "aat++": {"loss", "l_st", "l_as", "l_ar", "l_an", "acc_s", "acc_r", "acc_n", "kept_s", "kept_n"},
    ("st", "an"): {"loss", "l_st", "l_an", "acc_s", "acc_r", "acc_n", "kept_n"},
    ("ar",): {"loss", "l_ar"},  # no clean term: no clean forward pass, clean accuracy from validation
}


def _attack():
    return PGD(norm="linf", eps=0.1, step_size=0.05, steps=2)


# --- 8. fit shows the metrics ---------------------------------------------------------------


@pytest.mark.parametrize("method", list(TRAIN_KEYS), ids=str)
def test_fit_history_has_exactly_the_active_metrics(vector_data, method):
    x, y = vector_data
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), method=method, attack=_attack())
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    assert set(history) == TRAIN_KEYS[method]
    for key, values in history.items():
        assert len(values) == 2 and all(np.isfinite(values)), key
        if key.startswith(("acc_", "kept_")):
            assert all(0.0 <= v <= 1.0 for v in values), key
        else:
            assert all(v >= 0.0 for v in values), key
    # The total is the sum of the terms; a Mean over batches of per-batch sums is the sum of the Means.
    terms = [k for k in history if k.startswith("l_")]
    np.testing.assert_allclose(history["loss"], np.sum([history[k] for k in terms], axis=0), rtol=1e-5)


def test_half_at_logs_the_clean_accuracy_of_the_robust_way_only(vector_data):
    """Footnote 2's half-and-half AT needs the clean robust way (st_r) and nothing else clean."""
    x, y = vector_data
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), method="1way-at-half", attack=_attack())
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=(x, y)).history
    assert {k for k in history if not k.startswith("val_")} == {"loss", "l_st_r", "l_ar", "acc_r"}
    assert {"val_acc_s", "val_acc_r", "val_acc_n"} <= set(history)
    # Summed, as YOPO's half-half training back-propagates both cross-entropies before one step.
    np.testing.assert_allclose(history["loss"], np.add(history["l_st_r"], history["l_ar"]), rtol=1e-5)


def test_fit_with_validation_data_reports_val_keys(vector_data):
    x, y = vector_data
    model = tiny_model()
    model.compile(method="aat++", attack=_attack())
    history = model.fit(x, y, epochs=1, batch_size=16, validation_data=(x[:8], y[:8]), verbose=0).history
    val = {k for k in history if k.startswith("val_")}
    assert {"val_loss", "val_l_st", "val_acc_s", "val_acc_r", "val_acc_n"} <= val
    assert TRAIN_KEYS["aat++"] <= set(history)
    # Validation is clean (test_step): val_loss is L_ST on the validation data.
    clean = model.way_logits(x[:8])
    l_st = float(np.mean(aatk.L_ST(clean["standard"], clean["robust"], clean["non_robust"], y[:8])))
    np.testing.assert_allclose(history["val_l_st"][0], l_st, rtol=1e-5)
    np.testing.assert_allclose(history["val_loss"][0], l_st, rtol=1e-5)
    for way, short in (("standard", "s"), ("robust", "r"), ("non_robust", "n")):
        accuracy = float(np.mean(np.argmax(np.asarray(clean[way]), -1) == y[:8]))
        np.testing.assert_allclose(history[f"val_acc_{short}"][0], accuracy, rtol=1e-6)


def test_kept_fractions_count_the_misclassified_adversarial_examples(vector_data):
    x, y = vector_data
    model = tiny_model()
    attack = PGD(norm="linf", eps=0.3, step_size=0.2, steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.0), method="aat++", attack=attack)
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0).history
    for way, short in (("standard", "s"), ("non_robust", "n")):
        predictions = np.argmax(np.asarray(model(attack(model, x, y, way=way), way=way)), -1)
        np.testing.assert_allclose(history[f"kept_{short}"][0], np.mean(predictions != y), rtol=1e-6)


def test_fit_on_a_dataset_of_images(image_data):
    x, y = image_data
    model = aatk.ThreeWayModel(conv_encoder(), conv_encoder(), num_classes=3)
    model.compile(optimizer=keras.optimizers.SGD(0.1), method="aat++", attack=PGD(norm="l2", eps=0.2, step_size=0.1, steps=1, random_start=True, seed=0))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(dataset, epochs=2, verbose=0, validation_data=dataset).history
    assert TRAIN_KEYS["aat++"] <= set(history) and "val_loss" in history
    assert all(len(v) == 2 for v in history.values())
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights()))


def test_fit_accepts_labels_of_shape_n_by_1(vector_data):
    x, y = vector_data
    model = tiny_model()
    model.compile(method="aat", attack=_attack())
    history = model.fit(x, y[:, None], epochs=1, batch_size=32, verbose=0).history
    assert "l_as" in history


def test_standard_training_decreases_the_loss(vector_data):
    x, y = vector_data
    model = tiny_model(width=8)

    def l_st():
        clean = model.way_logits(x)
        return float(np.mean(aatk.L_ST(clean["standard"], clean["robust"], clean["non_robust"], y)))

    before = l_st()
    model.compile(optimizer=keras.optimizers.Adam(0.05), method="st")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert l_st() < before - 0.05


# --- 7. Save/load round trip --------------------------------------------------------------


def test_save_and_load_round_trip(vector_data, tmp_path):
    x, y = vector_data
    model = tiny_model()
    attack = PGD(norm="l2", eps=0.2, step_size=0.1, steps=2, bounds=(0.0, 1.0))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), method="aat++", attack=attack)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True
    assert isinstance(loaded, aatk.ThreeWayModel)
    for way in aatk.WAYS:
        np.testing.assert_array_equal(np.asarray(loaded(x, way=way)), np.asarray(model(x, way=way)))
    assert loaded.terms == model.terms == ("st", "as", "ar", "an")
    assert isinstance(loaded.attack, PGD)
    assert loaded.attack.get_config() == model.attack.get_config()
    assert loaded.attack.bounds == (0.0, 1.0)
    assert loaded.num_classes == 3
    assert loaded.encoder_r is not loaded.encoder_n
    # Same attack, same adversarial examples.
    np.testing.assert_array_equal(
        np.asarray(loaded.attack(loaded, x, y, way="robust")), np.asarray(model.attack(model, x, y, way="robust"))
    )
    # The optimizer state came along: one more epoch on both gives the same weights.
    h1 = model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False).history
    h2 = loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False).history
    assert set(h1) == set(h2)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_and_load_an_uncompiled_and_a_standard_model(vector_data, tmp_path):
    x, _ = vector_data
    model = tiny_model()
    model.save(tmp_path / "raw.keras")
    loaded = keras.models.load_model(tmp_path / "raw.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x, way="non_robust")), np.asarray(model(x, way="non_robust")))
    model.compile(method="st")
    model.save(tmp_path / "st.keras")
    loaded = keras.models.load_model(tmp_path / "st.keras")
    assert loaded.terms == ("st",) and loaded.attack is None


def test_pgd_serialisation_round_trip():
    attack = PGD(norm="l2", eps=0.5, step_size=0.1, steps=3, random_start=True, bounds=None, seed=4)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert isinstance(again, PGD) and again.get_config() == attack.get_config()
    assert repr(again) == repr(attack)


@pytest.mark.parametrize("method", ["1way-st", "1way-at", "1way-at-half"])
def test_one_way_baselines_train_one_way_and_keep_their_optimizer_state(tmp_path, method):
    """A one-way baseline updates only its own encoder and the head; saving and loading keeps
    the optimizer state of every weight (an optimizer built from the updated subset would not match)."""
    import warnings

    model = tiny_model()
    attack = PGD(norm="linf", eps=0.1, step_size=0.05, steps=1)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), method=method, attack=attack)
    x = np.random.default_rng(0).random((32, 6)).astype("float32")
    y = np.arange(32) % 3
    idle = model.encoder_r if method == "1way-st" else model.encoder_n
    before = [np.array(w) for w in idle.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, idle.get_weights())), "the other encoder moved"
    expected = {"1way-st": {"l_st_n"}, "1way-at": {"l_ar"}, "1way-at-half": {"l_st_r", "l_ar"}}[method]
    assert {k for k in history.history if k.startswith("l_")} == expected
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer" would fail here
        restored = keras.models.load_model(tmp_path / "m.keras")
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert restored.term_weights == model.term_weights
