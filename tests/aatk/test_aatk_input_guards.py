"""Wrong data is refused with a clear error, never trained or evaluated on in silence (issue 12, items 7–10).

Every test runs under the active Keras backend; run the file under both
(``KERAS_BACKEND=tensorflow`` and ``KERAS_BACKEND=jax``): the same inputs must be refused.
Errors found before the first step are ValueErrors under both backends. A bad *later*
batch of a Python generator or a PyDataset is found on the host as it is drawn: under JAX
the ValueError itself stops the loop; under TensorFlow Keras draws it inside a
``tf.data`` pipeline, which re-raises it as an InvalidArgumentError with the same message.
"""

from __future__ import annotations

import os
import re
import warnings

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aatk
from aatk import backend
from aatk.attacks import PGD
from aatk.model import DEFAULT_INPUT_RANGE, InputChecks
from aatk_testutils import mlp_encoder, tiny_model

BACKEND = backend.BACKEND


def _later_batch_error() -> type[Exception]:
    """What a bad later generator/PyDataset batch raises under the active backend (see the module docstring)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.errors.InvalidArgumentError
    return ValueError


def _data(n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, 6)).astype("float32"), rng.integers(0, 3, size=n).astype("int32")


def _st_model(**compile_kwargs) -> aatk.ThreeWayModel:
    """Standard training, no attack: nothing but the input range guards the inputs."""
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), method="st", **compile_kwargs)
    return model


def _snapshot(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def _assert_untrained(model, before) -> None:
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 0  # not a single step was taken


def _assert_usable(model) -> None:
    """The model kept finite weights and still trains and predicts (JAX detaches them during a loop)."""
    assert all(np.isfinite(w).all() for w in model.get_weights())
    x, y = _data(8, seed=5)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 3)


def _generator(batches):
    yield from batches


class _Batches(keras.utils.PyDataset):
    """A PyDataset over a list of batches."""

    def __init__(self, batches, **kwargs):
        super().__init__(**kwargs)
        self.batches = list(batches)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


UNSCALED = re.escape("outside the model's input_range (0.0, 1.0)")


# --- item 7: inputs outside [0, 1] or of an integer dtype, with or without an attack -----


def test_unscaled_images_are_refused_without_an_attack():
    """method='st' compiles no attack; 0..255 images used to train with a loss of ~150,000."""
    x, y = _data()
    model = _st_model()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"x has values in \[\S+, \S+\] " + UNSCALED + r".*x / 255.*input_range=None"):
        model.fit(x * 255.0, y, epochs=1, verbose=0)
    _assert_untrained(model, before)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
@pytest.mark.parametrize("input_range", [DEFAULT_INPUT_RANGE, None], ids=["default-range", "input_range=None"])
def test_integer_inputs_are_refused_whatever_the_input_range(dtype, input_range):
    x, y = _data()
    images = (x * 255).astype(dtype)
    model = _st_model(input_range=input_range)
    before = _snapshot(model)
    message = rf"x has integer dtype {dtype}; the model takes float inputs: convert to float in \[0, 1\], e.g. x / 255"
    with pytest.raises(ValueError, match=message):
        model.fit(images, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(images, y, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.predict(images, verbose=0)
    with pytest.raises(ValueError, match=r"x \(batch 1\) has integer dtype"):
        model.fit(_generator([(images[:8], y[:8])]), epochs=1, verbose=0)
    _assert_untrained(model, before)


def test_input_range_none_accepts_unbounded_inputs():
    """The explicit opt-out: Gaussian inputs (the Appendix A.2 toy) train, evaluate and predict."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.0, 3.0, size=(32, 6)).astype("float32"), rng.integers(0, 3, size=32).astype("int32")
    assert x.min() < -1 and x.max() > 2
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), method="aat", attack=PGD(eps=0.1, step_size=0.1, steps=1, bounds=None),
                  input_range=None)
    assert model.input_range is None
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    report = aatk.evaluate(model, (x, y), PGD(eps=0.1, step_size=0.1, steps=1, bounds=None), adaptive=False)
    assert 0.0 <= report["S"] <= 1.0


def test_attack_bounds_still_apply_when_input_range_is_none():
    x, y = _data()
    model = tiny_model()
    model.compile(method="aat", attack=PGD(eps=0.1, step_size=0.1, steps=1), input_range=None)
    with pytest.raises(ValueError, match=re.escape("but the attack's bounds are (0.0, 1.0)")):
        model.fit(x * 2.0, y, epochs=1, verbose=0)


def test_a_custom_input_range_is_enforced():
    x, y = _data()
    model = _st_model(input_range=(-1, 1))
    assert model.input_range == (-1.0, 1.0)
    model.fit(2 * x - 1, y, epochs=1, verbose=0)  # inside [-1, 1]
    with pytest.raises(ValueError, match=re.escape("outside the model's input_range (-1.0, 1.0)")):
        model.fit(2 * x - 1.5, y, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "input_range",
    [(1.0, 0.0), (0.5, 0.5), (0.0, float("nan")), (0.0, float("inf")), (0.0,), (0.0, 1.0, 2.0), "01", 1.0, (True, 1.0), ("0", "1")],
)
def test_compile_rejects_a_bad_input_range(input_range):
    with pytest.raises(ValueError, match="input_range must be"):
        tiny_model().compile(method="st", input_range=input_range)


def test_input_range_is_saved_with_the_model(tmp_path):
    for input_range in (None, (-1.0, 2.0), DEFAULT_INPUT_RANGE):
        model = _st_model(input_range=input_range)
        path = tmp_path / "model.keras"
        model.save(path)
        assert keras.models.load_model(path).input_range == input_range


def test_a_config_saved_before_input_range_existed_loads_with_the_default():
    old = _st_model(input_range=None).get_compile_config()
    assert old["input_range"] is None
    del old["input_range"]  # what models saved before this change hold
    model = tiny_model()
    model.compile_from_config(old)
    assert model.input_range == DEFAULT_INPUT_RANGE
    with pytest.raises(ValueError, match=UNSCALED):
        model.fit(*(lambda x, y: (x * 255, y))(*_data()), epochs=1, verbose=0)


def test_aatk_evaluate_refuses_unscaled_inputs_with_an_unbounded_attack():
    x, y = _data()
    with pytest.raises(ValueError, match=UNSCALED):
        aatk.evaluate(_st_model(), (x * 255, y), PGD(eps=0.1, step_size=0.1, steps=1, bounds=None), adaptive=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.just(6)), elements=st.floats(0.0, 1.0, width=32)),
    low=st.sampled_from([-1.0, 0.0]),
)
def test_every_float_batch_inside_the_range_is_accepted(batch, low):
    checks = InputChecks(num_classes=3, example_shape=(6,), input_range=(low, 1.0))
    checks.check_arrays(batch, np.zeros(len(batch), "int32"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.just(6)), elements=st.floats(0.0, 1.0, width=32)),
    outside=st.one_of(st.floats(1.0, 1e6, exclude_min=True, width=32), st.floats(-1e6, 0.0, exclude_max=True, width=32)),
    position=st.integers(0, 10_000),
)
def test_every_float_batch_with_a_value_outside_the_range_is_refused(batch, outside, position):
    batch = batch.copy()
    batch.flat[position % batch.size] = outside
    with pytest.raises(ValueError, match=UNSCALED):
        InputChecks(num_classes=3, example_shape=(6,)).check_arrays(batch)
    InputChecks(num_classes=3, example_shape=(6,), input_range=None).check_arrays(batch)  # the opt-out accepts it


# --- item 8: generators and PyDatasets are checked on the host, under both backends -----

BAD_BATCHES = {
    "label = C": (lambda x, y: (x, np.full_like(y, 3)), r"labels must lie in \[0, 3\), found values in \[3, 3\]"),
    "label 10": (lambda x, y: (x, np.full_like(y, 10)), r"labels must lie in \[0, 3\), found values in \[10, 10\]"),
    "label -1": (lambda x, y: (x, np.full_like(y, -1)), r"labels must lie in \[0, 3\), found values in \[-1, -1\]"),
    "fractional label": (lambda x, y: (x, y + np.float32(0.5)), "labels must be integer class indices"),
    "unscaled": (lambda x, y: (x * 255.0, y), UNSCALED),
    "NaN": (lambda x, y: (np.where(x > 0.5, np.nan, x).astype("float32"), y), r"non-finite value\(s\) \(NaN or inf\)"),
    "no labels": (lambda x, y: (x,), "yields inputs without labels"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
@pytest.mark.parametrize("source", ["generator", "PyDataset"])
def test_a_bad_first_batch_stops_fit_and_evaluate_before_any_step(source, case):
    corrupt, message = BAD_BATCHES[case]
    x, y = _data()
    bad = corrupt(x[:8], y[:8])
    model = _st_model()
    before = _snapshot(model)
    for run in (lambda data: model.fit(data, epochs=1, verbose=0), lambda data: model.evaluate(data, verbose=0)):
        data = _generator([bad, (x[8:], y[8:])]) if source == "generator" else _Batches([bad, (x[8:], y[8:])])
        where = r"x \(batch 1\)" if source == "generator" else r"x \(batch index 0\)"
        with pytest.raises(ValueError, match=where + ".*" + message):
            run(data)
    _assert_untrained(model, before)  # refused before the loop started: nothing was detached


@pytest.mark.parametrize(
    ("source", "case"),
    [(source, case) for source in ("generator", "PyDataset") for case in ("label 10", "label -1", "unscaled", "NaN")]
    # One case with worker threads: Keras leaves a failed PyDataset's workers to time out (5 s) when collected.
    + [("PyDataset-2-workers", "label 10")],
)
def test_a_bad_later_batch_stops_fit_and_evaluate(source, case):
    """The batches before it are used; the bad one never reaches a step, and the model stays whole."""
    corrupt, message = BAD_BATCHES[case]
    x, y = _data(32)
    good = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)]
    bad = corrupt(x[24:], y[24:])

    def data():
        if source == "generator":
            return _generator([*good, bad])
        return _Batches([*good, bad], **({"workers": 2} if source.endswith("workers") else {}))

    where = r"x \(batch 4\)" if source == "generator" else r"x \(batch index 3\)"
    model = _st_model()
    with pytest.raises(_later_batch_error(), match=where + ".*" + message):
        model.fit(data(), epochs=1, verbose=0)
    _assert_usable(model)
    with pytest.raises(_later_batch_error(), match=where + ".*" + message):
        model.evaluate(data(), verbose=0)
    _assert_usable(model)


def test_evaluate_refuses_labels_out_of_range():
    """Under JAX, model.evaluate with label 10 used to return zeros for every metric."""
    x, y = _data()
    model = _st_model()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), found values in \[0, 10\]"):
        model.evaluate(x, np.where(np.arange(16) == 4, 10, y), verbose=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), found values in \[-1, 2\]"):
        model.test_on_batch(x, np.where(np.arange(16) == 4, -1, y))
    with pytest.raises(ValueError, match="without labels"):
        model.evaluate(x, verbose=0)


def test_predict_checks_inputs_but_not_labels():
    x, y = _data()
    model = _st_model()
    with pytest.raises(ValueError, match=UNSCALED):
        model.predict(x * 255.0, verbose=0)
    with pytest.raises(ValueError, match="non-finite"):
        model.predict_on_batch(np.where(x > 0.5, np.nan, x))
    with pytest.raises(ValueError, match=r"x \(batch 1\) has values .*" + UNSCALED):
        model.predict(_generator([(x * 255.0,)]), verbose=0)
    with pytest.raises(_later_batch_error(), match=r"x \(batch index 3\) has values .*" + UNSCALED):
        model.predict(_Batches([(x,), (x,), (x,), (x * 255.0,)]), verbose=0)
    _assert_usable(model)
    # Labels are not read by predict, so they are not checked either.
    assert model.predict(_generator([(x, np.full(16, 99))]), verbose=0).shape == (16, 3)


@pytest.mark.parametrize("source", ["generator", "PyDataset"])
def test_the_checks_pass_good_batches_through_unchanged(source):
    """The same training with and without the host-side checks (keras.Model.fit skips them)."""
    x, y = _data(32)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    weights = []
    for fit in (aatk.ThreeWayModel.fit, keras.Model.fit):
        keras.utils.set_random_seed(7)
        model = _st_model()
        model.optimizer.build(model.trainable_variables)
        fit(model, _generator(batches) if source == "generator" else _Batches(batches), epochs=1, verbose=0)
        weights.append(model.get_weights() + [int(model.optimizer.iterations)])
    for checked, unchecked in zip(*weights):
        np.testing.assert_array_equal(checked, unchecked)


def test_tf_data_pipeline_checks_input_range_and_fractional_labels_in_later_batches():
    tf = pytest.importorskip("tensorflow")
    x, y = _data()
    model = _st_model()
    unscaled = tf.data.Dataset.from_tensor_slices((np.concatenate([x, x * 255.0]), np.concatenate([y, y]))).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="aatk: inputs above the upper bound 1.0 of the model input_range"):
        model.fit(unscaled, epochs=1, verbose=0)
    fractional = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([x, x]), np.concatenate([y, y + 0.5]).astype("float32"))
    ).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="aatk: labels must be integer class indices"):
        model.evaluate(fractional, verbose=0)
    inputs_only = tf.data.Dataset.from_tensor_slices(np.concatenate([x, x * 255.0])).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="aatk: inputs above the upper bound 1.0 of the model input_range"):
        model.predict(inputs_only, verbose=0)
    _assert_usable(model)


# --- item 9: aatk.evaluate checks its arguments at entry ---------------------------------

_TEST_ATTACK = PGD(eps=0.1, step_size=0.1, steps=1)


def test_aatk_evaluate_refuses_more_or_fewer_labels_than_inputs():
    x, y = _data(64)
    labels = np.concatenate([y, y[:6]])
    for batch_size in (32, 64, 256):  # 32 and 64 used to drop the 6 extra labels in silence
        with pytest.raises(ValueError, match="dataset has 64 inputs but 70 labels; expected one label per input"):
            aatk.evaluate(_st_model(), (x, labels), _TEST_ATTACK, batch_size=batch_size)
    with pytest.raises(ValueError, match="dataset has 64 inputs but 60 labels"):
        aatk.evaluate(_st_model(), (x, y[:60]), _TEST_ATTACK, batch_size=32)


def test_aatk_evaluate_refuses_a_model_that_was_never_built():
    """Encoders without an Input layer: the model is built on its first call, which never came."""
    plain = lambda: keras.Sequential([keras.layers.Dense(4, activation="relu")])  # noqa: E731
    model = aatk.ThreeWayModel(plain(), plain(), num_classes=3, name="unbuilt")
    assert not model.built
    with pytest.raises(ValueError, match=r"model 'unbuilt' is not built: train it \(fit\)"):
        aatk.evaluate(model, _data(), _TEST_ATTACK)


def test_aatk_evaluate_refuses_data_without_labels():
    x, _ = _data()
    model = _st_model()
    with pytest.raises(ValueError, match=r"its y is NoneType \(labels are required"):
        aatk.evaluate(model, (x, None), _TEST_ATTACK)
    with pytest.raises(ValueError, match=r"dataset must be a tf.data.Dataset of \(x, y\) batches or a tuple \(x, y\) of arrays, got ndarray"):
        aatk.evaluate(model, x, _TEST_ATTACK)
    with pytest.raises(ValueError, match="got a tuple of 1"):
        aatk.evaluate(model, (x,), _TEST_ATTACK)
    tf = pytest.importorskip("tensorflow")
    with pytest.raises(ValueError, match="dataset yields batches without labels"):
        aatk.evaluate(model, tf.data.Dataset.from_tensor_slices(x).batch(8), _TEST_ATTACK)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "32", None])
def test_aatk_evaluate_refuses_a_batch_size_that_is_not_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer, got {re.escape(repr(batch_size))}"):
        aatk.evaluate(_st_model(), _data(), _TEST_ATTACK, batch_size=batch_size)


# --- item 10: smaller guards --------------------------------------------------------------


@pytest.mark.parametrize("method", [None, 3, b"st"])
def test_compile_refuses_a_method_that_is_neither_a_name_nor_terms(method):
    with pytest.raises(ValueError, match=r"method must be one of \['aat', 'aat\+\+', 'st'.*or a subset of \('st', 'as', 'ar', 'an'\), got"):
        tiny_model().compile(method=method)


@pytest.mark.parametrize("method", [{"st": 2.0}, {"st": 1.0, "as": 0.5}])
def test_compile_refuses_weighted_terms_instead_of_ignoring_the_weights(method):
    with pytest.raises(ValueError, match="weighted terms are not supported: every term of a method weighs 1"):
        tiny_model().compile(method=method, attack=_TEST_ATTACK)


@pytest.mark.parametrize("labels", [np.array(list("abcabcabcabcabca")), np.array(["0"] * 16), np.array([None] * 16)])
def test_labels_that_are_not_numbers_get_a_clear_error(labels):
    x, _ = _data()
    model = _st_model()
    with pytest.raises(ValueError, match=r"labels must be integer class indices in \[0, 3\), got dtype"):
        model.fit(x, labels, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        aatk.evaluate(model, (x, labels), _TEST_ATTACK)


def test_encoders_sharing_a_layer_get_a_warning_naming_it():
    shared = keras.layers.Dense(4, activation="relu", name="shared_dense")
    encoder_r = keras.Sequential([keras.Input((6,)), shared, keras.layers.Dense(4, name="own_r")])
    encoder_n = keras.Sequential([keras.Input((6,)), shared, keras.layers.Dense(4, name="own_n")])
    with pytest.warns(UserWarning, match=r"share the layer\(s\) \['shared_dense'\].*not separate"):
        aatk.ThreeWayModel(encoder_r, encoder_n, num_classes=3)


def test_separate_encoders_get_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        aatk.ThreeWayModel(mlp_encoder(), mlp_encoder(), num_classes=3)


def test_the_backend_under_test_is_the_one_requested():
    assert BACKEND == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_pseudo_input_model_checks_its_natural_images_against_the_input_range(tmp_path):
    """The PI baseline: natural images must lie in the input range, the pseudo inputs need not."""
    from aatk.baselines import PseudoInputModel

    model = PseudoInputModel(mlp_encoder(), mlp_encoder(), num_classes=3)
    model.compile(optimizer="sgd")
    x, y = _data(8)
    model.fit((x, 2.0 * x - 0.5, x), (y, y, y), batch_size=8, epochs=1, verbose=0)  # pseudo part outside [0, 1]
    with pytest.raises(ValueError, match="x_natural has values .*" + UNSCALED):
        model.fit((x * 255.0, x, x), (y, y, y), batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x_robust has integer dtype uint8"):
        model.fit((x, (x * 255).astype("uint8"), x), (y, y, y), batch_size=8, epochs=1, verbose=0)
    model.compile(optimizer="sgd", input_range=None)
    model.fit((x * 255.0, x, x), (y, y, y), batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "pi.keras")
    assert keras.models.load_model(tmp_path / "pi.keras").input_range is None
