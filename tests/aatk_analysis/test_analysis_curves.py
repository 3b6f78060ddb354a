"""aatk.analysis.accuracy_vs_eps: each way under PGD on its own loss, for a grid of radii ε."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aatk.analysis import accuracy_vs_eps
from aatk.model import WAYS
from analysis_testutils import affine_model, set_affine_weights, tiny_model


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(11)
    return tiny_model(input_dim=4, width=4, num_classes=3)


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    return rng.uniform(0, 1, (10, 4)).astype("float32"), rng.integers(0, 3, 10).astype("int32")


def _affine_weights(rng, classes=3, input_dim=3, width=2, hidden=3):
    return (
        rng.uniform(-0.5, 0.5, (input_dim, width)),
        rng.uniform(-0.5, 0.5, (input_dim, width)),
        rng.uniform(-0.5, 0.5, (2 * width, hidden)),
        rng.uniform(-0.5, 0.5, (hidden, classes)),
        rng.uniform(-0.1, 0.1, classes),
    )


def test_eps_zero_is_clean_accuracy_and_result_layout(small_model, data):
    x, y = data
    result = accuracy_vs_eps(small_model, x, y, norm="linf", eps_values=[0.0, 0.2], steps=2)
    assert set(result) == {"eps", "accuracy", "step_sizes", "norm", "steps", "samples"}
    assert result["eps"].dtype == np.float64 and result["eps"].tolist() == [0.0, 0.2]
    assert result["norm"] == "linf" and result["steps"] == 2 and result["samples"] == 10
    assert list(result["accuracy"]) == list(WAYS)
    for way in WAYS:
        clean = np.mean(np.argmax(np.asarray(small_model(x, training=False, way=way)), axis=-1) == y)
        assert result["accuracy"][way].shape == (2,)
        assert result["accuracy"][way][0] == pytest.approx(clean, abs=1e-12)
        assert 0.0 <= result["accuracy"][way][1] <= 1.0
    # Madry's rule: α = 2.5·ε / steps; nothing is attacked at ε = 0.
    assert np.isnan(result["step_sizes"][0]) and result["step_sizes"][1] == pytest.approx(0.25)


def test_explicit_step_size_and_deterministic_attack_ignores_batching(small_model, data):
    x, y = data
    kwargs = dict(norm="l2", eps_values=[0.5], steps=2, step_size=0.3, random_start=False, ways=("standard", "robust"))
    whole = accuracy_vs_eps(small_model, x, y, **kwargs)
    batched = accuracy_vs_eps(small_model, x, y[:, None], batch_size=4, **kwargs)
    assert whole["step_sizes"].tolist() == [0.3]
    assert list(whole["accuracy"]) == ["standard", "robust"]
    for way in whole["accuracy"]:
        np.testing.assert_array_equal(batched["accuracy"][way], whole["accuracy"][way])


def test_seeded_random_start_is_reproducible_and_one_way_does_not_depend_on_the_others(small_model, data):
    x, y = data
    kwargs = dict(norm="linf", eps_values=[0.3], steps=1, seed=3)
    first = accuracy_vs_eps(small_model, x, y, **kwargs)
    again = accuracy_vs_eps(small_model, x, y, **kwargs)
    alone = accuracy_vs_eps(small_model, x, y, ways=("robust",), **kwargs)
    for way in WAYS:
        np.testing.assert_array_equal(again["accuracy"][way], first["accuracy"][way])
    np.testing.assert_array_equal(alone["accuracy"]["robust"], first["accuracy"]["robust"])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_way_that_ignores_its_input_keeps_its_accuracy_while_the_other_falls(norm):
    # Robust encoder dead (z_r = 0): the robust way always says class 0 (offset 0.05).
    # Non-robust way: logits ±4·(x0 − x1) + offset, so at ε = 1 every input can be flipped
    # (ℓ∞: to a corner of the box; ℓ2: by 1 along (∓1, ±1)/√2, then clipped to the box).
    w_r = np.zeros((2, 2))
    w_n = np.eye(2)
    w1 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    w2 = np.array([[2.0, -2.0], [-2.0, 2.0]])
    b2 = np.array([0.05, 0.0])
    model = affine_model(w_r, w_n, w1, w2, b2)
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (12, 2)).astype("float32")
    y = (4.0 * (x[:, 0] - x[:, 1]) + 0.05 < 0).astype("int32")  # the non-robust way's clean prediction
    assert 0 < y.sum() < len(y)
    result = accuracy_vs_eps(model, x, y, norm=norm, eps_values=[0.0, 0.3, 1.0], steps=2, ways=("robust", "non_robust"))
    robust = result["accuracy"]["robust"]
    assert robust[0] == pytest.approx(np.mean(y == 0))
    np.testing.assert_array_equal(robust, robust[0])  # no ε moves a way that ignores its input
    non_robust = result["accuracy"]["non_robust"]
    assert non_robust[0] == 1.0 and non_robust[-1] == 0.0
    assert (np.diff(non_robust) <= 0).all()


@pytest.fixture(scope="module")
def binary_affine_model():
    """One binary affine model for the property below; each example sets its weights."""
    return affine_model(*_affine_weights(np.random.default_rng(0), classes=2), bias=20.0)


@settings(deadline=None, max_examples=4)
@given(st.integers(0, 2**16), st.sampled_from(["linf", "l2"]))
def test_deterministic_attack_accuracy_is_non_increasing_in_eps(binary_affine_model, seed, norm):
    """Binary affine ways: the attack direction is fixed, so a larger ball can only lower the margin."""
    rng = np.random.default_rng(seed)
    w_r, w_n, w1, w2, b2 = _affine_weights(rng, classes=2)
    model = set_affine_weights(binary_affine_model, 2 * w_r, 2 * w_n, 2 * w1, 2 * w2, b2, bias=20.0)
    x = rng.uniform(0, 1, (16, 3)).astype("float32")
    y = rng.integers(0, 2, 16)
    bounds = (0.0, 1.0) if norm == "linf" else None
    result = accuracy_vs_eps(model, x, y, norm=norm, eps_values=[0.0, 0.1, 0.4], steps=2, random_start=False, bounds=bounds)
    for way, accuracy in result["accuracy"].items():
        assert (np.diff(accuracy) <= 0).all(), (way, accuracy)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps_values": []}, "empty"),
        ({"eps_values": [-0.1, 0.2]}, ">= 0"),
        ({"eps_values": [0.1, 0.1]}, "strictly increasing"),
        ({"eps_values": [0.2, 0.1]}, "strictly increasing"),
        ({"eps_values": [0.0, np.nan]}, "finite"),
        ({"eps_values": [0.0, np.inf]}, "finite"),
        ({"eps_values": [[0.1, 0.2]]}, "1-D"),
        ({"eps_values": 0.1}, "1-D"),
        ({"eps_values": "0.1"}, "sequence of numbers"),
        ({"eps_values": [True]}, "booleans"),
        ({"eps_values": ["a"]}, "sequence of numbers"),
        ({"norm": "l1"}, "norm must be one of"),
        ({"ways": ("robust", "upside_down")}, "way must be one of"),
        ({"ways": ()}, "at least one"),
        ({"ways": ("robust", "robust")}, "repeat"),
        ({"steps": 0}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -1.0}, "step_size"),
        ({"step_size": np.nan}, "step_size"),
        ({"step_size": "big"}, "step_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"random_start": "yes"}, "random_start"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"bounds": (0.0, 0.5)}, "bounds"),  # the inputs leave these bounds
    ],
)
def test_bad_options(small_model, data, kwargs, message):
    x, y = data
    arguments = {"norm": "linf", "eps_values": [0.0, 0.1], "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        accuracy_vs_eps(small_model, x, y, **arguments)


def test_bad_data(small_model, data):
    x, y = data
    kwargs = {"norm": "linf", "eps_values": [0.1], "steps": 1}
    with pytest.raises(ValueError, match="ThreeWayModel"):
        accuracy_vs_eps(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), x, y, **kwargs)
    with pytest.raises(ValueError, match="labels for"):
        accuracy_vs_eps(small_model, x, y[:-1], **kwargs)
    with pytest.raises(ValueError, match="per-example shape"):
        accuracy_vs_eps(small_model, x[:, :2], y, **kwargs)
    with pytest.raises(ValueError, match=r"outside the model's input_range \(0\.0, 1\.0\)"):
        accuracy_vs_eps(small_model, x + 2.0, y, **kwargs)
    unbounded = tiny_model(input_dim=4, width=4, num_classes=3)
    unbounded.compile(method="st", input_range=None)  # the probe attack's own bounds still apply
    with pytest.raises(ValueError, match="attack's bounds are"):
        accuracy_vs_eps(unbounded, x + 2.0, y, **kwargs)
    with pytest.raises(ValueError, match="non-empty"):
        accuracy_vs_eps(small_model, x[:0], y[:0], **kwargs)
