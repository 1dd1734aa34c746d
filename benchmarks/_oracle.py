"""Where the fraction's error comes from: a stage's calls replaced by the truth (benchmarks only).

``bench_accuracy.py --oracle`` draws the same virtual acquisitions and replaces stage 1's
probabilities (``stage1``: 1 for a reliable track, 0 for an unreliable one), stage 2's
(``stage2``: 1 for a tank-treading track, 0 for a flipping one; an unreliable track has no
truth and keeps its score) or both by the truth. The validated rates of an oracle stage are
those of a perfect classifier (stage 1 keeps every reliable and no unreliable track; stage 2
calls every track right), since a validation of that classifier would give them; stage 2's
temperature stays (it hardly moves a probability of 0 or 1). So the error splits into stage
1's (leakage and loss: ``none`` against ``stage2``), stage 2's (``none`` against ``stage1``)
and the benchmark's own counting floor (``both``); ``leak`` and ``leak+stage2`` take only the
leak away (below).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

ORACLES = ("none", "stage1", "stage2", "both", "leak", "leak+stage2")
"""``leak``: only the unreliable tracks' stage-1 scores set to 0 (no leak; the reliable tracks
keep their scores, so stage 1 still loses the ones it loses): ``none`` against ``leak`` is the
leak's share of the error, ``leak`` against ``stage1`` the loss's."""


def apply_oracle(
    p1: np.ndarray, p2: np.ndarray, n_tt: int, n_rel: int, oracle: str
) -> tuple[np.ndarray, np.ndarray]:
    """The tracks' (p_reliable, p_tank_treading) with the oracle's stages set to the truth;
    tracks are ordered tank-treading (``n_tt``), flipping (up to ``n_rel``), unreliable."""
    if oracle not in ORACLES:
        raise ValueError(f"oracle must be one of {ORACLES}, got {oracle!r}")
    p1, p2 = np.array(p1, dtype=float), np.array(p2, dtype=float)
    if oracle in ("stage1", "both"):
        p1[:n_rel] = 1.0
    if oracle in ("stage1", "both", "leak", "leak+stage2"):
        p1[n_rel:] = 0.0
    if oracle in ("stage2", "both", "leak+stage2"):
        p2[:n_tt], p2[n_tt:n_rel] = 1.0, 0.0
    return p1, p2


def oracle_rates(rates, oracle: str):
    """The validated rates of the classifier the oracle makes (a perfect stage where it
    stands in; the other stage's rates as validated)."""
    if rates is None or oracle == "none":
        return rates
    r = rates.to_dict()
    if oracle in ("stage1", "both"):
        r["rel_kept"] = r["rel_n"]
    if oracle in ("stage1", "both", "leak", "leak+stage2"):
        r["unrel_kept"] = 0
    if oracle in ("stage2", "both", "leak+stage2"):
        r["tt_as_tt"], r["fl_as_tt"] = r["tt_n"], 0
    return dataclasses.replace(rates, **r)


def call_split(labels: np.ndarray, n_tt: int, n_rel: int) -> dict:
    """What stage 1 kept of each true class, and how stage 2 called its leaked tracks."""
    kept = labels != "unreliable"
    called_tt = labels == "tank-treading"
    n_fl = n_rel - n_tt
    return {
        "leaked": int(kept[n_rel:].sum()),
        "leaked_called_tt": int(called_tt[n_rel:].sum()),
        "kept_reliable": int(kept[:n_rel].sum()),
        "tt_kept": kept[:n_tt].mean() if n_tt else np.nan,
        "fl_kept": kept[n_tt:n_rel].mean() if n_fl else np.nan,
    }


def leak_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per group and unreliable share: leaked tracks per acquisition, their share of the kept
    tracks, the share of them called tank-treading / flipping, and stage 1's keep rate of each
    reliable class."""
    rows = []
    for (g, share), d in df.groupby(["group", "share"]):
        leaked = d["leaked"].sum()
        called_tt = d["leaked_called_tt"].sum() / leaked if leaked else np.nan
        rows.append(
            {
                "group": g,
                "unreliable": share,
                "leaked_per_acq": d["leaked"].mean(),
                "leaked_of_kept": leaked / (leaked + d["kept_reliable"].sum()),
                "leak_called_tt": called_tt,
                "leak_called_fl": 1 - called_tt,
                "tt_kept": d["tt_kept"].mean(),
                "fl_kept": d["fl_kept"].mean(),
            }
        )
    return pd.DataFrame(rows)
