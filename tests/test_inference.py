"""Inference with the shipped models: contract, thresholds, defaults, held-out real data."""

from __future__ import annotations

import numpy as np
import pytest

from rbcflow.config import ReportConfig
from rbcflow.errors import ModelError
from rbcflow.inference import (
    Classifier,
    default_model_dir,
    evaluate,
    load_classifier,
    resolve_device,
)
from rbcflow.schema import LABEL_NAMES, SchemaError


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return load_classifier(device="cpu")


def test_default_model_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("RBCFLOW_MODELS", raising=False)
    assert default_model_dir(1).parts[-2:] == ("models", "stage1")
    assert (default_model_dir(2) / "config.json").is_file()  # the shipped model is there
    monkeypatch.setenv("RBCFLOW_MODELS", str(tmp_path))
    assert default_model_dir(2) == tmp_path / "stage2"
    with pytest.raises(ModelError, match="model folder not found"):
        load_classifier()
    with pytest.raises(ValueError):
        default_model_dir(3)


def test_shipped_models_are_small_and_described(shipped):
    for model, stage in ((shipped.stage1, 1), (shipped.stage2, 2)):
        cfg = model.config
        assert cfg["stage"] == stage
        assert (model.path / "weights.safetensors").stat().st_size < 8_000_000
        assert cfg["test"]["acquisitions"] and cfg["training"]["train_acquisitions"]
        assert not set(cfg["test"]["acquisitions"]) & set(cfg["training"]["train_acquisitions"])
    assert len(shipped.stage1_checksum) == 12 and shipped.stage1_checksum != shipped.stage2_checksum


def test_predict_contract(shipped):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(100, 140, (t, 31, 31), dtype=np.uint8) for t in (1, 6, 20, 57)]
    calls = []
    pred = shipped.predict(seqs, batch_size=3, progress=calls.append)
    assert list(pred.columns) == ["p_reliable", "p_tank_treading", "label"]
    assert len(pred) == 4 and sum(calls) == 4
    assert pred.p_reliable.between(0, 1).all() and pred.p_tank_treading.between(0, 1).all()
    assert set(pred.label) <= set(LABEL_NAMES.values())
    # Order and batching do not change the answer.
    again = shipped.predict(seqs[::-1], batch_size=256)
    np.testing.assert_allclose(again.p_reliable[::-1], pred.p_reliable, atol=1e-5)
    np.testing.assert_allclose(again.p_tank_treading[::-1], pred.p_tank_treading, atol=1e-5)
    assert shipped.predict([]).shape == (0, 3)
    with pytest.raises(SchemaError):
        shipped.predict([np.zeros((5, 32, 31), np.uint8)])


def test_labels_follow_thresholds(shipped):
    clf = Classifier(
        shipped.stage1,
        shipped.stage2,
        thresholds=ReportConfig(reliable_threshold=0.7, flipping_threshold=0.6),
    )
    labels = clf.label(np.array([0.69, 0.7, 0.9, 0.9]), np.array([0.0, 0.5, 0.41, 0.39]))
    assert labels.tolist() == ["unreliable", "tank-treading", "tank-treading", "flipping"]


def test_stage_mismatch_and_devices(shipped):
    with pytest.raises(ModelError, match="stage-2 model, expected stage 1"):
        load_classifier(stage1=shipped.stage2_dir, stage2=shipped.stage2_dir)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ModelError):
        resolve_device("tpu:7")


def test_shipped_models_on_held_out_real_acquisitions(shipped, shared_data):
    """Well above chance on acquisitions held out from the shipped models' training."""
    from rbcflow.io.sequences import read_dataset

    held = set(shipped.stage1.config["test"]["acquisitions"])
    assert held == set(shipped.stage2.config["test"]["acquisitions"])
    seqs = [
        s
        for n in ("stage1_BG", "stage2_train")
        for s in read_dataset(shared_data / n)
        if s.acquisition in held
    ]
    assert len(seqs) >= 40
    res = evaluate(
        shipped, [s.name for s in seqs], [s.frames for s in seqs], [s.label for s in seqs]
    )
    s1, s2 = res["stage1"], res["stage2"]
    # Balanced accuracy; chance is 0.5.
    assert (s1["recall"] + s1["specificity"]) / 2 >= 0.8, s1
    assert (s2["recall"] + s2["specificity"]) / 2 >= 0.75, s2
    acq = res["acquisitions"].set_index("acquisition")
    assert abs(acq.tt_fraction_true - acq.tt_fraction_est).max() <= 0.25
