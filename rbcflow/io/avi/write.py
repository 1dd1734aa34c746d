"""The one AVI writer: native uncompressed DIB frames, or any FourCC through OpenCV's FFmpeg.

Without a FourCC, :func:`write_avi` writes the lab camera's format itself (uncompressed 24-bit
BGR, or 8-bit gray through an identity palette; rows bottom-up; streaming, bounded memory): the
opencv-python-headless wheel's FFmpeg cannot write it (the ``DIB `` tag is refused and FourCC 0
writes lossy 4:2:0 YUV). With a FourCC (``FFV1``, ``HFYU``, ``MJPG``, ``mp4v``, ``RGBA``: the
codecs of :data:`rbcflow.synthetic.AVI_CODECS`), frames go through ``cv2.VideoWriter``.

It writes straight to ``path``; callers that need an atomic result write to a temporary name
and rename (:mod:`rbcflow.io.outputs`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from rbcflow.errors import OutputError
from rbcflow.io.avi.riff import _BI_RGB, _riff_chunk, _riff_list
from rbcflow.io.fps import DEFAULT_FPS, plausible_fps


def write_avi(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = DEFAULT_FPS,
    bits: int = 24,
    *,
    fourcc: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write frames as an AVI: uncompressed DIB like the lab camera, or encoded with ``fourcc``.

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    frames : iterable of (rows, cols) uint8 or (rows, cols, 3) uint8 BGR ndarrays
        Consumed one at a time (bounded memory); all the same size.
    fps : float
        Frame rate, frames/s (default :attr:`rbcflow.config.ReaderConfig.default_fps`). The
        native writer stores it as ``dwRate / dwScale`` with ``dwScale = 1000``.
    bits : {24, 8}
        Native writer only. 24: BGR pixels (the lab camera's format); 8: gray levels through an
        identity palette (monochrome cameras); colour frames are converted to gray for 8 bits.
        With a ``fourcc`` it must be 24 (OpenCV writes 3-channel frames).
    fourcc : str, optional
        Four-character codec code; None (default) writes uncompressed DIB frames natively.
        Otherwise ``cv2.VideoWriter`` with the FFmpeg backend encodes the frames, gray ones
        replicated on the three channels (``GRAY2BGR``); an empty ``frames`` then writes
        nothing and returns 0.
    progress : callable, optional
        Called with 1 after each frame written.

    Returns
    -------
    int
        Number of frames written.

    Raises
    ------
    ValueError
        If ``bits`` is not one the writer can write; native writer: also if ``fps`` is not a
        plausible rate, there is no frame, frames differ in size, or the file would exceed the
        4 GB of a plain (non-OpenDML) AVI.
    OutputError
        With a ``fourcc``: a frame is not uint8, or OpenCV cannot open a writer for the codec.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_avi(f"{d}/a.avi", (np.full((4, 6), i, np.uint8) for i in range(3)))
    3
    """
    if fourcc is not None:
        if bits != 24:
            raise ValueError(f"bits must be 24 when writing with a fourcc, not {bits!r}")
        return _write_opencv(Path(path), frames, fps, fourcc, progress)
    if not plausible_fps(fps):
        raise ValueError(f"fps {fps!r} is not a frame rate")
    if bits not in (8, 24):
        raise ValueError(f"bits must be 8 or 24, not {bits!r}")
    channels = bits // 8
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frame to write")
    h, w = first.shape[:2]
    stride = (w * channels + 3) & ~3
    frame_bytes = stride * h
    # 8-bit DIBs carry a palette; the identity gray ramp (B, G, R, 0 per entry)
    palette = np.repeat(np.arange(256, dtype=np.uint8), 4).reshape(256, 4) if bits == 8 else None
    if palette is not None:
        palette[:, 3] = 0
    scale, rate = 1000, int(round(fps * 1000))

    def header(n: int, movi_size: int, riff_size: int) -> bytes:
        us, rate_bytes = int(round(1e6 / fps)), int(frame_bytes * fps)
        # avih: us/frame, bytes/s, padding, flags (has index), frames, initial, streams,
        # buffer, width, height, reserved x4
        avih = struct.pack("<10I4I", us, rate_bytes, 0, 0x10, n, 0, 1, frame_bytes, w, h, *[0] * 4)
        # strh: type, handler, flags, priority, language, initial, scale, rate, start, length,
        # buffer, quality (-1 = default), sample size, frame rectangle
        strh = struct.pack(
            "<4s4sIHHIIIIIIIIhhhh", b"vids", b"\0" * 4, 0, 0, 0, 0, scale, rate, 0, n,
            frame_bytes, 0xFFFFFFFF, 0, 0, 0, w, h,
        )  # fmt: skip
        # BITMAPINFOHEADER: positive height = rows stored bottom-up, as DIB cameras write
        strf = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, _BI_RGB, frame_bytes, 0, 0, 0, 0)
        if palette is not None:
            strf += palette.tobytes()
        strl = _riff_list(b"strl", _riff_chunk(b"strh", strh) + _riff_chunk(b"strf", strf))
        hdrl = _riff_list(b"hdrl", _riff_chunk(b"avih", avih) + strl)
        movi = b"LIST" + struct.pack("<I", movi_size) + b"movi"
        return b"RIFF" + struct.pack("<I", riff_size) + b"AVI " + hdrl + movi

    hdr_len = len(header(0, 0, 0))
    buf = np.zeros((h, stride), np.uint8)
    index = bytearray()
    n = 0
    pos = 4  # idx1 offsets are relative to the 'movi' tag
    with open(path, "wb") as fh:
        fh.write(header(0, 0, 0))
        for frame in _chain(first, it):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.shape[:2] != (h, w) or frame.ndim not in (2, 3):
                raise ValueError(
                    f"frame {n}: {frame.shape} {frame.dtype}, expected ({h}, {w}) "
                    "or ({h}, {w}, 3) uint8"
                )
            if bits == 8:
                buf[:, :w] = (frame if frame.ndim == 2 else _bgr_to_gray(frame))[::-1]
            else:
                bgr = frame[:, :, None] if frame.ndim == 2 else frame
                buf[:, : 3 * w].reshape(h, w, 3)[:] = bgr[::-1]
            fh.write(b"00db" + struct.pack("<I", frame_bytes))
            fh.write(buf.data)
            index += struct.pack("<4sIII", b"00db", 0x10, pos, frame_bytes)
            pos += 8 + frame_bytes
            n += 1
            if hdr_len + pos + len(index) + 8 > 0xFFFF_FFF0:
                raise ValueError("AVI larger than 4 GB: write a TIFF stack or frame folder")
            if progress:
                progress(1)
        fh.write(b"idx1" + struct.pack("<I", len(index)) + bytes(index))
        movi_size = pos
        riff_size = hdr_len - 8 + pos - 4 + 8 + len(index)
        fh.seek(0)
        fh.write(header(n, movi_size, riff_size))
    return n


def _write_opencv(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    fourcc: str,
    progress: Callable[[int], None] | None,
) -> int:
    """Encode frames with ``cv2.VideoWriter`` (FFmpeg backend, 3-channel BGR)."""
    import cv2

    writer = None
    n = 0
    try:
        for frame in frames:
            if frame.dtype != np.uint8:
                raise OutputError(f"AVI holds 8-bit frames only, got {frame.dtype}", path)
            if writer is None:
                rows, cols = frame.shape[:2]
                writer = cv2.VideoWriter(
                    str(path),
                    cv2.CAP_FFMPEG,
                    cv2.VideoWriter_fourcc(*fourcc),
                    float(fps),
                    (cols, rows),
                    True,
                )
                if not writer.isOpened():
                    raise OutputError(f"OpenCV cannot write AVI with codec {fourcc}", path)
            bgr = frame if frame.ndim == 3 and frame.shape[2] == 3 else None
            writer.write(bgr if bgr is not None else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            n += 1
            if progress:
                progress(1)
    finally:
        if writer is not None:
            writer.release()
    return n


def _bgr_to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
