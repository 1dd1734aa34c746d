"""Multi-page TIFF stacks, read page by page with tifffile.

A stack is a video whose frames are the pages of the file (or, for ImageJ stacks larger than
4 GB that carry a single IFD, the equally sized images stored one after another behind the first
page). Pages are decoded one at a time, never the whole stack: a stack of any length streams in
the memory of one frame. 8- and 16-bit samples keep their type; RGB(A) pages become grayscale
with OpenCV's ``RGB2GRAY`` weights.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.base import VideoReader
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps
from rbcflow.io.limits import FrameLimitError, check_frame_size, jpeg_declared_sizes
from rbcflow.run_settings import InputLimits

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_MAX_WARNINGS = 20
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}


def to_gray(image: np.ndarray, order: str = "RGB") -> np.ndarray:
    """A 2-D grayscale frame from a 2-D, ``(rows, cols, 3|4)`` or ``(rows, cols, 1|2)`` image.

    Parameters
    ----------
    image : ndarray, uint8 or uint16
        Pixel samples, channels last.
    order : {"RGB", "BGR"}
        Channel order (tifffile gives RGB, OpenCV BGR).

    Returns
    -------
    (rows, cols) ndarray of the input dtype
        Colour is weighted 0.299 R + 0.587 G + 0.114 B (OpenCV's ``*2GRAY``); a gray+alpha
        image keeps its gray channel.
    """
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim != 3:
        raise ValueError(f"image of shape {image.shape} is not a 2-D frame")
    channels = image.shape[2]
    if channels in (1, 2):
        return np.ascontiguousarray(image[:, :, 0])
    if channels in (3, 4):
        code = {
            ("RGB", 3): cv2.COLOR_RGB2GRAY,
            ("RGB", 4): cv2.COLOR_RGBA2GRAY,
            ("BGR", 3): cv2.COLOR_BGR2GRAY,
            ("BGR", 4): cv2.COLOR_BGRA2GRAY,
        }[order, channels]
        return cv2.cvtColor(np.ascontiguousarray(image), code)
    raise ValueError(f"image with {channels} channels is not grayscale, RGB or RGBA")


BOUNDED_COMPRESSIONS = {1: "none", 5: "LZW", 7: "JPEG", 8: "Deflate", 32946: "Deflate"}
BOUNDED_COMPRESSIONS.update({32773: "PackBits", 50000: "zstd"})
"""TIFF compressions read (code: name): their decoders write into a buffer of the page's
declared size (tifffile passes it to imagecodecs), so no page can take more memory than its
header declares; JPEG strips are checked first (their own headers declare a size). Others
(JPEG 2000, WebP, JPEG XL, ...) decode to whatever their own streams declare: refused."""
_JPEG_COMPRESSIONS = (7,)


def check_page_size(source, page, limits: InputLimits | None = None, i: int = 0) -> None:
    """Refuse a TIFF page whose declared size exceeds ``limits``, before it is decoded.

    Also refused: a compression outside :data:`BOUNDED_COMPRESSIONS`, and a JPEG strip or
    tile whose own header declares a larger image than the page's segment.

    Raises
    ------
    FrameLimitError
        See :func:`rbcflow.io.limits.check_frame_size`.
    VideoReadError
        For a compression rbcflow does not read.
    """
    rows = int(getattr(page, "imagelength", 0) or 0) * max(1, int(page.imagedepth or 1))
    cols = int(getattr(page, "imagewidth", 0) or 0)
    bits = page.bitspersample
    bits = max(bits) if isinstance(bits, tuple) else int(bits or 8)
    check_frame_size(
        source, rows, cols, int(page.samplesperpixel or 1), (bits + 7) // 8, limits, f"page {i}"
    )
    code = int(page.compression)
    if code not in BOUNDED_COMPRESSIONS:
        name = getattr(page.compression, "name", str(code))
        raise VideoReadError(
            f"page {i} is compressed with {name}, which rbcflow does not read (it reads "
            f"{', '.join(sorted(set(BOUNDED_COMPRESSIONS.values())))})",
            source,
        )
    if code in _JPEG_COMPRESSIONS:
        _check_jpeg_segments(source, page, i)


def _check_jpeg_segments(source, page, i: int) -> None:
    """Refuse JPEG strips/tiles whose headers declare more than the page's segment shape."""
    tall = max(int(page.imagelength), int(page.tilelength or 0))  # tiles may overhang
    wide = max(int(page.imagewidth), int(page.tilewidth or 0))
    fh = page.parent.filehandle
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
        if not count:
            continue
        fh.seek(int(offset))
        head = fh.read(min(int(count), 1 << 16))
        for rows, cols in jpeg_declared_sizes(head):
            if rows > tall or cols > wide:
                raise FrameLimitError(
                    f"page {i}: a JPEG strip declares {cols}x{rows} pixels in a page of "
                    f"{page.imagewidth}x{page.imagelength} (damaged)",
                    source,
                )


def _page_failure(i: int, page, exc: BaseException) -> str:
    """rbcflow's words for a page tifffile could not decode (no library text)."""
    text = str(exc)
    if isinstance(exc, MemoryError):
        return f"page {i} cannot be read (not enough memory)"
    compression = getattr(getattr(page, "compression", None), "name", None)
    if "imagecodecs" in text or "codec" in text.lower():
        return (
            f"page {i} is compressed with {compression or 'an unknown scheme'}, which this "
            "installation cannot decode"
        )
    return f"page {i} cannot be read (damaged or unsupported data)"


class _TiffLog(logging.Handler):
    """Collects tifffile's log records (it logs, rather than raises, on many damages)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _import_tifffile():
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - tifffile is a core dependency
        raise VideoReadError(
            f"cannot read TIFF: tifffile is not installed (tried: tifffile; {exc})"
        ) from None
    return tifffile


class TiffReader(VideoReader):
    """Reader of a multi-page TIFF stack (one frame per page).

    Parameters
    ----------
    path : str or Path
        The .tif/.tiff file.
    fps : float, optional
        Frame rate to use instead of the file's, frames/s.
    default_fps : float
        Rate used, with a warning, when the file has none: ImageJ's ``finterval`` (s) or
        ``fps``, or OME's ``TimeIncrement`` are looked for.
    limits : InputLimits, optional
        Page-size bounds, checked on each page's header before it is decoded (default
        :class:`rbcflow.run_settings.InputLimits`).

    Frames are ``(rows, cols)`` arrays of the pages' type (uint8 or uint16). Only page 0 is
    decoded when the reader is made; a later page that cannot be decoded, or differs in size or
    type, raises :class:`VideoReadError` naming the page when it is read.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = DEFAULT_FPS,
        limits: InputLimits | None = None,
    ):
        super().__init__()
        tifffile = _import_tifffile()
        self.source = Path(path)
        self._limits = limits
        self._tif = None
        self._contiguous: tuple[int, int] | None = None  # (offset of frame 0, bytes per frame)
        with self._captured():
            try:
                self._tif = tifffile.TiffFile(self.source)
                pages = self._tif.pages
                pages.cache = False  # page objects are re-parsed on demand: bounded memory
                n = len(pages)
            except VideoReadError:
                raise
            except Exception as exc:  # tifffile raises many types on malformed files
                self.close()
                raise VideoReadError(_open_failure(exc), self.source) from None
        if n == 0:
            self.close()
            raise VideoReadError("TIFF without any page", self.source)
        if any(w.startswith("tifffile:") for w in self.warnings):
            # tifffile stops counting at the first bad page link: say what that means
            self.warnings.append(f"file damaged or truncated: reading its first {n} page(s)")
        self._n = n
        first = self._decode(0)
        self.shape = (int(first.shape[0]), int(first.shape[1]))
        self.dtype = first.dtype
        self._check_imagej_contiguous()
        resolve_fps(self, self._container_fps(), fps, default_fps)

    # -- helpers ---------------------------------------------------------------------------
    @contextmanager
    def _captured(self) -> Iterator[None]:
        """Turn tifffile's log records and Python warnings into ``self.warnings`` entries."""
        handler = _TiffLog()
        log = logging.getLogger("tifffile")
        log.addHandler(handler)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:
            log.removeHandler(handler)
            # only tifffile's own warnings (not, say, another object's ResourceWarning
            # that garbage collection happened to emit meanwhile)
            caught = [w for w in caught if "tifffile" in str(w.filename)]
            for msg in handler.messages + [str(w.message) for w in caught]:
                text = f"tifffile: {' '.join(msg.split())}"
                if text not in self.warnings and len(self.warnings) < _MAX_WARNINGS:
                    self.warnings.append(text)

    def _check_imagej_contiguous(self) -> None:
        """ImageJ stacks > 4 GB have one IFD; their frames follow page 0's data."""
        tif = self._tif
        if self._n != 1 or not tif.is_imagej:
            return
        meta = tif.imagej_metadata or {}
        try:
            images = int(meta.get("images", 1))
        except (TypeError, ValueError):
            return
        page = tif.pages.first
        if images <= 1 or not page.is_contiguous or page.compression != 1:
            return
        offset, nbytes = int(page.dataoffsets[0]), int(sum(page.databytecounts))
        frame_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if nbytes != frame_bytes or page.samplesperpixel != 1:
            return
        available = (self._tif.filehandle.size - offset) // frame_bytes
        self._n = int(min(images, available))
        self._contiguous = (offset, frame_bytes)
        self._byteorder = tif.byteorder
        if available < images:
            self.warnings.append(
                f"file truncated: {self._n} complete frames of {images} announced (ImageJ metadata)"
            )

    def _container_fps(self) -> float | None:
        tif = self._tif
        try:
            meta = tif.imagej_metadata if tif.is_imagej else None
            if meta:
                for key, invert in (("finterval", True), ("fps", False)):
                    value = float(meta.get(key, "nan"))
                    if math.isfinite(value) and value > 0:
                        return 1.0 / value if invert else value
            ome = tif.ome_metadata if tif.pages.first.is_ome else None
            if ome:
                m = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", ome)
                if m:
                    inc = re.search(r'\bTimeIncrement="([^"]+)"', m.group(0))
                    unit = re.search(r'\bTimeIncrementUnit="([^"]+)"', m.group(0))
                    if inc:
                        value = float(inc.group(1)) * _TIME_UNITS.get(
                            unit.group(1) if unit else "s", math.nan
                        )
                        if math.isfinite(value) and value > 0:
                            return 1.0 / value
        except Exception:  # metadata is optional: a malformed one only loses the rate
            return None
        return None

    def _decode(self, i: int) -> np.ndarray:
        if self._tif is None:
            raise VideoReadError("reader is closed", self.source)
        with self._captured():
            try:
                if self._contiguous is not None:
                    return self._read_contiguous(i)
                page = None
                page = self._tif.pages[i]
                check_page_size(self.source, page, self._limits, i)
                data = page.asarray()
                axes = getattr(page, "axes", "")
            except VideoReadError:
                raise
            except Exception as exc:  # no library text in the message
                if page is None:
                    msg = f"page {i} cannot be read (damaged page directory)"
                else:
                    msg = _page_failure(i, page, exc)
                raise VideoReadError(msg, self.source) from None
        frame = self._to_frame(i, data, axes)
        if hasattr(self, "shape") and (frame.shape != self.shape or frame.dtype != self.dtype):
            raise VideoReadError(
                f"page {i} is {frame.shape} {frame.dtype}, page 0 {self.shape} {self.dtype}",
                self.source,
            )
        return frame

    def _read_contiguous(self, i: int) -> np.ndarray:
        offset, nbytes = self._contiguous
        fh = self._tif.filehandle
        fh.seek(offset + i * nbytes)
        buf = fh.read(nbytes)
        if len(buf) != nbytes:
            raise VideoReadError(f"frame {i} is cut short (file truncated)", self.source)
        dtype = self.dtype.newbyteorder(self._byteorder)
        return np.frombuffer(buf, dtype).reshape(self.shape).astype(self.dtype)

    def _to_frame(self, i: int, data: np.ndarray, axes: str) -> np.ndarray:
        # tifffile gives (S, Y, X) for planar RGB and may keep singleton axes.
        if "S" in axes and data.ndim == len(axes) and axes.index("S") < axes.index("Y"):
            data = np.moveaxis(data, axes.index("S"), -1)
        while data.ndim > 2 and data.shape[0] == 1:
            data = data[0]
        if data.dtype not in SUPPORTED_DTYPES:
            raise VideoReadError(
                f"page {i} holds {data.dtype} samples; only 8- and 16-bit unsigned frames are read",
                self.source,
            )
        try:
            frame = to_gray(data, "RGB")
        except ValueError as exc:
            raise VideoReadError(f"page {i}: {exc}", self.source) from None
        if frame.ndim != 2 or 0 in frame.shape:
            raise VideoReadError(f"page {i} of shape {data.shape} is not a 2-D frame", self.source)
        return np.ascontiguousarray(frame)

    # -- contract ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def get_frame(self, i: int) -> np.ndarray:
        return self._decode(i)

    def close(self) -> None:
        if getattr(self, "_tif", None) is not None:
            self._tif.close()
            self._tif = None

    def __del__(self) -> None:
        # a reader dropped without close() must not leak its file (nor warn about it)
        self.close()


def _open_failure(exc: BaseException) -> str:
    """rbcflow's words for a file tifffile could not open (no library text)."""
    if isinstance(exc, OSError) and not type(exc).__name__.startswith("Tiff"):
        return f"cannot be read ({exc.strerror or 'input/output error'})"
    if "not a TIFF" in str(exc) or "invalid TIFF" in str(exc):
        return "not a TIFF file (no TIFF header)"
    if isinstance(exc, MemoryError):
        return "not a readable TIFF (its structure declares more than fits in memory)"
    return "not a readable TIFF (damaged structure)"
