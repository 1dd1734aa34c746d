"""Data augmentation of normalised crop sequences, and synthetic unreliable cases.

All functions take and return normalised sequences (``(T, 31, 31)`` float32, background near 0,
see :func:`rbcflow.classify.sampling.normalise`) and draw from a
:class:`numpy.random.Generator`.

Label-preserving changes (:func:`augment`) model what differs between real acquisitions without
changing what the cell does: the mirror image across the flow axis (a cell in the other half of
the shear flow), time reversal, and an acquisition's look drawn at random (contrast gain,
offset, noise, blur, cell size within the camera's range, small centring errors), so that
nothing the network learns depends on one patient's illumination or magnification.

Unreliable cases (:func:`make_unreliable`) are made from reliable sequences the way the real
ones arise (the real ratio is 15-30 unreliable for each reliable cell, but the public set has
138 from one patient), so that stage 1 learns the physics of unreliability rather than one
patient's look. The kinds (:data:`UNRELIABLE_KINDS`):

``defocus``       the whole sequence out of focus (blurred, often with inverted contrast);
``overlap``       a second cell overlapping the first for all or part of the sequence;
``edge``          a partial cell: the cell cut by the crop edge;
``fade``          the cell leaving (or entering) the focal plane over the whole sequence;
``crossing``      another real cell crossing the crop for 1-4 frames, at the relative speeds
                  (8-30 px/frame) and lateral offsets (up to 12 px) the tracker sees;
``focus_drift``   in focus at first, then drifting out of focus from a frame in the middle of
                  the sequence (blur grows, contrast fades or inverts);
``touching``      two cells side by side, touching (centres 9-14 px apart), moving together;
``small_dark``    a small, dark, round object (debris, a platelet, a shrunken cell): the cell
                  shrunk to 30-50% and darkened, or a dark Gaussian spot of radius 1.5-3.5 px.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

UNRELIABLE_KINDS = (
    "defocus",
    "overlap",
    "edge",
    "fade",
    "crossing",
    "focus_drift",
    "touching",
    "small_dark",
)

SIZE_RANGE = (0.85, 1.2)
"""Cell-size factor range of :func:`augment` (the camera's range around the training size)."""


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift every frame of ``x`` by integer ``(dy, dx)``; uncovered pixels are background 0."""
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), mode="nearest").astype(np.float32)


def zoom_frames(x: np.ndarray, factor: float) -> np.ndarray:
    """Every frame scaled by ``factor`` about the crop centre (one call on the whole stack).

    Bilinear; pixels brought in from outside the crop are background (0). ``factor > 1`` makes
    the cell bigger.
    """
    c = (np.asarray(x.shape[1:], dtype=float) - 1) / 2
    inv = 1.0 / factor
    matrix = np.diag([1.0, inv, inv])
    offset = np.array([0.0, *(c - inv * c)])
    out = ndimage.affine_transform(x, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    return out.astype(np.float32)


def _paste(frame: np.ndarray, other: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``frame`` plus ``other`` shifted by ``(dy, dx)`` (contrasts add: both cells absorb)."""
    return frame + _shift(other[None], dy, dx)[0]


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
    if rng.random() < 0.5:  # cell size: magnification and cell volume differ between labs
        x[:n] = zoom_frames(x[:n], float(rng.uniform(*SIZE_RANGE)))
    if rng.random() < 0.3:
        x = _blur(x, rng.uniform(0.3, 0.9))
    if rng.random() < 0.5:  # centring error of the front end
        x = _shift(x, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
    x *= rng.uniform(0.6, 1.45)  # contrast: illumination, condenser, focus setting
    x += rng.uniform(-0.1, 0.1)
    sigma = rng.uniform(0.0, 0.3)
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
    kind : one of :data:`UNRELIABLE_KINDS`, optional
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
    elif kind == "crossing":
        x = _crossing(x, other, rng)
    elif kind == "focus_drift":
        x = _focus_drift(x, rng)
    elif kind == "touching":
        # A pair moving together: the second cell beside the first, almost still relative to it.
        angle = rng.uniform(0, 2 * np.pi)
        d0, drift = rng.uniform(9, 14), rng.uniform(-1.5, 1.5)
        y = _loop(other, t)[:, ::-1, :] if rng.random() < 0.5 else _loop(other, t)
        for i in range(t):
            d = d0 + drift * (i / max(t - 1, 1))
            x[i] = _paste(x[i], y[i], int(round(d * np.sin(angle))), int(round(d * np.cos(angle))))
    elif kind == "small_dark":
        x = _small_dark(x, rng)
    else:
        raise ValueError(f"unknown unreliable kind {kind!r} (known: {UNRELIABLE_KINDS})")
    x += rng.normal(0.0, rng.uniform(0.05, 0.25), x.shape).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _loop(seq: np.ndarray, t: int) -> np.ndarray:
    """``seq`` repeated until it has ``t`` frames."""
    return np.concatenate([seq] * int(np.ceil(t / len(seq))))[:t]


def _crossing(x: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another cell crossing the crop for 1-4 frames.

    In the crop's frame the intruder moves along the flow at the relative speed ``v`` (cells in
    other streamlines move faster or slower), at a lateral offset of up to 12 px; it is placed
    where it is inside the crop for ``n_in`` consecutive frames (1-4, fewer for short
    sequences), entering from the left or the right.
    """
    t, _, w = x.shape
    n_in = int(rng.integers(1, min(4, t) + 1))
    reach = w / 2 - 2  # the intruder's centre stays this close to the crop centre
    v_max = 30.0 if n_in == 1 else min(30.0, 2 * reach / (n_in - 1))
    v = rng.uniform(8.0, max(8.0, v_max)) * rng.choice([-1.0, 1.0])
    dy = int(round(rng.uniform(-12, 12)))
    start = int(rng.integers(0, t - n_in + 1))
    # first visible position: somewhere that keeps the cell within the crop for n_in frames
    span = abs(v) * (n_in - 1)
    x0 = rng.uniform(-reach, max(-reach, reach - span))
    y = _loop(other, t)
    out = x.copy()
    for j in range(n_in):
        pos = x0 + abs(v) * j
        dx = int(round(pos if v > 0 else -pos))
        out[start + j] = _paste(out[start + j], y[start + j], dy, dx)
    return out


def _focus_drift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """In focus, then drifting out of focus from a frame in the middle of the sequence."""
    t = len(x)
    onset = int(rng.integers(int(0.2 * t), max(int(0.7 * t), int(0.2 * t) + 1)))
    sig_end = rng.uniform(1.5, 3.0)
    gain_end = rng.uniform(-1.0, 0.3)  # fades, or inverts through the focal plane
    out = x.copy()
    n = t - onset
    for i in range(onset, t):
        a = (i - onset + 1) / max(n, 1)
        out[i] = _blur(x[i : i + 1], a * sig_end)[0] * ((1 - a) + a * gain_end)
    return out


def _small_dark(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small, dark, round object in place of the cell."""
    t, h, w = x.shape
    if rng.random() < 0.5:  # the cell shrunk and darkened: keeps a real rim's texture
        y = zoom_frames(x, float(rng.uniform(0.3, 0.5)))
        return (y * rng.uniform(1.5, 3.0)).astype(np.float32)
    r = rng.uniform(1.5, 3.5)
    depth = rng.uniform(1.0, 4.0)
    yy, xx = np.mgrid[:h, :w] - (np.array([h, w])[:, None, None] - 1) / 2
    jitter = rng.normal(0.0, 0.4, (t, 2))
    d2 = (yy[None] - jitter[:, 0, None, None]) ** 2 + (xx[None] - jitter[:, 1, None, None]) ** 2
    return (-depth * np.exp(-d2 / (2 * r * r))).astype(np.float32)
