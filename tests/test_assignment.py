"""The tracker's assignment solver (:mod:`rbcflow.frontend.assignment`) gives scipy's answer
without importing :mod:`scipy.optimize`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from rbcflow.frontend.assignment import linear_assignment

BIG = 1e9  # the tracker's cost of an infeasible pair (frontend/tracking._INFEASIBLE)


def _pairs(rows, cols, cost, below=np.inf):
    return {(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < below}


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (3, 9), (9, 3), (24, 17), (17, 24)])
def test_unique_optimum_is_scipys_exactly(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(50):
        cost = rng.random(shape) * 40  # continuous costs: the optimum is unique
        rows, cols = linear_assignment(cost)
        want_rows, want_cols = linear_sum_assignment(cost)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(cols, want_cols)


def test_tracker_like_matrices_match_scipy_on_every_feasible_pair():
    """Gated costs: most pairs infeasible at one large cost, so the infeasible filler pairs tie
    (which of them is returned is arbitrary, and the tracker drops them); the feasible pairs,
    the ones that link a track, must be scipy's, and the total the least."""
    rng = np.random.default_rng(7)
    differ_in_filler = 0
    for _ in range(3000):
        n, m = rng.integers(1, 30, size=2)
        cost = rng.random((n, m)) * 30
        cost[rng.random((n, m)) < rng.uniform(0.3, 0.95)] = BIG
        rows, cols = linear_assignment(cost)
        want_rows, want_cols = linear_sum_assignment(cost)
        assert len(rows) == min(n, m) and len(set(cols.tolist())) == len(cols)
        assert np.all(np.diff(rows) > 0)
        assert _pairs(rows, cols, cost, BIG) == _pairs(want_rows, want_cols, cost, BIG)
        assert cost[rows, cols].sum() == pytest.approx(cost[want_rows, want_cols].sum(), rel=1e-12)
        differ_in_filler += not np.array_equal(cols, want_cols)
    assert differ_in_filler < 300  # ties among fillers only: most answers are the same arrays


def test_a_track_takes_its_nearest_uncontested_detection():
    cost = np.array(
        [
            [1.0, BIG, 9.0],
            [BIG, 2.0, 1.5],  # row 1 prefers column 2, but row 0's column 0 leaves it 1 or 2
            [BIG, BIG, 1.0],
        ]
    )
    rows, cols = linear_assignment(cost)
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 0, 1: 1, 2: 2}


def test_empty_and_invalid_matrices():
    for shape in [(0, 0), (0, 4), (4, 0)]:
        rows, cols = linear_assignment(np.zeros(shape))
        assert rows.size == 0 and cols.size == 0
    with pytest.raises(ValueError, match="not finite"):
        linear_assignment(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3))


def test_the_tracker_does_not_import_scipy_optimize():
    code = (
        "import sys, rbcflow.pipeline, rbcflow.batch.analyze, rbcflow.cli.analyze\n"
        "print('scipy.optimize' in sys.modules)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert res.stdout.strip() == "False"
