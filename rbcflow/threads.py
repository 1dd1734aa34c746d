"""Thread budgets: how many threads torch, OpenCV and numba may use, counted together.

``rbcflow analyze`` runs three busy threads of its own: the front end's reading thread
(decoding plus the OpenCV half of the detection), its main thread (refinement, tracking,
crops) and the classifier's worker (:class:`rbcflow.classify.stream.TrackClassifier`). Left to
their defaults, torch and OpenCV each start one more thread per core on top of these, and on a
small machine those pools fight the pipeline's own threads for the cores (torch's OpenMP
threads spin at their barriers while they wait). :func:`analyze_budget` gives each library its
share; :func:`applied` sets it and restores the previous settings afterwards, so
classification that runs alone (``rbcflow classify``, ``evaluate``) keeps the libraries'
defaults.

The rule (measured on 2 cores, see ``docs/architecture.md`` and ``benchmarks/bench_analyze.py``):
the pipeline's own threads take 3 cores' worth of work at most; what is left goes to torch's
intra-op pool, capped at :data:`TORCH_CAP` (the two small networks on batches of 32 tracks do not
scale further); OpenCV's pool gets nothing beyond the calling thread below
:data:`OPENCV_MIN_CORES` cores (its calls already run beside the other threads), numba's
kernels are serial (``nogil``, not ``parallel``) and get one thread, and so does the BLAS
behind numpy and scipy (OpenBLAS, set through threadpoolctl): the front end's matrix products
are small, and OpenBLAS's idle workers spin after each one (on 2 cores they took ~1 CPU-s of a
4,800-frame ``analyze``, 3.7 % of its samples in ``blas_thread_server``). So 2 cores: torch 1,
OpenCV 1, BLAS 1; 16 cores: torch 4, OpenCV 9 (the rest, for the filters of large frames),
BLAS 1.

Importing this module loads nothing heavy: a library is configured only if it is already
imported (who uses it has imported it by then); one that another thread is still importing
counts as not imported, since its functions may not exist yet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PIPELINE_THREADS = 3
"""Busy threads of ``analyze`` itself: reading, front-end main thread, classifier worker."""

TORCH_CAP = 4
"""Most torch intra-op threads beside the front end."""

OPENCV_MIN_CORES = 8
"""Below this many cores OpenCV runs single-threaded during ``analyze``."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_PROCESS_CORES: int | None = None


def worker_cores(workers: int, cores: int | None = None) -> int:
    """Each of ``workers`` processes' share of the cores: ``cores // workers``, at least 1.

    Examples
    --------
    >>> worker_cores(2, 2), worker_cores(3, 16), worker_cores(4, 2)
    (1, 5, 1)
    """
    n = available_cores() if cores is None else max(1, int(cores))
    return max(1, n // max(1, int(workers)))


def set_process_cores(cores: int | None) -> None:
    """Make :func:`analyze_budget` plan for ``cores`` cores in this process (a worker of
    ``analyze --workers N`` gets :func:`worker_cores`, so N workers share the machine without
    oversubscribing it); None: the process' affinity again."""
    global _PROCESS_CORES
    _PROCESS_CORES = None if cores is None else max(1, int(cores))


def budget_cores() -> int:
    """The cores :func:`analyze_budget` plans for: the worker's share, else
    :func:`available_cores`."""
    return _PROCESS_CORES if _PROCESS_CORES is not None else available_cores()


@dataclass(frozen=True)
class ThreadBudget:
    """Threads each library may use (0: leave that library as it is).

    cores : the cores the budget was made for.
    torch : torch's intra-op threads (``torch.set_num_threads``).
    opencv : OpenCV's threads (``cv2.setNumThreads``; 1 runs each call in the calling thread).
    numba : numba's threads (``numba.set_num_threads``), for parallel kernels.
    blas : the threads of every BLAS library loaded (OpenBLAS, MKL...: numpy's, scipy's),
        through ``threadpoolctl``.
    """

    cores: int
    torch: int = 0
    opencv: int = 0
    numba: int = 0
    blas: int = 0


def analyze_budget(
    cores: int | None = None, torch_threads: int = 0, opencv_threads: int = 0
) -> ThreadBudget:
    """The budget of ``analyze`` (front end and classifier at once) on ``cores`` cores
    [default: :func:`budget_cores`, a worker's share of the machine].

    ``torch_threads`` / ``opencv_threads`` > 0 override the rule (the benchmark compares
    settings with them; :class:`rbcflow.run_settings.StreamConfig` passes them on).

    Examples
    --------
    >>> analyze_budget(2)
    ThreadBudget(cores=2, torch=1, opencv=1, numba=1, blas=1)
    >>> analyze_budget(16)
    ThreadBudget(cores=16, torch=4, opencv=9, numba=1, blas=1)
    >>> analyze_budget(2, torch_threads=2).torch
    2
    """
    n = budget_cores() if cores is None else max(1, int(cores))
    spare = max(0, n - PIPELINE_THREADS)
    torch_n = max(1, min(TORCH_CAP, 1 + spare))
    cv_n = 1 if n < OPENCV_MIN_CORES else max(1, n - PIPELINE_THREADS - torch_n)
    return ThreadBudget(
        cores=n,
        torch=torch_threads if torch_threads > 0 else torch_n,
        opencv=opencv_threads if opencv_threads > 0 else cv_n,
        numba=1,
        blas=1,
    )


def imported(name: str):
    """The module ``name`` if it is fully imported, else None.

    ``sys.modules`` holds a module from the moment its import starts; while another thread is
    still running it (torch's takes about a second), its ``__spec__._initializing`` is true
    and attributes such as ``torch.get_num_threads`` may be missing.
    """
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def current() -> ThreadBudget:
    """The libraries' present settings (0 for a library not imported)."""
    torch = imported("torch")
    cv2 = imported("cv2")
    numba = imported("numba")
    return ThreadBudget(
        cores=available_cores(),
        torch=torch.get_num_threads() if torch is not None else 0,
        opencv=cv2.getNumThreads() if cv2 is not None else 0,
        numba=_numba_threads(numba),
        blas=blas_threads(),
    )


def blas_threads() -> int:
    """The most threads any loaded BLAS library may use (0 before numpy is imported)."""
    if imported("numpy") is None:
        return 0
    import threadpoolctl

    counts = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return max(counts, default=0)


def limit_blas(threads: int) -> None:
    """Let every loaded BLAS library use ``threads`` threads (nothing before numpy is imported:
    a library loaded later keeps its default)."""
    if imported("numpy") is None or threads < 1:
        return
    import threadpoolctl

    threadpoolctl.threadpool_limits(limits=int(threads), user_api="blas")


def _numba_threads(numba) -> int:
    if numba is None:
        return 0
    try:
        return int(numba.get_num_threads())
    except Exception:  # pragma: no cover - numba without a threading layer
        return 0


def apply(budget: ThreadBudget) -> ThreadBudget:
    """Set each imported library to its share of ``budget``; returns the previous settings.

    torch's setting is global and also read by threads that have not run a torch operation
    yet: set it before starting the worker that classifies.
    """
    before = current()
    torch = imported("torch")
    cv2 = imported("cv2")
    numba = imported("numba")
    if torch is not None and budget.torch > 0 and budget.torch != before.torch:
        torch.set_num_threads(budget.torch)
    if cv2 is not None and budget.opencv > 0 and budget.opencv != before.opencv:
        cv2.setNumThreads(budget.opencv)
    if numba is not None and budget.numba > 0 and budget.numba != before.numba:
        try:
            numba.set_num_threads(min(budget.numba, numba.config.NUMBA_NUM_THREADS))
        except Exception:  # pragma: no cover - numba without a threading layer
            pass
    if budget.blas > 0 and budget.blas != before.blas:
        limit_blas(budget.blas)
    return before


@contextmanager
def applied(budget: ThreadBudget) -> Iterator[ThreadBudget]:
    """``with applied(budget):`` the libraries use ``budget``; the previous settings after."""
    before = apply(budget)
    try:
        yield budget
    finally:
        apply(before)
