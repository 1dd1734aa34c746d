"""rbcflow review without a browser: the store, the order, decisions, the app's routes and
security, export-labels, and the bad inputs (each a one-line error, nothing overwritten)."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from _review_util import make_results
from click.testing import CliRunner

from rbcflow.classify.labels import fraction
from rbcflow.cli import main
from rbcflow.errors import ReviewError
from rbcflow.io.outputs import CSV_ENCODING
from rbcflow.io.sequences import read_dataset
from rbcflow.review.calibrated import estimate
from rbcflow.review.decide import record_decision
from rbcflow.review.export import export_labels
from rbcflow.review.serve import bind
from rbcflow.review.store import Results, read_review

NAME = "acq_b_"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("review") / "cache"


@pytest.fixture
def results(tmp_path, cache) -> Path:
    return make_results(tmp_path / "res", cache)


def _report(root: Path) -> dict:
    with open(root / "report.csv", encoding=CSV_ENCODING, newline="") as fh:
        return next(csv.DictReader(fh))


def _client(root: Path, token: str = "tok"):
    from starlette.testclient import TestClient

    from rbcflow.review.server import create_app

    return TestClient(create_app(root, token=token, reviewer="ann"), base_url="http://127.0.0.1")


def test_decisions_update_review_report_and_html(results):
    res = Results(results)
    acq = res.acquisition(NAME)
    calls = dict(zip(acq.tracks["track_id"], acq.tracks["label"], strict=True))
    tt_id = next(t for t, lab in calls.items() if lab == "tank-treading")
    un_id = next(t for t, lab in calls.items() if lab == "unreliable")
    record_decision(res, acq, tt_id, "flipping", "ann")
    order: list[int] = []
    figs = record_decision(res, acq, un_id, "tank-treading", "ann", queue=order)
    # the plain count beside it: one tt moved to flipping, one unreliable to tt
    n_tt = sum(lab == "tank-treading" for lab in calls.values())
    n_fl = sum(lab == "flipping" for lab in calls.values())
    assert figs["counted_fraction"] == pytest.approx(
        fraction(n_tt - 1 + 1, n_fl + 1)["tank_treading_fraction"]
    )
    # the reviewed figures are the calibrated estimate of these two reviews
    codes = np.full(len(calls), -1)
    ids = list(calls)
    codes[ids.index(tt_id)], codes[ids.index(un_id)] = 1, 0
    est = estimate(acq.calibration, codes)
    want = {"tank_treading_fraction": est["fraction"], "ci_low": est["ci_low"]}
    assert figs["reviewed_tracks"] == 2
    assert figs["tank_treading_fraction_reviewed"] == pytest.approx(want["tank_treading_fraction"])
    # the new order came back with it: every track once, the two reviewed last
    assert sorted(order) == sorted(ids) and set(order[-2:]) == {tt_id, un_id}
    review = read_review(acq)
    assert {t: r["reviewed"] for t, r in review.items()} == {
        tt_id: "flipping",
        un_id: "tank-treading",
    }
    assert review[tt_id]["called"] == "tank-treading" and review[tt_id]["reviewer"] == "ann"
    row = _report(results)
    assert int(row["reviewed_tracks"]) == 2
    assert float(row["tank_treading_fraction_reviewed"]) == pytest.approx(
        want["tank_treading_fraction"]
    )
    assert float(row["ci_low_reviewed"]) == pytest.approx(want["ci_low"])
    html = (results / NAME / "report.html").read_text(encoding="utf-8")
    assert html.count("<!-- rbcflow-review -->") == 1
    assert f"{want['tank_treading_fraction']:.1%}" in html
    # undo: the track's review is gone, the figures follow
    figs = record_decision(res, acq, un_id, None, "ann")
    assert figs["reviewed_tracks"] == 1 and un_id not in read_review(acq)
    assert int(_report(results)["reviewed_tracks"]) == 1


def test_app_token_escaping_and_traversal(results):
    c = _client(results)
    assert c.get("/").status_code == 403
    assert c.get("/?token=wrong").status_code == 403
    page = c.get("/?token=tok")
    assert page.status_code == 200
    assert "acq&lt;b&gt;" in page.text and "acq<b>" not in page.text
    # the cookie now set lets the page's links work; a POST still needs the header
    assert c.get(f"/a/{NAME}").status_code == 200
    assert (
        c.post(f"/a/{NAME}/decide", json={"track_id": 9, "reviewed": "flipping"}).status_code == 403
    )
    # a literal ../ is folded by the URL itself (to the index); encoded ones reach the app
    for bad in ("..%2F..", "%2e%2e", "acq_b_%2F..%2F..", "report.csv", "..%2F..%2Fetc"):
        r = c.get(f"/a/{bad}")
        assert r.status_code == 404, bad
    assert c.get(f"/a/{NAME}/strip/..%2F..%2Freport.png").status_code == 404
    for bad in ("..", "../..", f"{NAME}/..", "/etc", ".", ""):
        with pytest.raises(ReviewError, match="no acquisition"):
            Results(results).acquisition(bad)
    assert c.get(f"/a/{NAME}/strip/1.png").headers["content-type"] == "image/png"
    data = c.get(f"/a/{NAME}").text
    assert '"acquisition": "acq\\u003cb\\u003e"' in data  # the page's JSON cannot close a tag
    h = {"X-Rbcflow-Token": "tok"}
    assert (
        c.post(f"/a/{NAME}/decide", json={"track_id": 9, "reviewed": "x"}, headers=h).status_code
        == 400
    )
    assert (
        c.post(
            f"/a/{NAME}/decide", json={"track_id": 999, "reviewed": "flipping"}, headers=h
        ).status_code
        == 409
    )
    ok = c.post(f"/a/{NAME}/decide", json={"track_id": 9, "reviewed": "tank-treading"}, headers=h)
    assert ok.status_code == 200 and ok.json()["figures"]["reviewed_tracks"] == 1
    assert c.get(f"/a/{NAME}/state").json()["review"] == {"9": "tank-treading"}
    # a missing strip: the page says so, the route answers 404, the rest works
    (results / NAME / "strips" / "10.png").unlink()
    fresh = _client(results)
    assert '"id": 10, ' in fresh.get(f"/a/{NAME}?token=tok").text
    assert '"has_strip": false' in fresh.get(f"/a/{NAME}?token=tok").text
    assert fresh.get(f"/a/{NAME}/strip/10.png?token=tok").status_code == 404
    # another host name (DNS rebinding) is refused
    assert c.get("/?token=tok", headers={"Host": "evil.example"}).status_code == 400


def test_two_writers_lose_nothing(results):
    res = Results(results)
    ids = list(res.acquisition(NAME).tracks["track_id"])

    def work(part):
        acq = Results(results).acquisition(NAME)
        for t in part:
            record_decision(res, acq, int(t), "unreliable", "tab")

    threads = [threading.Thread(target=work, args=(ids[i::2],)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(read_review(res.acquisition(NAME))) == sorted(int(t) for t in ids)
    assert int(_report(results)["reviewed_tracks"]) == len(ids)


def test_bad_inputs_are_one_line_and_overwrite_nothing(results, tmp_path):
    with pytest.raises(ReviewError, match="not a results folder"):
        Results(tmp_path)
    with pytest.raises(ReviewError, match="not a folder"):
        Results(tmp_path / "nope")
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.csv").write_text("source,status,tank_treading_fraction\na.avi,ok,0.5\n")
    with pytest.raises(ReviewError, match="older rbcflow"):
        Results(old)
    # a review.csv edited by hand with a bad row: the error names the line; nothing rewritten
    res = Results(results)
    acq = res.acquisition(NAME)
    head = "track_id,called,reviewed,reviewer,reviewed_at\n"
    bad = head + "9,flipping,flipping,a,x\n10,flipping,maybe,a,x\n"
    acq.review_path.write_text(bad)
    before = (results / "report.csv").read_bytes()
    with pytest.raises(ReviewError, match="line 3: label 'maybe'") as err:
        record_decision(res, acq, 11, "flipping", "ann")
    assert "\n" not in str(err.value)
    assert acq.review_path.read_text() == bad and (results / "report.csv").read_bytes() == before
    acq.review_path.write_text(
        "track_id,called,reviewed,reviewer,reviewed_at\n4242,a,flipping,a,x\n"
    )
    with pytest.raises(ReviewError, match="no track 4242"):
        read_review(acq)
    # the CLI: one line on stderr, exit 1
    r = CliRunner().invoke(main, ["review", str(tmp_path / "nope"), "--no-browser"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "not a folder" in r.output


def test_port_in_use_is_one_line(results):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ReviewError, match=f"port {port} on 127.0.0.1 is in use"):
            bind("127.0.0.1", port)
        r = CliRunner().invoke(main, ["review", str(results), "--no-browser", "--port", str(port)])
        assert r.exit_code == 1 and "is in use" in r.output and r.output.count("\n") == 1
    finally:
        holder.close()


def test_export_labels_round_trip(results, tmp_path):
    res = Results(results)
    acq = res.acquisition(NAME)
    with pytest.raises(ReviewError, match="no reviewed track"):
        export_labels([results], tmp_path / "none")
    record_decision(res, acq, 9, "tank-treading", "ann")
    record_decision(res, acq, 10, "flipping", "ann")
    record_decision(res, acq, 3, "unreliable", "ann")
    out = tmp_path / "set"
    r = CliRunner().invoke(main, ["export-labels", str(results), "--out", str(out)])
    assert r.exit_code == 0, r.output
    seqs = {s.name: s for s in read_dataset(out)}
    assert {k: s.label for k, s in seqs.items()} == {"acq<b>_3": 2, "acq<b>_9": 0, "acq<b>_10": 1}
    assert seqs["acq<b>_9"].acquisition == "acq<b>"
    n9 = int(acq.tracks.set_index("track_id").at[9, "classified_frames"])
    assert len(seqs["acq<b>_9"].frames) == n9  # short track: every crop kept
    # exists: refused; a missing strip: refused before anything is written
    r = CliRunner().invoke(main, ["export-labels", str(results), "--out", str(out)])
    assert r.exit_code == 1 and "--force" in r.output
    (acq.strip_path(10)).unlink()
    with pytest.raises(ReviewError, match="strip is missing"):
        export_labels([results], tmp_path / "set2")
    assert not (tmp_path / "set2").exists()


def test_strips_are_the_tracks_crops(results):
    """analyze kept one strip per track, as long as the track (up to the cap), and a
    thumbnail; sizes within the documented budget."""
    import cv2

    acq = Results(results).acquisition(NAME)
    for tid, n in zip(acq.tracks["track_id"], acq.tracks["classified_frames"], strict=True):
        img = cv2.imread(str(acq.strip_path(tid)), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (31, 31 * min(int(n), 150))
    thumb = cv2.imread(str(results / NAME / "thumbnail.png"), cv2.IMREAD_GRAYSCALE)
    assert thumb.shape == (360, 480)
    per_track = sum(p.stat().st_size for p in (results / NAME / "strips").glob("*.png")) / len(
        acq.tracks
    )
    assert per_track < 40_000


def test_version_stays_light():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from rbcflow.cli import main\n"
            "try: main(['review', '--help'])\nexcept SystemExit: pass\n"
            "heavy = ('starlette', 'uvicorn', 'pandas', 'jinja2')\n"
            "print(sorted(m for m in heavy if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_reanalysis_sets_the_old_review_aside(results, cache):
    from _review_util import StandIn

    from rbcflow.batch import analyze_batch

    res = Results(results)
    record_decision(res, res.acquisition(NAME), 9, "flipping", "ann")
    src = cache.parent / f"{cache.name}-input"
    analyze_batch([src], results, StandIn(), threaded=False, force=True)
    aside = list((results / NAME).glob("review.replaced-*.csv"))
    assert len(aside) == 1
    assert aside[0].read_text(CSV_ENCODING).splitlines()[1].startswith("9,")
    assert read_review(Results(results).acquisition(NAME)) == {}
