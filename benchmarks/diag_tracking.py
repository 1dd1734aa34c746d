"""Diagnostic of the front end's misses on a synthetic preset (issue 12): not shipped.

For each counted true track that is not recovered whole (one found track over >= 80 % of its
frames) or is fragmented, one line: its kind, label, length, speed, lane, faint frames, border
frames, closest neighbour, how many of its frames a found track detected within 3 px, and its
found pieces (span, gap to the next, and where the next starts against the first's
``robust_end`` prediction: along / across the flow). The videos are written once to
``--cache`` and reused, so that a change of the linker can be compared on the same pixels.

Usage::

    python benchmarks/diag_tracking.py --seeds 2 3 [--frames 600] [--preset hard] [--tag NAME]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def video(seed: int, frames: int, preset: str, cache: Path):
    from rbcflow.synthetic import preset_config, render_acquisition, write_frames

    cfg = preset_config(preset, width=1024, height=768, fps=60.0, n_frames=frames)
    acq = render_acquisition(cfg, rng=seed)
    path = cache / f"{preset}_{seed}_{frames}.avi"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.avi")
        write_frames(acq.frames(), tmp, cfg.fps, "avi", "ffv1")
        tmp.rename(path)
    return acq, path


def describe(seed: int, acq, pos: pd.DataFrame, s: dict) -> list[str]:
    from rbcflow.frontend.joining import robust_end
    from rbcflow.frontend.tracks import Track

    truth, info = acq.truth, acq.tracks.set_index("track_id")
    cells = {c.track_id: c for c in acq._cells}
    rows, cols = acq.shape
    true_len = truth.groupby("track_id").size()
    counted = set(true_len[true_len >= 6].index.astype(int))
    per: dict[int, list[int]] = {}
    for f, t in s["pairs"].items():
        per.setdefault(t, []).append(f)
    m = pos.merge(truth, on="frame", suffixes=("_f", "_t"))
    m = m.assign(d=np.hypot(m.x_f - m.x_t, m.y_f - m.y_t))
    near = m[m.d <= 3.0]
    # closest other true cell, per true track
    tt = truth.merge(truth, on="frame", suffixes=("", "_o"))
    tt = tt[tt.track_id != tt.track_id_o]
    closest = np.hypot(tt.x - tt.x_o, tt.y - tt.y_o).groupby(tt.track_id).min()
    lines = []
    for t in sorted(counted):
        fs = sorted(per.get(t, []), key=lambda f: pos.loc[pos.track_id == f, "frame"].min())
        mine = near[near.track_id_t == t]
        share = mine.groupby("track_id_f").size().max() / true_len[t] if len(mine) else 0.0
        if share >= 0.8 and len(fs) < 2:
            continue
        c, r = cells[t], info.loc[t]
        tf = truth[truth.track_id == t]
        det = mine[mine.detected].frame.nunique() / len(tf)
        faint = 0 if c.fade is None else int((c.fade < 1).sum())
        border = int(((tf.y < 8) | (tf.y > rows - 9) | (tf.x < 8) | (tf.x > cols - 9)).sum())
        pieces = []
        for a_id, b_id in zip(fs, fs[1:] + [None], strict=False):
            pa = pos[pos.track_id == a_id].sort_values("frame")
            txt = f"{a_id}[{pa.frame.min()}-{pa.frame.max()}]"
            if b_id is not None:
                pb = pos[pos.track_id == b_id].sort_values("frame")
                a = Track()
                for f, x, y in zip(pa.frame, pa.x, pa.y, strict=True):
                    a.append(int(f), float(x), float(y), True)
                (lx, ly), (vx, vy) = robust_end(a)
                g = int(pb.frame.iloc[0] - pa.frame.iloc[-1])
                dx = pb.x.iloc[0] - (lx + vx * g)
                dy = pb.y.iloc[0] - (ly + vy * g)
                txt += f" gap {g} off ({dx:+.1f},{dy:+.1f})"
            pieces.append(txt)
        why = "miss" if not fs else ("frag" if len(fs) >= 2 else "short")
        lines.append(
            f"seed {seed} true {t:4d} {why:5s} {r.kind:13s} [{tf.frame.min()}-{tf.frame.max()}] "
            f"n={true_len[t]:3d} v={r.speed:5.1f} "
            f"y={r.y_mean:5.0f} faint={faint:2d} border={border:3d} "
            f"closest={closest.get(t, np.inf):5.1f} det={det:.2f} share={share:.2f} | "
            + "; ".join(pieces)
        )
    return lines


def main() -> int:
    from rbcflow.frontend import run_frontend
    from rbcflow.frontend.scoring import score_tracks
    from rbcflow.io.video import open_video

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--preset", default="hard")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rbcflow-diag"))
    ap.add_argument("--tag", default="run")
    ap.add_argument("--quiet", action="store_true", help="summary lines only")
    ap.add_argument("--reuse", action="store_true", help="score the tag's saved positions")
    args = ap.parse_args()
    tot = {"n": 0, "whole": 0, "rel": 0, "rel_whole": 0, "false": 0, "frag": 0}
    for seed in args.seeds:
        acq, path = video(seed, args.frames, args.preset, args.cache)
        saved = args.cache / f"{args.tag}_{args.preset}_{seed}.csv"
        if args.reuse:
            pos, joins, cpu, nf = pd.read_csv(saved), -1, 0.0, args.frames
        else:
            t0 = time.process_time()
            with open_video(path) as reader:
                res = run_frontend(reader)
            cpu = time.process_time() - t0
            pos, joins, nf = res.positions, res.n_joins, res.n_frames
            pos.to_csv(saved, index=False)
        s = score_tracks(pos, acq.truth)
        n, nr = s["n_true"], s["n_reliable"]
        tot["n"] += n
        tot["rel"] += nr
        tot["whole"] += round(s["recall_whole"] * n)
        tot["rel_whole"] += round(s["recall_reliable_whole"] * nr)
        tot["false"] += s["n_false"]
        tot["frag"] += round(s["fragment_rate"] * n)
        print(
            f"seed {seed}: {n} true, rel whole {s['recall_reliable_whole']:.3f} rel "
            f"{s['recall_reliable']:.3f} all whole {s['recall_whole']:.3f} all "
            f"{s['recall']:.3f} false/true {s['false_per_true']:.3f} ({s['n_false']}) frag "
            f"{s['fragment_rate']:.3f} err {s['median_error']:.3f} joins {joins} cpu "
            f"{cpu:.1f} s ({1e3 * cpu / nf:.1f} ms/frame)",
            flush=True,
        )
        if not args.quiet:
            for line in describe(seed, acq, pos, s):
                print(line, flush=True)
    n = max(tot["n"], 1)
    print(
        f"POOLED {args.seeds}: rel whole {tot['rel_whole'] / max(tot['rel'], 1):.3f} all whole "
        f"{tot['whole'] / n:.3f} false/true {tot['false'] / n:.3f} frag {tot['frag'] / n:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
