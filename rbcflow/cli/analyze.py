"""``rbcflow analyze``: videos or folders of acquisitions -> tank-treading fraction report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rbcflow.cli.main import error_line, is_debug, main, progress_bar
from rbcflow.cli.patient import load_samples, sample_options
from rbcflow.cli.run_options import (
    check_models,
    load_checked_classifier,
    parse_workers,
    run_options,
    settings_from,
)
from rbcflow.cli.terminal import terminal_safe
from rbcflow.errors import RbcflowError

DEFAULT_OUT = "rbcflow-results"


def report_error(exc: BaseException) -> None:
    """One error line on stderr, its names made safe (plus the traceback under ``--debug``)."""
    import traceback

    if is_debug():
        traceback.print_exception(exc, file=sys.stderr)
    click.echo("rbcflow: error: " + terminal_safe(error_line(exc)), err=True)


def result_line(row: dict, report: Path | None) -> str:
    """One line per acquisition for the terminal (names made safe: :func:`terminal_safe`)."""
    return terminal_safe(_result_text(row, report))


def _result_text(row: dict, report: Path | None) -> str:
    name = row.get("acquisition") or "?"
    status = row.get("status")
    if status == "failed":
        return f"{name}: FAILED: {row.get('message') or 'unknown error'}"
    frac = row.get("tank_treading_fraction")
    if frac is None or frac != frac:
        figure = f"no fraction ({row.get('message') or 'no reliable track'})"
    else:
        figure = (
            f"tank-treading {frac:.1%} (95% CI {row.get('ci_low'):.1%}-"
            f"{row.get('ci_high'):.1%}; counted {row.get('tank_treading')} of "
            f"{row.get('reliable')} reliable tracks)"
        )
        if row.get("verdict") and row.get("verdict") != "pass":
            figure += f", {row['verdict']}: provisional, see the report"
    where = f" -> {report}" if report is not None else ""
    prefix = "skipped, unchanged: " if status == "skipped" else ""
    return f"{name}: {prefix}{figure}{where}"


def _peak_line(peaks: dict[int, int], engine: str) -> str | None:
    if not peaks:
        return None
    mib = max(peaks.values()) / 1024**2
    return f"rbcflow: {engine}: peak memory per worker {mib:.0f} MiB ({len(peaks)} worker(s))"


@main.command("analyze")
# readable=False: rbcflow checks each input itself, so one unreadable name is one failed row
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Output folder.",
)
@run_options  # --fps --scale --models-stage1/2 --allow-user-models --device --workers --scheduler
@click.option(
    "--force",
    is_flag=True,
    help="Analyse again acquisitions already done with the same input, parameters "
    "and models (otherwise they are skipped).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (for scripts).")
@sample_options  # --samples, --name-pattern, --registry (rbcflow.cli.patient)
def analyze(
    paths,
    out,
    fps,
    scale,
    models_stage1,
    models_stage2,
    allow_user_models,
    device,
    force,
    workers,
    scheduler,
    quiet,
):
    """Tank-treading fraction of each acquisition in PATHS (videos, or folders of them).

    Each PATH is a video (AVI, TIFF stack), a folder of frames, or a folder holding
    acquisitions (searched recursively). Writes OUT/report.csv (one row per acquisition) and,
    per acquisition, OUT/NAME/ with positions.csv, tracks.csv, report.html and run.json.
    Acquisitions already analysed with the same input, parameters and models are skipped.
    Exit status: 0 when all succeeded, 1 when any failed, 2 when nothing could start.

    \b
    Examples:
      rbcflow analyze sample_data/sample.avi
      rbcflow analyze /data/2024-05-12/ --out results/ --quiet
      rbcflow analyze run1.avi run2.avi --scale auto --force
      rbcflow analyze /archive/ --out results/ --workers auto
      rbcflow analyze /archive/ --out results/ --scheduler tcp://head:8786
    """
    from rbcflow.batch import analyze_batch
    from rbcflow.io.folders import check_output_dir
    from rbcflow.memory import reuse_freed_memory

    reuse_freed_memory()  # frames and crops reuse freed heap blocks (fewer page faults)
    settings = settings_from(fps, scale)
    try:
        out_dir = check_output_dir(out)
        classifier = load_checked_classifier(
            models_stage1, models_stage2, allow_user_models, device
        )
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(2)
    sample_set = load_samples(paths)  # a bad sheet: every problem on its line, exit 2

    def say(line: str) -> None:
        if quiet:
            click.echo(line)
        else:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)

    def bars(total, desc, unit):
        return progress_bar(total, desc, unit, quiet=quiet)

    failed = 0
    overall = {"bar": None}

    def on_start(i, total, source):
        if overall["bar"] is None and not quiet:
            from tqdm import tqdm

            overall["bar"] = tqdm(
                total=total,
                desc="acquisitions",
                unit="acq",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
        if overall["bar"] is not None:
            overall["bar"].set_postfix_str(terminal_safe(source.name[-40:]), refresh=True)

    peaks: dict[int, int] = {}

    def on_done(event):
        nonlocal failed
        if event.peak_rss:
            peaks[event.worker_pid] = max(peaks.get(event.worker_pid, 0), event.peak_rss)
        if overall["bar"] is not None:
            overall["bar"].update(1)
        row = event.row
        if row.get("status") == "failed":
            failed += 1
            if is_debug() and event.traceback:
                click.echo(event.traceback, err=True)
        report = (
            event.folder / "report.html"
            if (event.folder is not None and row.get("status") != "failed")
            else None
        )
        say(result_line(row, report))

    try:
        rows = analyze_batch(
            paths,
            out_dir,
            classifier,
            settings,
            force=force,
            progress=bars,
            on_start=on_start,
            on_done=on_done,
            samples=sample_set,
            workers=workers,
            scheduler=scheduler,
        )
    except RbcflowError as exc:  # the output folder became unusable (e.g. disk full)
        report_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            "\n"
            + terminal_safe(
                f"rbcflow: interrupted; finished acquisitions are kept in {out_dir} (run the "
                "same command again to resume: they are skipped)"
            ),
            err=True,
        )
        sys.exit(130)
    finally:
        if overall["bar"] is not None:
            overall["bar"].close()
    counts = rows["status"].value_counts().to_dict()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("ok", "skipped", "failed") if s in counts)
    say(terminal_safe(f"report: {out_dir / 'report.csv'} ({len(rows)} acquisition(s): {summary})"))
    engine = f"Dask ({scheduler})" if scheduler else f"{workers} workers"
    if (scheduler or workers != 1) and (line := _peak_line(peaks, engine)):
        click.echo(terminal_safe(line), err=True)
    if failed:
        click.echo(
            terminal_safe(
                f"rbcflow: {failed} acquisition(s) failed; see the message column of "
                f"{out_dir / 'report.csv'}"
            ),
            err=True,
        )
        sys.exit(1)


__all__ = [
    "analyze",
    "check_models",
    "error_line",
    "parse_workers",
    "result_line",
    "terminal_safe",
]
