"""Inputs that declare more than they hold, one wrong header field, compressed stacks, and
messages free of library text (issue 14): each finding's reproducer, made small."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from rbcflow.errors import VideoReadError
from rbcflow.io.avi import read_avi_layout, write_avi
from rbcflow.io.limits import FrameLimitError, image_header, jpeg_declared_sizes
from rbcflow.io.video import MjpegAviReader, open_video

H, W = 24, 32
RAW_TEXT = ("OpenCV(", "Error:", "error:", "Exception", "Traceback", "tifffile", ".cpp")


def frame(i: int, h: int = H, w: int = W) -> np.ndarray:
    r, c = np.mgrid[0:h, 0:w]
    return (40 + 4 * i + r + c).astype(np.uint8)


def mjpg(path: Path, n: int = 8) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    for i in range(n):
        writer.write(cv2.cvtColor(frame(i), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def clean_message(exc: pytest.ExceptionInfo, path: Path) -> str:
    text = str(exc.value)
    assert "\n" not in text and str(path) in text
    assert not any(t in text for t in RAW_TEXT), text
    return text


def patch_sof(data: bytearray, start: int, end: int, rows: int, cols: int) -> None:
    at = data.find(b"\xff\xc0", start, end)
    assert at > 0
    struct.pack_into(">HH", data, at + 5, rows, cols)


def test_mjpg_frames_declaring_16383_squared(tmp_path):
    """Finding: an MJPG whose frames declare 16383x16383 (6 MB file) peaked at 6.9 GB."""
    p = mjpg(tmp_path / "bomb.avi")
    lay = read_avi_layout(p)
    data = bytearray(p.read_bytes())
    for off, size in zip(lay.offsets, lay.sizes, strict=True):
        patch_sof(data, int(off), int(off + size), 16383, 16383)
    p.write_bytes(bytes(data))
    with pytest.raises(FrameLimitError) as exc:
        open_video(p)
    assert "16383x16383" in clean_message(exc, p)


def test_one_mjpg_frame_declaring_another_size_is_not_concealed(tmp_path, monkeypatch):
    """A later frame declaring a huge size is damaged: never handed to FFmpeg's concealment."""
    p = mjpg(tmp_path / "one.avi")
    lay = read_avi_layout(p)
    data = bytearray(p.read_bytes())
    patch_sof(data, int(lay.offsets[3]), int(lay.offsets[3] + lay.sizes[3]), 16383, 16383)
    p.write_bytes(bytes(data))
    assert (16383, 16383) in jpeg_declared_sizes(bytes(data[int(lay.offsets[3]) :]))
    opened = []
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: opened.append(a) or None)
    with open_video(p) as video:
        assert isinstance(video, MjpegAviReader)
        assert len(list(video)) == 3
        assert any("frame 3 cannot be decoded" in w for w in video.warnings)
    assert opened == []


def _png_declaring(rows: int, cols: int) -> bytes:
    png = bytearray(cv2.imencode(".png", frame(0))[1].tobytes())
    struct.pack_into(">II", png, 16, cols, rows)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_png_frames_declaring_16384_squared(tmp_path):
    """Finding: ten 16384^2 PNGs (2.6 MB) peaked at 6.2 GB: the header is read first."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(10):
        (folder / f"f{i}.png").write_bytes(_png_declaring(16384, 16384))
    assert image_header(_png_declaring(16384, 16384)) == (16384, 16384, 1, 1)
    with pytest.raises(FrameLimitError) as exc:
        open_video(folder)
    assert "16384x16384" in clean_message(exc, folder / "f0.png")


def _patch_tiff_size(path: Path, rows: int, cols: int) -> None:
    """Rewrite ImageWidth/ImageLength of every page (classic or BigTIFF, little-endian)."""
    data = bytearray(path.read_bytes())
    big = data[2] == 43
    ifd = struct.unpack_from("<Q" if big else "<I", data, 8 if big else 4)[0]
    while ifd:
        n = struct.unpack_from("<Q" if big else "<H", data, ifd)[0]
        first, size = ifd + (8 if big else 2), 20 if big else 12
        for k in range(n):
            e = first + k * size
            tag, typ = struct.unpack_from("<HH", data, e)
            if tag in (256, 257):
                value = cols if tag == 256 else rows
                struct.pack_into("<Q" if big else "<I", data, e + (12 if big else 8), 0)
                fmt = {3: "<H", 4: "<I", 16: "<Q"}[typ]
                struct.pack_into(fmt, data, e + (12 if big else 8), value)
        ifd = struct.unpack_from("<Q" if big else "<I", data, first + n * size)[0]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("side", "bigtiff"), [(16384, False), (60000, True)])
def test_tiff_pages_declaring_huge_sizes(tmp_path, side, bigtiff):
    """Finding: a ten-page zlib TIFF of 16384^2 pages peaked at 6.2 GB, a 60000^2 BigTIFF at
    3.8 GB: the page's declared size is refused before it is decoded."""
    p = tmp_path / "bomb.tif"
    with tifffile.TiffWriter(p, bigtiff=bigtiff) as tw:
        for i in range(10):
            tw.write(frame(i), compression="zlib", photometric="minisblack")
    _patch_tiff_size(p, side, side)
    with pytest.raises(FrameLimitError) as exc:
        open_video(p)
    assert f"{side}x{side}" in clean_message(exc, p)


def test_one_pixel_frames(tmp_path):
    """Finding: a frame declaring 1x1 ended in raw OpenCV text not naming the file."""
    p = tmp_path / "dot.avi"
    write_avi(p, [np.full((1, 1), i, np.uint8) for i in range(10)])
    with pytest.raises(FrameLimitError) as exc:
        open_video(p)
    assert "1x1 pixels are too small" in clean_message(exc, p)


@pytest.mark.parametrize("compression", ["lzw", "jpeg", "zstd"])
def test_compressed_tiff_stacks_read(tmp_path, compression):
    """Finding: LZW-, JPEG- and zstd-compressed stacks always failed (no imagecodecs)."""
    p = tmp_path / f"{compression}.tif"
    frames = np.stack([frame(i) for i in range(6)])
    with tifffile.TiffWriter(p) as tw:
        for f in frames:
            tw.write(f, compression=compression, photometric="minisblack")
    with open_video(p) as video:
        got = np.stack(list(video))
    if compression == "jpeg":
        assert np.abs(got.astype(float) - frames).mean() < 2
    else:
        np.testing.assert_array_equal(got, frames)


def _cv_or_raw(path: Path, kind: str, n: int = 60) -> Path:
    if kind == "raw":
        write_avi(path, [frame(i) for i in range(n)])
    else:
        mjpg(path, n)
    return path


@pytest.mark.parametrize("kind", ["raw", "mjpg"])
def test_idx1_of_size_3(tmp_path, kind):
    """Finding: an idx1 size of 3 gave "frame 60 cannot be decoded" on a good 60-frame file."""
    p = _cv_or_raw(tmp_path / "v.avi", kind)
    data = bytearray(p.read_bytes())
    at = data.find(b"idx1")
    assert at > 0
    struct.pack_into("<I", data, at + 4, 3)
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        assert len(video) == 60 and len(list(video)) == 60
        assert any("idx1" in w for w in video.warnings)
        assert not any("truncated" in w for w in video.warnings)


def test_idx1_listing_fewer_frames_is_a_warning(tmp_path):
    p = _cv_or_raw(tmp_path / "v.avi", "raw", 10)
    data = bytearray(p.read_bytes())
    at = data.find(b"idx1")
    struct.pack_into("<I", data, at + 4, 16 * 4)
    p.write_bytes(bytes(data[: at + 8 + 64]))
    with open_video(p) as video:
        assert len(video) == 10
        assert any("lists 4 frames, the movi list holds 10" in w for w in video.warnings)


def test_zero_size_info_list(tmp_path):
    """Finding: a zero-size LIST INFO gave "no complete frame (truncated)" on a whole file."""
    p = mjpg(tmp_path / "info.avi", 20)
    data = bytearray(p.read_bytes())
    at = data.find(b"INFO")
    assert at > 0 and data[at - 8 : at - 4] == b"LIST"
    struct.pack_into("<I", data, at - 4, 0)
    p.write_bytes(bytes(data))
    with open_video(p) as video:
        assert len(video) == 20 and len(list(video)) == 20
        assert any("empty LIST chunk" in w for w in video.warnings)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.tif", b"plain text, not a TIFF\n" * 4),
        ("half.tif", b"II*\0\x08\0\0\0\x05\0" + b"\xff" * 30),
        ("noise.avi", bytes(np.random.default_rng(2).integers(0, 256, 3000, np.uint8))),
        ("riff.avi", b"RIFF\x10\0\0\0AVI LIST\xff\xff\xff\xffhdrl"),
    ],
)
def test_failure_messages_hold_no_library_text(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(VideoReadError) as exc:
        open_video(p)
    clean_message(exc, p)


def test_damaged_frame_in_folder_message(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.png"), frame(i))
    (folder / "f3.png").write_bytes(cv2.imencode(".png", frame(3))[1].tobytes()[:60])
    (folder / "f4.tif").write_bytes(b"II*\0\x08\0\0\0\x01\0" + b"\0" * 20)
    with open_video(folder) as video:
        for k in (3, 4):
            with pytest.raises(VideoReadError) as exc:
                video[k]
            clean_message(exc, folder / f"f{k}{'.png' if k == 3 else '.tif'}")


def test_zlib_bomb_in_a_small_page_stays_bounded(tmp_path):
    """A 64x64 page whose zlib strip inflates to 64 MiB: the decoder fills only the page's
    declared buffer (imagecodecs), so reading fails cleanly instead of inflating it all."""
    p = tmp_path / "zbomb.tif"
    tifffile.imwrite(p, np.zeros((6, 64, 64), np.uint8), compression="zlib")
    data = bytearray(p.read_bytes())
    bomb = zlib.compress(bytes(64 << 20), 9)
    with tifffile.TiffFile(p) as tif:
        tags = tif.pages[0].tags
        at_offset, at_count = tags["StripOffsets"].valueoffset, tags["StripByteCounts"].valueoffset
    struct.pack_into("<I", data, at_offset, len(data))
    struct.pack_into("<I", data, at_count, len(bomb))
    p.write_bytes(bytes(data + bomb))
    with pytest.raises(VideoReadError, match="page 0 cannot be read") as exc:
        open_video(p)
    clean_message(exc, p)


def test_jpeg_strip_declaring_more_than_its_page(tmp_path):
    p = tmp_path / "jpeg.tif"
    tifffile.imwrite(p, np.stack([frame(i) for i in range(6)]), compression="jpeg")
    data = bytearray(p.read_bytes())
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, 65535, 65535)
    p.write_bytes(bytes(data))
    with pytest.raises(FrameLimitError, match="JPEG strip declares 65535x65535") as exc:
        open_video(p)
    clean_message(exc, p)


def test_unbounded_tiff_compression_is_refused(tmp_path):
    p = tmp_path / "webp.tif"
    rgb = np.stack([np.stack([frame(i)] * 3, axis=-1) for i in range(6)])
    tifffile.imwrite(p, rgb, compression="webp", photometric="rgb")
    with pytest.raises(VideoReadError, match="compressed with WEBP, which rbcflow does not read"):
        open_video(p)


def test_limits_are_settable(tmp_path):
    from rbcflow.run_settings import InputLimits

    p = tmp_path / "v.avi"
    write_avi(p, [frame(i) for i in range(6)])
    with pytest.raises(FrameLimitError, match="larger than the 0.0001 MP"):
        open_video(p, limits=InputLimits(max_frame_megapixels=1e-4))
    with open_video(p, limits=InputLimits(min_frame_side=1)) as video:
        assert video.shape == (H, W)
