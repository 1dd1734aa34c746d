"""Tables and arrays that cross stage borders, declared once.

Coordinate convention (all tables, all stages): ``x`` is the column index, along the flow (cells
move towards increasing ``x``), ``y`` is the row index; both in pixels of the *original* video,
with the origin at the centre of pixel (0, 0). So a cell whose centre lies exactly on pixel
``frame[r, c]`` has ``x == c`` and ``y == r``. ``frame`` is the 0-based index of the frame in the
video.

Arrays
------
frame : (rows, cols) ndarray, uint8, uint16 or float32
    One grayscale frame as a reader returns it.
crops : (T, 31, 31) uint8 ndarray
    One track's cell crops, raw intensities (not background-subtracted), centred on ``(x, y)``.

Tables (pandas DataFrames; column order as listed)
--------------------------------------------------
DETECTIONS  one row per object found in a frame (detection stage output)
POSITIONS   one row per track and frame (tracking output; ``positions.csv``)
TRACKS      one row per track (tracking output; ``tracks.csv``)
TRUTH       one row per true cell and frame (synthetic generator; ``truth.csv``)
PREDICTIONS one row per sequence (classifier output; ``predictions.csv``)
DATASET     the authors' ``dataset.csv`` (unnamed index column, sequence_name, label, size)
REPORT      one row per acquisition (``report.csv``)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

CROP_SIZE = 31
"""Side of the square cell crop, pixels (the authors' front end and the models use 31)."""

MIN_TRACK_LENGTH = 6
"""Tracks shorter than this many frames are dropped (as the authors did)."""

# -- class labels ---------------------------------------------------------------------------
TANK_TREADING = 0
FLIPPING = 1
UNRELIABLE = 2
LABEL_NAMES: dict[int, str] = {
    TANK_TREADING: "tank-treading",
    FLIPPING: "flipping",
    UNRELIABLE: "unreliable",
}
"""Integer labels of the authors' format and their names in our outputs."""
LABEL_CODES: dict[str, int] = {v: k for k, v in LABEL_NAMES.items()}

# -- table schemas: column -> dtype ----------------------------------------------------------
DETECTIONS: dict[str, str] = {
    "frame": "int64",
    "x": "float64",
    "y": "float64",
    "area": "int64",  # pixels above threshold in the connected component
    "score": "float64",  # mean local variance in the component (detection strength)
}

POSITIONS: dict[str, str] = {
    "frame": "int64",
    "track_id": "int64",
    "x": "float64",
    "y": "float64",
}

TRACKS: dict[str, str] = {
    "track_id": "int64",
    "first_frame": "int64",
    "last_frame": "int64",
    "n_frames": "int64",
    "x_start": "float64",
    "x_end": "float64",
    "y_mean": "float64",
    "speed": "float64",  # mean speed along x, pixels per frame
    "interference": "bool",  # came closer to another cell than the interference distance
    "edge": "bool",  # entered or left through an image border (crop touched it)
    "border_cut": "float64",  # share of frames where the top or bottom border cuts the cell
    "size_ratio": "float64",  # median detected area / the video's typical one-cell area
}

TRUTH: dict[str, str] = {
    "track_id": "int64",
    "label": "int64",  # TANK_TREADING, FLIPPING or UNRELIABLE
    "frame": "int64",
    "x": "float64",
    "y": "float64",
}

PREDICTIONS: dict[str, str] = {
    "sequence_name": "object",
    "p_reliable": "float64",
    "p_tank_treading": "float64",
    "label": "object",  # one of LABEL_NAMES values
}

DATASET_COLUMNS = ["", "sequence_name", "label", "size"]
"""Header of the authors' ``dataset.csv`` (first column is an unnamed integer index)."""

REPORT: dict[str, str] = {
    "acquisition": "object",
    "source": "object",
    "status": "object",  # ok | failed | skipped
    "message": "object",
    "frames": "Int64",
    "fps": "float64",
    "duration_s": "float64",
    "tracks": "Int64",
    "reliable": "Int64",
    "tank_treading": "Int64",
    "flipping": "Int64",
    "tank_treading_fraction": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "rbcflow_version": "object",
    "stage1_model": "object",
    "stage2_model": "object",
}
REPORT_STATUSES = ("ok", "failed", "skipped")


class SchemaError(ValueError):
    """A table handed across a stage border does not match its declared schema (a bug)."""


def empty_table(schema: Mapping[str, str]) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``schema``."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.items()})


def validate(df: pd.DataFrame, schema: Mapping[str, str], name: str = "table") -> pd.DataFrame:
    """Check that ``df`` has the columns of ``schema`` and cast them to the declared dtypes.

    Extra columns are allowed and kept after the declared ones. Returns a new DataFrame with the
    declared columns first, in declared order.

    Raises
    ------
    SchemaError
        If a declared column is missing or cannot be cast.

    Examples
    --------
    >>> import pandas as pd
    >>> validate(pd.DataFrame({"frame": [0], "track_id": [1], "x": [2], "y": [3]}),
    ...          POSITIONS, "positions").dtypes["x"]
    dtype('float64')
    """
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    out = pd.DataFrame(index=df.index)
    for col, dtype in schema.items():
        try:
            out[col] = df[col].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{name}: column {col!r} is not {dtype}: {exc}") from exc
    for col in df.columns:
        if col not in schema:
            out[col] = df[col]
    return out


def check_crops(crops: np.ndarray, name: str = "crops") -> np.ndarray:
    """Check a crop stack is ``(T, CROP_SIZE, CROP_SIZE)``; returns it unchanged."""
    if crops.ndim != 3 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE):
        raise SchemaError(f"{name}: expected (T, {CROP_SIZE}, {CROP_SIZE}), got {crops.shape}")
    return crops
