"""A results folder seen by the review: its acquisitions, their tracks and ``review.csv``.

Nothing lost, nothing corrupted
-------------------------------
Every decision is written at once: under the results folder's lock
(:func:`rbcflow.io.folders.output_lock`) ``review.csv`` is read again, the one track's row is
replaced (or removed, for an undo), and the file is rewritten through the atomic writer
(:func:`rbcflow.io.outputs.write_csv_atomic`); ``report.csv``'s row and the acquisition's
``report.html`` then get the reviewed figures, under the same lock. Two tabs, a refresh or a
killed server therefore see either the file before a decision or the file after it, and no
decision of another tab is dropped (the file is re-read under the lock, never written from a
copy held in memory).

Names
-----
An acquisition is addressed by its ``output`` folder name as ``report.csv`` lists it, and only
names listed there are resolved (:meth:`Results.acquisition`); a track by its integer id.
No path from a request is ever joined to the folder.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbcflow import schema
from rbcflow.errors import ReviewError
from rbcflow.io.outputs import CSV_ENCODING, atomic_output, neutralise_formula, restore_formula

REVIEW_CSV = "review.csv"
REVIEW_COLUMNS = ("track_id", "called", "reviewed", "reviewer", "reviewed_at")
LABELS = tuple(schema.LABEL_NAMES.values())  # tank-treading, flipping, unreliable
NEEDED_REPORT = ("acquisition", "status", "output", "tank_treading_fraction", "ci_low", "ci_high")
NEEDED_TRACKS = ("track_id", "label", "p_reliable", "p_tank_treading", "n_frames")


@dataclass
class Acquisition:
    """One acquisition of a results folder: its report row, folder and tracks table."""

    name: str
    folder: Path
    row: dict
    tracks: Any  # DataFrame, tracks.csv

    @property
    def fps(self) -> float:
        fps = self.row.get("fps")
        return float(fps) if fps is not None and math.isfinite(float(fps)) else 60.0

    @property
    def review_path(self) -> Path:
        return self.folder / REVIEW_CSV

    @functools.cached_property
    def calls(self) -> dict[int, str]:
        """``{track_id: label}`` of the analysis (computed once: every decision uses it)."""
        ids = self.tracks["track_id"].to_numpy(dtype=int).tolist()
        return dict(zip(ids, self.tracks["label"].astype(str).tolist(), strict=True))

    @functools.cached_property
    def calibration(self):
        """The model of the tracks for the reviewed estimate and the order
        (:func:`rbcflow.review.calibrated.calibration_of`, computed once)."""
        from rbcflow.review.calibrated import calibration_of

        t = self.tracks
        return calibration_of(
            t["label"].astype(str).to_numpy(dtype=object),
            t["rule"].astype(str).to_numpy(dtype=object),
            t["p_reliable"].to_numpy(dtype=float),
            t["p_tank_treading"].to_numpy(dtype=float),
        )

    def reviewed_codes(self, review: dict[int, dict]):
        """(N,) each track's reviewed class code (0/1/2), -1 where not reviewed, in the
        order of ``tracks``."""
        import numpy as np

        code = schema.LABEL_CODES
        return np.array([code[review[t]["reviewed"]] if t in review else -1 for t in self.calls])

    def strip_path(self, track_id: int) -> Path:
        return self.folder / "strips" / f"{int(track_id)}.png"


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class Results:
    """A results folder of ``rbcflow analyze`` (``report.csv`` + one folder per acquisition).

    Raises
    ------
    ReviewError
        ``root`` is not a folder, has no readable ``report.csv``, or its ``report.csv`` lacks
        the columns this rbcflow needs (an older rbcflow wrote it: analyse again).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.report_path = self.root / "report.csv"
        if not self.root.is_dir():
            raise ReviewError("not a folder (expected the results of rbcflow analyze)", root)
        if not self.report_path.is_file():
            raise ReviewError("not a results folder: no report.csv (run rbcflow analyze)", root)
        self.report_rows()  # check it once, now

    def report_rows(self) -> list[dict]:
        """``report.csv``'s rows, as written (every column kept)."""
        try:
            with open(self.report_path, encoding=CSV_ENCODING, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [{k: restore_formula(v) for k, v in r.items()} for r in reader]
                header = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ReviewError(f"cannot read: {exc}", self.report_path) from exc
        missing = [c for c in NEEDED_REPORT if c not in header]
        if missing:
            raise ReviewError(
                f"written by an older rbcflow (no column {', '.join(missing)}): "
                "analyse again with this version",
                self.report_path,
            )
        return rows

    def names(self) -> list[str]:
        """The output folder names of the acquisitions that can be reviewed, report order."""
        out = []
        for r in self.report_rows():
            name = r.get("output") or ""
            if r.get("status") in ("ok", "skipped") and _safe_name(name):
                if (self.root / name / "tracks.csv").is_file():
                    out.append(name)
        return out

    def acquisition(self, name: str) -> Acquisition:
        """The acquisition whose output folder is ``name``, as ``report.csv`` lists it.

        Raises
        ------
        ReviewError
            ``name`` is not one of :meth:`names` (any other string, ``../`` included), or
            its ``tracks.csv`` lacks columns.
        """
        import pandas as pd

        rows = {r.get("output"): r for r in self.report_rows()}
        if not _safe_name(name) or name not in rows or name not in self.names():
            raise ReviewError(f"no acquisition {name!r} in this results folder", self.root)
        folder = (self.root / name).resolve()
        if folder.parent != self.root:
            raise ReviewError(f"no acquisition {name!r} in this results folder", self.root)
        path = folder / "tracks.csv"
        try:
            tracks = pd.read_csv(path, encoding=CSV_ENCODING, dtype={"rule": str})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ReviewError(f"cannot read: {exc}", path) from exc
        missing = [c for c in NEEDED_TRACKS if c not in tracks.columns]
        if missing:
            raise ReviewError(f"written by an older rbcflow (no column {missing})", path)
        tracks["rule"] = tracks.get("rule", pd.Series("", index=tracks.index)).fillna("")
        row = dict(rows[name])
        return Acquisition(str(row.get("acquisition") or name), folder, row, tracks)


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def read_review(acq: Acquisition) -> dict[int, dict]:
    """``review.csv`` as ``{track_id: row}`` (empty when absent).

    Raises
    ------
    ReviewError
        A row names a track the acquisition does not have, or a label that is not
        tank-treading, flipping or unreliable (e.g. a file edited by hand): the message names
        the line; nothing is overwritten.
    """
    path = acq.review_path
    if not path.is_file():
        return {}
    known = acq.calls
    out: dict[int, dict] = {}
    try:
        with open(path, encoding=CSV_ENCODING, newline="") as fh:
            reader = csv.DictReader(fh)
            if list(reader.fieldnames or []) != list(REVIEW_COLUMNS):
                raise ReviewError(f"header is not {','.join(REVIEW_COLUMNS)}", path)
            for line, r in enumerate(reader, start=2):
                r = {k: restore_formula(v) for k, v in r.items()}
                try:
                    tid = int(r["track_id"])
                except (TypeError, ValueError):
                    raise ReviewError(f"line {line}: track_id {r['track_id']!r}", path) from None
                if tid not in known:
                    raise ReviewError(f"line {line}: no track {tid} in tracks.csv", path)
                if r["reviewed"] not in LABELS:
                    raise ReviewError(f"line {line}: label {r['reviewed']!r} unknown", path)
                out[tid] = r
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReviewError(f"cannot read: {exc}", path) from exc
    return out


def write_review(acq: Acquisition, rows: dict[int, dict]) -> None:
    """Write ``review.csv`` atomically, rows in track order (the csv module: a decision is
    saved in a few milliseconds; text cells made inert for spreadsheets, as every CSV)."""
    with atomic_output(acq.review_path, "w", encoding=CSV_ENCODING, newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(REVIEW_COLUMNS)
        for t in sorted(rows):
            r = rows[t]
            w.writerow(
                [int(t), *(neutralise_formula(str(r.get(c, ""))) for c in REVIEW_COLUMNS[1:])]
            )
