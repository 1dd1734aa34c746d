"""``report.csv``: one row per acquisition, columns :data:`rbcflow.schema.REPORT_COLUMNS`.

Rows are built, read back (a previous batch's file), merged one row per source and written
atomically through :mod:`rbcflow.io.outputs`, whose CSV writer also makes formula-like text
cells inert; :func:`read_report` restores them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow.io.outputs import CSV_ENCODING, restore_formula, write_csv_atomic
from rbcflow.schema import REPORT_COLUMNS


def report_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Report rows -> a DataFrame with the :data:`~rbcflow.schema.REPORT_COLUMNS` columns and
    dtypes.

    Missing keys become missing values; unknown keys are dropped (the file is a contract). A
    ``failed`` row without a verdict gets ``fail``, its message as the reason (the batch makes
    failed rows without :func:`rbcflow.report.verdict.verdict`); a ``skipped`` row carries the
    verdict of the run it skips.

    Examples
    --------
    >>> df = report_table([{"source": "/d/a.avi", "status": "ok", "frames": 12, "nope": 1}])
    >>> list(df.columns) == list(REPORT_COLUMNS), str(df.dtypes["frames"])
    (True, 'Int64')
    >>> bool(df["fps"].isna()[0])
    True
    """
    data = {c: [r.get(c) for r in rows] for c in REPORT_COLUMNS}
    for i, r in enumerate(rows):
        if r.get("status") == "failed" and not _present(r.get("verdict")):
            data["verdict"][i] = "fail"
            data["verdict_reason"][i] = r.get("message") or "the analysis failed"
    df = pd.DataFrame(data)
    for col, dtype in REPORT_COLUMNS.items():
        if dtype == "Int64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        elif dtype == "float64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:
            df[col] = df[col].astype("object").where(df[col].notna(), None)
    return df


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def read_report(path: str | os.PathLike) -> pd.DataFrame | None:
    """A previous ``report.csv`` as rows with :data:`~rbcflow.schema.REPORT_COLUMNS`, or None
    when absent or unreadable (it is then rebuilt from the acquisitions' ``run.json``)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        text_cols = {c: str for c, t in REPORT_COLUMNS.items() if t == "object"}
        df = pd.read_csv(
            path, encoding=CSV_ENCODING, dtype=text_cols, keep_default_na=False, na_values=[""]
        )
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if "source" not in df.columns or "status" not in df.columns:
        return None
    for c in text_cols:
        if c in df.columns:
            df[c] = df[c].map(restore_formula)
    return report_table(df.to_dict("records"))


def merge_report(previous: pd.DataFrame | None, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Previous report rows updated with new ones, one row per ``source``.

    A new row replaces the previous row of the same source in place; rows of sources not in
    ``rows`` are kept (earlier batches into the same folder); new sources are appended in order.
    """
    new = report_table(rows)
    if previous is None or previous.empty:
        return new.drop_duplicates("source", keep="last").reset_index(drop=True)
    prev = report_table(previous.to_dict("records"))
    latest = {s: i for i, s in enumerate(new["source"])}
    out_rows = []
    seen = set()
    for rec in prev.to_dict("records"):
        src = rec["source"]
        if src in seen:
            continue
        seen.add(src)
        out_rows.append(new.iloc[latest[src]].to_dict() if src in latest else rec)
    for src, i in latest.items():
        if src not in seen:
            out_rows.append(new.iloc[i].to_dict())
    return report_table(out_rows)


def write_report_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write ``report.csv`` atomically (columns :data:`~rbcflow.schema.REPORT_COLUMNS`, no
    comment lines)."""
    return write_csv_atomic(path, report_table(df.to_dict("records")))
