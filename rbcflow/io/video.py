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
...     _ = write_avi(f"{d}/a.avi", (np.full((4, 6), i, np.uint8) for i in range(3)), fps=50)
...     with open_video(f"{d}/a.avi") as video:
...         print(len(video), video.shape, video.fps, [int(f[0, 0]) for f in video])
3 (4, 6) 50.0 [0, 1, 2]
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from rbcflow.config import ReaderConfig
from rbcflow.errors import RbcflowError, VideoReadError
from rbcflow.io.avi import (
    MJPEG_FOURCCS,
    AviReader,
    MjpegAviReader,
    RawAviReader,
    read_avi_layout,
    write_avi,
)
from rbcflow.io.base import VideoReader
from rbcflow.io.discover import MOVIE_EXTENSIONS, STACK_EXTENSIONS, find_acquisitions
from rbcflow.io.folder import FRAME_EXTENSIONS, FolderReader, natural_key
from rbcflow.io.tiff import TiffReader

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
    "find_acquisitions",
    "natural_key",
    "open_video",
    "write_avi",
]


def open_video(
    path: str | os.PathLike, fps: float | None = None, *, default_fps: float | None = None
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

    Returns
    -------
    VideoReader
        Use it as a context manager to close the file.

    Raises
    ------
    VideoReadError
        Missing, empty, unknown or unreadable input, or no readable frame; the message is one
        line naming the file and the problem.
    RbcflowError
        If ``fps`` is not a plausible rate.
    """
    path = Path(path)
    if default_fps is None:
        default_fps = ReaderConfig().default_fps
    try:
        if path.is_dir():
            return FolderReader(path, fps=fps, default_fps=default_fps)
        if not path.exists():
            raise VideoReadError("no such file or folder", path)
        ext = path.suffix.lower()
        if ext not in VIDEO_EXTENSIONS:
            if ext in FRAME_EXTENSIONS:
                raise VideoReadError(
                    "a single image, not a video (give the folder of frames)", path
                )
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
            return TiffReader(path, fps=fps, default_fps=default_fps)
        if ext == ".avi":
            layout = read_avi_layout(path)
            if layout.uncompressed:
                return RawAviReader(path, fps=fps, default_fps=default_fps, layout=layout)
            if not len(layout.offsets):
                raise VideoReadError(
                    "no complete frame in the file" + (" (truncated)" if layout.truncated else ""),
                    path,
                )
            if layout.compression in MJPEG_FOURCCS:
                try:
                    return MjpegAviReader(path, fps=fps, default_fps=default_fps, layout=layout)
                except VideoReadError:
                    pass  # a JPEG flavour imdecode does not read: FFmpeg may
            return AviReader(path, fps=fps, default_fps=default_fps, layout=layout)
        return AviReader(path, fps=fps, default_fps=default_fps)
    except RbcflowError:
        raise
    except OSError as exc:
        raise VideoReadError(f"cannot be read ({exc.strerror or exc})", path) from None
    except (struct.error, ValueError, MemoryError) as exc:
        # malformed headers that slipped past the readers' own checks
        raise VideoReadError(f"malformed file ({type(exc).__name__}: {exc})", path) from None
