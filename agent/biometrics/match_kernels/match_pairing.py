"""Consolidation: under one rigid alignment, pair A's minutiae with B's one-to-one.

A's minutiae are rotated by `rot` about the anchor minutia of A and moved onto
the anchor of B. A pair qualifies when the two minutiae are closer than a
tolerance that grows with the distance from the anchor (skin stretches more
far from where the prints agree) and their directions differ by less than
`ang_tol`; qualifying pairs are taken greedily by increasing cost so each
minutia is used once. The overlap counts say how many minutiae of each print
fall inside the other print's area (a coarse occupancy grid), which is what
the score is normalised by: a partial print is judged on the part both share.
cos, sin and distances are portable (portable_math; sqrt, not hypot), so the
pairs and their closeness come out the same on every CPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fpagent.biometrics import portable_math
from fpagent.biometrics.match_kernels import portable

TWO_PI = 2.0 * math.pi


@njit(cache=True, inline="always")
def _angdiff(a, b):
    d = abs(a - b)
    if d >= TWO_PI:  # rare: directions come in [0, 2 pi) and rotations in [-pi, pi]
        d = d % TWO_PI  # below 2 pi the remainder is d itself: the same bits without the division
    return d if d <= math.pi else TWO_PI - d


@njit(cache=True, inline="always")
def _in_grid(grid, cell, x, y):
    if x < 0.0 or y < 0.0:
        return False
    cx = int(x / cell)
    cy = int(y / cell)
    if cy >= grid.shape[0] or cx >= grid.shape[1]:
        return False
    return grid[cy, cx]


@njit(cache=True)
def pair_under_alignment(ax, ay, ath, bx, by, bth, a0x, a0y, b0x, b0y, rot,
                         dist_tol, dist_tol_rel, dist_tol_max, ang_tol, a_grid, b_grid, cell,
                         pair_a, pair_b):
    """Greedy one-to-one pairing under one alignment (B's minutiae sorted by x).

    Returns (matched, overlap_a, overlap_b, sum_of_closeness); the pairs are
    written to pair_a/pair_b (length >= matched).
    """
    out_a = np.empty(ax.shape[0] + 1, dtype=np.int32)
    out_b = np.empty(ax.shape[0] + 1, dtype=np.int32)
    m, cl = pair_with_scratch(ax, ay, ath, bx, by, bth, a0x, a0y, b0x, b0y, rot,
                              dist_tol, dist_tol_rel, dist_tol_max, ang_tol,
                              out_a, out_b, pair_scratch(ax.shape[0], bx))
    pair_a[:m] = out_a[:m]
    pair_b[:m] = out_b[:m]
    oa, ob = overlap_counts(ax, ay, bx, by, a0x, a0y, b0x, b0y, rot, a_grid, b_grid, cell)
    return m, oa, ob, cl


@njit(cache=True)
def overlap_counts(ax, ay, bx, by, a0x, a0y, b0x, b0y, rot, a_grid, b_grid, cell):
    """(A's minutiae inside B's area, B's inside A's) under one alignment.

    Separate from the pairing because the anchor search only needs the
    pairs: the overlap is counted for the alignment that is kept.
    """
    c, s = portable.cos_sin(rot)
    overlap_a = 0
    for i in range(ax.shape[0]):
        dx = ax[i] - a0x
        dy = ay[i] - a0y
        overlap_a += _in_grid(b_grid, cell, c * dx - s * dy + b0x, s * dx + c * dy + b0y)
    overlap_b = 0
    for k in range(bx.shape[0]):
        dx = bx[k] - b0x
        dy = by[k] - b0y
        # inverse rotation back into A's frame
        overlap_b += _in_grid(a_grid, cell, c * dx + s * dy + a0x, -s * dx + c * dy + a0y)
    return overlap_a, overlap_b


X_CELL = 8.0  # px: B's x index has one entry per 8 px column


@njit(cache=True)
def pair_scratch(na, bx):
    """Work arrays of `pair_with_scratch` (allocate once per comparison, not per alignment),
    with an index of B's x-sorted minutiae: x_start[c] = first k with bx[k] >= c * X_CELL."""
    nb = bx.shape[0]
    cap = na * 4 + 16 + 1  # the last slot takes candidates past the cap
    n_cells = (int(bx[nb - 1] / X_CELL) + 2) if nb > 0 else 1
    x_start = np.empty(max(n_cells, 1), dtype=np.int32)
    k = 0
    for c in range(x_start.shape[0]):
        while k < nb and bx[k] < c * X_CELL:
            k += 1
        x_start[c] = k
    return (np.empty(na, dtype=np.float32), np.empty(na, dtype=np.float32),
            np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.int32),
            np.empty(cap, dtype=np.float32), np.empty(cap, dtype=np.int64),
            np.empty(na, dtype=np.bool_), np.empty(nb, dtype=np.bool_), x_start,
            np.empty(cap, dtype=np.float32), np.empty(cap, dtype=np.float64), np.empty(na, dtype=np.float64))


@njit(cache=True, inline="always")
def _sort_order(keys, n, order):
    """order[:n] = stable argsort of keys[:n]: insertion sort for the usual few dozen
    candidates (one mispredicted branch per element, where a quicksort pays many)."""
    if n > 96:
        order[:n] = np.argsort(keys[:n], kind="mergesort")
        return
    for t in range(n):
        v = keys[t]
        u = t
        while u > 0 and keys[order[u - 1]] > v:
            order[u] = order[u - 1]
            u -= 1
        order[u] = t


@njit(cache=True)
def pair_with_scratch(ax, ay, ath, bx, by, bth, a0x, a0y, b0x, b0y, rot,
                      dist_tol, dist_tol_rel, dist_tol_max, ang_tol, pair_a, pair_b, scratch):
    """The pairing of `pair_under_alignment` with caller-owned work arrays
    (`pair_scratch(na, nb)`), without the overlap counts: (matched, closeness).
    pair_a and pair_b hold at least na + 1 entries (the last takes rejected candidates)."""
    na = ax.shape[0]
    nb = bx.shape[0]
    c, s = portable.cos_sin(rot)
    tx, ty, ci, ck, cc, order, used_a, used_b, x_start, cd2, cda, tol_of = scratch
    n_cells = x_start.shape[0]
    for i in range(na):
        dx = ax[i] - a0x
        dy = ay[i] - a0y
        tx[i] = c * dx - s * dy + b0x
        ty[i] = s * dx + c * dy + b0y
    # candidate pairs
    cap = ci.shape[0] - 1
    n = 0
    for i in range(na):
        rx = tx[i] - b0x
        ry = ty[i] - b0y
        ra = math.sqrt(rx * rx + ry * ry)
        tol = min(dist_tol + dist_tol_rel * ra, dist_tol_max)
        tol2 = tol * tol
        tol_of[i] = tol
        th = ath[i] + rot
        # B is sorted by x: the first k with bx[k] >= lo, from the x index (a binary
        # search mispredicts at nearly every step; this is one lookup and a short walk)
        lo = tx[i] - tol
        if lo <= 0.0:
            left = 0
        else:
            cx = int(lo / X_CELL)
            left = x_start[cx] if cx < n_cells else nb
        while left < nb and bx[left] < lo:
            left += 1
        for k in range(left, nb):
            dx = tx[i] - bx[k]
            if dx < -tol:
                break
            # the tests without a branch (each is a coin toss to the CPU): every pair in the
            # window is written at n, and n moves on only for a qualifying one while there
            # is room (slot `cap` takes the rest); the cost (a square root and two
            # divisions) below, for the qualifying ones only
            dy = ty[i] - by[k]
            d2 = dx * dx + dy * dy
            da = _angdiff(th, bth[k])
            ci[n] = i
            ck[n] = k
            cd2[n] = d2
            cda[n] = da
            n += (d2 <= tol2) & (da <= ang_tol) & (n < cap)
    for t in range(n):
        cc[t] = math.sqrt(cd2[t]) / tol_of[ci[t]] + cda[t] / ang_tol
    _sort_order(cc, n, order)
    used_a[:] = False
    used_b[:] = False
    matched = 0
    closeness = 0.0
    for t in range(n):
        # greedy by increasing cost, without a branch (whether a minutia is taken is a coin
        # toss to the CPU): every candidate is written at `matched`, which moves on only for
        # a pair of two free minutiae; adding 0.0 for the others leaves the sum's bits alone
        p = order[t]
        i = ci[p]
        k = ck[p]
        take = not (used_a[i] | used_b[k])
        used_a[i] |= take
        used_b[k] |= take
        pair_a[matched] = i
        pair_b[matched] = k
        closeness += (1.0 - 0.5 * cc[p]) if take else 0.0
        matched += take
    return matched, closeness


def pair_under_alignment_reference(ax, ay, ath, bx, by, bth, a0x, a0y, b0x, b0y, rot,
                                   dist_tol, dist_tol_rel, dist_tol_max, ang_tol, a_grid, b_grid,
                                   cell):
    """Plain-numpy reference of `pair_under_alignment` (returns the same tuple + the pairs)."""
    c, s = portable_math.cos_sin(rot)
    dx, dy = ax.astype(np.float64) - a0x, ay.astype(np.float64) - a0y
    tx = c * dx - s * dy + b0x
    ty = s * dx + c * dy + b0y

    def inside(grid, x, y):
        cx = np.floor(x / cell).astype(np.int64)
        cy = np.floor(y / cell).astype(np.int64)
        ok = (x >= 0) & (y >= 0) & (cx < grid.shape[1]) & (cy < grid.shape[0])
        res = np.zeros(x.shape, dtype=bool)
        res[ok] = grid[cy[ok], cx[ok]]
        return res

    overlap_a = int(inside(b_grid, tx, ty).sum())
    ex, ey = bx.astype(np.float64) - b0x, by.astype(np.float64) - b0y
    overlap_b = int(inside(a_grid, c * ex + s * ey + a0x, -s * ex + c * ey + a0y).sum())
    ra = np.sqrt((tx - b0x) * (tx - b0x) + (ty - b0y) * (ty - b0y))
    tol = np.minimum(dist_tol + dist_tol_rel * ra, dist_tol_max)[:, None]
    ex, ey = tx[:, None] - bx[None, :], ty[:, None] - by[None, :]
    d = np.sqrt(ex * ex + ey * ey)
    da = np.abs(ath[:, None] + rot - bth[None, :]) % (2 * np.pi)
    da = np.where(da <= np.pi, da, 2 * np.pi - da)
    ok = (d <= tol) & (da <= ang_tol)
    cost = d / tol + da / ang_tol
    ii, kk = np.nonzero(ok)
    order = np.argsort(cost[ii, kk], kind="stable")
    used_a, used_b = set(), set()
    pairs = []
    closeness = 0.0
    for p in order:
        i, k = ii[p], kk[p]
        if i in used_a or k in used_b:
            continue
        used_a.add(i)
        used_b.add(k)
        pairs.append((i, k))
        closeness += 1.0 - 0.5 * cost[i, k]
    return len(pairs), overlap_a, overlap_b, closeness, pairs
