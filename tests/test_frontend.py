"""The front end end to end: synthetic and composited videos, errors, streaming, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _frontend_util import ArrayReader, cell_image
from click.testing import CliRunner

from rbcflow.cli import main
from rbcflow.config import FrontEndConfig
from rbcflow.errors import NoCellsError, VideoReadError
from rbcflow.frontend.run import prefetch, progress_total, run_frontend
from rbcflow.frontend.scoring import score_tracks
from rbcflow.io.avi import write_avi
from rbcflow.io.sequences import read_dataset
from rbcflow.io.video import open_video
from rbcflow.schema import FRAME_STATS, POSITIONS, TRACKS
from rbcflow.synthetic import SynthConfig, render_acquisition


@pytest.fixture(scope="module")
def synthetic_avi(tmp_path_factory):
    """A 24-bit uncompressed AVI (the camera's format) of a synthetic acquisition + truth."""
    cfg = SynthConfig(width=640, height=480, n_frames=240, cells_in_view=8)
    acq = render_acquisition(cfg, rng=11)
    path = tmp_path_factory.mktemp("fe") / "acq.avi"
    write_avi(path, acq.frames(), fps=cfg.fps, bits=24)
    return path, acq


@pytest.fixture(scope="module")
def synthetic_result(synthetic_avi):
    path, acq = synthetic_avi
    got = []
    counts = []
    with open_video(path) as reader:
        total = progress_total(reader)
        result = run_frontend(
            reader, progress=counts.append, on_track=lambda row, crops: got.append((row, crops))
        )
    return result, acq, got, counts, total


def test_end_to_end_recovers_the_true_tracks(synthetic_result):
    result, acq, *_ = synthetic_result
    s = score_tracks(result.positions, acq.truth)
    assert s["n_true"] >= 20
    assert s["recall"] >= 0.95, s
    assert s["median_error"] <= 1.0, s
    assert s["false_rate"] <= 0.05, s
    assert s["coverage"] >= 0.9, s


def test_result_tables_and_streamed_crops(synthetic_result):
    result, acq, got, counts, total = synthetic_result
    assert list(result.positions.columns)[:5] == list(POSITIONS)
    assert list(result.tracks.columns)[: len(TRACKS)] == list(TRACKS)
    assert list(result.frame_stats.columns) == list(FRAME_STATS)
    assert result.n_frames == 240 and len(result.frame_stats) == 240 and result.fps == 60.0
    assert result.background.shape == (480, 640) and result.background.dtype == np.float32
    assert not any("short video" in w for w in result.warnings)
    assert sum(counts) == total == 240 + 100
    assert (result.tracks.n_frames >= 6).all()
    assert sorted(r["track_id"] for r, _ in got) == result.tracks.track_id.tolist()
    for row, crops in got:
        # the classifiers see a track without its entry and exit frames at the image border
        assert crops.shape == (row["classified_frames"], 31, 31) and crops.dtype == np.uint8
        assert 6 <= row["classified_frames"] <= row["n_frames"]
        if not row["edge"]:
            assert row["classified_frames"] == row["n_frames"]
    assert any(r["classified_frames"] < r["n_frames"] for r, _ in got)  # cells enter and leave
    n_per_track = result.positions.groupby("track_id").size()
    assert (n_per_track.to_numpy() == result.tracks.set_index("track_id").n_frames).all()
    # crops are centred on cells: in the track's mean crop (noise averaged out), the middle
    # differs from the background far more than the corners
    row, crops = max(got, key=lambda g: g[0]["n_frames"])
    m = crops.astype(float).mean(axis=0)
    centre = np.abs(m[11:20, 11:20] - np.median(m)).mean()
    corner = np.abs(m[:6, :6] - np.median(m)).mean()
    assert centre > 3 * corner
    assert 8 < result.cell_diameter < 20
    assert {"background", "tracking", "detection", "linking", "crops"} <= set(result.timings)


def test_too_short_and_empty_videos():
    frames = [np.full((64, 64), 120, np.uint8)] * 5
    with pytest.raises(VideoReadError, match="5 frame"):
        run_frontend(ArrayReader(frames))
    rng = np.random.default_rng(0)
    blank = [np.clip(120 + rng.normal(0, 3, (64, 96)), 0, 255).astype(np.uint8) for _ in range(20)]
    with pytest.raises(NoCellsError, match="no cell track"):
        run_frontend(ArrayReader(blank))


def test_uint16_frames_and_auto_scale():
    shape = (120, 200)
    frames = [
        cell_image(shape, [(10.0 + 6 * t, 60.0)], radius=9.0, noise=3.0, rng=t, dtype=np.uint16)
        for t in range(30)
    ]
    cfg = FrontEndConfig()
    cfg = type(cfg)(crops=type(cfg.crops)(scale=None))
    crops_seen = []
    res = run_frontend(ArrayReader(frames), cfg, on_track=lambda r, c: crops_seen.append(c))
    assert len(res.tracks) == 1
    # 30 frames < 100: the background is the median of all of them, and the run says so
    assert any("short video: background from all 30 frames" in w for w in res.warnings)
    assert res.scale < 0.9  # big cells are shrunk towards the training size
    c = crops_seen[0]
    assert c.dtype == np.uint8 and 110 < np.median(c) < 140  # 16-bit mapped to ~125


def test_prefetch_order_and_errors():
    assert list(prefetch(iter(range(50)), 4)) == list(range(50))

    def broken():
        yield 1
        raise VideoReadError("frame 1 cannot be decoded")

    it = prefetch(broken(), 2)
    assert next(it) == 1
    with pytest.raises(VideoReadError):
        next(it)
    gen = prefetch(iter(range(1000)), 2)
    assert next(gen) == 0
    gen.close()  # stops the producer without hanging


@pytest.mark.shared
def test_composite_of_real_crops_recovers_their_tracks(shared_data, tmp_path):
    from rbcflow.synthetic import composite_video

    seqs = [s for s in read_dataset(shared_data / "stage1_BG") if s.label in (0, 1)]
    seqs = [s for s in seqs if len(s.frames) >= 12][:24]
    path = tmp_path / "composite.avi"
    truth, _ = composite_video(seqs, path, rng=2, cells_in_view=4.0)
    with open_video(path) as reader:
        result = run_frontend(reader)
    s = score_tracks(result.positions, truth)
    assert s["recall"] >= 0.9, s
    assert s["median_error"] <= 1.0, s
    assert s["false_rate"] <= 0.1, s


def test_cli_track_writes_outputs_and_reports_bad_inputs(synthetic_avi, tmp_path):
    path, acq = synthetic_avi
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"this is not a video")
    short = tmp_path / "short.avi"
    write_avi(short, (np.full((40, 50), 120, np.uint8) for _ in range(4)), fps=60)
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(main, ["track", str(bad), str(path), str(short), "--out", str(out), "-q"])
    assert res.exit_code == 1
    err_lines = [line for line in res.stderr.splitlines() if line.startswith("rbcflow: error")]
    assert len(err_lines) == 2 and "Traceback" not in res.output + res.stderr
    assert "broken.avi" in err_lines[0] and "short.avi" in err_lines[1]
    folder = out / "acq"
    positions = pd.read_csv(folder / "positions.csv", encoding="utf-8-sig")
    tracks = pd.read_csv(folder / "tracks.csv", encoding="utf-8-sig")
    assert list(positions.columns) == list(POSITIONS)  # detected: false where the cell was missed
    assert len(tracks) > 10 and (folder / "run.json").is_file()
    seqs = read_dataset(folder / "sequences")
    assert len(seqs) == len(tracks) and all(s.label is None for s in seqs)
    assert seqs[0].name.startswith("acq_")
    assert not any(p.name.startswith(".") for p in out.iterdir())
    again = runner.invoke(main, ["track", str(path), "--out", str(out), "-q"])
    assert again.exit_code == 1 and "exists already" in again.stderr
    help_text = runner.invoke(main, ["track", "--help"]).output
    assert "Examples" in help_text and "--scale" in help_text


def test_no_cell_hint_names_only_the_options_of_the_command(tmp_path):
    """The front end states the fact; ``rbcflow track`` adds its ``--threshold`` hint."""
    noise = np.random.default_rng(0).normal(128, 1, (40, 64, 80)).astype(np.uint8)
    path = tmp_path / "blank.avi"
    write_avi(path, noise, fps=60)
    with pytest.raises(NoCellsError) as info:
        run_frontend(open_video(path))
    assert "no cell track" in str(info.value) and "--threshold" not in str(info.value)
    res = CliRunner().invoke(main, ["track", str(path), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1 and "try a lower --threshold" in res.stderr


class _CountingReader(ArrayReader):
    """Counts the frames it decodes (by seeking and by iterating); seeks as a compressed
    codec's (``costly_seeks``)."""

    decoded = 0
    costly_seeks = True

    def get_frame(self, i):
        self.decoded += 1
        return super().get_frame(i)


def test_a_short_video_is_decoded_once_with_identical_results(synthetic_avi):
    # The background's sequential pass keeps the frames for the tracking pass when the video
    # fits in StreamConfig.reuse_frames_mib: each frame decoded once, the same tables.
    path, _ = synthetic_avi
    with open_video(path) as video:
        frames = list(video)
    fmt = {"index": False, "float_format": "%.9g"}
    runs = {}
    for mib in (0, 256):
        reader = _CountingReader(frames)
        res = run_frontend(reader, reuse_mib=mib)
        runs[mib] = (reader.decoded, res.positions.to_csv(**fmt), res.tracks.to_csv(**fmt))
    assert runs[256][0] == len(frames)  # once each
    assert runs[0][0] >= len(frames) + 100  # the background's samples, then every frame again
    assert runs[0][1:] == runs[256][1:]
    # where seeking costs a frame's reading, nothing is kept: 100 seeks, then every frame
    cheap = _CountingReader(frames)
    cheap.costly_seeks = False
    run_frontend(cheap, reuse_mib=256)
    assert cheap.decoded >= len(frames) + 100
