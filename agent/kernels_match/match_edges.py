"""Edge-pair voting: which minutia of A corresponds to which of B, judged by neighbourhoods.

An "edge" joins a minutia to one of its nearest neighbours and is described
by features that rotation and translation leave alone: its length and the
angles between the edge and each end's minutia direction. Two edges that
agree (within tolerances) vote for the two minutia correspondences they
imply, and for the rotation between the prints. The result, an nA x nB vote
matrix plus the summed rotation (cos, sin) per pair, is what the
consolidation step picks its alignment anchors from.

Edges of B are sorted by length so each edge of A only looks at the B edges
of about its own length (a binary-searched window).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * math.pi


@njit(cache=True, inline="always")
def _angdiff(a, b):
    d = abs(a - b) % TWO_PI
    return d if d <= math.pi else TWO_PI - d


@njit(cache=True)
def edge_votes(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir,
               na, nb, len_tol, len_tol_rel, ang_tol):
    """Vote matrix (na x nb) and summed rotation cos/sin from agreeing edges.

    A's edges are taken in one direction only (a_i < a_j); B's in both, so each
    geometric correspondence is counted once. Each agreement adds a weight in
    (0, 1] that falls linearly with the length and angle errors.
    """
    votes = np.zeros((na, nb), dtype=np.float32)
    rc = np.zeros((na, nb), dtype=np.float32)
    rs = np.zeros((na, nb), dtype=np.float32)
    m = b_len.shape[0]
    for p in range(a_len.shape[0]):
        if a_i[p] > a_j[p]:
            continue
        L = a_len[p]
        tol = len_tol + len_tol_rel * L
        lo = L - tol
        # binary search for the first B edge with length >= lo
        left = 0
        right = m
        while left < right:
            mid = (left + right) >> 1
            if b_len[mid] < lo:
                left = mid + 1
            else:
                right = mid
        q = left
        while q < m and b_len[q] <= L + tol:
            d1 = _angdiff(a_ai[p], b_ai[q])
            if d1 <= ang_tol:
                d2 = _angdiff(a_aj[p], b_aj[q])
                if d2 <= ang_tol:
                    w = 1.0 - (abs(b_len[q] - L) / tol + d1 / ang_tol + d2 / ang_tol) / 3.0
                    if w > 0.0:
                        rot = b_dir[q] - a_dir[p]
                        c = w * math.cos(rot)
                        s = w * math.sin(rot)
                        i = a_i[p]
                        j = a_j[p]
                        k = b_i[q]
                        l = b_j[q]
                        votes[i, k] += w
                        votes[j, l] += w
                        rc[i, k] += c
                        rs[i, k] += s
                        rc[j, l] += c
                        rs[j, l] += s
            q += 1
    return votes, rc, rs


def edge_votes_reference(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir,
                         na, nb, len_tol, len_tol_rel, ang_tol):
    """Plain-numpy reference of `edge_votes` (all edge pairs at once, no window search)."""
    keep = a_i <= a_j
    aL, ai, aj = a_len[keep].astype(np.float64), a_i[keep], a_j[keep]
    aai, aaj, adir = a_ai[keep].astype(np.float64), a_aj[keep].astype(np.float64), a_dir[keep]
    tol = len_tol + len_tol_rel * aL[:, None]
    dl = np.abs(b_len[None, :].astype(np.float64) - aL[:, None])

    def ad(x, y):
        d = np.abs(x - y) % (2 * np.pi)
        return np.where(d <= np.pi, d, 2 * np.pi - d)

    d1 = ad(aai[:, None], b_ai[None, :].astype(np.float64))
    d2 = ad(aaj[:, None], b_aj[None, :].astype(np.float64))
    ok = (dl <= tol) & (d1 <= ang_tol) & (d2 <= ang_tol)
    w = 1.0 - (dl / tol + d1 / ang_tol + d2 / ang_tol) / 3.0
    ok &= w > 0
    pp, qq = np.nonzero(ok)
    w = w[pp, qq]
    rot = b_dir[qq].astype(np.float64) - adir[pp].astype(np.float64)
    votes = np.zeros((na, nb))
    rc = np.zeros((na, nb))
    rs = np.zeros((na, nb))
    for src_a, src_b in ((ai, b_i), (aj, b_j)):
        np.add.at(votes, (src_a[pp], src_b[qq]), w)
        np.add.at(rc, (src_a[pp], src_b[qq]), w * np.cos(rot))
        np.add.at(rs, (src_a[pp], src_b[qq]), w * np.sin(rot))
    return votes, rc, rs
