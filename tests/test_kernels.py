"""Compiled per-cell loops: exact answers on hand-built windows, and OpenCV as the reference
for the normalised cross-correlation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rbcflow.frontend.kernels import correlation_peaks, footprint_centroids


def _disc(shape, cx, cy, radius, level, contrast):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, level, np.float32)
    img[(cols - cx) ** 2 + (rows - cy) ** 2 <= radius**2] -= contrast
    return img


def _centroids(frame, bg, centres, half, noise=1.0, offsets=None):
    centres = np.asarray(centres, np.int64)
    n = len(centres)
    offsets = np.zeros(n) if offsets is None else np.asarray(offsets, np.float64)
    w = np.empty((n, 2 * half + 1, 2 * half + 1), np.float32)
    res = np.empty((n, 3))
    footprint_centroids(frame, bg, centres, half, noise, offsets, w, res)
    return w, res


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_footprint_centroid_of_a_disc(dtype):
    bg = np.full((60, 80), 120, np.float32)
    frame = _disc(bg.shape, 40, 30, 5, 120, 60).astype(dtype)
    # windows centred on the disc, and 2 px left / 1 px below it
    w, res = _centroids(frame, bg, [[40, 30], [38, 31], [10, 10]], half=9)
    np.testing.assert_allclose(res[0, :2], [0.0, 0.0], atol=1e-9)  # symmetric
    np.testing.assert_allclose(res[1, :2], [2.0, -1.0], atol=1e-9)
    # Contrast 60, noise 1: every pixel whose 3x3 neighbourhood touches the disc keeps more
    # than 6 blurred-noise sigmas after the blur and weighs exactly 1, all others 0.
    disc = (frame != frame[0, 0]).astype(np.uint8)
    assert res[0, 2] == cv2.dilate(disc, np.ones((3, 3), np.uint8)).sum()
    assert w[0, 9, 9] == 1.0 and w[0, 0, 0] == 0.0
    assert res[1, 2] == pytest.approx(res[0, 2])
    # an empty window: no weight, no offset
    assert res[2].tolist() == [0.0, 0.0, 0.0] and not w[2].any()


def test_footprint_offset_and_outside_pixels():
    bg = np.full((40, 40), 100, np.float32)
    frame = _disc(bg.shape, 20, 20, 4, 100, 50) + 30.0  # the whole frame 30 brighter
    _, plain = _centroids(frame, bg, [[20, 20]], half=7)
    _, fixed = _centroids(frame, bg, [[20, 20]], half=7, offsets=[30.0])
    assert plain[0, 2] > 200  # the offset fills most of the 15x15 window
    assert fixed[0, 2] < 90  # removed: only the disc (radius 4) and its blurred edge
    # a window hanging over the top-left corner: pixels outside count as background
    corner = _disc(bg.shape, 2, 3, 4, 100, 50)
    w, res = _centroids(corner, bg, [[0, 0]], half=7)
    assert w[0, :4, :4].sum() == 0.0  # rows/cols outside the frame weigh nothing
    assert res[0, 0] > 0 and res[0, 1] > 0  # the visible part lies right of and below (0, 0)


def _opencv_reference(prev, cur, bg, t, c, half, search):
    """Position of the best match with OpenCV's matchTemplate and the same parabola fit."""
    (tx, ty), (cx, cy) = t, c
    tpl = prev[ty - half : ty + half + 1, tx - half : tx + half + 1].astype(np.float32)
    tpl -= bg[ty - half : ty + half + 1, tx - half : tx + half + 1]
    h = half + search
    reg = cur[cy - h : cy + h + 1, cx - h : cx + h + 1].astype(np.float32)
    reg -= bg[cy - h : cy + h + 1, cx - h : cx + h + 1]
    res = cv2.matchTemplate(reg, tpl, cv2.TM_CCOEFF_NORMED)
    _, peak, _, (ix, iy) = cv2.minMaxLoc(res)

    def parabola(a, b, d):
        den = a - 2 * b + d
        return min(0.5, max(-0.5, 0.5 * (a - d) / den)) if den < 0 else 0.0

    n = 2 * search
    fx = parabola(res[iy, ix - 1], peak, res[iy, ix + 1]) if 0 < ix < n else 0.0
    fy = parabola(res[iy - 1, ix], peak, res[iy + 1, ix]) if 0 < iy < n else 0.0
    return cx - search + ix + fx - tx, cy - search + iy + fy - ty, peak


def test_correlation_peaks_match_opencv():
    rng = np.random.default_rng(7)
    bg = cv2.GaussianBlur(rng.normal(120, 8, (90, 120)).astype(np.float32), (0, 0), 3)
    texture = cv2.GaussianBlur(rng.normal(0, 25, (90, 120)).astype(np.float32), (0, 0), 1.2)
    prev = np.clip(bg + texture, 0, 255).astype(np.uint8)
    shift = np.float32([[1, 0, 2.4], [0, 1, -1.3]])  # the texture moves (+2.4, -1.3) px
    moved = cv2.warpAffine(texture, shift, (120, 90), borderMode=cv2.BORDER_REFLECT)
    cur = np.clip(bg + moved + rng.normal(0, 1.0, bg.shape), 0, 255).astype(np.uint8)
    t = np.array([[40, 40], [60, 50], [80, 30], [3, 3]], np.int64)  # the last leaves the frame
    c = t + [[2, -1], [3, -2], [1, 0], [2, -1]]
    out = np.empty((4, 3))
    correlation_peaks(prev, cur, bg, t, c, 9, 3, out)
    for k in range(3):
        ref = _opencv_reference(prev, cur, bg, t[k], c[k], 9, 3)
        np.testing.assert_allclose(out[k], ref, atol=1e-4)
        np.testing.assert_allclose(out[k, :2], [2.4, -1.3], atol=0.2)
    assert np.isnan(out[3]).all()
    flat = bg + 5.0  # no texture once the background is subtracted
    correlation_peaks(flat, cur, bg, t[:1], c[:1], 9, 3, out[:1])
    assert out[0, 2] == 0.0  # a template without texture never passes for a match


def test_compiled_without_a_writable_cache(tmp_path):
    """A read-only install with no usable home folder: numba refuses ``cache=True`` there;
    the kernels are then compiled without a cache instead of failing at import."""
    import os
    import subprocess
    import sys

    code = (
        "from rbcflow.frontend.kernels import compiled\n"
        "ns = {}\n"
        "exec(compile('def f(x):\\n    return x + 1\\n', '/proc/nowhere/f.py', 'exec'), ns)\n"
        "print(compiled(ns['f'])(41))\n"
    )
    env = dict(os.environ, HOME="/proc/nohome", XDG_CACHE_HOME="/proc/nocache")
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "42"
