"""The order in which the review shows tracks: the review that most narrows the reviewed
fraction's interval first, recomputed after every decision.

The reviewed estimate (:mod:`rbcflow.review.stratified`) counts each unreviewed track of
stratum ``h`` as the stratum's expected class shares ``theta_h``. Its uncertainty comes from
those shares: by the delta method, a track of class ``c`` moves ``f = TT / (TT + FL)`` by
``g(c)``, with ``g(tank-treading) = FL / S**2``, ``g(flipping) = -TT / S**2``,
``g(unreliable) = 0`` (``S = TT + FL``, today's estimates), so the stratum's ``U``
unreviewed tracks add ``U * s2 * (k + U) / (k + 1)`` to the fraction's variance
(Dirichlet-multinomial), where ``s2`` is the variance of ``g`` under ``theta_h`` and ``k`` the
posterior's concentration (prior strength + reviews). One more review of the stratum
(``U - 1``, ``k + 1``) removes

``gain_h = s2 * (k + U) * (k + U + 1) / ((k + 1) * (k + 2))``

(the whole ``s2`` for its last track). This counts both directions in which a call can be
wrong: a leaked unreliable track called tank-treading or flipping (its stratum's unreliable
share is uncertain) and a reliable track rejected (an unreliable stratum's reliable share).

The order takes the stratum with the largest gain, then that gain as if one more of its tracks
were reviewed, and so on (``s2`` kept; a stratum's gains fall with each review, so this greedy
order is one sort of every stratum's sequence of gains); within a stratum the tracks come in a fixed
pseudo-random order (a hash of the track id), so that a stratum's reviews are a random sample
of it and the estimator's rates stay unbiased. A small uncertain stratum (a few borderline
reliable calls) is reviewed whole; a large confident one (hundreds of clear unreliable calls)
gets a sample. Reviewed tracks follow, by track id. After each decision the server recomputes
the estimate, the gains and the order, and the page goes on with the new first track.
"""

from __future__ import annotations

import numpy as np

from rbcflow.review.stratified import Strata, point_estimate, reviewed_counts


def _hash(ids: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per track id (Knuth's multiplicative hash)."""
    return (np.asarray(ids, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)


def _spread(strata: Strata, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each stratum's ``s2`` (variance of ``g`` under its posterior mean) and concentration."""
    tt, fl = point_estimate(strata, counts)
    s = max(tt + fl, 1.0)
    g = np.array([fl / s**2, -tt / s**2, 0.0])
    if tt + fl <= 0:
        g = np.array([1.0, -1.0, 0.0])  # nothing reliable yet: find reliable tracks
    post = strata.prior + counts
    k = post.sum(axis=1)
    theta = post / k[:, None]
    s2 = theta @ g**2 - (theta @ g) ** 2
    return np.maximum(s2, 0.0), k


def gain(s2: np.ndarray | float, k: np.ndarray | float, u: np.ndarray | float):
    """Variance removed by one more review of a stratum with ``u`` unreviewed tracks.

    Examples
    --------
    >>> float(gain(0.5, 3.0, 1))  # the last track of a stratum: its whole variance
    0.5
    """
    u = np.asarray(u, dtype=float)
    out = s2 * (k + u) * (k + u + 1) / ((k + 1) * (k + 2))
    return np.where(u > 0, out, 0.0)


def stratum_gains(strata: Strata, reviewed: np.ndarray) -> np.ndarray:
    """(H,) each stratum's gain for its next review (0 when it is reviewed whole)."""
    counts = reviewed_counts(strata, reviewed)
    s2, k = _spread(strata, counts)
    return gain(s2, k, strata.size - counts.sum(axis=1))


def review_order(track_ids: np.ndarray, strata: Strata, reviewed: np.ndarray) -> list[int]:
    """Track ids in review order (see the module docstring).

    Parameters
    ----------
    track_ids : (N,) ids, in the order of ``strata.index``.
    reviewed : (N,) reviewed class codes 0/1/2, -1 where not reviewed.
    """
    ids = np.asarray(track_ids, dtype=np.int64)
    reviewed = np.asarray(reviewed, dtype=int)
    counts = reviewed_counts(strata, reviewed)
    s2, k = _spread(strata, counts)
    open_ = np.flatnonzero(reviewed < 0)
    # open tracks by stratum, each stratum's in its pseudo-random order
    h_of = strata.index[open_]
    sort = np.lexsort((ids[open_], _hash(ids[open_]), h_of))
    tracks, h_sorted = ids[open_][sort], h_of[sort]
    # the j-th open track of stratum h comes with gain(s2_h, k_h + j, U_h - j); each stratum's
    # gains fall with j, so the greedy choice is one sort of all of them
    first = np.searchsorted(h_sorted, h_sorted, side="left")
    j = np.arange(len(h_sorted)) - first
    u = np.bincount(h_sorted, minlength=len(strata.names))[h_sorted]
    g = gain(s2[h_sorted], k[h_sorted] + j, u - j)
    out = [int(t) for t in tracks[np.lexsort((j, h_sorted, -g))]]
    out.extend(int(t) for t in np.sort(ids[reviewed >= 0]))
    return out
