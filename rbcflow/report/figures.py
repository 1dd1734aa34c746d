"""The report page's figures and track strips, as PNG bytes.

Figures are drawn with matplotlib's object API (``Figure`` + Agg canvas: no pyplot, no global
state, no display needed) and embedded in the page as base64 ``data:`` URIs; matplotlib is
imported only when a page is drawn (inside :func:`_figure`), and OpenCV only when a strip is
encoded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.config import ReaderConfig
from rbcflow.report.quality import _binned_time


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


def _figures(
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    thresholds: tuple[float, float],
) -> list[tuple[str, str, bytes]]:
    """(id, caption, PNG) for each figure of the page."""
    figs = []
    fps = float(row.get("fps") or ReaderConfig().default_fps)
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
            for ax, column in ((ax1, "ar_mean"), (ax2, "orientation_std")):
                if len(sel):
                    ax.hist(
                        sel[column].dropna(),
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
