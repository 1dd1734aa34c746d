"""``RESULTS_DIR/report.xlsx``: the results folder as an Excel workbook (openpyxl).

Sheets ``samples``, ``acquisitions``, ``tracks`` (every acquisition's tracks, with the
acquisition's name first) and ``parameters`` (each acquisition's ``run.json`` parameters,
flattened). Cells are typed: numbers as numbers, ``drawn_at`` and ``analysed_at`` as dates,
every id (hashes, checksums, names, samples) as text, so that Excel never reads ``1e5`` or
``0012`` as a number; a text cell is always stored as text, never as a formula. Header rows are
frozen, columns sized to their contents (up to 60 characters).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow.io.outputs import atomic_output

DATES = ("drawn_at", "analysed_at")
FRACTIONS = ("tank_treading_fraction", "ci_low", "ci_high", "fraction_counted")


def _date(v: Any) -> Any:
    if not isinstance(v, str) or not v:
        return v
    try:
        d = dt.datetime.fromisoformat(v)
    except ValueError:
        return v
    if d.tzinfo is not None:  # Excel has no time zones: local time of the analysis
        d = d.replace(tzinfo=None)
    if len(v) == 10:
        return d.date()
    return d


def _column_values(col: str, series: pd.Series) -> list:
    """A column's cell values, typed once per column: dates, bools, ints, floats, else text."""
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if col in DATES:
        conv = lambda v: _date(str(v))  # noqa: E731
    elif pd.api.types.is_bool_dtype(dtype):
        conv = bool
    elif pd.api.types.is_integer_dtype(dtype):
        conv = int
    elif pd.api.types.is_float_dtype(dtype):
        conv = float
    else:
        conv = _text
    return [None if m else conv(v) for v, m in zip(series.tolist(), missing, strict=True)]


def _text(v: Any) -> str:
    """Text a worksheet can hold: control characters (a file name may have them) shown as
    ``\\xNN`` instead of making openpyxl refuse the whole workbook."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(v))


def _width(col: str, series: pd.Series) -> int:
    """A column's width in characters: its header or longest text, numbers and dates ~10."""
    text = series.dropna().astype(str) if series.dtype == object else None
    longest = int(text.str.len().max()) if text is not None and len(text) else 0
    if col in DATES:
        longest = max(longest, 16)
    elif series.dtype != object:
        longest = 10
    return min(60, max(len(str(col)), longest) + 2)


def _sheet(wb, name: str, df: pd.DataFrame) -> None:
    """One worksheet, streamed (openpyxl's write-only mode: time and memory linear in rows)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(name)
    ws.freeze_panes = "A2"
    columns = list(df.columns)
    for j, c in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = _width(str(c), df[c])
    ws.append([str(c) for c in columns])
    fractions = [c in FRACTIONS for c in columns]

    def styled(value, fraction: bool):
        if isinstance(value, str) and value[:1] == "=":
            cell = WriteOnlyCell(ws, value)
            cell.data_type = "s"  # text, never a formula
            return cell
        if fraction and isinstance(value, float):
            cell = WriteOnlyCell(ws, value)
            cell.number_format = "0.000"
            return cell
        return value

    cols = [_column_values(str(c), df[c]) for c in columns]
    for row in zip(*cols, strict=True):
        ws.append([styled(v, f) for v, f in zip(row, fractions, strict=True)])


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = (
                v if isinstance(v, int | float | str) or v is None else (json.dumps(v))
            )
    return out


def gather_tracks(out_dir: Path, report: pd.DataFrame) -> pd.DataFrame:
    """Every acquisition's ``tracks.csv`` with its name first (acquisitions that failed have
    none)."""
    frames = []
    for r in report.to_dict("records"):
        path = out_dir / str(r.get("output") or "") / "tracks.csv"
        if r.get("status") == "failed" or not r.get("output") or not path.is_file():
            continue
        df = pd.read_csv(
            path,
            encoding="utf-8-sig",
            keep_default_na=False,
            na_values=[""],
            dtype={"label": str, "rule": str},
        )
        df.insert(0, "acquisition", str(r.get("acquisition")))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"acquisition": []})


def gather_parameters(out_dir: Path, report: pd.DataFrame) -> pd.DataFrame:
    """One row per acquisition: its ``run.json`` parameters flattened (``frontend.crops.scale``)."""
    rows = []
    for r in report.to_dict("records"):
        path = out_dir / str(r.get("output") or "") / "run.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "acquisition": str(r.get("acquisition")),
                "params_id": record.get("params_id"),
                **_flatten(record.get("parameters") or {}),
            }
        )
    return pd.DataFrame(rows) if rows else pd.DataFrame({"acquisition": []})


def write_workbook(
    path: str | os.PathLike,
    samples: pd.DataFrame | None,
    acquisitions: pd.DataFrame,
    tracks: pd.DataFrame,
    parameters: pd.DataFrame,
) -> Path:
    """Write the workbook atomically (through :func:`rbcflow.io.outputs.atomic_output`)."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    for name, df in (
        ("samples", samples if samples is not None else pd.DataFrame({"sample": []})),
        ("acquisitions", acquisitions),
        ("tracks", tracks),
        ("parameters", parameters),
    ):
        _sheet(wb, name, df)
    with atomic_output(path, "wb") as fh:
        wb.save(fh)
    return Path(path)
