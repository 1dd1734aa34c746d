"""Fine-tuning a model folder on a lab's own labels (``rbcflow train --init MODEL_DIR``).

The parent network (a shipped model or a lab's, ensembles included) is copied and trained
further on the new sequences (typically ``rbcflow export-labels`` of reviewed tracks) with the
same loop as training from scratch (:func:`rbcflow.training.loop.train`, ``init``), at a tenth
of the stage's learning rate and for fewer epochs by default, so that a few dozen reviewed
tracks adjust the model rather than replace what it learnt. The new folder keeps the parent's
architecture and input (so it analyses exactly like the parent) and records its parent
(folder, checksum, weights' SHA-256) and its data (the sets, with the ``export.json`` of each
that has one: which results and acquisitions the labels came from, and who reviewed them).

Two guards against forgetting what the parent learnt from many patients, both optional:
``freeze_cnn`` keeps the per-frame CNN (the early layers: the cell's appearance) as it is and
trains the GRU and the head only; ``l2sp`` adds ``l2sp / 2 * ||w - w_parent||**2`` to the loss
(L2-SP: Li, Grandvalet & Davoine, ICML 2018), pulling every weight toward the parent's rather
than toward zero (Adam's own weight decay is then off). Without validation sequences the last
epoch is kept and the parent's ``calibration`` (its held-out rates) is carried over, marked as
the parent's: a few dozen reviewed tracks cannot re-measure them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rbcflow.errors import DatasetError, ModelError
from rbcflow.io.sequences import Sequence as LabelledSequence
from rbcflow.model_settings import TrainConfig

LR_FACTOR = 0.1
"""Fine-tuning learning rate: this times the stage's default (``TrainConfig.for_stage``)."""
EPOCHS = 10
"""Fine-tuning epochs by default (the stage's from-scratch default is larger)."""


def _anchored(network, l2sp: float, freeze_cnn: bool):
    """A copy of ``network`` to fine-tune: the frame CNNs frozen (``freeze_cnn``), and a
    gradient hook on every trained weight adding ``l2sp * (w - w_parent)`` (L2-SP)."""
    import copy

    import torch
    from torch import nn

    net = copy.deepcopy(network)
    for name, p in net.named_parameters():
        if freeze_cnn and "frame_cnn" in name:
            p.requires_grad_(False)
    if freeze_cnn:  # batch-norm statistics of the frozen layers stay the parent's too
        for name, m in net.named_modules():
            if "frame_cnn" in name and isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0
    if l2sp <= 0:
        return net

    class Anchored(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            for i, p in enumerate(inner.parameters()):
                self.register_buffer(f"anchor{i}", p.detach().clone())
            self.hooked = False

        def forward(self, x, lengths):
            if not self.hooked:  # once, on the copy the training loop trains
                for i, p in enumerate(self.inner.parameters()):
                    if p.requires_grad:
                        w0 = getattr(self, f"anchor{i}")
                        p.register_hook(lambda g, p=p, w0=w0: g + l2sp * (p.detach() - w0))
                self.hooked = True
            return self.inner(x, lengths)

    with torch.no_grad():
        return Anchored(net)


def data_provenance(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Each set's folder with its ``export.json`` (from ``rbcflow export-labels``) if any."""
    out = []
    for f in folders:
        rec: dict[str, Any] = {"folder": str(Path(f).resolve())}
        exp = Path(f) / "export.json"
        if exp.is_file():
            try:
                rec["export"] = json.loads(exp.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                rec["export"] = "unreadable"
        out.append(rec)
    return out


def fine_tune(
    parent_dir: str | Path,
    stage: int,
    train_set: Sequence[LabelledSequence],
    val_set: Sequence[LabelledSequence],
    out: str | Path,
    *,
    data_sources: Sequence[str | Path] = (),
    device: str = "cpu",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    augment: bool = True,
    freeze_cnn: bool = False,
    l2sp: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, Any]:
    """Fine-tune the model in ``parent_dir`` and write the new model folder ``out``.

    Returns
    -------
    (checksum, TrainResult)

    Raises
    ------
    ModelError
        The parent folder does not load, or is a model of the other stage.
    DatasetError
        The training set lacks one of the stage's classes.
    """
    from rbcflow.classify.model_folder import load_model, save_model
    from rbcflow.training.loop import model_config, train, validation_calibration

    parent = load_model(parent_dir, allow_user=True)
    if parent.stage != stage:
        raise ModelError(f"is a stage-{parent.stage} model, not stage {stage}", parent_dir)
    base = TrainConfig.for_stage(stage)
    given = dict(epochs=epochs or EPOCHS, lr=lr or base.lr * LR_FACTOR, augment=augment)
    given.update({k: v for k, v in dict(batch_size=batch_size, seed=seed).items() if v})
    if l2sp > 0:
        given["weight_decay"] = 0.0  # L2-SP replaces the decay toward zero
    cfg = dataclasses.replace(base, k=parent.k, **given)
    init = _anchored(parent.network, l2sp, freeze_cnn)
    try:
        result = train(train_set, val_set, cfg, device=device, progress=progress, init=init)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if hasattr(result.network, "inner"):
        result = dataclasses.replace(result, network=result.network.inner)
    for p in result.network.parameters():
        p.requires_grad_(True)
    config = model_config(cfg, train_set, val_set, [result], [str(d) for d in data_sources])
    # the parent's network and input, exactly: the new folder analyses like its parent
    config["architecture"] = parent.config["architecture"]
    config["input"] = parent.config["input"]
    config["training"]["history"] = result.history
    config["training"]["fine_tuned_from"] = {
        "folder": str(Path(parent_dir).resolve()),
        "checksum": parent.checksum,
        "weights_sha256": parent.weights_sha256,
        "origin": parent.origin,
    }
    config["training"]["data"] = data_provenance(data_sources)
    config["training"]["fine_tuning"] = {"freeze_cnn": freeze_cnn, "l2sp": l2sp}
    calibration = validation_calibration(result.network, val_set, stage, parent.k)
    if calibration is not None:
        config["calibration"] = calibration
    elif isinstance(parent.config.get("calibration"), dict):
        config["calibration"] = {**parent.config["calibration"], "from_parent": True}
    return save_model(out, result.network, config), result


def summary(params: dict[str, Any], train_set, val_set, device: str) -> str:
    """Run :func:`fine_tune` with ``rbcflow train --init``'s options (click's ``params``);
    returns the line the CLI prints."""
    kw = {k: params.get(k) for k in ("epochs", "lr", "batch_size", "seed")}
    sets = [*params["data"], *params["val"]]
    init, out = params["init"], params["out"]
    checksum, result = fine_tune(
        init,
        params["stage"],
        train_set,
        val_set,
        out,
        data_sources=sets,
        device=device,
        augment=not params["no_augment"],
        **kw,
    )
    m = result.val_metrics
    line = f"wrote {out} ({checksum}), fine-tuned from {init}, epoch {result.best_epoch}"
    if m:
        line += f"; validation F1 {m['f1']:.3f} (n={m['n']})"
    return line
