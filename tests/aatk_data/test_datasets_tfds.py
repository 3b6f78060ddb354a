"""aatk.datasets through tensorflow-datasets, with tfds' mock data (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from aatk import datasets

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed")


@pytest.fixture(autouse=True)
def _tfds_source(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)  # no data_dir, no env: tfds
    with tfds.testing.mock_data(num_examples=10):
        yield


@pytest.mark.parametrize(("name", "split"), [("mnist", "train"), ("mnist", "test"), ("cifar10", "train"), ("cifar10", "test")])
def test_batches_of_unit_float32_images_and_int32_labels(name, split):
    dataset = datasets.load(name, split, batch_size=4)
    shape = datasets.info(name).image_shape
    image_spec, label_spec = dataset.element_spec
    assert tuple(image_spec.shape) == (None, *shape) and image_spec.dtype == tf.float32
    assert tuple(label_spec.shape) == (None,) and label_spec.dtype == tf.int32
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.shape == (10, *shape) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert y.min() >= 0 and y.max() <= 9


def test_subset_drop_remainder_and_order():
    plain = datasets.load("mnist", "test", batch_size=3, subset=7)
    assert [int(y.shape[0]) for _, y in plain] == [3, 3, 1]
    dropped = datasets.load("mnist", "test", batch_size=3, subset=7, drop_remainder=True)
    assert tuple(dropped.element_spec[0].shape) == (3, 28, 28, 1)
    assert sum(1 for _ in dropped) == 2
    # shuffle=False keeps tfds' fixed order; the same as load_arrays.
    x, y = datasets.load_arrays("mnist", "test", subset=7)
    assert x.shape == (7, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b, _ in plain]), x)
    shuffled = datasets.load("mnist", "test", batch_size=10, shuffle=True, seed=3)
    xs, ys = next(iter(shuffled))
    full_x, full_y = datasets.load_arrays("mnist", "test")
    assert sorted(ys.numpy()) == sorted(full_y)
    assert not np.array_equal(xs.numpy(), full_x)


def test_cifar10_train_is_augmented_by_default():
    augmented = np.concatenate([x.numpy() for x, _ in datasets.load("cifar10", "train", batch_size=10, shuffle=False)])
    original, _ = datasets.load_arrays("cifar10", "train")
    assert augmented.shape == original.shape
    assert not np.array_equal(augmented, original)
    plain = np.concatenate([x.numpy() for x, _ in datasets.load("cifar10", "train", batch_size=10, shuffle=False, augment=False)])
    np.testing.assert_array_equal(plain, original)
