"""Linking, cross-correlation refinement, tables and scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _frontend_util import cell_image

from rbcflow.config import TrackingConfig
from rbcflow.frontend.correlation import correlation_shift
from rbcflow.frontend.scoring import score_tracks
from rbcflow.frontend.tracking import Linker, link_iter, track_frames
from rbcflow.frontend.tracks import tracks_to_tables
from rbcflow.schema import POSITIONS, TRACKS

BG = np.zeros((100, 400), np.float32)


def run(dets, cfg=None):
    """Link a list of per-frame detection arrays without refinement."""
    link = Linker(BG, cfg or TrackingConfig(refine=False))
    done = []
    for t, xy in enumerate(dets):
        done += link.step(t, None, np.asarray(xy, float).reshape(-1, 2))
    return done + link.finish()


def test_two_cells_linked_exactly_with_a_missed_detection():
    dets = []
    for t in range(12):
        a = (10.0 + 5.0 * t, 30.0)
        b = (20.0 + 3.0 * t, 70.0 + 0.1 * t)
        dets.append([b, a] if t != 5 else [b])  # cell a not detected in frame 5
    tracks = sorted(run(dets), key=lambda tr: tr.ys[0])
    assert len(tracks) == 2
    a, b = tracks
    assert a.frames == list(range(12)) and b.frames == list(range(12))
    np.testing.assert_allclose(a.xs, 10.0 + 5.0 * np.arange(12))
    np.testing.assert_allclose(a.ys, 30.0)
    assert a.detected[5] is False and sum(a.detected) == 11
    np.testing.assert_allclose(b.ys, 70.0 + 0.1 * np.arange(12))
    assert {a.track_id, b.track_id} == {1, 2}
    assert not a.interference and not b.interference


def test_short_tracks_dropped_and_trailing_gaps_trimmed():
    dets = [[(10.0 + 4 * t, 50.0)] if t < 5 else [] for t in range(10)]
    assert run(dets) == []  # 5 frames < 6
    dets = [[(10.0 + 4 * t, 50.0)] if t < 8 else [] for t in range(14)]
    (tr,) = run(dets)
    assert tr.frames == list(range(8))  # predicted frames after the last detection removed


def test_track_ends_after_max_gap_and_when_leaving_the_field():
    dets = [[(10.0 + 4 * t, 50.0)] if t < 8 or t >= 12 else [] for t in range(20)]
    tracks = run(dets, TrackingConfig(refine=False, max_gap=2, join_window=0))
    assert [len(t) for t in tracks] == [8, 8]  # a 4-frame gap splits the track (no joining)
    tracks = run(dets, TrackingConfig(refine=False, max_gap=4))
    assert [len(t) for t in tracks] == [20]
    # Moving at 30 px/frame out of a 400 px field: the track ends at the last frame inside.
    dets = [[(300.0 + 30 * t, 50.0)] if 300 + 30 * t < 400 else [] for t in range(8)]
    dets = [[(200.0 + 30 * t, 50.0)] if 200 + 30 * t < 400 else [] for t in range(12)]
    (tr,) = run(dets)
    assert tr.xs[-1] == 380.0


def test_interference_flag():
    dets = []
    for t in range(10):
        dets.append([(10.0 + 5 * t, 40.0), (60.0 + 0.5 * t, 40.0 + 12.0 * (t > 6))])
    tracks = run(dets)
    assert len(tracks) == 2
    assert all(tr.interference for tr in tracks)  # 10 px apart < 18 px at some point
    far = [[(10.0 + 5 * t, 20.0), (10.0 + 5 * t, 80.0)] for t in range(10)]
    assert not any(tr.interference for tr in run(far))


def test_new_track_gate_prefers_established_tracks():
    # A new cell appears 8 px behind an established one: the established track keeps its own
    # cell (constant velocity), the newcomer starts its own track.
    dets = [[(50.0 + 6 * t, 50.0)] for t in range(5)]
    dets += [[(50.0 + 6 * t, 50.0), (50.0 + 6 * t - 8, 50.0)] for t in range(5, 12)]
    tracks = sorted(run(dets), key=len)
    assert [len(t) for t in tracks] == [7, 12]
    np.testing.assert_allclose(tracks[1].xs, 50.0 + 6 * np.arange(12))


def test_correlation_shift_subpixel():
    rng = np.random.default_rng(0)
    prev = cell_image((60, 80), [(30.0, 30.0)], noise=2.0, rng=rng, dtype=np.float32)
    for dx, dy in [(3.3, 0.0), (5.75, -0.4), (1.1, 0.6)]:
        cur = cell_image((60, 80), [(30 + dx, 30 + dy)], noise=2.0, rng=rng, dtype=np.float32)
        bg = np.full((60, 80), 120, np.float32)
        x, y, r = correlation_shift(prev, cur, bg, (30.0, 30.0), (30 + dx + 0.8, 30.0), 9, 3)
        assert abs(x - (30 + dx)) < 0.15 and abs(y - (30 + dy)) < 0.15
        assert r > 0.8
    assert correlation_shift(prev, prev, bg, (3.0, 3.0), (3.0, 3.0), 9, 3) is None


def test_refined_tracking_on_frames_is_subpixel():
    rng = np.random.default_rng(1)
    bg = np.full((60, 200), 120, np.float32)
    truth = [(20.0 + 4.37 * t, 30.0 + 0.05 * t) for t in range(30)]
    frames = [cell_image(bg.shape, [c], noise=3.0, rng=rng) for c in truth]

    counter = iter(range(30))

    def noisy_detect(frame):
        k = next(counter)
        jitter = rng.normal(0, 0.5, 2)  # a poor detector: 0.5 px noise
        return (np.array([truth[k]]) + jitter,)

    (tr,) = list(track_frames(frames, noisy_detect, bg, TrackingConfig()))
    err = np.hypot(np.array(tr.xs) - [c[0] for c in truth], np.array(tr.ys) - [c[1] for c in truth])
    raw = 0.5 * np.sqrt(2)
    assert np.median(err) < 0.6 * raw  # the correlation takes out most of the jitter


def test_tracks_to_tables_schema():
    dets = [[(10.0 + 4 * t, 50.0)] for t in range(8)]
    tracks = run(dets)
    positions, table = tracks_to_tables(tracks, [True])
    assert list(positions.columns) == list(POSITIONS)
    assert list(table.columns)[: len(TRACKS)] == list(TRACKS)
    row = table.iloc[0]
    assert row.n_frames == 8 and row.first_frame == 0 and row.last_frame == 7
    assert row.speed == pytest.approx(4.0) and row.edge and row.n_detected == 8
    empty_pos, empty_tab = tracks_to_tables([])
    assert len(empty_pos) == 0 and len(empty_tab) == 0


def test_geometry_columns_border_cut_and_size_ratio():
    """Exact per-track geometry: a cell riding the top border is cut in the frames where its
    centre is within a radius of it; the size ratio is the median detected area over the
    one-cell area (undetected frames ignored)."""
    link = Linker(BG, TrackingConfig(refine=False))
    done = []
    for t in range(10):
        xy = [(10.0 + 5 * t, 3.0 if t < 7 else 5.5), (12.0 + 5 * t, 80.0)]
        areas = [100.0, 250.0 if t != 4 else 400.0]
        if t == 6:  # the second cell is missed once: its NaN area must not count
            xy, areas = xy[:1], areas[:1]
        done += link.step(t, None, np.asarray(xy), np.asarray(areas))
    done += link.finish()
    _, table = tracks_to_tables(done, rows=100, radius=5.0, cell_area=125.0)
    top, low = table.sort_values("y_mean").itertuples()
    assert top.border_cut == pytest.approx(0.7)  # y = 3 < 5 in frames 0-6, then 5.5
    assert top.size_ratio == pytest.approx(0.8)
    assert low.border_cut == 0.0
    assert low.size_ratio == pytest.approx(2.0)  # median of 250 x 8 and 400 x 1
    _, unknown = tracks_to_tables(done)  # no geometry given: unknown, not zero
    assert unknown.border_cut.isna().all() and unknown.size_ratio.isna().all()


def test_score_tracks_exact():
    frames = np.arange(10)
    truth = pd.concat(
        [
            pd.DataFrame({"track_id": 1, "label": 0, "frame": frames, "x": 2.0 * frames, "y": 5.0}),
            pd.DataFrame(
                {"track_id": 2, "label": 1, "frame": frames, "x": 3.0 * frames, "y": 50.0}
            ),
            pd.DataFrame({"track_id": 3, "label": 2, "frame": frames[:3], "x": 0.0, "y": 90.0}),
        ]
    )
    found = pd.concat(
        [
            pd.DataFrame({"frame": frames, "track_id": 7, "x": 2.0 * frames + 0.5, "y": 5.0}),
            pd.DataFrame({"frame": frames, "track_id": 8, "x": 2.0 * frames, "y": 30.0}),
        ]
    )
    s = score_tracks(found, truth)
    assert s["n_true"] == 2  # track 3 has fewer than 6 frames
    assert s["recall"] == 0.5 and s["missed"] == [2]
    assert s["false_rate"] == 0.5 and s["false_ids"] == [8]
    assert s["median_error"] == pytest.approx(0.5)
    assert s["pairs"] == {7: 1}
    assert s["coverage"] == pytest.approx(0.5)


def test_link_iter_yields_every_frame_then_the_end():
    """The per-frame loop under track_frames and run_frontend: one step per frame (index,
    frame, tracks ended there), then the tracks still active at the end."""
    link = Linker(BG, TrackingConfig(refine=False))
    dets = ((None, np.array([[10.0 + 4 * t, 50.0]]), np.array([30.0])) for t in range(8))
    steps = list(link_iter(link, dets))
    assert [t for t, _, _ in steps] == list(range(9))
    assert all(not done for _, _, done in steps[:-1])
    (tr,) = steps[-1][2]
    assert steps[-1][1] is None and tr.frames == list(range(8)) and tr.areas == [30.0] * 8
