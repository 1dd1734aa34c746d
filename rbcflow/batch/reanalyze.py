"""``rbcflow reanalyze``: the registry's acquisitions again, with today's models and parameters.

The registry (:mod:`rbcflow.samples.registry`) holds one row per sample (patient, draw) with
the path of the overview page it was analysed into; that results folder's ``report.csv`` names
the sample's acquisitions and their source videos. :func:`reanalyze` selects samples
(:func:`select`: ``since`` a draw date, one ``patient``), runs their sources through
:func:`~rbcflow.batch.analyze.analyze_batch` into a new results folder, and records the new
figures *beside* the old ones:

- the old results folders and the registry's ``samples`` rows are never written;
- the new folder is ``OUT/DATE_S1-S2_PARAMS`` (the day it started, the first 8 characters of
  the stage-1 and stage-2 model checksums, the parameters id): its name is the reanalysis id.
  Models and parameters decide the figures, so a second run with the same ones (an
  interrupted reanalysis, or one started again later) finds that folder and resumes in it
  through ``analyze_batch``'s skip logic;
- the registry gains one row per sample and reanalysis in its ``reanalysed`` table, keyed by
  (reanalysis, patient, sample): running again updates it, never duplicates it;
- ``comparison.csv`` / ``comparison.html`` (:mod:`rbcflow.batch.compare`) put each
  acquisition's old row beside its new one.

A sample whose results folder is gone, and an acquisition whose source video has moved or
vanished, become failed rows of the comparison with a one-line reason; the others run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow import __version__
from rbcflow.batch.analyze import REPORT_NAME, BatchEvent, analyze_batch
from rbcflow.batch.compare import comparison_table, write_comparison
from rbcflow.batch.relocate import relocate
from rbcflow.errors import RbcflowError
from rbcflow.io.folders import check_output_dir
from rbcflow.io.outputs import write_json_atomic
from rbcflow.pipeline import AnalysisSettings, ClassifierLike, ProgressFactory, short_checksum
from rbcflow.provenance import now_iso
from rbcflow.report.tables import read_report
from rbcflow.samples import SampleSet
from rbcflow.samples.outputs import OVERVIEW_NAME, pool_inputs
from rbcflow.samples.overview import sample_anchor
from rbcflow.samples.pool import sample_table
from rbcflow.samples.registry import add_samples, all_samples, reanalysed
from rbcflow.schema import SAMPLE_METADATA

RECORD_NAME = "reanalysis.json"
"""The reanalysis folder's own record: registry, selection, models, parameters, times."""

_DONE = ("ok", "skipped")


class SelectionError(RbcflowError):
    """What to reanalyse cannot be chosen: a bad ``--since`` date, no registry, nothing matches."""


@dataclass
class Selected:
    """One acquisition of the registry chosen for reanalysis.

    entry : the sample's registry row (``samples`` table).
    source : the acquisition's source as the old ``report.csv`` has it (None: not known).
    old : its row of the old ``report.csv`` (empty when the old results are gone).
    results : the old results folder (None when the registry names none).
    problem : why it cannot be reanalysed (one line), or None.
    moved_from : where the old analysis read the source, when it was found elsewhere since
        (:func:`rbcflow.batch.relocate.relocate`; ``source`` is then the new place).
    """

    entry: dict[str, Any]
    source: str | None
    old: dict[str, Any] = field(default_factory=dict)
    results: Path | None = None
    problem: str | None = None
    moved_from: str | None = None


@dataclass
class Reanalysis:
    """What :func:`reanalyze` did: its folder (whose name is its id), the comparison table
    (:data:`~rbcflow.schema.COMPARISON_COLUMNS`, this selection's rows) and how many samples it
    recorded in the registry."""

    folder: Path
    comparison: pd.DataFrame
    recorded: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.folder.name


def parse_date(text: str | dt.date, option: str = "--since") -> dt.date:
    """An ISO 8601 date (or date-time: its date) from ``text``.

    Examples
    --------
    >>> parse_date("2023-10-17"), parse_date("2023-10-17T09:30")
    (datetime.date(2023, 10, 17), datetime.date(2023, 10, 17))
    >>> parse_date("17/10/2023")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbcflow.batch.reanalyze.SelectionError: --since '17/10/2023' is not an ISO 8601 date ...
    """
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    s = str(text).strip()
    try:
        return dt.date.fromisoformat(s) if len(s) == 10 else dt.datetime.fromisoformat(s).date()
    except ValueError:
        raise SelectionError(f"{option} {s!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def _drawn(entry: dict[str, Any]) -> dt.date | None:
    try:
        return parse_date(entry.get("drawn_at") or "", "drawn_at")
    except SelectionError:
        return None


def _results_of(report: Any) -> Path | None:
    """The results folder of a registry row's ``report`` (``.../index.html#sample-ID``)."""
    if not isinstance(report, str) or not report:
        return None
    return Path(report.split("#", 1)[0]).parent


def _wanted(patient: str | None, since: dt.date | None) -> str:
    what = [f"of patient {patient!r}" if patient else "", f"drawn since {since}" if since else ""]
    return " ".join(w for w in what if w)


def select(
    registry: str | os.PathLike, *, since: str | dt.date | None = None, patient: str | None = None
) -> list[Selected]:
    """The acquisitions of the registry's samples (drawn on or after ``since``, of ``patient``),
    by patient, draw date and sample, each acquisition once.

    Raises
    ------
    SelectionError
        ``since`` is not a date, there is no registry at ``registry``, or nothing matches.
    """
    path = Path(registry)
    since_d = parse_date(since) if since is not None else None
    if not path.is_file():
        raise SelectionError("no registry here (analyze with --samples records one)", path)
    chosen: list[Selected] = []
    reports: dict[Path, pd.DataFrame | None] = {}
    seen: set[str] = set()
    for entry in all_samples(path, patient):
        if since_d is not None and ((d := _drawn(entry)) is None or d < since_d):
            continue
        folder = _results_of(entry.get("report"))
        if folder is None:
            chosen.append(Selected(entry, None, problem="the registry names no results for it"))
            continue
        if folder not in reports:
            reports[folder] = read_report(folder / REPORT_NAME)
        report = reports[folder]
        if report is None:
            gone = f"its results are gone: {folder / REPORT_NAME} cannot be read"
            chosen.append(Selected(entry, None, results=folder, problem=gone))
            continue
        same = (report["patient"] == entry["patient"]) & (report["sample"] == entry["sample"])
        mine = report[same]
        if mine.empty:
            gone = f"none of its acquisitions is in {folder / REPORT_NAME}"
            chosen.append(Selected(entry, None, results=folder, problem=gone))
        for row in mine.to_dict("records"):
            if row["source"] not in seen:
                seen.add(row["source"])
                chosen.append(Selected(entry, row["source"], row, folder))
    if not chosen:
        wanted = _wanted(patient, since_d)
        raise SelectionError(f"nothing to reanalyse: no sample {wanted or 'at all'}", path)
    return chosen


def reanalysis_key(classifier: ClassifierLike, settings: AnalysisSettings) -> str:
    """``S1-S2_PARAMS``: 8 characters of each model checksum and the parameters id."""
    s1 = short_checksum(getattr(classifier, "stage1_checksum", None), 8)
    s2 = short_checksum(getattr(classifier, "stage2_checksum", None), 8)
    return f"{s1}-{s2}_{settings.params_id()}"


def reanalysis_folder(
    out_dir: str | os.PathLike,
    classifier: ClassifierLike,
    settings: AnalysisSettings,
    today: dt.date | None = None,
) -> Path:
    """The folder of this reanalysis in ``out_dir``: an existing one with the same models and
    parameters (resumed), else ``DATE_S1-S2_PARAMS`` with today's date (not created)."""
    key = reanalysis_key(classifier, settings)
    existing = sorted(p for p in Path(out_dir).glob(f"*_{key}") if p.is_dir())
    if existing:
        return existing[0]
    return Path(out_dir) / f"{(today or dt.date.today()).isoformat()}_{key}"


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    """The sample columns of an old report row (what the new row will carry)."""
    return {
        c: row[c] for c in SAMPLE_METADATA if row.get(c) is not None and row.get(c) == row.get(c)
    }


def reanalyze(
    registry: str | os.PathLike,
    out_dir: str | os.PathLike,
    classifier: ClassifierLike,
    settings: AnalysisSettings | None = None,
    *,
    since: str | dt.date | None = None,
    patient: str | None = None,
    progress: ProgressFactory | None = None,
    on_start: Callable[[int, int, Path], None] | None = None,
    on_done: Callable[[BatchEvent], None] | None = None,
    threaded: bool = True,
    workers: int | str = 1,
    scheduler: str | None = None,
    today: dt.date | None = None,
    search: Sequence[str | os.PathLike] = (),
) -> Reanalysis:
    """Analyse the selected acquisitions of ``registry`` again into a new folder of ``out_dir``
    and record the results beside the old ones (see the module's description).

    Parameters
    ----------
    registry : the patient registry (SQLite).
    out_dir : where reanalysis folders go (created).
    classifier, settings : the models and parameters of the reanalysis.
    since, patient : the selection (:func:`select`).
    progress, on_start, on_done, threaded, workers, scheduler : passed to
        :func:`~rbcflow.batch.analyze.analyze_batch` as they are.
    today : the date in a new folder's name (default: today).
    search : folders where sources that moved since their analysis are looked for, by name
        and content (:func:`rbcflow.batch.relocate.relocate`).

    Raises
    ------
    SelectionError
        Before any work: see :func:`select`.
    OutputError
        The output folder is unusable.
    """
    settings = settings or AnalysisSettings()
    chosen = select(registry, since=since, patient=patient)
    relocate(chosen, search)
    folder = check_output_dir(
        reanalysis_folder(check_output_dir(out_dir), classifier, settings, today)
    )
    runnable = [c for c in chosen if c.problem is None]
    record = {
        "reanalysis": folder.name,
        "registry": str(Path(registry).absolute()),
        "selection": {"since": None if since is None else str(since), "patient": patient},
        "acquisitions": len(chosen),
        "moved": {c.moved_from: c.source for c in chosen if c.moved_from},
        "stage1_model": getattr(classifier, "stage1_checksum", None),
        "stage2_model": getattr(classifier, "stage2_checksum", None),
        "params_id": settings.params_id(),
        "rbcflow_version": __version__,
        "started": now_iso(),
        "finished": None,
    }
    write_json_atomic(folder / RECORD_NAME, record)
    if runnable:
        meta = {str(Path(c.source).absolute()): _metadata(c.old) for c in runnable}
        analyze_batch(
            [Path(c.source) for c in runnable],
            folder,
            classifier,
            settings,
            progress=progress,
            on_start=on_start,
            on_done=on_done,
            threaded=threaded,
            samples=SampleSet(meta, registry=None),  # recorded below, beside the old rows
            workers=workers,
            scheduler=scheduler,
        )
    report = read_report(folder / REPORT_NAME)
    recorded = _record(registry, folder, report, runnable, classifier, settings)
    comparison = comparison_table(chosen, report)
    files = write_comparison(folder, comparison, _pairs(registry, folder.name))
    write_json_atomic(folder / RECORD_NAME, {**record, "finished": now_iso()})
    return Reanalysis(folder, comparison, recorded, files)


def _record(
    registry: str | os.PathLike,
    folder: Path,
    report: pd.DataFrame | None,
    runnable: list[Selected],
    classifier: ClassifierLike,
    settings: AnalysisSettings,
) -> int:
    """Record the reanalysed samples (those with an analysed acquisition) in the registry's
    ``reanalysed`` table; returns how many."""
    if report is None or not runnable:
        return 0
    entries = {(c.entry["patient"], c.entry["sample"]): c.entry for c in runnable}
    rows = report[report["source"].isin({c.source for c in runnable})]
    done = rows[rows["status"].isin(_DONE)]
    analysed = set(zip(done["patient"], done["sample"], strict=True))
    table = sample_table(rows, folder, *pool_inputs(classifier, settings))
    at, overview = now_iso(), (folder / OVERVIEW_NAME).absolute()
    new = [
        {**r, "report": f"{overview}#{sample_anchor(r['sample'])}", "analysed_at": at}
        for r in table.to_dict("records")
        if (r["patient"], r["sample"]) in analysed and (r["patient"], r["sample"]) in entries
    ]
    return add_samples(registry, new, reanalysis=folder.name) if new else 0


def _pairs(registry: str | os.PathLike, reanalysis: str) -> list[tuple[dict, dict]]:
    """(registry row, reanalysed row) of every sample the reanalysis recorded so far."""
    old = {(r["patient"], r["sample"]): r for r in all_samples(registry)}
    new = reanalysed(registry, reanalysis)
    return [
        (old[(r["patient"], r["sample"])], r) for r in new if (r["patient"], r["sample"]) in old
    ]


__all__ = [
    "RECORD_NAME",
    "Reanalysis",
    "Selected",
    "SelectionError",
    "parse_date",
    "reanalysis_folder",
    "reanalysis_key",
    "reanalyze",
    "select",
]
