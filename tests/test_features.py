"""Shape dynamics from crops: hand-drawn ellipses with known aspect ratio and orientation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rbcflow.classify.features import (
    dominant_oscillation,
    mask_shape,
    segment_cells,
    track_features,
)
from rbcflow.schema import FEATURE_COLUMNS


def ellipse_crop(
    a,
    b,
    theta_deg,
    *,
    contrast=-40.0,
    background=120.0,
    noise=0.0,
    rng=None,
    rim=False,
    size=31,
    supersample=4,
):
    """A crop holding an anti-aliased ellipse of semi-axes a >= b (pixels) whose major axis
    makes theta_deg with +x (towards +y), centred; optional bright-field look (dark rim, bright
    centre) and Gaussian noise."""
    rng = np.random.default_rng(rng)
    s = supersample
    yy, xx = (np.mgrid[: size * s, : size * s] + 0.5) / s - 0.5 - (size - 1) / 2
    t = np.radians(theta_deg)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    r2 = (u / a) ** 2 + (v / b) ** 2
    inside = (r2 <= 1).astype(float)
    if rim:
        # dark rim outside r ~ 0.65, bright core inside: the real cells' look
        value = np.where(r2 <= 0.65**2, -0.6 * contrast, contrast) * inside
    else:
        value = contrast * inside
    value = value.reshape(size, s, size, s).mean(axis=(1, 3))
    img = background + value + (rng.normal(0, noise, value.shape) if noise else 0)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("a, b", [(6, 6), (8, 4), (9, 6), (10, 4)])
@pytest.mark.parametrize("theta", [0, 30, -45, 90])
def test_aspect_ratio_and_orientation_of_clean_ellipses(a, b, theta):
    crop = ellipse_crop(a, b, theta)
    shape = mask_shape(segment_cells(crop[None])).iloc[0]
    # 3x3 windows and a one-pixel erosion on a minor axis of 8-12 px: within 12%
    assert shape.aspect_ratio == pytest.approx(a / b, rel=0.12)
    assert shape.area == pytest.approx(np.pi * a * b, rel=0.1)
    if a == b:
        assert np.isnan(shape.orientation) or shape.aspect_ratio < 1.05
    else:
        # axial difference, degrees
        diff = (shape.orientation - theta + 90) % 180 - 90
        assert abs(diff) < 3
        assert -90 < shape.orientation <= 90


@pytest.mark.parametrize("contrast_scale", [1, 2])
def test_noisy_bright_field_cells_segment_with_their_rim(contrast_scale):
    rng = np.random.default_rng(1)
    crops = np.stack(
        [
            ellipse_crop(7, 4, 20, rim=True, contrast=-25 * contrast_scale, noise=3.5, rng=rng)
            for _ in range(40)
        ]
    )
    masks = segment_cells(crops)
    shape = mask_shape(masks)
    # the bright core is filled in: one solid region of about the ellipse's area
    assert shape.area.median() == pytest.approx(np.pi * 7 * 4, rel=0.2)
    assert shape.aspect_ratio.median() == pytest.approx(7 / 4, rel=0.12)
    assert ((shape.orientation - 20 + 90) % 180 - 90).abs().median() < 5


def test_only_the_central_cell_is_kept():
    crop = ellipse_crop(5, 5, 0)
    crop[:6, :6] = 40  # a neighbour's dark blob in the corner
    masks = segment_cells(crop[None])
    assert not masks[0, :6, :6].any()
    assert masks[0, 15, 15]


def test_empty_crop_gives_nan_shape():
    rng = np.random.default_rng(0)
    crops = np.clip(120 + rng.normal(0, 3, (3, 31, 31)), 0, 255).astype(np.uint8)
    masks = segment_cells(crops)
    shape = mask_shape(masks)
    # pure noise: at most a few stray pixels near the centre, never a cell-sized region
    assert (shape.area < 12).all()
    feats = track_features([crops])
    assert feats.shape == (1, len(FEATURE_COLUMNS))


def test_oscillating_aspect_ratio_vs_constant():
    n = 60
    period = 15
    tumbling = np.stack(
        [
            ellipse_crop(
                8,
                8 / (1.6 + 0.5 * np.sin(2 * np.pi * t / period)),
                10 + 30 * np.sin(2 * np.pi * t / period),
                noise=2,
                rng=t,
            )
            for t in range(n)
        ]
    )
    steady = np.stack([ellipse_crop(8, 5, 10, noise=2, rng=100 + t) for t in range(n)])
    feats = track_features([tumbling, steady])
    tumble, calm = feats.iloc[0], feats.iloc[1]
    assert calm.ar_mean == pytest.approx(1.6, rel=0.1)
    assert calm.ar_std < 0.05
    assert calm.orientation_std < 3
    assert tumble.ar_std > 0.25
    assert tumble.orientation_std > 10
    assert tumble.ar_osc_power > 0.7
    assert tumble.ar_osc_period == pytest.approx(period)
    assert calm.ar_osc_power < tumble.ar_osc_power
    assert (feats.shape_frames == 1).all()


def test_dominant_oscillation_exact_and_degenerate():
    t = np.arange(64)
    share, period = dominant_oscillation(2 + np.cos(2 * np.pi * t / 16))
    assert share == pytest.approx(1.0)
    assert period == pytest.approx(16.0)
    x = 2 + np.cos(2 * np.pi * t / 16)
    x[[3, 30]] = np.nan  # gaps are interpolated
    assert dominant_oscillation(x)[1] == pytest.approx(16.0)
    assert np.isnan(dominant_oscillation(np.ones(30))[0])
    assert np.isnan(dominant_oscillation(np.arange(5.0))[0])
    white = np.random.default_rng(3).normal(size=512)
    assert dominant_oscillation(white)[0] < 0.05


def test_track_features_rows_align_and_types():
    crops = [np.stack([ellipse_crop(6 + k, 4, 0)] * (6 + k)) for k in range(4)]
    feats = track_features(crops)
    assert list(feats.columns) == list(FEATURE_COLUMNS)
    assert feats.dtypes.to_dict() == {c: np.dtype(t) for c, t in FEATURE_COLUMNS.items()}
    assert np.all(np.diff(feats.ar_mean.to_numpy()) > 0)  # row k has major axis 6 + k
    empty = track_features([])
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0
    assert list(empty.columns) == list(FEATURE_COLUMNS)


def test_real_cells_tank_treading_is_steadier_than_flipping(shared_data):
    from rbcflow.io.sequences import read_dataset

    seqs = read_dataset(shared_data / "stage2_train")
    feats = track_features([s.frames for s in seqs])
    labels = np.array([s.label for s in seqs])
    assert feats.shape_frames.median() > 0.95
    # flipping cells are more elongated in projection and oscillate more (median over 142 each)
    assert feats.ar_mean[labels == 1].median() > feats.ar_mean[labels == 0].median()
    assert feats.ar_osc_power[labels == 1].median() > feats.ar_osc_power[labels == 0].median()


def test_long_tracks_are_subsampled_uniformly():
    n, period = 400, 40
    frames = np.stack(
        [
            ellipse_crop(8, 8 / (1.6 + 0.4 * np.sin(2 * np.pi * t / period)), 0, noise=1, rng=t)
            for t in range(n)
        ]
    )
    full = track_features([frames], max_frames=1000).iloc[0]
    capped = track_features([frames], max_frames=100).iloc[0]  # every 4th frame
    assert full.ar_osc_period == pytest.approx(period)
    assert capped.ar_osc_period == pytest.approx(period)
    assert capped.ar_mean == pytest.approx(full.ar_mean, rel=0.02)
