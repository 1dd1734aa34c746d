"""Native reader of Motion-JPEG AVI: the RIFF walk gives each frame's JPEG chunk, decoded to gray.

A frame ``imdecode`` refuses is decoded by FFmpeg's MJPEG error concealment instead (through
OpenCV, as before this reader existed), with a warning naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.avi.opencv import _quiet_opencv
from rbcflow.io.avi.riff import AviLayout, read_avi_layout
from rbcflow.io.base import VideoReader
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps
from rbcflow.io.limits import FrameLimitError, check_frame_size, jpeg_declared_sizes, jpeg_size
from rbcflow.run_settings import InputLimits

__all__ = ["MJPEG_FOURCCS", "MjpegAviReader", "jpeg_size"]

MJPEG_FOURCCS = frozenset({b"MJPG", b"mjpg", b"AVRn", b"dmb1", b"JPEG", b"jpeg"})
"""FourCCs of AVIs whose frames are whole JPEG images (one per chunk)."""


class MjpegAviReader(VideoReader):
    """Reader of Motion-JPEG AVI: each frame chunk is a JPEG image, decoded straight to gray.

    The chunks are found by :func:`read_avi_layout` (exact random access, exact count of
    complete frames in a truncated file) and decoded by ``cv2.imdecode(...,
    IMREAD_GRAYSCALE)``, which keeps the JPEG's luma plane: no chroma decoding and no colour
    conversion, so it is about 1.4x faster than ``cv2.VideoCapture.read`` + ``BGR2GRAY`` on a
    1024x768 frame, and more faithful (FFmpeg's YUV -> BGR -> gray round trip darkens by about
    one gray level). ``libjpeg`` releases the GIL while decoding, so a decoding thread overlaps
    with processing.

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
        Frame-size bounds checked on the first JPEG header (default
        :class:`rbcflow.run_settings.InputLimits`).

    A later chunk whose JPEG header declares another size is never decoded (neither here nor
    by FFmpeg's concealment, which would allocate what it declares): it is a damaged frame.

    Raises
    ------
    VideoReadError
        If the file has no frame chunk, or its first frame is not a JPEG this decoder reads
        (:func:`rbcflow.io.video.open_video` then falls back to :class:`AviReader`).
    FrameLimitError
        If the first frame declares a size over the limits (no fallback then).
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
        if lay.compression not in MJPEG_FOURCCS:
            raise VideoReadError(
                f"AVI frames are not Motion-JPEG ({lay.compression!r})", self.source
            )
        self._lay = lay
        self._max_chunk = (limits or InputLimits()).max_frame_mib << 20
        self._n = len(lay.offsets)
        if self._n == 0:
            raise VideoReadError(
                "no complete frame in the file" + (" (truncated)" if lay.truncated else ""),
                self.source,
            )
        self._fh: BinaryIO | None = open(self.source, "rb")  # noqa: SIM115 - closed in close()
        self._caps: list = []  # FFmpeg capture for damaged frames, opened when first needed
        self._concealed: set[int] = set()
        first_size = jpeg_size(self._chunk(self._fh, 0))
        if first_size is None:
            self.close()
            raise VideoReadError("first frame is not a JPEG image", self.source)
        try:
            check_frame_size(self.source, *first_size, 3, 1, limits, "JPEG frame 0")
        except VideoReadError:
            self.close()
            raise
        self.shape = first_size
        self.dtype = np.dtype(np.uint8)
        # The first frame must decode here (not through FFmpeg's concealment): a JPEG flavour
        # imdecode does not read at all is better read by AviReader throughout.
        if self._decode(0, self._chunk(self._fh, 0)) is None:
            self.close()
            raise VideoReadError("first frame is not a JPEG this decoder reads", self.source)
        if (warning := lay.truncation_warning(self._n)) is not None:
            self.warnings.append(warning)
        resolve_fps(self, lay.fps, fps, default_fps)

    def __len__(self) -> int:
        return self._n

    def _chunk(self, fh: BinaryIO, i: int) -> bytes:
        if self._lay.sizes[i] > self._max_chunk:  # a damaged chunk size: never read whole
            raise FrameLimitError(
                f"frame {i} cannot be read (its chunk declares {self._lay.sizes[i]} bytes, more "
                "than a frame can take)",
                self.source,
            )
        fh.seek(int(self._lay.offsets[i]))
        data = fh.read(int(self._lay.sizes[i]))
        if len(data) != self._lay.sizes[i]:
            raise VideoReadError(
                f"frame {i} cannot be read (file changed or shortened)", self.source
            )
        return data

    def _decode(self, i: int, data: bytes) -> np.ndarray | None:
        """Frame ``i`` from its chunk, or None when the chunk is not a JPEG of this size."""
        if jpeg_size(data) != self.shape:
            return None
        try:
            frame = self._cv2.imdecode(np.frombuffer(data, np.uint8), self._cv2.IMREAD_GRAYSCALE)
        except self._cv2.error:
            return None
        if frame is None or frame.shape != self.shape:
            return None
        return frame

    def _conceal(self, i: int, caps: list) -> np.ndarray | None:
        """Frame ``i`` decoded by FFmpeg instead (``caps`` holds a lazily opened capture), for
        chunks ``imdecode`` refuses: FFmpeg's MJPEG decoder conceals damaged blocks, which is
        how such files were read before this reader existed. None if FFmpeg fails too."""
        cv2 = self._cv2
        fh = self._fh
        try:
            if fh is None or jpeg_declared_sizes(self._chunk(fh, i)) - {self.shape}:
                return None  # a header declaring another size: FFmpeg would allocate it
        except FrameLimitError:
            return None
        try:
            with _quiet_opencv(cv2):
                if not caps:
                    caps.append(cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG))
                cap = caps[0]
                if not cap.isOpened() or not cap.set(cv2.CAP_PROP_POS_FRAMES, i):
                    return None
                ok, bgr = cap.read()
        except cv2.error:
            return None
        if not ok or bgr is None or bgr.shape[:2] != self.shape:
            return None
        frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        self._concealed.add(i)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def _note_concealed(self) -> None:
        if self._concealed:
            done = sorted(self._concealed)
            shown = ", ".join(str(k) for k in done[:5]) + (", ..." if len(done) > 5 else "")
            msg = f"{len(done)} damaged frame(s) ({shown}) decoded with FFmpeg's error concealment"
            self.warnings[:] = [w for w in self.warnings if "error concealment" not in w]
            self.warnings.append(msg)

    def get_frame(self, i: int) -> np.ndarray:
        if self._fh is None:
            raise VideoReadError("reader is closed", self.source)
        frame = self._decode(i, self._chunk(self._fh, i))
        if frame is None:
            frame = self._conceal(i, self._caps)
            self._note_concealed()
        if frame is None:
            raise VideoReadError(f"frame {i} cannot be decoded (damaged JPEG)", self.source)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        # Own file handle and fallback capture: iterating does not disturb get_frame.
        caps: list = []
        try:
            with open(self.source, "rb") as fh:
                for i in range(self._n):
                    try:
                        frame = self._decode(i, self._chunk(fh, i))
                    except FrameLimitError:
                        frame = None
                    if frame is None:
                        frame = self._conceal(i, caps)
                        self._note_concealed()
                    if frame is None:
                        self.warnings.append(f"frame {i} cannot be decoded; stopped there")
                        return
                    yield frame
        finally:
            for cap in caps:
                cap.release()

    def close(self) -> None:
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None
        for cap in getattr(self, "_caps", []):
            cap.release()
        self._caps = []

    def __del__(self) -> None:
        self.close()
