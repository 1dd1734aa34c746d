"""AVI files: a native reader for uncompressed frames, OpenCV for compressed ones.

The lab camera writes uncompressed 24-bit AVI (``BI_RGB`` DIB frames, rows stored bottom-up).
OpenCV 5.0's FFmpeg backend corrupts the heap on exactly that format (``free(): invalid
pointer``: the process dies, nothing can catch it; cf. opencv/opencv#4609), so uncompressed AVIs
are read here without OpenCV: the RIFF structure is walked once to find the offset of every
frame chunk, and a frame is one ``seek`` + ``readinto`` into a reused buffer plus a BGR -> gray
conversion. That is also faster than decoding through FFmpeg, seeks exactly, and tells precisely
how many complete frames a truncated file holds. Compressed AVIs (MJPG, FFV1, XVID, ...) and other
containers FFmpeg reads (.mp4, .mov, .mkv) go through :class:`AviReader` (``cv2.VideoCapture``).

Both readers convert colour to 8-bit grayscale with OpenCV's ``BGR2GRAY`` weights
(0.299 R + 0.587 G + 0.114 B), so the same pixels give the same gray values whichever reader
decoded them; a gray pixel (R = G = B = v) stays exactly v.

:func:`write_avi` writes the same uncompressed 24-bit format (streaming, bounded memory) for
tests, benchmarks and synthetic acquisitions.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rbcflow.errors import RbcflowError, VideoReadError
from rbcflow.io.base import VideoReader

MAX_FPS = 10_000.0
MIN_FPS = 1e-3
"""Frame rates outside [MIN_FPS, MAX_FPS] frames/s, or NaN, are treated as missing."""

_BI_RGB = 0
# FourCCs of 8-bit grayscale, stored top-down (no palette).
_GRAY_FOURCCS = {b"Y800", b"Y8  ", b"GREY"}
# FourCCs some writers put for plain DIB frames (same as biCompression = BI_RGB).
_DIB_FOURCCS = {b"DIB ", b"RGB ", b"RAW "}
_MAX_LIST_DEPTH = 4
_MAX_PIXELS = 1 << 28  # a frame larger than this (pixels) is a damaged header, not a camera


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


# -- RIFF / AVI structure ---------------------------------------------------------------------


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


# -- native reader of uncompressed AVI ---------------------------------------------------------


class RawAviReader(VideoReader):
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

    Frames are ``(height, width)`` uint8 arrays; colour is converted with OpenCV's
    ``BGR2GRAY`` weights. Memory: one frame buffer, whatever the length of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = 60.0,
        layout: AviLayout | None = None,
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
        if w * h > _MAX_PIXELS:
            raise VideoReadError(f"implausible frame size {w}x{h} in the AVI header", self.source)
        self._stride = ((w * bits + 31) // 32) * 4 if lay.compression == b"\0\0\0\0" else w
        self._frame_bytes = self._stride * h
        # Chunks too small for a frame are damaged: the frames before them are kept.
        short = np.flatnonzero(lay.sizes < self._frame_bytes)
        n = int(short[0]) if short.size else len(lay.offsets)
        if n == 0:
            raise VideoReadError(
                "no readable frame (file empty or cut before the first frame)", self.source
            )
        if short.size:
            self.warnings.append(
                f"frame {n} is damaged (chunk of {lay.sizes[n]} bytes, a frame "
                f"needs {self._frame_bytes}); reading the first {n} frames"
            )
        elif lay.truncated or (lay.claimed_frames and lay.claimed_frames > n):
            self.warnings.append(
                f"file truncated: {n} complete frames read"
                + (f" of {lay.claimed_frames} announced" if lay.claimed_frames > n else "")
            )
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
        self._fh: BinaryIO | None = open(self.source, "rb")  # noqa: SIM115 - closed in close()
        self._buf = bytearray(self._frame_bytes)

    def __len__(self) -> int:
        return self._n

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

    def _read_into(self, fh: BinaryIO, i: int, buf: bytearray) -> np.ndarray:
        fh.seek(int(self._lay.offsets[i]))
        got = fh.readinto(buf)
        if got != len(buf):
            raise VideoReadError(
                f"frame {i} cannot be read (file changed or shortened)", self.source
            )
        return self._decode(buf)

    def get_frame(self, i: int) -> np.ndarray:
        if self._fh is None:
            raise VideoReadError("reader is closed", self.source)
        return self._read_into(self._fh, i, self._buf)

    def __iter__(self) -> Iterator[np.ndarray]:
        # Own file handle and buffer: iterating does not disturb get_frame (and vice versa).
        buf = bytearray(self._frame_bytes)
        with open(self.source, "rb") as fh:
            for i in range(self._n):
                yield self._read_into(fh, i, buf)

    def close(self) -> None:
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None

    def __del__(self) -> None:
        # a reader dropped without close() must not leak its file (nor warn about it)
        self.close()


# -- native reader of Motion-JPEG AVI ----------------------------------------------------------

MJPEG_FOURCCS = frozenset({b"MJPG", b"mjpg", b"AVRn", b"dmb1", b"JPEG", b"jpeg"})
"""FourCCs of AVIs whose frames are whole JPEG images (one per chunk)."""

# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(rows, cols)`` a JPEG image declares in its start-of-frame header, or None.

    Walks the marker segments up to the start of scan (a handful of 2-byte lengths), so a frame
    whose header was damaged can be refused before the decoder allocates what it claims.

    Examples
    --------
    >>> import cv2
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
        if marker in _SOF_MARKERS:
            if pos + 9 > n:
                return None
            rows = (data[pos + 5] << 8) | data[pos + 6]
            cols = (data[pos + 7] << 8) | data[pos + 8]
            return (rows, cols) if rows and cols else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


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

    Raises
    ------
    VideoReadError
        If the file has no frame chunk, or its first frame is not a JPEG this decoder reads
        (:func:`rbcflow.io.video.open_video` then falls back to :class:`AviReader`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = 60.0,
        layout: AviLayout | None = None,
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
        if first_size is None or first_size[0] * first_size[1] > _MAX_PIXELS:
            self.close()
            raise VideoReadError("first frame is not a JPEG image", self.source)
        self.shape = first_size
        self.dtype = np.dtype(np.uint8)
        # The first frame must decode here (not through FFmpeg's concealment): a JPEG flavour
        # imdecode does not read at all is better read by AviReader throughout.
        if self._decode(0, self._chunk(self._fh, 0)) is None:
            self.close()
            raise VideoReadError("first frame is not a JPEG this decoder reads", self.source)
        if lay.truncated or (lay.claimed_frames and lay.claimed_frames > self._n):
            self.warnings.append(
                f"file truncated: {self._n} complete frames read"
                + (f" of {lay.claimed_frames} announced" if lay.claimed_frames > self._n else "")
            )
        resolve_fps(self, lay.fps, fps, default_fps)

    def __len__(self) -> int:
        return self._n

    def _chunk(self, fh: BinaryIO, i: int) -> bytes:
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
                    frame = self._decode(i, self._chunk(fh, i))
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


# -- OpenCV reader for compressed AVI and other containers -------------------------------------


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
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = 60.0,
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


# -- writer ---------------------------------------------------------------------------------------


def write_avi(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 60.0, bits: int = 24
) -> int:
    """Write frames as an uncompressed AVI (DIB, bottom-up rows), like the lab camera.

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    frames : iterable of (rows, cols) uint8 or (rows, cols, 3) uint8 BGR ndarrays
        Consumed one at a time (bounded memory); all the same size.
    fps : float
        Frame rate, frames/s (stored as ``dwRate / dwScale`` with ``dwScale = 1000``).
    bits : {24, 8}
        24: BGR pixels (the lab camera's format); 8: gray levels through an identity palette
        (monochrome cameras); colour frames are converted to gray for 8 bits.

    Returns
    -------
    int
        Number of frames written.

    Raises
    ------
    ValueError
        If there is no frame, frames differ in size, or the file would exceed the 4 GB of a
        plain (non-OpenDML) AVI.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_avi(f"{d}/a.avi", (np.full((4, 6), i, np.uint8) for i in range(3)))
    3
    """
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
        fh.write(b"idx1" + struct.pack("<I", len(index)) + bytes(index))
        movi_size = pos
        riff_size = hdr_len - 8 + pos - 4 + 8 + len(index)
        fh.seek(0)
        fh.write(header(n, movi_size, riff_size))
    return n


def _bgr_to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)


def _riff_chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _riff_list(kind: bytes, data: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", len(data) + 4) + kind + data


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
