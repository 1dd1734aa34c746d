"""Expand the paths a user gives into acquisitions (video files and frame folders)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rbcflow.io.folder import FRAME_EXTENSIONS, natural_key

STACK_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
"""Extensions that are a video (multi-page stack) or a single frame, depending on the file."""
MOVIE_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")
"""Extensions that are always a video."""


def _is_stack(path: Path) -> bool:
    """True when a TIFF file holds several frames (pages, or an ImageJ single-IFD stack)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:
                return True
            meta = tif.imagej_metadata if tif.is_imagej else None
            return bool(meta) and int(meta.get("images", 1)) > 1
    except Exception:  # unreadable: let the reader say why, as a frame of its folder
        return False


def _path_key(path: Path) -> tuple:
    return tuple(natural_key(part) for part in path.parts)


def _search(folder: Path, visited: set[str], top: bool) -> Iterator[Path]:
    """Acquisitions under ``folder`` (see :func:`find_acquisitions`), natural order."""
    real = os.path.realpath(folder)
    if real in visited:  # a symlink loop, or a folder reached twice
        return
    visited.add(real)
    try:
        with os.scandir(folder) as it:
            entries = sorted(
                (e for e in it if not e.name.startswith(".")), key=lambda e: natural_key(e.name)
            )
    except OSError:
        yield folder  # unlistable: the reader will report why
        return
    names = {e.name for e in entries}
    if "dataset.csv" in names and "img" in names and not top:
        return  # a sequence set (our own output): its strips are not frames
    movies, tiffs, images, subdirs = [], [], [], []
    for e in entries:
        try:
            if e.is_dir():
                subdirs.append(Path(e.path))
                continue
            if not e.is_file():
                continue  # broken link, socket, ...
        except OSError:
            continue
        ext = os.path.splitext(e.name)[1].lower()
        if ext in MOVIE_EXTENSIONS:
            movies.append(Path(e.path))
        elif ext in STACK_EXTENSIONS:
            tiffs.append(Path(e.path))
        elif ext in FRAME_EXTENSIONS:
            images.append(Path(e.path))
    stacks = tiffs if tiffs and _is_stack(tiffs[0]) else []
    frames = images + ([] if stacks else tiffs)
    found: list[Path] = []
    if movies or stacks:
        found.extend(movies + stacks)  # stray images beside videos are snapshots, not frames
    elif len(frames) >= (1 if top else 2):
        found.append(folder)
    for sub in subdirs:
        found.extend(_search(sub, visited, top=False))
    yield from sorted(found, key=_path_key)


def find_acquisitions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a list of acquisitions, each a video file or frame folder.

    Parameters
    ----------
    paths : iterable of str or Path
        What the user named.

    Returns
    -------
    list of Path
        In the order given, each folder's findings in natural order (``run2`` before
        ``run10``); every acquisition once, even when reached through several names or
        symbolic links (real paths are compared).

    Notes
    -----
    - A named file is returned as it is, whatever its type (even missing or unknown), so that
      the caller reports it when it cannot be read.
    - A named folder that directly holds image frames and no video is one frame-folder
      acquisition. Otherwise it is searched recursively, following symbolic links (each real
      folder visited once, so links cannot loop): video files (AVI, MP4/MOV/MKV, multi-page
      TIFF) are acquisitions; a folder of at least 2 image frames and no video is one. Stray
      images beside videos, unknown files, hidden files and folders (``.name``) and sequence
      sets (``dataset.csv`` + ``img/``) are skipped.
    - A named folder where nothing is found is returned itself, so the caller reports it.
    - A TIFF file is a video when it has several pages: a folder's first TIFF decides whether
      its TIFFs are stacks or frames.
    """
    result: list[Path] = []
    seen: set[str] = set()
    for given in paths:
        given = Path(given)
        found = list(_search(given, set(), top=True)) if given.is_dir() else [given]
        if not found:
            found = [given]
        for path in found:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                result.append(path)
    return result


def acquisition_name(path: str | os.PathLike) -> str:
    """The input's name without extension (a frame folder: its name), as in ``report.csv``.

    The one function that names an acquisition from its input path (output folders, reports).
    Naming one from a sequence name is :func:`rbcflow.io.sequences.acquisition_of`.

    Examples
    --------
    >>> acquisition_name("runs/BG1017_10s01.avi")
    'BG1017_10s01'
    """
    p = Path(path)
    name = p.name if p.is_dir() else p.stem
    return name or p.absolute().name or "acquisition"
