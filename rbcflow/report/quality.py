"""The report's quality indicators: is this recording fit to give a figure?

Each indicator is a measured value and a verdict (``ok`` / ``check``) against a display
threshold of :class:`rbcflow.config.QualityConfig`; the thresholds flag a recording for a
look, they change no result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rbcflow.config import QualityConfig


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
    row: Mapping[str, Any],
    tracks: pd.DataFrame,
    frame_stats: pd.DataFrame,
    quality: QualityConfig | None = None,
) -> list[dict]:
    """The report's quality indicators: name, value (text), verdict (``ok``/``check``), hint.

    Parameters
    ----------
    row : the acquisition's report row (frames, fps, duration_s, tracks, reliable ...).
    tracks : tracks table with ``first_frame``, ``last_frame``, ``speed`` (px/frame) and
        ``label``.
    frame_stats : per-frame table with ``frame``, ``mean_intensity``, ``n_detections``
        (:data:`rbcflow.schema.FRAME_STATS`).
    quality : the display thresholds of the verdicts (default ``QualityConfig()``).
    """
    quality = quality or QualityConfig()
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
            "verdict": "check"
            if (share != share or share > quality.max_unreliable_share)
            else "ok",
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
    min_rel = quality.min_reliable_for_figure
    out.append(
        {
            "name": "reliable tracks",
            "value": str(n_rel),
            "verdict": "ok" if n_rel >= min_rel else "check",
            "hint": f"under {min_rel} the interval is wide; record longer",
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
                "verdict": "ok" if abs(drift) <= quality.max_speed_drift else "check",
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
                "verdict": "ok" if abs(drift) <= quality.max_illumination_drift else "check",
                "hint": "mean brightness, first vs last tenth of the video",
            }
        )
    return out
