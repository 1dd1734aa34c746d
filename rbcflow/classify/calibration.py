"""Out-of-fold calibration of the shipped classifiers, and the validated rates it gives.

A model folder's ``config.json`` carries, under ``calibration``, the probabilities its fold
members gave to sequences they never saw (out-of-fold: stage 1 left one acquisition date out,
stage 2 one patient out; see ``models/train_defaults.py``), with the sequences' true labels:

``stage 1``  ``p_reliable`` and ``label`` (0, 1, 2) of every held-out sequence;
``stage 2``  ``p_tank_treading`` and ``label`` of every held-out sequence, unreliable ones
             included (what stage 2 makes of a track that stage 1 wrongly kept), and the
             ``temperature`` fitted on the reliable ones.

Storing the probabilities rather than counts lets the counts follow the thresholds a run uses
(:class:`rbcflow.config.ReportConfig`): :func:`rates_at` turns them into the
:class:`~rbcflow.classify.estimate.ValidatedRates` that the fraction estimator corrects with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rbcflow import schema
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.classify.posterior import fit_temperature
from rbcflow.config import EstimateConfig, ReportConfig

OOF_KEYS = {1: "p_reliable", 2: "p_tank_treading"}
"""The probability column stored per stage."""


def calibration_block(
    stage: int,
    p: Sequence[float],
    labels: Sequence[int],
    source: str,
    folds: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``calibration`` section of a model config from out-of-fold predictions.

    Parameters
    ----------
    stage : 1 or 2.
    p : out-of-fold probability of each sequence (stage 1: reliable; stage 2: tank-treading).
    labels : the sequences' true labels (0 tank-treading, 1 flipping, 2 unreliable).
    source : how the predictions were made (written as is).
    folds : the held-out group (fold) of each sequence: :func:`rates_at` measures from them
        how much the rates vary between patients or dates.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(labels, dtype=int)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"calibration_block: p {p.shape} and labels {y.shape} differ")
    block: dict[str, Any] = {
        "source": source,
        OOF_KEYS[stage]: [round(float(v), 6) for v in p],
        "label": [int(v) for v in y],
    }
    if folds is not None:
        if len(folds) != len(y):
            raise ValueError(f"calibration_block: {len(folds)} folds for {len(y)} labels")
        block["fold"] = [str(f) for f in folds]
    if stage == 2:
        rel = y != schema.UNRELIABLE
        block["temperature"] = fit_temperature(p[rel], y[rel] == schema.TANK_TREADING)
    return block


def _oof(block: Mapping[str, Any] | None, stage: int):
    """(p, labels, folds) of a calibration block; folds all "" when not recorded."""
    if not block or OOF_KEYS[stage] not in block or "label" not in block:
        return None
    p = np.asarray(block[OOF_KEYS[stage]], dtype=float)
    y = np.asarray(block["label"], dtype=int)
    folds = np.asarray(block.get("fold", [""] * len(y)), dtype=object)
    if not p.shape == y.shape == folds.shape:
        raise ValueError(f"stage-{stage} calibration: {len(p)} probabilities, {len(y)} labels")
    return p, y, folds


def overdispersion(hits: np.ndarray, n: np.ndarray) -> float:
    """How much more a rate varies between groups than counting alone explains (>= 1).

    Pearson's chi-square of the per-group rates around the pooled one over its degrees of
    freedom (the beta-binomial method of moments, Williams, Applied Statistics 31:144, 1982):
    1 when the groups agree as well as their sizes allow, ``phi`` when the spread between
    patients or dates is ``phi`` times the binomial one. Dividing the validated counts by it
    widens the interval by the rate's real, between-patient uncertainty.
    """
    hits, n = np.asarray(hits, dtype=float), np.asarray(n, dtype=float)
    keep = n > 0
    hits, n = hits[keep], n[keep]
    if len(n) < 2:
        return 1.0
    p = hits.sum() / n.sum()
    if p <= 0 or p >= 1:
        # no hit (or no miss) anywhere: the groups agree
        return 1.0
    chi2 = float((n * (hits / n - p) ** 2).sum() / (p * (1 - p)))
    return max(1.0, chi2 / (len(n) - 1))


def _pair(hit: np.ndarray, member: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Counts ``(k, n)`` of a rate, shrunk by the between-fold overdispersion."""
    groups = [f for f in dict.fromkeys(folds[member])]
    k = np.array([(hit & member & (folds == g)).sum() for g in groups])
    n = np.array([(member & (folds == g)).sum() for g in groups])
    phi = overdispersion(k, n)
    total_k, total_n = int(k.sum()), int(n.sum())
    if phi == 1.0:
        return total_k, total_n
    return total_k / phi, total_n / phi  # effective counts: the same rate, less certain


def rates_at(
    stage1: Mapping[str, Any] | None,
    stage2: Mapping[str, Any] | None,
    reliable_threshold: float = 0.5,
    flipping_threshold: float = 0.5,
) -> ValidatedRates | None:
    """Validated confusion counts at the given thresholds, from the two calibration blocks.

    Stage 1's counts (reliable kept, unreliable let through) come from its out-of-fold
    ``p_reliable``; stage 2's (tank-treading and flipping called tank-treading) from its
    out-of-fold ``p_tank_treading`` of reliable sequences, and the calls on leaked tracks from
    its calls on unreliable sequences (all of them: too few leak to count those alone; stage 2
    sees a leaked track exactly as any other unreliable one). Where the blocks record each
    sequence's fold, each count pair is divided by its :func:`overdispersion` between folds,
    so that the interval carries the rates' variation between patients and dates, not only
    their counting error. None when a block is missing
    (a model trained without out-of-fold predictions): the caller falls back to the naive
    count.
    """
    one, two = _oof(stage1, 1), _oof(stage2, 2)
    if one is None or two is None:
        return None
    p1, y1, f1 = one
    p2, y2, f2 = two
    rel1 = y1 != schema.UNRELIABLE
    kept = p1 >= reliable_threshold
    called_tt = (1 - p2) < flipping_threshold
    tt, fl, un = (y2 == c for c in (schema.TANK_TREADING, schema.FLIPPING, schema.UNRELIABLE))
    counts = {}
    for (k, n), (hit, member, folds) in {
        ("tt_as_tt", "tt_n"): (called_tt, tt, f2),
        ("fl_as_tt", "fl_n"): (called_tt, fl, f2),
        ("rel_kept", "rel_n"): (kept, rel1, f1),
        ("unrel_kept", "unrel_n"): (kept, ~rel1, f1),
        ("leak_as_tt", "leak_n"): (called_tt, un, f2),
    }.items():
        counts[k], counts[n] = _pair(hit, member, folds)
    return ValidatedRates(**counts)


_LEAK_METHODS = ("soft", "leakmix", "blend")

BLEND_FROM = 0.7
"""Method ``blend`` averages ``em`` and ``soft`` when stage 1 rejected at least this share of
the tracks no rule rejected, and is ``em`` below it. A measured alternative, not the default
(docs/method.md), so it is kept out of :class:`~rbcflow.config.EstimateConfig` (whose fields
make every run's ``params_id``)."""


def config_temperature(stage2_config: Mapping[str, Any]) -> float | None:
    """Stage 2's validated temperature (its model config's ``calibration``), or None."""
    return float((stage2_config.get("calibration") or {}).get("temperature") or 0) or None


def config_rates(s1: Mapping[str, Any], s2: Mapping[str, Any], cfg: ReportConfig | None):
    """The two model configs' out-of-fold counts at ``cfg``'s thresholds (:func:`rates_at`)."""
    cfg = cfg or ReportConfig()
    args = (cfg.reliable_threshold, cfg.flipping_threshold)
    return rates_at(s1.get("calibration"), s2.get("calibration"), *args)


def calibration_blocks(classifier: Any) -> tuple[Any, Any] | None:
    """A loaded classifier's stage-1 and stage-2 ``calibration`` blocks (its model configs),
    as :func:`estimate_acquisition`'s ``blocks``; None for one without model configs."""
    try:
        return tuple(getattr(classifier, s).config.get("calibration") for s in ("stage1", "stage2"))
    except AttributeError:
        return None


def _join_interval(est: dict[str, Any], s2: dict[str, Any]) -> None:
    """Widen ``est``'s interval to cover ``stage2``'s (whose bootstrap carries the validated
    confusion rates and their spread between patients)."""
    if np.isfinite(s2["ci_low"]) and np.isfinite(est["ci_low"]):
        est["ci_low"] = min(est["ci_low"], s2["ci_low"])
        est["ci_high"] = max(est["ci_high"], s2["ci_high"])


def _leak_estimate(
    method,
    lab,
    rule,
    rates,
    report,
    estimate,
    p_tt,
    temperature,
    p_rel,
    blocks,
    n_tt,
    n_fl,
    n_rej,
    args,
) -> dict[str, Any]:
    """``soft`` / ``leakmix`` of :func:`estimate_acquisition` (rbcflow.classify.leakage)."""
    from rbcflow.classify.estimate import estimate_fraction
    from rbcflow.classify.leakage import leakmix_estimate, soft_estimate

    s2 = estimate_fraction(n_tt, n_fl, n_rej, rates, method="stage2", **args)
    p1 = np.nan_to_num(np.asarray(p_rel, dtype=float), nan=0.0)
    p2 = np.nan_to_num(np.asarray(p_tt, dtype=float), nan=0.5)
    prior = rates.tt_n / (rates.tt_n + rates.fl_n)
    common = dict(confidence=report.confidence, n_boot=400, seed=estimate.seed)
    if method == "soft":
        free = rule == ""
        est = soft_estimate(p1[free], p2[free], *blocks, **common)
        leaked = s2["estimated_leaked"]
    else:
        kept = lab != schema.LABEL_NAMES[schema.UNRELIABLE]
        unrel = np.asarray(blocks[1]["label"]) == schema.UNRELIABLE
        pu = np.asarray(blocks[1]["p_tank_treading"], dtype=float)[unrel]
        est = leakmix_estimate(
            p1[kept],
            p2[kept],
            blocks[0],
            pu,
            temperature,
            prior,
            report.reliable_threshold,
            **common,
        )
        leaked = est["estimated_leaked"]
    _join_interval(est, s2)
    return {**est, "method": method, "note": "", "estimated_leaked": leaked}


def _em_estimate(
    rates, report, estimate, p_tt, temperature, reliable, n_tt, n_fl, n_rej, args
) -> dict[str, Any]:
    """``em`` of :func:`estimate_acquisition`: the EM prior, its interval joined to stage2's."""
    from rbcflow.classify.estimate import estimate_fraction
    from rbcflow.classify.posterior import em_estimate

    # stage2's estimate gives the leak estimate, and its interval, whose bootstrap carries
    # stage 2's validated confusion and its spread between patients, which the EM
    # bootstrap (tracks only) does not (docs/method.md: EM's own interval covered the
    # truth in half the cases), is joined to EM's
    s2 = estimate_fraction(n_tt, n_fl, n_rej, rates, method="stage2", **args)
    leaked = s2["estimated_leaked"] if np.isfinite(s2["estimated_leaked"]) else 0.0
    p2 = np.asarray(p_tt, dtype=float)[reliable]
    est = em_estimate(
        np.nan_to_num(p2, nan=0.5),
        temperature,
        rates.tt_n / (rates.tt_n + rates.fl_n),  # the balance the temperature was fitted on
        leaked,
        rates.leak_tt_rate,
        report.confidence,
        seed=estimate.seed,
    )
    _join_interval(est, s2)
    est.update(method="em", note="", estimated_leaked=s2["estimated_leaked"])
    return est


def estimate_acquisition(
    labels: Sequence[str],
    rules: Sequence[str],
    rates: ValidatedRates | None,
    report: ReportConfig | None = None,
    estimate: EstimateConfig | None = None,
    *,
    p_tank_treading: Sequence[float] | None = None,
    temperature: float | None = None,
    p_reliable: Sequence[float] | None = None,
    blocks: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """An acquisition's fraction and interval, corrected for the classifiers' validated errors.

    The counts are those of :func:`~rbcflow.classify.labels.label_tracks`: tracks called
    tank-treading and flipping, and tracks stage 1 rejected. Tracks a geometric or context rule
    rejected are left out of the correction (the validated rates describe the network on
    tracks no rule rejects). By ``estimate.method``:

    ``em``      the EM prior of the kept tracks' calibrated stage-2 probabilities
                (:func:`rbcflow.classify.posterior.em_estimate`; needs ``p_tank_treading``,
                the validated ``temperature`` and ``rates``), its interval the union of
                EM's bootstrap and ``stage2``'s;
    ``stage2``, ``adjusted``  the counts corrected with ``rates``
                (:func:`rbcflow.classify.estimate.estimate_fraction`);
    ``soft``, ``leakmix``  stage 2's EM with the acquisition's stage-1 scores discounting
                leaked tracks (:mod:`rbcflow.classify.leakage`; need ``p_reliable`` and the
                models' calibration ``blocks`` (stage 1, stage 2) besides what ``em`` needs;
                measured, not the default), their interval joined to ``stage2``'s;
    ``blend``   ``em`` and ``soft`` averaged, their intervals joined, when stage 1 rejected at
                least :data:`BLEND_FROM` of the tracks no rule rejected (where the leaked
                tracks that bias ``em`` low are many); ``em`` below that share;
    ``naive``   the plain count and its Wilson interval (also the fallback when what a method
                needs is missing; ``fraction_method`` then says so).

    Returns
    -------
    dict with tank_treading, flipping, reliable (the calls), tank_treading_fraction, ci_low,
    ci_high (the estimate), fraction_counted (the plain count's fraction), estimated_leaked,
    fraction_method.
    """
    from rbcflow.classify.estimate import estimate_fraction
    from rbcflow.classify.labels import fraction

    report = report or ReportConfig()
    estimate = estimate or EstimateConfig()
    lab = np.asarray(labels, dtype=object)
    rule = np.asarray(rules, dtype=object)
    is_tt = lab == schema.LABEL_NAMES[schema.TANK_TREADING]
    is_fl = lab == schema.LABEL_NAMES[schema.FLIPPING]
    n_tt, n_fl = int(is_tt.sum()), int(is_fl.sum())
    n_rej = int(((lab == schema.LABEL_NAMES[schema.UNRELIABLE]) & (rule == "")).sum())
    counted = fraction(n_tt, n_fl, report.confidence)
    method, why = estimate.method, ""
    if method in _LEAK_METHODS and (p_reliable is None or not blocks or not all(blocks)):
        # blend without stage-1 scores is em (below its unreliable share it is em anyway)
        method, why = "em", f"{method}: no stage-1 scores or calibration"
    if method in ("em", *_LEAK_METHODS) and (
        p_tank_treading is None or not temperature or rates is None
    ):
        method, why = "stage2", f"{method}: no calibrated probabilities"
    if rates is None and method != "naive":
        method, why = "naive", "no validated rates"
    args = dict(confidence=report.confidence, n_boot=estimate.n_boot, seed=estimate.seed)
    if method in ("soft", "leakmix"):
        est = _leak_estimate(
            method,
            lab,
            rule,
            rates,
            report,
            estimate,
            p_tank_treading,
            temperature,
            p_reliable,
            blocks,
            n_tt,
            n_fl,
            n_rej,
            args,
        )
    elif method in ("em", "blend"):
        est = _em_estimate(
            rates,
            report,
            estimate,
            p_tank_treading,
            temperature,
            is_tt | is_fl,
            n_tt,
            n_fl,
            n_rej,
            args,
        )
        total = n_tt + n_fl + n_rej
        if method == "blend" and total and n_rej / total >= BLEND_FROM:
            soft = _leak_estimate(
                "soft",
                lab,
                rule,
                rates,
                report,
                estimate,
                p_tank_treading,
                temperature,
                p_reliable,
                blocks,
                n_tt,
                n_fl,
                n_rej,
                args,
            )
            if np.isfinite(soft["tank_treading_fraction"]):
                est["tank_treading_fraction"] = (
                    est["tank_treading_fraction"] + soft["tank_treading_fraction"]
                ) / 2
                est["ci_low"] = min(est["ci_low"], soft["ci_low"])
                est["ci_high"] = max(est["ci_high"], soft["ci_high"])
                est["method"] = "blend"
    else:
        est = estimate_fraction(n_tt, n_fl, n_rej, rates, method=method, **args)
    note = "; ".join(x for x in (why, est.get("note", "")) if x)
    return {
        **counted,
        "tank_treading_fraction": est["tank_treading_fraction"],
        "ci_low": est["ci_low"],
        "ci_high": est["ci_high"],
        "fraction_counted": counted["tank_treading_fraction"],
        "estimated_leaked": est["estimated_leaked"],
        "fraction_method": f"{est['method']} ({note})" if note else est["method"],
    }
