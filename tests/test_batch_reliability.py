"""Issue 14, the batch half: every named input gets a row, one bad folder does not end the batch,
a re-run keeps its warnings, messages suggest what analyze offers, names reach the terminal
escaped. One test per finding, each the reproducer made small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rbcflow.cli import main
from rbcflow.io.outputs import CSV_ENCODING
from rbcflow.synthetic import SynthConfig, write_acquisition

TINY = SynthConfig(width=200, height=150, n_frames=90, cells_in_view=4)


class StandIn:
    """Stand-in classifier (no model files): long tracks reliable, every other one flipping."""

    stage1_checksum = "e" * 64
    stage2_checksum = "f" * 64
    stage1_dir = "stand-in-1"
    stage2_dir = "stand-in-2"

    def predict(self, sequences, *, batch_size=256, progress=None):
        p_rel = np.array([min(1.0, len(s) / 20) for s in sequences])
        p_tt = np.arange(len(sequences)) % 2 * 1.0
        label = np.where(
            p_rel < 0.5, "unreliable", np.where(p_tt >= 0.5, "tank-treading", "flipping")
        )
        return pd.DataFrame({"p_reliable": p_rel, "p_tank_treading": p_tt, "label": label})


@pytest.fixture
def stand_in(monkeypatch):
    import rbcflow.classify.inference
    import rbcflow.cli.run_options

    monkeypatch.setattr(rbcflow.classify.inference, "load_classifier", lambda *a, **k: StandIn())
    # the command's classifier (a pending one on the CPU): the stand-in too
    monkeypatch.setattr(rbcflow.cli.run_options, "command_classifier", lambda *a: StandIn())


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    write_acquisition(d / "a.tif", TINY, rng=5)
    write_acquisition(d / "b.tif", TINY, rng=6)
    return d


def _run(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args), "--quiet"])


def _report(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "report.csv", encoding=CSV_ENCODING, keep_default_na=False)


def test_unreadable_or_missing_named_file_is_a_row_and_the_others_run(
    videos, tmp_path, stand_in, monkeypatch
):
    # `chmod 000 b.tif` does not stop root, so the unreadable file is told by os.access, the
    # check both click (before) and rbcflow (now) make
    blocked = str(videos / "b.tif")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: str(p) != blocked and real_access(p, m))
    out = tmp_path / "out"
    res = _run(videos / "a.tif", blocked, tmp_path / "gone.avi", "--out", out)
    assert res.exit_code == 1, res.output
    report = _report(out)
    assert list(report.acquisition) == ["a", "b", "gone"]
    assert list(report.status) == ["ok", "failed", "failed"]
    assert "permission denied" in report.message[1] and "b.tif" in report.message[1]
    assert "no such file" in report.message[2] and "gone.avi" in report.message[2]
    # nothing was made for the two that could not be read
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a"]
    assert list(report.output) == ["a", "", ""]


def test_fifo_and_link_to_dev_zero_are_failed_rows_never_opened(tmp_path):
    fifo = tmp_path / "p.avi"
    os.mkfifo(fifo)
    zero = tmp_path / "z.avi"
    zero.symlink_to("/dev/zero")
    out = tmp_path / "out"
    # a child process with a timeout: opening either would block or read forever
    res = subprocess.run(
        [sys.executable, "-m", "rbcflow", "analyze", str(fifo), str(zero), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert res.returncode == 1, res.stderr
    report = _report(out)
    assert list(report.status) == ["failed", "failed"]
    assert "FIFO" in report.message[0] and "not opened" in report.message[0]
    assert "character device" in report.message[1] and "not opened" in report.message[1]
    assert not [p for p in out.iterdir() if p.is_dir()]


def test_one_unwritable_acquisition_folder_is_a_failed_row(videos, tmp_path, stand_in):
    out = tmp_path / "out"
    # a's results folder, claimed by a, where run.json cannot be replaced (a folder in its way:
    # permissions do not stop root, this stops everyone)
    (out / "a" / "run.json").mkdir(parents=True)
    (out / "a" / ".source").write_text(str((videos / "a.tif").absolute()) + "\n")
    res = _run(videos / "a.tif", videos / "b.tif", "--out", out)
    assert res.exit_code == 1, res.output
    report = _report(out)
    assert list(report.status) == ["failed", "ok"]
    assert "run.json" in report.message[0] and "cannot replace" in report.message[0]
    assert (out / "b" / "run.json").is_file()


def test_a_failed_acquisition_leaves_no_results_folder(tmp_path, stand_in):
    (tmp_path / "c.avi").write_text("a text file with a video's name")
    out = tmp_path / "out"
    res = _run(tmp_path / "c.avi", "--out", out)
    assert res.exit_code == 1
    assert _report(out).status[0] == "failed"
    assert not [p for p in out.iterdir() if p.is_dir()]


def test_rerun_that_skips_keeps_the_message_and_warnings(videos, tmp_path, stand_in, monkeypatch):
    import rbcflow.batch.acquisition as acquisition

    real = acquisition.analyze

    def warns(*args, **kwargs):
        result = real(*args, **kwargs)
        result.row["message"] = "read 80 of 90 frames"  # as a truncated file reports
        result.record["warnings"] = ["read 80 of 90 frames"]
        return result

    monkeypatch.setattr(acquisition, "analyze", warns)
    out = tmp_path / "out"
    assert _run(videos / "a.tif", "--out", out).exit_code == 0
    assert _report(out).message[0] == "read 80 of 90 frames"
    again = _run(videos / "a.tif", "--out", out)
    assert again.exit_code == 0
    row = _report(out).iloc[0]
    assert row.status == "skipped"
    assert row.message.startswith("read 80 of 90 frames; unchanged since ")
    assert json.loads((out / "a" / "run.json").read_text())["warnings"] == ["read 80 of 90 frames"]


def test_no_cell_message_suggests_what_analyze_offers(tmp_path, stand_in):
    import tifffile

    noise = np.random.default_rng(0).normal(128, 1, (40, 64, 80))
    tifffile.imwrite(tmp_path / "blank.tif", noise.astype(np.uint8))
    out = tmp_path / "out"
    res = _run(tmp_path / "blank.tif", "--out", out)
    assert res.exit_code == 1
    message = _report(out).message[0]
    assert "no cell track found" in message
    assert "--threshold" not in message and "--threshold" not in res.output
    assert "rbcflow track" in message


def test_names_reach_the_terminal_escaped(tmp_path, stand_in):
    evil = tmp_path / "x\x1b]0;owned\x07\x1b[2J\nok: tank-treading 99.0%\u202e.avi"
    evil.write_text("not a video")
    out = tmp_path / "out"
    res = _run(evil, "--out", out)
    assert res.exit_code == 1
    for text in (res.stdout, res.stderr):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("x\\x1b]0;owned\\x07\\x1b[2J\\nok: ")
    assert "\\u202e" in lines[0] and ": FAILED: " in lines[0]


def test_skipped_list_is_written(tmp_path, stand_in):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.avi").write_text("text")
    (data / "notes.txt").write_text("what was recorded")
    out = tmp_path / "out"
    _run(data, "--out", out)
    skipped = pd.read_csv(out / "skipped.csv", encoding=CSV_ENCODING)
    assert list(skipped.columns) == ["path", "reason"]
    assert [Path(p).name for p in skipped.path] == ["notes.txt"]
    assert _report(out).acquisition.tolist() == ["x"]
