"""Native reader of uncompressed AVI (the lab camera's 24-bit DIB frames), without OpenCV's decoder.

OpenCV 5.0's FFmpeg backend corrupts the heap on exactly that format (``free(): invalid
pointer``: the process dies, nothing can catch it; cf. opencv/opencv#4609), so uncompressed AVIs
are read here without OpenCV's video I/O: the RIFF structure is walked once to find the offset
of every frame chunk (:func:`~rbcflow.io.avi.riff.read_avi_layout`), and a frame is one
``seek`` + ``readinto`` into a reused buffer plus a BGR -> gray conversion. That is also faster
than decoding through FFmpeg, seeks exactly, and tells precisely how many complete frames a
truncated file holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.avi.fixed import FixedFrameReader
from rbcflow.io.avi.riff import AviLayout, read_avi_layout
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps
from rbcflow.io.limits import check_frame_size
from rbcflow.run_settings import InputLimits


class RawAviReader(FixedFrameReader):
    """Reader of uncompressed AVI (8-, 24- or 32-bit DIB frames), without OpenCV's decoder.

    Parameters
    ----------
    path : str or Path
        The .avi file.
    fps : float, optional
        Frame rate to use instead of the container's, frames/s.
    default_fps : float
        Rate used, with a warning, when the container has none (or an absurd one).
    layout : AviLayout, optional
        The file's layout if already read (:func:`read_avi_layout`).
    limits : InputLimits, optional
        Frame-size bounds checked on the header before any buffer is made (default
        :class:`rbcflow.run_settings.InputLimits`).

    Frames are ``(height, width)`` uint8 arrays; colour is converted with OpenCV's
    ``BGR2GRAY`` weights. Memory: one frame buffer, whatever the length of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = DEFAULT_FPS,
        layout: AviLayout | None = None,
        limits: InputLimits | None = None,
    ):
        super().__init__()
        import cv2

        self._cv2 = cv2
        self.source = Path(path)
        lay = layout if layout is not None else read_avi_layout(self.source)
        if not lay.uncompressed:
            raise VideoReadError(
                f"AVI frames are compressed ({lay.compression!r}); use AviReader", self.source
            )
        if not lay.supported:
            raise VideoReadError(
                f"uncompressed AVI with {lay.bit_count}-bit pixels is not supported (8, 24 or "
                "32 bits are)",
                self.source,
            )
        self._lay = lay
        w, h, bits = lay.width, lay.height, lay.bit_count
        check_frame_size(self.source, h, w, max(1, bits // 8), 1, limits)
        self._stride = ((w * bits + 31) // 32) * 4 if lay.compression == b"\0\0\0\0" else w
        self._frame_bytes = self._stride * h
        # Chunks too small for a frame are damaged: the frames before them are kept.
        n, warning = lay.whole_frames(self._frame_bytes, self.source)
        if warning is not None:
            self.warnings.append(warning)
        self._n = n
        self.shape = (h, w)
        self.dtype = np.dtype(np.uint8)
        lut = None
        if lay.palette is not None:
            gray = cv2.cvtColor(lay.palette[None], cv2.COLOR_BGR2GRAY)[0]
            if not np.array_equal(gray, np.arange(256, dtype=np.uint8)):
                lut = gray
        self._lut = lut
        resolve_fps(self, lay.fps, fps, default_fps)
        self._open(self._frame_bytes)

    def _decode(self, buf: bytearray) -> np.ndarray:
        cv2 = self._cv2
        h, w = self.shape
        rows = np.frombuffer(buf, np.uint8).reshape(h, self._stride)
        bits = self._lay.bit_count
        if bits == 24:
            gray = cv2.cvtColor(rows[:, : 3 * w].reshape(h, w, 3), cv2.COLOR_BGR2GRAY)
        elif bits == 32:
            gray = cv2.cvtColor(rows[:, : 4 * w].reshape(h, w, 4), cv2.COLOR_BGRA2GRAY)
        else:
            gray = rows[:, :w] if self._lut is None else self._lut[rows[:, :w]]
        if self._lay.bottom_up:
            gray = gray[::-1]
        # a copy: the buffer is reused for the next frame
        return np.array(gray, dtype=np.uint8, order="C", copy=True)
