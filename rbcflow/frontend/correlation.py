"""Frame-to-frame displacement of cells by normalised cross-correlation.

The ``(2 * half + 1)`` square patch of the cell in the previous frame (background subtracted) is
matched against the current frame around the cell's expected position, and the peak located to
sub-pixel precision by a parabola: the linker (:mod:`.tracking`) blends this displacement with
the detection centroid. All the cells of a frame go through one compiled call
(:func:`rbcflow.frontend.kernels.correlation_peaks`, checked against OpenCV's
``TM_CCOEFF_NORMED`` in the tests).
"""

from __future__ import annotations

import math

import numpy as np

from rbcflow.frontend.kernels import correlation_peaks


def correlation_shift(
    prev: np.ndarray,
    cur: np.ndarray,
    background: np.ndarray,
    last: tuple[float, float],
    centre: tuple[float, float],
    half: int,
    search: int,
) -> tuple[float, float, float] | None:
    """Where the cell at ``last`` in ``prev`` is in ``cur``, by normalised cross-correlation.

    The ``(2 * half + 1)`` square patch of ``prev - background`` around ``last`` is matched
    against ``cur - background`` within ``search`` pixels of ``centre``; the peak is located to
    sub-pixel precision by a parabola through it and its neighbours along x and y. One cell of
    :func:`correlation_shifts`.

    Parameters
    ----------
    prev, cur : (rows, cols) ndarray
        Consecutive raw frames.
    background : (rows, cols) float32 ndarray
    last : (x, y)
        Position of the cell in ``prev``, pixels.
    centre : (x, y)
        Expected position in ``cur`` (detection or prediction), pixels.
    half, search : int
        Template half side and search half range, pixels.

    Returns
    -------
    (x, y, r) or None
        The cell's position in ``cur`` (pixels) and the peak correlation in [-1, 1]; None when
        the patches would leave the frame.
    """
    x, y, r = correlation_shifts(prev, cur, background, [last], [centre], half, search)[0]
    return None if math.isnan(r) else (float(x), float(y), float(r))


def correlation_shifts(
    prev: np.ndarray,
    cur: np.ndarray,
    background: np.ndarray,
    last,
    centre,
    half: int,
    search: int,
) -> np.ndarray:
    """:func:`correlation_shift` for several cells of the same two frames, in one compiled
    call (:func:`rbcflow.frontend.kernels.correlation_peaks`).

    Parameters
    ----------
    last, centre : (m, 2) array-like
        Positions (x, y) in ``prev`` and expected positions in ``cur``, pixels.

    Returns
    -------
    (m, 3) float64 ndarray
        ``x, y, r`` per cell; NaN where the patches would leave the frame.
    """
    last = np.asarray(last, dtype=np.float64).reshape(-1, 2)
    centre = np.asarray(centre, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(last), 3))
    correlation_peaks(
        prev,
        cur,
        background,
        np.rint(last).astype(np.int64),
        np.rint(centre).astype(np.int64),
        int(half),
        int(search),
        out,
    )
    out[:, :2] += last
    return out
