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

from rbcflow.schema import CROP_SIZE, MIN_TRACK_LENGTH

PIPELINE_GENERATION = "5"
"""Generation of the pipeline's results, hashed into every :func:`params_id`.

Bump it in the same commit as any change that makes earlier results incompatible (a changed
algorithm, a new or renamed output column): results of an older generation then get another
``params_id`` and are analysed again instead of being reported as ``skipped`` (the same idea as
dcnum's pipeline identifiers). History: 1 = rbcflow 0.1.0 as first released; 2 = the
package layout of docs/architecture.md (same numbers, new provenance fields); 3 = report.csv's
``verdict``, ``verdict_reason``, ``fraction_counted``, ``estimated_leaked`` and
``fraction_method`` columns, the corrected fraction (EM), stage 1's threshold 0.7, the context
columns of ``tracks.csv``, models validated on left-out patients and dates, and no border
frame in the classifiers' crops (``classified_frames``); 4 = the front end's gap closing,
fragment joining, close-pair splitting and per-frame gain/offset normalisation (positions.csv's
``detected``), report.csv's ``model_origin``, reviewed and sample-metadata columns; 5 = the
front end's fragment joining by assignment over a 24-frame window, lane gating, full-resolution
pair splitting and a threshold that follows each frame's noise (issue 12).
"""


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
    split_distance, split_factor, split_area : a component of at least ``split_area`` times
        one cell's area whose variance maxima lie farther apart than ``split_distance`` px
        (calibrated: ``split_factor`` x the footprint diameter, ~12 px for 10 px cells) is
        split (:mod:`rbcflow.frontend.splitting`); ``split_distance`` 0 never splits.
    normalise : subtract each frame's fitted ``gain * background + offset``
        (:mod:`rbcflow.frontend.normalise`) instead of the background: flicker and drift.
    pair_mass, pair_factor : a detection left whole whose footprint mass is at least
        ``pair_mass`` one-cell areas is cut in two at full resolution when its two halves'
        centres lie at least ``pair_factor`` x the footprint diameter apart
        (:func:`rbcflow.frontend.splitting.split_pairs`: cells ~14 px apart); ``pair_mass`` 0
        never does.
    adaptive_threshold : scale the threshold per frame by that frame's noise over the
        calibration frames' (:meth:`rbcflow.frontend.detection.FrameDetector.frame_threshold`:
        the median local variance of the normalised background).
    """

    downsample: int = 4
    window: int = 9
    threshold: float | None = None
    threshold_k: float = 6.0
    min_area: int = 20
    max_area: int = 1500
    refine_centroid: bool = True
    split_distance: float = 12.0
    split_factor: float = 0.78
    split_area: float = 1.1
    normalise: bool = True
    pair_mass: float = 1.8
    pair_factor: float = 0.9
    adaptive_threshold: bool = True


@dataclass(frozen=True)
class TrackingConfig:
    """Left-to-right constant-velocity linking with cross-correlation refinement.

    min_length : tracks shorter than this many frames are dropped (default
        :data:`rbcflow.schema.MIN_TRACK_LENGTH`, as the authors did).
    search_radius : maximum distance between a track's predicted position and a detection,
        pixels.
    max_gap : frames a track may go undetected (position from the cross-correlation, or
        predicted) before it ends (gap closing, trackpy's ``memory``; 3: faint episodes last
        1-3 frames, issue 12); trailing undetected frames are removed from a track.
    max_speed : largest plausible speed along x, pixels/frame; min_speed the smallest
        (negative allows a little backward jitter). They gate a new track's second detection,
        before it has a velocity.
    max_dy : largest plausible motion across the flow per frame, pixels: it gates a new
        track's second detection and every track's assignment (a detection pulled farther off
        the lane is the merged blob of the cell and a neighbour).
    refine : refine positions by cross-correlating the cell patch between consecutive frames.
    refine_search : half-size of the cross-correlation search window around the prediction, px.
    centroid_weight : weight of the detection centroid against the cross-correlation position
        (previous position + measured displacement) in the refined position; the correlation is
        the more precise frame-to-frame, the centroid keeps the position from drifting.
    min_correlation : normalised correlation below which the cross-correlation is not trusted.
    interference_distance : tracks that come closer than this (centre to centre, pixels) to
        another object are flagged ``interference``.
    join_window, join_radius, join_growth : fragment joining (:mod:`rbcflow.frontend.joining`):
        an ended track waits ``join_window`` frames (0: no joining) for a fragment starting
        within ``join_radius + join_growth * (gap - 1)`` px of its prediction along the flow.
    join_dy : and within ``join_dy + 0.1 * gap`` px of it across the flow (cells keep their
        lane; a neighbour on the next lane is ~14 px away at the closest).
    join_overlap : a fragment may start up to this many frames before the ended track's last
        frame (two tracks on one cell for a frame or two); the overlap is cut from the first.
    min_detected : a kept track also needs this many detected frames (gap-closed and joined
        frames are no evidence of a cell: a short track made mostly of them was a false one).
    motion_window : a track's motion model (:mod:`rbcflow.frontend.motion`) is a line fitted to
        its last this many detected positions; it predicts the track's next position and
        steadies poorly measured centres (0: no model, a 5-frame velocity).
    motion_noise : the ``q`` of that model, px: a position kept is ``lam * measured + (1 -
        lam) * line``, ``lam = q**2 / (q**2 + sigma**2)``, sigma the track's own scatter about
        its line (a sharp cell ~0.3 px keeps its measured centre, a blurred one ~2-3 px
        follows its line).
    """

    min_length: int = MIN_TRACK_LENGTH
    search_radius: float = 10.0
    max_gap: int = 3
    max_speed: float = 40.0
    min_speed: float = -2.0
    max_dy: float = 4.0
    refine: bool = True
    refine_search: int = 3
    centroid_weight: float = 0.3
    min_correlation: float = 0.5
    interference_distance: float = 18.0
    join_window: int = 24
    join_radius: float = 10.0
    join_growth: float = 1.0
    join_dy: float = 6.0
    join_overlap: int = 2
    motion_window: int = 30
    min_detected: int = MIN_TRACK_LENGTH
    motion_noise: float = 1.0


@dataclass(frozen=True)
class CropConfig:
    """Cell crops.

    size : crop side, pixels (the models expect :data:`rbcflow.schema.CROP_SIZE`, 31).
    scale : resampling factor applied before cropping, so that cells of a camera with another
        magnification match the training data (a red cell ~8-12 px across in a 31x31 crop);
        1.0 keeps the video's scale; None = automatic, ``target_diameter`` divided by the cell
        diameter estimated on the video.
    target_diameter : cell diameter, pixels, that the automatic scale aims at: the median of
        :func:`rbcflow.frontend.crops.crop_diameter` over the real reliable training crops (13.0 on
        the Darrin et al. sample: 3,339 crops, every third frame of its tank-treading and
        flipping sequences); this footprint includes the blurred rim, so it exceeds the 8-12 px
        one reads by eye.
    diameter_warn : at a fixed scale, a measured cell diameter outside this range relative to
        ``target_diameter`` warns (suggesting ``--scale auto``).
    training_background : background level of the training crops (real ones 100-140): 16-bit
        video is scaled to it (8-bit video is cropped as it is).
    """

    size: int = CROP_SIZE
    scale: float | None = 1.0
    target_diameter: float = 13.0
    diameter_warn: tuple[float, float] = (0.75, 1.35)
    training_background: float = 125.0


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

    reliable_threshold : a track is reliable when stage 1's p_reliable >= this. 0.8 since
        2026-12-02, measured end to end on held-out dates and patients (docs/method.md, "The
        operating point"): against 0.7 it lowers the fraction's error at 50-95 % unreliable
        (EM mean / max 0.081 / 0.297 -> 0.057 / 0.221; coverage 0.99 -> 0.93) because fewer
        unreliable tracks leak through, at the price of keeping 0.88-0.91 of the reliable cells
        instead of 0.95, flipping ones a little less often (0.86-0.89 against 0.90-0.94: ~0.01
        high on a recording with little leakage).
    flipping_threshold : a reliable track is flipping when 1 - p_tank_treading >= this.
    confidence : level of the binomial (Wilson) interval on the tank-treading fraction.
    max_border_cut : a track whose cell is cut by the top or bottom border of the field in more
        than this share of its frames is unreliable (a partial cell), whatever stage 1 says;
        None turns the rule off.
    max_size_ratio : a track whose median detected area is more than this multiple of the
        video's one-cell area is unreliable (two cells moving as one object), whatever stage 1
        says; None turns the rule off.
    max_neighbour_frames, min_contrast_rel, min_sharpness_rel, max_focus_drift : the context
        rules (:func:`rbcflow.classify.labels.context_rules`) on the front end's TRACKS columns
        of the same meaning; each None = rule off (the default, until their effect is measured
        on held-out data). A track is unreliable whatever stage 1 says when another detection
        lay in its crop window in more than ``max_neighbour_frames`` of its frames ("another
        object in the crop"), when ``contrast_rel < min_contrast_rel`` ("low contrast"), when
        ``sharpness_rel < min_sharpness_rel`` ("out of focus"), or when ``|sharpness_trend| >
        max_focus_drift`` ("focus drift": the cell enters or leaves the focal plane).
    """

    reliable_threshold: float = 0.8
    flipping_threshold: float = 0.5
    confidence: float = 0.95
    max_border_cut: float | None = 0.5
    max_size_ratio: float | None = 1.6
    max_neighbour_frames: float | None = None
    min_contrast_rel: float | None = None
    min_sharpness_rel: float | None = None
    max_focus_drift: float | None = None


@dataclass(frozen=True)
class EstimateConfig:
    """How the fraction is corrected for the classifiers' errors (``rbcflow.classify.estimate``).

    method : ``"em"`` (the default: the EM prior of the kept tracks' calibrated stage-2
        probabilities), ``"stage2"`` (the count corrected for stage 2's validated confusion),
        ``"adjusted"`` (the leaked unreliable tracks subtracted too) or ``"naive"`` (the plain
        count, Wilson interval); see :func:`rbcflow.classify.calibration.estimate_acquisition`.
        On held-out patients and dates (docs/method.md) ``em`` had the smallest fraction
        error; subtracting the leak made it larger (the leak rate varies too much between
        dates), so ``em`` and ``stage2`` bracket it in their intervals instead.
    n_boot, seed : bootstrap replicates of the interval and the seed that makes it repeatable.
    prob_clip : probabilities are clipped to [prob_clip, 1 - prob_clip] before taking logits.
    temperature_range : bounds of the temperature-scaling search (T > 0).
    em_tol, em_max_iter : convergence of the EM prior re-estimation (Saerens et al. 2002).
    em_pseudo_count : tracks of each kind added to EM's M step (a Beta(2, 2) belief): with ten
        tracks the plain maximum-likelihood prior runs to 0 or 1; with 150 it moves the figure
        by < 0.003.
    """

    method: str = "em"
    n_boot: int = 2000
    seed: int = 0
    prob_clip: float = 1e-6
    temperature_range: tuple[float, float] = (0.05, 20.0)
    em_tol: float = 1e-6
    em_max_iter: int = 200
    em_pseudo_count: float = 1.0


@dataclass(frozen=True)
class QualityConfig:
    """Display thresholds of the report's quality flags (``ok`` / ``check``).

    They mark a recording for a look and change no result: no track, label or fraction depends
    on them, so they are not part of :func:`params_id` (changing them re-analyses nothing).

    min_reliable_for_figure : fewer reliable tracks are flagged: the interval is too wide to
        compare visits.
    max_illumination_drift : largest relative change of the mean intensity, first vs last
        tenth of the video.
    max_speed_drift : largest relative change of the median cell speed, first vs last quarter
        of the tracks.
    max_unreliable_share : largest share of unreliable tracks; the real ratio is 15-30
        unreliable per reliable track (~94-97%).
    """

    min_reliable_for_figure: int = 100
    max_illumination_drift: float = 0.10
    max_speed_drift: float = 0.20
    max_unreliable_share: float = 0.97


@dataclass(frozen=True)
class VerdictConfig:
    """Thresholds of a figure's verdict, ``pass`` / ``check`` / ``fail``
    (:func:`rbcflow.report.verdict.verdict`; docs/user-guide.md, "Verdicts").

    max_ci_half_width : a wider half-interval, (ci_high - ci_low) / 2, is ``check``.
    leak_check, leak_fail : estimated unreliable tracks counted as reliable (``estimated_leaked``)
        per reliable track above which the figure is ``check``, ``fail``.
    cell_diameter_range : accepted cell diameter after the crop scale, px. Real held-out
        crops measure 12.1-12.9 px as recorded, 8.5-9.7 px magnified 0.7x and 13.8-15.1 px
        magnified 1.4x (``benchmarks/bench_scale.py``), where the default scale's fraction is
        off by up to 0.74 (0.7x) and 0.15 (1.4x).
    contrast_range : accepted cell contrast relative to the training crops' (1 = the same).
    quality_checks : quality indicators whose ``check`` makes the figure ``check``.
    """

    max_ci_half_width: float = 0.05
    leak_check: float = 0.15
    leak_fail: float = 0.5
    cell_diameter_range: tuple[float, float] = (10.5, 15.0)
    contrast_range: tuple[float, float] = (0.6, 1.5)
    quality_checks: tuple[str, ...] = ("share unreliable", "cell speed drift", "illumination drift")


def to_dict(cfg: Any) -> dict:
    """A plain, JSON-serialisable dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def params_id(*cfgs: Any, length: int = 12) -> str:
    """A short, stable hash of one or more config dataclasses (or plain JSON-able objects) and
    of :data:`PIPELINE_GENERATION`.

    Examples
    --------
    >>> params_id(FrontEndConfig()) == params_id(FrontEndConfig())
    True
    >>> params_id(FrontEndConfig()) == params_id(FrontEndConfig(crops=CropConfig(scale=2.0)))
    False
    """
    configs = [to_dict(c) if dataclasses.is_dataclass(c) else c for c in cfgs]
    payload = [PIPELINE_GENERATION, *configs]
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
