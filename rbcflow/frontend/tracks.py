"""Finished tracks: the per-track record the linker builds, and the POSITIONS and TRACKS tables.

A :class:`Track` is what :class:`rbcflow.frontend.tracking.Linker` builds frame by frame;
:func:`track_row` turns a finished one into its TRACKS row (with the geometry columns
``border_cut`` and ``size_ratio``) and :func:`tracks_to_tables` a set of them into the POSITIONS
and TRACKS tables (:mod:`rbcflow.schema`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    }
    positions = validate(pd.DataFrame(pos), POSITIONS, "positions")
    positions = positions.sort_values(["track_id", "frame"], kind="stable", ignore_index=True)
    table = pd.DataFrame(rows, columns=[*TRACKS, "n_detected"])
    table = validate(table, TRACKS, "tracks").sort_values("track_id", ignore_index=True)
    table["n_detected"] = table["n_detected"].astype(np.int64)
    return positions, table
