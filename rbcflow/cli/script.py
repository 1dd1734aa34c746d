"""The ``rbcflow`` script and ``python -m rbcflow``: the command group, then a quick exit.

When a command has finished, everything it writes is on disk (outputs are written atomically
and closed before the command returns) and its child processes have ended. What is left of an
ordinary interpreter exit is tearing down the ~1,800 modules that numpy, pandas, numba,
OpenCV and openpyxl bring, and collecting their objects: 0.5-0.7 s of the wall
time of ``rbcflow analyze`` on a 2-core machine, ~8 % of a 1,200-frame acquisition (measured:
docs/method.md, *Speed and memory*). :func:`run` therefore ends the process with
:func:`os._exit` once

- the :mod:`atexit` handlers have run (logging's flush, multiprocessing's clean-up of its
  children, coverage tools: everything a normal exit does besides the teardown), and
- standard output and standard error are flushed.

If a non-daemon thread other than the main one is still running, the exit is the ordinary
one: Python waits for such threads, and killing one might lose what it was writing. Daemon
threads (the classifier's worker thread is one) an ordinary exit kills too.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from rbcflow.cli.main import main


def exit_status(code: object) -> int:
    """The process's exit status for a :class:`SystemExit` code, as the interpreter makes it
    (None: 0; an int: itself; anything else is printed on stderr and gives 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _others_alive() -> bool:
    main_thread = threading.main_thread()
    return any(t is not main_thread and not t.daemon for t in threading.enumerate())


def quick_exit(code: object = 0) -> NoReturn:
    """End the process now: atexit handlers, flushed stdio, :func:`os._exit` (no teardown).

    Falls back to :func:`sys.exit` while another non-daemon thread is alive, or where this
    interpreter has no ``atexit._run_exitfuncs`` (a CPython detail, present from 3.0 to 3.13).
    """
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if _others_alive() or run_exitfuncs is None:
        sys.exit(code)
    status = exit_status(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``) or a closed stream
            status = status or 120  # what the interpreter returns when its final flush fails
    os._exit(status)


def run(args: Sequence[str] | None = None) -> NoReturn:
    """``rbcflow ARGS``: :func:`rbcflow.cli.main.main` in click's standalone mode, then
    :func:`quick_exit` with its status."""
    try:
        main.main(args, prog_name="rbcflow")
    except SystemExit as exc:
        quick_exit(exc.code)
    quick_exit(0)
