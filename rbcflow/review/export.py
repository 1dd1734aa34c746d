"""Reviewed tracks -> a labelled set in the authors' format, ready for ``rbcflow train``.

Each reviewed track becomes the sequence ``ACQUISITION_TRACKID`` (so
:func:`rbcflow.io.sequences.acquisition_of` gives back its acquisition, and training splits by
acquisition), its frames the strip ``analyze`` kept (``strips/TRACKID.png``), its label the
reviewed one (0 tank-treading, 1 flipping, 2 unreliable). The set is built under a temporary
name and renamed when complete; ``export.json`` beside ``dataset.csv`` records where every
sequence came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rbcflow import schema
from rbcflow.errors import OutputError, ReviewError
from rbcflow.io.outputs import atomic_folder, write_json_atomic
from rbcflow.io.sequences import Sequence, strip_to_frames, write_dataset
from rbcflow.provenance import now_iso
from rbcflow.review.store import Results, read_review


def _strip(path: Path):
    import cv2

    if not path.is_file():
        raise ReviewError("strip is missing (analysed by an older rbcflow? analyse again)", path)
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ReviewError("strip is not a readable PNG", path)
    try:
        return strip_to_frames(img)
    except ValueError as exc:
        raise ReviewError(str(exc), path) from None


def reviewed_sequences(results_dirs: Iterable[str | os.PathLike], record: list[dict]):
    """Check every reviewed track first (all strips readable, names unique), then return the
    list of ``(name, strip path, label)``; ``record`` gets one entry per acquisition."""
    items: list[tuple[str, Path, int]] = []
    seen: dict[str, Path] = {}
    for d in results_dirs:
        results = Results(d)
        for name in results.names():
            acq = results.acquisition(name)
            review = read_review(acq)
            if not review:
                continue
            reviewers = sorted({r["reviewer"] for r in review.values() if r["reviewer"]})
            record.append(
                {
                    "results": str(results.root),
                    "acquisition": acq.name,
                    "output": name,
                    "source": acq.row.get("source"),
                    "tracks": len(review),
                    "reviewers": reviewers,
                }
            )
            for tid in sorted(review):
                seq = f"{acq.name}_{tid}"
                if seq in seen:
                    raise ReviewError(
                        f"two reviewed acquisitions give the sequence name {seq} "
                        f"(also in {seen[seq]}): export them separately",
                        acq.folder,
                    )
                seen[seq] = acq.folder
                path = acq.strip_path(tid)
                _strip(path)  # check it now: nothing is written unless every strip reads
                items.append((seq, path, schema.LABEL_CODES[review[tid]["reviewed"]]))
    return items


def export_labels(
    results_dirs: Iterable[str | os.PathLike], out: str | os.PathLike, *, force: bool = False
) -> dict:
    """Write the reviewed tracks of ``results_dirs`` to ``out`` (``dataset.csv`` + ``img/`` +
    ``export.json``); returns the ``export.json`` record.

    Raises
    ------
    ReviewError
        A folder is not a results folder, a ``review.csv`` has bad rows, a strip is missing,
        or no track was reviewed; nothing is written then.
    OutputError
        ``out`` holds a set already and ``force`` is not set.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError("exists and is not empty (use --force to replace it)", out)
    sources: list[dict] = []
    items = reviewed_sequences(results_dirs, sources)
    if not items:
        raise ReviewError("no reviewed track in these results (run rbcflow review first)")

    def sequences() -> Iterator[Sequence]:
        for name, path, label in items:
            yield Sequence(name=name, frames=_strip(path), label=label)

    with atomic_folder(out) as tmp:
        n = write_dataset(tmp, sequences())
        counts = {schema.LABEL_NAMES[k]: sum(1 for i in items if i[2] == k) for k in (0, 1, 2)}
        record = {"written": now_iso(), "sequences": n, "labels": counts, "sources": sources}
        write_json_atomic(tmp / "export.json", record)
    return record
