"""Cell detection: local-variance filter on the background-subtracted frame.

A red cell in bright field is a dark rim around a brighter centre: after subtracting the
background its pixels vary strongly over a few pixels, while the empty chamber only carries
camera noise. The local standard deviation (box filters of ``d`` and ``d**2``) is therefore
high on cells and low elsewhere, whatever the illumination level (a global brightness flicker
adds a constant to ``d`` and leaves its local variance unchanged). It is thresholded, the
connected components within the area limits are the detections, and each centroid is refined
at full resolution as the centroid of the cell's soft footprint (``|d|`` smoothed and mapped to
[0, 1]) in a cell-sized window (the cell's projection is symmetric about its centre, so this is
unbiased and good to a fraction of a pixel; :func:`rbcflow.kernels.footprint_centroids`).

The filter runs on the frame averaged over ``downsample x downsample`` blocks: cells stay
several blocks wide, the block average lowers the noise, and it is 16x less work (the front end
has about half a millisecond per megapixel frame).

Coordinates follow :mod:`rbcflow.schema` (x = column, y = row, origin at the centre of pixel
(0, 0)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from rbcflow.config import DetectionConfig
from rbcflow.kernels import footprint_centroids
from rbcflow.schema import DETECTIONS, validate

ROBUST_SIGMA = 1.4826
"""MAD -> standard deviation for normal data."""


def local_std(image: np.ndarray, window: int) -> np.ndarray:
    """Local standard deviation over a ``window x window`` square (reflected borders).

    Parameters
    ----------
    image : (rows, cols) ndarray, any real dtype
    window : int
        Odd side of the square, pixels.

    Returns
    -------
    (rows, cols) float32 ndarray
        ``sqrt(mean(I**2) - mean(I)**2)`` over the window around each pixel (population std),
        intensity units.

    Examples
    --------
    >>> img = np.zeros((5, 5), np.float32); img[2, 2] = 9.0
    >>> float(local_std(img, 3)[2, 2])
    2.8284...
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    return np.sqrt(local_variance(np.asarray(image, dtype=np.float32), window))


def local_variance(image: np.ndarray, window: int) -> np.ndarray:
    """Local (population) variance over a ``window x window`` square; float32 in, float32 out."""
    mean = cv2.boxFilter(image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT_101)
    mean_sq = cv2.sqrBoxFilter(
        image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT_101
    )
    var = cv2.subtract(mean_sq, cv2.multiply(mean, mean))
    # Rounding can make a flat region's variance slightly negative.
    return cv2.max(var, 0.0)


def auto_threshold(std_image: np.ndarray, k: float) -> float:
    """``median + k * robust_sigma`` of a local-std image, robust_sigma from the MAD.

    Cells cover a small fraction of the field, so the median and the MAD describe the noise.

    Examples
    --------
    >>> round(auto_threshold(np.array([1.0, 2.0, 3.0, 100.0]), k=2.0), 4)
    5.4652
    """
    values = np.asarray(std_image, dtype=np.float64).ravel()
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med)))
    return med + k * ROBUST_SIGMA * mad


def effective_window(window: int, downsample: int) -> int:
    """Odd window, in blocks, nearest ``window / downsample`` (at least 3)."""
    half = round((window / downsample - 1) / 2)
    return max(3, 2 * half + 1)


def downsample_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks (trailing rows/cols that do not fill a block are
    dropped); float32 out.

    A power-of-two factor is done as successive halvings (:func:`cv2.resize` with bilinear
    interpolation at exactly half the size averages each 2x2 block): about twice as fast as one
    area resampling of the whole factor on 8-bit frames. Float input is averaged exactly; 8-bit
    input is rounded at each halving (a constant bias of about +0.25 intensity units and a
    rounding noise of 0.3 units rms for factor 4, the same as a one-step 8-bit area resampling):
    the local variance ignores the bias, and the frame's offset is not taken from here.

    Examples
    --------
    >>> img = np.arange(64, dtype=np.float32).reshape(8, 8)
    >>> downsample_image(img, 4).tolist()
    [[13.5, 17.5], [45.5, 49.5]]
    """
    image = np.asarray(image)
    if factor == 1:
        return image.astype(np.float32)
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    cut = image[: rows * factor, : cols * factor]
    if cut.dtype not in (np.uint8, np.uint16, np.float32):
        cut = cut.astype(np.float32)
    if factor & (factor - 1) == 0:
        small = cut
        while factor > 1:
            factor //= 2
            small = cv2.resize(
                small, (cols * factor, rows * factor), interpolation=cv2.INTER_LINEAR
            )
    else:
        small = cv2.resize(cut, (cols, rows), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32, copy=False)


def clipped_std(values: np.ndarray) -> float:
    """Robust standard deviation: std of the values within 3 sigmas of the median, divided
    by 0.9866 (the std of a normal distribution clipped at 3 sigmas).

    The MAD alone comes on a coarse grid for quantised (integer) data; here it only sets a
    first, wide (4 sigma) clip, whose std sets the 3-sigma clip; outliers (cells, debris)
    barely touch the answer.
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    med = float(np.median(v))
    dev = np.abs(v - med)
    sigma0 = ROBUST_SIGMA * float(np.median(dev))
    if sigma0 <= 0:
        return float(np.std(v))
    # The MAD is coarse: a wide first clip, then the 3-sigma clip on the better estimate.
    sigma1 = float(np.std(v[dev < 4.0 * sigma0]))
    return float(np.std(v[dev < 3.0 * sigma1])) / 0.9866


def robust_noise(frame: np.ndarray, background: np.ndarray, step: int = 3) -> float:
    """Camera noise: :func:`clipped_std` of ``frame - background``, intensity units, from every
    ``step``-th row (plenty of pixels, ``step`` times less work)."""
    return clipped_std(np.asarray(frame[::step], dtype=np.float32) - background[::step])


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
    integer positions ``c`` (n, 2): :func:`rbcflow.kernels.footprint_centroids`, one compiled
    call per frame.

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


@dataclass
class Coarse:
    """Coarse detections of one frame (see :meth:`FrameDetector.coarse`).

    xy : (n, 2) float64, component centroids (x, y), pixels (good to about a block).
    area : (n,) int64, component areas, pixels.
    score : (n,) float64, mean local variance in each component.
    extent : (n,) int64, larger side of each component's bounding box, pixels.
    offset : float, mean of the downsampled ``frame - background`` (illumination drift).
    mean : float, mean raw intensity of the frame.
    mass : (n,) float64 or None, full-resolution footprint area of each detection (the total
        soft-footprint weight of :func:`refine_centroids`), pixels; set by
        :meth:`FrameDetector.refine`.
    """

    xy: np.ndarray
    area: np.ndarray
    score: np.ndarray
    extent: np.ndarray
    offset: float
    mean: float
    mass: np.ndarray | None = None  # set by FrameDetector.refine: footprint areas, pixels


class FrameDetector:
    """Detection for one video: background and threshold prepared once, called per frame.

    Parameters
    ----------
    background : (rows, cols) float32 ndarray
        Median background of the video.
    cfg : DetectionConfig
    threshold : float, optional
        Threshold on the local std of the downsampled background-subtracted frame; defaults to
        ``cfg.threshold``, which must then be set (see :meth:`calibrate`).
    noise : float
        Camera noise (robust std of ``frame - background``), intensity units; sets the floor of
        the centroid refinement.
    centroid_half : int
        Half side of the centroid-refinement window, pixels (about a cell radius + 3).

    Examples
    --------
    >>> bg = np.full((40, 60), 120, np.float32)
    >>> frame = bg.astype(np.uint8); frame[18:23, 28:33] = 60
    >>> det = FrameDetector(bg, DetectionConfig(min_area=4), threshold=5.0)
    >>> xy, area, score = det(frame)
    >>> xy.round(2).tolist()
    [[30.0, 20.0]]
    """

    def __init__(
        self,
        background: np.ndarray,
        cfg: DetectionConfig | None = None,
        *,
        threshold: float | None = None,
        noise: float = 0.0,
        centroid_half: int = 8,
    ):
        cfg = self.cfg = cfg or DetectionConfig()
        self.background = np.asarray(background, dtype=np.float32)
        self.ds = int(cfg.downsample)
        if self.ds < 1:
            raise ValueError(f"downsample must be >= 1, got {cfg.downsample}")
        self.window = effective_window(cfg.window, self.ds)
        self.background_small = downsample_image(self.background, self.ds)
        self.background_mean = float(cv2.mean(self.background)[0])
        threshold = cfg.threshold if threshold is None else threshold
        if threshold is None:
            raise ValueError("no threshold: pass one or use FrameDetector.calibrate")
        self.threshold = float(threshold)
        self.noise = float(noise)
        self.centroid_half = int(centroid_half)
        self.last_offset = 0.0
        self.last_mass: np.ndarray | None = None
        self.edge_radius: float | None = None

    @classmethod
    def calibrate(
        cls,
        background: np.ndarray,
        samples: np.ndarray,
        cfg: DetectionConfig | None = None,
        *,
        centroid_half: int = 8,
        max_frames: int = 12,
    ) -> FrameDetector:
        """A detector whose automatic threshold and noise come from sample frames.

        The threshold is the median over up to ``max_frames`` samples of each one's
        :func:`auto_threshold` (``cfg.threshold`` wins when set).

        Parameters
        ----------
        background : (rows, cols) float32 ndarray
        samples : (N, rows, cols) ndarray
            Frames sampled through the video (the background's own samples).
        """
        cfg = cfg or DetectionConfig()
        det = cls(
            background,
            cfg,
            threshold=0.0 if cfg.threshold is None else cfg.threshold,
            centroid_half=centroid_half,
        )
        pick = samples[np.unique(np.linspace(0, len(samples) - 1, max_frames).astype(int))]
        if cfg.threshold is None:
            det.threshold = float(
                np.median([auto_threshold(det.std_image(f), cfg.threshold_k) for f in pick])
            )
        det.noise = float(np.median([robust_noise(f, det.background) for f in pick[:3]]))
        return det

    def std_image(self, frame: np.ndarray) -> np.ndarray:
        """Local std of the downsampled background-subtracted frame, (rows//ds, cols//ds)
        float32."""
        return np.sqrt(self._variance(frame))

    def _variance(self, frame: np.ndarray) -> np.ndarray:
        """Local variance of the downsampled ``frame - background``."""
        small = downsample_image(frame, self.ds)
        cv2.subtract(small, self.background_small, dst=small)
        return local_variance(small, self.window)

    def coarse(self, frame: np.ndarray) -> Coarse:
        """First half of the detection: components of the thresholded variance image.

        Almost only OpenCV calls, which release the GIL: the front end runs this in the
        decoding thread, and :meth:`refine` in the main one. The components' statistics are
        computed from their pixels only (a few hundred blocks; OpenCV's own statistics pass
        over the whole image costs ten times the labelling).
        """
        var = self._variance(frame)
        mask = np.greater(var, self.threshold * self.threshold).view(np.uint8)
        n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
        mean = float(cv2.mean(frame)[0])
        # The frame's illumination offset against the background (cells cover a small part
        # of the field), at full resolution.
        offset = mean - self.background_mean
        on = np.flatnonzero(mask.ravel())
        lab = labels.ravel()[on]
        count = np.bincount(lab, minlength=n)
        ds2 = self.ds * self.ds
        area = count.astype(np.int64) * ds2
        keep = np.flatnonzero((area >= self.cfg.min_area) & (area <= self.cfg.max_area))
        keep = keep[keep > 0]
        if keep.size == 0:
            return Coarse(
                np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), offset, mean
            )
        row, col = np.divmod(on, mask.shape[1])
        cx = np.bincount(lab, weights=col, minlength=n)[keep] / count[keep]
        cy = np.bincount(lab, weights=row, minlength=n)[keep] / count[keep]
        # Block (i, j) covers pixels [ds*i, ds*i + ds) whose centre is ds*i + (ds - 1) / 2.
        xy = np.stack([cx, cy], axis=1) * self.ds + (self.ds - 1) / 2.0
        # Mean variance per component.
        score = np.bincount(lab, weights=var.ravel()[on], minlength=n)[keep] / count[keep]
        # Bounding boxes: the pixels sorted by label, min/max over each label's run (every
        # label 1..n-1 has pixels, so the runs start where the labels do).
        order = np.argsort(lab, kind="stable")
        starts = np.searchsorted(lab[order], np.arange(1, n))
        rs, cs = row[order], col[order]
        width = np.maximum.reduceat(cs, starts) - np.minimum.reduceat(cs, starts) + 1
        height = np.maximum.reduceat(rs, starts) - np.minimum.reduceat(rs, starts) + 1
        extent = np.maximum(width, height)[keep - 1]
        return Coarse(xy, area[keep], score, extent * self.ds, offset, mean)

    def refine(self, frame: np.ndarray, coarse: Coarse) -> np.ndarray:
        """Second half: sub-pixel centres (:func:`refine_centroids`) of the coarse detections.

        Returns
        -------
        (n, 2) float64 ndarray
            Centres (x, y), pixels (the coarse ones when ``cfg.refine_centroid`` is False).
        """
        return self.refine_many([frame], [coarse])[0]

    def refine_many(self, frames, coarses: list[Coarse]) -> list[np.ndarray]:
        """:meth:`refine` for several frames at once (one set of numpy calls for them all:
        the front end refines its frames in batches). Sets each ``Coarse.mass``."""
        sizes = [len(c.xy) for c in coarses]
        if not self.cfg.refine_centroid or sum(sizes) == 0:
            for c in coarses:
                c.mass = c.area.astype(np.float64)
            return [c.xy.copy() for c in coarses]
        xy = np.concatenate([c.xy for c in coarses])
        extent = np.concatenate([c.extent for c in coarses])
        which = np.repeat(np.arange(len(coarses)), sizes)
        offset = np.repeat([c.offset for c in coarses], sizes)
        mass = np.zeros(len(xy))
        half = self.centroid_half
        # Objects larger than one cell (two cells touching) get a window that holds them
        # whole, or their centre would be pulled towards whichever part it holds.
        big = extent > 2 * (half + 2)
        # Large objects: a window that holds each whole (up to three cell windows), one call
        # per window size (extents come in steps of a block, so few sizes).
        h_big = np.minimum(np.ceil(extent / 2).astype(np.int64) + 1, 3 * half)
        groups = [(np.flatnonzero(~big), half)] + [
            (np.flatnonzero(big & (h_big == h)), int(h)) for h in np.unique(h_big[big])
        ]
        for sel, h in groups:
            if sel.size:
                xy[sel], _, mass[sel] = refine_centroids(
                    frames,
                    self.background,
                    xy[sel],
                    h,
                    self.noise,
                    offset[sel],
                    edge_radius=self.edge_radius,
                    return_mass=True,
                    which=which[sel],
                )
        out = np.split(xy, np.cumsum(sizes)[:-1])
        for c, m in zip(coarses, np.split(mass, np.cumsum(sizes)[:-1]), strict=True):
            c.mass = m
        return out

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect the cells of one frame (:meth:`coarse` then :meth:`refine`).

        Parameters
        ----------
        frame : (rows, cols) uint8, uint16 or float32 ndarray

        Returns
        -------
        xy : (n, 2) float64 ndarray
            Centres (x, y), pixels of the original frame.
        area : (n,) int64 ndarray
            Component areas, pixels of the original frame.
        score : (n,) float64 ndarray
            Mean local variance in each component (intensity units squared).
        """
        c = self.coarse(frame)
        self.last_offset = c.offset
        xy = self.refine(frame, c)
        self.last_mass = c.mass
        return xy, c.area, c.score


def detect_frame(
    frame: np.ndarray,
    background: np.ndarray,
    cfg: DetectionConfig | None = None,
    *,
    threshold: float | None = None,
    frame_index: int = 0,
    noise: float | None = None,
    centroid_half: int = 8,
) -> pd.DataFrame:
    """Detections of one frame as a :data:`rbcflow.schema.DETECTIONS` table.

    Parameters
    ----------
    frame : (rows, cols) uint8, uint16 or float32 ndarray
    background : (rows, cols) float32 ndarray
    cfg : DetectionConfig
    threshold : float, optional
        Overrides ``cfg.threshold``; when both are None the automatic threshold of this frame
        is used.
    frame_index : int
        Value of the ``frame`` column.
    noise : float, optional
        Camera noise; estimated from this frame when None.

    Returns
    -------
    DataFrame
        Columns of ``DETECTIONS``: frame, x, y, area, score.
    """
    cfg = cfg or DetectionConfig()
    background = np.asarray(background, dtype=np.float32)
    if noise is None:
        noise = robust_noise(frame, background)
    det = FrameDetector(background, cfg, threshold=0.0, noise=noise, centroid_half=centroid_half)
    thr = cfg.threshold if threshold is None else threshold
    det.threshold = auto_threshold(det.std_image(frame), cfg.threshold_k) if thr is None else thr
    xy, area, score = det(frame)
    table = pd.DataFrame(
        {
            "frame": np.full(len(area), frame_index),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "area": area,
            "score": score,
        }
    )
    return validate(table, DETECTIONS, "detections")


def centroid_half_for(diameter: float) -> int:
    """Half side of the centroid window for cells of ``diameter`` pixels (radius + 3)."""
    return int(math.ceil(diameter / 2.0)) + 3
