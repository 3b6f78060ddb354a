"""aatk.baselines: the pseudo-input datasets of Ilyas et al. (2019) and the PI three-way model.

Paper: Section 3.1 ("PI (Pseudo-Input)"), Tables 1, 2, 4b.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import aatk
from aatk import PGD, ThreeWayModel
from aatk.baselines import PseudoInputModel, non_robust_dataset, random_derangement, robust_dataset
from baselines_testutils import linear_encoder, np_cross_entropy, np_head, set_hand_weights, tiny_model, toy_data

# --- the non-robust datasets ---------------------------------------------------------------


def test_deterministic_targets_are_the_next_class():
    model = tiny_model()
    x, y = toy_data(12)
    attack = PGD(norm="l2", eps=0.5, step_size=0.1, steps=2)
    x_adv, t = non_robust_dataset(model, x, y, attack=attack, targets="deterministic")
    np.testing.assert_array_equal(t, (y + 1) % 3)
    assert t.dtype == np.int32 and x_adv.shape == x.shape and x_adv.dtype == np.float32


def test_random_targets_differ_from_the_labels_and_are_seeded():
    model = tiny_model()
    x, y = toy_data(48)
    attack = PGD(norm="l2", eps=0.1, step_size=0.1, steps=1)
    _, t = non_robust_dataset(model, x, y, attack=attack, seed=3)
    _, again = non_robust_dataset(model, x, y, attack=attack, seed=3)
    assert np.all(t != y) and np.all((t >= 0) & (t < 3))
    np.testing.assert_array_equal(t, again)
    assert set(((t - y) % 3).tolist()) == {1, 2}  # both other classes are drawn


@settings(max_examples=6, deadline=None)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.0, 1.0),
    steps=st.integers(1, 3),
    targets=st.sampled_from(["random", "deterministic"]),
)
def test_targeted_examples_stay_in_the_ball_and_the_bounds(norm, eps, steps, targets):
    model = tiny_model()
    x, y = toy_data(10)
    attack = PGD(norm=norm, eps=eps, step_size=0.2, steps=steps)
    x_adv, t = non_robust_dataset(model, x, y, attack=attack, targets=targets, batch_size=4)
    delta = (x_adv - x).astype(np.float64)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert np.all(size <= eps + 1e-5)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(t != y)


def test_targeted_examples_fool_the_standard_model_towards_the_target(one_way_pair):
    st_model, x, y = one_way_pair["st"], one_way_pair["x"], one_way_pair["y"]
    attack = PGD(norm="linf", eps=0.5, step_size=0.1, steps=10)
    x_adv, t = non_robust_dataset(st_model, x, y, attack=attack)
    predicted = np.argmax(np.asarray(st_model(x_adv, way="non_robust")), -1)
    assert np.mean(predicted == t) >= 0.8
    assert np.mean(np.argmax(np.asarray(st_model(x, way="non_robust")), -1) == t) <= 0.3  # t was not the clean answer


def test_non_robust_dataset_rejects_bad_arguments():
    model = tiny_model()
    x, y = toy_data(6)
    attack = PGD(eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="attack must be an aatk.PGD"):
        non_robust_dataset(model, x, y, attack=None)
    with pytest.raises(ValueError, match="targets must be 'random'"):
        non_robust_dataset(model, x, y, attack=attack, targets="next")
    with pytest.raises(ValueError, match="way must be one of"):
        non_robust_dataset(model, x, y, attack=attack, way="both")
    with pytest.raises(ValueError, match="standard_model must be an aatk.ThreeWayModel"):
        non_robust_dataset(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]), x, y, attack=attack)
    with pytest.raises(ValueError, match=r"outside the model's input_range \(0\.0, 1\.0\)"):
        non_robust_dataset(model, x + 1.0, y, attack=attack)
    unbounded = tiny_model()
    unbounded.compile(method="st", input_range=None)  # the attack's own bounds still apply
    with pytest.raises(ValueError, match="attack's bounds are"):
        non_robust_dataset(unbounded, x + 1.0, y, attack=attack)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        non_robust_dataset(model, x, y + 3, attack=attack)
    with pytest.raises(ValueError, match="5 labels for 6 inputs"):
        non_robust_dataset(model, x, y[:5], attack=attack)


# --- the robust dataset --------------------------------------------------------------------


def test_random_derangement():
    for n in (2, 3, 10, 101):
        p = random_derangement(n, seed=n)
        assert sorted(p.tolist()) == list(range(n)) and np.all(p != np.arange(n))
    np.testing.assert_array_equal(random_derangement(20, seed=1), random_derangement(20, seed=1))
    assert not np.array_equal(random_derangement(20, seed=1), random_derangement(20, seed=2))
    for bad in (0, 1, 2.0, True):
        with pytest.raises(ValueError, match="n >= 2"):
            random_derangement(bad)


def test_robust_dataset_starts_from_other_images_and_keeps_the_labels(one_way_pair):
    at_model, x, y = one_way_pair["at"], one_way_pair["x"][:12], one_way_pair["y"][:12]
    # One tiny step: the images are still (almost) the start images, which are other training images.
    x_one, y_one = robust_dataset(at_model, x, y, steps=1, step_size=1e-3, seed=4)
    starts = x[random_derangement(12, seed=4)]
    assert np.all(np.linalg.norm(x_one - starts, axis=1) <= 1e-3 + 1e-6)
    assert np.all(np.linalg.norm(x_one - x, axis=1) > 1e-2)
    np.testing.assert_array_equal(y_one, y)
    # More steps: the robust representation moves towards the target's, within bounds.
    x_rob, y_rob = robust_dataset(at_model, x, y[:, None], steps=40, step_size=0.02, seed=4)
    z = lambda a: np.asarray(at_model.representations(a)[0])  # noqa: E731
    assert np.mean(np.linalg.norm(z(x_rob) - z(x), axis=1)) < np.mean(np.linalg.norm(z(starts) - z(x), axis=1))
    assert x_rob.min() >= 0.0 and x_rob.max() <= 1.0 and x_rob.dtype == np.float32
    assert y_rob.shape == (12,) and y_rob.dtype == np.int32


def test_robust_dataset_rejects_bad_arguments():
    model = tiny_model()
    x, y = toy_data(6)
    with pytest.raises(ValueError, match="n >= 2"):
        robust_dataset(model, x[:1], y[:1], steps=1)
    with pytest.raises(ValueError, match="robust_model must be an aatk.ThreeWayModel"):
        robust_dataset(object(), x, y, steps=1)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        robust_dataset(model, x, y, steps=0)
    with pytest.raises(ValueError, match=r"outside the model's input_range \(0\.0, 1\.0\)"):
        robust_dataset(model, x * 2.0, y, steps=1)
    unbounded = tiny_model()
    unbounded.compile(method="st", input_range=None)  # the inversion's own bounds still apply
    with pytest.raises(ValueError, match="outside bounds"):
        robust_dataset(unbounded, x * 2.0, y, steps=1)
    with pytest.raises(ValueError, match="labels must lie"):
        robust_dataset(model, x, y - 1, steps=1)


# --- PseudoInputModel ----------------------------------------------------------------------


def _pi_data(n=24, seed=0):
    x, y = toy_data(n, seed)
    rng = np.random.default_rng(seed + 1)
    x_rob = rng.uniform(0, 1, x.shape).astype("float32")
    x_non = rng.uniform(0, 1, x.shape).astype("float32")
    return (x, x_rob, x_non), (y, rng.integers(0, 3, n).astype("int32"), (y + 1) % 3)


def test_reported_loss_is_the_sum_of_three_mean_cross_entropies():
    rng = np.random.default_rng(0)
    w_r, w_n = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    w1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(3)
    w2, b2 = rng.standard_normal((3, 3)), rng.standard_normal(3)
    model = PseudoInputModel(linear_encoder(3, 2), linear_encoder(3, 2), num_classes=3, hidden=3)
    set_hand_weights(model, w_r, w_n, w1, b1, w2, b2)
    x_nat, x_rob, x_non = (rng.uniform(0, 1, (5, 3)).astype("float32") for _ in range(3))
    y_nat, y_rob, y_non = (rng.integers(0, 3, 5).astype("int32") for _ in range(3))
    zeros = np.zeros((5, 2))
    s = np_head(x_nat @ w_r, x_nat @ w_n, w1, b1, w2, b2)
    r = np_head(x_rob @ w_r, zeros, w1, b1, w2, b2)
    n = np_head(zeros, x_non @ w_n, w1, b1, w2, b2)
    expected = {
        "l_pi_s": np_cross_entropy(s, y_nat).mean(),
        "l_pi_r": np_cross_entropy(r, y_rob).mean(),
        "l_pi_n": np_cross_entropy(n, y_non).mean(),
    }
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit((x_nat, x_rob, x_non), (y_nat, y_rob, y_non), batch_size=5, epochs=1, shuffle=False, verbose=0)
    logs = {k: v[0] for k, v in history.history.items()}
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value, rel=1e-5)
    assert logs["loss"] == pytest.approx(sum(expected.values()), rel=1e-5)
    # Clean accuracies are those of the three ways on the natural part.
    r_nat = np_head(x_nat @ w_r, zeros, w1, b1, w2, b2)
    n_nat = np_head(zeros, x_nat @ w_n, w1, b1, w2, b2)
    for key, logits in (("acc_s", s), ("acc_r", r_nat), ("acc_n", n_nat)):
        assert logs[key] == pytest.approx(np.mean(np.argmax(logits, -1) == y_nat))


def test_training_lowers_the_loss_and_each_way_learns_its_own_part():
    model = tiny_model(PseudoInputModel)
    x, y = _pi_data()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    robust_before = list(map(np.array, model.encoder_r.get_weights()))
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, validation_data=(x[0], y[0]))
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert set(history.history) == {
        "loss", "l_pi_s", "l_pi_r", "l_pi_n", "acc_s", "acc_r", "acc_n",
        "val_loss", "val_acc_s", "val_acc_r", "val_acc_n",
    }
    assert any(not np.array_equal(a, b) for a, b in zip(robust_before, model.encoder_r.get_weights()))


def test_fit_on_a_dataset_and_evaluate_accepts_the_model():
    model = tiny_model(PseudoInputModel)
    x, y = _pi_data(16)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    assert isinstance(model, ThreeWayModel)
    report = aatk.evaluate(model, (x[0], y[0]), PGD(eps=0.1, step_size=0.05, steps=1), adaptive=False)
    assert 0.0 <= report["R"] <= 1.0 and "DIA" in report


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(PseudoInputModel)
    x, y = _pi_data(16)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "pi.keras")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Ss]kipping variable loading.*")
        loaded = keras.models.load_model(tmp_path / "pi.keras")  # safe_mode=True
    assert type(loaded) is PseudoInputModel and loaded.method == "pi" and loaded.attack is None
    for way in aatk.WAYS:
        np.testing.assert_array_equal(np.asarray(loaded(x[0], way=way)), np.asarray(model(x[0], way=way)))
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    h1 = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    h2 = loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert set(h1) == set(h2)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pseudo_inputs_need_not_be_in_the_unit_interval():
    model = tiny_model(PseudoInputModel)
    (x_nat, x_rob, x_non), y = _pi_data(8)
    model.compile(optimizer="sgd")
    model.fit((x_nat, 2.0 * x_rob - 0.5, x_non), y, batch_size=8, epochs=1, verbose=0)


def test_bad_inputs_raise():
    model = tiny_model(PseudoInputModel)
    (x_nat, x_rob, x_non), (y_nat, y_rob, y_non) = _pi_data(8)
    with pytest.raises(ValueError, match="before fit"):
        model.fit((x_nat, x_rob, x_non), (y_nat, y_rob, y_non))
    with pytest.raises(ValueError, match="does not take method="):
        model.compile(optimizer="sgd", method="aat++")
    with pytest.raises(ValueError, match="does not take attack="):
        model.compile(optimizer="sgd", attack=PGD(eps=0.1, step_size=0.1, steps=1))
    with pytest.raises(ValueError, match="does not take loss="):
        model.compile(optimizer="sgd", loss="mse")
    model.compile(optimizer="sgd")
    nan_robust = x_rob.copy()
    nan_robust[2, 3] = np.nan
    cases = [
        ((x_nat, y_nat), "batches \\(\\(x_natural, x_robust, x_non_robust\\)"),
        (((x_nat, x_rob), (y_nat, y_rob)), "batches"),
        (((x_nat, x_rob, x_non), y_nat), "batches"),
        (((x_nat, x_rob[:6], x_non), (y_nat, y_rob[:6], y_non)), "equal shapes"),
        (((x_nat, x_rob[:, :5], x_non), (y_nat, y_rob, y_non)), "equal shapes"),
        (
            ((x_nat[:, :5], x_rob[:, :5], x_non[:, :5]), (y_nat, y_rob, y_non)),
            r"x_natural has per-example shape \(5,\)",
        ),
        (((x_nat, nan_robust, x_non), (y_nat, y_rob, y_non)), "x_robust holds 1 non-finite"),
        (((x_nat, x_rob, x_non), (y_nat, y_rob, y_non + 3)), r"labels must lie in \[0, 3\)"),
        (((x_nat, x_rob, x_non), (y_nat, y_rob[:6], y_non)), "6 labels for 8 inputs"),
    ]
    for (x, y), match in cases:
        with pytest.raises(ValueError, match=match):
            model.fit(x, y, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit((x_nat, x_rob, x_non), (y_nat, y_rob, y_non), validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="not the three pseudo-input parts"):
        model.fit(
            (x_nat, x_rob, x_non), (y_nat, y_rob, y_non), verbose=0,
            validation_data=((x_nat, x_rob, x_non), (y_nat, y_rob, y_non)),
        )
