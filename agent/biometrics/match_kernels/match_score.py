"""The whole 1:1 comparison of two prepared templates in one kernel call.

Edge votes give candidate correspondences; the best-voted ones are tried as
alignment anchors (rotation from the votes, translation from the anchor
pair); each alignment is consolidated by one-to-one pairing; the best one is
then refitted by least squares on its pairs (this absorbs part of the skin
distortion) and paired again. The score is

    closeness^2 / (max(overlap_a, min_overlap) * max(overlap_b, min_overlap))
        * (1 - exp(-closeness / saturation))

i.e. the square of the (tolerance-weighted) matched count over the product of
the minutiae counts each print has inside the other's area (1.0 for a
perfect match of the shared area, near 0 for unrelated prints), damped when
only a handful of minutiae agree (a tiny overlap proves little).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fpagent.biometrics import portable_math
from fpagent.biometrics.match_kernels import portable

from fpagent.biometrics.match_kernels.match_edges import edge_votes, edge_votes_reference
from fpagent.biometrics.match_kernels.match_pairing import (overlap_counts, pair_scratch, pair_under_alignment_reference,
                                               pair_with_scratch)

# indices into the params vector
P_LEN_TOL, P_LEN_TOL_REL, P_EDGE_ANG, P_DIST_TOL, P_DIST_TOL_REL, P_DIST_TOL_MAX, P_PAIR_ANG, \
    P_ANCHORS, P_MIN_OVERLAP, P_CELL, P_MIN_VOTES, P_SELECT_BY_SCORE, P_SATURATION, \
    P_EDGE_LEN_BIN, P_EDGE_LEN_BINS = range(15)


@njit(cache=True, inline="always")
def _score(matched, closeness, oa, ob, min_overlap, saturation):
    if matched < 2:
        return 0.0
    da = max(float(oa), float(matched), min_overlap)
    db = max(float(ob), float(matched), min_overlap)
    return closeness * closeness / (da * db) * (1.0 - portable.exp(-closeness / saturation))


@njit(cache=True)
def match_prepared(a_xyt, a_len, a_edges, a_bstart, a_grid, b_xyt, b_len, b_edges, b_bstart, b_grid,
                   params):
    """(similarity in [0, 1], details) of two prepared templates (A, B in the caller's order),
    each as matcher.Prepared.args: x, y, direction as the rows of one (3, n) array and the
    edges' byte fields as the rows of one (5, m) array: Numba checks every argument of every
    call, and 11 instead of 23 gave about 2% more comparisons/s (same bits)."""
    return _match(a_xyt[0], a_xyt[1], a_xyt[2], a_len, a_edges[0], a_edges[1], a_edges[2], a_edges[3],
                  a_edges[4], a_bstart, a_grid,
                  b_xyt[0], b_xyt[1], b_xyt[2], b_len, b_edges[0], b_edges[1], b_edges[2], b_edges[3],
                  b_edges[4], b_bstart, b_grid, params)


@njit(cache=True)
def _match(ax, ay, ath, a_len, a_i, a_j, a_ai, a_aj, a_dir, a_bstart, a_grid,
           bx, by, bth, b_len, b_i, b_j, b_ai, b_aj, b_dir, b_bstart, b_grid, params):
    """`match_prepared` with each row an argument of its own."""
    na = ax.shape[0]
    nb = bx.shape[0]
    details = np.zeros(4, dtype=np.float64)  # matched, overlap_a, overlap_b, closeness of the best
    if na < 2 or nb < 2:
        return 0.0, details
    votes, rc, rs = edge_votes(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai, b_aj, b_dir,
                               b_bstart, na, nb, params[P_LEN_TOL], params[P_LEN_TOL_REL], params[P_EDGE_ANG],
                               params[P_EDGE_LEN_BIN], int(params[P_EDGE_LEN_BINS]))
    cell = params[P_CELL]
    min_overlap = params[P_MIN_OVERLAP]
    scratch = pair_scratch(na, bx)
    pair_a = np.empty(na + 1, dtype=np.int32)
    pair_b = np.empty(na + 1, dtype=np.int32)
    best_pa = np.empty(na, dtype=np.int32)
    best_pb = np.empty(na, dtype=np.int32)
    best = 0.0
    best_cl = 0.0
    best_m = 0
    best_vi = 0  # anchor, rotation and closeness of the best alignment
    best_vk = 0
    best_rot = 0.0
    best_closeness = 0.0
    n_anchors = int(params[P_ANCHORS])
    by_score = params[P_SELECT_BY_SCORE] > 0.0
    # candidate anchors: correspondences with enough votes, best first; an anchor
    # already paired by an earlier alignment would give the same alignment: skipped
    cand_i = np.empty(na * nb, dtype=np.int32)
    cand_k = np.empty(na * nb, dtype=np.int32)
    cand_v = np.empty(na * nb, dtype=np.float32)
    n_cand = 0
    min_votes = params[P_MIN_VOTES]
    for i in range(na):
        for k in range(nb):
            # branch-free compaction (whether a cell has enough votes is a coin toss to the CPU)
            v = votes[i, k]
            cand_i[n_cand] = i
            cand_k[n_cand] = k
            cand_v[n_cand] = -v
            n_cand += v > min_votes
    covered = np.zeros((na, nb), dtype=np.bool_)
    for _ in range(n_anchors):
        # the best-voted candidate not yet covered (a few passes over a short list beat a sort)
        c_best = -1
        v_best = 0.0
        for c in range(n_cand):
            if cand_v[c] < v_best and not covered[cand_i[c], cand_k[c]]:
                v_best = cand_v[c]
                c_best = c
        if c_best < 0:
            break
        vi = cand_i[c_best]
        vk = cand_k[c_best]
        cand_v[c_best] = 0.0
        rot = portable.atan2(rs[vi, vk], rc[vi, vk])
        m, cl = pair_with_scratch(
            ax, ay, ath, bx, by, bth, ax[vi], ay[vi], bx[vk], by[vk], rot,
            params[P_DIST_TOL], params[P_DIST_TOL_REL], params[P_DIST_TOL_MAX], params[P_PAIR_ANG],
            pair_a, pair_b, scratch)
        for t in range(m):
            covered[pair_a[t], pair_b[t]] = True
        if by_score:
            oa, ob = overlap_counts(ax, ay, bx, by, ax[vi], ay[vi], bx[vk], by[vk], rot,
                                    a_grid, b_grid, cell)
            key = _score(m, cl, oa, ob, min_overlap, params[P_SATURATION])
        else:
            key = cl  # the overlap is counted for the alignment kept (below), not for each
        if key > best_cl:
            best_cl = key
            best_m = m
            best_vi = vi
            best_vk = vk
            best_rot = rot
            best_closeness = cl
            for t in range(m):
                best_pa[t] = pair_a[t]
                best_pb[t] = pair_b[t]
    if best_m > 0:
        oa, ob = overlap_counts(ax, ay, bx, by, ax[best_vi], ay[best_vi], bx[best_vk], by[best_vk],
                                best_rot, a_grid, b_grid, cell)
        best = _score(best_m, best_closeness, oa, ob, min_overlap, params[P_SATURATION])
        details[0] = best_m
        details[1] = oa
        details[2] = ob
        details[3] = best_closeness
    if best_m >= 3:
        # least-squares rigid refit on the best pairs, then pair again about the centroids
        sax = 0.0
        say = 0.0
        sbx = 0.0
        sby = 0.0
        for t in range(best_m):
            sax += ax[best_pa[t]]
            say += ay[best_pa[t]]
            sbx += bx[best_pb[t]]
            sby += by[best_pb[t]]
        sax /= best_m
        say /= best_m
        sbx /= best_m
        sby /= best_m
        num = 0.0
        den = 0.0
        for t in range(best_m):
            pxa = ax[best_pa[t]] - sax
            pya = ay[best_pa[t]] - say
            pxb = bx[best_pb[t]] - sbx
            pyb = by[best_pb[t]] - sby
            num += pxa * pyb - pya * pxb
            den += pxa * pxb + pya * pyb
        rot = portable.atan2(num, den)
        m, cl = pair_with_scratch(
            ax, ay, ath, bx, by, bth, sax, say, sbx, sby, rot,
            params[P_DIST_TOL], params[P_DIST_TOL_REL], params[P_DIST_TOL_MAX], params[P_PAIR_ANG],
            pair_a, pair_b, scratch)
        oa, ob = overlap_counts(ax, ay, bx, by, sax, say, sbx, sby, rot, a_grid, b_grid, cell)
        sc = _score(m, cl, oa, ob, min_overlap, params[P_SATURATION])
        if (sc if by_score else cl) > best_cl:
            best = sc
            details[0] = m
            details[1] = oa
            details[2] = ob
            details[3] = cl
    return best, details


@njit(cache=True)
def similarity(a_xyt, a_len, a_edges, a_bstart, a_grid, b_xyt, b_len, b_edges, b_bstart, b_grid, params):
    """`match_prepared`'s score alone (no details array to hand back to Python: cheaper per call)."""
    return match_prepared(a_xyt, a_len, a_edges, a_bstart, a_grid, b_xyt, b_len, b_edges, b_bstart, b_grid,
                          params)[0]


def match_prepared_reference(a_xyt, a_len, a_edges, a_bstart, a_grid, b_xyt, b_len, b_edges, b_bstart,
                             b_grid, params):
    """Plain-numpy reference of `match_prepared`'s score, composed of the numpy references
    of the edge votes and the pairing (for the tests and the benchmark's speed ratio)."""
    ax, ay, ath = a_xyt
    bx, by, bth = b_xyt
    a_i, a_j, a_ai, a_aj, a_dir = a_edges
    b_i, b_j, b_ai, b_aj, b_dir = b_edges
    if ax.shape[0] < 2 or bx.shape[0] < 2:
        return 0.0
    prm = params

    def score(m, cl, oa, ob):
        if m < 2:
            return 0.0
        lo = prm[P_MIN_OVERLAP]
        return cl * cl / (max(oa, m, lo) * max(ob, m, lo)) * (1.0 - portable_math.exp(-cl / prm[P_SATURATION]))

    def pair(a0x, a0y, b0x, b0y, rot):
        return pair_under_alignment_reference(
            ax, ay, ath, bx, by, bth, a0x, a0y, b0x, b0y, rot, prm[P_DIST_TOL], prm[P_DIST_TOL_REL],
            prm[P_DIST_TOL_MAX], prm[P_PAIR_ANG], a_grid, b_grid, prm[P_CELL])

    votes, rc, rs = edge_votes_reference(a_len, a_i, a_j, a_ai, a_aj, a_dir, b_len, b_i, b_j, b_ai,
                                         b_aj, b_dir, b_bstart, ax.shape[0], bx.shape[0],
                                         prm[P_LEN_TOL], prm[P_LEN_TOL_REL], prm[P_EDGE_ANG])
    covered = np.zeros(votes.shape, dtype=bool)
    best_cl, best, best_pairs = 0.0, 0.0, []
    cand = votes > prm[P_MIN_VOTES]
    for _ in range(int(prm[P_ANCHORS])):
        v = np.where(cand & ~covered, votes, -np.inf)
        if not np.isfinite(v.max()):
            break
        i, k = np.unravel_index(np.argmax(v), v.shape)
        cand[i, k] = False
        m, oa, ob, cl, pairs = pair(ax[i], ay[i], bx[k], by[k],
                                    portable_math.atan2(float(rs[i, k]), float(rc[i, k])))
        for a, b in pairs:
            covered[a, b] = True
        if cl > best_cl:
            best_cl, best, best_pairs = cl, score(m, cl, oa, ob), pairs
    if len(best_pairs) >= 3:
        ia = np.array([a for a, _ in best_pairs])
        ib = np.array([b for _, b in best_pairs])
        ca = (ax[ia].mean(dtype=np.float64), ay[ia].mean(dtype=np.float64))
        cb = (bx[ib].mean(dtype=np.float64), by[ib].mean(dtype=np.float64))
        pxa, pya = ax[ia] - ca[0], ay[ia] - ca[1]
        pxb, pyb = bx[ib] - cb[0], by[ib] - cb[1]
        rot = portable_math.atan2(float(np.sum(pxa * pyb - pya * pxb)), float(np.sum(pxa * pxb + pya * pyb)))
        m, oa, ob, cl, _ = pair(ca[0], ca[1], cb[0], cb[1], rot)
        if cl > best_cl:
            best = score(m, cl, oa, ob)
    return float(best)
