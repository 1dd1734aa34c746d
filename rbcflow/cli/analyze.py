"""``rbcflow analyze``: videos or folders of acquisitions -> tank-treading fraction report."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from rbcflow.cli.main import error_line, is_debug, main, parse_scale, progress_bar
from rbcflow.cli.patient import load_samples, sample_options
from rbcflow.cli.terminal import terminal_safe
from rbcflow.config import CropConfig, FrontEndConfig, ReaderConfig
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


def check_models(stage1: Path | None, stage2: Path | None, allow_user: bool) -> list[str]:
    """Check both model folders (schema, checksums) before loading them; refuse one that is
    not a shipped model unless ``allow_user``. Returns a terminal note per user-supplied model.

    Raises
    ------
    ModelError
        A folder is damaged or breaks the schema, or is user-supplied without ``allow_user``.
    """
    import os

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


def parse_workers(ctx, param, value):
    """click callback of ``--workers``: a count >= 1 or ``auto`` (kept as the string)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter(f"{value!r} is not a count >= 1 or 'auto'")
    return int(text)


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
@click.option(
    "--fps",
    type=click.FloatRange(min=1, max=10000, min_open=False),
    help="Frame rate to use instead of the file's (frames/s).",
)
@click.option(
    "--scale",
    "scale",
    metavar="FACTOR|auto",
    callback=parse_scale,
    help=f"Resample crops by FACTOR so cells look ~{CropConfig().target_diameter:.0f} px across "
    "as in training (auto: measured per video) [default: 1, the video's scale].",
)
@click.option(
    "--models-stage1",
    type=click.Path(path_type=Path, file_okay=False),
    help="Stage-1 model folder [default: the shipped model].",
)
@click.option(
    "--models-stage2",
    type=click.Path(path_type=Path, file_okay=False),
    help="Stage-2 model folder [default: the shipped model].",
)
@click.option(
    "--allow-user-models",
    is_flag=True,
    help="Use model folders that are not the shipped models (your own, from rbcflow train); "
    "report.csv and run.json then say user-supplied, with their checksums.",
)
@click.option("--device", help="Torch device, e.g. cpu or cuda [default: cuda if available].")
@click.option(
    "--force",
    is_flag=True,
    help="Analyse again acquisitions already done with the same input, parameters "
    "and models (otherwise they are skipped).",
)
@click.option(
    "--workers",
    "-j",
    metavar="N|auto",
    default="1",
    show_default=True,
    callback=parse_workers,
    help="Acquisitions analysed at once, each in its own process (auto: one per core, as many "
    "as the free memory holds); the report is the same as with 1.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS|local",
    help="Run each acquisition as a task on the Dask cluster at ADDRESS (tcp://host:8786), or "
    "on a local one (local); inputs and OUT on a file system all workers see. "
    "Needs pip install 'rbcflow[dask]'.",
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
    from rbcflow.pipeline import AnalysisSettings

    fe = FrontEndConfig()
    if fps is not None:
        fe = dataclasses.replace(fe, reader=ReaderConfig(fps=fps))
    fe = dataclasses.replace(fe, crops=dataclasses.replace(CropConfig(), scale=scale))
    settings = AnalysisSettings(frontend=fe)

    try:
        out_dir = check_output_dir(out)
        from rbcflow.classify.inference import load_classifier

        notes = check_models(models_stage1, models_stage2, allow_user_models)
        classifier = load_classifier(models_stage1, models_stage2, device=device)
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(2)
    for note in notes:
        click.echo(terminal_safe(note), err=True)
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
                f"rbcflow: interrupted; finished acquisitions are in {out_dir / 'report.csv'}"
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


__all__ = ["analyze", "check_models", "error_line", "result_line", "terminal_safe"]
