"""Running inputs and writing their results: the only layer that writes analysis outputs.

- :mod:`rbcflow.batch.acquisition`: one :class:`~rbcflow.pipeline.AcquisitionResult` -> its
  folder (positions.csv, tracks.csv, report.html, run.json last).
- :mod:`rbcflow.batch.analyze`: :func:`analyze_batch` (discovery, skip/resume, failures as
  rows, ``report.csv`` merged under the output folder's lock after each acquisition).
- :mod:`rbcflow.batch.jobs`, :mod:`~rbcflow.batch.parallel`, :mod:`~rbcflow.batch.dask_run`,
  :mod:`~rbcflow.batch.workers`: the engines of ``analyze_batch(workers=, scheduler=)`` (one
  acquisition per job, in worker processes or as Dask tasks; the same ``report.csv``).
- :mod:`rbcflow.batch.track`: ``rbcflow track``'s folders (the front end's tables and the crops
  in the authors' format).

Every file goes through :mod:`rbcflow.io.outputs`.
"""

from rbcflow.batch.acquisition import OUTPUT_FILES, analyze_acquisition, write_acquisition
from rbcflow.batch.analyze import REPORT_NAME, BatchEvent, analyze_batch
from rbcflow.batch.track import TRACK_OUTPUT_FILES, track_to_folder

__all__ = [
    "OUTPUT_FILES",
    "REPORT_NAME",
    "TRACK_OUTPUT_FILES",
    "BatchEvent",
    "analyze_acquisition",
    "analyze_batch",
    "track_to_folder",
    "write_acquisition",
]
