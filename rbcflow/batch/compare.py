"""A reanalysis's comparison: each acquisition's old figures beside its new ones.

:func:`comparison_table` builds the rows (:data:`~rbcflow.schema.COMPARISON_COLUMNS`) from the
selection of :func:`rbcflow.batch.reanalyze.select` (each with its old ``report.csv`` row) and
the reanalysis folder's ``report.csv``: the old and new values are those rows' cells as they
are (full precision; ``difference`` is new minus old fraction). :func:`write_comparison` merges
them into the folder's ``comparison.csv`` (rows of earlier selections into the same folder are
kept, one row per source) and writes ``comparison.html``, rounded for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow.io.outputs import CSV_ENCODING, restore_formula, write_csv_atomic, write_text_atomic
from rbcflow.report.html import esc
from rbcflow.run_settings import SamplesConfig
from rbcflow.samples.html import cell, fmt, interval, number, page, table
from rbcflow.samples.pool import typed
from rbcflow.schema import COMPARED, COMPARISON_COLUMNS

COMPARISON_NAME = "comparison.csv"
COMPARISON_PAGE = "comparison.html"


def _gone_message(source: str) -> str:
    return (
        f"the source has moved or vanished: {source} no longer exists "
        "(the registry's analysis read it there)"
    )


def _row(sel: Any, new: dict[str, Any]) -> dict[str, Any]:
    old = sel.old
    source = sel.source
    row: dict[str, Any] = {
        "patient": sel.entry.get("patient"),
        "sample": sel.entry.get("sample"),
        "drawn_at": sel.entry.get("drawn_at"),
        "acquisition": old.get("acquisition"),
        "source": source,
    }
    for c in COMPARED:
        row[f"old_{c}"], row[f"new_{c}"] = old.get(c), new.get(c)
    if old.get("output") and sel.results is not None:
        row["old_output"] = str(sel.results / old["output"])
    if sel.problem is not None:
        row.update(status="failed", message=sel.problem)
    elif not new:
        row.update(status="failed", message="not in the reanalysis report (interrupted?)")
    else:
        row.update(status=new.get("status"), message=new.get("message"))
        if new.get("status") == "failed" and not Path(source).exists():
            row["message"] = _gone_message(source)
        elif getattr(sel, "moved_from", None):
            said = f"; {row['message']}" if row["message"] else ""
            row["message"] = f"found moved: the old analysis read {sel.moved_from}{said}"
    a, b = number(row["old_tank_treading_fraction"]), number(row["new_tank_treading_fraction"])
    row["difference"] = None if a is None or b is None else b - a
    return row


def comparison_table(selected: Sequence[Any], report: pd.DataFrame | None) -> pd.DataFrame:
    """One row per selected acquisition: its old report row beside its new one (or why it has
    none), in the selection's order."""
    new = {} if report is None else {r["source"]: r for r in report.to_dict("records")}
    rows = [_row(s, new.get(s.source, {}) if s.source else {}) for s in selected]
    return typed(rows, COMPARISON_COLUMNS)


def read_comparison(path: str | Path) -> pd.DataFrame | None:
    """A ``comparison.csv`` back as typed rows, or None when absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    text = {c: str for c, t in COMPARISON_COLUMNS.items() if t == "object"}
    try:
        df = pd.read_csv(path, encoding=CSV_ENCODING, dtype=text, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    for c in text:
        if c in df.columns:
            df[c] = df[c].map(restore_formula).replace("", None)
    return typed(df.to_dict("records"), COMPARISON_COLUMNS)


def _merged(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    if previous is None or previous.empty:
        return current
    key = previous["source"].fillna("") + "\0" + previous["sample"].fillna("")
    mine = set(current["source"].fillna("") + "\0" + current["sample"].fillna(""))
    kept = previous[~key.isin(mine)]
    both = pd.concat([kept, current], ignore_index=True) if len(kept) else current
    both = typed(both.to_dict("records"), COMPARISON_COLUMNS)
    return both.sort_values(
        ["patient", "drawn_at", "sample"], na_position="last", kind="stable"
    ).reset_index(drop=True)


def write_comparison(
    folder: str | Path,
    comparison: pd.DataFrame,
    samples: Sequence[tuple[dict, dict]] = (),
    cfg: SamplesConfig | None = None,
) -> dict[str, Path]:
    """Merge ``comparison`` into ``folder/comparison.csv`` and write ``comparison.html`` (with
    ``samples``' (old registry row, new row) pairs); returns the paths by name."""
    folder = Path(folder)
    merged = _merged(read_comparison(folder / COMPARISON_NAME), comparison)
    csv = write_csv_atomic(folder / COMPARISON_NAME, merged)
    html = write_text_atomic(folder / COMPARISON_PAGE, render(folder.name, merged, samples, cfg))
    return {COMPARISON_NAME: csv, COMPARISON_PAGE: html}


def _figure(r: dict[str, Any], age: str, d: int) -> list[str]:
    f = r.get(f"{age}_tank_treading_fraction")
    lo, hi = r.get(f"{age}_ci_low"), r.get(f"{age}_ci_high")
    v = r.get(f"{age}_verdict") or "-"
    return [
        cell(fmt(f, d), number(f), "num"),
        cell(esc(interval(lo, hi, d)), cls="num"),
        cell(esc(v), cls=f"v-{v}" if v in ("pass", "check", "fail") else ""),
    ]


def _diff(a: Any, b: Any, d: int) -> str:
    a, b = number(a), number(b)
    if a is None or b is None:
        return cell("-", cls="num")
    return cell(f"{b - a:+.{d}f}", b - a, "num")


def _models(r: dict[str, Any], age: str) -> str:
    s1, s2 = r.get(f"{age}_stage1_model") or "?", r.get(f"{age}_stage2_model") or "?"
    return f"{s1} / {s2}"


def render(
    name: str,
    comparison: pd.DataFrame,
    samples: Sequence[tuple[dict, dict]] = (),
    cfg: SamplesConfig | None = None,
) -> str:
    """The comparison page: samples (registry rows) and acquisitions, old beside new."""
    d = (cfg or SamplesConfig()).fraction_decimals
    fig = ["fraction", "95% interval", "verdict"]
    head = [f"old {h}" for h in fig] + [f"new {h}" for h in fig] + ["new - old"]
    body = [
        f"<h1>Reanalysis {esc(name)}</h1>",
        '<p class="sub">Each figure of the registry&rsquo;s analysis (old) beside the same '
        "recordings analysed again (new); the old results are left as they were. Click a "
        "column header to sort.</p>",
    ]
    if samples:
        rows = [
            [
                cell(esc(new.get("patient"))),
                cell(esc(new.get("sample")), cls="id"),
                cell(esc(new.get("drawn_at")), cls="id"),
            ]
            + _figure({f"old_{k}": v for k, v in old.items()}, "old", d)
            + _figure({f"new_{k}": v for k, v in new.items()}, "new", d)
            + [_diff(old.get("tank_treading_fraction"), new.get("tank_treading_fraction"), d)]
            for old, new in samples
        ]
        body += [
            "<h2>Samples</h2>",
            table(["patient", "sample", "drawn at", *head], rows, "samples"),
        ]
    rows = []
    for r in comparison.to_dict("records"):
        rows.append(
            [cell(esc(r.get(c) or ""), cls="id") for c in ("patient", "sample", "drawn_at")]
            + [cell(esc(r.get("acquisition") or ""))]
            + [cell(esc(r.get("status")))]
            + _figure(r, "old", d)
            + _figure(r, "new", d)
            + [
                _diff(r.get("old_tank_treading_fraction"), r.get("new_tank_treading_fraction"), d),
                cell(esc(_models(r, "old")), cls="id"),
                cell(esc(_models(r, "new")), cls="id"),
                cell(esc(r.get("message") or ""), cls="why"),
            ]
        )
    cols = ["patient", "sample", "drawn at", "acquisition", "status", *head]
    cols += ["old models", "new models", "message"]
    body += ["<h2>Acquisitions</h2>", table(cols, rows, "acquisitions")]
    return page(f"rbcflow reanalysis {name}", body)


__all__ = [
    "COMPARISON_NAME",
    "COMPARISON_PAGE",
    "comparison_table",
    "read_comparison",
    "render",
    "write_comparison",
]
