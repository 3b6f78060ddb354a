"""Settings shared by the aatk.analysis tests: TensorFlow backend, headless matplotlib, fixed seeds.

Everything is sized to keep this folder well under a minute on two busy CPU
cores: inputs of 3–6 features or 4×4 images, widths ≤ 4, 1–2 PGD steps, and a
handful of Hypothesis examples where a model is involved.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    """Same weights and same random starts in every test, whatever ran before."""
    keras.utils.set_random_seed(1234)
    yield
