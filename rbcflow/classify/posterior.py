"""Stage 2's probabilities calibrated, and the class balance they imply on a new acquisition.

* :func:`fit_temperature` / :func:`apply_temperature`: temperature scaling (Guo et al., ICML
  2017), fitted on out-of-fold predictions of held-out patients;
* :func:`em_prior` / :func:`em_fraction`: EM re-estimation of the tank-treading prior on a new
  set (Saerens, Latinne & Decaestecker, Neural Comput. 14:21, 2002): the training set is 50/50,
  acquisitions are 70-99 % tank-treading;
* :func:`em_estimate`: that prior with a bootstrap interval, the report's ``em`` method.

The counting estimators that correct with validated confusion rates are in
:mod:`rbcflow.classify.estimate`.
"""

from __future__ import annotations

import math

import numpy as np

from rbcflow.config import EstimateConfig

_CFG = EstimateConfig()


def _logit(p: np.ndarray, clip: float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), clip, 1 - clip)
    return np.log(p) - np.log1p(-p)


def fit_temperature(
    p: np.ndarray,
    y: np.ndarray,
    bounds: tuple[float, float] = _CFG.temperature_range,
    clip: float = _CFG.prob_clip,
) -> float:
    """Temperature scaling: the T > 0 that best calibrates binary probabilities (Guo et al. 2017).

    The calibrated probability is ``sigmoid(logit(p) / T)``; T minimises its negative
    log-likelihood ``sum(softplus(z / T) - y z / T)`` over the validation tracks. The NLL is
    convex in ``1 / T`` (a one-feature logistic regression without intercept), hence unimodal in
    ``log T``, which a golden-section search over ``log T`` in ``bounds`` then finds (to 1e-6
    in ``log T``). T > 1 softens over-confident probabilities; T never changes a call at 0.5.

    Parameters
    ----------
    p : (N,) probabilities of the positive class; clipped to ``[clip, 1 - clip]`` before the
        logit so that a saturated 0 or 1 stays finite (|logit| <= 13.8 for the default 1e-6).
    y : (N,) bool truths (positive class True).
    bounds : search interval of T; a fit at a bound means the data want a T outside it.

    Examples
    --------
    >>> round(fit_temperature([0.9, 0.9, 0.9, 0.9, 0.1], [1, 1, 1, 0, 0]), 2)
    1.58
    """
    z = _logit(p, clip).ravel()
    y = np.asarray(y).ravel()
    if z.size == 0 or z.size != y.size or not np.all(np.isfinite(z)):
        raise ValueError("need as many finite probabilities as truths, at least one")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("truths must be bool (or 0/1)")
    y = y.astype(float)

    def nll(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.sum(np.logaddexp(0.0, s) - y * s))

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    g = (math.sqrt(5) - 1) / 2
    while hi - lo > 1e-6:  # golden section, both inner points evaluated anew (~70 NLLs)
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        lo, hi = (lo, d) if nll(c) <= nll(d) else (c, hi)
    return math.exp((lo + hi) / 2)


def apply_temperature(p: np.ndarray, temperature: float, clip: float = _CFG.prob_clip):
    """``sigmoid(logit(p) / T)``, ``p`` clipped as in :func:`fit_temperature`; ``T == 1``
    returns ``p`` unchanged (no clipping), so an uncalibrated model's probabilities pass as
    they are. NaN stays NaN."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature == 1:
        return np.array(p, dtype=float)
    return np.exp(-np.logaddexp(0.0, -_logit(p, clip) / temperature))  # sigmoid, no overflow


def em_prior(
    p: np.ndarray,
    train_prior: float = 0.5,
    tol: float = _CFG.em_tol,
    max_iter: int = _CFG.em_max_iter,
    clip: float = _CFG.prob_clip,
    pseudo: float = 0.0,
) -> tuple[float, np.ndarray]:
    """EM re-estimation of the positive-class prior on a new set (Saerens et al. 2002).

    Posteriors ``p`` computed under the training prior ``pi_t`` are re-weighted to a prior
    ``pi`` by Bayes' rule, ``p' = (pi/pi_t) p / [(pi/pi_t) p + ((1-pi)/(1-pi_t)) (1-p)]``
    (E step), and ``pi`` becomes the mean of ``p'`` (M step), from ``pi = pi_t`` until it moves
    by less than ``tol``. The fixed point is the maximum-likelihood prior of the new set, if the
    posteriors are calibrated on data of balance ``pi_t`` (use :func:`apply_temperature` first).
    ``pseudo > 0`` makes it the maximum a posteriori prior under a Beta(1 + pseudo, 1 + pseudo)
    belief (M step ``(sum p' + pseudo) / (n + 2 pseudo)``): with few tracks the likelihood is
    flat and the plain maximum runs to 0 or 1.

    Returns
    -------
    (prior, adjusted_p) : the estimated prior (NaN for no probability) and the posteriors
        under it (``p`` clipped as in :func:`fit_temperature`).

    Examples
    --------
    >>> prior, adj = em_prior([0.2, 0.8])
    >>> round(prior, 6), adj.round(6).tolist()
    (0.5, [0.2, 0.8])
    """
    if not 0 < train_prior < 1:
        raise ValueError(f"train_prior must be in (0, 1), got {train_prior}")
    p = np.clip(np.asarray(p, dtype=float).ravel(), clip, 1 - clip)
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities must be finite")
    if p.size == 0:
        return math.nan, p

    prior = float(_em(p[None], train_prior, tol, max_iter, pseudo)[0])
    return prior, _reweight(p[None], np.array([prior]), train_prior)[0]


def _reweight(sample: np.ndarray, prior: np.ndarray, train_prior: float) -> np.ndarray:
    """Posteriors ``sample`` (B, n) re-weighted from ``train_prior`` to the priors (B,)."""
    w1 = (prior / train_prior)[:, None] * sample
    return w1 / (w1 + ((1 - prior) / (1 - train_prior))[:, None] * (1 - sample))


def _em(
    sample: np.ndarray, train_prior: float, tol: float, max_iter: int, pseudo: float
) -> np.ndarray:
    """EM fixed points (B,) of the priors of ``B`` sets of posteriors ``sample`` (B, n), all
    iterated together until every prior moves by less than ``tol``."""
    prior = np.full(len(sample), float(train_prior))
    for _ in range(max_iter):
        new = (_reweight(sample, prior, train_prior).sum(1) + pseudo) / (
            sample.shape[1] + 2 * pseudo
        )
        done = np.max(np.abs(new - prior)) < tol
        prior = new
        if done:
            break
    return prior


def em_fraction(p_tt_calibrated: np.ndarray, train_prior: float = 0.5) -> dict:
    """The soft estimate: the tank-treading prior that EM finds (:func:`em_prior`).

    ``p_tt_calibrated`` are stage 2's probabilities of the kept tracks, calibrated
    (:func:`apply_temperature`) on validation data of class balance ``train_prior``. No
    leakage correction and no interval (``ci_low``/``ci_high`` NaN): a figure to compare with
    :func:`estimate_fraction`'s on validation patients.
    """
    prior, _ = em_prior(p_tt_calibrated, train_prior)
    note = "no kept track" if math.isnan(prior) else ""
    n = int(np.asarray(p_tt_calibrated).size)
    out = dict(tank_treading_fraction=prior, ci_low=math.nan, ci_high=math.nan, method="em")
    return {**out, "tracks": n, "note": note}


def em_bootstrap(
    p: np.ndarray,
    train_prior: float = 0.5,
    n_boot: int = 400,
    seed: int = _CFG.seed,
    tol: float = 1e-5,
    max_iter: int = _CFG.em_max_iter,
    pseudo: float = 0.0,
) -> np.ndarray:
    """EM priors of ``n_boot`` resamples of ``p`` (with replacement), vectorised.

    The counting error of :func:`em_prior`: each replicate is the EM fixed point on a
    resample of the acquisition's tracks (Efron & Tibshirani 1993). Repeatable for a seed.
    """
    p = np.clip(np.asarray(p, dtype=float).ravel(), _CFG.prob_clip, 1 - _CFG.prob_clip)
    if p.size == 0:
        return np.full(n_boot, math.nan)
    rng = np.random.default_rng(seed)
    sample = p[rng.integers(0, p.size, size=(n_boot, p.size))]
    return _em(sample, train_prior, tol, max_iter, pseudo)


def em_estimate(
    p_tt_kept: np.ndarray,
    temperature: float,
    train_prior: float,
    leaked: float = 0.0,
    leak_tt: float = math.nan,
    confidence: float = 0.95,
    n_boot: int = 400,
    seed: int = _CFG.seed,
) -> dict:
    """The acquisition's fraction as the EM prior of its calibrated stage-2 probabilities.

    ``p_tt_kept`` (stage 2's p_tank_treading of the tracks stage 1 kept) are calibrated with
    the validated ``temperature`` (:func:`apply_temperature`), then :func:`em_prior` finds the
    tank-treading share that makes them most likely (a posteriori, with
    ``EstimateConfig.em_pseudo_count`` tracks of each kind added, so that a handful of tracks
    cannot drive it to 0 or 1), ``train_prior`` being the class balance the temperature was
    fitted on. The interval is the bootstrap over tracks
    (:func:`em_bootstrap`), widened to bracket the figure with the ``leaked`` unreliable tracks
    (an estimate, see :func:`rbcflow.classify.estimate.adjusted_fraction`; ``leak_tt`` of
    them called tank-treading) taken out, as the ``stage2`` method does: the leak rate does not
    transfer between patients well enough to subtract (docs/method.md).

    Returns
    -------
    dict with tank_treading_fraction, ci_low, ci_high (NaN without kept tracks).
    """
    p = apply_temperature(np.asarray(p_tt_kept, dtype=float), temperature)
    k = p.size
    nan = {"tank_treading_fraction": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if k == 0:
        return nan
    point, _ = em_prior(p, train_prior, pseudo=_CFG.em_pseudo_count)
    boots = em_bootstrap(p, train_prior, n_boot, seed, pseudo=_CFG.em_pseudo_count)
    q = ((1 - confidence) / 2, (1 + confidence) / 2)
    low, high = (float(v) for v in np.quantile(boots, q))
    if leaked > 0 and k - leaked > 0 and math.isfinite(leak_tt):
        shifted = np.clip((boots * k - leaked * leak_tt) / (k - leaked), 0, 1)
        s_low, s_high = (float(v) for v in np.quantile(shifted, q))
        low, high = min(low, s_low), max(high, s_high)
    return {"tank_treading_fraction": float(point), "ci_low": low, "ci_high": high}
