"""Training the two classifiers on labelled sequences (authors' format); no CLI parsing here.

Stage 1 (C-RNN) learns reliable (labels 0, 1) vs unreliable (label 2); stage 2 (CNN) learns
tank-treading (0) vs flipping (1) on reliable sequences only. Data sets are split by acquisition
by the caller (never by sequence: sequences of one acquisition share illumination, focus and
cells' state, so a sequence split flatters the model).

Each epoch draws a class-balanced sample of the training set (every sequence of the larger class
once, the smaller class up-sampled with replacement), augments it
(:func:`rbcflow.augment.augment`) and, for stage 1, makes part of the unreliable class from
reliable sequences (:func:`rbcflow.augment.make_unreliable`). Adam with a cosine learning-rate
schedule; the epoch with the best validation F1 (positive class: reliable for stage 1, flipping
for stage 2; ties to the lower validation loss) is kept. Everything random derives from
``TrainConfig.seed``: two runs with one seed give the same weights (on one device).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rbcflow.augment import augment, make_unreliable
from rbcflow.inference import batch_tensors, predict_proba
from rbcflow.io.sequences import Sequence as LabelledSequence
from rbcflow.models.nets import CRNNConfig, StackCNNConfig, architecture_of, build_network
from rbcflow.sampling import NORMALISATION, normalise, pad_frames, prepare, uniform_indices
from rbcflow.schema import FLIPPING, LABEL_NAMES, TANK_TREADING, UNRELIABLE

STAGE_CLASSES: dict[int, list[str]] = {
    1: ["unreliable", "reliable"],
    2: [LABEL_NAMES[TANK_TREADING], LABEL_NAMES[FLIPPING]],
}
"""Class names of each stage's network outputs, in output order."""

POSITIVE: dict[int, int] = {1: 1, 2: 1}
"""Output index of the positive class of each stage's metrics (paper conventions: stage 1
reliable, stage 2 flipping)."""


SMALL_CHANNELS = (8, 16, 32, 64)
"""Per-frame CNN channels of the shipped C-RNNs (the paper's are 8, 32, 64, 128)."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults used for the shipped models unless stated in their config).

    stage : 1 or 2.
    k : frames per sequence (stage 1: at most k, uniform; stage 2: exactly k, similarity).
    epochs, batch_size, lr, weight_decay : optimiser settings (Adam, cosine schedule).
    seed : seeds initialisation, sampling, augmentation and dropout.
    augment : apply label-preserving augmentation to training sequences.
    synthetic_unreliable : stage 1: fraction of each epoch's unreliable sample made from
        reliable sequences (0 = real unreliable only).
    random_crop : stage 1: probability of training on a random sub-sequence (>= 6 frames) so
        that a sequence's length does not reveal its class.
    architecture : network parameters (a CRNNConfig or, stage 2 only, a StackCNNConfig);
        None = a C-RNN with per-frame channels SMALL_CHANNELS.
    """

    stage: int = 1
    k: int = 20
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True
    synthetic_unreliable: float = 0.4
    random_crop: float = 0.5
    architecture: CRNNConfig | StackCNNConfig | None = None

    def network_config(self) -> CRNNConfig | StackCNNConfig:
        """The architecture; default: the small C-RNN of the shipped models, for both stages
        (in cross-validation it matched the paper-sized C-RNN on stage 1 and beat the K-channel
        CNN clearly on stage 2)."""
        if self.architecture is not None:
            return self.architecture
        return CRNNConfig(channels=SMALL_CHANNELS)

    @property
    def sampling(self) -> str:
        return "uniform" if self.stage == 1 else "similarity"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["architecture"] = architecture_of(self.network_config())
        d["sampling"] = self.sampling
        return d


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


# -- targets and metrics ----------------------------------------------------------------------


def stage_target(label: int, stage: int) -> int | None:
    """Network output index for an authors' label (None: not used by that stage)."""
    if stage == 1:
        return 0 if label == UNRELIABLE else 1
    return None if label == UNRELIABLE else int(label)


def binary_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, specificity and confusion matrix of a binary task.

    Parameters
    ----------
    truth, pred : (N,) bool ndarray
        True = positive class.

    Returns
    -------
    dict
        ``confusion`` is ``[[TN, FP], [FN, TP]]`` (rows truth negative/positive, columns
        prediction negative/positive). Undefined ratios are NaN.
    """
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    tp = int(np.sum(truth & pred))
    tn = int(np.sum(~truth & ~pred))
    fp = int(np.sum(~truth & pred))
    fn = int(np.sum(truth & ~pred))

    def ratio(a: int, b: int) -> float:
        return a / b if b else math.nan

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision == precision and recall == recall and precision + recall > 0
        else (0.0 if tp == 0 and (fp + fn) > 0 else math.nan)
    )
    return {
        "n": int(truth.size),
        "accuracy": ratio(tp + tn, truth.size),
        "precision": precision,
        "recall": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": f1,
        "confusion": [[tn, fp], [fn, tp]],
    }


# -- data ---------------------------------------------------------------------------------------


@dataclass
class _Data:
    x: list[np.ndarray]  # normalised frames (stage 1: full length; stage 2: k, padded)
    lengths: list[int]  # real frames of each (stage 2: before padding)
    y: np.ndarray  # stage targets


def _prepare(seqs: Sequence[LabelledSequence], stage: int, k: int, training: bool) -> _Data:
    keep = [s for s in seqs if s.label is not None and stage_target(s.label, stage) is not None]
    y = np.array([stage_target(s.label, stage) for s in keep], dtype=np.int64)
    raw = [s.frames for s in keep]
    if stage == 1 and training:
        # Keep full length: each epoch draws its own sub-sequence, then downsamples.
        x = [normalise(r, NORMALISATION["border"], NORMALISATION["scale"]) for r in raw]
    else:
        x = prepare(raw, k, "uniform" if stage == 1 else "similarity", pad=False)
    lengths = [len(a) for a in x]
    if stage == 2:
        x = [pad_frames(a, k) for a in x]
    return _Data(x, lengths, y)


def _epoch_sample(
    data: _Data, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """One epoch's class-balanced, augmented training sample."""
    classes = [np.flatnonzero(data.y == c) for c in (0, 1)]
    n = max(len(c) for c in classes)
    xs: list[np.ndarray] = []
    ls: list[int] = []
    ys: list[int] = []
    reliable = classes[1]
    for c, members in enumerate(classes):
        n_synth = 0
        if cfg.stage == 1 and c == 0:
            n_synth = int(round(cfg.synthetic_unreliable * n)) if len(reliable) > 1 else 0
            if len(members) == 0:
                n_synth = n
        if len(members) == 0 and n_synth == 0:
            continue
        if len(members) == n and n_synth == 0:
            picks = rng.permutation(members)
        else:
            picks = rng.choice(members, n - n_synth, replace=True) if len(members) else []
        for i in picks:
            x = data.x[i]
            length = data.lengths[i]
            if cfg.stage == 1:
                x = _stage1_view(x, cfg, rng)
                length = len(x)
            if cfg.augment:
                x = augment(x, rng, length if cfg.stage == 2 else None)
            xs.append(x)
            ls.append(length)
            ys.append(c)
        for _ in range(n_synth):
            a, b = rng.choice(reliable, 2, replace=False)
            x = make_unreliable(_stage1_view(data.x[a], cfg, rng), data.x[b], rng)
            if cfg.augment:
                x = augment(x, rng)
            xs.append(x)
            ls.append(len(x))
            ys.append(c)
    return xs, ls, np.asarray(ys, dtype=np.int64)


def _stage1_view(x: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A random sub-sequence (sometimes), uniformly downsampled to at most k frames."""
    t = len(x)
    if t > 6 and rng.random() < cfg.random_crop:
        length = int(rng.integers(6, t + 1))
        start = int(rng.integers(0, t - length + 1))
        x = x[start : start + length]
    return x[uniform_indices(len(x), cfg.k)]


# -- the loop -----------------------------------------------------------------------------------


def train(
    train_set: Sequence[LabelledSequence],
    val_set: Sequence[LabelledSequence] | None,
    cfg: TrainConfig,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
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
    data = _prepare(train_set, cfg.stage, cfg.k, training=True)
    counts = np.bincount(data.y, minlength=2)
    if counts[1] == 0 or (counts[0] == 0 and not (cfg.stage == 1 and cfg.synthetic_unreliable)):
        have = dict(zip(STAGE_CLASSES[cfg.stage], counts.tolist(), strict=True))
        raise ValueError(f"stage {cfg.stage} training set has {have}: both classes are needed")
    val = _prepare(val_set, cfg.stage, cfg.k, training=False) if val_set else None
    if val is not None and len(val.y) == 0:
        val = None
    with torch.random.fork_rng(devices=[]):  # seed torch locally, not the caller's global RNG
        torch.manual_seed(cfg.seed)
        network = build_network(architecture_of(cfg.network_config())).to(device)
        opt = torch.optim.Adam(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
        loss_fn = nn.CrossEntropyLoss()
        best: tuple[float, float] | None = None
        best_state = None
        best_epoch, best_metrics = cfg.epochs, {}
        history = []
        for epoch in range(1, cfg.epochs + 1):
            xs, ls, ys = _epoch_sample(data, cfg, rng)
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
            "config": cfg.to_dict(),
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
