"""Parameters of every stage: one frozen dataclass per stage, defaults live only here.

A run's parameters are the :class:`FrontEndConfig` (and, for classification, the model folders'
own configs). :func:`params_id` hashes any of these into a short id written into every output
(``run.json``) and used to skip work already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReaderConfig:
    """How frames are read.

    fps : frame rate to use instead of the container's (frames/s); None keeps the container's,
        or 60 (the method's recording rate) when the container has none.
    """

    fps: float | None = None
    default_fps: float = 60.0


@dataclass(frozen=True)
class BackgroundConfig:
    """Median background.

    n_frames : number of frames, evenly spaced through the video, whose per-pixel median is the
        background (all frames when the video has fewer).
    """

    n_frames: int = 100


@dataclass(frozen=True)
class DetectionConfig:
    """Variance-filter detection on the background-subtracted frame.

    window : side of the square local-variance window, pixels (odd).
    threshold : threshold on the local standard deviation (intensity units); None = automatic,
        ``median + k * robust_sigma`` of the local-std image of the background-subtracted frame.
    threshold_k : the ``k`` of the automatic threshold.
    min_area, max_area : accepted connected-component areas, pixels (at scale 1).
    """

    window: int = 5
    threshold: float | None = None
    threshold_k: float = 6.0
    min_area: int = 20
    max_area: int = 1500


@dataclass(frozen=True)
class TrackingConfig:
    """Left-to-right constant-velocity linking with cross-correlation refinement.

    min_length : tracks shorter than this many frames are dropped.
    search_radius : maximum distance between a track's predicted position and a detection,
        pixels.
    max_gap : frames a track may go undetected (position predicted) before it ends.
    max_speed : largest plausible speed along x, pixels/frame; min_speed the smallest
        (negative allows a little backward jitter).
    max_dy : largest plausible motion across the flow per frame, pixels.
    refine : refine positions by cross-correlating the cell patch between consecutive frames.
    refine_search : half-size of the cross-correlation search window around the prediction, px.
    interference_distance : tracks that come closer than this (centre to centre, pixels) to
        another object are flagged ``interference``.
    """

    min_length: int = 6
    search_radius: float = 10.0
    max_gap: int = 2
    max_speed: float = 40.0
    min_speed: float = -2.0
    max_dy: float = 4.0
    refine: bool = True
    refine_search: int = 4
    interference_distance: float = 18.0


@dataclass(frozen=True)
class CropConfig:
    """Cell crops.

    size : crop side, pixels (the models expect 31).
    scale : resampling factor applied before cropping, so that cells of a camera with another
        magnification match the training data (a red cell ~8-12 px across in a 31x31 crop);
        1.0 keeps the video's scale.
    """

    size: int = 31
    scale: float = 1.0


@dataclass(frozen=True)
class FrontEndConfig:
    """All front-end parameters (video -> tracked 31x31 sequences)."""

    reader: ReaderConfig = field(default_factory=ReaderConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    crops: CropConfig = field(default_factory=CropConfig)


@dataclass(frozen=True)
class ReportConfig:
    """How per-track calls become the per-acquisition figure.

    reliable_threshold : a track is reliable when stage 1's p_reliable >= this.
    flipping_threshold : a reliable track is flipping when 1 - p_tank_treading >= this.
    confidence : level of the binomial (Wilson) interval on the tank-treading fraction.
    """

    reliable_threshold: float = 0.5
    flipping_threshold: float = 0.5
    confidence: float = 0.95


def to_dict(cfg: Any) -> dict:
    """A plain, JSON-serialisable dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def params_id(*cfgs: Any, length: int = 12) -> str:
    """A short, stable hash of one or more config dataclasses (or plain JSON-able objects).

    Examples
    --------
    >>> params_id(FrontEndConfig()) == params_id(FrontEndConfig())
    True
    >>> params_id(FrontEndConfig()) == params_id(FrontEndConfig(crops=CropConfig(scale=2.0)))
    False
    """
    payload = [to_dict(c) if dataclasses.is_dataclass(c) else c for c in cfgs]
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
