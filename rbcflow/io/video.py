"""Video readers (AVI, TIFF stack, frame folder) and the :func:`open_video` dispatcher.

Every reader implements :class:`rbcflow.io.base.VideoReader`: ``len``, ``reader[i]`` (random
access, negative indices), in-order iteration (the fast path), ``shape``, ``dtype``, ``fps``,
``source`` and ``warnings``; frames are read only when asked for, so memory stays bounded
whatever the length of the video.

=================  ===============================================  ===========================
input              reader                                           frames
=================  ===============================================  ===========================
uncompressed .avi  :class:`~rbcflow.io.avi.RawAviReader` (native)    uint8 gray
MJPG .avi          :class:`~rbcflow.io.avi.MjpegAviReader` (native    uint8 gray
                   RIFF + ``cv2.imdecode`` to gray)
I420/YV12/NV12     :class:`~rbcflow.io.avi.YuvAviReader` (native     uint8 gray
.avi               Y plane + look-up table)
other .avi, .mp4,  :class:`~rbcflow.io.avi.AviReader` (OpenCV)       uint8 gray
.mov, .mkv
.tif, .tiff        :class:`~rbcflow.io.tiff.TiffReader` (tifffile)   uint8 or uint16 gray
folder of images   :class:`~rbcflow.io.folder.FolderReader`          uint8 or uint16 gray
=================  ===============================================  ===========================

Example
-------
>>> import tempfile, numpy as np
>>> from rbcflow.io.avi import write_avi
>>> with tempfile.TemporaryDirectory() as d:
...     _ = write_avi(f"{d}/a.avi", (np.full((8, 10), i, np.uint8) for i in range(3)), fps=50)
...     with open_video(f"{d}/a.avi") as video:
...         print(len(video), video.shape, video.fps, [int(f[0, 0]) for f in video])
3 (8, 10) 50.0 [0, 1, 2]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rbcflow.config import ReaderConfig
from rbcflow.errors import RbcflowError, VideoReadError
from rbcflow.io.avi import (
    MJPEG_FOURCCS,
    YUV420_FOURCCS,
    AviReader,
    MjpegAviReader,
    RawAviReader,
    YuvAviReader,
    read_avi_layout,
    write_avi,
)
from rbcflow.io.base import VideoReader
from rbcflow.io.discover import MOVIE_EXTENSIONS, STACK_EXTENSIONS, examine, find_acquisitions
from rbcflow.io.folder import FRAME_EXTENSIONS, FolderReader, natural_key
from rbcflow.io.limits import FrameLimitError, check_frame_size, check_min_side
from rbcflow.io.tiff import TiffReader
from rbcflow.run_settings import InputLimits

VIDEO_EXTENSIONS: tuple[str, ...] = MOVIE_EXTENSIONS + STACK_EXTENSIONS
"""Extensions (lower case, with the dot) of files read as videos."""

__all__ = [
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AviReader",
    "FolderReader",
    "MjpegAviReader",
    "RawAviReader",
    "TiffReader",
    "VideoReader",
    "YuvAviReader",
    "find_acquisitions",
    "natural_key",
    "open_video",
    "write_avi",
]


def open_video(
    path: str | os.PathLike,
    fps: float | None = None,
    *,
    default_fps: float | None = None,
    limits: InputLimits | None = None,
) -> VideoReader:
    """Open a video file or a folder of frames with the reader its type needs.

    Parameters
    ----------
    path : str or Path
        An .avi (.mp4, .mov, .mkv) file, a .tif/.tiff stack, or a folder of image frames.
    fps : float, optional
        Frame rate to use, frames/s; wins over the container's (``--fps``).
    default_fps : float, optional
        Rate used, with a warning in ``reader.warnings``, when the input records none or an
        absurd one (default :attr:`rbcflow.config.ReaderConfig.default_fps`, 60).
    limits : InputLimits, optional
        Frame-size bounds (default :class:`rbcflow.run_settings.InputLimits`): what a header
        declares is checked before anything is decoded, and frames too small to track cells
        in are refused.

    Returns
    -------
    VideoReader
        Use it as a context manager to close the file.

    Raises
    ------
    VideoReadError
        Missing, empty, unknown or unreadable input, a FIFO, device or socket (never opened),
        frames over or under the limits, or no readable frame; the message is rbcflow's one
        line naming the file and the problem (no library text).
    RbcflowError
        If ``fps`` is not a plausible rate.
    """
    path = Path(path)
    lim = limits or InputLimits()
    if default_fps is None:
        default_fps = ReaderConfig().default_fps
    try:
        reader = _open(path, fps, default_fps, lim)
    except RbcflowError:
        raise
    except OSError as exc:
        raise VideoReadError(
            f"cannot be read ({exc.strerror or 'input/output error'})", path
        ) from None
    except MemoryError:
        raise VideoReadError(
            "cannot be read (its headers declare more than fits in memory)", path
        ) from None
    except Exception:  # malformed headers that slipped past the readers' own checks
        raise VideoReadError("malformed file (damaged headers)", path) from None
    try:
        check_frame_size(path, *reader.shape, 1, np.dtype(reader.dtype).itemsize, lim)
        check_min_side(path, reader.shape, lim)
    except VideoReadError:
        reader.close()
        raise
    return reader


def _open(path: Path, fps, default_fps, lim: InputLimits) -> VideoReader:
    """The reader for ``path`` (see :func:`open_video`)."""
    kind, reason = examine(path)
    if kind == "missing":
        raise VideoReadError("no such file or folder", path)
    if kind != "ok":
        raise VideoReadError(reason or "cannot be examined", path)
    if path.is_dir():
        return FolderReader(path, fps=fps, default_fps=default_fps, limits=lim)
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        if ext in FRAME_EXTENSIONS:
            raise VideoReadError("a single image, not a video (give the folder of frames)", path)
        raise VideoReadError(
            f"unknown video format {ext or '(no extension)'!r} (expected "
            f"{', '.join(VIDEO_EXTENSIONS)} or a folder of frames)",
            path,
        )
    if not path.is_file():
        raise VideoReadError("not a regular file", path)
    if path.stat().st_size == 0:
        raise VideoReadError("empty file", path)
    if ext in STACK_EXTENSIONS:
        return TiffReader(path, fps=fps, default_fps=default_fps, limits=lim)
    if ext != ".avi":
        return AviReader(path, fps=fps, default_fps=default_fps)
    layout = read_avi_layout(path)
    check_frame_size(path, layout.height, layout.width, 1, 1, lim, "AVI frame")
    reader = _open_avi(path, fps, default_fps, lim, layout)
    reader.warnings[:0] = [w for w in layout.warnings if w not in reader.warnings]
    return reader


def _open_avi(path: Path, fps, default_fps, lim: InputLimits, layout) -> VideoReader:
    if layout.uncompressed:
        return RawAviReader(path, fps=fps, default_fps=default_fps, layout=layout, limits=lim)
    if not len(layout.offsets):
        raise VideoReadError(
            "no complete frame in the file" + (" (truncated)" if layout.truncated else ""),
            path,
        )
    if layout.compression in YUV420_FOURCCS:
        return YuvAviReader(path, fps=fps, default_fps=default_fps, layout=layout, limits=lim)
    if layout.compression in MJPEG_FOURCCS:
        try:
            return MjpegAviReader(path, fps=fps, default_fps=default_fps, layout=layout, limits=lim)
        except FrameLimitError:
            raise  # never handed to FFmpeg, which would allocate what the header declares
        except VideoReadError:
            pass  # a JPEG flavour imdecode does not read: FFmpeg may
    return AviReader(path, fps=fps, default_fps=default_fps, layout=layout)
