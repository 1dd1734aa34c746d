"""What the process and the machine say about memory (standard library only, so that the
benchmarks' child processes can measure themselves without loading anything).

- :func:`peak_rss_bytes`: this process' peak resident memory (``VmHWM``, which starts afresh at
  ``exec``: on Linux ``ru_maxrss`` carries over the high-water mark of the parent a child was
  forked from); ``getrusage`` where there is no ``/proc``.
- :func:`available_memory`: what the machine can give without swapping (``MemAvailable``).
"""

from __future__ import annotations

import resource
import sys


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key:  N kB`` line of a ``/proc`` file, in KiB (None where it cannot be read)."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """This process' peak resident memory in bytes (see the module's notes)."""
    kib = _proc_kib("/proc/self/status", "VmHWM")
    if kib is not None:
        return kib * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def available_memory() -> int | None:
    """Bytes of memory the machine can give without swapping (``MemAvailable`` of
    ``/proc/meminfo``), or None where that is not known."""
    kib = _proc_kib("/proc/meminfo", "MemAvailable")
    return None if kib is None else kib * 1024
