"""Fragment joining: a track that ends and one that starts where and when the first's motion
predicts are one cell.

A cell missed for longer than the linker's gap closing (``max_gap``), or lost for a frame to a
neighbour, ends its track; the rest of the cell then starts a second one. The linker
(:class:`rbcflow.frontend.tracking.Linker`) holds each ended track for ``join_window`` frames
before it releases it. After every frame, :func:`join_pending` pairs the held tracks with the
young active ones (never joined to a predecessor, born at most ``join_overlap`` frames before
the held one's last frame and at most ``join_window`` after it) by one assignment
(:func:`~rbcflow.frontend.assignment.linear_assignment`) on :func:`join_cost`: the mean distance
of the young track's first frames from the held track's constant-velocity prediction, from a
robust end point and velocity (:func:`robust_end`), plus the difference of their speeds once the
young one has a velocity. A pair is allowed (:func:`join_gate`) only within ``join_radius``
(plus ``join_growth`` per frame of gap) along the flow and within ``join_dy`` (plus a tenth of a
pixel per frame of gap) across it: cells move along lanes, so the cross-flow gate is the one
that keeps neighbours on nearby lanes apart. :func:`merge_tracks` makes a pair one track: an
overlap is cut from the held track's end (its last frames are the ones a neighbour may have
pulled), and the frames between them are filled by linear interpolation between the last
position of the first and the first of the second (marked undetected). This is a second pass
over the tracks, done while they stream: the first track's crops are still held, so the joined
track's crops are continuous.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rbcflow.config import TrackingConfig
from rbcflow.frontend.assignment import linear_assignment
from rbcflow.frontend.motion import scatter
from rbcflow.frontend.tracks import Track

_COMPARE = 4
"""Frames of the young track compared with the held track's prediction (its first ones)."""


def robust_end(a: Track, frames: int = 30) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where a track ends and how fast it goes, robust to a few bad positions (a detection
    pulled by a neighbour, the wandering centre of a faint cell): the velocity is the median
    of the displacements over a lag of half its last ``frames`` frames, divided by that lag
    (a long baseline: a 20-frame gap multiplies a velocity error by 20, and frame-to-frame
    steps carry the centre's jitter whole); the end point is the median over its last 5
    positions carried forward to its last frame at that velocity.

    Examples
    --------
    >>> a = Track()
    >>> for f in range(12):
    ...     a.append(f, 10.0 + 4 * f, 20.0, True)
    >>> a.xs[-1] += 6.0  # the last position pulled by a neighbour
    >>> robust_end(a)
    ((54.0, 20.0), (4.0, 0.0))
    """
    f = np.asarray(a.frames[-frames:], np.float64)
    x = np.asarray(a.xs[-frames:], np.float64)
    y = np.asarray(a.ys[-frames:], np.float64)
    lag = max(len(f) // 2, 1)
    dt = f[lag:] - f[:-lag]
    vx = float(np.median((x[lag:] - x[:-lag]) / dt))
    vy = float(np.median((y[lag:] - y[:-lag]) / dt))
    k = min(5, len(f))
    lx = float(np.median(x[-k:] + vx * (f[-1] - f[-k:])))
    ly = float(np.median(y[-k:] + vy * (f[-1] - f[-k:])))
    return (lx, ly), (vx, vy)


def join_gate(a: Track, t: int, x: float, y: float, cfg: TrackingConfig) -> float:
    """Distance (pixels) of a position ``(x, y)`` in frame ``t`` from the prediction of the
    ended track ``a``, or ``inf`` when it is out of the join gate.

    The gate: ``-join_overlap <= t - last <= join_window`` frames after ``a``'s last frame
    (``t`` may lie a little before it: two tracks on one cell for a frame or two), within
    ``join_radius + join_growth * (|t - last| - 1)`` of ``last + v * (t - last)`` along the
    flow and within ``join_dy + 0.1 * |t - last|`` across it, ``a`` with at least two frames
    (a velocity).

    Examples
    --------
    >>> a = Track()
    >>> for f in range(5):
    ...     a.append(f, 10.0 + 6 * f, 20.0, True)
    >>> join_gate(a, 8, 10.0 + 6 * 8 + 1.0, 20.0, TrackingConfig())
    1.0
    >>> join_gate(a, 8, 10.0, 20.0, TrackingConfig())
    inf
    >>> join_gate(a, 8, 10.0 + 6 * 8, 28.0, TrackingConfig())  # another lane
    inf
    """
    if len(a) < 2:
        return math.inf
    gap = t - a.frames[-1]
    if not -cfg.join_overlap <= gap <= cfg.join_window:
        return math.inf
    (lx, ly), (vx, vy) = robust_end(a)
    return _gate(gap, lx, ly, vx, vy, x, y, cfg)


def _gate(
    gap: int, lx: float, ly: float, vx: float, vy: float, x: float, y: float, cfg: TrackingConfig
) -> float:
    g = abs(gap)
    px, py = lx + vx * gap, ly + vy * gap
    if abs(y - py) > cfg.join_dy + 0.1 * g:
        return math.inf
    if abs(x - px) > cfg.join_radius + cfg.join_growth * max(g - 1, 0):
        return math.inf
    return math.hypot(x - px, y - py)


def join_cost(a: Track, b: Track, cfg: TrackingConfig) -> float:
    """Cost of joining the young track ``b`` after the ended track ``a``: the distance of the
    mean offset of ``b``'s first detected frames (up to 4) from ``a``'s prediction, plus the
    difference of their speeds along the flow once ``b`` has 3 frames or more; ``inf`` when
    that offset is out of :func:`join_gate`'s gate (for the mean gap), widened by twice the
    larger of the two tracks' scatter about their lines (:attr:`Track.motion`) over the root
    of the frames compared, or ``b`` was born too early or too late. Once ``b``'s motion model
    holds 4 frames, ``a``'s last detected frames (up to 4) are also compared with ``b``'s line
    extrapolated back (the same gate; the lower cost counts): a short fragment of a faint cell
    has no velocity of its own.

    Examples
    --------
    >>> a, b = Track(), Track()
    >>> for f in range(6):
    ...     a.append(f, 10.0 + 6 * f, 20.0, True)
    >>> for f in range(9, 12):
    ...     b.append(f, 10.0 + 6 * f + 1.0, 20.0, True)
    >>> join_cost(a, b, TrackingConfig())
    1.0
    """
    if len(a) < 2 or not b.frames:
        return math.inf
    if not -cfg.join_overlap <= b.frames[0] - a.frames[-1] <= cfg.join_window:
        return math.inf
    (lx, ly), (vx, vy) = a.end or robust_end(a)
    last = a.frames[-1]
    offs = []
    for f, x, y, det in zip(b.frames, b.xs, b.ys, b.detected, strict=False):
        if len(offs) == _COMPARE:
            break
        if det:
            offs.append((f - last, x - (lx + vx * (f - last)), y - (ly + vy * (f - last))))
    spread = 2.0 * max(scatter(a), scatter(b))
    cost = _offset_cost(offs, spread, cfg)
    if b.motion is not None and len(b.motion) >= 4:
        # and backwards: a's last detected frames against b's line (a short fragment of a
        # faint cell has no velocity to speak of; the young track, grown, has one)
        first = b.frames[0]
        back = []
        for f, x, y, det in zip(
            a.frames[::-1], a.xs[::-1], a.ys[::-1], a.detected[::-1], strict=True
        ):
            if len(back) == _COMPARE:
                break
            if det and f < first:
                px, py = b.motion.predict(f)
                back.append((first - f, x - px, y - py))
        cost = min(cost, _offset_cost(back, spread, cfg))
    if not math.isfinite(cost):
        return math.inf
    if len(b) >= 3:
        cost += abs(b.vx - vx)
    return cost


def _offset_cost(offs: list[tuple[float, float, float]], spread: float, cfg) -> float:
    """Distance of the mean offset ``(dx, dy)`` of ``offs`` ((gap, dx, dy) per frame compared)
    from a prediction, or ``inf`` out of the join gate for the mean gap, widened by
    ``spread`` over the root of the frames compared."""
    if not offs:
        return math.inf
    o = np.array(offs, dtype=np.float64)
    g = float(np.abs(o[:, 0]).mean())
    dx, dy = float(o[:, 1].mean()), float(o[:, 2].mean())
    widen = spread / math.sqrt(len(offs))
    if abs(dy) > cfg.join_dy + 0.1 * g + widen:
        return math.inf
    if abs(dx) > cfg.join_radius + cfg.join_growth * max(g - 1, 0) + widen:
        return math.inf
    return math.hypot(dx, dy)


def merge_tracks(
    a: Track, b: Track, fill: Callable[[int, float, float], Any] | None = None
) -> Track:
    """``a`` followed by ``b`` as one track, in place in ``a``.

    Frames of ``a`` from ``b``'s first frame on (an overlap) are cut from ``a`` first. The
    frames between them get positions on the straight line from ``a``'s last position to
    ``b``'s first, ``detected`` False, area NaN, no neighbour; their payload items are
    ``fill(frame, x, y)`` (None without ``fill``) when ``a`` carries a payload. ``b``'s state
    (velocity, gap) carries on; ``interference`` is either's.
    """
    with_payload = len(a.payload) == len(a)
    n = len(a.frames)
    while n and a.frames[n - 1] >= b.frames[0]:
        n -= 1
    del a.frames[n:], a.xs[n:], a.ys[n:], a.detected[n:], a.areas[n:]
    del a.payload[n:], a.neighbours[n:]
    t0, t1 = a.frames[-1], b.frames[0]
    x0, y0 = a.last
    x1, y1 = b.xs[0], b.ys[0]
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
    a.vx, a.vy, a.gap, a.motion = b.vx, b.vy, b.gap, b.motion
    a.interference = a.interference or b.interference
    a.joins += 1 + b.joins
    a.end = None
    return a


def join_pending(
    pending: list[Track],
    active: list[Track],
    cfg: TrackingConfig,
    fill: Callable[[int, float, float], Any] | None = None,
) -> int:
    """Join held ended tracks to young active ones, in place: each joined pair's merged track
    (:func:`merge_tracks`) takes the young track's place in ``active`` and leaves
    ``pending``.

    Candidates: active tracks that do not yet continue an ended one (``Track.joins`` 0),
    detected in their first frame; a held track needs ``join_overlap + 3`` frames or more
    (what an overlap cuts leaves it a velocity). Pairs are assigned by least total
    :func:`join_cost`. Returns the number of joins.
    """
    if not pending or not active or cfg.join_window <= 0:
        return 0
    lo = min(a.frames[-1] for a in pending) - cfg.join_overlap
    hi = max(a.frames[-1] for a in pending) + cfg.join_window
    young = [
        k
        for k, b in enumerate(active)
        if b.joins == 0 and b.detected[0] and lo <= b.frames[0] <= hi
    ]
    if not young:
        return 0
    big = 1e9
    cost = np.full((len(pending), len(young)), big)
    for i, a in enumerate(pending):
        for j, k in enumerate(young):
            b = active[k]
            if a.frames[-1] - b.frames[0] <= cfg.join_overlap and (
                len(a) > cfg.join_overlap + 2 or (len(a) >= 2 and b.frames[0] > a.frames[-1])
            ):
                c = join_cost(a, b, cfg)
                if math.isfinite(c):
                    cost[i, j] = c
    if not (cost < big).any():
        return 0
    rows, cols = linear_assignment(cost)
    done = set()
    joins = 0
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if cost[i, j] >= big:
            continue
        k = young[j]
        active[k] = merge_tracks(pending[i], active[k], fill)
        done.add(i)
        joins += 1
    pending[:] = [a for i, a in enumerate(pending) if i not in done]
    return joins


def hold_ended(
    ended: list[Track],
    pending: list[Track],
    t: int,
    inside: Callable[[float, float], bool],
    cfg: TrackingConfig,
) -> tuple[list[Track], int]:
    """Trim the tracks that ended at frame ``t`` and hold them in ``pending`` (their
    :func:`robust_end` computed once, in ``Track.end``) for a fragment to join.

    Returns the tracks whose prediction for frame ``t`` is no longer ``inside(x, y)`` the
    field (or all, when ``join_window`` is 0): no fragment can continue them; and how many
    were left with no frame by the trim (dropped).
    """
    left, dropped = [], 0
    for a in ended:
        a.trim()
        if not a.frames:
            dropped += 1
            continue
        lx, ly = a.last
        dt = t - a.frames[-1]
        if cfg.join_window > 0 and inside(lx + a.vx * dt, ly + a.vy * dt):
            a.end = robust_end(a) if len(a) >= 2 else None
            pending.append(a)
        else:
            left.append(a)
    return left, dropped
