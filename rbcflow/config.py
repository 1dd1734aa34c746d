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
    max_memory_mb : the sampled frames are held together to take their median; when
        ``n_frames`` of them would exceed this many MiB, fewer frames are used (with a warning),
        so that the peak memory stays bounded whatever the frame size.
    """

    n_frames: int = 100
    max_memory_mb: int = 400


@dataclass(frozen=True)
class DetectionConfig:
    """Variance-filter detection on the background-subtracted frame.

    downsample : the frame is averaged over ``downsample x downsample`` blocks before the
        background is subtracted and the variance filtered (a red cell, ~10 px across, stays
        ~3 blocks wide): 16x fewer pixels to filter, and the block average lowers the noise
        4x; the centres are then refined at full resolution.
    window : side of the square local-variance window, pixels of the original video; the
        filter uses the nearest odd number of blocks (at least 3).
    threshold : threshold on the local standard deviation of the (downsampled)
        background-subtracted frame, intensity units; None = automatic,
        ``median + k * robust_sigma`` of that local-std image on frames sampled through the
        video (computed once per video, in the background pass).
    threshold_k : the ``k`` of the automatic threshold.
    min_area, max_area : accepted connected-component areas, pixels (of the original video).
    refine_centroid : replace each component's centroid by the centroid of the absolute
        background-subtracted intensity in a cell-sized window at full resolution (sub-pixel;
        the component centroid is only good to about a block).
    """

    downsample: int = 4
    window: int = 9
    threshold: float | None = None
    threshold_k: float = 6.0
    min_area: int = 20
    max_area: int = 1500
    refine_centroid: bool = True


@dataclass(frozen=True)
class TrackingConfig:
    """Left-to-right constant-velocity linking with cross-correlation refinement.

    min_length : tracks shorter than this many frames are dropped.
    search_radius : maximum distance between a track's predicted position and a detection,
        pixels.
    max_gap : frames a track may go undetected (position from the cross-correlation, or
        predicted) before it ends; trailing undetected frames are removed from a track.
    max_speed : largest plausible speed along x, pixels/frame; min_speed the smallest
        (negative allows a little backward jitter). They gate a new track's second detection,
        before it has a velocity.
    max_dy : largest plausible motion across the flow per frame, pixels.
    refine : refine positions by cross-correlating the cell patch between consecutive frames.
    refine_search : half-size of the cross-correlation search window around the prediction, px.
    centroid_weight : weight of the detection centroid against the cross-correlation position
        (previous position + measured displacement) in the refined position; the correlation is
        the more precise frame-to-frame, the centroid keeps the position from drifting.
    min_correlation : normalised correlation below which the cross-correlation is not trusted.
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
    refine_search: int = 3
    centroid_weight: float = 0.3
    min_correlation: float = 0.5
    interference_distance: float = 18.0


@dataclass(frozen=True)
class CropConfig:
    """Cell crops.

    size : crop side, pixels (the models expect 31).
    scale : resampling factor applied before cropping, so that cells of a camera with another
        magnification match the training data (a red cell ~8-12 px across in a 31x31 crop);
        1.0 keeps the video's scale; None = automatic, ``target_diameter`` divided by the cell
        diameter estimated on the video.
    target_diameter : cell diameter, pixels, that the automatic scale aims at: the median of
        :func:`rbcflow.crops.crop_diameter` over the real reliable training crops (13.0 on
        the Darrin et al. sample: 3,339 crops, every third frame of its tank-treading and
        flipping sequences); this footprint includes the blurred rim, so it exceeds the 8-12 px
        one reads by eye.
    """

    size: int = 31
    scale: float | None = 1.0
    target_diameter: float = 13.0


@dataclass(frozen=True)
class FrontEndConfig:
    """All front-end parameters (video -> tracked 31x31 sequences).

    queue_frames : frames decoded ahead by the reading thread (bounded, for memory).
    batch_frames : frames whose detections are refined together (fewer, larger numpy calls;
        the frames of a batch are held at once).
    """

    reader: ReaderConfig = field(default_factory=ReaderConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    queue_frames: int = 8
    batch_frames: int = 16


@dataclass(frozen=True)
class ReportConfig:
    """How per-track calls become the per-acquisition figure.

    reliable_threshold : a track is reliable when stage 1's p_reliable >= this.
    flipping_threshold : a reliable track is flipping when 1 - p_tank_treading >= this.
    confidence : level of the binomial (Wilson) interval on the tank-treading fraction.
    max_border_cut : a track whose cell is cut by the top or bottom border of the field in more
        than this share of its frames is unreliable (a partial cell), whatever stage 1 says;
        None turns the rule off.
    max_size_ratio : a track whose median detected area is more than this multiple of the
        video's one-cell area is unreliable (two cells moving as one object), whatever stage 1
        says; None turns the rule off.
    """

    reliable_threshold: float = 0.5
    flipping_threshold: float = 0.5
    confidence: float = 0.95
    max_border_cut: float | None = 0.5
    max_size_ratio: float | None = 1.6


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
