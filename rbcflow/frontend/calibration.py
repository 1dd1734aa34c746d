"""Per-video calibration, from the background's sample frames.

The frames sampled for the background (:mod:`.background`) also calibrate the video, once,
before the tracking pass: the detection threshold and the camera noise
(:meth:`rbcflow.frontend.detection.FrameDetector.calibrate_on`), then, from the detections of
those frames, the cell diameter (:func:`estimate_diameter`: the automatic crop scale and the
size of the centroid and correlation windows), the centre-to-edge distance of whole cells (the
centre of cells cut by the border) and the footprint area of one cell (:func:`one_cell_area`:
the reference of the tracks' ``size_ratio``). Each sampled frame's local-variance image is
computed once and serves both the threshold and the detections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from rbcflow.config import FrontEndConfig
from rbcflow.frontend.crops import equivalent_diameter
from rbcflow.frontend.detection import FrameDetector, calibration_frames
from rbcflow.frontend.footprints import centroid_half_for, footprint_radius


@dataclass
class Calibration:
    """What the sample frames say about one video (see :func:`calibrate`).

    Attributes
    ----------
    detector : FrameDetector
        Threshold, noise, centroid window and edge radius set.
    diameter : float
        Estimated cell diameter, pixels at the original scale (NaN if none measured).
    size : float
        The diameter that sizes the windows: ``diameter``, or the crops' target diameter when
        none was measured.
    cell_area : float
        Footprint area of one cell (:func:`one_cell_area`), pixels (NaN if none measured).
    scale : float
        Crop resampling factor.
    gain : float
        Crop intensity gain (1 for 8-bit video; for other depths the training background
        level over the video's).
    warnings : list of str
    """

    detector: FrameDetector
    diameter: float
    size: float
    cell_area: float
    scale: float
    gain: float
    warnings: list[str] = field(default_factory=list)


def calibrate(
    background: np.ndarray, samples: np.ndarray, cfg: FrontEndConfig, dtype
) -> Calibration:
    """Calibrate the detection, the windows and the crops of one video.

    Parameters
    ----------
    background : (rows, cols) float32 ndarray
        The video's median background.
    samples : (N, rows, cols) ndarray
        The background's sample frames; up to
        :data:`~rbcflow.frontend.detection.CALIBRATION_FRAMES` of them, evenly spaced, are used.
    cfg : FrontEndConfig
    dtype : numpy dtype
        The video's frame dtype (8-bit video is cropped without a gain).

    Returns
    -------
    Calibration
    """
    warns: list[str] = []
    detector = FrameDetector(background, cfg.detection, threshold=0.0)  # set by calibrate_on
    # The sample frames are measured unsplit: the one-cell area is the reference of the
    # two-cell rule and of the split itself, and splitting with no reference yet would cut
    # single cells whose variance ring has two maxima (every size_ratio would double).
    detector.split_distance = 0.0
    pick = calibration_frames(samples)
    # One variance image per frame, for the threshold and then the frame's detections.
    variances = detector.calibrate_on(pick)
    coarses = [detector.coarse(f, v) for f, v in zip(pick, variances, strict=True)]
    del variances
    found, masses = [], []
    for f, c in zip(pick, coarses, strict=True):
        found.append(detector.refine(f, c))
        masses.append(c.mass)
    # The one-cell reference against which a track's footprint area says whether it is two
    # cells moving as one object (see one_cell_area).
    cell_area = one_cell_area(np.concatenate(masses) if masses else [])
    diameter = estimate_diameter(pick, background, found, max(detector.noise, 0.5))
    size = diameter if math.isfinite(diameter) else cfg.crops.target_diameter
    if not math.isfinite(diameter):
        warns.append("no cell could be measured in the sampled frames; cell size unknown")
    detector.centroid_half = centroid_half_for(size)
    # Two cells passing close merge into one component: split those with maxima farther
    # apart than a cell (touching pairs, about one diameter apart, stay one object) and an
    # area of more than the two-cell rule's share of one cell's.
    if cfg.detection.split_distance > 0:
        detector.split_distance = cfg.detection.split_factor * size
        block = one_cell_area(np.concatenate([c.area for c in coarses]) if coarses else [])
        if math.isfinite(block):
            detector.split_min_area = cfg.detection.split_area * block
    # Centre-to-edge distance of whole cells, so that cells cut by the border get a centre.
    radii = [
        r
        for f, c in zip(pick, coarses, strict=True)
        for r in footprint_radius(
            f,
            background,
            detector.refine(f, c),
            detector.centroid_half,
            detector.noise,
            c.offset,
        )
    ]
    if radii:
        detector.edge_radius = float(np.median(radii))
    # Full-resolution pair split (splitting.split_pairs), once the rest is
    # measured (unsplit, as above): against the one-cell area, for
    # centres a footprint diameter apart.
    detector.cell_area = cell_area
    detector.pair_distance = cfg.detection.pair_factor * size
    crops = cfg.crops
    scale = crops.scale
    if scale is None:
        scale = crops.target_diameter / diameter if math.isfinite(diameter) else 1.0
    elif math.isfinite(diameter) and not (
        crops.diameter_warn[0] <= diameter / crops.target_diameter <= crops.diameter_warn[1]
    ):
        warns.append(
            f"cells measure about {diameter:.1f} px across, training crops "
            f"{crops.target_diameter:g} px: consider --scale auto "
            f"(scale {crops.target_diameter / diameter:.2f})"
        )
    gain = 1.0
    if np.dtype(dtype) != np.uint8:
        level = float(np.median(background))
        gain = crops.training_background / level if level > 0 else 1.0
    return Calibration(detector, diameter, size, cell_area, scale, gain, warns)


def one_cell_area(areas: Iterable[float]) -> float:
    """Typical footprint area of one cell, from the detections of sample frames.

    The median of all detections, then the median of those between half and 1.4 times it:
    pairs of touching cells (about twice the area) then barely move the answer as long as
    they are a minority of the objects. Where pairs are a large share of all objects (a too
    dense sample) the reference rises and fewer pairs reach the rule's threshold; where
    out-of-focus cells dominate, the reference is theirs. Both err on the side of keeping
    tracks, never of rejecting single cells.

    Examples
    --------
    >>> one_cell_area([100, 104, 96, 98, 102, 200, 210, 205])  # 3 pairs among 8 objects
    100.0
    """
    a = np.asarray(list(areas), dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan
    m0 = float(np.median(a))
    near = a[(a >= 0.5 * m0) & (a <= 1.4 * m0)]
    return float(np.median(near)) if near.size else m0


def estimate_diameter(
    frames: Iterable[np.ndarray],
    background: np.ndarray,
    positions: Iterable[np.ndarray],
    noise: float,
    half: int = 15,
) -> float:
    """Median :func:`equivalent_diameter` of detected cells.

    Parameters
    ----------
    frames : iterable of (rows, cols) ndarray
    background : (rows, cols) float32 ndarray
    positions : iterable of (n, 2) float ndarray
        Detected (x, y) in each frame.
    noise : float
        Camera noise, intensity units.
    half : int
        Half side of the measuring patch, pixels.

    Returns
    -------
    float
        Median diameter, pixels; NaN when no cell could be measured.
    """
    background = np.asarray(background, dtype=np.float32)
    rows, cols = background.shape
    sizes = []
    for frame, xy in zip(frames, positions, strict=True):
        for x, y in np.asarray(xy).reshape(-1, 2):
            cx, cy = int(round(x)), int(round(y))
            if cx - half < 0 or cy - half < 0 or cx + half >= cols or cy + half >= rows:
                continue
            sl = np.s_[cy - half : cy + half + 1, cx - half : cx + half + 1]
            d = equivalent_diameter(frame[sl].astype(np.float32) - background[sl], noise)
            if np.isfinite(d):
                sizes.append(d)
    return float(np.median(sizes)) if sizes else math.nan
