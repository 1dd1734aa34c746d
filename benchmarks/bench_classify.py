"""Speed of classification: 6,000 tracks (mean length 32 frames) through both stages.

Usage::

    python benchmarks/bench_classify.py [--tracks 6000] [--stage1 DIR] [--stage2 DIR]

Crops are drawn procedurally (a dark-rimmed ellipse turning at random on a noisy background of
random level), so the similarity downsampling does real work. Timed: everything
:meth:`rbcflow.classify.inference.Classifier.predict` does (downsampling, normalisation, both
networks).
Also times the similarity downsampling alone. Target: <= 60 s for 6,000 tracks on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from rbcflow.classify.inference import load_classifier
from rbcflow.classify.labels import label_tracks
from rbcflow.classify.sampling import similarity_indices_many


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=6000)
    ap.add_argument("--mean-length", type=float, default=32.0)
    ap.add_argument("--stage1")
    ap.add_argument("--stage2")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tracks = make_tracks(args.tracks, args.mean_length, rng)
    frames = sum(len(t) for t in tracks)
    print(
        f"{len(tracks)} tracks, {frames} frames (mean length {frames / len(tracks):.1f}), "
        f"torch threads {torch.get_num_threads()}"
    )
    clf = load_classifier(args.stage1, args.stage2, device=args.device)
    t0 = time.perf_counter()
    similarity_indices_many(tracks, clf.stage2.k)
    t_ssim = time.perf_counter() - t0
    clf.predict(tracks[:64])  # warm-up
    t0 = time.perf_counter()
    pred = clf.predict(tracks)
    t_all = time.perf_counter() - t0
    pred["label"] = label_tracks(pred.p_reliable, pred.p_tank_treading)  # the one label rule
    print(f"similarity downsampling alone: {t_ssim:.1f} s ({len(tracks) / t_ssim:.0f} tracks/s)")
    print(
        f"both stages, downsampling included: {t_all:.1f} s "
        f"({len(tracks) / t_all:.0f} tracks/s); labels {pred.label.value_counts().to_dict()}"
    )
    met = t_all * 6000 / len(tracks) <= 60
    print(f"target <= 60 s for 6,000 tracks: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
