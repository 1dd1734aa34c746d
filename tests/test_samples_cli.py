"""``rbcflow analyze --samples / --name-pattern`` end to end (stand-in classifier, small
synthetic videos): report.csv's metadata columns, samples.csv, the overview, the workbook and
the registry; a bad sheet stops before any work."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
from click.testing import CliRunner
from test_cli_analyze import stand_in  # noqa: F401  (the fixture)

from rbcflow.cli import main
from rbcflow.synthetic import SynthConfig, write_acquisition

SMALL = SynthConfig(width=200, height=140, n_frames=90, cells_in_view=4)

NAMES = ("BG1017_10s01", "BG1017_10s02", "BG1024_10s01")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos") / "2023"
    d.mkdir()
    for i, name in enumerate(NAMES):
        write_acquisition(d / f"{name}.tif", SMALL, rng=10 + i)
    return d


def _analyze(*args):
    return CliRunner().invoke(main, ["analyze", *map(str, args), "--quiet", "--scale", "0.85"])


def test_analyze_with_a_sheet(videos, tmp_path, stand_in):  # noqa: F811
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "acquisition,patient,sample,drawn_at,shear_rate,operator\n"
        "BG1017_*,BG,BG-1017,2023-10-17,10,ana\n"
        "BG1024_10s01.tif,BG,BG-1024,2023-10-24,10,\n",
        encoding="utf-8",
    )
    out, registry = tmp_path / "out", tmp_path / "reg.sqlite"
    res = _analyze(videos, "--out", out, "--samples", sheet, "--registry", registry)
    assert res.exit_code == 0, res.output
    report = pd.read_csv(out / "report.csv", encoding="utf-8-sig")
    assert list(report["sample"]) == ["BG-1017", "BG-1017", "BG-1024"]
    assert list(report["operator"].fillna("")) == ["ana", "ana", ""]
    assert (report["shear_rate"] == 10).all() and (report["patient"] == "BG").all()
    samples = pd.read_csv(out / "samples.csv", encoding="utf-8-sig")
    assert list(samples["sample"]) == ["BG-1017", "BG-1024"]
    assert list(samples["acquisitions"]) == [2, 1]
    first = report[report["sample"] == "BG-1017"]
    pooled = samples.iloc[0]
    # what passed is pooled: its counts are the sum of those acquisitions' counts
    in_pool = first[first["acquisition"].isin(_pooled_names(pooled, first))]
    assert pooled["pooled"] == len(in_pool)
    assert pooled["reliable"] == in_pool["reliable"].sum()
    assert pooled["tank_treading"] == in_pool["tank_treading"].sum()
    assert (out / "index.html").is_file() and (out / "report.xlsx").is_file()
    with sqlite3.connect(registry) as con:
        rows = con.execute("SELECT patient, sample, report FROM samples ORDER BY sample").fetchall()
    assert [r[:2] for r in rows] == [("BG", "BG-1017"), ("BG", "BG-1024")]
    assert rows[0][2] == f"{(out / 'index.html').absolute()}#sample-BG-1017"
    # the same batch again: skipped, the registry updated, never duplicated
    again = _analyze(videos, "--out", out, "--samples", sheet, "--registry", registry)
    assert again.exit_code == 0 and "skipped" in again.output
    with sqlite3.connect(registry) as con:
        assert con.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 2
    shown = CliRunner().invoke(
        main, ["patient", "BG", "--registry", str(registry), "--out", str(tmp_path / "bg.html")]
    )
    assert shown.exit_code == 0 and "patient BG: 2 sample(s)" in shown.output


def _pooled_names(sample_row, rows) -> list[str]:
    left = str(sample_row["verdict_reason"])
    if f"all {len(rows)} pooled" in left:  # none passed: every one is pooled, each with its reason
        return list(rows["acquisition"])
    return [a for a in rows["acquisition"] if f"{a} (" not in left]


def test_a_bad_sheet_stops_before_any_work(videos, tmp_path, stand_in):  # noqa: F811
    sheet = tmp_path / "bad.csv"
    sheet.write_text(
        "acquisition,patient,sample,drawn_at\nBG1017_10s01,BG,S1,17/10/2023\nnope,BG,S2,2023-10-18\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = _analyze(videos, "--out", out, "--samples", sheet, "--registry", tmp_path / "r.sqlite")
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("rbcflow: error:")]
    assert len(errors) == 4, res.output  # bad date, unknown acquisition, two in no row
    assert any("row 2: drawn_at '17/10/2023' is not an ISO 8601 date" in e for e in errors)
    assert not (out / "report.csv").exists() and not (tmp_path / "r.sqlite").exists()


def test_analyze_with_the_authors_name_pattern(videos, tmp_path, stand_in):  # noqa: F811
    pattern = (
        r"(?P<year>\d{4})/(?P<patient>[A-Z]+)(?P<month>\d\d)(?P<day>\d\d)_(?P<shear_rate>\d+)s"
    )
    out = tmp_path / "out"
    res = _analyze(
        videos / "BG1024_10s01.tif",
        "--out",
        out,
        "--name-pattern",
        pattern,
        "--registry",
        tmp_path / "r.sqlite",
    )
    assert res.exit_code == 0, res.output
    report = pd.read_csv(out / "report.csv", encoding="utf-8-sig")
    assert report.loc[0, ["patient", "drawn_at", "sample"]].tolist() == [
        "BG",
        "2023-10-24",
        "BG-2023-10-24-10s",
    ]


def test_without_metadata_nothing_is_recorded(videos, tmp_path, stand_in, monkeypatch):  # noqa: F811
    monkeypatch.setenv("RBCFLOW_REGISTRY", str(tmp_path / "default.sqlite"))
    out = tmp_path / "out"
    res = _analyze(videos / "BG1024_10s01.tif", "--out", out)
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "default.sqlite").exists() and not (out / "samples.csv").exists()
    assert (out / "index.html").is_file()  # the overview is always written
    report = pd.read_csv(out / "report.csv", encoding="utf-8-sig")
    assert report["patient"].isna().all()
