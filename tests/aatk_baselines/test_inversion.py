"""aatk.analysis.inversion: representation inversion (Engstrom et al. 2019).

Paper: Section 3.3 (Visualization), Appendix D.2, Figure 2a, Figure 4.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aatk import ThreeWayModel
from aatk.analysis.inversion import InversionResult, invert_representation
from baselines_testutils import linear_encoder, tiny_model


def _targets(n=5, dim=6, seed=0, low=0.2, high=0.8):
    return np.random.default_rng(seed).uniform(low, high, size=(n, dim)).astype("float32")


@pytest.mark.parametrize("representation", ["robust", "non_robust"])
def test_distance_decreases_on_a_tiny_model(representation):
    model = tiny_model()
    result = invert_representation(model, _targets(), representation=representation, steps=50, step_size=0.02)
    assert isinstance(result, InversionResult)
    assert result.images.shape == (5, 6) and result.images.dtype == np.float32
    assert result.distances.shape == result.initial_distances.shape == (5,)
    assert np.all(result.distances < result.initial_distances)


def test_linear_invertible_encoder_recovers_the_target():
    """z = x W with W square and well conditioned: the only preimage of g(t) is t itself."""
    model = ThreeWayModel(linear_encoder(6, 6), linear_encoder(6, 6), num_classes=3)
    w = 2.0 * np.eye(6) + 0.1 * np.random.default_rng(3).standard_normal((6, 6))
    model.encoder_r.layers[0].set_weights([w.astype("float32")])
    targets = _targets()
    result = invert_representation(model, targets, steps=600, step_size=0.01)
    assert np.all(result.distances < 0.05 * result.initial_distances)
    np.testing.assert_allclose(result.images, targets, atol=0.02)
    # Recomputed by hand: the reported distances are those of the returned images.
    z = lambda a: np.asarray(a, np.float64) @ w  # noqa: E731
    by_hand = np.linalg.norm(z(result.images) - z(targets), axis=1)
    np.testing.assert_allclose(result.distances, by_hand, rtol=1e-3, atol=1e-4)


def test_array_start_and_batching():
    model = tiny_model()
    targets = _targets(n=5)
    start = _targets(n=5, seed=9)
    one = invert_representation(model, targets, start=start, steps=1, step_size=0.01)
    # One normalised step of length 0.01 from the start, and the initial distance is the start's.
    assert np.all(np.linalg.norm(one.images - start, axis=1) <= 0.01 + 1e-6)
    z_r = lambda a: np.asarray(model.representations(a)[0])  # noqa: E731
    np.testing.assert_allclose(one.initial_distances, np.linalg.norm(z_r(start) - z_r(targets), axis=1), rtol=1e-5)
    whole = invert_representation(model, targets, start=start, steps=10, step_size=0.01)
    batched = invert_representation(model, targets, start=start, steps=10, step_size=0.01, batch_size=2)
    np.testing.assert_allclose(whole.images, batched.images, atol=1e-6)


def test_noise_start_is_seeded():
    model = tiny_model()
    a = invert_representation(model, _targets(), steps=2, seed=5)
    b = invert_representation(model, _targets(), steps=2, seed=5)
    c = invert_representation(model, _targets(), steps=2, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.initial_distances, c.initial_distances)


@settings(max_examples=8, deadline=None)
@given(
    low=st.floats(-2.0, 0.5),
    width=st.floats(0.1, 3.0),
    step_size=st.floats(0.01, 5.0),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    representation=st.sampled_from(["robust", "non_robust"]),
)
def test_images_stay_within_bounds(low, width, step_size, steps, seed, representation):
    model = tiny_model()
    bounds = (low, low + width)
    targets = np.random.default_rng(seed).uniform(bounds[0], bounds[1], size=(3, 6)).astype("float32")
    result = invert_representation(
        model, targets, representation=representation, steps=steps, step_size=step_size, bounds=bounds, seed=seed
    )
    assert result.images.min() >= np.float32(bounds[0]) and result.images.max() <= np.float32(bounds[1])
    assert np.all(np.isfinite(result.distances))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"representation": "standard"}, "representation must be one of"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 2.5}, "steps must be an integer >= 1"),
        ({"step_size": 0.0}, "step_size must be a finite number > 0"),
        ({"step_size": -1.0}, "step_size must be a finite number > 0"),
        ({"step_size": float("nan")}, "step_size must be a finite number > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"bounds": (1.0, 0.0)}, "low < high"),
        ({"start": "zeros"}, "start must be 'noise' or an array"),
        ({"start": np.full((4, 6), 0.5, "float32")}, r"start has shape \(4, 6\) but targets have shape \(5, 6\)"),
        ({"start": np.full((5, 6), 1.5, "float32")}, "start has values in"),
        ({"bounds": None}, "start='noise' .* needs bounds"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        invert_representation(tiny_model(), _targets(), **kwargs)


def test_bad_targets_and_models_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"targets has values in \[.*\] outside bounds"):
        invert_representation(model, _targets() + 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        invert_representation(model, np.where(np.eye(5, 6) > 0, np.nan, 0.5).astype("float32"))
    with pytest.raises(ValueError, match=r"per-example shape \(4,\) but the model expects \(6,\)"):
        invert_representation(model, np.full((2, 4), 0.5, "float32"))
    with pytest.raises(ValueError, match="empty"):
        invert_representation(model, np.zeros((0, 6), "float32"))
    with pytest.raises(ValueError, match="must have representations"):
        invert_representation(object(), _targets())
