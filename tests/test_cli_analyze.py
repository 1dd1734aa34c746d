"""``rbcflow analyze`` from the command line: exit codes, messages, escaping, interruption,
and the README quick start as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rbcflow.cli import main
from rbcflow.schema import REPORT_COLUMNS
from rbcflow.synthetic import SynthConfig, write_acquisition

REPO = Path(__file__).resolve().parents[1]
RBCFLOW = shutil.which("rbcflow", path=str(Path(sys.executable).parent)) or "rbcflow"
SMALL = SynthConfig(width=320, height=240, n_frames=180, cells_in_view=6)


class StandIn:
    """Stand-in classifier (no model files): long tracks reliable, a crop statistic decides."""

    stage1_checksum = "c" * 64
    stage2_checksum = "d" * 64
    stage1_dir = "stand-in-1"
    stage2_dir = "stand-in-2"

    def predict(self, sequences, *, batch_size=256, progress=None):
        p_rel = np.array([min(1.0, len(s) / 30) for s in sequences])
        p_tt = np.array([float(np.asarray(s, float).std()) % 1.0 for s in sequences])
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
def batch(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    write_acquisition(d / "a.tif", SMALL, rng=3)
    write_acquisition(d / "b.tif", SMALL, rng=4)
    (d / "c.avi").write_text("this is a text file, not a video")
    return d


def _snapshot(folder: Path) -> dict[str, tuple[str, float]]:
    """Content hash and modification time of every file under ``folder``."""
    import hashlib

    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_batch_with_a_broken_file(batch, tmp_path, stand_in):
    out = tmp_path / "results"
    inputs_before = _snapshot(batch)
    res = CliRunner().invoke(main, ["analyze", str(batch), "--out", str(out), "--quiet"])
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert re.match(
        r"a: tank-treading \d+\.\d% \(95% CI \d+\.\d%-\d+\.\d%; counted \d+ of \d+ "
        r"reliable tracks\)(, (check|fail): provisional, see the report)? -> .*a/report.html",
        lines[0],
    )
    assert lines[1].startswith("b: tank-treading")
    assert lines[2].startswith("c: FAILED: ") and "c.avi" in lines[2]
    assert "Traceback" not in res.output
    assert "1 acquisition(s) failed" in res.stderr
    report = pd.read_csv(out / "report.csv")
    assert list(report.columns) == list(REPORT_COLUMNS)
    assert list(report.status) == ["ok", "ok", "failed"]
    assert report.dtypes["tank_treading_fraction"] == np.float64
    assert report.dtypes["tracks"] == np.float64 or report.dtypes["tracks"] == np.int64
    # re-run: done acquisitions skipped, the broken one tried again
    again = CliRunner().invoke(main, ["analyze", str(batch), "--out", str(out), "--quiet"])
    assert again.exit_code == 1
    assert again.stdout.splitlines()[0].startswith("a: skipped, unchanged: tank-treading")
    assert list(pd.read_csv(out / "report.csv").status) == ["skipped", "skipped", "failed"]
    # inputs are only read: nothing added, removed, moved or rewritten beside them
    assert _snapshot(batch) == inputs_before


def test_debug_shows_the_traceback(batch, tmp_path, stand_in):
    res = CliRunner().invoke(
        main, ["--debug", "analyze", str(batch / "c.avi"), "--out", str(tmp_path), "--quiet"]
    )
    assert res.exit_code == 1
    assert "Traceback" in res.stderr


def test_output_folder_checked_before_work(batch, tmp_path, stand_in):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go")
    # (as root, permissions do not stop writes; a file in the way stops everyone)
    res = CliRunner().invoke(
        main, ["analyze", str(batch / "a.tif"), "--out", str(blocker / "results")]
    )
    assert res.exit_code == 2
    assert res.stderr.startswith("rbcflow: error: ") and "taken" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


@pytest.mark.skipif(os.name == "nt", reason="'<' and '>' are not allowed in Windows names")
def test_malicious_file_name_is_escaped(batch, tmp_path, stand_in):
    evil_dir = tmp_path / "<script>alert(1)<"
    evil_dir.mkdir()
    video = evil_dir / "script><img src=x onerror=alert(2)>.tif"
    shutil.copy(batch / "a.tif", video)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["analyze", str(video), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    pages = list(out.glob("*/report.html"))
    assert len(pages) == 1
    page = pages[0].read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    # the output folder name is a safe rewrite of the input name
    assert "<" not in pages[0].parent.name and ">" not in pages[0].parent.name


def test_bad_scale_is_a_usage_error(batch, tmp_path, stand_in):
    res = CliRunner().invoke(
        main, ["analyze", str(batch / "a.tif"), "--scale", "big", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "not a number or 'auto'" in res.output


# -- with the shipped models, as a user runs it ------------------------------------------------


def _env():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONWARNINGS"] = "ignore"  # the child's warnings are not this test's subject
    return env


def _assert_consistent(out: Path) -> pd.DataFrame | None:
    """Whatever a kill left: report.csv absent or complete, every CSV whole, every folder with a
    run.json complete and agreeing with it."""
    report = None
    if (out / "report.csv").exists():
        report = pd.read_csv(out / "report.csv")
        assert list(report.columns) == list(REPORT_COLUMNS)
        assert set(report.status) <= {"ok", "failed", "skipped"}
    for folder in (p for p in out.iterdir() if p.is_dir()):
        for csv in folder.glob("*.csv"):
            pd.read_csv(csv)  # parses to the end: never half a file under a final name
        if (folder / "run.json").exists():
            import json

            record = json.loads((folder / "run.json").read_text())
            tracks = pd.read_csv(folder / "tracks.csv")
            assert len(tracks) == record["result"]["tracks"]
            assert (folder / "report.html").read_text().rstrip().endswith("</html>")
        elif report is not None:
            # an incomplete folder is never reported as done
            done = report[(report.output == folder.name) & (report.status != "failed")]
            assert done.empty, folder
    return report


def test_interrupted_batch_then_rerun(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        write_acquisition(data / f"{name}.tif", SMALL, rng=20 + i)
    out = tmp_path / "out"
    cmd = [RBCFLOW, "analyze", str(data), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # kill -9 while the second acquisition is being analysed (its folder claimed, not complete)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "b" / ".source").exists() and not (out / "b" / "run.json").exists():
            time.sleep(0.3)
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    report = _assert_consistent(out)
    done_before = set(report.output[report.status == "ok"]) if report is not None else set()
    assert "a" in done_before and "c" not in done_before

    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = _assert_consistent(out)
    assert list(report.output) == ["a", "b", "c"]
    for name, status in zip(report.output, report.status, strict=True):
        assert status == ("skipped" if name in done_before else "ok")
    assert not list(out.rglob("*.tmp"))  # what the kill left behind was cleaned up


def _quick_start_command() -> str:
    """The `rbcflow analyze ...` command of README.md's quick start, as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S):
        for part in block.replace("\\\n", " ").split("&&"):
            if part.strip().startswith("rbcflow analyze"):
                return part.strip()
    raise AssertionError("README quick start has no `rbcflow analyze` command")


def test_readme_quick_start_runs_as_written(tmp_path):
    command = _quick_start_command()
    # run from a copy of the repository's sample data, so that nothing is written into the tree
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    res = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert re.search(r"tank-treading \d+\.\d% \(95% CI", res.stdout), res.stdout
    report = pd.read_csv(tmp_path / "rbcflow-results" / "report.csv")
    assert report.status[0] == "ok" and 0 <= report.tank_treading_fraction[0] <= 1
    page = tmp_path / "rbcflow-results" / report.output[0] / "report.html"
    text = page.read_text()
    assert text.count('<figure id="fig-') == 4 and text.count("<svg") == 4
