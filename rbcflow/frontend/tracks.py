"""Finished tracks: the per-track record the linker builds, and the POSITIONS and TRACKS tables.

A :class:`Track` is what :class:`rbcflow.frontend.tracking.Linker` builds frame by frame;
:func:`track_row` turns a finished one into its TRACKS row (with the geometry columns
``border_cut`` and ``size_ratio`` and the context column ``neighbour_frames``) and
:func:`tracks_to_tables` a set of them into the POSITIONS and TRACKS tables
(:mod:`rbcflow.schema`), where the acquisition-relative context columns ``contrast_rel``,
``sharpness_rel`` and ``sharpness_trend`` are filled in once all tracks are known.

Context measures (what the video knows and a crop-only model does not): per frame,
:func:`crop_context` measures the crop's contrast (noise-corrected RMS deviation of the central
disc from the local background level, over that level) and sharpness (noise-corrected RMS
gradient over RMS deviation in the same disc: a gradient-energy focus measure made independent
of contrast);
the track keeps their medians and the change of its sharpness from its first to its last third
(over the acquisition's median sharpness), and the share of its frames in which another
detection lay in its crop window (the linker's :attr:`Track.neighbours`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.schema import POSITIONS, TRACKS, validate


@dataclass
class Track:
    """One track being built (or finished).

    Attributes
    ----------
    track_id : int
        0 while active; finished tracks that are kept get ids 1, 2, ... in the order they end.
    frames, xs, ys : lists
        Frame index and refined position (pixels) of each frame of the track (consecutive).
    detected : list of bool
        Whether a detection was assigned in that frame (else: correlation or prediction).
    areas : list of float
        Area of the assigned detection, pixels (NaN where none, or when the caller gave no
        areas).
    vx, vy : float
        Current velocity estimate, pixels/frame.
    gap : int
        Frames since the last detection.
    interference : bool
        Another object came closer than the interference distance.
    payload : list
        Free for the caller (the front end appends one crop per frame); trimmed with the track.
    neighbours : list of bool
        Per frame: another detection lay in the track's crop window (set by the linker; see
        :meth:`rbcflow.frontend.tracking.Linker.step`).
    joins : int
        Fragments joined into this track (:mod:`rbcflow.frontend.joining`).
    motion : :class:`rbcflow.frontend.motion.LineFit` or None
        The linker's constant-velocity fit of the track's detected positions.
    end : tuple or None
        Once the track has ended and waits for a fragment: its robust end point and velocity
        ((x, y), (vx, vy)), :func:`rbcflow.frontend.joining.robust_end`, computed once.
    """

    frames: list[int] = field(default_factory=list)
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    detected: list[bool] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)
    vx: float = 0.0
    vy: float = 0.0
    gap: int = 0
    interference: bool = False
    track_id: int = 0
    payload: list[Any] = field(default_factory=list)
    neighbours: list[bool] = field(default_factory=list)
    joins: int = 0
    end: tuple | None = None
    motion: Any = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def last(self) -> tuple[float, float]:
        return self.xs[-1], self.ys[-1]

    def append(
        self, frame: int, x: float, y: float, detected: bool, area: float = math.nan
    ) -> None:
        self.frames.append(frame)
        self.xs.append(x)
        self.ys.append(y)
        self.detected.append(detected)
        self.areas.append(area)
        k = min(len(self.frames), 6)
        if k >= 2:
            dt = self.frames[-1] - self.frames[-k]
            self.vx = (self.xs[-1] - self.xs[-k]) / dt
            self.vy = (self.ys[-1] - self.ys[-k]) / dt

    def trim(self) -> None:
        """Remove trailing undetected frames (and the matching payload)."""
        n = len(self.detected)
        while n and not self.detected[n - 1]:
            n -= 1
        del self.frames[n:], self.xs[n:], self.ys[n:], self.detected[n:], self.areas[n:]
        del self.payload[n:], self.neighbours[n:]


_MAD_SIGMA = 1.4826  # robust std = 1.4826 * median absolute deviation (Gaussian noise)
_CHI2_2_MEDIAN = math.log(2.0)  # median of chi-square(2) / 2: |gradient|**2's median over mean
CONTEXT_FRAMES = 64
"""A track's contrast and sharpness are measured on at most this many of its crops, evenly
spaced through it (medians of 64 frames are as robust as of all; it bounds the cost of a long
track)."""


def _row_median(a: np.ndarray) -> np.ndarray:
    """Per-row median of a 2-d array (the upper one for an even count): one partition, several
    times faster than :func:`numpy.median` along an axis."""
    k = a.shape[1] // 2
    return np.partition(a, k, axis=1)[:, k]


@lru_cache(maxsize=8)
def _context_masks(size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (size, size) masks of the central disc (``r <= radius + 1``, at most
    ``size / 2 - 4.5``) and of the background ring (``r`` more than 2 px beyond the disc)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - c, yy - c)
    disc_r = min(radius + 1.0, c - 4.0)
    return r <= disc_r, r > disc_r + 2.0


def crop_context(crops: np.ndarray, radius: float = 6.5) -> tuple[np.ndarray, np.ndarray]:
    """Contrast and sharpness of each crop of a track (vectorised over the track's frames).

    The crop's background ring (pixels more than ``radius + 3`` from the centre) gives its
    local background level ``b`` (median) and the energies of the noise and static background
    texture: ``V`` the robust variance of the intensities (1.4826 MAD, squared) and ``G0`` the
    mean squared central-difference gradient (from its median). In the central disc
    (``r <= radius + 1``), with ``D`` the mean of ``(I - b)**2`` and ``G`` the mean squared
    gradient:

    - ``contrast = sqrt(max(D - V, 0)) / b``: the RMS deviation of the cell from the
      background, noise removed, relative to the background level (a transmission:
      illumination cancels);
    - ``sharpness = sqrt(max(G - G0, 0) / (D - V))``: RMS gradient over RMS deviation, noise
      removed, in 1 / crop pixel: about the inverse of the length over which the cell's
      intensity changes, so it falls as the cell blurs, whatever its contrast (the gradient
      energy, a classic focus function, Groen et al., Cytometry 6:81, 1985, normalised by the
      contrast energy); NaN when ``D - V <= V`` (no cell above the noise to measure).

    Parameters
    ----------
    crops : (T, size, size) uint8 ndarray
        Raw crops (:mod:`rbcflow.frontend.crops`), the cell at the centre.
    radius : float
        The cell's radius in crop pixels.

    Returns
    -------
    contrast, sharpness : (T,) float64 ndarrays

    Examples
    --------
    >>> yy, xx = np.mgrid[0:31, 0:31] - 15.0
    >>> ring = np.exp(-0.5 * ((np.hypot(xx, yy) - 5) / 1.2) ** 2)
    >>> blurred = np.exp(-0.5 * ((np.hypot(xx, yy) - 5) / 2.4) ** 2)
    >>> crops = np.stack([120 - 30 * ring, 120 - 15 * ring, 120 - 30 * blurred]).round()
    >>> contrast, sharpness = crop_context(crops.astype(np.uint8), 5.0)
    >>> [round(float(v), 2) for v in contrast / contrast[0]]
    [1.0, 0.5, 1.2]
    >>> [round(float(v), 2) for v in sharpness / sharpness[0]]
    [1.0, 0.98, 0.46]
    """
    c = np.asarray(crops, dtype=np.float32)
    n, size = c.shape[0], c.shape[1]
    if n == 0:
        return np.zeros(0), np.zeros(0)
    disc, ring = _context_masks(size, float(radius))
    flat = c.reshape(n, -1)
    ring_px = flat[:, ring.ravel()]
    level = _row_median(ring_px)
    var_bg = (_MAD_SIGMA * _row_median(np.abs(ring_px - level[:, None]))) ** 2
    dev = flat[:, disc.ravel()] - level[:, None]
    signal = np.mean(dev * dev, axis=1) - var_bg
    # central-difference gradient on the crop's inner (size - 2)^2 pixels
    gx = 0.5 * (c[:, 1:-1, 2:] - c[:, 1:-1, :-2])
    gy = 0.5 * (c[:, 2:, 1:-1] - c[:, :-2, 1:-1])
    grad2 = (gx * gx + gy * gy).reshape(n, -1)
    grad_bg = _row_median(grad2[:, ring[1:-1, 1:-1].ravel()]) / _CHI2_2_MEDIAN
    e_grad = np.mean(grad2[:, disc[1:-1, 1:-1].ravel()], axis=1) - grad_bg
    with np.errstate(divide="ignore", invalid="ignore"):
        contrast = np.where(level > 0, np.sqrt(np.maximum(signal, 0.0)) / level, np.nan)
        sharpness = np.where(signal > var_bg, np.sqrt(np.maximum(e_grad, 0.0) / signal), np.nan)
    return contrast.astype(np.float64), sharpness.astype(np.float64)


def _median(values: np.ndarray) -> float:
    """Median of the finite values; NaN when none (silently)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def context_row(
    tr: Track, crops: np.ndarray | None = None, crop_radius: float = 6.5
) -> dict[str, float]:
    """A track's context measures: ``neighbour_frames`` (final), the raw ``contrast``,
    ``sharpness`` and ``sharpness_change`` that :func:`tracks_to_tables` makes
    acquisition-relative, and ``contrast_rel``, ``sharpness_rel``, ``sharpness_trend`` NaN
    until then.

    ``neighbour_frames`` is the mean of :attr:`Track.neighbours` (NaN when the linker did not
    record them). ``contrast`` and ``sharpness`` are the medians over the track's frames of
    :func:`crop_context`'s (on :data:`CONTEXT_FRAMES` frames evenly spaced through the track at
    most); ``sharpness_change`` is the median sharpness of the last third of those frames less
    that of the first third (NaN with fewer than 3 crops or a third without a measurable
    frame).
    """
    n = len(tr)
    out = {
        "neighbour_frames": float(np.mean(tr.neighbours))
        if n and len(tr.neighbours) == n
        else math.nan,
        "contrast_rel": math.nan,
        "sharpness_rel": math.nan,
        "sharpness_trend": math.nan,
        "contrast": math.nan,
        "sharpness": math.nan,
        "sharpness_change": math.nan,
    }
    if crops is None or len(crops) == 0:
        return out
    if len(crops) > CONTEXT_FRAMES:
        crops = crops[np.linspace(0, len(crops) - 1, CONTEXT_FRAMES).round().astype(np.int64)]
    contrast, sharp = crop_context(crops, crop_radius)
    out["contrast"], out["sharpness"] = _median(contrast), _median(sharp)
    k = len(sharp) // 3
    if k >= 1:
        out["sharpness_change"] = _median(sharp[-k:]) - _median(sharp[:k])
    return out


def relative_to_median(values: Iterable[float], of: Iterable[float] | None = None) -> np.ndarray:
    """``values`` over the median of ``of`` (default: of ``values``; finite values only); NaN
    where unknown, or everywhere when that median is not positive.

    Examples
    --------
    >>> relative_to_median([1.0, 2.0, 4.0, float("nan")]).tolist()
    [0.5, 1.0, 2.0, nan]
    >>> relative_to_median([-1.0, 0.5], of=[1.0, 2.0, 4.0]).tolist()
    [-0.5, 0.25]
    """
    v = np.asarray(list(values), dtype=np.float64)
    ref = _median(v if of is None else np.asarray(list(of), dtype=np.float64))
    if not (math.isfinite(ref) and ref > 0):
        return np.full(v.shape, math.nan)
    return v / ref


def track_row(
    tr: Track,
    edge: bool = False,
    *,
    rows: int | None = None,
    radius: float = math.nan,
    cell_area: float = math.nan,
    crops: np.ndarray | None = None,
    crop_radius: float = 6.5,
    classified_frames: int | None = None,
) -> dict:
    """The TRACKS row of a finished track (plus ``n_detected``, and the raw ``contrast``,
    ``sharpness`` and ``sharpness_change`` that :func:`tracks_to_tables` makes
    acquisition-relative: see :func:`context_row`).

    Parameters
    ----------
    tr : Track
    edge : bool
        The track's crops reached past the frame border.
    rows : int, optional
        Frame height, pixels; with ``radius``, gives ``border_cut``.
    radius : float
        Cell radius, pixels: the cell is cut by the top or bottom border in a frame where its
        centre is closer than this to it.
    cell_area : float
        The video's typical area of one cell's detection, pixels: ``size_ratio`` is the
        track's median detected area over it (about 2 for two cells moving as one object).
    crops : (T, 31, 31) uint8 ndarray, optional
        The track's crops: its contrast and sharpness (:func:`context_row`); NaN without them.
    crop_radius : float
        Cell radius in crop pixels (:func:`crop_context`).
    classified_frames : int, optional
        How many of its frames' crops go to the classifiers
        (:func:`rbcflow.frontend.crops.inner_span`); default all.
    """
    n = len(tr)
    span = max(tr.frames[-1] - tr.frames[0], 1)
    ys = np.asarray(tr.ys)
    border_cut = math.nan
    if rows is not None and math.isfinite(radius):
        border_cut = float(np.mean((ys < radius) | (ys > rows - 1 - radius)))
    areas = np.asarray(tr.areas, dtype=np.float64)
    areas = areas[np.isfinite(areas)]
    size_ratio = (
        float(np.median(areas)) / cell_area
        if areas.size and math.isfinite(cell_area) and cell_area > 0
        else math.nan
    )
    return {
        "track_id": tr.track_id,
        "first_frame": tr.frames[0],
        "last_frame": tr.frames[-1],
        "n_frames": n,
        "x_start": tr.xs[0],
        "x_end": tr.xs[-1],
        "y_mean": float(np.mean(ys)),
        "speed": (tr.xs[-1] - tr.xs[0]) / span,
        "interference": bool(tr.interference),
        "edge": bool(edge),
        "classified_frames": n if classified_frames is None else int(classified_frames),
        "border_cut": border_cut,
        "size_ratio": size_ratio,
        "n_detected": int(sum(tr.detected)),
        **context_row(tr, crops, crop_radius),
    }


def tracks_to_tables(
    tracks: Iterable[Track],
    edges: Iterable[bool] | None = None,
    *,
    track_rows: list[dict] | None = None,
    **row_args,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """POSITIONS and TRACKS tables of finished tracks.

    Parameters
    ----------
    tracks : iterable of Track
    edges : iterable of bool, optional
        The ``edge`` flag of each track (from the crops); False when None.
    track_rows : list of dict, optional
        The tracks' :func:`track_row` rows if already made (the front end makes each once, as
        the track ends); made here from ``row_args`` when None.
    **row_args
        ``rows``, ``radius``, ``cell_area``, ``crop_radius`` of :func:`track_row`.

    Returns
    -------
    positions : DataFrame
        :data:`rbcflow.schema.POSITIONS`, sorted by track_id then frame.
    tracks : DataFrame
        :data:`rbcflow.schema.TRACKS` plus ``n_detected``, sorted by track_id; ``contrast_rel``
        and ``sharpness_rel`` are the rows' raw ``contrast`` and ``sharpness`` over their
        medians over these tracks (:func:`relative_to_median`), ``sharpness_trend`` their
        ``sharpness_change`` over the same median sharpness.
    """
    tracks = list(tracks)
    edges = [False] * len(tracks) if edges is None else list(edges)
    rows = track_rows
    if rows is None:
        rows = [track_row(tr, e, **row_args) for tr, e in zip(tracks, edges, strict=True)]
    pos = {
        "frame": np.concatenate([np.asarray(tr.frames, np.int64) for tr in tracks])
        if tracks
        else np.zeros(0, np.int64),
        "track_id": np.concatenate([np.full(len(tr), tr.track_id, np.int64) for tr in tracks])
        if tracks
        else np.zeros(0, np.int64),
        "x": np.concatenate([np.asarray(tr.xs) for tr in tracks]) if tracks else np.zeros(0),
        "y": np.concatenate([np.asarray(tr.ys) for tr in tracks]) if tracks else np.zeros(0),
        "detected": np.concatenate([np.asarray(tr.detected, bool) for tr in tracks])
        if tracks
        else np.zeros(0, bool),
    }
    positions = validate(pd.DataFrame(pos), POSITIONS, "positions")
    positions = positions.sort_values(["track_id", "frame"], kind="stable", ignore_index=True)
    table = pd.DataFrame(rows, columns=[*TRACKS, "n_detected"])
    raw = {k: [r.get(k, math.nan) for r in rows] for k in ("contrast", "sharpness")}
    table["contrast_rel"] = relative_to_median(raw["contrast"])
    table["sharpness_rel"] = relative_to_median(raw["sharpness"])
    table["sharpness_trend"] = relative_to_median(
        [r.get("sharpness_change", math.nan) for r in rows], of=raw["sharpness"]
    )
    table = validate(table, TRACKS, "tracks").sort_values("track_id", ignore_index=True)
    table["n_detected"] = table["n_detected"].astype(np.int64)
    return positions, table
