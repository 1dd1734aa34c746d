"""The reviewed estimate (rbcflow.review.calibrated) and the review order (rbcflow.review.order)
on acquisitions drawn like the synthetic recordings with 85 % unreliable tracks
(_review_util.synthetic_tracks): exact when every track is reviewed, close to the truth under
random review, the order at least twice as efficient as a random one, the fit converged when
the reviews contradict its prior, the interval covering the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _review_util import synthetic_tracks

from rbcflow.classify.labels import fraction
from rbcflow.review.calibrated import _map_logistic, _sigmoid, calibration_of, estimate, fit
from rbcflow.review.order import review_order
from rbcflow.run_settings import ReviewConfig


def _acq(seed: int, cfg: ReviewConfig | None = None):
    a = synthetic_tracks(seed)
    cal = calibration_of(a["calls"], a["rules"], a["p_rel"], a["p_tt"], cfg)
    y = a["truth"]
    return a, cal, y, (y == 0).sum() / (y < 2).sum()


def _tool(cal, y, steps):
    """Errors' source: the estimate after each of ``steps`` reviews in the tool's order."""
    rev, ids, out = np.full(len(y), -1), np.arange(len(y)), {}
    for s in range(max(steps) + 1):
        if s in steps:
            out[s] = estimate(cal, rev)
        if s < max(steps):
            k = review_order(ids, cal, rev)[0]
            rev[k] = y[k]
    return out


def test_exact_when_every_track_is_reviewed():
    a, cal, y, f_true = _acq(0)
    e = estimate(cal, y)
    tt, fl = int((y == 0).sum()), int((y == 1).sum())
    assert e["fraction"] == pytest.approx(f_true) and e["reviewed"] == len(y)
    assert (e["tank_treading"], e["flipping"]) == (tt, fl)
    w = fraction(tt, fl)  # the report's Wilson interval: about the same
    assert e["ci_low"] == pytest.approx(w["ci_low"], abs=0.02)
    assert e["ci_high"] == pytest.approx(w["ci_high"], abs=0.02)
    assert e == estimate(cal, y)  # closed form: the same reviews, the same figures


def test_close_to_the_truth_under_random_review():
    """150 of ~350 tracks reviewed at random: the reviews re-calibrate the unreviewed tracks'
    chances, so the estimate keeps a small part of the calls' bias (a logistic model is not
    exactly the generator), where the plain count (reviewed labels, the other tracks' calls)
    keeps all of it for the unreviewed tracks."""
    est, plain = [], []
    for seed in range(12):
        a, cal, y, f_true = _acq(seed)
        rng = np.random.default_rng(seed)
        for _ in range(3):
            rev = np.full(len(y), -1)
            pick = rng.choice(len(y), 150, replace=False)
            rev[pick] = y[pick]
            est.append(estimate(cal, rev)["fraction"] - f_true)
            lab = np.array([{"tank-treading": 0, "flipping": 1}.get(c, 2) for c in a["calls"]])
            lab[pick] = y[pick]
            plain.append((lab == 0).sum() / (lab < 2).sum() - f_true)
    est, plain = np.array(est), np.array(plain)
    # measured: mean error +0.011 (mean |error| 0.027) against the plain count's -0.082
    assert plain.mean() < -0.05 and abs(est.mean()) < 0.2 * abs(plain.mean())
    assert np.abs(est).mean() < 0.5 * np.abs(plain).mean()


def test_order_needs_at_most_half_the_reviews_of_a_random_one():
    tool = {25: [], 50: [], 100: []}
    rand = {50: [], 100: [], 200: []}
    for seed in range(6):
        a, cal, y, f_true = _acq(seed)
        for s, e in _tool(cal, y, (25, 50, 100)).items():
            tool[s].append(abs(e["fraction"] - f_true))
        rng = np.random.default_rng(100 + seed)
        for _ in range(3):
            perm = rng.permutation(len(y))
            for s in rand:
                rev = np.full(len(y), -1)
                rev[perm[:s]] = y[perm[:s]]
                rand[s].append(abs(estimate(cal, rev)["fraction"] - f_true))
    m = {f"tool {s}": np.mean(v) for s, v in tool.items()}
    m.update({f"random {s}": np.mean(v) for s, v in rand.items()})
    assert m["tool 25"] <= m["random 50"] and m["tool 50"] <= m["random 100"], m
    assert m["tool 100"] <= m["random 200"] and m["tool 100"] < 0.015, m


def test_interval_covers_the_truth_in_the_tools_order():
    hits = 0
    for seed in range(10):
        _, cal, y, f_true = _acq(20 + seed)
        e = _tool(cal, y, (40,))[40]
        hits += e["ci_low"] <= f_true <= e["ci_high"]
    assert hits >= 8


def test_fit_converges_when_the_reviews_contradict_the_prior():
    """Every rejected track with p_reliable > 0.8 reviewed reliable, against a prior of 1 %:
    a full Newton step from the prior overshoots there; the fit is still the maximum (its
    gradient ~0) and the unreviewed look-alikes become likely reliable."""
    cfg = dataclasses.replace(ReviewConfig(), prior_rule_reliable=0.01)
    a, cal, y, _ = _acq(3, cfg)
    rev = np.full(len(y), -1)
    high = (a["rules"] != "") & (a["p_rel"] > 0.8)
    rev[high & (np.arange(len(y)) % 2 == 0)] = 0
    rev[(a["rules"] != "") & (a["p_rel"] < 0.3)] = 2
    done = rev >= 0
    X, t = cal.X[done], (rev[done] != 2).astype(float)
    theta, _ = _map_logistic(X, t, cal.x_mean, cal.x_prec)
    grad = X.T @ (t - _sigmoid(X @ theta)) - cal.x_prec * (theta - cal.x_mean)
    assert np.abs(grad).max() < 1e-6
    f = fit(cal, rev)
    assert f.r[high & ~done].mean() > 0.5


def test_order_lists_the_uncertain_calls_first_and_follows_each_decision():
    a, cal, y, _ = _acq(1)
    ids = np.arange(1000, 1000 + len(y))
    rev = np.full(len(y), -1)
    order = review_order(ids, cal, rev)
    assert sorted(order) == sorted(ids.tolist())
    pos = {t: i for i, t in enumerate(order)}
    calls, p_rel = a["calls"], a["p_rel"]
    # flipping calls (one class, high influence) before stage 1's confident rejections
    fl = [pos[t] for t in ids[calls == "flipping"]]
    sure = [pos[t] for t in ids[(calls == "unreliable") & (a["rules"] == "") & (p_rel < 0.01)]]
    assert np.median(fl) < np.percentile(sure, 5)
    # reviewed tracks go last, by id; the order is recomputed from the reviews
    first = [ids.tolist().index(t) for t in order[:5]]
    rev[first] = y[first]
    after = review_order(ids, cal, rev)
    assert after[-5:] == sorted(ids[first].tolist())
    # a rule's rejection found reliable makes its look-alikes worth more than if it had not
    two = np.flatnonzero((a["rules"] == "two cells") & (p_rel > 0.8))
    k, others = two[0], ids[two[1:]]
    found, not_found = rev.copy(), rev.copy()
    found[k], not_found[k] = 0, 2
    rank_found = [review_order(ids, cal, found).index(t) for t in others]
    rank_not = [review_order(ids, cal, not_found).index(t) for t in others]
    assert np.mean(rank_found) < np.mean(rank_not)
