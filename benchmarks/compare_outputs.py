"""Behaviour check for refactors: run the shipped commands on fixed inputs, then compare two runs.

``run OUT`` writes a few synthetic acquisitions (several codecs and formats, fixed seeds) plus
the shipped sample under ``OUT/inputs``, then runs ``rbcflow analyze``, ``rbcflow track`` and
``rbcflow classify`` on them through the command line, as a user would. ``compare A B`` compares
two such folders: every CSV cell-by-cell (numbers to ``--tol``, text exactly), every PNG strip
pixel-by-pixel and the synthetic inputs frame by frame. Columns that differ by construction
between two runs (timestamps, absolute paths, params_id, version) are left out and listed.

Run::

    python benchmarks/compare_outputs.py run /tmp/before      # on the old code
    python benchmarks/compare_outputs.py run /tmp/after       # on the new code
    python benchmarks/compare_outputs.py compare /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# (name, synth arguments): a crowded MJPG, an uncompressed 24-bit AVI, a 16-bit TIFF stack and a
# PNG frame folder, all with fixed seeds.
INPUTS = [
    ("mjpg_crowded.avi", ["--frames", "300", "--cells", "18", "--seed", "5", "--codec", "mjpg"]),
    ("rgba.avi", ["--frames", "240", "--seed", "11", "--codec", "rgba", "--tt-fraction", "0.6"]),
    ("stack16.tif", ["--frames", "200", "--seed", "7", "--bit-depth", "16", "--size", "640x480"]),
    ("frames", ["--frames", "120", "--seed", "3", "--size", "512x384"]),
]
# Differ between any two runs by construction.
VOLATILE = {"analysed_at", "source", "output", "params_id", "rbcflow_version", "created"}
# Files a newer layout adds on purpose (the output folder's lock file, since 2026-12-01).
EXPECTED_NEW = {".rbcflow.lock"}


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "rbcflow", *args] if _has_main() else ["rbcflow", *args]
    subprocess.run(cmd, check=True, cwd=REPO)


def _has_main() -> bool:
    return (REPO / "rbcflow" / "__main__.py").exists()


def run(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    inputs = out / "inputs"
    inputs.mkdir(parents=True)
    videos = []
    for name, args in INPUTS:
        dest = inputs / name
        _cli("synth", str(dest) + ("/" if "." not in name else ""), *args, "--quiet")
        videos.append(dest)
    shutil.copy(REPO / "sample_data" / "sample.avi", inputs / "sample.avi")
    videos.append(inputs / "sample.avi")
    paths = [str(v) for v in videos]
    _cli("analyze", *paths, "--out", str(out / "analyze"), "--quiet")
    _cli("track", *paths, "--out", str(out / "track"), "--quiet")
    for v in videos:
        seq = out / "track" / v.name.split(".")[0] / "sequences"
        _cli("classify", str(seq), "--out", str(out / "classify" / f"{v.stem}.csv"))


def _frames(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(path.glob("*.png"))]
    if path.suffix == ".tif":
        import tifffile

        return list(tifffile.imread(path))
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def _compare_csv(a: Path, b: Path, tol: float) -> list[str]:
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    problems = []
    if list(ta.columns) != list(tb.columns):
        problems.append(f"{a.name}: columns {list(ta.columns)} != {list(tb.columns)}")
    if len(ta) != len(tb):
        return [*problems, f"{a.name}: {len(ta)} rows != {len(tb)}"]
    for col in ta.columns:
        if col in VOLATILE or col not in tb.columns:
            continue
        x, y = ta[col], tb[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same = np.isclose(xv, yv, rtol=0, atol=tol) | (np.isnan(xv) & np.isnan(yv))
            if not same.all():
                worst = np.nanmax(np.abs(xv - yv))
                problems.append(f"{a}: column {col}: {(~same).sum()} cells differ (max {worst})")
        elif not (x.fillna("<na>").astype(str) == y.fillna("<na>").astype(str)).all():
            problems.append(f"{a}: column {col}: text differs")
    return problems


def compare(a: Path, b: Path, tol: float) -> int:
    problems: list[str] = []
    n_csv = n_png = n_frames = 0
    for fa in sorted(a.rglob("*")):
        rel = fa.relative_to(a)
        fb = b / rel
        if fa.is_dir():
            continue
        if not fb.exists():
            problems.append(f"missing in {b}: {rel}")
            continue
        if fa.suffix == ".csv":
            problems += _compare_csv(fa, fb, tol)
            n_csv += 1
        elif fa.suffix == ".png" and "inputs" not in rel.parts:
            ia = cv2.imread(str(fa), cv2.IMREAD_UNCHANGED)
            ib = cv2.imread(str(fb), cv2.IMREAD_UNCHANGED)
            if ia.shape != ib.shape or not np.array_equal(ia, ib):
                problems.append(f"{rel}: pixels differ")
            n_png += 1
    for name, _ in INPUTS:
        fa, fb = _frames(a / "inputs" / name), _frames(b / "inputs" / name)
        if len(fa) != len(fb) or any(not np.array_equal(x, y) for x, y in zip(fa, fb, strict=True)):
            problems.append(f"inputs/{name}: frames differ")
        n_frames += len(fa)
    for fb in sorted(b.rglob("*")):
        if fb.is_file() and fb.name not in EXPECTED_NEW and not (a / fb.relative_to(b)).exists():
            problems.append(f"new in {b}: {fb.relative_to(b)}")
    print(f"compared {n_csv} CSV files, {n_png} PNG strips, {n_frames} input frames (tol {tol})")
    print(f"left out (differ by construction): {', '.join(sorted(VOLATILE))}")
    for p in problems:
        print("DIFF", p)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.out)
    else:
        sys.exit(compare(args.a, args.b, args.tol))
