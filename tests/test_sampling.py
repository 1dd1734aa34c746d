"""Sequence preparation: uniform and similarity downsampling, SSIM, normalisation, padding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from rbcflow.classify.sampling import (
    border_ring,
    consecutive_ssim,
    normalise,
    pad_frames,
    prepare,
    similarity_indices,
    similarity_indices_many,
    ssim_batch,
    uniform_indices,
)


def ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM by scikit-image, the reference our batched SSIM is checked against (scikit-image
    is a test dependency only: nothing shipped imports it)."""
    return float(structural_similarity(a, b, data_range=data_range))


def cell(angle_deg: float, axes=(6, 3), bg=120, rim=70, size=31) -> np.ndarray:
    """A dark-rimmed elliptical cell, centred, at an orientation (uint8)."""
    img = np.full((size, size), bg, np.uint8)
    cv2.ellipse(img, (size // 2, size // 2), axes, angle_deg, 0, 360, rim, 2, cv2.LINE_AA)
    return img


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (10, 4, [0, 3, 6, 9]),
        (3, 5, [0, 1, 2]),
        (5, 5, [0, 1, 2, 3, 4]),
        (7, 1, [0]),
        (100, 3, [0, 50, 99]),
    ],
)
def test_uniform_indices(n, k, expected):
    assert uniform_indices(n, k).tolist() == expected


@pytest.mark.parametrize(
    ("dtype", "data_range"),
    [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0), (np.float64, 1.0)],
)
def test_ssim_batch_matches_skimage(dtype, data_range):
    rng = np.random.default_rng(1)
    base = rng.random((20, 31, 31)) * data_range
    other = np.clip(base + rng.normal(0, data_range / 8, base.shape), 0, data_range)
    # Include structured images (cells) too: smooth areas are where rounding would show.
    a = np.concatenate([base, [cell(a) / 255 * data_range for a in (0, 30, 60)]]).astype(dtype)
    b = np.concatenate([other, [cell(a) / 255 * data_range for a in (10, 30, 90)]]).astype(dtype)
    fast = ssim_batch(a, b, data_range)
    ref = np.array([ssim_reference(x, y, data_range) for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(fast, ref, atol=1e-6, rtol=0)
    assert fast[-2] == pytest.approx(1.0)  # identical images


def test_ssim_batch_rejects_small_or_mismatched():
    with pytest.raises(ValueError):
        ssim_batch(np.zeros((2, 5, 5)), np.zeros((2, 5, 5)))
    with pytest.raises(ValueError):
        ssim_batch(np.zeros((2, 31, 31)), np.zeros((3, 31, 31)))


def test_consecutive_ssim_short():
    assert consecutive_ssim(np.zeros((1, 31, 31), np.uint8)).shape == (0,)


def test_similarity_keeps_the_frames_where_the_shape_changes():
    # 16 frames; the cell turns at frames 4, 9 and 13 and is otherwise still (plus noise).
    rng = np.random.default_rng(0)
    angles = [0] * 4 + [40] * 5 + [90] * 4 + [135] * 3
    frames = np.stack([cell(a) for a in angles]).astype(np.int16)
    frames = np.clip(frames + rng.normal(0, 1.0, frames.shape).round(), 0, 255).astype(np.uint8)
    assert similarity_indices(frames, 4).tolist() == [0, 4, 9, 13]
    # Shorter than k: every frame kept.
    assert similarity_indices(frames[:3], 4).tolist() == [0, 1, 2]


def _reference_similarity(frames: np.ndarray, k: int) -> list[int]:
    """The algorithm spelled out with scikit-image, one SSIM at a time."""
    kept = list(range(len(frames)))
    while len(kept) > k:
        s = [
            ssim_reference(frames[kept[j]], frames[kept[j + 1]], 255.0)
            for j in range(len(kept) - 1)
        ]
        del kept[int(np.argmax(s)) + 1]
    return kept


def test_similarity_many_equals_one_at_a_time_reference():
    rng = np.random.default_rng(3)
    seqs = []
    for _ in range(6):
        t = int(rng.integers(3, 30))
        angles = np.cumsum(rng.choice([0, 0, 0, 25], t))
        seqs.append(
            np.stack([cell(a) for a in angles]) + rng.integers(0, 3, (t, 31, 31), dtype=np.uint8)
        )
    got = similarity_indices_many(seqs, 8)
    for s, g in zip(seqs, got, strict=True):
        assert g.tolist() == _reference_similarity(s, 8)
        assert len(g) == min(len(s), 8)


def test_normalise_does_not_depend_on_illumination():
    frames = np.stack([cell(a, bg=100, rim=60) for a in (0, 45)]).astype(np.float64)
    dim = normalise(frames)
    bright = normalise(frames * 1.35)  # same scene, brighter lamp (bg 135)
    np.testing.assert_allclose(dim, bright, atol=1e-5)
    assert dim.dtype == np.float32
    assert abs(float(np.median(dim[:, :2, :]))) < 1e-6  # background maps to 0
    assert dim.min() < -2  # the dark rim is clearly negative


def test_border_ring_is_the_crop_border():
    """The one background sample of normalise and of the features' segmentation: the pixels
    within ``width`` of the edges, the same set as the explicit four strips."""
    x = np.random.default_rng(1).integers(0, 256, (3, 31, 29)).astype(np.float32)
    for w in (1, 2, 3):
        strips = [x[:, :w, :], x[:, -w:, :], x[:, w:-w, :w], x[:, w:-w, -w:]]
        expected = np.concatenate([a.reshape(3, -1) for a in strips], axis=1)
        ring = border_ring(x, w)
        assert ring.shape == expected.shape
        np.testing.assert_array_equal(np.sort(ring, axis=1), np.sort(expected, axis=1))
    bg = float(np.median(border_ring(x, 2)))
    np.testing.assert_array_equal(normalise(x), (x - bg) / np.float32(0.1 * bg))


def test_pad_frames():
    f = np.ones((3, 31, 31), np.float32)
    p = pad_frames(f, 5)
    assert p.shape == (5, 31, 31)
    assert (p[3:] == 0).all() and (p[:3] == 1).all()
    with pytest.raises(ValueError):
        pad_frames(f, 2)


def test_prepare_shapes():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(90, 140, (t, 31, 31), dtype=np.uint8) for t in (1, 7, 40)]
    s1 = prepare(seqs, 20, "uniform", pad=False)
    assert [x.shape[0] for x in s1] == [1, 7, 20]
    s2 = prepare(seqs, 20, "similarity", pad=True)
    assert all(x.shape == (20, 31, 31) and x.dtype == np.float32 for x in s2)
    with pytest.raises(ValueError):
        prepare(seqs, 20, "random", pad=False)
