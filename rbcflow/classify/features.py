"""Per-track shape dynamics: a physical, inspectable account of each classifier call.

A tank-treading red cell is a steadily oriented ellipsoid: its projected aspect ratio and
orientation barely change along the track. A flipping (tumbling) cell rotates like a rigid disc:
its projection alternates between a disc and an edge-on rod, so the aspect ratio oscillates and
the orientation wanders. These measures are computed from the same ``(T, 31, 31)`` crops the
classifiers see and are written beside their probabilities in ``tracks.csv``.

Method, per crop
----------------
1. Background level and noise: median and robust standard deviation (1.4826 x MAD) of the crop's
   outer ring, 2 pixels wide (the cell is centred, so the ring is background).
2. Cell mask: where the crop has local structure (3x3 local standard deviation, or 3x3 mean
   deviation from the background) clearly above its border's level (``k`` robust sigmas, and
   at least ``peak_fraction`` of the strongest response near the centre): bright-field cells
   have a dark rim, a brighter centre and grey levels in between, so a threshold on the
   deviation alone breaks them into arcs. The regions reaching a central disc are joined,
   closed, hole-filled and eroded by one pixel (the 3x3 windows grow the mask by one).
3. Shape: from the mask's second central moments ``mu20, mu02, mu11`` (x = column, y = row), the
   covariance eigenvalues ``l1 >= l2`` give the aspect ratio ``sqrt(l1 / l2)`` (1 for a disc; a/b
   for an ellipse of semi-axes a >= b) and the major axis orientation
   ``0.5 * atan2(2 mu11, mu20 - mu02)``, in degrees from the flow direction (+x), in (-90, 90],
   positive angles turning towards +y (down the image).

All crops of many tracks are processed as one stack (one labelling call with a structuring
element that does not connect frames), so thousands of tracks take about a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rbcflow.classify.sampling import border_ring
from rbcflow.schema import CROP_SIZE, FEATURE_COLUMNS

_RING = 2  # width of the border ring that gives the background level and noise, pixels
_PLANAR = np.zeros((3, 3, 3), dtype=bool)
_PLANAR[1, 1, :] = True  # 4-connectivity inside a frame (a 3x3 cross), none in time
_PLANAR[1, :, 1] = True
_MIN_AREA = 6  # a mask smaller than this has no meaningful second moments, pixels


def _disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return xx**2 + yy**2 <= radius**2


def _shift_or(mask: np.ndarray, fill: bool) -> np.ndarray:
    """OR (fill False) or AND (fill True) of a stack with its 4 in-plane neighbours."""
    out = mask.copy()
    op = np.logical_and if fill else np.logical_or
    op(out[:, 1:, :], mask[:, :-1, :], out=out[:, 1:, :])
    op(out[:, :-1, :], mask[:, 1:, :], out=out[:, :-1, :])
    op(out[:, :, 1:], mask[:, :, :-1], out=out[:, :, 1:])
    op(out[:, :, :-1], mask[:, :, 1:], out=out[:, :, :-1])
    return out


def _close_cross(mask: np.ndarray) -> np.ndarray:
    """Binary closing of each frame with a 3x3 cross (outside the crop counts as set for the
    erosion, so a cell cut by the border is not eaten away); vectorised over the stack."""
    return _shift_or(_shift_or(mask, fill=False), fill=True)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill each frame's holes: unset regions that do not touch the crop border.

    One labelling call on the whole stack (ten times faster than iterated dilation).
    """
    from scipy import ndimage as ndi  # here: analyze imports this module before it needs it

    labels, n = ndi.label(~mask, structure=_PLANAR)
    if n == 0:
        return mask
    outside = np.zeros(n + 1, dtype=bool)
    for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        outside[edge] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[labels]


def segment_cells(
    crops: np.ndarray,
    *,
    k: float = 3.0,
    peak_fraction: float = 0.3,
    centre_radius: float = 6.0,
) -> np.ndarray:
    """Mask of the centred cell in each crop.

    A bright-field red cell is a dark rim, a brighter centre, and between them grey levels
    close to the background; depending on focus, one side of the rim may be bright. A
    threshold on the deviation from the background therefore breaks the cell into arcs. What
    every part of the cell has, and the empty chamber has not, is *local structure*: the cell
    mask is where the 3x3 local standard deviation of the crop, or the 3x3 mean deviation from
    the background, stands out from the same measure on the crop's border.

    Parameters
    ----------
    crops : (N, S, S) ndarray, any real dtype
        Raw crops (not background-subtracted), cell centred.
    k : float
        Threshold above the border's typical level, in units of its robust spread (noise).
    peak_fraction : float
        The threshold is at least this fraction of the strongest response near the centre (99th
        percentile in the central disc), so that a high-contrast cell is cut near its edge
        rather than in its blur halo.
    centre_radius : float
        Radius of the central disc, pixels. The cell is the union of the above-threshold regions
        that reach into it, closed (3x3 cross), hole-filled, then eroded by one pixel to undo
        the one-pixel growth of the 3x3 windows. A crop with nothing above threshold there has
        an empty mask.

    Returns
    -------
    masks : (N, S, S) bool ndarray

    Examples
    --------
    >>> crops = np.full((1, 31, 31), 120, np.uint8)
    >>> crops[0, 12:19, 10:21] = 80
    >>> int(segment_cells(crops).sum())  # the 7 x 11 block
    77
    """
    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected (N, S, S) crops, got {crops.shape}")
    n, size = crops.shape[0], crops.shape[1]
    if n == 0:
        return np.zeros(crops.shape, dtype=bool)
    from scipy import ndimage as ndi  # here: analyze imports this module before it needs it

    background = np.median(border_ring(crops, _RING), axis=1)
    dev = crops - background[:, None, None]
    mean = ndi.uniform_filter(dev, (1, 3, 3), mode="nearest")
    local_std = np.sqrt(
        np.maximum(ndi.uniform_filter(dev * dev, (1, 3, 3), mode="nearest") - mean * mean, 0.0)
    )
    response = np.maximum(local_std, np.abs(mean))
    ring = border_ring(response, _RING)
    base = np.median(ring, axis=1)
    # a flat uint8 border has a MAD of 0; a fraction of a grey level is the least noise there is
    spread = np.maximum(1.4826 * np.median(np.abs(ring - base[:, None]), axis=1), 0.3)
    centre = _disc(size, centre_radius)
    peak = np.percentile(response[:, centre], 99, axis=1)
    threshold = np.maximum(base + k * spread, peak_fraction * peak)
    above = response > threshold[:, None, None]
    labels, n_labels = ndi.label(above, structure=_PLANAR)
    if n_labels == 0:
        return np.zeros(crops.shape, dtype=bool)
    central = np.zeros(n_labels + 1, dtype=bool)
    central[labels[:, centre]] = True
    central[0] = False
    mask = _fill_holes(_close_cross(central[labels]))
    return _shift_or(mask, fill=True) & mask


def mask_shape(masks: np.ndarray) -> pd.DataFrame:
    """Area, aspect ratio and orientation of each mask from its second central moments.

    Parameters
    ----------
    masks : (N, S, S) bool ndarray

    Returns
    -------
    DataFrame with N rows and columns ``area`` (pixels), ``aspect_ratio`` (>= 1, NaN for masks
    under 6 pixels), ``orientation`` (degrees from +x towards +y, in (-90, 90]; NaN when the
    mask is too small or round to within 0.1 %).

    Examples
    --------
    >>> yy, xx = np.mgrid[:31, :31] - 15
    >>> ellipse = (xx / 8.0) ** 2 + (yy / 4.0) ** 2 <= 1
    >>> row = mask_shape(ellipse[None]).iloc[0]
    >>> round(float(row.aspect_ratio), 1), round(float(row.orientation), 1)
    (2.0, 0.0)
    """
    masks = np.asarray(masks, dtype=bool)
    n, size = masks.shape[0], masks.shape[1]
    m = masks.reshape(n, -1).astype(np.float64)
    yy, xx = np.mgrid[:size, :size]
    xx = xx.ravel().astype(np.float64)
    yy = yy.ravel().astype(np.float64)
    area = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = m @ xx / area
        cy = m @ yy / area
        mu20 = m @ xx**2 / area - cx**2
        mu02 = m @ yy**2 / area - cy**2
        mu11 = m @ (xx * yy) / area - cx * cy
        half_trace = (mu20 + mu02) / 2
        root = np.sqrt(np.maximum(((mu20 - mu02) / 2) ** 2 + mu11**2, 0.0))
        l1 = half_trace + root
        l2 = half_trace - root
        # a pixel has variance 1/12 along each axis; adding it makes a one-pixel-wide line finite
        aspect = np.sqrt((l1 + 1 / 12) / (l2 + 1 / 12))
        orientation = np.degrees(0.5 * np.arctan2(2 * mu11, mu20 - mu02))
    small = area < _MIN_AREA
    aspect[small] = np.nan
    orientation[small | (root <= 1e-3 * np.maximum(half_trace, 1e-12))] = np.nan
    orientation[orientation <= -90] += 180
    return pd.DataFrame({"area": area, "aspect_ratio": aspect, "orientation": orientation})


def _axial_stats(theta_deg: np.ndarray) -> tuple[float, float]:
    """Mean and circular standard deviation of axial angles (period 180 degrees), degrees."""
    theta = np.radians(theta_deg[np.isfinite(theta_deg)])
    if theta.size == 0:
        return np.nan, np.nan
    z = np.exp(2j * theta).mean()
    r = min(abs(z), 1.0)
    mean = np.degrees(np.angle(z) / 2)
    std = np.degrees(np.sqrt(-2 * np.log(r)) / 2) if r > 0 else 90.0
    return float(mean), float(std)


def dominant_oscillation(series: np.ndarray) -> tuple[float, float]:
    """Share of a series' variance in its strongest frequency, and that frequency's period.

    NaN samples are filled by linear interpolation; the mean is removed. The share is the
    periodogram power of the strongest non-zero frequency over the total non-zero power: near 1
    for a sinusoid, small for white noise over many samples (about ``2 ln(T) / T``).

    Parameters
    ----------
    series : (T,) float ndarray

    Returns
    -------
    share : float in [0, 1], NaN when fewer than 6 finite samples or a constant series.
    period : float, samples (T / k for frequency bin k), NaN likewise.

    Examples
    --------
    >>> t = np.arange(60)
    >>> share, period = dominant_oscillation(1.5 + 0.3 * np.sin(2 * np.pi * t / 20))
    >>> round(share, 3), period
    (1.0, 20.0)
    """
    x = np.asarray(series, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 6:
        return np.nan, np.nan
    if not ok.all():
        idx = np.arange(x.size)
        x = np.interp(idx, idx[ok], x[ok])
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x)[1:]) ** 2
    if x.size % 2 == 0:
        power[-1] /= 2  # the Nyquist bin has no mirror image, count it once
    total = power.sum()
    if total <= 1e-12 * x.size:
        return np.nan, np.nan
    k = int(np.argmax(power))
    return float(power[k] / total), float(x.size / (k + 1))


def track_features(crops: Sequence[np.ndarray], max_frames: int = 160) -> pd.DataFrame:
    """Shape dynamics of each track (the columns of :data:`rbcflow.schema.FEATURE_COLUMNS`).

    Parameters
    ----------
    crops : sequence of (T_i, 31, 31) uint8 ndarrays
        One stack per track, as the front end cuts them.
    max_frames : int
        A longer track is measured on every k-th frame (k = ceil(T / max_frames)), which keeps
        the cost per track bounded and the sampling uniform; periods are still given in frames
        of the video. At 160, a track of up to 480 frames (8 s at 60 fps) keeps a Nyquist
        period of 6 frames, below the fastest flipping (~12 frames).

    Returns
    -------
    DataFrame with one row per track, in order, columns :data:`rbcflow.schema.FEATURE_COLUMNS`.

    Examples
    --------
    >>> yy, xx = np.mgrid[:31, :31] - 15
    >>> cell = np.where((xx / 6.0) ** 2 + (yy / 4.0) ** 2 <= 1, 60, 120).astype(np.uint8)
    >>> row = track_features([np.repeat(cell[None], 10, axis=0)]).iloc[0]
    >>> round(float(row.ar_mean), 2), float(row.ar_std), float(row.shape_frames)
    (1.54, 0.0, 1.0)
    """
    strides = [max(1, -(-len(c) // max_frames)) for c in crops]
    crops = [
        np.asarray(c).reshape(-1, CROP_SIZE, CROP_SIZE)[::k]
        for c, k in zip(crops, strides, strict=True)
    ]
    lengths = np.array([len(c) for c in crops], dtype=np.int64)
    out = pd.DataFrame({c: np.full(len(lengths), np.nan) for c in FEATURE_COLUMNS})
    if len(lengths) == 0 or lengths.sum() == 0:
        return out.astype(FEATURE_COLUMNS)
    stack = np.concatenate(crops)
    shape = mask_shape(segment_cells(stack))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ar_all = shape["aspect_ratio"].to_numpy()
    area_all = shape["area"].to_numpy()
    th_all = shape["orientation"].to_numpy()
    rows = []
    for start, length, stride in zip(starts, lengths, strides, strict=True):
        ar = ar_all[start : start + length]
        ok = np.isfinite(ar)
        row = dict.fromkeys(FEATURE_COLUMNS, np.nan)
        row["shape_frames"] = ok.mean() if length else np.nan
        if ok.any():
            row["area_mean"] = area_all[start : start + length][ok].mean()
            row["ar_mean"] = ar[ok].mean()
            row["ar_std"] = ar[ok].std()
            row["orientation_mean"], row["orientation_std"] = _axial_stats(
                th_all[start : start + length]
            )
            row["ar_osc_power"], period = dominant_oscillation(ar)
            row["ar_osc_period"] = period * stride
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)).astype(FEATURE_COLUMNS)
