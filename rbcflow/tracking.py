"""Left-to-right constant-velocity linking with cross-correlation refinement.

Cells in the shear-flow chamber move along +x at a steady speed. Each frame, every active track
predicts its position from its velocity; detections are assigned to tracks by minimum total
distance (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`) within a gate; then
each track's position is refined by cross-correlating the cell's background-subtracted patch of
the previous frame with the current frame around the assigned detection (or the prediction):
normalised cross-correlation (:func:`rbcflow.kernels.correlation_peaks`, all tracks of a frame
in one compiled call) and a parabolic fit of the peak give the frame-to-frame displacement to a
small fraction of a pixel. The refined position blends the
detection centroid (absolute, noisier) with previous position + displacement (precise, but it
would drift if used alone): ``x = w * centroid + (1 - w) * (x_prev + shift)``. A steady centre
matters for the crops: the classifier reads shape changes, not jitter.

A track with no detection for a frame keeps going on the correlation (or its prediction) for up
to ``max_gap`` frames; it ends when its prediction leaves the field or it stays lost longer.
Trailing undetected frames are removed; tracks shorter than ``min_length`` are dropped. A track
is flagged ``interference`` when another object comes closer than ``interference_distance``.

API layers (STYLE habit 2): :class:`Linker` is the per-frame core (``step`` returns the tracks
that finished), :func:`track_frames` a generator over a stream of frames, and
:func:`tracks_to_tables` turns finished tracks into the POSITIONS and TRACKS tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from rbcflow.config import TrackingConfig
from rbcflow.kernels import correlation_peaks
from rbcflow.schema import POSITIONS, TRACKS, validate

_INFEASIBLE = 1e9


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
        del self.payload[n:]


def correlation_shift(
    prev: np.ndarray,
    cur: np.ndarray,
    background: np.ndarray,
    last: tuple[float, float],
    centre: tuple[float, float],
    half: int,
    search: int,
) -> tuple[float, float, float] | None:
    """Where the cell at ``last`` in ``prev`` is in ``cur``, by normalised cross-correlation.

    The ``(2 * half + 1)`` square patch of ``prev - background`` around ``last`` is matched
    against ``cur - background`` within ``search`` pixels of ``centre``; the peak is located to
    sub-pixel precision by a parabola through it and its neighbours along x and y. One cell of
    :func:`correlation_shifts`.

    Parameters
    ----------
    prev, cur : (rows, cols) ndarray
        Consecutive raw frames.
    background : (rows, cols) float32 ndarray
    last : (x, y)
        Position of the cell in ``prev``, pixels.
    centre : (x, y)
        Expected position in ``cur`` (detection or prediction), pixels.
    half, search : int
        Template half side and search half range, pixels.

    Returns
    -------
    (x, y, r) or None
        The cell's position in ``cur`` (pixels) and the peak correlation in [-1, 1]; None when
        the patches would leave the frame.
    """
    x, y, r = correlation_shifts(prev, cur, background, [last], [centre], half, search)[0]
    return None if math.isnan(r) else (float(x), float(y), float(r))


def correlation_shifts(
    prev: np.ndarray,
    cur: np.ndarray,
    background: np.ndarray,
    last,
    centre,
    half: int,
    search: int,
) -> np.ndarray:
    """:func:`correlation_shift` for several cells of the same two frames, in one compiled
    call (:func:`rbcflow.kernels.correlation_peaks`).

    Parameters
    ----------
    last, centre : (m, 2) array-like
        Positions (x, y) in ``prev`` and expected positions in ``cur``, pixels.

    Returns
    -------
    (m, 3) float64 ndarray
        ``x, y, r`` per cell; NaN where the patches would leave the frame.
    """
    last = np.asarray(last, dtype=np.float64).reshape(-1, 2)
    centre = np.asarray(centre, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(last), 3))
    correlation_peaks(
        prev,
        cur,
        background,
        np.rint(last).astype(np.int64),
        np.rint(centre).astype(np.int64),
        int(half),
        int(search),
        out,
    )
    out[:, :2] += last
    return out


class Linker:
    """Per-frame linking core.

    Parameters
    ----------
    background : (rows, cols) float32 ndarray
        Median background (for the correlation patches and the field size).
    cfg : TrackingConfig
    template_half : int
        Half side of the correlation template, pixels (about the cell radius + 3).
    min_separation : float
        A detection closer than this to an active track's position never starts a new track
        (a cell split in two components must not give a duplicate track), pixels.

    Examples
    --------
    >>> bg = np.zeros((50, 200), np.float32)
    >>> link = Linker(bg, TrackingConfig(refine=False))
    >>> done = []
    >>> for t in range(10):
    ...     done += link.step(t, None, np.array([[10.0 + 5 * t, 25.0]]))
    >>> done += link.finish()
    >>> len(done), done[0].xs[:3]
    (1, [10.0, 15.0, 20.0])
    """

    def __init__(
        self,
        background: np.ndarray,
        cfg: TrackingConfig | None = None,
        *,
        template_half: int = 8,
        min_separation: float = 6.0,
    ):
        self.cfg = cfg or TrackingConfig()
        self.background = np.asarray(background, dtype=np.float32)
        self.rows, self.cols = self.background.shape
        self.half = int(template_half)
        self.min_separation = float(min_separation)
        self.active: list[Track] = []
        self.prev_frame: np.ndarray | None = None
        self.prev_index: int | None = None
        self.prior_vx = 0.0  # median speed of established tracks, for new tracks' 2nd frame
        self.n_finished = 0
        self.n_dropped = 0

    # -- association --------------------------------------------------------------------
    def _assign(self, t: int, xy: np.ndarray) -> np.ndarray:
        """For each active track, the index of its detection or -1."""
        cfg = self.cfg
        n_t, n_d = len(self.active), len(xy)
        match = np.full(n_t, -1, dtype=np.int64)
        if n_t == 0 or n_d == 0:
            return match
        last = np.array([tr.last for tr in self.active])
        dt = np.array([t - tr.frames[-1] for tr in self.active], dtype=np.float64)
        established = np.array([len(tr) >= 2 for tr in self.active])
        vel = np.array(
            [(tr.vx, tr.vy) if len(tr) >= 2 else (self.prior_vx, 0.0) for tr in self.active]
        )
        pred = last + vel * dt[:, None]
        dist = np.hypot(xy[None, :, 0] - pred[:, None, 0], xy[None, :, 1] - pred[:, None, 1])
        move_x = xy[None, :, 0] - last[:, None, 0]
        move_y = np.abs(xy[None, :, 1] - last[:, None, 1])
        dtc = dt[:, None]
        # New tracks have no velocity yet: a box of plausible motions, and a penalty so that
        # an established track wins a contested detection.
        box = (
            (move_x >= cfg.min_speed * dtc)
            & (move_x <= cfg.max_speed * dtc)
            & (move_y <= cfg.max_dy * dtc)
        )
        feasible = np.where(established[:, None], dist <= cfg.search_radius, box)
        cost = np.where(established[:, None], dist, dist + cfg.search_radius)
        cost = np.where(feasible, cost, _INFEASIBLE)
        rows, cols = linear_sum_assignment(cost)
        ok = feasible[rows, cols]
        match[rows[ok]] = cols[ok]
        return match

    # -- one frame ----------------------------------------------------------------------
    def step(
        self,
        t: int,
        frame: np.ndarray | None,
        xy: np.ndarray,
        areas: np.ndarray | None = None,
    ) -> list[Track]:
        """Link frame ``t``.

        Parameters
        ----------
        t : int
            Frame index (increasing by 1 each call).
        frame : (rows, cols) ndarray or None
            Raw frame (None only with ``refine=False``).
        xy : (n, 2) float ndarray
            Detections (x, y) of frame ``t``, pixels.
        areas : (n,) float ndarray, optional
            Area of each detection, pixels (kept per track frame: see :attr:`Track.areas`).

        Returns
        -------
        list of Track
            Tracks that ended at this step and are kept (>= ``min_length`` frames), with
            ids assigned.
        """
        cfg = self.cfg
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        area = np.full(len(xy), math.nan) if areas is None else np.asarray(areas, dtype=np.float64)
        match = self._assign(t, xy)
        refine = cfg.refine and frame is not None and self.prev_frame is not None
        w = cfg.centroid_weight
        still: list[Track] = []
        own: list[int] = []  # detection of each surviving track in this frame, or -1
        ended: list[Track] = []
        # Where each track is expected: its detection, else its prediction.
        plan = []
        for tr, j in zip(self.active, match, strict=True):
            lx, ly = tr.last
            dt = t - tr.frames[-1]
            px, py = lx + tr.vx * dt, ly + tr.vy * dt
            if j < 0 and not (0 <= px <= self.cols - 1 and 0 <= py <= self.rows - 1):
                ended.append(tr)  # left the field
                continue
            centre = (xy[j, 0], xy[j, 1]) if j >= 0 else (px, py)
            plan.append((tr, int(j), (px, py), centre, refine and dt == 1))
        # One correlation call for all the tracks followed from the previous frame.
        corr = [k for k, item in enumerate(plan) if item[4]]
        shifts = {}
        if corr:
            found = correlation_shifts(
                self.prev_frame,
                frame,
                self.background,
                [plan[k][0].last for k in corr],
                [plan[k][3] for k in corr],
                self.half,
                cfg.refine_search,
            )
            shifts = {k: f for k, f in zip(corr, found, strict=True) if f[2] >= cfg.min_correlation}
        for k, (tr, j, (px, py), centre, _) in enumerate(plan):
            shift = shifts.get(k)
            if j >= 0:
                x, y = centre
                if shift is not None:
                    x = w * x + (1 - w) * shift[0]
                    y = w * y + (1 - w) * shift[1]
                tr.gap = 0
            else:
                tr.gap += 1
                if tr.gap > cfg.max_gap:
                    ended.append(tr)
                    continue
                x, y = (shift[0], shift[1]) if shift is not None else (px, py)
            tr.append(t, float(x), float(y), bool(j >= 0), float(area[j]) if j >= 0 else math.nan)
            still.append(tr)
            own.append(j)
        # New tentative tracks from the detections nobody took.
        taken = np.zeros(len(xy), dtype=bool)
        taken[match[match >= 0]] = True
        if still and len(xy):
            pos = np.array([tr.last for tr in still])
            near = np.hypot(xy[:, None, 0] - pos[None, :, 0], xy[:, None, 1] - pos[None, :, 1]).min(
                axis=1
            )
            taken |= near < self.min_separation
        for j in np.flatnonzero(~taken):
            tr = Track()
            tr.append(t, float(xy[j, 0]), float(xy[j, 1]), True, float(area[j]))
            still.append(tr)
            own.append(int(j))
        self.active = still
        self._flag_interference(xy, own)
        speeds = [tr.vx for tr in still if len(tr) >= 3]
        if speeds:
            self.prior_vx = float(np.median(speeds))
        self.prev_frame, self.prev_index = frame, t
        return self._close(ended)

    def _flag_interference(self, xy: np.ndarray, own: list[int]) -> None:
        """Flag tracks with another object (track or detection) within the distance.

        A track's own detection, and fragments of it (detections closer than
        ``min_separation``), are not other objects.
        """
        if not self.active:
            return
        lim = self.cfg.interference_distance
        pos = np.array([tr.last for tr in self.active])
        n = len(pos)
        d = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])
        d[np.arange(n), np.arange(n)] = np.inf
        close = (d < lim).any(axis=1)
        if len(xy):
            dd = np.hypot(pos[:, None, 0] - xy[None, :, 0], pos[:, None, 1] - xy[None, :, 1])
            own_idx = np.asarray(own)
            has = own_idx >= 0
            dd[np.flatnonzero(has), own_idx[has]] = np.inf
            close |= ((dd < lim) & (dd >= self.min_separation)).any(axis=1)
        for tr in np.asarray(self.active, dtype=object)[close]:
            tr.interference = True

    def _close(self, ended: list[Track]) -> list[Track]:
        kept = []
        for tr in ended:
            tr.trim()
            if len(tr) >= self.cfg.min_length:
                self.n_finished += 1
                tr.track_id = self.n_finished
                kept.append(tr)
            else:
                self.n_dropped += 1
        return kept

    def finish(self) -> list[Track]:
        """End every active track (end of the video); returns the kept ones."""
        ended, self.active = self.active, []
        return self._close(ended)


def track_frames(
    frames: Iterable[np.ndarray],
    detect,
    background: np.ndarray,
    cfg: TrackingConfig | None = None,
    *,
    template_half: int = 8,
    min_separation: float = 6.0,
) -> Iterator[Track]:
    """Generator of finished tracks over a stream of frames.

    Parameters
    ----------
    frames : iterable of (rows, cols) ndarray
        Raw frames, in order (frame indices from 0).
    detect : callable
        ``detect(frame) -> (xy, ...)`` with ``xy`` an (n, 2) array of (x, y), e.g. a
        :class:`rbcflow.detection.FrameDetector`.
    background : (rows, cols) float32 ndarray
    cfg : TrackingConfig

    Yields
    ------
    Track
        Each kept track as soon as it ends.
    """
    link = Linker(background, cfg, template_half=template_half, min_separation=min_separation)
    for t, frame in enumerate(frames):
        yield from link.step(t, frame, detect(frame)[0])
    yield from link.finish()


def track_row(
    tr: Track,
    edge: bool = False,
    *,
    rows: int | None = None,
    radius: float = math.nan,
    cell_area: float = math.nan,
) -> dict:
    """The TRACKS row of a finished track (plus ``n_detected``).

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
        "border_cut": border_cut,
        "size_ratio": size_ratio,
        "n_detected": int(sum(tr.detected)),
    }


def tracks_to_tables(
    tracks: Iterable[Track], edges: Iterable[bool] | None = None, **row_args
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """POSITIONS and TRACKS tables of finished tracks.

    Parameters
    ----------
    tracks : iterable of Track
    edges : iterable of bool, optional
        The ``edge`` flag of each track (from the crops); False when None.
    **row_args
        ``rows``, ``radius``, ``cell_area`` of :func:`track_row`.

    Returns
    -------
    positions : DataFrame
        :data:`rbcflow.schema.POSITIONS`, sorted by track_id then frame.
    tracks : DataFrame
        :data:`rbcflow.schema.TRACKS` plus ``n_detected``, sorted by track_id.
    """
    tracks = list(tracks)
    edges = [False] * len(tracks) if edges is None else list(edges)
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
    }
    positions = validate(pd.DataFrame(pos), POSITIONS, "positions")
    positions = positions.sort_values(["track_id", "frame"], kind="stable", ignore_index=True)
    table = pd.DataFrame(rows, columns=[*TRACKS, "n_detected"])
    table = validate(table, TRACKS, "tracks").sort_values("track_id", ignore_index=True)
    table["n_detected"] = table["n_detected"].astype(np.int64)
    return positions, table


def score_tracks(
    positions: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    max_distance: float = 3.0,
    min_overlap: int = 3,
    min_true_frames: int = 6,
) -> dict:
    """Compare found tracks with true ones (synthetic ground truth).

    A found track *matches* a true track when they share at least ``min_overlap`` frames and
    the median distance between them over the shared frames is at most ``max_distance``; each
    found track is paired with the true track it matches best (lowest median distance).

    Parameters
    ----------
    positions : DataFrame
        Found tracks, :data:`rbcflow.schema.POSITIONS` (frame, track_id, x, y).
    truth : DataFrame
        True positions, :data:`rbcflow.schema.TRUTH` (track_id, label, frame, x, y).
    max_distance : float
        Pixels.
    min_overlap : int
        Frames.
    min_true_frames : int
        True tracks with fewer frames in the field are not counted for recall (nobody could
        have kept them).

    Returns
    -------
    dict
        ``recall`` (fraction of counted true tracks matched by a found track), ``false_rate``
        (fraction of found tracks that match no true track), ``median_error`` (median centre
        distance over the frames of matched pairs, px), ``coverage`` (fraction of the counted
        true tracks' frames covered by a matched found track), ``fragmentation`` (found tracks
        per recalled true track), ``n_true``, ``n_found``, ``n_false``, ``missed`` (ids of
        counted true tracks not recalled), ``false_ids`` (ids of found tracks matching none),
        ``pairs`` (found id -> true id).
    """
    truth = truth[["track_id", "frame", "x", "y"]]
    found = positions[["track_id", "frame", "x", "y"]]
    merged = found.merge(truth, on="frame", suffixes=("_f", "_t"))
    merged = merged.assign(d=np.hypot(merged.x_f - merged.x_t, merged.y_f - merged.y_t))
    # Only pairs that are ever close are candidates (keeps the groupby small).
    close_pairs = merged.loc[merged.d <= 4 * max_distance, ["track_id_f", "track_id_t"]]
    merged = merged.merge(close_pairs.drop_duplicates(), on=["track_id_f", "track_id_t"])
    stats = merged.groupby(["track_id_f", "track_id_t"]).d.agg(["median", "size"]).reset_index()
    stats = stats[(stats["size"] >= min_overlap) & (stats["median"] <= max_distance)]
    best = stats.sort_values("median").drop_duplicates("track_id_f")
    pairs = dict(zip(best.track_id_f.astype(int), best.track_id_t.astype(int), strict=True))
    true_len = truth.groupby("track_id").size()
    counted = set(true_len[true_len >= min_true_frames].index.astype(int))
    recalled = counted & set(pairs.values())
    found_ids = sorted(set(found.track_id.astype(int)))
    false_ids = [t for t in found_ids if t not in pairs]
    on = merged.set_index(["track_id_f", "track_id_t"]).index.isin(list(pairs.items()))
    matched = merged[on]
    covered = matched[matched.track_id_t.isin(counted)].drop_duplicates(["track_id_t", "frame"])
    n_true_frames = int(true_len[true_len.index.isin(counted)].sum())
    n_rec = len(recalled)
    return {
        "recall": n_rec / len(counted) if counted else float("nan"),
        "false_rate": len(false_ids) / len(found_ids) if found_ids else 0.0,
        "median_error": float(matched.d.median()) if len(matched) else float("nan"),
        "coverage": len(covered) / n_true_frames if n_true_frames else float("nan"),
        "fragmentation": (
            sum(1 for t in pairs.values() if t in recalled) / n_rec if n_rec else float("nan")
        ),
        "n_true": len(counted),
        "n_found": len(found_ids),
        "n_false": len(false_ids),
        "missed": sorted(counted - recalled),
        "false_ids": false_ids,
        "pairs": pairs,
    }
