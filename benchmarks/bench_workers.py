"""Execution engines of ``rbcflow analyze`` (issue 17): one worker, two, a local Dask cluster.

Makes a batch of synthetic acquisitions (default 6 x 20 s: 1,200 frames at 60 fps, 480x360,
6 cells in view: a size that keeps a run to minutes on 2 cores) in a temporary folder, then
analyses it with ``--workers 1``, ``--workers 2`` and ``--scheduler local`` (a LocalCluster of
2 processes x 1 thread), each in a fresh child process, and prints

- the wall time of each, the speed-up of 2 workers over 1 (target >= 1.6 on 2 cores), and
  the whole command's wall and CPU time (the child process and its workers: imports and model
  loading included), with the ceiling that CPU time sets: on C cores two workers cannot beat
  C x (one worker's wall) / (two workers' CPU time);
- whether the reports are identical (report.csv but ``analysed_at``; every tracks.csv);
- the Dask overhead per acquisition (its wall time less the 2-worker pool's, per acquisition);
- the peak resident memory per worker (VmHWM) and the machine's load before and after.

``--device cuda`` (or ``auto``) also runs the batch with the classifiers on the GPU against the
CPU, one worker and two, in the same run; without a CUDA device it says so and measures the CPU.

Usage::

    python benchmarks/bench_workers.py                 # 6 x 1200 frames, CPU
    python benchmarks/bench_workers.py --device auto   # and GPU classification where there is one
    python benchmarks/bench_workers.py --acquisitions 4 --frames 600 --size 320 240  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "--child"


def make_batch(folder: Path, n: int, frames: int, size: tuple[int, int]) -> Path:
    from rbcflow.synthetic import SynthConfig, write_acquisition

    cfg = SynthConfig(width=size[0], height=size[1], n_frames=frames, cells_in_view=6)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_acquisition(folder / f"acq{i:02d}.avi", cfg, rng=100 + i)
    return folder


def code_hash() -> str:
    """SHA-256 of rbcflow's sources as this process finds them (a shared working tree may
    change between two runs: then their reports may differ for that reason alone)."""
    import hashlib

    import rbcflow

    digest = hashlib.sha256()
    for path in sorted(Path(rbcflow.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def child(data: str, out: str, workers: str, scheduler: str, device: str) -> None:
    """One configuration, in this (fresh) process: prints a JSON line."""
    scheduler = scheduler or None
    code = code_hash()
    from rbcflow.batch import analyze_batch
    from rbcflow.cli.run_options import load_checked_classifier
    from rbcflow.memory import peak_rss_bytes

    t_load = time.perf_counter()
    # as the command gets it: on the CPU the folders only, loaded where the acquisitions run
    clf = load_checked_classifier(None, None, False, device)
    peaks: dict[int, int] = {}

    def done(event):
        if event.peak_rss:
            peaks[event.worker_pid] = max(peaks.get(event.worker_pid, 0), event.peak_rss)

    t0 = time.perf_counter()
    rows = analyze_batch([data], out, clf, workers=int(workers), scheduler=scheduler, on_done=done)
    wall = time.perf_counter() - t0
    with_models = time.perf_counter() - t_load
    classify = 0.0
    for name in rows.output:
        record = json.loads((Path(out) / name / "run.json").read_text())
        classify += record["timings_s"].get("classify_tail", 0.0)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "wall_with_models_s": with_models,
                "parent_loaded_torch": "torch" in sys.modules,
                "frames": int(rows.frames.sum()),
                "ok": int((rows.status == "ok").sum()),
                "worker_peak_mib": max(peaks.values(), default=0) / 1024**2,
                "parent_peak_mib": peak_rss_bytes() / 1024**2,
                "classify_tail_s": classify,
                "code": code,
                "code_after": code_hash(),
            }
        )
    )


def run(data: Path, out: Path, workers: int, scheduler: str | None, device: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        CHILD,
        str(data),
        str(out),
        str(workers),
        scheduler or "",
        device,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and its reaped workers
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(res.stdout.strip().splitlines()[-1]) | {
        "process_wall_s": wall,
        "process_cpu_s": cpu,
    }


def same_reports(a: Path, b: Path) -> str:
    """``identical``, or what differs (report.csv columns, acquisitions whose tracks.csv)."""
    import pandas as pd

    def table(out: Path) -> pd.DataFrame:
        return pd.read_csv(out / "report.csv", keep_default_na=False).drop(columns=["analysed_at"])

    ta, tb = table(a), table(b)
    if ta.shape != tb.shape or list(ta.columns) != list(tb.columns):
        return f"different shapes {ta.shape} / {tb.shape}"
    cols = [c for c in ta.columns if not ta[c].equals(tb[c])]
    tracks = [
        n
        for n in ta.output
        if not pd.read_csv(a / n / "tracks.csv").equals(pd.read_csv(b / n / "tracks.csv"))
    ]
    if not cols and not tracks:
        return "identical"
    return f"DIFFERENT: report.csv columns {cols}, tracks.csv of {tracks}"


def bytes_per_track(device: str, n: int = 64) -> float:
    """Memory one track's classification holds, bytes: on a GPU the allocator's peak over a
    batch of ``n``; on the CPU the largest stage's layer outputs (forward hooks)."""
    import numpy as np
    import torch

    from rbcflow.classify.inference import load_classifier

    clf = load_classifier(device=device)
    crops = [np.random.default_rng(i).integers(90, 160, (60, 31, 31), np.uint8) for i in range(n)]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        clf.predict(crops, batch_size=n)
        return (torch.cuda.max_memory_allocated() - base) / n
    per_stage = []
    for stage in (clf.stage1, clf.stage2):
        total = [0]

        def hook(module, inputs, output, total=total):
            for o in output if isinstance(output, (tuple, list)) else (output,):
                if torch.is_tensor(o):
                    total[0] += o.numel() * o.element_size()

        leaves = [m for m in stage.network.modules() if not list(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            clf._run(stage, crops, n)
        finally:
            for h in handles:
                h.remove()
        per_stage.append(total[0] / n)
    return max(per_stage)


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--acquisitions", type=int, default=6)
    ap.add_argument("--frames", type=int, default=1200, help="frames each (60 fps)")
    ap.add_argument("--size", type=int, nargs=2, default=(480, 360), metavar=("W", "H"))
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (GPU against CPU)")
    ap.add_argument("--no-dask", action="store_true", help="skip --scheduler local")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    devices = ["cpu"]
    if args.device in ("cuda", "auto"):
        if cuda_available():
            devices.append("cuda")
        else:
            print("no CUDA device here: measuring the CPU only")
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        data = make_batch(root / "data", args.acquisitions, args.frames, tuple(args.size))
        print(
            f"batch: {args.acquisitions} x {args.frames} frames of {args.size[0]}x{args.size[1]} "
            f"(made in {time.perf_counter() - t0:.0f} s)"
        )
        for device in devices:
            print(
                f"[{device}] memory per classified track: {bytes_per_track(device) / 2**20:.2f} MiB"
            )
        previous: dict = {}
        for device in devices:
            runs = {}
            for label, workers, scheduler in (
                ("--workers 1", 1, None),
                ("--workers 2", 2, None),
                ("--scheduler local", 1, "local"),
            ):
                if scheduler and (args.no_dask or device != "cpu"):
                    continue
                out = root / f"out-{device}-{label.strip('-').replace(' ', '')}"
                r = runs[label] = run(data, out, workers, scheduler, device) | {"out": out}
                print(
                    f"[{device}] {label:18s} wall {r['wall_s']:6.1f} s  "
                    f"{r['frames'] / r['wall_s']:6.0f} frames/s  ok {r['ok']}  "
                    f"peak/worker {r['worker_peak_mib']:.0f} MiB  "
                    f"classify tail {r['classify_tail_s']:.1f} s; whole command "
                    f"{r['process_wall_s']:.1f} s wall, {r['process_cpu_s']:.1f} s CPU "
                    f"(parent loaded torch: {r['parent_loaded_torch']})"
                )
            one, two = runs["--workers 1"], runs["--workers 2"]
            codes = {c for r in runs.values() for c in (r["code"], r["code_after"])}
            if len(codes) > 1:
                print(f"[{device}] NOTE: rbcflow's sources changed during the runs ({codes})")
            print(f"[{device}] speed-up, 2 workers over 1: {one['wall_s'] / two['wall_s']:.2f}x")
            cores = os.cpu_count() or 1
            print(
                f"[{device}] whole command: {one['process_wall_s'] / two['process_wall_s']:.2f}x; "
                f"one worker keeps {one['process_cpu_s'] / one['process_wall_s']:.2f} cores "
                f"busy, so {cores} cores allow at most "
                f"{cores * one['process_wall_s'] / two['process_cpu_s']:.2f}x "
                "(2 workers' CPU time spread over every core)"
            )
            print(f"[{device}] reports identical (1 vs 2): {same_reports(one['out'], two['out'])}")
            if "--scheduler local" in runs:
                d = runs["--scheduler local"]
                per = (d["wall_s"] - two["wall_s"]) / args.acquisitions
                same = same_reports(one["out"], d["out"])
                print(f"[{device}] reports identical (1 vs Dask): {same}")
                print(
                    f"[{device}] Dask overhead per acquisition (vs the 2-worker pool): {per:+.2f} s"
                )
            if device == "cuda":
                cpu1 = previous["--workers 1"]
                print(
                    f"[cuda] GPU against CPU classification, 1 worker: wall "
                    f"{cpu1['wall_s']:.1f} -> {one['wall_s']:.1f} s"
                )
            previous = runs
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(*sys.argv[2:6], sys.argv[6])
    else:
        main()
