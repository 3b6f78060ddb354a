"""Settings of the baseline tests (ST+AT, PI, representation inversion): tiny models, synthetic data.

Sized for two CPU cores: 6 features, widths ≤ 8, a few dozen examples, a few
PGD or inversion steps; the whole folder runs in well under a minute.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    """Same weights and same random starts in every test, whatever ran before."""
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def one_way_pair():
    """A one-way ST and a one-way AT tiny model trained on the toy data, shared read-only."""
    from baselines_testutils import toy_data, trained_one_way

    keras.utils.set_random_seed(7)
    x, y = toy_data()
    return {"st": trained_one_way("1way-st", x, y), "at": trained_one_way("1way-at", x, y), "x": x, "y": y}
