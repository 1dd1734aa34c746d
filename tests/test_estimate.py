"""Corrected tank-treading fraction: calibration, prior shift, leakage, interval (known answers).

The classifiers are simulated with known confusion rates, so the truth of every acquisition is
known; the rates the estimators use are themselves estimated from simulated validation counts
where the test says so.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from rbcflow.classify.estimate import (
    ValidatedRates,
    adjusted_fraction,
    bootstrap_interval,
    estimate_fraction,
)
from rbcflow.classify.labels import fraction
from rbcflow.classify.posterior import apply_temperature, em_fraction, em_prior, fit_temperature


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def exact_rates(a, b, r1, u1, q, n=100_000):
    """Rates known to the counting precision of ``n`` validation tracks per pair."""
    return ValidatedRates(
        round(a * n), n, round(b * n), n, round(r1 * n), n, round(u1 * n), n, round(q * n), n
    )


def simulate(rng, pi, rel, unrel, a, b, r1, u1, q):
    """One acquisition's calls: (n_tt, n_fl, n_rejected)."""
    kept_rel = rng.binomial(rel, r1)
    leaked = rng.binomial(unrel, u1)
    tt = rng.binomial(kept_rel, pi)
    called_tt = rng.binomial(tt, a) + rng.binomial(kept_rel - tt, b) + rng.binomial(leaked, q)
    kept = kept_rel + leaked
    return int(called_tt), int(kept - called_tt), int(rel + unrel - kept)


# --- temperature scaling -------------------------------------------------------------------


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_temperature_recovered(t_true):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 20_000)  # the model's logits
    y = rng.random(z.size) < sigmoid(z / t_true)  # truths drawn from the calibrated probability
    t = fit_temperature(sigmoid(z), y)
    assert t == pytest.approx(t_true, rel=0.05)
    calibrated = apply_temperature(sigmoid(z), t)
    assert np.abs(calibrated - sigmoid(z / t_true)).max() < 0.03


def test_temperature_identity_and_inputs():
    p = np.array([0.0, 1e-9, 0.3, 0.5, 0.99, 1.0])
    assert np.array_equal(apply_temperature(p, 1.0), p)
    assert apply_temperature([0.5], 3.0)[0] == pytest.approx(0.5)
    # calls at 0.5 never change
    q = apply_temperature(p, 4.0)
    assert np.array_equal(q >= 0.5, p >= 0.5) and np.all((q > 0) & (q < 1))
    with pytest.raises(ValueError):
        apply_temperature(p, 0.0)
    with pytest.raises(ValueError):
        fit_temperature([], [])
    with pytest.raises(ValueError):
        fit_temperature([0.2, 0.7], [True])
    with pytest.raises(ValueError):
        fit_temperature([0.2, 0.7], [0, 2])


# --- EM prior ------------------------------------------------------------------------------


def posteriors(rng, prior, n, mu=1.5):
    """Well-calibrated posteriors of a classifier trained 50/50 on N(+-mu, 1) scores."""
    y = rng.random(n) < prior
    x = rng.normal(np.where(y, mu, -mu), 1.0)
    return sigmoid(2 * mu * x), y


def test_em_recovers_prior():
    rng = np.random.default_rng(2)
    p, y = posteriors(rng, 0.85, 20_000)
    prior, adj = em_prior(p)
    assert prior == pytest.approx(y.mean(), abs=0.01)
    assert abs(np.mean(p >= 0.5) - 0.85) > 0.03  # the count is biased, EM is not
    assert adj.mean() == pytest.approx(prior, abs=1e-5)
    assert em_fraction(p)["tank_treading_fraction"] == pytest.approx(prior)


def test_em_keeps_training_prior_on_balanced_set():
    p = np.array([0.1, 0.3, 0.45, 0.8, 0.97])
    p = np.concatenate([p, 1 - p])  # a balanced set, exactly
    prior, adj = em_prior(p)
    assert prior == pytest.approx(0.5, abs=1e-12)
    assert np.allclose(adj, p, atol=1e-12)
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(1.5, 1, 5000), rng.normal(-1.5, 1, 5000)])
    assert em_prior(sigmoid(3 * x))[0] == pytest.approx(0.5, abs=0.015)
    assert math.isnan(em_prior([])[0]) and math.isnan(em_fraction([])["tank_treading_fraction"])
    with pytest.raises(ValueError):
        em_prior([0.5], train_prior=1.0)


def test_calibrate_then_em():
    """An over-confident stage 2, calibrated on a 50/50 validation set, then EM on a patient."""
    rng = np.random.default_rng(4)
    p_val, y_val = posteriors(rng, 0.5, 10_000, mu=1.0)
    t = fit_temperature(sigmoid(2.5 * np.log(p_val / (1 - p_val))), y_val)
    assert t == pytest.approx(2.5, rel=0.05)
    p, y = posteriors(rng, 0.92, 5000, mu=1.0)
    raw = sigmoid(2.5 * np.log(p / (1 - p)))
    assert em_prior(apply_temperature(raw, t))[0] == pytest.approx(y.mean(), abs=0.015)
    assert abs(em_prior(raw)[0] - y.mean()) > 0.02  # uncalibrated EM is off


# --- validated rates -----------------------------------------------------------------------


def test_rates_round_trip_and_points():
    r = ValidatedRates(90, 100, np.int64(10), 100, 45, 50, 3, 300, 1, 3)
    d = json.loads(json.dumps(r.to_dict()))
    assert ValidatedRates.from_dict(d) == r
    assert (r.tt_rate, r.fl_rate, r.rel_rate, r.leak_rate) == (0.9, 0.1, 0.9, 0.01)
    assert r.leak_tt_rate == pytest.approx(1 / 3)
    assert math.isnan(ValidatedRates(0, 0, 0, 0, 0, 0, 0, 0).tt_rate)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tt_n": None}, "tt_n"),
        ({"fl_as_tt": -1}, "fl_as_tt"),
        ({"rel_kept": float("nan")}, "rel_kept"),
        ({"unrel_n": True}, "unrel_n"),
        ({"leak_as_tt": 5}, "leak_as_tt"),  # more than leak_n
        ({"extra": 1}, "extra"),
    ],
)
def test_rates_refuse_bad_dicts(change, field):
    d = {**ValidatedRates(9, 10, 1, 10, 9, 10, 1, 10, 1, 2).to_dict(), **change}
    with pytest.raises(ValueError, match=field):
        ValidatedRates.from_dict(d)
    d = ValidatedRates(9, 10, 1, 10, 9, 10, 1, 10).to_dict()
    del d["rel_n"]
    with pytest.raises(ValueError, match="rel_n"):
        ValidatedRates.from_dict(d)
    with pytest.raises(ValueError):
        ValidatedRates.from_dict([1, 2])


# --- adjusted count ------------------------------------------------------------------------


def test_adjusted_exact_on_expected_counts():
    # 1000 reliable (pi 0.8, 900 kept), 2000 unreliable (100 leaked, 30 of them called TT)
    r = exact_rates(a=0.9, b=0.1, r1=0.9, u1=0.05, q=0.3)
    out = adjusted_fraction(648 + 18 + 30, 72 + 162 + 70, 100 + 1900, r)
    assert out["tank_treading_fraction"] == pytest.approx(0.8, abs=1e-9)
    assert out["estimated_reliable"] == pytest.approx(1000)
    assert out["estimated_leaked"] == pytest.approx(100)
    assert out["tank_treading_corrected"] == pytest.approx(666)
    assert out["reason"] == ""
    # without the stage-1 correction, the plain Rogan-Gladen formula on the called share
    plain = adjusted_fraction(696, 304, 2000, r, leakage=False)["tank_treading_fraction"]
    assert plain == pytest.approx((0.696 - 0.1) / 0.8)


@pytest.mark.parametrize(
    "pi, rel, unrel, u1",
    [
        (0.85, 600, 11400, 0.03),
        (0.95, 500, 14500, 0.02),
        (0.7, 500, 0, 0.0),
        (0.9, 400, 11600, 0.02),
    ],
)
def test_adjusted_unbiased(pi, rel, unrel, u1):
    """95-97% unreliable tracks, 2-3% leakage; (the [0, 1] clip biases a truth within ~1 sd of a
    bound, hence acquisitions of 400-600 reliable tracks: sd ~0.04)."""
    a, b, r1, q = 0.92, 0.08, 0.9, 0.2
    rates = exact_rates(a, b, r1, u1, q)
    rng = np.random.default_rng(5)
    adj, naive = [], []
    for _ in range(1500):
        tt, fl, rej = simulate(rng, pi, rel, unrel, a, b, r1, u1, q)
        adj.append(adjusted_fraction(tt, fl, rej, rates)["tank_treading_fraction"])
        naive.append(tt / (tt + fl))
    assert abs(np.mean(adj) - pi) < 0.005
    if unrel:  # leakage at >= 95% unreliable: the count is far off
        assert abs(np.mean(naive) - pi) > 0.1


def test_adjusted_degenerate():
    good = exact_rates(0.9, 0.1, 0.9, 0.02, 0.2)
    cases = [
        (0, 0, 10, good, "no kept track"),
        (5, 5, 10, exact_rates(0.4, 0.5, 0.9, 0.02, 0.2), "stage 2"),
        (5, 5, 10, exact_rates(0.9, 0.1, 0.02, 0.02, 0.2), "stage 1"),
        (5, 5, 10, ValidatedRates(9, 10, 0, 0, 9, 10, 1, 10, 1, 1), "no validated"),
        (5, 5, 10, ValidatedRates(9, 10, 1, 10, 0, 0, 1, 10, 1, 1), "no validated"),
        (5, 5, 10, ValidatedRates(9, 10, 1, 10, 9, 10, 1, 10), "leaked track"),
        (1, 1, 10_000, good, "explained as leaked"),
    ]
    for tt, fl, rej, rates, why in cases:
        out = adjusted_fraction(tt, fl, rej, rates)
        assert math.isnan(out["tank_treading_fraction"]) and why in out["reason"], why
        est = estimate_fraction(tt, fl, rej, rates, method="adjusted")
        assert math.isnan(est["tank_treading_fraction"]) and math.isnan(est["ci_low"])
        assert est["note"] == out["reason"]
    # nothing leaks in validation (leak_n == 0) and nothing leaks here: fine
    ok = adjusted_fraction(8, 2, 10, ValidatedRates(9, 10, 1, 10, 9, 10, 0, 10))
    assert ok["tank_treading_fraction"] == pytest.approx(0.875) and ok["reason"] == ""
    assert all(math.isnan(v) for v in bootstrap_interval(0, 0, 0, good))
    assert all(math.isnan(v) for v in bootstrap_interval(5, 5, 10, cases[1][3]))
    with pytest.raises(ValueError):
        adjusted_fraction(-1, 2, 3, good)


# --- interval and the top-level estimate ---------------------------------------------------


def test_bootstrap_coverage_with_estimated_rates():
    rng = np.random.default_rng(6)
    a, b, r1, u1, q = 0.92, 0.08, 0.9, 0.025, 0.2
    hits = naive_hits = 0
    widths = []
    n_acq = 300
    for _ in range(n_acq):
        pi = rng.uniform(0.7, 0.97)
        unrel_kept = int(rng.binomial(8000, u1))
        rates = ValidatedRates(
            int(rng.binomial(400, a)), 400, int(rng.binomial(400, b)), 400,
            int(rng.binomial(1500, r1)), 1500, unrel_kept, 8000,
            int(rng.binomial(unrel_kept, q)), unrel_kept,
        )  # fmt: skip
        tt, fl, rej = simulate(rng, pi, 300, 6000, a, b, r1, u1, q)
        low, high = bootstrap_interval(tt, fl, rej, rates, n_boot=1000, seed=int(rng.integers(99)))
        hits += low <= pi <= high
        widths.append(high - low)
        f = fraction(tt, fl)
        naive_hits += f["ci_low"] <= pi <= f["ci_high"]
    assert hits >= 0.9 * n_acq
    assert np.median(widths) < 0.3  # an interval, not [0, 1]
    assert naive_hits < 0.2 * n_acq  # the naive Wilson interval misses the truth


def test_bootstrap_repeatable_and_fast():
    rates = exact_rates(0.9, 0.1, 0.9, 0.02, 0.2, n=1000)
    args = (640, 260, 1500, rates)
    first = bootstrap_interval(*args, seed=3)
    assert first == bootstrap_interval(*args, seed=3)
    assert first != bootstrap_interval(*args, seed=4)
    point = adjusted_fraction(*args)["tank_treading_fraction"]
    assert first[0] < point < first[1]
    assert bootstrap_interval(*args, confidence=0.5)[1] - bootstrap_interval(*args)[1] < 0
    times = []
    for _ in range(5):
        start = time.perf_counter()
        bootstrap_interval(*args, n_boot=2000)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.05


def test_estimate_fraction_methods():
    rates = exact_rates(0.9, 0.1, 0.9, 0.02, 0.2, n=1000)
    naive = estimate_fraction(640, 260, 1500, rates, method="naive")
    f = fraction(640, 260)
    assert naive["tank_treading_fraction"] == f["tank_treading_fraction"]
    assert (naive["ci_low"], naive["ci_high"]) == (f["ci_low"], f["ci_high"])
    assert naive["method"] == "naive" and naive["note"] == ""
    adj = estimate_fraction(640, 260, 1500, rates, method="adjusted", seed=3)
    assert adj["method"] == "adjusted"
    assert (
        adj["tank_treading_fraction"]
        == adjusted_fraction(640, 260, 1500, rates)["tank_treading_fraction"]
    )
    assert (adj["ci_low"], adj["ci_high"]) == bootstrap_interval(640, 260, 1500, rates, seed=3)
    assert adj["estimated_leaked"] > 0 and adj["estimated_reliable"] > 900
    # stage 2 corrected only: its point, and an interval that brackets the leaked tracks'
    # effect (the union of the intervals without and with the leakage term)
    s2 = estimate_fraction(640, 260, 1500, rates, method="stage2", seed=3)
    plain = adjusted_fraction(640, 260, 1500, rates, leakage=False)["tank_treading_fraction"]
    assert s2["method"] == "stage2" and s2["tank_treading_fraction"] == plain
    without = bootstrap_interval(640, 260, 1500, rates, seed=3, leakage=False)
    with_leak = bootstrap_interval(640, 260, 1500, rates, seed=3)
    assert s2["ci_low"] == min(without[0], with_leak[0])
    assert s2["ci_high"] == max(without[1], with_leak[1])
    assert s2["ci_low"] < adj["tank_treading_fraction"] < s2["ci_high"]
    assert s2["estimated_leaked"] == adj["estimated_leaked"]
    fallback = estimate_fraction(640, 260, 1500, None)
    assert fallback["method"] == "naive" and "no validated rates" in fallback["note"]
    assert math.isnan(estimate_fraction(0, 0, 5, None)["tank_treading_fraction"])
    with pytest.raises(ValueError):
        estimate_fraction(1, 1, 1, rates, method="magic")


def test_em_bootstrap_and_estimate():
    from rbcflow.classify.posterior import em_bootstrap, em_estimate

    rng = np.random.default_rng(8)
    p, _ = posteriors(rng, 0.8, 600)
    boots = em_bootstrap(p, n_boot=300, seed=1)
    assert boots.shape == (300,)
    assert np.array_equal(boots, em_bootstrap(p, n_boot=300, seed=1))  # repeatable
    assert abs(np.median(boots) - em_prior(p)[0]) < 0.01
    e = em_estimate(p, 1.0, 0.5)
    assert e["ci_low"] < 0.8 < e["ci_high"] and e["ci_high"] - e["ci_low"] < 0.15
    # leaked tracks all called flipping: the bracket reaches up to the figure without them
    leak = em_estimate(p, 1.0, 0.5, leaked=60, leak_tt=0.0)
    assert leak["tank_treading_fraction"] == e["tank_treading_fraction"]
    assert leak["ci_high"] > e["ci_high"] and leak["ci_low"] == e["ci_low"]
    assert math.isnan(em_estimate([], 1.0, 0.5)["tank_treading_fraction"])
