"""``analyze --scheduler ADDRESS|local``: each acquisition one task on a Dask distributed cluster.

:class:`DaskEngine` is the engine :func:`rbcflow.batch.analyze_batch` uses with a scheduler:

- inputs and outputs are on a file system every worker sees under the same paths; the client
  (this process) claims the folders and decides what is skipped, exactly as without Dask;
- each task (:func:`analyze_task`) runs :func:`~rbcflow.batch.jobs.run_job` on one acquisition
  and writes its folder there, through the one atomic writer, ``run.json`` last; it returns the
  row, and the client merges ``report.csv`` in input order;
- a worker that dies mid-task leaves a folder without ``run.json`` (nothing that looks
  finished): the scheduler runs the task again elsewhere (``distributed.scheduler.
  allowed-failures``, 3 by default), and the rerun starts by removing the old marker and the
  dead writer's temporaries (:func:`rbcflow.batch.acquisition.prepare_folder`). A task that
  raises outside the analysis (an acquisition's own failure is a ``failed`` row, never a
  raise) is retried ``ParallelConfig.dask_retries`` times;
- ``local`` starts a :class:`distributed.LocalCluster` of ``ParallelConfig.local_workers``
  processes with ``local_threads`` thread each, closed at the end.

Dask is imported only here, only when a scheduler is named; without the ``dask`` extra the
batch stops at once with one line saying how to install it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from contextlib import ExitStack, nullcontext

from rbcflow.batch.jobs import ClassifierSpec, Job, Outcome, run_job, worker_classifier
from rbcflow.batch.parallel import gpu_settings
from rbcflow.errors import RbcflowError
from rbcflow.pipeline import AnalysisSettings, ProgressFactory
from rbcflow.run_settings import ParallelConfig
from rbcflow.threads import set_process_cores, worker_cores

MISSING = "--scheduler needs Dask, an optional extra: pip install 'rbcflow[dask]'"
CONNECT_TIMEOUT_S = 30

_load_lock = threading.Lock()


def import_distributed():
    """The ``distributed`` module, or :class:`RbcflowError` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise RbcflowError(MISSING) from None
    return distributed


def connect(address: str, cfg: ParallelConfig | None = None):
    """``(client, cluster)`` for ``address`` (``cluster`` is None unless ``local`` started one).

    Raises
    ------
    RbcflowError
        Dask is not installed, or no scheduler answers at ``address``.
    """
    cfg = cfg or ParallelConfig()
    distributed = import_distributed()
    if address.strip().lower() == "local":
        cluster = distributed.LocalCluster(
            n_workers=cfg.local_workers,
            threads_per_worker=cfg.local_threads,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S), None
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise RbcflowError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


def analyze_task(
    job: Job, spec: ClassifierSpec, settings: AnalysisSettings, threaded: bool, sharing: int = 1
) -> Outcome:
    """One acquisition on a Dask worker: the worker's classifier (loaded once per process),
    its share of the host's cores, then :func:`~rbcflow.batch.jobs.run_job`.

    ``sharing``: tasks that may classify on one GPU at once (the client passes the cluster's
    worker threads, the worst case of all of them on one GPU): with a CUDA classifier the
    batch is sized by :func:`rbcflow.batch.parallel.gpu_settings` for that share."""
    try:
        from distributed import get_worker

        nthreads = int(get_worker().state.nthreads)
    except Exception:  # run outside a worker (tests, a synchronous client)
        nthreads = 1
    set_process_cores(worker_cores(nthreads))
    with _load_lock:  # tasks of one worker share its classifier
        classifier = worker_classifier(spec)
    settings = gpu_settings(settings, classifier, sharing)
    return run_job(job, classifier, settings, threaded=threaded, portable=True)


class DaskEngine:
    """Jobs as tasks of a Dask cluster (see the module's notes).

    ``capacity``: tasks kept submitted (two per worker thread of the cluster, so the client's
    planning never holds the cluster up). ``progress`` makes one bar of the frames finished.
    """

    def __init__(
        self,
        address: str,
        spec: ClassifierSpec,
        settings: AnalysisSettings,
        threaded: bool = True,
        progress: ProgressFactory | None = None,
        cfg: ParallelConfig | None = None,
    ):
        self.cfg = cfg or ParallelConfig()
        self.client, self.cluster = connect(address, self.cfg)
        self.distributed = import_distributed()
        self.spec, self.settings, self.threaded = spec, settings, threaded
        self.threads = threads = sum(self.client.nthreads().values()) or 1
        self.capacity = max(2, 2 * threads)
        self.futures: dict = {}  # future -> job
        self.completed = self.distributed.as_completed()
        self.peak_rss: dict[int, int] = {}
        self._stack = ExitStack()
        bar = progress(None, f"frames ({threads} Dask threads)", "frame") if progress else None
        self._bar = self._stack.enter_context(bar or nullcontext()) or (lambda n=1: None)

    def submit(self, job: Job) -> None:
        future = self.client.submit(
            analyze_task,
            job,
            self.spec,
            self.settings,
            self.threaded,
            self.threads,
            key=f"rbcflow-analyze-{job.index}-{uuid.uuid4().hex[:12]}",
            pure=False,
            retries=self.cfg.dask_retries,
        )
        self.futures[future] = job
        self.completed.add(future)

    def wait(self) -> list[Outcome]:
        """The outcome of the next task to finish (the cluster's failure of it as a failed
        outcome: the other acquisitions go on)."""
        future = next(self.completed)
        job = self.futures.pop(future)
        try:
            outcome = future.result()
        except Exception as exc:  # raised after its retries, or lost with too many workers
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            outcome = Outcome(job.index, reason=f"the Dask task failed: {reason}")
        if outcome.peak_rss:
            self.peak_rss[outcome.pid] = max(self.peak_rss.get(outcome.pid, 0), outcome.peak_rss)
        self._bar(outcome.frames)
        return [outcome]

    def close(self, cancel: bool = False) -> None:
        """Cancel what is left (``cancel``), close the client and a cluster started here."""
        try:
            if cancel and self.futures:
                self.client.cancel(list(self.futures), force=True)
        finally:
            self._stack.close()
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
