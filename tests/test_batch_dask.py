"""``analyze --scheduler`` (issue 17): a Dask cluster gives the report of one worker, survives a
worker killed mid-task (the task runs again, nothing half-written is reported), and without
the extra says how to install it. The tasks run the shipped classifier."""

from __future__ import annotations

import os
import sys

import pytest
from _batch_util import assert_consistent, assert_same_outputs, kill_mid_batch, make_videos

from rbcflow.batch import analyze_batch, dask_run
from rbcflow.errors import RbcflowError

NO_DASK = "the dask extra is not installed (pip install -e '.[dask]'; .ci/run installs it)"


@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("distributed", reason=NO_DASK)


@pytest.fixture(scope="module")
def shipped():
    from rbcflow.classify.inference import load_classifier

    return load_classifier(device="cpu")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, shipped):
    """Four acquisitions and their report by one worker (the reference)."""
    root = tmp_path_factory.mktemp("dask")
    data = make_videos(root / "data", "abcd")
    analyze_batch([data], root / "one", shipped, workers=1)
    return root


def test_local_cluster_gives_the_sequential_report(batch, shipped, distributed):
    events = []
    rows = analyze_batch(
        [batch / "data"], batch / "local", shipped, scheduler="local", on_done=events.append
    )
    assert list(rows.status) == ["ok"] * 4
    assert_same_outputs(batch / "one", batch / "local")
    pids = {e.worker_pid for e in events}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # in the cluster's processes


def test_a_worker_killed_mid_task_is_retried_and_nothing_half_written_is_reported(
    batch, shipped, distributed
):
    out = batch / "killed"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def busy_worker():  # a worker with a task: its process id
            busy = [w for w, keys in client.processing().items() if keys]
            return client.run(os.getpid, workers=[busy[0]])[busy[0]] if busy else None

        killed, rows, error = kill_mid_batch(
            lambda: analyze_batch(
                [batch / "data"], out, shipped, scheduler=cluster.scheduler_address
            ),
            out,
            busy_worker,
        )
        assert killed is not None, "no task was caught at work"
        assert killed not in client.run(os.getpid).values()  # the nanny started a new one
    assert error is None, error
    assert list(rows.status) == ["ok"] * 4  # every acquisition once, the killed one retried
    rep = assert_consistent(out)
    assert list(rep.output) == list("abcd")
    assert all((out / n / "run.json").is_file() for n in "abcd")
    assert_same_outputs(batch / "one", out)


def test_without_the_extra_the_batch_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(RbcflowError) as err:
        dask_run.import_distributed()
    assert str(err.value) == dask_run.MISSING and "rbcflow[dask]" in str(err.value)


def test_an_unreachable_scheduler_is_one_line(monkeypatch, distributed):
    monkeypatch.setattr(dask_run, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(RbcflowError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        dask_run.connect("tcp://127.0.0.1:9")
