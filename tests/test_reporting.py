"""Report writers: atomicity, report.csv contract, HTML self-containment and escaping."""

from __future__ import annotations

import csv
import html
import math
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbcflow import schema
from rbcflow.errors import OutputError
from rbcflow.io.outputs import atomic_output, write_csv_atomic, write_json_atomic
from rbcflow.report import (
    merge_report,
    read_report,
    render_html,
    report_table,
    write_report_csv,
    write_report_html,
)
from rbcflow.schema import REPORT_COLUMNS, GalleryItem

EVIL = "<script>alert(1)</script>"


def ok_row(source="/data/a.avi", **kw):
    row = {
        "acquisition": "a",
        "source": source,
        "status": "ok",
        "message": "",
        "frames": 1200,
        "fps": 60.0,
        "duration_s": 20.0,
        "tracks": 500,
        "reliable": 250,
        "tank_treading": 200,
        "flipping": 50,
        "tank_treading_fraction": 0.8,
        "ci_low": 0.746,
        "ci_high": 0.845,
        "rbcflow_version": "0.1.0",
        "stage1_model": "abc123",
        "stage2_model": "def456",
        "output": "a",
        "params_id": "p1",
        "input_hash": "h1",
        "analysed_at": "2026-01-01T00:00:00+00:00",
    }
    row.update(kw)
    return row


def failed_row(source="/data/b.avi"):
    return {
        "acquisition": "b",
        "source": source,
        "status": "failed",
        "message": "not a video: cannot decode",
    }


def make_tracks(n=60, rng=0):
    rng = np.random.default_rng(rng)
    first = rng.integers(0, 1100, n)
    length = rng.integers(6, 80, n)
    p_rel = rng.uniform(0, 1, n)
    p_tt = rng.uniform(0, 1, n)
    label = np.where(p_rel < 0.5, "unreliable", np.where(p_tt >= 0.5, "tank-treading", "flipping"))
    return pd.DataFrame(
        {
            "track_id": np.arange(n),
            "first_frame": first,
            "last_frame": first + length - 1,
            "n_frames": length,
            "x_start": 0.0,
            "x_end": 900.0,
            "y_mean": rng.uniform(0, 700, n),
            "speed": rng.normal(12, 1, n),
            "interference": False,
            "edge": False,
            "p_reliable": p_rel,
            "p_tank_treading": p_tt,
            "label": label,
            "ar_mean": rng.uniform(1, 2, n),
            "orientation_std": rng.uniform(0, 40, n),
        }
    )


def make_frame_stats(n=1200):
    return pd.DataFrame(
        {
            "frame": np.arange(n),
            "mean_intensity": 120 + np.linspace(0, 2, n),
            "n_detections": np.full(n, 30),
        }
    )


# -- atomic writers ---------------------------------------------------------------------------


def test_atomic_output_replaces_only_when_complete(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("previous complete\n")
    with pytest.raises(RuntimeError), atomic_output(target) as fh:
        fh.write("half of a new fi")
        raise RuntimeError("killed")
    assert target.read_text() == "previous complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary left behind
    with atomic_output(target) as fh:
        fh.write("new complete\n")
    assert target.read_text() == "new complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_unwritable_folder_raises_output_error(tmp_path):
    missing = tmp_path / "nope" / "x.json"
    with pytest.raises(OutputError, match="nope"):
        write_json_atomic(missing, {"a": 1})


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"a": math.nan})
    assert not list(tmp_path.iterdir())


# -- report.csv -------------------------------------------------------------------------------


def test_report_csv_contract_round_trip(tmp_path):
    df = report_table([ok_row(), failed_row()])
    path = write_report_csv(tmp_path / "report.csv", df)
    text = path.read_text(encoding="utf-8-sig")
    assert not any(line.startswith("#") for line in text.splitlines())
    assert text.splitlines()[0].split(",")[: len(schema.REPORT)] == list(schema.REPORT)
    back = pd.read_csv(path)  # plain pandas, no options
    assert list(back.columns) == list(REPORT_COLUMNS)
    assert back.loc[0, "tank_treading_fraction"] == pytest.approx(0.8)
    assert back.loc[0, "frames"] == 1200
    assert pd.isna(back.loc[1, "tank_treading_fraction"]) and pd.isna(back.loc[1, "frames"])
    assert back.loc[1, "status"] == "failed"
    again = read_report(path)
    assert again.dtypes["frames"] == "Int64" and again.dtypes["ci_low"] == "float64"
    assert again.loc[0, "source"] == "/data/a.avi"
    # the declared dtypes hold once read back
    schema.validate(again, schema.REPORT, "report")


def test_merge_keeps_other_sources_and_replaces_same(tmp_path):
    prev = report_table(
        [ok_row("/d/a.avi"), ok_row("/d/b.avi", acquisition="b"), failed_row("/d/c.avi")]
    )
    merged = merge_report(
        prev, [ok_row("/d/c.avi", acquisition="c"), ok_row("/d/e.avi", acquisition="e")]
    )
    assert list(merged["source"]) == ["/d/a.avi", "/d/b.avi", "/d/c.avi", "/d/e.avi"]
    assert list(merged["status"]) == ["ok"] * 4
    assert merge_report(None, [ok_row(), ok_row()]).shape[0] == 1  # one row per source


def test_read_report_tolerates_garbage(tmp_path):
    p = tmp_path / "report.csv"
    assert read_report(p) is None
    p.write_bytes(b"\x00\xff garbage")
    assert read_report(p) is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=0, max_size=40), message=st.text(max_size=80))
def test_any_name_round_trips_through_csv(tmp_path, name, message):
    df = report_table([ok_row(f"/x/{name}.avi", acquisition=name, message=message)])
    path = write_csv_atomic(tmp_path / "r.csv", df)
    back = read_report(path)
    assert len(back) == 1
    # an empty cell is read back as missing
    assert (back.loc[0, "acquisition"] or "") == name
    assert (back.loc[0, "message"] or "") == message


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "'=quoted"])
def test_formula_like_names_are_inert_in_the_csv_and_round_trip(tmp_path, name):
    """A file name a spreadsheet would run as a formula is written with a leading quote (OWASP
    CSV injection), and rbcflow reads the report back unchanged."""
    df = report_table([ok_row(f"{name}.avi", acquisition=name, message=name)])
    path = write_csv_atomic(tmp_path / "r.csv", df)
    cells = next(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    for col in ("acquisition", "source", "message"):
        assert cells[col].startswith("'") and cells[col].lstrip("'")[0] in "=+-@"
    back = read_report(path)
    assert back.loc[0, "acquisition"] == name and back.loc[0, "message"] == name
    assert back.loc[0, "source"] == f"{name}.avi"
    assert back.loc[0, "tank_treading_fraction"] == df.loc[0, "tank_treading_fraction"]


# -- HTML -------------------------------------------------------------------------------------


def gallery(tracks):
    items = []
    for r in tracks.head(12).itertuples():
        strip = np.full((31, 31 * 5), 120, np.uint8)
        items.append(
            GalleryItem(
                int(r.track_id),
                r.label,
                r.p_reliable,
                r.p_tank_treading,
                strip,
                int(r.n_frames),
                {"ar_mean": r.ar_mean},
            )
        )
    return items


def test_html_is_self_contained_and_holds_the_figures(tmp_path):
    tracks = make_tracks()
    prov = {
        "rbcflow_version": "0.1.0",
        "params_id": "p1",
        "parameters": {"a": {"b": 1}},
        "warnings": ["video truncated after frame 1100"],
        "input": {"hash": "sha256:00"},
    }
    path = write_report_html(
        tmp_path / "report.html", ok_row(), tracks, make_frame_stats(), gallery(tracks), prov
    )
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    figures = dict(re.findall(r'<figure id="([\w-]+)">(<svg.*?</svg>)', page, re.S))
    assert list(figures) == ["fig-counts", "fig-probabilities", "fig-shape", "fig-quality"]
    for svg in figures.values():
        ET.fromstring(svg)  # each inline figure is well-formed SVG
    # the counts chart writes the counts the table holds
    counts = ET.fromstring(figures["fig-counts"])
    texts = [t.text for t in counts.iter("{http://www.w3.org/2000/svg}text")]
    for name in ("tank-treading", "flipping", "unreliable"):
        assert str(int((tracks["label"] == name).sum())) in texts
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 12  # the gallery's strips
    import base64

    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "80.0%" in page and "74.6%" in page and "84.5%" in page
    assert "video truncated after frame 1100" in page
    # nothing fetched from the network
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script" not in page.lower()


def test_html_escapes_every_input_string():
    tracks = make_tracks(20)
    row = ok_row(
        f"/data/{EVIL}.avi", acquisition=EVIL, message=f'bad "{EVIL}" & more', stage1_model=EVIL
    )
    prov = {
        "warnings": [EVIL],
        "input": {"path": f"/data/{EVIL}.avi"},
        "parameters": {"models": {"stage1_dir": f"/m/{EVIL}"}},
    }
    items = gallery(tracks)
    items[0].label = "tank-treading"
    page = render_html(row, tracks, make_frame_stats(), items, prov, figures=False)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page


@settings(max_examples=40, deadline=None)
@given(name=st.text(max_size=30), message=st.text(max_size=60), warning=st.text(max_size=60))
def test_html_never_lets_markup_through(name, message, warning):
    row = ok_row(f"/x/{name}.avi", acquisition=name, message=message)
    page = render_html(
        row, make_tracks(10), make_frame_stats(20), [], {"warnings": [warning]}, figures=False
    )
    # the only tags are ours: every "<" in the page opens a known tag
    tags = set(re.findall(r"</?([a-zA-Z0-9!]+)", page))
    assert tags <= {
        "!DOCTYPE",
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "p",
        "code",
        "span",
        "table",
        "tr",
        "th",
        "td",
        "b",
        "ul",
        "li",
        "figure",
        "img",
        "figcaption",
        "br",
    }
    assert page.count("<") == len(re.findall(r"</?[a-zA-Z!]", page))
    for text in (name, message, warning):
        assert html.escape(text, quote=True) in page


def test_html_without_reliable_tracks_says_no_figure():
    tracks = make_tracks(10)
    tracks["label"] = "unreliable"
    row = ok_row(
        reliable=0,
        tank_treading=0,
        flipping=0,
        tank_treading_fraction=None,
        ci_low=None,
        ci_high=None,
        message="no reliable track: no fraction",
    )
    page = render_html(row, tracks, make_frame_stats(), [], {}, figures=True)
    assert "no figure" in page and "no reliable track" in page


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from rbcflow.io.outputs import remove_stale_temporaries

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    (tmp_path / f".tracks.csv.{dead_pid}.0123abcd.tmp").write_text("half")
    (tmp_path / f".report.csv.{os.getpid()}.0123abcd.tmp").write_text("being written")
    (tmp_path / "tracks.csv").write_text("complete")
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".report.csv.{os.getpid()}.0123abcd.tmp", "tracks.csv"]
    )


def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "report.csv"
    target.write_text("previous complete\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        write_csv_atomic(target, report_table([ok_row()]))
    assert target.read_text() == "previous complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]
