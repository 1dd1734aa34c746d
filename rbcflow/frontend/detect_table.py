"""One frame's detections as a table: :func:`detect_frame` (tests, exploration; the front end
streams through :class:`rbcflow.frontend.detection.FrameDetector` instead)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rbcflow.config import DetectionConfig
from rbcflow.frontend.detection import FrameDetector
from rbcflow.frontend.variance import auto_threshold, robust_noise
from rbcflow.schema import DETECTIONS, validate


def detect_frame(
    frame: np.ndarray,
    background: np.ndarray,
    cfg: DetectionConfig | None = None,
    *,
    threshold: float | None = None,
    frame_index: int = 0,
    noise: float | None = None,
    centroid_half: int = 8,
) -> pd.DataFrame:
    """Detections of one frame as a :data:`rbcflow.schema.DETECTIONS` table.

    Parameters
    ----------
    frame : (rows, cols) uint8, uint16 or float32 ndarray
    background : (rows, cols) float32 ndarray
    cfg : DetectionConfig
    threshold : float, optional
        Overrides ``cfg.threshold``; when both are None the automatic threshold of this frame
        is used.
    frame_index : int
        Value of the ``frame`` column.
    noise : float, optional
        Camera noise; estimated from this frame when None.

    Returns
    -------
    DataFrame
        Columns of ``DETECTIONS``: frame, x, y, area, score.
    """
    cfg = cfg or DetectionConfig()
    background = np.asarray(background, dtype=np.float32)
    if noise is None:
        noise = robust_noise(frame, background)
    det = FrameDetector(background, cfg, threshold=0.0, noise=noise, centroid_half=centroid_half)
    thr = cfg.threshold if threshold is None else threshold
    var = det.variance(frame)
    det.threshold = auto_threshold(np.sqrt(var), cfg.threshold_k) if thr is None else thr
    c = det.coarse(frame, var)
    xy, area, score = det.refine(frame, c), c.area, c.score
    table = pd.DataFrame(
        {
            "frame": np.full(len(area), frame_index),
            "x": xy[:, 0],
            "y": xy[:, 1],
            "area": area,
            "score": score,
        }
    )
    return validate(table, DETECTIONS, "detections")
