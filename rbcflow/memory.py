"""What the process and the machine say about memory (standard library only, so that the
benchmarks' child processes can measure themselves without loading anything).

- :func:`peak_rss_bytes`: this process' peak resident memory (``VmHWM``, which starts afresh at
  ``exec``: on Linux ``ru_maxrss`` carries over the high-water mark of the parent a child was
  forked from); ``getrusage`` where there is no ``/proc``.
- :func:`available_memory`: what the machine can give without swapping (``MemAvailable``).
- :func:`reuse_freed_memory`: glibc's malloc told to keep freed frame-sized blocks (``ctypes``
  on the C library's ``mallopt``).
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


MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks up to this size come from malloc's heap, not a fresh ``mmap`` (glibc's maximum)."""

TRIM_THRESHOLD = 256 * 1024 * 1024
"""Free memory malloc keeps at the top of its heap before it hands some back."""


def reuse_freed_memory() -> bool:
    """Let glibc's malloc reuse freed frame-sized blocks instead of mapping new zeroed pages.

    By default glibc serves a block over its (adaptive) mmap threshold with a fresh ``mmap`` and
    unmaps it when freed, so every decoded frame, crop stack and batch of crops touches new
    pages that the kernel must zero: ``analyze`` on a 4,800-frame 1024x768 video took ~250,000
    page faults and spent ~4 % of its CPU in the kernel's ``clear_page``. Fixing the thresholds
    (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`) keeps such blocks in the heap, where the
    next frame reuses them. Process-wide and only for long, allocation-heavy commands (the CLI's
    ``analyze`` and its classifier process call it). Returns False where there is no glibc
    (macOS, musl, Windows): nothing is changed there.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )
