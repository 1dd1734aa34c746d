"""A patient's samples against their own baseline.

The tank-treading fraction is stable in a patient outside crises and patient-specific, and a
drop below the patient's own range (mean +/- 2 standard deviations over weekly draws out of
crisis) precedes a vaso-occlusive crisis by 2-3 days (Viallat et al., the patent summarised in
Darrin et al. 2023). :func:`assess` gives each sample of a history the band of the draws before
it and says whether it falls below.

Decisions
---------
- *Which draws make the baseline.* Those marked ``baseline`` (``yes``) in the sheet, when any
  is (at least 2; a marked draw whose verdict is ``check`` counts: the lab chose it as out of
  crisis, and a short recording's wide interval is the usual reason for ``check``; a ``fail``
  never counts); otherwise every earlier sample with a fraction and a ``pass`` verdict, once
  there are :attr:`~rbcflow.run_settings.SamplesConfig.baseline_min` of them.
- *Models are not mixed.* A sample is compared only with samples analysed with the same two
  models (their checksums): a model change shifts the figures, so a sample analysed with other
  models is marked ``other models`` and kept out of the band of the latest sample.
- *Sample standard deviation* (``ddof=1``): a baseline is a handful of draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rbcflow.run_settings import SamplesConfig

BELOW = "below baseline"
WITHIN = "within baseline"
ABOVE = "above baseline"  # not a warning sign: said so as not to call it "within"
NO_BASELINE = "no baseline yet"
OTHER_MODELS = "other models"


@dataclass(frozen=True)
class Band:
    """A baseline band: ``mean +/- k sd`` over ``n`` draws (``samples``: their ids)."""

    mean: float
    sd: float
    low: float
    high: float
    n: int
    samples: tuple[str, ...]


def _fraction(s: Mapping[str, Any]) -> float | None:
    v = s.get("tank_treading_fraction")
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def models_of(s: Mapping[str, Any]) -> tuple[str, str]:
    """The (stage-1, stage-2) model checksums a sample was analysed with."""
    return str(s.get("stage1_model") or ""), str(s.get("stage2_model") or "")


def band(values: Sequence[float], ids: Sequence[str], k: float = 2.0) -> Band:
    """Mean +/- ``k`` sample standard deviations of ``values``.

    Examples
    --------
    >>> b = band([0.70, 0.72, 0.68, 0.70], list("abcd"))
    >>> round(b.mean, 3), round(b.sd, 4), round(b.low, 4)
    (0.7, 0.0163, 0.6673)
    """
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Band(mean, sd, mean - k * sd, mean + k * sd, n, tuple(ids))


def _usable(s: Mapping[str, Any]) -> bool:
    return s.get("verdict") == "pass" and _fraction(s) is not None


def baseline_for(
    history: Sequence[Mapping[str, Any]], index: int, cfg: SamplesConfig | None = None
) -> Band | None:
    """The band sample ``history[index]`` is compared with (None: not enough draws yet).

    ``history`` is in draw order. Only samples with the same models as ``history[index]``
    count: those marked baseline (any of them, earlier or later) when any sample of the
    history is marked, else the passing samples drawn before it.
    """
    cfg = cfg or SamplesConfig()
    me = history[index]
    same = [(i, s) for i, s in enumerate(history) if models_of(s) == models_of(me) and _usable(s)]
    marked = [
        (i, s)
        for i, s in enumerate(history)
        if models_of(s) == models_of(me)
        and s.get("baseline") == "yes"
        and s.get("verdict") in ("pass", "check")
        and _fraction(s) is not None
    ]
    if any(s.get("baseline") == "yes" for s in history):
        chosen = [(i, s) for i, s in marked if i != index]
        need = 2
    else:
        chosen = [(i, s) for i, s in same if i < index]
        need = cfg.baseline_min
    if len(chosen) < need:
        return None
    return band(
        [_fraction(s) for _, s in chosen],
        [str(s.get("sample")) for _, s in chosen],
        cfg.baseline_sd,
    )


def assess(
    history: Sequence[Mapping[str, Any]], cfg: SamplesConfig | None = None
) -> list[dict[str, Any]]:
    """Each sample of ``history`` (any order) with ``status``, its band's ``band_low``,
    ``band_high``, ``band_n``, in draw order.

    ``status``: :data:`BELOW` (fraction under the band), :data:`WITHIN`, :data:`ABOVE`,
    :data:`NO_BASELINE`,
    or :data:`OTHER_MODELS` (analysed with other models than the latest sample), or the
    sample's verdict when it has no fraction or a ``fail``. A ``check`` sample is compared
    (a provisional drop is worth seeing; its verdict stays beside it) but makes no band
    unless marked baseline.
    """
    cfg = cfg or SamplesConfig()
    ordered = sorted(history, key=lambda s: (str(s.get("drawn_at") or ""), str(s.get("sample"))))
    # the models of the latest sample with a figure (a later one without says nothing)
    figures = [s for s in ordered if _fraction(s) is not None] or ordered
    latest = models_of(figures[-1]) if figures else None
    out = []
    for i, s in enumerate(ordered):
        rec = {**s, "band_low": None, "band_high": None, "band_n": 0}
        if models_of(s) != latest:
            rec["status"] = OTHER_MODELS
        elif _fraction(s) is None or s.get("verdict") == "fail":
            rec["status"] = str(s.get("verdict") or "no fraction")
        else:
            b = baseline_for(ordered, i, cfg)
            if b is None:
                rec["status"] = NO_BASELINE
            else:
                rec.update(band_low=b.low, band_high=b.high, band_n=b.n)
                v = _fraction(s)
                rec["status"] = BELOW if v < b.low else (ABOVE if v > b.high else WITHIN)
        out.append(rec)
    return out


def summary_lines(patient: str, assessed: Sequence[Mapping[str, Any]], digits: int = 3) -> list:
    """The terminal summary: one line per sample, then the latest sample's verdict."""

    def f(v):
        return (
            "-"
            if v is None or (isinstance(v, float) and not math.isfinite(v))
            else (f"{v:.{digits}f}")
        )

    lines = [f"patient {patient}: {len(assessed)} sample(s)"]
    for s in assessed:
        band_txt = (
            f", baseline {f(s['band_low'])}-{f(s['band_high'])} ({s['band_n']} draws)"
            if s["band_low"] is not None
            else ""
        )
        lines.append(
            f"  {s.get('drawn_at') or '?':<10}  {s.get('sample')}: "
            f"{f(_fraction(s))} [{f(s.get('ci_low'))}, {f(s.get('ci_high'))}] "
            f"{s.get('verdict') or '-'}; {s['status']}{band_txt}"
        )
    if assessed:
        last = assessed[-1]
        lines.append(f"latest ({last.get('sample')}, {last.get('drawn_at')}): {last['status']}")
    return lines
