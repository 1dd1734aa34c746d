"""The report's SVG charts: ticks, thinning of long series, where marks land, and the markup."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rbcflow.report.svg import Chart, envelope, nice_ticks

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.0, 37.0, [0.0, 10.0, 20.0, 30.0]),
        (-3.0, 3.0, [-2.0, 0.0, 2.0]),
        (-2.5, 2.5, [-2.0, -1.0, 0.0, 1.0, 2.0]),
        (119.9, 124.1, [120.0, 121.0, 122.0, 123.0, 124.0]),
        (0.0, 4800.0, [0.0, 1000.0, 2000.0, 3000.0, 4000.0]),
    ],
)
def test_ticks_are_round_numbers_inside_the_range(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_ticks_of_an_empty_range():
    assert nice_ticks(2.0, 2.0) == [2.0]
    assert nice_ticks(float("nan"), 1.0) == []


def test_envelope_keeps_a_one_frame_flicker_in_a_long_series():
    rng = np.random.default_rng(0)
    x = np.arange(72_000) / 60.0  # 20 minutes at 60 frames/s
    y = 120 + rng.normal(0, 0.2, x.size)
    y[31_337] = 150.0  # one bright frame
    y[50_001] = 90.0  # one dark frame
    tx, ty = envelope(x, y, 330)
    assert tx.size <= 2 * 330
    assert ty.max() == 150.0 and ty.min() == 90.0
    assert tx[np.argmax(ty)] == x[31_337]
    assert np.all(np.diff(tx) >= 0)  # still in time order


def test_envelope_leaves_a_short_series_whole_and_drops_nan():
    x = np.array([3.0, 1.0, 2.0, 4.0])
    y = np.array([30.0, 10.0, np.nan, 40.0])
    tx, ty = envelope(x, y, 330)
    assert tx.tolist() == [1.0, 3.0, 4.0] and ty.tolist() == [10.0, 30.0, 40.0]


def _parse(chart: Chart) -> ET.Element:
    return ET.fromstring(chart.svg(title="a <title> & more"))


def test_marks_land_where_their_data_says():
    chart = Chart("c", 400, 300, left=50, right=10, top=20, bottom=30)
    ax = chart.panel()
    ax.xlim, ax.ylim = (0.0, 10.0), (0.0, 100.0)
    ax.points([5.0], [50.0], size=4)
    ax.vline(2.5)
    root = _parse(chart)
    # the panel's box is x 50..390, y 20..270: (5, 50) is its centre
    dots = [p for p in root.iter(NS + "path") if p.get("stroke-linecap") == "round"]
    assert dots[0].get("d") == "M220.0 145.0h0"
    dashed = [ln for ln in root.iter(NS + "line") if ln.get("stroke-dasharray")]
    assert float(dashed[0].get("x1")) == pytest.approx(50 + 340 * 0.25, abs=0.05)
    assert root.find(NS + "title").text == "a <title> & more"


def test_histogram_bars_are_as_tall_as_their_counts():
    chart = Chart("h", 400, 300, left=50, right=10, top=20, bottom=30)
    ax = chart.panel()
    ax.hist([0.1, 0.1, 0.1, 0.6, np.nan], bins=np.array([0.0, 0.5, 1.0]), colour="#123456")
    ax.ylim = (0.0, 3.0)
    bars = [r for r in _parse(chart).iter(NS + "rect") if r.get("fill") == "#123456"]
    heights = [float(b.get("height")) for b in bars]
    assert heights == pytest.approx([250.0, 250.0 / 3], abs=0.05)


def test_a_line_breaks_at_missing_values():
    chart = Chart("l", 400, 300)
    ax = chart.panel()
    ax.line([0, 1, 2, 3, 4], [1.0, 2.0, np.nan, 2.0, 1.0])
    paths = [p for p in _parse(chart).iter(NS + "path") if p.get("fill") == "none"]
    assert paths[0].get("d").count("M") == 2 and paths[0].get("d").count("L") == 2


def test_limits_follow_the_data_unless_set():
    chart = Chart("d", 400, 300)
    ax = chart.panel()
    ax.line([10.0, 20.0], [5.0, 15.0])
    (x0, x1), (y0, y1) = ax.limits()
    assert x0 < 10 < 20 < x1 and y0 < 5 < 15 < y1
    ax.xlim = (0.0, 100.0)
    assert ax.limits()[0] == (0.0, 100.0)


def test_the_markup_is_safe_in_the_page():
    charts = []
    for name in ("a", "b"):
        chart = Chart(name, 800, 480, rows=2, cols=2)
        for i, ax in enumerate(chart.panels):
            ax.line(np.arange(10), np.arange(10) ** 2, label="<b>median</b>")
            ax.title = f"panel {i} <script>"
        charts.append(chart.svg())
    page = "".join(charts)
    assert "<script" not in page and "style=" not in page
    # clipping paths are unique across the charts of one page
    ids = re.findall(r'clipPath id="([^"]+)"', page)
    assert len(ids) == 8 and len(set(ids)) == 8
    for svg in charts:
        root = ET.fromstring(svg)
        assert root.get("viewBox") == "0 0 800 480"
        assert "&lt;b&gt;median&lt;/b&gt;" in svg
