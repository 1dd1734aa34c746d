"""Test helper: uncompressed planar YUV 4:2:0 AVIs written byte by byte (exact control of the
planes, chunk sizes and odd frame sizes), and the BT.601 studio-swing encoding of grey."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rbcflow.io.avi.riff import _riff_chunk, _riff_list
from rbcflow.io.avi.yuv import yuv420_frame_bytes


def studio(gray: np.ndarray) -> np.ndarray:
    """Grey 0..255 to BT.601 studio-swing luma 16..235 (uint8)."""
    return np.round(16 + np.asarray(gray, np.float64) * 219 / 255).astype(np.uint8)


def yuv_frame(y: np.ndarray, fourcc: str, chroma: np.ndarray | None = None) -> bytes:
    """The bytes of one frame: the Y plane, then the chroma of ``fourcc``'s layout
    (``chroma``: (2, ceil(h/2), ceil(w/2)) uint8 U and V; neutral 128 if None)."""
    h, w = y.shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    if chroma is None:
        chroma = np.full((2, ch, cw), 128, np.uint8)
    u, v = chroma
    if fourcc in ("I420", "IYUV"):
        rest = u.tobytes() + v.tobytes()
    elif fourcc == "YV12":
        rest = v.tobytes() + u.tobytes()
    elif fourcc in ("NV12", "NV21"):
        first, second = (u, v) if fourcc == "NV12" else (v, u)
        rest = np.stack([first, second], axis=-1).reshape(ch, 2 * cw).tobytes()
    else:
        raise ValueError(fourcc)
    data = np.ascontiguousarray(y, np.uint8).tobytes() + rest
    assert len(data) == yuv420_frame_bytes(w, h)
    return data


def write_yuv_avi(
    path: Path,
    lumas: Sequence[np.ndarray],
    fourcc: str = "I420",
    fps: float = 50.0,
    chromas: Sequence[np.ndarray] | None = None,
    cut_chunk: dict[int, int] | None = None,
    height_sign: int = 1,
) -> Path:
    """Write Y planes (and optional chroma) as an AVI 1.0 file with an ``idx1`` index.

    ``cut_chunk`` {frame: bytes}: store only that many bytes of a frame (a damaged chunk).
    ``height_sign``: sign of ``biHeight`` (YUV frames are top-down either way).
    """
    h, w = lumas[0].shape
    size = yuv420_frame_bytes(w, h)
    cut_chunk = cut_chunk or {}
    chunks = []
    for i, y in enumerate(lumas):
        data = yuv_frame(y, fourcc, None if chromas is None else chromas[i])
        chunks.append(data[: cut_chunk.get(i, len(data))])
    n = len(chunks)
    scale, rate = 1000, int(round(fps * 1000))
    avih = struct.pack(
        "<10I4I", int(round(1e6 / fps)), int(size * fps), 0, 0x10, n, 0, 1, size, w, h, 0, 0, 0, 0
    )
    strh = struct.pack(
        "<4s4sIHHIIIIIIIIhhhh", b"vids", fourcc.encode(), 0, 0, 0, 0, scale, rate, 0, n,
        size, 0xFFFFFFFF, 0, 0, 0, w, h,
    )  # fmt: skip
    strf = struct.pack(
        "<IiiHH4sIiiII", 40, w, height_sign * h, 1, 12, fourcc.encode(), size, 0, 0, 0, 0
    )
    strl = _riff_list(b"strl", _riff_chunk(b"strh", strh) + _riff_chunk(b"strf", strf))
    hdrl = _riff_list(b"hdrl", _riff_chunk(b"avih", avih) + strl)
    movi_data = b""
    index = b""
    for c in chunks:
        index += struct.pack("<4sIII", b"00dc", 0x10, 4 + len(movi_data), len(c))
        movi_data += _riff_chunk(b"00dc", c)
    movi = _riff_list(b"movi", movi_data)
    body = b"AVI " + hdrl + movi + _riff_chunk(b"idx1", index)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
