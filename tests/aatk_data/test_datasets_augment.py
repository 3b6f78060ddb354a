"""The CIFAR-10 augmentation (pad 4 zeros, random 32×32 crop, random horizontal flip)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from aatk.datasets import pad_crop_flip
from aatk_data_testutils import cifar_pattern, find_shift, shifted

N = 2000


@pytest.fixture(scope="module")
def draws():
    """N augmentations of the pattern image (every pixel non-zero and identifiable)."""
    pattern = cifar_pattern()
    batch = np.broadcast_to(pattern, (N, 32, 32, 3))
    out = pad_crop_flip(batch, seed=tf.constant([7, 11])).numpy()
    return pattern, out


def _recover(out, pattern):
    """(dy, dx, flipped) of each augmented image, read from the pixel identities, then checked."""
    result = []
    for image in out:
        flipped = image[16, 17, 1] < image[16, 16, 1]  # G grows with the column in the pattern
        unflipped = image[:, ::-1] if flipped else image
        dy, dx = (int(v) // 7 - 16 for v in unflipped[16, 16, :2] - 1)  # the centre always comes from the image
        assert max(abs(dy), abs(dx)) <= 4, (dy, dx)
        # A shifted copy, zeros entering, maybe flipped.
        np.testing.assert_array_equal(unflipped, shifted(pattern, dy, dx))
        result.append((dy, dx, bool(flipped)))
    return result


def test_recovery_agrees_with_the_exhaustive_search(draws):
    pattern, out = draws
    for image, shift in zip(out[:20], _recover(out[:20], pattern)):
        assert find_shift(image, pattern) == [shift]


def test_shape_dtype_and_range_are_kept():
    x = tf.random.stateless_uniform((5, 32, 32, 3), seed=[1, 2])
    out = pad_crop_flip(x, seed=tf.constant([3, 4]))
    assert out.shape == x.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    out = pad_crop_flip(tf.cast(x * 255, tf.uint8), seed=tf.constant([3, 4]))
    assert out.shape == x.shape and out.dtype == tf.uint8


def test_every_crop_is_the_image_shifted_by_at_most_four_pixels(draws):
    pattern, out = draws
    shifts = _recover(out, pattern)
    offsets = {(dy, dx) for dy, dx, _ in shifts}
    # All 81 offsets in [-4, 4]² occur, and nothing else can (find_shift searches only those).
    assert offsets == {(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)}
    # Zeros enter from the side the image moved away from.
    dy, dx, flipped = next(s for s in shifts if s[0] == 4 and s[1] == -4)
    image = out[[s == (dy, dx, flipped) for s in shifts].index(True)]
    image = image[:, ::-1] if flipped else image
    assert (image[-4:] == 0).all() and (image[:, :4] == 0).all() and (image[:-4, 4:] != 0).all()


def test_flips_happen_about_half_the_time(draws):
    pattern, out = draws
    flipped = np.mean([f for _, _, f in _recover(out, pattern)])
    assert 0.45 < flipped < 0.55
    # Offset (0, 0) and no flip leaves the image unchanged; flipped it is the mirror image.
    exact = [np.array_equal(image, pattern) for image in out]
    mirrored = [np.array_equal(image, pattern[:, ::-1]) for image in out]
    assert any(exact) and any(mirrored)


def test_deterministic_with_a_seed():
    x = np.broadcast_to(cifar_pattern(), (16, 32, 32, 3))
    a = pad_crop_flip(x, seed=tf.constant([5, 6])).numpy()
    b = pad_crop_flip(x, seed=tf.constant([5, 6])).numpy()
    c = pad_crop_flip(x, seed=tf.constant([5, 7])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Images of a batch draw independently.
    assert len({image.tobytes() for image in a}) > 1


def test_padding_zero_only_flips():
    pattern = cifar_pattern()
    out = pad_crop_flip(np.broadcast_to(pattern, (50, 32, 32, 3)), seed=tf.constant([0, 1]), padding=0).numpy()
    for image in out:
        assert np.array_equal(image, pattern) or np.array_equal(image, pattern[:, ::-1])


def test_shifted_helper_matches_its_definition():
    x = np.arange(1, 17).reshape(4, 4)
    np.testing.assert_array_equal(shifted(x, 1, -1), [[0, 5, 6, 7], [0, 9, 10, 11], [0, 13, 14, 15], [0, 0, 0, 0]])
