"""Issue 12, second round: fragments that used to split, close pairs at full resolution, a
threshold that follows each frame's noise."""

from __future__ import annotations

import numpy as np
import pytest
from _frontend_util import cell_image, link_detections

from rbcflow.config import DetectionConfig, FrontEndConfig, TrackingConfig
from rbcflow.frontend.calibration import calibrate
from rbcflow.frontend.detection import FrameDetector
from rbcflow.frontend.joining import join_cost, robust_end
from rbcflow.frontend.splitting import moment_pair, pair_centres
from rbcflow.frontend.tracks import Track


@pytest.mark.parametrize("k", [4, 10, 20])
def test_a_cell_missing_for_k_frames_is_one_track(k):
    # 4 = max_gap + 1: the track ends in the very frame the cell comes back (the fragment
    # used to start before the ended track was held, and the two were never compared).
    miss = set(range(12, 12 + k))
    dets = [[] if t in miss else [(10.0 + 4 * t, 40.0)] for t in range(40)]
    done, link = link_detections(dets)
    assert len(done) == 1 and link.n_joins == 1
    assert done[0].frames == list(range(40))
    assert [t for t, d in zip(done[0].frames, done[0].detected, strict=True) if not d] == sorted(
        miss
    )


def test_long_gap_with_jittery_centres_is_joined():
    # A faint cell's centre jitters by ~0.4 px: a frame-to-frame velocity across the flow,
    # carried over 15 frames, threw the prediction off the lane; the long-baseline one does not.
    rng = np.random.default_rng(4)
    miss = set(range(25, 40))
    dets = [
        [] if t in miss else [(5.0 + 5 * t + rng.normal(0, 0.4), 40.0 + rng.normal(0, 0.4))]
        for t in range(70)
    ]
    done, link = link_detections(dets)
    assert len(done) == 1 and link.n_joins == 1 and len(done[0]) == 70


def test_a_fragment_on_the_next_lane_is_not_joined():
    # the cell stops being seen; another one starts 10 px across the flow where it would be
    dets = [[(10.0 + 5 * t, 40.0)] if t < 20 else [] for t in range(26)]
    dets += [[(10.0 + 5 * t, 50.0)] for t in range(26, 50)]
    done, link = link_detections(dets)
    assert len(done) == 2 and link.n_joins == 0


def test_two_detections_of_one_cell_give_one_track():
    # a cell cut in two components that both refined to about its centre (2.7 px apart)
    dets = [[(10.0 + 8 * t, 40.0 - 1.35), (10.0 + 8 * t + 0.4, 40.0 + 1.35)] for t in range(30)]
    done, _ = link_detections(dets)
    assert len(done) == 1 and len(done[0]) == 30
    np.testing.assert_allclose(done[0].ys, 40.0 - 1.35, atol=1e-9)  # the first kept


def test_a_cell_along_the_border_is_joined_across_a_gap():
    # a cell cut by the bottom border: its centre at the border and its prediction past it
    miss = set(range(15, 21))
    dets = [[] if t in miss else [(10.0 + 3 * t, 79.2 + 0.05 * (t % 2))] for t in range(40)]
    done, link = link_detections(dets)
    assert len(done) == 1 and link.n_joins == 1 and len(done[0]) == 40


def test_a_fragment_starting_a_frame_before_the_end_is_joined():
    # a second track starts on the cell 2 frames before the first loses it (the first was
    # following a ghost 7 px behind): one track, the overlap cut from the first
    dets = [[(10.0 + 6 * t, 40.0)] if t < 20 else [] for t in range(45)]
    for t in range(18, 45):
        dets[t].append((17.0 + 6 * t, 40.0))
    done, link = link_detections(dets)
    assert len(done) == 1 and link.n_joins == 1
    tr = done[0]
    assert tr.frames == list(range(45))
    np.testing.assert_allclose(tr.xs[18:], 17.0 + 6 * np.arange(18, 45))


def test_join_cost_prefers_the_fragment_that_moves_like_the_track():
    a = Track()
    for f in range(20):
        a.append(f, 10.0 + 6 * f, 30.0, True)
    (lx, ly), (vx, vy) = robust_end(a)
    assert (lx, ly, vx, vy) == pytest.approx((124.0, 30.0, 6.0, 0.0))
    same, slow = Track(), Track()
    for f in range(24, 28):
        same.append(f, 10.0 + 6 * f + 2.0, 30.0, True)
        slow.append(f, 10.0 + 6 * 24 + 1.0 + 2.0 * (f - 24), 30.0, True)
    cfg = TrackingConfig()
    assert join_cost(a, same, cfg) == pytest.approx(2.0)
    assert join_cost(a, slow, cfg) > join_cost(a, same, cfg)


def test_moments_and_far_edges_find_two_cells_of_a_footprint():
    yy, xx = np.mgrid[0:31, 0:31]
    for d in (13.0, 10.0):  # apart, and overlapping
        w = np.zeros((31, 31))
        for cx in (15.0 - d / 2, 15.0 + d / 2):
            w = np.maximum(w, (np.hypot(xx - cx, yy - 15.0) <= 5.0).astype(float))
        c, dist, m = moment_pair(w)
        assert m[0] == pytest.approx(m[1], rel=0.05)
        assert dist == pytest.approx(d, abs=0.3)
        p = pair_centres(w, c, 5.0)
        np.testing.assert_allclose(p, [[15.0 - d / 2, 15.0], [15.0 + d / 2, 15.0]], atol=0.5)


def _calibrated(shape=(120, 240), noise=1.9):
    """A detector calibrated the way the front end does it, on frames of single cells."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(12):
        xs = rng.uniform(20, shape[1] - 20, 3)
        centres = [(x, 20.0 + 40.0 * j) for j, x in enumerate(xs)]
        frames.append(cell_image(shape, centres, noise=noise, rng=k))
    samples = np.stack(frames)
    bg = np.full(shape, 120.0, np.float32)
    return calibrate(bg, samples, FrontEndConfig(), np.uint8).detector, bg


def test_a_14_px_pair_is_split_into_two_cells_within_1_px():
    det, _ = _calibrated()
    assert det.pair_distance == pytest.approx(0.9 * 2 * det.edge_radius, rel=0.25)
    for ang in (0.0, 0.6, 1.5):
        truth = np.array(
            [
                (120 - 7 * np.cos(ang), 60 - 7 * np.sin(ang)),
                (120 + 7 * np.cos(ang), 60 + 7 * np.sin(ang)),
            ]
        )
        frame = cell_image((120, 240), truth, noise=1.9, rng=5)
        xy = det(frame)[0]
        assert len(xy) == 2, ang
        d = np.hypot(xy[:, None, 0] - truth[None, :, 0], xy[:, None, 1] - truth[None, :, 1])
        assert d.min(axis=0).max() <= 1.0, ang
    # a touching pair (9 px apart) stays one object (the two-cell size rule flags it)
    touching = cell_image((120, 240), [(115.5, 60.0), (124.5, 60.0)], noise=1.9, rng=5)
    assert len(det(touching)[0]) == 1
    # and at block resolution alone the 14 px pair is one object
    det.pair_mass = 0.0
    assert len(det(cell_image((120, 240), truth, noise=1.9, rng=5))[0]) == 1


def test_a_noisy_frame_does_not_raise_false_detections():
    shape = (240, 320)
    bg = np.full(shape, 120.0, np.float32)
    cells = [(60.0, 60.0), (200.0, 150.0), (120.0, 200.0)]
    cal = np.stack([cell_image(shape, cells, noise=1.9, rng=k) for k in range(6)])
    det = FrameDetector.calibrate(bg, cal, DetectionConfig())
    fixed = FrameDetector.calibrate(bg, cal, DetectionConfig(adaptive_threshold=False))
    assert det.threshold == fixed.threshold
    for sd in (1.9, 3.0, 4.5):
        frame = cell_image(shape, cells, noise=sd, rng=11)
        xy = det(frame)[0]
        assert len(xy) == 3, sd
        truth = np.array(cells)
        d = np.hypot(xy[:, None, 0] - truth[None, :, 0], xy[:, None, 1] - truth[None, :, 1])
        assert d.min(axis=0).max() < 1.0, sd  # the three cells, found where they are
    # the per-video threshold alone: the noisier frame is full of false detections
    assert len(fixed(cell_image(shape, cells, noise=3.0, rng=11))[0]) > 10


def test_describe_cases_names_fragments_and_false_tracks():
    import pandas as pd

    from rbcflow.frontend.scoring import describe_cases, score_tracks

    frames = np.arange(30)
    truth = pd.DataFrame({"track_id": 1, "label": 0, "frame": frames, "x": 5.0 * frames, "y": 20.0})
    found = pd.DataFrame(
        {
            "track_id": np.r_[np.full(12, 1), np.full(14, 2), np.full(8, 3)],
            "frame": np.r_[frames[:12], frames[16:], frames[:8]],
            "x": np.r_[5.0 * frames[:12], 5.0 * frames[16:], 5.0 * frames[:8]],
            "y": np.r_[np.full(26, 20.0), np.full(8, 60.0)],
            "detected": True,
        }
    )
    s = score_tracks(found, truth)
    lines = describe_cases(found, truth, s)
    assert lines[0] == "fragmented true 1: 1[0-11] 2[16-29] gaps [5]"
    assert lines[1] == "false 3[0-7]: 8/8 frames detected, nearest true 1 at 40.0 px"
