"""Reproduce the shipped default models ``rbcflow/models/stage1`` and ``rbcflow/models/stage2``.

Usage (from the repository root, with the real labelled data of Darrin et al. 2023)::

    python models/train_defaults.py --data ../shared/data/darrin2023 --out rbcflow/models \
        --cv-out cv

What it does, for each stage:

1. Holds out the TEST acquisitions below from everything (training, validation, choices); they
   are named in the model config (``test``) and scored at the end (tests/test_inference.py
   checks them again).
2. Splits the other acquisitions into folds that measure generalisation, not memory: stage 2
   leaves one PATIENT out (BG, BK, BM: three members); stage 1 leaves one acquisition DATE of
   the patient with real unreliable cases out (BG1017 with patient BK, BG1022 with patient BM:
   two members, so each member is validated on real unreliable cases of a date and on reliable
   cells of a patient it never saw). One network per fold, validated on its fold (epoch with
   the best validation F1 kept); its out-of-fold probabilities are written to ``--cv-out``
   (``oof_stage{N}.csv``) and the member itself to ``--cv-out/stage{N}_{FOLD}``, for
   ``benchmarks/bench_accuracy.py`` (``--cv-from-models`` writes them from the trained
   models' ensembles instead, without training: the members that ship).
3. Ships the ensemble of the fold networks (mean probability), with the out-of-fold
   calibration in its ``config.json``: stage 2's temperature and confusion counts, stage 1's
   keep counts of reliable and unreliable sequences, and stage 2's calls on unreliable
   sequences (what a leaked unreliable track becomes). The fraction estimator
   (``rbcflow.classify.estimate``) reads them.

Stage 1 trains on stage1_BG (reliable and unreliable, full-length) plus the reliable sequences
of stage2_train (20 frames, SSIM-downsampled by the authors), with synthetic hard unreliable
cases (``rbcflow.training.augment``); stage 2 on stage2_train plus the reliable sequences of
stage1_BG (similarity-downsampled here). Prints a JSON line per fold; writes ``cv_report.json``
to ``--cv-out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rbcflow.classify.calibration import calibration_block
from rbcflow.classify.inference import predict_proba
from rbcflow.classify.model_folder import load_model, save_model
from rbcflow.classify.nets import Ensemble
from rbcflow.config import ReportConfig
from rbcflow.io.outputs import write_csv_atomic, write_text_atomic
from rbcflow.io.sequences import read_dataset
from rbcflow.model_settings import CRNNConfig, StackCNNConfig, TrainConfig
from rbcflow.training.batching import prepare_data
from rbcflow.training.loop import model_config, stage_probabilities, train
from rbcflow.training.metrics import POSITIVE, binary_metrics

TEST_ACQUISITIONS = ("BG1017_10s03", "BK1024_10s02")
"""Held out from training and validation of both shipped models."""

FOLDS = {
    1: {"BG1017+BK": ("BG1017", "BK"), "BG1022+BM": ("BG1022", "BM")},
    2: {"BG": ("BG",), "BK": ("BK",), "BM": ("BM",)},
}
"""Validation folds per stage: fold name -> acquisition-name prefixes (patient or patient+date)."""


def in_fold(acquisition: str, prefixes: tuple[str, ...]) -> bool:
    return any(acquisition.startswith(p) for p in prefixes)


def score(network, seqs, stage: int, k: int) -> dict:
    data = prepare_data(seqs, stage, k, training=False)
    p = predict_proba(network, data.x, data.lengths)
    pos = POSITIVE[stage]
    # at the thresholds a run uses (ReportConfig): stage 1 keeps p_reliable >= its threshold,
    # stage 2 calls flipping when p_flipping >= its threshold
    cfg = ReportConfig()
    thr = cfg.reliable_threshold if stage == 1 else cfg.flipping_threshold
    return binary_metrics(data.y == pos, p[:, pos] >= thr)


def out_of_fold(network, seqs, stage: int, k: int, fold: str) -> list[dict]:
    """The member's probabilities on its held-out sequences (stage 2: also on unreliable ones)."""
    keep = [s for s in seqs if s.label is not None]
    p = stage_probabilities(network, keep, stage, k)
    return [
        {
            "sequence_name": s.name,
            "acquisition": s.acquisition,
            "label": int(s.label),
            "fold": fold,
            "p": float(pi),
        }
        for s, pi in zip(keep, p, strict=True)
    ]


def stage_config(stage: int, args) -> TrainConfig:
    epochs = args.epochs1 if stage == 1 else args.epochs2
    if stage == 1:
        arch = CRNNConfig(channels=tuple(int(c) for c in args.channels1.split(",")))
        return TrainConfig.for_stage(
            1,
            k=args.k1,
            epochs=epochs,
            seed=args.seed,
            architecture=arch,
            synthetic_unreliable=args.synthetic1,
        )
    k2 = TrainConfig.for_stage(2).k
    if args.arch2 == "crnn":
        arch = CRNNConfig(channels=tuple(int(c) for c in args.channels2.split(",")))
    else:
        arch = StackCNNConfig(k=k2, width=args.width2)
    return TrainConfig.for_stage(2, epochs=epochs, seed=args.seed, architecture=arch)


def run_stage(stage: int, sets: dict[str, list], args) -> dict:
    everything = [s for seqs in sets.values() for s in seqs]
    test = [s for s in everything if s.acquisition in TEST_ACQUISITIONS]
    pool = [s for s in everything if s.acquisition not in TEST_ACQUISITIONS]
    cfg = stage_config(stage, args)
    cv_out = Path(args.cv_out)
    members, results, fold_reports, oof = [], [], [], []
    for i, (name, prefixes) in enumerate(FOLDS[stage].items()):
        t0 = time.time()
        tr = [s for s in pool if not in_fold(s.acquisition, prefixes)]
        va = [s for s in pool if in_fold(s.acquisition, prefixes)]
        fcfg = dataclasses.replace(cfg, seed=args.seed + i)
        res = train(tr, va, fcfg)
        last = res.history[-1]
        # stage 2's member also judges the held-out patient's unreliable sequences (training
        # ignores them): what a track that stage 1 wrongly kept becomes
        oof += out_of_fold(res.network, va, stage, cfg.k, name)
        rep = {
            "fold": name,
            "val_acquisitions": sorted({s.acquisition for s in va}),
            "best_epoch": res.best_epoch,
            "at_best_epoch": res.val_metrics,
            "at_last_epoch": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
            "test": score(res.network, test, stage, cfg.k),
            "seconds": round(time.time() - t0, 1),
        }
        print(json.dumps({"stage": stage, **rep}), flush=True)
        member_cfg = model_config(
            fcfg, tr, va, [res], data_sources=[f"darrin2023/{n}" for n in sets]
        )
        save_model(cv_out / f"stage{stage}_{name}", res.network, member_cfg)
        fold_reports.append(rep)
        members.append(res.network)
        results.append(res)
    write_csv_atomic(cv_out / f"oof_stage{stage}.csv", pd.DataFrame(oof))
    ensemble = Ensemble(members).eval()
    test_metrics = score(ensemble, test, stage, cfg.k)
    print(json.dumps({"stage": stage, "ensemble_test": test_metrics}), flush=True)
    extra = {
        "test": {
            "acquisitions": list(TEST_ACQUISITIONS),
            "note": "held out from training, validation and every choice; ensemble figures",
            "metrics": test_metrics,
        },
        "cross_validation": {
            "protocol": (
                "stage 1: leave one acquisition date out (with one patient's reliable cells); "
                "stage 2: leave one patient out"
            ),
            "folds": fold_reports,
            "note": "each member was validated on its own fold (epoch choice); at_last_epoch "
            "figures are free of that choice",
        },
        "calibration": calibration(stage, pd.DataFrame(oof)),
        "held_out_figures": held_out_figures(stage, pd.DataFrame(oof)),
    }
    config = model_config(
        cfg, pool, None, results, data_sources=[f"darrin2023/{n}" for n in sets], extra=extra
    )
    config["training"]["ensemble"] = (
        f"{len(members)} members, one per fold; member i validated on fold i"
    )
    out = Path(args.out) / f"stage{stage}"
    checksum = save_model(out, ensemble, config)
    print(f"wrote {out} ({checksum})", flush=True)
    return {"folds": fold_reports, "test": test_metrics, "calibration": extra["calibration"]}


def calibration(stage: int, oof: pd.DataFrame) -> dict:
    """The out-of-fold calibration block of the stage's config (rbcflow.classify.calibration)."""
    protocol = "leave one acquisition date out" if stage == 1 else "leave one patient out"
    return calibration_block(
        stage, oof["p"], oof["label"], f"out-of-fold, {protocol}", folds=oof["fold"].tolist()
    )


def held_out_figures(stage: int, oof: pd.DataFrame) -> dict:
    """Each member on the patient or date it never saw, at the thresholds a run uses (the
    validation of docs/method.md; benchmarks/bench_accuracy.py turns them into the error of the
    fraction)."""
    cfg = ReportConfig()
    out = {}
    for fold, d in oof.groupby("fold"):
        if stage == 1:
            rel = d["label"] != 2
            kept = d["p"] >= cfg.reliable_threshold
            out[fold] = {
                "n": len(d),
                "reliable_recall": round(float(kept[rel].mean()), 4),
                "unreliable_rejection": round(float((~kept[~rel]).mean()), 4),
            }
        else:
            d = d[d["label"] != 2]
            tt = d["label"] == 0
            called_tt = (1 - d["p"]) < cfg.flipping_threshold
            out[fold] = {
                "n": len(d),
                "flipping_recall": round(float((~called_tt[~tt]).mean()), 4),
                "tank_treading_recall": round(float(called_tt[tt].mean()), 4),
            }
    what = "stage 1, one date left out" if stage == 1 else "stage 2, one patient left out"
    return {
        "protocol": what,
        "thresholds": [cfg.reliable_threshold, cfg.flipping_threshold],
        "folds": out,
    }


def recalibrate(stage: int, sets: dict[str, list], args) -> dict:
    """Rewrite a trained stage's calibration (from ``--cv-out``'s out-of-fold csv) and its
    test figures (at the current ``ReportConfig`` thresholds)."""
    folder = Path(args.out) / f"stage{stage}"
    model = load_model(folder)
    config = dict(model.config)
    for key in ("format", "format_version", "rbcflow_version", "weights_sha256"):
        config.pop(key, None)
    oof = pd.read_csv(Path(args.cv_out) / f"oof_stage{stage}.csv")
    config["calibration"] = calibration(stage, oof)
    config["held_out_figures"] = held_out_figures(stage, oof)
    everything = [s for seqs in sets.values() for s in seqs]
    test = [s for s in everything if s.acquisition in TEST_ACQUISITIONS]
    config["test"]["metrics"] = score(model.network, test, stage, int(config["input"]["k"]))
    checksum = save_model(folder, model.network, config)
    print(f"recalibrated {folder} ({checksum})", flush=True)
    short = {k: v for k, v in config["calibration"].items() if len(str(v)) < 200}
    return {"calibration": short, "test": config["test"]["metrics"]}


def export_cv(stage: int, sets: dict[str, list], args) -> dict:
    """Write ``--cv-out`` from a trained stage's ensemble instead of training it again: member i
    of the shipped ensemble is the fold member of fold i (``FOLDS`` order), so its folder and
    out-of-fold csv are those that ``run_stage`` wrote. A retraining is not the same (float
    rounding differs with the thread count): one BG1022 sequence more kept moved
    ``benchmarks/bench_accuracy.py``'s EM error from 0.081 to 0.124 (docs/method.md, stage-1
    variants); this measures the models that ship."""
    folder = Path(args.out) / f"stage{stage}"
    model = load_model(folder)
    names = [f["fold"] for f in model.config["cross_validation"]["folds"]]
    if names != list(FOLDS[stage]) or len(model.network.members) != len(names):
        raise SystemExit(f"{folder}: folds {names} are not this script's {list(FOLDS[stage])}")
    everything = [s for seqs in sets.values() for s in seqs]
    pool = [s for s in everything if s.acquisition not in TEST_ACQUISITIONS]
    k = int(model.config["input"]["k"])
    member_cfg = {
        key: value
        for key, value in model.config.items()
        if key not in ("format", "format_version", "rbcflow_version", "weights_sha256")
    }
    member_cfg["architecture"] = {**member_cfg["architecture"], "members": 1}
    oof = []
    for net, (name, prefixes) in zip(model.network.members, FOLDS[stage].items(), strict=True):
        va = [s for s in pool if in_fold(s.acquisition, prefixes)]
        oof += out_of_fold(net, va, stage, k, name)
        save_model(Path(args.cv_out) / f"stage{stage}_{name}", net, member_cfg)
    write_csv_atomic(Path(args.cv_out) / f"oof_stage{stage}.csv", pd.DataFrame(oof))
    print(f"exported {folder}'s members to {args.cv_out}", flush=True)
    return {
        "exported_from": str(folder),
        "held_out_figures": held_out_figures(stage, pd.DataFrame(oof)),
    }


def _channels(cfg: TrainConfig) -> str:
    return ",".join(str(c) for c in cfg.network_config().channels)


def main() -> None:
    s1, s2 = TrainConfig.for_stage(1), TrainConfig.for_stage(2)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder holding stage1_BG/ and stage2_train/")
    ap.add_argument("--out", default="rbcflow/models")
    ap.add_argument("--stage", type=int, choices=(1, 2), nargs="*", default=[1, 2])
    ap.add_argument("--cv-out", default="cv", help="folder for fold members and out-of-fold csv")
    ap.add_argument(
        "--calibrate-only",
        action="store_true",
        help="only rewrite the trained models' calibration from --cv-out's out-of-fold csv",
    )
    ap.add_argument(
        "--cv-from-models",
        action="store_true",
        help="only write --cv-out from the trained models' ensemble members (no training)",
    )
    ap.add_argument("--epochs1", type=int, default=s1.epochs)
    ap.add_argument("--epochs2", type=int, default=s2.epochs)
    ap.add_argument("--seed", type=int, default=s1.seed)
    ap.add_argument("--k1", type=int, default=s1.k, help="stage-1 frames (uniform)")
    ap.add_argument("--channels1", default=_channels(s1), help="stage-1 per-frame CNN channels")
    ap.add_argument(
        "--synthetic1",
        type=float,
        default=s1.synthetic_unreliable,
        help="stage-1 share of each epoch's unreliable sample made from reliable sequences",
    )
    ap.add_argument(
        "--arch2",
        choices=("crnn", "cnn"),
        default="crnn",
        help="stage-2 network: C-RNN over the K frames, or CNN with K channels",
    )
    ap.add_argument("--channels2", default=_channels(s2), help="stage-2 C-RNN channels")
    ap.add_argument(
        "--width2", type=int, default=StackCNNConfig().width, help="stage-2 CNN width (--arch2 cnn)"
    )
    args = ap.parse_args()
    data = Path(args.data)
    sets = {n: read_dataset(data / n) for n in ("stage1_BG", "stage2_train")}
    if args.calibrate_only:
        report = {f"stage{s}": recalibrate(s, sets, args) for s in args.stage}
    elif args.cv_from_models:
        report = {f"stage{s}": export_cv(s, sets, args) for s in args.stage}
    else:
        report = {f"stage{s}": run_stage(s, sets, args) for s in args.stage}
    write_text_atomic(Path(args.cv_out) / "cv_report.json", json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
