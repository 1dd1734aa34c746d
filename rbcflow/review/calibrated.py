"""The reviewed estimate: the classifiers' probabilities re-calibrated by the reviews.

A review is a labelled sample of this acquisition's own calls. Counting the reviewed tracks
with their label and every other track with its call (the plain count) keeps every error of
the unreviewed calls; this estimator learns from the reviewed tracks how far the classifiers'
probabilities are off *on this acquisition* and counts each unreviewed track as its corrected
chances.

The model
---------
Two logistic regressions on the classifiers' own outputs, ``z = logit(p_reliable)`` and
``w = logit(p_tank_treading)``, refitted after every decision (maximum a posteriori, Newton's
method, a Gaussian prior on the coefficients):

- *reliable*: ``logit P(reliable) = a_g + b_g z + c_g w`` with one ``(a, b, c)`` per group
  ``g``: the tracks stage 1 judged (reliable calls and stage 1's rejections: the network
  decides) and the tracks of each rule of :func:`rbcflow.classify.labels.track_rules` (``two
  cells``, ``cut by border``, ...: the rule decided, whatever the network said). Prior: for
  stage 1's group ``(0, 1, 0)`` (the network's ``p_reliable`` as it is); for a rule's group
  ``b = 1, c = 0`` and ``a`` such that a track of the group's median ``p_reliable`` is reliable
  with :attr:`ReviewConfig.prior_rule_reliable` (3 %: the rule is right). ``w`` is in the model
  because a rule's rejections that are truly single cells are mostly the clear tank-treaders.
- *tank-treading given reliable*: ``logit P(tank-treading) = d + e w``, prior ``(0, 1)``
  with wide standard deviations (:attr:`ReviewConfig.prior_sd_tank_treading`): stage 2's
  ``p_tank_treading`` can be far off calibration on a new recording (on the synthetic ones the
  true boundary was near ``p_tank_treading`` 0.25, and much sharper than the network's), and a
  few reviewed reliable tracks must be able to say so.

A track's chances are then ``P(tank-treading) = r t``, ``P(flipping) = r (1 - t)``,
``P(unreliable) = 1 - r``. ``TT = reviewed tank-treading + sum over unreviewed r t``, ``FL``
likewise, and the fraction is ``TT / (TT + FL)``: with every track reviewed it is the plain
count of the reviews.

The interval
------------
The variance of ``(TT, FL)`` has two parts: each unreviewed track's own draw (multinomial with
its chances) and the coefficients' uncertainty (the Laplace approximation's covariance carried
by the delta method). The fraction's variance (delta method) plus the patient's sampling given
the counts (the variance of ``Beta(TT + 1/2, FL + 1/2)``, Jeffreys') is matched by a Beta
distribution of that mean and variance, whose central ``confidence`` share is the interval.
Every step is closed form (a decision on 2,000 tracks: a few milliseconds).

Why not strata
--------------
The previous estimator (kept as ``benchmarks/_stratified.py``) counted the unreviewed tracks of
a stratum (call x probability bins) as the stratum's reviewed tracks showed; it needs the
reviews of a stratum to be a random sample of it, so the order could not go to the tracks most
likely wrong inside a stratum, and a stratum's few reviews extrapolate to all of it. A
regression on ``(z, w)`` stays consistent when the tracks are chosen by ``(z, w)`` and the
reviews so far (the order, :mod:`rbcflow.review.order`), as far as its form fits: the choice
depends only on what the model conditions on. ``w`` in the reliability model matters for
that: without it the order's preference for some ``p_tank_treading`` inside a rule's group
biased the group's rate (seven synthetic acquisitions, mean (max) error after 50 reviews:
0.004 (0.010) as shipped, 0.014 (0.031) without ``w``, 0.014 (0.026) with a narrow
tank-treading prior, sd (1, 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rbcflow import schema
from rbcflow.run_settings import ReviewConfig

TT, FL, UN = (schema.LABEL_NAMES[k] for k in (0, 1, 2))
STAGE1 = "stage 1"
_CLIP = 1e-4


def _logit(p: np.ndarray, nan: float) -> np.ndarray:
    p = np.clip(np.nan_to_num(np.asarray(p, dtype=float), nan=nan), _CLIP, 1 - _CLIP)
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


@dataclass(frozen=True)
class Calibration:
    """An acquisition's design (fixed for the acquisition: only the reviews change).

    groups : (G,) group names (``stage 1``, then the rules).
    group : (N,) each track's group.
    X : (N, 3G) the reliability regression's design (``1, z, w`` in the track's group's columns).
    x_mean, x_prec : (3G,) its prior's means and precisions.
    U : (N, 2) the tank-treading regression's design (``1, w``).
    u_mean, u_prec : (2,) its prior.
    """

    groups: tuple[str, ...]
    group: np.ndarray
    X: np.ndarray
    x_mean: np.ndarray
    x_prec: np.ndarray
    U: np.ndarray
    u_mean: np.ndarray
    u_prec: np.ndarray

    @property
    def n(self) -> int:
        return len(self.group)


def calibration_of(
    calls: np.ndarray,
    rules: np.ndarray,
    p_reliable: np.ndarray,
    p_tank_treading: np.ndarray,
    cfg: ReviewConfig | None = None,
) -> Calibration:
    """The model of an acquisition's tracks (see the module docstring).

    Parameters
    ----------
    calls : (N,) the analysis' labels (``tank-treading``, ``flipping``, ``unreliable``).
    rules : (N,) the rule that rejected each track (``""``: none, stage 1 decided).
    p_reliable, p_tank_treading : (N,) the classifiers' probabilities (NaN: 0 and 0.5).

    Examples
    --------
    >>> c = calibration_of(np.array(["tank-treading", "unreliable", "unreliable"]),
    ...                    np.array(["", "", "two cells"]), [0.9, 0.1, 0.9], [0.9, 0.5, 0.5])
    >>> c.groups, c.X.shape
    (('stage 1', 'two cells'), (3, 6))
    """
    cfg = cfg or ReviewConfig()
    calls = np.asarray(calls, dtype=object)
    rules = np.array(
        [str(r) if isinstance(r, str) and r not in ("", "nan") else "" for r in rules], dtype=object
    )
    rules[calls != UN] = ""  # a reliable call passed every rule
    names = sorted(set(rules.tolist()) - {""})
    groups = (STAGE1, *names)
    group = np.array([0 if r == "" else 1 + names.index(r) for r in rules], dtype=int)
    z = _logit(p_reliable, 0.0)
    w = _logit(p_tank_treading, 0.5)
    n, k = len(group), len(groups)
    X = np.zeros((n, 3 * k))
    rows = np.arange(n)
    X[rows, 3 * group] = 1.0
    X[rows, 3 * group + 1] = z
    X[rows, 3 * group + 2] = w
    sd_a, sd_b, sd_c = cfg.prior_sd_reliable
    x_mean = np.tile([0.0, 1.0, 0.0], k)
    share = cfg.prior_rule_reliable
    for g in range(1, k):
        x_mean[3 * g] = np.log(share / (1 - share)) - float(np.median(z[group == g]))
    x_prec = np.tile([sd_a**-2, sd_b**-2, sd_c**-2], k)
    U = np.stack([np.ones(n), w], axis=1)
    sd_d, sd_e = cfg.prior_sd_tank_treading
    return Calibration(
        groups, group, X, x_mean, x_prec, U, np.array([0.0, 1.0]), np.array([sd_d**-2, sd_e**-2])
    )


def _log_posterior(X, y, mean, prec, theta) -> float:
    eta = X @ theta
    # log sigmoid(eta) = -logaddexp(0, -eta), log (1 - sigmoid(eta)) = -logaddexp(0, eta)
    ll = -(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta)).sum()
    return float(ll - 0.5 * (prec * (theta - mean) ** 2).sum())


def _map_logistic(X, y, mean, prec, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Maximum a posteriori coefficients of a logistic regression with a Gaussian prior, and
    their Laplace covariance (the inverse Hessian at the maximum). Newton's method with step
    halving: the log posterior is concave, and a full Newton step from the prior can overshoot
    when the reviews contradict it (a rule's rejections that are all reliable)."""
    theta = mean.copy()
    best = _log_posterior(X, y, mean, prec, theta)
    for _ in range(iterations):
        p = _sigmoid(X @ theta)
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(prec)
        step = np.linalg.solve(hess, X.T @ (y - p) - prec * (theta - mean))
        scale = 1.0
        while True:
            trial = theta + scale * step
            value = _log_posterior(X, y, mean, prec, trial)
            if value >= best - 1e-12 or scale < 1e-6:
                break
            scale /= 2
        theta, best = trial, max(value, best)
        if np.abs(scale * step).max() < 1e-8:
            break
    p = _sigmoid(X @ theta)
    hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(prec)
    return theta, np.linalg.inv(hess)


@dataclass(frozen=True)
class Fit:
    """The model after some reviews.

    r, t : (N,) each track's ``P(reliable)`` and ``P(tank-treading | reliable)``.
    cov_r, cov_t : the two regressions' coefficient covariances.
    reviewed : (N,) reviewed class codes 0/1/2, -1 where not reviewed.
    """

    r: np.ndarray
    t: np.ndarray
    cov_r: np.ndarray
    cov_t: np.ndarray
    reviewed: np.ndarray

    def counts(self) -> tuple[float, float]:
        """Expected tank-treading and flipping tracks of the acquisition (``TT``, ``FL``)."""
        rev, open_ = self.reviewed, self.reviewed < 0
        tt = (rev == 0).sum() + (self.r * self.t)[open_].sum()
        fl = (rev == 1).sum() + (self.r * (1 - self.t))[open_].sum()
        return float(tt), float(fl)


def fit(cal: Calibration, reviewed: np.ndarray) -> Fit:
    """The two regressions fitted to the reviewed tracks (``reviewed``: (N,) class codes
    0/1/2, -1 for an unreviewed track)."""
    reviewed = np.asarray(reviewed, dtype=int)
    done = reviewed >= 0
    theta, cov_r = _map_logistic(
        cal.X[done], (reviewed[done] != 2).astype(float), cal.x_mean, cal.x_prec
    )
    rel = (reviewed == 0) | (reviewed == 1)
    y_tt = (reviewed[rel] == 0).astype(float)
    phi, cov_t = _map_logistic(cal.U[rel], y_tt, cal.u_mean, cal.u_prec)
    return Fit(_sigmoid(cal.X @ theta), _sigmoid(cal.U @ phi), cov_r, cov_t, reviewed)


def _influence(f: Fit) -> tuple[float, float]:
    """How one more tank-treading and one more flipping track move ``TT / (TT + FL)``."""
    tt, fl = f.counts()
    s = max(tt + fl, 1.0)
    if tt + fl <= 0:
        return 1.0, -1.0  # nothing reliable yet: find reliable tracks
    return fl / s**2, -tt / s**2


def _sensitivities(cal: Calibration, f: Fit, g_tt: float, g_fl: float):
    """Derivatives of the fraction's linear part (sum over unreviewed tracks of
    ``g_tt r t + g_fl r (1 - t)``) with respect to the two regressions' coefficients."""
    open_ = f.reviewed < 0
    r, t = f.r, f.t
    a = r * (1 - r) * (g_tt * t + g_fl * (1 - t))
    b = r * t * (1 - t) * (g_tt - g_fl)
    return (cal.X[open_] * a[open_, None]).sum(0), (cal.U[open_] * b[open_, None]).sum(0)


def predictive_moments(cal: Calibration, f: Fit) -> tuple[np.ndarray, np.ndarray]:
    """Mean (2,) and covariance (2, 2) of the acquisition's tank-treading and flipping counts:
    each unreviewed track a multinomial draw of its chances, plus the coefficients' uncertainty
    (delta method); reviewed tracks are known."""
    open_ = f.reviewed < 0
    p = np.stack([f.r * f.t, f.r * (1 - f.t)], axis=1)[open_]
    cov = np.diag(p.sum(0)) - p.T @ p  # sum of the tracks' multinomial covariances
    r, t = f.r[open_], f.t[open_]
    dr = cal.X[open_] * (r * (1 - r))[:, None]  # d r / d theta
    dt = cal.U[open_] * (t * (1 - t))[:, None]  # d t / d phi
    j_r = np.stack([(dr * t[:, None]).sum(0), (dr * (1 - t)[:, None]).sum(0)])
    j_t = np.stack([(dt * r[:, None]).sum(0), -(dt * r[:, None]).sum(0)])
    cov = cov + j_r @ f.cov_r @ j_r.T + j_t @ f.cov_t @ j_t.T
    return np.array(f.counts()), cov


def beta_interval(tt: float, fl: float, cov: np.ndarray, confidence: float = 0.95):
    """``(fraction, low, high)`` of expected counts ``(tt, fl)`` with covariance ``cov``.

    The counts' uncertainty (delta method) plus the patient's sampling given the counts
    (``Beta(tt + 1/2, fl + 1/2)``, Jeffreys'), matched by a Beta distribution of that mean and
    variance; its central ``confidence`` share, widened to hold the fraction. No count: NaN in
    ``[0, 1]``."""
    from scipy.special import betaincinv

    s = tt + fl
    if s <= 0:
        return float("nan"), 0.0, 1.0
    frac = tt / s
    q = (1 - confidence) / 2
    g = np.array([fl, -tt]) / s**2
    m = (tt + 0.5) / (s + 1)
    v = float(g @ cov @ g) + m * (1 - m) / (s + 2)
    k = max(m * (1 - m) / max(v, 1e-12) - 1, 1e-3)
    lo, hi = (float(x) for x in betaincinv(m * k, (1 - m) * k, [q, 1 - q]))
    return float(frac), min(lo, frac), max(hi, frac)


def estimate(
    cal: Calibration, reviewed: np.ndarray, confidence: float = 0.95, fitted: Fit | None = None
) -> dict:
    """The reviewed fraction and its interval (see the module docstring).

    Returns
    -------
    dict with ``fraction``, ``ci_low``, ``ci_high``, ``tank_treading``, ``flipping`` (expected
    counts, real numbers), ``reviewed`` (tracks reviewed).
    """
    f = fitted or fit(cal, reviewed)
    (tt, fl), cov = predictive_moments(cal, f)
    frac, lo, hi = beta_interval(tt, fl, cov, confidence)
    return {
        "fraction": frac,
        "ci_low": lo,
        "ci_high": hi,
        "tank_treading": float(tt),
        "flipping": float(fl),
        "reviewed": int((f.reviewed >= 0).sum()),
    }


def review_gains(cal: Calibration, reviewed: np.ndarray, fitted: Fit | None = None) -> np.ndarray:
    """(N,) the fraction's variance each unreviewed track's review is expected to remove
    (0 for reviewed tracks).

    Two parts, both in closed form: the track's own draw (the variance of its move of the
    fraction, ``g_c`` for its class ``c`` under its chances: the calls near a threshold whose
    change moves the fraction most) and what its label teaches the regressions about the other
    unreviewed tracks (the coefficients' covariance after one more observation at the track's
    covariates, rank-one update: ``w (J' S x)^2 / (1 + w x' S x)`` with ``J`` the fraction's
    sensitivity to the coefficients, ``S`` their covariance, ``w`` the logistic weight; the
    tank-treading part weighted by ``r``, the chance the label is a reliable one).
    """
    f = fitted or fit(cal, reviewed)
    g_tt, g_fl = _influence(f)
    open_ = f.reviewed < 0
    r, t = f.r, f.t
    p = np.stack([r * t, r * (1 - t)], axis=1)
    g = np.array([g_tt, g_fl])
    own = p @ g**2 - (p @ g) ** 2
    j_r, j_t = _sensitivities(cal, f, g_tt, g_fl)
    sx = cal.X @ f.cov_r
    w_r = r * (1 - r)
    learn_r = w_r * (sx @ j_r) ** 2 / (1 + w_r * (sx * cal.X).sum(1))
    su = cal.U @ f.cov_t
    w_t = t * (1 - t)
    learn_t = r * w_t * (su @ j_t) ** 2 / (1 + w_t * (su * cal.U).sum(1))
    return np.where(open_, own + learn_r + learn_t, 0.0)
