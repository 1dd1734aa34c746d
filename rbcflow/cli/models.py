"""``rbcflow train`` and ``rbcflow evaluate`` (``classify`` is in :mod:`rbcflow.cli.classify`)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rbcflow.cli.main import CONTEXT_SETTINGS, main, progress_bar, report_error
from rbcflow.config import ReportConfig
from rbcflow.errors import DatasetError, ModelError, OutputError, RbcflowError
from rbcflow.model_settings import CRNNConfig, StackCNNConfig, TrainConfig
from rbcflow.run_settings import InferenceConfig

DEVICE_HELP = "Torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1 ..."
_INF = InferenceConfig()
BATCH_HELP = f"Sequences per batch [default: {_INF.cpu_batch_size} CPU, {_INF.batch_size} GPU]."


def _arch_name(cfg: TrainConfig) -> str:
    return "cnn" if isinstance(cfg.network_config(), StackCNNConfig) else "crnn"


def _channels(cfg: TrainConfig) -> str:
    net = cfg.network_config()
    return ",".join(str(c) for c in net.channels) if isinstance(net, CRNNConfig) else ""


def _stage_option(name: str, get: Callable[[TrainConfig], Any], help: str = "", **kw: Any):
    """A train option defaulting to :meth:`TrainConfig.for_stage`'s value: click's default when
    both stages share it, else None (the stage's, filled in by the command), and the help says
    ``[stage 1: A, stage 2: B]``."""
    one, two = (get(TrainConfig.for_stage(stage)) for stage in (1, 2))
    if one == two:
        return click.option(name, default=one, show_default=True, help=help or None, **kw)
    return click.option(name, help=f"{help} [stage 1: {one}, stage 2: {two}].".lstrip(), **kw)


def _read_sets(folders: tuple[str, ...]) -> list:
    from rbcflow.io.sequences import read_dataset

    seqs = []
    for f in folders:
        seqs.extend(read_dataset(f))
    return seqs


def _split_names(values: tuple[str, ...]) -> set[str]:
    return {v.strip() for item in values for v in item.split(",") if v.strip()}


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--stage",
    type=click.IntRange(1, 2),
    required=True,
    help="1: reliable vs unreliable; 2: tank-treading vs flipping (both C-RNN by default).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Labelled set(s) in the authors' format (dataset.csv + img/); repeatable.",
)
@click.option(
    "--val",
    "val",
    multiple=True,
    type=click.Path(exists=True),
    help="Validation set(s) (separate acquisitions); repeatable.",
)
@click.option(
    "--val-acquisitions",
    multiple=True,
    metavar="NAMES",
    help="Acquisitions of --data to hold out for validation (comma-separated or "
    "repeated), e.g. BG1022_10s01.",
)
@click.option("--out", required=True, type=click.Path(), help="Model folder to write.")
# Defaults come from TrainConfig.for_stage (rbcflow.config), never from here.
@_stage_option("--epochs", lambda c: c.epochs, "Epochs", type=click.IntRange(1))
@_stage_option("--k", lambda c: c.k, "Frames per sequence", type=click.IntRange(1))
@_stage_option(
    "--arch",
    _arch_name,
    "crnn: per-frame CNN + GRU; cnn: the K frames as channels of a residual CNN (stage 2).",
    type=click.Choice(["crnn", "cnn"]),
)
@_stage_option("--channels", _channels, "C-RNN per-frame CNN channels (the paper's: 8,32,64,128).")
@_stage_option("--batch-size", lambda c: c.batch_size, type=click.IntRange(2))
@_stage_option("--lr", lambda c: c.lr, "Adam learning rate.", type=float)
@_stage_option("--seed", lambda c: c.seed, type=int)
@_stage_option(
    "--synthetic-unreliable",
    lambda c: c.synthetic_unreliable,
    "Stage 1: share of each epoch's unreliable sample made from reliable sequences.",
    type=click.FloatRange(0, 1),
)
@click.option("--no-augment", is_flag=True, help="Train without data augmentation.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--force", is_flag=True, help="Replace an existing model folder.")
@click.option("--init", type=click.Path(exists=True), help="Fine-tune this model folder instead.")
def train(
    stage,
    data,
    val,
    val_acquisitions,
    out,
    epochs,
    k,
    arch,
    channels,
    batch_size,
    lr,
    seed,
    synthetic_unreliable,
    no_augment,
    device,
    force,
    init,
):
    """Train a stage's classifier on labelled sequences; write a model folder.

    Validation (--val sets or --val-acquisitions) chooses the epoch kept (best F1; positive
    class: reliable for stage 1, flipping for stage 2). Split by acquisition, never by
    sequence.

    \b
    Example:
      rbcflow train --stage 2 --data labelled/ --val-acquisitions BK1024_10s01 \\
          --out models/my_stage2 --epochs 30
    """
    from rbcflow.classify.inference import resolve_device
    from rbcflow.classify.model_folder import save_model
    from rbcflow.training.loop import model_config, validation_calibration
    from rbcflow.training.loop import train as train_model

    try:
        out_p = Path(out)
        if (out_p / "config.json").exists() and not force:
            raise OutputError("a model folder exists there (use --force to replace it)", out_p)
        dev = resolve_device(device)
        base = TrainConfig.for_stage(stage)
        k = k or base.k
        arch = arch or _arch_name(base)
        channels = channels or _channels(base)
        if arch == "cnn":
            if stage == 1:
                raise click.UsageError("--arch cnn is for stage 2 (stage 1 takes any length)")
            network = StackCNNConfig(k=k)
        else:
            try:
                network = CRNNConfig(channels=tuple(int(c) for c in channels.split(",")))
            except ValueError:
                raise click.BadParameter(
                    f"not a list of integers: {channels}", param_hint="--channels"
                ) from None
        seqs = _read_sets(data)
        held = _split_names(val_acquisitions)
        unknown = held - {s.acquisition for s in seqs}
        if unknown:
            raise DatasetError(f"--val-acquisitions not found in --data: {sorted(unknown)}")
        train_set = [s for s in seqs if s.acquisition not in held]
        val_set = [s for s in seqs if s.acquisition in held] + _read_sets(val)
        overlap = {s.acquisition for s in train_set} & {s.acquisition for s in val_set}
        if overlap:
            click.echo(
                f"rbcflow: warning: acquisitions in both training and validation: "
                f"{sorted(overlap)} (validation figures will flatter the model)",
                err=True,
            )
        if init is not None:  # fine-tune: rbcflow.training.finetune
            from rbcflow.training.finetune import summary

            return click.echo(summary(click.get_current_context().params, train_set, val_set, dev))
        given = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        given["synthetic_unreliable"] = synthetic_unreliable
        given = {name: v for name, v in given.items() if v is not None}
        augment = base.augment and not no_augment
        cfg = dataclasses.replace(base, k=k, augment=augment, architecture=network, **given)
        from tqdm import tqdm

        shown = ("loss", "val_loss", "val_f1", "val_recall", "val_specificity")
        with tqdm(
            total=cfg.epochs,
            desc=f"training stage {stage}",
            unit="epoch",
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:

            def show(rec):
                bar.set_postfix({k: f"{rec[k]:.3f}" for k in shown if k in rec}, refresh=False)

            try:
                result = train_model(
                    train_set, val_set, cfg, device=dev, progress=bar.update, on_epoch=show
                )
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
        config = model_config(
            cfg,
            train_set,
            val_set,
            [result],
            data_sources=[str(d) for d in data] + [str(v) for v in val],
        )
        config["training"]["history"] = result.history
        calibration = validation_calibration(result.network, val_set, stage, cfg.k)
        if calibration is not None:  # the estimator corrects with it (docs/training.md)
            config["calibration"] = calibration
        checksum = save_model(out_p, result.network, config)
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    m = result.val_metrics
    summary = f"wrote {out_p} ({checksum}), epoch {result.best_epoch}"
    if m:
        summary += (
            f"; validation F1 {m['f1']:.3f}, recall {m['recall']:.3f}, "
            f"specificity {m['specificity']:.3f} (n={m['n']})"
        )
    click.echo(summary)


def _fmt(v: float) -> str:
    return "  nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _print_metrics(title: str, m: dict) -> None:
    (tn, fp), (fn, tp) = m["confusion"]
    click.echo(f"{title} (n={m['n']})")
    click.echo(
        f"  accuracy {_fmt(m['accuracy'])}  precision {_fmt(m['precision'])}  "
        f"recall {_fmt(m['recall'])}  specificity {_fmt(m['specificity'])}  "
        f"F1 {_fmt(m['f1'])}"
    )
    click.echo(
        f"  confusion (rows truth, cols predicted): [[TN {tn}, FP {fp}], [FN {fn}, TP {tp}]]"
    )


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("model_dirs", nargs=-1, type=click.Path())
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Labelled set(s) in the authors' format; repeatable.",
)
@click.option(
    "--acquisitions",
    multiple=True,
    metavar="NAMES",
    help="Score only these acquisitions of --data (comma-separated or repeated).",
)
@click.option("--json", "json_out", type=click.Path(), help="Also write the figures as JSON.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", type=click.IntRange(1), default=None, help=BATCH_HELP)
def evaluate(model_dirs, data, acquisitions, json_out, device, batch_size):
    """Score stage-1 and stage-2 models on labelled sequences.

    MODEL_DIRS: zero, one or two model folders (their stage is read from their config);
    a stage not given uses the default model. Stage 1: positive = reliable, on all sequences;
    stage 2: positive = flipping, on the truly reliable sequences; then the tank-treading
    fraction per acquisition, truth vs estimate.

    \b
    Example:
      rbcflow evaluate models/stage1 models/stage2 --data labelled/
      rbcflow evaluate --data labelled/ --acquisitions P1_10s03,P2_10s01   # default models
    """
    from rbcflow.classify.inference import load_classifier
    from rbcflow.classify.model_folder import read_config
    from rbcflow.io.outputs import write_text_atomic
    from rbcflow.training.evaluation import evaluate as run_evaluate

    try:
        chosen: dict[int, str] = {}
        for d in model_dirs:
            st = int(read_config(d)["stage"])
            if st in chosen:
                raise ModelError(f"two stage-{st} models given ({chosen[st]} and {d})")
            chosen[st] = d
        clf = load_classifier(chosen.get(1), chosen.get(2), device=device)
        seqs = [s for s in _read_sets(data) if s.label is not None]
        only = _split_names(acquisitions)
        if only:
            missing = only - {s.acquisition for s in seqs}
            if missing:
                raise DatasetError(f"--acquisitions not found in --data: {sorted(missing)}")
            seqs = [s for s in seqs if s.acquisition in only]
        if not seqs:
            raise DatasetError("no labelled sequence in --data")
        with progress_bar(len(seqs), "classifying", unit="seq") as bar:
            res = run_evaluate(
                clf,
                [s.name for s in seqs],
                [s.frames for s in seqs],
                [s.label for s in seqs],
                cfg=ReportConfig(),
                batch_size=batch_size,
                progress=bar,
            )
        if json_out:
            payload = {
                "stage1_model": str(clf.stage1_dir),
                "stage1_checksum": clf.stage1_checksum,
                "stage2_model": str(clf.stage2_dir),
                "stage2_checksum": clf.stage2_checksum,
                "stage1": res["stage1"],
                "stage2": res["stage2"],
                "acquisitions": res["acquisitions"].to_dict(orient="records"),
            }
            write_text_atomic(json_out, json.dumps(payload, indent=1, default=str) + "\n")
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    click.echo(
        f"stage 1: {clf.stage1_dir} ({clf.stage1_checksum}); "
        f"stage 2: {clf.stage2_dir} ({clf.stage2_checksum})"
    )
    _print_metrics("stage 1, reliable vs unreliable (positive = reliable)", res["stage1"])
    _print_metrics(
        "stage 2, flipping vs tank-treading on truly reliable sequences (positive = flipping)",
        res["stage2"],
    )
    click.echo(
        "tank-treading fraction per acquisition (truth among truly reliable; estimate "
        "among those called reliable)"
    )
    click.echo(res["acquisitions"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
