"""What the batch checks about an input before opening it, and what it tidies after a failure.

- :func:`input_problem`: why a named input cannot be analysed, known from ``os.stat`` and
  ``os.access`` alone (missing, unreadable, a FIFO, a device, a socket, a looping link), so that
  a FIFO or a link to ``/dev/zero`` is a failed row and is never opened (opening a FIFO blocks
  until a writer comes; reading ``/dev/zero`` never ends).
- :func:`drop_unused_folder`: an acquisition that failed before writing anything leaves no
  empty results folder behind.
- :func:`disk_full`: a full disk stops the batch (every later acquisition would fail the same
  way); any other output problem of one acquisition's folder is that acquisition's failed row.
- :func:`merge_skipped`: ``OUT/skipped.csv``, what discovery met and did not analyse, and why.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from rbcflow.io.discover import SPECIAL_KINDS
from rbcflow.io.folders import SOURCE_MARKER
from rbcflow.io.outputs import remove_stale_temporaries

SKIPPED_NAME = "skipped.csv"
"""Run-level list of what discovery skipped (``path``, ``reason``), merged across runs."""

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def input_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be analysed, from its metadata alone (nothing is opened), or None.

    Examples
    --------
    >>> input_problem("/no/such/file.avi")
    'no such file or folder'
    >>> input_problem("/dev/null")
    'a character device, not a video file: not opened'
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops: not opened"
        if exc.errno == errno.ENOENT:
            return "a broken symbolic link" if os.path.islink(path) else "no such file or folder"
        return f"cannot be examined: {exc.strerror or exc}"
    kind = SPECIAL_KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is not None:
        return f"{kind}, not a video file: not opened"
    need = os.R_OK | os.X_OK if stat.S_ISDIR(st.st_mode) else os.R_OK
    if not os.access(path, need):
        return "permission denied: rbcflow cannot read it"
    return None


def drop_unused_folder(folder: Path | None) -> bool:
    """Remove ``folder`` when it holds nothing but its ``.source`` marker, temporaries a killed
    write left and empty sub-folders (``strips/`` made before the analysis failed); True when
    it was removed."""
    if folder is None:
        return False
    try:
        remove_stale_temporaries(folder)
        subfolders = []
        for root, dirs, files in os.walk(folder):
            if [f for f in files if not (Path(root) == folder and f == SOURCE_MARKER)]:
                return False
            subfolders.extend(Path(root) / d for d in dirs)
        for sub in sorted(subfolders, key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        (folder / SOURCE_MARKER).unlink(missing_ok=True)
        folder.rmdir()
    except OSError:
        return False
    return True


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or an exhausted quota."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


ANALYZE_NO_CELLS_HINT = (
    "; analyze sets the detection threshold itself: check that the video shows moving cells "
    "in focus, and see what `rbcflow track` finds in it"
)
"""What ``analyze`` adds to the front end's "no cell track found" (``rbcflow track`` adds its
``--threshold``: each command names only the options it has)."""


def merge_skipped(
    path: Path, rows: Iterable[Mapping[str, str]], taken: Iterable[str | os.PathLike]
) -> int:
    """Merge this run's skipped ``rows`` into ``path`` (``OUT/skipped.csv``); call it under the
    output folder's lock. Rows of the same path are replaced; rows whose path this run took as
    an acquisition (``taken``) are dropped. Returns the number of rows written (the file is
    written only when there is something to list or to change)."""
    import pandas as pd

    from rbcflow.io.outputs import CSV_ENCODING, write_csv_atomic

    new = [{"path": str(r["path"]), "reason": str(r["reason"])} for r in rows]
    taken_set = {str(Path(t).absolute()) for t in taken} | {str(t) for t in taken}
    old: list[dict] = []
    if path.is_file():
        try:
            old = pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding=CSV_ENCODING
            ).to_dict("records")
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            old = []
    fresh = {r["path"] for r in new}
    kept = [
        {"path": r.get("path", ""), "reason": r.get("reason", "")}
        for r in old
        if r.get("path") not in fresh and r.get("path") not in taken_set
    ]
    merged = kept + new
    if not merged and not old:
        return 0
    write_csv_atomic(path, pd.DataFrame(merged, columns=["path", "reason"]))
    return len(merged)
