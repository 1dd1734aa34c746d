"""A patient's page: the timeline of their samples against their own baseline band.

The timeline is an inline SVG drawn here (no plotting library, no image: it stays sharp and
the page self-contained): each sample's fraction with its 95% interval over its draw date,
the latest sample's baseline band (mean +/- 2 sd, :mod:`rbcflow.samples.baseline`) shaded, a
sample below its band in red, samples analysed with other models as hollow squares.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rbcflow.io.outputs import write_text_atomic
from rbcflow.report.html import esc
from rbcflow.run_settings import SamplesConfig
from rbcflow.samples.baseline import BELOW, OTHER_MODELS, assess
from rbcflow.samples.html import cell, fmt, interval, number, page, table, verdict_cell

W, H = 900, 340
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 72


def _day(s: Mapping[str, Any]) -> float | None:
    text = str(s.get("drawn_at") or "")
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return d.toordinal() + (d.hour * 60 + d.minute) / 1440


def timeline_svg(assessed: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """The timeline as an SVG element (``assessed``: :func:`~rbcflow.samples.baseline.assess`)."""
    pts = [(s, _day(s)) for s in assessed if _day(s) is not None]
    if not pts:
        return '<p class="muted">No dated sample to draw.</p>'
    days = [d for _, d in pts]
    d0, d1 = min(days), max(days)
    if d1 - d0 < 1:
        d0, d1 = d0 - 3, d1 + 3
    pad = (d1 - d0) * 0.04
    d0, d1 = d0 - pad, d1 + pad
    last = assessed[-1]
    values = [
        number(v)
        for s in assessed
        for v in (s.get("ci_low"), s.get("band_low"), s.get("tank_treading_fraction"))
    ]
    low = min([v for v in values if v is not None] + [0.6])
    y0 = max(0.0, (int(low * 10) - 1) / 10)
    y1 = 1.0

    def x(d):
        return LEFT + (d - d0) / (d1 - d0) * (W - LEFT - RIGHT)

    def y(v):
        return TOP + (y1 - v) / (y1 - y0) * (H - TOP - BOTTOM)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="timeline" font-size="12" '
        'font-family="system-ui,sans-serif">'
    ]
    lo, hi = number(last.get("band_low")), number(last.get("band_high"))
    if lo is not None and hi is not None:
        top, bot = y(min(hi, y1)), y(max(lo, y0))
        out.append(
            f'<rect class="band" x="{LEFT}" y="{top:.1f}" width="{W - LEFT - RIGHT}" '
            f'height="{bot - top:.1f}" fill="#c8e6c9" opacity="0.7"/>'
        )
        mid = y((lo + hi) / 2)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{mid:.1f}" y2="{mid:.1f}" '
            'stroke="#2e7d32" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{LEFT}" y="{H - 32}" fill="#2e7d32">baseline band '
            f"{fmt(lo, digits)}&#8211;{fmt(hi, digits)} (mean &#177; 2 sd over "
            f"{last.get('band_n')} draws), dashed: its mean</text>"
        )
    step = 0.1 if y1 - y0 > 0.25 else 0.05
    v = y0
    while v <= y1 + 1e-9:
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
        )
        v += step
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#555"/>'
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#555"/>'
        f'<text transform="translate(14 {(H - BOTTOM + TOP) / 2}) rotate(-90)" '
        'text-anchor="middle">tank-treading fraction</text>'
    )
    every = max(1, len(pts) // 12 + (1 if len(pts) % 12 else 0))
    for i, (s, d) in enumerate(pts):
        cx = x(d)
        frac = number(s.get("tank_treading_fraction"))
        if i % every == 0:
            out.append(
                f'<text x="{cx:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                f"{esc(str(s.get('drawn_at'))[:10])}</text>"
            )
        if frac is None:
            continue
        below = s.get("status") == BELOW
        other = s.get("status") == OTHER_MODELS
        colour = "#c62828" if below else ("#757575" if other else "#1565c0")
        a, b = number(s.get("ci_low")), number(s.get("ci_high"))
        if a is not None and b is not None:
            out.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(b):.1f}" y2="{y(a):.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        title = (
            f"<title>{esc(s.get('sample'))} {esc(s.get('drawn_at'))}: {fmt(frac, digits)} "
            f"{interval(a, b, digits)}; {esc(s.get('status'))}</title>"
        )
        if other:
            out.append(
                f'<rect class="point other" x="{cx - 5:.1f}" y="{y(frac) - 5:.1f}" width="10" '
                f'height="10" fill="white" stroke="{colour}" stroke-width="2">{title}</rect>'
            )
        else:
            out.append(
                f'<circle class="point{" below" if below else ""}" cx="{cx:.1f}" '
                f'cy="{y(frac):.1f}" r="5" fill="{colour}">{title}</circle>'
            )
        if below:
            out.append(
                f'<text x="{cx - 8:.1f}" y="{y(frac) + 4:.1f}" text-anchor="end" '
                f'fill="{colour}" font-weight="bold">below baseline</text>'
            )
    out.append(
        f'<text x="{LEFT}" y="{H - 12}" fill="#555"><tspan fill="#1565c0">&#9679;</tspan> '
        "sample (95% interval) &#160; "
        '<tspan fill="#c62828">&#9679; below baseline</tspan> &#160; '
        '<tspan fill="#757575">&#9633; analysed with other models (not in the band)</tspan>'
        "</text>"
    )
    out.append("</svg>")
    return "".join(out)


def render_patient(
    patient: str,
    history: Sequence[Mapping[str, Any]],
    cfg: SamplesConfig | None = None,
    reanalysis: str | None = None,
) -> str:
    """The patient's page from their registry rows (:func:`~rbcflow.samples.registry.
    patient_history`; ``reanalysis``: the reanalysis they were read as, said under the
    title)."""
    cfg = cfg or SamplesConfig()
    d = cfg.fraction_decimals
    assessed = assess(history, cfg)
    body = [f"<h1>Patient {esc(patient)}</h1>"]
    if reanalysis is not None:
        n = sum(1 for s in history if s.get("reanalysis") == reanalysis)
        body.append(
            f'<p class="sub" id="reanalysis">As reanalysed in <code>{esc(reanalysis)}</code>: '
            f"{n} of {len(history)} sample(s)"
            + ("; the others keep their first analysis." if n < len(history) else ".")
            + "</p>"
        )
    if assessed:
        last = assessed[-1]
        cls = "flag" if last["status"] == BELOW else ""
        body.append(
            f'<p class="headline">Latest draw {esc(last.get("drawn_at"))} '
            f"({esc(last.get('sample'))}): {fmt(last.get('tank_treading_fraction'), d)} "
            f"{interval(last.get('ci_low'), last.get('ci_high'), d)} &mdash; "
            f'<span class="{cls}" id="latest-status">{esc(last["status"])}</span></p>'
        )
        if last.get("verdict") != "pass":
            body.append(
                f'<p class="verdict-note">Its verdict is <b>{esc(last.get("verdict"))}</b>: '
                "the figure is provisional (the samples table says why on hover).</p>"
            )
    body += [
        '<p class="sub">Baseline: mean &#177; 2 sd of the draws marked <i>baseline</i> in the '
        f"sheet, or else of every earlier passing draw once there are {cfg.baseline_min}; "
        "only draws analysed with the same models are compared. A drop below the band has "
        "preceded vaso-occlusive crises by 2&#8211;3 days (Viallat et al.); it is a reason "
        "to look, not a diagnosis.</p>",
        timeline_svg(assessed, d),
        "<h2>Samples</h2>",
    ]
    rows = []
    for s in assessed:
        rep = s.get("report")
        link = esc(s.get("sample"))
        if rep:
            target = Path(str(rep).split("#", 1)[0])
            anchor = "#" + str(rep).split("#", 1)[1] if "#" in str(rep) else ""
            link = f'<a href="{esc(target.as_uri() + anchor)}">{link}</a>'
        status = str(s["status"])
        rows.append(
            [
                cell(esc(s.get("drawn_at")), cls="id"),
                cell(link, s.get("sample"), "id"),
                cell(
                    fmt(s.get("tank_treading_fraction"), d),
                    number(s.get("tank_treading_fraction")),
                    "num",
                ),
                cell(
                    interval(s.get("ci_low"), s.get("ci_high"), d), number(s.get("ci_low")), "num"
                ),
                cell(str(s.get("reliable") or "-"), number(s.get("reliable")), "num"),
                verdict_cell(s),
                cell(esc(status), cls="id below" if status == BELOW else "id"),
                cell(
                    interval(s.get("band_low"), s.get("band_high"), d),
                    number(s.get("band_low")),
                    "num",
                ),
                cell(esc(s.get("baseline") or "")),
                cell(f"<code>{esc(s.get('stage1_model'))}/{esc(s.get('stage2_model'))}</code>"),
            ]
        )
    body.append(
        table(
            [
                "drawn at",
                "sample",
                "fraction",
                "95% interval",
                "reliable",
                "verdict",
                "status",
                "baseline band",
                "marked baseline",
                "models",
            ],
            rows,
            "patient-samples",
        )
    )
    return page(f"rbcflow: patient {patient}", body)


def write_patient_page(
    path: str | os.PathLike,
    patient: str,
    history: Sequence[Mapping[str, Any]],
    cfg: SamplesConfig | None = None,
    reanalysis: str | None = None,
) -> Path:
    """Write the patient's page atomically; returns its path."""
    return write_text_atomic(Path(path), render_patient(patient, history, cfg, reanalysis))
