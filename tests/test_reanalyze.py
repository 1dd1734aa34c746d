"""``rbcflow reanalyze``: a registry's history analysed again, beside the old results.

A small history (four synthetic acquisitions of two patients, three samples) is analysed with
a stand-in classifier (the "old model"), then reanalysed with the shipped models: the old
results and registry rows stay byte for byte, new rows are added, the comparison's values are
the two report.csv rows. Filters, a vanished source, results that are gone, an interrupted
reanalysis and the command line are checked on the same kind of history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from test_cli_analyze import StandIn, stand_in  # noqa: F401  (the fixture)

from rbcflow.batch import analyze_batch
from rbcflow.batch.reanalyze import SelectionError, reanalysis_key, reanalyze, select
from rbcflow.cli import main
from rbcflow.config import CropConfig, FrontEndConfig
from rbcflow.pipeline import AnalysisSettings, short_checksum
from rbcflow.samples import batch_samples
from rbcflow.samples import registry as reg
from rbcflow.schema import COMPARED
from rbcflow.synthetic import SynthConfig, write_acquisition

SMALL = SynthConfig(width=200, height=140, n_frames=90, cells_in_view=4)
SETTINGS = AnalysisSettings(frontend=FrontEndConfig(crops=CropConfig(scale=0.85)))
PATTERN = r"(?P<year>\d{4})/(?P<patient>[A-Z]+)(?P<month>\d\d)(?P<day>\d\d)_(?P<shear_rate>\d+)s"
NAMES = ("BG1017_10s01", "BG1017_10s02", "BG1024_10s01", "BK1024_10s01")


class NewStandIn(StandIn):
    """Another stand-in model: other checksums, other calls."""

    stage1_checksum = "e" * 64
    stage2_checksum = "f" * 64

    def predict(self, sequences, **kw):
        out = super().predict(sequences, **kw)
        out["p_tank_treading"] = 1.0 - out["p_tank_treading"]
        out.loc[out["label"] != "unreliable", "label"] = out["p_tank_treading"].map(
            lambda p: "tank-treading" if p >= 0.5 else "flipping"
        )
        return out


def _history(root: Path, names=NAMES) -> dict[str, Path]:
    """Videos under ``root/videos/2023``, analysed (old model) into ``root/old``, recorded."""
    videos = root / "videos" / "2023"
    videos.mkdir(parents=True)
    for i, name in enumerate(names):
        write_acquisition(videos / f"{name}.tif", SMALL, rng=20 + i)
    registry, old = root / "registry.sqlite", root / "old"
    samples = batch_samples([videos], name_pattern=PATTERN, registry=registry)
    analyze_batch([videos], old, StandIn(), SETTINGS, samples=samples, threaded=False)
    return {"videos": videos, "registry": registry, "old": old}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    return _history(tmp_path_factory.mktemp("history"))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rows(registry: Path, table: str) -> list[tuple]:
    with sqlite3.connect(registry) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY patient, sample").fetchall()


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig")


def _same(a, b) -> bool:
    missing = (a is None or (isinstance(a, float) and math.isnan(a))) and (
        b is None or (isinstance(b, float) and math.isnan(b))
    )
    return missing or a == b


@pytest.fixture(scope="module")
def shipped_run(history, tmp_path_factory):
    """The history reanalysed with the shipped models (one process), and what was before."""
    from rbcflow.classify.inference import load_classifier

    before = _snapshot(history["old"]), _rows(history["registry"], "samples")
    shipped = load_classifier()
    out = tmp_path_factory.mktemp("reanalyses")
    done = reanalyze(history["registry"], out, shipped, SETTINGS, threaded=False)
    return {"before": before, "classifier": shipped, "done": done, "out": out}


def test_reanalysis_with_the_shipped_models_is_recorded_beside_the_old(history, shipped_run):
    (old_files, old_rows), shipped = shipped_run["before"], shipped_run["classifier"]
    done, out = shipped_run["done"], shipped_run["out"]
    assert [r[:2] for r in old_rows] == [
        ("BG", "BG-2023-10-17-10s"),
        ("BG", "BG-2023-10-24-10s"),
        ("BK", "BK-2023-10-24-10s"),
    ]
    key = reanalysis_key(shipped, SETTINGS)
    assert done.folder.name == f"{dt.date.today().isoformat()}_{key}" == done.id
    assert key == (
        f"{short_checksum(shipped.stage1_checksum, 8)}-"
        f"{short_checksum(shipped.stage2_checksum, 8)}_{SETTINGS.params_id()}"
    )
    # the old results and the registry's samples: untouched
    assert _snapshot(history["old"]) == old_files
    assert _rows(history["registry"], "samples") == old_rows
    # new rows beside them, saying which reanalysis and models made them
    new = reg.reanalysed(history["registry"], done.id)
    assert [(r["patient"], r["sample"]) for r in new] == [r[:2] for r in old_rows]
    assert done.recorded == 3
    assert {r["stage1_model"] for r in new} == {short_checksum(shipped.stage1_checksum)}
    assert all(r["report"].startswith(str(done.folder / "index.html#sample-")) for r in new)
    assert len(reg.patient_history(history["registry"], "BG")) == 2  # the timeline: the old
    # the comparison: the two report.csv rows side by side
    old_report, new_report = _csv(history["old"] / "report.csv"), _csv(done.folder / "report.csv")
    table = _csv(done.folder / "comparison.csv")
    assert len(table) == 4 and (table["status"] == "ok").all()
    for row in table.to_dict("records"):
        old = old_report[old_report["source"] == row["source"]].iloc[0].to_dict()
        now = new_report[new_report["source"] == row["source"]].iloc[0].to_dict()
        for c in COMPARED:
            if c != "output":
                assert _same(row[f"old_{c}"], old[c]), c
                assert _same(row[f"new_{c}"], now[c]), c
        assert row["old_output"] == str(history["old"] / old["output"])
        assert row["new_output"] == now["output"]
        expected = now["tank_treading_fraction"] - old["tank_treading_fraction"]
        if math.isnan(expected):  # one of them has no fraction (no reliable track)
            assert math.isnan(row["difference"])
        else:
            assert row["difference"] == pytest.approx(expected, abs=1e-12)
        assert row["old_stage1_model"] == "c" * 12 and row["new_stage1_model"] != "c" * 12
    page = (done.folder / "comparison.html").read_text(encoding="utf-8")
    assert page.count("<tr>") == 1 + 3 + 1 + 4 and "BK1024_10s01" in page
    # the same reanalysis again: resumed in its folder, everything skipped, nothing duplicated
    again = reanalyze(history["registry"], out, shipped, SETTINGS, threaded=False)
    assert again.folder == done.folder and list(again.comparison["status"]) == ["skipped"] * 4
    assert len(reg.reanalysed(history["registry"], done.id)) == 3
    assert len(_csv(done.folder / "comparison.csv")) == 4
    assert _snapshot(history["old"]) == old_files


def test_patient_shows_the_timeline_as_a_reanalysis_found_it(history, shipped_run, tmp_path):
    registry, rid = history["registry"], shipped_run["done"].id
    listed = CliRunner().invoke(main, ["patient", "--list", "--registry", str(registry)])
    assert listed.exit_code == 0, listed.output
    assert f"reanalysis {rid}\t3 sample(s) of 2 patient(s)" in listed.output
    plain = CliRunner().invoke(
        main, ["patient", "BG", "--registry", str(registry), "--out", str(tmp_path / "a.html")]
    )
    assert plain.exit_code == 0, plain.output
    assert f"--reanalysis {rid}" in plain.output  # the first figures, and where the new ones are
    page = tmp_path / "BG.html"
    res = CliRunner().invoke(
        main,
        [
            "patient",
            "BG",
            "--reanalysis",
            "latest",
            "--registry",
            str(registry),
            "--out",
            str(page),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"as reanalysed in {rid}: 2 of 2 sample(s)" in res.output
    new = {r["sample"]: r for r in reg.reanalysed(registry, rid) if r["patient"] == "BG"}
    shown = reg.patient_history(registry, "BG", rid)
    assert [s["sample"] for s in shown] == sorted(new)  # draw order, each sample once
    for s in shown:
        assert s["reanalysis"] == rid
        assert _same(s["tank_treading_fraction"], new[s["sample"]]["tank_treading_fraction"])
    html = page.read_text()
    assert 'id="reanalysis"' in html and rid in html
    bad = CliRunner().invoke(
        main, ["patient", "BG", "--reanalysis", "nope", "--registry", str(registry)]
    )
    assert bad.exit_code == 2 and f"no reanalysis 'nope' of patient 'BG' (known: {rid})" in (
        bad.output
    )


def test_reanalysis_in_two_worker_processes(history, shipped_run, tmp_path):
    """``workers`` goes through to analyze_batch: the same figures as in one process."""
    shipped, first = shipped_run["classifier"], shipped_run["done"]
    done = reanalyze(
        history["registry"], tmp_path, shipped, SETTINGS, since="2023-10-20", workers=2
    )
    assert done.id == first.id and list(done.comparison["status"]) == ["ok", "ok"]
    one = first.comparison[first.comparison["source"].isin(done.comparison["source"])]
    one = one.reset_index(drop=True)
    same = [c for c in done.comparison.columns if c != "new_analysed_at"]
    pd.testing.assert_frame_equal(done.comparison[same], one[same])
    assert len(reg.reanalysed(history["registry"], done.id)) == 3  # updated, not added


def _sources(selected) -> list[str]:
    return [Path(s.source).stem for s in selected]


def test_filters_select_the_right_acquisitions(history, tmp_path):
    registry = history["registry"]
    assert _sources(select(registry)) == list(NAMES)
    assert _sources(select(registry, patient="BK")) == ["BK1024_10s01"]
    assert _sources(select(registry, since="2023-10-20")) == ["BG1024_10s01", "BK1024_10s01"]
    assert _sources(select(registry, since="2023-10-24T00:00", patient="BG")) == ["BG1024_10s01"]
    assert _sources(select(registry, since=dt.date(2023, 10, 17))) == list(NAMES)
    with pytest.raises(SelectionError, match="nothing to reanalyse: no sample drawn since 2023"):
        select(registry, since="2023-10-25")
    with pytest.raises(SelectionError, match="'24/10/2023' is not an ISO 8601 date"):
        select(registry, since="24/10/2023")
    # the command line: one line, exit 2, nothing written, before any model is loaded
    for args, said in (
        (["--since", "2023-02-30"], "rbcflow: error: --since '2023-02-30' is not an ISO 8601"),
        (["--patient", "XX"], "nothing to reanalyse: no sample of patient 'XX'"),
        (["--since", "2030-01-01", "--patient", "BG"], "of patient 'BG' drawn since 2030-01-01"),
    ):
        out = tmp_path / "out"
        res = CliRunner().invoke(
            main, ["reanalyze", "--registry", str(registry), "--out", str(out), *args]
        )
        assert res.exit_code == 2 and said in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def test_a_moved_source_is_found_again_by_name_and_content(tmp_path):
    h = _history(tmp_path, (NAMES[0], NAMES[2]))
    gone = h["videos"] / f"{NAMES[2]}.tif"
    archive, decoy = tmp_path / "archive" / "2023", tmp_path / "decoy"
    archive.mkdir(parents=True)
    decoy.mkdir()
    (decoy / gone.name).write_bytes((h["videos"] / f"{NAMES[0]}.tif").read_bytes())  # not it
    gone.rename(archive / gone.name)  # the archive was reorganised since the analysis
    res = CliRunner().invoke(
        main,
        [
            "reanalyze", "--registry", str(h["registry"]), "--out", str(tmp_path / "re"),
            "--search", str(decoy), "--search", str(tmp_path / "archive"), "--quiet",
            "--scale", "0.85",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 source(s) found moved under --search" in res.output
    folder = next((tmp_path / "re").iterdir())
    table = _csv(folder / "comparison.csv").set_index("acquisition")
    row = table.loc[NAMES[2]]
    assert row["status"] == "ok" and row["source"] == str((archive / gone.name).absolute())
    assert row["message"].startswith(f"found moved: the old analysis read {gone.absolute()}")
    assert table.loc[NAMES[0], "status"] == "ok" and table.loc[NAMES[0], "source"] == str(
        (h["videos"] / f"{NAMES[0]}.tif").absolute()
    )
    record = pd.read_json(folder / "reanalysis.json", typ="series")
    assert record["moved"] == {str(gone.absolute()): str((archive / gone.name).absolute())}


def test_vanished_source_gone_results_and_an_interrupted_reanalysis(tmp_path):
    h = _history(tmp_path, (NAMES[0], NAMES[2]))
    registry = h["registry"]
    reg.add_samples(  # a sample whose results folder was deleted since
        registry, [{"patient": "BG", "sample": "lost", "drawn_at": "2023-11-01",
                    "report": str(tmp_path / "deleted" / "index.html#sample-lost")}]
    )  # fmt: skip
    (h["videos"] / "BG1024_10s01.tif").unlink()  # moved away since its analysis
    seen = []

    def stop_after_one(event):
        seen.append(event.row["status"])
        raise KeyboardInterrupt

    model = NewStandIn()
    with pytest.raises(KeyboardInterrupt):
        reanalyze(
            registry, tmp_path / "re", model, SETTINGS, threaded=False, on_done=stop_after_one
        )
    folder = next((tmp_path / "re").iterdir())
    assert seen == ["ok"] and len(_csv(folder / "report.csv")) == 1
    assert reg.reanalysed(registry) == []  # nothing recorded before the end
    done = reanalyze(registry, tmp_path / "re", model, SETTINGS, threaded=False)
    assert done.folder == folder
    table = done.comparison.set_index("source")
    by_name = {Path(s).stem if isinstance(s, str) else "lost": r for s, r in table.iterrows()}
    assert [by_name[n]["status"] for n in (NAMES[0], NAMES[2])] == ["skipped", "failed"]
    gone = by_name["BG1024_10s01"]["message"]
    assert re.fullmatch(r"the source has moved or vanished: .*BG1024_10s01\.tif no longer .*", gone)
    lost = done.comparison[done.comparison["sample"] == "lost"].iloc[0]
    assert lost["status"] == "failed" and "its results are gone" in lost["message"]
    assert "\n" not in gone + lost["message"]
    # only the sample that was analysed again is recorded; a third run adds nothing
    assert [r["sample"] for r in reg.reanalysed(registry)] == ["BG-2023-10-17-10s"]
    reanalyze(registry, tmp_path / "re", model, SETTINGS, threaded=False)
    assert len(reg.reanalysed(registry)) == 1 and len(_csv(folder / "comparison.csv")) == 3
    assert len(_rows(registry, "samples")) == 3  # two analysed and the lost one, unchanged


def test_the_command_line(history, tmp_path, stand_in):  # noqa: F811
    out = tmp_path / "re"
    res = CliRunner().invoke(
        main,
        ["reanalyze", "--registry", str(history["registry"]), "--patient", "BK"]
        + ["--out", str(out), "--scale", "0.85", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("BK1024_10s01: tank-treading")
    (folder,) = out.iterdir()
    assert lines[-1] == (
        f"comparison: {folder / 'comparison.csv'} (1 acquisition(s): 1 ok); 1 sample(s) "
        f"recorded in {history['registry']} as reanalysis {folder.name}"
    )
    assert folder.name.endswith(reanalysis_key(StandIn(), SETTINGS))  # the CLI's parameters


def test_a_registry_of_schema_2_opens_with_an_empty_reanalysed_table(tmp_path):
    path = tmp_path / "v2.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    reg._migrate(con, upto=2)  # written before reanalyses existed
    con.execute("INSERT INTO samples (patient, sample, drawn_at) VALUES ('BG', 'S0', '2024-01-01')")
    con.close()
    assert reg.reanalysed(path) == []
    assert [(r["sample"], r["drawn_at"]) for r in reg.all_samples(path)] == [("S0", "2024-01-01")]
    with reg.connect(path) as con:
        assert reg.schema_version(con) == 3
    reg.add_samples(path, [{"patient": "BG", "sample": "S0", "tank_treading_fraction": 0.5}], "R1")
    reg.add_samples(path, [{"patient": "BG", "sample": "S0", "tank_treading_fraction": 0.6}], "R1")
    reg.add_samples(path, [{"patient": "BG", "sample": "S0", "tank_treading_fraction": 0.7}], "R2")
    assert [(r["reanalysis"], r["tank_treading_fraction"]) for r in reg.reanalysed(path)] == [
        ("R1", 0.6),
        ("R2", 0.7),
    ]
    assert reg.patient_history(path, "BG")[0]["tank_treading_fraction"] is None  # untouched
