"""Compiled per-cell loops of the front end (numba).

The front end has about half a millisecond per 1024x768 frame. Its per-cell work (the
footprint centroid of each detection, the cross-correlation of each track between consecutive
frames) is a few thousand operations on a small window: in numpy or OpenCV each cell costs
several calls whose fixed overhead (5-15 us each) outweighs the arithmetic. These loops are
compiled by numba (``njit``): one call per frame for all cells, no intermediate arrays, and
the GIL released (``nogil``) so they run beside the decoding thread. Compiled code is cached
on disk: the first run on a machine compiles (a few seconds), later runs load. Where numba finds
no writable cache folder (a read-only install and no usable home folder; ``NUMBA_CACHE_DIR``
sets one) the loops are compiled afresh in each process instead of failing.

Coordinates follow :mod:`rbcflow.schema` (x = column, y = row). Windows are addressed by their
integer centre; pixels outside the frame count as background (0 after subtraction).
"""

from __future__ import annotations

import math

import numba
import numpy as np


def compiled(func):
    """``func`` compiled by numba (no Python objects, GIL released), cached on disk when a
    writable cache folder exists, else compiled in each process (numba refuses ``cache=True``
    at decoration when it has nowhere to write)."""
    try:
        return numba.njit(nogil=True, cache=True)(func)
    except RuntimeError:
        return numba.njit(nogil=True)(func)


BLUR_NOISE = 0.375
"""Noise std after the [1, 2, 1] x [1, 2, 1] / 16 blur, relative to before (sqrt(6)/4 per
axis)."""


@compiled
def footprint_centroids(frame, background, centres, half, noise, offsets, weights, result):
    """Soft-footprint centroid of the cell in a square window around each centre.

    For each window: ``d = frame - background - offset`` (0 outside the frame), smoothed by the
    [1, 2, 1] x [1, 2, 1] / 16 kernel, and ``|d|`` mapped linearly from 0 at 2 blurred-noise
    sigmas to 1 at 6 (pixels clearly on the cell all weigh 1 whatever their contrast, so the
    centroid is the footprint's geometric centre, not pulled towards the darker side of an
    unevenly lit rim; the ramp keeps it sub-pixel at the edge).

    Parameters
    ----------
    frame : (rows, cols) ndarray (uint8, uint16 or float32)
    background : (rows, cols) float32 ndarray
    centres : (n, 2) int64 ndarray
        Window centres (x, y), pixels.
    half : int
        The weight window is ``2 * half + 1`` square (the blur reads one pixel more each side).
    noise : float
        Camera noise (std of ``frame - background`` off the cells), intensity units.
    offsets : (n,) float64 ndarray
        Illumination offset of ``frame - background`` in each window's frame.
    weights : (n, 2 * half + 1, 2 * half + 1) float32 ndarray
        Out: the weights, in [0, 1].
    result : (n, 3) float64 ndarray
        Out: centroid offset from the window centre (dx, dy), pixels, and total weight (the
        footprint area, pixels); (0, 0, 0) for a window without weight.
    """
    rows, cols = background.shape
    p = 2 * half + 1
    big = p + 2
    sb = max(noise, 0.5) * BLUR_NOISE
    low = 2.0 * sb
    gain = 1.0 / (4.0 * sb)
    d = np.empty((big, big), np.float32)
    v = np.empty((p, big), np.float32)
    for k in range(centres.shape[0]):
        x0 = centres[k, 0] - half - 1
        y0 = centres[k, 1] - half - 1
        off = offsets[k]
        for i in range(big):
            r = y0 + i
            for j in range(big):
                q = x0 + j
                if 0 <= r < rows and 0 <= q < cols:
                    d[i, j] = np.float32(frame[r, q]) - background[r, q] - off
                else:
                    d[i, j] = 0.0
        for i in range(p):
            for j in range(big):
                v[i, j] = d[i, j] + 2.0 * d[i + 1, j] + d[i + 2, j]
        total = 0.0
        sx = 0.0
        sy = 0.0
        for i in range(p):
            for j in range(p):
                b = abs(v[i, j] + 2.0 * v[i, j + 1] + v[i, j + 2]) * (1.0 / 16.0)
                w = min(max((b - low) * gain, 0.0), 1.0)
                weights[k, i, j] = w
                total += w
                sx += w * (j - half)
                sy += w * (i - half)
        if total > 0:
            result[k, 0] = sx / total
            result[k, 1] = sy / total
        else:
            result[k, 0] = 0.0
            result[k, 1] = 0.0
        result[k, 2] = total


@compiled
def correlation_peaks(prev, cur, background, templates, centres, half, search, result):
    """Normalised cross-correlation of each cell between two consecutive frames.

    For each cell, the ``(2 * half + 1)`` square template of ``prev - background`` centred on
    ``templates[k]`` is compared with ``cur - background`` at every shift within ``search``
    pixels of ``centres[k]`` (the correlation coefficient, as OpenCV's ``TM_CCOEFF_NORMED``);
    the best shift is refined to sub-pixel by a parabola through the peak and its neighbours
    along x and along y (none at the edge of the search range).

    Parameters
    ----------
    prev, cur : (rows, cols) ndarray
    background : (rows, cols) float32 ndarray
    templates, centres : (m, 2) int64 ndarray
        Template centres in ``prev`` and search centres in ``cur``, (x, y) pixels.
    half, search : int
    result : (m, 3) float64 ndarray
        Out: displacement of the template (dx, dy), pixels, and the peak correlation in
        [-1, 1]; NaN where the windows would leave the frame. A template without texture
        correlates 0 everywhere.
    """
    rows, cols = cur.shape
    p = 2 * half + 1
    q = p + 2 * search
    n = 2 * search + 1
    size = p * p
    tpl = np.empty((p, p), np.float32)
    nb = (n + 7) // 8 * 8  # shifts along x computed (a multiple of 8: the last ones unused)
    reg = np.zeros((q, p + nb), np.float32)  # zero columns beyond q for the unused shifts
    s1 = np.zeros((q + 1, q + 1))
    s2 = np.zeros((q + 1, q + 1))
    res = np.empty((n, n))
    acc = np.empty(nb)
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
        # The search region, and its integral images (sums and sums of squares).
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
            # All shifts along x at once: the inner loop runs over the shifts, each with its
            # own sum taken in the same order as one shift at a time (so the same floats),
            # and the compiler can vectorise it.
            acc[:] = 0.0
            for i in range(p):
                trow = tpl[i]
                row = reg[a + i]
                for j in range(p):
                    t = trow[j]
                    for b in range(nb):
                        acc[b] += t * row[j + b]
            for b in range(n):
                num = acc[b]
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
        # The template's top-left corner moved from (tx - half, ty - half) to
        # (x0 + bj, y0 + bi).
        result[k, 0] = x0 + bj + fx - (tx - half)
        result[k, 1] = y0 + bi + fy - (ty - half)
        result[k, 2] = best


# -- linking: the per-frame distance tests of the linker, one call each --------------------
# Each replaces a dozen numpy calls on arrays of a few tens of elements (the fixed cost of the
# calls, not the arithmetic, was the time) and gives the same floats: np.hypot is the C
# library's hypot in both, and every other operation is the same single IEEE operation in
# the same order (tests/test_link_kernels.py compares them with the numpy code they replace).


@compiled
def close_pairs(xy, separation):
    """Whether any two of the points ``xy`` (n, 2) lie closer than ``separation``."""
    n = xy.shape[0]
    for i in range(n):
        for j in range(i + 1, n):  # the distance is symmetric to the bit: each pair once
            if np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1]) < separation:
                return True
    return False


@compiled
def suppress_close(xy, order, separation, gone):
    """Greedy suppression: for each point ``i`` in ``order`` not yet ``gone``, every other
    point closer than ``separation`` to it is marked ``gone`` (out, (n,) bool, all False on
    entry)."""
    n = xy.shape[0]
    for i in order:
        if gone[i]:
            continue
        for j in range(n):
            if j != i and np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1]) < separation:
                gone[j] = True


@compiled
def gate_costs(
    state, xy, t, min_speed, max_speed, max_dy, search_radius, widen_k, infeasible, cost, feasible
):
    """The linker's assignment costs and gates (:meth:`rbcflow.frontend.tracking.Linker._assign`).

    ``state`` (n_t, 7): each track's :func:`rbcflow.frontend.motion.gate_state` (anchor x, y,
    frame, predicted x, y, established, scatter); ``xy`` (n_d, 2) the detections. Out:
    ``cost`` (n_t, n_d) float64 (``infeasible`` where not ``feasible``) and ``feasible``
    (n_t, n_d) bool.
    """
    for i in range(state.shape[0]):
        lx, ly = state[i, 0], state[i, 1]
        dt = t - state[i, 2]
        px, py = state[i, 3], state[i, 4]
        established = state[i, 5] > 0
        widen = widen_k * state[i, 6]
        for j in range(xy.shape[0]):
            x, y = xy[j, 0], xy[j, 1]
            dist = np.hypot(x - px, y - py)
            if established:
                off_lane = abs(y - py) > max_dy * dt + widen
                ok = dist <= search_radius + widen and not off_lane
                c = dist
            else:
                move_x = x - lx
                move_y = abs(y - ly)
                ok = move_x >= min_speed * dt and move_x <= max_speed * dt and move_y <= max_dy * dt
                c = dist + search_radius
            feasible[i, j] = ok
            cost[i, j] = c if ok else infeasible


@compiled
def interference_flags(pos, xy, own, area, lim, min_separation, crop_reach, close, inside):
    """:func:`rbcflow.frontend.interference.flag_interference`'s distance tests.

    ``pos`` (n, 2) the active tracks' positions, ``xy`` (m, 2) and ``area`` (m,) the frame's
    detections, ``own`` (n,) each track's detection or -1. Out (n,) bool: ``close`` (another
    track closer than ``lim``, or another detection, not the track's own nor closer than
    ``min_separation``, closer than ``lim``) and ``inside`` (such another detection within
    ``crop_reach`` plus its radius along both axes).
    """
    n = pos.shape[0]
    m = xy.shape[0]
    for i in range(n):
        c = False
        for j in range(n):
            if j != i and np.hypot(pos[i, 0] - pos[j, 0], pos[i, 1] - pos[j, 1]) < lim:
                c = True
                break
        ins = False
        for j in range(m):
            dx = abs(pos[i, 0] - xy[j, 0])
            dy = abs(pos[i, 1] - xy[j, 1])
            dd = -1.0 if j == own[i] else np.hypot(dx, dy)
            if not dd >= min_separation:
                continue  # the track's own detection, or a part of its cell
            if dd < lim:
                c = True
            r = crop_reach + math.sqrt(abs(area[j]) / math.pi)
            reach = crop_reach if r != r or r < crop_reach else r
            if dx != dx or dy != dy:
                continue
            if (dx if dx >= dy else dy) <= reach:
                ins = True
        close[i] = c
        inside[i] = ins
