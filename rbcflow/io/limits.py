"""Frame-size bounds checked before anything is decoded, and the image headers that declare them.

A file's headers say how large its frames are; a damaged or hostile header can declare a frame
of gigabytes in a file of kilobytes. Every reader checks the declared size here
(:func:`check_frame_size`) before it allocates: PNG (``IHDR``), JPEG (start of frame), BMP and
TIFF headers are read without decoding (:func:`image_header`). The bounds are
:class:`rbcflow.run_settings.InputLimits`.
"""

from __future__ import annotations

import os
import struct

from rbcflow.errors import VideoReadError
from rbcflow.run_settings import InputLimits

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class FrameLimitError(VideoReadError):
    """A frame declares a size outside :class:`~rbcflow.run_settings.InputLimits` (not decoded)."""


def check_frame_size(
    source: str | os.PathLike,
    rows: int,
    cols: int,
    channels: int = 1,
    itemsize: int = 1,
    limits: InputLimits | None = None,
    what: str = "frame",
) -> None:
    """Refuse a frame larger than the limits, before it is decoded.

    Raises
    ------
    FrameLimitError
        When ``rows x cols`` exceeds ``max_frame_megapixels``, or the decoded samples
        (``rows x cols x channels x itemsize`` bytes) exceed ``max_frame_mib``; the message
        names the file and both figures.
    """
    lim = limits or InputLimits()
    rows, cols = int(rows), int(cols)
    pixels = rows * cols
    if pixels > lim.max_frame_megapixels * 1e6:
        raise FrameLimitError(
            f"{what} of {cols}x{rows} pixels ({pixels / 1e6:.0f} MP) is larger than the "
            f"{lim.max_frame_megapixels:g} MP rbcflow reads (a damaged header, or crop the video)",
            source,
        )
    nbytes = pixels * max(1, int(channels)) * max(1, int(itemsize))
    if nbytes > lim.max_frame_mib * 2**20:
        raise FrameLimitError(
            f"{what} of {cols}x{rows} pixels x {channels} channel(s) x {itemsize} byte(s) needs "
            f"{nbytes / 2**20:.0f} MiB, over the {lim.max_frame_mib} MiB a frame may take",
            source,
        )


def check_min_side(
    source: str | os.PathLike, shape: tuple[int, int], limits: InputLimits | None = None
) -> None:
    """Refuse frames too small to track cells in (fewer rows or columns than the limit)."""
    lim = limits or InputLimits()
    rows, cols = int(shape[0]), int(shape[1])
    if min(rows, cols) < lim.min_frame_side:
        raise FrameLimitError(
            f"frames of {cols}x{rows} pixels are too small to track cells in (at least "
            f"{lim.min_frame_side} pixels a side)",
            source,
        )


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(rows, cols)`` a JPEG image declares in its start-of-frame header, or None.

    Walks the marker segments up to the start of scan (a handful of 2-byte lengths), so a frame
    whose header was damaged can be refused before the decoder allocates what it claims.

    Examples
    --------
    >>> import cv2, numpy as np
    >>> ok, buf = cv2.imencode(".jpg", np.zeros((5, 7), np.uint8))
    >>> jpeg_size(buf.tobytes())
    (5, 7)
    >>> jpeg_size(b"not a jpeg") is None
    True
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos = 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            return None
        if marker in SOF_MARKERS:
            if pos + 9 > n:
                return None
            rows = (data[pos + 5] << 8) | data[pos + 6]
            cols = (data[pos + 7] << 8) | data[pos + 8]
            return (rows, cols) if rows and cols else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def jpeg_declared_sizes(data: bytes) -> set[tuple[int, int]]:
    """Every ``(rows, cols)`` a start-of-frame marker anywhere in ``data`` declares.

    In entropy-coded JPEG data a 0xFF byte is always followed by 0x00 or a restart marker, so
    an ``FF Cx`` pair is a marker wherever it sits: this finds the frame headers a decoder
    that resynchronises on markers (FFmpeg's) would obey, even when the first ones are damaged.
    """
    sizes = set()
    start = 0
    while (pos := data.find(b"\xff", start)) >= 0 and pos + 9 <= len(data):
        if data[pos + 1] in SOF_MARKERS:
            sizes.add(((data[pos + 5] << 8) | data[pos + 6], (data[pos + 7] << 8) | data[pos + 8]))
        start = pos + 1
    return sizes


def png_size(data: bytes) -> tuple[int, int, int, int] | None:
    """``(rows, cols, channels, bytes per sample)`` from a PNG's ``IHDR``, or None."""
    if len(data) < 33 or data[:8] != _PNG or data[12:16] != b"IHDR":
        return None
    cols, rows, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = _PNG_CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        return None
    return rows, cols, (3 if colour == 3 else channels), 2 if depth == 16 else 1


def bmp_size(data: bytes) -> tuple[int, int, int, int] | None:
    """``(rows, cols, channels, 1)`` from a BMP's info header, or None."""
    if len(data) < 30 or data[:2] != b"BM":
        return None
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:  # OS/2 core header
        cols, rows, _, bits = struct.unpack("<HHHH", data[18:26])
    elif header >= 40:
        cols, rows, _, bits = struct.unpack("<iiHH", data[18:30])
    else:
        return None
    return abs(rows), abs(cols), 4 if bits == 32 else 3, 1


def image_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(rows, cols, channels, bytes per sample)`` a PNG, JPEG or BMP file's header declares
    (None when the bytes are none of these, or the header is unreadable)."""
    if data[:8] == _PNG:
        return png_size(data)
    if data[:2] == b"\xff\xd8":
        size = jpeg_size(data)
        return None if size is None else (size[0], size[1], 3, 1)
    if data[:2] == b"BM":
        return bmp_size(data)
    return None
