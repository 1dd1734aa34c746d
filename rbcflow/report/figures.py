"""The report page's figures (inline SVG) and track strips (PNG bytes).

Figures are :class:`~rbcflow.report.svg.Chart` s, written as text and put inline in the page;
OpenCV is imported only when a strip is encoded.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.config import ReaderConfig
from rbcflow.report.quality import _binned_time
from rbcflow.report.svg import Chart, envelope


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


_CLASS_COLOURS = {"tank-treading": "#1b9e77", "flipping": "#d95f02", "unreliable": "#9e9e9e"}


def _figures(
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    thresholds: tuple[float, float],
) -> list[tuple[str, str, str]]:
    """(id, caption, SVG element) for each figure of the page."""
    figs = []
    fps = float(row.get("fps") or ReaderConfig().default_fps)
    duration = float(row.get("duration_s") or 0)
    labels = tracks["label"].astype(str) if "label" in tracks else pd.Series([], dtype=str)

    def add(fig_id: str, caption: str, chart: Chart) -> None:
        figs.append((fig_id, caption, chart.svg(title=caption)))

    # 1. class counts
    chart = Chart("fig-counts", 420, 180, left=96, right=24, bottom=40)
    ax = chart.panel()
    names = ["tank-treading", "flipping", "unreliable"]
    counts = [int((labels == n).sum()) for n in names]
    for i, (name, c) in enumerate(zip(names, counts, strict=True)):
        ax.rects(0, c, i - 0.4, i + 0.4, _CLASS_COLOURS[name])
        ax.text(c, i, str(c))
    ax.invert_y = True
    ax.yticks = [(i, n) for i, n in enumerate(names)]
    ax.xlim, ax.ylim = (0, max(counts + [1]) * 1.2), (-0.6, 2.6)
    ax.xlabel, ax.title = "tracks", "calls per class"
    add("fig-counts", "Tracks per class.", chart)

    # 2. probability histograms, thresholds marked
    chart = Chart("fig-probabilities", 800, 260, cols=2)
    ax1, ax2 = chart.panels
    bins = np.linspace(0, 1, 26)
    if "p_reliable" in tracks and len(tracks):
        ax1.hist(tracks["p_reliable"], bins, "#607d8b")
    ax1.vline(thresholds[0])
    ax1.xlabel, ax1.ylabel, ax1.title = "p_reliable (stage 1)", "tracks", "all tracks"
    rel = tracks[labels != "unreliable"] if len(tracks) else tracks
    if "p_tank_treading" in rel and len(rel):
        ax2.hist(rel["p_tank_treading"], bins, "#1b9e77")
    ax2.vline(1 - thresholds[1])
    ax2.xlabel, ax2.title = "p_tank_treading (stage 2)", "reliable tracks"
    for ax in (ax1, ax2):
        ax.xlim, ax.ylim = (0.0, 1.0), (0.0, ax.limits()[1][1])
    add(
        "fig-probabilities",
        "Classifier probabilities; dashed: decision threshold. "
        "Many tracks near the threshold mean uncertain calls.",
        chart,
    )

    # 3. shape dynamics by class
    if "ar_mean" in tracks and len(rel):
        chart = Chart("fig-shape", 800, 260, cols=2)
        ax1, ax2 = chart.panels
        for ax, column in ((ax1, "ar_mean"), (ax2, "orientation_std")):
            values = tracks[column].to_numpy(float)
            counted = values[(labels != "unreliable").to_numpy() & np.isfinite(values)]
            edges = np.histogram_bin_edges(counted, bins=20) if counted.size else 20
            for name in ("tank-treading", "flipping"):
                sel = values[(labels == name).to_numpy()]
                if sel.size:
                    label = name if ax is ax1 else ""
                    ax.hist(sel, edges, _CLASS_COLOURS[name], opacity=0.6, label=label)
            ax.ylim = (0.0, ax.limits()[1][1])
        ax1.xlabel, ax1.ylabel = "mean projected aspect ratio", "tracks"
        ax2.xlabel = "orientation spread (circular std, degrees)"
        add(
            "fig-shape",
            "Shape dynamics of the reliable tracks by call: tank-treading "
            "cells keep a steady elongated shape and orientation; flipping cells "
            "change both as they tumble.",
            chart,
        )

    # 4. quality over time
    chart = Chart("fig-quality", 800, 480, rows=2, cols=2, top=12)
    (a00, a01), (a10, a11) = chart.panels[:2], chart.panels[2:]
    if len(tracks):
        mid = (tracks["first_frame"].to_numpy(float) + tracks["last_frame"].to_numpy(float)) / 2
        t_s = mid / fps
        speed = tracks["speed"].to_numpy(float)
        centres, med_speed, n_per_bin = _binned_time(t_s, speed, duration)
        bin_min = (duration / len(centres)) / 60 if duration else float("nan")
        a00.line(centres, n_per_bin / bin_min, width=1.5)
        a00.points(centres, n_per_bin / bin_min, size=5)
        a01.points(t_s, speed * fps, colour="#78909c", size=3)
        a01.line(centres, med_speed * fps, colour="#000", width=1.5, label="median")
    a00.ylabel, a01.ylabel = "tracks per minute", "cell speed (px/s)"
    if len(frame_stats):
        ft = frame_stats["frame"].to_numpy(float) / fps
        cols = int(chart.panel_width())
        a10.line(*envelope(ft, frame_stats["mean_intensity"].to_numpy(float), cols))
        a11.line(*envelope(ft, frame_stats["n_detections"].to_numpy(float), cols), width=0.8)
    a10.ylabel, a11.ylabel = "mean intensity", "detections per frame"
    for ax in chart.panels:
        ax.xlabel = "time (s)"
    add(
        "fig-quality",
        "Quality over time: track rate, cell speed (flow stability), "
        "illumination and detections per frame. Steps or trends mean the recording "
        "conditions changed.",
        chart,
    )
    return figs
