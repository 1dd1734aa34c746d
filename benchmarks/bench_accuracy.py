"""How right is the tank-treading fraction on a patient the models never saw?

The headline validation of rbcflow's classifiers (docs/method.md). It needs the real labelled
data (``../shared/data/darrin2023``) and the fold members that ``models/train_defaults.py``
writes to ``--cv-out`` (each member trained without one patient or one acquisition date).

Usage::

    python models/train_defaults.py --data ../shared/data/darrin2023 --out rbcflow/models \\
        --cv-out cv
    python benchmarks/bench_accuracy.py --data ../shared/data/darrin2023 --cv cv

1. Per held-out group, the paper's figures on the original sequences: stage 1 (left one date
   out) reliable recall and unreliable rejection; stage 2 (left one patient out) flipping
   recall and tank-treading recall; ROC AUC of each.
2. End to end, per held-out group: many virtual acquisitions drawn from the group's own
   sequences (``--variants`` label-preserving variants of each: mirror, time reversal,
   contrast, size, noise; so that an acquisition of 150 reliable and 2,850 unreliable tracks
   is not the same few sequences repeated), at 50 %, 85 % and 95 % unreliable and true
   fractions 0.60-0.99. Each track is classified by the members that never saw the group, the
   fraction is estimated by each estimator with rates validated on the OTHER groups only
   (nested: no group helps correct itself), and the mean and max absolute error and the
   interval's coverage are printed per group and unreliable share.

Estimators (``--methods``): ``naive``, ``stage2``, ``adjusted``, ``em`` (the default) and the
ones that read stage 1's scores too, ``soft``, ``leakmix``, ``blend``
(:mod:`rbcflow.classify.leakage`), given the other groups' out-of-fold predictions as their
calibration blocks. ``--pools FILE`` caches the variants' probabilities (the slow part) so that
a second run with other ``--methods`` or ``--seed`` (the virtual acquisitions' draws) starts
at once; ``--rows FILE`` writes every acquisition's estimates and intervals. ``--oracle stage1``,
``stage2`` or ``both`` replaces that stage's calls (and validated rates) by the truth in the
virtual acquisitions, ``leak`` (``leak+stage2``) only stage 1's leak (benchmarks/_oracle.py):
where the error comes from; the composites are not affected. ``--tta stage1``, ``stage2`` or
``both`` gives that stage's members test-time views (``--tta-views``; benchmarks/_tta.py): its
out-of-fold predictions (figures, rates, temperature) and variants are made again with them.

Groups: ``BK`` (reliable cells of patient BK, unreliable of date BG1017), ``BM`` (BM; BG1022),
``BG1017`` and ``BG1022`` (reliable and unreliable of that date; stage 2 never saw patient BG).
The public data hold real unreliable sequences of one patient only (BG): the unreliable pools
are BG's for every group.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _mix import real_mix
from _oracle import ORACLES, apply_oracle, call_split, leak_table, oracle_rates
from _tta import TTA_CHOICES, changed_calls, oof_with_views, stages_of

from rbcflow.config import ReportConfig

GROUPS = {  # name -> stage-1 fold, stage-2 fold, reliable prefixes, unreliable prefixes
    "BK": ("BG1017+BK", "BK", ("BK",), ("BG1017",)),
    "BM": ("BG1022+BM", "BM", ("BM",), ("BG1022",)),
    "BG1017": ("BG1017+BK", "BG", ("BG1017",), ("BG1017",)),
    "BG1022": ("BG1022+BM", "BG", ("BG1022",), ("BG1022",)),
}
SHARES = (0.5, 0.85, 0.95)
FRACTIONS = (0.6, 0.7, 0.8, 0.9, 0.99)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(p) for p in prefixes)


def stage_figures(oof1: pd.DataFrame, oof2: pd.DataFrame, thr1: float) -> list[dict]:
    rows = []
    for fold, d in oof1.groupby("fold"):
        rel = d["label"] != 2
        kept = d["p"] >= thr1
        rows.append(
            {
                "stage": 1,
                "held_out": fold,
                "n": len(d),
                "reliable_recall": kept[rel].mean(),
                "unreliable_rejection": (~kept[~rel]).mean(),
                "auc": _auc(d["p"].to_numpy(), rel.to_numpy()),
                # the ranking's worth whatever the threshold: rejection where 95 % are kept
                "rejection_at_recall_0.95": float(
                    (d["p"][~rel] < np.quantile(d["p"][rel], 0.05)).mean()
                ),
            }
        )
    for fold, d in oof2[oof2["label"] != 2].groupby("fold"):
        tt = d["label"] == 0
        called_tt = d["p"] >= 0.5
        rows.append(
            {
                "stage": 2,
                "held_out": fold,
                "n": len(d),
                "flipping_recall": (~called_tt[~tt]).mean(),
                "tank_treading_recall": called_tt[tt].mean(),
                "auc": _auc(d["p"].to_numpy(), tt.to_numpy()),
            }
        )
    return rows


def _mild(x: np.ndarray, rng: np.random.Generator, length: int | None) -> np.ndarray:
    """Another draw of the same cell as the same camera sees it: mirror image across the flow
    axis, time reversal, camera noise, a centring error of up to 1 px (no change of look)."""
    x = np.array(x, dtype=np.float32, copy=True)
    n = len(x) if length is None else length
    if rng.random() < 0.5:
        x = x[:, ::-1, :]
    if rng.random() < 0.5:
        x[:n] = x[:n][::-1]
    dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
    x[:n] = np.roll(x[:n], (dy, dx), axis=(1, 2))
    x[:n] += rng.normal(0.0, 0.1, x[:n].shape).astype(np.float32)
    return np.ascontiguousarray(x)


def variant_probabilities(
    member, seqs, stage: int, k: int, n_var: int, seed: int, heavy: bool = False, tta=()
) -> np.ndarray:
    """(len(seqs), n_var) probabilities of the stage's class of interest; variant 0 = as is.

    Variants are :func:`_mild` (the same population drawn again), or with ``heavy`` the
    training augmentation (each sequence given its own contrast, size, blur: harsher than one
    acquisition's spread). ``tta``: the network's test-time views (benchmarks/_tta.py)."""
    from rbcflow.classify.inference import predict_proba
    from rbcflow.classify.sampling import pad_frames, prepare
    from rbcflow.training.augment import augment

    rng = np.random.default_rng(seed)
    vary = augment if heavy else _mild
    x = prepare([s.frames for s in seqs], k, "uniform" if stage == 1 else "similarity", pad=False)
    lengths = [len(a) for a in x]
    xs, ls = [], []
    for a, n in zip(x, lengths, strict=True):
        base = pad_frames(a, k) if stage == 2 else a
        for v in range(n_var):
            xs.append(base if v == 0 else vary(base, rng, n if stage == 2 else None))
            ls.append(n)
    p = predict_proba(member.network, xs, ls, tta=tta)
    col = 1 if stage == 1 else 0
    return p[:, col].reshape(len(seqs), n_var)


def group_rates(name: str, oof1: pd.DataFrame, oof2: pd.DataFrame, thr1: float):
    """Validated rates from out-of-fold predictions of the OTHER groups only."""
    from rbcflow.classify.calibration import rates_at
    from rbcflow.classify.estimate import ValidatedRates

    s1_fold, s2_fold, rel_pref, unrel_pref = GROUPS[name]
    o1 = oof1[oof1["fold"] != s1_fold]
    # stage 2: reliable sequences of the other patients; unreliable ones (what a leaked track
    # is called) of the other date, whichever member judged them
    other_rel = (oof2["fold"] != s2_fold) & (oof2["label"] != 2)
    other_unrel = (oof2["label"] == 2) & ~oof2["sequence_name"].map(lambda n: starts(n, unrel_pref))
    o2 = oof2[other_rel | other_unrel]

    def block(o: pd.DataFrame, key: str, folds: bool = False) -> dict:
        d = {key: o["p"].tolist(), "label": o["label"].tolist()}
        return {**d, "fold": o["fold"].tolist()} if folds else d

    def counts(a, b, folds=False):
        r = rates_at(block(a, "p_reliable", folds), block(b, "p_tank_treading", folds), thr1)
        return r.to_dict()

    # The spread of each rate between patients and dates needs several held-out groups: it is
    # measured on all of them (the held-out group included: slightly optimistic) and applied
    # to the counts of the other groups.
    raw, shrunk = counts(oof1, oof2), counts(oof1, oof2, folds=True)
    nested = counts(o1, o2)
    out = {}
    for k, n in (
        ("tt_as_tt", "tt_n"),
        ("fl_as_tt", "fl_n"),
        ("rel_kept", "rel_n"),
        ("unrel_kept", "unrel_n"),
        ("leak_as_tt", "leak_n"),
    ):
        phi = raw[n] / max(shrunk[n], 1)
        out[n] = max(1, int(round(nested[n] / phi))) if nested[n] else 0
        out[k] = min(out[n], int(round(nested[k] / phi)))
    return ValidatedRates(**out), o2, o1


def blocks_of(o1: pd.DataFrame, o2: pd.DataFrame) -> tuple[dict, dict]:
    """Calibration blocks (as a model config holds them) of the other groups' out-of-fold
    predictions: what the ``soft`` and ``leakmix`` estimators read."""
    one = {"p_reliable": o1["p"].tolist(), "label": o1["label"].tolist()}
    return one, {"p_tank_treading": o2["p"].tolist(), "label": o2["label"].tolist()}


def simulate(
    pools, rates, temperature, thr1, n_rel, reps, rng, blocks=None, oracle="none"
) -> list[dict]:
    """Virtual acquisitions labelled and estimated by the product's own functions; ``oracle``
    replaces a stage's calls (and its validated rates) by the truth (benchmarks/_oracle.py)."""
    from rbcflow.classify.calibration import estimate_acquisition
    from rbcflow.classify.labels import label_tracks
    from rbcflow.config import EstimateConfig

    report = ReportConfig(reliable_threshold=thr1)
    rates = oracle_rates(rates, oracle)
    out = []
    for share in SHARES:
        n_un = int(round(n_rel * share / (1 - share)))
        for f in FRACTIONS:
            for _ in range(reps):
                n_tt = int(rng.binomial(n_rel, f))
                picks = {
                    c: rng.integers(0, len(pools[c][0]), size=m)
                    for c, m in ((0, n_tt), (1, n_rel - n_tt), (2, n_un))
                }
                p1 = np.concatenate([pools[c][0][picks[c]] for c in (0, 1, 2)])
                p2 = np.concatenate([pools[c][1][picks[c]] for c in (0, 1, 2)])
                truth = n_tt / n_rel
                p1, p2 = apply_oracle(p1, p2, n_tt, n_rel, oracle)
                labels = label_tracks(p1, p2, report)
                kept = labels != "unreliable"
                row = {
                    "share": share,
                    "truth": truth,
                    "precision": kept[:n_rel].sum() / max(kept.sum(), 1),
                    "rejected_share": 1 - kept.mean(),
                    **call_split(labels, n_tt, n_rel),
                }
                for method in METHODS:
                    e = estimate_acquisition(
                        labels,
                        [""] * len(labels),
                        rates,
                        report,
                        EstimateConfig(method=method, n_boot=400),
                        p_tank_treading=p2,
                        temperature=temperature,
                        p_reliable=p1,
                        blocks=blocks,
                    )
                    row[method] = e["tank_treading_fraction"]
                    row[method + "_cover"] = e["ci_low"] <= truth <= e["ci_high"]
                    row[method + "_halfwidth"] = (e["ci_high"] - e["ci_low"]) / 2
                    row[method + "_low"], row[method + "_high"] = e["ci_low"], e["ci_high"]
                out.append(row)
    return out


METHODS = ("naive", "stage2", "adjusted", "em", "soft", "leakmix", "blend")


def composites(
    name, chosen, cv, rates, temperature, thr1, n, n_rel, work, seed, keep=None, shares=(0.5, 0.85)
) -> list[dict]:
    """Videos composited from the group's own crops, the front end run on them, the tracks
    classified by the group's members and the fraction estimated (EM) with nested rates;
    ``keep`` (a list) also gets each video's tracks table, with its truth and share."""
    from rbcflow.classify.calibration import estimate_acquisition
    from rbcflow.classify.inference import load_classifier
    from rbcflow.config import EstimateConfig
    from rbcflow.pipeline import AnalysisSettings, analyze

    s1_fold, s2_fold = GROUPS[name][:2]
    clf = load_classifier(cv / f"stage1_{s1_fold}", cv / f"stage2_{s2_fold}", device="cpu")
    report = ReportConfig(reliable_threshold=thr1)
    settings = AnalysisSettings(report=report)
    rng = np.random.default_rng(seed)
    out = []
    for share in shares:
        n_un = int(round(n_rel * share / (1 - share)))
        for i, f in enumerate(np.linspace(0.6, 0.95, n)):
            n_tt = int(round(f * n_rel))
            video = work / f"{name}_{share}_{i}.tif"
            expected = real_mix(chosen, (n_tt, n_rel - n_tt, n_un), video, rng, seed + i)
            res = analyze(video, clf, settings, threaded=False)
            t = res.tracks
            if keep is not None:
                keep.append(t.assign(group=name, share=share, truth=expected))
            e = estimate_acquisition(
                t["label"],
                t["rule"],
                rates,
                report,
                EstimateConfig(),
                p_tank_treading=t["p_tank_treading"].to_numpy(),
                temperature=temperature,
            )
            out.append(
                {
                    "group": name,
                    "share": share,
                    "truth": expected,
                    "em": e["tank_treading_fraction"],
                    "counted": e["fraction_counted"],
                    "cover": e["ci_low"] <= expected <= e["ci_high"],
                    "reliable_called": e["reliable"],
                    "tracks": len(t),
                }
            )
            print(
                "   ",
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out[-1].items()},
                flush=True,
            )
            for q in work.glob(f"{name}_{share}_{i}*"):
                q.unlink()
    return out


def main() -> None:
    global METHODS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/darrin2023")
    ap.add_argument("--cv", default="cv", help="--cv-out of models/train_defaults.py")
    ap.add_argument("--variants", type=int, default=8)
    ap.add_argument("--heavy", action="store_true", help="variants by training augmentation")
    ap.add_argument("--reliable", type=int, default=150, help="reliable tracks per acquisition")
    ap.add_argument("--reps", type=int, default=20, help="acquisitions per share and fraction")
    ap.add_argument("--reliable-threshold", type=float, default=ReportConfig().reliable_threshold)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--methods", default=",".join(METHODS), help="estimators to compare")
    ap.add_argument("--seed", type=int, default=0, help="draws of the virtual acquisitions")
    ap.add_argument("--rows", help="write every virtual acquisition's estimates here (.csv)")
    ap.add_argument(
        "--pools", help="cache of the variants' probabilities (.npz): read if present, else written"
    )
    ap.add_argument(
        "--composites", type=int, default=0, help="also N front-end composites per group and share"
    )
    ap.add_argument("--composite-groups", default="BK,BG1022")
    ap.add_argument(
        "--oracle",
        default="none",
        choices=ORACLES,
        help="replace stage 1's and/or stage 2's calls (and rates) by the truth",
    )
    ap.add_argument(
        "--tta",
        default="none",
        choices=TTA_CHOICES,
        help="give this stage's members test-time views (benchmarks/_tta.py)",
    )
    ap.add_argument(
        "--tta-views",
        default="mirror,time,mirror+time",
        help="the views (rbcflow.classify.tta), comma-separated; the input as is is always one",
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    from rbcflow.classify.model_folder import load_model
    from rbcflow.classify.posterior import fit_temperature
    from rbcflow.io.sequences import read_dataset

    t0 = time.time()
    cv = Path(args.cv)
    oof1, oof2 = (pd.read_csv(cv / f"oof_stage{s}.csv") for s in (1, 2))
    thr1 = args.reliable_threshold
    seqs = [s for n in ("stage1_BG", "stage2_train") for s in read_dataset(Path(args.data) / n)]
    seqs = [s for s in seqs if s.acquisition not in ("BG1017_10s03", "BK1024_10s02")]
    views = tuple(v for v in args.tta_views.split(",") if v)
    tta_stages = stages_of(args.tta)
    for stage in tta_stages:
        before = oof1 if stage == 1 else oof2
        after = oof_with_views(before, cv, stage, seqs, views)
        print(f"--tta {args.tta} ({','.join(views)}):", changed_calls(before, after, stage, thr1))
        oof1, oof2 = (after, oof2) if stage == 1 else (oof1, after)
    figures = {"stages": stage_figures(oof1, oof2, thr1), "end_to_end": {}, "tta": args.tta}
    print(pd.DataFrame(figures["stages"]).round(3).to_string(index=False))
    METHODS = tuple(args.methods.split(","))
    rng = np.random.default_rng(args.seed)
    rows, comp_rows = [], []
    cache = dict(np.load(args.pools)) if args.pools and Path(args.pools).exists() else {}
    fresh = len(cache) < 3 * len(GROUPS)
    for name, (s1_fold, s2_fold, rel_pref, unrel_pref) in GROUPS.items():
        pools = {}
        for c in (0, 1, 2):
            key = f"{name}_{c}"
            if key not in cache:
                m1 = load_model(cv / f"stage1_{s1_fold}")
                m2 = load_model(cv / f"stage2_{s2_fold}")
                k1, k2 = m1.config["input"]["k"], m2.config["input"]["k"]
                pref = unrel_pref if c == 2 else rel_pref
                chosen = [s for s in seqs if s.label == c and starts(s.acquisition, pref)]
                t1, t2 = (views if s in tta_stages else () for s in (1, 2))
                p1 = variant_probabilities(m1, chosen, 1, k1, args.variants, 10 + c, args.heavy, t1)
                p2 = variant_probabilities(m2, chosen, 2, k2, args.variants, 20 + c, args.heavy, t2)
                cache[key] = np.stack([p1.ravel(), p2.ravel()])
            pools[c] = (cache[key][0], cache[key][1])
        if args.pools and fresh:
            np.savez(args.pools, **cache)  # as soon as made: an interrupted run keeps them
        rates, o2, o1 = group_rates(name, oof1, oof2, thr1)
        rel2 = o2[o2["label"] != 2]
        temp = fit_temperature(rel2["p"].to_numpy(), (rel2["label"] == 0).to_numpy())
        blocks = blocks_of(o1, o2)
        for r in simulate(
            pools, rates, temp, thr1, args.reliable, args.reps, rng, blocks, args.oracle
        ):
            rows.append({"group": name, **r})
        if args.composites and name in args.composite_groups.split(","):
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
            with tempfile.TemporaryDirectory(prefix="rbcflow-acc-") as tmp:
                comp_rows += composites(
                    name, chosen, cv, rates, temp, thr1, args.composites, 60, Path(tmp), 7
                )
    df = pd.DataFrame(rows)
    if args.rows:
        df.to_csv(args.rows, index=False)
    summary = []
    for (g, share), d in df.groupby(["group", "share"]):
        rec = {"group": g, "unreliable": share, "s1_precision": d["precision"].mean()}
        for m in METHODS:
            err = (d[m] - d["truth"]).abs()
            rec[f"{m}_mean"], rec[f"{m}_max"] = err.mean(), err.max()
            rec[f"{m}_bias"] = (d[m] - d["truth"]).mean()
            rec[f"{m}_nan"] = d[m].isna().mean()
        for m in METHODS:
            rec[f"{m}_cover"] = d[f"{m}_cover"].mean()
            rec[f"{m}_halfwidth"] = d[f"{m}_halfwidth"].median()
        summary.append(rec)
    s = pd.DataFrame(summary)
    print(
        f"\nend to end: {args.reliable} reliable tracks per acquisition, {args.reps} per "
        f"share x fraction ({FRACTIONS}), stage-1 threshold {thr1}, oracle {args.oracle}, "
        f"tta {args.tta}; "
        "|fraction error| (mean, max), mean signed error (bias)"
    )
    cols = ["group", "unreliable", "s1_precision"]
    for m in METHODS:
        cols += [f"{m}_mean", f"{m}_max", f"{m}_bias"]
    cols += [f"{m}_cover" for m in METHODS] + [f"{m}_halfwidth" for m in METHODS]
    print(s[cols].round(3).to_string(index=False))
    print("\nstage 1's leak among the kept tracks (stage 2's calls of it) and its keep rates:")
    print(leak_table(df).round(3).to_string(index=False))
    for m in METHODS:
        err = (df[m] - df["truth"]).abs()
        line = f"all groups, {m}: mean {err.mean():.3f}, max {err.max():.3f}"
        line += f", no figure {df[m].isna().mean():.2f}"
        line += f", interval coverage {df[m + '_cover'].mean():.2f}"
        line += f", median half-width {df[m + '_halfwidth'].median():.3f}"
        print(line)
    for share, d in df.groupby("share"):
        print(
            f"  {share:.2f} unreliable:",
            ", ".join(
                f"{m} {(d[m] - d['truth']).abs().mean():.3f}/{(d[m] - d['truth']).abs().max():.3f}"
                f" (bias {(d[m] - d['truth']).mean():+.3f})"
                for m in METHODS
            ),
            "| coverage " + ", ".join(f"{m} {d[m + '_cover'].mean():.2f}" for m in METHODS),
        )
    if comp_rows:
        c = pd.DataFrame(comp_rows)
        print(
            "\ncomposites (the front end run on videos of the group's crops; 60 reliable tracks):"
        )
        for (g, share), d in c.groupby(["group", "share"]):
            err, cnt = (d["em"] - d["truth"]).abs(), (d["counted"] - d["truth"]).abs()
            print(
                f"  {g} {share:.2f} unreliable: EM mean {err.mean():.3f} max {err.max():.3f}, "
                f"plain count mean {cnt.mean():.3f}, coverage {d['cover'].mean():.2f} ({len(d)})"
            )
        figures["composites"] = comp_rows
    print(f"({time.time() - t0:.0f} s)")
    figures["end_to_end"] = summary
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
