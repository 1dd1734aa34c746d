"""``rbcflow analyze`` as library calls: one acquisition, or a batch, from video to report.

:func:`analyze_acquisition` composes the stages for one input::

    open_video -> run_frontend --on_track--> [classifier worker: predict + shape features]
               -> counts, fraction, Wilson interval -> DIR/NAME/{positions.csv, tracks.csv,
                  report.html, run.json}

:func:`analyze_batch` runs it over every acquisition found in the given paths, skipping those
already complete with the same input, parameters and models, turning each failure into a
``failed`` row, and rewriting ``DIR/report.csv`` atomically after each acquisition.

Decisions
---------
- *Classification overlaps tracking.* Tracks reach a worker thread as the front end finishes
  them (bounded queue), which classifies them in batches and measures their shape; torch, numpy
  and OpenCV release the GIL, so the classifier uses the core the front end leaves idle, and
  memory stays bounded: only per-track numbers and a few gallery strips are kept, never all
  crops.
- *Completeness marker.* ``run.json`` is written last; an acquisition folder without it is
  incomplete (an interrupted run) and is analysed again. Before re-analysing a folder its old
  ``run.json`` is removed first, so a folder never pairs an old marker with new tables.
- *Output names.* ``DIR/NAME`` is named after the input (file name without extension); a folder
  belongs to one source (``.source`` marker), so a second input with the same name (``x/a.avi``,
  ``y/a.avi``) gets ``a-2``, and re-runs find each source's own folder again.
- *No cells.* A video where the front end follows no cell is ``failed`` (wrong file, focus or
  illumination: worth a look); a video with tracks but none reliable is ``ok`` with an empty
  fraction and a message saying why.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from rbcflow import __version__, schema
from rbcflow.classify.labels import geometry_rules, label_tracks, summarize
from rbcflow.config import FrontEndConfig, ReportConfig, params_id, to_dict
from rbcflow.errors import OutputError, RbcflowError
from rbcflow.features import FEATURE_COLUMNS, track_features
from rbcflow.io.outputs import remove_stale_temporaries, write_csv_atomic
from rbcflow.provenance import (
    input_fingerprint,
    now_iso,
    read_run_json,
    run_record,
    skip_key,
    write_run_json,
)
from rbcflow.reporting import (
    GalleryItem,
    merge_report,
    read_report,
    report_table,
    write_report_csv,
    write_report_html,
)

OUTPUT_FILES = ("positions.csv", "tracks.csv", "report.html", "run.json")
"""Files of a complete acquisition folder; ``run.json`` is written last."""
SOURCE_MARKER = ".source"
REPORT_NAME = "report.csv"
MIN_FREE_BYTES = 64 * 1024**2
"""An output folder with less free space is refused before any work (outputs of a 20 s
acquisition take ~5 MB; a report page ~1 MB)."""

BATCH_TRACKS = 32  # tracks per classifier call: batched inference, yet classified while tracking
QUEUE_TRACKS = 256  # tracks waiting for the classifier at most (bounds memory)
GALLERY_BORDERLINE = 8  # per class, the calls nearest the threshold
GALLERY_CONFIDENT = 4  # per class, the most confident calls
GALLERY_FRAMES = 10  # frames per gallery strip, evenly spaced through the track
TRACK_COLUMNS_ADDED: dict[str, str] = {
    "p_reliable": "float64",
    "p_tank_treading": "float64",
    "label": "object",
    "rule": "object",  # why the front end's geometry made the track unreliable, or empty
}
"""Columns ``tracks.csv`` adds after :data:`rbcflow.schema.TRACKS`, before the shape features."""

ProgressFactory = Callable[[int | None, str, str], AbstractContextManager[Callable[[int], None]]]
"""``factory(total, description, unit)`` -> context manager yielding a ``progress(n)`` callback
(the CLI passes a tqdm bar factory; None means no progress)."""


class ClassifierLike(Protocol):
    """What the pipeline needs of :class:`rbcflow.inference.Classifier`."""

    stage1_checksum: str
    stage2_checksum: str

    def predict(
        self,
        sequences: list[np.ndarray],
        *,
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame: ...


def short_checksum(checksum: str | None, length: int = 12) -> str:
    """``sha256:abcdef...`` -> ``abcdef012345`` (the report's short model id)."""
    if not checksum:
        return ""
    return str(checksum).split(":")[-1][:length]


def _no_progress(total: int | None, desc: str, unit: str):
    return nullcontext(lambda n=1: None)


# -- output folder ---------------------------------------------------------------------------


def check_output_dir(out_dir: str | os.PathLike, min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``out_dir`` if needed and check it can be written and has space, before any work.

    Raises
    ------
    OutputError
        Not creatable, not writable, or less than ``min_free`` bytes free.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {exc.strerror or exc}", out) from exc
    if not out.is_dir():
        raise OutputError("the output path exists and is not a folder", out)
    probe = out / f".rbcflow-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f"the output folder is not writable: {exc.strerror or exc}", out) from exc
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(out).free
    if free < min_free:
        raise OutputError(
            f"only {free / 1024**2:.0f} MiB free in the output folder; rbcflow "
            f"needs at least {min_free / 1024**2:.0f} MiB",
            out,
        )
    return out


_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def acquisition_name(path: str | os.PathLike) -> str:
    """The input's name without extension (a frame folder: its name), as in ``report.csv``."""
    p = Path(path)
    name = p.name if p.is_dir() else p.stem
    return name or p.absolute().name or "acquisition"


def safe_folder_name(name: str) -> str:
    """A folder name for ``name`` that is valid on Linux, macOS and Windows and not hidden."""
    safe = _UNSAFE.sub("_", name).strip().lstrip(".").rstrip(". ")
    return safe[:120] or "acquisition"


def claim_output(out_dir: Path, source: Path) -> Path:
    """The folder of ``out_dir`` that holds ``source``'s results (created and marked if new).

    ``NAME``, else ``NAME-2``, ``NAME-3``...: the first that is free or already belongs to the
    same source (by absolute path, in the ``.source`` marker).
    """
    base = safe_folder_name(acquisition_name(source))
    key = str(source.absolute())
    for i in range(1, 10_000):
        folder = out_dir / (base if i == 1 else f"{base}-{i}")
        marker = folder / SOURCE_MARKER
        if folder.exists():
            try:
                owner = marker.read_text(encoding="utf-8").strip()
            except OSError:
                owner = None
            if owner == key:
                return folder
            if owner is not None or any(folder.iterdir()):
                continue  # another input's results (or something else): never reuse it
        try:
            folder.mkdir(parents=True, exist_ok=True)
            from rbcflow.io.outputs import write_text_atomic

            write_text_atomic(marker, key + "\n")
        except OSError as exc:
            raise OutputError(f"cannot create: {exc.strerror or exc}", folder) from exc
        return folder
    raise OutputError(f"too many acquisitions named {base!r}", out_dir)


# -- classification worker -------------------------------------------------------------------


@dataclass
class _Collected:
    rows: list[dict] = field(default_factory=list)  # track rows, in arrival order
    predictions: list[pd.DataFrame] = field(default_factory=list)
    features: list[pd.DataFrame] = field(default_factory=list)
    gallery: dict[str, list[GalleryItem]] = field(default_factory=dict)
    error: BaseException | None = None
    done: int = 0


def _strip(crops: np.ndarray, k: int = GALLERY_FRAMES) -> np.ndarray:
    idx = np.unique(np.linspace(0, len(crops) - 1, min(k, len(crops))).round().astype(int))
    sel = crops[idx]
    return sel.transpose(1, 0, 2).reshape(sel.shape[1], -1)


class _Classifying:
    """Receives finished tracks (``on_track``) and classifies them in batches.

    With ``threaded`` the work runs in one worker thread fed by a bounded queue, beside the
    front end; otherwise inline, whenever a batch is full.
    """

    def __init__(
        self,
        classifier: ClassifierLike,
        report_cfg: ReportConfig,
        *,
        threaded: bool = True,
        batch: int = BATCH_TRACKS,
    ):
        self.classifier = classifier
        self.report_cfg = report_cfg
        self.batch = batch
        self.out = _Collected()
        self._pending: list[tuple[dict, np.ndarray]] = []
        self._progress: Callable[[int], None] = lambda n=1: None
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, QUEUE_TRACKS // batch))
            self._thread = threading.Thread(target=self._work, name="rbcflow-classify", daemon=True)
            self._thread.start()

    def set_progress(self, progress: Callable[[int], None]) -> int:
        """Route progress to ``progress`` from now on; returns the tracks done so far."""
        with self._lock:
            self._progress = progress
            return self.out.done

    def __call__(self, row: dict, crops: np.ndarray) -> None:
        if self.out.error is not None:
            raise self.out.error
        self._pending.append((row, np.asarray(crops, dtype=np.uint8)))
        if len(self._pending) >= self.batch:
            self._submit()

    def _submit(self) -> None:
        items, self._pending = self._pending, []
        if not items:
            return
        if self._queue is None:
            self._process(items)
        else:
            self._queue.put(items)

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            items = self._queue.get()
            if items is None:
                return
            if self.out.error is not None:
                continue  # drain: the front end learns of the error on its next track
            try:
                self._process(items)
            except BaseException as exc:  # re-raised in the caller's thread
                self.out.error = exc

    def _process(self, items: list[tuple[dict, np.ndarray]]) -> None:
        rows = [r for r, _ in items]
        seqs = [c for _, c in items]
        pred = self.classifier.predict(seqs, batch_size=max(len(seqs), 1))
        if len(pred) != len(seqs):
            raise RuntimeError(f"classifier returned {len(pred)} rows for {len(seqs)} tracks")
        pred = pred[["p_reliable", "p_tank_treading"]].reset_index(drop=True).astype(float)
        geometry = {
            key: np.array([r.get(key, np.nan) for r in rows], dtype=float)
            for key in ("border_cut", "size_ratio")
        }
        pred["label"] = label_tracks(
            pred["p_reliable"], pred["p_tank_treading"], self.report_cfg, **geometry
        )
        pred["rule"] = geometry_rules(len(rows), self.report_cfg, **geometry)
        feats = track_features(seqs)
        self._keep_gallery(rows, seqs, pred, feats)
        with self._lock:
            self.out.rows.extend(rows)
            self.out.predictions.append(pred)
            self.out.features.append(feats)
            self.out.done += len(rows)
            self._progress(len(rows))

    def _keep_gallery(self, rows, seqs, pred, feats) -> None:
        thr_rel = self.report_cfg.reliable_threshold
        for i, label in enumerate(pred["label"]):
            p_rel = float(pred.at[i, "p_reliable"])
            p_tt = float(pred.at[i, "p_tank_treading"])
            item = GalleryItem(
                track_id=int(rows[i]["track_id"]),
                label=str(label),
                p_reliable=p_rel,
                p_tank_treading=p_tt,
                strip=_strip(seqs[i]),
                n_frames=len(seqs[i]),
                features={
                    k: float(feats.at[i, k]) for k in ("ar_mean", "ar_std", "orientation_std")
                },
            )
            items = self.out.gallery.setdefault(str(label), [])
            items.append(item)
            if len(items) > 4 * (GALLERY_BORDERLINE + GALLERY_CONFIDENT):
                self.out.gallery[str(label)] = _prune(items, thr_rel)
        # prune at the end of every batch too, so memory stays bounded
        for label, items in self.out.gallery.items():
            self.out.gallery[label] = _prune(items, thr_rel)

    def finish(self) -> _Collected:
        """Classify what is left, stop the worker, re-raise its error if any."""
        self._submit()
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
        if self.out.error is not None:
            raise self.out.error
        return self.out

    def abort(self) -> None:
        """Stop the worker without classifying what is left (after a front-end error)."""
        self._pending = []
        if self._thread is not None and self._thread.is_alive():
            assert self._queue is not None
            self.out.error = self.out.error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()


def _margin(item: GalleryItem, thr_rel: float) -> float:
    """Distance of a call from its decision threshold (small: borderline)."""
    if item.label == "unreliable":
        return abs(item.p_reliable - thr_rel)
    return abs(item.p_tank_treading - 0.5)


def _prune(items: list[GalleryItem], thr_rel: float) -> list[GalleryItem]:
    if len(items) <= GALLERY_BORDERLINE + GALLERY_CONFIDENT:
        return items
    ranked = sorted(items, key=lambda g: (_margin(g, thr_rel), g.track_id))
    keep = ranked[:GALLERY_BORDERLINE] + ranked[-GALLERY_CONFIDENT:]
    return keep


# -- one acquisition -------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that decides an analysis' result (hashed into ``params_id``)."""

    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict:
        return {"frontend": to_dict(self.frontend), "report": to_dict(self.report)}

    def params_id(self) -> str:
        return params_id(self.frontend, self.report)


def _models_info(classifier: ClassifierLike) -> dict:
    info = {}
    for stage in ("stage1", "stage2"):
        info[stage] = {
            "checksum": getattr(classifier, f"{stage}_checksum", None),
            "dir": str(getattr(classifier, f"{stage}_dir", "") or ""),
        }
    return info


def _base_row(source: Path, classifier: ClassifierLike | None) -> dict:
    return {
        "acquisition": acquisition_name(source),
        "source": str(source.absolute()),
        "rbcflow_version": __version__,
        "stage1_model": short_checksum(getattr(classifier, "stage1_checksum", None)),
        "stage2_model": short_checksum(getattr(classifier, "stage2_checksum", None)),
    }


def _tracks_table(result_tracks: pd.DataFrame, got: _Collected) -> pd.DataFrame:
    """TRACKS columns, then probabilities and label, then shape features, then the rest."""
    if got.rows:
        pred = pd.concat(got.predictions, ignore_index=True)
        feats = pd.concat(got.features, ignore_index=True)
        per = pd.concat(
            [pd.DataFrame({"track_id": [int(r["track_id"]) for r in got.rows]}), pred, feats],
            axis=1,
        )
    else:
        per = pd.DataFrame(
            {
                "track_id": pd.Series(dtype="int64"),
                **{c: pd.Series(dtype=t) for c, t in TRACK_COLUMNS_ADDED.items()},
                **{c: pd.Series(dtype=t) for c, t in FEATURE_COLUMNS.items()},
            }
        )
    tracks = schema.validate(result_tracks, schema.TRACKS, "tracks")
    merged = tracks.merge(per, on="track_id", how="left", validate="one_to_one")
    missing = merged["label"].isna()
    if missing.any():  # a track the classifier never saw (should not happen): say so
        merged.loc[missing, "label"] = schema.LABEL_NAMES[schema.UNRELIABLE]
    merged["rule"] = merged["rule"].fillna("").astype(object)
    first = list(schema.TRACKS) + list(TRACK_COLUMNS_ADDED) + list(FEATURE_COLUMNS)
    rest = [c for c in merged.columns if c not in first]
    return merged[first + rest]


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
) -> dict:
    """Analyse one acquisition and write its folder; returns its report row.

    Parameters
    ----------
    path : a video file or a frame folder.
    out_dir : the batch output folder; results go to ``out_dir/NAME/`` (see
        :func:`claim_output`), or to ``folder`` when given.
    classifier : :class:`rbcflow.inference.Classifier` (or anything with its ``predict``).
    settings : front-end and report parameters.
    fingerprint : the input's :func:`~rbcflow.provenance.input_fingerprint` if already taken.
    progress : progress-bar factory (see :data:`ProgressFactory`): a ``frames`` bar during the
        front end, then a ``tracks`` bar while the last tracks are classified.
    threaded : classify in a worker thread beside the front end (else inline).

    Returns
    -------
    dict
        The report row (:data:`rbcflow.reporting.REPORT_COLUMNS`), status ``ok``.

    Raises
    ------
    RbcflowError
        The input cannot be read, or no cell was tracked (the caller makes a ``failed`` row).
    OutputError
        Results cannot be written.
    """
    from rbcflow.frontend import progress_total, run_frontend
    from rbcflow.io.video import open_video

    settings = settings or AnalysisSettings()
    t_start = time.perf_counter()
    started = now_iso()
    source = Path(path)
    bar = progress or _no_progress
    out_dir = Path(out_dir)
    folder = folder or claim_output(out_dir, source)
    remove_stale_temporaries(folder)
    old = folder / "run.json"
    if old.exists():
        try:
            old.unlink()  # the folder is incomplete until the new run.json lands
        except OSError as exc:
            raise OutputError(f"cannot replace: {exc.strerror or exc}", old) from exc

    fingerprint = fingerprint or input_fingerprint(source)
    t_fp = time.perf_counter()
    fe_cfg = settings.frontend
    sink = _Classifying(classifier, settings.report, threaded=threaded)
    reader = open_video(source, fps=fe_cfg.reader.fps, default_fps=fe_cfg.reader.default_fps)
    try:
        with reader:
            with bar(progress_total(reader, fe_cfg), "frames", "frame") as p:
                result = run_frontend(reader, fe_cfg, progress=p, on_track=sink)
            shape = tuple(int(s) for s in reader.shape)
            dtype = str(np.dtype(reader.dtype))
            fps_from_container = bool(getattr(reader, "fps_from_container", True))
    except BaseException:
        sink.abort()
        raise
    t_fe = time.perf_counter()
    n_tracks = len(result.tracks)
    with bar(n_tracks, "tracks", "track") as p:
        p(sink.set_progress(p))
        got = sink.finish()
    t_cls = time.perf_counter()

    tracks = _tracks_table(result.tracks, got)
    counts = summarize(tracks["label"], settings.report)
    warnings = list(dict.fromkeys(result.warnings))
    message = ""
    if counts["reliable"] == 0:
        message = (
            f"no reliable track among {counts['tracks']}: no fraction (the cells were "
            "out of focus, overlapping or partial; check the recording)"
        )
    elif warnings:
        message = "; ".join(warnings)
    duration = result.n_frames / result.fps if result.fps else float("nan")
    finished = now_iso()
    row = {
        **_base_row(source, classifier),
        "status": "ok",
        "message": message,
        "frames": result.n_frames,
        "fps": result.fps,
        "duration_s": duration,
        **counts,
        "output": folder.name,
        "params_id": settings.params_id(),
        "input_hash": short_checksum(fingerprint["hash"], 16),
        "analysed_at": finished,
    }
    row = report_table([row]).iloc[0].to_dict()
    row = {
        k: (None if (v is pd.NA or (isinstance(v, float) and np.isnan(v))) else v)
        for k, v in row.items()
    }

    write_csv_atomic(
        folder / "positions.csv", schema.validate(result.positions, schema.POSITIONS, "positions")
    )
    write_csv_atomic(folder / "tracks.csv", tracks)
    timings = {
        "fingerprint": t_fp - t_start,
        **{f"frontend.{k}": v for k, v in result.timings.items()},
        "frontend": t_fe - t_fp,
        "classify_tail": t_cls - t_fe,
    }
    input_info = {
        **fingerprint,
        "frames": result.n_frames,
        "fps": result.fps,
        "fps_from_container": fps_from_container,
        "frame_shape": list(shape),
        "dtype": dtype,
    }
    record = run_record(
        input_info=input_info,
        parameters=settings.to_dict(),
        params_id=settings.params_id(),
        models=_models_info(classifier),
        started=started,
        finished=finished,
        warnings=warnings,
        result=row,
        timings=timings,
        outputs=list(OUTPUT_FILES),
    )
    record["frontend"] = {
        "cell_diameter_px": result.cell_diameter,
        "scale": getattr(result, "scale", None),
        "threshold": getattr(result, "threshold", None),
        "noise": getattr(result, "noise", None),
    }
    gallery = [g for items in got.gallery.values() for g in items]
    write_report_html(
        folder / "report.html",
        row,
        tracks,
        result.frame_stats,
        gallery,
        record,
        thresholds=(settings.report.reliable_threshold, settings.report.flipping_threshold),
    )
    record["timings_s"]["report"] = time.perf_counter() - t_cls
    record["timings_s"]["total"] = time.perf_counter() - t_start
    write_run_json(folder / "run.json", record)
    return row


# -- batch -----------------------------------------------------------------------------------


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
) -> pd.DataFrame:
    """Analyse every acquisition in ``paths`` into ``out_dir``; returns the rows of this batch.

    Parameters
    ----------
    paths : files and folders (expanded by :func:`rbcflow.io.find_acquisitions`).
    out_dir : output folder (created; checked writable with free space before any work).
    classifier, settings, progress, threaded : see :func:`analyze_acquisition`.
    force : analyse again acquisitions already complete with the same input, parameters and
        models (otherwise they are ``skipped``, keeping their previous figures).
    on_start : ``on_start(index, total, source)`` before each acquisition.
    on_done : ``on_done(event)`` after each, with its row (and the error of a failed one).

    Returns
    -------
    DataFrame
        This batch's rows (:data:`rbcflow.reporting.REPORT_COLUMNS`), in input order.
        ``out_dir/report.csv`` holds them merged with earlier rows of other sources.

    Raises
    ------
    OutputError
        The output folder is unusable (before any work), or became so (full disk).
    """
    from rbcflow.io.discover import find_acquisitions

    settings = settings or AnalysisSettings()
    out = check_output_dir(out_dir)
    acquisitions = find_acquisitions(paths)
    report_path = out / REPORT_NAME
    remove_stale_temporaries(out)
    previous = read_report(report_path)
    if previous is None and report_path.exists():
        # unreadable: keep it aside rather than overwrite it
        aside = out / f"report.unreadable-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        os.replace(report_path, aside)
    rows: list[dict] = []
    pid = settings.params_id()
    models = (
        getattr(classifier, "stage1_checksum", None),
        getattr(classifier, "stage2_checksum", None),
    )
    for i, source in enumerate(acquisitions):
        if on_start is not None:
            on_start(i, len(acquisitions), source)
        folder = None
        error = None
        tb = None
        try:
            folder = claim_output(out, source)
            fingerprint = input_fingerprint(source)
            key = (fingerprint["hash"], pid, *models)
            prev = _complete(folder)
            if prev is not None and not force and skip_key(prev) == key:
                row = {
                    **prev["result"],
                    "status": "skipped",
                    "message": f"unchanged since {prev.get('finished', '?')}: same input, "
                    "parameters and models (--force analyses it again)",
                }
            else:
                row = analyze_acquisition(
                    source,
                    out,
                    classifier,
                    settings,
                    folder=folder,
                    fingerprint=fingerprint,
                    progress=progress,
                    threaded=threaded,
                )
                if prev is not None:
                    note = (
                        f"replaced the results of {prev.get('finished', '?')} "
                        f"({_changed(prev, key)} changed)"
                        if not force
                        else f"replaced the results of {prev.get('finished', '?')} (--force)"
                    )
                    row["message"] = "; ".join(m for m in (row.get("message"), note) if m)
        except OutputError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad acquisition never stops the others
            error = exc
            tb = traceback.format_exc()
            reason = str(exc) if isinstance(exc, RbcflowError) else f"{type(exc).__name__}: {exc}"
            row = {
                **_base_row(source, classifier),
                "status": "failed",
                "message": " ".join(reason.split()),
                "output": folder.name if folder is not None else None,
                "params_id": pid,
                "analysed_at": now_iso(),
            }
        rows.append(row)
        write_report_csv(report_path, merge_report(previous, rows))
        if on_done is not None:
            on_done(BatchEvent(i, len(acquisitions), source, row, folder, error, tb))
    return report_table(rows)
