"""Median background: the per-pixel median of frames evenly spaced through the video.

The static part of an acquisition (illumination gradient, debris stuck to the glass, dust on
the optics) is the same in every frame, while a given pixel is covered by a moving cell in only
a few of them; the per-pixel median of frames spread over the whole video is therefore the
empty chamber. It is subtracted from every frame before detection. As the authors' front end,
we take 100 frames (all of them when the video has fewer).

The median of integer frames is computed by a bitwise radix selection (one pass over the stack
per bit, all vectorised), about 15x faster than ``numpy.median`` on a stack of 100 uint8
megapixel frames and exact.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rbcflow.config import BackgroundConfig
from rbcflow.errors import VideoReadError
from rbcflow.io.base import VideoReader


def sample_indices(n_total: int, n_samples: int) -> np.ndarray:
    """Indices of ``n_samples`` frames evenly spaced over ``n_total`` (all when fewer).

    Parameters
    ----------
    n_total : int
        Frames in the video.
    n_samples : int
        Frames wanted.

    Returns
    -------
    (k,) int64 ndarray
        Sorted, unique indices in ``[0, n_total)``, first and last frame included;
        ``k = min(n_total, n_samples)``.

    Examples
    --------
    >>> sample_indices(10, 4).tolist()
    [0, 3, 6, 9]
    >>> sample_indices(3, 100).tolist()
    [0, 1, 2]
    """
    if n_total <= 0 or n_samples <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_samples >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n_samples == 1:
        return np.array([n_total // 2], dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_total - 1, n_samples)).astype(np.int64))


def _kth_smallest_unsigned(stack: np.ndarray, k: int) -> np.ndarray:
    """Per-pixel ``k``-th smallest value (0-based) of an unsigned-integer stack, along axis 0.

    Radix selection: the answer is built bit by bit from the top, keeping a bit set when fewer
    than ``k + 1`` values lie below the candidate. One vectorised pass over the stack per bit.
    """
    n = stack.shape[0]
    count_dtype = np.uint8 if n < 256 else np.uint16 if n < 65536 else np.uint32
    top = int(stack.max()).bit_length()
    prefix = np.zeros(stack.shape[1:], dtype=stack.dtype)
    count = np.empty(stack.shape[1:], dtype=count_dtype)
    below = np.empty(stack.shape[1:], dtype=bool)
    for bit in range(top - 1, -1, -1):
        candidate = prefix | stack.dtype.type(1 << bit)
        count[...] = 0
        for frame in stack:
            np.less(frame, candidate, out=below)
            np.add(count, below, out=count, casting="unsafe")
        np.copyto(prefix, candidate, where=count <= k)
    return prefix


def median_stack(stack: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Per-pixel median of a stack of frames.

    Parameters
    ----------
    stack : (N, rows, cols) uint8, uint16 or float ndarray
        N >= 1 frames.
    workers : int, optional
        Threads, each on a band of rows (default: the CPUs this process may use, at most 4).

    Returns
    -------
    (rows, cols) float32 ndarray
        The median over axis 0 (mean of the two middle values when N is even), intensity units.

    Examples
    --------
    >>> s = np.array([[[1, 9]], [[3, 7]], [[2, 8]], [[250, 0]]], dtype=np.uint8)
    >>> median_stack(s).tolist()
    [[2.5, 7.5]]
    """
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"expected a (N, rows, cols) stack with N >= 1, got {stack.shape}")
    if workers is None:
        workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    rows = stack.shape[1]
    if rows < 64 or workers < 2:
        return _median_rows(stack)
    # Bands of rows in parallel threads: numpy's element-wise loops release the GIL, so the
    # cores share the work (the median of one pixel never looks at another).
    bounds = np.linspace(0, rows, workers + 1).astype(int)
    out = np.empty(stack.shape[1:], np.float32)

    def band(i: int) -> None:
        out[bounds[i] : bounds[i + 1]] = _median_rows(stack[:, bounds[i] : bounds[i + 1]])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(band, range(workers)))
    return out


def _median_rows(stack: np.ndarray) -> np.ndarray:
    n = stack.shape[0]
    if stack.dtype.kind != "u":
        return np.median(stack.astype(np.float32, copy=False), axis=0).astype(np.float32)
    upper = _kth_smallest_unsigned(stack, n // 2).astype(np.float32)
    if n % 2:
        return upper
    lower = _kth_smallest_unsigned(stack, n // 2 - 1).astype(np.float32)
    return (lower + upper) * np.float32(0.5)


def samples_that_fit(reader: VideoReader, cfg: BackgroundConfig) -> int:
    """How many frames the background takes: ``cfg.n_frames``, fewer if they would not fit
    in ``cfg.max_memory_mb`` (at least 3)."""
    rows, cols = reader.shape
    frame_bytes = rows * cols * np.dtype(reader.dtype).itemsize
    fit = max(3, int(cfg.max_memory_mb * 2**20 // max(frame_bytes, 1)))
    return min(cfg.n_frames, fit)


def read_samples(
    reader: VideoReader,
    indices: np.ndarray,
    *,
    progress: Callable[[int], None] | None = None,
    keep: list | None = None,
) -> np.ndarray:
    """Read frames ``indices`` (sorted) of ``reader`` into one ``(k, rows, cols)`` stack.

    Random access (``reader[i]``) is cheap for uncompressed video but costs many frames'
    decoding per seek for compressed codecs (a seek decodes from the previous key frame). The
    first two sampled frames time a seek; when seeking to every sample would cost more than
    decoding the video up to the last sample in order, the frames are taken from one
    sequential pass instead (short compressed videos). ``progress(1)`` is called after each
    sampled frame.

    ``keep``: a list to fill with every frame from 0 to the last sample, in order, for a
    caller that would decode them all again anyway (the front end's tracking pass, when the
    whole video fits in memory): the samples are then always taken from one sequential pass,
    which decodes nothing the caller would not, and no frame is decoded twice.
    """
    rows, cols = reader.shape
    indices = np.asarray(indices, dtype=np.int64)
    stack = np.empty((len(indices), rows, cols), dtype=reader.dtype)
    k = len(indices)
    if k == 0:
        return stack
    last = int(indices[-1])
    if keep is not None:
        reached = _sequential(indices, stack, 0, iter(reader), [], progress, keep)
        if reached > last:
            return stack
        # the frames stop early (a damaged frame): nothing is kept, and the samples the pass
        # did not reach are read by seeking, as without ``keep``
        keep.clear()
        for j in np.flatnonzero(indices >= reached).tolist():
            stack[j] = reader[int(indices[j])]
            if progress is not None:
                progress(1)
        return stack
    t0 = time.perf_counter()
    head = min(2, k)
    for j in range(head):
        stack[j] = reader[int(indices[j])]
        if progress is not None:
            progress(1)
    if head == k:
        return stack
    per_seek = (time.perf_counter() - t0) / head
    it = iter(reader)  # a generator (VideoReader.__iter__)
    # Time a few frames after the first (opening the stream is a one-off cost).
    lead = [next(it)]
    t1 = time.perf_counter()
    for _ in range(3):
        try:
            lead.append(next(it))
        except StopIteration:
            break
    per_frame = (time.perf_counter() - t1) / max(len(lead) - 1, 1)
    sequential = per_frame * (last + 1)
    if per_seek * (k - head) <= sequential:
        it.close()
        for j in range(head, k):
            stack[j] = reader[int(indices[j])]
            if progress is not None:
                progress(1)
        return stack
    if _sequential(indices, stack, head, it, lead, progress, None) <= last:
        raise VideoReadError(
            f"the frames stop before frame {last} of {len(reader)} (damaged or truncated; "
            f"see the warnings: {'; '.join(reader.warnings[-2:]) or 'none'})",
            reader.source,
        )
    return stack


def _sequential(indices, stack, head, it, lead, progress, keep) -> int:
    """``stack[head:]`` from one pass of the iterator ``it`` (after the frames ``lead``
    already taken from it), up to the last sample; each frame appended to ``keep`` if given.
    Returns the number of frames the pass went through (the last sample's index + 1 when it
    got there)."""
    wanted = {int(i): j for j, i in enumerate(indices[head:], head)}
    last = int(indices[-1])
    reached = 0
    try:
        for i, frame in enumerate(itertools.chain(lead, it)):
            reached = i + 1
            if keep is not None:
                keep.append(frame)  # a reader's frames are never overwritten after handing out
            j = wanted.get(i)
            if j is not None:
                stack[j] = frame
                if progress is not None:
                    progress(1)
            if i >= last:
                break
    finally:
        it.close()
    return reached


def estimate_background(
    reader: VideoReader,
    cfg: BackgroundConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The per-pixel median of ``cfg.n_frames`` frames evenly spaced through ``reader``.

    Parameters
    ----------
    reader : VideoReader
        Any video (random access: only the sampled frames are decoded).
    cfg : BackgroundConfig
    progress : callable, optional
        Called with ``1`` after each sampled frame is read.

    Returns
    -------
    (rows, cols) float32 ndarray
        Background, intensity units of the video.
    """
    cfg = cfg or BackgroundConfig()
    indices = sample_indices(len(reader), samples_that_fit(reader, cfg))
    return median_stack(read_samples(reader, indices, progress=progress))
