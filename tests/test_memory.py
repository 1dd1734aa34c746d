"""rbcflow.memory: malloc keeps freed frame-sized blocks for reuse (fewer zeroed pages)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# A child holds 24 frames of 1024x768 (the front end's queue and batch of frames in flight),
# frees them all, and does so 40 times, reporting its minor page faults: with glibc's default
# (adaptive) thresholds the 19 MB freed at once exceed the trim threshold and go back to the
# kernel, so the next frames fault in fresh zeroed pages.
_CHILD = """
import json, resource, sys
import numpy as np
from rbcflow.memory import reuse_freed_memory
changed = reuse_freed_memory() if sys.argv[1] == "reuse" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(40):
    frames = [np.full((768, 1024), i, np.uint8) for _ in range(24)]  # every page touched
    del frames
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"changed": changed, "faults": after - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_reuse_freed_memory_avoids_fresh_pages():
    default = _faults("default")
    reused = _faults("reuse")
    assert reused["changed"] is True
    # by default most rounds fault their 24 x 192 pages in again
    assert default["faults"] > 40 * 24 * 192 // 2
    # kept in the heap: the first round's pages, then reuse
    assert reused["faults"] < default["faults"] / 10
