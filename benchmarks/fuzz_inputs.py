"""Fuzz run: >= 1,000 damaged, hostile and odd inputs through discovery, readers and front end.

Kinds (``benchmarks/_fuzz_cases.py``): AVI headers and index (raw 24-bit, raw 8-bit and MJPG
bases: byte mutations and header fields set to edge values), TIFF pages and compression
(uncompressed, zlib, LZW, zstd, JPEG, 16-bit, ImageJ and BigTIFF bases: byte mutations, tag
values, looping page links), frame folders (a damaged, oversized, tiny or foreign frame, a stack
among frames, a looping link), special files (FIFO, device, socket, looping and dangling links)
and size bombs (headers declaring frames of 16383^2 to 60000^2 pixels).

Each input runs in its own process, forked from a parent that has imported and warmed up the
readers and the front end (so a process costs milliseconds, not an import), under a time limit;
the process's peak resident memory is measured (``VmHWM``, which for a forked process includes
the pages it shares with the parent: the parent's own peak is printed as the baseline). The
worker calls :func:`rbcflow.io.discover.discover` on the input, then ``open_video``, reads every
frame and runs ``run_frontend`` on each acquisition found. Outcomes:

- ``ok``        at least one acquisition analysed (possibly with warnings),
- ``handled``   refused with rbcflow's own one-line error,
- ``unhandled`` any other exception (a bug),
- ``crash``     the process died on a signal,
- ``hang``      no answer within the time limit (killed),

and, counted apart: runs whose peak exceeds ``--max-mb`` (1,500 MB) and handled messages that
hold raw library text (``RAW_TEXT``). Targets: 0 of each but ``ok`` and ``handled``.

Usage::

    python benchmarks/fuzz_inputs.py                  # all 1,151 inputs
    python benchmarks/fuzz_inputs.py --count 200 --timeout 30
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz_cases as fc  # noqa: E402

RAW_TEXT = re.compile(
    r"OpenCV\(|\.cpp|Traceback|Error:|Exception|errno|tifffile|imagecodecs|struct\.|numpy|"
    r"\bcv2\b|<class|object at 0x"
)
KINDS = (("avi", 640), ("tiff", 300), ("folder", 150), ("special", 16), ("bomb", 45))


def cases(seed: int) -> list[tuple[str, int]]:
    """(kind, index within kind) of every input, in run order (kinds interleaved)."""
    out = [(k, i) for k, n in KINDS for i in range(n)]
    np.random.default_rng(seed).shuffle(out)
    return out


def build(kind: str, i: int, seed: int, bases: dict[str, bytes], folder: Path) -> tuple[Path, str]:
    """Write input ``i`` of ``kind`` into ``folder``; returns its path and a description."""
    rng = np.random.default_rng([seed, i, len(kind)])
    if kind == "avi":
        name = ["raw24.avi", "raw8.avi", "mjpg.avi"][i % 3]
        data = bases[name]
        r = rng.random()
        if r < 0.5:
            blob, what = fc.mutate(data, rng)
        elif r < 0.9 or name != "mjpg.avi":
            blob, what = fc.avi_field(data, rng)
        else:
            blob, what = fc.mjpg_sof(data, rng, folder.parent / "bases" / name)
        p = folder / f"in {i}.avi"
        p.write_bytes(blob)
        return p, f"{name}: {what}"
    if kind == "tiff":
        names = [n for n in bases if n.endswith(".tif")]
        name = names[i % len(names)]
        data = bases[name]
        r = rng.random()
        if r < 0.55:
            blob, what = fc.mutate(data, rng, header=len(data))
        elif r < 0.95:
            blob, what = fc.tiff_tag(data, rng)
        else:
            blob, what = fc.tiff_pages_loop(data)
        p = folder / f"in {i}.tif"
        p.write_bytes(blob)
        return p, f"{name}: {what}"
    if kind == "folder":
        return _folder_case(i, rng, bases, folder)
    if kind == "special":
        kinds = ["fifo", "dev-zero", "dev-null", "socket", "loop", "dangling", "dir-named-avi"]
        kinds.append("folder-with-fifo")
        k = kinds[i % len(kinds)]
        return fc.special(k)(folder), f"special: {k}"
    return _bomb_case(i, bases, folder)


def _folder_case(i, rng, bases, folder) -> tuple[Path, str]:
    d = folder / "frames"
    d.mkdir()
    ext = ["png", "jpg", "bmp", "tif"][i % 4]
    frames = fc._frames(12)
    for k, f in enumerate(frames):
        import cv2
        import tifffile

        if ext == "tif":
            tifffile.imwrite(d / f"f{k}.tif", f)
        else:
            cv2.imwrite(str(d / f"f{k}.{ext}"), f)
    victim = d / f"f{int(rng.integers(0, 12))}.{ext}"
    r = int(rng.integers(0, 8))
    if r <= 2:
        blob, what = fc.mutate(victim.read_bytes(), rng, header=256)
        victim.write_bytes(blob)
    elif r == 3:
        victim.write_bytes(fc.png_declaring(bases["png"], 16384, 16384))
        what = "a frame declaring 16384^2"
    elif r == 4:
        victim.write_text("not an image")
        what = "a text frame"
    elif r == 5:
        import tifffile

        tifffile.imwrite(d / "stack.tif", np.stack(frames[:5]))
        what = "a 5-page stack among the frames"
    elif r == 6:
        os.symlink(d / "loop.png", d / "loop.png")
        what = "a self-looping link"
    else:
        os.mkfifo(d / f"f99.{ext}")
        what = "a FIFO frame"
    return d, f"folder of {ext}: {what}"


def _bomb_case(i, bases, folder) -> tuple[Path, str]:
    k = i % 9
    if k >= 5:
        return _more_bombs(k, bases, folder)
    if k == 0:
        p = folder / "bomb.avi"
        hint = folder.parent / "bases" / "mjpg.avi"
        blob, _ = fc.mjpg_sof(bases["mjpg.avi"], np.random.default_rng(i), hint)
        p.write_bytes(blob)
        return p, "bomb: MJPG frames declaring a huge size"
    if k == 1:
        d = folder / "pngs"
        d.mkdir()
        for j in range(10):
            (d / f"f{j}.png").write_bytes(fc.png_declaring(bases["png"], 16384, 16384))
        return d, "bomb: ten PNGs declaring 16384^2"
    if k == 2:
        p = folder / "bomb.tif"
        p.write_bytes(_tiff_size(bases["big.tif"], 60000))
        return p, "bomb: BigTIFF pages declaring 60000^2"
    if k == 3:
        import struct

        data = bytearray(bases["raw24.avi"])
        at = data.find(b"strf") + 8
        struct.pack_into("<ii", data, at + 4, 60000, 60000)
        p = folder / "strf.avi"
        p.write_bytes(bytes(data))
        return p, "bomb: raw AVI declaring 60000^2"
    from rbcflow.io.avi import write_avi

    p = folder / "dot.avi"
    write_avi(p, [np.full((1, 1), j, np.uint8) for j in range(10)])
    return p, "bomb: 1x1 frames"


def _more_bombs(k: int, bases, folder) -> tuple[Path, str]:
    import struct
    import zlib

    import tifffile

    if k in (5, 6):  # one small page whose data decode to far more than it declares
        p = folder / "zbomb.tif"
        comp = "zlib" if k == 5 else "jpeg"
        tifffile.imwrite(p, np.zeros((6, 64, 64), np.uint8), compression=comp)
        data = bytearray(p.read_bytes())
        if k == 5:
            bomb = zlib.compress(bytes(256 << 20), 9)  # 256 MiB of zeros in 260 KB
            with tifffile.TiffFile(p) as t:
                so, sb = t.pages[0].tags["StripOffsets"], t.pages[0].tags["StripByteCounts"]
                at_o, at_b = so.valueoffset, sb.valueoffset
            struct.pack_into("<I", data, at_o, len(data))
            struct.pack_into("<I", data, at_b, len(bomb))
            data += bomb
            what = "a zlib strip of 256 MiB in a 64x64 page"
        else:
            start = 0
            while (at := data.find(b"\xff\xc0", start)) >= 0:
                struct.pack_into(">HH", data, at + 5, 65535, 65535)
                start = at + 2
            what = "JPEG strips declaring 65535^2 in 64x64 pages"
        p.write_bytes(bytes(data))
        return p, f"bomb: {what}"
    if k == 7:  # BMP frames declaring a huge size
        d = folder / "bmps"
        d.mkdir()
        for j in range(10):
            bmp = bytearray(bases["bmp"])
            struct.pack_into("<ii", bmp, 18, 60000, 60000)
            (d / f"f{j}.bmp").write_bytes(bytes(bmp))
        return d, "bomb: ten BMPs declaring 60000^2"
    data = bytearray(bases["mjpg.avi"])  # the first frame chunk declaring 1 GB
    lay_at = data.find(b"00dc")
    struct.pack_into("<I", data, lay_at + 4, 1 << 30)
    p = folder / "chunk.avi"
    p.write_bytes(bytes(data) + bytes(1 << 20))
    return p, "bomb: an MJPG chunk declaring 1 GiB"


def _tiff_size(data: bytes, side: int) -> bytes:
    import struct

    buf = bytearray(data)
    big = buf[2] == 43
    ifd = struct.unpack_from("<Q" if big else "<I", buf, 8 if big else 4)[0]
    while ifd:
        n = struct.unpack_from("<Q" if big else "<H", buf, ifd)[0]
        first, size = ifd + (8 if big else 2), 20 if big else 12
        for k in range(n):
            e = first + k * size
            tag, typ = struct.unpack_from("<HH", buf, e)
            if tag in (256, 257):
                fmt = {3: "<H", 4: "<I", 16: "<Q"}[typ]
                struct.pack_into(
                    fmt, buf, e + (12 if big else 8), min(side, 65535 if typ == 3 else side)
                )
        ifd = struct.unpack_from("<Q" if big else "<I", buf, first + n * size)[0]
    return bytes(buf)


FRONTEND = True


def analyse(path: Path) -> dict:
    """The worker: discovery, then every acquisition read and tracked."""
    from rbcflow.errors import RbcflowError
    from rbcflow.frontend import run_frontend
    from rbcflow.io.discover import discover
    from rbcflow.io.video import open_video

    outcome, messages = "handled", []
    for acq in discover([path]).acquisitions:
        if acq.problem is not None:
            messages.append(str(acq.error()))
            continue
        try:
            with open_video(acq.path) as reader:
                sum(1 for _ in reader)
                if FRONTEND:
                    run_frontend(reader)
            outcome = "ok"
        except RbcflowError as exc:
            messages.append(str(exc))
    return {"outcome": outcome, "messages": messages}


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1)) / 1024.0


def run_forked(path: Path, timeout: float, mem_cap_mb: int) -> dict:
    """``analyse(path)`` in a forked process: its result, or crash/hang, and its peak RSS."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (mem_cap_mb << 20, mem_cap_mb << 20))
            try:
                res = analyse(path)
            except BaseException as exc:  # noqa: BLE001 - the bug we count
                res = {"outcome": "unhandled", "messages": [f"{type(exc).__name__}: {exc}"]}
            res["peak_mb"] = _hwm_mb()
            os.write(wfd, json.dumps(res).encode()[:60000])
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    t0 = time.monotonic()
    status = rusage = None
    while time.monotonic() - t0 < timeout:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, signal.SIGKILL)
        _, status, rusage = os.wait4(pid, 0)
        os.close(rfd)
        return {"outcome": "hang", "messages": [], "peak_mb": rusage.ru_maxrss / 1024}
    with os.fdopen(rfd, "rb") as fh:
        blob = fh.read()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {
            "outcome": "crash",
            "messages": [f"signal {sig}"],
            "peak_mb": rusage.ru_maxrss / 1024,
        }
    try:
        return json.loads(blob)
    except ValueError:
        return {"outcome": "crash", "messages": ["no result"], "peak_mb": rusage.ru_maxrss / 1024}


def warm_up(bases_dir: Path) -> None:
    """Import and run everything once in the parent, so that children start warm."""
    import cv2

    cv2.setNumThreads(1)  # no OpenCV worker threads across fork
    analyse(bases_dir / "raw24.avi")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=None, help="run only the first N inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per input")
    ap.add_argument("--max-mb", type=float, default=1500.0, help="peak RSS target, MB")
    ap.add_argument("--mem-cap-mb", type=int, default=8192, help="address-space cap per input")
    ap.add_argument("--verbose", action="store_true", help="one line per input")
    ap.add_argument("--no-frontend", action="store_true", help="discovery and readers only")
    args = ap.parse_args()
    global FRONTEND
    FRONTEND = not args.no_frontend
    todo = cases(args.seed)[: args.count]
    tmp = Path(tempfile.mkdtemp(prefix="rbcflow-fuzz-"))
    outcomes: collections.Counter[str] = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad: list[str] = []
    over: list[str] = []
    raw: list[str] = []
    memory: list[str] = []  # refused only by the address-space cap (a bound that failed)
    peak = 0.0
    t0 = time.perf_counter()
    try:
        bases = fc.base_files(tmp / "bases")
        warm_up(tmp / "bases")
        baseline = _hwm_mb()
        for n, (kind, i) in enumerate(todo):
            work = tmp / "case"
            work.mkdir()
            path, what = build(kind, i, args.seed, bases, work)
            res = run_forked(path, args.timeout, args.mem_cap_mb)
            shutil.rmtree(work, ignore_errors=True)
            outcome = res["outcome"]
            outcomes[outcome] += 1
            by_kind[kind][outcome] += 1
            peak = max(peak, res["peak_mb"])
            first = (res["messages"] or [""])[0]
            if args.verbose:
                mb = res["peak_mb"]
                print(f"{n:5d} {kind:7s} {outcome:9s} {mb:6.0f} MB {what[:50]:50s} {first[:80]}")
            if outcome in ("unhandled", "crash", "hang"):
                bad.append(f"{kind} {i}: {what}: {outcome} {first[:200]}")
            if res["peak_mb"] > args.max_mb:
                over.append(f"{kind} {i}: {what}: {res['peak_mb']:.0f} MB")
            raw += [f"{kind} {i}: {what}: {m[:200]}" for m in res["messages"] if RAW_TEXT.search(m)]
            memory += [f"{kind} {i}: {what}" for m in res["messages"] if "memory" in m]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dt = time.perf_counter() - t0
    stage = "readers" if args.no_frontend else "readers + front end"
    print(f"inputs: {sum(outcomes.values())} in {dt:.0f} s ({stage}; seed {args.seed})")
    for kind, c in by_kind.items():
        print(f"  {kind:8s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for key in ("ok", "handled", "unhandled", "crash", "hang"):
        print(f"  {key:9s} {outcomes[key]}")
    print(f"  over {args.max_mb:g} MB: {len(over)} (peak {peak:.0f} MB; parent {baseline:.0f} MB)")
    print(f"  stopped by the {args.mem_cap_mb} MB address-space cap: {len(memory)}")
    print(f"  messages with raw library text: {len(raw)}")
    for line in bad + over + memory + raw[:40]:
        print("   ", line)
    return 1 if bad or over or raw or memory else 0


if __name__ == "__main__":
    sys.exit(main())
