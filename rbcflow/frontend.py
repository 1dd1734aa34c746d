"""The front end for one video: background, detection, tracking and crops, streaming.

Two passes over the video:

1. Background pass: ``cfg.background.n_frames`` frames evenly spaced through the video are read
   (random access) and their per-pixel median is the background. The same sample frames then
   calibrate the video: the automatic detection threshold, the camera noise and the cell
   diameter (hence the automatic crop scale).
2. Tracking pass: the frames are decoded in order by a reading thread, a few frames ahead, which
   also runs the coarse half of the detection (OpenCV releases the GIL while decoding and
   filtering, and the compiled per-cell loops of :mod:`rbcflow.kernels` release it too, so
   decoding and processing use both cores); the main thread refines the detections of a batch
   of frames at once, then links and crops frame by frame. A track's crops are handed to
   ``on_track`` as soon as the track ends and then dropped, so memory does not grow with the
   length of the video (only positions, a few numbers per cell and frame, are kept).

``progress(n)`` is called with the number of frames done since the previous call: once per
sampled frame of the background pass, then every few frames of the tracking pass; the total is
:func:`progress_total` (sampled frames + frames of the video).
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbcflow.background import median_stack, read_samples, sample_indices, samples_that_fit
from rbcflow.config import FrontEndConfig
from rbcflow.crops import CropCutter, estimate_diameter
from rbcflow.detection import FrameDetector, centroid_half_for, footprint_radius
from rbcflow.errors import NoCellsError, VideoReadError
from rbcflow.io.base import VideoReader
from rbcflow.schema import MIN_TRACK_LENGTH, validate
from rbcflow.tracking import Linker, Track, track_row, tracks_to_tables

FRAME_STATS: dict[str, str] = {
    "frame": "int64",
    "mean_intensity": "float64",
    "n_detections": "int64",
}
"""Columns of :attr:`FrontEndResult.frame_stats`."""

TRAINING_BACKGROUND = 125.0
"""Background level of the training crops (100-140): 16-bit video is scaled to it."""

DIAMETER_WARN = (0.75, 1.35)
"""At scale 1, a cell diameter outside this range relative to the training crops' warns."""

_PROGRESS_EVERY = 8


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
        One row per frame: frame, mean_intensity (raw), n_detections.
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
        ``cfg.batch_frames`` frames), linking, crops, on_track.
    scale : float
        Crop resampling factor used.
    threshold : float
        Detection threshold used (local std, intensity units).
    noise : float
        Camera noise (robust std of frame - background), intensity units.
    cell_area : float
        Footprint area of one cell (:func:`one_cell_area` of the calibration frames'
        detections), pixels: the reference of the tracks' ``size_ratio``.
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


def one_cell_area(areas: Iterable[float]) -> float:
    """Typical footprint area of one cell, from the detections of sample frames.

    The median of all detections, then the median of those between half and 1.4 times it:
    pairs of touching cells (about twice the area) then barely move the answer as long as
    they are a minority of the objects. Where pairs are a large share of all objects (a too
    dense sample) the reference rises and fewer pairs reach the rule's threshold; where
    out-of-focus cells dominate, the reference is theirs. Both err on the side of keeping
    tracks, never of rejecting single cells.

    Examples
    --------
    >>> one_cell_area([100, 104, 96, 98, 102, 200, 210, 205])  # 3 pairs among 8 objects
    100.0
    """
    a = np.asarray(list(areas), dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan
    m0 = float(np.median(a))
    near = a[(a >= 0.5 * m0) & (a <= 1.4 * m0)]
    return float(np.median(near)) if near.size else m0


def progress_total(reader: VideoReader, cfg: FrontEndConfig | None = None) -> int:
    """Total of the ``progress`` counts :func:`run_frontend` reports for ``reader``."""
    cfg = cfg or FrontEndConfig()
    n = len(reader)
    return min(n, samples_that_fit(reader, cfg.background)) + n


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetch(items: Iterable, depth: int = 8) -> Iterator:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Exceptions of the producer are re-raised in the consumer; closing the generator early stops
    the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, who re-raises it
            put(_Failed(exc))

    thread = threading.Thread(target=work, name="rbcflow-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def run_frontend(
    reader: VideoReader,
    cfg: FrontEndConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_track: Callable[[dict, np.ndarray], None] | None = None,
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
        ``on_track(row, crops)`` for each kept track as soon as it ends: ``row`` its TRACKS row
        (dict), ``crops`` its ``(T, 31, 31)`` uint8 crops, raw intensities, centred on the
        positions of ``positions`` for that track.

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
    samples = read_samples(reader, indices, progress=progress)
    background = median_stack(samples)
    t1 = time.perf_counter()
    timings["background"] = t1 - t0

    detector = FrameDetector.calibrate(background, samples, cfg.detection)
    pick = samples[np.unique(np.linspace(0, len(samples) - 1, 12).astype(int))]
    found, masses = [], []
    for f in pick:
        found.append(detector(f)[0])
        masses.append(detector.last_mass)
    # The one-cell reference against which a track's footprint area says whether it is two
    # cells moving as one object (see one_cell_area).
    cell_area = one_cell_area(np.concatenate(masses) if masses else [])
    diameter = estimate_diameter(pick, background, found, max(detector.noise, 0.5))
    size_for_windows = diameter if math.isfinite(diameter) else cfg.crops.target_diameter
    if not math.isfinite(diameter):
        warns.append("no cell could be measured in the sampled frames; cell size unknown")
    detector.centroid_half = centroid_half_for(size_for_windows)
    # Centre-to-edge distance of whole cells, so that cells cut by the border get a centre.
    radii = [
        r
        for f in pick
        for r in footprint_radius(
            f,
            background,
            detector(f)[0],
            detector.centroid_half,
            detector.noise,
            detector.last_offset,
        )
    ]
    if radii:
        detector.edge_radius = float(np.median(radii))
    del samples, pick
    scale = cfg.crops.scale
    if scale is None:
        scale = cfg.crops.target_diameter / diameter if math.isfinite(diameter) else 1.0
    elif math.isfinite(diameter) and not (
        DIAMETER_WARN[0] <= diameter / cfg.crops.target_diameter <= DIAMETER_WARN[1]
    ):
        warns.append(
            f"cells measure about {diameter:.1f} px across, training crops "
            f"{cfg.crops.target_diameter:g} px: consider --scale auto "
            f"(scale {cfg.crops.target_diameter / diameter:.2f})"
        )
    gain = 1.0
    if np.dtype(reader.dtype) != np.uint8:
        level = float(np.median(background))
        gain = TRAINING_BACKGROUND / level if level > 0 else 1.0
    cutter = CropCutter(background, size=cfg.crops.size, scale=scale, gain=gain)
    linker = Linker(
        background,
        cfg.tracking,
        template_half=centroid_half_for(size_for_windows),
        min_separation=max(4.0, 0.6 * size_for_windows),
    )
    row_args = {"rows": reader.shape[0], "radius": size_for_windows / 2.0, "cell_area": cell_area}
    t2 = time.perf_counter()
    timings["calibration"] = t2 - t1

    # -- pass 2: detect, link, crop, frame by frame -----------------------------------------
    kept: list[Track] = []
    edges: list[bool] = []
    mean_intensity: list[float] = []
    n_detections: list[int] = []
    clock = {"wait_decode": 0.0, "detection": 0.0, "linking": 0.0, "crops": 0.0, "on_track": 0.0}

    def emit(tracks: list[Track]) -> None:
        for tr in tracks:
            crops = np.stack([c for c, _ in tr.payload])
            edge = any(e for _, e in tr.payload)
            tr.payload = []
            kept.append(tr)
            edges.append(edge)
            if on_track is not None:
                s = time.perf_counter()
                on_track(track_row(tr, edge, **row_args), crops)
                clock["on_track"] += time.perf_counter() - s

    pending = 0
    # The decoding thread also runs the first, OpenCV-bound half of the detection; the main
    # thread refines the detections of ``batch_frames`` frames at once (a fixed number of numpy
    # calls per batch), then links and crops frame by frame.
    stream = prefetch(((f, detector.coarse(f)) for f in reader), cfg.queue_frames)
    try:
        t = -1
        while True:
            s0 = time.perf_counter()
            batch = list(itertools.islice(stream, max(1, cfg.batch_frames)))
            s1 = time.perf_counter()
            clock["wait_decode"] += s1 - s0
            if not batch:
                break
            frames = [f for f, _ in batch]
            coarses = [c for _, c in batch]
            found = detector.refine_many(frames, coarses)
            clock["detection"] += time.perf_counter() - s1
            for frame, coarse, xy in zip(frames, coarses, found, strict=True):
                t += 1
                mean_intensity.append(coarse.mean)
                n_detections.append(len(xy))
                s2 = time.perf_counter()
                finished = linker.step(t, frame, xy, coarse.mass)
                s3 = time.perf_counter()
                for tr in linker.active:
                    if tr.frames[-1] == t:
                        tr.payload.append(cutter(frame, tr.xs[-1], tr.ys[-1]))
                s4 = time.perf_counter()
                clock["linking"] += s3 - s2
                clock["crops"] += s4 - s3
                emit(finished)
            pending += len(batch)
            del batch, frames, coarses
            if progress is not None and pending >= _PROGRESS_EVERY:
                progress(pending)
                pending = 0
    finally:
        stream.close()
    emit(linker.finish())
    if progress is not None and pending:
        progress(pending)
    n_frames = len(mean_intensity)
    timings["tracking"] = time.perf_counter() - t2
    timings.update(clock)
    warns.extend(w for w in getattr(reader, "warnings", []) if w not in warns)
    if n_frames < n_total:
        warns.append(f"read {n_frames} of {n_total} frames")

    if not kept:
        raise NoCellsError(
            f"no cell track found: no object was followed for {cfg.tracking.min_length} "
            f"frames or more in {n_frames} frames (detection threshold {detector.threshold:.2f}"
            f"; try a lower --threshold if the video does show cells)",
            reader.source,
        )
    positions, tracks = tracks_to_tables(kept, edges, **row_args)
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
        cell_diameter=float(diameter),
        warnings=warns,
        timings=timings,
        scale=float(scale),
        threshold=float(detector.threshold),
        noise=float(detector.noise),
        cell_area=cell_area,
    )
