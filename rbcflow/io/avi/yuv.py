"""Native reader of uncompressed planar YUV 4:2:0 AVI (I420, IYUV, YV12, NV12, NV21): the Y plane.

Such files otherwise go through OpenCV, whose FFmpeg backend converts every frame to BGR
(chroma upsampled) only for the reader to convert it back to gray: 0.7-1 ms per 1024x768
frame, where reading the Y plane alone costs ~0.2 ms. Here a frame is one ``seek`` +
``readinto`` of the Y plane (chroma never read) and a look-up table.

Grey values. The Y plane of these formats is BT.601 luma in studio swing: grey level ``g``
(0..255) is stored as ``16 + 219 g / 255`` (ITU-R BT.601-7, section 2.5.3). The table maps it
back, ``round((Y - 16) * 255 / 219)`` clipped to 0..255, which is what decoding to RGB with the
BT.601 matrix and converting with the other readers' ``BGR2GRAY`` weights gives for any
chroma (the weights 0.299/0.587/0.114 cancel the chroma terms of that matrix): so an RGB frame
written as I420 reads back within one grey level of what :class:`RawAviReader` gives on the RGB
file (``tests/test_yuv_reader.py`` measures it through FFmpeg's encoder). OpenCV's own path
adds up to 3 levels of fixed-point bias on top. ``Y800``/``GREY`` (8-bit grey, full range) are
read by :class:`~rbcflow.io.avi.raw.RawAviReader` as they are.

Layout: YUV frames are stored top-down whatever the sign of ``biHeight`` (Microsoft,
"BITMAPINFOHEADER structure", remarks on YUV bitmaps); for a ``w x h`` frame the Y plane is
``w * h`` bytes, then ``2 * ceil(w / 2) * ceil(h / 2)`` bytes of chroma (odd sizes included).
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

YUV420_FOURCCS = frozenset({b"I420", b"IYUV", b"YV12", b"NV12", b"NV21"})
"""FourCCs of planar 4:2:0 frames (Y plane first) that :class:`YuvAviReader` reads."""


def studio_to_full_lut() -> np.ndarray:
    """(256,) uint8: BT.601 studio-swing luma (16..235) to grey 0..255.

    Examples
    --------
    >>> lut = studio_to_full_lut()
    >>> int(lut[16]), int(lut[126]), int(lut[235]), int(lut[0]), int(lut[255])
    (0, 128, 255, 0, 255)
    """
    y = np.arange(256, dtype=np.float64)
    return np.clip(np.round((y - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)


def yuv420_frame_bytes(width: int, height: int) -> int:
    """Bytes of one planar 4:2:0 frame: the Y plane and two quarter-size chroma planes.

    Examples
    --------
    >>> yuv420_frame_bytes(4, 2), yuv420_frame_bytes(37, 21)
    (12, 1195)
    """
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


class YuvAviReader(FixedFrameReader):
    """Reader of uncompressed planar YUV 4:2:0 AVI (:data:`YUV420_FOURCCS`): the luma only.

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
        Frame-size bounds (default :class:`rbcflow.run_settings.InputLimits`).

    Frames are ``(height, width)`` uint8 arrays (see the module docstring for the grey values).
    A chunk too small for a whole frame ends the video there, with a warning, as in a truncated
    file. Memory: one Y-plane buffer, whatever the length of the file.
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
        if lay.compression not in YUV420_FOURCCS:
            raise VideoReadError(
                f"AVI frames are not planar YUV 4:2:0 ({lay.compression!r})", self.source
            )
        w, h = lay.width, lay.height
        check_frame_size(self.source, h, w, 1, 1, limits)
        self._lay = lay
        frame_bytes = yuv420_frame_bytes(w, h)
        n, warning = lay.whole_frames(frame_bytes, self.source, f"a {w}x{h} YUV 4:2:0 frame")
        if warning is not None:
            self.warnings.append(warning)
        self._n = n
        self.shape = (h, w)
        self.dtype = np.dtype(np.uint8)
        self._lut = studio_to_full_lut()
        resolve_fps(self, lay.fps, fps, default_fps)
        self._open(w * h)  # the Y plane only: it leads the chunk

    def _decode(self, buf: bytearray) -> np.ndarray:
        y = np.frombuffer(buf, np.uint8).reshape(self.shape)
        # LUT writes a new array: the buffer is reused for the next frame
        return self._cv2.LUT(y, self._lut)
