"""Reproduce the shipped default models ``rbcflow/models/stage1`` and ``rbcflow/models/stage2``.

Usage (from the repository root, with the real labelled data of Darrin et al. 2023)::

    python models/train_defaults.py --data ../shared/data/darrin2023 --out rbcflow/models

What it does, for each stage:

1. Holds out the TEST acquisitions below from everything (training, validation, choices); they
   are named in the model config (``test``) and scored at the end (tests/test_inference.py
   checks them again).
2. Splits the other acquisitions into ``--folds`` groups (by acquisition, never by sequence);
   trains one network per fold with that fold as validation (epoch with the best validation F1
   kept), and records the fold's validation metrics (at the kept epoch and at the last epoch,
   which no validation choice touched).
3. Ships the ensemble of the fold networks (mean probability) and scores it on the TEST
   acquisitions.

Stage 1 trains on stage1_BG (reliable and unreliable, full-length) plus the reliable sequences
of stage2_train (20 frames, SSIM-downsampled by the authors), with synthetic unreliable cases;
stage 2 on stage2_train plus the reliable sequences of stage1_BG (similarity-downsampled here).
Takes about 20-40 minutes on 2 CPU cores. Prints a JSON summary; writes ``cv_report.json``
beside the models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from rbcflow.classify.inference import predict_proba
from rbcflow.classify.model_folder import save_model
from rbcflow.classify.nets import Ensemble
from rbcflow.config import CRNNConfig, StackCNNConfig, TrainConfig
from rbcflow.io.outputs import write_text_atomic
from rbcflow.io.sequences import read_dataset
from rbcflow.training.batching import prepare_data
from rbcflow.training.loop import model_config, train
from rbcflow.training.metrics import POSITIVE, binary_metrics

TEST_ACQUISITIONS = ("BG1017_10s03", "BK1024_10s02")
"""Held out from training and validation of both shipped models."""


def make_folds(seqs, n_folds: int, stage: int) -> list[set[str]]:
    """Greedy grouping of acquisitions into folds of similar size (deterministic).

    For stage 1, acquisitions holding unreliable sequences are spread first, so each fold has
    both classes to validate on.
    """
    sizes: dict[str, int] = {}
    has_unrel: set[str] = set()
    for s in seqs:
        if stage == 2 and s.label == 2:
            continue
        sizes[s.acquisition] = sizes.get(s.acquisition, 0) + 1
        if s.label == 2:
            has_unrel.add(s.acquisition)
    folds: list[set[str]] = [set() for _ in range(n_folds)]
    load = [0] * n_folds
    order = sorted(sizes, key=lambda a: (a not in has_unrel, -sizes[a], a))
    for a in order:
        if a in has_unrel:
            f = min(range(n_folds), key=lambda i: (sum(x in has_unrel for x in folds[i]), load[i]))
        else:
            f = min(range(n_folds), key=lambda i: load[i])
        folds[f].add(a)
        load[f] += sizes[a]
    return folds


def score(network, seqs, stage: int, k: int) -> dict:
    data = prepare_data(seqs, stage, k, training=False)
    p = predict_proba(network, data.x, data.lengths)
    pos = POSITIVE[stage]
    return binary_metrics(data.y == pos, p[:, pos] >= 0.5)


def run_stage(stage: int, sets: dict[str, list], args) -> dict:
    everything = [s for seqs in sets.values() for s in seqs]
    test = [s for s in everything if s.acquisition in TEST_ACQUISITIONS]
    pool = [s for s in everything if s.acquisition not in TEST_ACQUISITIONS]
    epochs = args.epochs1 if stage == 1 else args.epochs2
    if stage == 1:
        arch = CRNNConfig(channels=tuple(int(c) for c in args.channels1.split(",")))
        cfg = TrainConfig.for_stage(1, k=args.k1, epochs=epochs, seed=args.seed, architecture=arch)
    else:
        k2 = TrainConfig.for_stage(2).k
        if args.arch2 == "crnn":
            arch = CRNNConfig(channels=tuple(int(c) for c in args.channels2.split(",")))
        else:
            arch = StackCNNConfig(k=k2, width=args.width2)
        cfg = TrainConfig.for_stage(2, epochs=epochs, seed=args.seed, architecture=arch)
    folds = make_folds(pool, args.folds, stage)
    members, results, fold_reports = [], [], []
    for i, val_acqs in enumerate(folds):
        t0 = time.time()
        tr = [s for s in pool if s.acquisition not in val_acqs]
        va = [s for s in pool if s.acquisition in val_acqs]
        fcfg = dataclasses.replace(cfg, seed=args.seed + i)
        res = train(tr, va, fcfg)
        last = res.history[-1]
        rep = {
            "fold": i,
            "val_acquisitions": sorted(val_acqs),
            "best_epoch": res.best_epoch,
            "at_best_epoch": res.val_metrics,
            "at_last_epoch": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
            "test": score(res.network, test, stage, cfg.k),
            "seconds": round(time.time() - t0, 1),
        }
        print(json.dumps({"stage": stage, **rep}), flush=True)
        fold_reports.append(rep)
        members.append(res.network)
        results.append(res)
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
            "folds": fold_reports,
            "note": "each member was validated on its own fold (epoch choice); at_last_epoch "
            "figures are free of that choice",
        },
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
    return {"folds": fold_reports, "test": test_metrics}


def _channels(cfg: TrainConfig) -> str:
    return ",".join(str(c) for c in cfg.network_config().channels)


def main() -> None:
    s1, s2 = TrainConfig.for_stage(1), TrainConfig.for_stage(2)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder holding stage1_BG/ and stage2_train/")
    ap.add_argument("--out", default="rbcflow/models")
    ap.add_argument("--stage", type=int, choices=(1, 2), nargs="*", default=[1, 2])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs1", type=int, default=s1.epochs)
    ap.add_argument("--epochs2", type=int, default=s2.epochs)
    ap.add_argument("--seed", type=int, default=s1.seed)
    ap.add_argument("--k1", type=int, default=s1.k, help="stage-1 frames (uniform)")
    ap.add_argument("--channels1", default=_channels(s1), help="stage-1 per-frame CNN channels")
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
    report = {f"stage{s}": run_stage(s, sets, args) for s in args.stage}
    write_text_atomic(Path(args.out) / "cv_report.json", json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
