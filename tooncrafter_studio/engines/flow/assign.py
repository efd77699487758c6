"""The assignment problem (minimum-cost one-to-one matching) for the shape engine's region
correspondence, written out so the engine needs nothing beyond numpy and OpenCV.

A rectangular cost matrix is squared up with "no partner" rows and columns that cost
`unmatched`, so a pair is only made when it is cheaper than leaving both items alone.
"""

from __future__ import annotations

import numpy as np


def _square_assignment(cost: np.ndarray) -> np.ndarray:
    """Column assigned to each row of a square cost matrix (shortest augmenting paths with row and
    column potentials; O(n^3))."""
    n = cost.shape[0]
    inf = np.inf
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    owner = np.zeros(n + 1, np.int64)  # owner[j]: the row (1-based) holding column j; 0 = free
    for row in range(1, n + 1):
        owner[0] = row
        j0 = 0
        slack = np.full(n + 1, inf)
        came_from = np.zeros(n + 1, np.int64)
        done = np.zeros(n + 1, bool)
        while True:
            done[j0] = True
            i0 = owner[j0]
            free = ~done[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < slack[1:])
            slack[1:][better] = reduced[better]
            came_from[1:][better] = j0
            candidates = np.where(free, slack[1:], inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[done]] += delta
            v[done] -= delta
            slack[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = came_from[j0]
            owner[j0] = owner[j1]
            j0 = j1
    result = np.zeros(n, np.int64)
    for j in range(1, n + 1):
        if owner[j]:
            result[owner[j] - 1] = j - 1
    return result


def assign(cost: np.ndarray, unmatched: float) -> list[tuple[int, int]]:
    """Pairs (row, column) minimising the total cost, where leaving a row or a column without a
    partner costs `unmatched` each; entries that are inf (or above 2 * unmatched) never pair."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    big = 4.0 * unmatched + 1.0
    size = rows + cols
    full = np.full((size, size), 0.0)
    block = np.where(np.isfinite(cost), np.minimum(cost, big), big)
    full[:rows, :cols] = block
    full[:rows, cols:] = np.where(np.eye(rows, dtype=bool), unmatched, big)
    full[rows:, :cols] = np.where(np.eye(cols, dtype=bool), unmatched, big)
    # (dummy row, dummy column) pairs cost 0: unused dummies pair with each other.
    chosen = _square_assignment(full)
    return [(r, int(chosen[r])) for r in range(rows)
            if chosen[r] < cols and np.isfinite(cost[r, chosen[r]]) and cost[r, chosen[r]] < 2 * unmatched]
