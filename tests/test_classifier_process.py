"""The sequential batch's classifier in a child process (rbcflow.batch.remote): the same
probabilities as the classifier loaded in-process, no torch in the parent, and clear errors
when the child cannot load its models or dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _batch_util import TINY, make_videos

from rbcflow.batch.analyze import analyze_batch
from rbcflow.batch.remote import ClassifierProcess, ClassifierProcessError
from rbcflow.classify.model_folder import default_model_dir
from rbcflow.classify.pending import PendingClassifier
from rbcflow.config import ReportConfig
from rbcflow.errors import ModelError


def test_a_serial_batch_gives_the_same_tracks_and_figures_as_the_classifier_loaded_here(
    tmp_path,
):
    from rbcflow.classify.inference import load_classifier

    videos = make_videos(tmp_path / "in", ["a", "b"])
    child = analyze_batch([videos], tmp_path / "child", PendingClassifier())
    here = analyze_batch([videos], tmp_path / "here", load_classifier(device="cpu"))
    assert list(child["status"]) == ["ok", "ok"]
    for name in ("a", "b"):
        a = pd.read_csv(tmp_path / "child" / name / "tracks.csv")
        b = pd.read_csv(tmp_path / "here" / name / "tracks.csv")
        assert len(a) == len(b) > 0
        for col in ("p_reliable", "p_tank_treading"):
            np.testing.assert_allclose(a[col], b[col], atol=1e-6)
        assert list(a["label"]) == list(b["label"])
    cols = ["tank_treading_fraction", "ci_low", "ci_high", "verdict", "stage1_model"]
    pd.testing.assert_frame_equal(child[cols], here[cols])


def test_the_rates_and_temperature_read_from_the_folders_are_the_loaded_classifiers():
    from rbcflow.classify.inference import load_classifier

    proc = ClassifierProcess(PendingClassifier())
    try:
        loaded = load_classifier(device="cpu")
        assert proc.stage2_temperature == loaded.stage2_temperature is not None
        for cfg in (ReportConfig(), ReportConfig(reliable_threshold=0.6)):
            assert proc.validated_rates(cfg) == loaded.validated_rates(cfg)
        assert proc.device == "cpu"
    finally:
        proc.close()
    assert not proc._proc.is_alive()


_PROBE = """
import json, sys
from rbcflow.cli import main
try:
    main(sys.argv[1:], prog_name="rbcflow")
except SystemExit as exc:
    print("\\nRC", exc.code)
print("\\nTORCH " + json.dumps("torch" in sys.modules))
"""


def test_rbcflow_analyze_never_imports_torch_in_its_own_process(tmp_path):
    videos = make_videos(tmp_path / "in", ["a"])
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, "analyze", str(videos), "--out", str(tmp_path / "o"), "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "\nRC 0" in res.stdout, res.stdout + res.stderr
    assert json.loads(res.stdout.rpartition("\nTORCH ")[2]) is False
    row = pd.read_csv(tmp_path / "o" / "report.csv").iloc[0]
    assert row["status"] == "ok" and row["tracks"] > 0


def _crops(n: int = 3) -> list[np.ndarray]:
    # the tiny synthetic acquisition's frames cut into 31x31 windows: cell-like content
    from rbcflow.synthetic import render_acquisition

    frames = np.stack(list(render_acquisition(TINY, rng=3).frames()))[:12]
    return [np.ascontiguousarray(frames[:, 20 + 9 * i : 51 + 9 * i, 30:61]) for i in range(n)]


def test_a_killed_child_is_a_clear_error_not_a_hang():
    proc = ClassifierProcess(PendingClassifier())
    try:
        first = proc.predict(_crops())
        assert len(first) == 3 and first["p_reliable"].between(0, 1).all()
        os.kill(proc._proc.pid, signal.SIGKILL)
        proc._proc.join(timeout=10)
        with pytest.raises(ClassifierProcessError, match="ended unexpectedly.*exit code -9"):
            proc.predict(_crops())
        with pytest.raises(ClassifierProcessError):  # and stays failed
            proc.predict(_crops())
    finally:
        proc.close()


def test_a_model_the_child_cannot_load_raises_a_model_error_at_the_first_tracks(tmp_path):
    for stage in (1, 2):
        shutil.copytree(default_model_dir(stage), tmp_path / f"stage{stage}")
    pending = PendingClassifier(tmp_path / "stage1", tmp_path / "stage2")  # checked: fine
    weights = Path(tmp_path / "stage1" / "weights.safetensors")
    weights.write_bytes(weights.read_bytes()[:-64] + bytes(64))  # then damaged
    proc = ClassifierProcess(pending)
    try:
        with pytest.raises(ModelError, match="classifier process: .*stage1"):
            proc.predict(_crops(1))
    finally:
        proc.close()


def test_a_batch_whose_child_cannot_load_its_models_stops_with_that_error(tmp_path):
    for stage in (1, 2):
        shutil.copytree(default_model_dir(stage), tmp_path / f"stage{stage}")
    pending = PendingClassifier(tmp_path / "stage1", tmp_path / "stage2")
    weights = Path(tmp_path / "stage2" / "weights.safetensors")
    weights.write_bytes(weights.read_bytes()[:-64] + bytes(64))
    videos = make_videos(tmp_path / "in", ["a", "b"])
    with pytest.raises(ModelError, match="classifier process: .*stage2"):
        analyze_batch([videos], tmp_path / "out", pending)
    # the first acquisition's folder is not left as a result, the second was never started
    assert not (tmp_path / "out" / "b").exists()
