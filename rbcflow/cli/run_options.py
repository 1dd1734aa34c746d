"""The options ``analyze`` and ``reanalyze`` share: how to read, which models, where to run.

:func:`run_options` adds them to a command (``--fps``, ``--scale``, ``--models-stage1/2``,
``--allow-user-models``, ``--device``, ``--workers``, ``--scheduler``); :func:`settings_from`
and :func:`load_checked_classifier` turn their values into what the batch needs, so the two
commands read, check and load models the same way.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click

from rbcflow.cli.main import parse_scale
from rbcflow.cli.terminal import terminal_safe
from rbcflow.config import CropConfig, FrontEndConfig, ReaderConfig


def parse_workers(ctx, param, value):
    """click callback of ``--workers``: a count >= 1 or ``auto`` (kept as the string)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter(f"{value!r} is not a count >= 1 or 'auto'")
    return int(text)


_OPTIONS = (
    click.option(
        "--fps",
        type=click.FloatRange(min=1, max=10000, min_open=False),
        help="Frame rate to use instead of the file's (frames/s).",
    ),
    click.option(
        "--scale",
        "scale",
        metavar="FACTOR|auto",
        callback=parse_scale,
        help=f"Resample crops by FACTOR so cells look ~{CropConfig().target_diameter:.0f} px "
        "across as in training (auto: measured per video) [default: 1, the video's scale].",
    ),
    click.option(
        "--models-stage1",
        type=click.Path(path_type=Path, file_okay=False),
        help="Stage-1 model folder [default: the shipped model].",
    ),
    click.option(
        "--models-stage2",
        type=click.Path(path_type=Path, file_okay=False),
        help="Stage-2 model folder [default: the shipped model].",
    ),
    click.option(
        "--allow-user-models",
        is_flag=True,
        help="Use model folders that are not the shipped models (your own, from rbcflow "
        "train); report.csv and run.json then say user-supplied, with their checksums.",
    ),
    click.option("--device", help="Torch device, e.g. cpu or cuda [default: cuda if available]."),
    click.option(
        "--workers",
        "-j",
        metavar="N|auto",
        default="1",
        show_default=True,
        callback=parse_workers,
        help="Acquisitions analysed at once, each in its own process (auto: one per core, as "
        "many as the free memory holds); the report is the same as with 1.",
    ),
    click.option(
        "--scheduler",
        metavar="ADDRESS|local",
        help="Run each acquisition as a task on the Dask cluster at ADDRESS (tcp://host:8786), "
        "or on a local one (local); inputs and OUT on a file system all workers see. "
        "Needs pip install 'rbcflow[dask]'.",
    ),
)


def run_options(command):
    """Decorator: the shared options, in the order of the help text."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def settings_from(fps: float | None, scale):
    """:class:`~rbcflow.pipeline.AnalysisSettings` for ``--fps`` and ``--scale``."""
    from rbcflow.pipeline import AnalysisSettings

    fe = FrontEndConfig()
    if fps is not None:
        fe = dataclasses.replace(fe, reader=ReaderConfig(fps=fps))
    fe = dataclasses.replace(fe, crops=dataclasses.replace(CropConfig(), scale=scale))
    return AnalysisSettings(frontend=fe)


def check_models(stage1: Path | None, stage2: Path | None, allow_user: bool) -> list[str]:
    """Check both model folders (schema, checksums) before loading them; refuse one that is
    not a shipped model unless ``allow_user``. Returns a terminal note per user-supplied model.

    Raises
    ------
    ModelError
        A folder is damaged or breaks the schema, or is user-supplied without ``allow_user``.
    """
    from rbcflow.classify.model_folder import (
        MODELS_ENV,
        default_model_dir,
        model_origin,
        user_model_refusal,
    )
    from rbcflow.errors import ModelError

    notes = []
    for stage, folder in ((1, stage1), (2, stage2)):
        path = Path(folder) if folder is not None else default_model_dir(stage)
        found = model_origin(path)
        if found.shipped:
            continue
        via = f" (named by ${MODELS_ENV})" if folder is None and os.environ.get(MODELS_ENV) else ""
        if not allow_user:
            raise ModelError(user_model_refusal(found) + via, path)
        notes.append(
            f"rbcflow: using a user-supplied stage-{stage} model{via}: {path} "
            f"(checksum {found.checksum}; recorded in report.csv and run.json)"
        )
    return notes


def command_classifier(stage1, stage2, device):
    """On the CPU or ``auto``, a :class:`~rbcflow.classify.pending.PendingClassifier` (nothing
    there can be refused later); a named GPU, which may not exist, is loaded at once."""
    if device in (None, "auto", "cpu"):
        from rbcflow.classify.pending import PendingClassifier

        return PendingClassifier(stage1, stage2, device=device)
    from rbcflow.classify.inference import load_classifier

    return load_classifier(stage1, stage2, device=device)


def load_checked_classifier(stage1, stage2, allow_user: bool, device):
    """The classifier of ``--models-stage1/2`` (checked by :func:`check_models`) on
    ``--device``; a note on stderr per user-supplied model. On the CPU or ``auto`` it is a
    :class:`~rbcflow.classify.pending.PendingClassifier`: a sequential batch loads it beside
    its first front end, and worker processes load it themselves.

    Raises
    ------
    RbcflowError
        A model folder is refused or cannot be loaded, or the device does not exist.
    """
    notes = check_models(stage1, stage2, allow_user)
    classifier = command_classifier(stage1, stage2, device)
    for note in notes:
        click.echo(terminal_safe(note), err=True)
    return classifier
