"""PGD (aatk.attacks): feasibility, ascent, and the random starts' distributions.

Paper: Eq. 2 (x_adv = x + argmax over the ε-ball), Table 4a (ℓ∞ and ℓ2 PGD).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops
from scipy import stats

from aatk.attacks import PGD, L2Ball, LinfBall
from aatk_testutils import check_feasible, tiny_model

# --- 1. PGD never leaves the ε-ball or the bounds -----------------------------------------

SHAPES = st.sampled_from([(5, 6), (3, 1), (4, 4, 4, 1), (2, 3, 2, 2)])


def _linear_loss(w):
    w = ops.convert_to_tensor(w, "float32")
    axes = tuple(range(1, len(w.shape) + 1))
    return lambda points: ops.sum(points * w, axis=axes)


def _outward_quadratic_loss(c):
    """½‖x − c‖² per example: its ascent pushes away from c, out of any ball."""
    c = ops.convert_to_tensor(c, "float32")
    axes = tuple(range(1, len(c.shape) + 1))
    return lambda points: 0.5 * ops.sum(ops.square(points - c), axis=axes)


@settings(max_examples=25)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.one_of(st.just(0.0), st.floats(1e-3, 1.0)),
    step_size=st.floats(1e-3, 2.0),
    steps=st.integers(1, 3),
    random_start=st.booleans(),
    shape=SHAPES,
    bounded=st.booleans(),
    loss_kind=st.sampled_from(["linear", "quadratic"]),
    seed=st.integers(0, 2**16),
)
def test_pgd_stays_in_ball_and_bounds(norm, eps, step_size, steps, random_start, shape, bounded, loss_kind, seed):
    rng = np.random.default_rng(seed)
    bounds = (0.0, 1.0) if bounded else None
    low, high = (0.0, 1.0) if bounded else (-2.0, 2.0)
    x = rng.uniform(low, high, size=shape).astype("float32")
    # Put some coordinates exactly on the bounds, where clipping matters most.
    x.reshape(-1)[:: 3] = low
    x.reshape(-1)[1::5] = high
    weights = rng.normal(size=shape[1:]).astype("float32")
    loss_fn = _linear_loss(weights) if loss_kind == "linear" else _outward_quadratic_loss(x[0] + weights)
    attack = PGD(norm=norm, eps=eps, step_size=step_size, steps=steps, random_start=random_start, bounds=bounds, seed=seed)
    x_adv = attack.perturb(loss_fn, x)
    check_feasible(x, x_adv, attack)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("way", ["standard", "robust", "non_robust"])
def test_pgd_on_a_model_stays_in_ball_and_bounds(vector_data, norm, random_start, way):
    x, y = vector_data
    model = tiny_model()
    attack = PGD(norm=norm, eps=0.3, step_size=0.25, steps=3, random_start=random_start, seed=3)
    x_adv = attack(model, x, y, way=way)
    check_feasible(x, x_adv, attack)


def test_feasibility_check_can_fail(monkeypatch):
    """Without the projection the same check rejects the iterate (so the tests above can fail)."""
    monkeypatch.setattr(LinfBall, "project", staticmethod(lambda delta, eps: delta))
    x = np.full((2, 3), 0.5, "float32")
    attack = PGD(norm="linf", eps=0.1, step_size=0.3, steps=1)
    x_adv = attack.perturb(_linear_loss(np.ones(3, "float32")), x)
    with pytest.raises(AssertionError):
        check_feasible(x, x_adv, attack)


# --- 2. A PGD step raises the loss on convex and linear losses ----------------------------


@settings(max_examples=25)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.01, 1.0),
    step_size=st.floats(0.01, 2.0),
    shape=SHAPES,
    seed=st.integers(0, 2**16),
)
def test_one_step_increases_convex_loss(norm, eps, step_size, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=shape).astype("float32")
    c = rng.uniform(-1, 1, size=shape[1:]).astype("float32")
    loss_fn = _outward_quadratic_loss(c)
    attack = PGD(norm=norm, eps=eps, step_size=step_size, steps=1, bounds=None)
    before = np.asarray(loss_fn(x), np.float64)
    after = np.asarray(loss_fn(attack.perturb(loss_fn, x)), np.float64)
    assert (after > before).all(), (before, after)
    # The exact gain of one step away from c by r = min(α, ε):
    # ℓ2: ½(‖x−c‖ + r)² − ½‖x−c‖²;  ℓ∞: Σ_i ½(|x_i−c_i| + r)² − ½|x_i−c_i|².
    r = min(step_size, eps)
    d = np.abs(np.asarray(x, np.float64) - c).reshape(len(x), -1)
    if norm == "l2":
        expected = 0.5 * (np.linalg.norm(d, axis=1) + r) ** 2
    else:
        expected = 0.5 * ((d + r) ** 2).sum(axis=1)
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=25)
@given(
    eps=st.one_of(st.just(0.0), st.floats(1e-3, 1.0)),
    factor=st.floats(1.5, 10.0),
    steps=st.integers(1, 3),
    shape=SHAPES,
    seed=st.integers(0, 2**16),
)
def test_linf_on_linear_loss_reaches_the_vertex(eps, factor, steps, shape, seed):
    """max w·δ over the cube is at δ = ε·sign(w); with α ≥ ε one step gets there, exactly."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=shape).astype("float32")
    w = rng.normal(size=shape[1:]).astype("float32")
    w.reshape(-1)[::4] = 0.0  # no gradient there: the coordinate must not move
    attack = PGD(norm="linf", eps=eps, step_size=eps * factor + 1e-3, steps=steps, bounds=None)
    loss_fn = _linear_loss(w)
    x_adv = np.asarray(attack.perturb(loss_fn, x))
    expected = x + np.float32(eps) * np.sign(w)[None]
    np.testing.assert_array_equal(x_adv, expected)
    gain = np.asarray(loss_fn(x_adv), np.float64) - np.asarray(loss_fn(x), np.float64)
    np.testing.assert_allclose(gain, eps * np.abs(w).sum(), rtol=1e-4, atol=1e-5)
    if eps > 0 and np.any(w):
        assert (gain > 0).all()


def test_linf_step_equal_to_eps_reaches_the_vertex():
    x = np.array([[0.2, -0.7, 0.0]], "float32")
    w = np.array([1.0, -2.0, 0.5], "float32")
    x_adv = PGD(norm="linf", eps=0.25, step_size=0.25, steps=1, bounds=None).perturb(_linear_loss(w), x)
    np.testing.assert_allclose(np.asarray(x_adv), [[0.45, -0.95, 0.25]], atol=1e-6)


@settings(max_examples=25)
@given(eps=st.floats(0.01, 1.0), step_size=st.floats(0.01, 2.0), seed=st.integers(0, 2**16))
def test_l2_on_linear_loss_moves_along_w(eps, step_size, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(4, 5)).astype("float32")
    w = rng.normal(size=5).astype("float32")
    x_adv = PGD(norm="l2", eps=eps, step_size=step_size, steps=1, bounds=None).perturb(_linear_loss(w), x)
    expected = x + min(eps, step_size) * w / np.linalg.norm(w)
    np.testing.assert_allclose(np.asarray(x_adv), expected, atol=2e-6)


def test_zero_gradient_leaves_x_unchanged():
    x = np.random.default_rng(0).uniform(0, 1, size=(3, 4)).astype("float32")
    for norm in ("linf", "l2"):
        attack = PGD(norm=norm, eps=0.5, step_size=0.2, steps=3)
        x_adv = attack.perturb(lambda points: ops.zeros((ops.shape(points)[0],)) + 0.0 * ops.sum(points, axis=1), x)
        np.testing.assert_array_equal(np.asarray(x_adv), x)


def test_attack_raises_the_model_loss(vector_data):
    x, y = vector_data
    model = tiny_model()
    for way in ("standard", "robust", "non_robust"):
        attack = PGD(norm="linf", eps=0.2, step_size=0.05, steps=3)
        x_adv = attack(model, x, y, way=way)
        loss = lambda points: keras.losses.sparse_categorical_crossentropy(  # noqa: E731
            y, model(points, way=way), from_logits=True
        )
        assert float(ops.mean(loss(x_adv))) > float(ops.mean(loss(x)))


# --- 3. The random starts are uniform in the ball's volume --------------------------------

N_START = 20_000


def _radial_statistic(delta, eps):
    """(‖δ‖/ε)^D per example: Uniform(0, 1) iff δ is uniform in the D-ball's volume (radially)."""
    flat = np.asarray(delta, np.float64).reshape(len(delta), -1)
    return (np.linalg.norm(flat, axis=1) / eps) ** flat.shape[1], flat


def _isotropy_pvalue(flat):
    """Rayleigh-type test: n·D·‖mean unit vector‖² ~ χ²_D for isotropic directions."""
    units = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    n, d = units.shape
    return stats.chi2.sf(n * d * np.sum(units.mean(axis=0) ** 2), d)


@pytest.mark.parametrize("shape", [(N_START, 3), (N_START, 5), (N_START, 2, 2, 1)])
@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_l2_random_start_is_uniform_in_the_ball(shape, eps):
    delta = np.asarray(L2Ball.random_start(shape, eps, keras.random.SeedGenerator(0)))
    assert delta.shape == shape
    radial, flat = _radial_statistic(delta, eps)
    assert radial.max() <= 1 + 1e-5
    assert stats.kstest(radial, "uniform").pvalue > 1e-3
    assert _isotropy_pvalue(flat) > 1e-3
    assert np.abs(flat / np.linalg.norm(flat, axis=1, keepdims=True)).mean(axis=0).min() > 0.1  # not degenerate


@pytest.mark.parametrize("d", [3, 5])
def test_radial_statistic_rejects_wrong_distributions(d):
    """The statistic above is able to fail: the sphere, a uniform radius, a biased direction."""
    rng = np.random.default_rng(0)
    eps = 0.5
    direction = rng.normal(size=(N_START, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    on_sphere = eps * direction
    assert stats.kstest(_radial_statistic(on_sphere, eps)[0], "uniform").pvalue < 1e-3
    uniform_radius = eps * rng.uniform(size=(N_START, 1)) * direction
    assert stats.kstest(_radial_statistic(uniform_radius, eps)[0], "uniform").pvalue < 1e-3
    biased = np.abs(direction) * eps * rng.uniform(size=(N_START, 1)) ** (1 / d)
    assert _isotropy_pvalue(biased) < 1e-3


def test_linf_random_start_is_uniform_in_the_cube():
    eps = 0.3
    delta = np.asarray(LinfBall.random_start((N_START // 4, 2, 2, 1), eps, keras.random.SeedGenerator(0)))
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    assert np.abs(flat).max() <= eps
    for j in range(flat.shape[1]):
        assert stats.kstest(flat[:, j], "uniform", args=(-eps, 2 * eps)).pvalue > 1e-3
    # Coordinates independent: correlations near 0.
    corr = np.corrcoef(flat, rowvar=False)
    assert np.abs(corr - np.eye(flat.shape[1])).max() < 5 / math.sqrt(len(flat))
    # The KS test can fail: a start on the cube's faces (±ε) is rejected.
    faces = np.sign(flat) * eps
    assert stats.kstest(faces[:, 0], "uniform", args=(-eps, 2 * eps)).pvalue < 1e-3


def test_random_start_is_used_and_reproducible():
    x = np.full((64, 5), 0.5, "float32")
    zero = lambda points: 0.0 * ops.sum(points, axis=1)  # noqa: E731 - no gradient: x_adv is the start
    for norm in ("linf", "l2"):
        a = PGD(norm=norm, eps=0.2, step_size=0.1, steps=1, random_start=True, seed=7).perturb(zero, x)
        b = PGD(norm=norm, eps=0.2, step_size=0.1, steps=1, random_start=True, seed=7).perturb(zero, x)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        delta = np.asarray(a) - x
        assert np.abs(delta).max() > 0.05  # the start moved the points
        assert len(np.unique(np.round(delta[:, 0], 6))) > 32  # different per example


# --- the training attack's ε warm-up ----------------------------------------------------------


@settings(max_examples=25)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(1e-2, 1.0),
    scale=st.floats(0.0, 1.0),
    random_start=st.booleans(),
    shape=SHAPES,
    seed=st.integers(0, 2**16),
)
def test_a_scaled_attack_stays_in_the_scaled_ball(norm, eps, scale, random_start, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=shape).astype("float32")
    loss_fn = _outward_quadratic_loss(x[0] + rng.normal(size=shape[1:]).astype("float32"))
    attack = PGD(norm=norm, eps=eps, step_size=eps / 2, steps=3, random_start=random_start, seed=seed)
    x_adv = attack.perturb(loss_fn, x, eps_scale=ops.convert_to_tensor(scale))
    smaller = PGD(norm=norm, eps=eps * scale, step_size=eps / 2 * scale + 1e-9, steps=3)  # only for the check
    check_feasible(x, x_adv, smaller)


def test_linf_scaled_attack_on_a_linear_loss_reaches_the_scaled_vertex():
    w = np.array([[1.0, -2.0, 0.5]], "float32")
    x = np.full((1, 3), 0.5, "float32")
    attack = PGD(norm="linf", eps=0.4, step_size=0.1, steps=4)
    x_adv = np.asarray(attack.perturb(_linear_loss(w[0]), x, eps_scale=0.5))
    np.testing.assert_allclose(x_adv, x + 0.2 * np.sign(w), atol=1e-6)  # ε 0.2, four steps of 0.05


def test_attack_warmup_grows_eps_step_by_step_and_is_saved(vector_data, tmp_path):
    x, y = vector_data  # 32 examples: two steps per epoch at batch 16
    model = tiny_model()
    attack = PGD(norm="linf", eps=0.2, step_size=0.05, steps=2, random_start=True, seed=0)
    with pytest.raises(ValueError, match="attack_warmup_steps must be"):
        model.compile(optimizer="sgd", method="aat", attack=attack, attack_warmup_steps=-1)
    model.compile(optimizer=keras.optimizers.SGD(0.01), method="aat++", attack=attack, attack_warmup_steps=4)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False).history
    # Steps t = 0..5 attack with ε·min(1, (t + 1)/4); each epoch logs the mean of its two steps.
    np.testing.assert_allclose(history["attack_eps"], [0.2 * 0.375, 0.2 * 0.875, 0.2], rtol=1e-6)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").attack_warmup_steps == 4
    plain = tiny_model()
    plain.compile(optimizer="sgd", method="aat", attack=attack)
    assert "attack_eps" not in plain.fit(x, y, batch_size=16, epochs=1, verbose=0).history


def test_value_and_input_gradient_is_the_loss_its_aux_and_input_gradient():
    """One forward pass gives what a separate forward pass and ``input_gradient`` would."""
    from keras import ops

    from aatk import backend

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    weights = rng.normal(size=(3,)).astype("float32")

    def loss_fn(points):
        scores = ops.sum(points * weights, axis=-1)
        return ops.square(scores), {"positive": ops.cast(scores > 0, "float32")}

    losses, aux, gradient = backend.value_and_input_gradient(loss_fn, ops.convert_to_tensor(x))
    scores = x @ weights
    np.testing.assert_allclose(np.asarray(losses), scores**2, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(aux["positive"]), (scores > 0).astype("float32"))
    np.testing.assert_allclose(np.asarray(gradient), 2 * scores[:, None] * weights[None, :], rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(gradient), np.asarray(backend.input_gradient(lambda p: loss_fn(p)[0], ops.convert_to_tensor(x))),
        rtol=1e-6,
    )
