"""A folder of image files, one frame per file, in natural order (frame2 before frame10)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.avi.opencv import _quiet_opencv
from rbcflow.io.base import VideoReader
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps
from rbcflow.io.limits import FrameLimitError, check_frame_size, image_header
from rbcflow.io.tiff import SUPPORTED_DTYPES, check_page_size, to_gray
from rbcflow.run_settings import InputLimits

FRAME_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
"""Extensions (lower case, with the dot) of single-image frame files."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key putting ``frame2`` before ``frame10`` (digit runs compare as numbers).

    The extension is compared last, so ``f.png`` comes before ``f1.png``.

    Examples
    --------
    >>> sorted(["f10.png", "f2.png", "F1.png", "f.png"], key=natural_key)
    ['f.png', 'F1.png', 'f2.png', 'f10.png']
    """
    stem, suffix = os.path.splitext(name)
    parts = _DIGITS.split(stem)
    # (kind, number, text) triples so that text and numbers never compare with each other;
    # the end of the stem (kind -1) sorts before any further text or number, and the name
    # itself breaks ties ("f01" vs "f1") deterministically.
    key = tuple((1, int(p), "") if i % 2 else (0, 0, p.casefold()) for i, p in enumerate(parts))
    return key + ((-1, 0, suffix.casefold()), (2, 0, name))


def _is_regular(entry: os.DirEntry) -> bool:
    """True for a regular file (or a link to one); False for links that loop or point nowhere,
    FIFOs, devices and sockets, which are never opened."""
    try:
        return entry.is_file()
    except OSError:  # a link that loops (ELOOP), an unreadable entry
        return False


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Visible image files of ``folder`` (see :data:`FRAME_EXTENSIONS`), natural order.

    Only regular files: a symbolic link that loops or points nowhere, a FIFO, device or
    socket with an image name is left out (discovery lists it in the skipped list).
    """
    folder = Path(folder)
    with os.scandir(folder) as entries:
        files = [
            Path(e.path)
            for e in entries
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in FRAME_EXTENSIONS
            and _is_regular(e)
        ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path, limits: InputLimits | None = None) -> np.ndarray:
    """One image file as a 2-D uint8/uint16 grayscale frame.

    TIFF through tifffile (first page), other formats through ``cv2.imdecode`` on the file's
    bytes (which, unlike ``cv2.imread``, takes any file name on every platform). The size the
    file's header declares is checked against ``limits`` before decoding
    (:func:`rbcflow.io.limits.check_frame_size`).

    Raises
    ------
    VideoReadError
        If the file cannot be decoded, declares a frame over the limits, or holds samples
        other than 8-/16-bit unsigned.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            data = _read_tiff_frame(path, limits)
            order = "RGB"
        else:
            import cv2

            lim = limits or InputLimits()
            if path.stat().st_size > (2 * lim.max_frame_mib + 1) * 2**20:
                raise FrameLimitError(
                    f"image file of {path.stat().st_size / 2**20:.0f} MiB: larger than any frame "
                    f"rbcflow reads ({lim.max_frame_mib} MiB decoded)",
                    path,
                )
            raw = np.fromfile(path, np.uint8)
            if not raw.size:
                raise VideoReadError("empty image file", path)
            header = image_header(memoryview(raw))
            if header is None:
                raise VideoReadError("not a readable image (no PNG, JPEG or BMP header)", path)
            check_frame_size(path, *header, limits=limits, what="image")
            with _quiet_opencv(cv2):  # its warnings on damaged files are ours to report
                data = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
            if data is None:
                raise VideoReadError("not a readable image (damaged)", path)
            order = "BGR"
    except VideoReadError:
        raise
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise VideoReadError(
            f"cannot read {path.suffix} frames: {exc} (tried: tifffile for "
            "TIFF, OpenCV for PNG/JPEG/BMP)",
            path,
        ) from None
    except OSError as exc:
        msg = f"cannot be read ({exc.strerror or 'input/output error'})"
        raise VideoReadError(msg, path) from None
    except Exception:  # decoders raise many types on malformed files: no library text shown
        raise VideoReadError("not a readable image (damaged)", path) from None
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.dtype not in SUPPORTED_DTYPES:
        raise VideoReadError(
            f"holds {data.dtype} samples; only 8- and 16-bit unsigned frames are read", path
        )
    try:
        frame = to_gray(data, order)
    except ValueError as exc:
        raise VideoReadError(str(exc), path) from None
    if 0 in frame.shape:
        raise VideoReadError("empty image", path)
    return np.ascontiguousarray(frame)


def _read_tiff_frame(path: Path, limits: InputLimits | None) -> np.ndarray:
    """Page 0 of a TIFF file, its declared size checked before it is decoded."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        check_page_size(path, page, limits)
        return page.asarray()


class FolderReader(VideoReader):
    """Reader of a folder of frames (TIFF, PNG, JPEG, BMP), natural order of the file names.

    Parameters
    ----------
    path : str or Path
        The folder.
    fps : float, optional
        Frame rate, frames/s. Image files carry none, so without it ``default_fps`` is used
        with a warning.
    default_fps : float
        Rate used when ``fps`` is None.
    files : list of Path, optional
        The frame files, in order (default: :func:`list_frame_files`).
    limits : InputLimits, optional
        Frame-size bounds checked on each file's header before decoding (default
        :class:`rbcflow.run_settings.InputLimits`).

    All frames must share the first frame's shape and dtype; this is checked as each frame is
    read (a mismatch raises :class:`VideoReadError` naming the file and both shapes), so that
    opening a folder of 20,000 frames reads one file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        default_fps: float = DEFAULT_FPS,
        files: list[Path] | None = None,
        limits: InputLimits | None = None,
    ):
        super().__init__()
        self.source = Path(path)
        self._limits = limits
        try:
            self._files = list(files) if files is not None else list_frame_files(self.source)
        except OSError as exc:
            raise VideoReadError(f"cannot list the folder ({exc.strerror})", self.source) from None
        if not self._files:
            raise VideoReadError(
                f"folder holds no image frames (expected {', '.join(FRAME_EXTENSIONS)})",
                self.source,
            )
        first = read_image(self._files[0], self._limits)
        self.shape = (int(first.shape[0]), int(first.shape[1]))
        self.dtype = first.dtype
        resolve_fps(self, None, fps, default_fps)
        self._closed = False

    @property
    def files(self) -> list[Path]:
        """The frame files, in frame order."""
        return list(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def get_frame(self, i: int) -> np.ndarray:
        if self._closed:
            raise VideoReadError("reader is closed", self.source)
        path = self._files[i]
        frame = read_image(path, self._limits)
        if frame.shape != self.shape or frame.dtype != self.dtype:
            raise VideoReadError(
                f"frame {i} is {frame.shape[1]}x{frame.shape[0]} {frame.dtype}, but frame 0 "
                f"({self._files[0].name}) is {self.shape[1]}x{self.shape[0]} {self.dtype}: all "
                "frames of a folder must have the same size and type",
                path,
            )
        return frame

    def close(self) -> None:
        # no handle is held between frames; closing only makes later reads fail, as for files
        self._closed = True
