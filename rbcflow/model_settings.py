"""Network architectures and training settings of the two classifier stages.

Beside :mod:`rbcflow.config` (the analysis' settings) so that each stays short; the same
rules hold: frozen dataclasses, every default here, read by ``rbcflow train``,
``models/train_defaults.py`` and the network builders (:mod:`rbcflow.classify.nets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CRNNConfig:
    """C-RNN architecture (:class:`rbcflow.classify.nets.CRNN`; both shipped stages).

    channels : output channels of the four per-frame conv layers (3 x 3, each but the last
        followed by a 2 x 2 max-pool; the last is averaged over the image).
    hidden : GRU units.
    dense : units of the dense layer before the 2 outputs.
    dropout : dropout before the output layer (training only).
    """

    channels: tuple[int, ...] = (8, 32, 64, 128)
    hidden: int = 64
    dense: int = 64
    dropout: float = 0.3


@dataclass(frozen=True)
class StackCNNConfig:
    """Stage-2 CNN architecture, the paper's (:class:`rbcflow.classify.nets.StackCNN`).

    k : frames per sequence = input channels.
    width : channels of the first residual stage (doubled at each of the two later stages,
        which halve the resolution: 31 -> 16 -> 8).
    dropout : dropout before the output layer (training only).
    """

    k: int = 20
    width: int = 16
    dropout: float = 0.3


SMALL_CHANNELS = (8, 16, 32, 64)
"""Per-frame CNN channels of the shipped C-RNNs (the paper's are 8, 32, 64, 128)."""

_STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {"k": 12, "epochs": 30},  # up to 12 uniform frames (docs/training.md: as good, faster)
    2: {"k": 20, "epochs": 45},  # 20 similarity frames, the paper's choice
}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults used for the shipped models unless stated in their config).

    :meth:`for_stage` gives a stage's defaults (``rbcflow train`` and
    ``models/train_defaults.py`` start from it); the field defaults of ``k`` and ``epochs``
    are stage 2's.

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
    synthetic_unreliable: float = 0.5
    random_crop: float = 0.5
    architecture: CRNNConfig | StackCNNConfig | None = None

    @classmethod
    def for_stage(cls, stage: int, **changes: Any) -> TrainConfig:
        """A stage's default settings (those of the shipped models), with ``changes``.

        Examples
        --------
        >>> [(c.k, c.epochs) for c in (TrainConfig.for_stage(1), TrainConfig.for_stage(2))]
        [(12, 30), (20, 45)]
        """
        if stage not in _STAGE_DEFAULTS:
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        return cls(**{"stage": stage, **_STAGE_DEFAULTS[stage], **changes})

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
