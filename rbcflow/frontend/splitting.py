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

from rbcflow.frontend.kernels import close_pairs, suppress_close

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


def moment_pair(w: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Where the two cells of a pair's footprint would be, from its weight moments.

    Two equal discs ``D`` apart have a weighted variance ``r**2 / 4`` across the line through
    them and ``r**2 / 4 + D**2 / 4`` along it, so ``D = 2 * sqrt(var_along - var_across)``
    (principal axes of the weights; a single round cell gives about 0, an elongated one its
    elongation); the cells lie ``D / 2`` either side of the weights' centroid along the major
    axis. A first estimate, exact for discs that do not overlap, cheap enough to screen every
    candidate (:func:`pair_centres` then measures the pair from its far edges).

    Parameters
    ----------
    w : (p, p) float ndarray
        Non-negative weights (a soft footprint, :func:`rbcflow.frontend.footprints.footprints`).

    Returns
    -------
    centres : (2, 2) float64 ndarray
        (x, y) of each cell, window pixels (column, row from the window's corner); NaN when
        the window holds no weight.
    distance : float
        ``D``, pixels.
    mass : (2,) float64 ndarray
        Weight on either side of the line across the axis through the centroid.

    Examples
    --------
    >>> w = np.zeros((21, 31)); w[8:13, 3:8] = 1.0; w[8:13, 19:24] = 1.0
    >>> c, d, m = moment_pair(w)
    >>> c.round(6).tolist(), round(d, 6), m.tolist()
    ([[5.0, 10.0], [21.0, 10.0]], 16.0, [25.0, 25.0])
    """
    w = np.asarray(w, np.float64)
    total = w.sum()
    if total <= 0:
        return np.full((2, 2), np.nan), 0.0, np.zeros(2)
    yy, xx = np.indices(w.shape, dtype=np.float64)
    mx, my = (w * xx).sum() / total, (w * yy).sum() / total
    dx, dy = xx - mx, yy - my
    cxx, cyy, cxy = (w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum()
    val, vec = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]) / total)
    d = 2.0 * float(np.sqrt(max(val[1] - val[0], 0.0)))
    u = vec[:, 1]
    if u[0] < 0 or (u[0] == 0 and u[1] < 0):
        u = -u  # the first centre is the one on the left (then the top)
    centre = np.array([mx, my])
    side = dx * u[0] + dy * u[1] > 0
    mass = np.array([w[~side].sum(), w[side].sum()])
    return np.stack([centre - 0.5 * d * u, centre + 0.5 * d * u]), d, mass


def moment_distances(w: np.ndarray) -> np.ndarray:
    """:func:`moment_pair`'s distance ``D`` for a stack of windows (n, p, p) at once.

    Examples
    --------
    >>> w = np.zeros((2, 21, 31)); w[:, 8:13, 3:8] = 1.0; w[0, 8:13, 19:24] = 1.0
    >>> moment_distances(w).round(6).tolist()
    [16.0, 0.0]
    """
    w = np.asarray(w, np.float64)
    yy, xx = np.indices(w.shape[1:], dtype=np.float64)
    total = np.maximum(w.sum(axis=(1, 2)), 1e-12)
    mx = np.einsum("kij,ij->k", w, xx) / total
    my = np.einsum("kij,ij->k", w, yy) / total
    a = np.einsum("kij,ij->k", w, xx * xx) / total - mx * mx
    c = np.einsum("kij,ij->k", w, yy * yy) / total - my * my
    b = np.einsum("kij,ij->k", w, xx * yy) / total - mx * my
    # the 2x2 covariance's eigenvalues differ by 2 * sqrt(((a - c) / 2) ** 2 + b ** 2)
    return 2.0 * np.sqrt(2.0 * np.sqrt(0.25 * (a - c) ** 2 + b * b))


PAIR_BALANCE = 0.5
"""The two halves of a split pair each hold at least this share of the other's weight."""


def split_pairs(frames, detector, xys: list[np.ndarray], coarses: list) -> list[np.ndarray]:
    """Split the refined detections that are two cells too close for the variance maxima
    (:func:`split_components` works at block resolution: cells ~14 px apart show one maximum).

    A candidate is a detection larger than one cell's window (its ``extent`` more than
    ``2 * (half + 2)``, ``half`` the detector's ``centroid_half``) whose footprint mass is at
    least ``pair_mass`` times the detector's one-cell ``cell_area``. Its soft footprint at full
    resolution (:func:`rbcflow.frontend.footprints.footprints`, a window that holds it whole)
    (a window that holds it whole, one compiled call per window size) is screened by its
    moments (:func:`moment_distances`, all windows at once: two cells farther apart than 0.9
    ``pair_distance``; :func:`moment_pair`: halves that weigh alike, :data:`PAIR_BALANCE`),
    then measured from its far edges (:func:`pair_centres`); it is two cells when their
    centres lie at least ``pair_distance`` apart (touching pairs, the ``overlap`` kind, lie
    closer and stay one object). Each part becomes a detection at its centre, with its half's
    weight as mass and a one-cell extent.

    Parameters
    ----------
    frames : sequence of (rows, cols) ndarray
        The raw frames, one per item of ``xys`` and ``coarses``.
    detector : rbcflow.frontend.detection.FrameDetector
        Its ``background``, ``noise``, ``centroid_half``, ``cell_area`` (NaN: nothing is
        split), ``pair_distance`` (pixels) and ``pair_mass`` (0: nothing is split).
    xys : list of (n, 2) float64 ndarray
        Refined centres of each frame's detections.
    coarses : list of :class:`rbcflow.frontend.detection.Coarse`
        Their coarse detections, with ``mass`` set; split ones are replaced in place (every
        per-detection array).

    Returns
    -------
    list of (m, 2) float64 ndarray
        The centres, split pairs replaced by their two cells (at the end of each frame's).
    """
    from rbcflow.frontend.footprints import footprints

    background, noise, half = detector.background, detector.noise, detector.centroid_half
    cell_area, mass_ratio = detector.cell_area, detector.pair_mass
    distance = detector.pair_distance
    if not (mass_ratio > 0 and np.isfinite(cell_area) and cell_area > 0):
        return xys
    rows, cols = background.shape
    todo = []  # (window half side, frame index, detection index, integer centre)
    for f, (xy, c) in enumerate(zip(xys, coarses, strict=True)):
        for i in np.flatnonzero((c.extent > 2 * (half + 2)) & (c.mass >= mass_ratio * cell_area)):
            h = int(min(np.ceil(c.extent[i] / 2) + 1, 3 * half))  # holds the object whole
            cx, cy = int(round(xy[i, 0])), int(round(xy[i, 1]))
            if h <= cx <= cols - 1 - h and h <= cy <= rows - 1 - h:  # else cut: left whole
                todo.append((h, f, int(i), cx, cy))
    split: dict[int, list] = {}
    for h in sorted({t[0] for t in todo}):  # one compiled call per window size
        group = [t for t in todo if t[0] == h]
        w_all, _ = footprints(
            list(frames),
            background,
            np.array([(t[3], t[4]) for t in group]),
            h,
            noise,
            np.array([coarses[t[1]].offset for t in group]),
            np.array([t[1] for t in group]),
        )
        far = moment_distances(w_all) >= 0.9 * distance  # all windows at once: a screen
        for (_, f, i, cx, cy), w in zip(
            [t for t, ok in zip(group, far, strict=True) if ok], w_all[far], strict=True
        ):
            centres, d, mass = moment_pair(w)
            if mass.min() < PAIR_BALANCE * mass.max():
                continue
            if detector.edge_radius is not None:
                centres = pair_centres(w, centres, detector.edge_radius)
            if not np.isfinite(centres).all():
                continue
            if float(np.hypot(*(centres[1] - centres[0]))) < distance:
                continue
            split.setdefault(f, []).append((i, centres + [cx - h, cy - h], mass))
    out = []
    for f, (xy, c) in enumerate(zip(xys, coarses, strict=True)):
        parts = split.get(f)
        if not parts:
            out.append(xy)
            continue
        gone = [p[0] for p in parts]
        keep = np.setdiff1d(np.arange(len(xy)), gone)
        new_xy = np.concatenate([p[1] for p in parts])
        one = 2 * (half + 2)
        c.xy = np.concatenate([c.xy[keep], new_xy])
        c.mass = np.concatenate([c.mass[keep], np.concatenate([p[2] for p in parts])])
        c.score = np.concatenate([c.score[keep], np.repeat(c.score[gone], 2)])
        c.area = np.concatenate([c.area[keep], np.repeat(c.area[gone] // 2, 2)])
        c.extent = np.concatenate([c.extent[keep], np.full(2 * len(parts), one, c.extent.dtype)])
        out.append(np.concatenate([xy[keep], new_xy]))
    return out


def pair_centres(w: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """The two cells' centres of a pair's footprint from its far edges.

    Where two footprints overlap, neither moments nor the halves' centroids measure the pair
    well (2-means halves cut at the bisector lie ~1.5 px too far apart for cells 12 px
    apart). Each cell's far edge, on the side away from its partner, is its own: along the
    axis through the two first centres, each centre is its far edge (where the footprint
    profile reaches 0.5) less that cell's radius: ``radius`` (the video's centre-to-edge
    distance of one cell), or half the cell's footprint width across the axis through its
    first centre where that is larger (a large cell must not pass for two cells apart; an
    elongated one seen across its short axis must not either); across the axis it stays the
    first estimate's. Profiles are 5-pixel bands, bilinear.

    Parameters
    ----------
    w : (p, p) float ndarray
        The pair's soft footprint.
    centres : (2, 2) float ndarray
        First estimates of the two centres (x, y), window pixels (:func:`moment_pair`).
    radius : float
        Centre-to-edge distance of one cell, pixels.

    Returns
    -------
    (2, 2) float64 ndarray
        Centres (x, y), window pixels, in the order of ``centres``; NaN where an edge was not
        found.
    """
    c = np.asarray(centres, np.float64)
    mid = c.mean(axis=0)
    u = c[1] - c[0]
    norm = float(np.hypot(*u))
    if norm == 0:
        return np.full((2, 2), np.nan)
    u /= norm
    perp = np.array([-u[1], u[0]])
    lo, hi = _band_edges(w, mid, u, perp)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return np.full((2, 2), np.nan)
    out = np.empty((2, 2))
    for k, edge, sign in ((0, lo, 1.0), (1, hi, -1.0)):
        a, b = _band_edges(w, c[k], perp, u)
        r = max(0.5 * (b - a), radius) if np.isfinite(a) and np.isfinite(b) else radius
        across = float((c[k] - mid) @ perp)
        out[k] = mid + (edge + sign * r) * u + across * perp
    return out


def _band_edges(
    w: np.ndarray, at: np.ndarray, u: np.ndarray, perp: np.ndarray
) -> tuple[float, float]:
    """Where the footprint ``w``'s profile along ``u`` through ``at`` (mean of a 5-pixel band
    across it, bilinear, half-pixel steps) first reaches 0.5 from either end: offsets along
    ``u`` from ``at``, pixels (NaN when it does not)."""
    from scipy.ndimage import map_coordinates

    from rbcflow.frontend.footprints import _far_edge

    reach = w.shape[0] / 2.0
    t = np.arange(-reach, reach + 0.25, 0.5)
    band = np.arange(-2, 3)
    pts = at[None, None, :] + t[:, None, None] * u + band[None, :, None] * perp
    coords = [pts[..., 1].ravel(), pts[..., 0].ravel()]
    prof = map_coordinates(np.asarray(w, np.float64), coords, order=1, cval=0.0)
    prof = prof.reshape(len(t), len(band)).mean(axis=1)
    return t[0] + 0.5 * _far_edge(prof, False), t[0] + 0.5 * _far_edge(prof, True)


def one_per_cell(
    xy: np.ndarray, area: np.ndarray, separation: float
) -> tuple[np.ndarray, np.ndarray]:
    """One detection per cell: of detections closer than ``separation`` (two parts of one
    cell that both refined to about its centre; left, each would start a track of its own),
    only the one of largest area is kept (the first where areas tie or are NaN).

    Examples
    --------
    >>> xy = np.array([[10.0, 5.0], [11.0, 7.0], [40.0, 5.0]])
    >>> one_per_cell(xy, np.array([30.0, 90.0, 50.0]), 6.0)[0].tolist()
    [[11.0, 7.0], [40.0, 5.0]]
    """
    n = len(xy)
    if n < 2:
        return xy, area
    xy_c = np.ascontiguousarray(xy, dtype=np.float64)
    if not close_pairs(xy_c, float(separation)):  # compiled: the usual frame has no pair
        return xy, area
    gone = np.zeros(n, dtype=bool)
    order = np.argsort(-np.nan_to_num(area, nan=0.0), kind="stable")
    suppress_close(xy_c, order, float(separation), gone)
    return xy[~gone], area[~gone]
