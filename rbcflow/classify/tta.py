"""Test-time averaging: a network's probabilities averaged over label-preserving views.

A view transforms a batch of prepared sequences ``(B, T, H, W)`` (rows ``H`` across the flow,
columns ``W`` along it) whose first ``lengths[b]`` frames are real (the rest is padding):

``mirror``   mirror image across the flow axis (rows reversed: a cell in the other half of the
             shear flow); the training augmentation uses it
             (:func:`rbcflow.training.augment.augment`);
``time``     the real frames in reverse order (padding stays at the end); used in training too;
``hmirror``  mirror image along the flow (columns reversed: the flow the other way); never
             seen in training.

Views combine with ``+`` (``mirror+time``). The untransformed input is always one of the views:
``views=("mirror", "time", "mirror+time")`` averages four. :func:`rbcflow.classify.inference.
predict_proba` takes them (``tta``); benchmarks/bench_accuracy.py ``--tta`` measures them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

VIEWS = ("mirror", "time", "hmirror")
"""The elementary views; a view name is one of them or several joined by ``+``."""

TRAINED_VIEWS = ("mirror", "time", "mirror+time")
"""The views the training augmentation draws (each with probability 1/2, independently)."""


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """``views`` as a tuple, each name checked; raises ValueError on an unknown part."""
    out = []
    for v in views:
        parts = v.split("+")
        bad = [p for p in parts if p not in VIEWS]
        if bad or not v:
            raise ValueError(f"unknown test-time view {v!r} (known parts: {VIEWS}, joined by '+')")
        out.append(v)
    return tuple(out)


def reverse_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence's first ``lengths[b]`` frames reversed, the padding after them kept."""
    t = torch.arange(x.shape[1], device=x.device)
    n = lengths.to(x.device)[:, None]
    index = torch.where(t[None] < n, n - 1 - t[None], t[None])
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


def apply_view(x: torch.Tensor, lengths: torch.Tensor, view: str) -> torch.Tensor:
    """The batch ``x`` (``(B, T, H, W)``) as ``view`` shows it (a new tensor)."""
    for part in view.split("+"):
        if part == "mirror":
            x = x.flip(2)
        elif part == "hmirror":
            x = x.flip(3)
        elif part == "time":
            x = reverse_time(x, lengths)
        else:
            raise ValueError(f"unknown test-time view {part!r} (known: {VIEWS})")
    return x
