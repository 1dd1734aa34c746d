"""Reader speed and memory: rbcflow's readers against a bare OpenCV read loop.

Writes, into a temporary folder, a synthetic 1024x768 AVI in three codings (uncompressed 24-bit
DIB, as the lab camera writes, MJPG, and uncompressed planar YUV I420) and prints the frames/s
of iterating it with ``open_video`` against ``cv2.VideoCapture.read`` alone; then streams a long
small video (18,000 frames: a 5-minute acquisition at 60 fps) in a child process and prints its
peak RSS, next to the peak after a tenth of it, to show that memory does not grow with length.

OpenCV 5.0 corrupts its heap on bottom-up uncompressed AVIs (the lab format), so its baseline
on the uncompressed file runs on a copy whose header declares top-down rows: same bytes to
decode, same cost.

Run::

    python benchmarks/bench_readers.py               # ~1 min
    python benchmarks/bench_readers.py --frames 300 --long-frames 18000
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from rbcflow.io.avi import write_avi
from rbcflow.io.video import open_video

W, H = 1024, 768


def synthetic_frames(n: int, w: int = W, h: int = H, seed: int = 0):
    """Bright-field-like BGR frames: textured background, dark discs moving left to right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    background = (150 + 20 * np.sin(xx / 97.0) * np.cos(yy / 131.0)).astype(np.float32)
    background += rng.normal(0, 3, (h, w)).astype(np.float32)
    cells = rng.uniform([0, 20], [w, h - 20], (max(1, w * h // 80_000), 2))
    for i in range(n):
        frame = background.copy()
        for x0, y0 in cells:
            x = (x0 + 6 * i) % w
            cv2.circle(frame, (int(x), int(y0)), 5, 90.0, -1)
        gray = np.clip(frame + rng.normal(0, 2, (h, w)), 0, 255).astype(np.uint8)
        yield cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def write_mjpg(path: Path, n: int) -> None:
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 60.0, (W, H), True
    )
    for frame in synthetic_frames(n):
        writer.write(frame)
    writer.release()


def write_i420(path: Path, n: int) -> None:
    """The same frames as uncompressed planar YUV 4:2:0 (FFmpeg's rawvideo, through OpenCV)."""
    writer = cv2.VideoWriter(
        str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"I420"), 60.0, (W, H), True
    )
    for frame in synthetic_frames(n):
        writer.write(frame)
    writer.release()


def fps_opencv_reader(path: Path) -> tuple[float, int]:
    """rbcflow's OpenCV reader (FFmpeg decodes to BGR, then BGR2GRAY), bypassing dispatch."""
    from rbcflow.io.avi import AviReader

    t0 = time.perf_counter()
    with AviReader(path) as video:
        n = sum(1 for _ in video)
    return n / (time.perf_counter() - t0), n


def top_down_copy(src: Path, dst: Path) -> None:
    """The same AVI with biHeight negated (rows declared top-down), which OpenCV survives."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as fh:
        head = fh.read(4096)
        at = head.find(b"strf") + 8
        height = struct.unpack_from("<i", head, at + 8)[0]
        fh.seek(at + 8)
        fh.write(struct.pack("<i", -abs(height)))


def fps_rbcflow(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with open_video(path) as video:
        n = sum(1 for _ in video)
    return n / (time.perf_counter() - t0), n


def fps_cv2(path: Path, gray: bool) -> tuple[float, int]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    t0 = time.perf_counter()
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if gray:
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return n / dt, n


def peak_rss_streaming(path: Path, n_frames: int) -> dict:
    """Stream the first ``n_frames`` of ``path`` in a fresh process; its peak RSS in MB
    (:func:`_memory.peak_rss_mb`: VmHWM, which starts afresh at exec)."""
    code = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from _memory import peak_rss_mb\n"
        "from rbcflow.io.video import open_video\n"
        "base = peak_rss_mb()\n"
        "n = 0\n"
        "with open_video(sys.argv[1]) as v:\n"
        "    for i, f in enumerate(v):\n"
        "        if i >= int(sys.argv[2]): break\n"
        "        n += 1\n"
        "print(json.dumps({'frames': n, 'baseline_mb': base, 'peak_mb': peak_rss_mb()}))\n"
    )
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(n_frames), here],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames of the 1024x768 AVIs")
    parser.add_argument(
        "--long-frames",
        type=int,
        default=18_000,
        help="frames of the long video streamed for the memory check",
    )
    parser.add_argument("--long-size", type=int, nargs=2, default=(128, 96), metavar=("W", "H"))
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, OpenCV {cv2.__version__}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="rbcflow-bench-") as tmp:
        tmp = Path(tmp)
        raw, raw_td, mjpg = tmp / "raw24.avi", tmp / "raw24_topdown.avi", tmp / "mjpg.avi"
        write_avi(raw, synthetic_frames(args.frames), fps=60.0)
        top_down_copy(raw, raw_td)
        write_mjpg(mjpg, args.frames)
        i420 = tmp / "i420.avi"
        write_i420(i420, args.frames)
        print(
            f"\n{W}x{H} 24-bit AVI, {args.frames} frames "
            f"(uncompressed {raw.stat().st_size / 1e6:.0f} MB, MJPG "
            f"{mjpg.stat().st_size / 1e6:.0f} MB); frames/s, best of 3:"
        )
        rows = [
            ("uncompressed", "rbcflow open_video (native, -> gray)", lambda: fps_rbcflow(raw)),
            ("uncompressed", "cv2 read loop (BGR, top-down copy)", lambda: fps_cv2(raw_td, False)),
            ("uncompressed", "cv2 read loop + BGR2GRAY (top-down)", lambda: fps_cv2(raw_td, True)),
            ("MJPG", "rbcflow open_video (OpenCV, -> gray)", lambda: fps_rbcflow(mjpg)),
            ("MJPG", "cv2 read loop (BGR)", lambda: fps_cv2(mjpg, False)),
            ("MJPG", "cv2 read loop + BGR2GRAY", lambda: fps_cv2(mjpg, True)),
            ("I420", "rbcflow open_video (native, Y plane)", lambda: fps_rbcflow(i420)),
            ("I420", "rbcflow AviReader (OpenCV, -> gray)", lambda: fps_opencv_reader(i420)),
            ("I420", "cv2 read loop (BGR)", lambda: fps_cv2(i420, False)),
        ]
        results = {}
        for codec, name, fn in rows:
            best, n = max(fn() for _ in range(3))
            assert n == args.frames, (name, n)
            results[codec, name] = best
            print(f"  {codec:13s} {name:40s} {best:8.0f} ({1000 / best:5.2f} ms/frame)")
        for codec in ("uncompressed", "MJPG", "I420"):
            ours = next(v for (c, k), v in results.items() if c == codec and "rbcflow" in k)
            bare = next(
                v
                for (c, k), v in results.items()
                if c == codec and k.endswith(")") and "cv2" in k and "GRAY" not in k
            )
            print(f"  {codec}: rbcflow / bare cv2 read = {ours / bare:.2f}")

        w, h = args.long_size
        long = tmp / "long.avi"
        base = list(synthetic_frames(60, w, h, seed=1))
        write_avi(long, (base[i % 60] for i in range(args.long_frames)), fps=60.0)
        tenth = peak_rss_streaming(long, args.long_frames // 10)
        full = peak_rss_streaming(long, args.long_frames)
        print(
            f"\nmemory: streaming a {w}x{h} AVI ({long.stat().st_size / 1e6:.0f} MB) in a fresh "
            "process, peak RSS (VmHWM):"
        )
        print(f"  interpreter + imports      {full['baseline_mb']:7.1f} MB")
        print(f"  after {tenth['frames']:6d} frames        {tenth['peak_mb']:7.1f} MB")
        print(f"  after {full['frames']:6d} frames        {full['peak_mb']:7.1f} MB")
        print(
            f"  (all frames would hold {full['frames'] * w * h / 1e6:.0f} MB as uint8; a "
            f"5-minute 1024x768 acquisition {18_000 * W * H / 1e9:.1f} GB)"
        )
        big = peak_rss_streaming(raw, args.frames)
        print(f"  1024x768, {big['frames']} frames       {big['peak_mb']:7.1f} MB")


if __name__ == "__main__":
    main()
