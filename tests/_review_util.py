"""A small real results folder for the review tests: a synthetic acquisition analysed by the
real pipeline with a stand-in classifier (no model files), so strips and thumbnail are real."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rbcflow.batch import analyze_batch
from rbcflow.synthetic import SynthConfig, write_acquisition

SMALL = SynthConfig(width=320, height=240, n_frames=240, cells_in_view=8)


class StandIn:
    """Deterministic probabilities from the crops: every kind of call, some borderline."""

    stage1_checksum = "a" * 64
    stage2_checksum = "b" * 64
    stage1_dir = "stand-in-1"
    stage2_dir = "stand-in-2"

    def predict(self, sequences, *, batch_size=256, progress=None):
        p_rel = np.array([min(0.99, len(s) / 40) for s in sequences])
        p_tt = np.array([(float(np.asarray(s, float).std()) * 7.3) % 1.0 for s in sequences])
        return pd.DataFrame({"p_reliable": p_rel, "p_tank_treading": p_tt})


def make_results(folder: Path, cache: Path) -> Path:
    """``folder`` holds a results folder (copied from ``cache``, analysed there once)."""
    if not (cache / "report.csv").is_file():
        src = cache.parent / f"{cache.name}-input"
        src.mkdir(parents=True, exist_ok=True)
        write_acquisition(src / "acq<b>.tif", SMALL, rng=11)
        analyze_batch([src], cache, StandIn(), threaded=False)
    shutil.copytree(cache, folder)
    return folder


def synthetic_tracks(seed: int, n: int = 350) -> dict[str, np.ndarray]:
    """An acquisition's calls as the shipped models gave them on the synthetic recordings
    with 85 % unreliable tracks (``bench_review.py``'s), drawn without a video: the true
    classes (0 tank-treading, 1 flipping, 2 unreliable), ``p_reliable`` and ``p_tank_treading``
    spread as measured there (stage 2's boundary near 0.25, not 0.5: tank-treading cells
    called flipping), the rules' rejections (``two cells`` also rejects a quarter of the true
    tank-treading cells) and the calls by the label rule (rule, then the 0.5 thresholds)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, n, p=[0.12, 0.03, 0.85])
    logit_rel = np.select(
        [truth == 0, truth == 1],
        [rng.normal(2.4, 0.5, n), rng.normal(1.3, 0.6, n)],
        np.where(rng.uniform(size=n) < 0.6, rng.normal(-4.5, 1.0, n), rng.normal(0.0, 1.5, n)),
    )
    logit_tt = np.select(
        [truth == 0, truth == 1],
        [rng.normal(2.0, 1.5, n), rng.normal(-2.4, 0.6, n)],
        rng.normal(0.3, 1.0, n),
    )
    p_rel, p_tt = 1 / (1 + np.exp(-logit_rel)), 1 / (1 + np.exp(-logit_tt))
    u = rng.uniform(size=n)
    rules = np.full(n, "", dtype=object)
    unrel_high = (truth == 2) & (p_rel > 0.3)
    rules[unrel_high & (u < 0.6)] = "two cells"
    rules[unrel_high & (u >= 0.6) & (u < 0.8)] = "cut by border"
    rules[(truth == 0) & (u < 0.25)] = "two cells"
    calls = np.where(
        (rules != "") | (p_rel < 0.5),
        "unreliable",
        np.where(p_tt >= 0.5, "tank-treading", "flipping"),
    ).astype(object)
    return {"calls": calls, "rules": rules, "p_rel": p_rel, "p_tt": p_tt, "truth": truth}
