"""Speed of classification: tracks/s against batch size and torch threads, then 6,000 tracks.

Usage::

    python benchmarks/bench_classify.py                   # sweep + 6,000 tracks at the default
    python benchmarks/bench_classify.py --sweep-tracks 0  # 6,000 tracks only
    python benchmarks/bench_classify.py --device cuda     # the same on a GPU

Crops are drawn procedurally (a dark-rimmed ellipse turning at random on a noisy background of
random level), so the similarity downsampling does real work. Timed: everything
:meth:`rbcflow.classify.inference.Classifier.predict` does (downsampling, normalisation, both
networks).

(a) Sweep: ``--sweep-tracks`` tracks through every (batch size, threads) pair, the pairs
    interleaved over ``--repeats`` rounds (so load from other work spreads over all of them);
    median wall time, tracks/s and CPU ms per track. Every pair's probabilities are compared
    with those of the first pair: batching changes float rounding only (target: 1e-6).
(b) ``--tracks`` tracks (6,000) at the default batch size with the given ``--threads``.
    Target: >= 150 tracks/s on 2 CPU cores (<= 40 s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from rbcflow.classify.inference import load_classifier
from rbcflow.classify.labels import label_tracks
from rbcflow.classify.sampling import similarity_indices_many
from rbcflow.threads import available_cores


def make_tracks(n: int, mean_length: float, rng: np.random.Generator) -> list[np.ndarray]:
    # Lengths >= 6 (the front end's minimum), exponential tail, mean `mean_length`.
    lengths = 6 + rng.geometric(1 / (mean_length - 5), n) - 1
    base = []
    for angle in range(0, 180, 15):
        img = np.zeros((31, 31), np.float32)
        cv2.ellipse(img, (15, 15), (6, 3), angle, 0, 360, 1.0, 2, cv2.LINE_AA)
        base.append(img)
    base = np.stack(base)
    tracks = []
    for t in lengths:
        bg = rng.uniform(100, 140)
        turn = np.cumsum(rng.random(t) < 0.2) % len(base)
        frames = bg - 0.4 * bg * base[turn] + rng.normal(0, 3.5, (t, 31, 31))
        tracks.append(np.clip(frames, 0, 255).astype(np.uint8))
    return tracks


def _timed(clf, tracks, batch: int, threads: int) -> tuple[float, float, np.ndarray]:
    torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    p = clf.predict_proba(tracks, batch_size=batch)
    return time.perf_counter() - t0, time.process_time() - c0, np.stack(p, axis=1)


def sweep(clf, tracks, batches, threads, repeats: int) -> None:
    pairs = [(b, t) for t in threads for b in batches]
    walls: dict = {p: [] for p in pairs}
    cpus: dict = {p: [] for p in pairs}
    probs: dict = {}
    for _ in range(repeats):
        for p in pairs:
            w, c, prob = _timed(clf, tracks, *p)
            walls[p].append(w)
            cpus[p].append(c)
            probs.setdefault(p, prob)
    ref = probs[pairs[0]]
    n = len(tracks)
    print(f"(a) {n} tracks, {repeats} interleaved rounds; median of each pair")
    head = ("batch", "threads", "wall s", "tracks/s", "CPU ms/track", "max|dp|")
    print("{:>6} {:>7} {:>7} {:>9} {:>12} {:>9}".format(*head))
    for p in pairs:
        w, c = statistics.median(walls[p]), statistics.median(cpus[p])
        dp = float(np.abs(probs[p] - ref).max())
        print(f"{p[0]:6d} {p[1]:7d} {w:7.2f} {n / w:9.0f} {1000 * c / n:12.2f} {dp:9.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=6000)
    ap.add_argument("--mean-length", type=float, default=32.0)
    ap.add_argument("--sweep-tracks", type=int, default=1000, help="0: no sweep")
    ap.add_argument("--batches", default="8,16,32,64,128,256")
    ap.add_argument("--threads", default="", help="comma-separated; default 1..cores (max 4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stage1")
    ap.add_argument("--stage2")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (the GPU path)")
    args = ap.parse_args()
    cores = available_cores()
    threads = [int(v) for v in args.threads.split(",") if v] or list(range(1, min(cores, 4) + 1))
    rng = np.random.default_rng(0)
    tracks = make_tracks(args.tracks, args.mean_length, rng)
    frames = sum(len(t) for t in tracks)
    clf = load_classifier(args.stage1, args.stage2, device=args.device)
    print(
        f"{len(tracks)} tracks, {frames} frames (mean length {frames / len(tracks):.1f}); "
        f"{cores} cores, device {clf.device}, torch default threads {torch.get_num_threads()}, "
        f"default batch {clf.default_batch_size}"
    )
    clf.predict(tracks[:64])  # warm-up
    if args.sweep_tracks > 0:
        batches = [int(v) for v in args.batches.split(",")]
        sweep(clf, tracks[: args.sweep_tracks], batches, threads, args.repeats)
    t0 = time.perf_counter()
    similarity_indices_many(tracks, clf.stage2.k)
    t_ssim = time.perf_counter() - t0
    torch.set_num_threads(threads[0])
    t0, c0 = time.perf_counter(), time.process_time()
    pred = clf.predict(tracks)
    t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
    pred["label"] = label_tracks(pred.p_reliable, pred.p_tank_treading)  # the one label rule
    print(
        f"(b) similarity downsampling alone: {t_ssim:.1f} s ({len(tracks) / t_ssim:.0f} tracks/s)"
    )
    print(
        f"    both stages, downsampling included, batch {clf.default_batch_size}, "
        f"{threads[0]} torch thread(s): {t_all:.1f} s wall, {c_all:.1f} s CPU "
        f"({len(tracks) / t_all:.0f} tracks/s); labels {pred.label.value_counts().to_dict()}"
    )
    met = len(tracks) / t_all >= 150
    print(f"    target >= 150 tracks/s: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
