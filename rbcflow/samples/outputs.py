"""What a batch writes once its acquisitions are done: samples.csv, report.xlsx, index.html.

:func:`write_batch_outputs` is the hook :func:`rbcflow.batch.analyze.analyze_batch` calls after
its last acquisition; it re-reads the merged ``report.csv`` under the output folder's lock, so
the files describe the whole folder (earlier batches' acquisitions too), and records the
samples in the registry when the batch had metadata.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rbcflow.io.folders import output_lock
from rbcflow.io.outputs import write_csv_atomic
from rbcflow.provenance import now_iso
from rbcflow.report.tables import read_report
from rbcflow.run_settings import SamplesConfig
from rbcflow.samples.overview import sample_anchor, write_overview
from rbcflow.samples.pool import rounded, sample_table
from rbcflow.samples.workbook import gather_parameters, gather_tracks, write_workbook

SAMPLES_NAME = "samples.csv"
WORKBOOK_NAME = "report.xlsx"
OVERVIEW_NAME = "index.html"


@dataclass
class SampleSet:
    """A batch's metadata (per acquisition, keyed by its absolute path) and registry.

    registry : where the samples are recorded (None: nowhere).
    """

    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    registry: Path | None = None

    def metadata_for(self, source: str | os.PathLike) -> dict[str, Any]:
        """The metadata columns of one acquisition (empty when the set does not know it)."""
        return dict(self.metadata.get(str(Path(source).absolute()), {}))


def batch_samples(
    paths,
    sheet: str | os.PathLike | None = None,
    name_pattern: str | None = None,
    registry: str | os.PathLike | None = None,
) -> SampleSet | None:
    """The :class:`SampleSet` of ``analyze``'s options (None without a sheet or pattern).

    Raises :class:`~rbcflow.samples.sheet.SheetError` (every problem, one line each).
    """
    from rbcflow.samples.registry import default_registry
    from rbcflow.samples.sheet import load_metadata

    meta = load_metadata(paths, sheet, name_pattern)
    if meta is None:
        return None
    return SampleSet(meta, Path(registry) if registry is not None else default_registry())


def pool_inputs(classifier: Any, settings: Any) -> tuple[Any, Any, Any, Any]:
    """What :func:`rbcflow.samples.pool.sample_table` needs besides the rows: the classifier's
    validated rates and stage-2 temperature, and the report and estimate settings."""
    report_cfg = getattr(settings, "report", None)
    estimate_cfg = getattr(settings, "estimate", None)
    rates_of = getattr(classifier, "validated_rates", None)
    rates = rates_of(report_cfg) if rates_of is not None else None
    return rates, getattr(classifier, "stage2_temperature", None), report_cfg, estimate_cfg


def write_batch_outputs(
    out_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    classifier: Any = None,
    settings: Any = None,
    samples: SampleSet | None = None,
    cfg: SamplesConfig | None = None,
) -> dict[str, Path]:
    """Write ``samples.csv`` (when any acquisition has a sample), ``report.xlsx`` and
    ``index.html`` into ``out_dir`` from its ``report.csv``; record the samples in
    ``samples.registry``. Returns the paths written (by name)."""
    cfg = cfg or SamplesConfig()
    out = Path(out_dir)
    written: dict[str, Path] = {}
    with output_lock(out):
        report = read_report(report_path)
        if report is None:
            return written
        table = None
        if report["sample"].notna().any():
            table = sample_table(report, out, *pool_inputs(classifier, settings))
            people = rounded(table, cfg.fraction_decimals, cfg.seconds_decimals)
            written[SAMPLES_NAME] = write_csv_atomic(out / SAMPLES_NAME, people)
        written[OVERVIEW_NAME] = write_overview(out, report, table, cfg)
        written[WORKBOOK_NAME] = write_workbook(
            out / WORKBOOK_NAME,
            None if table is None else rounded(table, cfg.fraction_decimals),
            rounded(report, cfg.fraction_decimals, cfg.seconds_decimals),
            gather_tracks(out, report),
            gather_parameters(out, report),
        )
    if samples is not None and samples.registry is not None and table is not None:
        ours = {str(m.get("sample")) for m in samples.metadata.values()}
        record(samples.registry, table[table["sample"].isin(ours)], out / OVERVIEW_NAME)
    return written


def record(registry: str | os.PathLike, table: pd.DataFrame, overview: Path) -> int:
    """Record ``samples.csv``'s rows in the registry, each with its row of the overview."""
    from rbcflow.samples.registry import add_samples

    at = now_iso()
    rows = [
        {**r, "report": f"{overview.absolute()}#{sample_anchor(r['sample'])}", "analysed_at": at}
        for r in table.to_dict("records")
    ]
    return add_samples(registry, rows)
