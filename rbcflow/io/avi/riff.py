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
    warnings : header fields that disagreed and were tolerated (a damaged ``idx1``, an empty
        ``LIST`` chunk); the readers copy them into theirs.
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
    warnings: list[str] = field(default_factory=list)

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

    def whole_frames(
        self, frame_bytes: int, source: Path, what: str = "a frame"
    ) -> tuple[int, str | None]:
        """Frames readable when each needs ``frame_bytes`` bytes: those before the first chunk
        too small for one (a damaged chunk ends the video there), with the reader's warning
        (None when the file is whole). VideoReadError when not even the first frame is."""
        short = np.flatnonzero(self.sizes < frame_bytes)
        n = int(short[0]) if short.size else len(self.offsets)
        if n == 0:
            raise VideoReadError(
                "no readable frame (file empty or cut before the first frame)", source
            )
        if short.size:
            return n, (
                f"frame {n} is damaged (chunk of {self.sizes[n]} bytes, {what} needs "
                f"{frame_bytes}); reading the first {n} frames"
            )
        return n, self.truncation_warning(n)

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
    groups, and files cut short (``truncated``: the frames wholly in the file are listed).
    Frames are the video stream's chunks inside ``movi`` lists; the index (``idx1``) is not
    trusted but compared, and a disagreement is a warning (``warnings``). Like players, the
    walk tolerates one inconsistent header field: a header chunk (an empty ``LIST INFO``, a
    wrong size) that would run past the end of the file before any ``movi`` list is skipped
    by scanning for the ``movi`` list, with a warning.

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
    state = {"movi": False, "movi_done": False, "idx1": None}
    with open(path, "rb") as fh:
        head = _read_exact(fh, 12)
        if head is None or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
            raise VideoReadError("not an AVI file (no RIFF AVI header)", path)

        def resync(pos: int, end: int, why: str) -> int | None:
            """Offset of the next ``LIST movi`` after ``pos`` (None if none), noting why."""
            found = _find_movi(fh, pos + 8, end)
            if found is not None:
                lay.warnings.append(f"{why} at byte {pos}: skipped to the movi list")
            return found

        def walk(start: int, end: int, depth: int, in_movi: bool) -> bool:
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
                    if data_at + n > size and not state["movi"] and kind != b"movi":
                        if (to := resync(pos, end, f"LIST {_name(kind)} too long")) is not None:
                            pos = to
                            continue
                    if kind == b"strl":
                        if (
                            _read_strl(fh, data_at + 4, min(data_at + n, size), lay)
                            and not video_ids
                        ):
                            video_ids = (b"%02ddb" % stream_no, b"%02ddc" % stream_no)
                        stream_no += 1
                    elif kind in (b"hdrl", b"movi", b"rec ", b"odml"):
                        movi = in_movi or kind == b"movi"
                        state["movi"] = state["movi"] or movi
                        if not walk(data_at + 4, min(data_at + n, size), depth + 1, movi):
                            return False
                        if kind == b"movi" and data_at + n <= size:
                            state["movi_done"] = True
                    if data_at + n > size:
                        return False
                    pos = max(nxt, pos + 8)
                    continue
                if tag == b"LIST" and n < 4 and not state["movi"]:
                    # an empty list (LIST INFO of size 0): its type and content follow
                    if (to := resync(pos, end, "empty LIST chunk")) is not None:
                        pos = to
                        continue
                if data_at + n > size:
                    if not in_movi and not state["movi"]:
                        to = resync(pos, end, f"chunk {_name(tag)} too long")
                        if to is not None:
                            pos = to
                            continue
                    if depth == 0 and state["movi_done"]:
                        return True  # damage after the frames (a wrong idx1 size): no frame lost
                    return False
                elif tag == b"avih" and n >= 40:
                    us, _, _, _, total = struct.unpack("<IIIII", fh.read(20))
                    if us and lay.fps is None:
                        lay.fps = 1e6 / us
                    lay.claimed_frames = max(lay.claimed_frames, total)
                elif tag == b"dmlh" and n >= 4:
                    lay.claimed_frames = max(lay.claimed_frames, struct.unpack("<I", fh.read(4))[0])
                elif tag == b"idx1" and depth == 0:
                    state["idx1"] = (data_at, n)
                elif tag in video_ids and in_movi:
                    if n == 0 and offsets:  # a dropped frame: repeat the previous one
                        offsets.append(offsets[-1])
                        sizes.append(sizes[-1])
                    elif n:
                        offsets.append(data_at)
                        sizes.append(n)
                pos = max(nxt, pos + 8)
            return True

        riff_end = 8 + struct.unpack("<I", head[4:8])[0]
        complete = walk(12, min(size, riff_end), 0, False)
        # OpenDML: further RIFF AVIX segments follow the first RIFF chunk.
        pos = riff_end + (riff_end & 1)
        while complete and pos + 12 <= size:
            fh.seek(pos)
            seg = _read_exact(fh, 12)
            if seg is None or seg[:4] != b"RIFF" or seg[8:12] != b"AVIX":
                break
            n = struct.unpack("<I", seg[4:8])[0]
            complete = walk(pos + 12, min(size, pos + 8 + n), 0, False) and pos + 8 + n <= size
            pos += 8 + n + (n & 1)
        if riff_end > size:
            complete = False
        if state["idx1"] is not None and video_ids:
            _compare_index(fh, *state["idx1"], video_ids, len(offsets), lay)
    if not video_ids:
        raise VideoReadError("AVI without a video stream", path)
    lay.offsets = np.asarray(offsets, np.int64)
    lay.sizes = np.asarray(sizes, np.int64)
    lay.truncated = not complete
    return lay


def _name(tag: bytes | None) -> str:
    """A chunk tag as printable text (damaged tags hold any bytes)."""
    text = (tag or b"").decode("latin-1")
    return "".join(c if c.isalnum() or c == " " else "?" for c in text).strip() or "?"


def _find_movi(fh: BinaryIO, start: int, end: int, limit: int = 64 << 20) -> int | None:
    """Offset of the first ``LIST....movi`` header in ``[start, end)`` (the first 64 MiB)."""
    block = 1 << 20
    pos = start
    stop = min(end, start + limit)
    while pos < stop:
        fh.seek(pos)
        data = fh.read(min(block + 12, stop - pos + 12))
        at = data.find(b"movi")
        while at >= 0:
            if at >= 8 and data[at - 8 : at - 4] == b"LIST":
                return pos + at - 8
            at = data.find(b"movi", at + 1)
        if len(data) < block:
            return None
        pos += block
    return None


def _compare_index(fh, at, n, video_ids, found, lay) -> None:
    """Warn when ``idx1`` (at byte ``at``, ``n`` bytes) disagrees with the movi list's frames."""
    if n % 16:
        lay.warnings.append(
            f"the index (idx1) is damaged ({n} bytes, not whole entries): frames read from "
            "the movi list"
        )
        return
    if n > 64 << 20:
        return
    fh.seek(at)
    data = fh.read(n)
    ids = np.frombuffer(data[: len(data) // 16 * 16], np.uint8).reshape(-1, 16)[:, :4]
    listed = int(sum(np.all(ids == np.frombuffer(v, np.uint8), axis=1).sum() for v in video_ids))
    if listed != found:
        lay.warnings.append(
            f"the index (idx1) lists {listed} frames, the movi list holds {found}: frames read "
            "from the movi list"
        )


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
