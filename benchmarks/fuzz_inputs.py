"""Fuzz run: many mutated copies of the shipped sample video through the readers and front end.

Each mutated file is analysed in its own subprocess (so that an abort inside a native decoder is
counted, not fatal to the run) by ``open_video`` + iteration + ``run_frontend``. An outcome is
one of:

- ``ok``        analysed (possibly with warnings, e.g. truncated),
- ``handled``   refused with the project's own error (RbcflowError: a one-line message),
- ``unhandled`` any other exception (a bug),
- ``crash``     the process died on a signal (native decoder abort),
- ``timeout``   no answer within the time limit.

The target is zero ``unhandled``; ``crash`` and ``timeout`` are reported separately.

Usage::

    python benchmarks/fuzz_inputs.py                 # 60 mutants of sample_data/sample.avi
    python benchmarks/fuzz_inputs.py -n 200 --seed 1 --source other.avi
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import sys, traceback
from rbcflow.errors import RbcflowError
from rbcflow.frontend import run_frontend
from rbcflow.io import open_video
try:
    with open_video(sys.argv[1]) as reader:
        n = sum(1 for _ in reader)
        result = run_frontend(reader)
    print(f"ok frames={n} tracks={len(result.tracks)} warnings={len(reader.warnings)}")
    sys.exit(0)
except RbcflowError as exc:
    print("handled", str(exc).splitlines()[0][:200])
    sys.exit(3)
except Exception:
    traceback.print_exc()
    sys.exit(1)
"""


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random mutation of ``data``; returns the new bytes and a description."""
    buf = bytearray(data)
    kind = rng.choice(["truncate", "flip", "zero_block", "header", "duplicate", "shuffle"])
    n = len(buf)
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        return bytes(buf[:cut]), f"truncate at {cut}"
    if kind == "flip":
        k = int(rng.integers(1, 200))
        pos = rng.integers(0, n, k)
        for p in pos:
            buf[p] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf), f"flip {k} bits"
    if kind == "zero_block":
        start = int(rng.integers(0, n))
        size = int(rng.integers(1, 65536))
        buf[start : start + size] = bytes(min(size, n - start))
        return bytes(buf), f"zero {size} bytes at {start}"
    if kind == "header":
        k = int(rng.integers(1, 32))
        pos = rng.integers(0, min(n, 4096), k)
        for p in pos:
            buf[p] = int(rng.integers(0, 256))
        return bytes(buf), f"{k} random header bytes"
    if kind == "duplicate":
        start = int(rng.integers(0, n))
        size = int(rng.integers(1, 200_000))
        block = buf[start : start + size]
        at = int(rng.integers(0, n))
        return bytes(buf[:at] + block + buf[at:]), f"duplicate {len(block)} bytes to {at}"
    # shuffle: swap two blocks
    size = int(rng.integers(1, 100_000))
    a, b = sorted(int(x) for x in rng.integers(0, max(1, n - size), 2))
    blk_a, blk_b = bytes(buf[a : a + size]), bytes(buf[b : b + size])
    buf[a : a + size], buf[b : b + size] = blk_b, blk_a
    return bytes(buf), f"swap blocks of {size} at {a}, {b}"


def run_one(path: Path, timeout: float) -> tuple[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", WORKER, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return "timeout", ""
    if proc.returncode == 0:
        return "ok", proc.stdout.strip()
    if proc.returncode == 3:
        return "handled", proc.stdout.strip()
    if proc.returncode < 0:
        return "crash", f"signal {-proc.returncode}"
    return "unhandled", (proc.stderr.strip().splitlines() or ["?"])[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=60, help="number of mutated inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", type=Path, default=REPO / "sample_data" / "sample.avi")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per input")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    data = args.source.read_bytes()
    outcomes: collections.Counter[str] = collections.Counter()
    bad: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fixed = [
            (b"", "empty file"),
            (b"this is not a video\n" * 10, "text named .avi"),
            (rng.bytes(50_000), "random bytes"),
        ]
        cases = fixed + [mutate(data, rng) for _ in range(max(0, args.n - len(fixed)))]
        for i, (blob, what) in enumerate(cases):
            path = Path(tmp) / f"mutant {i:03d}.avi"
            path.write_bytes(blob)
            outcome, detail = run_one(path, args.timeout)
            outcomes[outcome] += 1
            print(f"{i:4d} {outcome:9s} {what:40s} {detail[:90]}", flush=True)
            if outcome in ("unhandled", "crash", "timeout"):
                bad.append(f"{i}: {what}: {outcome} {detail}")
    dt = time.perf_counter() - t0
    print(f"\ninputs tried: {len(cases)} in {dt:.0f} s from {args.source.name} (seed {args.seed})")
    for key in ("ok", "handled", "unhandled", "crash", "timeout"):
        print(f"  {key:9s} {outcomes[key]}")
    print(f"unhandled exceptions: {outcomes['unhandled']} (target 0)")
    for line in bad:
        print("  ", line)
    return 1 if outcomes["unhandled"] else 0


if __name__ == "__main__":
    sys.exit(main())
