"""Concurrent ``analyze`` runs into one output folder never lose each other's rows (issue 14).

Two and three processes start at the same instant (benchmarks/bench_concurrent.py's trial: the
analysis is a stand-in sleeping 0-30 ms, so that what runs is the batch's claim, lock, re-read,
merge and rewrite of ``report.csv``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_concurrent.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_concurrent", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("runs", [2, 3])
def test_simultaneous_runs_lose_no_row(tmp_path, runs):
    lost, expected, shared = _bench().trial(tmp_path, runs, inputs=6, seed=runs)
    assert expected == 6 * runs
    assert lost == 0
    assert shared == 0  # inputs of one name (take0.avi in each run) got folders of their own
