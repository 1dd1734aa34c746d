"""Concurrent ``analyze`` runs into one output folder: are rows ever lost?

Each trial starts two (or three) processes at the same instant (a start file they all wait
for), each running :func:`rbcflow.batch.analyze_batch` over its own inputs into one shared
``--out``. The analysis itself is replaced by a stand-in that sleeps a random 0-30 ms and
returns an ``ok`` row, so that a trial takes about a second and what is measured is the batch's
own work: claiming folders, reading, merging and rewriting ``report.csv`` under the lock. A row
is *lost* when one of the inputs of the trial has no row in ``report.csv`` at the end.

    python benchmarks/bench_concurrent.py                 # 20 trials of 2 and of 3 runs
    python benchmarks/bench_concurrent.py --trials 5 --inputs 12

``--worker OUT GO SEED INPUT...`` is one run (used by the trials and by
``tests/test_batch_reliability.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(out: str, go: str, seed: int, inputs: list[str]) -> None:
    """One run: wait for ``go`` to exist, then analyse ``inputs`` into ``out`` (stand-in)."""
    import random
    from types import SimpleNamespace

    import rbcflow.batch.analyze as batch
    from rbcflow.pipeline import base_row

    rng = random.Random(seed)

    def stand_in(source, out_dir, classifier, settings=None, *, folder, fingerprint, **_):
        time.sleep(rng.uniform(0, 0.03))
        row = {**base_row(Path(source), None), "status": "ok", "output": folder.name}
        row["input_hash"] = fingerprint["hash"][:19]
        return SimpleNamespace(row=row)

    batch.analyze_acquisition = stand_in
    Path(f"{go}.ready-{seed}").touch()
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    batch.analyze_batch(inputs, out, None, threaded=False)


def trial(root: Path, runs: int, inputs: int, seed: int) -> tuple[int, int, int]:
    """Start ``runs`` workers at once on ``inputs`` inputs each; returns (rows lost, rows
    expected, rows sharing a results folder with another row)."""
    import pandas as pd

    out, go = root / "out", root / "go"
    groups = []
    for r in range(runs):
        d = root / f"in{r}"
        d.mkdir()
        files = []
        for i in range(inputs):
            p = d / f"take{i}.avi"  # the same names in every run: claims race for folders
            p.write_bytes(f"run {r} input {i} seed {seed}".encode())
            files.append(str(p))
        groups.append(files)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), "--worker", str(out), str(go), str(seed * 10 + r), *g],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for r, g in enumerate(groups)
    ]
    deadline = time.monotonic() + 120
    while len(list(root.glob("go.ready-*"))) < runs and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.01)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"a run failed: {err.decode(errors='replace')[-2000:]}")
    expected = {str(Path(f).absolute()) for g in groups for f in g}
    report = pd.read_csv(out / "report.csv", encoding="utf-8-sig")
    shared = int(report["output"].duplicated(keep=False).sum())
    return len(expected - set(report["source"])), len(expected), shared


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--inputs", type=int, default=8, help="inputs per run")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out, go, seed, *inputs = args.worker
        worker(out, go, int(seed), inputs)
        return
    for runs in (2, 3):
        lost = total = shared = 0
        t0 = time.perf_counter()
        for t in range(args.trials):
            with tempfile.TemporaryDirectory() as d:
                n_lost, n, n_shared = trial(Path(d), runs, args.inputs, seed=t)
            lost += n_lost
            total += n
            shared += n_shared
        print(
            f"{runs} simultaneous runs x {args.trials} trials ({args.inputs} inputs each): "
            f"{lost} of {total} rows lost, {shared} sharing a results folder "
            f"({time.perf_counter() - t0:.0f} s)"
        )


if __name__ == "__main__":
    main()
