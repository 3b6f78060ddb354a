"""The train step's fusions are exact, and the backend glue keeps state where it belongs.

* ``many_way_logits`` (every encoder and the head run once on several batches) gives
  the logits of separate ``way_logits`` calls; with BatchNorm in training mode it
  falls back to separate calls, which the fused form would not equal;
* the single PGD run on the batch repeated once per attacked way gives each way's own
  attack;
* compiled attacks see the model's *current* weights (under JAX a jitted function that
  read the variables would have baked them in);
* a one-way baseline gives its unused encoder to no optimizer update;
* the training attack's random starts come from the model's own generator.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

import aatk
from aatk import backend
from aatk.attacks import PGD
from aatk.model import WAYS
from aatk.objectives import cross_entropy
from aatk_testutils import mlp_encoder, tiny_model

WAY_SETS = st.lists(st.sampled_from(WAYS), min_size=1, max_size=3, unique=True)


@settings(max_examples=15, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(1, 5), WAY_SETS), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_fused_logits_equal_separate_calls(requests, seed):
    model = tiny_model()
    rng = np.random.default_rng(seed)
    batches = [(rng.normal(size=(size, 6)).astype("float32"), tuple(ways)) for size, ways in requests]
    fused = model.many_way_logits(batches, training=False)
    for (x, ways), result in zip(batches, fused):
        assert sorted(result) == sorted(ways)
        separate = model.way_logits(x, ways=ways, training=False)
        for way in ways:
            np.testing.assert_allclose(np.asarray(result[way]), np.asarray(separate[way]), rtol=1e-5, atol=1e-6)


def _batchnorm_model():
    def encoder():
        return mlp_encoder(6, 8, extra=[keras.layers.BatchNormalization(), keras.layers.Dense(4, activation="relu")])

    return aatk.ThreeWayModel(encoder(), encoder(), num_classes=3)


def test_batchnorm_in_training_mode_is_not_fused(vector_data):
    """Per-batch statistics: the clean batch and a shifted batch normalised together would
    differ from each normalised alone — so the model keeps them apart, and says why."""
    x, _ = vector_data
    model = _batchnorm_model()
    assert model.batch_dependent and not tiny_model().batch_dependent
    shifted = x + 3.0
    requests = [(x, ("robust",)), (shifted, ("robust",))]
    fused = model.many_way_logits(requests, training=True)
    for (inputs, ways), result in zip(requests, fused):
        alone = model.way_logits(inputs, ways=ways, training=True)
        np.testing.assert_allclose(np.asarray(result["robust"]), np.asarray(alone["robust"]), rtol=1e-5, atol=1e-5)
    # What fusing would have computed: one BatchNorm over both batches — visibly different.
    together = model.way_logits(ops.concatenate([x, shifted], axis=0), ways=("robust",), training=True)["robust"]
    assert np.abs(np.asarray(together)[: len(x)] - np.asarray(fused[0]["robust"])).max() > 1e-3


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_one_pgd_for_all_ways_equals_one_pgd_per_way(vector_data, norm):
    x, y = vector_data
    model = tiny_model()
    attack = PGD(norm=norm, eps=0.3, step_size=0.1, steps=4, bounds=None)
    model.compile(method="aat++", attack=attack)
    fused = model._adversarial_examples(ops.convert_to_tensor(x), ops.convert_to_tensor(y))
    for way in WAYS:
        alone = attack(model, x, y, way=way)
        np.testing.assert_allclose(np.asarray(fused[way]["x"]), np.asarray(alone), rtol=1e-5, atol=1e-5)
    for way in ("standard", "non_robust"):  # ŷ and the mask of Eq. 7 / Eq. 10 from that way's own attack
        logits = model(fused[way]["x"], way=way)
        np.testing.assert_array_equal(np.asarray(fused[way]["labels"]), np.argmax(np.asarray(logits), axis=-1))
        np.testing.assert_array_equal(np.asarray(fused[way]["kept"]), (np.argmax(np.asarray(logits), -1) != y).astype("float32"))


def test_compiled_attack_sees_the_current_weights(vector_data):
    """The same PGD object, called again after the weights change, attacks the new model."""
    x, y = vector_data
    model = tiny_model()
    attack = PGD(norm="l2", eps=0.5, step_size=0.2, steps=2, bounds=None)
    first = np.asarray(attack(model, x, y, way="robust"))
    model.set_weights([w * -1.5 for w in model.get_weights()])
    second = np.asarray(attack(model, x, y, way="robust"))
    fresh = np.asarray(PGD(norm="l2", eps=0.5, step_size=0.2, steps=2, bounds=None)(model, x, y, way="robust"))
    np.testing.assert_allclose(second, fresh, rtol=1e-5, atol=1e-6)
    assert np.abs(second - first).max() > 1e-3


def test_compile_function_writes_back_the_variables_it_assigns():
    counter = keras.Variable(0.0, name="counter")

    def bump(step):
        counter.assign(counter + step)
        return counter.value * 2.0

    compiled = backend.compile_function(bump, state=[counter])
    assert float(np.asarray(compiled(ops.convert_to_tensor(1.5)))) == pytest.approx(3.0)
    assert float(np.asarray(compiled(ops.convert_to_tensor(1.0)))) == pytest.approx(5.0)
    assert float(np.asarray(counter.value)) == pytest.approx(2.5)


@pytest.mark.parametrize(("method", "frozen"), [("1way-at", "encoder_n"), ("1way-st", "encoder_r")])
def test_one_way_baselines_leave_the_other_encoder_alone(vector_data, method, frozen):
    """With momentum and weight decay, any update of the unused encoder would move it."""
    x, y = vector_data
    model = tiny_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1),
        method=method,
        attack=PGD(norm="linf", eps=0.1, step_size=0.05, steps=2, bounds=None),
    )
    before = {name: [np.asarray(w).copy() for w in getattr(model, name).get_weights()] for name in ("encoder_r", "encoder_n")}
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for name, weights in before.items():
        after = getattr(model, name).get_weights()
        unchanged = all(np.array_equal(a, b) for a, b in zip(weights, after))
        assert unchanged == (name == frozen), name


def test_training_attack_draws_from_the_models_generator(vector_data):
    x, y = vector_data
    attack = PGD(norm="linf", eps=0.1, step_size=0.05, steps=1, random_start=True, seed=11, bounds=None)
    model = tiny_model()
    model.compile(method="aat", attack=attack)
    np.testing.assert_array_equal(np.asarray(model.attack_seed_generator.state.value), np.asarray(attack.variables[0].value))
    start = np.asarray(model.attack_seed_generator.state.value).copy()
    attack_start = np.asarray(attack.variables[0].value).copy()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(np.asarray(model.attack_seed_generator.state.value), start)  # part of the model's state
    np.testing.assert_array_equal(np.asarray(attack.variables[0].value), attack_start)  # the attack's own is untouched


def test_logits_are_float32_under_mixed_precision(vector_data):
    x, _ = vector_data
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        logits = model.many_way_logits([(x, WAYS)], training=False)[0]
        assert model.encoder_r.layers[0].compute_dtype == "bfloat16"
        assert all(keras.backend.standardize_dtype(value.dtype) == "float32" for value in logits.values())
        loss = cross_entropy(logits["standard"], ops.zeros((len(x),), "int32"))
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
