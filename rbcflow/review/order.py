"""The order in which the review shows tracks: the review expected to remove the most error
from the reviewed fraction first, recomputed after every decision.

The reviewed fraction (:mod:`rbcflow.review.calibrated`) counts every unreviewed track as its
re-calibrated chances. Its error comes from two places, and a review removes some of each
(:func:`rbcflow.review.calibrated.review_gains`, the expected drop of the fraction's variance):

- the track itself: what it truly is moves ``f = TT / (TT + FL)`` by ``FL / S**2`` if it is
  tank-treading, ``-TT / S**2`` if flipping, 0 if unreliable (``S = TT + FL``). The variance of
  that move under the track's chances is largest for a call near a threshold whose change
  moves the fraction most: a flipping or tank-treading call near stage 2's boundary, a kept
  track with a low ``p_reliable``, a rule's rejection that looks like a clear tank-treader;
- what its label teaches the model about the others: a reviewed ``two cells`` track corrects
  the rule's rate for every unreviewed track like it.

Tracks are listed by decreasing gain (ties by track id), the reviewed ones after, by track id.
After each decision the server refits the model and recomputes the gains, and the page goes on
with the new first track. The choice depends only on the classifiers' outputs and the reviews
so far, which is what the regressions condition on, so the estimate stays consistent without
random picks (a stratified estimate needs random ones: see the calibrated module).
"""

from __future__ import annotations

import numpy as np

from rbcflow.review.calibrated import Calibration, Fit, review_gains


def review_order(
    track_ids: np.ndarray, cal: Calibration, reviewed: np.ndarray, fitted: Fit | None = None
) -> list[int]:
    """Track ids in review order (see the module docstring).

    Parameters
    ----------
    track_ids : (N,) ids, in the order of the calibration's tracks.
    reviewed : (N,) reviewed class codes 0/1/2, -1 where not reviewed.
    fitted : the model already fitted to ``reviewed`` (else fitted here).
    """
    ids = np.asarray(track_ids, dtype=np.int64)
    reviewed = np.asarray(reviewed, dtype=int)
    gains = review_gains(cal, reviewed, fitted)
    done = reviewed >= 0
    order = np.lexsort((ids, np.where(done, 0.0, -gains), done))
    return [int(t) for t in ids[order]]
