"""models/train_defaults.py: ``--cv-from-models`` writes the shipped members as the fold members."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rbcflow.classify.inference import predict_proba
from rbcflow.classify.model_folder import load_model
from rbcflow.classify.sampling import prepare
from rbcflow.io.sequences import read_dataset

ROOT = Path(__file__).resolve().parents[1]


def _train_defaults():
    spec = importlib.util.spec_from_file_location(
        "train_defaults", ROOT / "models/train_defaults.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cv_from_models_gives_the_shipped_held_out_figures(tmp_path, shared_data):
    """Member i is fold i's: the exported out-of-fold rows give the figures the shipped config
    states for each held-out fold, and the members averaged are the shipped ensemble."""
    td = _train_defaults()
    sets = {n: read_dataset(shared_data / n) for n in ("stage1_BG", "stage2_train")}
    args = SimpleNamespace(out=str(ROOT / "rbcflow/models"), cv_out=str(tmp_path))
    report = td.export_cv(1, sets, args)
    shipped = load_model(ROOT / "rbcflow/models/stage1")
    assert report["held_out_figures"]["folds"] == shipped.config["held_out_figures"]["folds"]
    assert (tmp_path / "oof_stage1.csv").is_file()
    members = [load_model(tmp_path / f"stage1_{name}") for name in td.FOLDS[1]]
    seqs = sets["stage1_BG"][:40]
    x = prepare([s.frames for s in seqs], 12, "uniform", pad=False)
    lengths = [len(a) for a in x]
    mean = np.mean([predict_proba(m.network, x, lengths) for m in members], axis=0)
    np.testing.assert_allclose(mean, predict_proba(shipped.network, x, lengths), atol=1e-5)
