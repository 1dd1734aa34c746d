"""The acquisition's self-contained HTML report page (``report.html``).

Nothing injected
----------------
The HTML page is built from strings that come from the input (file names, paths, reader
messages): every one goes through :func:`html.escape`; the page also carries a
Content-Security-Policy that forbids scripts and any network access, so a file named
``<script>alert(1)</script>.avi`` shows as text. Figures are inline SVG written by
:mod:`rbcflow.report.svg` (presentation attributes only, no script); track strips are PNGs
embedded as base64 ``data:`` URIs.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow.config import QualityConfig
from rbcflow.io.outputs import write_text_atomic
from rbcflow.report.figures import _figures, _png_uri, strip_png
from rbcflow.report.quality import quality_indicators
from rbcflow.report.verdict import VERDICTS
from rbcflow.schema import GalleryItem


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None:
        return "-"
    try:
        if isinstance(x, float) and not math.isfinite(x):
            return "-"
        if pd.isna(x):
            return "-"
    except (TypeError, ValueError):
        pass
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def _kv_rows(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows.extend(_kv_rows(v, key + "."))
        else:
            rows.append((key, json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v))
    return rows


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em;word-break:break-all}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
.headline{font-size:2.4em;font-weight:600;margin:.2em 0}
.sub{color:#555}.status-failed{color:#b71c1c}.status-ok{color:#1b5e20}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top;font-size:.92em}th{background:#f5f5f5}
.check{background:#fff3e0;font-weight:600}.ok{color:#1b5e20}
.gallery td{border:none;padding:.15em .4em}.strip{image-rendering:pixelated}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
code{word-break:break-all}.small{font-size:.85em;color:#555}
.verdict{font-size:1.15em;padding:.3em .6em;border-left:.4em solid}.v-pass{border-color:#1b5e20}
.v-check,.v-none{border-color:#e65100;background:#fff3e0}.v-fail{border-color:#b71c1c;
background:#ffebee}
"""


def _verdict_html(row: Mapping[str, Any]) -> list[str]:
    """The headline's verdict: a ``pass`` plainly, anything else as provisional with reasons."""
    given = row.get("verdict")
    known = given if isinstance(given, str) and given in VERDICTS else None
    reason = row.get("verdict_reason")
    reason = reason if isinstance(reason, str) else ""
    label = known or "not assessed"
    head = f'<p class="verdict v-{known or "none"}">Verdict: <b>{esc(label)}</b>'
    if known == "pass":
        return [head + (f" &mdash; {esc(reason)}" if reason else "") + "</p>"]
    reasons = [r for r in reason.split("; ") if r.strip()] or [
        "this row has no verdict (made by an older rbcflow?): analyse it again"
    ]
    return [
        head + " &mdash; <b>provisional: do not report</b> this figure until these are "
        "resolved (user guide, &ldquo;Verdicts&rdquo;):</p>",
        '<ul class="verdict-reasons">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>",
    ]


_METHODS = {
    "em": "Estimated from stage 2's calibrated probabilities (EM prior), not counted.",
    "stage2": "The count corrected for stage 2's validated confusion.",
    "adjusted": "The count corrected for both stages' validated errors.",
    "naive": "The plain count.",
}


def _method_text(row: Mapping[str, Any]) -> str:
    """How the figure was made, in words (``fraction_method``; a fallback keeps its reason)."""
    method = str(row.get("fraction_method") or "")
    head = method.split(" ", 1)[0]
    text = _METHODS.get(head, "")
    if " (" in method:
        text += f" ({esc(method.split(' (', 1)[1].rstrip(')'))})"
    return text


def render_html(
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    gallery: Sequence[GalleryItem] = (),
    provenance: Mapping[str, Any] | None = None,
    *,
    thresholds: tuple[float, float] = (0.5, 0.5),
    figures: bool = True,
    quality: QualityConfig | None = None,
) -> str:
    """The acquisition's report page as one self-contained HTML string.

    Parameters
    ----------
    row : the acquisition's report row (:data:`~rbcflow.schema.REPORT_COLUMNS` keys).
    tracks : the ``tracks.csv`` table (TRACKS columns, probabilities, label, shape features).
    frame_stats : per-frame ``frame, mean_intensity, n_detections``
        (:data:`rbcflow.schema.FRAME_STATS`).
    gallery : tracks to show as strips, any order (sorted here: borderline calls first).
    provenance : the ``run.json`` record (parameters, models, input, platform, warnings).
    thresholds : (reliable_threshold, flipping_threshold), drawn on the histograms.
    figures : draw the figures (False for a quick text-only page, e.g. in tests).
    quality : display thresholds of the quality indicators; None: those ``provenance``
        carries (``quality``, computed by :func:`rbcflow.pipeline.analyze`) if any, else
        computed with ``QualityConfig()``.

    Below the figure, the row's ``verdict`` and its reasons; unless it is ``pass`` the page
    says the figure is provisional, not to be reported (a row without a verdict too).
    Every string from the input is escaped; see the module docstring.
    """
    prov = dict(provenance or {})
    name = row.get("acquisition") or "acquisition"
    status = str(row.get("status") or "")
    frac = row.get("tank_treading_fraction")
    has_frac = frac is not None and not pd.isna(frac)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # no script, no network: images only from data: URIs, styles inline
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>rbcflow report: {esc(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Tank-treading fraction: {esc(name)}</h1>",
        f'<p class="sub">Source: <code>{esc(row.get("source"))}</code></p>',
    ]
    if has_frac:
        parts.append(
            f'<p class="headline">{float(frac):.1%}</p>'
            f"<p>95% interval <b>{_fmt(row.get('ci_low'), '.1%')} to "
            f"{_fmt(row.get('ci_high'), '.1%')}</b> (counting and the classifiers' validated "
            f"error). {_method_text(row)} Calls: {esc(row.get('tank_treading'))} "
            f"tank-treading of {esc(row.get('reliable'))} reliable tracks "
            f"({esc(row.get('flipping'))} flipping; plain count "
            f"{_fmt(row.get('fraction_counted'), '.1%')}); {esc(row.get('tracks'))} tracks in "
            "all.</p>"
        )
    else:
        parts.append('<p class="headline">no figure</p>')
    parts.extend(_verdict_html(row))
    parts.append(
        f'<p>Status: <span class="status-{esc(status)}">{esc(status)}</span>'
        + (f" &mdash; {esc(row.get('message'))}" if row.get("message") else "")
        + "</p>"
    )
    parts.append(
        f'<p class="small">{esc(row.get("frames"))} frames at {_fmt(row.get("fps"), ".4g")} '
        f"frames/s ({_fmt(row.get('duration_s'), '.1f')} s). rbcflow "
        f"{esc(row.get('rbcflow_version'))}; models stage 1 <code>{esc(row.get('stage1_model'))}"
        f"</code>, stage 2 <code>{esc(row.get('stage2_model'))}</code>.</p>"
    )
    warnings = prov.get("warnings") or []
    if warnings:
        parts.append(
            "<h2>Warnings</h2><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"
        )

    # quality indicators
    parts.append(
        "<h2>Quality indicators</h2><table><tr><th>indicator</th><th>value</th>"
        "<th></th><th>meaning</th></tr>"
    )
    indicators = prov.get("quality") if quality is None else None
    if not isinstance(indicators, list):
        indicators = quality_indicators(row, tracks, frame_stats, quality)
    for q in indicators:
        cls = "check" if q["verdict"] == "check" else "ok"
        parts.append(
            f"<tr><td>{esc(q['name'])}</td><td>{esc(q['value'])}</td>"
            f'<td class="{cls}">{esc(q["verdict"])}</td><td>{esc(q["hint"])}</td></tr>'
        )
    parts.append("</table>")

    # figures
    parts.append("<h2>Figures</h2>")
    drawn = _figures(row, tracks, frame_stats, thresholds) if figures else []
    for fig_id, caption, svg in drawn:
        parts.append(f'<figure id="{fig_id}">{svg}<figcaption>{esc(caption)}</figcaption></figure>')

    # gallery, per class, borderline first
    parts.append(
        '<h2>Track gallery</h2><p class="small">Frames of each track side by side '
        "(evenly spaced). Within each class, the calls closest to the decision "
        "threshold come first: check these by eye.</p>"
    )
    for cls_name in ("tank-treading", "flipping", "unreliable"):
        items = [g for g in gallery if g.label == cls_name]
        if cls_name == "unreliable":
            items.sort(key=lambda g: -g.p_reliable)  # nearest to being counted first
        else:
            items.sort(key=lambda g: abs(g.p_tank_treading - 0.5))
        parts.append(f"<h3>{esc(cls_name)} ({len(items)} shown)</h3>")
        if not items:
            parts.append('<p class="small">none</p>')
            continue
        parts.append('<table class="gallery">')
        for g in items:
            feats = ", ".join(f"{esc(k)} {_fmt(v, '.2f')}" for k, v in g.features.items())
            parts.append(
                f'<tr><td>track {esc(g.track_id)}<br><span class="small">p_reliable '
                f"{_fmt(g.p_reliable, '.2f')}<br>p_tank_treading {_fmt(g.p_tank_treading, '.2f')}"
                f'<br>{esc(g.n_frames)} frames</span></td><td><img class="strip" '
                f'alt="track {esc(g.track_id)}" src="{_png_uri(strip_png(g.strip))}">'
                f'<br><span class="small">{feats}</span></td></tr>'
            )
        parts.append("</table>")

    # parameters and provenance
    parts.append("<h2>Parameters and provenance</h2><table>")
    for key in ("rbcflow_version", "started", "finished", "params_id"):
        if key in prov:
            parts.append(f"<tr><th>{esc(key)}</th><td>{esc(prov[key])}</td></tr>")
    for section in ("input", "models", "parameters", "timings_s", "platform"):
        if section in prov and isinstance(prov[section], Mapping):
            for k, v in _kv_rows(prov[section], section + "."):
                parts.append(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>")
    parts.append("</table>")
    parts.append(
        '<p class="small">Method: Darrin et al., Sci Rep 13:745 (2023), '
        "reimplemented by rbcflow. Full record in run.json beside this page.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report_html(path: str | os.PathLike, *args: Any, **kwargs: Any) -> Path:
    """Render :func:`render_html` and write it atomically; returns the path."""
    return write_text_atomic(path, render_html(*args, **kwargs))
