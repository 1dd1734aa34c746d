"""``rbcflow reanalyze``: the registry's acquisitions with today's models, beside the old results.

Heavy modules (pandas, torch, the batch) are imported inside the command, so that
``rbcflow --version`` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rbcflow.cli.analyze import report_error, result_line
from rbcflow.cli.main import main, progress_bar
from rbcflow.cli.run_options import load_checked_classifier, run_options, settings_from
from rbcflow.cli.terminal import terminal_safe
from rbcflow.errors import RbcflowError

DEFAULT_OUT = "rbcflow-reanalyses"


@main.command("reanalyze")
@click.option(
    "--registry",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Patient registry [default: $RBCFLOW_REGISTRY, else registry.sqlite in your data folder].",
)
@click.option("--since", metavar="DATE", help="Only samples drawn on or after DATE (YYYY-MM-DD).")
@click.option("--patient", "patient_id", metavar="ID", help="Only the samples of patient ID.")
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where reanalysis folders go (one per models and parameters: DATE_S1-S2_PARAMS).",
)
@click.option(
    "--search",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="A folder where source videos that moved since their analysis are looked for, by "
    "name, and taken only if their content is the one analysed (repeatable).",
)
@run_options  # --fps --scale --models-stage1/2 --allow-user-models --device --workers --scheduler
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (for scripts).")
def reanalyze(
    registry,
    since,
    patient_id,
    out,
    search,
    workers,
    scheduler,
    fps,
    scale,
    models_stage1,
    models_stage2,
    allow_user_models,
    device,
    quiet,
):
    """Analyse the registry's acquisitions again with today's models, beside the old results.

    Selects the registry's samples (drawn since DATE, of one patient), finds their acquisitions
    through the results they were analysed into, and analyses the source videos again into
    OUT/DATE_S1-S2_PARAMS/ (models' checksums and parameters id). The old results and registry
    rows are never changed: the registry gains one row per sample and reanalysis, and
    comparison.csv / comparison.html put old and new figures side by side. Run again with the
    same models and parameters, it resumes in the same folder. Exit status: 0 when all
    succeeded, 1 when any failed, 2 when nothing could start (no registry, a bad date,
    nothing selected).

    \b
    Examples:
      rbcflow reanalyze --since 2024-01-01
      rbcflow reanalyze --registry lab.sqlite --patient BG --workers auto
      rbcflow reanalyze --since 2024-01-01 --search /mnt/new-archive
    """
    from rbcflow.batch.reanalyze import reanalyze as run
    from rbcflow.batch.reanalyze import select
    from rbcflow.samples.registry import default_registry

    settings = settings_from(fps, scale)
    path = registry or default_registry()
    try:
        select(path, since=since, patient=patient_id)  # before loading any model
        classifier = load_checked_classifier(
            models_stage1, models_stage2, allow_user_models, device
        )
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(2)

    def say(line: str) -> None:
        if quiet:
            click.echo(line)
        else:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)

    def on_done(event):  # failed rows are told below, with the comparison's reason
        if event.row.get("status") != "failed":
            say(result_line(event.row, event.folder / "report.html" if event.folder else None))

    try:
        done = run(
            path,
            out,
            classifier,
            settings,
            since=since,
            patient=patient_id,
            progress=lambda total, desc, unit: progress_bar(total, desc, unit, quiet=quiet),
            on_done=on_done,
            workers=workers,
            scheduler=scheduler,
            search=search,
        )
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            "\nrbcflow: interrupted; run the same command again to resume (finished "
            "acquisitions are skipped)",
            err=True,
        )
        sys.exit(130)
    table = done.comparison
    counts = table["status"].value_counts().to_dict()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("ok", "skipped", "failed") if s in counts)
    for row in table[table["status"] == "failed"].to_dict("records"):
        say(terminal_safe(f"{row['acquisition'] or row['sample']}: FAILED: {row['message']}"))
    moved = table["message"].fillna("").str.startswith("found moved")
    if moved.any():
        say(f"{int(moved.sum())} source(s) found moved under --search (comparison.csv says where)")
    say(
        terminal_safe(
            f"comparison: {done.folder / 'comparison.csv'} ({len(table)} acquisition(s): "
            f"{summary}); {done.recorded} sample(s) recorded in {path} as reanalysis {done.id}"
        )
    )
    if counts.get("failed"):
        sys.exit(1)


__all__ = ["reanalyze"]
