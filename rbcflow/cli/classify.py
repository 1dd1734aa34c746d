"""``rbcflow classify``: every sequence of a set in the authors' format -> predictions CSV."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rbcflow.cli.main import CONTEXT_SETTINGS, main, progress_bar, report_error
from rbcflow.cli.models import BATCH_HELP, DEVICE_HELP
from rbcflow.config import ReportConfig
from rbcflow.errors import OutputError, RbcflowError


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("dataset", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Predictions CSV to write.")
@click.option("--stage1", type=click.Path(), help="Stage-1 model folder [default model].")
@click.option("--stage2", type=click.Path(), help="Stage-2 model folder [default model].")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", type=click.IntRange(1), default=None, help=BATCH_HELP)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def classify(dataset, out, stage1, stage2, device, batch_size, force):
    """Classify every sequence of a set in the authors' format (dataset.csv + img/).

    Writes one row per sequence: sequence_name, p_reliable, p_tank_treading, label
    (tank-treading, flipping or unreliable), and OUT.run.json beside it (version, models and
    their checksums, thresholds).

    \b
    Example:
      rbcflow classify tracks/video1/sequences --out predictions.csv
    """
    from rbcflow import __version__
    from rbcflow.classify.inference import load_classifier
    from rbcflow.classify.labels import label_tracks
    from rbcflow.io.outputs import write_table_atomic, write_text_atomic
    from rbcflow.io.sequences import iter_dataset
    from rbcflow.schema import PREDICTIONS, validate

    out_p = Path(out)
    try:
        if out_p.exists() and not force:
            raise OutputError("exists (use --force to replace it)", out_p)
        clf = load_classifier(stage1, stage2, device=device)
        names, frames = [], []
        for s in iter_dataset(dataset):
            names.append(s.name)
            frames.append(s.frames)
        with progress_bar(len(frames), "classifying", unit="seq") as bar:
            pred = clf.predict(frames, batch_size=batch_size, progress=bar)
        thr = ReportConfig()
        pred["label"] = label_tracks(pred.p_reliable, pred.p_tank_treading, thr)
        pred.insert(0, "sequence_name", names)
        pred = validate(pred, PREDICTIONS, "predictions")
        out_p.parent.mkdir(parents=True, exist_ok=True)
        write_table_atomic(out_p, pred, index=False)
        run = {
            "rbcflow_version": __version__,
            "command": "classify",
            "input": str(dataset),
            "sequences": len(pred),
            "stage1_model": str(clf.stage1_dir),
            "stage1_checksum": clf.stage1_checksum,
            "stage2_model": str(clf.stage2_dir),
            "stage2_checksum": clf.stage2_checksum,
            "thresholds": {"reliable": thr.reliable_threshold, "flipping": thr.flipping_threshold},
        }
        run_path = out_p.with_name(out_p.name + ".run.json")
        write_text_atomic(run_path, json.dumps(run, indent=1) + "\n")
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    counts = pred.label.value_counts().to_dict()
    click.echo(f"wrote {out_p}: {len(pred)} sequences, {counts}")
