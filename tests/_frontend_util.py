"""Helpers shared by the front-end tests: an in-memory reader, an analytic cell, and a linker
fed hand-built detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rbcflow.io.base import VideoReader

LINK_BG = np.zeros((80, 400), np.float32)
"""The blank background :func:`link_detections` links on."""


class ArrayReader(VideoReader):
    """A VideoReader over a list (or callable) of frames held in memory."""

    def __init__(self, frames, fps: float = 60.0, n: int | None = None, shape=None, dtype=None):
        super().__init__()
        self._get = frames if callable(frames) else frames.__getitem__
        self._n = len(frames) if n is None else n
        first = self._get(0)
        self.shape = tuple(first.shape) if shape is None else shape
        self.dtype = first.dtype if dtype is None else np.dtype(dtype)
        self.fps = fps
        self.source = Path("memory.avi")

    def __len__(self) -> int:
        return self._n

    def get_frame(self, i: int) -> np.ndarray:
        return self._get(i)


def cell_image(
    shape,
    centres,
    level=120.0,
    radius=5.0,
    rim=-30.0,
    inside=15.0,
    noise=0.0,
    rng=None,
    dtype=np.uint8,
) -> np.ndarray:
    """A bright-field-like frame: flat background with symmetric cells (dark rim, bright
    inside) centred exactly at ``centres`` [(x, y), ...] (sub-pixel), plus Gaussian noise."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    img = np.full(shape, level, np.float64)
    for x, y in centres:
        r = np.hypot(xx - x, yy - y)
        img += rim * np.exp(-0.5 * ((r - radius) / 1.2) ** 2)
        img += inside * np.exp(-0.5 * (r / (0.55 * radius)) ** 2)
    if noise:
        img += np.random.default_rng(rng).normal(0, noise, shape)
    if np.dtype(dtype) == np.uint8:
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if np.dtype(dtype) == np.uint16:
        return np.clip(np.rint(img * 256), 0, 65535).astype(np.uint16)
    return img.astype(dtype)


def link_detections(dets, cfg=None):
    """Link hand-built detections, ``dets[t]`` a list of (x, y), on :data:`LINK_BG`
    (refinement off unless ``cfg`` says otherwise); returns (finished tracks, the linker)."""
    from rbcflow.config import TrackingConfig
    from rbcflow.frontend.tracking import Linker

    link = Linker(LINK_BG, cfg or TrackingConfig(refine=False))
    done = []
    for t, d in enumerate(dets):
        done += link.step(t, None, np.array(d, float).reshape(-1, 2))
    done += link.finish()
    return done, link
