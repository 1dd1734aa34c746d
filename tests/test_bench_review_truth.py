"""The review benchmark's simulated reviewer: which true cell an analysed track is, and the
true fraction it is scored against (benchmarks/_review_errors.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def review_errors():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("_review_errors", BENCH / "_review_errors.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def _truth(tmp_path: Path) -> Path:
    """Three true cells: A tank-treading (frames 0-19, y 100), B flipping (0-19, y 200), C
    tank-treading but seen in 4 frames only (y 300)."""
    rows = []
    for f in range(20):
        rows.append((1, 0, f, 10.0 + 5 * f, 100.0))
        rows.append((2, 1, f, 10.0 + 5 * f, 200.0))
    for f in range(4):
        rows.append((3, 0, f, 10.0 + 5 * f, 300.0))
    video = tmp_path / "acq.avi"
    pd.DataFrame(rows, columns=["track_id", "label", "frame", "x", "y"]).to_csv(
        tmp_path / "acq.truth.csv", index=False
    )
    pd.DataFrame({"track_id": [1, 2, 3], "label": [0, 1, 0], "n_frames": [20, 20, 4]}).to_csv(
        tmp_path / "acq.tracks.csv", index=False
    )
    return video


def test_track_takes_a_cell_only_if_it_follows_it_half_its_frames(tmp_path, review_errors):
    video = _truth(tmp_path)
    folder = tmp_path / "res" / "acq"
    folder.mkdir(parents=True)
    pos = []
    for f in range(20):  # track 10 follows A throughout, 1 px off
        pos.append((f, 10, 11.0 + 5 * f, 100.0))
    for f in range(10):  # track 11: on B in 4 of its 10 frames, then 40 px away
        pos.append((f, 11, 10.0 + 5 * f, 200.0 if f < 4 else 240.0))
    for f in range(10, 20):  # track 12: on B in 5 of its 10 frames (exactly half)
        pos.append((f, 12, 10.0 + 5 * f, 200.0 if f < 15 else 160.0))
    for f in range(8):  # track 13 near nothing
        pos.append((f, 13, 10.0 + 5 * f, 400.0))
    pd.DataFrame(pos, columns=["frame", "track_id", "x", "y"]).to_csv(
        folder / "positions.csv", index=False
    )
    pd.DataFrame({"track_id": [10, 11, 12, 13]}).to_csv(folder / "tracks.csv", index=False)

    labels, f_true = review_errors.true_labels(folder, video)

    assert labels == {10: "tank-treading", 11: "unreliable", 12: "flipping", 13: "unreliable"}
    # C is seen in 4 frames, under the tracks' minimum length: the truth is A against B.
    assert f_true == pytest.approx(0.5)
