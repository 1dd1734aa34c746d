"""``analyze --workers N|auto`` (issue 17): the same report as one worker, failures as rows,
Ctrl-C then resume, ``auto`` within the memory, thread shares, GPU batches that fit.

The parallel runs use the shipped classifier, loaded in each spawned worker from its folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from _batch_util import (
    StandIn,
    assert_consistent,
    assert_same_outputs,
    cli_env,
    dying_run,
    kill_mid_batch,
    make_videos,
)

from rbcflow.batch import analyze_batch, parallel, workers
from rbcflow.batch.jobs import ClassifierSpec, classifier_spec
from rbcflow.classify.pending import PendingClassifier
from rbcflow.errors import RbcflowError
from rbcflow.pipeline import AnalysisSettings
from rbcflow.threads import analyze_budget, budget_cores, set_process_cores

RBCFLOW = str(Path(sys.executable).parent / "rbcflow")


@pytest.fixture(scope="module")
def shipped():
    from rbcflow.classify.inference import load_classifier

    return load_classifier(device="cpu")


def test_two_workers_give_the_sequential_report_and_failed_rows(tmp_path, shipped):
    data = make_videos(tmp_path / "data", "abc", broken="d")
    one, two = tmp_path / "one", tmp_path / "two"
    analyze_batch([data], one, shipped, workers=1)
    events = []
    pending = PendingClassifier(device="cpu")  # as the command gives it: folders, not networks
    rows = analyze_batch([data], two, pending, workers=2, on_done=events.append)
    assert not pending.is_loaded  # the workers loaded the folders; this process never did
    assert list(rows.status) == ["ok", "ok", "ok", "failed"]
    assert "d.avi" in rows.message[3]  # the damaged file's own one-line reason
    assert not (two / "d").exists()  # a failure before writing leaves no folder
    assert_same_outputs(one, two)  # rows, order and values (but analysed_at); tracks.csv too
    assert sorted(e.index for e in events) == [0, 1, 2, 3]
    pids = {e.worker_pid for e in events if e.row["status"] == "ok"}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # analysed in the workers
    assert all(e.peak_rss > 100 * 1024**2 for e in events if e.row["status"] == "ok")
    # resume with workers: test_ctrl_c_stops_the_workers_and_a_rerun_completes_every_acquisition


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_workers_and_a_rerun_completes_every_acquisition(tmp_path):
    data = make_videos(tmp_path / "data", "abcd")
    out = tmp_path / "out"
    cmd = [RBCFLOW, "analyze", str(data), "--out", str(out), "--quiet", "--workers", "2"]
    env = {**cli_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: a shell's background job (``.ci/run &``) starts
        # its children with SIGINT ignored, and Python keeps an ignored SIGINT ignored
        preexec_fn=_default_sigint,
    )
    first = proc.stdout.readline()  # the first acquisition reported
    assert "tank-treading" in first or "no fraction" in first, first
    pool = worker_processes(proc.pid)
    assert len(pool) == 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    time.sleep(0.2)
    before = assert_consistent(out)
    done_before = set(before.output[before.status == "ok"]) if before is not None else set()
    assert not [p for p in pool if running(p)]  # the workers were ended with the run
    # report.csv takes rows in input order only, so an acquisition a worker finished out of
    # order (or after the parent's last merge) is not in it yet; its folder is complete
    # (run.json written last) and the rerun skips it
    complete = {n for n in "abcd" if (out / n / "run.json").is_file()}
    assert done_before <= complete
    assert 1 <= len(complete) < 4  # interrupted with work left

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    after = assert_consistent(out)
    assert list(after.output) == list("abcd")  # each acquisition once, in input order
    for name, status in zip(after.output, after.status, strict=True):
        assert status == ("skipped" if name in complete else "ok"), (name, status)
    assert all((out / n / "run.json").is_file() for n in "abcd")
    assert not list(out.rglob("*.tmp"))  # the terminated workers' temporaries were cleared


def test_a_worker_killed_mid_acquisition_is_replaced_and_the_batch_completes(tmp_path, shipped):
    data = make_videos(tmp_path / "data", "abcd")
    one, out = tmp_path / "one", tmp_path / "out"
    analyze_batch([data], one, shipped, workers=1)

    def first_worker():
        pool = worker_processes(os.getpid())
        return pool[0] if pool else None

    killed, rows, error = kill_mid_batch(
        lambda: analyze_batch([data], out, shipped, workers=2), out, first_worker
    )
    assert killed is not None, "no acquisition was caught at work"
    assert error is None, error
    assert list(rows.status) == ["ok"] * 4  # each once, the lost one(s) rerun
    rep = assert_consistent(out)
    assert list(rep.output) == list("abcd")
    assert_same_outputs(one, out)
    assert not list(out.rglob("*.tmp"))


def test_a_video_that_kills_its_worker_every_time_is_a_failed_row(tmp_path, shipped, monkeypatch):
    data = make_videos(tmp_path / "data", ["a", "b-poison", "c"])
    monkeypatch.setattr(parallel, "_run", dying_run)  # pickled by name: the workers run it
    rows = analyze_batch([data], tmp_path / "out", shipped, workers=2)
    assert list(rows.status) == ["ok", "failed", "ok"]  # the others finish
    limit = parallel.ParallelConfig().worker_restarts
    assert rows.message[1] == parallel.JOB_LOST.format(n=limit + 1)  # tried limit + 1 times
    assert list(assert_consistent(tmp_path / "out").status) == ["ok", "failed", "ok"]


def test_workers_that_die_before_any_job_stop_the_batch_with_one_line(monkeypatch, shipped):
    class Dead:
        exitcode = -signal.SIGKILL

    engine = parallel.PoolEngine.__new__(parallel.PoolEngine)
    engine.futures, engine.attempts, engine.restarts, engine.limit = {}, {}, 0, 1
    engine.pool = SimpleNamespace(_processes={1: Dead()}, shutdown=lambda **kw: None)
    engine._started = lambda: {}  # no job had started: nothing to blame
    engine._close_queues = engine._start = lambda: None
    assert engine._restart() == []  # the first time: a fresh pool
    with pytest.raises(RbcflowError, match="kept ending unexpectedly"):
        engine._restart()


def worker_processes(pid: int) -> list[int]:
    """The spawned worker processes whose parent is ``pid`` (Linux ``/proc``)."""
    kids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text and b"spawn_main" in cmdline:
            kids.append(int(status.parent.name))
    return kids


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_workers_auto_stays_within_the_memory(monkeypatch, tmp_path):
    gib = 1024**3
    monkeypatch.setattr(workers, "available_cores", lambda: 8)
    monkeypatch.setattr(workers, "available_memory", lambda: int(2.5 * gib))
    assert workers.auto_workers(per_worker_bytes=gib) == 2
    assert workers.auto_workers(per_worker_bytes=gib // 4) == 8  # the cores decide
    per = workers.ParallelConfig().worker_peak_mib * workers.MIB
    monkeypatch.setattr(workers, "available_memory", lambda: int(1.5 * per))
    assert workers.resolve_workers("auto") == 1
    # and the batch then runs in this process: no pool is started
    monkeypatch.setattr(parallel, "PoolEngine", lambda *a, **k: pytest.fail("pool started"))
    data = make_videos(tmp_path / "data", "a")
    rows = analyze_batch([data], tmp_path / "out", StandIn(), workers="auto")
    assert list(rows.status) == ["ok"]
    monkeypatch.setattr(workers, "available_memory", lambda: 3 * per)
    assert workers.resolve_workers("auto") == 3


@pytest.mark.parametrize("bad", ["two", "0", 0, -1, 1.5, True])
def test_workers_must_be_a_count_or_auto(bad):
    with pytest.raises(RbcflowError, match="--workers"):
        workers.resolve_workers(bad)


def test_cli_refuses_a_bad_workers_value(tmp_path):
    from click.testing import CliRunner

    from rbcflow.cli import main

    res = CliRunner().invoke(main, ["analyze", str(tmp_path), "--workers", "0"])
    assert res.exit_code == 2 and "not a count >= 1 or 'auto'" in res.output


def test_each_worker_plans_its_threads_for_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # _init ignores Ctrl-C in a worker
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    try:
        spec = ClassifierSpec(inline=StandIn())
        parallel._init(spec, AnalysisSettings(), True, cores=3, workers=5, frames=None)
        assert budget_cores() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
        assert analyze_budget() == analyze_budget(3)
        assert parallel._STATE["classifier"] is spec.inline
    finally:
        set_process_cores(None)
        parallel._STATE.clear()
    assert parallel.worker_cores(2, 16) == 8 and parallel.worker_cores(4, 2) == 1


def test_the_shipped_classifier_travels_as_folders_not_as_an_object(shipped):
    spec = classifier_spec(shipped)
    assert spec.inline is None and spec.device == "cpu" and not spec.allow_user
    assert classifier_spec(PendingClassifier(device="cpu")) == spec  # loaded or not, the same
    assert Path(spec.stage1).is_dir() and spec.checksums == (
        shipped.stage1_checksum,
        shipped.stage2_checksum,
    )
    changed = ClassifierSpec(spec.stage1, spec.stage2, "cpu", False, ("x", "y"))
    with pytest.raises(RbcflowError, match="changed since the batch started"):
        parallel.worker_classifier(changed)


def test_gpu_batch_divides_the_free_memory_among_the_workers():
    mib = 1024**2
    per = 3 * mib
    # 1 GiB free, 80 % of it for batches, 4 workers: 204.8 MiB each, 68 tracks of 3 MiB
    assert workers.gpu_batch_tracks(1024 * mib, 4, per, wanted=256) == 68
    assert workers.gpu_batch_tracks(1024 * mib, 1, per, wanted=256) == 256  # capped: wanted
    assert workers.gpu_batch_tracks(1024 * mib, 8, per, wanted=256) == 34
    assert workers.gpu_batch_tracks(0, 8, per, wanted=32) == 1  # never below one track
    assert workers.gpu_batch_tracks(1024 * mib, 4, per, wanted=256, share=0.5) == 42


def test_a_gpu_worker_sizes_its_stream_batch_from_mem_get_info(monkeypatch):
    import torch

    mib = 1024**2
    seen = []

    def mem_get_info(device=None):
        seen.append(device)
        return 40 * mib, 80 * mib

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    settings = AnalysisSettings()
    cuda = SimpleNamespace(device=torch.device("cuda", 0))
    got = parallel.gpu_settings(settings, cuda, workers=2)
    per = workers.ParallelConfig().gpu_bytes_per_track
    assert got.stream.batch_tracks == max(1, min(32, int(40 * mib * 0.8 / 2 // per)))
    assert got.params_id() == settings.params_id()  # a batch size never changes a figure
    assert seen == [torch.device("cuda", 0)]
    cpu = SimpleNamespace(device=torch.device("cpu"))
    assert parallel.gpu_settings(settings, cpu, workers=2) is settings
