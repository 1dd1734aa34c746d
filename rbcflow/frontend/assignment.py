"""The least-cost assignment of tracks to detections (and of ended tracks to young ones).

:func:`linear_assignment` answers what :func:`scipy.optimize.linear_sum_assignment` answers
for the dense, finite cost matrices the tracker builds (a few tens of rows and columns, the
infeasible pairs at a large finite cost): each row is given a distinct column (each column a
distinct row when there are more rows), with the least total cost.

Why not scipy's: importing :mod:`scipy.optimize` for this one function cost 0.39 s of the
1.09 s that ``rbcflow analyze`` spends importing before it can track (median of 8 fresh
interpreters, docs/method.md, *Speed and memory*), on the critical path of every command. The
method here is the shortest-augmenting-path form of the Hungarian method with row and column
potentials (Kuhn 1955; Munkres 1957; its O(n^2 m) rectangular form as in Jonker and Volgenant
1987): rows are added one at a time, each by a Dijkstra-like search over reduced costs
``c[i, j] - u[i] - v[j]`` that stays non-negative, then the alternating path found is flipped.
Where the least-cost assignment is unique, every exact method returns it, scipy's included;
``tests/test_assignment.py`` checks the two agree on random and tracker-like matrices, and the
benchmark videos' tracks are byte-identical (docs/method.md).
"""

from __future__ import annotations

import numpy as np

from rbcflow.frontend.kernels import compiled


@compiled
def _assign_rows(cost: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Column of each row for a (n, m) cost with n <= m (all finite)."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # 1-based row holding column j; 0: free
    back = np.zeros(m + 1, dtype=np.int64)  # previous column on the search tree
    dist = np.empty(m + 1)
    done = np.empty(m + 1, dtype=np.bool_)
    for i in range(1, n + 1):
        owner[0] = i  # column 0 stands for the row being added
        j0 = 0
        dist[:] = np.inf
        done[:] = False
        while True:
            done[j0] = True
            i0 = owner[j0]
            delta = np.inf
            j1 = 0
            for j in range(1, m + 1):
                if not done[j]:
                    reduced = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if reduced < dist[j]:
                        dist[j] = reduced
                        back[j] = j0
                    if dist[j] < delta:
                        delta = dist[j]
                        j1 = j
            for j in range(m + 1):
                if done[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    dist[j] -= delta
            j0 = j1
            if owner[j0] == 0:  # a free column: augment along the tree
                break
        while j0 != 0:
            j1 = back[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.full(n, -1, dtype=np.int64)
    for j in range(1, m + 1):
        if owner[j] != 0:
            cols[owner[j] - 1] = j - 1
    return cols


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and their columns of the least-cost assignment of a finite ``(n, m)`` cost matrix.

    As :func:`scipy.optimize.linear_sum_assignment`: ``min(n, m)`` pairs, rows in increasing
    order; an empty matrix gives two empty arrays.

    Raises
    ------
    ValueError
        ``cost`` is not 2-D or holds a value that is not finite.

    Examples
    --------
    >>> rows, cols = linear_assignment(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0]]))
    >>> rows.tolist(), cols.tolist()
    ([0, 1], [1, 0])
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a 2-D cost matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("the cost matrix holds a value that is not finite")
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n <= m:
        return np.arange(n, dtype=np.int64), _assign_rows(np.ascontiguousarray(cost))
    rows = _assign_rows(np.ascontiguousarray(cost.T))  # each column gets a row
    order = np.argsort(rows, kind="stable")
    return rows[order], order.astype(np.int64)
