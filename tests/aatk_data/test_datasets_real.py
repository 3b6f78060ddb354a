"""The real MNIST and CIFAR-10 files, where present: $AATK_DATA_DIR or <repo>/../shared/data.

The expected figures are those of the official releases (shared/data/README.md):
per-class counts, the train pixel means, and the first labels in official order.
Skipped, with the reason, when the files are absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from aatk import datasets
from aatk_data_testutils import CIFAR_FILES, MNIST_FILES, real_data_dir

DATA = real_data_dir()
MNIST_DIR = DATA / "mnist"
CIFAR_DIR = DATA / "cifar10" / "cifar-10-batches-bin"

needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / f).is_file() for pair in MNIST_FILES.values() for f in pair),
    reason=f"real MNIST files not found in {MNIST_DIR} (set AATK_DATA_DIR to a folder holding mnist/)",
)
needs_cifar = pytest.mark.skipif(
    not all((CIFAR_DIR / f).is_file() for group in CIFAR_FILES.values() for f in group),
    reason=f"real CIFAR-10 binary files not found in {CIFAR_DIR} (set AATK_DATA_DIR to a folder holding cifar10/cifar-10-batches-bin/)",
)

MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
FIRST_LABELS = {
    ("mnist", "train"): [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    ("mnist", "test"): [7, 2, 1, 0, 4, 1, 4, 9, 5, 9],
    ("cifar10", "train"): [6, 9, 9, 4, 1, 1, 2, 7, 8, 3],
    ("cifar10", "test"): [3, 8, 8, 0, 6, 6, 1, 6, 3, 1],
}


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)  # data_dir is always passed explicitly


@pytest.fixture(scope="module")
def cifar_train():
    return datasets.load_arrays("cifar10", "train", data_dir=DATA)


@needs_mnist
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_counts_order_and_range(split):
    x, y = datasets.load_arrays("mnist", split, data_dir=DATA)
    assert x.shape == ((60_000 if split == "train" else 10_000), 28, 28, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y, minlength=10), MNIST_COUNTS[split])
    assert list(datasets.info("mnist").class_counts[split]) == MNIST_COUNTS[split]
    np.testing.assert_array_equal(y[:10], FIRST_LABELS[("mnist", split)])
    assert x.min() == 0.0 and x.max() == 1.0
    if split == "train":
        assert abs(x.mean(dtype=np.float64) - 0.13066048) < 1e-6


@needs_mnist
def test_mnist_pipeline_in_official_order_equals_the_arrays():
    x, y = datasets.load_arrays("mnist", "test", data_dir=MNIST_DIR)
    batches = [(a.numpy(), b.numpy()) for a, b in datasets.load("mnist", "test", data_dir=MNIST_DIR, batch_size=2500)]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


@needs_cifar
def test_cifar_train_counts_channel_means_and_order(cifar_train):
    x, y = cifar_train
    assert x.shape == (50_000, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [5000] * 10)
    np.testing.assert_array_equal(y[:10], FIRST_LABELS[("cifar10", "train")])
    means = x.mean(axis=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose(means, [0.49140, 0.48216, 0.44653], atol=1e-4)
    assert x.min() == 0.0 and x.max() == 1.0


@needs_cifar
@pytest.mark.parametrize("layout", ["shared/data", "cifar10", "cifar-10-batches-bin"])
def test_cifar_test_split_in_every_layout(layout):
    folder = {"shared/data": DATA, "cifar10": DATA / "cifar10", "cifar-10-batches-bin": CIFAR_DIR}[layout]
    x, y = datasets.load_arrays("cifar10", "test", data_dir=folder)
    assert x.shape == (10_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(y[:10], FIRST_LABELS[("cifar10", "test")])


@needs_cifar
def test_cifar_train_pipeline_one_epoch(cifar_train):
    """One pass of the default training pipeline (shuffled, augmented) over all 50,000 images."""
    x_ref, y_ref = cifar_train
    dataset = datasets.load("cifar10", "train", data_dir=DATA, batch_size=1000)
    counts = np.zeros(10, dtype=np.int64)
    total = 0
    first = None
    for x, y in dataset:
        x, y = x.numpy(), y.numpy()
        assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0
        counts += np.bincount(y, minlength=10)
        total += len(y)
        first = y if first is None else first
    assert total == 50_000
    np.testing.assert_array_equal(counts, [5000] * 10)
    assert not np.array_equal(first, y_ref[:1000])  # shuffled
