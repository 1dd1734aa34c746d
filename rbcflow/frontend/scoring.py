"""Scoring found tracks against true ones (synthetic ground truth): evaluation, not linking.

Used by the tests and ``benchmarks/bench_frontend.py`` (recall, centre error, false tracks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def score_tracks(
    positions: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    max_distance: float = 3.0,
    min_overlap: int = 3,
    min_true_frames: int = 6,
    whole_share: float = 0.8,
) -> dict:
    """Compare found tracks with true ones (synthetic ground truth).

    A found track *matches* a true track when they share at least ``min_overlap`` frames and
    the median distance between them over the shared frames is at most ``max_distance``; each
    found track is paired with the true track it matches best (lowest median distance).

    Parameters
    ----------
    positions : DataFrame
        Found tracks, :data:`rbcflow.schema.POSITIONS` (frame, track_id, x, y).
    truth : DataFrame
        True positions, :data:`rbcflow.schema.TRUTH` (track_id, label, frame, x, y).
    max_distance : float
        Pixels.
    min_overlap : int
        Frames.
    min_true_frames : int
        True tracks with fewer frames in the field are not counted for recall (nobody could
        have kept them).

    Returns
    -------
    dict
        ``recall`` (fraction of counted true tracks matched by a found track), ``false_rate``
        (fraction of found tracks that match no true track), ``median_error`` (median centre
        distance over the frames of matched pairs, px), ``coverage`` (fraction of the counted
        true tracks' frames covered by a matched found track), ``fragmentation`` (found tracks
        per recalled true track), ``n_true``, ``n_found``, ``n_false``, ``missed`` (ids of
        counted true tracks not recalled), ``false_ids`` (ids of found tracks matching none),
        ``pairs`` (found id -> true id); and the figures of issue 12: ``recall_whole``
        (fraction of counted true tracks of which one found track covers at least
        ``whole_share`` of the frames: a track split in two is not recalled whole),
        ``recall_reliable`` and ``recall_reliable_whole`` (the same over true tracks with a
        reliable label, 0 or 1, when ``truth`` has a ``label`` column; else NaN),
        ``fragment_rate`` (fraction of counted true tracks matched by two or more found
        tracks) and ``false_per_true`` (false found tracks over counted true tracks).
    """
    labels = truth.groupby("track_id")["label"].first() if "label" in truth.columns else None
    truth = truth[["track_id", "frame", "x", "y"]]
    found = positions[["track_id", "frame", "x", "y"]]
    merged = found.merge(truth, on="frame", suffixes=("_f", "_t"))
    merged = merged.assign(d=np.hypot(merged.x_f - merged.x_t, merged.y_f - merged.y_t))
    # Only pairs that are ever close are candidates (keeps the groupby small).
    close_pairs = merged.loc[merged.d <= 4 * max_distance, ["track_id_f", "track_id_t"]]
    merged = merged.merge(close_pairs.drop_duplicates(), on=["track_id_f", "track_id_t"])
    stats = merged.groupby(["track_id_f", "track_id_t"]).d.agg(["median", "size"]).reset_index()
    stats = stats[(stats["size"] >= min_overlap) & (stats["median"] <= max_distance)]
    best = stats.sort_values("median").drop_duplicates("track_id_f")
    pairs = dict(zip(best.track_id_f.astype(int), best.track_id_t.astype(int), strict=True))
    true_len = truth.groupby("track_id").size()
    counted = set(true_len[true_len >= min_true_frames].index.astype(int))
    recalled = counted & set(pairs.values())
    found_ids = sorted(set(found.track_id.astype(int)))
    false_ids = [t for t in found_ids if t not in pairs]
    on = merged.set_index(["track_id_f", "track_id_t"]).index.isin(list(pairs.items()))
    matched = merged[on]
    covered = matched[matched.track_id_t.isin(counted)].drop_duplicates(["track_id_t", "frame"])
    n_true_frames = int(true_len[true_len.index.isin(counted)].sum())
    n_rec = len(recalled)
    # One found track covering most of a true track's frames (within max_distance).
    close = matched[matched.d <= max_distance].groupby(["track_id_f", "track_id_t"]).size()
    share = close.groupby(level="track_id_t").max() / true_len.reindex(
        close.groupby(level="track_id_t").max().index
    )
    whole = counted & set(share[share >= whole_share].index.astype(int))
    per_true = pd.Series(list(pairs.values()), dtype=np.int64).value_counts()
    fragmented = counted & set(per_true[per_true >= 2].index.astype(int))
    reliable = (
        counted & set(labels[labels.isin([0, 1])].index.astype(int))
        if labels is not None
        else set()
    )
    nan = float("nan")
    return {
        "recall_whole": len(whole) / len(counted) if counted else nan,
        "recall_reliable": len(reliable & recalled) / len(reliable) if reliable else nan,
        "recall_reliable_whole": len(reliable & whole) / len(reliable) if reliable else nan,
        "fragment_rate": len(fragmented) / len(counted) if counted else nan,
        "false_per_true": len(false_ids) / len(counted) if counted else nan,
        "n_reliable": len(reliable),
        "recall": n_rec / len(counted) if counted else float("nan"),
        "false_rate": len(false_ids) / len(found_ids) if found_ids else 0.0,
        "median_error": float(matched.d.median()) if len(matched) else float("nan"),
        "coverage": len(covered) / n_true_frames if n_true_frames else float("nan"),
        "fragmentation": (
            sum(1 for t in pairs.values() if t in recalled) / n_rec if n_rec else float("nan")
        ),
        "n_true": len(counted),
        "n_found": len(found_ids),
        "n_false": len(false_ids),
        "missed": sorted(counted - recalled),
        "false_ids": false_ids,
        "pairs": pairs,
    }


def describe_cases(positions: pd.DataFrame, truth: pd.DataFrame, scores: dict) -> list[str]:
    """One line per fragmented true track and per false track (what to look at next).

    A fragmented true track: its found tracks in order, with their frame spans and the gap
    from one to the next (negative: they overlap in time). A false track: its span, how many
    of its frames were detected, and the nearest true track (median distance over its frames).

    Parameters
    ----------
    positions, truth : DataFrame
        As for :func:`score_tracks`.
    scores : dict
        :func:`score_tracks`'s result for them.
    """
    spans = positions.groupby("track_id")["frame"].agg(["min", "max", "size"])
    per: dict[int, list[int]] = {}
    for f, t in scores["pairs"].items():
        per.setdefault(t, []).append(f)
    lines = []
    for t, fs in sorted(per.items()):
        if len(fs) < 2:
            continue
        fs.sort(key=lambda f: spans.loc[f, "min"])
        parts = [f"{f}[{spans.loc[f, 'min']}-{spans.loc[f, 'max']}]" for f in fs]
        gaps = [
            int(spans.loc[b, "min"] - spans.loc[a, "max"])
            for a, b in zip(fs[:-1], fs[1:], strict=True)
        ]
        lines.append(f"fragmented true {t}: {' '.join(parts)} gaps {gaps}")
    for f in scores["false_ids"]:
        mine = positions[positions.track_id == f]
        near = mine.merge(truth, on="frame", suffixes=("", "_t"))
        near = near.assign(d=np.hypot(near.x - near.x_t, near.y - near.y_t))
        best = near.groupby("track_id_t").d.median().sort_values()
        what = f"nearest true {best.index[0]} at {best.iloc[0]:.1f} px" if len(best) else "alone"
        lines.append(
            f"false {f}[{spans.loc[f, 'min']}-{spans.loc[f, 'max']}]: "
            f"{int(mine.detected.sum())}/{len(mine)} frames detected, {what}"
        )
    return lines
