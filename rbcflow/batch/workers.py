"""How many workers, and how large a GPU batch each may send: pure functions, nothing heavy.

- :func:`resolve_workers`: ``--workers N|auto`` -> a count.
- :func:`auto_workers`: the cores available, capped so that the workers' peak memory
  (:attr:`rbcflow.run_settings.ParallelConfig.worker_peak_mib` each, measured) fits in the
  memory the machine has free (``MemAvailable``), which tests pass in.
- :func:`gpu_batch_tracks`: with ``--device cuda`` and several CPU workers, the tracks each
  worker may classify in one batch so that all the workers' batches fit the GPU's free memory
  together (``torch.cuda.mem_get_info``).
"""

from __future__ import annotations

from rbcflow.errors import RbcflowError
from rbcflow.memory import available_memory
from rbcflow.run_settings import ParallelConfig
from rbcflow.threads import available_cores

MIB = 1024**2


def auto_workers(
    cores: int | None = None,
    available_bytes: int | None = None,
    per_worker_bytes: int | None = None,
) -> int:
    """The workers of ``--workers auto``: one per core, as many as fit the memory.

    Parameters
    ----------
    cores : cores available [default: this process' affinity, :func:`available_cores`].
    available_bytes : memory free for the workers [default: :func:`available_memory`; when
        unknown, the cores decide alone].
    per_worker_bytes : one worker's peak [default: ``ParallelConfig().worker_peak_mib``].

    Examples
    --------
    >>> auto_workers(cores=16, available_bytes=64 * 1024**3, per_worker_bytes=1024**3)
    16
    >>> auto_workers(cores=16, available_bytes=3 * 1024**3, per_worker_bytes=1024**3)
    3
    >>> auto_workers(cores=16, available_bytes=10 * 1024**2, per_worker_bytes=1024**3)
    1
    """
    n = available_cores() if cores is None else max(1, int(cores))
    mem = available_memory() if available_bytes is None else int(available_bytes)
    per = ParallelConfig().worker_peak_mib * MIB if per_worker_bytes is None else per_worker_bytes
    if mem is not None and per > 0:
        n = min(n, mem // per)
    return max(1, int(n))


def resolve_workers(workers: int | str | None) -> int:
    """``workers`` (a count >= 1, a numeral, or ``"auto"``) as a count.

    Raises
    ------
    RbcflowError
        Neither a positive count nor ``auto``.

    Examples
    --------
    >>> resolve_workers(1), resolve_workers("3")
    (1, 3)
    """
    if workers is None:
        return 1
    if isinstance(workers, str):
        text = workers.strip().lower()
        if text == "auto":
            return auto_workers()
        if not text.isdigit():
            raise RbcflowError(f"--workers must be a count or 'auto', not {workers!r}")
        workers = int(text)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RbcflowError(f"--workers must be a count >= 1 or 'auto', not {workers!r}")
    return workers


def gpu_batch_tracks(
    free_bytes: int,
    workers: int,
    bytes_per_track: int | None = None,
    *,
    wanted: int,
    share: float | None = None,
) -> int:
    """Tracks per classification batch for each of ``workers`` processes sharing one GPU.

    Each worker gets ``share`` of the GPU's free memory divided by the workers, and a batch
    of tracks costing ``bytes_per_track`` each must fit in it; never more than ``wanted`` (the
    batch the worker would use alone), never fewer than 1.

    Parameters
    ----------
    free_bytes : the GPU's free memory (``torch.cuda.mem_get_info()[0]``).
    workers : processes classifying on that GPU at once.
    bytes_per_track : GPU memory one track's classification takes [default:
        ``ParallelConfig().gpu_bytes_per_track``].
    wanted : the batch without a memory limit (``StreamConfig.batch_tracks``).
    share : the part of the free memory the batches may take [default:
        ``ParallelConfig().gpu_memory_share``; the rest is left for each worker's CUDA
        context and the allocator's rounding].

    Examples
    --------
    >>> gpu_batch_tracks(8 * 1024**3, 4, 2 * 1024**2, wanted=32)  # ample: the usual batch
    32
    >>> gpu_batch_tracks(100 * 1024**2, 4, 2 * 1024**2, wanted=32)  # 100 MiB * 0.8 / 4 / 2
    10
    >>> gpu_batch_tracks(1024**2, 8, 2 * 1024**2, wanted=32)
    1
    """
    cfg = ParallelConfig()
    per_track = cfg.gpu_bytes_per_track if bytes_per_track is None else int(bytes_per_track)
    share = cfg.gpu_memory_share if share is None else float(share)
    budget = max(0.0, float(free_bytes)) * share / max(1, int(workers))
    fit = int(budget // max(1, per_track))
    return max(1, min(int(wanted), fit))
