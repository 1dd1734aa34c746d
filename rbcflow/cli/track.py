"""``rbcflow track``: the front end alone, video -> tracked 31x31 cell sequences."""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import sys
import threading
from pathlib import Path

import click
import numpy as np

from rbcflow.cli.main import for_each_input, main, parse_scale, progress_bar
from rbcflow.config import CropConfig, DetectionConfig, FrontEndConfig, ReaderConfig
from rbcflow.errors import OutputError

OUTPUT_FILES = ("positions.csv", "tracks.csv", "sequences", "run.json")
"""What ``rbcflow track`` writes in ``OUT/NAME/``."""


class _SequenceWriter:
    """``on_track`` callback that streams crops to an authors'-format set in a thread.

    :func:`rbcflow.io.sequences.write_dataset` consumes the sequences as they come (PNG
    encoding overlaps the tracking), so no crop is held longer than its track.
    """

    def __init__(self, folder: Path, prefix: str):
        from rbcflow.io.sequences import write_dataset

        self._q: queue.Queue = queue.Queue(maxsize=64)
        self.error: BaseException | None = None
        self.count = 0

        def items():
            while True:
                item = self._q.get()
                if item is None:
                    return
                yield item

        def work() -> None:
            try:
                self.count = write_dataset(folder, items())
            except BaseException as exc:  # re-raised in the caller's thread
                self.error = exc
                while self._q.get() is not None:  # keep the producer from blocking
                    pass

        self.prefix = prefix
        self._thread = threading.Thread(target=work, name="rbcflow-sequences", daemon=True)
        self._thread.start()

    def __call__(self, row: dict, crops: np.ndarray) -> None:
        from rbcflow.io.sequences import Sequence

        if self.error is not None:
            raise self.error
        self._q.put(Sequence(name=f"{self.prefix}_{int(row['track_id'])}", frames=crops))

    def close(self) -> int:
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.count


def track_one(video: str, out: Path, cfg: FrontEndConfig, force: bool, quiet: bool) -> None:
    """Run the front end on one input and write ``out/NAME/`` (through a temporary folder)."""
    from rbcflow import config
    from rbcflow.frontend import progress_total, run_frontend
    from rbcflow.io.outputs import write_csv_atomic
    from rbcflow.io.video import open_video
    from rbcflow.provenance import input_fingerprint, now_iso, run_record, write_run_json

    source = Path(video)
    name = source.name if source.is_dir() else source.stem
    final = out / name
    if final.exists() and not force:
        raise OutputError("exists already (use --force to replace it)", final)
    started = now_iso()
    reader = open_video(source, fps=cfg.reader.fps, default_fps=cfg.reader.default_fps)
    tmp = out / f".{name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", tmp) from exc
    try:
        with reader:
            writer = _SequenceWriter(tmp / "sequences", name)
            try:
                with progress_bar(progress_total(reader, cfg), name, "frame", quiet) as bar:
                    result = run_frontend(reader, cfg, progress=bar, on_track=writer)
            finally:
                n_seq = writer.close()
            shape = [int(s) for s in reader.shape]
        write_csv_atomic(tmp / "positions.csv", result.positions[["frame", "track_id", "x", "y"]])
        write_csv_atomic(tmp / "tracks.csv", result.tracks)
        record = run_record(
            input_info={
                **input_fingerprint(source),
                "frames": result.n_frames,
                "fps": result.fps,
                "frame_shape": shape,
            },
            parameters={"frontend": config.to_dict(cfg)},
            params_id=config.params_id(cfg),
            models={},
            started=started,
            finished=now_iso(),
            warnings=list(dict.fromkeys(result.warnings)),
            result={
                "tracks": len(result.tracks),
                "sequences": n_seq,
                "positions": len(result.positions),
                "cell_diameter_px": result.cell_diameter,
                "scale": result.scale,
                "threshold": result.threshold,
                "noise": result.noise,
            },
            timings=result.timings,
            outputs=list(OUTPUT_FILES),
        )
        write_run_json(tmp / "run.json", record)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        for w in dict.fromkeys(result.warnings):
            click.echo(f"rbcflow: warning: {source}: {w}", err=True)
    click.echo(
        f"{source}: {len(result.tracks)} tracks over {result.n_frames} frames "
        f"(cells ~{result.cell_diameter:.1f} px, scale {result.scale:.2f}) -> {final}"
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
