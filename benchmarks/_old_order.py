"""The review order before re-ranking (kept for bench_review.py's "before" row): the expected
absolute change of the plain count, computed once at page load.

For every track we ask: if the technician reviewed it, by how much would the reviewed fraction
``f = TT / (TT + FL)`` move, on average over what the track may truly be? With the current
counts ``TT`` and ``FL`` (reviewed labels where reviewed, calls elsewhere) and the track's
classifier probabilities as the chances of its truth,

- ``P(unreliable) = 1 - p_reliable``, ``P(tank-treading) = p_reliable * p_tank_treading``,
  ``P(flipping) = p_reliable * (1 - p_tank_treading)``; a track that a geometric or context
  rule rejected keeps the network's ``p_reliable``: where the rule and the network disagree the
  call is uncertain, and worth a look (on a synthetic acquisition with 85 % unreliable tracks
  the errors left after 100 reviews were single tank-treading cells the "two cells" rule had
  rejected, when rejected tracks were ranked last);
- the track's score is ``sum_c P(c) * |f(counts with the track as c) - f|``.

Tracks are shown by decreasing score, so the calls nearest a threshold (where the chances
are split) *and* those whose change moves the fraction most (a call counted among few
reliable tracks, a leaked unreliable track) come first; a confident unreliable call scores
near 0 and comes last. Reviewed tracks follow the unreviewed ones, in the same order. The
order is computed when the page loads (and kept while it is open, so the list does not jump
under the technician's keys).
"""

from __future__ import annotations

import numpy as np

from rbcflow import schema

TT, FL, UN = (schema.LABEL_NAMES[k] for k in (0, 1, 2))


def _f(tt: np.ndarray, fl: np.ndarray) -> np.ndarray:
    n = tt + fl
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, tt / np.maximum(n, 1), 0.5)


def expected_change(
    labels: np.ndarray,
    p_reliable: np.ndarray,
    p_tank_treading: np.ndarray,
) -> np.ndarray:
    """Each track's expected absolute change of the fraction if it were reviewed.

    Parameters
    ----------
    labels : (N,) current labels (reviewed labels where reviewed, calls elsewhere).
    p_reliable, p_tank_treading : (N,) classifier probabilities (NaN: 0 and 0.5).

    Examples
    --------
    >>> s = expected_change(np.array(["tank-treading", "flipping", "unreliable"]),
    ...                     np.array([0.55, 0.99, 0.01]), np.array([0.9, 0.02, 0.5]))
    >>> bool(s[0] > s[1] > s[2])
    True
    """
    lab = np.asarray(labels, dtype=object)
    p_rel = np.nan_to_num(np.asarray(p_reliable, dtype=float), nan=0.0)
    p_tt = np.nan_to_num(np.asarray(p_tank_treading, dtype=float), nan=0.5)
    tt, fl = float((lab == TT).sum()), float((lab == FL).sum())
    f0 = _f(np.array(tt), np.array(fl))
    # counts without the track, then with it as each class
    base_tt = tt - (lab == TT)
    base_fl = fl - (lab == FL)
    f_tt = _f(base_tt + 1, base_fl)
    f_fl = _f(base_tt, base_fl + 1)
    f_un = _f(base_tt, base_fl)
    return (
        p_rel * p_tt * np.abs(f_tt - f0)
        + p_rel * (1 - p_tt) * np.abs(f_fl - f0)
        + (1 - p_rel) * np.abs(f_un - f0)
    )


def review_order(
    track_ids: np.ndarray,
    labels: np.ndarray,
    p_reliable: np.ndarray,
    p_tank_treading: np.ndarray,
    reviewed: set[int] | frozenset[int] = frozenset(),
) -> list[int]:
    """Track ids in review order: unreviewed by decreasing :func:`expected_change`, then the
    reviewed ones (ties by track id)."""
    ids = np.asarray(track_ids, dtype=int)
    score = expected_change(labels, p_reliable, p_tank_treading)
    done = np.array([int(t) in reviewed for t in ids], dtype=bool)
    order = np.lexsort((ids, -score, done))
    return [int(ids[i]) for i in order]
