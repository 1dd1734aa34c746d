"""The one place where probabilities and geometry become labels, and labels a fraction.

:func:`label_tracks` is the label rule (stage-1 probability and the front end's geometric and
context rules, :func:`track_rules`, decide reliability, stage-2 probability decides the kind);
:func:`fraction` is the tank-treading fraction with its Wilson interval. Inference returns
probabilities only; the pipeline, evaluation and the review all label through here, so a
threshold means the same thing everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

import numpy as np

from rbcflow import schema
from rbcflow.config import ReportConfig


def label_tracks(
    p_reliable: np.ndarray,
    p_tank_treading: np.ndarray,
    cfg: ReportConfig | None = None,
    *,
    border_cut: np.ndarray | None = None,
    size_ratio: np.ndarray | None = None,
    rule: np.ndarray | None = None,
    neighbour_frames: np.ndarray | None = None,
    contrast_rel: np.ndarray | None = None,
    sharpness_rel: np.ndarray | None = None,
    sharpness_trend: np.ndarray | None = None,
) -> np.ndarray:
    """Labels from the two probabilities and the report thresholds.

    A track is reliable when ``p_reliable >= reliable_threshold`` and no rule of
    :func:`geometry_rules` or :func:`context_rules` rejects it; a reliable track is flipping when
    ``1 - p_tank_treading >= flipping_threshold``, tank-treading otherwise. A NaN
    ``p_reliable`` counts as 0 (unreliable), a NaN ``p_tank_treading`` as 0.5.

    Parameters
    ----------
    p_reliable, p_tank_treading : (N,) float arrays, stage 1's and stage 2's probabilities.
    cfg : thresholds and geometric limits (:class:`~rbcflow.config.ReportConfig`).
    border_cut, size_ratio : (N,) float arrays of the front end's geometry, or None (sequences
        cut by another front end have none: no geometric rule applies).
    rule : (N,) object array, :func:`track_rules` already computed for these tracks (so it
        runs once per track); computed here from the front end's columns when None.
    neighbour_frames, contrast_rel, sharpness_rel, sharpness_trend : (N,) float arrays of the
        front end's context columns, or None (:func:`context_rules`).

    Returns
    -------
    (N,) object ndarray of ``tank-treading``, ``flipping``, ``unreliable``.

    Examples
    --------
    >>> list(label_tracks([0.9, 0.9, 0.2], [0.8, 0.3, 0.9]))
    ['tank-treading', 'flipping', 'unreliable']
    """
    cfg = cfg or ReportConfig()
    p_rel = np.asarray(p_reliable, dtype=float)
    p_tt = np.asarray(p_tank_treading, dtype=float)
    if rule is None:
        rule = track_rules(
            len(p_rel),
            cfg,
            border_cut=border_cut,
            size_ratio=size_ratio,
            neighbour_frames=neighbour_frames,
            contrast_rel=contrast_rel,
            sharpness_rel=sharpness_rel,
            sharpness_trend=sharpness_trend,
        )
    reliable = np.nan_to_num(p_rel, nan=0.0) >= cfg.reliable_threshold
    reliable &= np.asarray(rule, dtype=object) == ""
    flipping = (1 - np.nan_to_num(p_tt, nan=0.5)) >= cfg.flipping_threshold
    out = np.where(
        ~reliable,
        schema.LABEL_NAMES[schema.UNRELIABLE],
        np.where(
            flipping, schema.LABEL_NAMES[schema.FLIPPING], schema.LABEL_NAMES[schema.TANK_TREADING]
        ),
    )
    return out.astype(object)


def geometry_rules(
    n: int,
    cfg: ReportConfig,
    border_cut: np.ndarray | None = None,
    size_ratio: np.ndarray | None = None,
) -> np.ndarray:
    """Which tracks the front end's geometry alone makes unreliable, and why.

    Two kinds of unreliable track are defined by geometry, not appearance: a cell cut by the
    top or bottom border of the field (``border_cut > max_border_cut``: the crops never show
    the whole cell) and two cells moving as one detected object (``size_ratio >
    max_size_ratio``: the crops show a pair). Stage 1 learnt them from few examples; the
    front end measures them directly. NaN measures (unknown) never reject.

    Returns
    -------
    (n,) object ndarray
        ``"cut by border"``, ``"two cells"`` or ``""`` per track.
    """
    rule = np.full(n, "", dtype=object)
    if size_ratio is not None and cfg.max_size_ratio is not None:
        big = np.nan_to_num(np.asarray(size_ratio, float), nan=0.0) > cfg.max_size_ratio
        rule[big] = "two cells"
    if border_cut is not None and cfg.max_border_cut is not None:
        cut = np.nan_to_num(np.asarray(border_cut, float), nan=0.0) > cfg.max_border_cut
        rule[cut] = "cut by border"
    return rule


def context_rules(
    n: int,
    cfg: ReportConfig,
    neighbour_frames: np.ndarray | None = None,
    contrast_rel: np.ndarray | None = None,
    sharpness_rel: np.ndarray | None = None,
    sharpness_trend: np.ndarray | None = None,
) -> np.ndarray:
    """Which tracks what the front end saw around them makes unreliable, and why.

    The front end sees every detection of the video, not only the crop: it measures per track
    (:mod:`rbcflow.frontend.tracks`) how often another detection lay in the crop window
    (``neighbour_frames > max_neighbour_frames``: "another object in the crop"), the cell's
    contrast and sharpness relative to the acquisition's typical track (``contrast_rel <
    min_contrast_rel``: "low contrast"; ``sharpness_rel < min_sharpness_rel``: "out of
    focus") and how its sharpness changed along the track (``|sharpness_trend| >
    max_focus_drift``: "focus drift"). Each rule is off when its threshold is None or its
    column is not given; NaN measures (unknown) never reject. A track several rules reject
    gets the first reason in that order.

    Returns
    -------
    (n,) object ndarray
        ``"another object in the crop"``, ``"low contrast"``, ``"out of focus"``,
        ``"focus drift"`` or ``""`` per track.

    Examples
    --------
    >>> cfg = ReportConfig(min_sharpness_rel=0.7, max_focus_drift=0.5)
    >>> list(context_rules(3, cfg, sharpness_rel=[1.0, 0.6, 0.9], sharpness_trend=[0, 0, -0.8]))
    ['', 'out of focus', 'focus drift']
    """

    def col(values: np.ndarray | None) -> np.ndarray:
        return np.asarray(values, dtype=float).reshape(n)

    rule = np.full(n, "", dtype=object)
    # From the last reason to the first: the first that applies is the one kept.
    if sharpness_trend is not None and cfg.max_focus_drift is not None:
        rule[np.abs(np.nan_to_num(col(sharpness_trend), nan=0.0)) > cfg.max_focus_drift] = (
            "focus drift"
        )
    if sharpness_rel is not None and cfg.min_sharpness_rel is not None:
        rule[np.nan_to_num(col(sharpness_rel), nan=np.inf) < cfg.min_sharpness_rel] = "out of focus"
    if contrast_rel is not None and cfg.min_contrast_rel is not None:
        rule[np.nan_to_num(col(contrast_rel), nan=np.inf) < cfg.min_contrast_rel] = "low contrast"
    if neighbour_frames is not None and cfg.max_neighbour_frames is not None:
        rule[np.nan_to_num(col(neighbour_frames), nan=0.0) > cfg.max_neighbour_frames] = (
            "another object in the crop"
        )
    return rule


RULE_COLUMNS = (
    "border_cut",
    "size_ratio",
    "neighbour_frames",
    "contrast_rel",
    "sharpness_rel",
    "sharpness_trend",
)
"""The front end's TRACKS columns that :func:`track_rules` reads."""


def track_rules(n: int, cfg: ReportConfig, **columns: np.ndarray | None) -> np.ndarray:
    """:func:`geometry_rules` then :func:`context_rules`: per track, the geometric reason if
    any, else the context reason, else ``""``.

    Parameters
    ----------
    n : number of tracks.
    cfg : the rules' thresholds.
    **columns : (n,) float arrays named as in :data:`RULE_COLUMNS` (missing or None: that rule
        does not apply).

    Examples
    --------
    >>> cfg = ReportConfig(max_neighbour_frames=0.2)
    >>> list(track_rules(3, cfg, border_cut=[0.9, 0.9, 0], neighbour_frames=[0.5, 0, 0.5]))
    ['cut by border', 'cut by border', 'another object in the crop']
    """
    unknown = set(columns) - set(RULE_COLUMNS)
    if unknown:
        raise TypeError(f"unknown rule column(s) {sorted(unknown)}; known: {RULE_COLUMNS}")
    geometry = geometry_rules(n, cfg, columns.get("border_cut"), columns.get("size_ratio"))
    context = context_rules(n, cfg, *(columns.get(c) for c in RULE_COLUMNS[2:]))
    return np.where(geometry != "", geometry, context).astype(object)


def relabel(tracks, cfg: ReportConfig | None = None):
    """A ``tracks.csv`` table (p_reliable, p_tank_treading and the front end's columns) with
    its ``rule`` and ``label`` made again from all its columns (:func:`track_rules`,
    :func:`label_tracks`).

    The pipeline calls it once every track is known: the acquisition-relative columns
    (``contrast_rel``, ``sharpness_rel``, ``sharpness_trend``) are NaN while tracks are still
    being classified as they end. With the context rules off, it gives the labels the
    streaming classification gave.

    Parameters
    ----------
    tracks : DataFrame with ``p_reliable``, ``p_tank_treading`` and any of :data:`RULE_COLUMNS`.
    cfg : thresholds.

    Returns
    -------
    DataFrame, a copy with ``rule`` and ``label`` replaced.
    """
    cfg = cfg or ReportConfig()
    out = tracks.copy()
    columns = {c: out[c].to_numpy(dtype=float) for c in RULE_COLUMNS if c in out.columns}
    rule = track_rules(len(out), cfg, **columns)
    out["rule"] = rule
    out["label"] = label_tracks(
        out["p_reliable"].to_numpy(dtype=float),
        out["p_tank_treading"].to_numpy(dtype=float),
        cfg,
        rule=rule,
    )
    return out


def summarize(labels: Iterable[str], cfg: ReportConfig | None = None) -> dict:
    """Counts, fraction and Wilson interval from per-track labels.

    Returns
    -------
    dict with tracks, reliable, tank_treading, flipping, tank_treading_fraction, ci_low,
    ci_high (the last three NaN when no track is reliable).

    Examples
    --------
    >>> s = summarize(["tank-treading"] * 8 + ["flipping"] * 2 + ["unreliable"] * 10)
    >>> s["tracks"], s["reliable"], s["tank_treading_fraction"], round(s["ci_low"], 3)
    (20, 10, 0.8, 0.49)
    """
    cfg = cfg or ReportConfig()
    labels = list(labels)
    tt = sum(lab == schema.LABEL_NAMES[schema.TANK_TREADING] for lab in labels)
    fl = sum(lab == schema.LABEL_NAMES[schema.FLIPPING] for lab in labels)
    return {"tracks": len(labels), **fraction(tt, fl, cfg.confidence)}


def fraction(tank_treading: int, flipping: int, confidence: float = 0.95) -> dict:
    """The product's one number: tank-treading / (tank-treading + flipping), with its interval.

    Every fraction rbcflow reports or compares with (the report, evaluation, synthetic truth)
    is computed here.

    Returns
    -------
    dict with reliable, tank_treading, flipping, tank_treading_fraction, ci_low, ci_high (the
    last three NaN when ``tank_treading + flipping == 0``).

    Examples
    --------
    >>> f = fraction(3, 1)
    >>> f["tank_treading_fraction"], round(f["ci_low"], 3), round(f["ci_high"], 3)
    (0.75, 0.301, 0.954)
    """
    tt, fl = int(tank_treading), int(flipping)
    n = tt + fl
    low, high = wilson_interval(tt, n, confidence)
    return {
        "reliable": n,
        "tank_treading": tt,
        "flipping": fl,
        "tank_treading_fraction": tt / n if n else float("nan"),
        "ci_low": low,
        "ci_high": high,
    }


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps close to its
    nominal coverage for small counts and proportions near 0 or 1, which is where a patient's
    tank-treading fraction can sit (Newcombe, Stat. Med. 17:857, 1998).

    Parameters
    ----------
    successes : int
        Number of successes (tank-treading tracks), ``0 <= successes <= n``.
    n : int
        Number of trials (reliable tracks).
    confidence : float
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float
        The interval, ``0 <= low <= successes / n <= high <= 1``; ``(nan, nan)`` when ``n == 0``
        (no reliable track: no figure to report).

    Examples
    --------
    >>> low, high = wilson_interval(81, 263)
    >>> round(low, 4), round(high, 4)
    (0.2553, 0.3662)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the exact bounds at 0/n and n/n are 0 and 1; clamp away rounding
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
