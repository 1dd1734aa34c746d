"""Cell detection: local-variance filter on the background-subtracted frame.

A red cell in bright field is a dark rim around a brighter centre: after subtracting the
background its pixels vary strongly over a few pixels, while the empty chamber only carries
camera noise. The local standard deviation (box filters of ``d`` and ``d**2``) is therefore
high on cells and low elsewhere, whatever the illumination level (a global brightness flicker
adds a constant to ``d`` and leaves its local variance unchanged). It is thresholded, the
connected components within the area limits are the detections, and each centroid is refined
at full resolution as the centroid of ``|d|`` in a cell-sized window (the cell's projection is
symmetric about its centre, so this is unbiased and good to a fraction of a pixel).

The filter runs on the frame averaged over ``downsample x downsample`` blocks: cells stay
several blocks wide, the block average lowers the noise, and it is 4x less work (the front end
has a few milliseconds per megapixel frame).

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
    dropped); float32 out."""
    image = np.asarray(image)
    if factor == 1:
        return image.astype(np.float32)
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    cut = image[: rows * factor, : cols * factor]
    if cut.dtype not in (np.uint8, np.uint16, np.float32):
        cut = cut.astype(np.float32)
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


def _binomial_blur(stack: np.ndarray) -> np.ndarray:
    """[1, 2, 1] x [1, 2, 1] / 16 smoothing of the last two axes, valid part only
    (each side loses one pixel)."""
    a = stack[..., :-2, :] + 2.0 * stack[..., 1:-1, :] + stack[..., 2:, :]
    return (a[..., :-2] + 2.0 * a[..., 1:-1] + a[..., 2:]) * np.float32(1.0 / 16.0)


BLUR_NOISE = 0.375
"""Noise std after :func:`_binomial_blur`, relative to before (sqrt(6)/4 per axis)."""


def footprint_weights(diff: np.ndarray, noise: float) -> np.ndarray:
    """Soft footprint of cells in background-subtracted patches.

    ``|blur(diff)|`` mapped linearly from 0 at 2 blurred-noise sigmas to 1 at 6: pixels clearly
    on the cell all weigh 1 whatever their contrast, so the centroid is the geometric centre of
    the footprint, not pulled towards the darker side of an unevenly lit rim; the ramp keeps it
    sub-pixel at the edge.

    Parameters
    ----------
    diff : (..., h + 2, w + 2) float32 ndarray
        Background-subtracted patches (with one pixel of margin on each side for the blur).
    noise : float
        Camera noise (std of ``diff`` where there is no cell), intensity units.

    Returns
    -------
    (..., h, w) float32 ndarray
        Weights in [0, 1].
    """
    sb = max(float(noise), 0.5) * BLUR_NOISE
    w = np.abs(_binomial_blur(diff))
    w -= np.float32(2.0 * sb)
    w *= np.float32(1.0 / (4.0 * sb))
    return np.clip(w, 0.0, 1.0, out=w)


def _windows(
    frame: np.ndarray, background: np.ndarray, c: np.ndarray, half: int, offset: float
) -> np.ndarray:
    """``frame - background - offset`` in ``(2 * half + 3)`` square windows centred on the
    integer positions ``c`` (n, 2); 0 outside the frame. (n, p, p) float32.

    One gather for all windows (a fixed number of numpy calls per frame, whatever the number
    of cells: the per-call overhead, not the arithmetic, is what costs here).
    """
    rows, cols = frame.shape
    span = np.arange(-half - 1, half + 2)
    r = c[:, 1, None] + span  # (n, p)
    q = c[:, 0, None] + span
    r_in = (r >= 0) & (r < rows)
    q_in = (q >= 0) & (q < cols)
    ri = np.clip(r, 0, rows - 1)[:, :, None]
    qi = np.clip(q, 0, cols - 1)[:, None, :]
    stack = frame[ri, qi].astype(np.float32)
    stack -= background[ri, qi]
    if offset:
        stack -= np.float32(offset)
    if not (r_in.all() and q_in.all()):
        stack *= r_in[:, :, None] & q_in[:, None, :]
    return stack


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
):
    """Sub-pixel cell centres: centroids of the soft footprint in square windows.

    Cells cut by the frame border have a footprint whose centroid is pulled inwards; when
    ``edge_radius`` is given, their centre along a cut axis is instead the footprint's far
    edge (the side inside the frame) minus ``edge_radius``.

    Parameters
    ----------
    frame : (rows, cols) ndarray
        Raw frame.
    background : (rows, cols) float32 ndarray
    xy : (n, 2) float ndarray
        Starting positions (x, y), pixels.
    half : int
        Half side of the window, pixels (the window is ``2 * half + 1`` square: a cell radius
        plus a few pixels).
    noise : float
        Camera noise, intensity units (see :func:`footprint_weights`).
    offset : float
        Global offset of ``frame - background`` in this frame (illumination drift), removed
        before weighting.
    iterations : int
        The window is re-centred on the new centroid this many times.
    edge_radius : float, optional
        Distance from a cell's centre to its footprint's edge (see :func:`footprint_radius`),
        pixels; None leaves cells cut by the border where they were (``ok`` False).

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
    offsets = np.arange(-half, half + 1, dtype=np.float64)
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
            frame, background, xy[todo], c[todo], half, noise, offset, edge_radius, offsets
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
    offset: float,
    edge_radius: float | None,
    offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of :func:`refine_centroids` with windows centred on the integer positions
    ``c``; returns the new ``xy`` (a copy), ``ok`` and the footprint masses."""
    xy = xy.copy()
    n = len(xy)
    ok = np.zeros(n, dtype=bool)
    mass = np.zeros(n)
    rows, cols = frame.shape
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
    ok[~use] = False
    if idx.size == 0:
        return xy, ok, mass
    w = footprint_weights(_windows(frame, background, c[idx], half, offset), noise)
    total = w.sum(axis=(1, 2), dtype=np.float64)
    mass[idx] = total
    good = total > 0
    norm = np.maximum(total, 1e-12)
    fx = np.where(good, (w.sum(axis=1, dtype=np.float64) @ offsets) / norm, 0.0)
    fy = np.where(good, (w.sum(axis=2, dtype=np.float64) @ offsets) / norm, 0.0)
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
    w = footprint_weights(_windows(frame, background, c[inside], half, offset), noise)
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
        return np.sqrt(self._variance(frame)[0])

    def _variance(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Local variance of the downsampled ``frame - background``, and that difference's
        mean (the frame's illumination offset: cells cover a small part of the field)."""
        small = downsample_image(frame, self.ds)
        cv2.subtract(small, self.background_small, dst=small)
        return local_variance(small, self.window), float(cv2.mean(small)[0])

    def coarse(self, frame: np.ndarray) -> Coarse:
        """First half of the detection: components of the thresholded variance image.

        Almost only OpenCV calls, which release the GIL: the front end runs this in the
        decoding thread, and :meth:`refine` in the main one.
        """
        var, offset = self._variance(frame)
        mask = np.greater(var, self.threshold * self.threshold).view(np.uint8)
        n, labels, stats, cents = cv2.connectedComponentsWithStats(
            mask, connectivity=8, ltype=cv2.CV_32S
        )
        ds2 = self.ds * self.ds
        area = stats[1:, cv2.CC_STAT_AREA].astype(np.int64) * ds2
        keep = np.flatnonzero((area >= self.cfg.min_area) & (area <= self.cfg.max_area)) + 1
        mean = float(cv2.mean(frame)[0])
        if keep.size == 0:
            return Coarse(
                np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), offset, mean
            )
        # Block (i, j) covers pixels [ds*i, ds*i + ds) whose centre is ds*i + (ds - 1) / 2.
        xy = cents[keep] * self.ds + (self.ds - 1) / 2.0
        # Mean variance per component, summed over the thresholded blocks only (a few percent
        # of the frame).
        on = np.flatnonzero(mask.ravel())
        sums = np.bincount(labels.ravel()[on], weights=var.ravel()[on], minlength=n)
        score = sums[keep] / stats[keep, cv2.CC_STAT_AREA]
        extent = np.maximum(stats[keep, cv2.CC_STAT_WIDTH], stats[keep, cv2.CC_STAT_HEIGHT])
        return Coarse(xy, area[keep - 1], score, extent * self.ds, offset, mean)

    def refine(self, frame: np.ndarray, coarse: Coarse) -> np.ndarray:
        """Second half: sub-pixel centres (:func:`refine_centroids`) of the coarse detections.

        Returns
        -------
        (n, 2) float64 ndarray
            Centres (x, y), pixels (the coarse ones when ``cfg.refine_centroid`` is False).
        """
        xy = coarse.xy.copy()
        if not self.cfg.refine_centroid or len(xy) == 0:
            coarse.mass = coarse.area.astype(np.float64)
            return xy
        mass = np.zeros(len(xy))
        half = self.centroid_half
        # Objects larger than one cell (two cells touching) get a window that holds them
        # whole, or their centre would be pulled towards whichever part it holds.
        big = coarse.extent > 2 * (half + 2)
        for sel, h in (
            (np.flatnonzero(~big), half),
            # One window for all of this frame's large objects (the largest one's): one call
            # instead of one per object.
            (
                np.flatnonzero(big),
                min(int(math.ceil(coarse.extent[big].max() / 2)) + 1, 3 * half)
                if big.any()
                else half,
            ),
        ):
            if sel.size:
                xy[sel], _, mass[sel] = refine_centroids(
                    frame,
                    self.background,
                    xy[sel],
                    h,
                    self.noise,
                    coarse.offset,
                    edge_radius=self.edge_radius,
                    return_mass=True,
                )
        coarse.mass = mass
        return xy

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
