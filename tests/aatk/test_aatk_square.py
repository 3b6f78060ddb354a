"""The Square Attack (aatk.attacks.square): schedule, margin, feasibility, search, no gradients.

Paper: Andriushchenko et al. (2020), Algorithms 1–3.
"""

from __future__ import annotations


import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from aatk import ThreeWayModel
from aatk.attacks import PGD
from aatk.attacks.square import (
    DEFAULT_P_INIT,
    SquareAttack,
    _meta_pattern,
    _pattern_tables,
    margin_loss,
    square_fraction,
)
from aatk_testutils import check_feasible, conv_encoder, tiny_model

# --- the schedule of p -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iteration", "queries", "halvings"),
    [
        # 10,000 queries: p halves after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000.
        (0, 10_000, 0), (10, 10_000, 0), (11, 10_000, 1), (50, 10_000, 1), (51, 10_000, 2),
        (200, 10_000, 2), (201, 10_000, 3), (500, 10_000, 3), (501, 10_000, 4), (1000, 10_000, 4),
        (1001, 10_000, 5), (2001, 10_000, 6), (4001, 10_000, 7), (6000, 10_000, 7), (6001, 10_000, 8),
        (8000, 10_000, 8), (8001, 10_000, 9), (9999, 10_000, 9),
        # 5,000 queries: iteration i counts as 2i.
        (5, 5000, 0), (6, 5000, 1), (25, 5000, 1), (26, 5000, 2), (100, 5000, 2), (101, 5000, 3),
        (4000, 5000, 8), (4001, 5000, 9),
        # 1,000 queries: i counts as 10i.
        (1, 1000, 0), (2, 1000, 1), (5, 1000, 1), (6, 1000, 2), (21, 1000, 3), (800, 1000, 8), (801, 1000, 9),
        # 3 queries: i counts as floor(10000 i / 3) = 0, 3333, 6666.
        (0, 3, 0), (1, 3, 6), (2, 3, 8),
    ],
)
def test_square_fraction_at_hand_picked_iterations(iteration, queries, halvings):
    assert square_fraction(0.8, iteration, queries) == 0.8 / 2**halvings
    tensor = square_fraction(0.8, ops.convert_to_tensor(iteration, "int32"), queries)
    assert float(tensor) == pytest.approx(0.8 / 2**halvings, rel=1e-6)


def _autoattack_fraction(p_init, it, queries):
    """AutoAttack's p_selection with resc_schedule=True, in floating point."""
    it = int(it / queries * 10000)
    for low, high, factor in (
        (10, 50, 2), (50, 200, 4), (200, 500, 8), (500, 1000, 16), (1000, 2000, 32),
        (2000, 4000, 64), (4000, 6000, 128), (6000, 8000, 256),
    ):
        if low < it <= high:
            return p_init / factor
    return p_init / 512 if it > 8000 else p_init


@pytest.mark.parametrize("queries", [1, 7, 100, 999, 1000, 5000])
def test_square_fraction_matches_the_reference_schedule(queries):
    iterations = np.arange(queries + 3, dtype="int32")
    expected = [_autoattack_fraction(0.05, int(i), queries) for i in iterations]
    assert [square_fraction(0.05, int(i), queries) for i in iterations] == expected
    np.testing.assert_allclose(np.asarray(square_fraction(0.05, iterations, queries)), expected, rtol=1e-6)


# --- the margin ----------------------------------------------------------------------------------


def test_margin_loss_on_hand_computed_logits():
    logits = np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0], [-1.0, -5.0, -2.0]], "float32")
    labels = np.array([0, 0, 1, 2], "int32")
    # 2 − 1;  0 − 3;  a tie 1 − 1;  −2 − (−1).
    np.testing.assert_allclose(np.asarray(margin_loss(logits, labels)), [1.0, -3.0, 0.0, -1.0])
    two = np.array([[0.25, -0.5]], "float32")
    np.testing.assert_allclose(np.asarray(margin_loss(two, np.array([1]))), [-0.75])


# --- the ℓ2 meta-pattern ------------------------------------------------------------------------


def _bump(rows, cols):
    """The pseudo-Gaussian rectangle, built as its definition says: 1/(k+1)² on every centred square of half-side k."""
    out = np.zeros((rows, cols))
    for k in range(max(rows // 2, cols // 2) + 1):
        out[max(rows // 2 - k, 0) : rows // 2 + k + 1, max(cols // 2 - k, 0) : cols // 2 + k + 1] += 1.0 / (k + 1) ** 2
    return out


def _reference_pattern(s):
    out = np.zeros((s, s))
    if s // 2:
        top = _bump(s // 2, s)
        out[: s // 2] = top / np.linalg.norm(top)
    bottom = _bump(s - s // 2, s)
    out[s // 2 :] = -bottom / np.linalg.norm(bottom)
    return out / np.linalg.norm(out)


def test_meta_pattern_matches_its_definition():
    sides = np.array([1, 2, 3, 4, 5, 8, 9], "int32")
    grid = np.arange(9, dtype="int32")
    a, b = ops.convert_to_tensor(grid[:, None]), ops.convert_to_tensor(grid[None, :])
    side = ops.convert_to_tensor(sides[:, None, None])
    tables = _pattern_tables(12)
    patterns = np.asarray(_meta_pattern(a, b, side, tables), np.float64)  # every side at once
    transposed = np.asarray(_meta_pattern(b, a, side, tables), np.float64)
    for index, s in enumerate(sides):
        expected = _reference_pattern(s)
        np.testing.assert_allclose(patterns[index, :s, :s], expected, atol=1e-6)
        np.testing.assert_allclose(transposed[index, :s, :s], expected.T, atol=1e-6)
        assert np.linalg.norm(patterns[index, :s, :s]) == pytest.approx(1.0, abs=1e-5)


# --- one proposal ---------------------------------------------------------------------------------


def test_linf_proposal_changes_one_square_to_plus_or_minus_eps():
    rng = np.random.default_rng(0)
    eps, side = 0.1, 2
    x = rng.uniform(0.2, 0.8, size=(32, 5, 5, 2)).astype("float32")
    best = x + eps  # at +ε everywhere: only a "−" somewhere changes the image
    attack = SquareAttack(eps=eps, seed=0)
    proposal = np.asarray(attack._linf_proposal(x, best, ops.convert_to_tensor(side), attack._seed_generator))
    changed = np.any(np.abs(proposal - best) > 1e-7, axis=-1)  # (batch, H, W)
    for example in range(len(x)):
        rows, cols = np.nonzero(changed[example])
        assert len(rows) == side * side, "a proposal that changes nothing wastes a query"
        assert rows.max() - rows.min() == side - 1 and cols.max() - cols.min() == side - 1
        window = proposal[example, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        clean = x[example, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        signs = np.sign(np.round((window - clean) / eps))
        assert np.all(np.abs(np.abs(window - clean) - eps) < 1e-6)
        assert np.all(signs == signs[:1, :1])  # one sign per channel over the window
        assert np.any(signs < 0)


@pytest.mark.parametrize("bounded", [False, True])
def test_l2_proposal_keeps_the_whole_budget(bounded):
    rng = np.random.default_rng(1)
    eps = 0.5
    x = rng.uniform(0.0, 1.0, size=(16, 7, 7, 3)).astype("float32")
    delta = rng.normal(size=x.shape)
    delta *= 0.8 * eps / np.linalg.norm(delta.reshape(16, -1), axis=1)[:, None, None, None]  # 20 % left unused
    best = (x + delta).astype("float32")
    attack = SquareAttack(norm="l2", eps=eps, bounds=(0.0, 1.0) if bounded else None, seed=0)
    if bounded:
        best = np.clip(best, 0.0, 1.0)
    proposal = np.asarray(attack._l2_proposal(x, best, ops.convert_to_tensor(3), attack._seed_generator), np.float64)
    norms = np.linalg.norm((proposal - x).reshape(16, -1), axis=1)
    if bounded:
        assert proposal.min() >= 0.0 and proposal.max() <= 1.0
        assert norms.max() <= eps * (1 + 1e-5)
    else:
        np.testing.assert_allclose(norms, eps, rtol=1e-5)  # the unused fifth went into the window
    changed = np.any(np.abs(proposal - best) > 1e-6, axis=-1).reshape(16, -1).sum(axis=1)
    assert changed.max() <= 2 * 9  # two 3×3 squares change; elsewhere the rescaling by ε / ‖δ‖ ≈ 1 is invisible


def test_windows_are_uniform_over_every_position():
    attack = SquareAttack(eps=0.1, seed=0)
    height, side, draws = 6, 4, 3000
    uniform = keras.random.uniform((draws, 2), seed=attack._seed_generator)
    window, _, _ = attack._window(ops.convert_to_tensor(side), uniform, height, height)
    window = np.asarray(window)[..., 0]
    corners = np.argmax(window.any(axis=2), axis=1)  # first row of each window
    assert window.sum(axis=(1, 2)).tolist() == [side * side] * draws
    counts = np.bincount(corners, minlength=height - side + 1)
    assert len(counts) == height - side + 1  # corners 0, 1, 2: the last one (H − s) included
    assert np.all(np.abs(counts / draws - 1 / 3) < 0.04), counts


# --- feasibility -------------------------------------------------------------------------------------


def _linear_logits(weights):
    w = ops.convert_to_tensor(weights, "float32")
    return lambda points: ops.matmul(ops.reshape(points, (ops.shape(points)[0], -1)), w)


# Each example compiles a new search; XLA compiles are slow on CPU, so the JAX pass draws fewer
# (the loop is the same keras.ops code under both backends; every other test checks feasibility too).
@settings(max_examples=12 if keras.backend.backend() == "tensorflow" else 4)
@given(
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.one_of(st.just(0.0), st.floats(1e-3, 1.0), st.just(5.0)),
    shape=st.sampled_from([(3, 4, 4, 1), (2, 5, 3, 2), (3, 6), (2, 1, 1, 1)]),
    queries=st.integers(1, 4),
    p_init=st.floats(0.01, 1.0),
    bounded=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_square_stays_in_ball_and_bounds(norm, eps, shape, queries, p_init, bounded, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=shape).astype("float32")
    x.reshape(-1)[::3] = 0.0  # on the bounds, where clipping matters most
    x.reshape(-1)[1::5] = 1.0
    weights = rng.normal(size=(int(np.prod(shape[1:])), 3)).astype("float32")
    y = rng.integers(0, 3, size=shape[0]).astype("int32")
    attack = SquareAttack(norm=norm, eps=eps, queries=queries, p_init=p_init, bounds=(0.0, 1.0) if bounded else None, seed=seed)
    check_feasible(x, attack.run(_linear_logits(weights), x, y), attack)


# --- the search on an easy linear model ------------------------------------------------------------


def _linear_model(shape=(6, 6, 1), classes=3, seed=0, quantize=False):
    """logits = q(x − ½) W: a linear classifier, or one on a staircase q with zero gradient everywhere."""
    rng = np.random.default_rng(seed)
    dim = int(np.prod(shape))
    weights = rng.normal(size=(dim, classes)).astype("float32")
    # The staircase's gradient is 0, not None (+ 0·t): TensorFlow has no gradient for round.
    steps = [keras.layers.Lambda(lambda t: ops.round(t * 8.0) / 8.0 + 0.0 * t)] if quantize else []
    model = keras.Sequential([keras.Input(shape), *steps, keras.layers.Flatten(), keras.layers.Dense(classes)])
    model.layers[-1].set_weights([weights, -0.5 * weights.sum(axis=0)])
    return model


def _margins(model, x, y):
    return np.asarray(margin_loss(model(x), y), np.float64)


@pytest.fixture(scope="module")
def easy():
    """32 images near the decision boundaries of a linear model, labelled as it classifies them, and 8 misclassified."""
    keras.utils.set_random_seed(0)
    model = _linear_model()
    rng = np.random.default_rng(0)
    x = rng.uniform(0.45, 0.55, size=(40, 6, 6, 1)).astype("float32")
    y = np.argmax(np.asarray(model(x)), axis=1).astype("int32")
    y[32:] = (y[32:] + 1) % 3
    return model, x, y


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.05), ("l2", 0.3)])
def test_the_search_only_lowers_margins_and_fools_an_easy_model(easy, norm, eps):
    model, x, y = easy
    clean = _margins(model, x, y)
    assert (clean[:32] > 0).all() and (clean[32:] < 0).all()
    results = {}
    for queries in (1, 100):
        attack = SquareAttack(norm=norm, eps=eps, queries=queries, seed=3)
        x_adv = np.asarray(attack(model, x, y))
        check_feasible(x, x_adv, attack)
        results[queries] = (x_adv, _margins(model, x_adv, y))
    # Misclassified inputs are returned as they are.
    for x_adv, _ in results.values():
        np.testing.assert_array_equal(x_adv[32:], x[32:])
    # queries=1 returns the better of the clean input and the initialisation; every budget
    # starts from the same initialisation (same seed), keeps the best point it has seen, and
    # so ends at most at that margin. (Between two larger budgets nothing is guaranteed per
    # example: the schedule of p is stretched over the budget, so their squares differ.)
    init_or_clean = results[1][1]
    assert np.all(init_or_clean <= clean + 1e-5)
    assert np.all(results[100][1] <= init_or_clean + 1e-5)
    fooled = {q: int((margins < 0).sum()) for q, (_, margins) in results.items()}
    assert fooled[1] <= fooled[100]
    assert fooled[100] >= 38, fooled  # the 8 misclassified and at least 30 of the 32 others
    assert fooled[1] < 38  # the initialisation alone is not enough: the search did the work


def test_search_stops_when_everything_is_fooled(easy):
    """All misclassified: no iteration runs (a budget of 10⁸ would take hours otherwise)."""
    model, x, y = easy
    attack = SquareAttack(eps=0.05, queries=10**8, seed=0)
    np.testing.assert_array_equal(np.asarray(attack(model, x[32:], y[32:])), x[32:])


def test_a_zero_gradient_model_is_still_fooled(monkeypatch):
    """A staircase model has a zero gradient everywhere: PGD does not move, the Square Attack fools it."""
    import aatk.backend

    model = _linear_model(quantize=True, seed=1)
    x = np.random.default_rng(1).uniform(0.3, 0.7, size=(24, 6, 6, 1)).astype("float32")
    y = np.argmax(np.asarray(model(x)), axis=1).astype("int32")
    assert (_margins(model, x, y) > 0).all()
    x_pgd = np.asarray(PGD(eps=0.1, step_size=0.05, steps=5)(model, x, y))
    np.testing.assert_array_equal(x_pgd, x)  # sign(0) = 0: the gradient is useless

    def no_gradient(*args, **kwargs):
        raise AssertionError("the Square Attack asked for a gradient")

    monkeypatch.setattr(aatk.backend, "input_gradient", no_gradient)
    monkeypatch.setattr(aatk.backend, "batch_jacobian", no_gradient)
    attack = SquareAttack(eps=0.1, queries=100, seed=0)
    x_adv = np.asarray(attack(model, x, y))
    check_feasible(x, x_adv, attack)
    assert (_margins(model, x_adv, y) < 0).mean() >= 0.9


# --- determinism, serialisation, arguments ------------------------------------------------------


def test_same_seed_same_result_and_reset_seed(easy):
    model, x, y = easy
    x, y = x[:16], y[:16]
    first = SquareAttack(norm="l2", eps=0.3, queries=5, seed=11)
    a = np.asarray(first(model, x, y))
    b = np.asarray(SquareAttack(norm="l2", eps=0.3, queries=5, seed=11)(model, x, y))
    np.testing.assert_array_equal(a, b)
    again = np.asarray(first(model, x, y))  # the generator moved on: other draws
    assert not np.array_equal(a, again)
    first.reset_seed(11)
    np.testing.assert_array_equal(np.asarray(first(model, x, y)), a)
    first.reset_seed(12)  # as a new attack with seed=12 would draw
    assert not np.array_equal(a, np.asarray(first(model, x, y)))


def test_config_round_trip_and_repr():
    attack = SquareAttack(norm="l2", eps=0.5, queries=300, p_init=0.3, bounds=(-1.0, 1.0), seed=4)
    config = attack.get_config()
    assert config == {"norm": "l2", "eps": 0.5, "queries": 300, "p_init": 0.3, "bounds": [-1.0, 1.0], "seed": 4}
    rebuilt = SquareAttack.from_config(config)
    assert rebuilt.get_config() == config and rebuilt.bounds == (-1.0, 1.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(attack))
    assert isinstance(restored, SquareAttack) and restored.get_config() == config
    assert repr(attack) == "SquareAttack(norm='l2', eps=0.5, queries=300, p_init=0.3, bounds=(-1.0, 1.0))"
    assert repr(SquareAttack(eps=0.3, bounds=None)) == (
        "SquareAttack(norm='linf', eps=0.3, queries=5000, p_init=0.05, bounds=None)"
    )
    assert SquareAttack(norm="l2", eps=1.0).p_init == DEFAULT_P_INIT["l2"] == 0.1
    assert SquareAttack.name == "Square"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"queries": 0}, "queries"), ({"queries": -3}, "queries"), ({"queries": 2.5}, "queries"),
        ({"queries": True}, "queries"), ({"queries": "100"}, "queries"),
        ({"p_init": 0.0}, "p_init"), ({"p_init": 1.5}, "p_init"), ({"p_init": -0.1}, "p_init"),
        ({"p_init": float("nan")}, "p_init"), ({"p_init": "0.1"}, "p_init"),
        ({"eps": -0.1}, "eps"), ({"eps": float("inf")}, "eps"), ({"norm": "l1"}, "norm"),
        ({"bounds": (1.0, 0.0)}, "bounds"), ({"bounds": (0.0,)}, "bounds"), ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    arguments = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=name):
        SquareAttack(**arguments)


def test_square_fraction_rejects_bad_arguments():
    with pytest.raises(ValueError, match="p_init"):
        square_fraction(0.0, 1, 100)
    with pytest.raises(ValueError, match="queries"):
        square_fraction(0.1, 1, 0)


def test_inputs_of_another_layout_are_refused(easy):
    model, _, _ = easy
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        SquareAttack(eps=0.1)(model, np.zeros((2, 6, 6), "float32"), np.zeros(2, "int32"))
    with pytest.raises(ValueError, match="outside|bounds"):
        SquareAttack(eps=0.1)(model, np.full((2, 6, 6, 1), 2.0, "float32"), np.zeros(2, "int32"))


# --- the ways of a three-way model ------------------------------------------------------------------


def _robust_margins(model, x, y, way):
    return np.asarray(margin_loss(model(x, way=way), y), np.float64)


def test_way_selection_on_a_three_way_model(vector_data, image_data):
    x, y = vector_data  # vectors (batch, 6): searched as 1×6 images
    model = tiny_model()
    attack = SquareAttack(norm="linf", eps=0.3, queries=30, seed=0)
    x_robust = np.asarray(attack(model, x, y, way="robust"))
    check_feasible(x, x_robust, attack)
    before, after = _robust_margins(model, x, y, "robust"), _robust_margins(model, x_robust, y, "robust")
    assert np.all(after <= before + 1e-5)
    assert np.mean(after < before - 1e-4) > 0.3  # the robust way's margin went down
    with pytest.raises(ValueError, match="way"):
        attack(model, x, y, way="sideways")
    with pytest.raises(ValueError, match="way"):
        attack(_linear_model(shape=(6,)), x, y, way="robust")  # a plain classifier has one way

    images, labels = image_data
    conv = ThreeWayModel(conv_encoder(), conv_encoder(), num_classes=3)
    l2 = SquareAttack(norm="l2", eps=1.0, queries=20, seed=0)
    x_adv = np.asarray(l2(conv, images, labels, way="non_robust"))
    check_feasible(images, x_adv, l2)
    before = _robust_margins(conv, images, labels, "non_robust")
    assert np.all(_robust_margins(conv, x_adv, labels, "non_robust") <= before + 1e-5)
