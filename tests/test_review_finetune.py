"""The learning loop's plumbing: reviewed tracks -> export-labels -> train --init (the new
model folder records its parent and its data, keeps the parent's network and loads)."""

from __future__ import annotations

import json

from _review_util import make_results
from click.testing import CliRunner

from rbcflow.classify.model_folder import default_model_dir, load_model
from rbcflow.cli import main
from rbcflow.review.decide import record_decision
from rbcflow.review.store import Results


def test_reviewed_tracks_fine_tune_the_shipped_model(tmp_path):
    root = make_results(tmp_path / "res", tmp_path / "cache")
    res = Results(root)
    acq = res.acquisition("acq_b_")
    ids = [int(t) for t in acq.tracks["track_id"]][:16]
    for i, t in enumerate(ids):
        record_decision(res, acq, t, "tank-treading" if i % 2 else "flipping", "ann")
    labelled = tmp_path / "labelled"
    r = CliRunner().invoke(main, ["export-labels", str(root), "--out", str(labelled)])
    assert r.exit_code == 0, r.output
    parent = default_model_dir(2)
    out = tmp_path / "model"
    args = ["train", "--stage", "2", "--data", str(labelled), "--init", str(parent)]
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--epochs", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "fine-tuned from" in r.output
    config = json.loads((out / "config.json").read_text())
    before = load_model(parent)
    after = load_model(out)
    assert config["training"]["fine_tuned_from"]["checksum"] == before.checksum
    assert config["training"]["data"][0]["export"]["sources"][0]["tracks"] == 16
    assert config["training"]["train_counts"] == {"tank-treading": 8, "flipping": 8}
    assert config["architecture"] == before.config["architecture"]
    assert config["input"] == before.config["input"]
    # it was trained: same shapes, other weights
    a, b = before.network.state_dict(), after.network.state_dict()
    assert a.keys() == b.keys()
    assert any(not (a[k] == b[k]).all() for k in a if a[k].is_floating_point())
    # the wrong stage is one line
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--stage",
            "1",
            "--data",
            str(labelled),
            "--init",
            str(parent),
            "--out",
            str(tmp_path / "m1"),
            "--epochs",
            "1",
        ],
    )
    assert r.exit_code == 1 and "not stage 1" in r.output
