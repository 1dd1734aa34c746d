"""``rbcflow track``: the front end alone, video -> tracked 31x31 cell sequences.

The same front end as ``rbcflow analyze`` (:func:`rbcflow.pipeline.track`), without the
classifiers; :func:`rbcflow.batch.track.track_to_folder` writes each input's folder.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from rbcflow.cli.main import for_each_input, main, parse_scale, progress_bar
from rbcflow.config import CropConfig, DetectionConfig, FrontEndConfig, ReaderConfig
from rbcflow.errors import NoCellsError


def track_one(video: str, out: Path, cfg: FrontEndConfig, force: bool, quiet: bool) -> None:
    """Track one input into ``out/NAME/`` and say what was found."""
    from rbcflow.batch.track import track_to_folder

    name = Path(video).name

    def bars(total, desc, unit):
        return progress_bar(total, name if desc == "frames" else desc, unit, quiet)

    try:
        done = track_to_folder(video, out, cfg, force=force, progress=bars)
    except NoCellsError as exc:  # the front end states the fact; the hint is this command's
        raise NoCellsError(
            f"{exc.reason}; try a lower --threshold if the video shows cells", exc.path
        ) from None
    result = done.run.frontend
    if not quiet:
        for w in done.run.warnings:
            click.echo(f"rbcflow: warning: {video}: {w}", err=True)
    click.echo(
        f"{video}: {len(result.tracks)} tracks over {result.n_frames} frames "
        f"(cells ~{result.cell_diameter:.1f} px, scale {result.scale:.2f}) -> {done.folder}"
    )


@main.command("track")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; each input NAME.ext gets OUT/NAME/.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Frame rate to use instead of the container's, frames/s.",
)
@click.option(
    "--scale",
    callback=parse_scale,
    default=None,
    metavar="S|auto",
    help="Resample crops by S so cells match the training data's size; 'auto' estimates "
    "it from the cells of the video [default: 1].",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Detection threshold on the local standard deviation of the background-subtracted "
    "frame, grey levels [default: automatic].",
)
@click.option("--force", is_flag=True, help="Replace existing OUT/NAME/ folders.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar nor warnings.")
def track(
    videos: tuple[str, ...],
    out: Path,
    fps: float | None,
    scale: float | None,
    threshold: float | None,
    force: bool,
    quiet: bool,
) -> None:
    """Track the cells of each VIDEO and cut their 31x31 crop sequences.

    VIDEO is an AVI (the camera's 24-bit AVI, or compressed), a multi-page TIFF stack or a
    folder of TIFF/PNG frames. For an input NAME.ext, OUT/NAME/ receives positions.csv
    (frame, track_id, x, y: pixels, x along the flow), tracks.csv (one row per track),
    sequences/ (the crops in the authors' format, dataset.csv + img/NAME_TRACKID.png strips,
    label empty: ready to be labelled by hand or classified) and run.json (parameters,
    version, input fingerprint, warnings). Results are written under a temporary name and
    renamed when complete. A bad input is reported in one line and the others still run.

    \b
    Examples:
      rbcflow track video.avi --out tracks/
      rbcflow track day1/*.avi stack.tif --out tracks/ --scale auto --quiet
    """
    cfg = FrontEndConfig()
    if fps is not None:
        cfg = dataclasses.replace(cfg, reader=ReaderConfig(fps=fps))
    if scale != 1.0:
        cfg = dataclasses.replace(cfg, crops=dataclasses.replace(CropConfig(), scale=scale))
    if threshold is not None:
        cfg = dataclasses.replace(
            cfg, detection=dataclasses.replace(DetectionConfig(), threshold=threshold)
        )
    failed = for_each_input(videos, lambda v: track_one(v, out, cfg, force, quiet))
    if failed:
        sys.exit(1)
