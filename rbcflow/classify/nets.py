"""The two classifier networks (torch.nn only).

* :class:`CRNN`, stage 1 (reliable vs unreliable) and, in the shipped models, stage 2 too: a
  small CNN with shared weights applied to every frame, a GRU over the frames, a dense layer and
  2 outputs (Darrin et al. 2023, Fig. 3).
  Sequences of different lengths share a batch: frames past a sequence's length are never fed to
  the CNN and the GRU's output is read at the sequence's last frame, so padding cannot change
  the answer.
* :class:`StackCNN`, the paper's stage 2 (tank-treading vs flipping): a residual CNN
  (ResNet-style, made small) that sees the K frames of a sequence as K input channels. On our
  scarce data it generalised worse across acquisitions than the C-RNN (docs/training.md).
* :class:`Ensemble` averages the class probabilities of several members.

Their parameters are :class:`rbcflow.model_settings.CRNNConfig` and
:class:`rbcflow.model_settings.StackCNNConfig` (defaults live there). Every network maps its
input to logits ``(B, 2)``; an ensemble's output is the log of its members' mean
probabilities, so ``softmax`` of any output is a probability.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from rbcflow.model_settings import CRNNConfig, StackCNNConfig
from rbcflow.schema import CROP_SIZE


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CRNN(nn.Module):
    """Per-frame CNN + GRU + dense: ``(B, T, 31, 31)`` frames and ``(B,)`` lengths -> logits."""

    def __init__(self, cfg: CRNNConfig | None = None):
        super().__init__()
        cfg = cfg or CRNNConfig()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 1
        for i, cout in enumerate(cfg.channels):
            layers.append(_conv_bn(cin, cout))
            if i < len(cfg.channels) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.frame_cnn = nn.Sequential(*layers)
        self.gru = nn.GRU(cin, cfg.hidden, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.dense),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.dense, 2),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of each sequence.

        Parameters
        ----------
        x : (B, T, 31, 31) float32 tensor
            Normalised frames; frames at or past ``lengths[b]`` are ignored (any value).
        lengths : (B,) int64 tensor
            Number of frames of each sequence, 1 <= lengths <= T.

        Returns
        -------
        (B, 2) float32 tensor
        """
        b, t = x.shape[:2]
        lengths = lengths.to(x.device)
        valid = torch.arange(t, device=x.device)[None, :] < lengths[:, None]
        # Only real frames go through the CNN (its batch norm must not see padding).
        feats = self.frame_cnn(x[valid].unsqueeze(1))
        seq = x.new_zeros(b, t, feats.shape[1])
        seq[valid] = feats
        # A unidirectional GRU's output at step L-1 depends on steps 0..L-1 only.
        out, _ = self.gru(seq)
        last = out[torch.arange(b, device=x.device), lengths - 1]
        return self.head(last)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class StackCNN(nn.Module):
    """Residual CNN over the K frames as channels: ``(B, K, 31, 31)`` -> logits ``(B, 2)``."""

    def __init__(self, cfg: StackCNNConfig | None = None):
        super().__init__()
        cfg = cfg or StackCNNConfig()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(
            _conv_bn(cfg.k, w),
            _Block(w, w, 1),
            _Block(w, 2 * w, 2),
            _Block(2 * w, 4 * w, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(4 * w, 2))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits; ``x`` is ``(B, K, 31, 31)`` float32 (short sequences padded with blank
        frames); ``lengths`` is accepted for a common signature and unused."""
        return self.head(self.features(x))


class Ensemble(nn.Module):
    """Mean of the members' probabilities; returns its log (so softmax gives it back)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x, lengths), dim=1) for m in self.members])
        return torch.log(probs.mean(dim=0).clamp_min(1e-12))


_KINDS: dict[str, tuple[type, type]] = {
    "crnn": (CRNN, CRNNConfig),
    "stack_cnn": (StackCNN, StackCNNConfig),
}


def architecture_of(cfg: CRNNConfig | StackCNNConfig, n_members: int = 1) -> dict[str, Any]:
    """JSON-able description of a network (as stored in a model folder's config)."""
    name = {CRNNConfig: "crnn", StackCNNConfig: "stack_cnn"}[type(cfg)]
    d = dataclasses.asdict(cfg)
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    return {"name": name, "members": n_members, **d}


def build_network(arch: dict[str, Any]) -> nn.Module:
    """The network described by ``arch`` (see :func:`architecture_of`), untrained.

    Raises
    ------
    ValueError
        If the name is unknown or a parameter does not fit.
    """
    arch = dict(arch)
    name = arch.pop("name", None)
    n_members = int(arch.pop("members", 1))
    if name not in _KINDS:
        raise ValueError(f"unknown architecture {name!r} (known: {sorted(_KINDS)})")
    net_cls, cfg_cls = _KINDS[name]
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = set(arch) - fields
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for {name}")
    cfg = cfg_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()})
    if n_members < 1:
        raise ValueError(f"members must be >= 1, got {n_members}")
    if n_members == 1:
        return net_cls(cfg)
    return Ensemble([net_cls(cfg) for _ in range(n_members)])


def input_size() -> int:
    """Side of the square frames the networks take (the crop size)."""
    return CROP_SIZE
