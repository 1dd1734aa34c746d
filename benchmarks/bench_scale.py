"""Is the fraction right at another magnification, and does ``--scale auto`` find the scale?

Videos composited from the real crops of the two acquisitions held out from the shipped
models (needs ../shared/data/darrin2023; nothing is kept), with every crop magnified by 0.7,
1.0 or 1.4 about its centre (the cell 9, 13 or 18 px across; the crop stays 31x31, its border
background level filling what a shrunk crop leaves). Each video is analysed three ways: the
default scale (1.0), ``--scale auto`` and the right scale (1 / magnification); the table gives
the scale used, the front end's measured cell diameter, the fraction against the truth and
the verdict.

Usage::

    python benchmarks/bench_scale.py [--reliable 100] [--unreliable 0.5] [--n 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _mix import real_mix

HELD_OUT = ("BG1017_10s03", "BK1024_10s02")


def magnify(frames: np.ndarray, m: float) -> np.ndarray:
    """Each 31x31 crop scaled by ``m`` about its centre, back in a 31x31 crop (uint8)."""
    t, h, w = frames.shape
    c = (w - 1) / 2
    matrix = np.array([[m, 0, c - m * c], [0, m, c - m * c]], dtype=np.float64)
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        bg = float(np.median(np.r_[f[0], f[-1], f[:, 0], f[:, -1]]))
        out[i] = cv2.warpAffine(
            f,
            matrix,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=bg,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/darrin2023")
    ap.add_argument("--reliable", type=int, default=100)
    ap.add_argument("--unreliable", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=2, help="videos per magnification")
    args = ap.parse_args()
    from rbcflow.classify.inference import load_classifier
    from rbcflow.config import CropConfig, FrontEndConfig
    from rbcflow.io.sequences import Sequence, read_dataset
    from rbcflow.pipeline import AnalysisSettings, analyze

    t0 = time.time()
    seqs = [
        s
        for name in ("stage1_BG", "stage2_train")
        for s in read_dataset(Path(args.data) / name)
        if s.acquisition in HELD_OUT and len(s.frames) >= 6
    ]
    clf = load_classifier()
    rng = np.random.default_rng(3)
    n_un = int(round(args.reliable * args.unreliable / (1 - args.unreliable)))
    print(
        f"{args.reliable} reliable + {n_un} unreliable tracks per video, real held-out crops "
        "magnified; fraction (truth) per scale setting"
    )
    print(
        f"{'mag':>4} {'truth':>6} | {'setting':>8} {'scale':>6} {'diam px':>7} "
        f"{'fraction':>8} {'error':>7} verdict"
    )
    with tempfile.TemporaryDirectory(prefix="rbcflow-scale-") as tmp:
        for m in (0.7, 1.0, 1.4):
            by_label = {
                c: [Sequence(s.name, magnify(s.frames, m), s.label) for s in seqs if s.label == c]
                for c in (0, 1, 2)
            }
            for i, f in enumerate(np.linspace(0.6, 0.95, args.n)):
                n_tt = int(round(f * args.reliable))
                video = Path(tmp) / f"m{m}_{i}.tif"
                truth = real_mix(by_label, (n_tt, args.reliable - n_tt, n_un), video, rng, 40 + i)
                for setting, scale in (("default", 1.0), ("auto", None), ("right", 1 / m)):
                    fe = FrontEndConfig(crops=CropConfig(scale=scale))
                    res = analyze(video, clf, AnalysisSettings(frontend=fe), threaded=False)
                    row, rec = res.row, res.record["frontend"]
                    got = row["tank_treading_fraction"]
                    got = float("nan") if got is None else got
                    print(
                        f"{m:4.1f} {truth:6.3f} | {setting:>8} {rec['scale']:6.2f} "
                        f"{rec['cell_diameter_px']:7.1f} {got:8.3f} {got - truth:+7.3f} "
                        f"{row['verdict']}",
                        flush=True,
                    )
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
