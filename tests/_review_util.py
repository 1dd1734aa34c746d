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
