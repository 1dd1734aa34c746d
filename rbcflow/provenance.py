"""Provenance of a result: what was read, with which parameters and models, when, on what.

Every analysed acquisition gets a ``run.json`` beside its tables (see :func:`run_record`). The
same record decides whether a re-run may skip an acquisition: it is skipped when its input
fingerprint, parameter id and model checksums all match (:func:`skip_key`).

Input fingerprint
-----------------
Inputs up to :data:`FULL_HASH_LIMIT` bytes (files, or a frame folder's files together) are
hashed whole with SHA-256, streamed in 1 MiB chunks. Larger inputs (an uncompressed 1024x768
AVI of 20 s is ~1 GB) get a *sampled* SHA-256 over their size and :data:`SAMPLE_BLOCKS` blocks
of 1 MiB at evenly spaced offsets, first and last included: reading ~16 MiB instead of the whole
file keeps the fingerprint under 50 ms where the full hash would cost 0.5-1 s of a 20 s budget
and read the file twice. It catches truncation (the size), a new recording under the same name
(sensor noise makes every frame's bytes differ, and blocks land in every part of the file) and
re-encoding; it would miss an edit confined to the unsampled bytes of one frame, which no
acquisition workflow produces. ``hash_method`` in the record says which was used. The
modification time is not part of it, so a copied file is recognised as the same input.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import platform
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rbcflow import __version__, config
from rbcflow.errors import VideoReadError

FULL_HASH_LIMIT = 256 * 1024**2
"""Inputs up to this many bytes are hashed whole; larger ones are sampled (see module doc)."""
SAMPLE_BLOCKS = 16
"""Number of 1 MiB blocks read from an input larger than :data:`FULL_HASH_LIMIT`."""
_CHUNK = 1024**2

RUN_JSON_VERSION = 1
"""Version of the ``run.json`` layout (bumped when keys change meaning)."""


def now_iso() -> str:
    """Current local time, ISO 8601 with offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _update_full(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def _update_sampled(h: Any, path: Path, size: int, blocks: int) -> None:
    h.update(size.to_bytes(8, "little"))
    if size <= blocks * _CHUNK:
        _update_full(h, path)
        return
    with open(path, "rb") as fh:
        last = size - _CHUNK
        for i in range(blocks):
            fh.seek(round(i * last / (blocks - 1)))
            h.update(fh.read(_CHUNK))


def _folder_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files directly in ``folder``, sorted by name (a frame folder)."""
    return sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def input_fingerprint(path: str | os.PathLike, *, full_limit: int = FULL_HASH_LIMIT) -> dict:
    """Size and content hash of an input file or frame folder.

    Parameters
    ----------
    path : str or PathLike
        A video file, or a folder whose (non-hidden, regular) files are an acquisition's frames.
    full_limit : int
        Inputs of at most this many bytes are hashed whole, larger ones sampled.

    Returns
    -------
    dict with ``path`` (absolute), ``kind`` (``file`` or ``folder``), ``size_bytes``,
    ``n_files``, ``hash`` (``sha256:HEX``) and ``hash_method`` (``sha256`` or
    ``sha256-sampled``).

    Raises
    ------
    VideoReadError
        If the input cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "a.avi"
    ...     _ = p.write_bytes(b"abc")
    ...     input_fingerprint(p)["hash"][:15]
    'sha256:ba7816bf'
    """
    path = Path(path)
    try:
        if path.is_dir():
            files = _folder_files(path)
            kind = "folder"
        else:
            files = [path]
            kind = "file"
        sizes = [f.stat().st_size for f in files]
        total = sum(sizes)
        h = hashlib.sha256()
        sampled = total > full_limit
        for f, size in zip(files, sizes, strict=True):
            if kind == "folder":
                # the names are part of a folder's identity (frame order comes from them)
                h.update(f.name.encode("utf-8", "surrogateescape") + b"\0")
                h.update(size.to_bytes(8, "little"))
            if sampled:
                # spread the sample budget over the files, at least the first and last MiB each
                blocks = max(2, SAMPLE_BLOCKS * size // max(total, 1))
                _update_sampled(h, f, size, blocks)
            else:
                _update_full(h, f)
    except OSError as exc:
        raise VideoReadError(f"cannot read to fingerprint it: {exc.strerror or exc}", path) from exc
    return {
        "path": str(path.absolute()),
        "kind": kind,
        "size_bytes": int(total),
        "n_files": len(files),
        "hash": "sha256:" + h.hexdigest(),
        "hash_method": "sha256-sampled" if sampled else "sha256",
    }


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def platform_info() -> dict:
    """Interpreter, operating system, CPU count and versions of the libraries results depend on.

    Versions come from package metadata: torch is not imported for this.
    """
    packages = (
        "numpy",
        "scipy",
        "pandas",
        "opencv-python-headless",
        "scikit-image",
        "torch",
        "tifffile",
        "imageio",
    )
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": {p: _package_version(p) for p in packages},
    }


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON accepts: NaN/inf/NA -> None, numpy scalars and arrays
    -> Python numbers and lists, paths and other objects -> str, tuples -> lists.

    Examples
    --------
    >>> import numpy as np
    >>> json_safe({"a": np.float64("nan"), "b": (np.int64(2), Path("x"))})
    {'a': None, 'b': [2, 'x']}
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    return str(obj)


def skip_key(record: Mapping[str, Any]) -> tuple:
    """What must match for a previous result to stand: input hash, parameters, models."""
    models = record.get("models") or {}
    return (
        (record.get("input") or {}).get("hash"),
        record.get("params_id"),
        (models.get("stage1") or {}).get("checksum"),
        (models.get("stage2") or {}).get("checksum"),
    )


def run_record(
    *,
    input_info: Mapping[str, Any],
    parameters: Mapping[str, Any],
    params_id: str,
    models: Mapping[str, Any],
    started: str,
    finished: str,
    warnings: list[str],
    result: Mapping[str, Any],
    timings: Mapping[str, float] | None = None,
    outputs: list[str] | None = None,
) -> dict:
    """The ``run.json`` record of one analysed acquisition (JSON-safe).

    Parameters
    ----------
    input_info : dict from :func:`input_fingerprint` (plus, e.g., frames, fps, frame shape).
    parameters : all parameters, as plain dicts (``config.to_dict``), by stage.
    params_id : short hash of ``parameters`` and the pipeline generation (``config.params_id``;
        the generation, :data:`rbcflow.config.PIPELINE_GENERATION`, is recorded too).
    models : ``{"stage1": {"checksum", "dir"}, "stage2": {...}}``.
    started, finished : ISO 8601 times (:func:`now_iso`).
    warnings : problems that did not stop the analysis (truncated file, short video ...).
    result : the acquisition's report row.
    timings : seconds per step.
    outputs : file names written beside ``run.json``.
    """
    return json_safe(
        {
            "run_json_version": RUN_JSON_VERSION,
            "rbcflow_version": __version__,
            "started": started,
            "finished": finished,
            "input": dict(input_info),
            "params_id": params_id,
            "pipeline_generation": config.PIPELINE_GENERATION,
            "parameters": dict(parameters),
            "models": dict(models),
            "warnings": list(warnings),
            "timings_s": dict(timings or {}),
            "outputs": list(outputs or []),
            "platform": platform_info(),
            "result": dict(result),
        }
    )


def read_run_json(path: str | os.PathLike) -> dict | None:
    """A previous ``run.json``, or None if it is absent or unreadable (then not trusted)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_run_json(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write a run record atomically (temporary name, fsync, rename); returns the path."""
    from rbcflow.io.outputs import write_json_atomic

    return write_json_atomic(path, json_safe(record))
