"""The frame-rate policy of every reader: which rates are plausible, and which one a reader uses.

An explicit rate (``--fps``) wins, then the container's when plausible, then
:attr:`rbcflow.config.ReaderConfig.default_fps` with a warning (:func:`resolve_fps`).
"""

from __future__ import annotations

import math

from rbcflow.config import ReaderConfig
from rbcflow.errors import RbcflowError
from rbcflow.io.base import VideoReader

MAX_FPS = 10_000.0
MIN_FPS = 1e-3
"""Frame rates outside [MIN_FPS, MAX_FPS] frames/s, or NaN, are treated as missing."""

DEFAULT_FPS: float = ReaderConfig().default_fps
"""Rate used when an input records none (:attr:`rbcflow.config.ReaderConfig.default_fps`)."""


def plausible_fps(fps: float | None) -> bool:
    """True when ``fps`` is a finite rate in [:data:`MIN_FPS`, :data:`MAX_FPS`] frames/s."""
    return fps is not None and math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS


def resolve_fps(
    reader: VideoReader, container_fps: float | None, fps: float | None, default_fps: float
) -> None:
    """Set ``reader.fps``, ``reader.fps_from_container`` and ``reader.fps_source``.

    An explicit ``fps`` wins (``fps_source == "override"``); else the container's rate when
    plausible (``"container"``); else ``default_fps`` (``"default"``) with a warning in
    ``reader.warnings``. Shared by all readers.

    Raises
    ------
    RbcflowError
        If the explicit ``fps`` is not a plausible rate (:func:`plausible_fps`).
    """
    if fps is not None:
        if not plausible_fps(fps):
            raise RbcflowError(
                f"frame rate {fps!r} is not a rate in [{MIN_FPS:g}, {MAX_FPS:g}] frames/s",
                reader.source,
            )
        reader.fps = float(fps)
        reader.fps_from_container = False
        reader.fps_source = "override"
        return
    if plausible_fps(container_fps):
        reader.fps = float(container_fps)
        reader.fps_from_container = True
        reader.fps_source = "container"
        return
    what = (
        "no frame rate recorded"
        if container_fps is None
        else f"absurd frame rate {container_fps!r} recorded"
    )
    reader.warnings.append(f"{what}; using {default_fps:g} frames/s (set it with --fps)")
    reader.fps = float(default_fps)
    reader.fps_from_container = False
    reader.fps_source = "default"
