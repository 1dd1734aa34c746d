"""A folder of image files, one frame per file, in natural order (frame2 before frame10)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.base import VideoReader
from rbcflow.io.fps import DEFAULT_FPS, resolve_fps
from rbcflow.io.tiff import SUPPORTED_DTYPES, to_gray

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


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Visible image files of ``folder`` (see :data:`FRAME_EXTENSIONS`), natural order."""
    folder = Path(folder)
    with os.scandir(folder) as entries:
        files = [
            Path(e.path)
            for e in entries
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in FRAME_EXTENSIONS
            and e.is_file()
        ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """One image file as a 2-D uint8/uint16 grayscale frame.

    TIFF through tifffile (first page), other formats through ``cv2.imdecode`` on the file's
    bytes (which, unlike ``cv2.imread``, takes any file name on every platform).

    Raises
    ------
    VideoReadError
        If the file cannot be decoded or holds samples other than 8-/16-bit unsigned.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path, key=0)
            order = "RGB"
        else:
            import cv2

            raw = np.fromfile(path, np.uint8)
            data = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
            if data is None:
                raise VideoReadError("not a readable image", path)
            order = "BGR"
    except VideoReadError:
        raise
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise VideoReadError(
            f"cannot read {path.suffix} frames: {exc} (tried: tifffile for "
            "TIFF, OpenCV for PNG/JPEG/BMP)",
            path,
        ) from None
    except Exception as exc:  # decoders raise many types on malformed files
        raise VideoReadError(f"not a readable image ({type(exc).__name__}: {exc})", path) from None
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
    ):
        super().__init__()
        self.source = Path(path)
        try:
            self._files = list(files) if files is not None else list_frame_files(self.source)
        except OSError as exc:
            raise VideoReadError(f"cannot list the folder ({exc.strerror})", self.source) from None
        if not self._files:
            raise VideoReadError(
                f"folder holds no image frames (expected {', '.join(FRAME_EXTENSIONS)})",
                self.source,
            )
        first = read_image(self._files[0])
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
        frame = read_image(path)
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
