"""``rbcflow export-labels``: reviewed tracks -> a labelled set for ``rbcflow train``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rbcflow.cli.main import CONTEXT_SETTINGS, main, report_error
from rbcflow.errors import RbcflowError


@main.command("export-labels", context_settings=CONTEXT_SETTINGS)
@click.argument("results_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Set to write.")
@click.option("--force", is_flag=True, help="Replace an existing set.")
def export_labels(results_dirs: tuple[Path, ...], out: Path, force: bool) -> None:
    """Write every reviewed track of RESULTS_DIRS as a labelled set in the authors' format.

    dataset.csv + img/ strips (labels 0 tank-treading, 1 flipping, 2 unreliable), with
    export.json recording where each came from; ready for rbcflow train --data.

    \b
    Example:
      rbcflow export-labels rbcflow-results/ --out labelled/
    """
    from rbcflow.review.export import export_labels as run

    try:
        record = run(results_dirs, out, force=force)
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    labels = ", ".join(f"{v} {k}" for k, v in record["labels"].items())
    click.echo(f"wrote {out}: {record['sequences']} sequences ({labels})")
