"""The front end for one video: background, detection, tracking and crops, streaming.

Two passes over the video:

1. Background pass: ``cfg.background.n_frames`` frames evenly spaced through the video are read
   (random access; or, where seeks are costly, in one sequential pass that keeps every frame
   for pass 2 when the whole video fits in ``reuse_mib``) and their per-pixel median is the
   background. The same sample frames then calibrate the video (:mod:`.calibration`): the
   automatic detection threshold, the camera noise and the cell diameter (hence the automatic
   crop scale).
2. Tracking pass: the frames are decoded in order by a reading thread, a few frames ahead, which
   also runs the coarse half of the detection (OpenCV releases the GIL while decoding and
   filtering, and the compiled per-cell loops of :mod:`rbcflow.frontend.kernels` release it
   too, so decoding and processing use both cores); the main thread refines the detections of
   a batch of frames at once (:func:`detect_stream`), then links (through the same per-frame
   loop as :func:`rbcflow.frontend.tracking.track_frames`,
   :func:`~rbcflow.frontend.tracking.link_iter`) and crops frame by frame. A track's crops are
   handed to ``on_track`` as soon as the track ends and then dropped, so memory does not grow
   with the length of the video (only positions, a few numbers per cell and frame, are kept).

``progress(n)`` is called with the number of frames done since the previous call: once per
sampled frame of the background pass, then every few frames of the tracking pass; the total is
:func:`progress_total` (sampled frames + frames of the video).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbcflow.config import FrontEndConfig
from rbcflow.errors import NoCellsError, VideoReadError
from rbcflow.frontend.background import (
    median_stack,
    read_samples,
    sample_indices,
    samples_that_fit,
)
from rbcflow.frontend.calibration import calibrate
from rbcflow.frontend.crops import CropCutter, inner_span
from rbcflow.frontend.detection import Coarse
from rbcflow.frontend.footprints import centroid_half_for
from rbcflow.frontend.stream import detect_stream, prefetch  # noqa: F401 (re-exported)
from rbcflow.frontend.tracking import Linker, link_iter
from rbcflow.frontend.tracks import Track, track_row, tracks_to_tables
from rbcflow.io.base import VideoReader
from rbcflow.run_settings import StreamConfig
from rbcflow.schema import FRAME_STATS, MIN_TRACK_LENGTH, validate


@dataclass
class FrontEndResult:
    """What the front end found in one video.

    Attributes
    ----------
    positions : DataFrame
        :data:`rbcflow.schema.POSITIONS`: one row per kept track and frame.
    tracks : DataFrame
        :data:`rbcflow.schema.TRACKS` plus ``n_detected`` (frames with a detection).
    frame_stats : DataFrame
        :data:`rbcflow.schema.FRAME_STATS`, one row per frame: frame, mean_intensity (raw),
        n_detections.
    background : (rows, cols) float32 ndarray
    n_frames : int
        Frames processed.
    fps : float
        Frame rate, frames/s.
    cell_diameter : float
        Estimated cell diameter, pixels at the original scale (NaN if none measured).
    warnings : list of str
    timings : dict
        Seconds per step: background, calibration, tracking (the whole second pass), and
        within it, in the main thread: wait_decode (blocked on the decoding thread, which also
        runs the coarse half of the detection), detection (its refinement half, by batches of
        ``cfg.batch_frames`` frames), linking, crops (cutting them, and each track's context
        measures from them), on_track.
    scale : float
        Crop resampling factor used.
    threshold : float
        Detection threshold used (local std, intensity units).
    noise : float
        Camera noise (robust std of frame - background), intensity units.
    cell_area : float
        Footprint area of one cell (:func:`one_cell_area` of the calibration frames'
        detections), pixels: the reference of the tracks' ``size_ratio``.
    n_joins : int
        Fragments joined to an ended track (:mod:`rbcflow.frontend.joining`).
    """

    positions: pd.DataFrame
    tracks: pd.DataFrame
    frame_stats: pd.DataFrame
    background: np.ndarray
    n_frames: int
    fps: float
    cell_diameter: float
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    threshold: float = math.nan
    noise: float = math.nan
    cell_area: float = math.nan
    n_joins: int = 0


def _drain(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames in order, each dropped from ``frames`` as it is handed out (memory falls
    as the tracking pass goes)."""
    frames.reverse()
    while frames:
        yield frames.pop()


def progress_total(reader: VideoReader, cfg: FrontEndConfig | None = None) -> int:
    """Total of the ``progress`` counts :func:`run_frontend` reports for ``reader``."""
    cfg = cfg or FrontEndConfig()
    n = len(reader)
    return min(n, samples_that_fit(reader, cfg.background)) + n


def run_frontend(
    reader: VideoReader,
    cfg: FrontEndConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_track: Callable[[dict, np.ndarray], None] | None = None,
    reuse_mib: float | None = None,
) -> FrontEndResult:
    """Track the cells of one video and cut their crops.

    Parameters
    ----------
    reader : VideoReader
        The video (random access for the background samples, then read in order once).
    cfg : FrontEndConfig, optional
        Parameters (default: ``FrontEndConfig()``).
    progress : callable, optional
        ``progress(n)``: ``n`` more frames done (see the module docstring; the total is
        :func:`progress_total`).
    on_track : callable, optional
        ``on_track(row, crops)`` for each kept track once it ends (and its join window,
        ``cfg.tracking.join_window`` frames, has passed): ``row`` its TRACKS row
        (dict), ``crops`` its ``(T, 31, 31)`` uint8 crops, raw intensities, centred on the
        positions of ``positions`` for that track. The row's acquisition-relative
        ``contrast_rel`` and ``sharpness_rel`` are NaN there (known once all tracks are: the
        result's ``tracks`` has them); it also holds their raw ``contrast`` and ``sharpness``.
    reuse_mib : float, optional
        When seeking is costly (``reader.costly_seeks``: compressed codecs through FFmpeg) and
        the whole video decoded takes at most this many MiB, the background's samples come
        from one sequential pass that keeps every frame, and the tracking pass takes those
        frames instead of decoding the video again (:func:`read_samples`' ``keep``)
        [default: ``StreamConfig().reuse_frames_mib``; 0: never].

    Returns
    -------
    FrontEndResult

    Raises
    ------
    VideoReadError
        Fewer than 6 frames (or a reader error).
    NoCellsError
        No track of at least ``min_length`` frames was found.
    """
    cfg = cfg or FrontEndConfig()
    timings: dict[str, float] = {}
    warns = list(getattr(reader, "warnings", []))
    n_total = len(reader)
    min_len = max(cfg.tracking.min_length, 1)
    if n_total < max(min_len, MIN_TRACK_LENGTH):
        raise VideoReadError(
            f"{n_total} frame(s): a video needs at least "
            f"{max(min_len, MIN_TRACK_LENGTH)} to track cells",
            reader.source,
        )

    # -- pass 1: background and calibration -------------------------------------------------
    t0 = time.perf_counter()
    k = samples_that_fit(reader, cfg.background)
    if k < min(cfg.background.n_frames, n_total):
        warns.append(
            f"background from {k} frames instead of {cfg.background.n_frames} "
            f"(frames of {reader.shape} do not fit {cfg.background.max_memory_mb} MiB)"
        )
    elif n_total < cfg.background.n_frames:
        # a median of few frames keeps slow cells in the background and so hides them
        warns.append(
            f"short video: background from all {n_total} frames (fewer than "
            f"{cfg.background.n_frames}); slow or stuck cells may be missed"
        )
    indices = sample_indices(n_total, k)
    reuse_mib = StreamConfig().reuse_frames_mib if reuse_mib is None else reuse_mib
    video_bytes = n_total * math.prod(reader.shape) * np.dtype(reader.dtype).itemsize
    # only where a seek costs many frames' decoding: elsewhere the samples are read by
    # seeking at the cost of a frame each, and keeping the frames would only take memory
    reuse = getattr(reader, "costly_seeks", False) and video_bytes <= reuse_mib * 2**20
    decoded: list[np.ndarray] | None = [] if reuse else None
    samples = read_samples(reader, indices, progress=progress, keep=decoded)
    background = median_stack(samples)
    t1 = time.perf_counter()
    timings["background"] = t1 - t0

    cal = calibrate(background, samples, cfg, reader.dtype)
    del samples
    warns.extend(cal.warnings)
    detector = cal.detector
    cutter = CropCutter(background, size=cfg.crops.size, scale=cal.scale, gain=cal.gain)
    # The last frames, for the crops of the frames that joining two fragments fills in.
    recent: dict[int, np.ndarray] = {}
    keep_frames = cfg.tracking.max_gap + max(cfg.tracking.join_window, 0) + 2
    linker = Linker(
        background,
        cfg.tracking,
        template_half=centroid_half_for(cal.size),
        min_separation=max(4.0, 0.6 * cal.size),
        crop_reach=cutter.reach,
        fill=lambda i, x, y: cutter(recent[i], x, y),
    )
    row_args = {
        "rows": reader.shape[0],
        "radius": cal.size / 2.0,
        "cell_area": cal.cell_area,
        "crop_radius": cal.size / 2.0 * cal.scale,  # the cell's radius in crop pixels
    }
    t2 = time.perf_counter()
    timings["calibration"] = t2 - t1

    # -- pass 2: detect, link, crop, frame by frame -----------------------------------------
    kept: list[Track] = []
    edges: list[bool] = []
    mean_intensity: list[float] = []
    n_detections: list[int] = []
    clock = {"wait_decode": 0.0, "detection": 0.0, "linking": 0.0, "crops": 0.0, "on_track": 0.0}

    rows: list[dict] = []

    def emit(tracks: list[Track]) -> None:
        for tr in tracks:
            flags = [e for _, e in tr.payload]
            a, b = inner_span(flags, cfg.tracking.min_length)
            crops = np.stack([c for c, _ in tr.payload[a:b]])
            edge = any(flags)
            tr.payload = []
            kept.append(tr)
            edges.append(edge)
            s = time.perf_counter()
            row = track_row(tr, edge, crops=crops, classified_frames=b - a, **row_args)
            rows.append(row)  # made once: reused for the table
            clock["crops"] += time.perf_counter() - s
            if on_track is not None:
                s = time.perf_counter()
                on_track(dict(rows[-1]), crops)
                clock["on_track"] += time.perf_counter() - s

    def linked(stream: Iterator[tuple[np.ndarray, Coarse, np.ndarray]]):
        # What the linker takes, and the per-frame side table on the way.
        for frame, coarse, xy in stream:
            t = len(mean_intensity)
            recent[t] = frame
            recent.pop(t - keep_frames, None)
            mean_intensity.append(coarse.mean)
            n_detections.append(len(xy))
            yield frame, xy, coarse.mass

    # the sequential pass decoded every frame: track those (each frame decoded once)
    frames = _drain(decoded) if decoded and len(decoded) == n_total else reader
    stream = detect_stream(frames, detector, cfg, clock=clock, progress=progress)
    try:
        for t, frame, finished in link_iter(linker, linked(stream)):
            if frame is not None:
                s = time.perf_counter()
                for tr in linker.active:
                    if tr.frames[-1] == t:
                        tr.payload.append(cutter(frame, tr.xs[-1], tr.ys[-1]))
                clock["crops"] += time.perf_counter() - s
            emit(finished)
    finally:
        stream.close()
    n_frames = len(mean_intensity)
    timings["tracking"] = time.perf_counter() - t2
    clock["linking"] = linker.seconds
    timings.update(clock)
    warns.extend(w for w in getattr(reader, "warnings", []) if w not in warns)
    if n_frames < n_total:
        warns.append(f"read {n_frames} of {n_total} frames")

    if not kept:
        raise NoCellsError(
            f"no cell track found: no object was followed for {cfg.tracking.min_length} "
            f"frames or more in {n_frames} frames (detection threshold {detector.threshold:.2f})",
            reader.source,
        )
    positions, tracks = tracks_to_tables(kept, edges, track_rows=rows)
    stats = validate(
        pd.DataFrame(
            {
                "frame": np.arange(n_frames),
                "mean_intensity": mean_intensity,
                "n_detections": n_detections,
            }
        ),
        FRAME_STATS,
        "frame_stats",
    )
    return FrontEndResult(
        positions=positions,
        tracks=tracks,
        frame_stats=stats,
        background=background,
        n_frames=n_frames,
        fps=float(reader.fps),
        cell_diameter=float(cal.diameter),
        warnings=warns,
        timings=timings,
        scale=float(cal.scale),
        threshold=float(detector.threshold),
        noise=float(detector.noise),
        cell_area=cal.cell_area,
        n_joins=linker.n_joins,
    )
