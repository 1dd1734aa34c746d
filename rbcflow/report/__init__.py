"""Outputs of ``rbcflow analyze`` for people: ``report.csv`` and the per-acquisition HTML page.

- :mod:`~rbcflow.report.tables`: ``report.csv`` (build, read back, merge, write);
- :mod:`~rbcflow.report.quality`: the quality indicators (is the recording fit to give a
  figure?);
- :mod:`~rbcflow.report.figures`: the page's figures (inline SVG, drawn by
  :mod:`~rbcflow.report.svg`) and track strips as PNG bytes;
- :mod:`~rbcflow.report.html`: the self-contained, escaped HTML page.

Every file is written atomically through :mod:`rbcflow.io.outputs`. The names below are
re-exported because they are cheap: importing this package loads numpy and pandas (OpenCV is
imported only when a strip is encoded).
"""

from rbcflow.report.html import render_html, write_report_html
from rbcflow.report.quality import quality_indicators
from rbcflow.report.tables import merge_report, read_report, report_table, write_report_csv

__all__ = [
    "merge_report",
    "quality_indicators",
    "read_report",
    "render_html",
    "report_table",
    "write_report_csv",
    "write_report_html",
]
