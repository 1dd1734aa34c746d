"""Training one stage's network on labelled sequences (authors' format); no CLI parsing here.

Stage 1 (C-RNN) learns reliable (labels 0, 1) vs unreliable (label 2); stage 2 learns
tank-treading (0) vs flipping (1) on reliable sequences only. Data sets are split by acquisition
by the caller (never by sequence: sequences of one acquisition share illumination, focus and
cells' state, so a sequence split flatters the model).

Each epoch trains on a class-balanced, augmented sample (:mod:`rbcflow.training.batching`).
Adam with a cosine learning-rate schedule; the epoch with the best validation F1 (positive
class: reliable for stage 1, flipping for stage 2; ties to the lower validation loss) is kept.
Everything random derives from ``TrainConfig.seed``: two runs with one seed give the same
weights (on one device). Settings: :class:`rbcflow.model_settings.TrainConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rbcflow.classify.inference import batch_tensors, predict_proba
from rbcflow.classify.nets import architecture_of, build_network
from rbcflow.classify.sampling import NORMALISATION
from rbcflow.io.sequences import Sequence as LabelledSequence
from rbcflow.model_settings import TrainConfig
from rbcflow.schema import LABEL_NAMES
from rbcflow.training.batching import epoch_sample, prepare_data
from rbcflow.training.metrics import POSITIVE, STAGE_CLASSES, binary_metrics, stage_target


def input_spec(stage: int, k: int) -> dict[str, Any]:
    """The ``input`` section of a model config: how raw crops become network input."""
    return {
        "crop_size": 31,
        "k": k,
        "sampling": "uniform" if stage == 1 else "similarity",
        "pad": stage == 2,
        "ssim_data_range": 255.0,
        "normalisation": dict(NORMALISATION),
    }


@dataclass
class TrainResult:
    """What :func:`train` returns.

    network : the trained network at its best epoch (eval mode, CPU).
    best_epoch : 1-based epoch kept (the last one without validation data).
    val_metrics : validation metrics at the best epoch (empty without validation data).
    history : one dict per epoch (loss, validation loss and metrics).
    """

    network: nn.Module
    best_epoch: int
    val_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def _config_record(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as recorded in a model config (its architecture as :func:`architecture_of`)."""
    d = dataclasses.asdict(cfg)
    d["architecture"] = architecture_of(cfg.network_config())
    d["sampling"] = cfg.sampling
    return d


def train(
    train_set: Sequence[LabelledSequence],
    val_set: Sequence[LabelledSequence] | None,
    cfg: TrainConfig,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    init: nn.Module | None = None,
) -> TrainResult:
    """Train a stage's network.

    Parameters
    ----------
    train_set, val_set : sequences of :class:`rbcflow.io.sequences.Sequence`
        Labelled sequences (labels 0, 1, 2; sequences the stage does not use are ignored).
        ``val_set`` chooses the epoch kept; None or empty keeps the last epoch.
    cfg : TrainConfig
    device : torch device for training.
    progress : called with 1 after each epoch.
    on_epoch : called with the epoch's record (loss, validation loss and metrics).
    init : a trained network to start from (a copy is trained: fine-tuning,
        :mod:`rbcflow.training.finetune`); None builds ``cfg``'s architecture afresh.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If the training set lacks one of the stage's classes.
    """
    if cfg.stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {cfg.stage}")
    rng = np.random.default_rng(cfg.seed)
    data = prepare_data(train_set, cfg.stage, cfg.k, training=True)
    counts = np.bincount(data.y, minlength=2)
    if counts[1] == 0 or (counts[0] == 0 and not (cfg.stage == 1 and cfg.synthetic_unreliable)):
        have = dict(zip(STAGE_CLASSES[cfg.stage], counts.tolist(), strict=True))
        raise ValueError(f"stage {cfg.stage} training set has {have}: both classes are needed")
    val = prepare_data(val_set, cfg.stage, cfg.k, training=False) if val_set else None
    if val is not None and len(val.y) == 0:
        val = None
    with torch.random.fork_rng(devices=[]):  # seed torch locally, not the caller's global RNG
        torch.manual_seed(cfg.seed)
        if init is not None:
            network = copy.deepcopy(init).to(device)
        else:
            network = build_network(architecture_of(cfg.network_config())).to(device)
        opt = torch.optim.Adam(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
        loss_fn = nn.CrossEntropyLoss()
        best: tuple[float, float] | None = None
        best_state = None
        best_epoch, best_metrics = cfg.epochs, {}
        history = []
        for epoch in range(1, cfg.epochs + 1):
            xs, ls, ys = epoch_sample(data, cfg, rng)
            order = rng.permutation(len(xs))
            network.train()
            total, seen = 0.0, 0
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                xb, lb = batch_tensors(xs, ls, idx)
                yb = torch.from_numpy(ys[idx]).to(device)
                opt.zero_grad()
                loss = loss_fn(network(xb.to(device), lb.to(device)), yb)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            sched.step()
            record: dict[str, Any] = {"epoch": epoch, "loss": total / max(seen, 1)}
            if val is not None:
                p = predict_proba(network, val.x, val.lengths, device=device)
                vloss = float(-np.mean(np.log(np.clip(p[np.arange(len(p)), val.y], 1e-12, 1))))
                m = binary_metrics(val.y == POSITIVE[cfg.stage], p.argmax(1) == POSITIVE[cfg.stage])
                record.update(val_loss=vloss, **{f"val_{k}": v for k, v in m.items()})
                f1 = m["f1"] if m["f1"] == m["f1"] else 0.0
                key = (f1, -vloss)
                if best is None or key > best:
                    best, best_epoch, best_metrics = key, epoch, {**m, "loss": vloss}
                    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if progress is not None:
                progress(1)
    if best_state is not None:
        network.load_state_dict(best_state)
    network.cpu().eval()
    return TrainResult(network, best_epoch, best_metrics, history)


def model_config(
    cfg: TrainConfig,
    train_set: Sequence[LabelledSequence],
    val_set: Sequence[LabelledSequence] | None,
    results: Sequence[TrainResult],
    data_sources: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content of a model folder trained by :func:`train`.

    ``results`` holds one result per ensemble member (one for a single network).
    """

    def acqs(seqs: Sequence[LabelledSequence] | None) -> list[str]:
        return sorted({s.acquisition for s in seqs}) if seqs else []

    def counts(seqs: Sequence[LabelledSequence] | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in seqs or []:
            if s.label is not None:
                out[LABEL_NAMES[s.label]] = out.get(LABEL_NAMES[s.label], 0) + 1
        return out

    return {
        "stage": cfg.stage,
        "task": "reliable vs unreliable" if cfg.stage == 1 else "tank-treading vs flipping",
        "architecture": architecture_of(cfg.network_config(), n_members=len(results)),
        "input": input_spec(cfg.stage, cfg.k),
        "class_names": STAGE_CLASSES[cfg.stage],
        "positive_class": STAGE_CLASSES[cfg.stage][POSITIVE[cfg.stage]],
        "training": {
            "config": _config_record(cfg),
            "data_sources": list(data_sources),
            "train_acquisitions": acqs(train_set),
            "train_counts": counts(train_set),
            "val_acquisitions": acqs(val_set),
            "val_counts": counts(val_set),
            "best_epochs": [r.best_epoch for r in results],
        },
        "validation": [r.val_metrics for r in results],
        **(extra or {}),
    }


def validation_calibration(
    network: nn.Module, val_set: Sequence[LabelledSequence] | None, stage: int, k: int
) -> dict[str, Any] | None:
    """The ``calibration`` section of a model config from its validation sequences' probabilities
    (:func:`rbcflow.classify.calibration.calibration_block`), folds by acquisition; None without
    validation sequences of both of the stage's classes.

    The validation set also chose the epoch kept, so these rates flatter the model a little;
    validate on other patients (``--val-acquisitions``) for rates that hold on a new one.
    Stage 2 also scores the validation set's unreliable sequences (what a leaked track becomes).
    """
    from rbcflow.classify.calibration import calibration_block

    seqs = [s for s in (val_set or []) if s.label is not None]
    targets = {stage_target(s.label, stage) for s in seqs} - {None}
    if targets != {0, 1}:
        return None
    return calibration_block(
        stage,
        stage_probabilities(network, seqs, stage, k),
        [s.label for s in seqs],
        "validation set (it chose the epoch kept)",
        folds=[s.acquisition for s in seqs],
    )


def stage_probabilities(
    network: nn.Module, seqs: Sequence[LabelledSequence], stage: int, k: int
) -> np.ndarray:
    """(N,) probability of the class a model config's ``calibration`` stores, for every
    sequence (any label): stage 1's p_reliable, stage 2's p_tank_treading, the sequences
    prepared as at inference (``k`` frames; stage 1 uniform, stage 2 similarity and padded)."""
    from rbcflow.classify.sampling import pad_frames, prepare

    x = prepare([s.frames for s in seqs], k, "uniform" if stage == 1 else "similarity", pad=False)
    lengths = [len(a) for a in x]
    if stage == 2:
        x = [pad_frames(a, k) for a in x]
    return predict_proba(network, x, lengths)[:, 1 if stage == 1 else 0]
