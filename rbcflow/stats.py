"""Counting statistics for the per-acquisition figure."""

from __future__ import annotations

import math

from scipy.stats import norm


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps close to its
    nominal coverage for small counts and proportions near 0 or 1, which is where a patient's
    tank-treading fraction can sit (Newcombe, Stat. Med. 17:857, 1998).

    Parameters
    ----------
    successes : int
        Number of successes (tank-treading tracks), ``0 <= successes <= n``.
    n : int
        Number of trials (reliable tracks).
    confidence : float
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    (low, high) : tuple of float
        The interval, ``0 <= low <= successes / n <= high <= 1``; ``(nan, nan)`` when ``n == 0``
        (no reliable track: no figure to report).

    Examples
    --------
    >>> low, high = wilson_interval(81, 263)
    >>> round(low, 4), round(high, 4)
    (0.2553, 0.3662)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the exact bounds at 0/n and n/n are 0 and 1; clamp away rounding
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
