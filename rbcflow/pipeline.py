"""One acquisition from video to result objects: compute, return, write nothing.

:func:`track` is the front end on one input (video -> tracks, positions, crops streamed to an
``on_track`` callback); :func:`analyze` is :func:`track` with the classifiers as its
``on_track`` and the tank-treading fraction at the end::

    open_video -> run_frontend --on_track--> [TrackClassifier: probabilities, label, shape]
               -> tracks table, counts, fraction, Wilson interval -> AcquisitionResult

Writing the results (folders, CSVs, HTML, ``run.json``), skipping work already done and running
many inputs is :mod:`rbcflow.batch`'s job.

Decisions
---------
- *No cells.* A video where the front end follows no cell raises (wrong file, focus or
  illumination: worth a look); a video with tracks but none reliable gives a result with an
  empty fraction and a message saying why.
- *Classification overlaps tracking* (:mod:`rbcflow.classify.stream`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rbcflow import __version__, schema
from rbcflow.classify.calibration import estimate_acquisition
from rbcflow.classify.labels import relabel
from rbcflow.classify.stream import ClassifierLike, Collected, TrackClassifier
from rbcflow.config import EstimateConfig, FrontEndConfig, ReportConfig, params_id, to_dict
from rbcflow.frontend import FrontEndResult, progress_total, run_frontend
from rbcflow.io.discover import acquisition_name
from rbcflow.io.video import open_video
from rbcflow.provenance import input_fingerprint, json_safe, now_iso, run_record
from rbcflow.report.quality import quality_indicators
from rbcflow.report.verdict import verdict
from rbcflow.run_settings import StreamConfig

ProgressFactory = Callable[[int | None, str, str], AbstractContextManager[Callable[[int], None]]]
"""``factory(total, description, unit)`` -> context manager yielding a ``progress(n)`` callback
(the CLI passes a tqdm bar factory; None means no progress)."""


def _no_progress(total: int | None, desc: str, unit: str):
    return nullcontext(lambda n=1: None)


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that decides an analysis' result (hashed into ``params_id``, with the
    pipeline generation), plus how classification is streamed (which decides nothing)."""

    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    estimate: EstimateConfig = field(default_factory=EstimateConfig)

    def to_dict(self) -> dict:
        return {
            "frontend": to_dict(self.frontend),
            "report": to_dict(self.report),
            "estimate": to_dict(self.estimate),
        }

    def params_id(self) -> str:
        return params_id(self.frontend, self.report, self.estimate)


@dataclass
class TrackRun:
    """The front end's result on one input, with what the reader said about the input.

    ``input_info`` is the input's fingerprint (:func:`rbcflow.provenance.input_fingerprint`)
    completed with frames, fps, frame shape and dtype: ``run.json``'s ``input``.
    """

    source: Path
    frontend: FrontEndResult
    input_info: dict
    started: str
    finished: str
    timings: dict[str, float]

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self.frontend.warnings))


def track(
    path: str | os.PathLike,
    cfg: FrontEndConfig | None = None,
    *,
    on_track: Callable[[dict, np.ndarray], None] | None = None,
    progress: ProgressFactory | None = None,
    fingerprint: dict | None = None,
    reuse_mib: float | None = None,
) -> TrackRun:
    """Run the front end on one input; crops go to ``on_track(row, crops)`` as tracks end.

    Parameters
    ----------
    path : a video file or a frame folder.
    cfg : front-end parameters.
    on_track : called with each finished track's TRACKS row (dict) and its ``(T, 31, 31)``
        uint8 crops (the classifiers in :func:`analyze`, a sequence writer in ``rbcflow
        track``).
    progress : progress-bar factory (:data:`ProgressFactory`), a ``frames`` bar.
    fingerprint : the input's fingerprint if already taken.
    reuse_mib : :func:`~rbcflow.frontend.run.run_frontend`'s (``StreamConfig.reuse_frames_mib``).

    Raises
    ------
    RbcflowError
        The input cannot be read, or no cell was tracked.
    """
    cfg = cfg or FrontEndConfig()
    bar = progress or _no_progress
    source = Path(path)
    started = now_iso()
    t0 = time.perf_counter()
    fingerprint = fingerprint or input_fingerprint(source)
    t_fp = time.perf_counter()
    with open_video(source, fps=cfg.reader.fps, default_fps=cfg.reader.default_fps) as reader:
        with bar(progress_total(reader, cfg), "frames", "frame") as p:
            result = run_frontend(reader, cfg, progress=p, on_track=on_track, reuse_mib=reuse_mib)
        info = {
            **fingerprint,
            "frames": result.n_frames,
            "fps": result.fps,
            "fps_from_container": bool(getattr(reader, "fps_from_container", True)),
            "frame_shape": [int(s) for s in reader.shape],
            "dtype": str(np.dtype(reader.dtype)),
        }
    t_fe = time.perf_counter()
    timings = {
        "fingerprint": t_fp - t0,
        **{f"frontend.{k}": v for k, v in result.timings.items()},
        "frontend": t_fe - t_fp,
    }
    return TrackRun(source, result, info, started, now_iso(), timings)


@dataclass
class AcquisitionResult:
    """Everything :func:`analyze` found on one acquisition, before anything is written.

    tracks : TRACKS columns, then :data:`rbcflow.schema.TRACK_CLASSIFIED` (p_reliable,
        p_tank_treading, label, rule), then the shape features (``tracks.csv``).
    row : the report row (:data:`rbcflow.schema.REPORT_COLUMNS` but ``output``, which the
        writer adds), status ``ok``.
    gallery : the report's example strips.
    record : the ``run.json`` record (:func:`rbcflow.provenance.run_record`) as far as
        computing knows it: the writer adds ``output`` to its result, the files written and the
        time the report took.
    """

    run: TrackRun
    tracks: pd.DataFrame
    row: dict
    gallery: list[schema.GalleryItem]
    record: dict

    @property
    def frontend(self) -> FrontEndResult:
        return self.run.frontend

    @property
    def positions(self) -> pd.DataFrame:
        return self.run.frontend.positions


def short_checksum(checksum: str | None, length: int = 12) -> str:
    """``sha256:abcdef...`` -> ``abcdef012345`` (the report's short model id).

    Examples
    --------
    >>> short_checksum("sha256:0123456789abcdef"), short_checksum(None)
    ('0123456789ab', '')
    """
    if not checksum:
        return ""
    return str(checksum).split(":")[-1][:length]


def models_info(classifier: ClassifierLike | None) -> dict:
    """Checksums and folders of the classifier's two models (``run.json``'s ``models``)."""
    return {
        stage: {
            "checksum": getattr(classifier, f"{stage}_checksum", None),
            "dir": str(getattr(classifier, f"{stage}_dir", "") or ""),
            # shipped | user-supplied, and the weights' full SHA-256 (model_folder.LoadedModel)
            "origin": getattr(getattr(classifier, stage, None), "origin", None),
            "weights_sha256": getattr(getattr(classifier, stage, None), "weights_sha256", None),
        }
        for stage in ("stage1", "stage2")
    }


def model_origin(classifier: ClassifierLike | None) -> str | None:
    """``shipped``, ``user-supplied (stage 1, stage 2)`` (the stages that are), or None when
    the classifier does not say (a stand-in)."""
    origins = [getattr(getattr(classifier, s, None), "origin", None) for s in ("stage1", "stage2")]
    if None in origins:
        return None
    user = [f"stage {i}" for i, o in enumerate(origins, 1) if o != "shipped"]
    return f"user-supplied ({', '.join(user)})" if user else "shipped"


def base_row(source: Path, classifier: ClassifierLike | None) -> dict:
    """The report columns every row has, whatever its status."""
    return {
        "acquisition": acquisition_name(source),
        "source": str(source.absolute()),
        "rbcflow_version": __version__,
        "stage1_model": short_checksum(getattr(classifier, "stage1_checksum", None)),
        "stage2_model": short_checksum(getattr(classifier, "stage2_checksum", None)),
        "model_origin": model_origin(classifier),
    }


def classified_tracks(tracks: pd.DataFrame, got: Collected) -> pd.DataFrame:
    """TRACKS columns, then probabilities, label and rule, then shape features, then the rest."""
    added = {**schema.TRACK_CLASSIFIED, **schema.FEATURE_COLUMNS}
    if got.rows:
        pred = pd.concat(got.predictions, ignore_index=True)
        feats = pd.concat(got.features, ignore_index=True)
        ids = pd.DataFrame({"track_id": [int(r["track_id"]) for r in got.rows]})
        per = pd.concat([ids, pred, feats], axis=1)
    else:
        per = pd.DataFrame(
            {"track_id": pd.Series(dtype="int64")}
            | {c: pd.Series(dtype=t) for c, t in added.items()}
        )
    merged = tracks.merge(per, on="track_id", how="left", validate="one_to_one")
    missing = merged["label"].isna()
    if missing.any():  # a track the classifier never saw (should not happen): say so
        merged.loc[missing, "label"] = schema.LABEL_NAMES[schema.UNRELIABLE]
    merged["rule"] = merged["rule"].fillna("").astype(object)
    first = list(schema.TRACKS_CSV)
    rest = [c for c in merged.columns if c not in first]
    return merged[first + rest]


def _message(counts: dict, warnings: list[str]) -> str:
    if counts["reliable"] == 0:
        return (
            f"no reliable track among {counts['tracks']}: no fraction (the cells were "
            "out of focus, overlapping or partial; check the recording)"
        )
    return "; ".join(warnings)


def _none_for_nan(row: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def analyze(
    path: str | os.PathLike,
    classifier: ClassifierLike,
    settings: AnalysisSettings | None = None,
    *,
    fingerprint: dict | None = None,
    progress: ProgressFactory | None = None,
    threaded: bool = True,
    on_track: Callable[[dict, np.ndarray], None] | None = None,
) -> AcquisitionResult:
    """Analyse one acquisition; returns its result (nothing is written).

    Parameters
    ----------
    path : a video file or a frame folder.
    classifier : :class:`rbcflow.classify.inference.Classifier` (or anything with its
        ``predict``).
    settings : front-end, report and streaming parameters.
    fingerprint : the input's :func:`~rbcflow.provenance.input_fingerprint` if already taken.
    progress : progress-bar factory (see :data:`ProgressFactory`): a ``frames`` bar during the
        front end, then a ``tracks`` bar while the last tracks are classified.
    threaded : classify in a worker thread beside the front end (else inline).
    on_track : also called with each track's row and crops, after the classifier's sink (the
        batch keeps the review's strips with it).

    Raises
    ------
    RbcflowError
        The input cannot be read, or no cell was tracked (the caller makes a ``failed`` row).
    """
    settings = settings or AnalysisSettings()
    bar = progress or _no_progress
    sink = TrackClassifier(classifier, settings.report, threaded=threaded, cfg=settings.stream)
    try:
        feed = sink
        if on_track is not None:
            feed = lambda row, crops: (sink(row, crops), on_track(row, crops))  # noqa: E731
        run = track(
            path,
            settings.frontend,
            on_track=feed,
            progress=bar,
            fingerprint=fingerprint,
            reuse_mib=settings.stream.reuse_frames_mib,
        )
    except BaseException:
        sink.abort()
        raise
    t_fe = time.perf_counter()
    result = run.frontend
    with bar(len(result.tracks), "tracks", "track") as p:
        p(sink.set_progress(p))
        got = sink.finish()
    tracks = classified_tracks(schema.validate(result.tracks, schema.TRACKS, "tracks"), got)
    # rules and labels again, now that the acquisition-relative context columns are known
    tracks = relabel(tracks, settings.report)
    rates_of = getattr(classifier, "validated_rates", None)
    counts = {
        "tracks": len(tracks),
        **estimate_acquisition(
            tracks["label"],
            tracks["rule"],
            rates_of(settings.report) if rates_of is not None else None,
            settings.report,
            settings.estimate,
            p_tank_treading=tracks["p_tank_treading"].to_numpy(),
            temperature=getattr(classifier, "stage2_temperature", None),
        ),
    }
    finished = now_iso()
    row = {
        **base_row(run.source, classifier),
        "status": "ok",
        "message": _message(counts, run.warnings),
        "frames": result.n_frames,
        "fps": result.fps,
        "duration_s": result.n_frames / result.fps if result.fps else float("nan"),
        **counts,
        "params_id": settings.params_id(),
        "input_hash": short_checksum(run.input_info["hash"], 16),
        "analysed_at": finished,
    }
    record = run_record(
        input_info=run.input_info,
        parameters=settings.to_dict(),
        params_id=settings.params_id(),
        models=models_info(classifier),
        started=run.started,
        finished=finished,
        warnings=run.warnings,
        result=row,
        timings={**run.timings, "classify_tail": time.perf_counter() - t_fe},
    )
    record["frontend"] = json_safe(
        {
            "cell_diameter_px": result.cell_diameter,
            "scale": result.scale,
            "scale_auto": settings.frontend.crops.scale is None,
            "threshold": result.threshold,
            "noise": result.noise,
            "fragment_joins": result.n_joins,
        }
    )
    # the headline's verdict, from the front end's calibration and the quality indicators
    # (kept in run.json: the HTML page shows the same indicators without computing them again)
    indicators = quality_indicators(row, tracks, result.frame_stats)
    verdict_, reason = verdict(row, frontend=record["frontend"], quality=indicators)
    row.update(verdict=verdict_, verdict_reason=reason)
    record["result"].update(verdict=verdict_, verdict_reason=reason)
    record["quality"] = json_safe(indicators)
    gallery = [g for items in got.gallery.values() for g in items]
    final = dict(zip(tracks["track_id"].tolist(), tracks["label"].tolist(), strict=True))
    for g in gallery:  # a context rule may have relabelled a track after its gallery strip
        g.label = final.get(g.track_id, g.label)
    return AcquisitionResult(run, tracks, _none_for_nan(row), gallery, record)
