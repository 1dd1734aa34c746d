"""``bench_accuracy.py --tta``: the held-out validation with test-time averaging (benchmarks only).

``--tta stage1``, ``stage2`` or ``both`` gives that stage's members the test-time views
(``--tta-views``, :mod:`rbcflow.classify.tta`; through :func:`rbcflow.classify.inference.
predict_proba`, the function the product's classifier runs). Everything that stage's
probabilities feed is made again with them: the out-of-fold predictions of ``--cv`` (the
paper's figures per held-out group, the nested validated rates and stage 2's temperature) and
the variants' probabilities of the virtual acquisitions, so that the rates an estimator reads
belong to the classifier that made the calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TTA_CHOICES = ("none", "stage1", "stage2", "both")


def stages_of(tta: str) -> tuple[int, ...]:
    """The stages that ``--tta`` gives test-time views."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"--tta must be one of {TTA_CHOICES}, got {tta!r}")
    return {"none": (), "stage1": (1,), "stage2": (2,), "both": (1, 2)}[tta]


def oof_with_views(
    oof: pd.DataFrame, cv: Path, stage: int, seqs, views: tuple[str, ...]
) -> pd.DataFrame:
    """``oof`` (``oof_stage{N}.csv`` of ``--cv``) with each row's ``p`` made again by its fold's
    member (``cv/stage{N}_{fold}``) on the same sequence, with ``views``; inputs prepared as
    :func:`rbcflow.training.loop.stage_probabilities` prepares them (what wrote ``oof``)."""
    from rbcflow.classify.inference import predict_proba
    from rbcflow.classify.model_folder import load_model
    from rbcflow.classify.sampling import pad_frames, prepare

    by_name = {}
    for s in seqs:
        if s.name in by_name:
            raise ValueError(f"sequence name {s.name!r} is not unique")
        by_name[s.name] = s
    out = oof.copy()
    col = 1 if stage == 1 else 0
    for fold, d in oof.groupby("fold"):
        member = load_model(cv / f"stage{stage}_{fold}")
        k = int(member.config["input"]["k"])
        frames = [by_name[n].frames for n in d["sequence_name"]]
        x = prepare(frames, k, "uniform" if stage == 1 else "similarity", pad=False)
        lengths = [len(a) for a in x]
        if stage == 2:
            x = [pad_frames(a, k) for a in x]
        out.loc[d.index, "p"] = predict_proba(member.network, x, lengths, tta=views)[:, col]
    return out


def changed_calls(before: pd.DataFrame, after: pd.DataFrame, stage: int, thr1: float) -> str:
    """One line: how many out-of-fold calls the views changed, and which way."""
    thr = thr1 if stage == 1 else 0.5
    a, b = before["p"].to_numpy() >= thr, after["p"].to_numpy() >= thr
    what = "kept" if stage == 1 else "called tank-treading"
    moved = np.abs(after["p"].to_numpy() - before["p"].to_numpy())
    return (
        f"stage {stage}: {int((~a & b).sum())} sequences now {what}, {int((a & ~b).sum())} no "
        f"longer (of {len(a)}); |change of p| median {np.median(moved):.3f}, max {moved.max():.3f}"
    )
