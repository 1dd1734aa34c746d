"""``rbcflow analyze``: videos or folders of acquisitions -> tank-treading fraction report."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from rbcflow.cli.main import error_line, is_debug, main, parse_scale, progress_bar, report_error
from rbcflow.config import CropConfig, FrontEndConfig, ReaderConfig
from rbcflow.errors import RbcflowError

DEFAULT_OUT = "rbcflow-results"


def result_line(row: dict, report: Path | None) -> str:
    """One line per acquisition for the terminal."""
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


@main.command("analyze")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
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
@click.option("--device", help="Torch device, e.g. cpu or cuda [default: cuda if available].")
@click.option(
    "--force",
    is_flag=True,
    help="Analyse again acquisitions already done with the same input, parameters "
    "and models (otherwise they are skipped).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (for scripts).")
def analyze(paths, out, fps, scale, models_stage1, models_stage2, device, force, quiet):
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

        classifier = load_classifier(models_stage1, models_stage2, device=device)
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(2)

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
            overall["bar"].set_postfix_str(source.name[-40:], refresh=True)

    def on_done(event):
        nonlocal failed
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
        )
    except RbcflowError as exc:  # the output folder became unusable (e.g. disk full)
        report_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(
            f"\nrbcflow: interrupted; finished acquisitions are in {out_dir / 'report.csv'}",
            err=True,
        )
        sys.exit(130)
    finally:
        if overall["bar"] is not None:
            overall["bar"].close()
    counts = rows["status"].value_counts().to_dict()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("ok", "skipped", "failed") if s in counts)
    say(f"report: {out_dir / 'report.csv'} ({len(rows)} acquisition(s): {summary})")
    if failed:
        click.echo(
            f"rbcflow: {failed} acquisition(s) failed; see the message column of "
            f"{out_dir / 'report.csv'}",
            err=True,
        )
        sys.exit(1)


__all__ = ["analyze", "error_line", "result_line"]
