"""Thread budgets (rbcflow.threads), their use by the streaming classifier, CPU batch sizes."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from rbcflow.classify.inference import BATCH_SIZE, CPU_BATCH_SIZE, load_classifier
from rbcflow.classify.stream import TrackClassifier
from rbcflow.config import ReportConfig
from rbcflow.run_settings import StreamConfig
from rbcflow.threads import ThreadBudget, analyze_budget, applied, available_cores, current


@pytest.mark.parametrize(
    ("cores", "torch_n", "cv_n"), [(1, 1, 1), (2, 1, 1), (4, 2, 1), (8, 4, 1), (16, 4, 9)]
)
def test_budget_rule(cores, torch_n, cv_n):
    b = analyze_budget(cores)
    assert (b.cores, b.torch, b.opencv, b.numba, b.blas) == (cores, torch_n, cv_n, 1, 1)
    # with what the pipeline runs itself, never more busy threads than cores (from 8 cores)
    if cores >= 8:
        assert 3 + b.torch + (b.opencv - 1) <= cores


def test_budget_overrides_and_machine():
    b = analyze_budget(2, torch_threads=3, opencv_threads=2)
    assert (b.torch, b.opencv) == (3, 2)
    assert analyze_budget().cores == available_cores() >= 1


@pytest.fixture
def restore_threads():
    before = (torch.get_num_threads(), cv2.getNumThreads())
    yield before
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_applied_sets_and_restores(restore_threads):
    torch.set_num_threads(3)
    cv2.setNumThreads(2)
    with applied(ThreadBudget(cores=2, torch=1, opencv=1)) as b:
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1) == (b.torch, b.opencv)
        assert current().torch == 1
    assert (torch.get_num_threads(), cv2.getNumThreads()) == (3, 2)
    with applied(ThreadBudget(cores=2)):  # 0: leave the library as it is
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (3, 2)


def _blas_counts() -> set[int]:
    import threadpoolctl

    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


def test_applied_limits_and_restores_blas():
    import threadpoolctl

    assert _blas_counts(), "numpy's BLAS is loaded and seen by threadpoolctl"
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert current().blas == 2
        with applied(ThreadBudget(cores=2, blas=1)) as b:
            assert _blas_counts() == {1} == {b.blas}
            assert current().blas == 1
            # a product through the limited library still gives the same numbers
            a = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / 100.0
            assert np.allclose(a @ a.T, np.einsum("ij,kj->ik", a, a))
        assert _blas_counts() == {2}
        with applied(ThreadBudget(cores=2)):  # 0: left as it is
            assert _blas_counts() == {2}


class _Recorder:
    """A classifier that records torch's thread count in the thread that classifies."""

    stage1_checksum = stage2_checksum = "x"

    def __init__(self):
        self.seen: list[tuple[int, int]] = []  # (tracks, torch threads)

    def predict(self, sequences, *, batch_size=None, progress=None):
        self.seen.append((len(sequences), torch.get_num_threads()))
        n = len(sequences)
        return pd.DataFrame({"p_reliable": np.full(n, 0.9), "p_tank_treading": np.full(n, 0.8)})


def _track(i: int) -> tuple[dict, np.ndarray]:
    crops = np.full((8, 31, 31), 120, np.uint8)
    crops[:, 12:19, 10:21] = 60  # a dark blob: the shape features have something to measure
    return {"track_id": i, "n_frames": 8}, crops


@pytest.mark.parametrize("threaded", [True, False])
def test_stream_classifies_beside_front_end_with_budget_then_restores(restore_threads, threaded):
    torch.set_num_threads(3)
    rec = _Recorder()
    sink = TrackClassifier(
        rec, ReportConfig(), threaded=threaded, cfg=StreamConfig(batch_tracks=2, torch_threads=1)
    )
    assert sink.threads.torch == 1
    for i in range(5):  # two full batches while "tracking", one track left for the tail
        sink(*_track(i))
    deadline = time.monotonic() + 20
    while sink.out.done < 4 and time.monotonic() < deadline:  # the front end still "runs"
        time.sleep(0.01)
    got = sink.finish()
    assert got.done == 5 and [r["track_id"] for r in got.rows] == list(range(5))
    assert rec.seen[:2] == [(2, 1), (2, 1)]  # beside the front end: the budget's one thread
    assert rec.seen[2] == (1, 3)  # the tail runs alone: the previous setting
    assert torch.get_num_threads() == 3  # restored in the caller's thread


class _Gate(_Recorder):
    """A recorder whose classification waits until the test opens the gate."""

    def __init__(self):
        super().__init__()
        self.open = threading.Event()

    def predict(self, sequences, **kwargs):
        assert self.open.wait(20)
        return super().predict(sequences, **kwargs)


def _wait_idle(sink: TrackClassifier) -> None:
    """Until the worker waits on its empty queue."""
    deadline = time.monotonic() + 20
    while not sink._idle.is_set() and time.monotonic() < deadline:
        time.sleep(0.002)


def test_stream_sends_small_batches_only_while_the_worker_waits(restore_threads):
    cfg = StreamConfig(batch_tracks=16, min_batch_tracks=4, torch_threads=1)
    # few tracks, an idle worker: each batch goes at the small size
    rec = _Recorder()
    sink = TrackClassifier(rec, ReportConfig(), cfg=cfg)
    for i in range(12):
        if i % 4 == 0:
            _wait_idle(sink)
        sink(*_track(i))
    got = sink.finish()
    assert [n for n, _ in rec.seen] == [4, 4, 4] and got.done == 12
    # many tracks, a busy worker: the tracks wait for a full batch
    gate = _Gate()
    sink = TrackClassifier(gate, ReportConfig(), cfg=cfg)
    _wait_idle(sink)
    for i in range(4 + 16 + 5):
        sink(*_track(i))
        if i == 3:
            deadline = time.monotonic() + 20  # the worker has taken the first batch
            while sink._idle.is_set() and time.monotonic() < deadline:
                time.sleep(0.002)
    gate.open.set()
    got = sink.finish()
    assert [n for n, _ in gate.seen] == [4, 16, 5]
    assert [r["track_id"] for r in got.rows] == list(range(25))


def test_stream_abort_restores(restore_threads):
    torch.set_num_threads(2)
    sink = TrackClassifier(_Recorder(), ReportConfig(), cfg=StreamConfig(torch_threads=1))
    assert torch.get_num_threads() == 1
    sink.abort()
    assert torch.get_num_threads() == 2


def test_cpu_batch_size_changes_no_probability():
    """Batches of 32 (the CPU default) and 256 give the same probabilities to 1e-6."""
    clf = load_classifier(device="cpu")
    assert clf.default_batch_size == CPU_BATCH_SIZE == 32 and BATCH_SIZE == 256
    rng = np.random.default_rng(3)
    seqs = []
    for n in rng.integers(6, 60, 70):
        frames = rng.normal(125, 6, (n, 31, 31))
        frames[:, 12:19, 8:23] -= 40
        seqs.append(np.clip(frames, 0, 255).astype(np.uint8))
    small = clf.predict(seqs)
    large = clf.predict(seqs, batch_size=256)
    np.testing.assert_allclose(small.to_numpy(), large.to_numpy(), rtol=0, atol=1e-6)
    assert small.p_reliable.std() > 0  # the sequences really differ


def test_half_imported_library_counts_as_not_imported(tmp_path, monkeypatch, restore_threads):
    """A module that another thread is still importing is in sys.modules without its functions
    (torch's import takes about a second): the budget neither reads nor sets it until done."""
    import sys
    import threading

    from rbcflow.threads import apply, imported

    started, release = threading.Event(), threading.Event()
    (tmp_path / "rbcflow_slow_import.py").write_text(
        "import sys\n"
        "started, release = sys.rbcflow_test_events\n"
        "started.set()\n"
        "release.wait(10)\n"
        "def get_num_threads():\n"
        "    return 7\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "rbcflow_test_events", (started, release), raising=False)
    worker = threading.Thread(target=__import__, args=("rbcflow_slow_import",))
    worker.start()
    try:
        assert started.wait(10)
        half = sys.modules["rbcflow_slow_import"]
        assert not hasattr(half, "get_num_threads")
        assert imported("rbcflow_slow_import") is None
        # Standing in for torch mid-import: current() and apply() must not touch it.
        monkeypatch.setitem(sys.modules, "torch", half)
        assert current().torch == 0
        apply(ThreadBudget(cores=2, torch=1, opencv=1, numba=1))
    finally:
        release.set()
        worker.join(10)
    assert imported("rbcflow_slow_import").get_num_threads() == 7
    monkeypatch.delitem(sys.modules, "rbcflow_slow_import")
