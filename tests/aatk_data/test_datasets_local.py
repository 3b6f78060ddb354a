"""aatk.datasets from local original files: readers, layouts, the pipeline and every error.

The files are written by the tests themselves in tmp_path: tiny ones (read with the
readers' count parameters) and full-size synthetic test splits (MNIST 10,000 images,
CIFAR-10 one 30 MB batch) for ``load`` and ``load_arrays``, which insist on the
official sizes.
"""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import tensorflow as tf

from aatk import datasets
from aatk.datasets import DatasetError, DatasetNotFoundError
from aatk_data_testutils import (
    CIFAR_FILES,
    MNIST_FILES,
    cifar_bytes,
    decode_mnist_index,
    find_shift,
    idx_bytes,
    synthetic_cifar_test,
    synthetic_mnist_test,
    write_cifar_batch,
    write_gz,
    write_mnist,
)

MNIST_HOW = re.escape(datasets.MNIST_URLS[0])
CIFAR_HOW = re.escape(datasets.CIFAR10_URL)


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """A data folder in the layout of shared/data with full-size synthetic test splits."""
    root = tmp_path_factory.mktemp("data")
    images, labels = synthetic_mnist_test()
    write_mnist(root / "mnist", "test", images, labels)
    images, labels = synthetic_cifar_test()
    write_cifar_batch(root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin", images, labels)
    return root


def _tiny_mnist(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def _tiny_cifar(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_round_trip(tmp_path, split):
    images, labels = _tiny_mnist()
    write_mnist(tmp_path, split, images, labels)
    x, y = datasets.read_mnist(tmp_path, split, num_examples=5)
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.uint8
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)


def test_mnist_reads_the_uncompressed_twin_when_the_gz_is_absent(tmp_path):
    images, labels = _tiny_mnist()
    for file, payload in zip(MNIST_FILES["test"], (idx_bytes(0x803, images.shape, images.tobytes()), idx_bytes(0x801, labels.shape, labels.tobytes()))):
        (tmp_path / file.removesuffix(".gz")).write_bytes(payload)
    x, y = datasets.read_mnist(tmp_path, "test", num_examples=5)
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)
    # Errors name the file actually read.
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(plain.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=re.escape(str(plain)) + r": expected 13 bytes .*found 12 \(truncated\)"):
        datasets.read_mnist(tmp_path, "test", num_examples=5)


def test_cifar_round_trip_is_nhwc_with_rgb_planes(tmp_path):
    # Distinct R, G, B planes, each row-major: R = position, G = 100 + label, B = 250 - row.
    n = 4
    labels = np.array([0, 9, 3, 7], dtype=np.uint8)
    position = (np.arange(1024) % 256).astype(np.uint8)
    record = lambda label, k: bytes([label]) + position.tobytes() + bytes([100 + k]) * 1024 + bytes(250 - (i // 32) for i in range(1024))
    (tmp_path / "test_batch.bin").write_bytes(b"".join(record(label, k) for k, label in enumerate(labels)))
    x, y = datasets.read_cifar10(tmp_path, "test", records_per_batch=n)
    assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    np.testing.assert_array_equal(y, labels)
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    for k in range(n):
        np.testing.assert_array_equal(x[k, :, :, 0], (h * 32 + w) % 256)  # R, row-major
        np.testing.assert_array_equal(x[k, :, :, 1], np.full((32, 32), 100 + k))  # G
        np.testing.assert_array_equal(x[k, :, :, 2], 250 - h)  # B
    # The helper used by the other tests writes the same format.
    images, labels = _tiny_cifar()
    write_cifar_batch(tmp_path / "test_batch.bin", images, labels)
    x, y = datasets.read_cifar10(tmp_path, "test", records_per_batch=3)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_cifar_train_concatenates_the_five_batches_in_order(tmp_path):
    for i, file in enumerate(CIFAR_FILES["train"]):
        images = np.full((2, 32, 32, 3), 10 * i + 1, dtype=np.uint8)
        write_cifar_batch(tmp_path / file, images, np.array([i, 9 - i]))
    x, y = datasets.read_cifar10(tmp_path, "train", records_per_batch=2)
    assert x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(y, [0, 9, 1, 8, 2, 7, 3, 6, 4, 5])
    np.testing.assert_array_equal(x[:, 0, 0, 0], np.repeat(10 * np.arange(5) + 1, 2))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_load_arrays_scales_to_unit_float32(synthetic_root, name):
    x, y = datasets.load_arrays(name, "test", data_dir=synthetic_root)
    reader = datasets.read_mnist if name == "mnist" else datasets.read_cifar10
    folder = synthetic_root / "mnist" if name == "mnist" else synthetic_root / "cifar10" / "cifar-10-batches-bin"
    raw, labels = reader(folder, "test")
    assert x.shape == (10_000, *datasets.info(name).image_shape)
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x, raw.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert x.min() >= 0.0 and x.max() <= 1.0
    if name == "mnist":
        assert x.min() == 0.0 and x.max() == 1.0  # 255 → exactly 1
    xs, ys = datasets.load_arrays(name, "test", data_dir=synthetic_root, subset=7)
    np.testing.assert_array_equal(xs, x[:7])
    np.testing.assert_array_equal(ys, y[:7])


# --- layouts and the source ------------------------------------------------------------


def _layouts(root, tmp_path):
    """Other accepted layouts, made of symbolic links to the synthetic files."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for file in MNIST_FILES["test"]:
        (flat / file).symlink_to(root / "mnist" / file)
    (flat / "cifar-10-batches-bin").symlink_to(root / "cifar10" / "cifar-10-batches-bin")
    return {
        "mnist": [root, root / "mnist", flat],
        "cifar10": [root, root / "cifar10", root / "cifar10" / "cifar-10-batches-bin", flat],
    }


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_every_documented_layout_is_found(synthetic_root, tmp_path, name):
    expected = datasets.load_arrays(name, "test", data_dir=synthetic_root, subset=3)
    for folder in _layouts(synthetic_root, tmp_path)[name]:
        x, y = datasets.load_arrays(name, "test", data_dir=str(folder), subset=3)
        np.testing.assert_array_equal(x, expected[0])
        np.testing.assert_array_equal(y, expected[1])


def test_the_environment_variable_names_the_data_folder(synthetic_root, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(synthetic_root))
    x, y = next(iter(datasets.load("mnist", "test", batch_size=4)))
    np.testing.assert_array_equal(decode_mnist_index(x.numpy()), [0, 1, 2, 3])
    # data_dir wins over the environment variable.
    monkeypatch.setenv(datasets.ENV_VAR, "/nonexistent/aatk-data")
    datasets.load_arrays("mnist", "test", data_dir=synthetic_root, subset=1)
    with pytest.raises(DatasetNotFoundError, match=f"/nonexistent/aatk-data.*{datasets.ENV_VAR}"):
        datasets.load_arrays("mnist", "test")


def test_a_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "nope")) + ".*not a folder"):
        datasets.load("mnist", "test", data_dir=tmp_path / "nope")


# --- the pipeline ----------------------------------------------------------------------


def _collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def test_load_batches_with_the_documented_element_spec(synthetic_root):
    dataset = datasets.load("mnist", "test", data_dir=synthetic_root, batch_size=128)
    image_spec, label_spec = dataset.element_spec
    assert image_spec.dtype == tf.float32 and tuple(image_spec.shape) == (None, 28, 28, 1)
    assert label_spec.dtype == tf.int32 and tuple(label_spec.shape) == (None,)
    sizes = [int(y.shape[0]) for _, y in dataset]
    assert sizes == [128] * 78 + [16]
    dropped = datasets.load("mnist", "test", data_dir=synthetic_root, batch_size=128, drop_remainder=True)
    assert tuple(dropped.element_spec[0].shape) == (128, 28, 28, 1)
    assert sum(1 for _ in dropped) == 78


def test_test_split_defaults_to_the_official_order_without_augmentation(synthetic_root):
    x, y = _collect(datasets.load("cifar10", "test", data_dir=synthetic_root, batch_size=1000))
    raw, labels = synthetic_cifar_test()
    np.testing.assert_array_equal(x, raw / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.float32 and y.dtype == np.int32


def test_subset_keeps_the_first_examples_before_shuffling(synthetic_root):
    x, y = _collect(datasets.load("mnist", "test", data_dir=synthetic_root, subset=50, shuffle=True, batch_size=16))
    index = decode_mnist_index(x)
    assert sorted(index) == list(range(50))
    assert list(index) != list(range(50))
    np.testing.assert_array_equal(y, (index * 7 + 3) % 10)  # labels travel with their images


def test_shuffling_is_a_seeded_permutation_redrawn_every_epoch(synthetic_root):
    make = lambda seed: datasets.load("mnist", "test", data_dir=synthetic_root, shuffle=True, seed=seed, batch_size=1000)
    dataset = make(0)
    first = decode_mnist_index(_collect(dataset)[0])
    second = decode_mnist_index(_collect(dataset)[0])
    assert sorted(first) == list(range(10_000))  # a permutation of the whole split
    assert not np.array_equal(first, second)  # reshuffled each epoch
    np.testing.assert_array_equal(decode_mnist_index(_collect(make(0))[0]), first)  # same seed, same order
    assert not np.array_equal(decode_mnist_index(_collect(make(1))[0]), first)
    # The buffer covers the whole split: the first batch draws from all of it.
    assert first[:1000].max() > 9000


def test_augmentation_through_load_gives_shifted_flipped_copies(synthetic_root):
    raw, _ = synthetic_cifar_test(64)
    dataset = datasets.load("cifar10", "test", data_dir=synthetic_root, subset=64, shuffle=False, augment=True, batch_size=32)
    x, y = _collect(dataset)
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    pixels = np.rint(x * 255).astype(np.uint8)
    shifts = [find_shift(pixels[k], raw[k]) for k in range(64)]
    assert all(len(s) == 1 for s in shifts), shifts
    assert len({s[0] for s in shifts}) > 20  # many different crops and flips
    again = _collect(dataset)[0]
    assert not np.array_equal(again, x)  # a new draw every epoch
    same = _collect(datasets.load("cifar10", "test", data_dir=synthetic_root, subset=64, shuffle=False, augment=True, batch_size=32))[0]
    np.testing.assert_array_equal(same, x)  # the same seed, the same first epoch


# --- errors: arguments -----------------------------------------------------------------


BAD_ARGUMENTS = {
    "unknown name": (("fashion_mnist", "test"), {}, r"name must be one of \('mnist', 'cifar10'\), got 'fashion_mnist'"),
    "name not str": ((10, "test"), {}, "name must be one of"),
    "unknown split": (("mnist", "validation"), {}, r"split must be one of \('train', 'test'\), got 'validation'"),
    "subset 0": (("mnist", "test"), {"subset": 0}, r"subset must be None or an integer in 1\.\.10000 \(the size of the mnist test split\), got 0"),
    "subset too big": (("cifar10", "train"), {"subset": 50_001}, r"1\.\.50000.*got 50001"),
    "subset float": (("mnist", "test"), {"subset": 2.0}, "subset must be"),
    "subset bool": (("mnist", "test"), {"subset": True}, "subset must be"),
    "batch_size 0": (("mnist", "test"), {"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    "batch_size float": (("mnist", "test"), {"batch_size": 32.0}, "batch_size must be a positive integer"),
    "augment MNIST": (("mnist", "train"), {"augment": True}, "augment=True is not defined for MNIST"),
    "shuffle not bool": (("mnist", "test"), {"shuffle": "yes"}, "shuffle must be True, False or None"),
    "augment not bool": (("cifar10", "test"), {"augment": 1}, "augment must be True, False or None"),
    "negative seed": (("mnist", "test"), {"seed": -1}, "seed must be a non-negative integer"),
    "drop_remainder": (("mnist", "test"), {"drop_remainder": None}, "drop_remainder must be True or False"),
    "data_dir type": (("mnist", "test"), {"data_dir": 3}, r"data_dir must be a path"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=list(BAD_ARGUMENTS))
def test_bad_arguments_raise_value_errors(case, tmp_path):
    args, kwargs, message = BAD_ARGUMENTS[case]
    kwargs.setdefault("data_dir", tmp_path)  # never reaches any file or tfds
    with pytest.raises(ValueError, match=message):
        datasets.load(*args, **kwargs)


def test_load_arrays_and_info_check_their_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.info("cifar100")
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_arrays("mnist", "val")
    with pytest.raises(ValueError, match="subset must be"):
        datasets.load_arrays("mnist", "test", subset=-3)
    meta = datasets.info("mnist")
    assert meta.image_shape == (28, 28, 1) and meta.num_classes == 10
    assert sum(meta.class_counts["train"]) == meta.num_examples["train"] == 60_000
    meta = datasets.info("cifar10")
    assert meta.image_shape == (32, 32, 3) and meta.class_names[0] == "airplane"
    assert sum(meta.class_counts["test"]) == meta.num_examples["test"] == 10_000


# --- errors: files ---------------------------------------------------------------------


def test_missing_mnist_file_names_it_and_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        datasets.load("mnist", "train", data_dir=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, DatasetError)
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in message  # every missing file is named
    assert str(tmp_path / "train-labels-idx1-ubyte.gz") in message
    assert datasets.MNIST_URLS[0] in message and datasets.MNIST_URLS[1] in message
    assert "tensorflow-datasets" in message


def test_missing_mnist_images_file_after_its_labels(tmp_path):
    images, labels = _tiny_mnist()
    write_mnist(tmp_path, "test", images, labels)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "t10k-images-idx3-ubyte.gz")) + f".*{MNIST_HOW}"):
        datasets.read_mnist(tmp_path, "test", num_examples=5)


def test_missing_cifar_file_names_it_and_how_to_get_the_data(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    for file in CIFAR_FILES["train"][:2]:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes(b"")  # present; every missing file is reported before any is read
    with pytest.raises(DatasetNotFoundError) as caught:
        datasets.load("cifar10", "train", data_dir=tmp_path)
    message = str(caught.value)
    assert all(str(folder / f"data_batch_{i}.bin") in message for i in (3, 4, 5))
    assert "data_batch_1.bin" not in message
    assert datasets.CIFAR10_URL in message and "tensorflow-datasets" in message
    assert "python version is not supported" in message


def test_the_cifar_python_version_is_recognised_and_refused(tmp_path):
    python_version = tmp_path / "cifar-10-batches-py"
    python_version.mkdir()
    (python_version / "test_batch").write_bytes(b"\x80\x04not read")
    with pytest.raises(DatasetNotFoundError, match=r"test_batch\.bin.*python version.*unpickling"):
        datasets.load_arrays("cifar10", "test", data_dir=tmp_path)


def _mnist_case(tmp_path, *, images=None, labels=None, image_payload=None, label_payload=None, raw_image_file=None):
    default_images, default_labels = _tiny_mnist()
    images = default_images if images is None else images
    labels = default_labels if labels is None else labels
    image_file, label_file = (tmp_path / f for f in MNIST_FILES["test"])
    write_gz(image_file, image_payload if image_payload is not None else idx_bytes(0x803, images.shape, images.tobytes()))
    write_gz(label_file, label_payload if label_payload is not None else idx_bytes(0x801, labels.shape, labels.tobytes()))
    if raw_image_file is not None:
        image_file.write_bytes(raw_image_file(image_file.read_bytes()))
    return image_file, label_file


def _good_images(n=5):
    return np.zeros((n, 28, 28), dtype=np.uint8)


def _corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 8]) + data[middle + 8 :]


MNIST_FILE_ERRORS = {
    "truncated gzip": (dict(raw_image_file=lambda data: data[: len(data) // 2]), "images", r"corrupt or truncated gzip file"),
    "corrupt gzip": (dict(raw_image_file=_corrupt_middle), "images", r"corrupt or truncated gzip file"),
    "not gzip": (dict(raw_image_file=lambda data: b"P5 28 28 255\n" + bytes(800)), "images", r"corrupt or truncated gzip file"),
    "empty header": (dict(label_payload=b"\x00\x00\x08"), "labels", r"expected an IDX header of 8 bytes after decompression, found 3 bytes"),
    "truncated payload": (
        dict(image_payload=idx_bytes(0x803, (5, 28, 28), bytes(5 * 784 - 10))),
        "images",
        r"expected 3,936 bytes after decompression \(a 16-byte header and 5 images\), found 3,926 \(truncated\)",
    ),
    "extra data": (
        dict(label_payload=idx_bytes(0x801, (5,), bytes(6))),
        "labels",
        r"expected 13 bytes after decompression \(a 8-byte header and 5 labels\), found more than 13 \(extra data at the end\)",
    ),
    "wrong image magic": (
        dict(image_payload=idx_bytes(0x801, (5,), bytes(5))),
        "images",
        r"wrong magic number 0x00000801, expected 0x00000803 \(IDX images\)",
    ),
    "wrong label magic": (
        dict(label_payload=idx_bytes(0x803, (5, 28, 28), bytes(5 * 784))),
        "labels",
        r"wrong magic number 0x00000803, expected 0x00000801 \(IDX labels\)",
    ),
    "wrong dimensions": (
        dict(image_payload=idx_bytes(0x803, (5, 28, 27), bytes(5 * 28 * 27))),
        "images",
        r"wrong dimensions \(5, 28, 27\), expected \(N, 28, 28\)",
    ),
    "label out of range": (dict(labels=np.array([1, 2, 3, 10, 4], dtype=np.uint8)), "labels", r"label 10 at index 3 is out of range, expected labels in 0\.\.9"),
    "mismatched counts": (
        dict(labels=np.zeros(4, dtype=np.uint8)),
        None,
        r"mismatched counts: .*t10k-images-idx3-ubyte\.gz holds 5 images but .*t10k-labels-idx1-ubyte\.gz holds 4 labels",
    ),
}


@pytest.mark.parametrize("case", MNIST_FILE_ERRORS, ids=list(MNIST_FILE_ERRORS))
def test_bad_mnist_files_raise_dataset_errors(tmp_path, case):
    kwargs, culprit, message = MNIST_FILE_ERRORS[case]
    image_file, label_file = _mnist_case(tmp_path, **kwargs)
    with pytest.raises(DatasetError, match=message) as caught:
        datasets.read_mnist(tmp_path, "test", num_examples=5)
    text = str(caught.value)
    if culprit is not None:
        assert str(image_file if culprit == "images" else label_file) in text
    assert datasets.MNIST_URLS[0] in text and "tensorflow-datasets" in text
    assert not isinstance(caught.value, FileNotFoundError)


def test_gzip_corruption_never_passes_silently(tmp_path):
    """Whatever 8 bytes of the stream are flipped, reading fails (CRC, deflate or header)."""
    images, labels = _tiny_mnist(seed=1)
    write_mnist(tmp_path, "test", images, labels)
    path = tmp_path / MNIST_FILES["test"][0]
    good = path.read_bytes()
    for start in range(10, len(good) - 8, max(1, len(good) // 40)):
        path.write_bytes(good[:start] + bytes(b ^ 0x5A for b in good[start : start + 8]) + good[start + 8 :])
        with pytest.raises(DatasetError):
            datasets.read_mnist(tmp_path, "test", num_examples=5)


def _gzip_bomb(payload: bytes, *, inflated_mib: int) -> bytes:
    """``payload`` gzipped, followed by ``inflated_mib`` MiB of zeros in ~1 KB of gzip members.

    A gzip file may hold several members, read one after the other; one member of 1 MiB
    of zeros compresses to about a kilobyte, so repeating it costs nothing to write.
    """
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    return gzip.compress(payload, mtime=0) + zeros * inflated_mib


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A 256 KB file that inflates to 256 MB: reading stops one byte after the header's promise."""
    import tracemalloc

    images, labels = _tiny_mnist()
    write_mnist(tmp_path, "test", images, labels)
    label_file = tmp_path / MNIST_FILES["test"][1]
    label_file.write_bytes(_gzip_bomb(idx_bytes(0x801, labels.shape, labels.tobytes()), inflated_mib=256))
    assert label_file.stat().st_size < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(
            DatasetError,
            match=re.escape(str(label_file)) + r": expected 13 bytes after decompression \(a 8-byte header and 5 labels\), "
            r"found more than 13 \(extra data at the end\)",
        ):
            datasets.read_mnist(tmp_path, "test", num_examples=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse the file"


def test_a_header_announcing_more_than_the_split_holds_is_refused_before_reading_on(tmp_path):
    images, labels = _tiny_mnist()
    write_mnist(tmp_path, "test", images, labels)
    image_file = tmp_path / MNIST_FILES["test"][0]
    # The header claims 60,000 images (47 MB) where the split has 5; the payload is a bomb too.
    image_file.write_bytes(_gzip_bomb(idx_bytes(0x803, (60_000, 28, 28), images.tobytes()), inflated_mib=64))
    with pytest.raises(
        DatasetError,
        match=re.escape(str(image_file)) + r": the IDX header announces 60,000 images, more than the 5 expected; "
        f"not reading further.*{MNIST_HOW}",
    ):
        datasets.read_mnist(tmp_path, "test", num_examples=5)


def test_mnist_with_the_wrong_official_count(tmp_path):
    _mnist_case(tmp_path)
    with pytest.raises(DatasetError, match=r"expected 10,000 examples in the MNIST test split, found 5"):
        datasets.load_arrays("mnist", "test", data_dir=tmp_path)


CIFAR_SIZES = {
    "truncated": (1_234, r"expected 30,730,000 bytes \(10,000 records of 3,073 bytes\), found 1,234 \(truncated\)"),
    "empty": (0, r"expected 30,730,000 bytes .*found 0 \(truncated\)"),
    "one byte short": (30_729_999, r"found 30,729,999 \(truncated\)"),
    "too long": (30_730_001, r"found 30,730,001 \(too long\)"),
}


@pytest.mark.parametrize("case", CIFAR_SIZES, ids=list(CIFAR_SIZES))
def test_cifar_files_of_the_wrong_size(tmp_path, case):
    size, message = CIFAR_SIZES[case]
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(size))
    with pytest.raises(DatasetError, match=message) as caught:
        datasets.load("cifar10", "test", data_dir=tmp_path)
    assert str(path) in str(caught.value) and datasets.CIFAR10_URL in str(caught.value)


def test_cifar_label_out_of_range(tmp_path):
    images, _ = _tiny_cifar()
    path = write_cifar_batch(tmp_path / "test_batch.bin", images, np.array([0, 12, 3]))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + r": label 12 at index 1 is out of range, expected labels in 0\.\.9"):
        datasets.read_cifar10(tmp_path, "test", records_per_batch=3)


def test_cifar_records_must_be_whole(tmp_path):
    images, labels = _tiny_cifar()
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(images, labels)[:-1])
    with pytest.raises(DatasetError, match=r"expected 9,219 bytes \(3 records of 3,073 bytes\), found 9,218"):
        datasets.read_cifar10(tmp_path, "test", records_per_batch=3)


def test_an_empty_data_dir_lists_the_places_searched(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"no cifar10 files in any accepted place") as caught:
        datasets.load("cifar10", "test", data_dir=tmp_path)
    message = str(caught.value)
    for place in ("cifar10/cifar-10-batches-bin/", "cifar-10-batches-bin/", "cifar10/"):
        assert str(tmp_path / place) in message
    assert datasets.CIFAR10_URL in message
