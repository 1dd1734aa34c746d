"""Out-of-fold calibration blocks -> validated rates -> an acquisition's corrected fraction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rbcflow.classify.calibration import (
    calibration_block,
    estimate_acquisition,
    overdispersion,
    rates_at,
)
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.config import EstimateConfig, ReportConfig

TT, FL, UN = "tank-treading", "flipping", "unreliable"


def test_overdispersion_known_answers():
    # equal rates: counting explains everything
    assert overdispersion([10, 20], [100, 200]) == 1.0
    # 0.1 vs 0.5 on 100 each: pooled 0.3, chi2 = 2 * 100 * 0.04 / 0.21, one degree of freedom
    assert overdispersion([10, 50], [100, 100]) == pytest.approx(200 * 0.04 / 0.21)
    # one group, or no hit anywhere: nothing to measure
    assert overdispersion([3], [10]) == 1.0
    assert overdispersion([0, 0], [50, 60]) == 1.0


def blocks(p1, y1, p2, y2, f1=None, f2=None):
    b1 = {"p_reliable": list(p1), "label": list(y1)}
    b2 = {"p_tank_treading": list(p2), "label": list(y2)}
    if f1 is not None:
        b1["fold"], b2["fold"] = list(f1), list(f2)
    return b1, b2


def test_rates_at_counts_follow_the_thresholds():
    # stage 1: 4 reliable (p 0.9, 0.8, 0.6, 0.4), 4 unreliable (0.7, 0.3, 0.2, 0.1)
    # stage 2: 3 TT (0.9, 0.8, 0.3), 3 flipping (0.6, 0.2, 0.1), 2 unreliable (0.7, 0.2)
    b1, b2 = blocks(
        [0.9, 0.8, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1],
        [0, 1, 0, 1, 2, 2, 2, 2],
        [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.2],
        [0, 0, 0, 1, 1, 1, 2, 2],
    )
    r = rates_at(b1, b2, 0.5, 0.5)
    assert (r.rel_kept, r.rel_n, r.unrel_kept, r.unrel_n) == (3, 4, 1, 4)
    assert (r.tt_as_tt, r.tt_n, r.fl_as_tt, r.fl_n) == (2, 3, 1, 3)
    assert (r.leak_as_tt, r.leak_n) == (1, 2)
    strict = rates_at(b1, b2, 0.75, 0.5)
    assert (strict.rel_kept, strict.unrel_kept) == (2, 0)
    # flipping threshold 0.8: a reliable track is flipping only when 1 - p_tt >= 0.8
    lax = rates_at(b1, b2, 0.5, 0.8)
    assert (lax.tt_as_tt, lax.fl_as_tt) == (3, 1)
    assert rates_at(None, b2) is None and rates_at(b1, {}) is None


def test_rates_at_shrinks_counts_that_vary_between_folds():
    rng = np.random.default_rng(0)
    n = 200
    y1 = np.r_[np.zeros(n, int), np.full(2 * n, 2)]
    # reliable all kept; unreliable leak 2 % in fold a, 20 % in fold b
    p1 = np.r_[
        np.full(n, 0.9), np.where(rng.random(2 * n) < np.r_[[0.02] * n, [0.2] * n], 0.9, 0.1)
    ]
    f1 = ["x"] * n + ["a"] * n + ["b"] * n
    y2 = np.r_[np.zeros(n, int), np.ones(n, int)]
    p2 = np.r_[np.full(n, 0.9), np.full(n, 0.1)]
    f2 = ["a"] * n + ["b"] * n
    flat = rates_at(*blocks(p1, y1, p2, y2))
    shrunk = rates_at(*blocks(p1, y1, p2, y2, f1, f2))
    assert shrunk.unrel_n < flat.unrel_n / 5  # leak rates 0.02 vs 0.2: far over-dispersed
    assert shrunk.leak_rate == pytest.approx(flat.leak_rate)  # the same rate, less certain
    # perfectly consistent stage-2 rates are not shrunk
    assert (shrunk.tt_n, shrunk.tt_as_tt) == (flat.tt_n, flat.tt_as_tt)


def test_calibration_block_fits_a_temperature_and_checks_lengths():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 3000)
    truth = rng.random(3000) < 1 / (1 + np.exp(-z / 2.0))  # calibrated at T = 2
    p = 1 / (1 + np.exp(-z))  # over-confident by a factor 2
    labels = np.where(truth, 0, 1)  # tank-treading = 0 is stage 2's probability's class
    block = calibration_block(2, p, labels, "test", folds=["f"] * 3000)
    assert block["temperature"] == pytest.approx(2.0, rel=0.1)
    assert len(block["p_tank_treading"]) == len(block["fold"]) == 3000
    assert "temperature" not in calibration_block(1, p, labels, "test")
    with pytest.raises(ValueError, match="folds"):
        calibration_block(1, p, labels, "test", folds=["f"])
    with pytest.raises(ValueError):
        calibration_block(1, p[:10], labels, "test")


def test_estimate_acquisition_without_rates_is_the_count():
    labels = [TT] * 8 + [FL] * 2 + [UN] * 30
    out = estimate_acquisition(labels, [""] * 40, None)
    assert out["fraction_method"] == "naive (no validated rates)"
    assert out["tank_treading_fraction"] == out["fraction_counted"] == 0.8
    assert (out["tank_treading"], out["flipping"], out["reliable"]) == (8, 2, 10)
    assert math.isnan(out["estimated_leaked"])


def test_estimate_acquisition_corrects_with_rates_and_ignores_rule_rejections():
    # stage 2 calls 10 % of flipping cells tank-treading and keeps 90 % of TT; no leakage
    rates = ValidatedRates(900, 1000, 100, 1000, 1000, 1000, 0, 1000, 0, 0)
    # truth: 60 TT, 40 FL -> calls: 54 + 4 = 58 TT, 6 + 36 = 42 FL
    labels = [TT] * 58 + [FL] * 42 + [UN] * 50
    rules = [""] * 120 + ["two cells"] * 30
    out = estimate_acquisition(
        labels, rules, rates, ReportConfig(), EstimateConfig(method="stage2")
    )
    assert out["fraction_counted"] == pytest.approx(0.58)
    assert out["tank_treading_fraction"] == pytest.approx(0.6)
    assert out["ci_low"] < 0.6 < out["ci_high"]
    assert out["fraction_method"] == "stage2"
    assert out["estimated_leaked"] == pytest.approx(0.0)
    # with leakage: 5 % of unreliable kept, all called flipping; the 20 network rejections
    # (not the 30 rule rejections) make the unreliable estimate
    leaky = ValidatedRates(1000, 1000, 0, 1000, 1000, 1000, 500, 1000, 0, 1000)
    labels = [TT] * 60 + [FL] * 41 + [UN] * 19 + [UN] * 30
    out = estimate_acquisition(
        labels, [""] * 120 + ["cut by border"] * 30, leaky, estimate=EstimateConfig("adjusted")
    )
    assert out["estimated_leaked"] == pytest.approx(19.0, rel=0.01)  # U = 38: 19 rejected
    assert out["tank_treading_fraction"] == pytest.approx(60 / 82, rel=0.01)


def test_estimate_acquisition_em_recovers_the_prior_of_calibrated_probabilities():
    rng = np.random.default_rng(3)
    # 400 reliable tracks, 85 % tank-treading; stage 2's score z ~ N(+-2, 1.5): the calibrated
    # posterior (50/50 prior) is sigmoid(a z), a = 2 * 2 / 1.5**2; the network is over-confident
    # by a factor 2 (the validated temperature is 2); 100 rejected tracks, no leakage
    truth_tt = rng.random(400) < 0.85
    z = np.where(truth_tt, 2.0, -2.0) + rng.normal(0, 1.5, 400)
    p_tt = 1 / (1 + np.exp(-2 * (4 / 1.5**2) * z))
    labels = np.where(p_tt > 0.5, TT, FL).tolist() + [UN] * 100
    p_all = np.r_[p_tt, np.full(100, 0.3)]
    rates = ValidatedRates(455, 500, 45, 500, 990, 1000, 0, 1000, 10, 100)
    out = estimate_acquisition(labels, [""] * 500, rates, p_tank_treading=p_all, temperature=2.0)
    assert out["fraction_method"] == "em"
    assert out["tank_treading_fraction"] == pytest.approx(truth_tt.mean(), abs=0.03)
    assert out["ci_low"] < truth_tt.mean() < out["ci_high"]
    # the interval holds stage2's too
    s2 = estimate_acquisition(labels, [""] * 500, rates, estimate=EstimateConfig("stage2"))
    assert out["ci_low"] <= s2["ci_low"] and out["ci_high"] >= s2["ci_high"]
    # without a validated temperature it falls back to stage2 and says so
    fb = estimate_acquisition(labels, [""] * 500, rates, p_tank_treading=p_all)
    assert fb["fraction_method"] == "stage2 (em: no calibrated probabilities)"
    assert fb["tank_treading_fraction"] == s2["tank_treading_fraction"]
