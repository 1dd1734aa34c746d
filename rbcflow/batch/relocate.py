"""``reanalyze --search DIR``: find again the source videos that moved since they were analysed.

An archive is reorganised, a disk remounted under another path: the registry's results still
name the old path, and without this the acquisition is a ``failed`` row ("moved or
vanished"). :func:`relocate` looks, for each selected acquisition whose source no longer
exists, under the search folders for files (or frame folders) of the same name, and takes the
one whose content fingerprint (:func:`rbcflow.provenance.input_fingerprint`, as the old
``report.csv``'s ``input_hash`` holds it) is the old one: a file of the same name with other
content is never taken for it. A renamed file is not found (only names are searched: hashing
every file of an archive would read all of it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rbcflow.errors import RbcflowError
from rbcflow.pipeline import short_checksum
from rbcflow.provenance import input_fingerprint


def _by_name(roots: Iterable[Path], names: set[str]) -> dict[str, list[Path]]:
    """Every file or folder under ``roots`` whose name is in ``names``, by name (sorted)."""
    found: dict[str, list[Path]] = {}
    for root in roots:
        for here, dirs, files in os.walk(root):
            dirs.sort()
            for name in (n for n in (*dirs, *files) if n in names):
                found.setdefault(name, []).append(Path(here) / name)
    return {k: sorted(set(v)) for k, v in found.items()}


def _same_content(path: Path, short_hash: str) -> bool:
    try:
        return short_checksum(input_fingerprint(path)["hash"], len(short_hash)) == short_hash
    except (OSError, RbcflowError):
        return False


def relocate(selected: Sequence[Any], roots: Sequence[str | os.PathLike]) -> int:
    """Point each of ``selected`` (:class:`rbcflow.batch.reanalyze.Selected`) whose source is
    gone at the copy under ``roots`` with the old content (its ``moved_from`` keeps the old
    path); returns how many were found. Those not found are left as they are."""
    missing = [
        s for s in selected if s.problem is None and s.source and not Path(s.source).exists()
    ]
    if not missing or not roots:
        return 0
    candidates = _by_name([Path(r) for r in roots], {Path(s.source).name for s in missing})
    n = 0
    for s in missing:
        wanted = str(s.old.get("input_hash") or "")
        if not wanted:
            continue  # an old report without fingerprints: nothing to be sure of
        for path in candidates.get(Path(s.source).name, []):
            if _same_content(path, wanted):
                s.moved_from, s.source = s.source, str(path.absolute())
                n += 1
                break
    return n


__all__ = ["relocate"]
