"""The patient registry (idempotent, concurrent, versioned) and the baseline on a known history."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from rbcflow.samples import registry as reg
from rbcflow.samples.baseline import BELOW, NO_BASELINE, OTHER_MODELS, WITHIN, assess


def _sample(i: int, fraction: float, **kw) -> dict:
    return {
        "patient": "BG",
        "sample": f"S{i}",
        "drawn_at": (dt.date(2024, 1, 1) + dt.timedelta(weeks=i)).isoformat(),
        "tank_treading_fraction": fraction,
        "ci_low": fraction - 0.03,
        "ci_high": fraction + 0.03,
        "reliable": 400,
        "verdict": "pass",
        "stage1_model": "m1",
        "stage2_model": "m2",
        **kw,
    }


def test_adding_a_sample_again_updates_it(tmp_path):
    path = tmp_path / "r.sqlite"
    assert reg.add_samples(path, [_sample(0, 0.70), _sample(1, 0.72)]) == 2
    assert reg.add_samples(path, [_sample(1, 0.60, verdict="check")]) == 1
    rows = reg.patient_history(path, "BG")
    assert [(r["sample"], r["tank_treading_fraction"], r["verdict"]) for r in rows] == [
        ("S0", 0.70, "pass"),
        ("S1", 0.60, "check"),
    ]
    assert reg.patients(path) == [{"patient": "BG", "samples": 2, "last_drawn": "2024-01-08"}]
    assert reg.patient_history(path, "nobody") == []


def _writer(path: str, offset: int, n: int) -> None:
    for i in range(n):  # one transaction per sample: many chances to collide
        reg.add_samples(path, [_sample(offset + i, 0.7, patient=f"P{offset}")])


def test_two_processes_writing_at_once(tmp_path):
    path = str(tmp_path / "r.sqlite")
    reg.connect(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, k * 100, 40)) for k in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 80
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_and_migration(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    reg._migrate(con, upto=1)  # a registry written by the first schema
    con.execute("INSERT INTO samples (patient, sample, drawn_at) VALUES ('BG', 'S0', '2024-01-01')")
    assert reg.schema_version(con) == 1
    con.close()
    with reg.connect(path) as con:
        assert reg.schema_version(con) == reg.SCHEMA_VERSION == 3
        cols = [r[1] for r in con.execute("PRAGMA table_info(samples)")]
        assert "shear_rate" in cols
    assert reg.patient_history(path, "BG")[0]["sample"] == "S0"  # kept through the migration
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(reg.OutputError, match="newer than this rbcflow"):
        reg.connect(newer)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(reg.OutputError, match="not an rbcflow registry"):
        reg.connect(tmp_path / "junk.sqlite")


HISTORY = [0.70, 0.74, 0.66, 0.70, 0.72, 0.70, 0.68, 0.55]


def test_baseline_and_flag_on_a_known_history():
    history = [_sample(i, f) for i, f in enumerate(HISTORY)]
    out = assess(list(reversed(history)))  # any order in, draw order out
    assert [s["sample"] for s in out] == [f"S{i}" for i in range(8)]
    assert [s["status"] for s in out[:4]] == [NO_BASELINE] * 4
    # S4 against S0-S3: mean 0.70, sd sqrt((0 + .0016 + .0016 + 0) / 3)
    sd = math.sqrt(0.0032 / 3)
    assert out[4]["band_low"] == pytest.approx(0.70 - 2 * sd)
    assert out[4]["band_high"] == pytest.approx(0.70 + 2 * sd)
    assert [s["status"] for s in out[4:]] == [WITHIN, WITHIN, WITHIN, BELOW]
    prior = HISTORY[:7]
    mean = sum(prior) / 7
    sd7 = math.sqrt(sum((v - mean) ** 2 for v in prior) / 6)
    assert out[7]["band_low"] == pytest.approx(mean - 2 * sd7) and out[7]["band_n"] == 7
    # a provisional (check) draw is still compared, but makes no band by default
    history[7]["verdict"] = history[3]["verdict"] = "check"
    out = assess(history)
    assert out[7]["status"] == BELOW and out[7]["band_n"] == 6
    assert out[4]["status"] == NO_BASELINE  # three passing draws before it


def test_marked_baseline_and_other_models_are_not_mixed():
    marks = ["yes", "yes", "yes", "no", "no", "no"]
    history = [
        _sample(i, f, baseline=m) for i, (f, m) in enumerate(zip(HISTORY[:6], marks, strict=True))
    ]
    history[3]["tank_treading_fraction"] = 0.40  # a crisis draw, not marked baseline
    history.append(_sample(6, 0.62, stage2_model="m2-new"))  # latest: new models
    history.append(_sample(7, 0.61, stage2_model="m2-new", verdict="fail"))
    out = assess(history)
    assert [s["status"] for s in out[:6]] == [OTHER_MODELS] * 6
    assert out[6]["status"] == NO_BASELINE  # the new models have no marked baseline draw
    assert out[7]["status"] == "fail"  # a figure not to use: its verdict says why
    same = [
        _sample(i, f, baseline=m) for i, (f, m) in enumerate(zip(HISTORY[:6], marks, strict=True))
    ]
    same[3]["tank_treading_fraction"] = 0.40
    res = assess(same)
    # band over the three marked draws 0.70, 0.74, 0.66 only: mean 0.70, sd 0.04
    assert res[4]["band_low"] == pytest.approx(0.62) and res[4]["band_n"] == 3
    assert res[3]["status"] == BELOW and res[5]["status"] == WITHIN
    # a marked draw counts with a check (a short recording's wide interval), never with a fail
    same[2]["verdict"] = "check"
    assert assess(same)[4]["band_n"] == 3
    same[2]["verdict"] = "fail"
    res = assess(same)
    assert res[4]["band_n"] == 2 and res[4]["band_low"] == pytest.approx(0.72 - 2 * 0.04 / 2**0.5)


def test_patient_command(tmp_path):
    from rbcflow.cli import main

    path = tmp_path / "r.sqlite"
    reg.add_samples(path, [_sample(i, f) for i, f in enumerate(HISTORY)])
    page = tmp_path / "bg.html"
    run = CliRunner().invoke(main, ["patient", "BG", "--registry", str(path), "--out", str(page)])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0] == "patient BG: 8 sample(s)"
    assert "S7: 0.550 [0.520, 0.580] pass; below baseline" in lines[8]
    assert lines[9] == "latest (S7, 2024-02-19): below baseline"
    assert page.is_file() and "below baseline" in page.read_text(encoding="utf-8")
    listed = CliRunner().invoke(main, ["patient", "--list", "--registry", str(path)])
    assert listed.output.split("\t") == ["BG", "8 sample(s)", "last drawn 2024-02-19\n"]
    missing = CliRunner().invoke(main, ["patient", "XX", "--registry", str(path)])
    assert missing.exit_code == 2 and "no sample of patient 'XX'" in missing.output
    nothing = CliRunner().invoke(main, ["patient", "BG", "--registry", str(tmp_path / "no")])
    assert nothing.exit_code == 2 and "no registry here" in nothing.output


def test_default_registry_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RBCFLOW_REGISTRY", str(tmp_path / "x.sqlite"))
    assert reg.default_registry() == Path(tmp_path / "x.sqlite")
    monkeypatch.delenv("RBCFLOW_REGISTRY")
    assert reg.default_registry().name == "registry.sqlite"
