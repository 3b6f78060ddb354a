"""The same training under TensorFlow and JAX, and on one device or two.

Each case runs :mod:`backend_case` in a fresh process (the backend and the device
count are fixed when a process starts): the same tiny ThreeWayModel, the same
NumPy initial weights and data, three epochs of four steps. Training is
deterministic there (no dropout, no random start), so every pair of runs must
agree up to float32 rounding, and a deliberately different run must not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("backend_case.py")

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="these tests start both backends themselves; they run once, in the TensorFlow pass",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cache: dict[tuple, dict] = {}

    def _run(backend: str, distribution: str = "none", method: str = "aat++", batch_size: int = 16) -> dict:
        key = (backend, distribution, method, batch_size)
        if key not in cache:
            out = tmp_path_factory.mktemp("case") / "result.npz"
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            command = [sys.executable, str(SCRIPT), str(out), "--distribution", distribution, "--method", method,
                       "--batch-size", str(batch_size)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-4000:]
            with np.load(out) as arrays:
                cache[key] = {name: arrays[name] for name in arrays.files}
        return cache[key]

    return _run


def _assert_same(a: dict, b: dict, *, atol: float) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize("method", ["aat++", "1way-st"])
def test_tensorflow_and_jax_give_the_same_losses_and_weights(run, method):
    tensorflow, jax = run("tensorflow", method=method), run("jax", method=method)
    assert any(name.startswith("history_l_") for name in tensorflow)
    _assert_same(tensorflow, jax, atol=2e-5)


def test_one_way_baseline_leaves_the_other_encoder_untouched_under_both_backends(run):
    """1way-st trains encoder_n and the head only: under JAX an unreached weight gets a zero
    gradient, not none, and momentum must still not move it."""
    shape = run("tensorflow", method="1way-st")["weight_0"].shape  # encoder_r's first kernel
    initial = np.random.default_rng(1).normal(0.0, 0.5, size=shape).astype(np.float32)  # as backend_case draws it
    for backend in ("tensorflow", "jax"):
        np.testing.assert_array_equal(run(backend, method="1way-st")["weight_0"], initial)
        assert not np.allclose(run(backend, method="aat++")["weight_0"], initial)  # AAT++ does train it


def test_mirrored_strategy_on_two_devices_equals_one_device(run):
    _assert_same(run("tensorflow", "none"), run("tensorflow", "mirrored"), atol=2e-5)


def test_jax_data_parallel_on_two_devices_equals_one_device(run):
    _assert_same(run("jax", "none"), run("jax", "data_parallel"), atol=2e-5)


def test_the_comparison_can_fail(run):
    """A different global batch changes the run far beyond the tolerance used above."""
    with pytest.raises(AssertionError):
        _assert_same(run("jax", "none"), run("jax", "none", batch_size=32), atol=2e-5)
