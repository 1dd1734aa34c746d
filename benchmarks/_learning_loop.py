"""The review's learning loop on the real shared sequences (``bench_review.py --learning-loop``).

For each choice of (patient-day, held-out acquisition):

1. the held-out acquisition becomes a results folder (``tracks.csv`` with the shipped models'
   probabilities and calls, one strip per sequence, ``report.csv``) and a simulated reviewer
   reviews every track with its expert label (``dataset.csv``) through
   :func:`rbcflow.review.decide.record_decision`;
2. :func:`rbcflow.review.export.export_labels` writes the reviewed set;
3. :func:`rbcflow.training.finetune.fine_tune` fine-tunes the shipped stage-1 and stage-2
   models on it (stage 2 on its reliable tracks), with no validation set (a lab has none);
4. the patient-day's OTHER acquisitions are classified by the shipped and by the fine-tuned
   models; the fraction error is ``|counted fraction - true fraction|`` (the label rule's
   thresholds: calls among the sequences, truth among the truly reliable ones).

``stage1_BG`` has full sequences of all three classes (both stages are fine-tuned);
``stage2_train`` has tank-treading and flipping only (stage 2 is fine-tuned and scored on the
truly reliable sequences). The shipped models were trained on these sequences: the figures
show whether fine-tuning harms or helps on data of the same patient-day, not on a new patient.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "darrin2023"
VARIANTS = {
    "default": {},  # train --init's defaults: 0.1x the stage's learning rate, 10 epochs
    "guarded": {"freeze_cnn": True, "l2sp": 1.0},
    "gentle": {"lr_factor": 0.03, "epochs": 5, "l2sp": 0.1},
    "head-only": {"freeze_cnn": True},
}
"""Fine-tuning variants (keyword arguments of :func:`rbcflow.training.finetune.fine_tune`;
``lr_factor`` multiplies the stage's default learning rate)."""


def _probabilities(model, seqs) -> np.ndarray:
    from rbcflow.training.loop import stage_probabilities

    return stage_probabilities(model.network, seqs, model.stage, model.k)


def _fraction(p_rel: np.ndarray | None, p_tt: np.ndarray) -> float:
    from rbcflow.classify.labels import label_tracks

    if p_rel is None:
        p_rel = np.ones_like(p_tt)
    lab = label_tracks(p_rel, p_tt)
    tt, fl = int((lab == "tank-treading").sum()), int((lab == "flipping").sum())
    return tt / (tt + fl) if tt + fl else float("nan")


def _results_folder(root: Path, name: str, seqs, p_rel, p_tt) -> None:
    """A results folder holding the sequences as one acquisition's tracks."""
    from rbcflow.classify.labels import label_tracks
    from rbcflow.io.outputs import write_png_atomic
    from rbcflow.io.sequences import frames_to_strip
    from rbcflow.report.tables import report_table, write_report_csv

    folder = root / name
    (folder / "strips").mkdir(parents=True)
    lab = label_tracks(p_rel, p_tt)
    rows = []
    for i, s in enumerate(seqs, start=1):
        write_png_atomic(folder / "strips" / f"{i}.png", frames_to_strip(s.frames), fsync=False)
        n = len(s.frames)
        rows.append(
            dict(
                track_id=i,
                first_frame=0,
                n_frames=n,
                classified_frames=n,
                p_reliable=p_rel[i - 1],
                p_tank_treading=p_tt[i - 1],
                label=lab[i - 1],
                rule="",
            )
        )
    pd.DataFrame(rows).to_csv(folder / "tracks.csv", index=False)
    row = {"acquisition": name, "source": f"/{name}", "status": "ok", "output": name, "fps": 60}
    write_report_csv(root / "report.csv", report_table([row]))


def _review_and_export(work: Path, name: str, seqs, p_rel, p_tt) -> Path:
    from rbcflow.review.decide import record_decision
    from rbcflow.review.export import export_labels
    from rbcflow.review.store import Results
    from rbcflow.schema import LABEL_NAMES

    _results_folder(work / "res", name, seqs, p_rel, p_tt)
    res = Results(work / "res")
    acq = res.acquisition(name)
    for i, s in enumerate(seqs, start=1):
        record_decision(res, acq, i, LABEL_NAMES[int(s.label)], "simulated", derived=False)
    export_labels([work / "res"], work / "labelled")
    return work / "labelled"


def learning_loop(variants: dict[str, dict], epochs: int = 10, seed: int = 0) -> pd.DataFrame:
    """One row per (set, held-out acquisition, scored acquisition, variant)."""
    from rbcflow.classify.model_folder import default_model_dir, load_model
    from rbcflow.io.sequences import read_dataset
    from rbcflow.model_settings import TrainConfig
    from rbcflow.training.finetune import fine_tune

    parents = {s: load_model(default_model_dir(s)) for s in (1, 2)}
    rows = []
    for set_name in ("stage1_BG", "stage2_train"):
        seqs = read_dataset(SHARED / set_name)
        by_acq: dict[str, list] = {}
        for s in seqs:
            by_acq.setdefault(s.acquisition, []).append(s)
        days: dict[str, list[str]] = {}
        for a in sorted(by_acq):
            days.setdefault(a.split("_")[0], []).append(a)
        stages = (1, 2) if set_name == "stage1_BG" else (2,)
        for acqs in days.values():
            if len(acqs) < 2 or (set_name == "stage2_train" and len(acqs) < 3):
                continue
            for held in acqs if set_name == "stage1_BG" else acqs[:1]:
                train = by_acq[held]
                p_rel = _probabilities(parents[1], train) if 1 in stages else np.ones(len(train))
                p_tt = _probabilities(parents[2], train)
                with tempfile.TemporaryDirectory() as tmp:
                    labelled = _review_and_export(Path(tmp), held, train, p_rel, p_tt)
                    reviewed = read_dataset(labelled)
                    models = {"shipped": parents}
                    for vname, kw0 in variants.items():
                        tuned = {}
                        t0 = time.perf_counter()
                        for st in stages:
                            sub = [s for s in reviewed if st == 1 or s.label in (0, 1)]
                            out = Path(tmp) / f"{vname}{st}"
                            kw = dict(kw0)
                            if "lr_factor" in kw:
                                kw["lr"] = TrainConfig.for_stage(st).lr * kw.pop("lr_factor")
                            kw.setdefault("epochs", epochs)
                            fine_tune(
                                default_model_dir(st),
                                st,
                                sub,
                                [],
                                out,
                                seed=seed,
                                **kw,
                            )
                            tuned[st] = load_model(out, allow_user=True)
                        tuned.setdefault(1, parents[1])
                        print(
                            f"  {held} {vname}: fine-tuned in {time.perf_counter() - t0:.0f} s",
                            flush=True,
                        )
                        models[vname] = tuned
                    for other in acqs:
                        if other == held:
                            continue
                        test = by_acq[other]
                        if 1 not in stages:
                            test = [s for s in test if s.label in (0, 1)]
                        lab = np.array([s.label for s in test])
                        truth = (lab == 0).sum() / max(1, (lab < 2).sum())
                        for vname, m in models.items():
                            pr = _probabilities(m[1], test) if 1 in stages else None
                            f = _fraction(pr, _probabilities(m[2], test))
                            rows.append(
                                dict(
                                    set=set_name,
                                    held_out=held,
                                    scored=other,
                                    variant=vname,
                                    truth=truth,
                                    estimate=f,
                                    error=abs(f - truth),
                                )
                            )
    return pd.DataFrame(rows)


def report(df: pd.DataFrame) -> str:
    base = df[df.variant == "shipped"].set_index(["held_out", "scored"])["error"]
    lines = []
    for (set_name, variant), d in df.groupby(["set", "variant"], sort=False):
        d = d.set_index(["held_out", "scored"])
        change = d["error"] - base.loc[d.index]
        lines.append(
            f"{set_name:13s} {variant:22s} n={len(d):2d}  mean |error| {d['error'].mean():.3f}  "
            f"max {d['error'].max():.3f}  change vs shipped: mean {change.mean():+.3f}, "
            f"better {int((change < -1e-9).sum())}, worse {int((change > 1e-9).sum())}"
        )
    return "\n".join(lines)
