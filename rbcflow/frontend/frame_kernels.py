"""Compiled per-frame passes of the detection (numba): the illumination fit, the components'
pixels and statistics.

Every frame of the tracking pass has its illumination fitted against the background
(:mod:`.normalise`). Done with numpy this cost about 1 ms of a 1024x768 frame's ~4 ms (float64
temporaries, boolean copies, four medians of which two decided nothing); here it is one
compiled loop (three medians by histogram selection) that releases the GIL (``nogil``), so it
runs in the reading thread beside the main one. (A compiled 4x4 block mean with the frame's sum
on the way was tried too: no faster than OpenCV's two halvings plus ``cv2.mean``, the pass is
bound by memory.)

The answers are *the same floats* as the numpy/OpenCV code they replace, not merely close
(``tests/test_frame_kernels.py`` keeps the old code and compares on synthetic frames with
cells, flicker and noise):

- :func:`pairwise_sum` adds in numpy's order (pairwise in blocks of 8 unrolled, 128 at the
  leaves; numpy's ``add.reduce`` of a contiguous float64 vector), so means agree to the bit;
- medians are order statistics (exact whatever the selection algorithm; an even count
  averages the two middle values as numpy does);
- the components' sums are added in pixel order, as ``np.bincount`` adds its weights, and
  their bounding boxes are exact integers (:func:`component_pixels`, :func:`component_stats`
  replace the dozen numpy calls per frame of :meth:`FrameDetector.coarse`'s bookkeeping,
  which held the GIL in the reading thread).
"""

from __future__ import annotations

import numpy as np

from rbcflow.frontend.kernels import compiled

_MAD_SIGMA = 1.4826


@compiled
def _leaf_sum(a, lo, n):
    # numpy's pairwise_sum for n <= 128: straight for n < 8, else 8 partial sums
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    m = n - n % 8
    while i < m:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@compiled
def pairwise_sum(a, lo, n):
    """Sum of ``a[lo:lo + n]`` (float64, contiguous) in numpy's pairwise order: halves (cut at
    a multiple of 8) summed separately down to leaves of at most 128 values.

    The halving is walked with an explicit stack rather than recursion (numba's on-disk
    cache of a recursive function crashed on loading)."""
    if n <= 128:
        return _leaf_sum(a, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    state = np.empty(64, np.int64)  # 1: summing its first half, 2: its second half
    first = np.empty(64)  # the first half's sum, while the second half is summed
    top = 0
    los[0] = lo
    ns[0] = n
    while True:
        if ns[top] <= 128:
            v = _leaf_sum(a, los[top], ns[top])
            top -= 1
            while top >= 0 and state[top] == 2:
                v = first[top] + v
                top -= 1
            if top < 0:
                return v
            first[top] = v
            state[top] = 2
            n2 = ns[top] // 2
            n2 -= n2 % 8
            los[top + 1] = los[top] + n2
            ns[top + 1] = ns[top] - n2
        else:
            state[top] = 1
            n2 = ns[top] // 2
            n2 -= n2 % 8
            los[top + 1] = los[top]
            ns[top + 1] = n2
        top += 1


@compiled
def _mean(a, n):
    return (0.0 + pairwise_sum(a, 0, n)) / n


_BINS = 2048


@compiled
def median_of(a, n):
    """Median of ``a[:n]`` (float64, finite) as ``numpy.median`` gives it; ``a`` is left as it is.

    A histogram selection: the values are counted into bins between their minimum and maximum
    (binning is monotonic, so the bin of each rank is known from the counts), and only the
    values of the one or two bins holding the middle ranks are sorted. Three passes without
    data-dependent branches: about four times faster than a quickselect on 12,000 values.
    """
    lo = a[0]
    hi = a[0]
    for i in range(1, n):
        v = a[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if lo == hi:
        return lo
    upper_rank = n // 2
    lower_rank = upper_rank if n % 2 else upper_rank - 1
    scale = _BINS / (hi - lo)
    counts = np.zeros(_BINS + 1, np.int64)
    for i in range(n):
        counts[min(int((a[i] - lo) * scale), _BINS - 1)] += 1
    # the bins holding the two ranks, and the rank of the first value of the first
    below = 0
    b_lo = -1
    b_hi = -1
    start = 0
    for b in range(_BINS):
        c = counts[b]
        if b_lo < 0 and below + c > lower_rank:
            b_lo = b
            start = below
        if below + c > upper_rank:
            b_hi = b
            break
        below += c
    m = 0
    for b in range(b_lo, b_hi + 1):
        m += counts[b]
    buf = np.empty(m)
    k = 0
    for i in range(n):
        b = min(int((a[i] - lo) * scale), _BINS - 1)
        if b_lo <= b <= b_hi:
            buf[k] = a[i]
            k += 1
    buf.sort()
    upper = buf[upper_rank - start]
    if n % 2:
        return upper
    return (buf[lower_rank - start] + upper) / 2


@compiled
def gain_offset_kernel(frame, background, step, clip):
    """``(g, o)`` of :func:`rbcflow.frontend.normalise.gain_offset` (see there)."""
    rows, cols = frame.shape
    m = ((rows + step - 1) // step) * ((cols + step - 1) // step)
    f = np.empty(m)
    b = np.empty(m)
    k = 0
    for i in range(0, rows, step):
        for j in range(0, cols, step):
            f[k] = frame[i, j]
            b[k] = background[i, j]
            k += 1
    keep = np.ones(m, np.bool_)
    fb = np.empty(m)
    bb = np.empty(m)
    tmp = np.empty(m)
    g = 1.0
    o = 0.0
    for it in range(2):
        k = 0
        for i in range(m):
            if keep[i]:
                fb[k] = f[i]
                bb[k] = b[i]
                k += 1
        if k < 3:
            break
        bm = _mean(bb, k)
        for i in range(k):
            d = bb[i] - bm
            tmp[i] = d * d
        vb = _mean(tmp, k)
        if vb < 1e-6 * max(bm * bm, 1.0):
            g = 1.0
            for i in range(k):
                tmp[i] = fb[i] - bb[i]
            o = median_of(tmp, k)
        else:
            fm = _mean(fb, k)
            for i in range(k):
                tmp[i] = (bb[i] - bm) * (fb[i] - fm)
            g = _mean(tmp, k) / vb
            o = fm - g * bm
        if it == 1:
            break  # the residuals of the last fit decide nothing
        for i in range(m):
            tmp[i] = f[i] - (g * b[i] + o)
        med = median_of(tmp, m)
        for i in range(m):
            bb[i] = abs(tmp[i] - med)
        spread = _MAD_SIGMA * median_of(bb, m)
        limit = clip * max(spread, 1e-6)
        for i in range(m):
            keep[i] = abs(tmp[i]) <= limit
    return g, o


@compiled
def component_pixels(labels, n):
    """The labelled pixels of a ``cv2.connectedComponents`` image (``n`` labels), in raster
    order.

    Returns ``(on, lab, row, col, count)``: the flat index (int64), label (int32, as
    ``labels``), row and column (int64) of every pixel whose label is not 0, and the pixels
    per label ``(n,)`` int64 (label 0's: 0). The same arrays as ``on = np.flatnonzero(labels)``,
    ``labels.ravel()[on]``, ``np.divmod(on, cols)`` and ``np.bincount(lab, minlength=n)``, in
    two passes without temporaries.
    """
    rows, cols = labels.shape
    m = 0
    for i in range(rows):
        for j in range(cols):
            if labels[i, j] != 0:
                m += 1
    on = np.empty(m, np.int64)
    lab = np.empty(m, np.int32)
    row = np.empty(m, np.int64)
    col = np.empty(m, np.int64)
    count = np.zeros(n, np.int64)
    k = 0
    for i in range(rows):
        for j in range(cols):
            v = labels[i, j]
            if v != 0:
                on[k] = i * cols + j
                lab[k] = v
                row[k] = i
                col[k] = j
                count[v] += 1
                k += 1
    return on, lab, row, col, count


@compiled
def component_stats(lab, row, col, values, n):
    """Per label ``0 .. n-1`` of the pixels ``lab`` (at ``row``, ``col``, with ``values``):
    sums of the columns, rows and values (float64, added in pixel order, as ``np.bincount``
    with weights adds them: the same floats), and the bounding box (min/max row and column;
    ``-1`` for a label without pixels). Returns ``(sum_col, sum_row, sum_value, box)``, box
    ``(n, 4)`` int64: row min, row max, column min, column max.
    """
    sc = np.zeros(n)
    sr = np.zeros(n)
    sv = np.zeros(n)
    box = np.full((n, 4), -1, np.int64)
    for k in range(lab.shape[0]):
        c = lab[k]
        r = row[k]
        q = col[k]
        sc[c] += q
        sr[c] += r
        sv[c] += values[k]
        if box[c, 0] < 0:
            box[c, 0] = r
            box[c, 1] = r
            box[c, 2] = q
            box[c, 3] = q
        else:
            if r < box[c, 0]:
                box[c, 0] = r
            if r > box[c, 1]:
                box[c, 1] = r
            if q < box[c, 2]:
                box[c, 2] = q
            if q > box[c, 3]:
                box[c, 3] = q
    return sc, sr, sv, box
