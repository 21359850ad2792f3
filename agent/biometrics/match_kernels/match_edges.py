"""Edge-pair voting: which minutia of A corresponds to which of B, judged by neighbourhoods.

An "edge" joins a minutia to one of its nearest neighbours and is described
by features that rotation and translation leave alone: its length and the
angles between the edge and each end's minutia direction. Two edges that
agree (within tolerances) vote for the two minutia correspondences they
imply, and for the rotation between the prints. The result, an nA x nB vote
matrix plus the summed rotation (cos, sin) per pair, is what the
consolidation step picks its alignment anchors from.

Edges of B are bucketed by their two end angles and their length, and
sorted by length inside a bucket, so each edge of A only looks at the B
edges of about its own angles and length. The loop is bound by mispredicted branches, not
arithmetic (measured): fewer candidates looked at is what makes it faster.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fpagent.biometrics import portable_math
from fpagent.biometrics.match_kernels.constants import ANGLE_UNITS

TWO_PI = 2.0 * math.pi
# cos and sin of each angle unit, by the portable functions (numpy's np.cos may round otherwise
# on another CPU); tests/test_portable_math.py checks the tables' exact bytes
_COS_SIN = np.array([portable_math.cos_sin(u * (TWO_PI / ANGLE_UNITS)) for u in range(ANGLE_UNITS)])
_COS = _COS_SIN[:, 0].astype(np.float32)
_SIN = _COS_SIN[:, 1].astype(np.float32)


@njit(cache=True, inline="always")
def _angdiff(a, b):
    d = abs(a - b) % TWO_PI
    return d if d <= math.pi else TWO_PI - d




@njit(cache=True, inline="always")
def _udiff(a, b):
    d = (a - b) & 255
    return min(d, 256 - d)




@njit(cache=True)
def edge_votes(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir, b_bucket_start,
               na, nb, len_tol, len_tol_rel, ang_tol, len_bin, n_len_bins):
    """Vote matrix (na x nb) and summed rotation cos/sin from agreeing edges.

    Edge angles (a_ai, a_aj, a_dir, ...) are bytes in 1/256 turns; ang_tol is
    in radians. B's edges are bucketed by first angle, length and second
    angle (n x n_len_bins x n buckets numbered in that order; angle buckets of
    ANGLE_UNITS / n units, length buckets of len_bin px, the last one open
    ended) and sorted by length inside a bucket; b_bucket_start[b] is where
    bucket b starts (n * n_len_bins * n + 1 entries). An edge of A visits the
    (first angle, length) rows within its tolerances and, in each, scans the
    adjacent second-angle buckets within tolerance as one run, so most B
    edges it looks at are real candidates. A's edges are taken in one
    direction only (a_i < a_j); B's in both, so each geometric correspondence
    is counted once. Each agreement adds a weight in (0, 1] that falls
    linearly with the length and angle errors.
    """
    votes = np.zeros((na, nb), dtype=np.float32)
    rc = np.zeros((na, nb), dtype=np.float32)
    rs = np.zeros((na, nb), dtype=np.float32)
    tol_u = int(ang_tol * ANGLE_UNITS / TWO_PI)
    inv_tol_u = np.float32(1.0 / (ang_tol * ANGLE_UNITS / TWO_PI))
    # the bucket layout comes with the data (not a module constant a cached kernel could miss)
    n_side = int(math.sqrt((b_bucket_start.shape[0] - 1) // n_len_bins) + 0.5)  # a power of two
    inv_len_bin = 1.0 / len_bin
    mask = n_side - 1
    shift = 0
    while (ANGLE_UNITS >> shift) > n_side:
        shift += 1
    third = np.float32(1.0 / 3.0)
    # A's edges with a_i < a_j, gathered without a branch (their order is random to the CPU)
    fwd = np.empty(a_len.shape[0], dtype=np.int32)
    # one A edge visits each B edge at most once (its buckets are distinct)
    hit_q = np.empty(b_len.shape[0] + 1, dtype=np.int32)
    hit_w = np.empty(b_len.shape[0] + 1, dtype=np.float64)
    n_fwd = 0
    for p in range(a_len.shape[0]):
        fwd[n_fwd] = p
        n_fwd += a_i[p] < a_j[p]
    for f in range(n_fwd):
        p = fwd[f]
        L = a_len[p]
        tol = np.float32(len_tol + len_tol_rel * L)
        inv_tol = np.float32(1.0) / tol
        lo = L - tol
        hi = L + tol
        pai = a_ai[p]
        paj = a_aj[p]
        # bucket ranges of both angles (may start below 0 or end above n_side: they wrap);
        # shifts and masks, not // and %: integer division is slow and this is the hot loop
        first1 = (pai - tol_u) >> shift
        last1 = (pai + tol_u) >> shift
        first2 = (paj - tol_u) >> shift
        last2 = (paj + tol_u) >> shift
        # second-angle buckets: one run, plus a second where the range wraps past 0 or n_side
        lo2 = max(first2, 0)
        hi2 = min(last2, n_side - 1)
        if first2 < 0:
            wlo = first2 + n_side
            whi = n_side - 1
        elif last2 >= n_side:
            wlo = 0
            whi = last2 - n_side
        else:
            wlo = 1
            whi = 0
        i = a_i[p]
        j = a_j[p]
        adir = a_dir[p]
        lb_first = max(int(lo * inv_len_bin), 0)
        lb_last = min(int(hi * inv_len_bin), n_len_bins - 1)
        n_hit = 0
        for bb1 in range(first1, last1 + 1):
            for lb in range(lb_first, lb_last + 1):
                row = ((bb1 & mask) * n_len_bins + lb) * n_side
                # the buckets of one row are adjacent in memory: scan them as one or two runs;
                # a few more edges looked at, far fewer loop starts
                for part in range(2):
                    b_lo = lo2 if part == 0 else wlo
                    b_hi = hi2 if part == 0 else whi
                    if b_lo > b_hi:
                        break
                    for q in range(b_bucket_start[row + b_lo], b_bucket_start[row + b_hi + 1]):
                        # every test without a branch (each is a coin toss to the CPU); the
                        # agreeing edges are kept in visiting order, so the votes add up in
                        # the same order as when each was added at once
                        lq = b_len[q]
                        d1 = _udiff(pai, b_ai[q])
                        d2 = _udiff(paj, b_aj[q])
                        w = np.float32(1.0) - (abs(lq - L) * inv_tol + (d1 + d2) * inv_tol_u) * third
                        hit_q[n_hit] = q
                        hit_w[n_hit] = w
                        n_hit += (lq >= lo) & (lq <= hi) & (d1 <= tol_u) & (d2 <= tol_u) & (w > 0.0)
        for h in range(n_hit):
            q = hit_q[h]
            w = hit_w[h]
            rot = (b_dir[q] - adir) & 255
            c = w * _COS[rot]
            s = w * _SIN[rot]
            k = b_i[q]
            l = b_j[q]
            votes[i, k] += w
            votes[j, l] += w
            rc[i, k] += c
            rs[i, k] += s
            rc[j, l] += c
            rs[j, l] += s
    return votes, rc, rs


def edge_votes_reference(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir,
                         b_bucket_start, na, nb, len_tol, len_tol_rel, ang_tol, len_bin=None,
                         n_len_bins=None):
    """Plain-numpy reference of `edge_votes` (all edge pairs at once, no buckets or windows)."""
    keep = a_i <= a_j
    aL, ai, aj = a_len[keep].astype(np.float64), a_i[keep], a_j[keep]
    aai, aaj, adir = a_ai[keep], a_aj[keep], a_dir[keep]
    tol = len_tol + len_tol_rel * aL[:, None]
    dl = np.abs(b_len[None, :].astype(np.float64) - aL[:, None])

    def ad(x, y):
        d = (x.astype(np.int64) - y.astype(np.int64)) % ANGLE_UNITS
        return np.where(d <= ANGLE_UNITS // 2, d, ANGLE_UNITS - d)

    tol_u = ang_tol * ANGLE_UNITS / (2 * np.pi)
    d1 = ad(aai[:, None], b_ai[None, :])
    d2 = ad(aaj[:, None], b_aj[None, :])
    ok = (dl <= tol) & (d1 <= int(tol_u)) & (d2 <= int(tol_u))
    w = 1.0 - (dl / tol + (d1 + d2) / tol_u) / 3.0
    ok &= w > 0
    pp, qq = np.nonzero(ok)
    w = w[pp, qq]
    rot = ((b_dir[qq].astype(np.int64) - adir[pp].astype(np.int64)) % ANGLE_UNITS) * (2 * np.pi / ANGLE_UNITS)
    votes = np.zeros((na, nb))
    rc = np.zeros((na, nb))
    rs = np.zeros((na, nb))
    for src_a, src_b in ((ai, b_i), (aj, b_j)):
        np.add.at(votes, (src_a[pp], src_b[qq]), w)
        np.add.at(rc, (src_a[pp], src_b[qq]), w * np.cos(rot))
        np.add.at(rs, (src_a[pp], src_b[qq]), w * np.sin(rot))
    return votes, rc, rs
