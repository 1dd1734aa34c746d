"""Sub-pixel cell centres: the centroid of each cell's soft footprint at full resolution.

Each coarse detection (:mod:`.detection`, good to about a block) is refined as the centroid of
the cell's soft footprint (``|d|`` smoothed and mapped to [0, 1], ``d`` the background-subtracted
frame) in a cell-sized window: the cell's projection is symmetric about its centre, so this is
unbiased and good to a fraction of a pixel, and real rims are unevenly lit, so an intensity
centroid would be pulled to the dark side (:func:`rbcflow.frontend.kernels.footprint_centroids`,
one compiled call per frame). The footprint's total weight is the object's area of clear
contrast (the tracks' ``size_ratio``), and its edges give the centre of cells cut by the border.

Coordinates follow :mod:`rbcflow.schema` (x = column, y = row, origin at the centre of pixel
(0, 0)).
"""

from __future__ import annotations

import math

import numpy as np

from rbcflow.frontend.kernels import footprint_centroids


def footprints(
    frames,
    background: np.ndarray,
    c: np.ndarray,
    half: int,
    noise: float,
    offset,
    which: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft footprints of the cells in ``(2 * half + 1)`` square windows centred on the
    integer positions ``c`` (n, 2): :func:`rbcflow.frontend.kernels.footprint_centroids`, one
    compiled call per frame.

    ``frames`` is one frame, or several with ``which`` (n,) saying which one each window is
    in (sorted); ``offset`` the illumination offset, a number or one per window.

    Returns
    -------
    weights : (n, 2 * half + 1, 2 * half + 1) float32 ndarray
        In [0, 1]: 0 off the cell (below 2 blurred-noise sigmas), 1 clearly on it.
    result : (n, 3) float64 ndarray
        Centroid offset from the window centre (dx, dy) and total weight (footprint area),
        pixels.
    """
    c = np.ascontiguousarray(c, dtype=np.int64)
    n = len(c)
    p = 2 * half + 1
    weights = np.empty((n, p, p), np.float32)
    result = np.empty((n, 3))
    offset = np.ascontiguousarray(np.broadcast_to(np.asarray(offset, np.float64), (n,)))
    if which is None:
        runs = [(frames, 0, n)]
    else:
        bounds = np.flatnonzero(np.diff(which)) + 1
        runs = [
            (frames[which[lo]], lo, hi)
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n], strict=True)
        ]
    for frame, lo, hi in runs:
        footprint_centroids(
            np.asarray(frame),
            background,
            c[lo:hi],
            int(half),
            float(noise),
            offset[lo:hi],
            weights[lo:hi],
            result[lo:hi],
        )
    return weights, result


def _far_edge(profile: np.ndarray, from_end: bool) -> float:
    """Index (sub-pixel) where a footprint profile (1 on the cell, 0 off it) first reaches 0.5
    coming from one end; NaN if it never does."""
    prof = profile[::-1] if from_end else profile
    hits = np.flatnonzero(prof >= 0.5)
    if hits.size == 0 or hits[0] == 0:
        return math.nan
    k = int(hits[0])
    lo, hi = float(prof[k - 1]), float(prof[k])
    pos = k - (hi - 0.5) / (hi - lo) if hi > lo else float(k)
    return len(profile) - 1 - pos if from_end else pos


def _edges(w: np.ndarray, cx: float, cy: float, half: int) -> tuple[float, ...]:
    """Footprint edges (left, right, top, bottom) of one weight window, as offsets from the
    window centre, from the profiles through a 5-pixel band around (cx, cy) (offsets)."""
    ix = min(max(round(cx), -half + 2), half - 2) + half
    iy = min(max(round(cy), -half + 2), half - 2) + half
    along_x = w[iy - 2 : iy + 3].mean(axis=0)
    along_y = w[:, ix - 2 : ix + 3].mean(axis=1)
    return (
        _far_edge(along_x, False) - half,
        _far_edge(along_x, True) - half,
        _far_edge(along_y, False) - half,
        _far_edge(along_y, True) - half,
    )


def refine_centroids(
    frame: np.ndarray,
    background: np.ndarray,
    xy: np.ndarray,
    half: int,
    noise: float,
    offset: float = 0.0,
    iterations: int = 2,
    edge_radius: float | None = None,
    return_mass: bool = False,
    which: np.ndarray | None = None,
):
    """Sub-pixel cell centres: centroids of the soft footprint in square windows.

    Cells cut by the frame border have a footprint whose centroid is pulled inwards; when
    ``edge_radius`` is given, their centre along a cut axis is instead the footprint's far
    edge (the side inside the frame) minus ``edge_radius``.

    Parameters
    ----------
    frame : (rows, cols) ndarray, or a sequence of them with ``which``
        Raw frame(s).
    background : (rows, cols) float32 ndarray
    xy : (n, 2) float ndarray
        Starting positions (x, y), pixels.
    half : int
        Half side of the window, pixels (the window is ``2 * half + 1`` square: a cell radius
        plus a few pixels).
    noise : float
        Camera noise, intensity units (see :func:`footprints`).
    offset : float or (n,) ndarray
        Global offset of ``frame - background`` in the frame (illumination drift), removed
        before weighting; one per position when they come from several frames.
    iterations : int
        The window is re-centred on the new centroid this many times.
    edge_radius : float, optional
        Distance from a cell's centre to its footprint's edge (see :func:`footprint_radius`),
        pixels; None leaves cells cut by the border where they were (``ok`` False).
    which : (n,) int ndarray, optional
        With several frames: the frame of each position, sorted (the objects of many frames
        are refined together, one set of numpy calls for them all).

    Returns
    -------
    xy : (n, 2) float64 ndarray
        Refined positions (unchanged where not ok).
    ok : (n,) bool ndarray
        False where the window held no weight (or left the frame without ``edge_radius``).
    mass : (n,) float64 ndarray
        Only with ``return_mass``: the footprint's total weight in the final window, i.e. the
        area of the object's clear contrast at full resolution, pixels (0 where not measured).

    Examples
    --------
    >>> bg = np.full((40, 40), 100, np.float32)
    >>> frame = bg.astype(np.uint8); frame[10:15, 20:27] = 40
    >>> xy, ok = refine_centroids(frame, bg, np.array([[21.0, 13.0]]), half=6, noise=1.0)
    >>> xy.round(3).tolist(), ok.tolist()
    ([[23.0, 12.0]], [True])
    """
    xy = np.array(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    ok = np.zeros(n, dtype=bool)
    mass = np.zeros(n)
    if n == 0:
        return (xy, ok, mass) if return_mass else (xy, ok)
    offset_each = np.broadcast_to(np.asarray(offset, dtype=np.float64), (n,))
    todo = np.arange(n)
    c_prev = None
    for _ in range(iterations):
        c = np.rint(xy).astype(np.int64)
        if c_prev is not None:
            # A window that does not move gives the same centroid again: only the objects
            # whose integer centre changed are measured again.
            todo = todo[np.any(c[todo] != c_prev[todo], axis=1)]
            if todo.size == 0:
                break
        c_prev = c
        sub_xy, sub_ok, sub_mass = _refine_once(
            frame,
            background,
            xy[todo],
            c[todo],
            half,
            noise,
            offset_each[todo],
            edge_radius,
            None if which is None else which[todo],
        )
        xy[todo] = sub_xy
        ok[todo] = sub_ok
        mass[todo] = sub_mass
    return (xy, ok, mass) if return_mass else (xy, ok)


def _refine_once(
    frame: np.ndarray,
    background: np.ndarray,
    xy: np.ndarray,
    c: np.ndarray,
    half: int,
    noise: float,
    offset: np.ndarray,
    edge_radius: float | None,
    which: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of :func:`refine_centroids` with windows centred on the integer positions
    ``c``; returns the new ``xy`` (a copy), ``ok`` and the footprint masses."""
    xy = xy.copy()
    n = len(xy)
    ok = np.zeros(n, dtype=bool)
    mass = np.zeros(n)
    rows, cols = background.shape
    cut = np.stack(
        [
            c[:, 0] - half < 0,
            c[:, 0] + half > cols - 1,
            c[:, 1] - half < 0,
            c[:, 1] + half > rows - 1,
        ],
        axis=1,
    )
    use = ~cut.any(axis=1) if edge_radius is None else np.ones(n, bool)
    idx = np.flatnonzero(use)
    if idx.size == 0:
        return xy, ok, mass
    w, res = footprints(
        frame, background, c[idx], half, noise, offset[idx], None if which is None else which[idx]
    )
    fx, fy, total = res[:, 0], res[:, 1], res[:, 2]
    mass[idx] = total
    good = total > 0
    for k in np.flatnonzero(cut[idx].any(axis=1) & good):
        j = idx[k]
        # Cut only where the footprint reaches the frame border (a window reaching past
        # it around a cell wholly inside is not a cut cell).
        bx0 = min(max(half - c[j, 0], 0), 2 * half)  # frame column 0 in the window
        by0 = min(max(half - c[j, 1], 0), 2 * half)
        bx1 = min(max(half - c[j, 0] + cols - 1, 0), 2 * half)
        by1 = min(max(half - c[j, 1] + rows - 1, 0), 2 * half)
        left = cut[j, 0] and w[k][:, bx0].max() >= 0.5
        right = cut[j, 1] and w[k][:, bx1].max() >= 0.5
        top = cut[j, 2] and w[k][by0, :].max() >= 0.5
        bottom = cut[j, 3] and w[k][by1, :].max() >= 0.5
        if left == right and top == bottom:
            continue  # the window reaches past the border, the cell does not: nothing to do
        el, er, et, eb = _edges(w[k], fx[k], fy[k], half)
        if left != right:
            fx[k] = er - edge_radius if left else el + edge_radius
        if top != bottom:
            fy[k] = eb - edge_radius if top else et + edge_radius
        good[k] = math.isfinite(fx[k]) and math.isfinite(fy[k])
    sel = idx[good]
    xy[sel, 0] = c[sel, 0] + fx[good]
    xy[sel, 1] = c[sel, 1] + fy[good]
    ok[idx] = good
    return xy, ok, mass


def footprint_radius(
    frame: np.ndarray,
    background: np.ndarray,
    xy: np.ndarray,
    half: int,
    noise: float,
    offset: float = 0.0,
) -> list[float]:
    """Distances from the centre to the footprint's edge (left, right, top, bottom) of the
    cells at ``xy`` (refined centres) that lie wholly inside the frame, pixels.

    Their median is the ``edge_radius`` of :func:`refine_centroids` for this video.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    rows, cols = frame.shape
    c = np.rint(xy).astype(np.int64)
    inside = (
        (c[:, 0] - half >= 0)
        & (c[:, 0] + half <= cols - 1)
        & (c[:, 1] - half >= 0)
        & (c[:, 1] + half <= rows - 1)
    )
    out: list[float] = []
    if not inside.any():
        return out
    w, _ = footprints(frame, background, c[inside], half, noise, offset)
    for k, (x, y) in enumerate(xy[inside] - c[inside]):
        el, er, et, eb = _edges(w[k], x, y, half)
        out.extend(v for v in (x - el, er - x, y - et, eb - y) if math.isfinite(v))
    return out


def centroid_half_for(diameter: float) -> int:
    """Half side of the centroid window for cells of ``diameter`` pixels (radius + 3)."""
    return int(math.ceil(diameter / 2.0)) + 3
