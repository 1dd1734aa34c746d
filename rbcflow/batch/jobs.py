"""One acquisition as a job: what every execution engine of :func:`~rbcflow.batch.analyze_batch`
runs, in this process, in a worker process or in a Dask task.

The parent (:mod:`rbcflow.batch.analyze`) claims the acquisition's folder, takes the input's
fingerprint and decides whether it is skipped; what is left is a :class:`Job`, which
:func:`run_job` turns into an :class:`Outcome` by calling
:func:`~rbcflow.batch.acquisition.analyze_acquisition`, the one per-acquisition function. A
failure never escapes :func:`run_job`: it comes back as the outcome's one-line ``reason`` (and the
exception itself where it survives pickling), so that a failed row reads the same whichever
engine ran it, and a Dask retry is only ever a crash's.

Workers get the classifier as a :class:`ClassifierSpec` (model folders, device, whether
user-supplied models were allowed, the checksums the parent loaded), never as a pickled
network: :func:`worker_classifier` loads it once per process and refuses folders whose
checksums are no longer the parent's.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbcflow.batch.acquisition import analyze_acquisition
from rbcflow.batch.inputs import ANALYZE_NO_CELLS_HINT, disk_full
from rbcflow.classify.pending import PendingClassifier
from rbcflow.errors import NoCellsError, OutputError, RbcflowError
from rbcflow.memory import peak_rss_bytes
from rbcflow.pipeline import AnalysisSettings, ClassifierLike, ProgressFactory


@dataclass(frozen=True)
class Job:
    """One acquisition to analyse into its claimed ``folder`` (``fingerprint``: its input's)."""

    index: int
    source: Path
    out: Path
    folder: Path
    fingerprint: dict


@dataclass
class Outcome:
    """What :func:`run_job` returns: the written row (status ``ok``) or why it failed.

    row : the report row as written, or None when the acquisition failed.
    reason : the failure's one line (what the ``failed`` row's message says).
    error : the exception itself (None where it could not cross a process border).
    fatal : the output folder itself is unusable (full disk): the batch must stop.
    peak_rss : the peak resident memory of the process that ran it, bytes (VmHWM).
    pid : that process' id.
    """

    index: int
    row: dict | None = None
    reason: str | None = None
    error: BaseException | None = None
    traceback: str | None = None
    fatal: bool = False
    peak_rss: int | None = None
    pid: int = field(default_factory=os.getpid)

    @property
    def frames(self) -> int:
        """Frames analysed (0 for a failure)."""
        try:
            return int((self.row or {}).get("frames") or 0)
        except (TypeError, ValueError):
            return 0


def failure_reason(exc: BaseException) -> str:
    """The one line a ``failed`` row's message holds for ``exc``."""
    reason = str(exc) if isinstance(exc, RbcflowError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NoCellsError):
        reason += ANALYZE_NO_CELLS_HINT
    return " ".join(reason.split())


def is_fatal(exc: BaseException, out: Path) -> bool:
    """True when ``exc`` means the output folder itself is unusable (every later acquisition
    would fail too): a full disk, or an error naming the output folder."""
    return isinstance(exc, OutputError) and (disk_full(exc) or exc.path == out)


def _portable(exc: BaseException) -> BaseException | None:
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return None


def run_job(
    job: Job,
    classifier: ClassifierLike,
    settings: AnalysisSettings,
    *,
    progress: ProgressFactory | None = None,
    threaded: bool = True,
    portable: bool = False,
    analyze=None,
) -> Outcome:
    """Analyse ``job``'s acquisition into its folder; failures become the outcome's reason.

    ``portable``: the outcome crosses a process border (the exception is kept only if it
    survives pickling). ``analyze``: the per-acquisition function [default:
    :func:`~rbcflow.batch.acquisition.analyze_acquisition`; the sequential engine passes
    ``rbcflow.batch.analyze.analyze_acquisition``, which ``benchmarks/bench_concurrent.py``
    replaces with a stand-in]. ``KeyboardInterrupt`` and ``SystemExit`` pass through.
    """
    analyze = analyze or analyze_acquisition
    try:
        result = analyze(
            job.source,
            job.out,
            classifier,
            settings,
            folder=job.folder,
            fingerprint=job.fingerprint,
            progress=progress,
            threaded=threaded,
        )
        return Outcome(job.index, row=dict(result.row), peak_rss=peak_rss_bytes())
    except Exception as exc:  # one bad acquisition never stops the others
        return Outcome(
            job.index,
            reason=failure_reason(exc),
            error=_portable(exc) if portable else exc,
            traceback=traceback.format_exc(),
            fatal=is_fatal(exc, job.out),
            peak_rss=peak_rss_bytes(),
        )


# -- the classifier in a worker ------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierSpec:
    """How a worker process gets the parent's classifier.

    stage1, stage2 : the model folders (None: the shipped defaults).
    device : the torch device (``cpu``, ``cuda``, ``cuda:1``).
    allow_user : user-supplied (not shipped) model folders may be loaded.
    checksums : the stage-1 and stage-2 checksums the parent loaded; a worker loading others
        refuses to run (a folder changed in between).
    inline : a classifier other than :class:`rbcflow.classify.inference.Classifier` (a stand-in
        in tests, or a caller's own): pickled to the workers as it is.
    """

    stage1: str | None = None
    stage2: str | None = None
    device: str | None = None
    allow_user: bool = False
    checksums: tuple[str | None, str | None] = (None, None)
    inline: Any = None


def classifier_spec(classifier: ClassifierLike) -> ClassifierSpec:
    """The :class:`ClassifierSpec` that makes a worker load what ``classifier`` is."""
    inference = sys.modules.get("rbcflow.classify.inference")
    checksums = (
        getattr(classifier, "stage1_checksum", None),
        getattr(classifier, "stage2_checksum", None),
    )
    if isinstance(classifier, PendingClassifier):
        device = classifier.requested_device  # the workers load it; this process never does
    elif inference is not None and isinstance(classifier, inference.Classifier):
        device = str(classifier.device)
    else:
        return ClassifierSpec(checksums=checksums, inline=classifier)
    origins = {classifier.stage1.origin, classifier.stage2.origin}
    return ClassifierSpec(
        stage1=str(classifier.stage1_dir),
        stage2=str(classifier.stage2_dir),
        device=device,
        allow_user=origins != {"shipped"},
        checksums=checksums,
    )


_LOADED: dict[ClassifierSpec, Any] = {}


def worker_classifier(spec: ClassifierSpec) -> ClassifierLike:
    """``spec``'s classifier, loaded once per process (and kept for the process' next jobs).

    Raises
    ------
    ModelError
        A folder is damaged, is user-supplied without ``allow_user``, or no longer holds the
        model the parent loaded.
    """
    if spec.inline is not None:
        return spec.inline
    if spec in _LOADED:
        return _LOADED[spec]
    from rbcflow.classify.pending import load_checked

    clf = load_checked(spec.stage1, spec.stage2, spec.device, spec.allow_user, spec.checksums)
    _LOADED[spec] = clf
    return clf
