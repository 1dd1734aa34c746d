"""Cell detection: local-variance filter on the background-subtracted frame.

The local standard deviation of ``frame - background`` (:mod:`.variance`) is high on cells and
low elsewhere. It is thresholded, the connected components within the area limits are the
detections (:meth:`FrameDetector.coarse`), and each centroid is refined at full resolution as
the centroid of the cell's soft footprint (:mod:`.footprints`, :meth:`FrameDetector.refine`).

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

from rbcflow.config import DetectionConfig
from rbcflow.frontend.footprints import refine_centroids
from rbcflow.frontend.frame_kernels import component_pixels, component_stats
from rbcflow.frontend.normalise import gain_offset
from rbcflow.frontend.splitting import split_components, split_pairs
from rbcflow.frontend.variance import (
    auto_threshold,
    downsample_image,
    effective_window,
    local_variance,
    robust_noise,
)


def noise_level(var: np.ndarray, step: int = 4) -> float:
    """A frame's noise: the median of its local-variance image (of the normalised,
    background-subtracted block means) on every ``step``-th block each way. Cells cover a few
    per cent of the field, so the median is the background's, and its local variance is the
    noise variance (the normalisation removed the flicker and drift).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = local_variance(rng.normal(0, 1, (200, 200)).astype(np.float32), 3)
    >>> b = local_variance(rng.normal(0, 2, (200, 200)).astype(np.float32), 3)
    >>> round(noise_level(b) / noise_level(a), 1)
    4.0
    """
    sub = np.asarray(var)[::step, ::step].ravel()
    if sub.size == 0:
        return 0.0
    k = sub.size // 2
    return float(np.partition(sub, k)[k])


CALIBRATION_FRAMES = 12
"""Sampled frames, evenly spaced among the background's samples, that calibrate a video."""


def calibration_frames(samples: np.ndarray, max_frames: int = CALIBRATION_FRAMES) -> np.ndarray:
    """Up to ``max_frames`` of ``samples``, evenly spaced (first and last included).

    Examples
    --------
    >>> calibration_frames(np.arange(100), 4).tolist()
    [0, 33, 66, 99]
    """
    return samples[np.unique(np.linspace(0, len(samples) - 1, max_frames).astype(int))]


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
        self.split_distance = float(cfg.split_distance)
        self.split_min_area = 0.0  # components smaller than this are never split, pixels
        self.noise_level = 0.0  # calibration frames' noise_level (0: fixed threshold)
        # full-resolution pair split (splitting.split_pairs): off until calibrated
        self.cell_area = float("nan")  # one cell's footprint area, pixels
        self.pair_distance = float(cfg.pair_factor) * 12.0
        self.pair_mass = float(cfg.pair_mass)

    @classmethod
    def calibrate(
        cls,
        background: np.ndarray,
        samples: np.ndarray,
        cfg: DetectionConfig | None = None,
        *,
        centroid_half: int = 8,
        max_frames: int = CALIBRATION_FRAMES,
    ) -> FrameDetector:
        """A detector whose automatic threshold and noise come from sample frames.

        The threshold is the median over up to ``max_frames`` samples
        (:func:`calibration_frames`) of each one's :func:`auto_threshold` (``cfg.threshold``
        wins when set); see :meth:`calibrate_on`.

        Parameters
        ----------
        background : (rows, cols) float32 ndarray
        samples : (N, rows, cols) ndarray
            Frames sampled through the video (the background's own samples).
        """
        det = cls(background, cfg, threshold=0.0, centroid_half=centroid_half)
        det.calibrate_on(calibration_frames(samples, max_frames))
        return det

    def calibrate_on(self, frames: np.ndarray) -> list[np.ndarray]:
        """Set the threshold and the camera noise from calibration frames.

        The threshold is ``cfg.threshold`` when set, else the median over ``frames`` of each
        one's :func:`auto_threshold`; the noise is the median :func:`robust_noise` of the first
        three frames.

        Returns
        -------
        list of ndarray
            The frames' local-variance images (:meth:`variance`), for :meth:`coarse`: the
            calibration then computes each frame's variance image once.
        """
        variances = [self.variance(f) for f in frames]
        if self.cfg.threshold is None:
            k = self.cfg.threshold_k
            self.threshold = float(np.median([auto_threshold(np.sqrt(v), k) for v in variances]))
        else:
            self.threshold = float(self.cfg.threshold)
        self.noise = float(np.median([robust_noise(f, self.background) for f in frames[:3]]))
        if self.cfg.adaptive_threshold:
            self.noise_level = float(np.median([noise_level(v) for v in variances]))
        return variances

    def frame_threshold(self, var: np.ndarray) -> float:
        """The threshold for one frame's variance image: the video's, times the frame's
        noise over the calibration frames' (:func:`noise_level`: the threshold follows each
        frame's noise, e.g. a lamp or gain change), by at least half and at most 5 times;
        the video's threshold itself where no reference was measured."""
        if not self.noise_level > 0:
            return self.threshold
        ratio = math.sqrt(noise_level(var) / self.noise_level)
        return self.threshold * min(max(ratio, 0.5), 5.0)

    def std_image(self, frame: np.ndarray) -> np.ndarray:
        """Local std of the downsampled background-subtracted frame, (rows//ds, cols//ds)
        float32."""
        return np.sqrt(self.variance(frame))

    def variance(self, frame: np.ndarray) -> np.ndarray:
        """Local variance of the downsampled ``frame - background``, (rows//ds, cols//ds)
        float32."""
        small = downsample_image(frame, self.ds)
        if self.cfg.normalise:
            # Flicker and drift: subtract g * background + o fitted on background pixels.
            g, o = gain_offset(small, self.background_small)
            cv2.addWeighted(self.background_small, -g, small, 1.0, -o, dst=small)
        else:
            cv2.subtract(small, self.background_small, dst=small)
        return local_variance(small, self.window)

    def coarse(self, frame: np.ndarray, var: np.ndarray | None = None) -> Coarse:
        """First half of the detection: components of the thresholded variance image.

        Almost only OpenCV calls, which release the GIL: the front end runs this in the
        decoding thread, and :meth:`refine` in the main one. The components' statistics are
        computed from their pixels only (a few hundred blocks; OpenCV's own statistics pass
        over the whole image costs ten times the labelling). ``var``: the frame's
        :meth:`variance` image when the caller has it already.
        """
        if var is None:
            var = self.variance(frame)
        mask = np.greater(var, self.frame_threshold(var) ** 2).view(np.uint8)
        n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
        mean = float(cv2.mean(frame)[0])
        # The frame's illumination offset against the background (cells cover a small part
        # of the field), at full resolution.
        offset = mean - self.background_mean
        on, lab, row, col, count = component_pixels(labels, n)
        ds2 = self.ds * self.ds
        area = count.astype(np.int64) * ds2
        keep = np.flatnonzero((area >= self.cfg.min_area) & (area <= self.cfg.max_area))
        keep = keep[keep > 0]
        if keep.size == 0:
            return Coarse(
                np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), offset, mean
            )
        peaks: dict = {}
        if self.split_distance > 0:
            lab, n, count, keep, peaks = split_components(
                var,
                on,
                lab,
                (row, col),
                count,
                keep,
                self.split_distance / self.ds,
                self.split_min_area / (self.ds * self.ds),
                self.cfg.min_area / (self.ds * self.ds),
            )
            n = len(count)
            area = count.astype(np.int64) * ds2
        # sums (in pixel order, as np.bincount) and bounding boxes of every label, compiled
        sum_col, sum_row, sum_var, box = component_stats(lab, row, col, var.ravel()[on], n)
        cx = sum_col[keep] / count[keep]
        cy = sum_row[keep] / count[keep]
        if self.split_distance > 0 and peaks:
            # split parts: centred on their variance maximum (their centroid leans in)
            for i, k in enumerate(keep.tolist()):
                if k in peaks:
                    cy[i], cx[i] = peaks[k]
        # Block (i, j) covers pixels [ds*i, ds*i + ds) whose centre is ds*i + (ds - 1) / 2.
        xy = np.stack([cx, cy], axis=1) * self.ds + (self.ds - 1) / 2.0
        # Mean variance per component.
        score = sum_var[keep] / count[keep]
        # the larger side of each kept component's bounding box, blocks
        kb = box[keep]
        extent = np.maximum(kb[:, 3] - kb[:, 2], kb[:, 1] - kb[:, 0]) + 1
        if self.split_distance > 0 and peaks:
            # a split part is one cell: refined in a one-cell window, not a pair's
            part = np.isin(keep, list(peaks))
            extent[part] = np.minimum(extent[part], 2 * (self.centroid_half + 2) // self.ds)
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
        if self.pair_mass > 0 and big.any():
            out = split_pairs(frames, self, out, coarses)  # cells ~14 px apart
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
