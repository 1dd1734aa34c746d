"""Decisions: one track's reviewed label saved, and the reviewed figures written everywhere.

The reviewed fraction is the estimate of :mod:`rbcflow.review.calibrated`: every reviewed
track takes its reviewed label, and every unreviewed one counts as its chances of each class
under the classifiers' probabilities re-calibrated on the reviews (two logistic regressions,
refitted after every decision); the interval is that model's, in closed form (the module's
notes). The plain count (reviewed labels, other tracks' calls) is kept beside it as
``counted_fraction`` for the page.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from rbcflow import schema
from rbcflow.classify.labels import fraction
from rbcflow.config import ReportConfig
from rbcflow.errors import ReviewError
from rbcflow.io.folders import output_lock
from rbcflow.io.outputs import CSV_ENCODING, atomic_output, write_text_atomic
from rbcflow.provenance import now_iso, read_run_json, write_run_json
from rbcflow.review.calibrated import Fit, estimate, fit
from rbcflow.review.order import review_order
from rbcflow.review.store import LABELS, Acquisition, Results, read_review, write_review

HTML_START, HTML_END = "<!-- rbcflow-review -->", "<!-- /rbcflow-review -->"


def reviewed_labels(acq: Acquisition, review: dict[int, dict]) -> np.ndarray:
    """Each track's label: the reviewed one where reviewed, else the call."""
    return np.array(
        [review[t]["reviewed"] if t in review else lab for t, lab in acq.calls.items()],
        dtype=object,
    )


def fit_reviews(acq: Acquisition, review: dict[int, dict]) -> Fit:
    """The reviewed estimate's model fitted to ``review`` (:func:`rbcflow.review.calibrated.
    fit`): pass it to :func:`reviewed_figures` and :func:`review_queue` of the same reviews,
    so that a decision fits it once."""
    return fit(acq.calibration, acq.reviewed_codes(review))


def reviewed_figures(
    acq: Acquisition,
    review: dict[int, dict],
    cfg: ReportConfig | None = None,
    fitted: Fit | None = None,
) -> dict[str, Any]:
    """``reviewed_tracks``, the reviewed fraction and interval, the counts and progress
    (``fitted``: :func:`fit_reviews` of the same reviews, else fitted here).

    The fraction columns are NaN until a track is reviewed (the report's own figure stands);
    ``running_*`` is the estimate at every step (with no review: the calls' prior).
    """
    cfg = cfg or ReportConfig()
    labels = reviewed_labels(acq, review)
    tt = int((labels == schema.LABEL_NAMES[schema.TANK_TREADING]).sum())
    fl = int((labels == schema.LABEL_NAMES[schema.FLIPPING]).sum())
    counted = fraction(tt, fl, cfg.confidence)
    codes = acq.reviewed_codes(review)
    est = estimate(acq.calibration, codes, confidence=cfg.confidence, fitted=fitted)
    n = len(review)
    nan = float("nan")
    return {
        "reviewed_tracks": n,
        "tank_treading_fraction_reviewed": est["fraction"] if n else nan,
        "ci_low_reviewed": est["ci_low"] if n else nan,
        "ci_high_reviewed": est["ci_high"] if n else nan,
        "running_fraction": est["fraction"],
        "running_ci_low": est["ci_low"],
        "running_ci_high": est["ci_high"],
        "counted_fraction": counted["tank_treading_fraction"],
        "tank_treading": tt,
        "flipping": fl,
        "tracks": len(labels),
        "changed": sum(1 for r in review.values() if r["reviewed"] != r["called"]),
    }


def review_queue(acq: Acquisition, review: dict[int, dict], fitted: Fit | None = None) -> list[int]:
    """The acquisition's track ids in review order for these reviews
    (:func:`rbcflow.review.order.review_order`; ``fitted`` as for :func:`reviewed_figures`)."""
    codes = acq.reviewed_codes(review)
    return review_order(acq.tracks["track_id"].to_numpy(), acq.calibration, codes, fitted)


def record_decision(
    results: Results,
    acq: Acquisition,
    track_id: int,
    reviewed: str | None,
    reviewer: str,
    *,
    derived: bool = True,
    queue: list[int] | None = None,
) -> dict[str, Any]:
    """Save one decision (``reviewed`` None: forget the track's review, an undo) and write the
    reviewed figures into ``report.csv``, ``run.json`` and ``report.html``; returns the figures.

    Everything happens under the results folder's lock, ``review.csv`` re-read first. With
    ``derived`` False only ``review.csv`` is written (the server then calls
    :func:`sync_reviewed` from its writer thread: the decision's reply does not wait for the
    three other files' fsyncs). ``queue``, a list, is filled with the new review order
    (:func:`review_queue`): the server returns it with the decision.

    Raises
    ------
    ReviewError
        An unknown track or label, or a ``review.csv`` with bad rows (left as it is).
    """
    if reviewed is not None and reviewed not in LABELS:
        raise ReviewError(f"unknown label {reviewed!r}")
    calls = acq.calls
    if int(track_id) not in calls:
        raise ReviewError(f"no track {track_id} in {acq.name}")
    with output_lock(results.root):
        review = read_review(acq)
        if reviewed is None:
            review.pop(int(track_id), None)
        else:
            review[int(track_id)] = {
                "track_id": int(track_id),
                "called": calls[int(track_id)],
                "reviewed": reviewed,
                "reviewer": reviewer,
                "reviewed_at": now_iso(),
            }
        write_review(acq, review)
        fitted = fit_reviews(acq, review)  # once, for the figures and the order
        figures = reviewed_figures(acq, review, fitted=fitted)
        if derived:
            write_reviewed(results, acq, figures)
    if queue is not None:
        queue[:] = review_queue(acq, review, fitted)
    return figures


def sync_reviewed(results: Results, acq: Acquisition) -> dict[str, Any]:
    """Recompute the reviewed figures from ``review.csv`` and write them (under the lock):
    after a batch of decisions, and when the server starts (a server killed between a
    decision and this write left ``report.csv`` one step behind)."""
    with output_lock(results.root):
        figures = reviewed_figures(acq, read_review(acq))
        write_reviewed(results, acq, figures)
    return figures


def write_reviewed(results: Results, acq: Acquisition, figures: dict[str, Any]) -> None:
    """The reviewed columns into ``report.csv`` (this acquisition's row), ``run.json``'s result
    (so a later ``analyze`` that skips the acquisition keeps them) and ``report.html``.
    Call under the results folder's lock."""
    cols = {c: figures[c] for c in schema.REVIEWED}
    patch_report(results.report_path, acq.folder.name, cols)
    run = read_run_json(acq.folder / "run.json")
    if run is not None and isinstance(run.get("result"), dict):
        run["result"].update(cols)
        write_run_json(acq.folder / "run.json", run)
    html = acq.folder / "report.html"
    if html.is_file():
        write_text_atomic(html, html_with_review(html.read_text(encoding="utf-8"), cols))


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return str(int(v)) if isinstance(v, int | np.integer) else repr(float(v))


def patch_report(path: Path, output: str, cols: dict[str, Any]) -> None:
    """Set ``cols`` in the row of ``report.csv`` whose ``output`` is ``output``; every other
    cell is written back as it was read (the csv module: milliseconds, where a pandas round
    trip of the report took ~100 ms). A report without the reviewed columns (written before
    they existed) goes once through :mod:`rbcflow.report.tables`, which adds them."""
    try:
        with open(path, encoding=CSV_ENCODING, newline="") as fh:
            table = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReviewError(f"cannot read: {exc}", path) from exc
    header = table[0] if table else []
    if not all(c in header for c in cols) or "output" not in header:
        from rbcflow.report.tables import read_report, write_report_csv

        report = read_report(path)
        if report is None:
            raise ReviewError("cannot read report.csv", path)
        write_report_csv(path, report)
        return patch_report(path, output, cols)
    at = header.index("output")
    idx = {c: header.index(c) for c in cols}
    for row in table[1:]:
        if len(row) == len(header) and row[at] == output:
            for c, i in idx.items():
                row[i] = _cell(cols[c])
    with atomic_output(path, "w", encoding=CSV_ENCODING, newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(table)


def _pct(x: Any) -> str:
    return "-" if x is None or not math.isfinite(float(x)) else f"{float(x):.1%}"


def html_with_review(page: str, cols: dict[str, Any]) -> str:
    """``page`` (a ``report.html``) with its reviewed section replaced or added under the
    title (between :data:`HTML_START` and :data:`HTML_END`)."""
    page = re.sub(re.escape(HTML_START) + ".*?" + re.escape(HTML_END) + "\n?", "", page, flags=re.S)
    n = int(cols["reviewed_tracks"] or 0)
    if n:
        body = (
            f'<p class="reviewed" id="reviewed">Reviewed: <b>{n}</b> tracks checked by eye '
            f"(rbcflow review); fraction with the reviewed labels "
            f"<b>{_pct(cols['tank_treading_fraction_reviewed'])}</b>, 95% interval "
            f"{_pct(cols['ci_low_reviewed'])} to {_pct(cols['ci_high_reviewed'])} "
            "(reviewed tracks take their reviewed label; the others count as their chances "
            "under the classifiers' probabilities corrected by the reviews).</p>"
        )
    else:
        body = '<p class="reviewed" id="reviewed">Reviewed: no track yet.</p>'
    block = f"{HTML_START}\n{body}\n{HTML_END}\n"
    anchor = page.find('<p class="sub">')
    end = page.find("\n", anchor) if anchor >= 0 else -1
    if end < 0:
        anchor = page.find("<body>")
        end = anchor + len("<body>") if anchor >= 0 else 0
        return page[:end] + "\n" + block + page[end:]
    return page[: end + 1] + block + page[end + 1 :]
