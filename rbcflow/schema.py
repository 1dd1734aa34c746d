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
TRACK_TRUTH one row per true track (synthetic generator; ``NAME.tracks.csv``)
PREDICTIONS one row per sequence (classifier output; ``predictions.csv``)
TRACK_CLASSIFIED  per-track probabilities, label and rule (analyze -> ``tracks.csv``)
FEATURE_COLUMNS  per-track shape features (features -> ``tracks.csv``)
DATASET     the authors' ``dataset.csv`` (unnamed index column, sequence_name, label, size)
REPORT      one row per acquisition (the contract's columns of ``report.csv``)
REPORT_COLUMNS  ``report.csv``'s full layout: REPORT, then where and how the row was made
SAMPLE_METADATA  the sample columns ``report.csv`` ends with (patient, sample, draw date, ...)
SAMPLE_COLUMNS   one row per blood draw (``samples.csv``: counts pooled over its acquisitions)
COMPARISON_COLUMNS  one row per reanalysed acquisition, old against new (``comparison.csv``)
FRAME_STATS one row per frame (front-end side table: illumination and detections per frame)

Objects
-------
GalleryItem one track shown in the report's gallery (pipeline -> report)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is made: `rbcflow --version` stays light
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
    "detected": "bool",  # False: missed frame, position predicted (gap closing or joining)
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
    "classified_frames": "int64",  # frames whose crops the classifiers saw (no border frames)
    "border_cut": "float64",  # share of frames where the top or bottom border cuts the cell
    "size_ratio": "float64",  # median detected area / the video's typical one-cell area
    # Context measures (frontend.tracks.context_row, crop_context; NaN when unknown):
    "neighbour_frames": "float64",  # share of frames with another detection in the crop window
    "contrast_rel": "float64",  # median crop contrast / the acquisition's median over tracks
    "sharpness_rel": "float64",  # median crop sharpness / the acquisition's median over tracks
    "sharpness_trend": "float64",  # sharpness, last third - first third / acquisition's median
}

TRUTH: dict[str, str] = {
    "track_id": "int64",
    "label": "int64",  # TANK_TREADING, FLIPPING or UNRELIABLE
    "frame": "int64",
    "x": "float64",
    "y": "float64",
}

TRACK_TRUTH: dict[str, str] = {
    "track_id": "int64",
    "label": "int64",  # TANK_TREADING, FLIPPING or UNRELIABLE
    "kind": "object",  # tank-treading | flipping | defocus | overlap | focus_change | partial
    "dynamics": "object",  # tank-treading | flipping: what the cell does underneath
    "first_frame": "int64",
    "last_frame": "int64",
    "n_frames": "int64",
    "x_start": "float64",
    "x_end": "float64",
    "y_mean": "float64",
    "speed": "float64",  # pixels per frame
    "diameter": "float64",  # face-on diameter, pixels
    "period": "float64",  # flip or membrane period, frames
    "aspect_mean": "float64",  # projected minor/major axis ratio over the track
    "aspect_std": "float64",
}

PREDICTIONS: dict[str, str] = {
    "sequence_name": "object",
    "p_reliable": "float64",
    "p_tank_treading": "float64",
    "label": "object",  # one of LABEL_NAMES values
}

TRACK_CLASSIFIED: dict[str, str] = {
    "p_reliable": "float64",
    "p_tank_treading": "float64",
    "label": "object",  # tank-treading, flipping or unreliable (classify.labels.label_tracks)
    "rule": "object",  # why the front end's geometry made the track unreliable, or empty
}
"""Columns ``tracks.csv`` adds after :data:`TRACKS`, before the shape features."""

FEATURE_COLUMNS: dict[str, str] = {
    "shape_frames": "float64",  # share of the track's frames where a cell was segmented, [0, 1]
    "area_mean": "float64",  # mean segmented cell area, pixels (of the crop)
    "ar_mean": "float64",  # mean projected aspect ratio (major / minor axis, >= 1)
    "ar_std": "float64",  # temporal standard deviation of the aspect ratio
    "orientation_mean": "float64",  # axial mean orientation of the major axis, degrees in (-90, 90]
    "orientation_std": "float64",  # axial circular standard deviation of the orientation, degrees
    "ar_osc_power": "float64",  # share of the aspect ratio's variance in its dominant frequency
    "ar_osc_period": "float64",  # period of that dominant oscillation, frames
}
"""Shape-feature columns that :func:`rbcflow.classify.features.track_features` adds to
``tracks.csv`` (dtype per column; NaN when a track has too few segmented frames for the
measure)."""

TRACKS_CSV = (*TRACKS, *TRACK_CLASSIFIED, *FEATURE_COLUMNS)
"""The first columns of ``analyze``'s ``tracks.csv``, in order (further front-end columns
follow)."""

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
    "verdict": "object",  # pass | check | fail (rbcflow.report.verdict)
    "verdict_reason": "object",  # why, one short sentence per reason, joined with "; "
    "fraction_counted": "float64",  # the plain count tank_treading / reliable, uncorrected
    "estimated_leaked": "float64",  # unreliable tracks stage 1 is estimated to have let through
    "fraction_method": "object",  # adjusted | naive (rbcflow.classify.calibration)
    "rbcflow_version": "object",
    "stage1_model": "object",
    "stage2_model": "object",
}
REPORT_STATUSES = ("ok", "failed", "skipped")
SAMPLE_METADATA: dict[str, str] = {
    "patient": "object",  # whose blood (rbcflow.samples.sheet: --samples or --name-pattern)
    "sample": "object",  # the blood draw the acquisition was recorded from
    "drawn_at": "object",  # ISO 8601 date (or date-time) of the draw
    "shear_rate": "float64",  # s^-1
    "medium": "object",
    "temperature_c": "float64",
    "operator": "object",
    "notes": "object",
    "baseline": "object",  # "yes" / "no" / empty: the draw counts towards the patient's baseline
}
SAMPLE_COLUMNS: dict[str, str] = {  # samples.csv (rbcflow.samples.pool): one row per draw
    "patient": "object",
    "sample": "object",
    "drawn_at": "object",
    "acquisitions": "Int64",  # acquisitions of the sample in the report
    "pooled": "Int64",  # of which passed and were pooled
    "reliable": "Int64",
    "tank_treading": "Int64",
    "flipping": "Int64",
    "tank_treading_fraction": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "verdict": "object",
    "verdict_reason": "object",
    "fraction_method": "object",
    "shear_rate": "float64",
    "baseline": "object",
    "acquisition_names": "object",  # the sample's acquisitions, "; "-joined
    "stage1_model": "object",
    "stage2_model": "object",
    "params_id": "object",
    "rbcflow_version": "object",
}
REVIEWED: dict[str, str] = {
    "reviewed_tracks": "Int64",  # tracks a technician reviewed (rbcflow review)
    "tank_treading_fraction_reviewed": "float64",  # calibrated estimate (review.calibrated)
    "ci_low_reviewed": "float64",  # its Monte-Carlo interval
    "ci_high_reviewed": "float64",
}
"""Columns ``rbcflow review`` fills in ``report.csv`` (empty before any review)."""
REPORT_COLUMNS: dict[str, str] = {
    **REPORT,
    "output": "object",  # the acquisition's folder, relative to the output folder
    "params_id": "object",  # short hash of all parameters (config.params_id)
    "input_hash": "object",  # short input fingerprint (provenance.input_fingerprint)
    "analysed_at": "object",  # ISO 8601 time the analysis finished
    "model_origin": "object",  # shipped | user-supplied (stage N): model_folder.model_origin
    **REVIEWED,
    **SAMPLE_METADATA,
}
"""``report.csv``'s columns, declared once: the contract's :data:`REPORT` ones, then the
acquisition's output folder, parameters id, input fingerprint and analysis time, then the
sample's metadata (:data:`SAMPLE_METADATA`, empty without a sheet)."""

COMPARED = (
    "tank_treading_fraction",
    "ci_low",
    "ci_high",
    "verdict",
    "reliable",
    "stage1_model",
    "stage2_model",
    "params_id",
    "output",
    "analysed_at",
)
"""The report columns a reanalysis puts side by side (``old_X``, ``new_X``)."""
COMPARISON_COLUMNS: dict[str, str] = {  # comparison.csv (rbcflow.batch.reanalyze)
    "patient": "object",
    "sample": "object",
    "drawn_at": "object",
    "acquisition": "object",
    "source": "object",
    "status": "object",  # the reanalysis: ok | skipped | failed
    "message": "object",  # why it failed (one line), else the new row's message
    "difference": "float64",  # new - old tank_treading_fraction
    **{f"{age}_{c}": REPORT_COLUMNS[c] for c in COMPARED for age in ("old", "new")},
}
"""``comparison.csv``'s columns: the acquisition, then the new fraction minus the old, then each
:data:`COMPARED` column of the old row (the registry's analysis, ``old_output`` an absolute
path) beside the new one (the reanalysis, ``new_output`` relative to its folder)."""

FRAME_STATS: dict[str, str] = {
    "frame": "int64",
    "mean_intensity": "float64",
    "n_detections": "int64",
}
"""Per-frame side table of the front end (``FrontEndResult.frame_stats``), read by the report's
illumination-drift and detection-rate indicators."""


@dataclass
class GalleryItem:
    """One track shown in the report's gallery.

    strip : (31, 31 * K) uint8 ndarray, K frames of the track side by side.
    """

    track_id: int
    label: str
    p_reliable: float
    p_tank_treading: float
    strip: np.ndarray
    n_frames: int = 0
    features: dict[str, float] = field(default_factory=dict)


class SchemaError(ValueError):
    """A table handed across a stage border does not match its declared schema (a bug)."""


def empty_table(schema: Mapping[str, str]) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``schema``."""
    import pandas as pd

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
    >>> df = pd.DataFrame({"frame": [0], "track_id": [1], "x": [2], "y": [3], "detected": [1]})
    >>> validate(df, POSITIONS, "positions").dtypes["x"]
    dtype('float64')
    """
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    import pandas as pd

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
