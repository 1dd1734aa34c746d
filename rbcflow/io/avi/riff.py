"""An AVI's RIFF structure: stream format, frame rate and the offset of every frame chunk.

:func:`read_avi_layout` walks the chunks once (no pixel decoded); the readers of this package
seek straight to the frames it lists. The chunk builders are what :mod:`rbcflow.io.avi.write`
assembles headers from.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rbcflow.errors import VideoReadError

_BI_RGB = 0
# FourCCs of 8-bit grayscale, stored top-down (no palette).
_GRAY_FOURCCS = {b"Y800", b"Y8  ", b"GREY"}
# FourCCs some writers put for plain DIB frames (same as biCompression = BI_RGB).
_DIB_FOURCCS = {b"DIB ", b"RGB ", b"RAW "}
_MAX_LIST_DEPTH = 4
_MAX_PIXELS = 1 << 28  # a frame larger than this (pixels) is a damaged header, not a camera


@dataclass
class AviLayout:
    """What :func:`read_avi_layout` learns from an AVI's RIFF structure (no pixel decoded).

    width, height : frame size, pixels; ``height`` is positive (see ``bottom_up``).
    bottom_up : DIB rows stored last row first (``biHeight > 0``).
    bit_count : bits per pixel of the stored frames.
    compression : ``biCompression`` as 4 bytes (``b"\\0\\0\\0\\0"`` for uncompressed BI_RGB).
    palette : (256, 3) uint8 BGR ndarray or None, for 8-bit paletted frames.
    fps : rate from the stream header (``dwRate / dwScale``) or main header, or None.
    claimed_frames : frame count the headers claim (0 when they say nothing).
    offsets, sizes : (N,) int64 ndarrays, file offset and byte size of each complete frame
        chunk of the video stream, in order (a zero-size chunk, "repeat the previous frame",
        points at the previous frame's data).
    truncated : the file ends inside the data (recording stopped / copy cut short).
    """

    width: int = 0
    height: int = 0
    bottom_up: bool = True
    bit_count: int = 0
    compression: bytes = b"\0\0\0\0"
    palette: np.ndarray | None = field(default=None, repr=False)
    fps: float | None = None
    claimed_frames: int = 0
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    truncated: bool = False

    @property
    def uncompressed(self) -> bool:
        """Plain DIB or gray frames, which must never reach OpenCV's FFmpeg backend."""
        return self.compression == b"\0\0\0\0" or self.compression in _GRAY_FOURCCS

    def truncation_warning(self, n_read: int) -> str | None:
        """The reader's warning when it reads ``n_read`` frames of a truncated file (or of
        fewer frames than the headers announce); None when the file is whole."""
        if not (self.truncated or (self.claimed_frames and self.claimed_frames > n_read)):
            return None
        announced = self.claimed_frames > n_read
        return f"file truncated: {n_read} complete frames read" + (
            f" of {self.claimed_frames} announced" if announced else ""
        )

    @property
    def supported(self) -> bool:
        """Uncompressed frames this module decodes (8/24/32-bit DIB, 8-bit gray FourCCs)."""
        if self.compression == b"\0\0\0\0":
            return self.bit_count in (8, 24, 32)
        return self.compression in _GRAY_FOURCCS and self.bit_count == 8


def _read_exact(fh: BinaryIO, n: int) -> bytes | None:
    data = fh.read(n)
    return data if len(data) == n else None


def read_avi_layout(path: str | os.PathLike) -> AviLayout:
    """Walk an AVI's RIFF chunks: stream format, frame rate and every video frame's offset.

    Handles AVI 1.0 and OpenDML (``RIFF AVIX`` extensions beyond 1 GB) files, ``LIST rec``
    groups, and files cut short (``truncated``: the frames wholly in the file are listed). The
    index (``idx1``/``indx``) is not trusted: the chunks themselves are walked, one 8-byte header
    read per frame.

    Raises
    ------
    VideoReadError
        If the file is not a RIFF AVI or has no video stream.
    """
    path = Path(path)
    size = path.stat().st_size
    lay = AviLayout()
    offsets: list[int] = []
    sizes: list[int] = []
    video_ids: tuple[bytes, ...] = ()
    with open(path, "rb") as fh:
        head = _read_exact(fh, 12)
        if head is None or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
            raise VideoReadError("not an AVI file (no RIFF AVI header)", path)

        def walk(start: int, end: int, depth: int) -> bool:
            """Walk chunks in [start, end); returns False where the file ends early."""
            nonlocal video_ids
            pos = start
            stream_no = 0
            while pos + 8 <= end:
                fh.seek(pos)
                hdr = _read_exact(fh, 8)
                if hdr is None:
                    return False
                tag, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                data_at = pos + 8
                nxt = data_at + n + (n & 1)
                if tag == b"LIST" and n >= 4 and depth < _MAX_LIST_DEPTH:
                    # A list cut by the end of the file is still walked: the frames wholly in
                    # the file are kept.
                    kind = _read_exact(fh, 4)
                    if kind == b"strl":
                        if (
                            _read_strl(fh, data_at + 4, min(data_at + n, size), lay)
                            and not video_ids
                        ):
                            video_ids = (b"%02ddb" % stream_no, b"%02ddc" % stream_no)
                        stream_no += 1
                    elif kind in (b"hdrl", b"movi", b"rec ", b"odml"):
                        if not walk(data_at + 4, min(data_at + n, size), depth + 1):
                            return False
                    if data_at + n > size:
                        return False
                    pos = max(nxt, pos + 8)
                    continue
                if data_at + n > size:
                    return False
                elif tag == b"avih" and n >= 40:
                    us, _, _, _, total = struct.unpack("<IIIII", fh.read(20))
                    if us and lay.fps is None:
                        lay.fps = 1e6 / us
                    lay.claimed_frames = max(lay.claimed_frames, total)
                elif tag == b"dmlh" and n >= 4:
                    lay.claimed_frames = max(lay.claimed_frames, struct.unpack("<I", fh.read(4))[0])
                elif tag in video_ids:
                    if n == 0 and offsets:  # a dropped frame: repeat the previous one
                        offsets.append(offsets[-1])
                        sizes.append(sizes[-1])
                    elif n:
                        offsets.append(data_at)
                        sizes.append(n)
                pos = max(nxt, pos + 8)
            return True

        complete = walk(12, min(size, 8 + struct.unpack("<I", head[4:8])[0]), 0)
        # OpenDML: further RIFF AVIX segments follow the first RIFF chunk.
        pos = 8 + struct.unpack("<I", head[4:8])[0]
        pos += pos & 1
        while complete and pos + 12 <= size:
            fh.seek(pos)
            seg = _read_exact(fh, 12)
            if seg is None or seg[:4] != b"RIFF" or seg[8:12] != b"AVIX":
                break
            n = struct.unpack("<I", seg[4:8])[0]
            complete = walk(pos + 12, min(size, pos + 8 + n), 0) and pos + 8 + n <= size
            pos += 8 + n + (n & 1)
        if 8 + struct.unpack("<I", head[4:8])[0] > size:
            complete = False
    if not video_ids:
        raise VideoReadError("AVI without a video stream", path)
    lay.offsets = np.asarray(offsets, np.int64)
    lay.sizes = np.asarray(sizes, np.int64)
    lay.truncated = not complete
    return lay


def _read_strl(fh: BinaryIO, start: int, end: int, lay: AviLayout) -> bool:
    """Parse one stream header list; fill ``lay`` and return True if it is the first video."""
    pos = start
    is_video = False
    while pos + 8 <= end:
        fh.seek(pos)
        hdr = _read_exact(fh, 8)
        if hdr is None:
            break
        tag, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if tag == b"strh" and n >= 36:
            data = fh.read(36)
            if len(data) < 36:
                break
            is_video = data[:4] == b"vids" and lay.width == 0
            if is_video:
                scale, rate = struct.unpack("<II", data[20:28])
                if scale and rate:
                    lay.fps = rate / scale
                lay.claimed_frames = max(lay.claimed_frames, struct.unpack("<I", data[32:36])[0])
        elif tag == b"strf" and is_video and n >= 40:
            data = fh.read(min(n, 40 + 256 * 4))
            if len(data) < 40:
                break
            _, w, h, _, bits, comp = struct.unpack("<IiiHH4s", data[:20])
            clr_used = struct.unpack("<I", data[32:36])[0]
            lay.width, lay.height, lay.bottom_up = abs(w), abs(h), h > 0
            lay.bit_count = bits
            lay.compression = b"\0\0\0\0" if comp in _DIB_FOURCCS else comp
            if comp in _GRAY_FOURCCS:
                lay.bottom_up = False  # gray FourCCs are top-down whatever the sign says
            if bits == 8 and lay.compression == b"\0\0\0\0":
                n_pal = clr_used or 256
                pal = np.frombuffer(data[40 : 40 + 4 * min(n_pal, 256)], np.uint8).reshape(-1, 4)
                full = np.zeros((256, 3), np.uint8)
                full[: len(pal)] = pal[:, :3]
                lay.palette = full
        pos += 8 + n + (n & 1)
    return is_video and lay.width > 0 and lay.height > 0


def _riff_chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _riff_list(kind: bytes, data: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", len(data) + 4) + kind + data
