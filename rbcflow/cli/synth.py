"""``rbcflow synth``: write a synthetic acquisition with its ground truth."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import click

from rbcflow.cli.main import main, progress_bar, report_error
from rbcflow.errors import RbcflowError
from rbcflow.synthetic import (
    AVI_CODECS,
    PRESETS,
    SynthConfig,
    guess_format,
    preset_config,
    true_fraction,
    truth_paths,
)

_DEFAULTS = {f.name: f.default for f in fields(SynthConfig)}


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        cols, rows = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not COLSxROWS, e.g. 1024x768") from None
    if cols < 32 or rows < 32:
        raise click.BadParameter(f"{value!r} is below 32x32")
    return cols, rows


@main.command("synth")
@click.argument("out", type=click.Path(dir_okay=True, file_okay=True, path_type=str))
@click.option(
    "--frames",
    "n_frames",
    type=click.IntRange(min=1),
    default=None,
    help=f"Number of frames [default: {_DEFAULTS['n_frames']}].",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Duration instead of --frames (seconds at --fps).",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS["fps"],
    show_default=True,
    help="Frame rate, frames/s.",
)
@click.option(
    "--size",
    callback=_parse_size,
    default=None,
    metavar="COLSxROWS",
    help=f"Frame size [default: {_DEFAULTS['width']}x{_DEFAULTS['height']}].",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="easy",
    show_default=True,
    help="Recording conditions: easy (~10 cells on separate lanes, steady light) or hard "
    "(25 in view, 4-28 px/frame, 14 px passes, flicker, drift, faint frames); the options "
    "below override it.",
)
@click.option(
    "--cells",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Mean number of cells in view (density) [default: {_DEFAULTS['cells_in_view']:g}].",
)
@click.option(
    "--speed",
    type=(click.FloatRange(min=0, min_open=True), click.FloatRange(min=0, min_open=True)),
    default=None,
    metavar="MIN MAX",
    help=f"Range of cell speeds, px/frame [default: {_DEFAULTS['speed'][0]:g} "
    f"{_DEFAULTS['speed'][1]:g}].",
)
@click.option(
    "--closest-approach",
    type=click.FloatRange(min=0),
    default=None,
    help="Let cells pass each other down to this centre-to-centre distance, px [default: "
    "none, separate lanes].",
)
@click.option(
    "--flicker",
    type=click.FloatRange(min=0),
    default=None,
    help="Frame-to-frame lamp flicker, grey levels (std) [default: 0].",
)
@click.option(
    "--drift",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Slow illumination drift, relative amplitude (0.05: +-6 grey levels at 120) "
    f"[default: {_DEFAULTS['drift']:g}].",
)
@click.option(
    "--dropouts",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Per cell and frame, odds that a faint episode of 1-3 frames starts [default: 0].",
)
@click.option(
    "--tt-fraction",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS["tt_fraction"],
    show_default=True,
    help="Fraction of tank-treading cells among reliable ones.",
)
@click.option(
    "--unreliable-fraction",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS["unreliable_fraction"],
    show_default=True,
    help="Fraction of unreliable tracks (defocus, overlap, focus change, partial).",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=_DEFAULTS["noise_std"],
    show_default=True,
    help="Camera noise standard deviation, grey levels.",
)
@click.option(
    "--noise-corr",
    type=click.FloatRange(min=0),
    default=_DEFAULTS["noise_corr"],
    show_default=True,
    help="Spatial correlation of the camera noise: sigma of its Gaussian blur, pixels "
    "(0: independent pixels; the real crops' noise is correlated like 1).",
)
@click.option(
    "--bit-depth",
    type=click.Choice(["8", "16"]),
    default="8",
    show_default=True,
    help="Bits per pixel (16 for TIFF or PNG output only).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: the same seed writes the same video.",
)
@click.option(
    "--codec",
    type=click.Choice(sorted(AVI_CODECS)),
    default=None,
    help="AVI codec [default: ffv1, lossless]; mjpg is the most compact, rgba is uncompressed.",
)
@click.option("--force", is_flag=True, help="Replace existing outputs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def synth(
    out: str,
    n_frames: int | None,
    seconds: float | None,
    fps: float,
    size: tuple[int, int] | None,
    preset: str,
    cells: float | None,
    speed: tuple[float, float] | None,
    closest_approach: float | None,
    flicker: float | None,
    drift: float | None,
    dropouts: float | None,
    tt_fraction: float,
    unreliable_fraction: float,
    noise: float,
    noise_corr: float,
    bit_depth: str,
    seed: int,
    codec: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Write a synthetic bright-field shear-flow acquisition with its ground truth.

    OUT is NAME.avi (24-bit AVI), NAME.tif (multi-page TIFF) or NAME/ (a folder of PNG
    frames). Beside it go NAME.truth.csv (track_id, label, frame, x, y: one row per cell and
    frame; labels 0 tank-treading, 1 flipping, 2 unreliable) and NAME.tracks.csv (one row per
    true track: kind, speed, flip period, ...).

    \b
    Examples:
      rbcflow synth demo.avi --seconds 5
      rbcflow synth big.avi --frames 1200 --size 1024x768 --codec rgba --seed 3
      rbcflow synth stack.tif --frames 200 --tt-fraction 0.6 --bit-depth 16
      rbcflow synth crowded.avi --preset hard --frames 600
      rbcflow synth passes.avi --cells 20 --speed 4 28 --closest-approach 14 --flicker 2.7
    """
    from rbcflow.synthetic import write_acquisition

    if n_frames is not None and seconds is not None:
        raise click.UsageError("give --frames or --seconds, not both")
    if seconds is not None:
        n_frames = max(1, round(seconds * fps))
    kwargs = {"n_frames": n_frames} if n_frames is not None else {}
    if size is not None:
        kwargs.update(width=size[0], height=size[1])
    given = {
        "cells_in_view": cells,
        "speed": speed,
        "closest_approach": closest_approach,
        "flicker": flicker,
        "drift": drift,
        "dropout_rate": dropouts,
    }
    kwargs.update({k: v for k, v in given.items() if v is not None})
    try:
        cfg = preset_config(
            preset,
            fps=fps,
            tt_fraction=tt_fraction,
            unreliable_fraction=unreliable_fraction,
            noise_std=noise,
            noise_corr=noise_corr,
            bit_depth=int(bit_depth),
            **kwargs,
        )
        fmt = guess_format(out)
        if cfg.bit_depth == 16 and fmt == "avi":
            raise click.UsageError("AVI holds 8-bit frames: use --bit-depth 8, or a .tif output")
        with progress_bar(cfg.n_frames, "synth", "frame", quiet) as progress:
            truth = write_acquisition(
                out, cfg, rng=seed, fmt=fmt, codec=codec, overwrite=force, progress=progress
            )
    except RbcflowError as exc:
        report_error(exc)
        sys.exit(1)
    truth_csv, tracks_csv = truth_paths(out)
    if not quiet:
        import pandas as pd

        tracks = pd.read_csv(tracks_csv)
        frac = true_fraction(tracks)
        click.echo(
            f"{Path(out)}: {cfg.n_frames} frames {cfg.width}x{cfg.height} at "
            f"{cfg.fps:g} fps, {len(tracks)} tracks, {truth['frame'].nunique()} frames "
            f"with cells; true tank-treading fraction {frac:.3f}"
        )
        click.echo(f"truth: {truth_csv}, {tracks_csv}")
