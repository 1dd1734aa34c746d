"""One fraction per sample: pooled counts, the verdicts passed through, and samples.csv and
report.xlsx read back with the right types."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rbcflow.classify.calibration import estimate_acquisition
from rbcflow.classify.estimate import ValidatedRates
from rbcflow.classify.labels import wilson_interval
from rbcflow.report.tables import report_table, write_report_csv
from rbcflow.samples import write_batch_outputs
from rbcflow.samples.pool import SAMPLE_COLUMNS, pool_sample, sample_table

GOOD_FRONTEND = {"cell_diameter_px": 12.0, "scale": 1.0, "scale_auto": False}
DRIFT = [{"name": "cell speed drift", "value": "+80%", "verdict": "check"}]


def _acquisition(out: Path, name: str, n_tt: int, n_fl: int, n_un: int, *, quality=(), **meta):
    """A results folder as analyze writes it (tracks.csv, run.json), and its report row."""
    folder = out / name
    folder.mkdir(parents=True)
    labels = ["tank-treading"] * n_tt + ["flipping"] * n_fl + ["unreliable"] * n_un
    rng = np.random.default_rng(len(name) + n_tt)
    p = np.where(np.array(labels) == "tank-treading", 0.9, 0.2) + rng.uniform(-0.05, 0.05)
    pd.DataFrame(
        {
            "track_id": range(len(labels)),
            "p_reliable": 0.9,
            "p_tank_treading": p,
            "label": labels,
            "rule": "",
        }
    ).to_csv(folder / "tracks.csv", index=False, encoding="utf-8-sig")
    record = {"frontend": GOOD_FRONTEND, "quality": list(quality), "params_id": "p1"}
    record["parameters"] = {"frontend": {"crops": {"scale": 1.0}}, "report": {"x": 1}}
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    counted = estimate_acquisition(labels, [""] * len(labels), None)
    return {
        "acquisition": name,
        "source": f"/data/{name}.avi",
        "status": "ok",
        "output": name,
        "tracks": len(labels),
        "duration_s": 20.04,
        **counted,
        "verdict": "check",  # too few tracks alone: pooling answers that
        "verdict_reason": "too few reliable tracks",
        "stage1_model": "aaaa",
        "stage2_model": "bbbb",
        "params_id": "p1",
        "input_hash": "1e5",  # a hash that reads as a number
        "analysed_at": "2024-05-12T10:11:12+00:00",
        **meta,
    }


META = {"patient": "BG", "sample": "S1", "drawn_at": "2023-10-17", "shear_rate": 10.0}


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    rows = [
        _acquisition(out, "a", 30, 10, 5, **META),
        _acquisition(out, "b", 20, 20, 0, **META),
        _acquisition(out, "c", 50, 0, 0, quality=DRIFT, **META),  # its recording: check
        _acquisition(out, "d", 40, 2, 0, patient="BG", sample="S2", drawn_at="2023-10-24"),
        _acquisition(out, "e", 5, 5, 0),  # no sample: not in samples.csv
    ]
    write_report_csv(out / "report.csv", report_table(rows))
    return out, report_table(rows)


def test_pooling_sums_the_passing_acquisitions_counts(results):
    out, report = results
    row = pool_sample(report[report["sample"] == "S1"], out)
    assert (row["acquisitions"], row["pooled"]) == (3, 2)
    assert (row["tank_treading"], row["flipping"], row["reliable"]) == (50, 30, 80)
    assert row["tank_treading_fraction"] == pytest.approx(50 / 80)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_interval(50, 80))
    for r in report[report["acquisition"].isin(["a", "b"])].itertuples():
        assert row["ci_high"] - row["ci_low"] < r.ci_high - r.ci_low  # more tracks, narrower
    # the verdicts pass through: c's recording failed its check and is named with its reason
    assert row["verdict"] == "check"  # the pooled figure's own rule: 80 tracks are too few
    assert "too few reliable tracks (80 here" in row["verdict_reason"]
    assert "left out 1 of 3 acquisitions: c (check: cell speed drift +80%" in row["verdict_reason"]
    assert (row["patient"], row["drawn_at"], row["shear_rate"]) == ("BG", "2023-10-17", 10.0)


def test_pooled_interval_is_computed_as_for_one_acquisition(results):
    out, report = results
    rates = ValidatedRates(90, 100, 10, 100, 90, 100, 2, 100, 20, 100)
    row = pool_sample(report[report["sample"] == "S1"], out, rates, temperature=1.3)
    tracks = pd.concat([pd.read_csv(out / n / "tracks.csv", keep_default_na=False) for n in "ab"])
    one = estimate_acquisition(
        tracks["label"],
        tracks["rule"],
        rates,
        p_tank_treading=tracks["p_tank_treading"],
        temperature=1.3,
    )
    for k in ("tank_treading_fraction", "ci_low", "ci_high", "fraction_method"):
        assert row[k] == one[k]
    assert row["fraction_method"] == "em"


def test_a_sample_with_no_passing_acquisition_is_provisional(results):
    out, report = results
    c = report[report["acquisition"] == "c"]
    row = pool_sample(c, out)  # its recording is flagged: pooled anyway, the check kept
    assert row["verdict"] == "check" and row["pooled"] == 1
    assert (row["tank_treading"], row["flipping"]) == (50, 0)
    assert row["verdict_reason"].startswith(
        "no acquisition passed, all 1 pooled: c (check: cell speed drift"
    )
    assert row["verdict_reason"].endswith("; the pooled figure: every verdict rule holds")
    failed = c.assign(status="failed", message="cannot read the video")
    row = pool_sample(failed, out)  # a failed one is never pooled: no figure
    assert row["verdict"] == "fail" and row["pooled"] == 0
    assert row["tank_treading_fraction"] is None and row["stage2_model"] == "bbbb"
    assert (
        row["verdict_reason"] == "no acquisition could be pooled: c (fail: cannot read the video)"
    )


def test_models_are_not_pooled_silently(results):
    out, report = results
    s1 = report[report["sample"] == "S1"].copy()
    s1.loc[s1["acquisition"] == "b", "stage2_model"] = "other"
    row = pool_sample(s1, out)
    assert row["verdict"] == "check"
    assert row["verdict_reason"].startswith("acquisitions analysed with different models")


def test_samples_csv_and_workbook_read_back_typed(results):
    import openpyxl

    out, report = results
    written = write_batch_outputs(out, out / "report.csv")
    assert sorted(written) == ["index.html", "report.xlsx", "samples.csv"]
    samples = pd.read_csv(out / "samples.csv", encoding="utf-8-sig")
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
    assert list(samples["sample"]) == ["S1", "S2"]  # e has no sample
    assert samples["tank_treading_fraction"].tolist() == [0.625, round(40 / 42, 3)]
    assert str(samples["reliable"].dtype) == "int64"

    wb = openpyxl.load_workbook(out / "report.xlsx")
    assert wb.sheetnames == ["samples", "acquisitions", "tracks", "parameters"]
    acq = wb["acquisitions"]
    head = [c.value for c in acq[1]]
    first = {h: c for h, c in zip(head, acq[2], strict=True)}
    assert first["input_hash"].value == "1e5" and first["input_hash"].data_type == "s"
    assert isinstance(first["tracks"].value, int)
    assert isinstance(first["tank_treading_fraction"].value, float)
    assert first["duration_s"].value == 20.0  # seconds rounded to 1 decimal
    assert first["drawn_at"].value == dt.datetime(2023, 10, 17)
    assert first["drawn_at"].is_date and first["analysed_at"].is_date
    assert acq.freeze_panes == "A2"
    assert acq.column_dimensions["B"].width > 10
    s = wb["samples"]
    shead = [c.value for c in s[1]]
    assert s.cell(2, shead.index("reliable") + 1).value == 80
    assert s.cell(2, shead.index("tank_treading_fraction") + 1).value == 0.625
    tracks = wb["tracks"]
    assert tracks.max_row == 1 + 45 + 40 + 50 + 42 + 10
    assert [c.value for c in tracks[1]][:2] == ["acquisition", "track_id"]
    params = wb["parameters"]
    assert "frontend.crops.scale" in [c.value for c in params[1]]


def test_a_formula_like_name_stays_text_in_the_workbook(results, tmp_path):
    import openpyxl

    from rbcflow.samples.workbook import write_workbook

    df = pd.DataFrame({"acquisition": ['=HYPERLINK("x")', "a\x1b[2J\x07b"], "n": [1, 2]})
    write_workbook(tmp_path / "w.xlsx", None, df, df, df)
    sheet = openpyxl.load_workbook(tmp_path / "w.xlsx")["acquisitions"]
    cell = sheet["A2"]
    assert cell.data_type == "s" and cell.value == '=HYPERLINK("x")'
    assert sheet["A3"].value == "a\\x1b[2J\\x07b"  # control characters shown, not refused


def test_sample_table_orders_and_skips_rows_without_sample(results):
    out, report = results
    table = sample_table(report, out)
    assert list(table["sample"]) == ["S1", "S2"]
    assert table.loc[1, "acquisition_names"] == "d"
