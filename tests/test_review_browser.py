"""rbcflow review in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) driven
by Playwright, against the real server started as ``rbcflow review`` in a subprocess.

The tests press the keys and check that the page, ``review.csv`` and ``report.csv`` agree;
one kills the server mid-review and opens the page again. These tests fail (they do not
skip) without Chromium: CI installs it (``.ci/run``). Set ``RBCFLOW_SCREENSHOT=PATH`` to keep
the screenshot taken of the acquisition page.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _review_util import make_results

from rbcflow.io.outputs import CSV_ENCODING
from rbcflow.review.decide import review_queue
from rbcflow.review.store import Results, read_review

CHROMIUM = Path(os.environ.get("RBCFLOW_CHROMIUM", "/usr/bin/chromium"))
NAME = "acq_b_"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium; "
            "or set RBCFLOW_CHROMIUM): it is not there"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("browser") / "cache"


class Server:
    """``rbcflow review DIR --no-browser --port 0`` in a subprocess; ``url`` has the token."""

    def __init__(self, root: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        rbcflow = shutil.which("rbcflow", path=str(Path(sys.executable).parent))
        self.proc = subprocess.Popen(
            [rbcflow, "review", str(root), "--no-browser", "--port", "0", "--reviewer", "ann"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.url = ""
        for line in self.proc.stdout:
            m = re.search(r"open (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        assert self.url, "the server printed no URL"

    def page_url(self, name: str) -> str:
        base, token = self.url.split("/?token=")
        return f"{base}/a/{name}?token={token}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()


def _review(root: Path) -> dict[int, dict]:
    path = root / NAME / "review.csv"
    if not path.exists():
        return {}
    with open(path, encoding=CSV_ENCODING, newline="") as fh:
        return {int(r["track_id"]): r for r in csv.DictReader(fh)}


def _report(root: Path, reviewed: int) -> dict:
    """report.csv's row once it shows ``reviewed`` tracks (the server's writer thread rewrites
    it right after the decisions: review.csv is saved first)."""
    deadline = time.monotonic() + 10
    while True:
        with open(root / "report.csv", encoding=CSV_ENCODING, newline="") as fh:
            row = next(csv.DictReader(fh))
        if row["reviewed_tracks"] == str(reviewed) or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _saved(page, n: int) -> None:
    # selectors, not script: the page's Content-Security-Policy forbids evaluating strings
    page.wait_for_selector(f"body[data-saved='{n}']", state="attached", timeout=10_000)


def _current(page) -> int:
    return int(page.locator("body").get_attribute("data-current"))


def _open(browser, server: Server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.page_url(NAME))
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=10_000)
    return page, errors


def test_keys_page_and_files_agree(browser, tmp_path, cache):
    root = make_results(tmp_path / "res", cache)
    server = Server(root)
    try:
        page = browser.new_page()
        page.goto(server.url)
        assert page.locator("#acquisitions td a").inner_text() == "acq<b>"  # escaped, shown
        page.locator("#acquisitions td a").click()
        page.wait_for_selector("body[data-ready='1']", state="attached")
        for key in ("t", "f", "u", "space", "undo", "previous", "next"):
            assert key in page.locator("#keys").inner_text()
        first = _current(page)
        page.keyboard.press("t")
        _saved(page, 1)
        second = _current(page)
        assert second != first
        page.keyboard.press(" ")  # the call is right
        _saved(page, 2)
        third = _current(page)
        page.keyboard.press("u")
        _saved(page, 3)
        page.keyboard.press("Backspace")  # undo the last decision: back on that track
        _saved(page, 4)
        assert _current(page) == third
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowLeft")
        assert _current(page) == third
        review = _review(root)
        assert set(review) == {first, second}
        assert review[first]["reviewed"] == "tank-treading" and review[first]["reviewer"] == "ann"
        assert review[second]["reviewed"] == review[second]["called"]
        row = _report(root, 2)
        assert int(row["reviewed_tracks"]) == 2
        frac = float(row["tank_treading_fraction_reviewed"])
        assert page.locator("#frac").inner_text() == f"{100 * frac:.1f}%"
        low, high = float(row["ci_low_reviewed"]), float(row["ci_high_reviewed"])
        assert f"{100 * low:.1f}%" in page.locator("#ci").inner_text()
        assert f"{100 * high:.1f}%" in page.locator("#ci").inner_text()
        assert page.locator("#progress").inner_text().startswith("2 / ")
        # the crops play: the canvas is drawn, the thumbnail and the track's path are there
        page.wait_for_selector("#trackpath polyline", state="attached")
        assert page.evaluate("document.getElementById('thumb').naturalWidth") == 480
        page.wait_for_selector("#loopcap:has-text('frames at')", state="attached")
        assert "frames at 60.0 frames/s" in page.locator("#loopcap").inner_text()
        a = page.locator("#loop").screenshot()
        page.wait_for_timeout(120)
        assert page.locator("#loop").screenshot() != a  # the loop plays
        shot = Path(os.environ.get("RBCFLOW_SCREENSHOT") or tmp_path / "review.png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # the mouse works too
        page.locator("#keys button[data-key='f']").click()
        _saved(page, 5)
        assert _review(root)[third]["reviewed"] == "flipping"
    finally:
        server.kill()


def test_killed_server_and_two_tabs_lose_nothing(browser, tmp_path, cache):
    root = make_results(tmp_path / "res", cache)
    server = Server(root)
    page, errors = _open(browser, server)
    decided = []
    for i, key in enumerate(("t", "f", "t")):
        # each decision saved before the next is read off the page: until its answer comes,
        # the page may still move on to the server's new best track
        decided.append(_current(page))
        page.keyboard.press(key)
        _saved(page, i + 1)
    server.kill()  # mid-review, no goodbye
    assert sorted(_review(root)) == sorted(decided)
    server = Server(root)
    try:
        page, errors = _open(browser, server)
        assert page.locator("#progress").inner_text().startswith("3 / ")
        assert _current(page) not in decided  # resumes on the first track not reviewed
        assert page.locator("#tracklist li.done").count() == 3
        # a second tab decides other tracks; the first keeps going; nothing is lost
        other, _ = _open(browser, server)
        other.keyboard.press("ArrowDown")
        tab2 = _current(other)
        other.keyboard.press("u")
        _saved(other, 1)
        tab1 = _current(page)
        page.keyboard.press("f")
        _saved(page, 1)
        review = _review(root)
        assert set(review) == {*decided, tab1, tab2}
        assert review[tab2]["reviewed"] == "unreliable" and review[tab1]["reviewed"] == "flipping"
        assert int(_report(root, 5)["reviewed_tracks"]) == 5
        assert not errors, errors
    finally:
        server.kill()


def _listed(page) -> list[int]:
    return page.locator("#tracklist li").evaluate_all("els => els.map(e => Number(e.id.slice(3)))")


def test_a_decision_reranks_the_queue(browser, tmp_path, cache):
    """After each decision the page shows the server's new best track (the first open track
    of the order recomputed from review.csv), and its list is that order; at least one
    decision moves a track ahead of the one the old order had next."""
    root = make_results(tmp_path / "res", cache)
    server = Server(root)
    try:
        page, errors = _open(browser, server)
        acq = Results(root).acquisition(NAME)
        assert _current(page) == review_queue(acq, {})[0]
        moved = 0
        for i, key in enumerate(("u", "t", "f", "u", "t", "f")):
            before = _listed(page)
            page.keyboard.press(key)
            _saved(page, i + 1)
            review = read_review(acq)
            order = review_queue(acq, review)
            best = next(t for t in order if t not in review)
            assert _current(page) == best
            assert _listed(page) == order
            moved += best != next(t for t in before if t not in review)
        assert moved >= 1
        shot = Path(os.environ.get("RBCFLOW_SCREENSHOT_RERANK") or tmp_path / "rerank.png")
        page.screenshot(path=str(shot), full_page=False)
        assert not errors, errors
    finally:
        server.kill()


def test_a_slow_answer_leaves_the_shown_track_in_place(browser, tmp_path, cache):
    """When the server's new order comes later than the page's 250 ms (here each decision's
    request is held 400 ms), the page stays on the track it moved to at once (the next open
    track after the decided one in the order it had), so that a key pressed meanwhile is never
    applied to a track that replaced the shown one under it; the list still takes the new
    order."""
    root = make_results(tmp_path / "res", cache)
    server = Server(root)
    try:
        page, errors = _open(browser, server)
        acq = Results(root).acquisition(NAME)

        def held(route):
            time.sleep(0.4)
            route.continue_()

        page.route("**/decide", held)
        differs = 0
        for i, key in enumerate(("u", "t", "f", "u", "t", "f")):
            before, decided = _listed(page), _current(page)
            page.keyboard.press(key)
            _saved(page, i + 1)
            review = read_review(acq)
            after_it = before[before.index(decided) + 1 :]
            shown = next(t for t in after_it if t not in review)
            order = review_queue(acq, review)
            assert _current(page) == shown
            assert _listed(page) == order
            differs += shown != next(t for t in order if t not in review)
        assert differs >= 1  # the server's best was another track at least once: the page stayed
        assert not errors, errors
    finally:
        server.kill()
