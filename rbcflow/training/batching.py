"""Labelled sequences -> network inputs, and each epoch's class-balanced, augmented sample.

Each epoch draws a class-balanced sample of the training set (every sequence of the larger class
once, the smaller class up-sampled with replacement), augments it
(:func:`rbcflow.training.augment.augment`) and, for stage 1, makes part of the unreliable class
from reliable sequences (:func:`rbcflow.training.augment.make_unreliable`) and trains on random
sub-sequences (:func:`stage1_view`), so that a sequence's length does not reveal its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rbcflow.classify.sampling import NORMALISATION, normalise, pad_frames, prepare, uniform_indices
from rbcflow.io.sequences import Sequence as LabelledSequence
from rbcflow.model_settings import TrainConfig
from rbcflow.training.augment import augment, make_unreliable
from rbcflow.training.metrics import stage_target


@dataclass
class PreparedData:
    """A stage's network inputs of labelled sequences (those the stage uses), with targets."""

    x: list[np.ndarray]  # normalised frames (stage 1: full length; stage 2: k, padded)
    lengths: list[int]  # real frames of each (stage 2: before padding)
    y: np.ndarray  # stage targets


def prepare_data(
    seqs: Sequence[LabelledSequence], stage: int, k: int, training: bool
) -> PreparedData:
    """Network inputs and stage targets of the labelled sequences a stage uses.

    ``training`` (stage 1): keep every frame, normalised, so that each epoch can draw its own
    sub-sequence (:func:`stage1_view`); otherwise downsample to ``k`` as at inference.
    """
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
    return PreparedData(x, lengths, y)


def epoch_sample(
    data: PreparedData, cfg: TrainConfig, rng: np.random.Generator
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
                x = stage1_view(x, cfg, rng)
                length = len(x)
            if cfg.augment:
                x = augment(x, rng, length if cfg.stage == 2 else None)
            xs.append(x)
            ls.append(length)
            ys.append(c)
        for _ in range(n_synth):
            a, b = rng.choice(reliable, 2, replace=False)
            x = make_unreliable(stage1_view(data.x[a], cfg, rng), data.x[b], rng)
            if cfg.augment:
                x = augment(x, rng)
            xs.append(x)
            ls.append(len(x))
            ys.append(c)
    return xs, ls, np.asarray(ys, dtype=np.int64)


def stage1_view(x: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A random sub-sequence (sometimes), uniformly downsampled to at most k frames."""
    t = len(x)
    if t > 6 and rng.random() < cfg.random_crop:
        length = int(rng.integers(6, t + 1))
        start = int(rng.integers(0, t - length + 1))
        x = x[start : start + length]
    return x[uniform_indices(len(x), cfg.k)]
