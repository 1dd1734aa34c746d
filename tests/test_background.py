"""Median background: sample choice and exact medians."""

from __future__ import annotations

import numpy as np
import pytest
from _frontend_util import ArrayReader

from rbcflow.config import BackgroundConfig
from rbcflow.frontend.background import (
    estimate_background,
    median_stack,
    sample_indices,
    samples_that_fit,
)


def test_sample_indices_even_spacing_and_short_videos():
    assert sample_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_indices(1000, 100)[[0, -1]].tolist() == [0, 999]
    assert len(sample_indices(1000, 100)) == 100
    assert sample_indices(5, 100).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(0, 100).tolist() == []
    assert sample_indices(7, 1).tolist() == [3]


def test_median_stack_exact_small():
    s = np.array([[[1, 9]], [[3, 7]], [[2, 8]], [[250, 0]]], dtype=np.uint8)
    out = median_stack(s)
    assert out.dtype == np.float32
    assert out.tolist() == [[2.5, 7.5]]
    assert median_stack(s[:3]).tolist() == [[2.0, 8.0]]
    assert median_stack(s[:1]).tolist() == [[1.0, 9.0]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_median_stack_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    hi = 256 if dtype == np.uint8 else 65536
    stack = rng.integers(0, hi, size=(n, 9, 11)).astype(dtype)
    if dtype == np.float32:
        stack = stack + rng.random(stack.shape).astype(np.float32)
    ref = np.median(stack.astype(np.float64), axis=0)
    np.testing.assert_allclose(median_stack(stack), ref, rtol=1e-6)


def test_median_stack_rejects_empty():
    with pytest.raises(ValueError):
        median_stack(np.zeros((0, 3, 3), np.uint8))


def test_background_removes_moving_cells_exactly():
    # A static scene with a gradient; a dark square crosses it, covering each pixel in fewer
    # than half of the frames: the median is the static scene exactly.
    static = (100 + np.arange(40)[None, :] // 2 + np.arange(30)[:, None] // 3).astype(np.uint8)
    frames = []
    for t in range(20):
        f = static.copy()
        f[10:16, 2 * t : 2 * t + 6] = 20
        frames.append(f)
    bg = estimate_background(ArrayReader(frames), BackgroundConfig(n_frames=100))
    np.testing.assert_array_equal(bg, static.astype(np.float32))


def test_background_samples_bounded_by_memory():
    reader = ArrayReader(lambda i: np.zeros((1024, 1024), np.uint8), n=10_000)
    assert samples_that_fit(reader, BackgroundConfig(n_frames=100, max_memory_mb=400)) == 100
    assert samples_that_fit(reader, BackgroundConfig(n_frames=100, max_memory_mb=10)) == 10
    assert samples_that_fit(reader, BackgroundConfig(n_frames=100, max_memory_mb=1)) == 3


class _SlowSeekReader(ArrayReader):
    """Random access costs 40 ms (a compressed codec seeking), iteration is free."""

    seeks = 0

    def get_frame(self, i):
        import time

        self.seeks += 1
        time.sleep(0.04)
        return super().get_frame(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self._get(i)


def test_samples_taken_sequentially_when_seeking_is_dear():
    from rbcflow.frontend.background import read_samples

    frames = [np.full((4, 5), i, np.uint8) for i in range(60)]
    idx = sample_indices(60, 10)
    calls = []
    reader = _SlowSeekReader(frames)
    slow = read_samples(reader, idx, progress=calls.append)
    assert reader.seeks == 2  # two timed seeks, then one sequential pass
    assert [int(f[0, 0]) for f in slow] == idx.tolist()
    assert sum(calls) == 10
    fast = read_samples(ArrayReader(frames), idx)
    np.testing.assert_array_equal(slow, fast)


class _StopsEarlyReader(_SlowSeekReader):
    """As _SlowSeekReader, but its frames stop at frame 30 (a damaged frame) with a warning."""

    def __iter__(self):
        for i in range(30):
            yield self._get(i)
        self.warnings.append("frame 30 cannot be decoded; stopped there")


def test_sequential_samples_of_a_video_that_stops_early_fail_clearly():
    from rbcflow.errors import VideoReadError
    from rbcflow.frontend.background import read_samples

    reader = _StopsEarlyReader([np.full((4, 5), i, np.uint8) for i in range(60)])
    with pytest.raises(VideoReadError, match="stop before frame 59 of 60.*frame 30 cannot"):
        read_samples(reader, sample_indices(60, 10))


def test_kept_frames_come_from_one_sequential_pass():
    # With ``keep`` (the front end will track every frame anyway) nothing is seeked: one pass
    # in order gives the samples and every frame up to the last sample, as seeking would.
    from rbcflow.frontend.background import read_samples

    frames = [np.full((4, 5), i, np.uint8) for i in range(60)]
    idx = sample_indices(60, 10)
    reader, kept, calls = _SlowSeekReader(frames), [], []
    got = read_samples(reader, idx, progress=calls.append, keep=kept)
    assert reader.seeks == 0
    assert [int(f[0, 0]) for f in kept] == list(range(60))
    np.testing.assert_array_equal(got, read_samples(ArrayReader(frames), idx))
    assert sum(calls) == 10


def test_kept_frames_of_a_video_that_stops_early_fall_back_to_seeking():
    # A damaged frame ends the sequential pass: nothing is kept, and the samples after it are
    # read by seeking as without ``keep`` (the damaged frame itself is no sample here), so the
    # background is the same and the tracking pass reads the video itself (and stops there).
    from rbcflow.frontend.background import read_samples

    frames = [np.full((4, 5), i, np.uint8) for i in range(60)]
    idx = sample_indices(60, 10)
    reader, kept, calls = _StopsEarlyReader(frames), [], []
    got = read_samples(reader, idx, progress=calls.append, keep=kept)
    assert kept == []
    np.testing.assert_array_equal(got, read_samples(ArrayReader(frames), idx))
    assert sum(calls) == 10
    assert "frame 30 cannot be decoded; stopped there" in reader.warnings
