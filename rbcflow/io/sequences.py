"""Sequence sets in the authors' interchange format.

A set is a folder::

    dataset.csv     columns: (unnamed integer index), sequence_name, label, size
    img/NAME.png    8-bit grayscale strip, 31 rows x (31 * size) columns; frame k of the
                    sequence is columns [31k, 31k + 31)

Labels: 0 tank-treading, 1 flipping, 2 unreliable, or empty when unlabelled (our front end
writes unlabelled sets so that a lab can label its own tracks). This is the format of the public
Darrin et al. (2023) data (Zenodo 10.5281/zenodo.5723606).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from rbcflow.errors import DatasetError, OutputError
from rbcflow.io.outputs import write_png_atomic, write_table_atomic
from rbcflow.schema import CROP_SIZE, LABEL_NAMES


@dataclass(frozen=True)
class Sequence:
    """One cell's crops over time.

    name : sequence name, ``ACQUISITION_INDEX`` (e.g. ``BG1017_10s01_1118``).
    frames : (T, 31, 31) uint8 ndarray, raw intensities.
    label : 0, 1, 2 or None (unlabelled).
    """

    name: str
    frames: np.ndarray
    label: int | None = None

    @property
    def acquisition(self) -> str:
        """The acquisition part of the name (everything before the last ``_``)."""
        return acquisition_of(self.name)


def acquisition_of(sequence_name: str) -> str:
    """``BG1017_10s01_1118`` -> ``BG1017_10s01``; a name without ``_`` is its own acquisition.

    Parses a sequence name of the authors' format (``ACQUISITION_INDEX``). Naming an
    acquisition from its input path (video file or frame folder) is a different job:
    :func:`rbcflow.io.discover.acquisition_name`.
    """
    head, sep, _ = str(sequence_name).rpartition("_")
    return head if sep else str(sequence_name)


def strip_to_frames(strip: np.ndarray, size: int | None = None) -> np.ndarray:
    """Cut a ``(31, 31*T)`` strip into a ``(T, 31, 31)`` stack.

    Raises
    ------
    ValueError
        If the strip is not 31 rows high or its width is not a multiple of 31 (or not
        ``31 * size`` when ``size`` is given).
    """
    if strip.ndim != 2 or strip.shape[0] != CROP_SIZE or strip.shape[1] % CROP_SIZE:
        raise ValueError(f"strip of shape {strip.shape} is not 31 x (31 * frames)")
    t = strip.shape[1] // CROP_SIZE
    if size is not None and t != size:
        raise ValueError(f"strip holds {t} frames but dataset.csv says size {size}")
    if t == 0:
        raise ValueError("strip holds no frame")
    return np.ascontiguousarray(strip.reshape(CROP_SIZE, t, CROP_SIZE).transpose(1, 0, 2))


def frames_to_strip(frames: np.ndarray) -> np.ndarray:
    """Inverse of :func:`strip_to_frames`: ``(T, 31, 31)`` -> ``(31, 31*T)``."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (CROP_SIZE, CROP_SIZE):
        raise ValueError(f"expected (T, 31, 31) frames, got {frames.shape}")
    return np.ascontiguousarray(frames.transpose(1, 0, 2).reshape(CROP_SIZE, -1))


def _read_table(folder: Path) -> pd.DataFrame:
    csv = folder / "dataset.csv"
    if not folder.is_dir():
        raise DatasetError("not a folder (expected dataset.csv and img/)", folder)
    if not csv.is_file():
        raise DatasetError(
            "no dataset.csv (expected the authors' format: dataset.csv + img/)", folder
        )
    try:
        table = pd.read_csv(csv, dtype={"sequence_name": str}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"dataset.csv cannot be parsed: {exc}", csv) from exc
    missing = [c for c in ("sequence_name", "label", "size") if c not in table.columns]
    if missing:
        raise DatasetError(f"dataset.csv lacks column(s) {missing}", csv)
    return table


def iter_dataset(folder: str | os.PathLike) -> Iterator[Sequence]:
    """Yield the sequences of a set one at a time (bounded memory), in ``dataset.csv`` order.

    Raises
    ------
    DatasetError
        If ``dataset.csv`` is missing or malformed, a label is not 0/1/2/empty, or a strip is
        missing, unreadable or of the wrong size.
    """
    folder = Path(folder)
    table = _read_table(folder)
    for row in table.itertuples(index=False):
        name = str(row.sequence_name)
        if not name or name == "nan" or "/" in name or "\\" in name or name.startswith("."):
            raise DatasetError(f"invalid sequence_name {name!r}", folder / "dataset.csv")
        label: int | None
        if pd.isna(row.label):
            label = None
        else:
            try:
                label = int(row.label)
            except (TypeError, ValueError):
                label = -1
            if label not in LABEL_NAMES or label != row.label:
                raise DatasetError(
                    f"sequence {name}: label {row.label!r} is not 0, 1, 2 or empty",
                    folder / "dataset.csv",
                )
        try:
            size = int(row.size)
        except (TypeError, ValueError):
            raise DatasetError(
                f"sequence {name}: size {row.size!r} is not an integer", folder / "dataset.csv"
            ) from None
        png = folder / "img" / f"{name}.png"
        if not png.is_file():
            raise DatasetError(f"sequence {name}: strip is missing", png)
        strip = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if strip is None:
            raise DatasetError(f"sequence {name}: strip is not a readable PNG", png)
        if strip.ndim == 3:
            strip = cv2.cvtColor(
                strip, cv2.COLOR_BGR2GRAY if strip.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
            )
        if strip.dtype != np.uint8:
            raise DatasetError(f"sequence {name}: strip is {strip.dtype}, expected 8-bit", png)
        try:
            frames = strip_to_frames(strip, size)
        except ValueError as exc:
            raise DatasetError(f"sequence {name}: {exc}", png) from None
        yield Sequence(name=name, frames=frames, label=label)


def read_dataset(folder: str | os.PathLike) -> list[Sequence]:
    """All sequences of a set (see :func:`iter_dataset`)."""
    return list(iter_dataset(folder))


def write_dataset(folder: str | os.PathLike, sequences: Iterable[Sequence]) -> int:
    """Write sequences as a set in the authors' format; returns how many were written.

    Strips are written as they come (bounded memory) and ``dataset.csv`` last, through a
    temporary name, so a folder with a ``dataset.csv`` is complete. Unlabelled sequences get an
    empty label.
    """
    folder = Path(folder)
    img = folder / "img"
    img.mkdir(parents=True, exist_ok=True)
    rows = []
    for seq in sequences:
        strip = frames_to_strip(np.asarray(seq.frames, dtype=np.uint8))
        try:
            # no fsync per strip (1,000 strips: 1.6 s with, 0.24 s without): a set is complete
            # when dataset.csv, written last and fsynced, lands
            write_png_atomic(img / f"{seq.name}.png", strip, fsync=False)
        except OutputError as exc:
            msg = f"cannot write strip of {seq.name} ({exc.reason})"
            raise DatasetError(msg, exc.path) from exc
        rows.append(
            {
                "sequence_name": seq.name,
                "label": "" if seq.label is None else int(seq.label),
                "size": int(seq.frames.shape[0]),
            }
        )
    table = pd.DataFrame(rows, columns=["sequence_name", "label", "size"])
    # to_csv's own defaults (utf-8, os.linesep), as when it wrote to a path itself
    write_table_atomic(folder / "dataset.csv", table, index=True, lineterminator=os.linesep)
    return len(rows)
