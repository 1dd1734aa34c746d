"""Issue 14, models: no model can be swapped unnoticed.

The shipped models' sums are pinned in the package; any other folder is user-supplied, refused
by ``analyze`` without ``--allow-user-models`` and reported as such; a config is checked against
a schema with bounds before anything is built from it."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rbcflow.classify.model_folder import (
    default_model_dir,
    load_model,
    model_origin,
    sha256_file,
)
from rbcflow.classify.shipped_models import SHIPPED_SHA256
from rbcflow.cli import main
from rbcflow.errors import ModelError
from rbcflow.io.outputs import CSV_ENCODING


@pytest.fixture(autouse=True)
def _shipped_defaults(monkeypatch):
    monkeypatch.delenv("RBCFLOW_MODELS", raising=False)


def _copy(tmp_path: Path, stage: int) -> Path:
    folder = tmp_path / f"stage{stage}"
    shutil.copytree(default_model_dir(stage), folder)
    return folder


def _edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def _zero_weights(folder: Path) -> None:
    """Every tensor zeroed, and the config's checksum recomputed to match (the attack)."""
    import torch
    from safetensors.torch import load_file, save_file

    w = folder / "weights.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in load_file(str(w)).items()}, str(w))
    _edit_config(folder, lambda cfg: cfg.update(weights_sha256=sha256_file(w)))


def test_pinned_sums_match_the_shipped_files():
    now = {
        stage: {
            name: hashlib.sha256((default_model_dir(stage) / name).read_bytes()).hexdigest()
            for name in ("config.json", "weights.safetensors")
        }
        for stage in (1, 2)
    }
    assert now == SHIPPED_SHA256, (
        "a shipped model changed: update rbcflow/classify/shipped_models.py to " + repr(now)
    )
    assert all(model_origin(default_model_dir(s)).shipped for s in (1, 2))


def test_zeroed_weights_with_recomputed_hash_are_refused(tmp_path, monkeypatch):
    folder = _copy(tmp_path, 1)
    _zero_weights(folder)
    load_model(folder)  # intact as a file: only the pinned sums tell it is not ours
    with pytest.raises(ModelError, match="not a shipped stage-1 model"):
        load_model(folder, allow_user=False)
    res = CliRunner().invoke(
        main, ["analyze", str(tmp_path / "x.avi"), "--models-stage1", str(folder), "-o", "o"]
    )
    assert res.exit_code == 2
    assert "not a shipped stage-1 model" in res.stderr and "--allow-user-models" in res.stderr
    # the same folder put where the defaults are looked for
    _copy(tmp_path, 2)
    monkeypatch.setenv("RBCFLOW_MODELS", str(tmp_path))
    res = CliRunner().invoke(main, ["analyze", str(tmp_path / "x.avi"), "-o", "o"])
    assert res.exit_code == 2 and "RBCFLOW_MODELS" in res.stderr


def test_swapped_class_names_are_refused_even_when_user_models_are_allowed(tmp_path):
    folder = _copy(tmp_path, 2)
    _edit_config(folder, lambda cfg: cfg.update(class_names=cfg["class_names"][::-1]))
    with pytest.raises(ModelError, match="class_names"):
        load_model(folder)
    res = CliRunner().invoke(
        main,
        ["analyze", "x.avi", "--models-stage2", str(folder), "--allow-user-models", "-o", "o"],
    )
    assert res.exit_code == 2 and "class_names" in res.stderr


def test_members_100000_refused_fast(tmp_path):
    folder = _copy(tmp_path, 1)
    _edit_config(folder, lambda cfg: cfg["architecture"].update(members=100000))
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"architecture.members = 100000 is outside 1\.\.16"):
        load_model(folder)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("name", ["../x.safetensors", "/etc/passwd", "sub/w.safetensors", ".w"])
def test_weights_file_outside_the_folder_refused(tmp_path, name):
    folder = _copy(tmp_path, 1)
    shutil.copy(folder / "weights.safetensors", tmp_path / "x.safetensors")  # would load
    _edit_config(folder, lambda cfg: cfg.update(weights_file=name))
    with pytest.raises(ModelError, match="not a plain file name"):
        load_model(folder)


def test_a_trained_folder_is_user_supplied_and_reported_so(tmp_path):
    """What ``rbcflow train`` writes (its folder's files differ from the shipped ones) runs
    with --allow-user-models, and the rows and run.json say so with its checksum."""
    from rbcflow.synthetic import SynthConfig, write_acquisition

    folder = _copy(tmp_path, 1)
    _edit_config(folder, lambda cfg: cfg.update(task="a lab's own stage 1"))
    found = model_origin(folder)
    assert found.origin == "user-supplied" and load_model(folder).origin == "user-supplied"
    video = tmp_path / "a.tif"
    write_acquisition(video, SynthConfig(width=200, height=150, n_frames=90), rng=5)
    out = tmp_path / "out"
    args = ["analyze", str(video), "--models-stage1", str(folder), "-o", str(out), "-q"]
    assert CliRunner().invoke(main, args).exit_code == 2  # not without the option
    res = CliRunner().invoke(main, [*args, "--allow-user-models"])
    assert res.exit_code == 0, res.output
    assert f"user-supplied stage-1 model: {folder}" in res.stderr
    row = pd.read_csv(out / "report.csv", encoding=CSV_ENCODING).iloc[0]
    assert row.model_origin == "user-supplied (stage 1)"
    assert row.stage1_model == found.checksum
    assert row.status == "ok"
    record = json.loads((out / row.output / "run.json").read_text())
    assert record["models"]["stage1"]["origin"] == "user-supplied"
    assert record["models"]["stage1"]["weights_sha256"] == found.weights_sha256
    assert record["models"]["stage2"]["origin"] == "shipped"
