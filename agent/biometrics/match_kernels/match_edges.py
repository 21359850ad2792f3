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
def edge_votes(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir, b_lbin, b_cell_start,
               b_cell_len_start, b_cell_q, na, nb, len_tol, len_tol_rel, ang_tol, len_bin, n_len_bins):
    """Vote matrix (na x nb) and summed rotation cos/sin from agreeing edges.

    Edge angles (a_ai, a_aj, a_dir, ...) are int32 in 1/256 turns; ang_tol is
    in radians (less than one angle cell). B's edges come with the index of
    edge_build.build_cells_kernel: b_lbin, each edge's length bin (of len_bin px,
    the last one open ended), and cells of the two end angles listing, sorted
    by length, every edge that can agree with an edge of about those angles.
    An edge of A reads its own cell once, up to the longest length it accepts.
    A's edges are taken in one direction only (a_i < a_j); B's in both, so
    each geometric correspondence is counted once. Each agreement adds a weight
    in (0, 1] that falls linearly with the length and angle errors.

    The sums are float32 and their bits depend on the order of the additions:
    the agreeing edges of one A edge are added in the order of the bucketed
    scan this kernel replaced (first-angle bucket, length bin, second-angle
    run, then B's sorted edge order), which its numbers were recorded with.
    """
    votes = np.zeros((na, nb), dtype=np.float32)
    rc = np.zeros((na, nb), dtype=np.float32)
    rs = np.zeros((na, nb), dtype=np.float32)
    tol_u = int(ang_tol * ANGLE_UNITS / TWO_PI)
    inv_tol_u = np.float32(1.0 / (ang_tol * ANGLE_UNITS / TWO_PI))
    # the cell layout comes with the data (not a module constant a cached kernel could miss)
    n_side = int(math.sqrt(b_cell_start.shape[0] - 1) + 0.5)  # a power of two
    inv_len_bin = 1.0 / len_bin
    mask = n_side - 1
    shift = 0
    while (ANGLE_UNITS >> shift) > n_side:
        shift += 1
    if tol_u >= (ANGLE_UNITS >> shift):
        raise ValueError("edge_votes: the angle tolerance must be less than one angle cell")
    third = np.float32(1.0 / 3.0)
    # A's edges with a_i < a_j, gathered without a branch (their order is random to the CPU)
    fwd = np.empty(a_len.shape[0], dtype=np.int32)
    n_fwd = 0
    for p in range(a_len.shape[0]):
        fwd[n_fwd] = p
        n_fwd += a_i[p] < a_j[p]
    # one A edge meets each B edge at most once (a cell lists an edge once)
    hit_key = np.empty(b_len.shape[0] + 1, dtype=np.int64)
    hit_q = np.empty(b_len.shape[0] + 1, dtype=np.int32)
    hit_w = np.empty(b_len.shape[0] + 1, dtype=np.float64)
    for f in range(n_fwd):
        p = fwd[f]
        L = a_len[p]
        tol = np.float32(len_tol + len_tol_rel * L)
        inv_tol = np.float32(1.0) / tol
        lo = L - tol
        hi = L + tol
        pai = a_ai[p]
        paj = a_aj[p]
        # the buckets the scan visited: first angle from first1 on (it may start at -1 and
        # wraps), length bins lb_first..lb_last, second angle lo2..hi2 and then the part of
        # its range that wraps past 0 or n_side
        first1 = (pai - tol_u) >> shift
        lo2 = max((paj - tol_u) >> shift, 0)
        hi2 = min((paj + tol_u) >> shift, n_side - 1)
        lb_first = max(int(lo * inv_len_bin), 0)
        lb_last = min(int(hi * inv_len_bin), n_len_bins - 1)
        cell = (pai >> shift) * n_side + (paj >> shift)
        n_hit = 0
        # from the first edge at least lb_first * len_bin long (shorter ones fail lq >= lo)
        for e in range(b_cell_len_start[cell * (n_len_bins + 1) + min(lb_first, n_len_bins)],
                       b_cell_start[cell + 1]):
            q = b_cell_q[e]
            lq = b_len[q]
            if lq > hi:
                break  # the cell is sorted by length
            # the tests without a branch (each is a coin toss to the CPU); the length bin is
            # tested too (the bucketed scan did not visit an edge whose float32 length
            # passes but whose bin, taken before the rounding, lies outside)
            d1 = _udiff(pai, b_ai[q])
            d2 = _udiff(paj, b_aj[q])
            lb = b_lbin[q]
            hit_q[n_hit] = q
            n_hit += (lq >= lo) & (d1 <= tol_u) & (d2 <= tol_u) & (lb >= lb_first) & (lb <= lb_last)
        # weights and the scan's order of the few agreeing edges (insertion sort; distinct keys)
        n_kept = 0
        for t in range(n_hit):
            q = hit_q[t]
            lq = b_len[q]
            w = np.float32(1.0) - (abs(lq - L) * inv_tol + (_udiff(pai, b_ai[q]) + _udiff(paj, b_aj[q]))
                                   * inv_tol_u) * third
            if not w > 0.0:
                continue
            b2 = b_aj[q] >> shift
            part = (b2 < lo2) | (b2 > hi2)
            key = (((((b_ai[q] >> shift) - first1) & mask) * n_len_bins + b_lbin[q]) * 2 + part) * 65536 + q
            u = n_kept
            while u > 0 and hit_key[u - 1] > key:
                hit_key[u] = hit_key[u - 1]
                hit_q[u] = hit_q[u - 1]
                hit_w[u] = hit_w[u - 1]
                u -= 1
            hit_key[u] = key
            hit_q[u] = q
            hit_w[u] = w
            n_kept += 1
        i = a_i[p]
        j = a_j[p]
        adir = a_dir[p]
        for h in range(n_kept):
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
                         b_lbin, b_cell_start, b_cell_len_start, b_cell_q, na, nb, len_tol, len_tol_rel, ang_tol, len_bin=None,
                         n_len_bins=None):
    """Plain-numpy reference of `edge_votes` (all edge pairs at once, no index; b_lbin, b_cell_*
    unused). Each edge is compared by its float32 length alone, where the kernel also keeps
    to the length bins the bucketed scan visited (rare differences at a bin edge)."""
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
