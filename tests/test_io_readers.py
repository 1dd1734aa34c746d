"""Every video reader through one contract suite, plus bad inputs and property tests.

Videos are generated in ``tmp_path`` with known content: frame ``i`` is a smooth ramp shifted by
``10 * i`` grey levels, with a marker pixel ``i`` at the top-left corner and ``255 - i`` at the
bottom-right corner (so a row flip or a frame mix-up is caught). Lossless formats must return
it exactly; lossy ones (MJPG) approximately, and each decoded frame must be nearer its own
original than any other frame.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rbcflow.errors import RbcflowError, VideoReadError
from rbcflow.io.avi import jpeg_size, read_avi_layout, write_avi
from rbcflow.io.video import (
    FRAME_EXTENSIONS,
    VIDEO_EXTENSIONS,
    AviReader,
    FolderReader,
    MjpegAviReader,
    RawAviReader,
    TiffReader,
    YuvAviReader,
    find_acquisitions,
    natural_key,
    open_video,
)
from rbcflow.run_settings import InputLimits

N, H, W = 12, 24, 32
TINY = InputLimits(min_frame_side=1)  # the readers themselves read frames of any size


def pattern(i: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame ``i`` of the test videos, (h, w) uint8."""
    r, c = np.mgrid[0:h, 0:w]
    frame = (40 + 10 * i + r + c).astype(np.uint8)
    frame[0, 0] = i
    frame[-1, -1] = 255 - i
    return frame


def pattern16(i: int) -> np.ndarray:
    """16-bit frame ``i``: uses the high byte and the low byte."""
    return pattern(i).astype(np.uint16) * 257 + np.uint16(i)


def rgb_pattern(i: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame ``i`` with unequal channels."""
    g = pattern(i).astype(np.int32)
    return np.stack([g, (g * 3) % 256, 255 - g], axis=-1).astype(np.uint8)


def gray_reference(rgb: np.ndarray) -> np.ndarray:
    """Float64 reference of 0.299 R + 0.587 G + 0.114 B."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _cv2_avi(path: Path, fourcc: str, frames, fps: float) -> None:
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (W, H), True
    )
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()


@dataclass
class Case:
    path: Path
    expected: np.ndarray  # (N, H, W) reference frames (float64 for RGB)
    exact: bool  # lossless: frames must match exactly (RGB: within 1 grey level)
    fps: float | None  # the container's rate, None if it has none
    reader: type
    tolerance: float = 0.0


def make_case(kind: str, folder: Path) -> Case:
    """Write one test video of ``kind`` into ``folder``."""
    gray = np.stack([pattern(i) for i in range(N)])
    if kind == "avi-raw24":
        p = folder / "raw24.avi"
        write_avi(p, gray, fps=50.0)
        return Case(p, gray, True, 50.0, RawAviReader)
    if kind == "avi-raw8":
        p = folder / "raw8.avi"
        write_avi(p, gray, fps=50.0, bits=8)
        return Case(p, gray, True, 50.0, RawAviReader)
    if kind == "avi-raw24-colour":
        p = folder / "colour.avi"
        bgr = np.stack([rgb_pattern(i)[:, :, ::-1] for i in range(N)])
        write_avi(p, bgr, fps=50.0)
        ref = np.stack([gray_reference(rgb_pattern(i)) for i in range(N)])
        return Case(p, ref, True, 50.0, RawAviReader, tolerance=1.0)
    if kind in ("avi-mjpg", "avi-ffv1", "avi-rgba"):
        fourcc = kind[4:].upper()
        p = folder / f"{kind}.avi"
        _cv2_avi(p, fourcc, gray, 30.0)
        lossy = fourcc == "MJPG"
        reader = MjpegAviReader if lossy else AviReader
        return Case(p, gray, not lossy, 30.0, reader, tolerance=6.0 if lossy else 0.0)
    if kind in ("avi-i420", "avi-nv12", "avi-yv12"):  # native planar YUV: studio-swing luma
        from _avi_yuv import studio, write_yuv_avi

        p = write_yuv_avi(folder / f"{kind}.avi", studio(gray), kind[4:].upper(), fps=50.0)
        return Case(p, gray, True, 50.0, YuvAviReader, tolerance=1.0)
    if kind == "avi-i420-ffmpeg":  # written by FFmpeg's encoder (through OpenCV)
        p = folder / "i420 ffmpeg.avi"
        _cv2_avi(p, "I420", gray, 30.0)
        return Case(p, gray, True, 30.0, YuvAviReader, tolerance=1.0)
    if kind == "tiff8":
        p = folder / "stack8.tif"
        tifffile.imwrite(p, gray, imagej=True, metadata={"axes": "TYX", "finterval": 1 / 25})
        return Case(p, gray, True, 25.0, TiffReader)
    if kind == "tiff16":
        p = folder / "stack16.tiff"
        stack = np.stack([pattern16(i) for i in range(N)])
        tifffile.imwrite(p, stack, compression="zlib")  # plain TIFF: no rate recorded
        return Case(p, stack, True, None, TiffReader)
    if kind == "tiff-rgb":
        p = folder / "rgb.tif"
        with tifffile.TiffWriter(p) as tw:
            for i in range(N):
                tw.write(rgb_pattern(i), photometric="rgb")
        ref = np.stack([gray_reference(rgb_pattern(i)) for i in range(N)])
        return Case(p, ref, True, None, TiffReader, tolerance=1.0)
    if kind == "folder-png":
        d = folder / "png frames"
        d.mkdir()
        for i in range(N):  # frame1 .. frame12: natural order differs from plain sorting
            cv2.imwrite(str(d / f"frame{i + 1}.png"), gray[i])
        (d / "notes.txt").write_text("not a frame")
        (d / ".hidden.png").write_bytes(b"junk")
        return Case(d, gray, True, None, FolderReader)
    if kind == "folder-tiff16":
        d = folder / "tiff frames"
        d.mkdir()
        stack = np.stack([pattern16(i) for i in range(N)])
        for i in range(N):
            tifffile.imwrite(d / f"img_{i}.tif", stack[i])
        return Case(d, stack, True, None, FolderReader)
    raise ValueError(kind)


KINDS = [
    "avi-raw24",
    "avi-raw8",
    "avi-raw24-colour",
    "avi-mjpg",
    "avi-ffv1",
    "avi-rgba",
    "avi-i420",
    "avi-nv12",
    "avi-yv12",
    "avi-i420-ffmpeg",
    "tiff8",
    "tiff16",
    "tiff-rgb",
    "folder-png",
    "folder-tiff16",
]


@pytest.fixture(params=KINDS)
def case(request, tmp_path) -> Case:
    return make_case(request.param, tmp_path)


def assert_frame(case: Case, frame: np.ndarray, i: int) -> None:
    expected = case.expected[i]
    if case.exact and case.tolerance == 0:
        np.testing.assert_array_equal(frame, expected)
        return
    err = np.abs(frame.astype(np.float64) - expected)
    if case.exact:  # colour conversion: rounding only
        assert err.max() <= case.tolerance
        return
    assert err.mean() <= case.tolerance / 3, f"frame {i}: mean error {err.mean():.2f}"
    dist = np.abs(case.expected.astype(np.float64) - frame).mean(axis=(1, 2))
    assert int(np.argmin(dist)) == i, f"frame {i} decodes nearest to frame {np.argmin(dist)}"


# -- the contract ---------------------------------------------------------------------------


def test_metadata(case):
    with open_video(case.path) as video:
        assert type(video) is case.reader
        assert len(video) == N
        assert video.shape == (H, W)
        assert video.dtype == case.expected.dtype if case.exact and not case.tolerance else True
        assert video.dtype in (np.uint8, np.uint16)
        assert video.source == case.path
        if case.fps is None:
            assert video.fps == 60.0 and not video.fps_from_container
            assert video.fps_source == "default"
            assert any("frame rate" in w for w in video.warnings)
        else:
            assert video.fps == pytest.approx(case.fps)
            assert video.fps_from_container and video.fps_source == "container"
            assert video.warnings == []
        assert f"frames={N}" in repr(video)


def test_fps_override(case):
    with open_video(case.path, fps=123.5) as video:
        assert video.fps == 123.5
        assert video.fps_source == "override" and not video.fps_from_container
        assert not any("frame rate" in w for w in video.warnings)
    with pytest.raises(RbcflowError, match="frame rate"):
        open_video(case.path, fps=0)
    with open_video(case.path, default_fps=30.0) as video:
        assert video.fps == (30.0 if case.fps is None else pytest.approx(case.fps))


def test_iteration_content(case):
    with open_video(case.path) as video:
        frames = list(video)
    assert len(frames) == N
    for i, frame in enumerate(frames):
        assert frame.shape == (H, W) and frame.dtype == video.dtype
        assert frame.flags.c_contiguous
        assert_frame(case, frame, i)


def test_random_access_matches_iteration(case):
    rng = np.random.default_rng(7)
    with open_video(case.path) as video:
        frames = list(video)
        for i in rng.permutation(N):
            np.testing.assert_array_equal(video[int(i)], frames[i])
        for i in (5, 5, 6, 0, N - 1, 3):  # repeated, sequential and backward seeks
            np.testing.assert_array_equal(video.get_frame(i), frames[i])
        np.testing.assert_array_equal(video[-1], frames[-1])
        np.testing.assert_array_equal(video[-N], frames[0])
        with pytest.raises(IndexError):
            video[N]
        with pytest.raises(IndexError):
            video[-N - 1]


def test_iteration_unaffected_by_interleaved_access(case):
    with open_video(case.path) as video:
        reference = list(video)
        for i, frame in enumerate(video):
            video[(i * 7) % N]  # moves the random-access position
            np.testing.assert_array_equal(frame, reference[i])


def test_frames_are_independent_copies(case):
    with open_video(case.path) as video:
        first = video[0]
        first[:] = 0
        assert_frame(case, video[0], 0)
        it = iter(video)
        a = next(it)
        b = next(it)
        assert not np.shares_memory(a, b)
        assert_frame(case, a, 0)


def test_context_manager_closes(case):
    with open_video(case.path) as video:
        assert len(video) == N
    with pytest.raises(VideoReadError, match="closed"):
        video.get_frame(0)


# -- formats, metadata ------------------------------------------------------------------------


def test_ome_time_increment_gives_fps(tmp_path):
    p = tmp_path / "ome.ome.tif"
    stack = np.stack([pattern(i) for i in range(4)])[:, None, None]
    tifffile.imwrite(
        p,
        stack,
        ome=True,
        metadata={"axes": "TCZYX", "TimeIncrement": 20, "TimeIncrementUnit": "ms"},
    )
    with open_video(p) as video:
        assert video.fps == pytest.approx(50.0) and video.fps_source == "container"
        assert len(video) == 4


def test_imagej_single_ifd_stack(tmp_path):
    """ImageJ stacks > 4 GB keep one IFD; frames follow page 0's data, read one at a time."""
    stack = np.stack([pattern16(i) for i in range(N)])
    p = tmp_path / "big.tif"
    tifffile.imwrite(p, stack, imagej=True, truncate=True, metadata={"finterval": 0.01})
    with tifffile.TiffFile(p) as tif:
        assert len(tif.pages) == 1  # the case under test
    with open_video(p) as video:
        assert len(video) == N and video.fps == pytest.approx(100)
        np.testing.assert_array_equal(np.stack(list(video)), stack)
        np.testing.assert_array_equal(video[7], stack[7])
    cut = tmp_path / "big_cut.tif"
    cut.write_bytes(p.read_bytes()[: -stack[0].nbytes - 10])
    with open_video(cut) as video:
        assert len(video) == N - 2
        assert any("truncated" in w for w in video.warnings)
        np.testing.assert_array_equal(video[-1], stack[N - 3])


def test_mp4_container(tmp_path):
    p = tmp_path / "clip.mp4"
    gray = np.stack([pattern(i) for i in range(N)])
    writer = cv2.VideoWriter(
        str(p), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (W, H), True
    )
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for f in gray:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    with open_video(p) as video:
        assert isinstance(video, AviReader) and len(video) == N and video.fps == 24.0
        frames = list(video)
        assert len(frames) == N
        np.testing.assert_array_equal(video[N - 1], frames[-1])
        assert np.abs(frames[6].astype(float) - gray[6]).mean() < 4


def test_8bit_paletted_avi_applies_palette(tmp_path):
    """An 8-bit DIB whose palette is not the gray ramp is mapped through it."""
    p = tmp_path / "pal.avi"
    write_avi(p, [pattern(i) for i in range(3)], bits=8)
    data = bytearray(p.read_bytes())
    strf = data.find(b"strf") + 8
    palette = np.frombuffer(bytes(data[strf + 40 : strf + 40 + 1024]), np.uint8).reshape(256, 4)
    inverted = palette.copy()
    inverted[:, :3] = 255 - palette[:, :3]
    data[strf + 40 : strf + 40 + 1024] = inverted.tobytes()
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        np.testing.assert_array_equal(video[2], 255 - pattern(2))


def test_write_avi_matches_opencv_decoder_on_top_down_copy(tmp_path):
    """Our native decoder agrees with FFmpeg's on the same pixels (OpenCV reads top-down DIBs;
    bottom-up ones crash OpenCV 5.0, which is why the native reader exists)."""
    p = tmp_path / "td.avi"
    frames = [pattern(i) for i in range(4)]
    write_avi(p, [f[::-1] for f in frames])  # rows reversed on purpose ...
    data = bytearray(p.read_bytes())
    strf = data.find(b"strf") + 8
    struct.pack_into("<i", data, strf + 8, -H)  # ... and declared top-down
    p.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    with open_video(p) as video:
        assert isinstance(video, RawAviReader)
        np.testing.assert_array_equal(video[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        np.testing.assert_array_equal(video[0], frames[0])


# -- bad inputs -------------------------------------------------------------------------------


def _one_line_error(exc: pytest.ExceptionInfo, path: Path) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert str(path) in text
    return text


@pytest.mark.parametrize("suffix", [".avi", ".tif", ".mp4"])
def test_text_named_as_video(tmp_path, suffix):
    p = tmp_path / f"notes{suffix}"
    p.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoReadError) as exc:
        open_video(p)
    _one_line_error(exc, p)


@pytest.mark.parametrize("suffix", [".avi", ".tif", ".tiff", ".mkv"])
def test_random_bytes(tmp_path, suffix):
    p = tmp_path / f"noise{suffix}"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError) as exc:
        open_video(p)
    _one_line_error(exc, p)


@pytest.mark.parametrize("suffix", [".avi", ".tif"])
def test_empty_file(tmp_path, suffix):
    p = tmp_path / f"empty{suffix}"
    p.touch()
    with pytest.raises(VideoReadError, match="empty file") as exc:
        open_video(p)
    _one_line_error(exc, p)


def test_missing_unknown_and_single_image(tmp_path):
    with pytest.raises(VideoReadError, match="no such file"):
        open_video(tmp_path / "absent.avi")
    (tmp_path / "clip.xyz").write_bytes(b"x")
    with pytest.raises(VideoReadError, match="unknown video format '.xyz'"):
        open_video(tmp_path / "clip.xyz")
    cv2.imwrite(str(tmp_path / "one.png"), pattern(0))
    with pytest.raises(VideoReadError, match="single image"):
        open_video(tmp_path / "one.png")
    empty = tmp_path / "empty folder"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="no image frames"):
        open_video(empty)


def test_truncated_raw_avi(tmp_path):
    """Cut at 60 % of its bytes: read up to the last complete frame, with a warning."""
    p = tmp_path / "full.avi"
    n = 20
    write_avi(p, [pattern(i % N) for i in range(n)])
    data = p.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(0.6 * len(data))])
    lay = read_avi_layout(cut)
    assert lay.truncated and lay.claimed_frames == n
    header = read_avi_layout(p).offsets[0] - 8
    complete = (int(0.6 * len(data)) - header) // (H * W * 3 + 8)
    with open_video(cut) as video:
        assert len(video) == complete and 0 < complete < n
        assert any("truncated" in w and f"{complete} complete frames" in w for w in video.warnings)
        frames = list(video)
        assert len(frames) == complete
        for i, f in enumerate(frames):
            np.testing.assert_array_equal(f, pattern(i % N))
    head = tmp_path / "head.avi"
    head.write_bytes(data[: header + 100])  # cut inside the first frame
    with pytest.raises(VideoReadError, match="no (readable|complete) frame"):
        open_video(head)


def test_truncated_mjpg_avi(tmp_path):
    p = tmp_path / "full.avi"
    _cv2_avi(p, "MJPG", [pattern(i % N) for i in range(30)], 30.0)
    data = p.read_bytes()
    cut = tmp_path / "cut mjpg.avi"
    cut.write_bytes(data[: int(0.6 * len(data))])
    with open_video(cut) as video:
        assert isinstance(video, MjpegAviReader)
        assert 10 < len(video) < 30
        assert any("truncated" in w for w in video.warnings)
        frames = list(video)
        assert len(frames) == len(video)
        np.testing.assert_array_equal(video[-1], frames[-1])
        assert np.abs(frames[-1].astype(float) - pattern((len(video) - 1) % N)).mean() < 2


def test_mjpeg_reader_decodes_luma_like_ffmpeg_but_unbiased(tmp_path):
    """The native MJPG reader (JPEG luma straight to gray) and OpenCV's FFmpeg decoder
    (YUV -> BGR -> gray) see the same frames; the luma path is the closer to the frames that
    were encoded (FFmpeg's round trip shifts them by about one gray level)."""
    p = tmp_path / "m.avi"
    frames = [
        np.clip(pattern(i, 96, 128).astype(int) // 2 + 60, 0, 255).astype(np.uint8)
        for i in range(8)
    ]
    writer = cv2.VideoWriter(
        str(p), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (128, 96), True
    )
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    via_ffmpeg = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        via_ffmpeg.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(float))
    cap.release()
    with open_video(p) as video:
        assert isinstance(video, MjpegAviReader) and len(video) == len(via_ffmpeg) == 8
        ours = [f.astype(float) for f in video]
        np.testing.assert_array_equal(video[5], ours[5])  # random access = iteration
    for mine, theirs, truth in zip(ours, via_ffmpeg, frames, strict=True):
        assert np.abs(mine - theirs).max() <= 4
        assert abs(float(np.mean(mine - truth))) <= abs(float(np.mean(theirs - truth))) + 0.05
        assert abs(float(np.mean(mine - truth))) < 0.5


def _mjpg_file(tmp_path: Path, n: int = 10) -> tuple[Path, list[np.ndarray]]:
    p = tmp_path / "clip.avi"
    frames = [pattern(i % N) for i in range(n)]
    _cv2_avi(p, "MJPG", frames, 30.0)
    return p, frames


def test_mjpeg_damaged_frame_midway(tmp_path, monkeypatch):
    """A frame chunk whose JPEG header is destroyed: imdecode refuses it, FFmpeg's MJPEG error
    concealment decodes it (as files were read before the native reader), a warning names
    it, and the frames around it are intact. If FFmpeg fails too, iteration stops before it
    and random access is a one-line error naming the frame."""
    p, frames = _mjpg_file(tmp_path)
    lay = read_avi_layout(p)
    data = bytearray(p.read_bytes())
    bad = 6
    data[int(lay.offsets[bad]) : int(lay.offsets[bad]) + 16] = b"\0" * 16  # SOI and header gone
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        assert isinstance(video, MjpegAviReader) and len(video) == 10
        got = list(video)
        assert len(got) == 10 and all(f.shape == (H, W) for f in got)
        assert any("1 damaged frame(s) (6)" in w for w in video.warnings), video.warnings
        for i in (bad - 1, bad + 1):
            assert np.abs(got[i].astype(float) - frames[i]).mean() < 2
        assert video[bad].shape == (H, W)
    monkeypatch.setattr(MjpegAviReader, "_conceal", lambda self, i, caps: None)
    with open_video(p) as video:
        got = list(video)
        assert len(got) == bad
        assert any(f"frame {bad} cannot be decoded; stopped there" in w for w in video.warnings)
        with pytest.raises(VideoReadError, match=f"frame {bad} cannot be decoded") as exc:
            video[bad]
        _one_line_error(exc, p)
        # random access reaches the frames after the damaged one
        assert np.abs(video[bad + 1].astype(float) - frames[bad + 1]).mean() < 2


def test_mjpeg_absurd_size_in_jpeg_header_is_refused(tmp_path):
    """A JPEG header claiming another frame size is damage: refused before decoding (the
    decoder would otherwise allocate what the header claims)."""
    p, _ = _mjpg_file(tmp_path, 4)
    lay = read_avi_layout(p)
    data = bytearray(p.read_bytes())
    chunk = bytes(data[int(lay.offsets[2]) : int(lay.offsets[2] + lay.sizes[2])])
    sof = chunk.find(b"\xff\xc0")
    assert sof > 0
    at = int(lay.offsets[2]) + sof + 5
    data[at : at + 4] = b"\xff\xf0\xff\xf0"  # 65520 x 65520
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        # refused by our decoder, and by FFmpeg's fallback (it checks the size too)
        assert len(list(video)) == 2
        assert any("frame 2 cannot be decoded; stopped there" in w for w in video.warnings)
        with pytest.raises(VideoReadError, match="frame 2 cannot be decoded"):
            video[2]


def test_mjpeg_first_chunk_not_jpeg_is_a_clear_error(tmp_path):
    """An AVI that says MJPG but holds no JPEG: neither our reader nor FFmpeg reads it, and
    the error is one line naming the file."""
    p, _ = _mjpg_file(tmp_path, 3)
    lay = read_avi_layout(p)
    data = bytearray(p.read_bytes())
    for off, size in zip(lay.offsets, lay.sizes, strict=True):
        data[int(off) : int(off + size)] = b"\x55" * int(size)
    p.write_bytes(bytes(data))
    with pytest.raises(VideoReadError) as exc:
        open_video(p)
    _one_line_error(exc, p)


def test_jpeg_size_walks_markers():
    ok, buf = cv2.imencode(".jpg", np.zeros((37, 53), np.uint8))
    data = buf.tobytes()
    assert jpeg_size(data) == (37, 53)
    assert jpeg_size(data[:20]) is None  # cut before the frame header
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x08") is None  # scan before any frame header
    assert jpeg_size(b"") is None


def test_tiff_with_damaged_page(tmp_path):
    p = tmp_path / "damaged.tif"
    stack = np.stack([pattern(i) for i in range(N)])
    tifffile.imwrite(p, stack, compression="zlib")
    with tifffile.TiffFile(p) as tif:
        offset = tif.pages[3].dataoffsets[0]
    data = bytearray(p.read_bytes())
    data[offset : offset + 8] = b"\xff" * 8
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        assert len(video) == N
        np.testing.assert_array_equal(video[2], stack[2])
        np.testing.assert_array_equal(video[4], stack[4])
        with pytest.raises(VideoReadError, match="page 3 cannot be read") as exc:
            video[3]
        _one_line_error(exc, p)
        with pytest.raises(VideoReadError, match="page 3"):
            list(video)
    # the first page damaged: refused when opened
    with tifffile.TiffFile(p) as tif:
        offset0 = tif.pages[0].dataoffsets[0]
    data[offset0 : offset0 + 8] = b"\xff" * 8
    p.write_bytes(bytes(data))
    with pytest.raises(VideoReadError, match="page 0"):
        open_video(p)


def test_truncated_tiff(tmp_path):
    p = tmp_path / "cut.tif"
    stack = np.stack([pattern(i) for i in range(N)])
    tifffile.imwrite(p, stack)
    data = p.read_bytes()
    p.write_bytes(data[: int(0.6 * len(data))])
    with open_video(p) as video:
        assert 1 <= len(video) < N
        assert any("damaged or truncated" in w for w in video.warnings)
        for i, f in enumerate(video):
            np.testing.assert_array_equal(f, stack[i])


def test_tiff_unsupported_sample_type(tmp_path):
    p = tmp_path / "float.tif"
    tifffile.imwrite(p, np.zeros((3, 4, 5), np.float32), photometric="minisblack")
    with pytest.raises(VideoReadError, match="float32"):
        open_video(p)


def test_folder_with_mixed_sizes(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / f"f{i}.png"), pattern(i))
    cv2.imwrite(str(d / "f4.png"), pattern(4, h=H + 2))
    with open_video(d) as video:
        assert len(video) == 5  # checked lazily: opening reads one frame
        np.testing.assert_array_equal(video[3], pattern(3))
        with pytest.raises(VideoReadError) as exc:
            video[4]
    text = _one_line_error(exc, d / "f4.png")
    assert f"{W}x{H + 2}" in text and f"{W}x{H}" in text


def test_folder_with_unreadable_frame(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"f{i}.png"), pattern(i))
    (d / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with open_video(d) as video:
        with pytest.raises(VideoReadError, match="not a readable image") as exc:
            video[3]
    _one_line_error(exc, d / "f3.png")


@pytest.mark.parametrize(("rate", "scale", "us"), [(0, 0, 0), (10**9, 1, 1), (1, 10**6, 0)])
def test_missing_or_absurd_fps(tmp_path, rate, scale, us):
    p = tmp_path / "nofps.avi"
    write_avi(p, [pattern(i) for i in range(3)])
    data = bytearray(p.read_bytes())
    avih = data.find(b"avih") + 8
    struct.pack_into("<I", data, avih, us)
    strh = data.find(b"strh") + 8
    struct.pack_into("<II", data, strh + 20, scale, rate)
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        assert video.fps == 60.0 and video.fps_source == "default"
        assert not video.fps_from_container
        assert any("frame rate" in w for w in video.warnings)
    with open_video(p, fps=25) as video:
        assert video.fps == 25.0 and video.warnings == []


@pytest.mark.parametrize("name", ["my vidéo µ 1.avi", "Блок данных (2).avi", "空 白.tif"])
def test_names_with_spaces_and_non_ascii(tmp_path, name):
    folder = tmp_path / "dossier été"
    folder.mkdir()
    p = folder / name
    frames = [pattern(i) for i in range(5)]
    if p.suffix == ".tif":
        tifffile.imwrite(p, np.stack(frames))
    else:
        _cv2_avi(p, "FFV1", frames, 60.0)
    with open_video(p) as video:
        assert len(video) == 5
        np.testing.assert_array_equal(video[4], frames[4])
    assert find_acquisitions([tmp_path]) == [p]


def test_non_ascii_frame_folder(tmp_path):
    d = tmp_path / "images ü 2"
    d.mkdir()
    for i in range(3):
        (d / f"bild ä {i}.png").write_bytes(cv2.imencode(".png", pattern(i))[1].tobytes())
    with open_video(d) as video:
        np.testing.assert_array_equal(
            np.stack(list(video)), np.stack([pattern(i) for i in range(3)])
        )


# -- natural order, discovery -----------------------------------------------------------------


def test_natural_key():
    names = ["f10.png", "f2.png", "f1.png", "F3.png", "f02b.png", "g.png", "f.png"]
    assert sorted(names, key=natural_key) == [
        "f.png",
        "f1.png",
        "f2.png",
        "f02b.png",
        "F3.png",
        "f10.png",
        "g.png",
    ]
    # digits versus text at the same position never raise
    assert sorted(["a1", "1a", "a", "1"], key=natural_key) == ["1", "1a", "a", "a1"]


def _touch_frames(folder: Path, n: int, ext: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if ext == ".png":
            cv2.imwrite(str(folder / f"frame{i}.png"), pattern(i))
        else:
            tifffile.imwrite(folder / f"frame{i}{ext}", pattern(i))


def test_find_acquisitions_tree(tmp_path):
    root = tmp_path / "data"
    (root / "day2").mkdir(parents=True)
    (root / "day10").mkdir()
    write_avi(root / "day10" / "run10.avi", [pattern(0)] * 2)
    write_avi(root / "day10" / "run2.avi", [pattern(0)] * 2)
    cv2.imwrite(str(root / "day10" / "snapshot.png"), pattern(0))  # beside videos: skipped
    tifffile.imwrite(
        root / "day2" / "stack.tif",
        np.stack([pattern(i) for i in range(3)]),
        photometric="minisblack",
    )
    (root / "day2" / "readme.txt").write_text("unknown files are ignored")
    (root / "day2" / ".hidden.avi").write_bytes(b"hidden")
    _touch_frames(root / "day2" / "frames", 3)
    _touch_frames(root / "tiff frames", 3, ".tif")  # single-page TIFFs: a frame folder
    _touch_frames(root / "lonely", 1)  # one image alone is not an acquisition
    _touch_frames(root / ".cache", 3)  # hidden folder
    # a sequence set (our own output) is not a frame folder
    _touch_frames(root / "sequences" / "img", 3)
    (root / "sequences" / "dataset.csv").write_text(",sequence_name,label,size\n")
    # a symlink loop and a second name for a folder and a file
    os.symlink(root, root / "day2" / "loop")
    os.symlink(root / "day10", root / "alias")
    os.symlink(root / "day10" / "run2.avi", root / "day2" / "link.avi")
    found = find_acquisitions([root])
    rel = [p.relative_to(root).as_posix() for p in found]
    assert rel == [
        "alias/run2.avi",
        "alias/run10.avi",
        "day2/frames",
        "day2/stack.tif",
        "tiff frames",
    ]
    assert len({os.path.realpath(p) for p in found}) == len(found)
    # given twice, and through a file and its folder: still once each
    again = find_acquisitions([root / "day10", root / "day10" / "run2.avi", root])
    assert [p.name for p in again[:2]] == ["run2.avi", "run10.avi"]
    assert len(again) == 5


def test_find_acquisitions_explicit_paths(tmp_path):
    odd = tmp_path / "notes.docx"
    odd.write_text("x")
    missing = tmp_path / "gone.avi"
    frames = tmp_path / "frames"
    _touch_frames(frames, 1)  # named explicitly: one frame is enough to be an acquisition
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_acquisitions([odd, missing, frames, empty]) == [odd, missing, frames, empty]
    with pytest.raises(VideoReadError, match="unknown video format"):
        open_video(odd)


def test_extension_constants():
    for ext in VIDEO_EXTENSIONS + FRAME_EXTENSIONS:
        assert ext.startswith(".") and ext == ext.lower()
    assert {".avi", ".tif", ".tiff"} <= set(VIDEO_EXTENSIONS)
    assert {".png", ".tif", ".tiff"} <= set(FRAME_EXTENSIONS)


# -- bounded memory ---------------------------------------------------------------------------


def test_streaming_does_not_hold_frames(tmp_path):
    """Iterating keeps no reference to past frames (weakrefs die), whatever the reader."""
    import gc
    import weakref

    p = tmp_path / "long.avi"
    write_avi(p, (pattern(i % N) for i in range(200)))
    with open_video(p) as video:
        refs = []
        for frame in video:
            refs.append(weakref.ref(frame))
        del frame
        gc.collect()
        assert sum(r() is not None for r in refs) == 0


# -- property tests (issue 5) -------------------------------------------------------------------


def _reference_files(folder: Path) -> dict[str, bytes]:
    avi = folder / "ref.avi"
    write_avi(avi, [pattern(i, 6, 8) for i in range(3)])
    tif = folder / "ref.tif"
    tifffile.imwrite(
        tif,
        np.stack([pattern(i, 6, 8) for i in range(3)]),
        compression="zlib",
        photometric="minisblack",
    )
    png = cv2.imencode(".png", pattern(0, 6, 8))[1].tobytes()
    return {".avi": avi.read_bytes(), ".tif": tif.read_bytes(), ".png": png}


_REFS: dict[str, bytes] = {}


def _refs(tmp_path_factory) -> dict[str, bytes]:
    if not _REFS:
        _REFS.update(_reference_files(tmp_path_factory.mktemp("refs")))
    return _REFS


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[: int(cut * len(buf))]
    return bytes(buf)


def _exercise(path: Path) -> None:
    """Open and read everything: only VideoReadError (or RbcflowError) may escape."""
    try:
        with open_video(path, limits=TINY) as video:
            assert len(video) >= 1
            assert len(video.shape) == 2 and video.dtype in (np.uint8, np.uint16)
            for frame in video:
                assert frame.shape == video.shape and frame.dtype == video.dtype
            video[-1]
        event("opened and read")
    except VideoReadError:
        event("VideoReadError")


_bytes_or_mutation = st.one_of(
    st.tuples(st.just("raw"), st.binary(max_size=2000), st.none(), st.none()),
    st.tuples(
        st.just("mutated"),
        st.none(),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
        st.none() | st.floats(0.0, 1.0),
    ),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.sampled_from([".avi", ".tif", ".png"]), spec=_bytes_or_mutation)
def test_arbitrary_bytes_give_reader_or_video_read_error(tmp_path_factory, suffix, spec):
    kind, raw, edits, cut = spec
    data = raw if kind == "raw" else _mutate(_refs(tmp_path_factory)[suffix], edits, cut)
    folder = tmp_path_factory.mktemp("fuzz")
    if suffix == ".png":  # a frame, inside a frame folder
        cv2.imwrite(str(folder / "a0.png"), pattern(0, 6, 8))
        (folder / "a1.png").write_bytes(data)
        _exercise(folder)
    else:
        path = folder / f"input{suffix}"
        path.write_bytes(data)
        _exercise(path)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stack=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16]),
        shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9),
    ),
    compression=st.sampled_from([None, "zlib"]),
)
def test_arbitrary_arrays_round_trip_through_tiff(tmp_path_factory, stack, compression):
    path = tmp_path_factory.mktemp("rt") / "stack.tif"
    with tifffile.TiffWriter(path) as tw:  # one page per frame, as cameras write stacks
        for frame in stack:
            tw.write(frame, compression=compression, photometric="minisblack")
    with open_video(path, limits=TINY) as video:
        assert len(video) == stack.shape[0]
        assert video.dtype == stack.dtype
        np.testing.assert_array_equal(np.stack(list(video)), stack)
        np.testing.assert_array_equal(video[-1], stack[-1])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stack=hnp.arrays(
        dtype=np.uint8, shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9)
    ),
    bits=st.sampled_from([8, 24]),
)
def test_arbitrary_arrays_round_trip_through_avi(tmp_path_factory, stack, bits):
    path = tmp_path_factory.mktemp("rt") / "video.avi"
    write_avi(path, stack, bits=bits)
    with open_video(path, limits=TINY) as video:
        np.testing.assert_array_equal(np.stack(list(video)), stack)
