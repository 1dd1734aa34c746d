"""Which patient and blood draw each acquisition comes from: a metadata sheet or the file names.

A sheet (CSV or XLSX, first worksheet) has one row per acquisition or group of acquisitions:

``acquisition``  a file or folder name, or a glob, relative to a PATH given to ``analyze``
                 (``run01.avi``, ``run01``, ``draw1/`` for every acquisition under it,
                 ``BG1017_*``);
``patient``, ``sample`` (the blood draw), ``drawn_at`` (ISO 8601 date or date-time): required;
``shear_rate``, ``medium``, ``temperature_c``, ``operator``, ``notes``, ``baseline``: optional.

A name pattern (``--name-pattern``) is a regular expression with named groups (CellProfiler's
"extract metadata from file names") searched in each acquisition's path: ``patient``, and
``sample``, ``drawn_at`` or ``year``/``month``/``day``, and any optional column above. Without a
``sample`` group the draw is ``PATIENT-DATE`` (and ``-RATEs`` with a ``shear_rate`` group).

Every problem is one line naming the sheet's row (its spreadsheet row number, the header being
row 1) or the acquisition; :class:`SheetError` carries them all.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rbcflow.errors import RbcflowError
from rbcflow.io.discover import acquisition_name, find_acquisitions
from rbcflow.schema import SAMPLE_METADATA

REQUIRED = ("acquisition", "patient", "sample", "drawn_at")
"""Columns a sheet must have."""
OPTIONAL = tuple(c for c in SAMPLE_METADATA if c not in REQUIRED)
"""Columns a sheet may have (a missing one is left empty)."""
NUMBERS = ("shear_rate", "temperature_c")
_YES, _NO = {"yes", "y", "true", "1", "x"}, {"no", "n", "false", "0"}


class SheetError(RbcflowError):
    """A metadata sheet (or name pattern) does not describe the acquisitions.

    ``lines`` holds every problem, one line each; the message is the first (and how many more).
    """

    def __init__(self, lines: Sequence[str], path: str | os.PathLike | None = None):
        self.lines = [f"{path}: {x}" if path is not None else x for x in lines]
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        super().__init__(f"{lines[0]}{more}", path)


def parse_date(text: Any) -> str:
    """An ISO 8601 date or date-time (or a spreadsheet's date cell) as ISO text.

    Examples
    --------
    >>> parse_date("2024-05-12"), parse_date("2024-05-12 09:30"), parse_date("20240512")
    ('2024-05-12', '2024-05-12T09:30', '2024-05-12')
    >>> parse_date("12/05/2024")
    Traceback (most recent call last):
    ...
    ValueError: not an ISO 8601 date
    """
    if isinstance(text, dt.datetime):
        value = text
    elif isinstance(text, dt.date):
        return text.isoformat()
    else:
        s = str(text).strip()
        try:
            if len(s) in (8, 10) and "T" not in s and " " not in s:
                return dt.date.fromisoformat(s).isoformat()
            value = dt.datetime.fromisoformat(s)
        except ValueError:
            raise ValueError("not an ISO 8601 date") from None
    if (value.hour, value.minute, value.second) == (0, 0, 0) and value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat(timespec="seconds" if value.second else "minutes")


def _text(value: Any) -> str:
    """A cell as text: integral numbers without ``.0`` (ids typed into Excel), None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return parse_date(value)
    return str(value).strip()


def read_sheet(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The sheet's rows as dicts (each with ``row``, its spreadsheet row number), checked.

    Raises
    ------
    SheetError
        Unreadable file, a required column missing, or rows with a missing value, a date that
        is not ISO 8601, a number that is not one, a ``baseline`` that is neither yes nor no.
    """
    rows, problems = sheet_rows(path)
    if problems:
        raise SheetError(problems, path)
    return rows


def sheet_rows(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """The sheet's rows and the problems of their cells (see :func:`read_sheet`); raises
    :class:`SheetError` only when there are no rows to read."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            header, body = _read_xlsx(path)
        else:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                table = [r for r in csv.reader(fh)]
            header, body = (table[0] if table else []), table[1:]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError) as exc:
        raise SheetError([f"cannot read the sheet ({type(exc).__name__})"], path) from exc
    except Exception as exc:  # openpyxl's own errors for a damaged workbook
        raise SheetError([f"cannot read the sheet ({type(exc).__name__})"], path) from exc
    names = [_text(h).lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SheetError([f"no column {', '.join(missing)} (has: {', '.join(names)})"], path)
    rows, problems = [], []
    for n, values in enumerate(body, start=2):
        cells = dict(zip(names, values, strict=False))
        if all(_text(v) == "" for v in cells.values()):
            continue  # blank line
        rec: dict[str, Any] = {"row": n}
        for col in REQUIRED:
            rec[col] = _text(cells.get(col))
            if not rec[col]:
                problems.append(f"row {n}: no {col}")
        if rec["drawn_at"]:
            try:
                rec["drawn_at"] = parse_date(cells["drawn_at"])
            except ValueError:
                problems.append(
                    f"row {n}: drawn_at {rec['drawn_at']!r} is not an ISO 8601 date "
                    "(YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
                )
        for col in OPTIONAL:
            rec[col], problem = _optional(col, cells.get(col))
            if problem:
                problems.append(f"row {n}: {problem}")
        rows.append(rec)
    if not rows and not problems:
        raise SheetError(["the sheet has no rows"], path)
    return rows, problems


def _read_xlsx(path: Path) -> tuple[list, list[list]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        table = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    return (table[0] if table else []), table[1:]


def _optional(col: str, value: Any) -> tuple[Any, str]:
    """(value, problem) of an optional cell; None when empty."""
    text = _text(value)
    if text == "":
        return None, ""
    if col in NUMBERS:
        try:
            return float(value if isinstance(value, int | float) else text), ""
        except ValueError:
            return None, f"{col} {text!r} is not a number"
    if col == "baseline":
        low = text.lower()
        if low in _YES or low in _NO:
            return ("yes" if low in _YES else "no"), ""
        return None, f"baseline {text!r} is neither yes nor no"
    return text, ""


def _names(source: Path, given: Sequence[Path]) -> list[str]:
    """What a sheet may call ``source``: its path relative to a given PATH, with and without
    extension, and its own name."""
    out = [source.name, acquisition_name(source)]
    for g in given:
        try:
            rel = source.absolute().relative_to(g.absolute())
        except ValueError:
            continue
        if str(rel) != ".":
            out.append(rel.as_posix())
            out.append(rel.with_suffix("").as_posix() if rel.suffix else rel.as_posix())
    return list(dict.fromkeys(out))


def _matches(value: str, names: Sequence[str]) -> bool:
    v = value.strip().replace("\\", "/")
    folder = v.rstrip("/")
    for name in names:
        if name == v or name == folder or name.startswith(folder + "/"):
            return True
        if any(ch in v for ch in "*?[") and fnmatch.fnmatchcase(name, v):
            return True
    return False


def match_sheet(
    rows: Sequence[Mapping[str, Any]],
    paths: Iterable[str | os.PathLike],
    sheet: Path | None,
    problems: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """The metadata of every acquisition in ``paths``, keyed by its absolute path (``source``).

    ``problems``: those already found in the sheet's cells, reported with the others.

    Raises
    ------
    SheetError
        A row that names no acquisition, an acquisition named by two rows, an acquisition in
        no row, or a sample whose rows disagree on patient, date or shear rate.
    """
    given = [Path(p) for p in paths]
    sources = find_acquisitions(given)
    named = {str(s.absolute()): _names(s, given) for s in sources}
    owner: dict[str, Mapping[str, Any]] = {}
    problems = list(problems)
    for rec in rows:
        hits = [s for s, names in named.items() if _matches(rec["acquisition"], names)]
        if not hits:
            problems.append(
                f"row {rec['row']}: acquisition {rec['acquisition']!r} is none of the "
                f"acquisitions found in {', '.join(str(g) for g in given)}"
            )
        for s in hits:
            if s in owner:
                problems.append(f"rows {owner[s]['row']} and {rec['row']} both name {named[s][-1]}")
            else:
                owner[s] = rec
    for s, names in named.items():
        if s not in owner:
            problems.append(f"acquisition {names[-1]} is in no row of the sheet")
    meta = {s: {c: rec.get(c) for c in SAMPLE_METADATA} for s, rec in owner.items()}
    problems += consistency(meta, {s: f"row {rec['row']}" for s, rec in owner.items()})
    if problems:
        raise SheetError(list(dict.fromkeys(problems)), sheet)
    return meta


def consistency(meta: Mapping[str, Mapping[str, Any]], where: Mapping[str, str]) -> list[str]:
    """Problems of samples whose acquisitions disagree on patient, draw date or shear rate."""
    groups: dict[str, list[str]] = {}
    for s, m in meta.items():
        groups.setdefault(str(m.get("sample")), []).append(s)
    problems = []
    for sample, members in groups.items():
        for col in ("patient", "drawn_at", "shear_rate"):
            seen = {str(meta[s].get(col)): s for s in members}
            if len(seen) > 1:
                a, b = list(seen.values())[:2]
                problems.append(
                    f"sample {sample!r}: {where[a]} and {where[b]} give different {col} "
                    f"({meta[a].get(col)} and {meta[b].get(col)})"
                )
    return problems


def from_name_pattern(
    pattern: str, paths: Iterable[str | os.PathLike]
) -> dict[str, dict[str, Any]]:
    """The metadata of every acquisition in ``paths`` from its path and a regular expression.

    Examples
    --------
    The authors' naming (patient BG, drawn 17 October, 10 s^-1, acquisition 01), the year from
    the folder::

        (?P<year>\\d{4})/(?P<patient>[A-Z]+)(?P<month>\\d\\d)(?P<day>\\d\\d)_(?P<shear_rate>\\d+)s

    Raises
    ------
    SheetError
        A bad expression, one without a ``patient`` group, or an acquisition it does not match
        or that gives no valid date.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise SheetError([f"--name-pattern is not a regular expression: {exc}"]) from exc
    groups = set(rx.groupindex)
    if "patient" not in groups:
        raise SheetError(["--name-pattern has no (?P<patient>...) group"])
    meta, problems, where = {}, [], {}
    for source in find_acquisitions(paths):
        key, shown = str(source.absolute()), source.as_posix()
        m = rx.search(shown)
        if m is None:
            problems.append(f"{shown}: does not match --name-pattern")
            continue
        got = {k: v for k, v in m.groupdict().items() if v is not None}
        rec, problem = _from_groups(got)
        if problem:
            problems.append(f"{shown}: {problem}")
            continue
        meta[key], where[key] = rec, shown
    problems += consistency(meta, where)
    if problems:
        raise SheetError(problems)
    return meta


def _from_groups(got: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    rec: dict[str, Any] = {c: None for c in SAMPLE_METADATA}
    rec["patient"] = got.get("patient")
    try:
        if "drawn_at" in got:
            rec["drawn_at"] = parse_date(got["drawn_at"])
        elif {"month", "day"} <= set(got):
            if "year" not in got:
                return rec, "the name pattern gives a month and day but no (?P<year>...)"
            year = int(got["year"]) + (2000 if len(got["year"]) == 2 else 0)
            rec["drawn_at"] = dt.date(year, int(got["month"]), int(got["day"])).isoformat()
    except ValueError:
        return rec, "the name gives no valid date"
    if rec["drawn_at"] is None:
        return rec, "the name pattern gives no date: add (?P<drawn_at>...) or year, month, day"
    for col in OPTIONAL:
        if col in got:
            rec[col], problem = _optional(col, got[col])
            if problem:
                return rec, problem
    if "sample" in got:
        rec["sample"] = got["sample"]
    else:
        rate = rec["shear_rate"]
        parts = [rec["patient"], rec["drawn_at"], f"{rate:g}s" if rate is not None else None]
        rec["sample"] = "-".join(p for p in parts if p)
    return rec, ""


def load_metadata(
    paths: Iterable[str | os.PathLike],
    sheet: str | os.PathLike | None = None,
    name_pattern: str | None = None,
) -> dict[str, dict[str, Any]] | None:
    """The metadata of every acquisition from a sheet or a name pattern (None without either).

    Raises :class:`SheetError` as :func:`read_sheet`, :func:`match_sheet` and
    :func:`from_name_pattern` do, or when both are given.
    """
    paths = list(paths)
    if sheet is not None and name_pattern is not None:
        raise SheetError(["give --samples or --name-pattern, not both"])
    if sheet is not None:
        rows, problems = sheet_rows(sheet)
        return match_sheet(rows, paths, Path(sheet), problems)
    if name_pattern is not None:
        return from_name_pattern(name_pattern, paths)
    return None
