"""The one place where rbcflow writes files: atomically, and under a lock per output folder.

Nothing lost
------------
Every file is written under a temporary name in its destination folder (``.NAME.PID.RAND.tmp``),
flushed and fsynced, then renamed over the destination with :func:`os.replace`, which is atomic
on POSIX and Windows file systems: a reader (or a killed run) sees either the previous complete
file or the new complete one, never a half-written file under the final name. A folder of
results is built the same way (:func:`atomic_folder`): under ``.NAME.partial-PID`` beside its
final name, renamed when complete.

Nothing injected
----------------
Text cells of CSV tables that a spreadsheet would run as formulas are made inert
(:func:`neutralise_formula`) and restored when rbcflow reads them back.

Every other module writes through these functions; none renames temporaries of its own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from rbcflow.errors import OutputError

CSV_ENCODING = "utf-8-sig"
"""``report.csv`` and the per-acquisition tables are UTF-8 with a byte-order mark, so that Excel
shows non-ASCII file names correctly; pandas, R and LibreOffice read the mark transparently
(Python's csv module needs ``encoding="utf-8-sig"``)."""


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(
    path: str | os.PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    fsync: bool = True,
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it is fsynced and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : destination file.
    mode : ``"w"`` (text) or ``"wb"`` (bytes).
    encoding, newline : as for :func:`open` (text mode only).

    Raises
    ------
    OutputError
        If the folder cannot be written (permissions, full disk).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_output(Path(d) / "a.txt") as fh:
    ...         _ = fh.write("done")
    ...     sorted(p.name for p in Path(d).iterdir())
    ['a.txt']
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    binary = "b" in mode
    try:
        fh = open(
            tmp,
            mode,
            encoding=None if binary else encoding,
            newline=None if binary else newline,
        )
    except OSError as exc:
        raise OutputError(f"cannot write here: {exc.strerror or exc}", path.parent) from exc
    try:
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write: {exc.strerror or exc}", path) from exc
        raise
    if fsync:
        _fsync_dir(path.parent)


_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave its files alone
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files that :func:`atomic_output` left in ``folder`` when its process was
    killed (their writer's process id is no longer running); returns how many were removed.

    Files of a live process (another rbcflow writing to the same folder) are left alone.
    """
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for p in entries:
        m = _TMP_NAME.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_output(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write strict JSON (no NaN) atomically, indented for people; returns the path."""
    text = json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False)
    return write_text_atomic(path, text + "\n")


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is run as a formula by spreadsheet programs."""


def neutralise_formula(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert by a leading ``'``.

    File names reach the report (``acquisition``, ``source``, ``message``): a file called
    ``=HYPERLINK(...).avi`` must not become a live formula when a technician opens report.csv
    in Excel (OWASP "CSV injection"). Numbers are never text cells here, so negative values
    are untouched; :func:`restore_formula` undoes it when rbcflow reads the file back.

    Examples
    --------
    >>> neutralise_formula("=1+1"), neutralise_formula("run 3"), neutralise_formula(-0.5)
    ("'=1+1", 'run 3', -0.5)
    """
    # A cell already starting with quotes before a trigger gets one more, so that reading
    # back (which removes exactly one) returns it unchanged.
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def restore_formula(value: Any) -> Any:
    """The inverse of :func:`neutralise_formula`."""
    if not isinstance(value, str) or value[:1] != "'":
        return value
    if value.lstrip("'").startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value


def write_csv_atomic(path: str | os.PathLike, df: Any) -> Path:
    """Write a table as CSV atomically; returns the path.

    No index, empty cells for missing values, RFC 4180 CRLF line ends (so that Python's csv
    writer quotes any field holding a line break: file names may), UTF-8 with BOM (see
    :data:`CSV_ENCODING`); text cells that a spreadsheet would run as formulas are made inert
    (:func:`neutralise_formula`).
    """
    text = [c for c in df.columns if df[c].dtype == object]
    if text:
        df = df.copy()
        for c in text:
            df[c] = df[c].map(neutralise_formula)
    with atomic_output(path, "w", encoding=CSV_ENCODING, newline="") as fh:
        df.to_csv(fh, index=False, lineterminator="\r\n")
    return Path(path)


def write_table_atomic(path: str | os.PathLike, df: Any, **to_csv: Any) -> Path:
    """Write a DataFrame with :meth:`pandas.DataFrame.to_csv` options of the caller's choosing
    (files in other tools' formats: the authors' ``dataset.csv``, truth tables), atomically."""
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, **to_csv)
    return Path(path)


def write_png_atomic(path: str | os.PathLike, image: np.ndarray, *, fsync: bool = True) -> Path:
    """Encode ``image`` (2-D uint8/uint16) as PNG with OpenCV and write it atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OutputError("cannot encode PNG", path)
    return write_bytes_atomic(path, buf.tobytes(), fsync=fsync)


def partial_name(final: str | os.PathLike) -> Path:
    """The temporary name of a file or folder being built for ``final`` by this process."""
    final = Path(final)
    return final.parent / f".{final.name}.partial-{os.getpid()}"


def replace_path(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a complete ``tmp`` (file or folder) to ``final``, replacing what was there."""
    tmp, final = Path(tmp), Path(final)
    try:
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(tmp, final)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", final) from exc
    _fsync_dir(final.parent)


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or folder if present (a temporary left by a failed write)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


@contextmanager
def atomic_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``final``; on clean exit it replaces
    ``final``; on an exception it is removed and ``final`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_folder(Path(d) / "res") as tmp:
    ...         _ = write_text_atomic(tmp / "a.txt", "x")
    ...     sorted(str(p.relative_to(d)) for p in Path(d).rglob("*"))
    ['res', 'res/a.txt']
    """
    final = Path(final)
    tmp = partial_name(final)
    remove_path(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create: {exc.strerror or exc}", tmp) from exc
    try:
        yield tmp
        replace_path(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise
