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

from agent.kernels_match.constants import ANGLE_UNITS

TWO_PI = 2.0 * math.pi
_COS = np.cos(np.arange(ANGLE_UNITS) * (TWO_PI / ANGLE_UNITS)).astype(np.float32)
_SIN = np.sin(np.arange(ANGLE_UNITS) * (TWO_PI / ANGLE_UNITS)).astype(np.float32)


@njit(cache=True, inline="always")
def _angdiff(a, b):
    d = abs(a - b) % TWO_PI
    return d if d <= math.pi else TWO_PI - d




@njit(cache=True, inline="always")
def _udiff(a, b):
    d = (a - b) & 255
    return d if d <= 128 else 256 - d




@njit(cache=True)
def edge_votes(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir, b_bucket_start,
               na, nb, len_tol, len_tol_rel, ang_tol):
    """Vote matrix (na x nb) and summed rotation cos/sin from agreeing edges.

    Edge angles (a_ai, a_aj, a_dir, ...) are int32 in 1/256 turns; ang_tol is
    in radians. B's edges are sorted by (first-angle bucket, length) and
    b_bucket_start[b] is where bucket b starts (n_buckets + 1 entries, buckets
    of ANGLE_UNITS / n_buckets units), so
    an edge of A only visits the few buckets within the angle tolerance and,
    in each, the binary-searched window of lengths. A's edges are taken in one
    direction only (a_i < a_j); B's in both, so each geometric correspondence
    is counted once. Each agreement adds a weight in (0, 1] that falls
    linearly with the length and angle errors.
    """
    votes = np.zeros((na, nb), dtype=np.float32)
    rc = np.zeros((na, nb), dtype=np.float32)
    rs = np.zeros((na, nb), dtype=np.float32)
    tol_u = int(ang_tol * ANGLE_UNITS / TWO_PI)
    inv_tol_u = 1.0 / (ang_tol * ANGLE_UNITS / TWO_PI)
    # the bucket layout comes with the data (not a module constant a cached kernel could miss)
    n_buckets = b_bucket_start.shape[0] - 1
    width = ANGLE_UNITS // n_buckets
    for p in range(a_len.shape[0]):
        if a_i[p] > a_j[p]:
            continue
        L = a_len[p]
        tol = len_tol + len_tol_rel * L
        inv_tol = 1.0 / tol
        lo = L - tol
        hi = L + tol
        pai = a_ai[p]
        paj = a_aj[p]
        first = (pai - tol_u + ANGLE_UNITS) // width - n_buckets  # may be negative: wraps below
        last = (pai + tol_u) // width
        for bb in range(first, last + 1):
            bucket = bb % n_buckets
            left = b_bucket_start[bucket]
            end = b_bucket_start[bucket + 1]
            right = end
            while left < right:
                mid = (left + right) >> 1
                if b_len[mid] < lo:
                    left = mid + 1
                else:
                    right = mid
            for q in range(left, end):
                if b_len[q] > hi:
                    break
                d1 = _udiff(pai, b_ai[q])
                if d1 > tol_u:
                    continue
                d2 = _udiff(paj, b_aj[q])
                if d2 > tol_u:
                    continue
                w = 1.0 - (abs(b_len[q] - L) * inv_tol + (d1 + d2) * inv_tol_u) * (1.0 / 3.0)
                if w > 0.0:
                    rot = (b_dir[q] - a_dir[p]) & 255
                    c = w * _COS[rot]
                    s = w * _SIN[rot]
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
    return votes, rc, rs


def edge_votes_reference(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir,
                         b_bucket_start, na, nb, len_tol, len_tol_rel, ang_tol):
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
