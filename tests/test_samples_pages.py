"""The overview (index.html) and the patient page in headless Chromium: the expected rows, the
sorter running under the page's Content-Security-Policy, a click sorting a column."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
from test_samples_pool import results  # noqa: F401  (the fixture)
from test_samples_registry import HISTORY, _sample

from rbcflow.classify.labels import wilson_interval
from rbcflow.report.tables import read_report
from rbcflow.samples import html as page_html
from rbcflow.samples.overview import render_overview
from rbcflow.samples.patient import render_patient
from rbcflow.samples.pool import sample_table

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def dom(path: Path, tmp: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium serialises it."""
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--dump-dom",
            path.absolute().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def _rows(html: str, table_id: str) -> list[list[str]]:
    body = re.search(
        rf'<table class="sortable" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S
    )
    assert body, f"no table {table_id}"
    out = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        out.append([re.sub(r"<[^>]+>", "", c).strip() for c in cells])
    return out


def _with_click(page: str, script: str) -> str:
    """``page`` with one more inline script (a test's click), allowed by its hash."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = page.replace("script-src 'sha256-", f"script-src 'sha256-{digest}' 'sha256-")
    return page.replace("</body>", f"<script>{script}</script></body>")


def test_overview_in_chromium(results, tmp_path):  # noqa: F811
    out, _ = results
    report = read_report(out / "report.csv")
    report.loc[report["acquisition"] == "e", "acquisition"] = "<script>alert(1)</script>"
    html = render_overview(report, sample_table(report, out))
    (out / "index.html").write_text(html, encoding="utf-8")
    got = dom(out / "index.html", tmp_path)
    samples = _rows(got, "samples")
    assert [r[1] for r in samples] == ["S1", "S2"]
    lo, hi = wilson_interval(50, 80)
    assert samples[0][4:8] == ["2 of 3", "80", "0.625", f"[{lo:.3f}, {hi:.3f}]"]
    acq = _rows(got, "acquisitions")
    assert [r[0] for r in acq] == ["a", "b", "c", "d", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert acq[0][4] == "20.0"  # seconds: one decimal
    assert '<a href="a/report.html">a</a>' in got
    assert 'id="sample-S1"' in got
    # the sorter ran (the CSP let its hash through): it made every header focusable
    assert got.count('<th scope="col" tabindex="0">') == 11 + 12
    assert "alert(1)</script>" not in got.replace("&lt;/script&gt;", "")

    # a click on "fraction" sorts ascending, a second descending
    click = "var h=document.querySelectorAll('#acquisitions th')[7];h.click();"
    (out / "sorted.html").write_text(_with_click(html, click), encoding="utf-8")
    fractions = [float(r[7]) for r in _rows(dom(out / "sorted.html", tmp_path), "acquisitions")]
    before = [float(r[7]) for r in acq]
    assert before != sorted(before) and fractions == sorted(before)
    (out / "sorted2.html").write_text(_with_click(html, click + "h.click();"), encoding="utf-8")
    again = [float(r[7]) for r in _rows(dom(out / "sorted2.html", tmp_path), "acquisitions")]
    assert again == sorted(before, reverse=True)


def test_an_injected_script_does_not_run(tmp_path):
    page = page_html.page("t", ['<p id="x">before</p>'])
    page = page.replace(
        "</body>", "<script>document.getElementById('x').textContent='ran'</script>"
    )
    (tmp_path / "p.html").write_text(page, encoding="utf-8")
    assert '<p id="x">before</p>' in dom(tmp_path / "p.html", tmp_path)


def test_patient_page_in_chromium(tmp_path):
    history = [_sample(i, f, report=f"/r/index.html#sample-S{i}") for i, f in enumerate(HISTORY)]
    history[2]["stage2_model"] = "old"  # analysed with other models
    (tmp_path / "bg.html").write_text(render_patient("BG", history), encoding="utf-8")
    got = dom(tmp_path / "bg.html", tmp_path)
    rows = _rows(got, "patient-samples")
    assert [r[1] for r in rows] == [f"S{i}" for i in range(8)]
    assert [r[6] for r in rows] == [
        "no baseline yet",
        "no baseline yet",
        "other models",
        "no baseline yet",
        "no baseline yet",
        "within baseline",
        "within baseline",
        "below baseline",
    ]
    assert re.search(r'id="latest-status">below baseline<', got)
    assert len(re.findall(r'<circle class="point', got)) == 7
    assert len(re.findall(r'<circle class="point below"', got)) == 1
    assert len(re.findall(r'<rect class="point other"', got)) == 1
    assert '<rect class="band"' in got
    assert 'href="file:///r/index.html#sample-S7"' in got


def test_overview_without_samples(tmp_path):
    report = pd.DataFrame(
        {"acquisition": ["x"], "status": ["failed"], "message": ["cannot read"], "output": [None]}
    )
    html = render_overview(report, None)
    assert 'id="samples"' not in html and ">x<" in html and 'href="' not in html
