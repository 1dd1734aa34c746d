"""Output folders: checked before any work, one folder per source, one lock per folder.

- :func:`check_output_dir` refuses an output folder that cannot be created, written or that has
  too little free space, before a single frame is read.
- :func:`claim_output` gives each input its own ``OUT/NAME`` folder, marked with the source's
  absolute path (``.source``), so that a second input with the same name (``x/a.avi``,
  ``y/a.avi``) gets ``a-2`` and a re-run finds each source's folder again.
- :func:`output_lock` serialises the read-merge-write of shared files (``report.csv``) between
  processes writing into the same folder (filelock: a maintained, cross-platform lock file, in
  place of hand-written ``fcntl``/``msvcrt`` code).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rbcflow.errors import OutputError
from rbcflow.io.discover import acquisition_name
from rbcflow.io.outputs import write_text_atomic
from rbcflow.run_settings import OutputConfig

SOURCE_MARKER = ".source"
"""File in an acquisition's output folder holding the absolute path of its source."""
LOCK_NAME = ".rbcflow.lock"

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def check_output_dir(out_dir: str | os.PathLike, min_free: int | None = None) -> Path:
    """Create ``out_dir`` if needed and check it can be written and has space, before any work.

    Parameters
    ----------
    out_dir : the output folder.
    min_free : bytes that must be free there [default: ``OutputConfig().min_free_bytes``].

    Raises
    ------
    OutputError
        Not creatable, not writable, or less than ``min_free`` bytes free.
    """
    min_free = OutputConfig().min_free_bytes if min_free is None else min_free
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder: {exc.strerror or exc}", out) from exc
    if not out.is_dir():
        raise OutputError("the output path exists and is not a folder", out)
    probe = out / f".rbcflow-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f"the output folder is not writable: {exc.strerror or exc}", out) from exc
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(out).free
    if free < min_free:
        raise OutputError(
            f"only {free / 1024**2:.0f} MiB free in the output folder; rbcflow "
            f"needs at least {min_free / 1024**2:.0f} MiB",
            out,
        )
    return out


def safe_folder_name(name: str) -> str:
    """A folder name for ``name`` that is valid on Linux, macOS and Windows and not hidden.

    Examples
    --------
    >>> safe_folder_name("..a<b>:c"), safe_folder_name("...")
    ('a_b__c', 'acquisition')
    """
    safe = _UNSAFE.sub("_", name).strip().lstrip(".").rstrip(". ")
    return safe[:120] or "acquisition"


def claim_output(out_dir: Path, source: Path) -> Path:
    """The folder of ``out_dir`` that holds ``source``'s results (created and marked if new).

    ``NAME``, else ``NAME-2``, ``NAME-3``...: the first that is free or already belongs to the
    same source (by absolute path, in the ``.source`` marker). A file, a link or an unlistable
    folder in the way is passed over. Call it under :func:`output_lock` when other runs may
    write into ``out_dir`` (two of them could otherwise claim one free name together).
    """
    base = safe_folder_name(acquisition_name(source))
    key = str(source.absolute())
    for i in range(1, 10_000):
        folder = out_dir / (base if i == 1 else f"{base}-{i}")
        marker = folder / SOURCE_MARKER
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir() or folder.is_symlink():
                continue  # a file or a link in the way: never write through it
            try:
                owner = marker.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                owner = None
            if owner == key:
                return folder
            try:
                used = owner is not None or any(folder.iterdir())
            except OSError:
                used = True  # unlistable: not ours to use
            if used:
                continue  # another input's results (or something else): never reuse it
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(marker, key + "\n")
        except OSError as exc:
            raise OutputError(f"cannot create: {exc.strerror or exc}", folder) from exc
        return folder
    raise OutputError(f"too many acquisitions named {base!r}", out_dir)


@contextmanager
def output_lock(out_dir: str | os.PathLike, timeout: float = 600.0) -> Iterator[None]:
    """Hold the lock of ``out_dir`` (``.rbcflow.lock``) for the read-merge-write of shared files.

    Another process holding it makes this one wait, up to ``timeout`` seconds, then
    :class:`~rbcflow.errors.OutputError`.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(out_dir) / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise OutputError(
            f"another rbcflow run has held the folder's lock for {timeout:.0f} s", out_dir
        ) from exc
    except OSError as exc:
        raise OutputError(f"cannot lock: {exc.strerror or exc}", out_dir) from exc
    try:
        yield
    finally:
        lock.release()
