"""The front end's per-track context measures and the context rules built on them.

``neighbour_frames`` (another detection in the crop window), ``contrast_rel`` and
``sharpness_rel`` (relative to the acquisition's median track) and ``sharpness_trend`` (focus
change along the track), measured on a small synthetic video whose cells are placed so that the
answers are known; then :func:`rbcflow.classify.labels.context_rules` and the pipeline's final
relabelling with them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest
from _frontend_util import ArrayReader, cell_image

from rbcflow.classify.labels import context_rules, label_tracks, relabel, track_rules
from rbcflow.config import CropConfig, FrontEndConfig, ReportConfig, TrackingConfig
from rbcflow.frontend.run import run_frontend
from rbcflow.frontend.tracking import Linker
from rbcflow.frontend.tracks import Track, crop_context, track_row, tracks_to_tables
from rbcflow.io.avi import write_avi
from rbcflow.pipeline import AnalysisSettings, analyze
from rbcflow.schema import TRACKS

SHAPE = (370, 400)
N_FRAMES = 90
RADIUS = 10.0  # a high-magnification camera: cells ~25 px across, crops at scale ~0.5
# name: (x at frame 0, y, speed px/frame, blur sigma at the first and last frame)
CELLS = {
    "a": (-10.0, 40.0, 5.0, 0.0, 0.0),
    "b": (-40.0, 100.0, 5.0, 0.0, 0.0),
    "slow": (0.0, 170.0, 4.0, 0.0, 0.0),  # overtaken by "fast", 38 px below: in its crop
    "fast": (-80.0, 208.0, 7.0, 0.0, 0.0),
    "blurred": (-20.0, 270.0, 5.0, 3.5, 3.5),  # out of focus all along
    "drifting": (-30.0, 330.0, 5.0, 0.0, 4.0),  # leaves the focal plane
}
FRONTEND = FrontEndConfig(crops=CropConfig(scale=None))


def _frame(t: int, rng: np.random.Generator) -> np.ndarray:
    img = np.full(SHAPE, 120.0, np.float32)
    h = int(RADIUS) + 16
    for x0, y, v, blur0, blur1 in CELLS.values():
        x = x0 + v * t
        cx, cy = int(round(x)), int(round(y))
        if cx + h < 0 or cx - h >= SHAPE[1]:
            continue
        patch = cell_image(
            (2 * h + 1, 2 * h + 1),
            [(x - cx + h, y - cy + h)],
            level=0.0,
            radius=RADIUS,
            dtype=np.float32,
        )
        blur = blur0 + (blur1 - blur0) * t / (N_FRAMES - 1)
        if blur > 0:  # defocus spreads the contrast; more of it keeps the cell detectable
            patch = (1.0 + 0.15 * blur) * cv2.GaussianBlur(patch, (0, 0), blur)
        c0, c1 = max(cx - h, 0), min(cx + h + 1, SHAPE[1])
        img[cy - h : cy + h + 1, c0:c1] += patch[:, c0 - (cx - h) : c1 - (cx - h)]
    img += rng.normal(0.0, 2.0, SHAPE).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return [_frame(t, rng) for t in range(N_FRAMES)]


def _by_cell(tracks: pd.DataFrame) -> dict[str, pd.Series]:
    """Each cell's longest track (by lane: the cells' y are known)."""
    out = {}
    for name, (_, y, *_rest) in CELLS.items():
        lane = tracks[(tracks.y_mean - y).abs() < 3]
        assert len(lane), f"no track for {name}"
        out[name] = lane.loc[lane.n_frames.idxmax()]
    return out


@pytest.fixture(scope="module")
def result(frames):
    return run_frontend(ArrayReader(frames), FRONTEND)


def test_context_columns_are_declared_float64_and_after_the_old_ones(result):
    new = ["neighbour_frames", "contrast_rel", "sharpness_rel", "sharpness_trend"]
    assert list(TRACKS)[-4:] == new
    assert all(TRACKS[c] == "float64" for c in new)
    assert list(result.tracks.columns)[: len(TRACKS)] == list(TRACKS)
    assert all(result.tracks[c].dtype == np.float64 for c in new)


def test_neighbour_frames_counts_a_cell_crossing_the_crop(result):
    cells = _by_cell(result.tracks)
    for name in ("a", "b", "blurred", "drifting"):
        assert cells[name].neighbour_frames == 0.0, name
    # "fast" (7 px/frame) overtakes "slow" (4 px/frame) 38 px below it: each lies in the
    # other's crop window (|dx|, |dy| <= 15 / scale + radius) for part of the track only
    for name in ("slow", "fast"):
        assert 0.1 < cells[name].neighbour_frames < 0.9, name
    assert cells["slow"].n_frames >= 80  # the crossing did not break the track


def test_contrast_and_sharpness_relative_to_the_acquisition(result):
    cells = _by_cell(result.tracks)
    for name in ("a", "b", "slow", "fast"):  # typical cells: the acquisition's median
        assert cells[name].contrast_rel == pytest.approx(1.0, abs=0.1), name
        assert cells[name].sharpness_rel == pytest.approx(1.0, abs=0.1), name
        assert abs(cells[name].sharpness_trend) < 0.1, name
    assert cells["blurred"].sharpness_rel < 0.75
    assert abs(cells["blurred"].sharpness_trend) < 0.15  # blurred, but steadily
    # sharp at first, blurred at the end (sigma 0 -> 4 px: the sharpness falls by ~40%)
    assert cells["drifting"].sharpness_trend < -0.2
    assert cells["drifting"].sharpness_rel < cells["a"].sharpness_rel


def test_on_track_rows_have_the_measures_known_when_the_track_ends(frames):
    rows = []
    res = run_frontend(ArrayReader(frames), FRONTEND, on_track=lambda r, c: rows.append(r))
    by_id = res.tracks.set_index("track_id")
    for row in rows:
        assert row["neighbour_frames"] == by_id.at[row["track_id"], "neighbour_frames"]
        # acquisition-relative: unknown until every track is, then in the table
        assert math.isnan(row["contrast_rel"]) and math.isnan(row["sharpness_rel"])
        assert math.isnan(row["sharpness_trend"])
        assert row["contrast"] > 0  # the raw measure, for the table's relative one


def test_linker_neighbours_exact_window():
    """Another detection counts in a frame when it lies within crop_reach + its radius along
    both axes; the track's own detection and fragments of it never count."""
    link = Linker(np.zeros((200, 400), np.float32), TrackingConfig(refine=False), crop_reach=15.0)
    done = []
    for t in range(10):
        x = 20.0 + 5 * t
        xy, area = [(x, 100.0)], [300.0]
        if t > 0:  # a fragment of the cell (it starts no track of its own once the cell has one)
            xy.append((x + 2.0, 101.0))
            area.append(40.0)
        r = 4.0  # the other object's radius: area pi * 16
        if t in (2, 3, 4):
            xy.append((x + 8.0, 100.0 + 15.0 + r - 0.5))  # inside the window
        elif t in (5, 6):
            xy.append((x + 8.0, 100.0 + 15.0 + r + 0.5))  # just outside
        elif t == 7:
            xy.append((x - 15.0 - r + 0.5, 100.0 - 12.0))  # inside, behind
        if t in (2, 3, 4, 5, 6, 7):
            area.append(math.pi * r * r)
        done += link.step(t, None, np.asarray(xy), np.asarray(area))
    done += link.finish()
    (tr,) = [d for d in done if len(d) == 10]
    assert tr.neighbours == [False, False, True, True, True, False, False, True, False, False]
    _, table = tracks_to_tables([tr])
    assert table.neighbour_frames.iloc[0] == pytest.approx(0.4)


def test_crop_context_contrast_and_sharpness():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:31, 0:31] - 15.0
    r = np.hypot(xx, yy)
    cell = -30.0 * np.exp(-0.5 * ((r - 5.0) / 1.2) ** 2) + 15.0 * np.exp(-0.5 * (r / 2.75) ** 2)
    blurred = cv2.GaussianBlur(cell.astype(np.float32), (0, 0), 2.5)
    noise = rng.normal(0.0, 2.0, (4, 31, 31))
    stack = 120.0 + np.stack([cell, 0.5 * cell, blurred, 0 * cell]) + noise
    crops = np.clip(np.rint(stack), 0, 255)
    contrast, sharpness = crop_context(crops.astype(np.uint8), 5.0)
    assert contrast[1] / contrast[0] == pytest.approx(0.5, abs=0.05)  # half the contrast
    assert sharpness[1] / sharpness[0] == pytest.approx(1.0, abs=0.1)  # as sharp
    assert sharpness[2] < 0.7 * sharpness[0]  # blurred
    assert contrast[3] < 0.1 * contrast[0] and math.isnan(sharpness[3])  # no cell: unknown


def test_track_row_without_crops_or_neighbours_is_unknown():
    tr = Track()
    for t in range(8):
        tr.append(t, 10.0 + t, 5.0, True)
    row = track_row(tr)
    for key in ("neighbour_frames", "contrast_rel", "sharpness_rel", "sharpness_trend"):
        assert math.isnan(row[key]), key
    _, table = tracks_to_tables([tr])
    assert table[["neighbour_frames", "contrast_rel", "sharpness_rel"]].isna().all().all()


def test_context_rules_fire_beyond_their_thresholds_only():
    cfg = ReportConfig(
        max_neighbour_frames=0.2, min_contrast_rel=0.5, min_sharpness_rel=0.7, max_focus_drift=0.4
    )
    nb = np.array([0.2, 0.21, 0.0, 0.0, 0.0, 0.0, 0.0, np.nan])
    cr = np.array([1.0, 1.0, 0.5, 0.49, 1.0, 1.0, 1.0, np.nan])
    sr = np.array([1.0, 1.0, 1.0, 1.0, 0.7, 0.69, 1.0, np.nan])
    st = np.array([0.4, 0.0, -0.4, 0.0, 0.0, 0.0, -0.41, np.nan])
    got = context_rules(8, cfg, nb, cr, sr, st)
    assert list(got) == [
        "",  # every measure exactly at its threshold
        "another object in the crop",
        "",
        "low contrast",
        "",
        "out of focus",
        "focus drift",
        "",  # unknown never rejects
    ]
    # several reasons: the first in the documented order
    assert list(context_rules(1, cfg, [0.9], [0.1], [0.1], [0.9])) == ["another object in the crop"]
    assert list(context_rules(2, cfg, sharpness_rel=[0.1, 1.0])) == ["out of focus", ""]
    # thresholds None (the default): nothing fires, whatever the measures
    assert (context_rules(8, ReportConfig(), nb, cr, sr, st) == "").all()


def test_labels_with_context_rules():
    p_rel, p_tt = np.full(4, 0.9), np.array([0.8, 0.2, 0.8, 0.8])
    ctx = {
        "neighbour_frames": np.array([0.0, 0.0, 0.5, 0.0]),
        "sharpness_rel": np.array([1.0, 0.3, 1.0, 1.0]),
        "border_cut": np.array([0.0, 0.0, 0.9, 0.0]),
    }
    plain = label_tracks(p_rel, p_tt)
    assert list(plain) == ["tank-treading", "flipping", "tank-treading", "tank-treading"]
    defaults = ReportConfig(max_border_cut=None)
    assert list(label_tracks(p_rel, p_tt, defaults, **ctx)) == list(plain)  # rules off
    cfg = ReportConfig(max_neighbour_frames=0.1, min_sharpness_rel=0.5)
    labels = label_tracks(p_rel, p_tt, cfg, **ctx)
    assert list(labels) == ["tank-treading", "unreliable", "unreliable", "tank-treading"]
    # geometry first: the cut cell with a neighbour is "cut by border"
    assert list(track_rules(4, cfg, **ctx)) == ["", "out of focus", "cut by border", ""]
    with pytest.raises(TypeError, match="unknown rule column"):
        track_rules(4, cfg, sharpness=np.ones(4))


class _AllReliable:
    """Stand-in classifier: every track reliable and tank-treading."""

    stage1_checksum = "a" * 64
    stage2_checksum = "b" * 64

    def predict(self, sequences, *, batch_size=256, progress=None):
        n = len(sequences)
        return pd.DataFrame({"p_reliable": np.full(n, 0.9), "p_tank_treading": np.full(n, 0.8)})


def test_analyze_applies_context_rules_once_all_tracks_are_known(frames, tmp_path):
    """``sharpness_rel`` is known only at the end: the rule column of tracks.csv carries the
    context reasons all the same; with the thresholds off nothing changes."""
    path = tmp_path / "ctx.avi"
    write_avi(path, frames, fps=60.0, bits=8)
    off = analyze(path, _AllReliable(), AnalysisSettings(frontend=FRONTEND), threaded=False)
    geometry_only = label_tracks(
        off.tracks.p_reliable,
        off.tracks.p_tank_treading,
        ReportConfig(),
        border_cut=off.tracks.border_cut,
        size_ratio=off.tracks.size_ratio,
    )
    assert list(off.tracks.label) == list(geometry_only)
    assert set(off.tracks.rule) <= {"", "cut by border", "two cells"}
    report = ReportConfig(max_neighbour_frames=0.05, min_sharpness_rel=0.75)
    on = analyze(path, _AllReliable(), AnalysisSettings(frontend=FRONTEND, report=report))
    pd.testing.assert_frame_equal(
        on.tracks[list(TRACKS)], off.tracks[list(TRACKS)]
    )  # same front end
    cells = _by_cell(on.tracks)
    assert cells["slow"].rule == cells["fast"].rule == "another object in the crop"
    assert cells["blurred"].rule == "out of focus"
    assert cells["a"].rule == cells["b"].rule == ""
    flagged = on.tracks[on.tracks.rule != ""]
    assert (flagged.label == "unreliable").all() and len(flagged) >= 3
    assert all(
        g.label == on.tracks.set_index("track_id").at[g.track_id, "label"] for g in on.gallery
    )


def test_relabel_keeps_streamed_labels_when_rules_are_off():
    table = pd.DataFrame(
        {
            "track_id": [1, 2, 3],
            "p_reliable": [0.9, 0.2, np.nan],
            "p_tank_treading": [0.3, 0.9, 0.9],
            "size_ratio": [1.0, 1.0, 2.5],
            "sharpness_rel": [0.2, 1.0, 1.0],
        }
    )
    out = relabel(table, ReportConfig())
    assert list(out.label) == ["flipping", "unreliable", "unreliable"]
    assert list(out.rule) == ["", "", "two cells"]
    out = relabel(table, ReportConfig(min_sharpness_rel=0.5))
    assert list(out.rule) == ["out of focus", "", "two cells"]
    assert list(out.label) == ["unreliable"] * 3
    assert "rule" not in table.columns  # a copy
