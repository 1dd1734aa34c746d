"""CPU time per frame of each step of the front end, and of classification per track.

The load-robust split behind issue 13: CPU time (``time.thread_time`` of the thread doing the
step, or ``process_time`` when the step runs alone), not wall time, so that it means something
on a machine other work shares.

(a) The reading thread's steps, one at a time on ``--frames`` frames of the video (decode, 4x4
    block means, illumination fit, subtraction, variance filter, frame mean, the rest of the
    coarse detection: threshold, labelling, component statistics, splitting), then the
    refinement in batches of 16.
(b) A whole ``run_frontend`` with the main thread's clocks switched to its own CPU time:
    correlation (inside linking), the rest of linking, crops and track rows, refinement,
    and the main thread's total, against the process' CPU time per frame.
(c) With ``--tracks N``: classification CPU ms per track (both stages, one torch thread,
    batches of 32, the crops of ``benchmarks/bench_classify.make_tracks``).

Run (VIDEO: any acquisition, e.g. a 1024x768 synthetic AVI written as bench_analyze.py writes
its speed videos)::

    python benchmarks/bench_steps.py VIDEO.avi --frames 300 --tracks 1500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np


def reading_steps(path: str, n: int) -> dict[str, float]:
    from rbcflow.config import FrontEndConfig
    from rbcflow.frontend.background import median_stack, read_samples, sample_indices
    from rbcflow.frontend.calibration import calibrate
    from rbcflow.frontend.normalise import gain_offset
    from rbcflow.frontend.variance import downsample_image, local_variance
    from rbcflow.io.video import open_video

    cfg = FrontEndConfig()
    with open_video(path) as r:
        samples = read_samples(r, sample_indices(len(r), cfg.background.n_frames))
        bg = median_stack(samples)
        det = calibrate(bg, samples, cfg, r.dtype).detector
        del samples
        t: dict[str, float] = {}

        def timed(name, f, *a):
            c = time.thread_time()
            out = f(*a)
            t[name] = t.get(name, 0.0) + time.thread_time() - c
            return out

        it = iter(r)
        frames = [timed("decode", next, it) for _ in range(min(n, len(r)))]
    for f in frames:
        small = timed("block means", downsample_image, f, det.ds)
        g, o = timed("illumination fit", gain_offset, small, det.background_small)
        bs = det.background_small
        timed("subtraction", cv2.addWeighted, bs, -g, small, 1.0, -o)
        timed("variance filter", local_variance, small, det.window)
        timed("frame mean", cv2.mean, f)
        timed("coarse", det.coarse, f)
    coarse = [det.coarse(f) for f in frames]
    c = time.thread_time()
    for s in range(0, len(frames), 16):
        det.refine_many(frames[s : s + 16], coarse[s : s + 16])
    t["refinement"] = time.thread_time() - c
    parts = ("block means", "illumination fit", "subtraction", "variance filter", "frame mean")
    t["threshold, labels, statistics"] = t.pop("coarse") - sum(t[k] for k in parts)
    return {k: 1000 * v / len(frames) for k, v in t.items()}


def main_thread_steps(path: str) -> tuple[dict[str, float], float]:
    import rbcflow.frontend.run as run_mod
    import rbcflow.frontend.stream as stream_mod
    import rbcflow.frontend.tracking as tracking_mod
    from rbcflow.config import FrontEndConfig
    from rbcflow.io.video import open_video

    shim = types.SimpleNamespace(perf_counter=time.thread_time)  # the main thread's CPU clock
    for m in (run_mod, stream_mod, tracking_mod):
        m.time = shim
    corr = [0.0]
    orig = tracking_mod.correlation_shifts

    def correlation(*a, **k):
        c = time.thread_time()
        out = orig(*a, **k)
        corr[0] += time.thread_time() - c
        return out

    tracking_mod.correlation_shifts = correlation
    c0 = time.process_time()
    with open_video(path) as r:
        res = run_mod.run_frontend(r, FrontEndConfig(), on_track=lambda row, crops: None)
    cpu = time.process_time() - c0
    n, tm = res.n_frames, res.timings
    out = {
        "correlation (in linking)": corr[0],
        "linking, the rest": tm["linking"] - corr[0],
        "crops and track rows": tm["crops"],
        "refinement": tm["detection"],
        "main thread, all": tm["tracking"],
    }
    return {k: 1000 * v / n for k, v in out.items()}, 1000 * cpu / n


def classification(n: int) -> float:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_classify import make_tracks

    from rbcflow.classify.inference import load_classifier

    torch.set_num_threads(1)
    tracks = make_tracks(n, 32.0, np.random.default_rng(0))
    clf = load_classifier()
    clf.predict(tracks[:64])  # warm-up
    c = time.process_time()
    clf.predict_proba(tracks, batch_size=32)
    return 1000 * (time.process_time() - c) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--tracks", type=int, default=0, help="also classification (0: no)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"load average {os.getloadavg()[0]:.1f}; CPU ms per frame")
    print("(a) reading thread, one step at a time:")
    for k, v in reading_steps(args.video, args.frames).items():
        print(f"    {k:32s} {v:6.3f}")
    steps, cpu = main_thread_steps(args.video)
    print("(b) main thread, in a whole run_frontend:")
    for k, v in steps.items():
        print(f"    {k:32s} {v:6.3f}")
    print(f"    process CPU per frame            {cpu:6.3f}")
    if args.tracks:
        print(f"(c) classification: {classification(args.tracks):.2f} CPU ms per track")


if __name__ == "__main__":
    main()
