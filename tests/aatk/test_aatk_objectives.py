"""Eq. 6–11 and Algorithm 1: the objectives, by hand, on a hand-built three-way model.

Paper: Section 2.2 (Eq. 4–5), Section 2.3 (Eq. 6–11), Algorithm 1.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from keras import ops

import aatk
from aatk import objectives
from aatk.attacks import PGD
from aatk_testutils import hand_model, np_cross_entropy, np_three_ways

# --- the objective functions on tiny hand-computed logits --------------------------------


def _np(t):
    return np.asarray(ops.convert_to_numpy(t), np.float64)


def test_cross_entropy_by_hand():
    logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0], [2.0, 2.0 + math.log(4.0)]], "float32")
    labels = np.array([1, 0, 0])
    # softmax([0, log 3]) = (1/4, 3/4); CE(label 1) = log(4/3); uniform: log 2; (1/5, 4/5): log 5.
    np.testing.assert_allclose(_np(objectives.cross_entropy(logits, labels)), [math.log(4 / 3), math.log(2), math.log(5)], rtol=1e-6)


def test_adversarial_labels_and_mask():
    logits = np.array([[0.0, 1.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]], "float32")
    labels = np.array([1, 2, 2, 0])
    predicted, kept = objectives.adversarial_labels(logits, labels)
    np.testing.assert_array_equal(_np(predicted), [1, 0, 2, 2])
    np.testing.assert_array_equal(_np(kept), [0.0, 1.0, 0.0, 1.0])
    assert ops.convert_to_numpy(predicted).dtype == np.int32
    assert ops.convert_to_numpy(kept).dtype == np.float32


def test_terms_by_hand():
    third = math.log(3.0)
    s = np.array([[0.0, third], [third, 0.0]], "float32")  # CE: label 1 → log 4/3, label 0 → log 4/3
    r = np.array([[0.0, 0.0], [0.0, 0.0]], "float32")  # log 2 whatever the label
    n = np.array([[third, 0.0], [0.0, third]], "float32")  # label 1 → log 4, label 0 → log 4
    y = np.array([1, 0])
    l43, l2, l4 = math.log(4 / 3), math.log(2), math.log(4)
    np.testing.assert_allclose(_np(aatk.L_ST(s, r, n, y)), [l43 + l2 + l4] * 2, rtol=1e-6)
    y_hat = np.array([0, 0], "int32")
    kept = np.array([1.0, 0.0], "float32")
    # L_AS: robust way against y, non-robust way against ŷ; example 2 discarded (ŷ = y).
    np.testing.assert_allclose(_np(aatk.L_AS(r, n, y, y_hat, kept)), [l2 + math.log(4 / 3), 0.0], rtol=1e-6)
    np.testing.assert_allclose(_np(aatk.L_AR(s, y)), [l43, l43], rtol=1e-6)  # never masked
    np.testing.assert_allclose(_np(aatk.L_AN(n, y_hat, kept)), [math.log(4 / 3), 0.0], rtol=1e-6)


@settings(max_examples=25)
@given(
    st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=1, max_size=6),
    st.data(),
)
def test_masked_terms_vanish_where_the_attack_failed(rows, data):
    logits = np.array(rows, "float32")
    top2 = np.sort(logits, axis=-1)[:, -2:]
    assume((top2[:, 1] - top2[:, 0] > 1e-3).all())  # ties (and ±0) may break either way
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(rows), max_size=len(rows))))
    predicted, kept = objectives.adversarial_labels(logits, labels)
    kept = _np(kept)
    np.testing.assert_array_equal(kept, (np.argmax(logits, -1) != labels).astype(float))
    l_as = _np(aatk.L_AS(logits, logits, labels, predicted, ops.convert_to_tensor(kept, "float32")))
    l_an = _np(aatk.L_AN(logits, predicted, ops.convert_to_tensor(kept, "float32")))
    assert (l_as[kept == 0] == 0).all() and (l_an[kept == 0] == 0).all()
    expected_an = np_cross_entropy(logits, np.argmax(logits, -1)) * kept
    np.testing.assert_allclose(l_an, expected_an, rtol=1e-5, atol=1e-6)
    expected_as = (np_cross_entropy(logits, labels) + np_cross_entropy(logits, np.argmax(logits, -1))) * kept
    np.testing.assert_allclose(l_as, expected_as, rtol=1e-5, atol=1e-6)


def test_adversarial_labels_pass_no_gradient():
    import tensorflow as tf

    logits = tf.constant([[0.0, 1.0, -1.0], [3.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        predicted, kept = objectives.adversarial_labels(logits, tf.constant([1, 2]))
        out = tf.reduce_sum(kept) + tf.reduce_sum(tf.cast(predicted, tf.float32))
    assert tape.gradient(out, logits) is None


@pytest.mark.parametrize(
    ("method", "terms"),
    [
        ("st", ("st",)),
        ("aat", ("st", "as")),
        ("aat++", ("st", "as", "ar", "an")),
        ("AAT++", ("st", "as", "ar", "an")),
        (["an", "st"], ("st", "an")),
        (("ar",), ("ar",)),
        (("AS", "st"), ("st", "as")),
        (iter(["an", "ar", "as", "st"]), ("st", "as", "ar", "an")),
    ],
)
def test_resolve_method(method, terms):
    assert objectives.resolve_method(method) == terms


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("at", "method must be one of"),
        ("", "method must be one of"),
        ("st,as", "method must be one of"),
        ((), "non-empty subset"),
        (("st", "st"), "without repeats"),
        (("st", "xx"), "subset of"),
        (("aat",), "subset of"),
    ],
)
def test_resolve_method_rejects(method, message):
    with pytest.raises(ValueError, match=message):
        objectives.resolve_method(method)


def test_methods_table_matches_the_paper():
    assert aatk.TERMS == ("st", "as", "ar", "an")
    assert aatk.METHODS == {"st": ("st",), "aat": ("st", "as"), "aat++": ("st", "as", "ar", "an")}


# --- Algorithm 1 on a hand-built model ----------------------------------------------------

D, K, H, C = 3, 2, 3, 3


@pytest.fixture
def hand():
    """Weights of a three-way model with linear encoders (z = x W) and a ReLU head, and data.

    The labels are chosen so that the standard way gets the even examples right
    and the odd ones wrong (the mask of Eq. 7 is mixed), and so is the
    non-robust way's mask of Eq. 10.
    """
    rng = np.random.default_rng(42)
    weights = dict(
        w_r=rng.normal(size=(D, K)),
        w_n=rng.normal(size=(D, K)),
        w1=rng.normal(size=(2 * K, H)),
        b1=rng.uniform(0.1, 0.5, size=H),
        w2=rng.normal(size=(H, C)),
        b2=rng.normal(size=C) * 0.1,
    )
    weights = {k: v.astype("float32").astype(np.float64) for k, v in weights.items()}
    x = rng.uniform(-1, 1, size=(8, D)).astype("float32")
    logits = np_three_ways(x, **weights)
    pred_s = logits["standard"].argmax(-1)
    y = np.where(np.arange(len(x)) % 2 == 0, pred_s, (pred_s + 1) % C).astype("int32")
    kept_n = logits["non_robust"].argmax(-1) != y
    assert 0 < kept_n.sum() < len(y), "the non-robust way's mask should be mixed"
    for way in logits.values():  # no near-ties for argmax
        top2 = np.sort(way, axis=-1)[:, -2:]
        assert (top2[:, 1] - top2[:, 0] > 1e-3).all()
    return weights, x, y


def _hand_terms(weights, x, y, x_adv: dict, *, keep: str = "misclassified") -> dict:
    """Per-term batch means of Eq. 6, 7, 9, 10 computed in numpy from the adversarial inputs.

    ``keep="flipped"``: the masks also need the way's clean prediction to be right."""
    clean = np_three_ways(x, **weights)
    adv_s = np_three_ways(x_adv["standard"], **weights)
    adv_r = np_three_ways(x_adv["robust"], **weights)
    adv_n = np_three_ways(x_adv["non_robust"], **weights)
    y_hat_s = adv_s["standard"].argmax(-1)
    kept_s = (y_hat_s != y).astype(float)
    y_hat_n = adv_n["non_robust"].argmax(-1)
    kept_n = (y_hat_n != y).astype(float)
    if keep == "flipped":
        kept_s *= clean["standard"].argmax(-1) == y
        kept_n *= clean["non_robust"].argmax(-1) == y
    l_st = np_cross_entropy(clean["standard"], y) + np_cross_entropy(clean["robust"], y) + np_cross_entropy(clean["non_robust"], y)
    l_as = kept_s * (np_cross_entropy(adv_s["robust"], y) + np_cross_entropy(adv_s["non_robust"], y_hat_s))
    l_ar = np_cross_entropy(adv_r["robust"], y)
    l_an = kept_n * np_cross_entropy(adv_n["non_robust"], y_hat_n)
    return {
        "st": l_st.mean(), "as": l_as.mean(), "ar": l_ar.mean(), "an": l_an.mean(),
        "kept_s": kept_s.mean(), "kept_n": kept_n.mean(),
        "acc_s": (clean["standard"].argmax(-1) == y).mean(),
        "acc_r": (clean["robust"].argmax(-1) == y).mean(),
        "acc_n": (clean["non_robust"].argmax(-1) == y).mean(),
        "y_hat_s": y_hat_s, "y_hat_n": y_hat_n,
    }


def test_three_ways_match_eq5(hand):
    weights, x, _ = hand
    model = hand_model(**weights)
    expected = np_three_ways(x, **weights)
    for way in aatk.WAYS:
        np.testing.assert_allclose(_np(model(x, way=way)), expected[way], rtol=1e-5, atol=1e-5)
    both = model.way_logits(x)
    for way in aatk.WAYS:
        np.testing.assert_allclose(_np(both[way]), expected[way], rtol=1e-5, atol=1e-5)
    z_r, z_n = model.representations(x)
    np.testing.assert_allclose(_np(z_r), x @ weights["w_r"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(z_n), x @ weights["w_n"], rtol=1e-5, atol=1e-6)


METHOD_CASES = ["st", "aat", "aat++", ("st", "an"), ("as",), ("ar", "an")]


@pytest.mark.parametrize("method", METHOD_CASES)
def test_objective_with_eps_zero_matches_hand_values(hand, method):
    weights, x, y = hand
    model = hand_model(**weights)
    model.compile(optimizer=keras.optimizers.SGD(0.0), method=method, attack=PGD(eps=0.0, step_size=0.1, steps=1, bounds=None))
    adversarial = model._adversarial_examples(x, y)
    for way, entry in adversarial.items():
        np.testing.assert_array_equal(_np(entry["x"]), x)  # ε = 0: x_adv = x
    expected = _hand_terms(weights, x, y, {w: x for w in aatk.WAYS})
    assert 0 < expected["kept_s"] < 1  # some examples are kept by Algorithm 1, some discarded
    np.testing.assert_array_equal(expected["kept_s"], 0.5)
    total, aux = model._objective(x, y, adversarial, training=False)
    terms = objectives.resolve_method(method)
    assert set(aux["terms"]) == set(terms)
    for term in terms:
        np.testing.assert_allclose(float(aux["terms"][term]), expected[term], rtol=1e-5, err_msg=term)
    np.testing.assert_allclose(float(total), sum(expected[t] for t in terms), rtol=1e-5)
    if "as" in terms:
        np.testing.assert_array_equal(_np(adversarial["standard"]["labels"]), expected["y_hat_s"])
    if "an" in terms:
        np.testing.assert_array_equal(_np(adversarial["non_robust"]["labels"]), expected["y_hat_n"])
    assert ("robust" in adversarial) == ("ar" in terms)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_objective_with_a_real_attack_matches_hand_values(hand, norm):
    """ε > 0: the adversarial terms are evaluated at x_adv (not at x), with ŷ from h(x_adv)."""
    weights, x, y = hand
    model = hand_model(**weights)
    attack = PGD(norm=norm, eps=0.5, step_size=0.3, steps=3, bounds=None)
    model.compile(optimizer=keras.optimizers.SGD(0.0), method="aat++", attack=attack)
    adversarial = model._adversarial_examples(x, y)
    x_adv = {way: _np(entry["x"]) for way, entry in adversarial.items()}
    for way in aatk.WAYS:
        assert np.abs(x_adv[way] - x).max() > 0.1  # the attack moved the points
        # and it is the attack on the right way's loss:
        np.testing.assert_allclose(x_adv[way], _np(attack(model, x, y, way=way)), atol=1e-6)
    expected = _hand_terms(weights, x, y, x_adv)
    assert expected["kept_s"] > 0.5  # the attack fooled some correctly classified examples
    total, aux = model._objective(x, y, adversarial, training=False)
    for term in aatk.TERMS:
        np.testing.assert_allclose(float(aux["terms"][term]), expected[term], rtol=1e-5, err_msg=term)
    np.testing.assert_allclose(float(total), sum(expected[t] for t in aatk.TERMS), rtol=1e-5)
    np.testing.assert_array_equal(_np(adversarial["standard"]["labels"]), expected["y_hat_s"])
    np.testing.assert_array_equal(_np(adversarial["non_robust"]["labels"]), expected["y_hat_n"])
    # The adversarial terms really differ from the ε = 0 ones (they look at x_adv).
    at_x = _hand_terms(weights, x, y, {w: x for w in aatk.WAYS})
    assert abs(expected["ar"] - at_x["ar"]) > 1e-3


@pytest.mark.parametrize("method", ["st", "aat", "aat++", ("st", "an")])
@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_train_step_reports_hand_values(hand, method, eps):
    """One train step through fit (SGD with learning rate 0: the weights stay) reports Algorithm 1's terms."""
    weights, x, y = hand
    model = hand_model(**weights)
    attack = PGD(norm="linf", eps=eps, step_size=0.3, steps=2, bounds=None)
    # The hand data are Gaussian, not images: unbounded for the attack and for the model.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), method=method, attack=attack, input_range=None)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0).history
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x_adv = {way: _np(attack(model, x, y, way=way)) for way in aatk.WAYS}
    expected = _hand_terms(weights, x, y, x_adv)
    terms = objectives.resolve_method(method)
    np.testing.assert_allclose(history["loss"][0], sum(expected[t] for t in terms), rtol=1e-5)
    for term in terms:
        np.testing.assert_allclose(history[f"l_{term}"][0], expected[term], rtol=1e-5, err_msg=term)
    for key in ("acc_s", "acc_r", "acc_n"):
        np.testing.assert_allclose(history[key][0], expected[key], rtol=1e-6, err_msg=key)
    if "as" in terms:
        np.testing.assert_allclose(history["kept_s"][0], expected["kept_s"], rtol=1e-6)
    if "an" in terms:
        np.testing.assert_allclose(history["kept_n"][0], expected["kept_n"], rtol=1e-6)


def test_train_step_gradient_is_the_gradient_of_the_hand_loss(hand):
    """A plain SGD step moves the weights by −lr·∇L_total (finite differences on the hand loss)."""
    weights, x, y = hand
    lr = 1e-2
    model = hand_model(**weights)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr), method="aat++", attack=PGD(eps=0.0, step_size=0.1, steps=1, bounds=None),
        input_range=None,  # Gaussian hand data
    )
    model.fit(x, y, epochs=1, batch_size=len(x), verbose=0, shuffle=False)
    new = {
        "w_r": model.encoder_r.layers[0].get_weights()[0],
        "w_n": model.encoder_n.layers[0].get_weights()[0],
        "b2": model.head_logits.get_weights()[1],
    }
    xs = {w: x for w in aatk.WAYS}

    def total(ws):
        terms = _hand_terms(ws, x, y, xs)
        return sum(terms[t] for t in aatk.TERMS)

    h = 1e-6
    for name in new:
        grad = np.zeros_like(weights[name])
        for index in np.ndindex(grad.shape):
            plus = {k: v.copy() for k, v in weights.items()}
            minus = {k: v.copy() for k, v in weights.items()}
            plus[name][index] += h
            minus[name][index] -= h
            # ŷ and the masks are constants (Algorithm 1): keep them at the current weights
            # — at ε = 0 with no near-ties the argmaxes do not change under ±h anyway.
            grad[index] = (total(plus) - total(minus)) / (2 * h)
        np.testing.assert_allclose(new[name], weights[name] - lr * grad, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_flipped_rule_keeps_only_examples_the_way_got_right(hand, norm):
    """keep="flipped": a pseudo-pair needs h(x) = y and h(x_adv) ≠ y; the odd examples, which the
    standard way gets wrong before any attack, never count for L_AS."""
    weights, x, y = hand
    model = hand_model(**weights)
    attack = PGD(norm=norm, eps=0.5, step_size=0.3, steps=3, bounds=None)
    model.compile(optimizer=keras.optimizers.SGD(0.0), method="aat++", attack=attack, keep="flipped")
    adversarial = model._adversarial_examples(x, y)
    x_adv = {way: _np(entry["x"]) for way, entry in adversarial.items()}
    flipped = _hand_terms(weights, x, y, x_adv, keep="flipped")
    literal = _hand_terms(weights, x, y, x_adv)
    kept_s = _np(adversarial["standard"]["kept"])
    assert not kept_s[1::2].any() and kept_s.mean() == flipped["kept_s"] < literal["kept_s"]
    np.testing.assert_allclose(_np(adversarial["non_robust"]["kept"]).mean(), flipped["kept_n"])
    _, aux = model._objective(x, y, adversarial, training=False)
    for term in aatk.TERMS:
        np.testing.assert_allclose(float(aux["terms"][term]), flipped[term], rtol=1e-5, err_msg=term)
    with pytest.raises(ValueError, match="keep must be one of"):
        model.compile(optimizer="sgd", method="aat", attack=attack, keep="all")
