"""Helpers of the execution-engine tests (test_batch_parallel.py, test_batch_dask.py): tiny
synthetic acquisitions, a damaged one, and the checks every engine's output must pass."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pandas as pd

from rbcflow.io.outputs import CSV_ENCODING
from rbcflow.schema import REPORT_COLUMNS
from rbcflow.synthetic import SynthConfig, write_acquisition

TINY = SynthConfig(width=160, height=120, n_frames=120, cells_in_view=3)
"""2 s at 60 fps, 160x120: a few tracks in a few seconds of analysis."""

TIMING = ["analysed_at"]
"""The report columns that may differ between two runs of the same batch (when it ran)."""


def make_videos(folder: Path, names, broken: str | None = None) -> Path:
    """``NAME.tif`` synthetic acquisitions (seeds from their order) and, with ``broken``, an AVI
    of that name holding garbage (a failed row whatever the engine)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_acquisition(folder / f"{name}.tif", TINY, rng=40 + i)
    if broken:
        (folder / f"{broken}.avi").write_bytes(b"RIFF\x10\x00\x00\x00AVI junk, not a video" * 8)
    return folder


def report(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "report.csv", encoding=CSV_ENCODING, keep_default_na=False)


_WHEN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")


def comparable(out: Path) -> pd.DataFrame:
    """``out/report.csv`` without what says when it ran: the :data:`TIMING` columns, and the
    times of earlier results a skipped row's message quotes ("unchanged since ...")."""
    df = report(out).drop(columns=TIMING)
    df["message"] = df["message"].astype(str).str.replace(_WHEN, "<time>", regex=True)
    return df


def assert_same_outputs(a: Path, b: Path) -> None:
    """Two output folders of one batch agree: report.csv (rows, order, values but when) and
    every acquisition's tracks.csv."""
    pd.testing.assert_frame_equal(comparable(a), comparable(b))
    for name in report(a).output:
        if name and (a / name / "tracks.csv").exists():
            pd.testing.assert_frame_equal(
                pd.read_csv(a / name / "tracks.csv"), pd.read_csv(b / name / "tracks.csv")
            )


def assert_consistent(out: Path) -> pd.DataFrame | None:
    """Whatever an interrupt or a kill left: report.csv absent or whole, every CSV whole, every
    folder with a run.json complete, no incomplete folder reported as done."""
    rep = None
    if (out / "report.csv").exists():
        rep = report(out)
        assert list(rep.columns) == list(REPORT_COLUMNS)
        assert rep.source.is_unique
    for folder in (p for p in out.iterdir() if p.is_dir()):
        for csv in folder.glob("*.csv"):
            pd.read_csv(csv)  # parses to the end: never half a file under a final name
        if (folder / "run.json").exists():
            record = json.loads((folder / "run.json").read_text())
            assert len(pd.read_csv(folder / "tracks.csv")) == record["result"]["tracks"]
            assert (folder / "report.html").read_text().rstrip().endswith("</html>")
        elif rep is not None:
            done = rep[(rep.output == folder.name) & (rep.status != "failed")]
            assert done.empty, folder
    return rep


def cli_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONWARNINGS"] = "ignore"  # the child's warnings are not these tests' subject
    return env


class StandIn:
    """Stand-in classifier (no model files, no torch): long tracks reliable, every other one
    tank-treading. Picklable, so that workers get it as it is (``ClassifierSpec.inline``)."""

    stage1_checksum = "e" * 64
    stage2_checksum = "f" * 64
    stage1_dir = "stand-in-1"
    stage2_dir = "stand-in-2"

    def predict(self, sequences, *, batch_size=None, progress=None):
        import numpy as np

        p_rel = np.array([min(1.0, len(s) / 20) for s in sequences])
        p_tt = np.arange(len(sequences)) % 2 * 1.0
        return pd.DataFrame({"p_reliable": p_rel, "p_tank_treading": p_tt})


def dying_run(job):
    """A worker's job function (put in ``rbcflow.batch.parallel._run``'s place by a test): on an
    acquisition whose name holds ``poison`` the analysis kills its own process, as the
    out-of-memory killer would; any other runs as usual."""
    import signal

    from rbcflow.batch import jobs, parallel

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    # in this worker process only: what parallel._run calls once it has said which job it runs
    parallel.run_job = killed if "poison" in Path(job.source).name else jobs.run_job
    return parallel._run(job)


def kill_mid_batch(run_batch, out: Path, worker_pid, timeout: float = 120.0) -> tuple:
    """Run ``run_batch()`` in a thread and SIGKILL, once, the worker process
    ``worker_pid()`` names (None: none yet) as soon as an acquisition is at work in ``out``
    (its folder has strips/ and no run.json yet), as the out-of-memory killer would.

    Returns ``(killed pid or None, run_batch's result, the exception it raised or None)``."""
    import signal
    import threading
    import time

    result: dict = {}

    def run():
        try:
            result["rows"] = run_batch()
        except BaseException as exc:  # returned to the test, which asserts on it
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + timeout
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        started = [f for f in out.glob("*/strips") if not (f.parent / "run.json").exists()]
        pid = worker_pid() if started else None
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.02)
    thread.join(timeout=2 * timeout)
    return killed, result.get("rows"), result.get("error")
