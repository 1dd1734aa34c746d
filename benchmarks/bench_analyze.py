"""``rbcflow analyze`` end to end: accuracy against synthetic truth, speed, peak memory.

(a) Accuracy. Several synthetic acquisitions (``rbcflow.synthetic``) with true tank-treading
    fractions spread over 0.6-0.95 and half of the tracks unreliable are analysed with the
    shipped models; the reported fraction is printed beside the truth (the fraction among the
    true reliable tracks of at least 6 frames). Target: within 0.03.
(a2) Accuracy on real cell appearance. The same comparison on videos composited from the real,
    labelled crops of the two acquisitions held out from the shipped models' training (needs
    ../shared/data/darrin2023; the videos are made in a temporary folder and deleted), at
    50 %, 85 % and 95 % unreliable tracks (``--real-unreliable``). There are only 15
    tank-treading, 26 flipping and 27 unreliable held-out sequences, so each video draws its
    100 reliable tracks (and 100 to 1,900 unreliable ones) from them with replacement: errors
    on a sequence repeat, and the spread of the error is wider than independent cells would
    give. The per-patient validation of the classifiers (left-out patients and dates) is
    benchmarks/bench_accuracy.py.
(b) Speed. A 1024x768, 1,200-frame (20 s at 60 fps) acquisition written as the lab camera
    writes it (uncompressed 24-bit AVI) is analysed end to end (front end, both classifiers,
    shape features, tables, HTML report, run.json), beside the front end alone on the same
    file. Target: under 20 s (faster than the acquisition lasted).
(c) Memory. Each timed run happens in a fresh child process that reports its own peak RSS.
    Target: under 1.5 GB. ``--long`` adds a run on a 3x longer video to show that the peak does
    not grow with length.

Figures measured while other work shares the machine are noisy: compare the two speed lines of
one run rather than absolute figures across runs.

Run::

    python benchmarks/bench_analyze.py                      # all three, ~10 min on 2 cores
    python benchmarks/bench_analyze.py --skip-accuracy      # speed and memory only
    python benchmarks/bench_analyze.py --accuracy-n 3 --accuracy-frames 1200 --skip-speed
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _memory import peak_rss_mb
from _mix import real_mix


def _child(mode: str, video: str, out: str) -> None:
    """Runs in a fresh process: time one mode, print a JSON line with wall, CPU and peak RSS."""
    from rbcflow.config import FrontEndConfig

    t0 = time.perf_counter()
    c0 = time.process_time()
    info: dict = {"mode": mode}
    if mode == "frontend":
        from rbcflow.frontend import run_frontend
        from rbcflow.io.video import open_video

        with open_video(video) as reader:
            res = run_frontend(reader, FrontEndConfig(), on_track=lambda row, crops: None)
        info.update(frames=res.n_frames, tracks=len(res.tracks))
    else:
        from rbcflow.batch import analyze_acquisition
        from rbcflow.classify.inference import load_classifier

        t_load = time.perf_counter()
        clf = load_classifier()
        info["load_models_s"] = time.perf_counter() - t_load
        row = analyze_acquisition(video, out, clf).row
        info.update(
            frames=row["frames"],
            tracks=row["tracks"],
            reliable=row["reliable"],
            fraction=row["tank_treading_fraction"],
        )
        record = json.loads((Path(out) / row["output"] / "run.json").read_text())
        info["timings"] = {
            k: round(v, 2) for k, v in record["timings_s"].items() if not k.startswith("frontend.")
        }
    info["wall_s"] = time.perf_counter() - t0
    info["cpu_s"] = time.process_time() - c0
    info["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(info))


def _run_child(mode: str, video: Path, out: Path) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(video), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def accuracy(
    work: Path, n: int, frames: int, width: int, height: int, cells: float, seed: int
) -> None:
    from rbcflow.batch import analyze_acquisition
    from rbcflow.classify.inference import load_classifier
    from rbcflow.synthetic import SynthConfig, true_fraction, write_acquisition

    clf = load_classifier()
    fractions = np.linspace(0.6, 0.95, n)
    print(
        f"(a) accuracy: {n} synthetic acquisitions, {width}x{height}, {frames} frames, "
        f"{cells:g} cells in view, half of the tracks unreliable"
    )
    print(
        f"{'true TT':>8} {'drawn':>6} {'reported':>9} {'error':>7} {'95% CI':>15} "
        f"{'reliable':>8} {'tracks':>6} {'true rel.':>9}"
    )
    errors = []
    for i, f in enumerate(fractions):
        cfg = SynthConfig(
            width=width,
            height=height,
            n_frames=frames,
            cells_in_view=cells,
            tt_fraction=float(f),
            unreliable_fraction=0.5,
        )
        video = work / f"acc{i}.tif"
        write_acquisition(video, cfg, rng=seed + i)
        import pandas as pd

        truth = pd.read_csv(work / f"acc{i}.tracks.csv")
        expected = true_fraction(truth)
        long_enough = truth[truth["n_frames"] >= 6] if "n_frames" in truth else truth
        n_true_rel = int((long_enough["label"] != 2).sum())
        row = analyze_acquisition(video, work / "out", clf).row
        got = row["tank_treading_fraction"]
        err = (got - expected) if got is not None else float("nan")
        errors.append(err)
        ci = f"{row['ci_low']:.3f}-{row['ci_high']:.3f}" if got is not None else "-"
        print(
            f"{expected:8.3f} {f:6.3f} {got if got is not None else float('nan'):9.3f} "
            f"{err:+7.3f} {ci:>15} {row['reliable']:8d} {row['tracks']:6d} {n_true_rel:9d}"
        )
        video.unlink()
    e = np.abs(np.array(errors, dtype=float))
    print(
        f"    mean |error| {np.nanmean(e):.3f}, max |error| {np.nanmax(e):.3f}, "
        f"within 0.03: {int((e <= 0.03).sum())}/{len(e)}"
    )


HELD_OUT = ("BG1017_10s03", "BK1024_10s02")


def accuracy_real(
    work: Path, shared: Path, n: int, n_reliable: int, seed: int, shares: tuple[float, ...]
) -> None:
    from rbcflow.batch import analyze_acquisition
    from rbcflow.classify.inference import load_classifier
    from rbcflow.io.sequences import read_dataset

    if not (shared / "stage1_BG" / "dataset.csv").is_file():
        print(f"\n(a2) skipped: no labelled real data at {shared}")
        return
    seqs = [
        s
        for name in ("stage1_BG", "stage2_train")
        for s in read_dataset(shared / name)
        if s.acquisition in HELD_OUT and len(s.frames) >= 6
    ]
    by_label = {lab: [s for s in seqs if s.label == lab] for lab in (0, 1, 2)}
    clf = load_classifier()
    rng = np.random.default_rng(seed)
    print(
        f"\n(a2) real held-out crops ({', '.join(HELD_OUT)}: {len(by_label[0])} TT, "
        f"{len(by_label[1])} flipping, {len(by_label[2])} unreliable; drawn with replacement), "
        f"composited, the front end run on them; {n_reliable} reliable tracks per video"
    )
    print(
        f"{'unrel':>5} {'true TT':>8} {'reported':>9} {'error':>7} {'95% CI':>13} "
        f"{'counted':>8} {'reliable':>8} {'tracks':>6} {'leaked':>6} verdict"
    )
    errors, covered = [], []
    for share in shares:
        n_un = int(round(n_reliable * share / (1 - share)))
        for i, f in enumerate(np.linspace(0.6, 0.95, n)):
            n_tt = int(round(f * n_reliable))
            video = work / f"real{i}.tif"
            counts = (n_tt, n_reliable - n_tt, n_un)
            expected = real_mix(by_label, counts, video, rng, seed + i)
            row = analyze_acquisition(video, work / "out_real", clf).row
            got = row["tank_treading_fraction"]
            err = got - expected if got is not None else float("nan")
            errors.append((share, err))
            ok = got is not None and row["ci_low"] <= expected <= row["ci_high"]
            covered.append((share, ok))
            ci = f"{row['ci_low']:.3f}-{row['ci_high']:.3f}" if got is not None else "-"
            counted = row.get("fraction_counted")
            leaked = row.get("estimated_leaked")
            print(
                f"{share:5.2f} {expected:8.3f} {got if got is not None else float('nan'):9.3f} "
                f"{err:+7.3f} {ci:>13} {counted if counted is not None else float('nan'):8.3f} "
                f"{row['reliable']:8d} {row['tracks']:6d} "
                f"{leaked if leaked is not None else float('nan'):6.1f} {row.get('verdict')}"
            )
            video.unlink()
    for share in shares:
        e = np.abs(np.array([x for s, x in errors if s == share], dtype=float))
        c = np.array([x for s, x in covered if s == share])
        print(
            f"    {share:.2f} unreliable: mean |error| {np.nanmean(e):.3f}, max |error| "
            f"{np.nanmax(e):.3f}, within 0.03: {int((e <= 0.03).sum())}/{len(e)}, "
            f"interval coverage {c.mean():.2f}"
        )


def speed(work: Path, frames: int, long: bool) -> None:
    from rbcflow.io.avi import write_avi
    from rbcflow.synthetic import SynthConfig, render_acquisition

    runs = [("1024x768", 1024, 768, frames)]
    if long:
        runs.append(("1024x768 x3 long", 1024, 768, 3 * frames))
    print(f"\n(b) speed and (c) memory: uncompressed 24-bit AVI, {frames} frames at 60 fps")
    for label, w, h, n in runs:
        cfg = SynthConfig(width=w, height=h, n_frames=n)
        video = work / f"speed_{n}.avi"
        t = time.perf_counter()
        acq = render_acquisition(cfg, rng=7)
        write_avi(video, acq.frames(), fps=60.0, bits=24)
        print(
            f"    [{label}: rendered and written in {time.perf_counter() - t:.0f} s, "
            f"{video.stat().st_size / 1e9:.2f} GB]"
        )
        duration = n / 60.0
        fe = _run_child("frontend", video, work / "out_fe")
        e2e = _run_child("analyze", video, work / "out_e2e")
        for name, r in (("front end alone", fe), ("end to end", e2e)):
            print(
                f"    {label:>18} {name:<16} {r['wall_s']:6.1f} s wall "
                f"({r['frames'] / r['wall_s']:5.0f} frames/s, {duration / r['wall_s']:4.2f}x "
                f"real time), {r['cpu_s']:6.1f} s CPU, peak RSS {r['peak_rss_mb']:6.0f} MB, "
                f"{r['tracks']} tracks"
            )
        print(
            f"    {'':>18} end-to-end steps (s): {e2e['timings']} "
            f"(+ model loading {e2e['load_models_s']:.1f} s)"
        )
        video.unlink()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accuracy-n", type=int, default=6)
    ap.add_argument("--accuracy-frames", type=int, default=1800)
    ap.add_argument("--accuracy-size", default="640x480")
    ap.add_argument("--accuracy-cells", type=float, default=24.0)
    ap.add_argument("--speed-frames", type=int, default=1200)
    ap.add_argument("--long", action="store_true", help="also a 3x longer video (memory)")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--real-reliable", type=int, default=100)
    ap.add_argument(
        "--real-unreliable",
        default="0.5,0.85,0.95",
        help="shares of unreliable tracks of the real-crop composites (comma-separated)",
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "darrin2023",
        help="labelled real data for (a2)",
    )
    ap.add_argument("--seed", type=int, default=100)
    args = ap.parse_args()
    w, h = (int(v) for v in args.accuracy_size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="rbcflow-bench-") as d:
        work = Path(d)
        if not args.skip_accuracy:
            accuracy(
                work, args.accuracy_n, args.accuracy_frames, w, h, args.accuracy_cells, args.seed
            )
        if not args.skip_real:
            accuracy_real(
                work,
                args.shared,
                args.accuracy_n,
                args.real_reliable,
                args.seed,
                tuple(float(v) for v in args.real_unreliable.split(",")),
            )
        if not args.skip_speed:
            speed(work, args.speed_frames, args.long)


if __name__ == "__main__":
    main()
