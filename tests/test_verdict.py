"""The headline figure's verdict: each rule at its threshold, how rules combine, and the verdict
in report.csv and report.html of a real ``rbcflow analyze`` run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rbcflow import schema
from rbcflow.config import VerdictConfig
from rbcflow.report import merge_report, read_report, render_html, report_table, write_report_csv
from rbcflow.report.quality import quality_indicators
from rbcflow.report.verdict import PASS_REASON, VERDICTS, verdict, worst

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "sample.avi"
GOOD_FRONTEND = {"cell_diameter_px": 13.0, "scale": 1.0}


def good_row(**kw):
    """A row no rule objects to: 400 reliable tracks, interval +/-0.045."""
    row = {
        "acquisition": "a",
        "source": "/d/a.avi",
        "status": "ok",
        "message": "",
        "tracks": 6000,
        "reliable": 400,
        "tank_treading": 280,
        "flipping": 120,
        "tank_treading_fraction": 0.7,
        "ci_low": 0.655,
        "ci_high": 0.745,
    }
    row.update(kw)
    return row


def test_a_clean_row_passes():
    assert verdict(good_row(), frontend=GOOD_FRONTEND, quality=[]) == ("pass", PASS_REASON)


def test_no_fraction_fails():
    v, why = verdict(good_row(reliable=0, tank_treading_fraction=None, ci_low=None, ci_high=None))
    assert v == "fail" and "no reliable track among 6000 tracks" in why
    assert verdict(good_row(tank_treading_fraction=float("nan")))[0] == "fail"


@pytest.mark.parametrize(
    ("ci_low", "ci_high", "expected"),
    [(0.65, 0.75, "pass"), (0.65, 0.7502, "check"), (0.6, 0.7, "pass"), (0.5, 0.9, "check")],
)
def test_interval_wider_than_the_limit_is_check(ci_low, ci_high, expected):
    # 300 reliable tracks at 0.7: counting alone is already +/-0.052 (Wilson)
    row = good_row(reliable=300, tank_treading=210, flipping=90, ci_low=ci_low, ci_high=ci_high)
    v, why = verdict(row)
    assert v == expected
    if expected == "check":
        half = (ci_high - ci_low) / 2
        assert f"+/-{half:.3f}" in why and "wider than +/-0.05" in why
        # the half-width shrinks as 1/sqrt(n): tracks needed for +/-0.05
        assert f"300 here, about {math.ceil(300 * (half / 0.05) ** 2)} needed" in why
    # a stricter laboratory limit
    strict = VerdictConfig(max_ci_half_width=0.04)
    assert verdict(good_row(ci_low=ci_low, ci_high=ci_high), cfg=strict)[0] == "check"


def test_interval_widened_by_the_classifiers_says_so():
    # 400 reliable tracks: counting alone gives +/-0.045, the classifiers' error +/-0.12
    v, why = verdict(good_row(ci_low=0.58, ci_high=0.82), frontend=GOOD_FRONTEND, quality=[])
    assert v == "check"
    assert "classifiers' validated error" in why and "+/-0.120" in why and "needed" not in why


@pytest.mark.parametrize(
    ("leaked", "expected"),
    [(0, "pass"), (15, "pass"), (15.1, "check"), (50, "check"), (50.1, "fail"), (400, "fail")],
)
def test_estimated_leakage(leaked, expected):
    v, why = verdict(good_row(reliable=100, ci_low=0.66, ci_high=0.74, estimated_leaked=leaked))
    assert v == expected
    if expected != "pass":
        assert f"about {leaked:.0f} unreliable tracks may be counted as reliable" in why
        assert f"of 100, over {'50' if expected == 'fail' else '15'}%" in why


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, "n/a"])
def test_unknown_leakage_fires_no_rule(missing):
    assert verdict(good_row(estimated_leaked=missing)) == ("pass", PASS_REASON)
    assert verdict(good_row()) == ("pass", PASS_REASON)  # no such column at all


@pytest.mark.parametrize(
    ("diameter", "scale", "expected"),
    [
        (13.0, 1.0, "pass"),
        (10.5, 1.0, "pass"),
        (10.4, 1.0, "check"),
        (15.0, 1.0, "pass"),
        (15.1, 1.0, "check"),  # real crops magnified 1.4x measure 13.8-15.1 px
        (26.0, 0.5, "pass"),  # large cells brought to 13 px by the crop scale
        (26.0, 1.0, "check"),
        (8.0, 2.2, "check"),  # 17.6 px after scaling
    ],
)
def test_cell_size_after_scaling(diameter, scale, expected):
    v, why = verdict(good_row(), frontend={"cell_diameter_px": diameter, "scale": scale})
    assert v == expected
    if expected == "check":
        assert f"cells measure {diameter * scale:.1f} px across after scaling" in why
        assert "10.5-15 px" in why and "--scale auto" in why


@pytest.mark.parametrize(
    "frontend",
    [
        {"cell_diameter_px": None, "scale": 1.0},
        {"cell_diameter_px": float("nan"), "scale": 1.0},
        {"scale": 1.0},
        {"cell_diameter_px": 13.0, "scale": None},
    ],
)
def test_unmeasured_cell_size_is_scale_uncertain(frontend):
    v, why = verdict(good_row(), frontend=frontend)
    assert v == "check" and why.startswith("scale uncertain")


def test_without_frontend_no_size_rule():
    assert verdict(good_row(), frontend=None)[0] == "pass"


@pytest.mark.parametrize(
    ("contrast", "expected"),
    [(None, "pass"), (1.0, "pass"), (0.6, "pass"), (0.59, "check"), (1.5, "pass"), (1.51, "check")],
)
def test_contrast_when_measured(contrast, expected):
    fe = {**GOOD_FRONTEND, "contrast": contrast}
    v, why = verdict(good_row(), frontend=fe)
    assert v == expected
    if expected == "check":
        assert f"cell contrast {contrast:.2f} times the training crops'" in why


def _frame_stats(last_level, n=200):
    m = np.full(n, 100.0)
    m[-n // 10 :] = last_level
    return pd.DataFrame({"frame": np.arange(n), "mean_intensity": m, "n_detections": 5})


def _tracks(n=40, speed_last=10.0):
    speed = np.full(n, 10.0)
    speed[-n // 4 :] = speed_last
    return pd.DataFrame(
        {
            "first_frame": np.arange(n) * 5,
            "speed": speed,
            "label": ["tank-treading"] * n,
            "rule": [""] * n,
        }
    )


@pytest.mark.parametrize(
    ("level", "speed_last", "flagged"),
    [
        (110.0, 12.0, []),  # +10% brightness, +20% speed: at the display thresholds
        (110.5, 12.0, ["illumination drift"]),
        (110.0, 12.1, ["cell speed drift"]),
        (89.0, 7.5, ["cell speed drift", "illumination drift"]),
    ],
)
def test_drift_flagged_by_the_quality_indicators(level, speed_last, flagged):
    """The quality indicators' own verdicts, on their own measures, decide the rule."""
    row = good_row(duration_s=20.0, tracks=6000, reliable=400)
    quality = quality_indicators(row, _tracks(speed_last=speed_last), _frame_stats(level))
    v, why = verdict(row, frontend=GOOD_FRONTEND, quality=quality)
    assert v == ("check" if flagged else "pass")
    for name in flagged:
        assert f"{name} " in why and "flagged by the quality indicators" in why
    assert why.count("flagged") == len(flagged)


def test_only_the_indicators_that_threaten_the_figure_count():
    q = [
        {"name": "reliable tracks", "value": "40", "verdict": "check"},  # the interval rule's
        {"name": "share unreliable", "value": "99%", "verdict": "ok"},
    ]
    assert verdict(good_row(), quality=q)[0] == "pass"
    q[1]["verdict"] = "check"
    assert verdict(good_row(), quality=q) == (
        "check",
        "share unreliable 99%: flagged by the quality indicators",
    )
    assert verdict(good_row(), quality=q, cfg=VerdictConfig(quality_checks=()))[0] == "pass"


def test_worst_wins_and_every_reason_is_listed_most_severe_first():
    assert [worst(v) for v in (["pass"], ["check", "pass"], ["pass", "fail", "check"])] == [
        "pass",
        "check",
        "fail",
    ]
    row = good_row(
        reliable=100, tank_treading=70, flipping=30, ci_low=0.6, ci_high=0.8, estimated_leaked=60
    )
    q = [{"name": "illumination drift", "value": "+30.0%", "verdict": "check"}]
    v, why = verdict(row, frontend={"cell_diameter_px": None, "scale": 1.0}, quality=q)
    assert v == "fail"
    reasons = why.split("; ")
    assert len(reasons) == 4
    assert reasons[0].startswith("about 60 unreliable tracks")  # the fail first
    assert reasons[1].startswith("too few reliable tracks")  # then the checks, in rule order
    assert reasons[2].startswith("scale uncertain")
    assert reasons[3].startswith("illumination drift +30.0%")
    # two checks stay a check
    assert verdict(row | {"estimated_leaked": None}, frontend={"scale": 1.0})[0] == "check"


def test_failed_row_fails_with_its_message():
    row = {"status": "failed", "message": "not a video: cannot decode"}
    assert verdict(row) == ("fail", "not a video: cannot decode")


def test_report_csv_keeps_verdicts_of_ok_failed_and_skipped_rows(tmp_path):
    ok = good_row(verdict="check", verdict_reason="too few reliable tracks")
    failed = {"source": "/d/b.avi", "status": "failed", "message": "cannot decode"}
    skipped = good_row(
        source="/d/c.avi",
        status="skipped",
        message="unchanged",
        verdict="pass",
        verdict_reason=PASS_REASON,
    )
    path = write_report_csv(tmp_path / "report.csv", report_table([ok, failed, skipped]))
    header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[header.index("ci_high") + 1 : header.index("ci_high") + 3] == [
        "verdict",
        "verdict_reason",
    ]
    back = read_report(path)
    assert list(back.verdict) == ["check", "fail", "pass"]
    assert list(back.verdict_reason) == ["too few reliable tracks", "cannot decode", PASS_REASON]
    # a later skip of the first source keeps its verdict through the merge
    again = merge_report(back, [{**ok, "status": "skipped", "message": "unchanged"}])
    assert again.loc[0, "status"] == "skipped" and again.loc[0, "verdict"] == "check"


def _page(**kw):
    return render_html(good_row(**kw), _tracks(), _frame_stats(100.0), figures=False)


def test_html_shows_the_verdict_and_warns_unless_pass():
    page = _page(verdict="pass", verdict_reason=PASS_REASON)
    assert "Verdict: <b>pass</b>" in page and "provisional" not in page
    for v in ("check", "fail"):
        page = _page(verdict=v, verdict_reason="first <reason>; second reason")
        assert f"Verdict: <b>{v}</b>" in page and "provisional: do not report" in page
        assert "<li>first &lt;reason&gt;</li><li>second reason</li>" in page
    page = _page()  # a row without a verdict is not reportable either
    assert "not assessed" in page and "provisional: do not report" in page


def test_html_reuses_the_indicators_of_the_record():
    prov = {"quality": [{"name": "made upstream", "value": "7", "verdict": "check", "hint": "x"}]}
    row = good_row(verdict="check", verdict_reason="r")
    page = render_html(row, _tracks(), _frame_stats(100.0), [], prov, figures=False)
    assert "made upstream" in page and "illumination drift" not in page


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """``rbcflow analyze`` on the shipped sample with the shipped models, run twice (the second
    run skips it)."""
    from rbcflow.cli import main

    out = tmp_path_factory.mktemp("verdict") / "out"
    args = ["analyze", str(SAMPLE), "--out", str(out), "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    report_1 = pd.read_csv(out / "report.csv")
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    return out, report_1, pd.read_csv(out / "report.csv")


def test_analyze_writes_the_verdict(sample_run):
    out, report, _ = sample_run
    assert list(report.columns) == list(schema.REPORT_COLUMNS)
    row = report.iloc[0]
    assert row.status == "ok" and row.verdict in VERDICTS and row.verdict_reason
    # the written verdict is the rules' verdict on what run.json recorded
    record = json.loads((out / row.output / "run.json").read_text())
    assert record["result"]["verdict"] == row.verdict
    again = verdict(record["result"], frontend=record["frontend"], quality=record["quality"])
    assert again == (row.verdict, row.verdict_reason)
    # the sample has a few dozen reliable tracks: its interval cannot be +/-0.05
    assert row.reliable < 100 and (row.ci_high - row.ci_low) / 2 > 0.05
    assert row.verdict != "pass" and "too few reliable tracks" in row.verdict_reason
    page = (out / row.output / "report.html").read_text(encoding="utf-8")
    assert f"Verdict: <b>{row.verdict}</b>" in page and "provisional: do not report" in page
    assert "too few reliable tracks" in page
    # the page says how the figure was made and keeps the plain count beside it
    assert row.fraction_method == "em" and "calibrated probabilities (EM prior)" in page
    assert f"plain count {row.fraction_counted:.1%}" in page and "Wilson" not in page


def test_skipped_sample_keeps_its_verdict(sample_run):
    _, first, second = sample_run
    assert second.status[0] == "skipped"
    assert (second.verdict[0], second.verdict_reason[0]) == (
        first.verdict[0],
        first.verdict_reason[0],
    )


def test_an_automatic_scale_is_a_check():
    auto = {**GOOD_FRONTEND, "scale_auto": True}
    v, why = verdict(good_row(), frontend=auto, quality=[])
    assert v == "check" and "scale 1.00 chosen automatically (--scale auto)" in why
    assert verdict(good_row(), frontend={**GOOD_FRONTEND, "scale_auto": False}, quality=[])[0] == (
        "pass"
    )


def test_an_automatic_scale_without_a_measured_size_still_says_why():
    v, why = verdict(
        good_row(), frontend={"cell_diameter_px": None, "scale": None, "scale_auto": True}
    )
    assert v == "check" and "scale uncertain" in why and "the scale chosen automatically" in why
