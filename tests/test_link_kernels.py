"""The linker's compiled distance tests give the same answers as the numpy code they replaced
(kept here as the reference), on random scenes with close pairs, ties, NaN areas and lone
points; and the linker's short-list median is numpy's to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rbcflow.config import TrackingConfig
from rbcflow.frontend.interference import flag_interference
from rbcflow.frontend.motion import gate_state
from rbcflow.frontend.splitting import one_per_cell
from rbcflow.frontend.tracking import _INFEASIBLE, _WIDEN, Linker, _median
from rbcflow.frontend.tracks import Track


def _one_per_cell_numpy(xy, area, separation):
    n = len(xy)
    if n < 2:
        return xy, area
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    d[np.arange(n), np.arange(n)] = np.inf
    if not (d < separation).any():
        return xy, area
    gone = np.zeros(n, dtype=bool)
    for i in np.argsort(-np.nan_to_num(area, nan=0.0), kind="stable").tolist():
        if not gone[i]:
            gone |= d[i] < separation
            gone[i] = False
    return xy[~gone], area[~gone]


def _flags_numpy(pos, xy, own, area, lim, min_separation, crop_reach):
    n = len(pos)
    d = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])
    d[np.arange(n), np.arange(n)] = np.inf
    close = (d < lim).any(axis=1)
    inside = np.zeros(n, dtype=bool)
    if len(xy):
        dx = np.abs(pos[:, None, 0] - xy[None, :, 0])
        dy = np.abs(pos[:, None, 1] - xy[None, :, 1])
        dd = np.hypot(dx, dy)
        own_idx = np.asarray(own)
        has = own_idx >= 0
        dd[np.flatnonzero(has), own_idx[has]] = -1.0
        other = dd >= min_separation
        close |= ((dd < lim) & other).any(axis=1)
        reach = np.fmax(crop_reach + np.sqrt(np.abs(area) / np.pi), crop_reach)
        inside = ((np.maximum(dx, dy) <= reach) & other).any(axis=1)
    return close, inside


def _gates_numpy(state, xy, t, cfg):
    last, dt, pred = state[:, :2], t - state[:, 2], state[:, 3:5]
    established, widen = state[:, 5] > 0, _WIDEN * state[:, 6:7]
    dist = np.hypot(xy[None, :, 0] - pred[:, None, 0], xy[None, :, 1] - pred[:, None, 1])
    move_x = xy[None, :, 0] - last[:, None, 0]
    move_y = np.abs(xy[None, :, 1] - last[:, None, 1])
    dtc = dt[:, None]
    box = (
        (move_x >= cfg.min_speed * dtc)
        & (move_x <= cfg.max_speed * dtc)
        & (move_y <= cfg.max_dy * dtc)
    )
    off_lane = np.abs(xy[None, :, 1] - pred[:, None, 1]) > cfg.max_dy * dtc + widen
    near = dist <= cfg.search_radius + widen
    feasible = np.where(established[:, None], near & ~off_lane, box)
    cost = np.where(established[:, None], dist, dist + cfg.search_radius)
    return np.where(feasible, cost, _INFEASIBLE), feasible


def _scene(rng, n):
    """Points on a small field (many close pairs), some on a coarse grid (exact ties)."""
    xy = rng.uniform(0, 60, (n, 2))
    grid = rng.random(n) < 0.3
    xy[grid] = np.round(xy[grid] / 3.0) * 3.0
    return xy


@pytest.mark.parametrize("seed", range(4))
def test_one_per_cell_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(0, 14))
        xy = _scene(rng, n)
        area = rng.choice([np.nan, 30.0, 60.0, 90.0], n)
        sep = float(rng.choice([4.0, 6.0, 9.0]))
        got, want = one_per_cell(xy, area, sep), _one_per_cell_numpy(xy, area, sep)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("seed", range(4))
def test_interference_flags_match_numpy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, m = int(rng.integers(1, 10)), int(rng.integers(0, 12))
        pos, xy = _scene(rng, n), _scene(rng, m)
        own = [int(rng.integers(-1, m)) if m else -1 for _ in range(n)]
        area = rng.choice([np.nan, 0.0, 40.0, 120.0], m)
        active = []
        for x, y in pos:
            tr = Track()
            tr.append(0, float(x), float(y), True)
            active.append(tr)
        flag_interference(active, xy, own, area, 18.0, 6.0, 15.0)
        close, inside = _flags_numpy(pos, xy, own, area, 18.0, 6.0, 15.0)
        assert [tr.interference for tr in active] == close.tolist()
        assert [tr.neighbours[-1] for tr in active] == inside.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_assignment_gates_match_numpy(seed, monkeypatch):
    import rbcflow.frontend.tracking as tracking

    rng = np.random.default_rng(seed)
    cfg = TrackingConfig()
    seen = []

    def spy(cost):
        seen.append(cost.copy())
        return real(cost)

    real = tracking.linear_assignment
    monkeypatch.setattr(tracking, "linear_assignment", spy)
    for _ in range(200):
        link = Linker(np.zeros((80, 120), np.float32), TrackingConfig(refine=False))
        n_t = int(rng.integers(1, 8))
        for _k in range(n_t):
            tr = Track()
            t0 = int(rng.integers(0, 4))
            x0, y0 = rng.uniform(0, 60), rng.uniform(0, 60)
            vx = float(rng.uniform(2, 8))
            for f in range(t0, 5):
                tr.append(f, x0 + vx * f, y0 + rng.normal(0, 1), True)
            link.active.append(tr)
        xy = _scene(rng, int(rng.integers(1, 10)))
        link.prior_vx = float(rng.uniform(0, 6))
        state = np.array([gate_state(tr, 6, link.prior_vx) for tr in link.active])
        seen.clear()
        link._assign(6, xy)
        want, _ = _gates_numpy(state, xy, 6, cfg)
        np.testing.assert_array_equal(seen[0], want)


def test_median_is_numpys():
    rng = np.random.default_rng(0)
    for i in range(3000):
        n = int(rng.integers(1, 25))
        v = rng.normal(3, 2, n).tolist()
        if i % 3 == 0:
            v = [round(x, 1) for x in v]
        if i % 3 == 1:
            v = [float(x) for x in rng.choice([0.0, -0.0, 1.0, -1.0], n)]
        a, b = float(np.median(v)), _median(v)
        assert a == b and math.copysign(1, a) == math.copysign(1, b)
    assert math.isnan(_median([1.0, math.nan, 2.0]))
