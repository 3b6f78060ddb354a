"""Algorithm 1's separation of the attack from the weights' gradient, and inference mode.

The attacks run before the weights' gradient is taken and their outputs are
constants; they run in inference mode, so BatchNorm statistics and dropout are
untouched by them.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import aatk
from aatk.attacks import PGD
from aatk_testutils import hand_model, leaky_input_gradient, mlp_encoder, tiny_model, weight_gradients

# --- 5. The weights' gradient does not depend on the attack's path -----------------------


def _gradients(model, x, y, adversarial=None):
    """∇_θ of the objective; the attack runs inside the differentiated function unless ``adversarial`` is given."""

    def loss_fn():
        adv = model._adversarial_examples(x, y) if adversarial is None else adversarial
        total, _ = model._objective(x, y, adv, training=False)
        return total, adv

    gradients, adv = weight_gradients(model, loss_fn)
    if {"st", "as"} & set(model.terms):  # every weight takes part
        assert all(g is not None for g in gradients)
    gradients = [np.zeros(v.shape) if g is None else np.asarray(g) for g, v in zip(gradients, model.trainable_variables)]
    return gradients, adv


def _as_constants(adversarial):
    return {way: {k: ops.convert_to_tensor(np.asarray(v)) for k, v in entry.items()} for way, entry in adversarial.items()}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [False, True])
def test_gradient_equals_gradient_with_constant_adversarial_inputs(vector_data, norm, random_start):
    x, y = vector_data
    model = tiny_model()
    model.compile(method="aat++", attack=PGD(norm=norm, eps=0.3, step_size=0.2, steps=3, random_start=random_start, seed=5))
    inside, adversarial = _gradients(model, ops.convert_to_tensor(x), ops.convert_to_tensor(y))
    constants = _as_constants(adversarial)
    outside, _ = _gradients(model, ops.convert_to_tensor(x), ops.convert_to_tensor(y), constants)
    for a, b in zip(inside, outside):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # The adversarial terms matter: dropping them changes the gradient (the check can fail).
    model.compile(method="st")
    standard_only, _ = _gradients(model, ops.convert_to_tensor(x), ops.convert_to_tensor(y), {})
    assert max(np.abs(a - b).max() for a, b in zip(inside, standard_only)) > 1e-4


def test_gradient_through_the_attack_would_differ(vector_data):
    """Contrast: if x_adv carried the gradient of its own construction, the weights' gradient would change.

    An ℓ2 step x + α∇/‖∇‖ depends on the weights through ∇; differentiating
    through it (no stop_gradient) gives a different gradient. This is what
    aatk's attacks must not do, and what the test above would catch.
    """
    x, y = vector_data
    model = tiny_model()
    model.compile(method=("ar",), attack=PGD(norm="l2", eps=0.5, step_size=0.5, steps=1, bounds=None))
    x_t, y_t = ops.convert_to_tensor(x), ops.convert_to_tensor(y)

    def leaky_loss():
        g = leaky_input_gradient(lambda v: aatk.objectives.cross_entropy(model(v, way="robust"), y_t), x_t)
        leaky = x_t + 0.5 * g / ops.norm(g, axis=1, keepdims=True)
        total, _ = model._objective(x_t, y_t, {"robust": {"x": leaky}}, training=False)
        return total, leaky

    leaky_grad, leaky = weight_gradients(model, leaky_loss)
    leaky_grad = [np.zeros(v.shape) if g is None else np.asarray(g) for g, v in zip(leaky_grad, model.trainable_variables)]
    clean_grad, _ = _gradients(model, x_t, y_t, {"robust": {"x": ops.convert_to_tensor(np.asarray(leaky))}})
    assert max(np.abs(a - b).max() for a, b in zip(leaky_grad, clean_grad)) > 1e-5


def _binary_linear_weights():
    """A 2-class model whose logits are affine in x near the data: ReLU always active (b1 ≫ |pre-activation|).

    Then ∂CE/∂x = (p − onehot(y))·A has a constant sign per example and coordinate
    along any path, so ℓ∞ PGD ends at the vertex x + ε·sign(∇) however it gets there.
    """
    rng = np.random.default_rng(3)
    d, k, h = 4, 2, 3
    return dict(
        w_r=rng.normal(size=(d, k)),
        w_n=rng.normal(size=(d, k)),
        w1=rng.normal(size=(2 * k, h)) * 0.5,
        b1=np.full(h, 20.0),
        w2=rng.normal(size=(h, 2)),
        b2=np.zeros(2),
    )


def test_different_attack_paths_to_the_same_vertex_give_the_same_gradient():
    weights = _binary_linear_weights()
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(16, 4)).astype("float32")
    y = rng.integers(0, 2, size=16).astype("int32")
    eps = 0.2
    one_big = PGD(norm="linf", eps=eps, step_size=2 * eps, steps=1, bounds=None)
    three_small = PGD(norm="linf", eps=eps, step_size=0.7 * eps, steps=3, bounds=None)
    short = PGD(norm="linf", eps=eps, step_size=0.3 * eps, steps=2, bounds=None)  # stops inside the ball
    results = []
    for attack in (one_big, three_small, short):
        model = hand_model(**weights)
        model.compile(method="aat++", attack=attack)
        results.append(_gradients(model, ops.convert_to_tensor(x), ops.convert_to_tensor(y)))
    (g_big, adv_big), (g_small, adv_small), (g_short, adv_short) = results
    for way in adv_big:
        np.testing.assert_array_equal(np.asarray(adv_big[way]["x"]), np.asarray(adv_small[way]["x"]))
        delta = np.abs(np.asarray(adv_big[way]["x"]) - x)
        np.testing.assert_allclose(delta, eps, rtol=1e-5)  # at a vertex of the cube
    for a, b in zip(g_big, g_small):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # A path that ends elsewhere gives another gradient (so the comparison is not vacuous).
    assert max(np.abs(a - b).max() for a, b in zip(g_big, g_short)) > 1e-5


# --- 6. BatchNorm statistics and dropout are untouched by attacks --------------------------


def _bn_dropout_model():
    def encoder():
        return mlp_encoder(
            6, 8, extra=[keras.layers.BatchNormalization(), keras.layers.Dropout(0.5), keras.layers.Dense(4, activation="relu")]
        )

    return aatk.ThreeWayModel(encoder(), encoder(), num_classes=3)


def _bn_statistics(model):
    stats = []
    for encoder in (model.encoder_r, model.encoder_n):
        for layer in encoder.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                stats += [np.asarray(layer.moving_mean).copy(), np.asarray(layer.moving_variance).copy()]
    assert len(stats) == 4
    return stats


def test_attacks_leave_batchnorm_statistics_and_dropout_alone(vector_data):
    x, y = vector_data
    x = x * 3.0 - 1.0  # far from the initial statistics (mean 0, variance 1) of the first Dense's outputs
    model = _bn_dropout_model()
    for norm in ("linf", "l2"):
        attack = PGD(norm=norm, eps=0.3, step_size=0.2, steps=3, bounds=None)
        model.compile(method="aat++", attack=attack)
        before = _bn_statistics(model)
        for way in aatk.WAYS:
            first = np.asarray(attack(model, x, y, way=way))
            second = np.asarray(attack(model, x, y, way=way))
            np.testing.assert_array_equal(first, second)  # dropout off: deterministic
            assert np.abs(first - x).max() > 0.1
        adversarial = model._adversarial_examples(x, y)
        again = model._adversarial_examples(x, y)
        for way in adversarial:
            for key in adversarial[way]:
                np.testing.assert_array_equal(np.asarray(adversarial[way][key]), np.asarray(again[way][key]))
        for a, b in zip(before, _bn_statistics(model)):
            np.testing.assert_array_equal(a, b)
    # Contrast: the model in training mode does move the statistics, and dropout is random.
    before = _bn_statistics(model)
    out1 = np.asarray(model(x, training=True, way="standard"))
    out2 = np.asarray(model(x, training=True, way="standard"))
    after = _bn_statistics(model)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(before, after))
    assert np.abs(out1 - out2).max() > 1e-4


def test_training_step_moves_batchnorm_but_attack_inputs_stay_deterministic(vector_data):
    """fit runs the objective in training mode (BN statistics move), while the attack of the
    train step sees the inference-mode model: with lr = 0, its x_adv equals a stand-alone attack's."""
    x, y = vector_data
    x = x * 3.0 - 1.0
    model = _bn_dropout_model()
    attack = PGD(norm="linf", eps=0.3, step_size=0.2, steps=2, bounds=None)
    # Inputs in [-1, 2]: unbounded for the attack and for the model.
    model.compile(optimizer=keras.optimizers.SGD(0.0), method="aat++", attack=attack, input_range=None)
    expected = {way: np.asarray(attack(model, x, y, way=way)) for way in aatk.WAYS}
    stand_alone = model._adversarial_examples(x, y)
    for way in stand_alone:
        np.testing.assert_allclose(np.asarray(stand_alone[way]["x"]), expected[way], atol=1e-6)
    before = _bn_statistics(model)
    model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(before, _bn_statistics(model)))
