"""Interference flags of the active tracks (:class:`rbcflow.frontend.tracking.Linker`): another
object close to a track, and another detection inside its crop window."""

from __future__ import annotations

import numpy as np

from rbcflow.frontend.kernels import interference_flags
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
    pos = np.array([tr.last for tr in active], dtype=np.float64)
    n = len(pos)
    close = np.zeros(n, dtype=bool)
    inside = np.zeros(n, dtype=bool)
    # compiled: the distances of a few tens of points, in one call (the same floats as the
    # numpy of pairwise arrays it replaced)
    interference_flags(
        pos,
        np.ascontiguousarray(xy, dtype=np.float64).reshape(-1, 2),
        np.asarray(own, dtype=np.int64).reshape(-1),
        np.ascontiguousarray(area, dtype=np.float64).reshape(-1),
        float(lim),
        float(min_separation),
        float(crop_reach),
        close,
        inside,
    )
    for tr, flag, near in zip(active, close.tolist(), inside.tolist(), strict=True):
        tr.interference |= flag
        tr.neighbours.append(near)
