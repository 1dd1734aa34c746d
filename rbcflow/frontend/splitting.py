"""Splitting the components that hold two cells passing close.

The variance filter's window spreads each cell's component a few pixels beyond the cell, so
two cells closer than about twice that merge into one component, whose centroid lies between
them and matches neither. :func:`split_components` finds such components by the two-cell size
rule (an area of at least ``split_area`` times one cell's, measured on the calibration frames)
and by their local maxima of the variance image: maxima farther apart than ``split_distance``
(about 1.2 cell diameters) with a dip between them (:data:`SPLIT_DIP`; two touching cells,
about one diameter apart, show none and stay one object) are the cells, and each pixel of the
component goes to the nearest maximum.
"""

from __future__ import annotations

import cv2
import numpy as np

SPLIT_DIP = 0.8
"""Two maxima of the variance image are two cells only where the variance halfway between
them is below this share of the weaker one."""


def split_components(
    var: np.ndarray,
    on: np.ndarray,
    lab: np.ndarray,
    rc: tuple[np.ndarray, np.ndarray],
    count: np.ndarray,
    keep: np.ndarray,
    distance: float,
    min_area: float,
    min_part: float = 0.0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, dict]:
    """Split the kept components that hold two or more cells.

    Parameters
    ----------
    var : (rows, cols) float32 ndarray
        The (downsampled) local-variance image.
    on : (m,) int ndarray
        Flat indices of its pixels above the threshold.
    lab : (m,) int ndarray
        Their component labels (0 background, 1 .. n-1).
    rc : (rows, cols) of those pixels, two (m,) int ndarrays.
    count : (n,) int ndarray
        Pixels per label.
    keep : (k,) int ndarray
        Labels kept (within the area limits).
    distance : float
        Smallest distance between two cells' maxima, in pixels of ``var``.
    min_area : float
        Components of fewer pixels of ``var`` are never split.
    min_part : float
        Parts of fewer pixels are dropped.

    Returns
    -------
    lab, n, count, keep, peaks
        Labels (split parts get new labels from ``n`` on), number of labels, pixels per
        label, the kept labels (sorted) and, for each split part's label, its maximum (row,
        col): a better coarse centre than the part's centroid, which leans towards the
        neighbour.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:12, 0:20]
    >>> var = (np.exp(-((xx - 5.0) ** 2 + (yy - 6.0) ** 2) / 8)
    ...        + np.exp(-((xx - 14.0) ** 2 + (yy - 6.0) ** 2) / 8)).astype(np.float32)
    >>> on = np.flatnonzero(var.ravel() > 0.2)
    >>> lab = np.ones(on.size, np.int64)
    >>> count = np.bincount(lab)
    >>> lab2, n, count2, keep2, peaks = split_components(
    ...     var, on, lab, np.divmod(on, 20), count, np.array([1]), 5.0, 10.0)
    >>> keep2.tolist(), count2[keep2].tolist() == [count[1] // 2] * 2
    ([2, 3], True)
    >>> sorted(peaks.values())
    [(6, 5), (6, 14)]
    """
    row, col = rc
    n = len(count)
    dil = cv2.dilate(var, np.ones((3, 3), np.uint8))
    v_on = var.ravel()[on]
    ok = np.zeros(n, dtype=bool)
    ok[keep] = True
    pk = np.flatnonzero((v_on >= dil.ravel()[on]) & ok[lab])
    if pk.size < 2:
        return lab, n, count, keep, {}
    per = np.bincount(lab[pk], minlength=n)
    multi = np.flatnonzero((per >= 2) & (count >= min_area))
    if multi.size == 0:
        return lab, n, count, keep, {}
    lim2 = distance * distance
    lab = lab.copy()
    parts = [keep]
    peaks: dict[int, tuple[int, int]] = {}
    next_label = n
    for comp in multi.tolist():
        cand = pk[lab[pk] == comp]
        cand = cand[np.argsort(-v_on[cand], kind="stable")]
        centres: list[tuple[int, int]] = []
        for p in cand.tolist():
            r, c = int(row[p]), int(col[p])
            if all(
                (r - r0) ** 2 + (c - c0) ** 2 > lim2
                and var[(r + r0) // 2, (c + c0) // 2] < SPLIT_DIP * var[r, c]
                for r0, c0 in centres
            ):
                centres.append((r, c))
        if len(centres) < 2:
            continue
        px = np.flatnonzero(lab == comp)
        cr = np.array([r for r, _ in centres], dtype=np.float64)
        cc = np.array([c for _, c in centres], dtype=np.float64)
        d2 = (row[px, None] - cr[None]) ** 2 + (col[px, None] - cc[None]) ** 2
        new = np.arange(next_label, next_label + len(centres))
        lab[px] = new[np.argmin(d2, axis=1)]
        parts.append(new)
        peaks.update(zip(new.tolist(), centres, strict=True))
        next_label += len(centres)
    if next_label == n:
        return lab, n, count, keep, {}
    count = np.bincount(lab, minlength=next_label)
    keep = np.concatenate(parts)
    keep = keep[(count[keep] > 0) & (count[keep] >= min_part)]
    return lab, next_label, count, np.sort(keep), peaks
