"""``analyze --workers N``: acquisitions analysed at once in worker processes.

:class:`PoolEngine` is the engine :func:`rbcflow.batch.analyze_batch` uses with ``workers >
1``: a :class:`concurrent.futures.ProcessPoolExecutor` whose processes each

- start by *spawning* (:data:`START_METHOD`), not forking: a forked child inherits the parent's
  torch, OpenMP and OpenCV thread pools in whatever state they were, which deadlocks (measured
  in the front end's process prototype, docs/architecture.md); spawn is also what macOS and
  Windows do, so one code path serves all three;
- load the classifier once (:func:`_init`, given a :class:`~rbcflow.batch.jobs.ClassifierSpec`:
  model folders, device, whether user-supplied models were allowed, the parent's checksums);
- plan their threads for ``cores // workers`` cores (:func:`rbcflow.threads.worker_cores`, set
  before torch is imported), so that N workers do not oversubscribe the machine;
- with ``--device cuda``, classify batches sized by :func:`rbcflow.batch.workers.gpu_batch_tracks`
  from the GPU's free memory divided among the workers;
- ignore Ctrl-C: the parent receives it, cancels what has not started and terminates the
  workers (:meth:`PoolEngine.close`); a folder a worker was writing then has no ``run.json``
  and is analysed again on the next run;
- survive one of them dying (killed, out of memory): the pool is restarted and the
  acquisitions it was analysing are given to the new one; the one at work in the dead process
  (each worker says which job it starts) is a ``failed`` row once it was lost more than
  ``ParallelConfig.worker_restarts`` times, so a video that kills its worker cannot stop the
  batch (:meth:`PoolEngine._restart`);
- run :func:`~rbcflow.batch.jobs.run_job` (the one per-acquisition function) on each job, and
  send their frame counts to the parent, whose bar shows the frames per second of all workers.

The parent keeps everything that is shared: folder claims, skip decisions and ``report.csv``
(:mod:`rbcflow.batch.analyze`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager, nullcontext

from rbcflow.batch.jobs import ClassifierSpec, Job, Outcome, run_job, worker_classifier
from rbcflow.batch.workers import gpu_batch_tracks
from rbcflow.errors import RbcflowError
from rbcflow.memory import reuse_freed_memory
from rbcflow.pipeline import AnalysisSettings, ProgressFactory
from rbcflow.run_settings import ParallelConfig
from rbcflow.threads import set_process_cores, worker_cores

START_METHOD = "spawn"
"""How worker processes start (see the module's notes: never ``fork``)."""

WORKER_DIED = (
    "worker processes kept ending unexpectedly before they could analyse anything (killed, or "
    "out of memory: try fewer --workers); "
    "the acquisitions that finished are kept, run the same command again to resume"
)
JOB_LOST = (
    "the worker process analysing it ended unexpectedly {n} times (killed, or out of memory: "
    "try fewer --workers, or analyse it alone)"
)

_STATE: dict = {}  # the worker process' classifier, settings and frame queue


def gpu_settings(settings: AnalysisSettings, classifier, workers: int) -> AnalysisSettings:
    """``settings`` with a classification batch that fits this worker's part of the GPU
    (unchanged on the CPU)."""
    device = getattr(classifier, "device", None)
    if getattr(device, "type", "cpu") != "cuda":
        return settings
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    batch = gpu_batch_tracks(free, workers, wanted=settings.stream.batch_tracks)
    return dataclasses.replace(
        settings, stream=dataclasses.replace(settings.stream, batch_tracks=batch)
    )


def _init(
    spec: ClassifierSpec, settings, threaded: bool, cores: int, workers: int, frames, started=None
):
    """Worker start-up: Ctrl-C to the parent, the thread share, the classifier (once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(cores)  # before torch or numpy start their pools
    set_process_cores(cores)
    reuse_freed_memory()
    _STATE.update(frames=frames, started=started, threaded=threaded, error=None)
    try:
        classifier = worker_classifier(spec)
        _STATE.update(classifier=classifier, settings=gpu_settings(settings, classifier, workers))
    except Exception as exc:  # every job answers with it (a broken pool would hide it)
        _STATE["error"] = exc


@contextmanager
def _frames_progress(total, desc, unit):
    """The worker's progress factory: frame counts to the parent's queue, ~4 times a second."""
    frames = _STATE.get("frames")
    if desc != "frames" or frames is None:
        yield lambda n=1: None
        return
    pending = [0, time.monotonic()]

    def step(n: int = 1) -> None:
        pending[0] += n
        now = time.monotonic()
        if now - pending[1] >= 0.25:
            frames.put(pending[0])
            pending[:] = [0, now]

    try:
        yield step
    finally:
        if pending[0]:
            frames.put(pending[0])


def _run(job: Job) -> Outcome:
    started = _STATE.get("started")
    if started is not None:  # so that the parent knows whom to blame if this process dies
        started.put((os.getpid(), job.index))
    error = _STATE.get("error")
    if error is not None:
        from rbcflow.batch.jobs import _portable, failure_reason

        return Outcome(job.index, reason=failure_reason(error), error=_portable(error), fatal=True)
    return run_job(
        job,
        _STATE["classifier"],
        _STATE["settings"],
        progress=_frames_progress,
        threaded=_STATE["threaded"],
        portable=True,
    )


class PoolEngine:
    """Jobs on ``workers`` spawned processes (see the module's notes).

    ``capacity``: jobs the batch keeps submitted (two per worker, so that none waits for the
    parent between acquisitions). ``progress`` makes one bar of all workers' frames.
    """

    def __init__(
        self,
        workers: int,
        spec: ClassifierSpec,
        settings: AnalysisSettings,
        threaded: bool = True,
        progress: ProgressFactory | None = None,
    ):
        self.workers = workers
        self.capacity = 2 * workers
        self.futures: dict[Future, Job] = {}
        self.peak_rss: dict[int, int] = {}  # worker pid -> its peak resident memory, bytes
        self.attempts: dict[int, int] = {}  # job index -> times it was lost with a worker
        self.restarts = 0  # pools lost in a row with no job to blame
        self.limit = ParallelConfig().worker_restarts
        self._initargs = (spec, settings, threaded, worker_cores(workers), workers)
        self._start()
        self._stack = ExitStack()
        bar = progress(None, f"frames ({workers} workers)", "frame") if progress else nullcontext()
        self._bar = self._stack.enter_context(bar) or (lambda n=1: None)

    def _start(self) -> None:
        """A fresh pool and frame queue (a worker killed while writing to the old queue may
        have left its lock taken)."""
        ctx = mp.get_context(START_METHOD)
        self.frames = ctx.Queue()
        self.started = ctx.SimpleQueue()  # (pid, job index): written at once, no feeder thread
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init,
            initargs=(*self._initargs, self.frames, self.started),
        )

    def submit(self, job: Job) -> None:
        self.futures[self.pool.submit(_run, job)] = job

    def wait(self) -> list[Outcome]:
        """The outcomes of the jobs that finished first (at least one).

        A worker that died breaks the whole pool: every job at work in it is given to a fresh
        pool (:meth:`_restart`), or becomes a failed row once it was lost
        ``ParallelConfig.worker_restarts`` times."""
        while True:
            done, _ = wait(list(self.futures), timeout=0.25, return_when=FIRST_COMPLETED)
            self._drain()
            if not done:
                continue
            outcomes, broken = [], False
            for future in done:
                job = self.futures.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    self.futures[future] = job  # lost with the pool: _restart resubmits it
                    continue
                if outcome.peak_rss:
                    self.peak_rss[outcome.pid] = max(
                        self.peak_rss.get(outcome.pid, 0), outcome.peak_rss
                    )
                outcomes.append(outcome)
            if broken:
                outcomes.extend(self._restart())
                self._drain()
            if outcomes:
                return outcomes

    def _restart(self) -> list[Outcome]:
        """After a worker died: a fresh pool for the jobs that were lost; the job that was at
        work in the dead process is charged, and is a failed row once it was lost more than
        ``ParallelConfig.worker_restarts`` times."""
        processes = dict(getattr(self.pool, "_processes", None) or {})
        lost = sorted(self.futures.values(), key=lambda j: j.index)
        self.futures.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)  # the others are terminated, joined
        started = self._started()
        culprits = {
            started[pid]
            for pid, proc in processes.items()
            if pid in started and proc.exitcode not in (None, -signal.SIGTERM)
        }
        culprits &= {job.index for job in lost}
        if culprits:
            self.restarts = 0
        else:  # died starting, or between jobs: nothing to charge
            self.restarts += 1
            if self.restarts > self.limit:
                raise RbcflowError(WORKER_DIED)
        self._close_queues()
        self._start()
        failed = []
        for job in lost:
            n = self.attempts[job.index] = self.attempts.get(job.index, 0) + (job.index in culprits)
            if n > self.limit:
                failed.append(Outcome(job.index, reason=JOB_LOST.format(n=n)))
            else:
                self.submit(job)
        return failed

    def _started(self) -> dict[int, int]:
        """Worker pid -> the job it started last (as the workers told :attr:`started`)."""
        by_pid: dict[int, int] = {}
        try:
            while not self.started.empty():
                pid, index = self.started.get()
                by_pid[pid] = index
        except (OSError, EOFError, ValueError):
            pass
        return by_pid

    def _drain(self) -> None:
        n = 0
        while True:
            try:
                n += self.frames.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                break
        if n:
            self._bar(n)

    def close(self, cancel: bool = False) -> None:
        """Shut the workers down; ``cancel``: now (Ctrl-C), terminating any still at work."""
        try:
            if cancel:
                for future in self.futures:
                    future.cancel()
                processes = list((getattr(self.pool, "_processes", None) or {}).values())
                for p in processes:
                    if p.is_alive():
                        p.terminate()
                for p in processes:
                    p.join(timeout=10)
                self.pool.shutdown(wait=False, cancel_futures=True)
            else:
                self.pool.shutdown(wait=True)
                self._drain()
        finally:
            self._stack.close()
            self._close_queues()

    def _close_queues(self) -> None:
        self.frames.close()
        self.frames.cancel_join_thread()
        self.started.close()
