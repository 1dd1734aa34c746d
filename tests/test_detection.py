"""Detection: variance filter, threshold, components and sub-pixel centres."""

from __future__ import annotations

import numpy as np
import pytest
from _frontend_util import cell_image

from rbcflow.config import DetectionConfig
from rbcflow.frontend.detect_table import detect_frame
from rbcflow.frontend.detection import FrameDetector
from rbcflow.frontend.footprints import footprint_radius, refine_centroids
from rbcflow.frontend.variance import auto_threshold, clipped_std, effective_window, local_std
from rbcflow.schema import DETECTIONS


def test_local_std_exact():
    img = np.zeros((5, 5), np.float32)
    img[2, 2] = 9.0
    out = local_std(img, 3)
    # 3x3 window holding one 9 and eight 0: mean 1, mean of squares 9 -> var 8
    assert out[2, 2] == pytest.approx(np.sqrt(8.0), rel=1e-6)
    assert out[1, 1] == pytest.approx(np.sqrt(8.0), rel=1e-6)
    assert local_std(np.full((6, 6), 7, np.uint8), 3).max() == 0.0
    with pytest.raises(ValueError):
        local_std(img, 4)


def test_auto_threshold_and_windows():
    assert auto_threshold(np.array([1.0, 2.0, 3.0, 100.0]), 2.0) == pytest.approx(5.4652)
    assert effective_window(9, 4) == 3
    assert effective_window(9, 2) == 5
    assert effective_window(9, 1) == 9
    rng = np.random.default_rng(0)
    assert clipped_std(np.rint(rng.normal(0, 3.5, 200_000))) == pytest.approx(3.5, rel=0.03)


def test_refine_centroids_exact_rectangle_and_edge_cells():
    bg = np.full((40, 40), 100, np.float32)
    frame = bg.astype(np.uint8)
    frame[10:15, 20:27] = 40
    xy, ok = refine_centroids(frame, bg, np.array([[21.0, 13.0]]), half=6, noise=1.0)
    assert ok.tolist() == [True]
    np.testing.assert_allclose(xy, [[23.0, 12.0]], atol=1e-9)
    # A window leaving the frame is not refined without an edge radius ...
    xy2, ok2 = refine_centroids(frame, bg, np.array([[3.0, 3.0]]), half=6, noise=1.0)
    assert ok2.tolist() == [False] and xy2.tolist() == [[3.0, 3.0]]


@pytest.mark.parametrize("true_y", [1.3, 0.0, 2.6])
def test_cells_cut_by_the_border_get_their_centre(true_y):
    shape = (60, 80)
    whole = cell_image(shape, [(40.3, 30.6)])
    cut = cell_image(shape, [(20.7, true_y)])
    bg = np.full(shape, 120, np.float32)
    radii = footprint_radius(whole, bg, np.array([[40.3, 30.6]]), 9, noise=1.0)
    assert len(radii) == 4
    edge = float(np.median(radii))
    xy, ok = refine_centroids(cut, bg, np.array([[20.0, 4.0]]), 9, 1.0, edge_radius=edge)
    assert ok[0]
    assert abs(xy[0, 0] - 20.7) < 0.2 and abs(xy[0, 1] - true_y) < 0.5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_detect_frame_finds_cells_at_their_centres(dtype):
    centres = [(30.25, 20.5), (90.7, 50.2), (150.0, 70.9)]
    frame = cell_image((100, 200), centres, noise=3.0, rng=1, dtype=dtype)
    scale = 256.0 if dtype == np.uint16 else 1.0
    bg = np.full((100, 200), 120 * scale, np.float32)
    table = detect_frame(frame, bg, DetectionConfig(), frame_index=7)
    assert list(table.columns) == list(DETECTIONS)
    assert (table.frame == 7).all()
    assert len(table) == 3
    found = table.sort_values("x")[["x", "y"]].to_numpy()
    np.testing.assert_allclose(found, centres, atol=0.35)
    assert (table.area > 20).all() and (table.score > 0).all()


def test_no_detection_on_noise_and_area_limits():
    rng = np.random.default_rng(3)
    bg = np.full((96, 128), 120, np.float32)
    noise = np.clip(np.rint(120 + rng.normal(0, 3.5, bg.shape)), 0, 255).astype(np.uint8)
    assert len(detect_frame(noise, bg)) == 0
    frame = cell_image((96, 128), [(60.0, 40.0)], noise=3.5, rng=4)
    assert len(detect_frame(frame, bg)) == 1
    assert len(detect_frame(frame, bg, DetectionConfig(max_area=40))) == 0
    assert len(detect_frame(frame, bg, DetectionConfig(min_area=1000))) == 0


def test_calibrated_detector_threshold_and_noise():
    rng = np.random.default_rng(5)
    bg = np.full((96, 128), 120, np.float32)
    samples = np.stack(
        [cell_image((96, 128), [(20 + 10 * k, 50.0)], noise=3.5, rng=rng) for k in range(8)]
    )
    det = FrameDetector.calibrate(bg, samples)
    assert det.noise == pytest.approx(3.5, rel=0.1)
    assert 0.5 < det.threshold < 5.0
    xy, area, score = det(samples[2])
    np.testing.assert_allclose(xy, [[40.0, 50.0]], atol=0.35)
    fixed = FrameDetector.calibrate(bg, samples, DetectionConfig(threshold=1e6))
    assert fixed.threshold == 1e6 and len(fixed(samples[2])[0]) == 0


def test_coarse_components_exact_statistics():
    """Hand-built blocks (downsample 2, window 3 blocks): a rejected small object lies between
    two kept ones in label order, and the kept ones' areas, centres and extents are exact."""
    bg = np.full((64, 96), 100, np.float32)
    frame = bg.astype(np.uint8)
    frame[8:16, 8:12] = 20  # tall bar: label 1 (kept)
    frame[30:32, 40:42] = 20  # one block: label 2 (too small once thresholded)
    frame[40:44, 60:80] = 20  # wide bar: label 3 (kept)
    cfg = DetectionConfig(downsample=2, window=5, min_area=60, max_area=2000)
    det = FrameDetector(bg, cfg, threshold=1.0)
    c = det.coarse(frame)
    # The 3x3-block variance filter widens each object by one block on every side.
    assert c.area.tolist() == [(4 + 2) * (2 + 2) * 4, (2 + 2) * (10 + 2) * 4]
    np.testing.assert_allclose(c.xy, [[9.5, 11.5], [69.5, 41.5]])
    assert c.extent.tolist() == [12, 24]
    assert c.offset == pytest.approx(float(frame.mean()) - 100.0)


def test_calibration_computes_each_variance_image_once(monkeypatch):
    """The calibration frames' variance images serve the threshold and the detections alike:
    each is computed once, and the threshold and noise are those of FrameDetector.calibrate."""
    from rbcflow.config import FrontEndConfig
    from rbcflow.frontend.calibration import calibrate

    rng = np.random.default_rng(6)
    bg = np.full((96, 128), 120, np.float32)
    samples = np.stack(
        [cell_image((96, 128), [(20 + 4 * k, 50.0)], noise=3.5, rng=rng) for k in range(20)]
    )
    calls = []
    variance = FrameDetector.variance
    monkeypatch.setattr(
        FrameDetector, "variance", lambda self, f: calls.append(1) or variance(self, f)
    )
    cal = calibrate(bg, samples, FrontEndConfig(), np.uint8)
    assert len(calls) == 12
    ref = FrameDetector.calibrate(bg, samples)
    assert (cal.detector.threshold, cal.detector.noise) == (ref.threshold, ref.noise)
    assert 8 < cal.diameter < 16 and cal.cell_area > 0 and cal.gain == 1.0
