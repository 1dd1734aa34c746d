"""bench_review.py's fraction errors: the simulated reviewer on analysed synthetic
acquisitions, the shipped order and estimate against random orders and the earlier ones (the
rows are described in bench_review.py's docstring)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rbcflow import schema
from rbcflow.review.calibrated import estimate
from rbcflow.review.decide import record_decision, review_queue
from rbcflow.review.store import Results
from rbcflow.synthetic import true_fraction, truth_paths

STEPS = (0, 25, 50, 100, 200)
PREVIOUS = "previous: its order, stratified estimate"
RANDOM_STRATA = "random, stratified estimate (previous)"
GRID = tuple(range(0, 301, 10))  # random orders' steps, for the reviews they need


def true_labels(folder: Path, video: Path) -> tuple[dict[int, str], float]:
    """Each analysed track's true label, and the acquisition's true fraction.

    A track takes the label of the true cell it comes within 6 px of in at least half of its
    frames (a reviewer watching its crops sees that cell); a track that follows no cell for
    that long (a fragment of a crossing, a mix of two cells) is unreliable. The true fraction
    is :func:`rbcflow.synthetic.true_fraction`'s: reliable true cells seen in at least
    ``MIN_TRACK_LENGTH`` frames, the product's one definition.
    """
    from rbcflow.schema import LABEL_NAMES

    truth_csv, tracks_csv = truth_paths(video)
    truth = pd.read_csv(truth_csv)
    true_tracks = pd.read_csv(tracks_csv)
    pos = pd.read_csv(folder / "positions.csv")
    n_frames = pos.groupby("track_id")["frame"].nunique()
    m = pos.merge(truth, on="frame", suffixes=("", "_t"))
    m["d"] = np.hypot(m["x"] - m["x_t"], m["y"] - m["y_t"])
    m = m[m["d"] < 6].sort_values("d").drop_duplicates(["track_id", "frame"])
    counts = m.groupby(["track_id", "track_id_t"]).size().rename("n").reset_index()
    counts = counts.sort_values("n", ascending=False).drop_duplicates("track_id")
    counts = counts[2 * counts["n"] >= counts["track_id"].map(n_frames)]
    best = dict(zip(counts["track_id"], counts["track_id_t"], strict=True))
    label_of = dict(zip(true_tracks["track_id"], true_tracks["label"], strict=True))
    out = {}
    for tid in pd.read_csv(folder / "tracks.csv")["track_id"]:
        t = best.get(tid)
        out[int(tid)] = LABEL_NAMES[int(label_of[t]) if t is not None else 2]
    return out, true_fraction(true_tracks)


def simulate(root: Path, name: str, truth: dict[int, str]) -> list:
    """(fraction, ci_low, ci_high) after each step of STEPS in the tool's order, re-ranked after
    every decision (the order :func:`record_decision` returns, as the page gets it)."""
    res = Results(root)
    acq = res.acquisition(name)
    out = [_figures(estimate(acq.calibration, acq.reviewed_codes({})))]
    queue = review_queue(acq, {})
    done: set[int] = set()
    for step in STEPS[1:]:
        while len(done) < min(step, len(queue)):
            tid = next(t for t in queue if t not in done)
            new: list[int] = []
            figs = record_decision(res, acq, tid, truth[tid], "simulated", derived=False, queue=new)
            done.add(tid)
            queue = new
        out.append(
            (
                figs["tank_treading_fraction_reviewed"],
                figs["ci_low_reviewed"],
                figs["ci_high_reviewed"],
            )
        )
    return out


def _figures(e: dict) -> tuple[float, float, float]:
    return e["fraction"], e["ci_low"], e["ci_high"]


def _plain(calls: np.ndarray, rev: np.ndarray) -> float:
    lab = np.array([{"tank-treading": 0, "flipping": 1}.get(c, 2) for c in calls])
    lab = np.where(rev >= 0, rev, lab)
    return float((lab == 0).sum() / max((lab < 2).sum(), 1))


def _strata(t: pd.DataFrame):
    from _stratified import strata_of

    return strata_of(
        t["label"].to_numpy(object),
        t["rule"].fillna("").to_numpy(object),
        t["p_reliable"].to_numpy(float),
        t["p_tank_treading"].to_numpy(float),
    )


def previous(t: pd.DataFrame, y: np.ndarray) -> list:
    """The stratified estimate and its re-ranked order (shipped before), at STEPS."""
    from _stratified import estimate as strat_estimate
    from _stratified import stratified_order

    st = _strata(t)
    ids = t["track_id"].to_numpy(int)
    at = {int(i): k for k, i in enumerate(ids)}
    rev, out = np.full(len(ids), -1), []
    for s in range(max(STEPS) + 1):
        if s in STEPS:
            out.append(_figures(strat_estimate(st, rev)))
        if s < min(max(STEPS), len(ids)):
            k = at[stratified_order(ids, st, rev)[0]]
            rev[k] = y[k]
    return out


def old_order(t: pd.DataFrame) -> list[int]:
    """The order before re-ranking (expected change of the plain count, computed once)."""
    from _old_order import expected_change

    score = expected_change(
        t["label"].to_numpy(object),
        t["p_reliable"].to_numpy(float),
        t["p_tank_treading"].to_numpy(float),
    )
    ids = t["track_id"].to_numpy(int)
    return [int(ids[i]) for i in np.lexsort((ids, -score))]


def fraction_errors(root: Path, videos: list[Path], n_random: int, seed: int) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(seed)

    def add(name, n, kind, step, fig, f_true, floor):
        f, lo, hi = fig
        rows.append(
            {
                "acquisition": name,
                "tracks": n,
                "order": kind,
                "reviewed": step,
                "error": abs(f - f_true),
                "error_vs_all": abs(f - f_all),
                "covered": bool(lo <= f_true <= hi),
                "width": hi - lo,
                "floor": floor,
            }
        )

    for video in videos:
        name = video.stem
        truth, f_true = true_labels(root / name, video)
        acq = Results(root).acquisition(name)
        t = acq.tracks
        ids = t["track_id"].to_numpy(int)
        y = np.array([schema.LABEL_CODES[truth[int(i)]] for i in ids])
        calls = t["label"].to_numpy(object)
        f_all = _plain(calls, y)  # every track reviewed
        floor = abs(f_all - f_true)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "res"
            shutil.copytree(root, work, ignore=shutil.ignore_patterns("*.avi", "strips"))
            for step, fig in zip(STEPS, simulate(work, name, truth), strict=True):
                add(name, len(ids), "tool", step, fig, f_true, floor)
        for step, fig in zip(STEPS, previous(t, y), strict=True):
            add(
                name, len(ids), "previous: its order, stratified estimate", step, fig, f_true, floor
            )
        at = {int(i): k for k, i in enumerate(ids)}
        order = [at[i] for i in old_order(t)]
        for step in STEPS:
            rev = np.full(len(ids), -1)
            rev[order[:step]] = y[order[:step]]
            f = _plain(calls, rev)
            add(name, len(ids), "before: fixed order, plain count", step, (f, f, f), f_true, floor)
        from _stratified import estimate as strat_estimate

        st = _strata(t)
        for _ in range(n_random):
            perm = rng.permutation(len(ids))
            for step in sorted(set(GRID) | set(STEPS)):
                rev = np.full(len(ids), -1)
                rev[perm[:step]] = y[perm[:step]]
                e = estimate(acq.calibration, rev)
                add(name, len(ids), "random", step, _figures(e), f_true, floor)
                f = _plain(calls, rev)
                add(name, len(ids), "random, plain count", step, (f, f, f), f_true, floor)
                if step in STEPS:
                    e = strat_estimate(st, rev)
                    add(name, len(ids), RANDOM_STRATA, step, _figures(e), f_true, floor)
    return pd.DataFrame(rows)


def reviews_needed(df: pd.DataFrame) -> str:
    """The reviews a random order needs (shipped estimate) for the tool's mean and max error."""
    rand = df[df["order"] == "random"].groupby("reviewed")["error"].agg(["mean", "max"])
    tool = df[df["order"] == "tool"].groupby("reviewed")["error"].agg(["mean", "max"])
    lines = []
    for n in (25, 50, 100):
        parts = []
        for stat in ("mean", "max"):
            ok = rand.index[rand[stat] <= tool.loc[n, stat]]
            need = f"{int(ok.min())}" if len(ok) else f"> {max(GRID)}"
            parts.append(f"{stat} {tool.loc[n, stat]:.3f}: random needs {need}")
        lines.append(f"  tool after {n}: " + "; ".join(parts))
    return "\n".join(lines)
