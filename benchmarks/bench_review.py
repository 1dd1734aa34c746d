"""rbcflow review: a simulated reviewer, page load and decision save times.

1. Fraction error after 0, 25, 50, 100, 200 reviewed tracks on synthetic acquisitions analysed
   by ``rbcflow analyze`` (the shipped models); the reviewer answers with the synthetic truth
   (each analysed track takes the true cell it followed, within 6 px, in at least half of
   its frames; a track that follows no cell that long is unreliable), and the truth is the
   fraction of the true reliable cells seen in at least 6 frames (``NAME.tracks.csv``,
   :func:`rbcflow.synthetic.true_fraction`). Rows, on the same acquisitions:

   - ``tool``: the shipped order (:func:`rbcflow.review.order.review_order`, re-ranked after
     every decision) and estimate (:mod:`rbcflow.review.calibrated`); every decision goes
     through :func:`record_decision` (the real files) and the figure read back is
     ``tank_treading_fraction_reviewed``;
   - ``random``: random orders, the same estimate (in memory, the same function); ``random,
     plain count``: the same orders, reviewed labels and the other tracks' calls;
   - ``previous``: the order and stratified estimate shipped before (``_stratified.py``), and
     the random orders with that estimate;
   - ``before``: the fixed expected-change order with the plain count (``_old_order.py``).

   Then the reviews a random order needs (every 10 up to 300) for the tool's mean and max
   error after 25, 50 and 100, and whether the interval covers the truth.
2. The acquisition page with 2,000 tracks: server time to render it, and the time headless
   Chromium takes until the page is usable (``body[data-ready]``, the first strip shown).
3. One decision saved (``POST /decide``: review.csv, report.csv, run.json, report.html).

Usage::

    rbcflow synth u85s1.avi --frames 3600 --size 640x480 --cells 14 \\
        --unreliable-fraction 0.85 --seed 1
    rbcflow analyze u85s1.avi --out res/
    python benchmarks/bench_review.py res/ --truth u85s1.avi [--truth ...] --no-timing

   The videos themselves are not read again (only ``NAME.truth.csv`` and ``NAME.tracks.csv``
   beside them, and the results folder): they can be deleted after the analysis.

    python benchmarks/bench_review.py --learning-loop [--variants default,guarded,gentle,head-only]

4. ``--learning-loop`` (needs ../shared): :mod:`_learning_loop` (review a held-out shared
   acquisition, export-labels, fine-tune, score the same patient-day's other acquisitions).

Timings are taken on whatever machine runs it (say whether it was loaded).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _review_errors import STEPS, fraction_errors, reviews_needed

from rbcflow.review.store import Results, read_review


def fake_results(root: Path, n: int) -> str:
    """A results folder with one acquisition of ``n`` tracks (strips of 40 frames)."""
    from rbcflow.batch.acquisition import write_thumbnail
    from rbcflow.io.outputs import write_png_atomic, write_text_atomic
    from rbcflow.provenance import write_run_json
    from rbcflow.report.tables import report_table, write_report_csv

    rng = np.random.default_rng(0)
    folder = root / "big"
    (folder / "strips").mkdir(parents=True)
    p_rel, p_tt = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    label = np.where(p_rel < 0.5, "unreliable", np.where(p_tt < 0.5, "flipping", "tank-treading"))
    tracks = pd.DataFrame(
        {
            "track_id": np.arange(1, n + 1),
            "first_frame": 0,
            "n_frames": 40,
            "p_reliable": p_rel,
            "p_tank_treading": p_tt,
            "label": label,
            "rule": "",
        }
    )
    tracks.to_csv(folder / "tracks.csv", index=False)
    pd.DataFrame({"frame": [0, 1], "track_id": [1, 1], "x": [1.0, 2.0], "y": [1.0, 1.0]}).to_csv(
        folder / "positions.csv", index=False
    )
    for tid in tracks["track_id"]:
        strip = rng.integers(80, 140, (31, 31 * 40), dtype=np.uint8)
        write_png_atomic(folder / "strips" / f"{tid}.png", strip, fsync=False)
    write_thumbnail(folder / "thumbnail.png", np.full((480, 640), 120.0), 480)
    write_text_atomic(folder / "report.html", '<html><body>\n<p class="sub">x</p>\n</body></html>')
    write_run_json(folder / "run.json", {"input": {"frame_shape": [480, 640]}, "result": {}})
    row = {"acquisition": "big", "source": "/big.avi", "status": "ok", "output": "big", "fps": 60}
    write_report_csv(root / "report.csv", report_table([row]))
    return "big"


def page_and_save_times(n: int = 2000, repeats: int = 20) -> dict:
    import os
    import re
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        name = fake_results(root, n)
        from starlette.testclient import TestClient

        from rbcflow.review.server import create_app

        client = TestClient(create_app(root, token="t"), base_url="http://127.0.0.1")
        client.get(f"/a/{name}?token=t")
        t0 = time.perf_counter()
        for _ in range(5):
            client.get(f"/a/{name}")
        render = (time.perf_counter() - t0) / 5
        # the browser: from navigation to a usable page (first strip drawn)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rbcflow", "review", str(root), "--no-browser", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        url = next(m.group(1) for line in proc.stdout if (m := re.search(r"open (\S+)", line)))
        base, token = url.split("/?token=")
        # decisions over HTTP to the real server (uvicorn), as the page sends them
        import json
        import urllib.request

        saves: dict[float, list[float]] = {0.0: [], 0.3: []}
        for i in range(2 * repeats):
            pause = 0.0 if i < repeats else 0.3  # back to back, then at a fast human pace
            time.sleep(pause)
            req = urllib.request.Request(
                f"{base}/a/{name}/decide",
                data=json.dumps({"track_id": i + 1, "reviewed": "flipping"}).encode(),
                headers={"X-Rbcflow-Token": token, "Content-Type": "application/json"},
            )
            t0 = time.perf_counter()
            with urllib.request.urlopen(req) as r:
                assert r.status == 200
                r.read()
            saves[pause].append(time.perf_counter() - t0)
        assert len(read_review(Results(root).acquisition(name))) == 2 * repeats
        from playwright.sync_api import sync_playwright

        loads = []
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = b.new_page()
            for _ in range(3):
                t0 = time.perf_counter()
                page.goto(f"{base}/a/{name}?token={token}")
                page.wait_for_selector("body[data-ready='1']", state="attached")
                page.wait_for_selector("#loopcap:has-text('frames at')", state="attached")
                loads.append(time.perf_counter() - t0)
            b.close()
        proc.kill()
        proc.wait()
    return {
        "tracks": n,
        "render_s": render,
        "browser_usable_s": float(np.median(loads)),
        "save_burst_ms": 1000 * float(np.median(saves[0.0])),
        "save_median_ms": 1000 * float(np.median(saves[0.3])),
        "save_max_ms": 1000 * float(np.max(saves[0.3])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", type=Path, nargs="?", help="results folder of rbcflow analyze")
    ap.add_argument("--truth", type=Path, action="append", default=[], help="synthetic video")
    ap.add_argument("--random", type=int, default=10, help="random orders per acquisition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument(
        "--learning-loop",
        action="store_true",
        help="review a held-out shared acquisition, fine-tune, score the patient-day's others",
    )
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (learning loop)")
    ap.add_argument(
        "--variants",
        default="default,guarded",
        help="fine-tuning variants of the learning loop (_learning_loop.VARIANTS), comma-separated",
    )
    args = ap.parse_args()
    if args.learning_loop:
        from _learning_loop import SHARED, VARIANTS, learning_loop, report

        if not SHARED.is_dir():
            raise SystemExit(f"the learning loop needs the shared data at {SHARED}")
        variants = {v: VARIANTS[v] for v in args.variants.split(",")}
        df = learning_loop(variants, epochs=args.epochs, seed=args.seed)
        print(df.round(3).to_string())
        print(report(df))
        return
    if args.results is not None and args.truth:
        df = fraction_errors(args.results, args.truth, args.random, args.seed)
        for name, d in df.groupby("acquisition"):
            print(
                f"{name}: {int(d['tracks'].iloc[0])} tracks; error with every track "
                f"reviewed (tracking's floor) {d['floor'].iloc[0]:.3f}"
            )
        steps = df[df["reviewed"].isin(STEPS)]
        table = steps.groupby(["order", "reviewed"])["error"].agg(["mean", "max"])
        print("fraction error (mean, max over acquisitions; random: over orders too)")
        print(table.unstack("reviewed").round(3).to_string())
        print("error against the fraction with every track reviewed (the review's own part):")
        table = steps.groupby(["order", "reviewed"])["error_vs_all"].agg(["mean", "max"])
        print(table.unstack("reviewed").round(3).to_string())
        print("reviews a random order needs (shipped estimate, every 10) for the tool's error:")
        print(reviews_needed(df))
        print("interval covers the truth (share of acquisitions x orders):")
        cov = steps[
            steps["order"].isin(["tool", "random", "previous: its order, stratified estimate"])
        ]
        print(cov.groupby(["reviewed", "order"])["covered"].mean().unstack().round(2).to_string())
        print("interval width (mean):")
        print(cov.groupby(["reviewed", "order"])["width"].mean().unstack().round(3).to_string())
        tool = df[df["order"] == "tool"]
        print(tool.pivot(index="acquisition", columns="reviewed", values="error").round(3))
    if not args.no_timing:
        t = page_and_save_times()
        print(
            f"page of {t['tracks']} tracks: server render {1000 * t['render_s']:.0f} ms, usable "
            f"in Chromium after {1000 * t['browser_usable_s']:.0f} ms; decision saved in "
            f"{t['save_median_ms']:.1f} ms at 0.3 s between keys (median; max "
            f"{t['save_max_ms']:.1f}), {t['save_burst_ms']:.1f} ms back to back (median: the "
            "writer thread's report.csv/html writes hold the lock meanwhile)"
        )


if __name__ == "__main__":
    main()
