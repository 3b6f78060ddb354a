"""Shared by the command-line tests: where the MNIST files are, the one-pass marker and a tiny configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path | None:
    """The folder holding MNIST's idx files: ``$AATK_DATA_DIR`` or ``../shared/data``, else None."""
    for candidate in (os.environ.get("AATK_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="MNIST files not found (set AATK_DATA_DIR or ../shared/data)")


def tensorflow_pass_only(why: str) -> pytest.MarkDecorator:
    """Runs a test in the TensorFlow pass of ``make test`` only; ``why`` says why one pass is enough."""
    return pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason=why)


# A three-way ST configuration (Eq. 6) of two optimizer steps an epoch, no attack in training: each epoch takes a moment.
TINY = """
[experiment]
name = "tiny"
dataset = "mnist"
backbone = "small_cnn"
method = "st"
seed = 3

[training]
epochs = 2
batch_size = 64
learning_rate = 0.05
subset = 128
init = "pytorch"
optimizer = "sgd-pytorch"

[attack]
train = {norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}
test = [{name = "weak", norm = "linf", eps = 0.1, step_size = 0.05, steps = 1, random_start = true}]
"""
