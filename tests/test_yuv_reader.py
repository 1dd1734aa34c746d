"""The native planar YUV 4:2:0 AVI reader beyond the contract suite (tests/test_io_readers.py):
odd frame sizes, truncated and damaged files, the luma mapping and its agreement with the
other readers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _avi_yuv import studio, write_yuv_avi

from rbcflow.errors import VideoReadError
from rbcflow.io.avi import AviReader, YuvAviReader, read_avi_layout, write_avi
from rbcflow.io.avi.yuv import studio_to_full_lut, yuv420_frame_bytes
from rbcflow.io.video import RawAviReader, open_video

FOURCCS = ["I420", "IYUV", "YV12", "NV12", "NV21"]


def grey(i: int, h: int, w: int) -> np.ndarray:
    """Frame ``i``: a ramp with corner markers (a flip, a shift or a frame mix-up shows)."""
    r, c = np.mgrid[0:h, 0:w]
    f = (30 + 7 * i + 2 * r + 3 * c) % 200 + 20
    f[0, 0], f[-1, -1], f[0, -1] = 5 * i, 250 - i, 128
    return f.astype(np.uint8)


def test_lut_is_bt601_studio_swing():
    lut = studio_to_full_lut()
    y = np.arange(256)
    assert lut.dtype == np.uint8 and lut[16] == 0 and lut[235] == 255
    assert (lut[:17] == 0).all() and (lut[235:] == 255).all()  # footroom, headroom clipped
    inside = (y >= 16) & (y <= 235)
    assert np.abs(lut[inside] - (y[inside] - 16) * 255 / 219).max() <= 0.5
    g = np.arange(256)
    assert np.abs(lut[studio(g)].astype(int) - g).max() <= 1  # grey -> Y -> grey


@pytest.mark.parametrize("fourcc", FOURCCS)
@pytest.mark.parametrize(("h", "w"), [(21, 37), (9, 8), (8, 11), (16, 9)])
def test_odd_sizes_and_every_layout_read_the_luma_only(tmp_path, fourcc, h, w):
    rng = np.random.default_rng(h * w)
    lumas = [rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(4)]
    chromas = [rng.integers(0, 256, (2, (h + 1) // 2, (w + 1) // 2), np.uint8) for _ in range(4)]
    p = write_yuv_avi(tmp_path / f"{fourcc}.avi", lumas, fourcc, chromas=chromas)
    assert read_avi_layout(p).sizes[0] == yuv420_frame_bytes(w, h)
    lut = studio_to_full_lut()
    with open_video(p) as video:
        assert type(video) is YuvAviReader and video.shape == (h, w) and len(video) == 4
        assert video.warnings == []
        for i, frame in enumerate(video):  # exactly the table applied to Y: chroma ignored
            np.testing.assert_array_equal(frame, lut[lumas[i]])
        np.testing.assert_array_equal(video[2], lut[lumas[2]])


def test_rows_are_top_down_whatever_the_sign_of_the_height(tmp_path):
    frames = [studio(grey(i, 9, 13)) for i in range(3)]
    for sign in (1, -1):
        p = write_yuv_avi(tmp_path / f"h{sign}.avi", frames, "I420", height_sign=sign)
        with open_video(p) as video:
            assert video.shape == (9, 13)
            assert abs(int(video[1][0, 0]) - 5) <= 1 and abs(int(video[1][-1, -1]) - 249) <= 1


def test_truncated_file_reads_the_complete_frames(tmp_path):
    h, w, n = 21, 37, 20
    p = write_yuv_avi(tmp_path / "full.avi", [studio(grey(i, h, w)) for i in range(n)])
    data = p.read_bytes()
    first = int(read_avi_layout(p).offsets[0])
    size = yuv420_frame_bytes(w, h)
    cut_at = first + 7 * (size + 8) + size // 3  # inside frame 7's data (chunks are 8 + size)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:cut_at])
    with open_video(cut) as video:
        assert len(video) == 7
        assert any("truncated" in m and "7 complete frames" in m for m in video.warnings)
        frames = list(video)
        assert len(frames) == 7
        for i, f in enumerate(frames):
            assert np.abs(f.astype(int) - grey(i, h, w)).max() <= 1
    head = tmp_path / "head.avi"
    head.write_bytes(data[: first + 10])  # cut inside the first frame
    with pytest.raises(VideoReadError, match="no (readable|complete) frame"):
        open_video(head)


def test_damaged_chunk_midway_ends_the_video_with_a_warning(tmp_path):
    h, w = 10, 12
    lumas = [studio(grey(i, h, w)) for i in range(6)]
    p = write_yuv_avi(tmp_path / "damaged.avi", lumas, "NV12", cut_chunk={4: w * h - 1})
    with open_video(p) as video:
        assert len(video) == 4
        assert any("frame 4 is damaged" in m for m in video.warnings)
        assert [int(f[0, 0]) for f in video] == [0, 5, 10, 15]
    first_bad = write_yuv_avi(tmp_path / "bad0.avi", lumas, "I420", cut_chunk={0: 3})
    with pytest.raises(VideoReadError, match="no readable frame") as err:
        open_video(first_bad)
    assert str(first_bad) in str(err.value) and "\n" not in str(err.value)


def test_other_fourcc_refused_and_closed_reader(tmp_path):
    raw = tmp_path / "raw.avi"
    write_avi(raw, [grey(0, 8, 8)] * 2)
    with pytest.raises(VideoReadError, match="not planar YUV"):
        YuvAviReader(raw)
    p = write_yuv_avi(tmp_path / "a.avi", [studio(grey(0, 8, 8))] * 2)
    video = YuvAviReader(p)
    video.close()
    with pytest.raises(VideoReadError, match="closed"):
        video[0]


def test_grey_values_agree_with_the_rgb_reader_and_ffmpeg(tmp_path):
    """The same grey frames written as the lab camera writes them (24-bit DIB, read by
    RawAviReader) and as I420 by FFmpeg's encoder (through OpenCV): the native reader is within
    one grey level of the RGB reader; OpenCV's own I420 path (FFmpeg decoding to BGR, then
    BGR2GRAY) is further off. Odd widths are rounded down to even by OpenCV's writer."""
    h, w = 48, 64
    frames = [grey(i, h, w) for i in range(6)]
    rgb, yuv = tmp_path / "rgb.avi", tmp_path / "yuv.avi"
    write_avi(rgb, frames, fps=30.0)
    writer = cv2.VideoWriter(str(yuv), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"I420"), 30, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    with open_video(rgb) as a, open_video(yuv) as b, AviReader(yuv) as c:
        assert type(a) is RawAviReader and type(b) is YuvAviReader
        ra, rb, rc = (np.stack(list(v)).astype(int) for v in (a, b, c))
    assert np.abs(ra - np.stack(frames)).max() == 0
    native = np.abs(rb - ra)
    via_opencv = np.abs(rc - ra)
    assert native.max() <= 1, native.max()
    assert native.mean() < via_opencv.mean() and via_opencv.max() <= 4
