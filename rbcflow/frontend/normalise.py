"""Per-frame illumination normalisation: a gain and an offset fitted against the background.

Lamp flicker and slow drift change a frame's level as a whole: ``frame ~ g * background + o``
on the pixels where no cell is. :func:`gain_offset` fits ``g`` and ``o`` by least squares on
the (downsampled) frame against the background, twice: the second fit leaves out the pixels
whose residual exceeds a few robust standard deviations of the first (cells, which cover a
small part of the field). The detector then subtracts ``g * background + o`` instead of the
background (:meth:`rbcflow.frontend.detection.FrameDetector.variance`), so that a flickering
frame leaves no trace of the background's structure (gradient, debris) in the difference.
"""

from __future__ import annotations

import numpy as np

_MAD_SIGMA = 1.4826


def gain_offset(
    frame: np.ndarray, background: np.ndarray, *, step: int = 2, clip: float = 3.0
) -> tuple[float, float]:
    """Gain ``g`` and offset ``o`` with ``frame ~ g * background + o`` on background pixels.

    Parameters
    ----------
    frame, background : (rows, cols) ndarrays
        Same shape (the detector passes their block averages).
    step : int
        Every ``step``-th row and column enter the fit (a subsample is as good and cheaper).
    clip : float
        Pixels whose first-fit residual exceeds ``clip`` robust standard deviations are left
        out of the second fit.

    Returns
    -------
    g, o : float
        ``g`` is 1 where the background is flat (no contrast to fit a gain on); ``o`` then the
        median difference.

    Examples
    --------
    >>> bg = np.linspace(80, 160, 400, dtype=np.float32).reshape(20, 20)
    >>> frame = 1.03 * bg - 2.0
    >>> frame[5:8, 5:8] -= 40  # a cell
    >>> [round(v, 3) for v in gain_offset(frame, bg)]
    [1.03, -2.0]
    """
    f = np.asarray(frame, np.float64)[::step, ::step].ravel()
    b = np.asarray(background, np.float64)[::step, ::step].ravel()
    keep = np.ones(f.size, dtype=bool)
    g, o = 1.0, 0.0
    for _ in range(2):
        fb, bb = f[keep], b[keep]
        if fb.size < 3:
            break
        bm = bb.mean()
        vb = float(np.mean((bb - bm) ** 2))
        if vb < 1e-6 * max(bm * bm, 1.0):
            g, o = 1.0, float(np.median(fb - bb))
        else:
            g = float(np.mean((bb - bm) * (fb - fb.mean())) / vb)
            o = float(fb.mean() - g * bm)
        r = f - (g * b + o)
        spread = _MAD_SIGMA * float(np.median(np.abs(r - np.median(r))))
        keep = np.abs(r) <= clip * max(spread, 1e-6)
    return g, o
