"""The review application's state: the results folder, cached acquisitions, the page data,
and the writer thread that brings ``report.csv``, ``run.json`` and ``report.html`` up to date
after decisions (:func:`rbcflow.review.decide.sync_reviewed`)."""

from __future__ import annotations

import json
import math
import queue
import threading
from typing import Any

from rbcflow.errors import RbcflowError, ReviewError
from rbcflow.review.decide import fit_reviews, review_queue, reviewed_figures, sync_reviewed
from rbcflow.review.store import LABELS, Acquisition, Results, read_review
from rbcflow.schema import FEATURE_COLUMNS


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def page_json(obj: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(obj, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Review:
    """The application's state: the results folder, its acquisitions (cached), the token."""

    def __init__(self, results: Results, token: str, reviewer: str):
        self.results = results
        self.token = token
        self.reviewer = reviewer
        self._acqs: dict[str, tuple[float, Acquisition]] = {}
        self._paths: dict[str, dict[int, list[list[float]]]] = {}
        self._items: dict[str, tuple[Acquisition, dict[int, dict]]] = {}
        self._dirty: queue.Queue[str | None] = queue.Queue()
        self.writer_error: str = ""
        self._writer = threading.Thread(target=self._write_derived, daemon=True)
        self._writer.start()

    def changed(self, name: str) -> None:
        """``name``'s review.csv changed: rewrite its reviewed figures soon (coalesced)."""
        self._dirty.put(name)

    def _write_derived(self) -> None:
        while True:
            names = {self._dirty.get()}
            while not self._dirty.empty():  # a burst of decisions: one write each
                names.add(self._dirty.get_nowait())
            if None in names:
                names.discard(None)
                self._sync(names)
                return
            self._sync(names)

    def _sync(self, names: set) -> None:
        for name in names:
            try:
                sync_reviewed(self.results, self.acquisition(name))
                self.writer_error = ""
            except RbcflowError as exc:  # shown on the page's next reply
                self.writer_error = str(exc)

    def close(self) -> None:
        """Write what is pending, stop the writer."""
        self._dirty.put(None)
        self._writer.join(30)

    def sync_all(self) -> None:
        """Bring every reviewed acquisition's report figures up to date with review.csv."""
        for name in self.results.names():
            try:
                acq = self.acquisition(name)
                if acq.review_path.is_file():
                    sync_reviewed(self.results, acq)
            except RbcflowError:
                pass  # shown when the acquisition is opened

    def acquisition(self, name: str) -> Acquisition:
        if name in self._acqs:
            mtime, acq = self._acqs[name]
            if (acq.folder / "tracks.csv").stat().st_mtime == mtime:
                return acq
        acq = self.results.acquisition(name)
        self._acqs[name] = ((acq.folder / "tracks.csv").stat().st_mtime, acq)
        self._paths.pop(name, None)
        return acq

    def path_of(self, name: str, track_id: int) -> list[list[float]]:
        """The track's positions (x, y), at most 200 points (for the thumbnail)."""
        if name not in self._paths:
            import pandas as pd

            acq = self.acquisition(name)
            try:
                pos = pd.read_csv(acq.folder / "positions.csv", usecols=["track_id", "x", "y"])
            except (OSError, ValueError):
                pos = pd.DataFrame({"track_id": [], "x": [], "y": []})
            self._paths[name] = {
                int(t): g[["x", "y"]].round(1).to_numpy().tolist()
                for t, g in pos.groupby("track_id")
            }
        pts = self._paths[name].get(int(track_id), [])
        step = max(1, len(pts) // 200)
        return pts[::step]

    def index_rows(self) -> list[dict]:
        names = set(self.results.names())
        rows = []
        for r in self.results.report_rows():
            name = r.get("output") or ""
            row = {
                "name": name,
                "acquisition": r.get("acquisition") or name,
                "status": r.get("status"),
                "verdict": r.get("verdict") or "",
                "fraction": _num(r.get("tank_treading_fraction")),
                "ci_low": _num(r.get("ci_low")),
                "ci_high": _num(r.get("ci_high")),
                "reviewable": name in names,
                "reviewed": 0,
                "to_review": 0,
                "fraction_reviewed": _num(r.get("tank_treading_fraction_reviewed")),
                "error": "",
            }
            if row["reviewable"]:
                try:
                    acq = self.acquisition(name)
                    row["reviewed"] = len(read_review(acq))
                    row["to_review"] = len(acq.tracks)
                except ReviewError as exc:
                    row["error"] = str(exc)
            rows.append(row)
        return rows

    def _track_items(self, name: str, acq: Acquisition) -> dict[int, dict]:
        """What the page shows of each track (computed once per acquisition, then cached)."""
        cached = self._items.get(name)
        if cached is not None and cached[0] is acq:
            return cached[1]
        import os

        t = acq.tracks
        feats = [c for c in FEATURE_COLUMNS if c in t.columns]
        try:
            strips = set(os.listdir(acq.folder / "strips"))
        except OSError:
            strips = set()
        items = {}
        for r in t.to_dict("records"):
            tid = int(r["track_id"])
            items[tid] = {
                "id": tid,
                "called": str(r["label"]),
                "rule": str(r.get("rule") or ""),
                "p_reliable": _num(r["p_reliable"]),
                "p_tank_treading": _num(r["p_tank_treading"]),
                "n_frames": int(r["n_frames"]),
                # the crops cut (the strip holds them, evenly thinned past the cap)
                "crop_frames": int(r.get("classified_frames", r["n_frames"]) or r["n_frames"]),
                "features": {c: _num(r[c]) for c in feats},
                "has_strip": f"{tid}.png" in strips,
            }
        self._items[name] = (acq, items)
        return items

    def page_data(self, name: str) -> dict:
        acq = self.acquisition(name)
        review = read_review(acq)
        fitted = fit_reviews(acq, review)
        order = review_queue(acq, review, fitted)
        static = self._track_items(name, acq)
        tracks = [static[tid] for tid in order]
        frame = _frame_shape(acq)
        return {
            "name": name,
            "acquisition": acq.name,
            "fps": acq.fps,
            "frame_shape": frame,
            "has_thumbnail": (acq.folder / "thumbnail.png").is_file(),
            "labels": list(LABELS),
            "tracks": tracks,
            "review": {str(k): v["reviewed"] for k, v in review.items()},
            "figures": _clean(reviewed_figures(acq, review, fitted=fitted)),
            "report": {
                "fraction": _num(acq.row.get("tank_treading_fraction")),
                "ci_low": _num(acq.row.get("ci_low")),
                "ci_high": _num(acq.row.get("ci_high")),
                "verdict": acq.row.get("verdict") or "",
            },
        }


def _frame_shape(acq: Acquisition) -> list[int] | None:
    from rbcflow.provenance import read_run_json

    run = read_run_json(acq.folder / "run.json") or {}
    shape = (run.get("input") or {}).get("frame_shape")
    return [int(s) for s in shape[:2]] if isinstance(shape, list) and len(shape) >= 2 else None


def _clean(d: dict) -> dict:
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in d.items()}
