"""One acquisition's folder: compute with :func:`rbcflow.pipeline.analyze`, then write it.

Decisions
---------
- *Completeness marker.* ``run.json`` is written last; an acquisition folder without it is
  incomplete (an interrupted run) and is analysed again. Before re-analysing a folder its old
  ``run.json`` is removed first, so a folder never pairs an old marker with new tables.
- *Output names.* ``OUT/NAME`` is named after the input (see
  :func:`rbcflow.io.folders.claim_output`).
- *What the review needs* (``rbcflow review``): each track's crops as a strip in the authors'
  format (``strips/TRACK_ID.png``, at most ``ReviewConfig.strip_max_frames`` frames, evenly
  spaced when longer) and a thumbnail of the field (``thumbnail.png``, the background),
  written as tracks end: ~30 MB per 1,000 tracks (31.5 KB a track measured; docs/user-guide.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rbcflow import schema
from rbcflow.classify.stream import gallery_strip
from rbcflow.errors import OutputError
from rbcflow.io.folders import claim_output
from rbcflow.io.outputs import (
    remove_path,
    remove_stale_temporaries,
    write_csv_atomic,
    write_png_atomic,
)
from rbcflow.pipeline import (
    AcquisitionResult,
    AnalysisSettings,
    ClassifierLike,
    ProgressFactory,
    analyze,
)
from rbcflow.provenance import json_safe, write_run_json
from rbcflow.report.html import write_report_html
from rbcflow.run_settings import ReviewConfig

OUTPUT_FILES = ("positions.csv", "tracks.csv", "report.html", "run.json")
"""Files of a complete acquisition folder; ``run.json`` is written last."""

STRIPS_DIR = "strips"
THUMBNAIL = "thumbnail.png"
REVIEW_FILES = (STRIPS_DIR, THUMBNAIL)
"""What ``analyze`` keeps beside :data:`OUTPUT_FILES` for ``rbcflow review`` (not needed for
an acquisition to be complete)."""


class StripKeeper:
    """``on_track`` callback writing each track's strip to ``folder/strips/TRACK_ID.png``."""

    def __init__(self, folder: Path, cfg: ReviewConfig | None = None):
        self.folder = folder / STRIPS_DIR
        self.max_frames = (cfg or ReviewConfig()).strip_max_frames
        remove_path(self.folder)  # strips of an earlier run
        self.folder.mkdir(parents=True, exist_ok=True)
        old = folder / "review.csv"  # decisions on the earlier run's tracks: kept, set aside
        if old.exists():
            try:
                os.replace(old, folder / f"review.replaced-{time.strftime('%Y%m%d-%H%M%S')}.csv")
            except OSError as exc:
                raise OutputError(f"cannot move aside: {exc.strerror or exc}", old) from exc

    def __call__(self, row: dict, crops: np.ndarray) -> None:
        strip = gallery_strip(np.asarray(crops, dtype=np.uint8), self.max_frames)
        write_png_atomic(self.folder / f"{int(row['track_id'])}.png", strip, fsync=False)


def write_thumbnail(path: Path, background: np.ndarray, width: int) -> None:
    """The field's background as an 8-bit PNG ``width`` pixels wide (the review's map)."""
    import cv2

    bg = np.asarray(background, dtype=np.float32)
    mid = float(np.median(bg)) if bg.size else 1.0
    img = np.clip(bg * (160.0 / max(mid, 1e-6)), 0, 255).astype(np.uint8)  # background mid-grey
    h = max(1, round(img.shape[0] * width / max(img.shape[1], 1)))
    write_png_atomic(path, cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA))


def prepare_folder(folder: Path) -> None:
    """Clear what a killed earlier run left, and the old completeness marker, before work."""
    remove_stale_temporaries(folder)
    old = folder / "run.json"
    if old.exists():
        try:
            old.unlink()  # the folder is incomplete until the new run.json lands
        except OSError as exc:
            raise OutputError(f"cannot replace: {exc.strerror or exc}", old) from exc


def write_acquisition(
    folder: Path, result: AcquisitionResult, settings: AnalysisSettings
) -> AcquisitionResult:
    """Write ``result`` into ``folder``; returns it with ``row["output"]`` and ``record`` set to
    what was written (``run.json``, last)."""
    t0 = time.perf_counter()
    row = {c: result.row.get(c) for c in schema.REPORT_COLUMNS}
    row["output"] = folder.name
    write_csv_atomic(
        folder / "positions.csv", schema.validate(result.positions, schema.POSITIONS, "positions")
    )
    write_csv_atomic(folder / "tracks.csv", result.tracks)
    write_thumbnail(folder / THUMBNAIL, result.frontend.background, ReviewConfig().thumbnail_width)
    record = result.record
    record["result"] = json_safe(row)
    record["outputs"] = list(OUTPUT_FILES)
    write_report_html(
        folder / "report.html",
        row,
        result.tracks,
        result.frontend.frame_stats,
        result.gallery,
        record,
        thresholds=(settings.report.reliable_threshold, settings.report.flipping_threshold),
    )
    record["timings_s"]["report"] = time.perf_counter() - t0
    record["timings_s"]["total"] = sum(
        record["timings_s"][k] for k in ("fingerprint", "frontend", "classify_tail", "report")
    )
    write_run_json(folder / "run.json", record)
    result.row = row
    return result


def analyze_acquisition(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    classifier: ClassifierLike,
    settings: AnalysisSettings | None = None,
    *,
    folder: Path | None = None,
    fingerprint: dict | None = None,
    progress: ProgressFactory | None = None,
    threaded: bool = True,
) -> AcquisitionResult:
    """Analyse one acquisition and write its folder ``out_dir/NAME`` (or ``folder``).

    Returns the :class:`~rbcflow.pipeline.AcquisitionResult`, its ``row`` being the report row
    as written (status ``ok``). Raises what :func:`rbcflow.pipeline.analyze` raises, and
    :class:`~rbcflow.errors.OutputError` when results cannot be written.
    """
    settings = settings or AnalysisSettings()
    source = Path(path)
    folder = folder or claim_output(Path(out_dir), source)
    prepare_folder(folder)
    result = analyze(
        source,
        classifier,
        settings,
        fingerprint=fingerprint,
        progress=progress,
        threaded=threaded,
        on_track=StripKeeper(folder),
    )
    return write_acquisition(folder, result, settings)
