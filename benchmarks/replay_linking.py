"""Replay the linker on recorded detections (issue 12 diagnostic, not shipped).

``--record`` runs the front end once on a synthetic preset video (``diag_tracking.video``) and
keeps what its linker was given: each frame (a raw ``.npy`` memmap), its detections and their
masses, and the linker's calibrated arguments. Replaying then links those detections again
with the current :class:`rbcflow.frontend.tracking.Linker` (no detection, no crops: a change of
the linking logic is measured in seconds, on exactly the same detections) and scores the
tracks against the truth, with ``diag_tracking.describe``'s line per miss.

Usage::

    python benchmarks/replay_linking.py --seeds 2 3 --record
    python benchmarks/replay_linking.py --seeds 2 3 [--quiet]
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
from diag_tracking import describe, video


def record(seed: int, frames: int, preset: str, cache: Path) -> None:
    import rbcflow.frontend.run as run
    from rbcflow.io.video import open_video

    acq, path = video(seed, frames, preset, cache)
    store = np.lib.format.open_memmap(
        cache / f"frames_{preset}_{seed}.npy", "w+", np.uint8, (frames, *acq.shape)
    )
    dets, meta = [], {}
    original = run.link_iter

    def tee(linker, stream):
        meta.update(
            background=linker.background,
            template_half=linker.half,
            min_separation=linker.min_separation,
            crop_reach=linker.crop_reach,
        )

        def inner():
            for t, (frame, xy, mass) in enumerate(stream):
                store[t] = frame
                dets.append((np.array(xy), None if mass is None else np.array(mass)))
                yield frame, xy, mass

        return original(linker, inner())

    run.link_iter = tee
    try:
        with open_video(path) as reader:
            run.run_frontend(reader)
    finally:
        run.link_iter = original
    store.flush()
    with open(cache / f"dets_{preset}_{seed}.pkl", "wb") as fh:
        pickle.dump({"meta": meta, "dets": dets}, fh)


def replay(seed: int, preset: str, cache: Path, cfg=None) -> tuple[pd.DataFrame, int, float]:
    from rbcflow.config import TrackingConfig
    from rbcflow.frontend.tracking import Linker, link_iter

    with open(cache / f"dets_{preset}_{seed}.pkl", "rb") as fh:
        rec = pickle.load(fh)
    store = np.load(cache / f"frames_{preset}_{seed}.npy", mmap_mode="r")
    meta = rec["meta"]
    link = Linker(
        meta["background"],
        cfg or TrackingConfig(),
        template_half=meta["template_half"],
        min_separation=meta["min_separation"],
        crop_reach=meta["crop_reach"],
    )
    stream = ((np.asarray(store[t]), xy, m) for t, (xy, m) in enumerate(rec["dets"]))
    kept = []
    t0 = time.process_time()
    for _, _, done in link_iter(link, stream):
        kept += done
    cpu = time.process_time() - t0
    parts = [
        pd.DataFrame(
            {
                "track_id": tr.track_id,
                "frame": tr.frames,
                "x": tr.xs,
                "y": tr.ys,
                "detected": tr.detected,
            }
        )
        for tr in kept
    ]
    return pd.concat(parts, ignore_index=True), link.n_joins, cpu


def main() -> int:
    from rbcflow.frontend.scoring import describe_cases, score_tracks
    from rbcflow.synthetic import preset_config, render_acquisition

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--preset", default="hard")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rbcflow-diag"))
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    tot = np.zeros(6)
    for seed in args.seeds:
        if args.record or not (args.cache / f"dets_{args.preset}_{seed}.pkl").exists():
            record(seed, args.frames, args.preset, args.cache)
        cfg = preset_config(args.preset, width=1024, height=768, fps=60.0, n_frames=args.frames)
        acq = render_acquisition(cfg, rng=seed)
        pos, joins, cpu = replay(seed, args.preset, args.cache)
        s = score_tracks(pos, acq.truth)
        n, nr = s["n_true"], s["n_reliable"]
        tot += [
            n,
            nr,
            s["recall_whole"] * n,
            s["recall_reliable_whole"] * nr,
            s["n_false"],
            s["fragment_rate"] * n,
        ]
        print(
            f"seed {seed}: {n} true, rel whole {s['recall_reliable_whole']:.3f} rel "
            f"{s['recall_reliable']:.3f} all whole {s['recall_whole']:.3f} all "
            f"{s['recall']:.3f} false/true {s['false_per_true']:.3f} ({s['n_false']}) frag "
            f"{s['fragment_rate']:.3f} err {s['median_error']:.3f} joins {joins} linking cpu "
            f"{cpu:.1f} s",
            flush=True,
        )
        if not args.quiet:
            for line in describe(seed, acq, pos, s):
                print(line, flush=True)
            for line in describe_cases(pos, acq.truth, s):
                if line.startswith("false"):
                    print(f"seed {seed} {line}", flush=True)
    n = max(tot[0], 1)
    print(
        f"POOLED {args.seeds}: rel whole {tot[3] / max(tot[1], 1):.3f} all whole "
        f"{tot[2] / n:.3f} false/true {tot[4] / n:.3f} frag {tot[5] / n:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
