"""The ``rbcflow`` script's quick exit (:mod:`rbcflow.cli.script`): the status, the output and
the atexit handlers survive it; the module teardown is skipped; a live thread is waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rbcflow.cli.script import exit_status


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a piped stdout
    return subprocess.run(  # is block-buffered then: the exit must flush it
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("bad input", 1)])
def test_exit_status_is_the_interpreters(code, status, capsys):
    assert exit_status(code) == status
    assert capsys.readouterr().err == ("bad input\n" if isinstance(code, str) else "")


def test_a_failed_analysis_keeps_its_status_its_output_and_its_report(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "rbcflow", "analyze", str(tmp_path / "missing.avi"), "-q"]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        timeout=300,
    )
    assert res.returncode == 1
    assert "missing: FAILED" in res.stdout and "1 failed" in res.stdout
    assert "no such file" in res.stdout
    assert (tmp_path / "out" / "report.csv").read_text().count("\n") == 2  # header + the row


def test_help_output_arrives_whole_through_a_pipe():
    res = _python("from rbcflow.cli import run\nrun(['--help'])")
    assert res.returncode == 0
    assert res.stdout.startswith("Usage: rbcflow")
    assert "reanalyze" in res.stdout  # the last lines of the command table too


def test_atexit_handlers_run_and_the_teardown_is_skipped(tmp_path):
    marker = tmp_path / "atexit.txt"
    res = _python(
        """
        import atexit, sys

        class Noisy:  # a module global: finalised by an ordinary exit's module teardown
            def __del__(self):
                print("TEARDOWN")

        keep = Noisy()
        atexit.register(lambda: open(sys.argv[1], "w").write("ran"))
        atexit.register(print, "BYE")  # printed after the command: only the exit flushes it
        from rbcflow.cli import run
        run(["--version"])
        """,
        str(marker),
    )
    assert res.returncode == 0, res.stderr
    assert "rbcflow, version" in res.stdout
    assert marker.read_text() == "ran"
    assert res.stdout.endswith("BYE\n")
    assert "TEARDOWN" not in res.stdout


def test_a_live_thread_gets_the_ordinary_exit(tmp_path):
    marker = tmp_path / "thread.txt"
    res = _python(
        """
        import sys, threading, time

        def late():
            time.sleep(0.5)
            open(sys.argv[1], "w").write("finished")

        threading.Thread(target=late).start()
        from rbcflow.cli import run
        run(["--version"])
        """,
        str(marker),
    )
    assert res.returncode == 0, res.stderr
    assert marker.read_text() == "finished"  # os._exit would have killed the thread


def test_a_daemon_thread_does_not_hold_the_exit_back():
    res = _python(
        """
        import threading, time

        class Noisy:
            def __del__(self):
                print("TEARDOWN")

        keep = Noisy()
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        from rbcflow.cli import run
        run(["--version"])
        """
    )
    assert res.returncode == 0, res.stderr
    assert "rbcflow, version" in res.stdout
    assert "TEARDOWN" not in res.stdout  # the quick exit, not the ordinary one
