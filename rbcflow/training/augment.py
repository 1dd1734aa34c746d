"""Data augmentation of normalised crop sequences, and synthetic unreliable cases.

All functions take and return normalised sequences (``(T, 31, 31)`` float32, background near 0,
see :func:`rbcflow.classify.sampling.normalise`) and draw from a
:class:`numpy.random.Generator`.

Label-preserving changes (:func:`augment`) model what differs between real acquisitions without
changing what the cell does: the mirror image across the flow axis (a cell in the other half of
the shear flow), time reversal, contrast gain, noise, slight blur and small centring errors.

Unreliable cases (:func:`make_unreliable`) are made from reliable sequences the way the real
ones arise (the real ratio is 15-30 unreliable for each reliable cell, but the public set has
few): defocus, a second cell overlapping or passing, a cell cut by the crop edge, and a cell
fading out of the focal plane.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

UNRELIABLE_KINDS = ("defocus", "overlap", "edge", "fade")


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift every frame of ``x`` by integer ``(dy, dx)``; uncovered pixels are background 0."""
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), mode="nearest").astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
    """A random label-preserving variant of a normalised sequence.

    Parameters
    ----------
    x : (T, H, W) float32 ndarray
        Normalised frames.
    rng : numpy Generator
    length : int, optional
        Number of real frames when ``x`` is padded with blank frames at the end (time reversal
        then reverses the real frames only); default all.

    Returns
    -------
    (T, H, W) float32 ndarray
    """
    x = np.array(x, dtype=np.float32, copy=True)
    n = len(x) if length is None else length
    if rng.random() < 0.5:  # mirror across the flow axis
        x = x[:, ::-1, :]
    if rng.random() < 0.5:
        x[:n] = x[:n][::-1]
    if rng.random() < 0.3:
        x = _blur(x, rng.uniform(0.3, 0.8))
    if rng.random() < 0.5:  # centring error of the front end
        x = _shift(x, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
    x *= rng.uniform(0.75, 1.33)
    x += rng.uniform(-0.1, 0.1)
    sigma = rng.uniform(0.0, 0.25)
    x += rng.normal(0.0, sigma, x.shape).astype(np.float32)
    if length is not None and length < len(x):
        x[length:] = 0.0  # padding stays blank
    return np.ascontiguousarray(x)


def make_unreliable(
    x: np.ndarray, other: np.ndarray, rng: np.random.Generator, kind: str | None = None
) -> np.ndarray:
    """An unreliable case made from a reliable normalised sequence.

    Parameters
    ----------
    x : (T, H, W) float32 ndarray
        A reliable cell's normalised frames.
    other : (T2, H, W) float32 ndarray
        Another reliable cell's frames (the intruder of ``"overlap"``).
    rng : numpy Generator
    kind : {"defocus", "overlap", "edge", "fade"}, optional
        Which defect; random when None.

    Returns
    -------
    (T, H, W) float32 ndarray
    """
    x = np.array(x, dtype=np.float32, copy=True)
    t, h, w = x.shape
    kind = kind if kind is not None else UNRELIABLE_KINDS[rng.integers(len(UNRELIABLE_KINDS))]
    if kind == "defocus":
        # Out of focus: blurred, and often with inverted contrast (bright centre, dark halo).
        x = _blur(x, rng.uniform(1.3, 2.8)) * rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 2.0)
    elif kind == "overlap":
        # A second cell overlapping or passing close by, for all or part of the sequence.
        reps = int(np.ceil(t / len(other)))
        y = np.concatenate([other] * reps)[:t]
        if rng.random() < 0.5:
            y = y[:, ::-1, :]
        angle = rng.uniform(0, 2 * np.pi)
        dist0, drift = rng.uniform(3, 11), rng.uniform(-6, 6)
        out = x.copy()
        for i in range(t):
            d = dist0 + drift * (i / max(t - 1, 1))
            dy, dx = int(round(d * np.sin(angle))), int(round(d * np.cos(angle)))
            out[i] += _shift(y[i : i + 1], dy, dx)[0]
        x = out
    elif kind == "edge":
        # The cell is cut by the crop edge (a track near another object or the image border).
        angle = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(11, 16)
        x = _shift(x, int(round(d * np.sin(angle))), int(round(d * np.cos(angle))))
    elif kind == "fade":
        # The cell leaves (or enters) the focal plane: contrast fades and blur grows.
        ramp = np.linspace(1.0, rng.uniform(0.0, 0.3), t, dtype=np.float32)
        if rng.random() < 0.5:
            ramp = ramp[::-1]
        sig = np.linspace(0.0, rng.uniform(1.0, 2.5), t)
        if ramp[0] < ramp[-1]:
            sig = sig[::-1]
        x = (
            np.stack([(_blur(x[i : i + 1], s)[0] if s > 0.2 else x[i]) for i, s in enumerate(sig)])
            * ramp[:, None, None]
        )
    else:
        raise ValueError(f"unknown unreliable kind {kind!r} (known: {UNRELIABLE_KINDS})")
    x += rng.normal(0.0, rng.uniform(0.05, 0.25), x.shape).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
