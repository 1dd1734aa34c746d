"""Inputs for benchmarks/fuzz_inputs.py: valid bases and their mutations, by kind.

Each case is ``(kind, description, build)``; ``build(folder) -> Path`` writes the input into an
empty folder and returns what to analyse. Cases are made lazily (one on disk at a time) and
deterministically from ``(seed, index)``.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tifffile

from rbcflow.io.avi import read_avi_layout, write_avi

Case = tuple[str, str, Callable[[Path], Path]]
H, W, N = 96, 128, 40


def _frames(n: int = N, h: int = H, w: int = W) -> list[np.ndarray]:
    """A moving dark disc on a textured background: something the front end can track."""
    rng = np.random.default_rng(7)
    bg = (120 + rng.normal(0, 3, (h, w))).clip(0, 255)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        f = bg.copy()
        cx, cy = 10 + 2.5 * i, h / 2
        f[(xx - cx) ** 2 + (yy - cy) ** 2 < 25] -= 50
        out.append(f.clip(0, 255).astype(np.uint8))
    return out


def _cv_avi(path: Path, fourcc: str, frames) -> None:
    h, w = frames[0].shape
    wr = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 60, (w, h))
    for f in frames:
        wr.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    wr.release()


def base_files(folder: Path) -> dict[str, bytes]:
    """The valid inputs every mutation starts from, as bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    fr = _frames()
    out: dict[str, bytes] = {}
    write_avi(folder / "raw24.avi", fr)
    write_avi(folder / "raw8.avi", fr, bits=8)
    _cv_avi(folder / "mjpg.avi", "MJPG", fr)
    for name in ("raw24.avi", "raw8.avi", "mjpg.avi"):
        out[name] = (folder / name).read_bytes()
    stack = np.stack(fr)
    for comp in (None, "zlib", "lzw", "zstd", "jpeg"):
        p = folder / f"tiff_{comp}.tif"
        with tifffile.TiffWriter(p) as tw:
            for f in stack:
                tw.write(f, compression=comp, photometric="minisblack")
        out[p.name] = p.read_bytes()
    p = folder / "tiff16.tif"
    tifffile.imwrite(p, stack.astype(np.uint16) * 200, compression="zlib")
    out[p.name] = p.read_bytes()
    p = folder / "imagej.tif"
    tifffile.imwrite(p, stack, imagej=True, metadata={"axes": "TYX", "finterval": 1 / 60})
    out[p.name] = p.read_bytes()
    p = folder / "big.tif"
    tifffile.imwrite(p, stack, bigtiff=True, photometric="minisblack")
    out[p.name] = p.read_bytes()
    out["png"] = cv2.imencode(".png", fr[0])[1].tobytes()
    out["jpg"] = cv2.imencode(".jpg", fr[0])[1].tobytes()
    out["bmp"] = cv2.imencode(".bmp", fr[0])[1].tobytes()
    return out


# -- byte mutations --------------------------------------------------------------------------


def mutate(data: bytes, rng: np.random.Generator, header: int = 4096) -> tuple[bytes, str]:
    """One random mutation of ``data``: truncate, flip bits, zero a block, random header
    bytes, duplicate or swap blocks."""
    buf = bytearray(data)
    n = len(buf)
    kind = rng.choice(["truncate", "flip", "zero", "header", "duplicate", "swap"])
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        return bytes(buf[:cut]), f"truncate at {cut}"
    if kind == "flip":
        k = int(rng.integers(1, 200))
        for p in rng.integers(0, n, k):
            buf[p] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf), f"flip {k} bits"
    if kind == "zero":
        start, size = int(rng.integers(0, n)), int(rng.integers(1, 65536))
        buf[start : start + size] = bytes(min(size, n - start))
        return bytes(buf), f"zero {size} bytes at {start}"
    if kind == "header":
        k = int(rng.integers(1, 32))
        for p in rng.integers(0, min(n, header), k):
            buf[p] = int(rng.integers(0, 256))
        return bytes(buf), f"{k} random header bytes"
    if kind == "duplicate":
        start, size = int(rng.integers(0, n)), int(rng.integers(1, 100_000))
        at = int(rng.integers(0, n))
        return bytes(buf[:at] + buf[start : start + size] + buf[at:]), f"duplicate at {at}"
    size = int(rng.integers(1, 50_000))
    a, b = sorted(int(x) for x in rng.integers(0, max(1, n - size), 2))
    blk_a, blk_b = bytes(buf[a : a + size]), bytes(buf[b : b + size])
    buf[a : a + size], buf[b : b + size] = blk_b, blk_a
    return bytes(buf), f"swap {size} bytes at {a}, {b}"


_AVI_FIELDS = {  # (chunk tag, offset in its data, struct format)
    "avih.us_per_frame": (b"avih", 0, "<I"),
    "avih.total_frames": (b"avih", 16, "<I"),
    "avih.width": (b"avih", 32, "<I"),
    "strh.scale": (b"strh", 20, "<I"),
    "strh.rate": (b"strh", 24, "<I"),
    "strh.length": (b"strh", 32, "<I"),
    "strh.size": (b"strh", -4, "<I"),
    "strf.size": (b"strf", -4, "<I"),
    "strf.width": (b"strf", 4, "<i"),
    "strf.height": (b"strf", 8, "<i"),
    "strf.bitcount": (b"strf", 14, "<H"),
    "strf.compression": (b"strf", 16, "4s"),
    "strf.clr_used": (b"strf", 32, "<I"),
    "LIST hdrl.size": (b"hdrl", -8, "<I"),
    "LIST movi.size": (b"movi", -8, "<I"),
    "LIST INFO.size": (b"INFO", -8, "<I"),
    "RIFF.size": (b"RIFF", 4, "<I"),
    "idx1.size": (b"idx1", 4, "<I"),
    "first frame chunk.size": (b"00d", 4, "<I"),
}
_VALUES = [0, 1, 3, 4, 7, 16, 255, 65535, 2**31 - 1, 2**32 - 1, -1, 60000, 16383]


def avi_field(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One header field of an AVI set to an edge value (or off by a little)."""
    buf = bytearray(data)
    name = list(_AVI_FIELDS)[int(rng.integers(0, len(_AVI_FIELDS)))]
    tag, off, fmt = _AVI_FIELDS[name]
    at = buf.find(tag)
    if at < 0:
        return bytes(buf), f"{name}: absent"
    pos = at + off + (8 if tag in (b"avih", b"strh", b"strf") and off >= 0 else 0)
    if fmt == "4s":
        value = [b"MJPG", b"XVID", b"\0\0\0\0", b"Y800", b"I420", b"ZZZZ"][int(rng.integers(0, 6))]
        struct.pack_into(fmt, buf, pos, value)
        return bytes(buf), f"{name} = {value!r}"
    if rng.random() < 0.3:
        old = struct.unpack_from(fmt, buf, pos)[0]
        value = int(old + rng.integers(-3, 4))
    else:
        value = _VALUES[int(rng.integers(0, len(_VALUES)))]
    lo, hi = (-(2**31), 2**31 - 1) if fmt in ("<i",) else (0, 2 ** (8 * struct.calcsize(fmt)) - 1)
    value = int(np.clip(value, lo, hi))
    struct.pack_into(fmt, buf, pos, value)
    return bytes(buf), f"{name} = {value}"


def mjpg_sof(data: bytes, rng: np.random.Generator, path_hint: Path) -> tuple[bytes, str]:
    """Every (or one) JPEG frame header of an MJPG AVI declaring a huge size."""
    lay = read_avi_layout(path_hint)
    buf = bytearray(data)
    side = int(rng.choice([16383, 65535, 1, 8192]))
    picks = range(len(lay.offsets)) if rng.random() < 0.5 else [int(rng.integers(0, 10))]
    for k in picks:
        o, s = int(lay.offsets[k]), int(lay.sizes[k])
        at = buf.find(b"\xff\xc0", o, o + s)
        if at > 0:
            struct.pack_into(">HH", buf, at + 5, side, side)
    return bytes(buf), f"JPEG SOF {side}x{side} in {len(picks)} frame(s)"


_TIFF_TAGS = [256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339]


def tiff_tag(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A tag value of the first page(s) of a little-endian TIFF set to an edge value."""
    buf = bytearray(data)
    big = buf[2] == 43
    ifd = struct.unpack_from("<Q" if big else "<I", buf, 8 if big else 4)[0]
    tag_pick = int(rng.choice(_TIFF_TAGS))
    value = int(rng.choice([0, 1, 2, 3, 5, 7, 8, 16, 33, 255, 60000, 65535, 2**31, 2**32 - 1]))
    pages = int(rng.integers(1, 4))
    done = 0
    while ifd and done < pages and ifd + 8 < len(buf):
        n = struct.unpack_from("<Q" if big else "<H", buf, ifd)[0]
        first, size = ifd + (8 if big else 2), 20 if big else 12
        if first + n * size + 8 > len(buf):
            break
        for k in range(n):
            e = first + k * size
            if struct.unpack_from("<H", buf, e)[0] == tag_pick:
                typ = struct.unpack_from("<H", buf, e + 2)[0]
                fmt = {3: "<H", 4: "<I", 16: "<Q"}.get(typ, "<I")
                vmax = 2 ** (8 * struct.calcsize(fmt)) - 1
                struct.pack_into(fmt, buf, e + (12 if big else 8), min(value, vmax))
        ifd = struct.unpack_from("<Q" if big else "<I", buf, first + n * size)[0]
        done += 1
    return bytes(buf), f"tag {tag_pick} = {value} on {pages} page(s)"


def tiff_pages_loop(data: bytes) -> tuple[bytes, str]:
    """The second page's next-directory link pointing back at the first page."""
    buf = bytearray(data)
    if buf[2] == 43:
        return bytes(buf), "bigtiff: loop not made"
    first = struct.unpack_from("<I", buf, 4)[0]
    n = struct.unpack_from("<H", buf, first)[0]
    second = struct.unpack_from("<I", buf, first + 2 + 12 * n)[0]
    if second:
        m = struct.unpack_from("<H", buf, second)[0]
        struct.pack_into("<I", buf, second + 2 + 12 * m, first)
    return bytes(buf), "page directories loop"


def png_declaring(png: bytes, rows: int, cols: int) -> bytes:
    buf = bytearray(png)
    struct.pack_into(">II", buf, 16, cols, rows)
    struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])))
    return bytes(buf)


# -- special files ----------------------------------------------------------------------------


def special(kind: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        p = folder / "input.avi"
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "dev-zero":
            os.symlink("/dev/zero", p)
        elif kind == "dev-null":
            os.symlink("/dev/null", p)
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(folder / "s.avi"))
            s.close()
            p = folder / "s.avi"
        elif kind == "loop":
            os.symlink(p, p)
        elif kind == "dangling":
            os.symlink(folder / "nothing.avi", p)
        elif kind == "dir-named-avi":
            p.mkdir()
        elif kind == "folder-with-fifo":
            os.mkfifo(folder / "p.avi")
            os.mkfifo(folder / "q.png")
            os.symlink("/dev/zero", folder / "z.tif")
            p = folder
        return p

    return build
