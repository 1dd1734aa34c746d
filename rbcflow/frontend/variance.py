"""Local variance, block means and robust noise statistics: the front end's lowest layer.

A red cell in bright field is a dark rim around a brighter centre: after subtracting the
background its pixels vary strongly over a few pixels, while the empty chamber only carries
camera noise. The local standard deviation (box filters of ``d`` and ``d**2``) is therefore
high on cells and low elsewhere, whatever the illumination level (a global brightness flicker
adds a constant to ``d`` and leaves its local variance unchanged). :mod:`.detection` thresholds
it; the threshold (:func:`auto_threshold`) and the camera noise (:func:`robust_noise`) come from
robust statistics of the empty chamber, which :mod:`.crops` also uses (:func:`clipped_std`).

The filter runs on the frame averaged over ``downsample x downsample`` blocks
(:func:`downsample_image`): cells stay several blocks wide, the block average lowers the noise,
and it is 16x less work (the front end has about half a millisecond per megapixel frame).
"""

from __future__ import annotations

import cv2
import numpy as np

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
