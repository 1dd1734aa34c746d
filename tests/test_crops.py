"""Crops: sub-pixel centring, borders, scale, dtype; cell size."""

from __future__ import annotations

import numpy as np
import pytest
from _frontend_util import cell_image

from rbcflow.frontend.crops import CropCutter, crop_diameter, crop_track, equivalent_diameter


def ramp(shape=(100, 120)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx + 0.5 * yy).astype(np.float32)


def test_centre_pixel_samples_the_position():
    frame = (np.arange(100 * 100) % 251).astype(np.uint8).reshape(100, 100)
    cut = CropCutter(np.zeros((100, 100), np.float32))
    crop, edge = cut(frame, 50.0, 40.0)
    assert crop.shape == (31, 31) and crop.dtype == np.uint8 and not edge
    np.testing.assert_array_equal(crop, frame[25:56, 35:66])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_subpixel_centring_is_bilinear(dtype):
    # On a linear ramp bilinear resampling is exact: crop[15, 15] == ramp(x, y).
    f = ramp()
    frame = f.astype(dtype)
    cut = CropCutter(np.zeros(f.shape, np.float32))
    x, y = 60.25, 40.75
    crop, _ = cut(frame, x, y)
    want = np.rint(x + 0.5 * y + np.arange(-15, 16)[None, :] + 0.5 * np.arange(-15, 16)[:, None])
    assert np.abs(crop.astype(float) - want).max() <= 1


def test_border_filled_with_background_and_flagged():
    frame = np.full((60, 80), 200, np.uint8)
    bg = np.full((60, 80), 123, np.float32)
    cut = CropCutter(bg)
    crop, edge = cut(frame, 5.0, 30.0)
    assert edge
    assert (crop[:, :10] == 123).all()  # columns -10..-1 lie outside the frame
    assert (crop[:, 10:] == 200).all()
    assert not cut.touches_edge(15.0, 15.0) and cut.touches_edge(14.9, 30.0)


def test_scale_resamples_around_the_centre():
    f = ramp()
    cut = CropCutter(np.zeros(f.shape, np.float32), scale=2.0)
    crop, edge = cut(f.astype(np.float32) + 0, 60.0, 50.0)
    assert not edge
    assert crop[15, 15] == pytest.approx(60 + 25, abs=0.5)
    # scale 2: one crop pixel is half a frame pixel
    assert float(crop[15, 25]) - float(crop[15, 15]) == pytest.approx(5.0, abs=0.6)
    small = CropCutter(np.zeros(f.shape, np.float32), scale=0.5)
    crop, _ = small(f, 60.0, 50.0)
    assert float(crop[15, 20]) - float(crop[15, 15]) == pytest.approx(10.0, abs=0.6)


def test_gain_for_16_bit():
    frame = np.full((50, 50), 30000, np.uint16)
    cut = CropCutter(np.full((50, 50), 30000, np.float32), gain=125 / 30000)
    crop, _ = cut(frame, 25.0, 25.0)
    assert (crop == 125).all()


def test_crop_track_stacks():
    frames = [cell_image((80, 100), [(30.0 + 3 * t, 40.0)]) for t in range(7)]
    crops, edge = crop_track(
        frames, [30.0 + 3 * t for t in range(7)], [40.0] * 7, np.full((80, 100), 120, np.float32)
    )
    assert crops.shape == (7, 31, 31) and not edge
    # the cell is centred: identical crops (integer shifts of the same image)
    assert (crops == crops[0]).all()


def test_equivalent_diameter_of_discs():
    yy, xx = np.mgrid[-15:16, -15:16]
    for r in (3, 5, 7):
        disc = np.where(xx**2 + yy**2 <= r * r, -30.0, 0.0).astype(np.float32)
        # the blur adds a little; a disc of radius r has about 2r + 1 pixels across
        assert equivalent_diameter(disc, 1.0) == pytest.approx(2 * r + 1, abs=1.0)
    assert np.isnan(equivalent_diameter(np.zeros((31, 31), np.float32), 1.0))
    big = cell_image((31, 31), [(15.0, 15.0)], radius=6.0, noise=2.0, rng=0)
    small = cell_image((31, 31), [(15.0, 15.0)], radius=3.5, noise=2.0, rng=0)
    assert crop_diameter(big) > crop_diameter(small) + 3
