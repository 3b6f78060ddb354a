"""Helpers for the aatk.datasets tests: writers of small files in the original formats.

(A plain module beside the tests; the directory has no ``__init__.py``, so pytest
puts it on ``sys.path``. The name is prefixed so it cannot clash with other test folders.)
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}


def idx_bytes(magic: int, dims: tuple[int, ...], data: bytes) -> bytes:
    """An IDX payload: big-endian magic, the dimensions, then the data."""
    return struct.pack(f">I{len(dims)}I", magic, *dims) + data


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    return path


def write_mnist(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Writes images (N, 28, 28) uint8 and labels (N,) as the two gzipped IDX files of ``split``."""
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.uint8)
    image_file, label_file = MNIST_FILES[split]
    write_gz(folder / image_file, idx_bytes(0x803, images.shape, images.tobytes()))
    write_gz(folder / label_file, idx_bytes(0x801, labels.shape, labels.tobytes()))


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Records of the binary version: label byte, then the R, G and B planes of an NHWC image."""
    images = np.asarray(images, dtype=np.uint8)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], planes], axis=1)
    return records.tobytes()


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cifar_bytes(images, labels))
    return path


def synthetic_mnist_test(n: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Full-size synthetic MNIST test split: image i encodes i in pixels (0, 0) and (0, 1)."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    index = np.arange(n)
    images[:, 0, 0] = index % 256
    images[:, 0, 1] = index // 256
    images[:, 5:20, 10] = 255
    labels = (index * 7 + 3) % 10
    return images, labels.astype(np.uint8)


def cifar_pattern() -> np.ndarray:
    """A 32×32×3 uint8 image, never 0, whose (R, G) pair identifies each pixel position."""
    h, w = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([1 + 7 * h, 1 + 7 * w, np.full_like(h, 200)], axis=-1).astype(np.uint8)


def synthetic_cifar_test(n: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Full-size synthetic CIFAR test split: the pattern, with image i encoded in the B plane."""
    images = np.broadcast_to(cifar_pattern(), (n, 32, 32, 3)).copy()
    index = np.arange(n)
    images[:, :, :, 2] = (1 + index % 250)[:, None, None]
    images[:, 0, :2, 2] = np.stack([1 + index % 250, 1 + index // 250], axis=1)
    labels = (index * 3 + 1) % 10
    return images, labels.astype(np.uint8)


def decode_mnist_index(images: np.ndarray) -> np.ndarray:
    """Inverse of the index encoding of :func:`synthetic_mnist_test`, for float images in [0, 1]."""
    pixels = np.rint(np.asarray(images)[:, 0, :2, 0] * 255).astype(np.int64)
    return pixels[:, 0] + 256 * pixels[:, 1]


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved so that out[i, j] = image[i + dy, j + dx], zeros where that is outside."""
    height, width = image.shape[:2]
    out = np.zeros_like(image)
    out[max(0, -dy) : min(height, height - dy), max(0, -dx) : min(width, width - dx)] = image[
        max(0, dy) : min(height, height + dy), max(0, dx) : min(width, width + dx)
    ]
    return out


def find_shift(out: np.ndarray, original: np.ndarray, padding: int = 4) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) with |dy|, |dx| ≤ padding for which ``out`` is the shifted (and flipped) original."""
    matches = []
    for dy in range(-padding, padding + 1):
        for dx in range(-padding, padding + 1):
            candidate = shifted(original, dy, dx)
            for flipped in (False, True):
                if np.array_equal(out, candidate[:, ::-1] if flipped else candidate):
                    matches.append((dy, dx, flipped))
    return matches


def real_data_dir() -> Path:
    """$AATK_DATA_DIR if set, else <repo root>/../shared/data."""
    env = os.environ.get("AATK_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"
