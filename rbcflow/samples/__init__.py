"""Samples and patients: metadata, one fraction per blood draw, overview pages, registry.

- :mod:`rbcflow.samples.sheet`: which patient and draw each acquisition is (a CSV/XLSX sheet
  or ``--name-pattern``); :class:`~rbcflow.samples.sheet.SheetError` names every bad row.
- :mod:`rbcflow.samples.pool`: ``samples.csv``, one row per sample, tracks pooled over the
  acquisitions that passed, the interval as for one acquisition.
- :mod:`rbcflow.samples.overview`: ``index.html``; :mod:`rbcflow.samples.workbook`:
  ``report.xlsx``; :mod:`rbcflow.samples.outputs`: the batch's hook writing them.
- :mod:`rbcflow.samples.registry`: the SQLite patient registry;
  :mod:`rbcflow.samples.baseline` and :mod:`rbcflow.samples.patient`: a patient's timeline
  against their own baseline, and its page.
"""

from rbcflow.samples.outputs import SampleSet, batch_samples, write_batch_outputs
from rbcflow.samples.sheet import SheetError, load_metadata

__all__ = ["SampleSet", "SheetError", "batch_samples", "load_metadata", "write_batch_outputs"]
