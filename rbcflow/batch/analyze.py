"""``rbcflow analyze`` over many inputs: skip what is done, fail one input at a time, keep a report.

:func:`analyze_batch` runs :func:`~rbcflow.batch.acquisition.analyze_acquisition` over every
acquisition found in the given paths, skipping those already complete with the same input,
parameters (and pipeline generation) and models, turning each failure into a ``failed`` row, and
rewriting ``OUT/report.csv`` atomically after each acquisition. The rewrite re-reads the file
under the output folder's lock (:func:`rbcflow.io.folders.output_lock`), so two runs into one
folder keep each other's rows (``tests/test_batch_concurrency.py`` runs two and three at once;
``benchmarks/bench_concurrent.py`` 20 trials of each).

Every input gets a row. A named input that is missing, unreadable or not a regular file or
folder (a FIFO, a device: checked with ``os.stat``, never opened) is a failed row, and so is
one whose results folder cannot be written (a full disk still stops the batch). An acquisition
that fails before writing anything leaves no results folder. What discovery skipped is listed
in ``OUT/skipped.csv`` (:mod:`rbcflow.batch.inputs`).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rbcflow.batch.acquisition import OUTPUT_FILES, analyze_acquisition
from rbcflow.batch.inputs import (
    ANALYZE_NO_CELLS_HINT,
    SKIPPED_NAME,
    disk_full,
    drop_unused_folder,
    input_problem,
    merge_skipped,
)
from rbcflow.errors import NoCellsError, OutputError, RbcflowError, VideoReadError
from rbcflow.io.discover import discover
from rbcflow.io.folders import check_output_dir, claim_output, output_lock
from rbcflow.io.outputs import remove_stale_temporaries
from rbcflow.pipeline import AnalysisSettings, ClassifierLike, ProgressFactory, base_row
from rbcflow.provenance import input_fingerprint, now_iso, read_run_json, skip_key
from rbcflow.report.tables import merge_report, read_report, report_table, write_report_csv
from rbcflow.samples import SampleSet, write_batch_outputs

REPORT_NAME = "report.csv"


@dataclass
class BatchEvent:
    """What :func:`analyze_batch` tells its caller after each acquisition."""

    index: int
    total: int
    source: Path
    row: dict
    folder: Path | None
    error: BaseException | None = None
    traceback: str | None = None


def _complete(folder: Path) -> dict | None:
    record = read_run_json(folder / "run.json")
    if record is None or not all((folder / f).is_file() for f in OUTPUT_FILES):
        return None
    if (record.get("result") or {}).get("status") != "ok":
        return None
    return record


def _changed(prev: dict, key: tuple) -> str:
    what = []
    pk = skip_key(prev)
    if pk[0] != key[0]:
        what.append("input")
    if pk[1] != key[1]:
        what.append("parameters")
    if pk[2:] != key[2:]:
        what.append("models")
    return " and ".join(what) or "nothing"


def _previous_report(report_path: Path) -> pd.DataFrame | None:
    previous = read_report(report_path)
    if previous is None and report_path.exists():
        # unreadable: keep it aside rather than overwrite it
        aside = report_path.with_name(f"report.unreadable-{time.strftime('%Y%m%d-%H%M%S')}.csv")
        try:
            os.replace(report_path, aside)
        except OSError as exc:
            raise OutputError(f"cannot move aside: {exc.strerror or exc}", report_path) from exc
    return previous


def _one(source, out, classifier, settings, run_key, force, progress, threaded, claimed):
    """(row, folder) of one acquisition: skipped, analysed, or re-analysed with a note.

    ``claimed``: a list the results folder is appended to as soon as it is claimed (so that a
    failure can tell whether it left one).

    ``run_key``: (params_id, stage-1 checksum, stage-2 checksum) of this run; with the input
    hash, what must match :func:`rbcflow.provenance.skip_key` of a previous result to skip it.
    """
    problem = input_problem(source)
    if problem is not None:  # before any open, and before a results folder exists
        raise VideoReadError(problem, source)
    with output_lock(out):  # two runs naming two a.avi never claim one folder
        folder = claim_output(out, source)
    claimed.append(folder)
    fingerprint = input_fingerprint(source)
    key = (fingerprint["hash"], *run_key)
    prev = _complete(folder)
    if prev is not None and not force and skip_key(prev) == key:
        note = (
            f"unchanged since {prev.get('finished', '?')}: same input, parameters and models "
            "(--force analyses it again)"
        )
        before = prev["result"].get("message")  # its warnings stay visible
        row = {
            **prev["result"],
            "status": "skipped",
            "message": "; ".join(m for m in (before, note) if m),
        }
        return row, folder
    result = analyze_acquisition(
        source,
        out,
        classifier,
        settings,
        folder=folder,
        fingerprint=fingerprint,
        progress=progress,
        threaded=threaded,
    )
    row = dict(result.row)
    if prev is not None:
        why = "--force" if force else f"{_changed(prev, key)} changed"
        note = f"replaced the results of {prev.get('finished', '?')} ({why})"
        row["message"] = "; ".join(m for m in (row.get("message"), note) if m)
    return row, folder


def analyze_batch(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    classifier: ClassifierLike,
    settings: AnalysisSettings | None = None,
    *,
    force: bool = False,
    progress: ProgressFactory | None = None,
    on_start: Callable[[int, int, Path], None] | None = None,
    on_done: Callable[[BatchEvent], None] | None = None,
    threaded: bool = True,
    samples: SampleSet | None = None,
) -> pd.DataFrame:
    """Analyse every acquisition in ``paths`` into ``out_dir``; returns the rows of this batch.

    Parameters
    ----------
    paths : files and folders (expanded by :func:`rbcflow.io.discover.discover`; what it
        skips is merged into ``out_dir/skipped.csv``).
    out_dir : output folder (created; checked writable with free space before any work).
    classifier, settings, progress, threaded : see :func:`rbcflow.pipeline.analyze`.
    force : analyse again acquisitions already complete with the same input, parameters and
        models (otherwise they are ``skipped``, keeping their previous figures).
    on_start : ``on_start(index, total, source)`` before each acquisition.
    on_done : ``on_done(event)`` after each, with its row (and the error of a failed one).
    samples : the acquisitions' patient and sample (:func:`rbcflow.samples.batch_samples`);
        after the last acquisition ``samples.csv``, ``report.xlsx`` and ``index.html`` are
        written (:func:`rbcflow.samples.write_batch_outputs`) and the samples recorded.

    Returns
    -------
    DataFrame
        This batch's rows (:data:`rbcflow.schema.REPORT_COLUMNS`), in input order.
        ``out_dir/report.csv`` holds them merged with earlier rows of other sources.

    Raises
    ------
    OutputError
        The output folder is unusable (before any work), or became so (full disk).
    """
    settings = settings or AnalysisSettings()
    out = check_output_dir(out_dir)
    found = discover(paths)
    acquisitions = [a.path for a in found.acquisitions]
    problems = {i: a.problem for i, a in enumerate(found.acquisitions) if a.problem}
    report_path = out / REPORT_NAME
    with output_lock(out):
        remove_stale_temporaries(out)
        _previous_report(report_path)  # an unreadable report is moved aside before any work
        merge_skipped(out / SKIPPED_NAME, found.skipped_rows(), acquisitions)
    pid = settings.params_id()
    models = (
        getattr(classifier, "stage1_checksum", None),
        getattr(classifier, "stage2_checksum", None),
    )
    rows: list[dict] = []
    for i, source in enumerate(acquisitions):
        if on_start is not None:
            on_start(i, len(acquisitions), source)
        folder = error = tb = None
        claimed: list[Path] = []
        try:
            if i in problems:  # discovery knows why, without opening it
                raise VideoReadError(problems[i], source)
            row, folder = _one(
                source,
                out,
                classifier,
                settings,
                (pid, *models),
                force,
                progress,
                threaded,
                claimed,
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad acquisition never stops the others
            if isinstance(exc, OutputError) and (disk_full(exc) or exc.path == out):
                raise  # the output folder itself: every later acquisition would fail too
            error, tb = exc, traceback.format_exc()
            reason = str(exc) if isinstance(exc, RbcflowError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, NoCellsError):
                reason += ANALYZE_NO_CELLS_HINT
            folder = claimed[0] if claimed else None
            if drop_unused_folder(folder):
                folder = None
            row = {
                **base_row(source, classifier),
                "status": "failed",
                "message": " ".join(reason.split()),
                "output": folder.name if folder is not None else None,
                "params_id": pid,
                "analysed_at": now_iso(),
            }
        if samples is not None:
            row.update(samples.metadata_for(source))
        rows.append(row)
        with output_lock(out):  # another run may have added rows since: merge with the file
            write_report_csv(report_path, merge_report(_previous_report(report_path), [row]))
        if on_done is not None:
            on_done(BatchEvent(i, len(acquisitions), source, row, folder, error, tb))
    write_batch_outputs(out, report_path, classifier, settings, samples)
    return report_table(rows)
