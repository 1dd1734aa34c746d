"""Every headline figure's verdict: may the lab report it (``pass``), look first (``check``), or
not use it (``fail``)?

:func:`verdict` applies independent rules to what the analysis already knows (the report row,
the front end's calibration, the quality indicators) and combines them: the worst wins
(``fail`` > ``check`` > ``pass``) and every rule that fired gives its reason. The thresholds are
:class:`rbcflow.config.VerdictConfig`'s; docs/user-guide.md ("Verdicts: when a figure can be
reported") says why each and what to do.

A value the rules need but the row does not carry (an older row, a front end that measured no
contrast) is *unknown*: its rule does not fire. The exception is the cell size: a front end
that reports no measured diameter leaves the crop scale unchecked, which is itself a reason to
look (``scale uncertain``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rbcflow.config import VerdictConfig

VERDICTS = ("pass", "check", "fail")
"""The verdicts, best first (their order is their severity)."""

PASS_REASON = "every verdict rule holds"
"""``verdict_reason`` of a ``pass``."""

_EPS = 1e-9  # a value equal to a threshold (up to float rounding) does not cross it


def finite_number(x: Any) -> float | None:
    """``x`` as a finite float, or None when missing, NaN or not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def worst(verdicts: Iterable[str]) -> str:
    """The most severe of ``verdicts`` (``pass`` when there is none).

    Examples
    --------
    >>> worst(["pass", "check", "pass"]), worst(["check", "fail"]), worst([])
    ('check', 'fail', 'pass')
    """
    return max(verdicts, key=VERDICTS.index, default="pass")


def _counting_half_width(row: Mapping[str, Any]) -> float | None:
    """Half-width of the Wilson interval of the plain count (counting error alone), if known."""
    from rbcflow.classify.labels import wilson_interval

    tt, fl = finite_number(row.get("tank_treading")), finite_number(row.get("flipping"))
    if tt is None or fl is None or tt + fl <= 0:
        return None
    lo, hi = wilson_interval(int(tt), int(tt + fl))
    return (hi - lo) / 2


def _fraction_rules(row: Mapping[str, Any], cfg: VerdictConfig) -> list[tuple[str, str]]:
    frac = finite_number(row.get("tank_treading_fraction"))
    if frac is None:
        n = finite_number(row.get("tracks"))
        among = f" among {n:.0f} tracks" if n is not None else ""
        return [("fail", f"no reliable track{among}: there is no fraction to report")]
    out = []
    lo, hi = finite_number(row.get("ci_low")), finite_number(row.get("ci_high"))
    n_rel = finite_number(row.get("reliable"))
    if lo is not None and hi is not None:
        half = (hi - lo) / 2
        if half > cfg.max_ci_half_width + _EPS:
            counting = _counting_half_width(row)
            if counting is not None and counting <= cfg.max_ci_half_width + _EPS:
                # more tracks would not help: the width is the classifiers' validated error
                reason = (
                    f"the classifiers' validated error makes the 95% interval +/-{half:.3f} "
                    f"(counting alone +/-{counting:.3f}), wider than "
                    f"+/-{cfg.max_ci_half_width:g}"
                )
            else:
                need = ""
                if n_rel:  # the counting half-width shrinks as 1/sqrt(n)
                    more = math.ceil(n_rel * (half / cfg.max_ci_half_width) ** 2)
                    need = f" ({n_rel:.0f} here, about {more} needed)"
                reason = (
                    f"too few reliable tracks{need}: the 95% interval is +/-{half:.3f}, wider "
                    f"than +/-{cfg.max_ci_half_width:g}"
                )
            out.append(("check", reason))
    leaked = finite_number(row.get("estimated_leaked"))
    if leaked is not None and n_rel:
        share = leaked / n_rel
        level = (
            "fail"
            if share > cfg.leak_fail + _EPS
            else "check"
            if share > cfg.leak_check + _EPS
            else None
        )
        if level:
            limit = cfg.leak_fail if level == "fail" else cfg.leak_check
            out.append(
                (
                    level,
                    f"about {leaked:.0f} unreliable tracks may be counted as reliable "
                    f"({share:.0%} of {n_rel:.0f}, over {limit:.0%})",
                )
            )
    return out


def _outside(value: float, bounds: tuple[float, float]) -> bool:
    """``value`` beyond ``bounds`` (a value at a bound, up to float rounding, is inside)."""
    return value < bounds[0] - _EPS or value > bounds[1] + _EPS


def _frontend_rules(frontend: Mapping[str, Any], cfg: VerdictConfig) -> list[tuple[str, str]]:
    out = []
    diameter = finite_number(frontend.get("cell_diameter_px"))
    scale = finite_number(frontend.get("scale"))
    if diameter is None or scale is None or scale <= 0:
        out.append(("check", "scale uncertain: the cell size could not be measured on this video"))
    else:
        size = diameter * scale
        lo, hi = cfg.cell_diameter_range
        if _outside(size, cfg.cell_diameter_range):
            out.append(
                (
                    "check",
                    f"cells measure {size:.1f} px across after scaling, outside the models' "
                    f"{lo:g}-{hi:g} px (analyse again with --scale auto)",
                )
            )
    if frontend.get("scale_auto"):
        # measured on six videos of one set of real crops (benchmarks/bench_scale.py): as good
        # as the recorded size there, but not on the synthetic sample (0.34 for a true 0.72)
        chosen = f"scale {scale:.2f}" if scale is not None else "the scale"
        out.append(
            (
                "check",
                f"{chosen} chosen automatically (--scale auto): validated on few "
                "videos; compare with a run at your magnification's --scale",
            )
        )
    contrast = finite_number(frontend.get("contrast"))
    if contrast is not None:
        lo, hi = cfg.contrast_range
        if _outside(contrast, cfg.contrast_range):
            out.append(
                (
                    "check",
                    f"cell contrast {contrast:.2f} times the training crops', outside "
                    f"{lo:g}-{hi:g}",
                )
            )
    return out


def _quality_rules(quality: Iterable[Mapping[str, Any]], cfg: VerdictConfig) -> list:
    return [
        ("check", f"{q.get('name')} {q.get('value')}: flagged by the quality indicators")
        for q in quality
        if q.get("verdict") == "check" and q.get("name") in cfg.quality_checks
    ]


def verdict(
    row: Mapping[str, Any],
    *,
    frontend: Mapping[str, Any] | None = None,
    quality: Iterable[Mapping[str, Any]] | None = None,
    cfg: VerdictConfig | None = None,
) -> tuple[str, str]:
    """A report row's verdict and its reasons.

    Parameters
    ----------
    row : the report row (status, message, tracks, reliable, tank_treading_fraction, ci_low,
        ci_high; ``estimated_leaked``, the estimated number of unreliable tracks stage 1 let
        through, when the row has it).
    frontend : the front end's calibration, ``run.json``'s ``frontend``: ``cell_diameter_px``
        (at the video's scale) and ``scale`` (the crop resampling factor); ``contrast`` (the
        cells' contrast relative to the training crops') when measured. None: no size or
        contrast rule.
    quality : the quality indicators (:func:`rbcflow.report.quality.quality_indicators`).
    cfg : thresholds (default ``VerdictConfig()``).

    Returns
    -------
    (verdict, reason)
        ``verdict`` one of :data:`VERDICTS`; ``reason`` the reasons of the rules that fired,
        most severe first, joined with ``"; "`` (:data:`PASS_REASON` for a ``pass``). A
        ``failed`` row is ``fail`` with its failure message.

    Examples
    --------
    >>> row = {"status": "ok", "reliable": 400, "tank_treading_fraction": 0.7,
    ...        "ci_low": 0.653, "ci_high": 0.743}
    >>> verdict(row)
    ('pass', 'every verdict rule holds')
    >>> verdict({**row, "tank_treading_fraction": None, "tracks": 12})[0]
    'fail'
    """
    cfg = cfg or VerdictConfig()
    if row.get("status") == "failed":
        return "fail", str(row.get("message") or "the analysis failed")
    found = _fraction_rules(row, cfg)
    if frontend is not None:
        found += _frontend_rules(frontend, cfg)
    found += _quality_rules(quality or (), cfg)
    if not found:
        return "pass", PASS_REASON
    found.sort(key=lambda f: -VERDICTS.index(f[0]))  # stable: same severity keeps rule order
    return worst(v for v, _ in found), "; ".join(r for _, r in found)
