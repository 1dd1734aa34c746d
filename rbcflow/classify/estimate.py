"""The tank-treading fraction corrected for the classifiers' own errors.

Counting the calls (:func:`rbcflow.classify.labels.fraction`) is biased on a patient the models
never saw: stage 2's error rates and the acquisition's class balance (70-99% tank-treading) are
not those of its balanced training set, and stage 1 lets a small share of the many unreliable
tracks (15-30 per reliable one) through, mostly called flipping. This module corrects the count
with error rates validated on held-out patients (:class:`ValidatedRates`, counts):

* :func:`adjusted_fraction`: adjusted classify-and-count (Forman, Data Min. Knowl. Discov.
  17:164, 2008; Rogan & Gladen, Am. J. Epidemiol. 107:71, 1978), after removing the leaked
  unreliable tracks that the stage-1 rates predict;
* :func:`bootstrap_interval`: a percentile interval that adds the rates' own uncertainty to
  the counting error;
* the soft alternative, EM re-estimation of the prior on probabilities calibrated by
  temperature scaling, is :mod:`rbcflow.classify.posterior`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from rbcflow.classify.labels import fraction
from rbcflow.config import EstimateConfig, ReportConfig

_CFG = EstimateConfig()
_CONFIDENCE = ReportConfig().confidence


_PAIRS = dict(tt_as_tt="tt_n", fl_as_tt="fl_n", rel_kept="rel_n", unrel_kept="unrel_n")
_PAIRS["leak_as_tt"] = "leak_n"


@dataclass(frozen=True)
class ValidatedRates:
    """The classifiers' error rates on held-out patients, as counts (out-of-fold predictions).

    tt_as_tt, tt_n : stage 2: tank-treading tracks called tank-treading / all tank-treading.
    fl_as_tt, fl_n : stage 2: flipping tracks called tank-treading / all flipping.
    rel_kept, rel_n : stage 1 (with the geometric rules): reliable tracks kept / all reliable.
    unrel_kept, unrel_n : stage 1: unreliable tracks let through / all unreliable.
    leak_as_tt, leak_n : of the leaked unreliable tracks, those stage 2 called tank-treading /
        all of them (``leak_n`` may be 0 when none leaked). Counts, not rates: the rates' own
        uncertainty enters the interval (:func:`bootstrap_interval`). Point rates: ``tt_rate``,
        ``fl_rate``, ``rel_rate``, ``leak_rate``, ``leak_tt_rate`` (NaN where ``n == 0``).
        Effective counts (real numbers) are accepted: :func:`rbcflow.classify.calibration.
        rates_at` divides counts by the rates' spread between patients.
    """

    tt_as_tt: int
    tt_n: int
    fl_as_tt: int
    fl_n: int
    rel_kept: int
    rel_n: int
    unrel_kept: int
    unrel_n: int
    leak_as_tt: int = 0
    leak_n: int = 0

    def __post_init__(self):
        for name in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, name)
            ok = isinstance(value, Real) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ValueError(f"ValidatedRates.{name} must be a count (>= 0), got {value!r}")
            object.__setattr__(self, name, int(value) if isinstance(value, Integral) else value)
        for k, n in _PAIRS.items():
            if getattr(self, k) > getattr(self, n):
                raise ValueError(f"ValidatedRates.{k} exceeds {n}")

    def to_dict(self) -> dict:
        """The counts as a plain dict (JSON-friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> ValidatedRates:
        """From :meth:`to_dict`'s dict; a missing, unknown or bad field raises ValueError."""
        if not isinstance(d, Mapping):
            raise ValueError(f"ValidatedRates needs a dict, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown, missing = [k for k in d if k not in names], [k for k in names if k not in d]
        if unknown or missing:
            raise ValueError(f"ValidatedRates: unknown fields {unknown}, missing fields {missing}")
        return cls(**d)

    def _rate(self, k: str) -> float:
        n = getattr(self, _PAIRS[k])
        return getattr(self, k) / n if n else math.nan

    tt_rate = property(lambda s: s._rate("tt_as_tt"), doc="P(called TT | TT), stage 2's recall.")
    fl_rate = property(lambda s: s._rate("fl_as_tt"), doc="P(called TT | flipping).")
    rel_rate = property(lambda s: s._rate("rel_kept"), doc="P(kept | reliable).")
    leak_rate = property(lambda s: s._rate("unrel_kept"), doc="P(kept | unreliable), leakage.")
    leak_tt_rate = property(lambda s: s._rate("leak_as_tt"), doc="P(called TT | leaked).")


def _adjust(tt, fl, rej, a, b, r1, u1, q, leakage: bool):
    """Vectorised core of :func:`adjusted_fraction` (arrays broadcast; NaN where degenerate)."""
    tt, fl, rej = (np.asarray(x, dtype=float) for x in (tt, fl, rej))
    kept = tt + fl
    with np.errstate(divide="ignore", invalid="ignore"):
        if leakage:
            det = r1 - u1
            rel = np.clip((kept * (1 - u1) - rej * u1) / det, 0, None)
            leaked = np.clip((rej * r1 - kept * (1 - r1)) / det, 0, None) * u1
            q = np.where(np.isnan(q) & (leaked == 0), 0.0, q)  # no leak: its calls don't matter
        else:  # no leakage term: its rate and its calls play no part
            det, rel, leaked, q = np.ones_like(kept), kept, np.zeros_like(kept), 0.0
        tt_c = np.clip(tt - leaked * q, 0, None)
        fl_c = np.clip(fl - leaked * (1 - q), 0, None)
        pi = np.clip((tt_c / (tt_c + fl_c) - b) / (a - b), 0, 1)
    ok = (a > b) & (tt_c + fl_c > 0) & (det > 0) & np.isfinite(pi)
    return np.where(ok, pi, np.nan), rel, leaked, tt_c, fl_c


def _counts(*values: int) -> list[int]:
    if any(isinstance(v, bool) or not isinstance(v, Integral) or v < 0 for v in values):
        raise ValueError(f"counts must be ints >= 0, got {values}")
    return [int(v) for v in values]


def adjusted_fraction(
    n_tt: int, n_fl: int, n_rejected: int, rates: ValidatedRates, leakage: bool = True
) -> dict:
    """Adjusted classify-and-count, after removing the expected leaked unreliable tracks.

    Stage 1: with keep rates ``r1`` (reliable) and ``u1`` (unreliable), the kept and rejected
    counts solve ``kept = R r1 + U u1``, ``rejected = R (1 - r1) + U (1 - u1)`` for the
    recording's reliable and unreliable counts R, U (clipped at 0); ``L = U u1`` of the kept
    tracks are leaked, and their expected calls (``L q`` tank-treading, ``L (1 - q)`` flipping,
    q from ``leak_as_tt / leak_n``) are taken off the called counts (clipped at 0). Stage 2: the
    corrected share called tank-treading ``s = a pi + b (1 - pi)``, with recall ``a`` and false
    tank-treading rate ``b``, gives ``pi = (s - b) / (a - b)``, clipped to [0, 1] (Forman
    2008). It assumes the rates hold on the new patient and that stage 1 keeps reliable tracks
    of both kinds alike; ``leakage=False`` skips stage 1's correction.

    Returns
    -------
    dict with tank_treading_fraction, estimated_reliable (R, in the recording),
    estimated_leaked (L), tank_treading_corrected, flipping_corrected (calls of reliable kept
    tracks) and reason (``""``, or why the fraction is NaN: no kept track, no validated
    tracks, a classifier no better than chance on validation, every kept track leaked).

    Examples
    --------
    >>> r = ValidatedRates(90, 100, 10, 100, 90, 100, 2, 100, 20, 100)
    >>> out = adjusted_fraction(640, 260, 1500, r)
    >>> round(out["tank_treading_fraction"], 4), round(out["estimated_leaked"], 2)
    (0.7849, 28.64)
    """
    n_tt, n_fl, n_rejected = _counts(n_tt, n_fl, n_rejected)
    a, b = rates.tt_rate, rates.fl_rate
    r1, u1, q = rates.rel_rate, rates.leak_rate, rates.leak_tt_rate
    out = _adjust(n_tt, n_fl, n_rejected, a, b, r1, u1, q, leakage)
    pi, rel, leaked, tt_c, fl_c = (float(x) for x in out)
    reason = ""
    if n_tt + n_fl == 0:
        reason = "no kept track"
    elif math.isnan(a - b) or (leakage and math.isnan(r1 - u1)):
        reason = "no validated stage-1 or stage-2 tracks of one kind"
    elif a <= b:
        reason = "stage 2 no better than chance on validation (recall <= false tank-treading)"
    elif leakage and r1 <= u1:
        reason = "stage 1 no better than chance on validation (keeps unreliable as often)"
    elif math.isnan(leaked) or (math.isnan(q) and leaked > 0):
        reason = "tracks leak but no validated leaked track says how stage 2 calls them"
    elif math.isnan(pi):
        reason = "every kept track is explained as leaked"
    return {
        "tank_treading_fraction": pi if not reason else math.nan,
        "estimated_reliable": rel,
        "estimated_leaked": leaked,
        "tank_treading_corrected": tt_c,
        "flipping_corrected": fl_c,
        "reason": reason,
    }


def bootstrap_interval(
    n_tt: int,
    n_fl: int,
    n_rejected: int,
    rates: ValidatedRates,
    confidence: float = _CONFIDENCE,
    n_boot: int = _CFG.n_boot,
    seed: int = _CFG.seed,
    leakage: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`adjusted_fraction`, classifiers' error included.

    Each replicate redraws the acquisition's calls (multinomial over tank-treading, flipping
    and rejected calls with the observed shares and total: the counting error) and every rate
    from ``Beta(k + 1, n - k + 1)`` of its validated count pair (the rates' uncertainty, the
    posterior under a uniform prior), then recomputes the fraction (Efron & Tibshirani, An
    Introduction to the Bootstrap, 1993, ch. 13). Vectorised over replicates; repeatable for a
    given ``seed``.

    Returns
    -------
    (low, high) : ``(nan, nan)`` without tracks or when over half the replicates are degenerate
        (a classifier no better than chance; see :func:`adjusted_fraction`).
    """
    n_tt, n_fl, n_rejected = _counts(n_tt, n_fl, n_rejected)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    total = n_tt + n_fl + n_rejected
    if n_tt + n_fl == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    calls = rng.multinomial(total, np.array([n_tt, n_fl, n_rejected]) / total, size=n_boot)

    def draw(k: str) -> np.ndarray:
        hit, n = getattr(rates, k), getattr(rates, _PAIRS[k])
        return rng.beta(hit + 1, n - hit + 1, size=n_boot)

    a, b = draw("tt_as_tt"), draw("fl_as_tt")
    r1, u1, q = (draw(k) if leakage else 0.0 for k in ("rel_kept", "unrel_kept", "leak_as_tt"))
    pi = _adjust(calls[:, 0], calls[:, 1], calls[:, 2], a, b, r1, u1, q, leakage)[0]
    pi = pi[np.isfinite(pi)]
    if 2 * pi.size < n_boot:
        return math.nan, math.nan
    low, high = np.quantile(pi, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


METHODS = ("naive", "stage2", "adjusted")
"""The estimators of :func:`estimate_fraction`."""


def estimate_fraction(
    n_tt: int,
    n_fl: int,
    n_rejected: int,
    rates: ValidatedRates | None,
    method: str = "stage2",
    confidence: float = _CONFIDENCE,
    n_boot: int = _CFG.n_boot,
    seed: int = _CFG.seed,
) -> dict:
    """The acquisition's tank-treading fraction and interval, by ``method``.

    ``"naive"``: the count with its Wilson interval (:func:`~rbcflow.classify.labels.fraction`);
    ``"stage2"``: stage 2's validated confusion corrected (:func:`adjusted_fraction` without
    the leakage term), its interval the union of the :func:`bootstrap_interval` without and
    with the leakage term (the leaked tracks' effect is bracketed, not subtracted);
    ``"adjusted"``: both corrections, both in the interval. The
    estimated leakage is returned by the corrected methods in any case (the verdict uses it).
    Without ``rates`` a corrected method falls back to the naive one, saying so in ``note``.

    Returns
    -------
    dict with tank_treading_fraction, ci_low, ci_high, method (the one used), estimated_leaked
    and estimated_reliable (NaN and the kept count for the naive method, which estimates
    neither), note (``""`` or why the figure is naive or NaN).

    Examples
    --------
    >>> out = estimate_fraction(8, 2, 30, None)
    >>> out["method"], out["tank_treading_fraction"], out["note"]
    ('naive', 0.8, 'no validated rates: naive count')
    """
    n_tt, n_fl, n_rejected = _counts(n_tt, n_fl, n_rejected)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    note = ""
    if method != "naive" and rates is None:
        method, note = "naive", "no validated rates: naive count"
    if method == "naive":
        f = fraction(n_tt, n_fl, confidence)
        value, low, high = f["tank_treading_fraction"], f["ci_low"], f["ci_high"]
        leaked, reliable = math.nan, float(n_tt + n_fl)
        note = note or ("no reliable track" if n_tt + n_fl == 0 else "")
    else:
        leakage = method == "adjusted"
        point = adjusted_fraction(n_tt, n_fl, n_rejected, rates, leakage=leakage)
        value, note = point["tank_treading_fraction"], point["reason"]
        both = point if leakage else adjusted_fraction(n_tt, n_fl, n_rejected, rates)
        leaked, reliable = both["estimated_leaked"], both["estimated_reliable"]
        low, high = math.nan, math.nan
        if not note:
            low, high = bootstrap_interval(
                n_tt, n_fl, n_rejected, rates, confidence, n_boot, seed, leakage=leakage
            )
        if not note and not leakage and not both["reason"]:
            # the leak is real but its rate does not transfer between patients well enough to
            # subtract (docs/method.md): the interval spans the figure with it subtracted too
            lk = bootstrap_interval(n_tt, n_fl, n_rejected, rates, confidence, n_boot, seed)
            if all(math.isfinite(v) for v in lk):
                low, high = min(low, lk[0]), max(high, lk[1])
    out = dict(tank_treading_fraction=value, ci_low=low, ci_high=high, method=method)
    return {**out, "estimated_leaked": leaked, "estimated_reliable": reliable, "note": note}
