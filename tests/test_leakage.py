"""Fractions that discount leaked unreliable tracks by their stage-1 scores (known answers).

Both stages are simulated with known score distributions on the logit scale: the reference
(out-of-fold) block is drawn from the same distributions as the acquisition, so the estimators'
assumptions hold and the true fraction is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from rbcflow.classify.calibration import estimate_acquisition
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.classify.labels import label_tracks
from rbcflow.classify.leakage import leaked_count, leakmix_estimate, soft_estimate
from rbcflow.classify.posterior import em_prior
from rbcflow.config import EstimateConfig, ReportConfig

THR = 0.7


def sig(z):
    return 1 / (1 + np.exp(-z))


REF_PRIOR = 2 / 3  # the reference's (and the "training" set's) reliable share


def stage1_scores(rng, n_rel, n_un):
    """Stage 1's logit z ~ N(2, 1) (reliable), N(-2, 1) (unreliable); the score is the exact
    posterior at the reference's prior, sigmoid(4 z + log 2): 2.1 % of unreliable pass 0.7."""
    z = np.r_[rng.normal(2.0, 1.0, n_rel), rng.normal(-2.0, 1.0, n_un)]
    return sig(4.0 * z + np.log(REF_PRIOR / (1 - REF_PRIOR)))


def stage2_scores(rng, n_tt, n_fl, n_un):
    """TT logit ~ N(2.5, 1), flipping ~ N(-2.5, 1), unreliable ~ N(-1.5, 1.5) (mostly called
    flipping); the score is the exact posterior of TT vs flipping at a 50/50 prior."""
    z = np.r_[rng.normal(2.5, 1, n_tt), rng.normal(-2.5, 1, n_fl), rng.normal(-1.5, 1.5, n_un)]
    return sig(5.0 * z)


def references(rng, n=1500):
    """Out-of-fold blocks: stage 1 with 1/3 unreliable; stage 2 flipping and unreliable."""
    n_rel = int(round(REF_PRIOR * n))
    p1 = stage1_scores(rng, n_rel, n - n_rel)
    block1 = {"p_reliable": p1.tolist(), "label": [0] * n_rel + [2] * (n - n_rel)}
    p2 = stage2_scores(rng, 500, 500, 500)
    block2 = {"p_tank_treading": p2.tolist(), "label": [0] * 500 + [1] * 500 + [2] * 500}
    return block1, block2


def acquisition(rng, truth, n_rel=200, n_un=3800):
    n_tt = int(round(truth * n_rel))
    p1 = stage1_scores(rng, n_rel, n_un)
    p2 = stage2_scores(rng, n_tt, n_rel - n_tt, n_un)
    return p1, p2, n_tt / n_rel


@pytest.mark.parametrize("truth", [0.6, 0.9])
def test_soft_recovers_the_fraction_the_count_misses(truth):
    rng = np.random.default_rng(int(truth * 100))
    block1, block2 = references(rng)
    soft_err, count_err = [], []
    for _ in range(3):
        p1, p2, true = acquisition(rng, truth)
        kept = p1 >= THR
        # ~80 leaked tracks, mostly called flipping, beside ~195 reliable
        count_err.append(((p2 >= 0.5) & kept).sum() / kept.sum() - true)
        out = soft_estimate(p1, p2, block1, block2, n_boot=30)
        soft_err.append(out["tank_treading_fraction"] - true)
        # 200 reliable tracks: the counting error alone is ~0.03 (1 sd)
        assert abs(soft_err[-1]) < 0.06
        assert out["estimated_reliable"] == pytest.approx(200, rel=0.1)
    assert np.mean(count_err) < -0.05
    assert abs(np.mean(soft_err)) < 0.025


def test_leaked_count_recovers_a_known_leak():
    rng = np.random.default_rng(4)
    # reference: reliable kept score logit N(3, 0.6); unreliable near misses and leaks N(1, 0.4)
    rel = sig(rng.normal(3, 0.6, 400))
    un = np.r_[sig(rng.normal(1, 0.4, 60)), sig(rng.normal(-4, 1, 200))]
    block = {"p_reliable": np.r_[rel, un].tolist(), "label": [0] * 400 + [2] * 260}
    for leak in (0, 40, 120):
        kept = np.r_[sig(rng.normal(3, 0.6, 300)), sig(rng.normal(1, 0.4, leak))]
        assert leaked_count(kept, block, THR) == pytest.approx(leak, abs=max(6, 0.15 * leak))
    assert leaked_count([], block, THR) == 0.0


def test_leakmix_removes_the_leaked_calls():
    rng = np.random.default_rng(5)
    rel = sig(rng.normal(3, 0.6, 400))
    un = np.r_[sig(rng.normal(1, 0.4, 60)), sig(rng.normal(-4, 1, 200))]
    block = {"p_reliable": np.r_[rel, un].tolist(), "label": [0] * 400 + [2] * 260}
    p_un_ref = stage2_scores(rng, 0, 0, 300)
    n_tt, n_fl, leak = 240, 60, 150
    p1 = np.r_[sig(rng.normal(3, 0.6, n_tt + n_fl)), sig(rng.normal(1, 0.4, leak))]
    p2 = stage2_scores(rng, n_tt, n_fl, leak)
    em_only = em_prior(p2)[0]
    assert 0.8 - em_only > 0.1  # the leak drags the plain EM down
    out = leakmix_estimate(p1, p2, block, p_un_ref, 1.0, 0.5, THR, n_boot=50)
    assert out["estimated_leaked"] == pytest.approx(leak, rel=0.15)
    assert out["tank_treading_fraction"] == pytest.approx(0.8, abs=0.03)
    assert out["ci_low"] <= 0.8 <= out["ci_high"]


def test_estimate_acquisition_soft_and_leakmix_and_their_fallbacks():
    rng = np.random.default_rng(6)
    block, block2 = references(rng)
    p1, p2, true = acquisition(rng, 0.8)
    report = ReportConfig(reliable_threshold=THR)
    labels = label_tracks(p1, p2, report)
    rates = ValidatedRates(990, 1000, 10, 1000, 990, 1000, 7, 1000, 200, 1000)
    common = dict(p_tank_treading=p2, temperature=1.0, p_reliable=p1, blocks=(block, block2))
    rules = [""] * len(labels)
    soft = estimate_acquisition(labels, rules, rates, report, EstimateConfig("soft"), **common)
    assert soft["fraction_method"] == "soft"
    assert soft["tank_treading_fraction"] == pytest.approx(true, abs=0.04)
    mix = estimate_acquisition(labels, rules, rates, report, EstimateConfig("leakmix"), **common)
    assert mix["fraction_method"] == "leakmix" and np.isfinite(mix["estimated_leaked"])
    # without stage-1 scores or blocks they fall back to em and say why
    fb = estimate_acquisition(
        labels, rules, rates, report, EstimateConfig("soft"), p_tank_treading=p2, temperature=1.0
    )
    assert fb["fraction_method"] == "em (soft: no stage-1 scores or calibration)"


def test_blend_averages_em_and_soft_only_where_stage_1_rejects_most_tracks():
    rng = np.random.default_rng(7)
    block, block2 = references(rng)
    report = ReportConfig(reliable_threshold=THR)
    rates = ValidatedRates(990, 1000, 10, 1000, 990, 1000, 7, 1000, 200, 1000)
    for n_un, blended in ((3800, True), (100, False)):  # ~95 % and ~33 % rejected
        p1, p2, _ = acquisition(rng, 0.8, n_un=n_un)
        labels = label_tracks(p1, p2, report)
        rules = [""] * len(labels)
        common = dict(p_tank_treading=p2, temperature=1.0, p_reliable=p1, blocks=(block, block2))
        got = {
            m: estimate_acquisition(labels, rules, rates, report, EstimateConfig(m), **common)
            for m in ("em", "soft", "blend")
        }
        if blended:
            mean = (got["em"]["tank_treading_fraction"] + got["soft"]["tank_treading_fraction"]) / 2
            assert got["blend"]["fraction_method"] == "blend"
            assert got["blend"]["tank_treading_fraction"] == pytest.approx(mean)
            assert got["blend"]["ci_low"] == min(got["em"]["ci_low"], got["soft"]["ci_low"])
            assert got["blend"]["ci_high"] == max(got["em"]["ci_high"], got["soft"]["ci_high"])
        else:
            assert got["blend"]["fraction_method"] == "em"
            assert got["blend"]["tank_treading_fraction"] == got["em"]["tank_treading_fraction"]
