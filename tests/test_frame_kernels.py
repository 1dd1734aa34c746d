"""The compiled replacements of the front end's per-frame code give the same floats as the code
they replaced, kept here as the reference, on realistic frames (synthetic acquisitions with
cells, flicker, drift and noise)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from rbcflow.frontend.frame_kernels import median_of, pairwise_sum
from rbcflow.frontend.kernels import correlation_peaks
from rbcflow.frontend.normalise import gain_offset
from rbcflow.frontend.variance import downsample_image
from rbcflow.synthetic import SynthConfig, render_acquisition


def _gain_offset_numpy(frame, background, *, step=2, clip=3.0):
    """The numpy gain_offset this package used before the compiled one (the reference)."""
    f = np.asarray(frame, np.float64)[::step, ::step].ravel()
    b = np.asarray(background, np.float64)[::step, ::step].ravel()
    keep = np.ones(f.size, dtype=bool)
    g, o = 1.0, 0.0
    for _ in range(2):
        fb, bb = f[keep], b[keep]
        if fb.size < 3:
            break
        bm = bb.mean()
        vb = float(np.mean((bb - bm) ** 2))
        if vb < 1e-6 * max(bm * bm, 1.0):
            g, o = 1.0, float(np.median(fb - bb))
        else:
            g = float(np.mean((bb - bm) * (fb - fb.mean())) / vb)
            o = float(fb.mean() - g * bm)
        r = f - (g * b + o)
        spread = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        keep = np.abs(r) <= clip * max(spread, 1e-6)
    return g, o


@numba.njit(nogil=True, cache=True)
def _correlation_peaks_reference(prev, cur, background, templates, centres, half, search, result):
    """The correlation kernel as it was, one shift at a time (the reference)."""
    rows, cols = cur.shape
    p = 2 * half + 1
    q = p + 2 * search
    n = 2 * search + 1
    size = p * p
    tpl = np.empty((p, p), np.float32)
    reg = np.empty((q, q), np.float32)
    s1 = np.zeros((q + 1, q + 1))
    s2 = np.zeros((q + 1, q + 1))
    res = np.empty((n, n))
    for k in range(templates.shape[0]):
        tx, ty = templates[k, 0], templates[k, 1]
        cx, cy = centres[k, 0], centres[k, 1]
        result[k, 0] = np.nan
        result[k, 1] = np.nan
        result[k, 2] = np.nan
        if (
            min(tx - half, ty - half, cx - half - search, cy - half - search) < 0
            or max(tx, cx + search) + half >= cols
            or max(ty, cy + search) + half >= rows
        ):
            continue
        mean = 0.0
        for i in range(p):
            for j in range(p):
                val = np.float32(prev[ty - half + i, tx - half + j])
                val -= background[ty - half + i, tx - half + j]
                tpl[i, j] = val
                mean += val
        mean /= size
        norm = 0.0
        for i in range(p):
            for j in range(p):
                val = tpl[i, j] - mean
                tpl[i, j] = val
                norm += val * val
        y0 = cy - half - search
        x0 = cx - half - search
        for i in range(q):
            row1 = 0.0
            row2 = 0.0
            for j in range(q):
                val = np.float32(cur[y0 + i, x0 + j]) - background[y0 + i, x0 + j]
                reg[i, j] = val
                row1 += val
                row2 += val * val
                s1[i + 1, j + 1] = s1[i, j + 1] + row1
                s2[i + 1, j + 1] = s2[i, j + 1] + row2
        best = -np.inf
        bi = 0
        bj = 0
        for a in range(n):
            for b in range(n):
                num = 0.0
                for i in range(p):
                    for j in range(p):
                        num += tpl[i, j] * reg[a + i, b + j]
                sw = s1[a + p, b + p] - s1[a, b + p] - s1[a + p, b] + s1[a, b]
                sw2 = s2[a + p, b + p] - s2[a, b + p] - s2[a + p, b] + s2[a, b]
                den = (sw2 - sw * sw / size) * norm
                r = num / math.sqrt(den) if den > 1e-9 else 0.0
                res[a, b] = r
                if r > best:
                    best = r
                    bi = a
                    bj = b
        fx = 0.0
        fy = 0.0
        if 0 < bj < n - 1:
            den = res[bi, bj - 1] - 2.0 * best + res[bi, bj + 1]
            if den < 0:
                fx = min(0.5, max(-0.5, 0.5 * (res[bi, bj - 1] - res[bi, bj + 1]) / den))
        if 0 < bi < n - 1:
            den = res[bi - 1, bj] - 2.0 * best + res[bi + 1, bj]
            if den < 0:
                fy = min(0.5, max(-0.5, 0.5 * (res[bi - 1, bj] - res[bi + 1, bj]) / den))
        result[k, 0] = x0 + bj + fx - (tx - half)
        result[k, 1] = y0 + bi + fy - (ty - half)
        result[k, 2] = best


@pytest.fixture(scope="module")
def acquisition():
    """Frames and truth of a short synthetic acquisition with strong flicker and drift."""
    cfg = SynthConfig(width=320, height=240, n_frames=40, cells_in_view=8, flicker=4.0, drift=0.05)
    acq = render_acquisition(cfg, rng=11)
    frames = np.stack(list(acq.frames()))
    background = np.median(frames, axis=0).astype(np.float32)
    return frames, background, acq


def test_pairwise_sum_is_numpys_sum():
    rng = np.random.default_rng(0)
    for n in [*range(1, 260), *rng.integers(260, 40000, 60).tolist()]:
        a = rng.normal(120.0, 40.0, n)
        assert pairwise_sum(a, 0, n) == np.sum(a)  # the same float, not a close one


def test_median_is_numpys_median():
    rng = np.random.default_rng(1)
    for n in [*range(1, 120), *rng.integers(120, 20000, 40).tolist()]:
        heavy = rng.standard_cauchy(n)  # heavy tails: most values in a few bins
        heavy[: n // 10] *= 1e6
        for x in (
            rng.normal(0, 3, n),
            rng.integers(0, 4, n).astype(float),
            np.full(n, 2.5),
            heavy,
            np.sort(rng.normal(0, 1, n))[::-1].copy(),
        ):
            before = x.copy()
            assert median_of(x, n) == np.median(x)
            assert median_of(x, max(1, n - 1)) == np.median(x[: max(1, n - 1)])  # a prefix
            np.testing.assert_array_equal(x, before)  # left as it was


def test_gain_offset_same_floats_as_numpy(acquisition):
    frames, background, _ = acquisition
    bs = downsample_image(background, 4)
    for f in frames:
        small = downsample_image(f, 4)
        assert gain_offset(small, bs) == _gain_offset_numpy(small, bs)
        # full resolution, other steps and clips, float64 input
        assert gain_offset(f, background, step=3) == _gain_offset_numpy(f, background, step=3)
        f64 = small.astype(np.float64) * 1.01
        assert gain_offset(f64, bs, clip=2.0) == _gain_offset_numpy(f64, bs, clip=2.0)
    flat = np.full((20, 24), 110.0, np.float32)  # no background contrast: median offset
    assert gain_offset(flat + 3, flat) == _gain_offset_numpy(flat + 3, flat) == (1.0, 3.0)


def test_gain_offset_finds_flicker():
    bg = np.linspace(80, 160, 400, dtype=np.float32).reshape(20, 20)
    frame = 1.03 * bg - 2.0
    frame[5:8, 5:8] -= 40  # a cell, left out by the second fit
    g, o = gain_offset(frame, bg)
    assert g == pytest.approx(1.03, abs=1e-6) and o == pytest.approx(-2.0, abs=1e-5)
    with pytest.raises(ValueError):
        gain_offset(frame, bg[:10])


@pytest.mark.parametrize(("half", "search"), [(9, 3), (7, 2), (8, 5), (3, 1)])
def test_correlation_same_floats_as_one_shift_at_a_time(acquisition, half, search):
    frames, background, acq = acquisition
    rng = np.random.default_rng(half * 10 + search)
    truth = acq.truth
    for t in range(1, len(frames)):
        cells = truth[truth["frame"] == t][["x", "y"]].to_numpy()
        # around real cells (textured windows) and anywhere (flat, edges, off the frame)
        anywhere = np.stack([rng.integers(-5, 325, 6), rng.integers(-5, 245, 6)], axis=1)
        tpl = np.concatenate([np.rint(cells), anywhere]).astype(np.int64)
        cen = tpl + rng.integers(-3, 4, tpl.shape)
        new, ref = np.empty((len(tpl), 3)), np.empty((len(tpl), 3))
        args = (frames[t - 1], frames[t], background, tpl, cen, half, search)
        correlation_peaks(*args, new)
        _correlation_peaks_reference(*args, ref)
        np.testing.assert_array_equal(new, ref)


def _keep_of(count):
    return np.flatnonzero(count[1:] >= 2) + 1  # labels of 2 blocks or more


def _coarse_stats_numpy(var, labels, n, keep_of=_keep_of):
    """The numpy bookkeeping FrameDetector.coarse did before the compiled one (the
    reference): per kept label, centroid (x, y) in blocks, mean variance and the larger side
    of the bounding box. ``keep_of(count)`` picks the kept labels."""
    on = np.flatnonzero(labels.ravel())
    lab = labels.ravel()[on]
    count = np.bincount(lab, minlength=n)
    keep = keep_of(count)
    row, col = np.divmod(on, labels.shape[1])
    cx = np.bincount(lab, weights=col, minlength=n)[keep] / count[keep]
    cy = np.bincount(lab, weights=row, minlength=n)[keep] / count[keep]
    score = np.bincount(lab, weights=var.ravel()[on], minlength=n)[keep] / count[keep]
    order = np.argsort(lab, kind="stable")
    present = np.flatnonzero(count[1:] > 0) + 1
    starts = np.searchsorted(lab[order], present)
    rs, cs = row[order], col[order]
    width = np.maximum.reduceat(cs, starts) - np.minimum.reduceat(cs, starts) + 1
    height = np.maximum.reduceat(rs, starts) - np.minimum.reduceat(rs, starts) + 1
    extent = np.maximum(width, height)[np.searchsorted(present, keep)]
    return (on, lab, row, col, count), (cx, cy, score, extent)


def test_component_kernels_same_arrays_as_numpy(acquisition):
    # The detector's own variance images and components on frames with cells, flicker and
    # noise, at several thresholds (few and many components, big merged ones), and a frame
    # without any: the same arrays, dtypes and floats as the numpy bookkeeping.
    import cv2

    from rbcflow.config import DetectionConfig
    from rbcflow.frontend.detection import FrameDetector
    from rbcflow.frontend.frame_kernels import component_pixels, component_stats

    frames, background, _ = acquisition
    det = FrameDetector(background, DetectionConfig(), threshold=1.0)
    checked = 0
    for f in frames[::4]:
        var = det.variance(f)
        for q in (0.5, 0.9, 0.97, 0.995, 1.01):
            mask = np.greater(var, np.quantile(var, min(q, 1.0))).view(np.uint8)
            n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
            got = component_pixels(labels, n)
            ref, stats = _coarse_stats_numpy(var, labels, n)
            for a, b in zip(got, ref, strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
            on, lab, row, col, count = got
            keep = _keep_of(count)
            if len(keep) == 0:
                continue
            sc, sr, sv, box = component_stats(lab, row, col, var.ravel()[on], n)
            kb = box[keep]
            mine = (
                sc[keep] / count[keep],
                sr[keep] / count[keep],
                sv[keep] / count[keep],
                np.maximum(kb[:, 3] - kb[:, 2], kb[:, 1] - kb[:, 0]) + 1,
            )
            for a, b in zip(mine, stats, strict=True):
                np.testing.assert_array_equal(a, b)  # the same floats, not close ones
            checked += len(keep)
    assert checked > 100
