"""Fine-tuning a model folder on a lab's own labels (``rbcflow train --init MODEL_DIR``).

The parent network (a shipped model or a lab's, ensembles included) is copied and trained
further on the new sequences (typically ``rbcflow export-labels`` of reviewed tracks) with the
same loop as training from scratch (:func:`rbcflow.training.loop.train`, ``init``), at a tenth
of the stage's learning rate and for fewer epochs by default, so that a few dozen reviewed
tracks adjust the model rather than replace what it learnt. The new folder keeps the parent's
architecture and input (so it analyses exactly like the parent) and records its parent
(folder, checksum, weights' SHA-256) and its data (the sets, with the ``export.json`` of each
that has one: which results and acquisitions the labels came from, and who reviewed them).
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
    cfg = dataclasses.replace(base, k=parent.k, **given)
    try:
        result = train(
            train_set, val_set, cfg, device=device, progress=progress, init=parent.network
        )
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
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
    calibration = validation_calibration(result.network, val_set, stage, parent.k)
    if calibration is not None:
        config["calibration"] = calibration
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
