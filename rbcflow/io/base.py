"""The one reader contract every video source implements.

A reader is a random-access, streaming view of a grayscale video: ``len(reader)`` frames, each a
2-D array ``(rows, cols)`` of ``reader.dtype`` (uint8 or uint16), read only when asked for, so
that a video of any length is processed in bounded memory. Iterating a reader yields frames in
order and is the fast path (sequential decoding); ``reader[i]`` may seek.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class VideoReader(ABC):
    """Abstract grayscale video reader.

    Attributes
    ----------
    source : Path
        The file or folder read.
    fps : float
        Frame rate, frames/s (from the container, or overridden).
    fps_from_container : bool
        False when the container had no (or an absurd) rate and a default was used.
    shape : tuple of int
        ``(rows, cols)`` of every frame.
    dtype : numpy.dtype
        uint8 or uint16.
    warnings : list of str
        Problems met while reading that did not stop it (e.g. a truncated file read up to the
        last readable frame). Readers append to it; the pipeline copies it into ``run.json``.
    costly_seeks : bool
        True when ``reader[i]`` decodes from the previous key frame (codecs with inter frames
        or key-frame intervals, through FFmpeg), so that reading in order is much cheaper than
        seeking to each frame; False (the default) when any frame is read at about the cost
        of the next one (uncompressed, Motion-JPEG, TIFF pages, frame files).
    """

    source: Path
    fps: float
    fps_from_container: bool = True
    costly_seeks: bool = False
    shape: tuple[int, int]
    dtype: np.dtype

    def __init__(self) -> None:
        self.warnings: list[str] = []

    @abstractmethod
    def __len__(self) -> int:
        """Number of readable frames."""

    @abstractmethod
    def get_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based) as a ``(rows, cols)`` array of ``self.dtype``."""

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        return self.get_frame(i)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order; subclasses override with a sequential decoder when faster."""
        for i in range(len(self)):
            yield self.get_frame(i)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.source)!r}, frames={len(self)}, "
            f"shape={self.shape}, dtype={np.dtype(self.dtype).name}, fps={self.fps:g})"
        )
