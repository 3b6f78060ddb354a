"""Fixtures and settings shared by the aatk tests (tiny models, synthetic data).

Everything is sized to keep the whole tests/aatk run to a few minutes on two CPU
cores: inputs of 6 features or 4×4×1 images, widths ≤ 8, batches ≤ 32, 1–3 PGD
steps and at most 2 epochs.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than ~20 s (still run by default)")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Same weights and same random starts in every test, whatever ran before."""
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def vector_data():
    """32 examples of 6 features in [0, 1] with labels in {0, 1, 2}."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    return x, y


@pytest.fixture
def image_data():
    """16 images 4×4×1 in [0, 1] with labels in {0, 1, 2}."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, size=(16, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, size=16).astype("int32")
    return x, y
