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
(b) Speed. 1024x768 acquisitions of 300, 1,200 and 4,800 frames (5, 20 and 80 s at 60 fps;
    ``--sizes``) written as the lab camera writes them (uncompressed 24-bit AVI; ``--bits 8``
    for a monochrome camera; 8-bit where 24-bit would pass AVI 1.0's 4 GB) are analysed end to
    end (front end, both classifiers, shape features, tables, HTML report, run.json), each in a
    fresh process running what ``rbcflow analyze VIDEO --out OUT`` runs (``analyze_batch``; on
    the CPU the networks load in the batch's classifier process), under each thread setting of
    ``--thread-settings`` (torch intra-op and OpenCV threads while the front end runs; ``0:0``
    is the budget of :func:`rbcflow.threads.analyze_budget`), the settings interleaved so that
    load from other work spreads over all of them. Printed per setting:
    median wall and CPU time of the whole process (start-up, imports and model loading
    included) and the real-time factor RTF = wall / duration, the same inside the process,
    peak RSS (and the classifier process' beside it), and whether ``tracks.csv`` is identical
    to the first setting's (probabilities to 1e-6). Targets on 2 cores: 4,800 frames <= 12 s
    (RTF 0.15), 1,200 frames RTF <= 0.25.
    ``--device cuda`` runs the classifiers on a GPU (the same script, the same figures).
(c) Memory. Each timed run reports its own peak RSS. Target: under 1.5 GB, not growing with
    length.
(d) Start-up: ``rbcflow --version`` / ``--help`` (target <= 0.3 s) and the imports of analyze.

Figures measured while other work shares the machine are noisy: compare the settings of one
run rather than absolute figures across runs.

Run::

    python benchmarks/bench_analyze.py                      # everything, ~20 min on 2 cores
    python benchmarks/bench_analyze.py --skip-accuracy --skip-real   # speed, memory, start-up
    python benchmarks/bench_analyze.py --skip-accuracy --skip-real --sizes 300 --device cuda
    python benchmarks/bench_analyze.py --accuracy-n 3 --accuracy-frames 1200 --skip-speed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _memory import peak_rss_mb
from _mix import real_mix


def _child(mode: str, video: str, out: str, spec: str = "{}") -> None:
    """Runs in a fresh process: time one mode, print a JSON line with wall, CPU and peak RSS.

    ``spec``: JSON with ``torch`` and ``opencv`` (threads while the front end runs, 0: the
    budget's rule) and ``device`` (where the classifiers run).
    """
    from rbcflow.config import FrontEndConfig

    opts = json.loads(spec)
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
        # what `rbcflow analyze VIDEO --out OUT` runs: on the CPU the folders are checked here
        # and the networks load in the batch's classifier process (rbcflow.batch.remote)
        from rbcflow.batch import analyze_batch
        from rbcflow.classify.pending import PendingClassifier
        from rbcflow.memory import reuse_freed_memory
        from rbcflow.pipeline import AnalysisSettings
        from rbcflow.run_settings import StreamConfig

        reuse_freed_memory()  # as cli/analyze does
        device = opts.get("device", "cpu")
        t_load = time.perf_counter()
        if device == "cpu":
            clf = PendingClassifier(device="cpu")
        else:  # a named GPU loads here, as the command does
            from rbcflow.classify.inference import load_classifier

            clf = load_classifier(device=device)
        info["load_models_s"] = time.perf_counter() - t_load
        stream = StreamConfig(
            torch_threads=int(opts.get("torch", 0)), opencv_threads=int(opts.get("opencv", 0))
        )
        settings = AnalysisSettings(stream=stream)
        row = analyze_batch([video], out, clf, settings).iloc[0].to_dict()
        if row["status"] != "ok":
            raise SystemExit(f"analyze failed: {row['message']}")
        # the classifier process' peak (it has ended and been waited for)
        info["classifier_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        info.update(
            frames=row["frames"],
            tracks=row["tracks"],
            reliable=row["reliable"],
            fraction=row["tank_treading_fraction"],
            output=str(Path(out) / row["output"]),
        )
        record = json.loads((Path(out) / row["output"] / "run.json").read_text())
        info["timings"] = {
            k: round(v, 2) for k, v in record["timings_s"].items() if not k.startswith("frontend.")
        }
    info["wall_s"] = time.perf_counter() - t0
    info["cpu_s"] = time.process_time() - c0
    info["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(info))


def _run_child(mode: str, video: Path, out: Path, spec: dict | None = None) -> dict:
    """The child's own figures, plus the whole process (interpreter start-up, imports, model
    loading included): ``process_wall_s`` and ``process_cpu_s``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(video), str(out), json.dumps(spec or {})],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-3000:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["process_wall_s"] = wall
    info["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return info


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


def _settings(text: str) -> list[tuple[str, dict]]:
    """``torch:opencv`` pairs (0: the thread budget's rule) -> (label, child spec)."""
    from rbcflow.threads import analyze_budget, available_cores

    cores = available_cores()
    out = []
    for item in text.split(","):
        t, c = (int(v) for v in item.split(":"))
        b = analyze_budget(torch_threads=t, opencv_threads=c)
        label = f"torch {b.torch}, OpenCV {b.opencv}"
        if t == 0 and c == 0:
            label += " (budget)"
        elif b.torch == cores and b.opencv == cores:
            label += " (library defaults)"
        out.append((label, {"torch": t, "opencv": c}))
    return out


def _same_outputs(a: str, b: str) -> str:
    """tracks.csv of two runs: same tracks and labels, probabilities to 1e-6?"""
    import pandas as pd

    ta, tb = pd.read_csv(Path(a) / "tracks.csv"), pd.read_csv(Path(b) / "tracks.csv")
    if len(ta) != len(tb) or list(ta["track_id"]) != list(tb["track_id"]):
        return "DIFFERENT tracks"
    dp = max(
        float((ta[c] - tb[c]).abs().max()) if len(ta) else 0.0
        for c in ("p_reliable", "p_tank_treading")
    )
    same = (ta["label"] == tb["label"]).all() and dp <= 1e-6
    return f"{'identical' if same else 'DIFFERENT'} (max |dp| {dp:.1e})"


def startup(repeats: int = 5) -> None:
    def median_wall(args: list[str]) -> float:
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *args], check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        return statistics.median(walls)

    v = median_wall(["-m", "rbcflow", "--version"])
    h = median_wall(["-m", "rbcflow", "--help"])
    imp = median_wall(["-c", "import rbcflow.batch, rbcflow.classify.inference"])
    print(
        f"\n(d) start-up (median of {repeats}): rbcflow --version {v:.2f} s (target <= 0.3 s), "
        f"--help {h:.2f} s; importing what analyze needs {imp:.2f} s"
    )


def speed(
    work: Path,
    sizes: list[int],
    repeats: list[int],
    settings: list[tuple[str, dict]],
    bits: int,
    device: str,
    frontend: bool,
) -> None:
    from rbcflow.io.avi import write_avi
    from rbcflow.synthetic import SynthConfig, render_acquisition
    from rbcflow.threads import available_cores

    print(
        f"\n(b) speed and (c) memory: 1024x768 uncompressed {bits}-bit AVI at 60 fps, "
        f"{available_cores()} cores, load average {os.getloadavg()[0]:.1f} at the start, "
        f"classifiers on {device}; thread settings (torch intra-op, "
        "OpenCV) while the front end runs, interleaved; medians. RTF = wall / duration; "
        "'process' includes interpreter start-up, imports and model loading"
    )
    for n, reps in zip(sizes, repeats, strict=True):
        cfg = SynthConfig(width=1024, height=768, n_frames=n)
        video = work / f"speed_{n}.avi"
        t = time.perf_counter()
        # the AVI writer writes AVI 1.0 (< 4 GB): longer 24-bit videos are written as 8-bit
        b = bits if n * 1024 * 768 * bits // 8 < 0xFFFF_0000 else 8
        write_avi(video, render_acquisition(cfg, rng=7).frames(), fps=60.0, bits=b)
        duration = n / 60.0
        print(
            f"  {n} frames ({duration:.0f} s, {b}-bit): rendered and written in "
            f"{time.perf_counter() - t:.0f} s, {video.stat().st_size / 1e9:.2f} GB"
        )
        runs: dict[str, list[dict]] = {label: [] for label, _ in settings}
        for r in range(reps):
            for k, (label, spec) in enumerate(settings):
                out = work / f"out_{n}_{k}_{r}"
                runs[label].append(_run_child("analyze", video, out, {**spec, "device": device}))
        first = runs[settings[0][0]][0]["output"]
        for label, rs in runs.items():
            pw = statistics.median(r["process_wall_s"] for r in rs)
            pc = statistics.median(r["process_cpu_s"] for r in rs)
            w = statistics.median(r["wall_s"] for r in rs)
            rss = max(r["peak_rss_mb"] for r in rs)
            crss = max(r.get("classifier_rss_mb", 0.0) for r in rs)
            print(
                f"    {label:<34} process {pw:6.1f} s wall (RTF {pw / duration:4.2f}), "
                f"{pc:6.1f} s CPU ({1000 * pc / n:.2f} ms/frame, the load-robust figure); "
                f"in-process {w:6.1f} s (RTF {w / duration:4.2f}); "
                f"peak RSS {rss:5.0f} MB (+ {crss:4.0f} MB classifier process); "
                f"{rs[0]['tracks']} tracks; "
                f"outputs {_same_outputs(first, rs[0]['output'])}"
            )
        last = runs[settings[-1][0]][-1]
        print(f"    steps (s), last run: {last['timings']} (+ models {last['load_models_s']:.1f})")
        if frontend:
            fe = _run_child("frontend", video, work / "out_fe")
            print(
                f"    {'front end alone':<34} process {fe['process_wall_s']:6.1f} s wall, "
                f"{fe['process_cpu_s']:6.1f} s CPU"
            )
        video.unlink()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:6])
        from rbcflow.cli.script import quick_exit

        quick_exit(0)  # as the rbcflow script ends: no module teardown in process_wall_s
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accuracy-n", type=int, default=6)
    ap.add_argument("--accuracy-frames", type=int, default=1800)
    ap.add_argument("--accuracy-size", default="640x480")
    ap.add_argument("--accuracy-cells", type=float, default=24.0)
    ap.add_argument("--sizes", default="300,1200,4800", help="frames of the speed videos")
    ap.add_argument("--repeats", default="3,2,1", help="runs per setting, per size")
    ap.add_argument(
        "--thread-settings",
        default="2:2,1:2,0:0",
        help="torch:opencv thread pairs compared (0: the thread budget's rule)",
    )
    ap.add_argument("--bits", type=int, default=24, choices=(8, 24), help="AVI pixel depth")
    ap.add_argument("--device", default="cpu", help="where the classifiers run (cpu, cuda)")
    ap.add_argument("--frontend", action="store_true", help="also the front end alone")
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
            sizes = [int(v) for v in args.sizes.split(",")]
            reps = [int(v) for v in args.repeats.split(",")]
            reps = (reps + reps[-1:] * len(sizes))[: len(sizes)]
            settings = _settings(args.thread_settings)
            speed(work, sizes, reps, settings, args.bits, args.device, args.frontend)
            startup()


if __name__ == "__main__":
    main()
