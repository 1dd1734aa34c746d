"""Writing synthetic acquisitions: frames into an AVI, a TIFF stack or a folder of PNG frames
(:func:`write_frames`), and the truth tables beside them (:func:`write_tables`,
:func:`truth_paths`); :func:`write_acquisition` renders and writes both.

Every output is built under a temporary name (:func:`rbcflow.io.outputs.partial_name`) and
renamed when complete, so an interrupted run leaves no half video or table under a final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from rbcflow.config import ReaderConfig
from rbcflow.errors import OutputError
from rbcflow.io.avi import write_avi
from rbcflow.io.outputs import partial_name, remove_path, replace_path, write_table_atomic
from rbcflow.synthetic.params import SynthConfig
from rbcflow.synthetic.render import render_acquisition

FORMATS = ("avi", "tiff", "png")
"""Output formats: AVI file, multi-page TIFF stack, folder of PNG frames."""

AVI_CODECS: dict[str, str] = {
    "ffv1": "FFV1",  # lossless, compact: the default for tests and benchmarks
    "mjpg": "MJPG",  # lossy (JPEG per frame), the most compact; the shipped sample
    "rgba": "RGBA",  # uncompressed (32-bit RGBA, lossless): the fastest to decode
    "hfyu": "HFYU",  # lossless HuffYUV
    "mp4v": "mp4v",  # lossy MPEG-4 part 2
}
"""``--codec`` names and their FourCCs; all write with the opencv-python-headless wheel's FFmpeg.

A 24-bit uncompressed DIB AVI cannot be written by that FFmpeg build (the ``DIB `` tag is
refused and FourCC 0 writes lossy 4:2:0 YUV), hence ``rgba`` for uncompressed frames."""


def guess_format(path: str | os.PathLike) -> str:
    """``avi``, ``tiff`` or ``png`` (a folder of frames) from the output path.

    A path ending in ``/``, an existing folder, or a path without suffix is a frame folder.
    """
    p = str(path)
    suffix = Path(p).suffix.lower()
    if p.endswith(("/", os.sep)) or Path(p).is_dir() or not suffix:
        return "png"
    if suffix == ".avi":
        return "avi"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    raise OutputError(f"unknown video format {suffix!r} (use .avi, .tif/.tiff or a folder/)", path)


def truth_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Where the truth tables of a video go: ``NAME.truth.csv`` and ``NAME.tracks.csv`` beside
    ``NAME.avi`` / ``NAME.tif`` / ``NAME/``."""
    p = Path(str(path).rstrip("/" + os.sep))
    stem = p.with_suffix("") if p.suffix.lower() in (".avi", ".tif", ".tiff") else p
    return (stem.parent / (stem.name + ".truth.csv"), stem.parent / (stem.name + ".tracks.csv"))


def write_frames(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = ReaderConfig().default_fps,
    fmt: str | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Stream grayscale frames into a video file or frame folder, one frame at a time.

    Written under a temporary name and renamed when complete (an interrupted run leaves no
    half video under the final name).

    Parameters
    ----------
    frames : iterable of (rows, cols) uint8 or uint16 ndarrays
        All of the same shape; uint16 only for TIFF and PNG.
    path : path
        ``NAME.avi``, ``NAME.tif``/``NAME.tiff`` or a folder (``NAME/``) of PNG frames
        ``frame_000000.png``...
    fps : float
        Frame rate stored in the AVI, frames/s (TIFF and PNG carry none).
    fmt : {'avi', 'tiff', 'png'}, optional
        Output format; guessed from ``path`` when None.
    codec : str, optional
        AVI codec, a key of :data:`AVI_CODECS` (default ``ffv1``, lossless). Frames are
        written as 24-bit BGR (grey replicated on the three channels), as the lab camera does.
    overwrite : bool
        Replace an existing output instead of raising :class:`OutputError`.
    progress : callable, optional
        Called with 1 after each frame written.

    Returns
    -------
    int
        Number of frames written.
    """
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", path)
    if path.exists() and not overwrite:
        raise OutputError("exists already (use overwrite / --force to replace it)", path)
    if not path.parent.exists():
        raise OutputError("parent folder does not exist", path.parent)
    if fmt == "avi":
        codec = (codec or "ffv1").lower()
        if codec not in AVI_CODECS:
            raise OutputError(
                f"unknown AVI codec {codec!r} (choose from {', '.join(AVI_CODECS)})", path
            )
    elif codec is not None:
        raise OutputError(f"a codec ({codec}) applies to AVI output only", path)
    tmp = partial_name(path)
    if fmt == "avi":
        # Keep the real suffix last: OpenCV picks the container from it.
        tmp = tmp.with_name(tmp.name + path.suffix)
    n = 0
    try:
        if fmt == "avi":
            n = write_avi(tmp, frames, fps, fourcc=AVI_CODECS[codec], progress=progress)
        elif fmt == "tiff":
            n = _write_tiff(frames, tmp, progress)
        else:
            n = _write_png_folder(frames, tmp, progress)
        if n == 0:
            raise OutputError("no frame to write", path)
        replace_path(tmp, path)
    finally:
        remove_path(tmp)
    return n


def _write_tiff(
    frames: Iterable[np.ndarray], path: Path, progress: Callable[[int], None] | None
) -> int:
    import tifffile

    n = 0
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for frame in frames:
            # One page per frame; contiguous pages make one series that readers page through.
            tif.write(frame, photometric="minisblack", contiguous=True, metadata=None)
            n += 1
            if progress:
                progress(1)
    return n


def _write_png_folder(
    frames: Iterable[np.ndarray], folder: Path, progress: Callable[[int], None] | None
) -> int:
    folder.mkdir()
    n = 0
    for frame in frames:
        if not cv2.imwrite(str(folder / f"frame_{n:06d}.png"), frame):
            raise OutputError("cannot write PNG frame", folder / f"frame_{n:06d}.png")
        n += 1
        if progress:
            progress(1)
    return n


def write_tables(
    path: str | os.PathLike, truth: pd.DataFrame, tracks: pd.DataFrame, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``NAME.truth.csv`` and ``NAME.tracks.csv`` beside the video ``path``."""
    truth_csv, tracks_csv = truth_paths(path)
    for p, table in ((truth_csv, truth), (tracks_csv, tracks)):
        if p.exists() and not overwrite:
            raise OutputError("exists already (use overwrite / --force to replace it)", p)
        write_table_atomic(p, table, index=False, float_format="%.4f")
    return truth_csv, tracks_csv


def write_acquisition(
    path: str | os.PathLike,
    cfg: SynthConfig | None = None,
    rng: np.random.Generator | int | None = None,
    fmt: str | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Render a synthetic acquisition into a video and write its truth beside it.

    Parameters
    ----------
    path : path
        ``NAME.avi``, ``NAME.tif`` or ``NAME/`` (see :func:`write_frames`).
    cfg, rng : see :func:`render_acquisition`.
    fmt, codec, overwrite, progress : see :func:`write_frames`.

    Returns
    -------
    DataFrame
        The truth (:data:`rbcflow.schema.TRUTH`); also written to ``NAME.truth.csv``, with the
        per-track truth in ``NAME.tracks.csv`` (:func:`truth_paths`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "demo.avi"
    >>> truth = write_acquisition(out, SynthConfig(width=128, height=96, n_frames=12), rng=1)
    >>> sorted(p.name for p in out.parent.iterdir())
    ['demo.avi', 'demo.tracks.csv', 'demo.truth.csv']
    """
    cfg = cfg or SynthConfig()
    acq = render_acquisition(cfg, rng)
    for p in truth_paths(path):
        if p.exists() and not overwrite:
            raise OutputError("exists already (use overwrite / --force to replace it)", p)
    write_frames(acq.frames(), path, cfg.fps, fmt, codec, overwrite, progress)
    write_tables(path, acq.truth, acq.tracks, overwrite=overwrite)
    return acq.truth
