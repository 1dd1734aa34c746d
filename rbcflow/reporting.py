"""Outputs of ``rbcflow analyze``: atomic writers, ``report.csv``, per-acquisition tables and the
self-contained HTML report.

Nothing lost
------------
Every file is written under a temporary name in its destination folder (``.NAME.PID.RAND.tmp``),
flushed and fsynced, then renamed over the destination with :func:`os.replace`, which is atomic
on POSIX and Windows file systems: a reader (or a killed run) sees either the previous complete
file or the new complete one, never a half-written file under the final name.

Nothing injected
----------------
The HTML page is built from strings that come from the input (file names, paths, reader
messages): every one goes through :func:`html.escape`; the page also carries a
Content-Security-Policy that forbids scripts and any network access, so a file named
``<script>alert(1)</script>.avi`` shows as text. Figures are PNGs embedded as base64 ``data:``
URIs, drawn with matplotlib's object API (``Figure`` + Agg canvas: no pyplot, no global state, no
display needed); matplotlib is imported only when a page is drawn.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rbcflow import schema
from rbcflow.io.outputs import (
    CSV_ENCODING,
    restore_formula,
    write_csv_atomic,
    write_text_atomic,
)

REPORT_EXTRA: dict[str, str] = {
    "output": "object",  # the acquisition's folder, relative to the output folder
    "params_id": "object",  # short hash of all parameters (config.params_id)
    "input_hash": "object",  # short input fingerprint (provenance.input_fingerprint)
    "analysed_at": "object",  # ISO 8601 time the analysis finished
}
"""Columns of ``report.csv`` after the contract's :data:`rbcflow.schema.REPORT` ones."""
REPORT_COLUMNS: dict[str, str] = {**schema.REPORT, **REPORT_EXTRA}

# Quality flags shown in the report (display thresholds, not analysis parameters).
MIN_RELIABLE_FOR_FIGURE = 100  # fewer reliable tracks: interval too wide to compare visits
MAX_ILLUMINATION_DRIFT = 0.10  # relative change of mean intensity, first vs last tenth
MAX_SPEED_DRIFT = 0.20  # relative change of median cell speed, first vs last quarter
MAX_UNRELIABLE_SHARE = 0.97  # the real ratio is 15-30 unreliable per reliable track (~94-97%)


# -- report.csv -----------------------------------------------------------------------------


def report_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Report rows -> a DataFrame with the :data:`REPORT_COLUMNS` columns and dtypes.

    Missing keys become missing values; unknown keys are dropped (the file is a contract).
    """
    data = {c: [r.get(c) for r in rows] for c in REPORT_COLUMNS}
    df = pd.DataFrame(data)
    for col, dtype in REPORT_COLUMNS.items():
        if dtype == "Int64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        elif dtype == "float64":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:
            df[col] = df[col].astype("object").where(df[col].notna(), None)
    return df


def read_report(path: str | os.PathLike) -> pd.DataFrame | None:
    """A previous ``report.csv`` as rows with :data:`REPORT_COLUMNS`, or None when absent or
    unreadable (it is then rebuilt from the acquisitions' ``run.json``)."""
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
    """Write ``report.csv`` atomically (columns :data:`REPORT_COLUMNS`, no comment lines)."""
    return write_csv_atomic(path, report_table(df.to_dict("records")))


# -- HTML report ----------------------------------------------------------------------------


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


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def strip_png(strip: np.ndarray, zoom: int = 2) -> bytes:
    """A strip as PNG bytes, enlarged ``zoom`` times with nearest-neighbour pixels."""
    import cv2

    img = np.asarray(strip)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if zoom > 1:
        img = np.repeat(np.repeat(img, zoom, axis=0), zoom, axis=1)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 2-D array
        raise ValueError("cannot encode strip")
    return buf.tobytes()


def _figure(width: float, height: float, **margins: float):
    """A matplotlib Figure on an Agg canvas (no pyplot: no global state, thread-safe).

    Fixed margins rather than a layout engine: constrained layout doubles the drawing time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        **{
            "left": 0.09,
            "right": 0.98,
            "bottom": 0.17,
            "top": 0.9,
            "wspace": 0.25,
            "hspace": 0.35,
            **margins,
        }
    )
    return fig


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


_CLASS_COLOURS = {"tank-treading": "#1b9e77", "flipping": "#d95f02", "unreliable": "#9e9e9e"}


def _binned_time(t_s: np.ndarray, values: np.ndarray, duration_s: float, n_bins: int = 20):
    """Median of ``values`` in ``n_bins`` equal time bins (bin centres, medians; NaN if empty)."""
    edges = np.linspace(0, max(duration_s, 1e-9), n_bins + 1)
    idx = np.clip(np.digitize(t_s, edges) - 1, 0, n_bins - 1)
    med = np.full(n_bins, np.nan)
    for b in range(n_bins):
        sel = values[idx == b]
        if sel.size:
            med[b] = np.median(sel)
    return (edges[:-1] + edges[1:]) / 2, med, np.bincount(idx, minlength=n_bins)


def quality_indicators(
    row: Mapping[str, Any], tracks: pd.DataFrame, frame_stats: pd.DataFrame
) -> list[dict]:
    """The report's quality indicators: name, value (text), verdict (``ok``/``check``), hint.

    Parameters
    ----------
    row : the acquisition's report row (frames, fps, duration_s, tracks, reliable ...).
    tracks : tracks table with ``first_frame``, ``last_frame``, ``speed`` (px/frame) and
        ``label``.
    frame_stats : per-frame table with ``frame``, ``mean_intensity``, ``n_detections``.
    """
    out = []
    duration = float(row.get("duration_s") or 0) or float("nan")
    n_tracks = int(row.get("tracks") or 0)
    n_rel = int(row.get("reliable") or 0)
    per_min = n_tracks / (duration / 60) if duration == duration and duration > 0 else math.nan
    out.append(
        {
            "name": "tracks per minute",
            "value": f"{per_min:.0f}" if per_min == per_min else "-",
            "verdict": "ok" if n_tracks else "check",
            "hint": "cells followed across the field per minute of video",
        }
    )
    share = 1 - n_rel / n_tracks if n_tracks else math.nan
    out.append(
        {
            "name": "share unreliable",
            "value": f"{share:.0%}" if share == share else "-",
            "verdict": "check" if (share != share or share > MAX_UNRELIABLE_SHARE) else "ok",
            "hint": "out of focus, overlapping or partial cells; typically 90-97% in real "
            "recordings",
        }
    )
    if "rule" in tracks and len(tracks):
        rules = tracks["rule"].fillna("").astype(str)
        n_cut, n_pair = int((rules == "cut by border").sum()), int((rules == "two cells").sum())
        out.append(
            {
                "name": "rejected by geometry",
                "value": f"{n_cut} cut by the border, {n_pair} two cells as one",
                "verdict": "ok",
                "hint": "unreliable whatever stage 1 said: the cell is cut by the top or bottom "
                "of the field, or the object is about twice one cell's area",
            }
        )
    out.append(
        {
            "name": "reliable tracks",
            "value": str(n_rel),
            "verdict": "ok" if n_rel >= MIN_RELIABLE_FOR_FIGURE else "check",
            "hint": f"under {MIN_RELIABLE_FOR_FIGURE} the interval is wide; record longer",
        }
    )
    if len(tracks) >= 8 and "speed" in tracks:
        t = tracks.sort_values("first_frame")
        speed = t["speed"].to_numpy(dtype=float)
        q = max(1, len(speed) // 4)
        first, last = np.nanmedian(speed[:q]), np.nanmedian(speed[-q:])
        drift = (last - first) / first if first else math.nan
        out.append(
            {
                "name": "cell speed drift",
                "value": f"{drift:+.0%} ({first:.1f} -> {last:.1f} px/frame)",
                "verdict": "ok" if abs(drift) <= MAX_SPEED_DRIFT else "check",
                "hint": "flow should be steady during the recording",
            }
        )
    if len(frame_stats) >= 10:
        m = frame_stats["mean_intensity"].to_numpy(dtype=float)
        k = max(1, len(m) // 10)
        a, b = np.nanmean(m[:k]), np.nanmean(m[-k:])
        drift = (b - a) / a if a else math.nan
        out.append(
            {
                "name": "illumination drift",
                "value": f"{drift:+.1%}",
                "verdict": "ok" if abs(drift) <= MAX_ILLUMINATION_DRIFT else "check",
                "hint": "mean brightness, first vs last tenth of the video",
            }
        )
    return out


def _figures(
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    thresholds: tuple[float, float],
) -> list[tuple[str, str, bytes]]:
    """(id, caption, PNG) for each figure of the page."""
    figs = []
    fps = float(row.get("fps") or 60.0)
    duration = float(row.get("duration_s") or 0)
    labels = tracks["label"].astype(str) if "label" in tracks else pd.Series([], dtype=str)

    # 1. class counts
    fig = _figure(4.2, 2.6, left=0.27, right=0.95)
    ax = fig.add_subplot()
    names = ["tank-treading", "flipping", "unreliable"]
    counts = [int((labels == n).sum()) for n in names]
    ax.barh(names, counts, color=[_CLASS_COLOURS[n] for n in names])
    for i, c in enumerate(counts):
        ax.text(c, i, f" {c}", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("tracks")
    ax.set_title("calls per class")
    ax.set_xlim(0, max(counts + [1]) * 1.2)
    figs.append(("fig-counts", "Tracks per class.", _fig_png(fig)))

    # 2. probability histograms, thresholds marked
    fig = _figure(8, 2.8)
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 26)
    if "p_reliable" in tracks and len(tracks):
        ax1.hist(tracks["p_reliable"].dropna(), bins=bins, color="#607d8b")
    ax1.axvline(thresholds[0], color="k", ls="--", lw=1)
    ax1.set_xlabel("p_reliable (stage 1)")
    ax1.set_ylabel("tracks")
    ax1.set_title("all tracks")
    rel = tracks[labels != "unreliable"] if len(tracks) else tracks
    if "p_tank_treading" in rel and len(rel):
        ax2.hist(rel["p_tank_treading"].dropna(), bins=bins, color="#1b9e77")
    ax2.axvline(1 - thresholds[1], color="k", ls="--", lw=1)
    ax2.set_xlabel("p_tank_treading (stage 2)")
    ax2.set_title("reliable tracks")
    figs.append(
        (
            "fig-probabilities",
            "Classifier probabilities; dashed: decision threshold. "
            "Many tracks near the threshold mean uncertain calls.",
            _fig_png(fig),
        )
    )

    # 3. shape dynamics by class
    if "ar_mean" in tracks and len(rel):
        fig = _figure(8, 2.8)
        ax1, ax2 = fig.subplots(1, 2)
        for name in ("tank-treading", "flipping"):
            sel = tracks[labels == name]
            if len(sel):
                ax1.hist(
                    sel["ar_mean"].dropna(),
                    bins=20,
                    alpha=0.6,
                    label=name,
                    color=_CLASS_COLOURS[name],
                )
                ax2.hist(
                    sel["orientation_std"].dropna(),
                    bins=20,
                    alpha=0.6,
                    label=name,
                    color=_CLASS_COLOURS[name],
                )
        ax1.set_xlabel("mean projected aspect ratio")
        ax1.set_ylabel("tracks")
        ax2.set_xlabel("orientation spread (circular std, degrees)")
        ax1.legend(fontsize=8)
        figs.append(
            (
                "fig-shape",
                "Shape dynamics of the reliable tracks by call: tank-treading "
                "cells keep a steady elongated shape and orientation; flipping cells "
                "change both as they tumble.",
                _fig_png(fig),
            )
        )

    # 4. quality over time
    fig = _figure(8, 5.2, bottom=0.09, top=0.97, hspace=0.3, wspace=0.28)
    axes = fig.subplots(2, 2)
    if len(tracks):
        mid = (tracks["first_frame"].to_numpy(float) + tracks["last_frame"].to_numpy(float)) / 2
        t_s = mid / fps
        centres, med_speed, n_per_bin = _binned_time(t_s, tracks["speed"].to_numpy(float), duration)
        bin_min = (duration / len(centres)) / 60 if duration else float("nan")
        axes[0, 0].plot(centres, n_per_bin / bin_min, "o-", ms=3)
        axes[0, 1].plot(t_s, tracks["speed"] * fps, ".", ms=2, color="#90a4ae")
        axes[0, 1].plot(centres, med_speed * fps, "-", color="k", lw=1.5, label="median")
        axes[0, 1].legend(fontsize=8)
    axes[0, 0].set_ylabel("tracks per minute")
    axes[0, 1].set_ylabel("cell speed (px/s)")
    if len(frame_stats):
        ft = frame_stats["frame"].to_numpy(float) / fps
        axes[1, 0].plot(ft, frame_stats["mean_intensity"], lw=1)
        axes[1, 1].plot(ft, frame_stats["n_detections"], lw=0.8)
    axes[1, 0].set_ylabel("mean intensity")
    axes[1, 1].set_ylabel("detections per frame")
    for ax in axes.ravel():
        ax.set_xlabel("time (s)")
    figs.append(
        (
            "fig-quality",
            "Quality over time: track rate, cell speed (flow stability), "
            "illumination and detections per frame. Steps or trends mean the recording "
            "conditions changed.",
            _fig_png(fig),
        )
    )
    return figs


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
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
code{word-break:break-all}.small{font-size:.85em;color:#555}
"""


def render_html(
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    gallery: Sequence[GalleryItem] = (),
    provenance: Mapping[str, Any] | None = None,
    *,
    thresholds: tuple[float, float] = (0.5, 0.5),
    figures: bool = True,
) -> str:
    """The acquisition's report page as one self-contained HTML string.

    Parameters
    ----------
    row : the acquisition's report row (:data:`REPORT_COLUMNS` keys).
    tracks : the ``tracks.csv`` table (TRACKS columns, probabilities, label, shape features).
    frame_stats : per-frame ``frame, mean_intensity, n_detections``.
    gallery : tracks to show as strips, any order (sorted here: borderline calls first).
    provenance : the ``run.json`` record (parameters, models, input, platform, warnings).
    thresholds : (reliable_threshold, flipping_threshold), drawn on the histograms.
    figures : draw the matplotlib figures (False for a quick text-only page, e.g. in tests).

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
            f"<p>95% interval (Wilson) <b>{_fmt(row.get('ci_low'), '.1%')} to "
            f"{_fmt(row.get('ci_high'), '.1%')}</b>: {esc(row.get('tank_treading'))} "
            f"tank-treading of {esc(row.get('reliable'))} reliable tracks "
            f"({esc(row.get('flipping'))} flipping); {esc(row.get('tracks'))} tracks in all.</p>"
        )
    else:
        parts.append('<p class="headline">no figure</p>')
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
    for q in quality_indicators(row, tracks, frame_stats):
        cls = "check" if q["verdict"] == "check" else "ok"
        parts.append(
            f"<tr><td>{esc(q['name'])}</td><td>{esc(q['value'])}</td>"
            f'<td class="{cls}">{esc(q["verdict"])}</td><td>{esc(q["hint"])}</td></tr>'
        )
    parts.append("</table>")

    # figures
    parts.append("<h2>Figures</h2>")
    drawn = _figures(row, tracks, frame_stats, thresholds) if figures else []
    for fig_id, caption, png in drawn:
        parts.append(
            f'<figure id="{fig_id}"><img alt="{esc(caption)}" src="{_png_uri(png)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )

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
