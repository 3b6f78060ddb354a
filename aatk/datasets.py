"""MNIST and CIFAR-10 as ``tf.data`` pipelines, from local files or tensorflow-datasets.

The paper trains on MNIST and CIFAR-10 (Section 3, Appendix B). [`load`][aatk.datasets.load] gives
batches of ``(image, label)`` — float32 images in [0, 1], NHWC, and int32 labels —
ready for ``ThreeWayModel.fit``; [`load_arrays`][aatk.datasets.load_arrays] gives the same data as numpy
arrays.

Where the data comes from:

1. ``data_dir=...`` if given, else
2. the folder named by the environment variable ``AATK_DATA_DIR`` if it is set and
   not empty: the *original distribution files* are read from there
   ([`read_mnist`][aatk.datasets.read_mnist], [`read_cifar10`][aatk.datasets.read_cifar10]);
3. otherwise tensorflow-datasets (``tfds.load(name, split=split, as_supervised=True)``),
   which downloads and prepares the data on first use on a machine with network.

Without TensorFlow (an environment with Keras's JAX backend alone),
[`load_arrays`][aatk.datasets.load_arrays] still reads the local files with NumPy, and
[`pad_crop_flip_numpy`][aatk.datasets.pad_crop_flip_numpy] augments them; ``load`` (a ``tf.data``
pipeline) and tensorflow-datasets need TensorFlow and say so.

Local layouts accepted (``root`` is ``data_dir`` or ``AATK_DATA_DIR``)::

    root/mnist/train-images-idx3-ubyte.gz ...         root/cifar10/cifar-10-batches-bin/data_batch_1.bin ...
    root/train-images-idx3-ubyte.gz ...               root/cifar-10-batches-bin/data_batch_1.bin ...
                                                      root/data_batch_1.bin ...  (root is cifar-10-batches-bin/)

The four MNIST files are the official gzipped IDX files (an uncompressed copy
without ``.gz`` is read when the ``.gz`` file is absent). CIFAR-10 must be the
*binary version* (``cifar-10-binary.tar.gz``, extracted). The CIFAR-10 "python
version" is not supported: it is made of pickles, and unpickling a file can run
arbitrary code, so nothing here ever unpickles anything.

Every file is checked thoroughly (gzip stream complete, magic numbers,
dimensions, exact sizes, example counts, labels in 0..9); a missing file raises
[`DatasetNotFoundError`][aatk.datasets.DatasetNotFoundError] and a truncated or
corrupt one [`DatasetError`][aatk.datasets.DatasetError], with a message that names
the file, says what was expected and how to get the data.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import types
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the annotations only; TensorFlow is imported where a pipeline is built
    import tensorflow as tf

__all__ = [
    "CIFAR10_URL",
    "ENV_VAR",
    "MNIST_URLS",
    "NAMES",
    "SPLITS",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "info",
    "load",
    "load_arrays",
    "pad_crop_flip",
    "pad_crop_flip_numpy",
    "read_cifar10",
    "read_mnist",
]

NAMES = ("mnist", "cifar10")
SPLITS = ("train", "test")
ENV_VAR = "AATK_DATA_DIR"
MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MNIST_IMAGES_MAGIC = 0x00000803  # IDX: unsigned bytes, 3 dimensions
_MNIST_LABELS_MAGIC = 0x00000801  # IDX: unsigned bytes, 1 dimension
_MNIST_SIDE = 28

_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_CIFAR_SIDE = 32
_CIFAR_PIXELS = _CIFAR_SIDE * _CIFAR_SIDE * 3
_CIFAR_RECORD = 1 + _CIFAR_PIXELS  # 3073 bytes: the label, then the R, G and B planes
_CIFAR_RECORDS = 10_000


class DatasetError(ValueError):
    """A dataset file is truncated, corrupt or not in the expected format."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder does not exist (also a `FileNotFoundError`)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about one dataset (see [`info`][aatk.datasets.info]).

    Attributes:
        name: ``"mnist"`` or ``"cifar10"``.
        image_shape: Shape of one image, (height, width, channels).
        num_classes: Number of classes (10).
        class_names: Name of each label 0..9.
        num_examples: Number of examples of each split, ``{"train": ..., "test": ...}``.
        class_counts: Number of examples of each class 0..9 in each split.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: Mapping[str, int]
    class_counts: Mapping[str, tuple[int, ...]]


_INFO = {
    "mnist": DatasetInfo(
        name="mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        num_examples=types.MappingProxyType({"train": 60_000, "test": 10_000}),
        class_counts=types.MappingProxyType(
            {
                "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
                "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
            }
        ),
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        image_shape=(32, 32, 3),
        num_classes=10,
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        num_examples=types.MappingProxyType({"train": 50_000, "test": 10_000}),
        class_counts=types.MappingProxyType({"train": (5000,) * 10, "test": (1000,) * 10}),
    ),
}


# --- validation ----------------------------------------------------------------------


def info(name: str) -> DatasetInfo:
    """Shapes, class names and example counts of a dataset.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.

    Returns:
        The [`DatasetInfo`][aatk.datasets.DatasetInfo] of the official release.

    Raises:
        ValueError: If ``name`` is not one of `NAMES`.

    Examples:
        >>> info("cifar10").image_shape, info("cifar10").num_examples["train"]
        ((32, 32, 3), 50000)
    """
    if not isinstance(name, str) or name not in _INFO:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    return _INFO[name]


def _check_split(split: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _check_subset(subset, meta: DatasetInfo, split: str) -> int | None:
    if subset is None:
        return None
    total = meta.num_examples[split]
    if not _is_int(subset) or not 1 <= subset <= total:
        raise ValueError(
            f"subset must be None or an integer in 1..{total} (the size of the {meta.name} {split} split), got {subset!r}"
        )
    return int(subset)


def _check_optional_bool(value, name: str) -> bool | None:
    if value is not None and not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True, False or None, got {value!r}")
    return None if value is None else bool(value)


def _how_to_get(name: str, folder: Path | None = None, *, offer_tfds: bool = True) -> str:
    """How to get the original files of ``name`` (into ``folder``), and, if ``offer_tfds``, the alternative."""
    where = f" into {folder}" if folder is not None else ""
    if name == "mnist":
        files = ", ".join(f for pair in _MNIST_FILES.values() for f in pair)
        get = f"Download {files} from {MNIST_URLS[0]} (mirror: {MNIST_URLS[1]}){where}"
    else:
        get = (
            f"Download {CIFAR10_URL} (the binary version; the python version is not supported) "
            f"and extract it{where}, which gives the folder cifar-10-batches-bin/"
        )
    if not offer_tfds:
        return f"{get}."
    return (
        f"{get}; or call aatk.datasets.load without data_dir (and with {ENV_VAR} unset) "
        "to use tensorflow-datasets, which downloads the data."
    )


# --- readers of the original files ---------------------------------------------------


def _check_present(paths: list[Path], name: str, extra: str = "") -> None:
    """Raises DatasetNotFoundError naming every path of ``paths`` that is not a file."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        files = ", ".join(str(p) for p in missing)
        raise DatasetNotFoundError(
            f"{name} file{'s' if len(missing) > 1 else ''} not found: {files}{extra}. {_how_to_get(name, missing[0].parent)}"
        )


def _mnist_file(path: Path) -> Path:
    """``path`` (a ``.gz`` file), or its uncompressed twin where only the twin exists."""
    plain = path.with_suffix("")
    return plain if not path.is_file() and plain.is_file() else path


class _IdxStream:
    """Reads a file's content in bounded pieces, decompressing a ``.gz`` file as it goes.

    Only what is asked for is ever decompressed: a small gzip file that inflates to
    gigabytes (a "gzip bomb") costs no more memory than its header promises. Reaching
    the end of a gzip stream checks its CRC-32 and length; a corrupt or truncated
    stream raises [`DatasetError`][aatk.datasets.DatasetError] naming the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115

    def __enter__(self) -> _IdxStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stream.close()

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the (decompressed) content; fewer only at its end."""
        try:
            return self.stream.read(size)
        except (OSError, EOFError, zlib.error) as err:
            # gzip checks the header, the whole deflate stream, the CRC-32 and the length.
            raise DatasetError(
                f"{self.path}: corrupt or truncated gzip file ({type(err).__name__}: {err}); expected a complete gzip "
                f"stream ({self.path.stat().st_size:,} bytes on disk). {_how_to_get('mnist', self.path.parent)}"
            ) from err


def _read_idx(path: Path, *, magic: int, what: str, max_count: int) -> np.ndarray:
    """An IDX file of unsigned bytes: labels (magic 0x801, dims N) or images (0x803, dims N×28×28).

    Reads the header first, then at most the payload the header promises and one byte
    more: a file with more data than that is refused without inflating the rest, and so
    is a header that promises more than ``max_count`` items.

    Raises:
        DatasetError: Naming the file, on a corrupt or truncated gzip stream, a wrong magic
            number or dimensions, more than ``max_count`` items announced, or a payload
            shorter or longer than announced.
    """
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    how = _how_to_get("mnist", path.parent)
    with _IdxStream(path) as stream:
        header = stream.read(header_size)
        if len(header) >= 4:
            (found_magic,) = struct.unpack(">I", header[:4])
            if found_magic != magic:
                raise DatasetError(
                    f"{path}: wrong magic number 0x{found_magic:08X}, expected 0x{magic:08X} (IDX {what}); "
                    f"is this the right file? {how}"
                )
        if len(header) < header_size:
            raise DatasetError(
                f"{path}: expected an IDX header of {header_size} bytes after decompression, found {len(header):,} "
                f"bytes (truncated). {how}"
            )
        dims = struct.unpack(f">{ndim}I", header[4:])
        if ndim == 3 and dims[1:] != (_MNIST_SIDE, _MNIST_SIDE):
            raise DatasetError(
                f"{path}: wrong dimensions ({dims[0]:,}, {dims[1]}, {dims[2]}), expected (N, 28, 28) images. {how}"
            )
        count = dims[0]
        if count > max_count:
            raise DatasetError(
                f"{path}: the IDX header announces {count:,} {what}, more than the {max_count:,} expected; "
                f"not reading further. {how}"
            )
        payload_size = count * (_MNIST_SIDE * _MNIST_SIDE if ndim == 3 else 1)
        payload = stream.read(payload_size + 1)  # one byte more tells whether data follows
    expected = header_size + payload_size
    if len(payload) != payload_size:
        found = f"more than {expected:,}" if len(payload) > payload_size else f"{header_size + len(payload):,}"
        problem = "truncated" if len(payload) < payload_size else "extra data at the end"
        raise DatasetError(
            f"{path}: expected {expected:,} bytes after decompression (a {header_size}-byte header and {count:,} "
            f"{what}), found {found} ({problem}). {how}"
        )
    data = np.frombuffer(payload, dtype=np.uint8)
    return data.reshape(count, _MNIST_SIDE, _MNIST_SIDE) if ndim == 3 else data


def _check_labels(labels: np.ndarray, path: Path, name: str) -> None:
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DatasetError(
            f"{path}: label {int(labels[bad[0]])} at index {int(bad[0]):,} is out of range, "
            f"expected labels in 0..9 ({bad.size:,} bad labels in all). {_how_to_get(name, path.parent)}"
        )


def read_mnist(folder: str | os.PathLike, split: str, *, num_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split of MNIST from the official gzipped IDX files, checking everything.

    Reads ``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz`` (train)
    or ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (test) in
    ``folder``; where a ``.gz`` file is absent, its uncompressed twin is read instead.
    Checks that each gzip stream decompresses completely (CRC included), the magic
    numbers 0x00000803 (images) and 0x00000801 (labels), the dimensions (N, 28, 28),
    that each payload has exactly the size its header announces, that images and
    labels have the same N, that N is the official count, and that labels are in 0..9.
    No more is decompressed than the header announces (one byte more, to detect extra
    data), and no header may announce more than the expected count: a small file that
    would inflate to gigabytes is refused after reading a few bytes.

    Args:
        folder: The folder that holds the four files.
        split: ``"train"`` or ``"test"``.
        num_examples: Expected number of examples; ``None`` (the default) means the
            official count, 60,000 (train) or 10,000 (test). Other values are for tests.

    Returns:
        ``(images, labels)``: uint8 images (N, 28, 28, 1) with 0 the background, and
        int32 labels (N,), in the official order.

    Raises:
        DatasetNotFoundError: If a file is missing.
        DatasetError: If a file is truncated, corrupt or not what is expected.
        ValueError: On a bad ``split``.

    Examples:
        >>> images, labels = read_mnist("/data/mnist", "test")  # doctest: +SKIP
        >>> images.shape, labels[:3]  # doctest: +SKIP
        ((10000, 28, 28, 1), array([7, 2, 1], dtype=int32))
    """
    split = _check_split(split)
    folder = Path(folder)
    expected = _INFO["mnist"].num_examples[split] if num_examples is None else int(num_examples)
    image_path, label_path = (_mnist_file(folder / f) for f in _MNIST_FILES[split])
    _check_present([image_path, label_path], "mnist")
    images = _read_idx(image_path, magic=_MNIST_IMAGES_MAGIC, what="images", max_count=expected)
    labels = _read_idx(label_path, magic=_MNIST_LABELS_MAGIC, what="labels", max_count=expected)
    if len(images) != len(labels):
        raise DatasetError(
            f"mismatched counts: {image_path} holds {len(images):,} images but {label_path} holds "
            f"{len(labels):,} labels; expected {expected:,} of each. {_how_to_get('mnist', folder)}"
        )
    if len(images) != expected:
        raise DatasetError(
            f"{image_path} and {label_path}: expected {expected:,} examples in the MNIST {split} split, "
            f"found {len(images):,}. {_how_to_get('mnist', folder)}"
        )
    _check_labels(labels, label_path, "mnist")
    return images[..., None], labels.astype(np.int32)


def read_cifar10(folder: str | os.PathLike, split: str, *, records_per_batch: int = _CIFAR_RECORDS) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split of CIFAR-10 from the official binary version, checking everything.

    Reads ``data_batch_1.bin`` … ``data_batch_5.bin`` (train, in this order) or
    ``test_batch.bin`` (test) in ``folder`` (the extracted ``cifar-10-batches-bin/``).
    Each file must hold exactly 10,000 records of 3,073 bytes: one label byte, then
    the 1024 red, 1024 green and 1024 blue values of a 32×32 image, each plane row
    by row; labels must be in 0..9.

    The "python version" of CIFAR-10 (pickled ``data_batch_1`` …) is not supported:
    unpickling a file can run arbitrary code, so it is never done.

    Args:
        folder: The folder that holds the ``.bin`` files.
        split: ``"train"`` or ``"test"``.
        records_per_batch: Expected number of records in each file; the official
            files hold 10,000. Other values are for tests.

    Returns:
        ``(images, labels)``: uint8 images (N, 32, 32, 3) in RGB order (NHWC), and
        int32 labels (N,), in the official order; N = 50,000 (train) or 10,000 (test).

    Raises:
        DatasetNotFoundError: If a file is missing.
        DatasetError: If a file has the wrong size or a label outside 0..9.
        ValueError: On a bad ``split``.

    Examples:
        >>> images, labels = read_cifar10("/data/cifar10/cifar-10-batches-bin", "test")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 32, 32, 3), dtype('uint8'))
    """
    split = _check_split(split)
    folder = Path(folder)
    files = _CIFAR_FILES[split]
    size = records_per_batch * _CIFAR_RECORD
    images = np.empty((len(files) * records_per_batch, _CIFAR_SIDE, _CIFAR_SIDE, 3), dtype=np.uint8)
    labels = np.empty(len(files) * records_per_batch, dtype=np.int32)
    _check_present([folder / file for file in files], "cifar10", _python_version_hint(folder))
    for i, file in enumerate(files):
        path = folder / file
        raw = path.read_bytes()
        if len(raw) != size:
            problem = "truncated" if len(raw) < size else "too long"
            raise DatasetError(
                f"{path}: expected {size:,} bytes ({records_per_batch:,} records of {_CIFAR_RECORD:,} bytes), "
                f"found {len(raw):,} ({problem}). {_how_to_get('cifar10', folder)}"
            )
        records = np.frombuffer(raw, dtype=np.uint8).reshape(records_per_batch, _CIFAR_RECORD)
        start = i * records_per_batch
        _check_labels(records[:, 0], path, "cifar10")
        labels[start : start + records_per_batch] = records[:, 0]
        # (N, C, H, W) planes → NHWC.
        planes = records[:, 1:].reshape(records_per_batch, 3, _CIFAR_SIDE, _CIFAR_SIDE)
        images[start : start + records_per_batch] = planes.transpose(0, 2, 3, 1)
    return images, labels


def _python_version_hint(folder: Path) -> str:
    for candidate in (folder, folder.parent / "cifar-10-batches-py", folder / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file() or (candidate / "test_batch").is_file():
            return (
                f" (found the CIFAR-10 python version in {candidate}: it is not supported, because reading it "
                "means unpickling, which can run arbitrary code; use the binary version)"
            )
    return ""


# --- locating the local files --------------------------------------------------------


def _local_root(data_dir) -> Path | None:
    """The folder to read original files from: ``data_dir``, else ``$AATK_DATA_DIR``, else None (tfds)."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a path (str or os.PathLike) or None, got {type(data_dir).__name__}")
    source = "data_dir"
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        source = f"the environment variable {ENV_VAR}"
        if data_dir is None:
            return None
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{root} (from {source}) is not a folder; it should hold mnist/ and cifar10/cifar-10-batches-bin/, "
            f"or the dataset files themselves. Unset it to use tensorflow-datasets instead."
        )
    return root


def _dataset_folder(name: str, root: Path) -> tuple[Path, tuple[Path, ...] | None]:
    """The folder under ``root`` that holds the files of ``name``: the first accepted layout that has any.

    Returns the folder and, when no layout has any file, the folders searched.
    """
    if name == "mnist":
        candidates = (root / "mnist", root)
        files = [f for pair in _MNIST_FILES.values() for f in pair]
        files += [f.removesuffix(".gz") for f in files]
    else:
        candidates = (root / "cifar10" / "cifar-10-batches-bin", root / "cifar-10-batches-bin", root / "cifar10", root)
        files = [f for group in _CIFAR_FILES.values() for f in group]
    for candidate in candidates:
        if any((candidate / f).is_file() for f in files):
            return candidate, None
    # Nothing found: report the first layout whose folder exists (else the first one).
    return next((c for c in candidates if c.is_dir()), candidates[0]), candidates


def _read_local(name: str, split: str, root: Path, subset: int | None) -> tuple[np.ndarray, np.ndarray]:
    folder, searched = _dataset_folder(name, root)
    reader = read_mnist if name == "mnist" else read_cifar10
    try:
        images, labels = reader(folder, split)
    except DatasetNotFoundError as err:
        if searched is None:
            raise
        places = ", ".join(f"{c}{os.sep}" for c in searched)
        raise DatasetNotFoundError(f"no {name} files in any accepted place under {root} ({places}): {err}") from None
    if subset is not None:
        images, labels = images[:subset], labels[:subset]
    return images, labels


# --- tensorflow-datasets -------------------------------------------------------------


def _tensorflow(*, needed_by: str):
    """TensorFlow, imported only when ``needed_by`` asks for it: NumPy arrays read from local
    files ([`load_arrays`][aatk.datasets.load_arrays]) never do.

    Raises:
        ImportError: Where TensorFlow is not installed (an environment with Keras's JAX
            backend alone), naming what needed it and what works without it.
    """
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            f"{needed_by} needs TensorFlow, which is not installed. Without TensorFlow (Keras's JAX backend "
            f"alone), read the original files as NumPy arrays with aatk.datasets.load_arrays(name, split, "
            f"data_dir=...) (or ${ENV_VAR}) and train with model.fit(x, y, batch_size=...); aatk train, "
            "evaluate and the other commands do so by themselves (given --data-dir or $AATK_DATA_DIR)"
        ) from err
    return tf


def _tfds_dataset(name: str, split: str, subset: int | None) -> tf.data.Dataset:
    """(uint8 image, int label) examples from tensorflow-datasets, in tfds' fixed order.

    Raises:
        DatasetNotFoundError: Where TensorFlow is not installed: then there is no local copy
            and no way to download one (a FileNotFoundError, which the command line reports
            in one line).
        ImportError: Where TensorFlow is installed but tensorflow-datasets is not.
    """
    try:
        _tensorflow(needed_by="tensorflow-datasets")
    except ImportError as err:
        raise DatasetNotFoundError(
            f"no local copy of {name}: neither data_dir nor ${ENV_VAR} names a folder of its original files, "
            "and tensorflow-datasets, which would download it, needs TensorFlow, which is not installed. Pass "
            f"data_dir= (aatk's commands: --data-dir) or set {ENV_VAR} to a folder that holds them. "
            f"{_how_to_get(name, offer_tfds=False)}"
        ) from err
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"loading {name} without data_dir needs tensorflow-datasets (pip install tensorflow-datasets "
            f"importlib_resources); or pass data_dir= (or set {ENV_VAR}) to read the original files. "
            f"{_how_to_get(name, offer_tfds=False)}"
        ) from err
    dataset = tfds.load(name, split=split, as_supervised=True)
    if subset is not None:
        dataset = dataset.take(subset)
    return dataset


# --- the pipeline --------------------------------------------------------------------


def pad_crop_flip(images: tf.Tensor, *, seed: tf.Tensor, padding: int = 4) -> tf.Tensor:
    """The standard CIFAR-10 augmentation of a batch: zero-pad, random crop, random flip.

    Each image is padded with ``padding`` zero pixels on each side and cropped back
    to its size at a uniformly random offset — so it is shifted by at most
    ``padding`` pixels in each direction, zeros entering — then flipped left-right
    with probability 1/2. Every image of the batch draws its own offset and flip.
    Stateless: the same ``seed`` gives the same result.

    Args:
        images: A batch of images (B, H, W, C), any dtype.
        seed: Stateless seed, an integer tensor of shape (2,).
        padding: Pixels of zeros added on each side (≥ 0).

    Returns:
        The augmented batch, same shape and dtype.

    Examples:
        >>> import tensorflow as tf
        >>> x = tf.ones((2, 32, 32, 3))
        >>> tuple(pad_crop_flip(x, seed=tf.constant([1, 2])).shape)
        (2, 32, 32, 3)
    """
    tf = _tensorflow(needed_by="aatk.datasets.pad_crop_flip (pad_crop_flip_numpy does not)")
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    offset_seed, flip_seed = tf.unstack(tf.random.split(tf.convert_to_tensor(seed), num=2))
    offsets = tf.random.stateless_uniform(
        tf.stack([batch, 2]), seed=offset_seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32
    )
    flips = tf.random.stateless_uniform(tf.reshape(batch, [1]), seed=flip_seed) < 0.5
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]  # (B, H): rows of the padded image kept
    cols = offsets[:, 1:] + tf.range(width)[None, :]  # (B, W)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2p, C)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)  # (B, H, W, C)
    flipped = tf.where(flips[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)
    return tf.ensure_shape(flipped, images.shape)


def pad_crop_flip_numpy(images: np.ndarray, *, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """[`pad_crop_flip`][aatk.datasets.pad_crop_flip] in NumPy, for machines without TensorFlow (e.g. JAX on a GPU).

    The same augmentation — zero-pad by ``padding``, crop back at a uniformly random
    offset, flip left-right with probability 1/2, each image on its own — drawn from
    ``rng``; the draws differ from the TensorFlow version's, the distribution does not.

    Args:
        images: A batch of images (B, H, W, C), any dtype.
        rng: The NumPy generator to draw offsets and flips from.
        padding: Pixels of zeros added on each side (≥ 0).

    Returns:
        The augmented batch, same shape and dtype.

    Raises:
        ValueError: If ``images`` is not 4-D or ``padding`` is negative.

    Examples:
        >>> x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
        >>> pad_crop_flip_numpy(x, rng=np.random.default_rng(0), padding=1).shape
        (2, 4, 4, 1)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (B, H, W, C), got shape {images.shape}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    batch, height, width, _ = images.shape
    offsets = rng.integers(0, 2 * padding + 1, size=(batch, 2))
    flips = rng.random(batch) < 0.5
    padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    rows = offsets[:, :1] + np.arange(height)[None, :]  # (B, H)
    cols = offsets[:, 1:] + np.arange(width)[None, :]  # (B, W)
    cropped = padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    cropped[flips] = cropped[flips, :, ::-1]
    return cropped


def _to_float(images, labels):
    tf = _tensorflow(needed_by="aatk.datasets.load (a tf.data pipeline)")
    return tf.cast(images, tf.float32) / 255.0, tf.cast(labels, tf.int32)


def load(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    shuffle: bool | None = None,
    augment: bool | None = None,
    subset: int | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """MNIST or CIFAR-10 as a batched, prefetched ``tf.data.Dataset`` for training or evaluation.

    Each element is ``(images, labels)``: float32 images in [0, 1], NHWC —
    (b, 28, 28, 1) for MNIST, (b, 32, 32, 3) for CIFAR-10 — and int32 labels (b,).

    Source: ``data_dir``, else ``$AATK_DATA_DIR``, holding the original files (see
    the module documentation for the layouts; CIFAR-10 must be the binary version,
    the python version is not supported); else tensorflow-datasets, which downloads
    the data on first use.

    Shuffling draws a new order every epoch from a buffer that holds the whole split
    (every order equally likely). Augmentation ([`pad_crop_flip`][aatk.datasets.pad_crop_flip]) also draws
    anew every epoch. Both are reproducible: the same ``seed`` (and TensorFlow
    global seed, which ``keras.utils.set_random_seed`` sets) gives the same epochs.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Folder of the original files; ``None`` uses ``$AATK_DATA_DIR`` if
            set, else tensorflow-datasets.
        batch_size: Examples per batch (≥ 1).
        shuffle: Shuffle the examples; defaults to True for train, False for test.
            With ``shuffle=False`` the order is the official one (local files) or
            tensorflow-datasets' fixed order, which is not the official one.
        augment: Pad 4 zero pixels on each side, random-crop back to 32×32, then flip
            left-right at random; defaults to True for CIFAR-10 train only. Not
            defined for MNIST.
        subset: Keep only the first ``subset`` examples (before shuffling), for quick
            runs; from 1 to the size of the split. With tensorflow-datasets these are
            the first of its fixed order.
        seed: Seed of the shuffling and the augmentation.
        drop_remainder: Drop the last batch if it is smaller than ``batch_size``.

    Returns:
        The dataset; one pass over it is one epoch.

    Raises:
        ValueError: On an unknown name or split, a bad batch size, subset, seed or
            flag, or ``augment=True`` for MNIST.
        DatasetNotFoundError: If a local file or ``data_dir`` is missing.
        DatasetError: If a local file is truncated or corrupt.

    Examples:
        >>> train = load("cifar10", "train", data_dir="/data", subset=1000)  # doctest: +SKIP
        >>> x, y = next(iter(train))  # doctest: +SKIP
        >>> x.shape, x.dtype, y.dtype  # doctest: +SKIP
        (TensorShape([128, 32, 32, 3]), tf.float32, tf.int32)
    """
    tf = _tensorflow(needed_by="aatk.datasets.load (a tf.data pipeline)")
    meta = info(name)
    split = _check_split(split)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    shuffle = _check_optional_bool(shuffle, "shuffle")
    augment = _check_optional_bool(augment, "augment")
    subset = _check_subset(subset, meta, split)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(drop_remainder, (bool, np.bool_)):
        raise ValueError(f"drop_remainder must be True or False, got {drop_remainder!r}")
    if shuffle is None:
        shuffle = split == "train"
    if augment is None:
        augment = name == "cifar10" and split == "train"
    if augment and name == "mnist":
        raise ValueError(
            "augment=True is not defined for MNIST (the pad-crop-flip augmentation is the CIFAR-10 one); "
            "use augment=False or None"
        )

    root = _local_root(data_dir)
    if root is None:
        dataset = _tfds_dataset(name, split, subset).cache()
        size = subset or meta.num_examples[split]
    else:
        images, labels = _read_local(name, split, root, subset)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        size = len(labels)

    seed = int(seed)
    if shuffle:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(int(batch_size), drop_remainder=bool(drop_remainder))
    if augment:
        # One stateless seed per batch, drawn anew every epoch.
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, s: (pad_crop_flip(batch[0], seed=s), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_arrays(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    subset: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One split of MNIST or CIFAR-10 as numpy arrays, in order, without augmentation.

    Same sources as [`load`][aatk.datasets.load]: ``data_dir``, else ``$AATK_DATA_DIR``, else
    tensorflow-datasets.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Folder of the original files (see [`load`][aatk.datasets.load]).
        subset: Keep only the first ``subset`` examples.

    Returns:
        ``(x, y)``: float32 images in [0, 1], NHWC, and int32 labels.

    Raises:
        ValueError: On an unknown name or split, or a bad subset.
        DatasetNotFoundError: If a local file or ``data_dir`` is missing.
        DatasetError: If a local file is truncated or corrupt.

    Examples:
        >>> x, y = load_arrays("mnist", "test", data_dir="/data", subset=100)  # doctest: +SKIP
        >>> x.shape, x.dtype, y.dtype  # doctest: +SKIP
        ((100, 28, 28, 1), dtype('float32'), dtype('int32'))
    """
    meta = info(name)
    split = _check_split(split)
    subset = _check_subset(subset, meta, split)
    root = _local_root(data_dir)
    if root is None:
        batches = list(_tfds_dataset(name, split, subset).batch(10_000).as_numpy_iterator())
        if batches:
            images = np.concatenate([b[0] for b in batches])
            labels = np.concatenate([b[1] for b in batches])
        else:  # pragma: no cover - an empty tfds split
            images = np.zeros((0, *meta.image_shape), np.uint8)
            labels = np.zeros((0,), np.int64)
    else:
        images, labels = _read_local(name, split, root, subset)
    # uint8 / float32 in float32: correctly rounded, the same values as load's cast / 255.
    return np.divide(images, np.float32(255.0), dtype=np.float32), labels.astype(np.int32)
