"""``RESULTS_DIR/index.html``: every sample and acquisition of a results folder on one page.

Two sortable tables (click a header): the samples (one fraction per blood draw, when the
acquisitions have metadata) and the acquisitions, each linking to its ``report.html``. Values
are rounded for people (:class:`rbcflow.run_settings.SamplesConfig`). The page is self-contained
like the per-acquisition reports (:mod:`rbcflow.samples.html`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow import __version__
from rbcflow.io.outputs import write_text_atomic
from rbcflow.report.html import esc
from rbcflow.run_settings import SamplesConfig
from rbcflow.samples.html import cell, fmt, href, interval, number, page, table, verdict_cell


def sample_anchor(sample: Any) -> str:
    """The id of a sample's row on the overview page (``index.html#sample-ID``)."""
    return "sample-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(sample))


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) or v is pd.NA else str(v)


def _report_link(row: Mapping[str, Any]) -> str:
    name = esc(_text(row.get("acquisition")) or "?")
    out = _text(row.get("output"))
    if out and row.get("status") != "failed":
        return f'<a href="{href(out + "/report.html")}">{name}</a>'
    return name


def _sample_rows(samples: pd.DataFrame, report: pd.DataFrame, cfg: SamplesConfig) -> list:
    d = cfg.fraction_decimals
    links = {str(r["acquisition"]): _report_link(r) for r in report.to_dict("records")}
    rows = []
    for r in samples.to_dict("records"):
        names = [n for n in _text(r.get("acquisition_names")).split("; ") if n]
        acq = ", ".join(links.get(n, esc(n)) for n in names)
        sample = esc(_text(r.get("sample")))
        rows.append(
            [
                cell(esc(_text(r.get("patient")))),
                cell(f'<span id="{esc(sample_anchor(r.get("sample")))}">{sample}</span>', cls="id"),
                cell(esc(_text(r.get("drawn_at"))), cls="id"),
                cell(
                    fmt(r.get("shear_rate"), 0) if number(r.get("shear_rate")) else "-",
                    number(r.get("shear_rate")),
                    "num",
                ),
                cell(
                    f"{_text(r.get('pooled'))} of {_text(r.get('acquisitions'))}",
                    number(r.get("pooled")),
                    "num",
                ),
                cell(_text(r.get("reliable")) or "-", number(r.get("reliable")), "num"),
                *_figure_cells(r, d),
                cell(acq),
            ]
        )
    return rows


def _figure_cells(r: Mapping[str, Any], d: int) -> list:
    """The fraction, its interval, the verdict and its reason: the cells both tables share."""
    return [
        cell(
            fmt(r.get("tank_treading_fraction"), d),
            number(r.get("tank_treading_fraction")),
            "num",
        ),
        cell(interval(r.get("ci_low"), r.get("ci_high"), d), number(r.get("ci_low")), "num"),
        verdict_cell(r),
        cell(esc(_text(r.get("verdict_reason"))), cls="why"),
    ]


def _acquisition_rows(report: pd.DataFrame, cfg: SamplesConfig) -> list:
    d, s = cfg.fraction_decimals, cfg.seconds_decimals
    rows = []
    for r in report.to_dict("records"):
        flags = "; ".join(x for x in (_text(r.get("message")),) if x)
        rows.append(
            [
                cell(_report_link(r), _text(r.get("acquisition"))),
                cell(esc(_text(r.get("patient")))),
                cell(esc(_text(r.get("sample"))), cls="id"),
                cell(esc(_text(r.get("status")))),
                cell(fmt(r.get("duration_s"), s), number(r.get("duration_s")), "num"),
                cell(_text(r.get("tracks")) or "-", number(r.get("tracks")), "num"),
                cell(_text(r.get("reliable")) or "-", number(r.get("reliable")), "num"),
                *_figure_cells(r, d),
                cell(esc(flags), cls="why"),
            ]
        )
    return rows


def render_overview(
    report: pd.DataFrame,
    samples: pd.DataFrame | None,
    cfg: SamplesConfig | None = None,
    title: str = "rbcflow results",
) -> str:
    """The overview page of a results folder from its ``report.csv`` and ``samples.csv``."""
    cfg = cfg or SamplesConfig()
    n_s = 0 if samples is None else len(samples)
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{n_s} sample(s), {len(report)} acquisition(s); rbcflow '
        f"{esc(__version__)}. Click a column header to sort. Fractions are tank-treading "
        "fractions with their 95% interval; a verdict other than <b>pass</b> is provisional "
        "(hover it for the reasons; the user guide's &ldquo;Verdicts&rdquo; says what to do)."
        "</p>",
    ]
    if samples is not None and len(samples):
        body += [
            "<h2>Samples (one fraction per blood draw)</h2>",
            '<p class="sub">Tracks pooled over the acquisitions of the draw that passed.</p>',
            table(
                [
                    "patient",
                    "sample",
                    "drawn at",
                    "shear rate (1/s)",
                    "pooled",
                    "reliable",
                    "fraction",
                    "95% interval",
                    "verdict",
                    "reasons",
                    "acquisitions",
                ],
                _sample_rows(samples, report, cfg),
                "samples",
            ),
        ]
    body += [
        "<h2>Acquisitions</h2>",
        table(
            [
                "acquisition",
                "patient",
                "sample",
                "status",
                "duration (s)",
                "tracks",
                "reliable",
                "fraction",
                "95% interval",
                "verdict",
                "reasons",
                "messages",
            ],
            _acquisition_rows(report, cfg),
            "acquisitions",
        ),
    ]
    return page(title, body)


def write_overview(
    out_dir: str | os.PathLike,
    report: pd.DataFrame,
    samples: pd.DataFrame | None,
    cfg: SamplesConfig | None = None,
) -> Path:
    """Write ``out_dir/index.html`` atomically; returns its path."""
    out = Path(out_dir)
    return write_text_atomic(
        out / "index.html", render_overview(report, samples, cfg, f"rbcflow results: {out.name}")
    )
