"""Reader of compressed AVI (FFV1, XVID, ...) and other FFmpeg containers, via ``cv2.VideoCapture``.

Also home of the OpenCV helpers the native Motion-JPEG reader borrows for its FFmpeg fallback
(:func:`_import_cv2`, :func:`_quiet_opencv`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.avi.riff import AviLayout
from rbcflow.io.base import VideoReader
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps


def _import_cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a core dependency
        raise VideoReadError(
            f"cannot decode compressed video: OpenCV (cv2) is not installed "
            f"(tried: cv2 with its FFmpeg backend; {exc})"
        ) from None
    return cv2


@contextmanager
def _quiet_opencv(cv2):
    """Silence OpenCV's and FFmpeg's console chatter about damaged input (we report it)."""
    # FFmpeg's own log level is read from this variable when OpenCV first opens a file; a
    # user's explicit setting is kept.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:  # pragma: no cover - old OpenCV
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(old)


class AviReader(VideoReader):
    """Reader of compressed AVI (MJPG, FFV1, XVID, ...) and other FFmpeg containers, via OpenCV.

    Parameters
    ----------
    path : str or Path
        The video file.
    fps : float, optional
        Frame rate to use instead of the container's, frames/s.
    default_fps : float
        Rate used, with a warning, when the container has none (or an absurd one).
    layout : AviLayout, optional
        For .avi files, the RIFF layout (:func:`read_avi_layout`): its count of complete frame
        chunks bounds the frame count, which containers overstate when the file is truncated.

    Frames are 8-bit grayscale ``(rows, cols)`` (``BGR2GRAY``). Iteration decodes in order on
    its own capture (fast path); ``get_frame`` seeks (``CAP_PROP_POS_FRAMES``) unless the frame
    asked for is the next one. The frame count is verified by decoding the last frame claimed;
    if that fails the last readable frame is found by bisection and a warning is recorded.
    A seek decodes from the previous key frame (``costly_seeks``: 44-94 ms against 3.6 ms for
    the next frame of a 480x360 FFV1 AVI written by OpenCV).
    """

    costly_seeks = True

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = DEFAULT_FPS,
        layout: AviLayout | None = None,
    ):
        super().__init__()
        cv2 = self._cv2 = _import_cv2()
        self.source = Path(path)
        self._cap = self._open()
        first = self._read_next(self._cap)
        if first is None:
            self.close()
            raise VideoReadError("no readable frame (not a video, or damaged)", self.source)
        self.shape = (int(first.shape[0]), int(first.shape[1]))
        self.dtype = np.dtype(np.uint8)
        self._pos = 1  # index of the frame the capture decodes next
        claimed = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        claimed = int(claimed) if math.isfinite(claimed) and claimed > 0 else 0
        bound = claimed
        if layout is not None and len(layout.offsets):
            bound = min(bound, len(layout.offsets)) if bound else len(layout.offsets)
        self._n = self._verified_count(bound, claimed)
        container_fps = self._cap.get(cv2.CAP_PROP_FPS)
        resolve_fps(self, container_fps if container_fps else None, fps, default_fps)

    def _open(self):
        cv2 = self._cv2
        tried = []
        with _quiet_opencv(cv2):
            for api, name in ((cv2.CAP_FFMPEG, "FFMPEG"), (cv2.CAP_ANY, "any OpenCV backend")):
                if api != cv2.CAP_ANY and not cv2.videoio_registry.hasBackend(api):
                    tried.append(f"{name} (not in this OpenCV build)")
                    continue
                cap = cv2.VideoCapture(str(self.source), api)
                if cap.isOpened():
                    return cap
                cap.release()
                tried.append(name)
                # CAP_ANY would also try the image-sequence backend, which reads '%d' in a
                # file name as a pattern: only fall back to it when FFmpeg is missing.
                break
        raise VideoReadError(
            f"not a video OpenCV can open (tried: {', '.join(tried)})", self.source
        )

    def _read_next(self, cap) -> np.ndarray | None:
        # FFmpeg's messages on damaged frames are already silenced (log level set at open);
        # no per-frame log-level switching on this hot path.
        try:
            ok, frame = cap.read()
        except self._cv2.error:
            return None
        if not ok or frame is None or frame.size == 0:
            return None
        return self._to_gray(frame)

    def _to_gray(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if frame.ndim == 3 and frame.shape[2] == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        elif frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
        elif frame.ndim == 3:
            frame = frame[:, :, 0]
        if frame.dtype != np.uint8:
            frame = (
                (frame >> 8).astype(np.uint8)
                if frame.dtype == np.uint16
                else frame.astype(np.uint8)
            )
        return np.ascontiguousarray(frame)

    def _seek_read(self, i: int) -> np.ndarray | None:
        if i != self._pos:
            with _quiet_opencv(self._cv2):
                self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, i)
        frame = self._read_next(self._cap)
        self._pos = i + 1 if frame is not None else -1
        if frame is not None and frame.shape != self.shape:
            raise VideoReadError(
                f"frame {i} is {frame.shape[1]}x{frame.shape[0]} pixels, "
                f"frame 0 {self.shape[1]}x{self.shape[0]}",
                self.source,
            )
        return frame

    def _verified_count(self, bound: int, claimed: int) -> int:
        """The number of frames actually readable (see class docstring)."""
        if bound <= 0:
            # No count in the container: count by decoding once (grab skips the conversion).
            n = 1
            with _quiet_opencv(self._cv2):
                cap = self._open()
                cap.grab()
                while cap.grab():
                    n += 1
                cap.release()
            self.warnings.append(f"the container gives no frame count; counted {n} frames")
            return n
        if bound == 1 or self._seek_read(bound - 1) is not None:
            n = bound
        else:
            lo, hi = 0, bound - 1  # frame lo is readable, frame hi is not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._seek_read(mid) is not None:
                    lo = mid
                else:
                    hi = mid
            n = lo + 1
        if n < claimed:
            self.warnings.append(
                f"file truncated or damaged: {n} readable frames of {claimed} announced"
            )
        return n

    def __len__(self) -> int:
        return self._n

    def get_frame(self, i: int) -> np.ndarray:
        if self._cap is None:
            raise VideoReadError("reader is closed", self.source)
        frame = self._seek_read(i)
        if frame is None:
            raise VideoReadError(f"frame {i} cannot be decoded", self.source)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        # A capture of its own, decoded in order: no seeking, and get_frame calls in between
        # do not move it.
        cap = self._open()
        try:
            for i in range(self._n):
                frame = self._read_next(cap)
                if frame is None:
                    self.warnings.append(f"frame {i} cannot be decoded; stopped there")
                    return
                if frame.shape != self.shape:
                    raise VideoReadError(
                        f"frame {i} is {frame.shape[1]}x{frame.shape[0]} "
                        f"pixels, frame 0 {self.shape[1]}x{self.shape[0]}",
                        self.source,
                    )
                yield frame
        finally:
            cap.release()

    def close(self) -> None:
        if getattr(self, "_cap", None) is not None:
            self._cap.release()
            self._cap = None

    def __del__(self) -> None:
        self.close()
