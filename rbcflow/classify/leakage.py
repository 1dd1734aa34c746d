"""Fractions that use the acquisition's own stage-1 scores to discount leaked unreliable tracks.

An acquisition holds 15-30 unreliable tracks per reliable one, while stage 1 was trained on a
set with about one unreliable sequence for two reliable ones; the few unreliable tracks it lets
through (mostly called flipping by stage 2) bias the fraction low. Two estimators read the
stage-1 scores of the acquisition itself, with stage 1's out-of-fold predictions (the model's
``calibration`` block, :mod:`rbcflow.classify.calibration`) as the reference:

* :func:`soft_estimate` (method ``soft``): stage 1's probabilities calibrated by temperature
  scaling, stage 2's score densities per class (tank-treading, flipping, unreliable) from the
  out-of-fold sequences, and both priors (the reliable share, the tank-treading fraction)
  re-estimated on the acquisition by one EM over the three classes (Saerens, Latinne &
  Decaestecker 2002); the fraction is ``sum_i r_TT,i / sum_i (r_TT,i + r_FL,i)`` over the
  responsibilities;
* :func:`leakmix_estimate` (method ``leakmix``): the kept tracks' stage-1 scores fitted as a
  mixture of the out-of-fold reliable and unreliable score densities (Gaussian kernels on the
  logit scale), which estimates the leaked count ``L``; stage 2's EM then removes ``L`` tracks
  with the mean posterior of the out-of-fold unreliable sequences.

Both (and ``blend``, ``em`` and ``soft`` averaged: :func:`rbcflow.classify.calibration.
estimate_acquisition`) were measured against ``em`` on held-out dates and patients
(``benchmarks/bench_accuracy.py``, docs/method.md) and none is the default: the leaked tracks
of an unseen date score like reliable cells, so the other date's score densities do not find
them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rbcflow import schema
from rbcflow.classify.posterior import _reweight, apply_temperature, fit_temperature
from rbcflow.config import EstimateConfig

_CFG = EstimateConfig()
_NAN = {"tank_treading_fraction": math.nan, "ci_low": math.nan, "ci_high": math.nan}


def _logit(p: np.ndarray, clip: float = 1e-4) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), clip, 1 - clip)
    return np.log(p) - np.log1p(-p)


def stage1_reference(block: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(p_reliable, is_reliable)`` of a stage-1 calibration block (out-of-fold)."""
    p = np.asarray(block["p_reliable"], dtype=float)
    y = np.asarray(block["label"], dtype=int) != schema.UNRELIABLE
    if p.shape != y.shape or p.size == 0:
        raise ValueError("stage-1 calibration: need as many probabilities as labels, >= 1")
    return p, y


def _interval(boots: np.ndarray, confidence: float) -> tuple[float, float]:
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return math.nan, math.nan
    q = ((1 - confidence) / 2, (1 + confidence) / 2)
    low, high = np.quantile(boots, q)
    return float(low), float(high)


def _stage1_odds(p_reliable: np.ndarray, block1: Mapping[str, Any]) -> np.ndarray:
    """Stage 1's likelihood ratio f(score | reliable) / f(score | unreliable) per track: its
    temperature-calibrated posterior odds divided by the reference's prior odds."""
    ref_p, ref_y = stage1_reference(block1)
    t1 = fit_temperature(ref_p, ref_y)
    prior_t = float(np.clip(ref_y.mean(), 0.01, 0.99))
    q = np.clip(apply_temperature(p_reliable, t1), 1e-6, 1 - 1e-6)
    return q / (1 - q) * (1 - prior_t) / prior_t


def _stage2_densities(p_tt: np.ndarray, block2: Mapping[str, Any]) -> np.ndarray:
    """(n, 3) densities of stage 2's logit scores under tank-treading, flipping and unreliable
    (kernel densities of the block's out-of-fold scores of each class, with one bandwidth, the
    smallest of the three: the scores pile up at the clipped ends, and kernels of different
    widths would weigh those piles differently between the classes)."""
    ref = np.asarray(block2["p_tank_treading"], dtype=float)
    lab = np.asarray(block2["label"], dtype=int)
    x = _logit(p_tt)
    kinds = (schema.TANK_TREADING, schema.FLIPPING, schema.UNRELIABLE)
    if any(not np.any(lab == k) for k in kinds):
        raise ValueError("stage-2 calibration: need out-of-fold scores of all three classes")
    samples = [_logit(ref[lab == k]) for k in kinds]
    bw = min(_bandwidth(v) for v in samples)
    return np.stack([_kde(v, x, bw) for v in samples], -1) + 1e-300


def soft_estimate(
    p_reliable: np.ndarray,
    p_tank_treading: np.ndarray,
    block1: Mapping[str, Any],
    block2: Mapping[str, Any],
    confidence: float = 0.95,
    n_boot: int = 400,
    seed: int = _CFG.seed,
    pseudo: float = _CFG.em_pseudo_count,
) -> dict:
    """Method ``soft``: one EM over three classes, both stages' scores of every track.

    Each track is tank-treading, flipping or unreliable; with ``rho`` the acquisition's
    reliable share and ``pi`` the tank-treading fraction (both re-estimated, Saerens et al.
    2002), its responsibilities are proportional to ``rho l1 pi f_TT``, ``rho l1 (1 - pi)
    f_FL`` and ``(1 - rho) f_UN``: ``l1`` stage 1's likelihood ratio reliable / unreliable
    (its temperature-calibrated odds over ``block1``'s prior odds), ``f_c`` the density of
    stage 2's score under class ``c`` (kernel densities on the logit scale of ``block2``'s
    out-of-fold scores). The stages are taken as independent given the class. The interval
    is a bootstrap over tracks.

    ``p_reliable``, ``p_tank_treading`` : (n,) both stages' probabilities of every track that
    no rule rejected, kept by stage 1 or not.

    Returns
    -------
    dict with tank_treading_fraction, ci_low, ci_high, estimated_reliable (``rho n``).
    """
    p1 = np.nan_to_num(np.asarray(p_reliable, dtype=float), nan=0.0)
    p2 = np.nan_to_num(np.asarray(p_tank_treading, dtype=float), nan=0.5)
    n = p1.size
    if n == 0:
        return {**_NAN, "estimated_reliable": 0.0}
    f = _stage2_densities(p2, block2)
    f_rel = f[:, :2] * _stage1_odds(p1, block1)[:, None]
    rng = np.random.default_rng(seed)
    idx = np.vstack([np.arange(n), rng.integers(0, n, size=(n_boot, n))])
    f_tt, f_fl, f_un = f_rel[idx, 0], f_rel[idx, 1], f[idx, 2]
    rho = np.full(len(idx), 0.5)
    pi = np.full(len(idx), 0.5)
    for _ in range(_CFG.em_max_iter):
        a = (rho * pi)[:, None] * f_tt
        b = (rho * (1 - pi))[:, None] * f_fl
        tot = a + b + (1 - rho)[:, None] * f_un
        r_tt, r_fl = (a / tot).sum(1), (b / tot).sum(1)
        new_rho = (r_tt + r_fl) / n
        new_pi = (r_tt + pseudo) / (r_tt + r_fl + 2 * pseudo)
        done = max(np.abs(new_pi - pi).max(), np.abs(new_rho - rho).max()) < 1e-6
        rho, pi = new_rho, new_pi
        if done:
            break
    low, high = _interval(pi[1:], confidence)
    out = {"tank_treading_fraction": float(pi[0]), "ci_low": low, "ci_high": high}
    return {**out, "estimated_reliable": float(rho[0] * n)}


def _bandwidth(sample: np.ndarray, floor: float = 0.3) -> float:
    """Silverman's rule (Silverman 1986, eq. 3.31), at least ``floor`` logit units (the
    reference sets are small)."""
    spread = sample.std()
    iqr = float(np.subtract(*np.quantile(sample, [0.75, 0.25])))
    if iqr > 0:
        spread = min(spread, iqr / 1.34)
    return max(0.9 * spread * sample.size**-0.2, floor)


def _kde(sample: np.ndarray, x: np.ndarray, bw: float | None = None) -> np.ndarray:
    """Gaussian kernel density of ``sample`` at ``x`` (bandwidth :func:`_bandwidth` if None)."""
    sample = np.asarray(sample, dtype=float)
    bw = _bandwidth(sample) if bw is None else bw
    d = (np.asarray(x, dtype=float)[..., None] - sample) / bw
    return np.exp(-0.5 * d * d).mean(-1) / (bw * math.sqrt(2 * math.pi))


def _leak_likelihoods(
    p_reliable_kept: np.ndarray, block1: Mapping[str, Any], threshold: float, tail: float
) -> np.ndarray | None:
    """(n, 2) densities of the kept tracks' logit scores under the reference's kept reliable
    and its unreliable sequences scored >= ``tail``; None when a reference set is empty."""
    ref_p, ref_y = stage1_reference(block1)
    rel, unrel = ref_p[ref_y & (ref_p >= threshold)], ref_p[~ref_y & (ref_p >= tail)]
    if rel.size == 0 or unrel.size == 0:
        return None
    x = _logit(p_reliable_kept)
    rel, unrel = _logit(rel), _logit(unrel)
    bw = min(_bandwidth(rel), _bandwidth(unrel))
    return np.stack([_kde(rel, x, bw), _kde(unrel, x, bw)], -1) + 1e-12


def _unreliable_weight(like: np.ndarray, pseudo: float = 1.0) -> np.ndarray:
    """EM mixture weight of the second component, per set: ``like`` (B, n, 2) -> (B,)."""
    w = np.full((like.shape[0], 2), 0.5)
    for _ in range(500):
        r = like * w[:, None, :]
        r /= r.sum(-1, keepdims=True)
        new = (r.sum(1) + pseudo) / (like.shape[1] + 2 * pseudo)
        done = np.abs(new - w).max() < 1e-6
        w = new
        if done:
            break
    return w[:, 1]


def leaked_count(
    p_reliable_kept: np.ndarray, block1: Mapping[str, Any], threshold: float, tail: float = 0.5
) -> float:
    """Estimated unreliable tracks among the kept ones, from their stage-1 scores alone.

    The kept tracks' logit scores are fitted (EM over the two weights) as a mixture of the
    block's reliable sequences kept at ``threshold`` and its unreliable sequences scored at
    least ``tail`` (the near misses widen the few leaked ones into a density); the unreliable
    weight times the kept count is the leak.

    Examples
    --------
    >>> ref = {"p_reliable": [0.95] * 50 + [0.75] * 5 + [0.1] * 45, "label": [0] * 50 + [2] * 50}
    >>> abs(leaked_count([0.95] * 90 + [0.75] * 10, ref, 0.7) - 10) < 1.5  # truth: 10
    True
    """
    p = np.asarray(p_reliable_kept, dtype=float)
    like = _leak_likelihoods(p, block1, threshold, tail) if p.size else None
    if like is None:
        return 0.0
    return float(_unreliable_weight(like[None])[0] * p.size)


def leakmix_estimate(
    p_reliable_kept: np.ndarray,
    p_tank_treading_kept: np.ndarray,
    block1: Mapping[str, Any],
    p_tank_treading_unreliable: np.ndarray,
    temperature: float,
    train_prior: float,
    threshold: float,
    confidence: float = 0.95,
    n_boot: int = 400,
    seed: int = _CFG.seed,
) -> dict:
    """Method ``leakmix``: stage 2's EM on the kept tracks, less the leaked ones.

    ``L`` = :func:`leaked_count`; at each EM step the ``L`` leaked tracks' expected posterior
    sum (``L`` times the mean posterior of ``p_tank_treading_unreliable``, stage 2's
    out-of-fold probabilities of unreliable sequences) is taken off the kept tracks' sum and
    ``L`` off their count. The interval is a bootstrap over the kept tracks (``L`` re-estimated
    in each replicate).

    Returns
    -------
    dict with tank_treading_fraction, ci_low, ci_high, estimated_leaked.
    """
    p1 = np.asarray(p_reliable_kept, dtype=float)
    p2 = np.nan_to_num(np.asarray(p_tank_treading_kept, dtype=float), nan=0.5)
    pu = np.asarray(p_tank_treading_unreliable, dtype=float)
    n = p1.size
    if n == 0:
        return {**_NAN, "estimated_leaked": math.nan}
    cal = np.clip(apply_temperature(p2, temperature), 1e-6, 1 - 1e-6)
    cal_u = np.clip(apply_temperature(pu, temperature), 1e-6, 1 - 1e-6)
    like = _leak_likelihoods(p1, block1, threshold, 0.5)
    rng = np.random.default_rng(seed)
    idx = np.vstack([np.arange(n), rng.integers(0, n, size=(n_boot, n))])
    leak = np.zeros(len(idx)) if like is None else _unreliable_weight(like[idx]) * n
    leak = np.minimum(leak, 0.9 * n) if cal_u.size else np.zeros(len(idx))
    sample = cal[idx]
    prior = np.full(len(idx), float(train_prior))
    for _ in range(_CFG.em_max_iter):
        tot = _reweight(sample, prior, train_prior).sum(1)
        if cal_u.size:
            tot -= leak * _reweight(
                np.broadcast_to(cal_u, (len(idx), cal_u.size)), prior, train_prior
            ).mean(1)
        new = np.clip((tot + 1.0) / (n - leak + 2.0), 1e-6, 1 - 1e-6)
        done = np.abs(new - prior).max() < 1e-7
        prior = new
        if done:
            break
    low, high = _interval(prior[1:], confidence)
    out = {"tank_treading_fraction": float(prior[0]), "ci_low": low, "ci_high": high}
    return {**out, "estimated_leaked": float(leak[0])}
