"""Peak memory of the running process, for the benchmark scripts."""

from __future__ import annotations

import re
import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB.

    From ``/proc/self/status`` (VmHWM), which starts afresh at ``exec``: on Linux ``ru_maxrss``
    carries over the high-water mark of the parent a child was forked from, so a benchmark's
    child process would report its parent's peak. ``ru_maxrss`` elsewhere.
    """
    try:
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1)) / 1024.0
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
