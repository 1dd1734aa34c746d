"""The synthetic generator: determinism, truth against rendered content, writers, CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from rbcflow import schema
from rbcflow.cli import main
from rbcflow.errors import OutputError, RbcflowError
from rbcflow.synthetic import (
    SynthConfig,
    composite_video,
    render_acquisition,
    true_fraction,
    truth_paths,
    write_acquisition,
    write_frames,
)

SMALL = SynthConfig(width=320, height=160, n_frames=40, cells_in_view=4)
HALF = 15  # half of a 31x31 crop


def _crop(frame: np.ndarray, x: float, y: float, half: int = HALF) -> np.ndarray | None:
    cx, cy = int(round(x)), int(round(y))
    if cx - half < 0 or cy - half < 0 or cx + half >= frame.shape[1] or cy + half >= frame.shape[0]:
        return None
    return frame[cy - half : cy + half + 1, cx - half : cx + half + 1]


def _darkness(crop: np.ndarray) -> np.ndarray:
    """How much darker than the local background (median of the crop border) each pixel is."""
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    return np.clip(np.median(border) - crop.astype(np.float64), 0, None)


def _moments(weight: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) relative to the crop centre, and aspect ratio (minor/major) of a weight."""
    h = weight.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    m = weight.sum()
    cx, cy = (weight * xx).sum() / m, (weight * yy).sum() / m
    cov = np.cov(np.stack([xx.ravel(), yy.ravel()]), aweights=weight.ravel())
    ev = np.linalg.eigvalsh(cov)
    return float(cx), float(cy), float(np.sqrt(ev[0] / ev[1]))


# -- determinism ------------------------------------------------------------------------------
def test_same_seed_same_acquisition_and_frames():
    a = render_acquisition(SMALL, rng=7)
    b = render_acquisition(SMALL, rng=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a.truth, b.truth)
    pd.testing.assert_frame_equal(a.tracks, b.tracks)
    frames = list(a.frames())
    assert len(frames) == SMALL.n_frames
    for i in (0, 13, SMALL.n_frames - 1):
        np.testing.assert_array_equal(frames[i], b.frame(i))  # random access == streaming
    c = render_acquisition(SMALL, rng=8)
    assert not np.array_equal(c.frame(0), frames[0])


def test_frames_are_uint8_with_realistic_background_and_noise():
    cfg = SynthConfig(width=256, height=192, n_frames=3, cells_in_view=0, debris_per_mpx=0)
    acq = render_acquisition(cfg, rng=1)
    assert acq.truth.empty
    f0, f1 = acq.frame(0).astype(float), acq.frame(1).astype(float)
    assert acq.frame(0).dtype == np.uint8 and f0.shape == (192, 256)
    assert 95 <= f0.mean() <= 145
    # Independent noise per frame: the difference of two frames has std sqrt(2) * noise.
    assert np.std(f1 - f0) == pytest.approx(np.sqrt(2) * cfg.noise_std, rel=0.05)
    sixteen = render_acquisition(SynthConfig(width=64, height=48, n_frames=1, bit_depth=16), 0)
    assert sixteen.frame(0).dtype == np.uint16 and sixteen.frame(0).mean() > 95 * 256


# -- truth against the rendered frames --------------------------------------------------------
def test_truth_columns_and_positions_inside_the_frame():
    acq = render_acquisition(SynthConfig(width=400, height=300, n_frames=120), rng=3)
    t = acq.truth
    assert list(t.columns) == list(schema.TRUTH)
    assert t.dtypes.astype(str).to_dict() == schema.TRUTH
    assert t["x"].between(-0.5, 399.5).all() and t["y"].between(-0.5, 299.5).all()
    assert t["frame"].between(0, 119).all()
    assert set(t["label"]) <= {schema.TANK_TREADING, schema.FLIPPING, schema.UNRELIABLE}
    # Cells move left to right at a steady speed: x increases along every track.
    steps = t.sort_values(["track_id", "frame"]).groupby("track_id")["x"].diff().dropna()
    assert (steps > 0).all()
    tracks = acq.tracks.set_index("track_id")
    counts = t.groupby("track_id").size()
    assert (tracks.loc[counts.index, "n_frames"] == counts).all()


def test_dark_rim_centred_on_truth_with_subpixel_accuracy():
    cfg = SynthConfig(
        width=400,
        height=240,
        n_frames=30,
        cells_in_view=8,
        noise_std=0.0,
        unreliable_fraction=0.0,
        tt_fraction=1.0,
        debris_per_mpx=0.0,
    )
    acq = render_acquisition(cfg, rng=11)
    errors, centres = [], {}
    for frame_no in (5, 20):
        contrast = acq.background_frame(frame_no) - acq.frame_float(frame_no)
        for row in acq.truth[acq.truth["frame"] == frame_no].itertuples():
            crop = _crop(contrast, row.x, row.y)
            if crop is None:
                continue
            cx, cy, _ = _moments(np.clip(crop, 0, None))  # the dark rim
            # The crop is cut at the rounded position: add the sub-pixel part back.
            errors.append(np.hypot(cx - (row.x - round(row.x)), cy - (row.y - round(row.y))))
            centres.setdefault(row.track_id, []).append(
                (cx + round(row.x), cy + round(row.y), row.x, row.y)
            )
    assert len(errors) >= 8
    # The rim is lit a little from one side (up to 15 %), which moves its centroid by up to
    # ~0.5 px from the geometric centre (the truth).
    assert np.median(errors) < 0.3 and max(errors) < 0.6
    # That bias is fixed per cell, so displacements are exact to well below a pixel: the
    # rendering is sub-pixel (whole-pixel rendering would be off by up to 0.5 px).
    moved = [v for v in centres.values() if len(v) == 2]
    assert len(moved) >= 4
    for (ax, ay, tax, tay), (bx, by, tbx, tby) in moved:
        assert abs((bx - ax) - (tbx - tax)) < 0.05 and abs((by - ay) - (tby - tay)) < 0.05


def test_every_reliable_cell_is_a_dark_blob_at_its_truth_position_in_noisy_frames():
    cfg = SynthConfig(width=400, height=240, n_frames=30, cells_in_view=8, unreliable_fraction=0.0)
    acq = render_acquisition(cfg, rng=12)
    found = 0
    for frame_no in (3, 15, 27):
        smooth = cv2.GaussianBlur(acq.frame(frame_no).astype(np.float64), (0, 0), 1.0)
        for row in acq.truth[acq.truth["frame"] == frame_no].itertuples():
            crop = _crop(smooth, row.x, row.y)
            if crop is None:
                continue
            dark = _darkness(crop)
            r, c = np.unravel_index(np.argmax(dark), dark.shape)
            # The darkest point of the smoothed crop is on the rim, a cell radius from the truth.
            assert np.hypot(r - HALF, c - HALF) <= 8
            assert dark.max() > 6  # well above the smoothed noise (~1.5 grey levels)
            found += 1
    assert found >= 8
    # Away from every truth position, the frame is background plus noise only: no cell is drawn
    # that the truth does not list.
    frame_no = 15
    residual = cv2.GaussianBlur(
        acq.frame(frame_no) - acq.background_frame(frame_no).astype(np.float64), (0, 0), 1.0
    )
    yy, xx = np.mgrid[0 : cfg.height, 0 : cfg.width]
    far = np.ones(residual.shape, bool)
    for row in acq.truth[acq.truth["frame"] == frame_no].itertuples():
        far &= np.hypot(xx - row.x, yy - row.y) > 14
    assert far.mean() > 0.8
    # The camera noise is blurred by sigma noise_corr, then by 1 px here: its std shrinks by
    # noise_corr / sqrt(noise_corr^2 + 1) (~1.35 grey levels); a cell's rim is > 6 levels deep.
    s = cfg.noise_corr
    smoothed_std = cfg.noise_std * s / np.hypot(s, 1.0)
    assert residual[far].std() == pytest.approx(smoothed_std, rel=0.15)
    assert np.abs(residual[far]).max() < 5.5 * smoothed_std


def _aspect_series(acq, track_id: int) -> np.ndarray:
    rows = acq.truth[acq.truth["track_id"] == track_id]
    out = []
    for row in rows.itertuples():
        i = int(row.frame)
        crop = _crop(acq.background_frame(i) - acq.frame_float(i), row.x, row.y, half=12)
        if crop is not None:
            out.append(_moments(np.clip(crop, 0, None))[2])
    return np.asarray(out)


def test_tank_treading_shape_is_steady_and_flipping_shape_oscillates():
    cfg = SynthConfig(
        width=360,
        height=120,
        n_frames=70,
        cells_in_view=3,
        noise_std=0.0,
        unreliable_fraction=0.0,
        tt_fraction=0.5,
        debris_per_mpx=0.0,
        speed=(2.0, 3.0),
        flip_period=(15.0, 30.0),
    )
    acq = render_acquisition(cfg, rng=5)
    tracks = acq.tracks[acq.tracks["n_frames"] >= 40]
    seen = set()
    for tr in tracks.itertuples():
        aspect = _aspect_series(acq, tr.track_id)
        if len(aspect) < 30:
            continue
        if tr.label == schema.TANK_TREADING:
            assert np.ptp(aspect) < 0.06, aspect  # fixed projected ellipse
            seen.add("tt")
        else:
            # Disc (aspect ~1) -> rod -> disc: at least one full flip seen. Flipping cells are
            # small (~7 px, as in the real crops), so the ~1.4 px rim rounds the rod's image
            # moments: its measured aspect stays above the drawn one (< 0.4).
            assert aspect.max() > 0.85 and aspect.min() < 0.65, aspect
            assert np.mean(aspect > 0.8) > 0.5  # slow near face-on, fast through edge-on
            seen.add("flip")
    assert seen == {"tt", "flip"}


def test_label_fractions_and_density_follow_the_config():
    cfg = SynthConfig(n_frames=6000, tt_fraction=0.7, unreliable_fraction=0.4)
    acq = render_acquisition(cfg, rng=2)  # planning only: no frame is rendered
    tr = acq.tracks
    assert len(tr) > 200
    assert (tr["label"] == schema.UNRELIABLE).mean() == pytest.approx(0.4, abs=0.08)
    assert true_fraction(tr) == pytest.approx(0.7, abs=0.08)
    assert set(tr.loc[tr["label"] == schema.UNRELIABLE, "kind"]) == {
        "defocus",
        "overlap",
        "focus_change",
        "partial",
    }
    per_frame = acq.truth.groupby("frame").size().reindex(range(6000), fill_value=0)
    assert per_frame.mean() == pytest.approx(10, rel=0.25)
    flips = tr[tr["label"] == schema.FLIPPING]
    assert flips["period"].between(*cfg.flip_period).all()
    assert tr["speed"].between(*cfg.speed).all()


def test_invalid_config_raises_one_line():
    with pytest.raises(RbcflowError, match="tt_fraction"):
        SynthConfig(tt_fraction=1.5)


# -- writers ------------------------------------------------------------------------------------
def test_avi_written_readable_by_cv2_lossless(tmp_path: Path):
    out = tmp_path / "a.avi"
    truth = write_acquisition(out, SMALL, rng=4)
    cap = cv2.VideoCapture(str(out))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == SMALL.n_frames
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(60.0)
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
    finally:
        cap.release()
    assert len(frames) == SMALL.n_frames
    assert frames[0].shape == (SMALL.height, SMALL.width, 3)  # 24-bit BGR
    acq = render_acquisition(SMALL, rng=4)
    np.testing.assert_array_equal(frames[7][:, :, 1], acq.frame(7))  # ffv1 is lossless
    truth_csv, tracks_csv = truth_paths(out)
    assert truth_csv.name == "a.truth.csv" and tracks_csv.name == "a.tracks.csv"
    pd.testing.assert_frame_equal(
        schema.validate(pd.read_csv(truth_csv), schema.TRUTH), truth, atol=1e-3
    )
    assert not list(tmp_path.glob(".*partial*"))  # temporary names are gone


def test_mjpg_avi_is_compact_and_close(tmp_path: Path):
    cfg = SynthConfig(width=320, height=240, n_frames=10)
    write_acquisition(tmp_path / "m.avi", cfg, rng=0, codec="mjpg")
    write_acquisition(tmp_path / "f.avi", cfg, rng=0, codec="ffv1")
    assert (tmp_path / "m.avi").stat().st_size < 0.3 * (tmp_path / "f.avi").stat().st_size
    cap = cv2.VideoCapture(str(tmp_path / "m.avi"))
    ok, f = cap.read()
    cap.release()
    assert ok and np.abs(f[:, :, 1].astype(float) - render_acquisition(cfg, 0).frame(0)).mean() < 4


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_tiff_stack_page_per_frame(tmp_path: Path, bit_depth: int):
    cfg = SynthConfig(width=96, height=64, n_frames=6, cells_in_view=1, bit_depth=bit_depth)
    write_acquisition(tmp_path / "s.tif", cfg, rng=0)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert len(tif.pages) == 6
        page = tif.pages[3].asarray()
    assert page.shape == (64, 96) and page.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    np.testing.assert_array_equal(page, render_acquisition(cfg, 0).frame(3))


def test_png_folder_and_existing_outputs(tmp_path: Path):
    cfg = SynthConfig(width=96, height=64, n_frames=5, cells_in_view=1)
    write_acquisition(tmp_path / "frames/", cfg, rng=0)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir())[0] == "frame_000000.png"
    assert len(list((tmp_path / "frames").glob("*.png"))) == 5
    assert (tmp_path / "frames.truth.csv").is_file()
    with pytest.raises(OutputError, match="exists already"):
        write_acquisition(tmp_path / "frames", cfg, rng=0)
    write_acquisition(tmp_path / "frames", cfg, rng=1, overwrite=True)
    with pytest.raises(OutputError, match="8-bit"):
        write_frames([np.zeros((8, 8), np.uint16)], tmp_path / "x.avi")
    with pytest.raises(OutputError, match="unknown video format"):
        write_frames([np.zeros((8, 8), np.uint8)], tmp_path / "x.mp4")


# -- composites of real crops -------------------------------------------------------------------
def test_composite_of_real_crops_places_cells_at_truth(tmp_path: Path, shared_data: Path):
    from rbcflow.io.sequences import iter_dataset

    seqs = [s for _, s in zip(range(8), iter_dataset(shared_data / "stage2_train"), strict=False)]
    truth, tracks = composite_video(seqs, tmp_path / "c.avi", rng=0)
    assert len(tracks) == 8 and set(tracks["sequence_name"]) == {s.name for s in seqs}
    assert (truth.groupby("track_id").size() == 20).all()
    cap = cv2.VideoCapture(str(tmp_path / "c.avi"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert n == truth["frame"].max() + 1
    ok, frame = cap.read()
    cap.release()
    frame = cv2.GaussianBlur(frame[:, :, 1].astype(np.float64), (0, 0), 1.0)
    for row in truth[truth["frame"] == 0].itertuples():
        dark = _darkness(_crop(frame, row.x, row.y))
        r, c = np.unravel_index(np.argmax(dark), dark.shape)
        assert np.hypot(r - HALF, c - HALF) <= 9 and dark.max() > 6


# -- CLI --------------------------------------------------------------------------------------
def test_cli_writes_video_and_truth(tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "demo.avi"
    res = runner.invoke(
        main,
        [
            "synth",
            str(out),
            "--frames",
            "12",
            "--size",
            "128x96",
            "--cells",
            "2",
            "--seed",
            "3",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "demo.truth.csv").is_file()
    tracks = pd.read_csv(tmp_path / "demo.tracks.csv")
    assert {"track_id", "label", "kind", "speed", "period"} <= set(tracks.columns)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    cap.release()
    again = runner.invoke(main, ["synth", str(out), "--frames", "12", "-q"])
    assert again.exit_code == 1 and "exists already" in again.output
    assert "\n" not in again.output.strip()  # one line, no traceback
    secs = runner.invoke(
        main, ["synth", str(tmp_path / "s.tif"), "--seconds", "0.1", "--size", "64x48", "-q"]
    )
    assert secs.exit_code == 0, secs.output
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert len(tif.pages) == 6
    assert "Example" in runner.invoke(main, ["synth", "--help"]).output


# -- the shipped sample -------------------------------------------------------------------------
def test_shipped_sample_truth_matches_its_generator():
    """The generator still produces the shipped sample's truth (planning only, no rendering)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1] / "sample_data"
    spec = importlib.util.spec_from_file_location("make_sample", root / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    acq = render_acquisition(make_sample.CONFIG, rng=make_sample.SEED)
    shipped = schema.validate(pd.read_csv(root / "sample.truth.csv"), schema.TRUTH)
    pd.testing.assert_frame_equal(shipped, acq.truth, atol=1e-3)
    tracks = pd.read_csv(root / "sample.tracks.csv")
    assert true_fraction(tracks) == pytest.approx(13 / 18)  # as sample_data/README.md says
    assert (root / "sample.avi").stat().st_size < 15e6
    cap = cv2.VideoCapture(str(root / "sample.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 600
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    cap.release()


def test_synth_cli_noise_correlation(tmp_path):
    """--noise-corr 0 draws independent pixel noise; the default correlates neighbours as the
    real crops' noise is (frame differences remove cells, background and debris)."""
    from click.testing import CliRunner

    from rbcflow.cli.main import main

    def neighbour_corr(path):
        with tifffile.TiffFile(path) as tif:
            a, b = (tif.pages[i].asarray().astype(float) for i in (0, 1))
        d = a - b
        return float(np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1])

    runner = CliRunner()
    args = ["--frames", "2", "--size", "96x64", "--cells", "0", "--noise", "4", "-q"]
    for name, extra in (("white.tif", ["--noise-corr", "0"]), ("corr.tif", [])):
        res = runner.invoke(main, ["synth", str(tmp_path / name), *args, *extra])
        assert res.exit_code == 0, res.output
    assert abs(neighbour_corr(tmp_path / "white.tif")) < 0.1
    assert neighbour_corr(tmp_path / "corr.tif") > 0.6
