"""31x31 cell crops, and the cell size that decides their scale.

Each crop is cut from the *raw* frame (the training crops are raw intensities, not
background-subtracted), centred on the track's sub-pixel position by bilinear resampling, so
that crop pixel ``(15, 15)`` samples the frame exactly at ``(x, y)``. Where the crop reaches
past the frame border it is filled with the background image (extended from the border), so
that the cell is not smeared by edge replication, and flagged ``edge``.

Cameras with another magnification than the training data's (a red cell ~8-12 px across in a
31x31 crop) are handled by a resampling factor ``scale``: the crop then covers ``31 / scale``
pixels of the frame. :func:`equivalent_diameter` measures a cell the same way on a video
(:func:`rbcflow.frontend.calibration.estimate_diameter`) and on the training crops
(:func:`crop_diameter`), so ``scale = target_diameter / diameter`` makes them match.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from rbcflow.frontend.variance import clipped_std
from rbcflow.schema import CROP_SIZE


class CropCutter:
    """Cuts crops from the frames of one video.

    Parameters
    ----------
    background : (rows, cols) float32 ndarray
        The video's median background (fills the part of a crop outside the frame).
    size : int
        Crop side, pixels (odd).
    scale : float
        Resampling factor (> 1 enlarges cells); the crop covers ``size / scale`` frame pixels.
    gain : float
        Intensities are multiplied by this before rounding to uint8 (1 for 8-bit video; for
        16-bit video a gain that brings the background near the training data's level).

    Examples
    --------
    >>> frame = np.arange(100 * 100, dtype=np.float32).reshape(100, 100) % 251
    >>> cut = CropCutter(np.zeros((100, 100), np.float32))
    >>> crop, edge = cut(frame.astype(np.uint8), 50.0, 40.0)
    >>> int(crop[15, 15]) == int(frame[40, 50]), edge
    (True, False)
    """

    def __init__(
        self, background: np.ndarray, size: int = CROP_SIZE, scale: float = 1.0, gain: float = 1.0
    ):
        if size % 2 == 0 or size < 1:
            raise ValueError(f"crop size must be odd, got {size}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.background = np.asarray(background, dtype=np.float32)
        self.rows, self.cols = self.background.shape
        self.size = int(size)
        self.scale = float(scale)
        self.gain = float(gain)
        self.half = (self.size - 1) / 2.0
        # Half extent of the crop's footprint in the frame, pixels.
        self.reach = self.half / self.scale
        # Anti-aliasing when shrinking (scale < 1): a Gaussian whose sigma grows with the
        # shrink factor, applied to the local patch before resampling.
        self.sigma = 0.5 * math.sqrt(1.0 / self.scale**2 - 1.0) if self.scale < 1 else 0.0
        margin = 2 + int(math.ceil(3 * self.sigma))
        self.patch_half = int(math.ceil(self.reach)) + margin
        offsets = (np.arange(self.size, dtype=np.float64) - self.half) / self.scale
        self._offsets = offsets
        # The background extended past the frame by replication, for crops cut by the border.
        self._pad = self.patch_half + 2
        self._padded = cv2.copyMakeBorder(
            self.background, *([self._pad] * 4), borderType=cv2.BORDER_REPLICATE
        )

    def touches_edge(self, x: float, y: float) -> bool:
        """Whether the crop around (x, y) needs pixels outside the frame."""
        return (
            x - self.reach < 0
            or y - self.reach < 0
            or x + self.reach > self.cols - 1
            or y + self.reach > self.rows - 1
        )

    def __call__(self, frame: np.ndarray, x: float, y: float) -> tuple[np.ndarray, bool]:
        """The crop centred on (x, y).

        Parameters
        ----------
        frame : (rows, cols) uint8, uint16 or float32 ndarray
            Raw frame.
        x, y : float
            Centre, pixels (schema convention).

        Returns
        -------
        crop : (size, size) uint8 ndarray
        edge : bool
            True when part of the crop lies outside the frame (filled with background).
        """
        edge = self.touches_edge(x, y)
        # Work on a small patch around the centre: cheap whatever the frame size, and lets
        # the anti-aliasing blur and the dtype conversion touch only what is needed.
        cx, cy = int(math.floor(x)), int(math.floor(y))
        ph = self.patch_half
        x0, y0 = cx - ph, cy - ph
        x1, y1 = cx + ph + 2, cy + ph + 2
        if edge or self.scale != 1.0 or frame.dtype != np.uint8 or self.gain != 1.0:
            patch = self._patch(frame, x0, y0, x1, y1)
            if self.sigma > 0:
                patch = cv2.GaussianBlur(patch, (0, 0), self.sigma)
            m = np.array(
                [
                    [1 / self.scale, 0, x - x0 - self.half / self.scale],
                    [0, 1 / self.scale, y - y0 - self.half / self.scale],
                ]
            )
            out = cv2.warpAffine(
                patch,
                m,
                (self.size, self.size),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            if self.gain != 1.0:
                out *= self.gain
            crop = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        else:
            # Fast path (8-bit, scale 1, inside the frame): exact bilinear resampling.
            crop = cv2.getRectSubPix(frame, (self.size, self.size), (x, y))
        return crop, edge

    def _patch(self, frame: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """float32 patch ``[y0:y1, x0:x1]`` of the frame, background outside the frame."""
        if x0 >= 0 and y0 >= 0 and x1 <= self.cols and y1 <= self.rows:
            return frame[y0:y1, x0:x1].astype(np.float32)
        # Background extended from the border (replicated), then the frame where it exists.
        p = self._pad
        if y0 >= -p and x0 >= -p and y1 <= self.rows + p and x1 <= self.cols + p:
            patch = self._padded[y0 + p : y1 + p, x0 + p : x1 + p].copy()
        else:  # farther out than the padding (a centre outside the frame)
            ys = np.clip(np.arange(y0, y1), 0, self.rows - 1)
            xs = np.clip(np.arange(x0, x1), 0, self.cols - 1)
            patch = self.background[np.ix_(ys, xs)].astype(np.float32)
        fy0, fy1 = max(y0, 0), min(y1, self.rows)
        fx0, fx1 = max(x0, 0), min(x1, self.cols)
        if fy0 < fy1 and fx0 < fx1:
            patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame[fy0:fy1, fx0:fx1]
        return patch


def crop_track(
    frames: Sequence[np.ndarray],
    xs: Iterable[float],
    ys: Iterable[float],
    background: np.ndarray,
    size: int = CROP_SIZE,
    scale: float = 1.0,
    gain: float = 1.0,
) -> tuple[np.ndarray, bool]:
    """Crops of one track from its frames (a convenience wrapper of :class:`CropCutter`).

    Parameters
    ----------
    frames : sequence of (rows, cols) ndarray
        The raw frames of the track, one per position.
    xs, ys : iterables of float
        Positions, pixels.

    Returns
    -------
    crops : (T, size, size) uint8 ndarray
    edge : bool
        True when any crop reached past the frame border.
    """
    cut = CropCutter(background, size=size, scale=scale, gain=gain)
    out, edges = [], []
    for frame, x, y in zip(frames, xs, ys, strict=True):
        crop, edge = cut(frame, x, y)
        out.append(crop)
        edges.append(edge)
    return np.stack(out) if out else np.zeros((0, size, size), np.uint8), any(edges)


def equivalent_diameter(diff: np.ndarray, noise: float) -> float:
    """Equivalent diameter of the cell at the centre of a background-subtracted patch.

    The cell's footprint is where the smoothed ``|diff|`` (less the median of the patch border)
    exceeds the larger of 3 (smoothed) noise sigmas and a quarter of its peak near the centre: the
    connected regions centred near the middle of the patch, holes filled (the zero crossing
    between dark rim and bright inside would otherwise leave a ring); the diameter is that of
    the disc of the same area.

    Parameters
    ----------
    diff : (h, w) float32 ndarray
        ``frame - background`` around one cell, the cell near the centre; the patch should be
        at least twice the cell's diameter.
    noise : float
        Camera noise (std), intensity units.

    Returns
    -------
    float
        Diameter, pixels; NaN when no cell is found.

    Examples
    --------
    >>> yy, xx = np.mgrid[-15:16, -15:16]
    >>> disc = np.where(xx**2 + yy**2 <= 5**2, -30.0, 0.0).astype(np.float32)
    >>> round(equivalent_diameter(disc, noise=1.0), 1)
    10.9
    """
    diff = np.asarray(diff, dtype=np.float32)
    # Remove what is left of a global offset (illumination drift): the patch border is
    # background.
    border = np.concatenate([diff[0], diff[-1], diff[1:-1, 0], diff[1:-1, -1]])
    smooth = np.abs(cv2.GaussianBlur(diff - np.float32(np.median(border)), (0, 0), 0.7))
    h, w = smooth.shape
    cy, cx = h // 2, w // 2
    r = max(2, min(h, w) // 6)
    peak = float(smooth[cy - r : cy + r + 1, cx - r : cx + r + 1].max())
    # The blur (sigma 0.7) leaves 0.40 of the noise std: 3 sigmas of the blurred noise.
    level = max(3.0 * 0.40 * noise, 0.25 * peak)
    if peak <= level:
        return math.nan
    mask = (smooth > level).astype(np.uint8)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return math.nan
    # The dark rim (a ring) and the bright inside (a blob) are separate components around the
    # same centre: take every component centred near the middle, and fill the holes between.
    dist = np.hypot(cents[1:, 0] - cx, cents[1:, 1] - cy)
    near = np.flatnonzero(dist <= max(2.0, r / 2)) + 1
    if near.size == 0:
        near = np.array([1 + int(np.argmin(dist))])
    region = np.isin(labels, near).astype(np.uint8)
    # Fill holes: flood the outside from the border, what is not reached is inside.
    padded = np.pad(region, 1)
    flood = padded.copy()
    ff_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    filled = padded | (1 - flood)
    area = float(filled.sum())
    return 2.0 * math.sqrt(area / math.pi)


def crop_diameter(crop: np.ndarray, noise: float | None = None) -> float:
    """:func:`equivalent_diameter` of the cell of a training-style crop (no background
    available: the median of the crop's border pixels stands for it).

    Parameters
    ----------
    crop : (31, 31) uint8 ndarray
    noise : float, optional
        Defaults to the robust std (:func:`rbcflow.frontend.variance.clipped_std`) of the border
        pixels.
    """
    c = np.asarray(crop, dtype=np.float32)
    border = np.concatenate([c[0], c[-1], c[1:-1, 0], c[1:-1, -1]])
    med = float(np.median(border))
    if noise is None:
        noise = clipped_std(border)
    return equivalent_diameter(c - med, noise)


def inner_span(edge_flags: list[bool], min_length: int) -> tuple[int, int]:
    """The frames of a track whose crops the classifiers see: without the leading and trailing
    frames whose crop reaches past the image border (the cell entering or leaving the field,
    so a partial cell the camera never recorded), unless fewer than ``min_length`` would be
    left (then all of them).

    Examples
    --------
    >>> inner_span([True, True, False, False, False, False, False, False, True], 6)
    (2, 8)
    >>> inner_span([True, False, False, True], 6)
    (0, 4)
    """
    n = len(edge_flags)
    a = 0
    while a < n and edge_flags[a]:
        a += 1
    b = n
    while b > a and edge_flags[b - 1]:
        b -= 1
    return (a, b) if b - a >= min_length else (0, n)
