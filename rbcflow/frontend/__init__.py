"""The front end: video -> background, detection, tracking and 31x31 crops (layer 2).

Modules, lowest first: :mod:`.kernels` (compiled per-cell loops), :mod:`.variance` (local
variance, block means, robust noise), :mod:`.normalise` (per-frame gain and offset),
:mod:`.background`, :mod:`.footprints` (sub-pixel centres), :mod:`.splitting` (two cells in one
component), :mod:`.detection`, :mod:`.crops`, :mod:`.calibration` (per-video threshold, noise,
cell size), :mod:`.correlation`, :mod:`.tracks` (track records and tables), :mod:`.joining`
(fragment joining), :mod:`.tracking` (linking), :mod:`.stream` (the reading thread),
:mod:`.run` (:func:`run_frontend`, the two passes over a video) and
:mod:`.scoring` (found tracks against true ones, for tests and benchmarks).

``run_frontend``, ``FrontEndResult`` and ``progress_total`` are re-exported from :mod:`.run`,
imported on first use: importing this package (or one of its light modules, such as
:mod:`.variance`) does not load numba, scipy or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rbcflow.frontend.run import FrontEndResult, progress_total, run_frontend

__all__ = ["FrontEndResult", "progress_total", "run_frontend"]


def __getattr__(name: str):
    if name in __all__:
        from rbcflow.frontend import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
