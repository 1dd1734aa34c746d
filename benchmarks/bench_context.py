"""What the front end's context measures do to the fraction on held-out composites.

The front end writes per track ``neighbour_frames``, ``contrast_rel``, ``sharpness_rel`` and
``sharpness_trend`` (``classify/labels.context_rules``; off by default). This runs
``bench_accuracy``'s front-end composites (videos composited from a held-out group's own real
crops, the front end run on them, the tracks classified by the fold members that never saw the
group) once, keeps their tracks tables, then relabels them with each context rule at several
thresholds and estimates the fraction (the report's estimator, rates nested as in
``bench_accuracy``)::

    python benchmarks/bench_context.py --cv cv --n 3 --tracks /tmp/context_tracks.csv

``--tracks`` caches the composites' tracks (re-read when present). Thresholds chosen on the
same composites flatter the rule: the table is per group, so a threshold can be judged on the
group it was not picked on.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from bench_accuracy import GROUPS, composites, group_rates, starts

from rbcflow.config import EstimateConfig, ReportConfig

RULES = {  # ReportConfig field -> thresholds tried
    "min_sharpness_rel": (0.5, 0.6, 0.7, 0.8),
    "min_contrast_rel": (0.5, 0.7, 0.85),
    "max_focus_drift": (0.3, 0.5, 0.8),
    "max_neighbour_frames": (0.0, 0.1, 0.25),
}


def score(tracks: pd.DataFrame, cfg: ReportConfig, nested: dict) -> pd.DataFrame:
    """Per video: the fraction (report's estimator) after relabelling with ``cfg``."""
    from rbcflow.classify.calibration import estimate_acquisition
    from rbcflow.classify.labels import relabel

    rows = []
    for (group, share, _video), t in tracks.groupby(["group", "share", "video"]):
        rates, temp = nested[group]
        t = relabel(t, cfg)
        e = estimate_acquisition(
            t["label"],
            t["rule"],
            rates,
            cfg,
            EstimateConfig(n_boot=400),
            p_tank_treading=t["p_tank_treading"].to_numpy(),
            temperature=temp,
        )
        truth = float(t["truth"].iloc[0])
        rows.append(
            {
                "group": group,
                "share": share,
                "err": abs(e["tank_treading_fraction"] - truth),
                "cover": e["ci_low"] <= truth <= e["ci_high"],
                "reliable": e["reliable"],
                "ruled_out": int((t["rule"] != "").sum()),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/darrin2023")
    ap.add_argument("--cv", default="cv")
    ap.add_argument("--n", type=int, default=3, help="videos per group and unreliable share")
    ap.add_argument("--groups", default="BK,BG1022")
    ap.add_argument("--shares", default="0.5,0.85")
    ap.add_argument("--tracks", help="cache of the composites' tracks (.csv)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    from rbcflow.classify.posterior import fit_temperature
    from rbcflow.io.outputs import write_csv_atomic
    from rbcflow.io.sequences import read_dataset

    t0 = time.time()
    cv = Path(args.cv)
    oof1, oof2 = (pd.read_csv(cv / f"oof_stage{s}.csv") for s in (1, 2))
    base = ReportConfig()
    thr1 = base.reliable_threshold
    groups = args.groups.split(",")
    nested = {}
    for name in groups:
        rates, o2, _ = group_rates(name, oof1, oof2, thr1)
        rel2 = o2[o2["label"] != 2]
        nested[name] = (
            rates,
            fit_temperature(rel2["p"].to_numpy(), (rel2["label"] == 0).to_numpy()),
        )
    if args.tracks and Path(args.tracks).exists():
        tracks = pd.read_csv(args.tracks, keep_default_na=True)
        tracks["rule"] = tracks["rule"].fillna("")
    else:
        seqs = [s for n in ("stage1_BG", "stage2_train") for s in read_dataset(Path(args.data) / n)]
        seqs = [s for s in seqs if s.acquisition not in ("BG1017_10s03", "BK1024_10s02")]
        kept: list[pd.DataFrame] = []
        shares = tuple(float(v) for v in args.shares.split(","))
        for name in groups:
            rel_pref, unrel_pref = GROUPS[name][2:]
            chosen = {
                c: [
                    s
                    for s in seqs
                    if s.label == c
                    and starts(s.acquisition, unrel_pref if c == 2 else rel_pref)
                    and len(s.frames) >= 6
                ]
                for c in (0, 1, 2)
            }
            rates, temp = nested[name]
            with tempfile.TemporaryDirectory(prefix="rbcflow-ctx-") as tmp:
                before = len(kept)
                composites(
                    name, chosen, cv, rates, temp, thr1, args.n, 60, Path(tmp), 7, kept, shares
                )
                for i, t in enumerate(kept[before:]):
                    kept[before + i] = t.assign(video=i)
        tracks = pd.concat(kept, ignore_index=True)
        if args.tracks:
            write_csv_atomic(Path(args.tracks), tracks)
    cols = ["neighbour_frames", "contrast_rel", "sharpness_rel", "sharpness_trend"]
    kept_by_net = tracks["p_reliable"] >= thr1
    print("context columns, tracks stage 1 keeps / rejects (quantiles 5, 50, 95 %):")
    for c in cols:
        q = [
            tracks.loc[m, c].quantile([0.05, 0.5, 0.95]).round(2).tolist()
            for m in (kept_by_net, ~kept_by_net)
        ]
        print(f"  {c}: kept {q[0]}, rejected {q[1]}")
    settings = [("none", None, None)] + [(f, f, v) for f, vs in RULES.items() for v in vs]
    out = []
    for label, field, value in settings:
        cfg = base if field is None else ReportConfig(**{field: value})
        s = score(tracks, cfg, nested)
        for (g, share), d in s.groupby(["group", "share"]):
            out.append(
                {
                    "rule": label,
                    "threshold": value,
                    "group": g,
                    "unreliable": share,
                    "mean": d["err"].mean(),
                    "max": d["err"].max(),
                    "cover": d["cover"].mean(),
                    "reliable": d["reliable"].mean(),
                    "ruled_out": d["ruled_out"].mean(),
                }
            )
    table = pd.DataFrame(out)
    print(table.round(3).to_string(index=False))
    print(f"({time.time() - t0:.0f} s, machine shared with other jobs)")


if __name__ == "__main__":
    main()
