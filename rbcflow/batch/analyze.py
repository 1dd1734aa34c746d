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

Engines (``workers``, ``scheduler``): this module keeps claims, skips and ``report.csv``; each
acquisition left to analyse is a :class:`~rbcflow.batch.jobs.Job` run here (``workers=1``),
in worker processes (:mod:`rbcflow.batch.parallel`) or as Dask tasks
(:mod:`rbcflow.batch.dask_run`), and its row enters ``report.csv`` in input order, so the file
is the same whichever ran it (docs/architecture.md, "Execution engines").
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
from rbcflow.batch.inputs import SKIPPED_NAME, drop_unused_folder, input_problem, merge_skipped
from rbcflow.batch.jobs import Job, Outcome, classifier_spec, failure_reason, is_fatal, run_job
from rbcflow.batch.workers import resolve_workers
from rbcflow.classify.pending import PendingClassifier
from rbcflow.errors import OutputError, RbcflowError, VideoReadError
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
    peak_rss: int | None = None
    """Peak resident memory (bytes) of the process that analysed it, so far (None: skipped)."""
    worker_pid: int | None = None
    """That process' id (this process' with ``workers=1``)."""


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


@dataclass
class _Plan:
    """What the parent decided for one acquisition before any analysis: its claimed folder,
    its input's fingerprint and skip key, the previous result there, and the row when it is
    skipped (then nothing is left to run)."""

    folder: Path
    fingerprint: dict
    key: tuple
    prev: dict | None
    row: dict | None = None


def _plan(source, out, run_key, force, claimed) -> _Plan:
    """Claim ``source``'s folder (under the lock), fingerprint it, and skip it when unchanged.

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
    plan = _Plan(folder, fingerprint, key, prev)
    if prev is not None and not force and skip_key(prev) == key:
        note = (
            f"unchanged since {prev.get('finished', '?')}: same input, parameters and models "
            "(--force analyses it again)"
        )
        before = prev["result"].get("message")  # its warnings stay visible
        plan.row = {
            **prev["result"],
            "status": "skipped",
            "message": "; ".join(m for m in (before, note) if m),
        }
    return plan


def _analysed_row(row: dict, plan: _Plan, force: bool) -> dict:
    """The row of an acquisition just analysed, with a note when it replaced earlier results."""
    row = dict(row)
    prev = plan.prev
    if prev is not None:
        why = "--force" if force else f"{_changed(prev, plan.key)} changed"
        note = f"replaced the results of {prev.get('finished', '?')} ({why})"
        row["message"] = "; ".join(m for m in (row.get("message"), note) if m)
    return row


def _failed_row(source, classifier, reason: str, folder: Path | None, pid: str) -> dict:
    return {
        **base_row(source, classifier),
        "status": "failed",
        "message": reason,
        "output": folder.name if folder is not None else None,
        "params_id": pid,
        "analysed_at": now_iso(),
    }


class _Serial:
    """The sequential engine (``workers=1``): each job runs here, when the batch waits for it."""

    capacity = 1

    def __init__(self, classifier, settings, progress, threaded):
        self.args = (classifier, settings)
        self.kw = {"progress": progress, "threaded": threaded}
        self.job: Job | None = None
        self.child = None
        if isinstance(classifier, PendingClassifier) and not classifier.is_loaded:
            from rbcflow.batch.remote import ClassifierProcess

            # loads in a child process while the first front end runs: see its module
            self.child = ClassifierProcess(classifier, settings.stream.torch_threads or None)
            self.args = (self.child, settings)

    def submit(self, job: Job) -> None:
        self.job = job

    def wait(self) -> list[Outcome]:
        job, self.job = self.job, None
        # looked up here, so that a stand-in put in this module's place is what runs
        outcome = run_job(job, *self.args, analyze=analyze_acquisition, **self.kw)
        failed = self.child.failed if self.child is not None else None
        if outcome.row is None and failed is not None:
            # no classifier (models it cannot load, a dead child): every acquisition would
            # fail alike, so the batch stops, as a pool's worker without its classifier does
            outcome.fatal, outcome.error = True, failed
        return [outcome]

    def close(self, cancel: bool = False) -> None:
        if self.child is not None:
            self.child.close()


def _engine(workers, scheduler, classifier, settings, progress, threaded):
    if scheduler is not None:
        from rbcflow.batch.dask_run import DaskEngine

        return DaskEngine(scheduler, classifier_spec(classifier), settings, threaded, progress)
    if workers > 1:
        from rbcflow.batch.parallel import PoolEngine

        return PoolEngine(workers, classifier_spec(classifier), settings, threaded, progress)
    return _Serial(classifier, settings, progress, threaded)


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
    workers: int | str = 1,
    scheduler: str | None = None,
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
    workers : acquisitions analysed at once in worker processes (``1``: one at a time in this
        process, as always; ``"auto"``: :func:`rbcflow.batch.workers.auto_workers`, the cores
        within the memory available). See :mod:`rbcflow.batch.parallel`.
    scheduler : a Dask distributed scheduler's address, or ``"local"`` for a LocalCluster
        (needs ``pip install rbcflow[dask]``); each acquisition is one task
        (:mod:`rbcflow.batch.dask_run`). Overrides ``workers``.

    Whatever the engine, the parent claims the folders, decides what is skipped and merges
    ``report.csv`` in input order under the folder's lock: the file's rows and values are those
    of ``workers=1`` (only ``analysed_at`` and ``message``'s dates of earlier results differ
    between runs). ``on_done`` is called as each acquisition finishes (in completion order with
    several workers; ``event.index`` is its place).

    Returns
    -------
    DataFrame
        This batch's rows (:data:`rbcflow.schema.REPORT_COLUMNS`), in input order.
        ``out_dir/report.csv`` holds them merged with earlier rows of other sources.

    Raises
    ------
    OutputError
        The output folder is unusable (before any work), or became so (full disk).
    RbcflowError
        ``workers`` is not a count or ``auto``; the Dask extra is missing or the scheduler
        cannot be reached; a worker process died (what finished is kept: run again to resume).
    """
    settings = settings or AnalysisSettings()
    n_workers = resolve_workers(workers)
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
    run_key = (
        pid,
        getattr(classifier, "stage1_checksum", None),
        getattr(classifier, "stage2_checksum", None),
    )
    total = len(acquisitions)
    done: dict[int, dict] = {}  # finished rows not yet in report.csv
    rows: list[dict] = []  # in input order, as they enter report.csv

    def finish(i: int, row: dict, folder, error=None, tb=None, peak=None, wpid=None) -> None:
        source = acquisitions[i]
        if samples is not None:
            row.update(samples.metadata_for(source))
        done[i] = row
        ready = []
        while len(rows) + len(ready) in done:  # report.csv gets rows in input order only
            ready.append(done.pop(len(rows) + len(ready)))
        if ready:
            with output_lock(out):  # another run may have added rows since: merge with the file
                write_report_csv(report_path, merge_report(_previous_report(report_path), ready))
            rows.extend(ready)
        if on_done is not None:
            on_done(BatchEvent(i, total, source, row, folder, error, tb, peak, wpid))

    def failed(i: int, reason: str, folder, error, tb, peak=None, wpid=None) -> None:
        if drop_unused_folder(folder):
            folder = None
        row = _failed_row(acquisitions[i], classifier, reason, folder, pid)
        finish(i, row, folder, error, tb, peak, wpid)

    engine = None
    in_flight: dict[int, _Plan] = {}
    pending = list(range(total))[::-1]
    completed = False
    try:
        while pending or in_flight:
            while pending and len(in_flight) < (engine.capacity if engine is not None else 1):
                i = pending.pop()
                source = acquisitions[i]
                if on_start is not None:
                    on_start(i, total, source)
                claimed: list[Path] = []
                try:
                    if i in problems:  # discovery knows why, without opening it
                        raise VideoReadError(problems[i], source)
                    plan = _plan(source, out, run_key, force, claimed)
                except Exception as exc:  # one bad acquisition never stops the others
                    if is_fatal(exc, out):
                        raise  # the output folder itself: every later acquisition would fail
                    folder = claimed[0] if claimed else None
                    failed(i, failure_reason(exc), folder, exc, traceback.format_exc())
                    continue
                if plan.row is not None:
                    finish(i, plan.row, plan.folder)
                    continue
                if engine is None:  # started only once there is something to analyse
                    engine = _engine(n_workers, scheduler, classifier, settings, progress, threaded)
                engine.submit(Job(i, source, out, plan.folder, plan.fingerprint))
                in_flight[i] = plan
            if not in_flight:
                continue
            for outcome in engine.wait():
                plan = in_flight.pop(outcome.index)
                if outcome.row is not None:
                    row = _analysed_row(outcome.row, plan, force)
                    finish(outcome.index, row, plan.folder, peak=outcome.peak_rss, wpid=outcome.pid)
                elif outcome.fatal:  # the output folder, or a worker without its classifier
                    if isinstance(outcome.error, RbcflowError):
                        raise outcome.error
                    raise OutputError(outcome.reason or "the output folder became unusable")
                else:
                    failed(
                        outcome.index,
                        outcome.reason,
                        plan.folder,
                        outcome.error,
                        outcome.traceback,
                        outcome.peak_rss,
                        outcome.pid,
                    )
        completed = True
    finally:
        if engine is not None:
            engine.close(cancel=not completed)  # Ctrl-C, a fatal error: stop the workers now
    write_batch_outputs(out, report_path, classifier, settings, samples)
    return report_table(rows)
