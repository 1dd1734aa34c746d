"""Fragment joining: a track that ends and one that starts where and when the first's motion
predicts are one cell.

A cell missed for longer than the linker's gap closing (``max_gap``), or lost for a frame to a
neighbour, ends its track; the rest of the cell then starts a second one. The linker
(:class:`rbcflow.frontend.tracking.Linker`) holds each ended track for ``join_window`` frames
before it releases it; in that window a fragment that starts within ``join_radius`` (plus
``join_growth`` per frame of gap) of the ended track's constant-velocity prediction, and within
``max_dy`` per frame across the flow, is joined to it: :func:`join_gate` scores the candidates
and :func:`merge_tracks` makes the two one track, the frames between them filled by linear
interpolation between the last detection of the first and the first of the second (marked
undetected). This is a second pass over the tracks, done while they stream: the first track's
crops are still held, so the joined track's crops are continuous.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rbcflow.config import TrackingConfig
from rbcflow.frontend.tracks import Track


def join_gate(a: Track, t: int, x: float, y: float, cfg: TrackingConfig) -> float:
    """Distance (pixels) of a fragment's first position ``(x, y)`` in frame ``t`` from the
    prediction of the ended track ``a``, or ``inf`` when it is out of the join gate.

    The gate: ``0 < t - last <= join_window`` frames after ``a``'s last frame, within
    ``join_radius + join_growth * (t - last - 1)`` of ``last + v * (t - last)`` and within
    ``max_dy * (t - last) + 2`` across the flow, ``a`` with at least two frames (a velocity).

    Examples
    --------
    >>> a = Track()
    >>> for f in range(5):
    ...     a.append(f, 10.0 + 6 * f, 20.0, True)
    >>> join_gate(a, 8, 10.0 + 6 * 8 + 1.0, 20.0, TrackingConfig())
    1.0
    >>> join_gate(a, 8, 10.0, 20.0, TrackingConfig())
    inf
    """
    if len(a) < 2:
        return math.inf
    gap = t - a.frames[-1]
    if not 0 < gap <= cfg.join_window:
        return math.inf
    (lx, ly), (vx, vy) = robust_end(a)
    px, py = lx + vx * gap, ly + vy * gap
    if abs(y - ly) > cfg.max_dy * gap + 2.0:
        return math.inf
    d = math.hypot(x - px, y - py)
    return d if d <= cfg.join_radius + cfg.join_growth * (gap - 1) else math.inf


def robust_end(a: Track, frames: int = 10) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where a track ends and how fast it goes, robust to one bad last position (a detection
    pulled by a neighbour): the median frame-to-frame velocity over its last ``frames``
    frames, and the median over its last 5 positions carried forward to its last frame at
    that velocity."""
    f = np.asarray(a.frames[-frames:], np.float64)
    x = np.asarray(a.xs[-frames:], np.float64)
    y = np.asarray(a.ys[-frames:], np.float64)
    dt = np.diff(f)
    vx, vy = float(np.median(np.diff(x) / dt)), float(np.median(np.diff(y) / dt))
    k = min(5, len(f))
    lx = float(np.median(x[-k:] + vx * (f[-1] - f[-k:])))
    ly = float(np.median(y[-k:] + vy * (f[-1] - f[-k:])))
    return (lx, ly), (vx, vy)


def merge_tracks(
    a: Track, b: Track, fill: Callable[[int, float, float], Any] | None = None
) -> Track:
    """``a`` followed by ``b`` (``b`` starting after ``a`` ends) as one track, in place in
    ``a``.

    The frames between them get positions on the straight line from ``a``'s last position to
    ``b``'s first, ``detected`` False, area NaN, no neighbour; their payload items are
    ``fill(frame, x, y)`` (None without ``fill``) when ``a`` carries a payload. ``b``'s state
    (velocity, gap) carries on; ``interference`` is either's.
    """
    t0, t1 = a.frames[-1], b.frames[0]
    x0, y0 = a.last
    x1, y1 = b.xs[0], b.ys[0]
    with_payload = len(a.payload) == len(a)
    for t in range(t0 + 1, t1):
        u = (t - t0) / (t1 - t0)
        x, y = x0 + u * (x1 - x0), y0 + u * (y1 - y0)
        a.frames.append(t)
        a.xs.append(x)
        a.ys.append(y)
        a.detected.append(False)
        a.areas.append(math.nan)
        a.neighbours.append(False)
        if with_payload:
            a.payload.append(None if fill is None else fill(t, x, y))
    a.frames += b.frames
    a.xs += b.xs
    a.ys += b.ys
    a.detected += b.detected
    a.areas += b.areas
    a.neighbours += b.neighbours
    if with_payload:
        a.payload += b.payload
    a.vx, a.vy, a.gap = b.vx, b.vy, b.gap
    a.interference = a.interference or b.interference
    a.joins += 1 + b.joins
    return a


def join_ended(
    ended: list[Track],
    active: list[Track],
    cfg: TrackingConfig,
    shape: tuple[int, int],
    t: int,
    fill: Callable[[int, float, float], Any] | None = None,
) -> tuple[list[Track], list[Track], int]:
    """Trim the tracks that ended at frame ``t`` and join each to a young active track (one
    frame or more, started after the ended one's last frame, not itself joined yet) that
    starts where the ended one's motion predicts (:func:`join_gate`); the joined track takes
    that active track's place in ``active``.

    Returns
    -------
    hold : list of Track
        Ended tracks left, to hold for a later fragment.
    left : list of Track
        Ended tracks whose prediction has left the field (``shape``, rows and cols): closed.
    joins : int
    """
    rows, cols = shape
    hold, left, joins = [], [], 0
    for a in ended:
        a.trim()
        if not a.frames:
            continue
        lx, ly = a.last
        dt = t - a.frames[-1]
        px, py = lx + a.vx * dt, ly + a.vy * dt
        if not (0 <= px <= cols - 1 and 0 <= py <= rows - 1):
            left.append(a)
            continue
        best, best_d = -1, math.inf
        for k, b in enumerate(active):
            if b.frames[0] > a.frames[-1] and b.detected[0] and b.joins == 0:
                d = join_gate(a, b.frames[0], b.xs[0], b.ys[0], cfg)
                if d < best_d:
                    best, best_d = k, d
        if best >= 0:
            active[best] = merge_tracks(a, active[best], fill)
            joins += 1
        else:
            hold.append(a)
    return hold, left, joins


def revive(
    pending: list[Track],
    b: Track,
    cfg: TrackingConfig,
    fill: Callable[[int, float, float], Any] | None = None,
) -> Track:
    """A new one-frame track ``b`` joined to the held ended track of ``pending`` whose
    prediction it meets best (:func:`join_gate`; that track leaves ``pending``), or ``b``
    itself when none does."""
    if not pending:
        return b
    t = b.frames[0]
    gates = [join_gate(a, t, b.xs[0], b.ys[0], cfg) for a in pending]
    k = int(np.argmin(gates))
    if not math.isfinite(gates[k]):
        return b
    return merge_tracks(pending.pop(k), b, fill)
