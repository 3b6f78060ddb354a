"""APGD (aatk.attacks.apgd): schedule, losses, feasibility, Algorithm 1 against a reference, runs.

Paper: Croce & Hein (2020), Algorithm 1 and Section 3.2 (APGD), Section 4 (DLR losses).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from aatk.attacks.apgd import APGD, checkpoints, dlr_loss, targeted_dlr_loss
from aatk_testutils import check_feasible, tiny_model

# --- helpers ------------------------------------------------------------------------------------


def _wavy_loss(w):
    """A non-concave loss Σ sin(3·w·x) + (w·x)² per example."""
    w = ops.convert_to_tensor(w, "float32")
    axes = tuple(range(1, len(w.shape) + 1))
    return lambda points: ops.sum(ops.sin(3.0 * points * w), axis=axes) + ops.square(ops.sum(points * w, axis=axes))


def _identity_classifier(num_classes: int) -> keras.Model:
    """Logits z = 10·x: the class is the largest coordinate."""
    model = keras.Sequential([keras.Input((num_classes,)), keras.layers.Dense(num_classes, use_bias=False)])
    model.layers[0].set_weights([10.0 * np.eye(num_classes, dtype="float32")])
    return model


def _predict(model, x, **kwargs):
    return np.asarray(ops.argmax(model(ops.convert_to_tensor(x), **kwargs), axis=-1))


def _two_leader_data(num_classes: int, n: int, seed: int = 0):
    """Inputs in [0.2, 0.6] whose largest coordinate y leads the second t by 0.1 and the rest by ≥ 0.2."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, num_classes), "float32")
    labels, seconds = np.empty(n, "int32"), np.empty(n, "int32")
    for i in range(n):
        order = rng.permutation(num_classes)
        x[i] = rng.uniform(0.2, 0.3, size=num_classes)
        x[i, order[0]], x[i, order[1]] = 0.6, 0.5
        labels[i], seconds[i] = order[0], order[1]
    return x, labels, seconds


# --- 1. the checkpoints -------------------------------------------------------------------------


def _checkpoints_by_hand(steps: int) -> list[int]:
    """p_j in hundredths, as integers: p₀ = 0, p₁ = 22, p_{j+1} = p_j + max(p_j − p_{j−1} − 3, 6)."""
    hundredths = [0, 22]
    while hundredths[-1] + max(hundredths[-1] - hundredths[-2] - 3, 6) <= 100:
        hundredths.append(hundredths[-1] + max(hundredths[-1] - hundredths[-2] - 3, 6))
    result = []
    for p in hundredths:
        w = -(-p * steps // 100)  # ⌈p·N/100⌉
        if not result or result[-1] != w:
            result.append(w)
    return result


def test_checkpoints_of_100_steps():
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(100) == _checkpoints_by_hand(100)
    # AutoAttack's integer schedule (22, then gaps shrinking by 3 down to 6) agrees at N = 100.
    autoattack, gap = [0, 22], 22
    while autoattack[-1] + max(gap - 3, 6) <= 100:
        gap = max(gap - 3, 6)
        autoattack.append(autoattack[-1] + gap)
    assert autoattack == checkpoints(100)


@pytest.mark.parametrize("steps", list(range(1, 60)) + [99, 100, 101, 250, 1000])
def test_checkpoints_follow_the_recursion(steps):
    w = checkpoints(steps)
    assert w == _checkpoints_by_hand(steps)
    assert w[0] == 0 and w[1] == math.ceil(0.22 * steps - 1e-9)
    assert all(np.diff(w) > 0) and w[-1] <= steps


def test_checkpoints_reject_bad_steps():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            checkpoints(bad)


# --- 2. the DLR losses --------------------------------------------------------------------------


def test_dlr_loss_by_hand():
    logits = np.array(
        [[3.0, 1.0, 0.5, 0.0], [1.0, 3.0, 0.5, 0.0], [0.0, 1.0, 2.0, 5.0], [2.0, 2.0, 1.0, 0.0]], "float32"
    )
    labels = np.array([0, 0, 3, 1])
    expected = [-(3 - 1) / 2.5, -(1 - 3) / 2.5, -(5 - 2) / 4.0, 0.0]
    np.testing.assert_allclose(np.asarray(dlr_loss(logits, labels)), expected, rtol=1e-6, atol=1e-7)
    # Invariant to a shift and a positive rescaling of the logits; > 0 exactly when misclassified.
    np.testing.assert_allclose(np.asarray(dlr_loss(3.0 * logits - 7.0, labels)), expected, rtol=1e-5, atol=1e-6)
    three = np.array([[1.0, 4.0, 2.0]], "float32")
    np.testing.assert_allclose(np.asarray(dlr_loss(three, np.array([2]))), [-(2 - 4) / (4 - 1)], rtol=1e-6)


def test_targeted_dlr_loss_by_hand():
    logits = np.array([[4.0, 2.0, 1.0, 0.0], [1.0, 4.0, 0.0, 2.0]], "float32")
    loss = np.asarray(targeted_dlr_loss(logits, np.array([0, 0]), np.array([1, 3])))
    np.testing.assert_allclose(loss, [-(4 - 2) / (4 - 0.5), -(1 - 2) / (4 - 0.5)], rtol=1e-6)
    five = np.array([[0.0, 1.0, 3.0, 2.0, 5.0]], "float32")  # sorted 5, 3, 2, 1, 0
    loss = np.asarray(targeted_dlr_loss(five, np.array([4]), np.array([1])))
    np.testing.assert_allclose(loss, [-(5 - 1) / (5 - (2 + 1) / 2)], rtol=1e-6)


def test_dlr_losses_need_enough_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_loss(np.zeros((2, 2), "float32"), np.array([0, 1]))
    with pytest.raises(ValueError, match="at least 4 classes"):
        targeted_dlr_loss(np.zeros((2, 3), "float32"), np.array([0, 1]), np.array([1, 2]))


# --- 3. feasibility -----------------------------------------------------------------------------

# Few shapes: under JAX, every new shape compiles the eager operations again (seconds each).
SHAPES = st.sampled_from([(5, 6), (2, 3, 2, 2)])


@settings(max_examples=8, deadline=None)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.one_of(st.just(0.0), st.floats(1e-3, 1.0)),
    steps=st.integers(1, 4),
    shape=SHAPES,
    bounded=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_perturb_stays_in_ball_and_bounds(norm, eps, steps, shape, bounded, seed):
    rng = np.random.default_rng(seed)
    low, high = (0.0, 1.0) if bounded else (-2.0, 2.0)
    x = rng.uniform(low, high, size=shape).astype("float32")
    x.reshape(-1)[::3] = low  # on the bounds, where clipping matters most
    x.reshape(-1)[1::5] = high
    attack = APGD(norm=norm, eps=eps, steps=steps, bounds=(0.0, 1.0) if bounded else None, seed=seed)
    x_adv = attack.perturb(_wavy_loss(rng.normal(size=shape[1:]).astype("float32")), x)
    check_feasible(x, x_adv, attack)


_MODEL = {}


def _shared_tiny_model(num_classes: int = 4):
    if num_classes not in _MODEL:
        _MODEL[num_classes] = tiny_model(num_classes=num_classes)
    return _MODEL[num_classes]


@settings(max_examples=4, deadline=None)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(1e-3, 1.0),
    loss=st.sampled_from(["ce", "dlr"]),
    targeted=st.booleans(),
    restarts=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_attack_on_a_model_stays_in_ball_and_bounds(norm, eps, loss, targeted, restarts, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(8, 6)).astype("float32")
    x[:, 0], x[:, 1] = 0.0, 1.0
    y = rng.integers(0, 4, size=8).astype("int32")
    attack = APGD(
        norm=norm, eps=eps, steps=1, loss=loss, targeted=targeted, restarts=restarts, target_classes=2, seed=seed
    )
    check_feasible(x, attack(_shared_tiny_model(), x, y), attack)


# --- 4. Algorithm 1: best point, step-size schedule ---------------------------------------------


@settings(max_examples=6, deadline=None)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.01, 1.0),
    steps=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_returned_point_is_at_least_as_good_as_the_start(norm, eps, steps, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(5, 6)).astype("float32")
    loss_fn = _wavy_loss(rng.normal(size=6).astype("float32") * 3)
    attack = APGD(norm=norm, eps=eps, steps=steps)
    start = attack._random_start(ops.convert_to_tensor(x), keras.random.SeedGenerator(seed))
    x_adv = attack.perturb(loss_fn, x, seed_generator=keras.random.SeedGenerator(seed))
    assert (np.asarray(loss_fn(x_adv)) >= np.asarray(loss_fn(start)) - 1e-5).all()
    # The start is on the ball's surface (then clipped to the bounds).
    unclipped = APGD(norm=norm, eps=eps, steps=1, bounds=None)._random_start(
        ops.convert_to_tensor(x), keras.random.SeedGenerator(seed)
    )
    norms = np.asarray(attack._hooks.norm(ops.convert_to_tensor(np.asarray(unclipped) - x)))
    np.testing.assert_allclose(norms, eps, rtol=1e-4)


def _reference_apgd(c, start, *, eps, steps, rho, condition_2_from_first_checkpoint=True):
    """Algorithm 1 in float64 for the 1-D loss f(p) = −(p − c)² around x = 0, ℓ∞, no bounds.

    Returns x_max, f_max, the final η, and per checkpoint (w_j, condition 1, condition 2),
    plus every point where f was evaluated (to check that float32 computes them exactly).
    """

    def f(p):
        return -((p - c) ** 2)

    def direction(p):  # the sign of the gradient
        return np.sign(c - p)

    def project(p):
        return np.clip(p, -eps, eps)

    schedule = checkpoints(steps)
    x_k = x_previous = start
    loss_k, eta = f(start), 2.0 * eps
    x_max, loss_max = start, loss_k
    increases, loss_max_at_check, halved_at_check = 0, loss_max, not condition_2_from_first_checkpoint
    log, points = [], [start]
    for k in range(steps):
        alpha = 1.0 if k == 0 else 0.75
        z = project(x_k + eta * direction(x_k))
        x_next = project(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_previous))
        loss_next = f(x_next)
        points.append(x_next)
        increases += loss_next > loss_k
        if loss_next > loss_max:
            x_max, loss_max = x_next, loss_next
        if k + 1 in schedule[1:]:
            j = schedule.index(k + 1)
            condition_1 = increases < rho * (schedule[j] - schedule[j - 1])
            condition_2 = not halved_at_check and loss_max <= loss_max_at_check
            log.append((k + 1, bool(condition_1), bool(condition_2)))
            halve = condition_1 or condition_2
            if halve:
                eta /= 2
                x_next, loss_next = x_max, loss_max
            increases, loss_max_at_check, halved_at_check = 0, loss_max, halve
        x_previous, x_k, loss_k = x_k, x_next, loss_next
    return x_max, loss_max, eta, log, points


# (c, start) pairs whose trajectories are dyadic numbers with few bits, computed exactly in float32.
_SCENARIOS = [(-0.875, -1.0), (-0.875, 0.0), (-0.75, -0.5), (-0.75, 0.25), (-0.625, -1.0), (-0.25, 0.0), (-0.25, 1.0)]
_SCENARIOS += [(-c, -s) for c, s in _SCENARIOS]


@pytest.mark.parametrize("rho", [0.05, 0.75])
def test_algorithm_1_matches_a_reference_including_both_halving_conditions(rho):
    steps, eps = 12, 1.0
    c = np.array([c for c, _ in _SCENARIOS], "float32")
    start = np.array([[s] for _, s in _SCENARIOS], "float32")
    references = [_reference_apgd(float(ci), float(si[0]), eps=eps, steps=steps, rho=rho) for ci, si in zip(c, start)]
    for ci, (*_, points) in zip(c.astype(np.float64), references):  # precondition: float32 is exact here
        assert all(np.float32(p) == p and np.float32((p - ci) ** 2) == (p - ci) ** 2 for p in points)
    attack = APGD(norm="linf", eps=eps, steps=steps, rho=rho, bounds=None)
    target = ops.convert_to_tensor(c)
    result = attack._maximize(
        lambda points: (-ops.square(points[:, 0] - target), None), ops.zeros_like(start), ops.convert_to_tensor(start)
    )
    np.testing.assert_array_equal(np.asarray(result.x_max)[:, 0], [r[0] for r in references])
    np.testing.assert_array_equal(np.asarray(result.loss_max), [r[1] for r in references])
    np.testing.assert_array_equal(np.asarray(result.step_size), [r[2] for r in references])
    logs = [r[3] for r in references]
    assert any(c1 and not c2 for log in logs for _, c1, c2 in log), "condition 1 alone never decided"
    if rho == 0.05:
        # Condition 2 alone halves η in these runs, and at the first checkpoint too (paper, not AutoAttack):
        assert any(c2 and not c1 for log in logs for _, c1, c2 in log), "condition 2 alone never decided"
        assert any(log[0][2] and not log[0][1] for log in logs)
        without = [_reference_apgd(float(ci), float(si[0]), eps=eps, steps=steps, rho=rho,
                                   condition_2_from_first_checkpoint=False)[2] for ci, si in zip(c, start)]
        assert not np.array_equal(np.asarray(result.step_size), without)


def test_step_size_halves_at_every_checkpoint_on_a_plateau():
    """A flat loss never increases: condition 1 holds at every checkpoint, η = 2ε / 2^(number of checkpoints)."""
    x = np.full((3, 4), 0.5, "float32")
    for steps in (5, 100):
        attack = APGD(norm="linf", eps=0.25, steps=steps)
        start = attack._random_start(ops.convert_to_tensor(x), keras.random.SeedGenerator(0))
        flat = lambda points: (0.0 * ops.sum(points, axis=1), None)  # noqa: E731 - zero gradient, constant loss
        result = attack._maximize(flat, ops.convert_to_tensor(x), start)
        np.testing.assert_allclose(np.asarray(result.step_size), 0.5 / 2 ** (len(checkpoints(steps)) - 1))
        np.testing.assert_array_equal(np.asarray(result.x_max), np.asarray(start))


def test_linear_loss_reaches_the_vertex():
    w = np.array([1.0, -2.0, 0.5, 3.0], "float32")
    x = np.full((5, 4), 0.5, "float32")
    x_adv = APGD(norm="linf", eps=0.2, steps=10, seed=0).perturb(lambda p: ops.sum(p * w, axis=1), x)
    np.testing.assert_allclose(np.asarray(x_adv), x + 0.2 * np.sign(w), atol=1e-6)
    x_adv = APGD(norm="l2", eps=0.2, steps=30, seed=0, bounds=None).perturb(lambda p: ops.sum(p * w, axis=1), x)
    np.testing.assert_allclose(np.asarray(x_adv), x + 0.2 * w / np.linalg.norm(w), atol=2e-3)


# --- 5. attacking classifiers --------------------------------------------------------------------


def test_apgd_ce_fools_every_example_of_a_linear_model():
    model = _identity_classifier(3)
    x, y, _ = _two_leader_data(3, 16)
    assert (_predict(model, x) == y).all()
    x_adv = APGD(norm="linf", eps=0.1, steps=4, seed=0)(model, x, y)
    check_feasible(x, x_adv, APGD(eps=0.1))
    assert (_predict(model, x_adv) != y).all()


def test_more_restarts_fool_at_least_as_many():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, size=(32, 6)).astype("float32")
    model = tiny_model(num_classes=4)
    y = _predict(model, x).astype("int32")  # all correctly classified
    for eps in (0.05, 0.1, 0.2, 0.4):  # the first ε that fools some examples, not all
        one = _predict(model, APGD(eps=eps, steps=2, seed=11)(model, x, y)) != y
        if 0 < one.sum() < len(y):
            break
    assert 0 < one.sum() < len(y)
    two = _predict(model, APGD(eps=eps, steps=2, restarts=2, seed=11)(model, x, y)) != y
    assert (two >= one).all()


def test_clean_misclassified_examples_are_returned_unchanged():
    model = _identity_classifier(3)
    x, y, seconds = _two_leader_data(3, 8)
    y[:3] = seconds[:3]  # wrong labels: already misclassified
    x_adv = np.asarray(APGD(eps=0.1, steps=5, seed=0)(model, x, y))
    np.testing.assert_array_equal(x_adv[:3], x[:3])
    assert (_predict(model, x_adv) != y).all()


@pytest.mark.parametrize("loss", ["dlr", "ce"])
def test_targeted_attack_reaches_the_target_class(loss):
    model = _identity_classifier(5)
    x, y, seconds = _two_leader_data(5, 12)
    attack = APGD(norm="linf", eps=0.1, steps=4, loss=loss, targeted=True, target_classes=1, seed=0)
    x_adv = attack(model, x, y)
    check_feasible(x, x_adv, attack)
    np.testing.assert_array_equal(_predict(model, x_adv), seconds)  # the clean runner-up, first target


def test_targeted_attack_tries_the_other_targets():
    """The runner-up class 1 cannot be reached (its logit and y's are constants); class 2, the next, can.

    z = (6, 5.5, (10/6)·Σ_{i≥2} x_i, 2): reaching z_2 > 6 from x_i = 0.5 takes all six x_i up by
    about ε, which a random start does not do and the runs towards class 1 do not try.
    """
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    kernel = np.zeros((8, 4), "float32")
    kernel[2:, 2] = 10.0 / 6.0
    model.layers[0].set_weights([kernel, np.array([6.0, 5.5, 0.0, 2.0], "float32")])
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(6, 8)).astype("float32")
    x[:, 2:] = 0.5  # clean logits 6 > 5.5 > 5 > 2
    y = np.zeros(6, "int32")
    assert (_predict(model, x) == y).all()
    first_only = APGD(eps=0.12, steps=4, loss="dlr", targeted=True, target_classes=1, seed=0)(model, x, y)
    assert (_predict(model, first_only) == y).all()
    all_targets = APGD(eps=0.12, steps=4, loss="dlr", targeted=True, seed=0)(model, x, y)  # 9 → the 3 others
    np.testing.assert_array_equal(_predict(model, all_targets), 2)


def test_untargeted_dlr_and_fewer_classes():
    model = _identity_classifier(3)
    x, y, _ = _two_leader_data(3, 6)
    assert (_predict(model, APGD(eps=0.1, steps=4, loss="dlr", seed=0)(model, x, y)) != y).all()
    with pytest.raises(ValueError, match="at least 4 classes"):
        APGD(eps=0.1, steps=2, loss="dlr", targeted=True)(model, x, y)
    with pytest.raises(ValueError, match="at least 4 classes"):  # a ThreeWayModel declares num_classes
        APGD(eps=0.1, steps=2, loss="dlr", targeted=True)(tiny_model(num_classes=3), np.zeros((6, 6), "float32"), y)
    two = _identity_classifier(2)
    with pytest.raises(ValueError, match="at least 3 classes"):
        APGD(eps=0.1, steps=2, loss="dlr")(two, x[:, :2], np.zeros(6, "int32"))


class OneWayOf(keras.Model):
    """One way of a ThreeWayModel as a plain classifier."""

    def __init__(self, model, way):
        super().__init__()
        self.inner, self.way = model, way

    def call(self, inputs, training=None):
        return self.inner(inputs, way=self.way, training=training)


def test_way_selection_attacks_that_way(vector_data):
    x, y = vector_data
    model = tiny_model(num_classes=3)
    assert not np.allclose(np.asarray(model(x, way="robust")), np.asarray(model(x)))
    robust = np.asarray(APGD(eps=0.3, steps=2, seed=5)(model, x, y, way="robust"))
    alone = np.asarray(APGD(eps=0.3, steps=2, seed=5)(OneWayOf(model, "robust"), x, y))
    standard = np.asarray(APGD(eps=0.3, steps=2, seed=5)(model, x, y, way="standard"))
    np.testing.assert_allclose(robust, alone, atol=1e-6)
    assert not np.allclose(robust, standard)


# --- 6. configuration ---------------------------------------------------------------------------


def test_serialisation_round_trip_and_repr():
    attack = APGD(norm="l2", eps=0.5, steps=20, loss="dlr", targeted=True, restarts=2, target_classes=3, rho=0.6,
                  bounds=(-1.0, 1.0), seed=4)
    config = attack.get_config()
    assert config["bounds"] == [-1.0, 1.0]
    assert APGD.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert isinstance(restored, APGD) and restored.get_config() == config
    assert repr(attack) == (
        "APGD(norm='l2', eps=0.5, steps=20, loss='dlr', targeted=True, restarts=2, target_classes=3, "
        "rho=0.6, bounds=(-1.0, 1.0))"
    )
    assert APGD(eps=0.1, bounds=None).get_config()["bounds"] is None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"norm": "l1"}, "norm"),
        ({"eps": -0.1}, "eps"),
        ({"eps": "big"}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"loss": "mse"}, "loss"),
        ({"loss": "dlr-targeted", "targeted": True}, "loss"),
        ({"targeted": "yes"}, "targeted"),
        ({"restarts": 0}, "restarts"),
        ({"target_classes": 0}, "target_classes"),
        ({"rho": 0.0}, "rho"),
        ({"rho": 1.0}, "rho"),
        ({"rho": float("inf")}, "rho"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"bounds": (0.0,)}, "bounds"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    kwargs = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=name):
        APGD(**kwargs)


def test_seed_reset_reproduces_the_draws(vector_data):
    x, y = vector_data
    model = tiny_model(num_classes=3)
    attack = APGD(eps=0.2, steps=3, seed=7)
    first = np.asarray(attack(model, x, y))
    assert not np.array_equal(first, np.asarray(attack(model, x, y)))  # fresh random starts
    attack.reset_seed(7)
    np.testing.assert_array_equal(first, np.asarray(attack(model, x, y)))
