"""``rbcflow track``'s outputs: the front end of ``analyze`` (:func:`rbcflow.pipeline.track`),
its tables and its crops in the authors' format, written into ``OUT/NAME/``.

The folder is built under a temporary name and renamed when complete
(:func:`rbcflow.io.outputs.atomic_folder`); the crops stream to the sequence set while the
front end runs (:class:`SequenceWriter`), so no crop is held longer than its track.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rbcflow import schema
from rbcflow.config import FrontEndConfig, params_id, to_dict
from rbcflow.errors import OutputError
from rbcflow.io.discover import acquisition_name
from rbcflow.io.outputs import atomic_folder, write_csv_atomic
from rbcflow.io.sequences import Sequence, write_dataset
from rbcflow.pipeline import ProgressFactory, TrackRun, track
from rbcflow.provenance import run_record, write_run_json

TRACK_OUTPUT_FILES = ("positions.csv", "tracks.csv", "sequences", "run.json")
"""What ``rbcflow track`` writes in ``OUT/NAME/``."""


class SequenceWriter:
    """``on_track`` callback that streams crops to an authors'-format set in a thread.

    :func:`rbcflow.io.sequences.write_dataset` consumes the sequences as they come (PNG
    encoding overlaps the tracking).
    """

    def __init__(self, folder: Path, prefix: str):
        self._q: queue.Queue = queue.Queue(maxsize=64)
        self.error: BaseException | None = None
        self.count = 0
        self.prefix = prefix

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

        self._thread = threading.Thread(target=work, name="rbcflow-sequences", daemon=True)
        self._thread.start()

    def __call__(self, row: dict, crops: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self._q.put(Sequence(name=f"{self.prefix}_{int(row['track_id'])}", frames=crops))

    def close(self) -> int:
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.count


@dataclass
class TrackFolder:
    """What :func:`track_to_folder` wrote: the folder, the front end's run, the sequences."""

    folder: Path
    run: TrackRun
    n_sequences: int


def track_to_folder(
    video: str | Path,
    out: Path,
    cfg: FrontEndConfig | None = None,
    *,
    force: bool = False,
    progress: ProgressFactory | None = None,
) -> TrackFolder:
    """Run the front end on one input and write ``out/NAME/`` (through a temporary folder).

    Raises
    ------
    OutputError
        ``out/NAME`` exists and ``force`` is not set, or it cannot be written.
    RbcflowError
        The input cannot be read, or no cell was tracked.
    """
    cfg = cfg or FrontEndConfig()
    source = Path(video)
    name = acquisition_name(source)
    final = out / name
    if final.exists() and not force:
        raise OutputError("exists already (use --force to replace it)", final)
    with atomic_folder(final) as tmp:
        writer = SequenceWriter(tmp / "sequences", name)
        try:
            run = track(source, cfg, on_track=writer, progress=progress)
        finally:
            n_seq = writer.close()
        result = run.frontend
        write_csv_atomic(tmp / "positions.csv", result.positions[list(schema.POSITIONS)])
        write_csv_atomic(tmp / "tracks.csv", result.tracks)
        record = run_record(
            input_info=run.input_info,
            parameters={"frontend": to_dict(cfg)},
            params_id=params_id(cfg),
            models={},
            started=run.started,
            finished=run.finished,
            warnings=run.warnings,
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
            outputs=list(TRACK_OUTPUT_FILES),
        )
        write_run_json(tmp / "run.json", record)
    return TrackFolder(final, run, n_seq)
