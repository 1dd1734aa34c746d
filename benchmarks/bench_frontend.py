"""Benchmark of the front end (issue 2 targets): accuracy, speed against bare decoding, memory.

Usage::

    python benchmarks/bench_frontend.py                    # accuracy + speed + 5-minute memory
    python benchmarks/bench_frontend.py --frames 600 --seeds 0 1 2 --memory-frames 0
    python benchmarks/bench_frontend.py --preset hard --codecs ffv1 --memory-frames 0
    python benchmarks/bench_frontend.py --preset hard --codecs ffv1 --memory-frames 0 --cases

1. Accuracy and speed: a synthetic 1024x768, 60 fps acquisition (~10 cells in view) is written
   as a 24-bit AVI to a temporary folder, once per codec: ``ffv1`` (lossless, the synthetic
   generator's default), ``mjpg`` (lossy), ``rgba`` (uncompressed, 32-bit) and ``dib24`` (the
   lab camera's uncompressed 24-bit DIB, :func:`rbcflow.io.avi.write_avi`). In the same run, on
   the same file (read once beforehand so that both read it from the page cache): a bare
   decode loop (``cv2.VideoCapture.read`` until the end, nothing else), then
   ``run_frontend(open_video(path))`` (what ``rbcflow track`` runs: background pass,
   calibration, decoding in a thread, detection, linking, crops), then the decode loop again;
   the ratio uses the mean of the two decode rates. This OpenCV build (5.0.0, FFmpeg) aborts
   (``malloc_consolidate``) when it decodes an uncompressed bottom-up 24-bit DIB AVI (the lab
   camera's layout), so for ``dib24`` the cv2 loop runs on a top-down twin of the file (same
   pixels, rows stored in the other order, which OpenCV decodes). rbcflow reads neither MJPG
   nor uncompressed AVI through OpenCV's FFmpeg (``MjpegAviReader``, ``RawAviReader``): each
   run also prints the rate of iterating rbcflow's own reader and the ratio to it, a stricter
   reference (decoding MJPG straight to gray is ~1.4x faster than the cv2 loop, and the native
   uncompressed reader ~4x). Recall, median centre error and
   false-track rate come from :func:`rbcflow.frontend.scoring.score_tracks` against the generator's
   truth.
2. Memory: a 5-minute-equivalent stream (18,000 frames of 1024x768) through ``run_frontend``
   in a child process, whose peak RSS (VmHWM, see ``_memory.py``) is reported. The frames are
   rendered on the fly by the synthetic generator (a generator-backed reader, nothing held), so
   it takes a few minutes, mostly rendering.

With ``--cold`` every timed pass starts with the file evicted from the page cache
(``posix_fadvise(DONTNEED)`` after an ``fsync``), so that it is read from the disk, as an
acquisition larger than the memory is: uncompressed 1024x768 24-bit video is 141 MB/s of
recording, a 5-minute acquisition 42 GB. Without it both are timed on a file held in the page
cache, where an uncompressed decode loop is a memory copy.

Each speed row also prints the CPU time per frame of ``run_frontend`` (user + system, all
threads), to tell a CPU-bound run from one waiting on the disk.

Figures depend on the machine and on what else runs on it: compare the ratio, not absolute
frames/s, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _memory import peak_rss_mb


def cv2_decode_fps(path: Path) -> tuple[float, int]:
    """Frames/s of a bare ``cv2.VideoCapture.read`` loop over the whole file (nothing else)."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    t0 = time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    el = time.perf_counter() - t0
    cap.release()
    return n / el, n


def reader_decode_fps(path: Path) -> tuple[float, int]:
    """Frames/s of iterating rbcflow's own reader for the file (gray frames, nothing else)."""
    from rbcflow.io.video import open_video

    t0 = time.perf_counter()
    with open_video(path) as reader:
        n = sum(1 for _ in reader)
    return n / (time.perf_counter() - t0), n


def top_down_twin(path: Path) -> Path:
    """A copy of an uncompressed bottom-up 24-bit AVI with its rows reversed and declared
    top-down: the same pixels in the one uncompressed 24-bit layout this OpenCV build decodes
    without aborting (see the module docstring)."""
    from rbcflow.io.avi import read_avi_layout

    lay = read_avi_layout(path)
    stride = ((lay.width * 24 + 31) // 32) * 4
    twin = path.with_name(path.stem + "_topdown.avi")
    shutil.copyfile(path, twin)
    with open(twin, "r+b") as fh:  # one frame at a time: bounded memory
        for off in lay.offsets:
            fh.seek(int(off))
            rows = np.frombuffer(fh.read(stride * lay.height), np.uint8).reshape(lay.height, -1)
            fh.seek(int(off))
            fh.write(rows[::-1].tobytes())
        fh.seek(0)
        strf = fh.read(int(lay.offsets[0])).find(b"strf") + 8
        fh.seek(strf + 8)
        fh.write(struct.pack("<i", -lay.height))
    return twin


def decode_fps(path: Path, codec: str, twin: Path | None = None) -> tuple[float, int]:
    """The issue's reference: a bare cv2 read loop on the file, or for ``dib24`` on its
    top-down twin (same pixels; OpenCV aborts on the bottom-up original)."""
    return cv2_decode_fps(twin if codec == "dib24" else path)


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (written pages are flushed first), so that
    the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads), seconds."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def accuracy_and_speed(
    frames: int, seed: int, folder: Path, codec: str, cold: bool = False, preset: str = "easy"
) -> dict:
    from rbcflow.frontend import run_frontend
    from rbcflow.frontend.scoring import describe_cases, score_tracks
    from rbcflow.io.avi import write_avi
    from rbcflow.io.video import open_video
    from rbcflow.synthetic import preset_config, render_acquisition, write_frames

    cfg = preset_config(preset, width=1024, height=768, fps=60.0, n_frames=frames)
    acq = render_acquisition(cfg, rng=seed)
    path = folder / f"bench_{seed}_{codec}.avi"
    if codec == "dib24":
        write_avi(path, acq.frames(), fps=cfg.fps, bits=24)
    else:
        write_frames(acq.frames(), path, cfg.fps, "avi", codec)
    twin = top_down_twin(path) if codec == "dib24" else None

    def fresh() -> None:
        # cold: from the disk; warm: from the page cache (read once beforehand)
        if cold:
            for f in (path, twin):
                if f is not None:
                    evict(f)

    if not cold:
        decode_fps(path, codec, twin)  # warm the page cache
        reader_decode_fps(path)
    fresh()
    d1, n = decode_fps(path, codec, twin)
    fresh()
    r1, _ = reader_decode_fps(path)
    fresh()
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with open_video(path) as reader:
        reader_name = type(reader).__name__
        result = run_frontend(reader)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    fresh()
    d2, _ = decode_fps(path, codec, twin)
    fresh()
    r2, _ = reader_decode_fps(path)
    path.unlink()
    if twin is not None:
        twin.unlink()
    s = score_tracks(result.positions, acq.truth)
    cases = describe_cases(result.positions, acq.truth, s)
    fe_fps = result.n_frames / wall
    tracking_fps = result.n_frames / result.timings["tracking"]
    dec = 0.5 * (d1 + d2)
    return {
        "seed": seed,
        "codec": codec,
        "frames": n,
        "true_tracks": s["n_true"],
        "found_tracks": s["n_found"],
        "recall": s["recall"],
        "recall_whole": s["recall_whole"],
        "recall_reliable": s["recall_reliable"],
        "recall_reliable_whole": s["recall_reliable_whole"],
        "n_reliable": s["n_reliable"],
        "n_false": s["n_false"],
        "false_per_true": s["false_per_true"],
        "fragment_rate": s["fragment_rate"],
        "joins": result.n_joins,
        "median_error_px": s["median_error"],
        "false_rate": s["false_rate"],
        "coverage": s["coverage"],
        "decode_fps": dec,
        "decode_fps_before_after": (d1, d2),
        "reader": reader_name,
        "reader_fps": 0.5 * (r1 + r2),
        "ratio_to_reader": fe_fps / (0.5 * (r1 + r2)),
        "frontend_fps": fe_fps,
        "ratio": fe_fps / dec,
        "cpu_ms_per_frame": 1e3 * cpu / result.n_frames,
        "tracking_pass_fps": tracking_fps,
        "tracking_pass_ratio": tracking_fps / dec,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "cell_diameter_px": result.cell_diameter,
        "cases": cases,
    }


def memory_run(frames: int, seed: int) -> dict:
    """Child-process body: run the front end on a generator-backed 1024x768 stream."""
    from rbcflow.frontend import run_frontend
    from rbcflow.io.base import VideoReader
    from rbcflow.synthetic import SynthConfig, render_acquisition

    acq = render_acquisition(SynthConfig(n_frames=frames), rng=seed)

    class Rendered(VideoReader):
        def __init__(self):
            super().__init__()
            self.source = Path("synthetic-stream")
            self.fps = 60.0
            self.shape = acq.shape
            self.dtype = np.dtype(np.uint8)

        def __len__(self):
            return frames

        def get_frame(self, i):
            return acq.frame(i)

    n_crops = [0]

    def on_track(row, crops):
        n_crops[0] += len(crops)

    base = peak_rss_mb()
    t0 = time.perf_counter()
    result = run_frontend(Rendered(), on_track=on_track)
    return {
        "frames": result.n_frames,
        "tracks": len(result.tracks),
        "positions": len(result.positions),
        "crops_streamed": n_crops[0],
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mb_before_run": base,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400, help="frames of the speed/accuracy AVI")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument(
        "--codecs",
        nargs="+",
        default=["ffv1", "mjpg", "rgba", "dib24"],
        help="AVI codecs (rbcflow.synthetic.AVI_CODECS, or dib24: 24-bit uncompressed DIB)",
    )
    ap.add_argument(
        "--cold", action="store_true", help="read every timed pass from the disk, not the cache"
    )
    ap.add_argument(
        "--dir", type=Path, default=None, help="where to write the videos (a disk, not tmpfs)"
    )
    ap.add_argument(
        "--preset",
        choices=["easy", "hard"],
        default="easy",
        help="synthetic conditions (rbcflow.synthetic.PRESETS): easy ~10 cells on separate "
        "lanes; hard 25 in view, 4-28 px/frame, 14 px passes, flicker, drift, faint frames",
    )
    ap.add_argument(
        "--cases", action="store_true", help="print each fragmented and each false track"
    )
    ap.add_argument("--memory-frames", type=int, default=18000, help="0 skips the memory run")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_run(args.memory_frames, args.seeds[0])))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="rbcflow-bench-", dir=args.dir) as tmp:
        for seed, codec in [(s, c) for s in args.seeds for c in args.codecs]:
            r = accuracy_and_speed(args.frames, seed, Path(tmp), codec, args.cold, args.preset)
            rows.append(r)
            print(
                f"seed {seed} {codec}: {r['frames']} frames, {r['true_tracks']} true / "
                f"{r['found_tracks']} found tracks | recall {r['recall']:.3f}  median centre "
                f"error {r['median_error_px']:.3f} px  false tracks {r['false_rate']:.3f}  "
                f"coverage {r['coverage']:.3f}"
            )
            print(
                f"         decode {r['decode_fps']:.0f} fps (bare cv2 loop, before/after "
                f"{r['decode_fps_before_after'][0]:.0f}/{r['decode_fps_before_after'][1]:.0f}) | "
                f"run_frontend {r['frontend_fps']:.0f} fps, ratio {r['ratio']:.2f}, CPU "
                f"{r['cpu_ms_per_frame']:.2f} ms/frame | tracking "
                f"pass alone {r['tracking_pass_fps']:.0f} fps, ratio "
                f"{r['tracking_pass_ratio']:.2f}"
            )
            print(
                f"         rbcflow's own reader ({r['reader']}) alone {r['reader_fps']:.0f} fps: "
                f"run_frontend / that = {r['ratio_to_reader']:.2f}"
            )
            print(
                f"         {args.preset}: recall reliable {r['recall_reliable']:.3f} (whole "
                f"{r['recall_reliable_whole']:.3f}, {r['n_reliable']} tracks), all "
                f"{r['recall']:.3f} (whole {r['recall_whole']:.3f}) | false / true "
                f"{r['false_per_true']:.3f} ({r['n_false']}) | fragments "
                f"{r['fragment_rate']:.3f} | joins {r['joins']}"
            )
            print(f"         timings {r['timings_s']}")
            if args.cases:
                for line in r["cases"]:
                    print(f"         {line}")
    rec = [r["recall"] for r in rows]
    n_true = sum(r["true_tracks"] for r in rows)
    pooled = sum(r["recall"] * r["true_tracks"] for r in rows) / max(n_true, 1)
    print(
        f"\nACCURACY ({len(rows)} videos, {n_true} true tracks): recall {pooled:.3f} "
        f"(min {min(rec):.3f}; target >= 0.97), median centre error "
        f"{np.median([r['median_error_px'] for r in rows]):.3f} px (target <= 1.0), false "
        f"tracks {np.mean([r['false_rate'] for r in rows]):.3f} (target <= 0.02)"
    )
    pool = {
        k: sum(r[k] * r["true_tracks"] for r in rows) / max(n_true, 1)
        for k in ("recall_whole", "fragment_rate")
    }
    n_rel = sum(r["n_reliable"] for r in rows)
    rel = {
        k: sum(r[k] * r["n_reliable"] for r in rows) / max(n_rel, 1)
        for k in ("recall_reliable", "recall_reliable_whole")
    }
    print(
        f"{args.preset.upper()} (pooled): recall reliable {rel['recall_reliable']:.3f} "
        f"(whole {rel['recall_reliable_whole']:.3f}; hard target >= 0.98), all {pooled:.3f} "
        f"(whole {pool['recall_whole']:.3f}; >= 0.95), false / true "
        f"{sum(r['n_false'] for r in rows) / max(n_true, 1):.3f} (<= 0.01), median centre "
        f"error {np.median([r['median_error_px'] for r in rows]):.3f} px (<= 0.6), fragments "
        f"{pool['fragment_rate']:.3f} (<= 0.01), joins {sum(r['joins'] for r in rows)}"
    )
    for codec in args.codecs:
        sel = [r for r in rows if r["codec"] == codec]
        print(
            f"SPEED {codec} ({'cold: from the disk' if args.cold else 'warm: page cache'}, "
            f"{args.frames} frames): run_frontend / bare decode = "
            f"{np.median([r['ratio'] for r in sel]):.2f} (target >= 0.40); "
            f"{np.median([r['frontend_fps'] for r in sel]):.0f} vs "
            f"{np.median([r['decode_fps'] for r in sel]):.0f} frames/s; tracking pass alone "
            f"{np.median([r['tracking_pass_ratio'] for r in sel]):.2f}; against rbcflow's own "
            f"reader {np.median([r['ratio_to_reader'] for r in sel]):.2f} "
            f"({np.median([r['reader_fps'] for r in sel]):.0f} frames/s)"
        )
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")

    if args.memory_frames > 0:
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            "--memory-frames",
            str(args.memory_frames),
            "--seeds",
            str(args.seeds[0]),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        m = json.loads(out.strip().splitlines()[-1])
        print(
            f"MEMORY: {m['frames']} frames of 1024x768 ({m['frames'] / 60 / 60:.1f} min at "
            f"60 fps), {m['tracks']} tracks, {m['crops_streamed']} crops streamed: peak RSS "
            f"{m['peak_rss_mb']:.0f} MB (target < 1024; {m['peak_rss_mb_before_run']:.0f} MB "
            f"before the run), {m['wall_s']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
