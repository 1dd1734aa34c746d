"""Interference flags of the active tracks (:class:`rbcflow.frontend.tracking.Linker`): another
object close to a track, and another detection inside its crop window."""

from __future__ import annotations

import numpy as np

from rbcflow.frontend.tracks import Track


def flag_interference(
    active: list[Track],
    xy: np.ndarray,
    own: list[int],
    area: np.ndarray,
    lim: float,
    min_separation: float,
    crop_reach: float,
) -> None:
    """Flag tracks with another object (track or detection) within the distance, and
    append to each track whether another detection lies in its crop window.

    A track's own detection, and fragments of it (detections closer than
    ``min_separation``), are not other objects. In the crop window: ``|dx|`` and ``|dy| <=
    crop_reach + r`` (:class:`~rbcflow.frontend.tracking.Linker`).
    """
    if not active:
        return
    pos = np.array([tr.last for tr in active])
    n = len(pos)
    d = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])
    d[np.arange(n), np.arange(n)] = np.inf
    close = (d < lim).any(axis=1)
    inside = np.zeros(n, dtype=bool)
    if len(xy):
        dx = np.abs(pos[:, None, 0] - xy[None, :, 0])
        dy = np.abs(pos[:, None, 1] - xy[None, :, 1])
        dd = np.hypot(dx, dy)
        own_idx = np.asarray(own)
        has = own_idx >= 0
        dd[np.flatnonzero(has), own_idx[has]] = -1.0  # not another object
        other = dd >= min_separation
        close |= ((dd < lim) & other).any(axis=1)
        # crop_reach + the detection's radius (0 where its area is unknown: fmax skips NaN)
        reach = np.fmax(crop_reach + np.sqrt(np.abs(area) / np.pi), crop_reach)
        inside = ((np.maximum(dx, dy) <= reach) & other).any(axis=1)
    for tr, flag, near in zip(active, close.tolist(), inside.tolist(), strict=True):
        tr.interference |= flag
        tr.neighbours.append(near)
