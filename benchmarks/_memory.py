"""Peak memory of the running process, for the benchmark scripts."""

from __future__ import annotations

from rbcflow.memory import peak_rss_bytes


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (:func:`rbcflow.memory.peak_rss_bytes`:
    VmHWM, which starts afresh at ``exec``, so a benchmark's child reports its own peak)."""
    return peak_rss_bytes() / 1024**2
