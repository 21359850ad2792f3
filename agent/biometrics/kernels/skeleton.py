"""Skeleton analysis: crossing numbers and short ridge walks from each minutia.

Crossing number (Rutovitz): for a skeleton pixel, the number of 0->1
transitions going once round its 8 neighbours; 1 = ridge ending, 2 = ridge
continues, 3+ = bifurcation (or crossing). Walking a few pixels along every
branch leaving a minutia gives its direction and tells spurs, bridges, holes
and short ridges apart (the walk stops on another minutia).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ring of the 8 neighbours clockwise from north: (dy, dx)
RING_DY = np.array([-1, -1, 0, 1, 1, 1, 0, -1], dtype=np.int64)
RING_DX = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)

STOP_LENGTH = 0    # walked max_steps without meeting anything
STOP_ENDING = 1    # the ridge ended (dead end or an unlabelled ending)
STOP_MINUTIA = 2   # met another labelled minutia (index in `hit`)
STOP_JUNCTION = 3  # met an unlabelled junction pixel


@njit(cache=True, nogil=True)
def crossing_numbers(skel):
    """int8 HxW: crossing number of every skeleton pixel (0 elsewhere and on the border)."""
    h, w = skel.shape
    out = np.zeros((h, w), dtype=np.int8)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if skel[y, x] == 0:
                continue
            c = 0
            for k in range(8):
                a = skel[y + RING_DY[k], x + RING_DX[k]]
                b = skel[y + RING_DY[(k + 1) % 8], x + RING_DX[(k + 1) % 8]]
                if a == 0 and b != 0:
                    c += 1
            out[y, x] = c
    return out


def crossing_numbers_reference(skel) -> np.ndarray:
    """Plain-numpy crossing numbers."""
    s = (np.asarray(skel) != 0).astype(np.int8)
    h, w = s.shape
    out = np.zeros((h, w), dtype=np.int8)
    ring = [s[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy, dx in zip(RING_DY, RING_DX)]
    c = np.zeros((h - 2, w - 2), dtype=np.int8)
    for k in range(8):
        c += ((ring[k] == 0) & (ring[(k + 1) % 8] != 0)).astype(np.int8)
    out[1:-1, 1:-1] = np.where(s[1:-1, 1:-1] != 0, c, 0)
    return out


@njit(cache=True, nogil=True)
def trace_branches(skel, cn, label, ys, xs, max_steps, dir_steps):
    """Walk up to `max_steps` pixels along each branch (max 4) leaving each minutia.

    label: int32 HxW, minutia index + 1 at each minutia pixel, 0 elsewhere.
    Returns (nbranch[n], steps[n,4], stop[n,4], hit[n,4], dir_y[n,4], dir_x[n,4]):
    steps walked, why the walk stopped (STOP_*), the index of the minutia met
    (-1 if none), and the pixel reached after `dir_steps` steps (or where the
    walk stopped, if earlier), which gives the branch direction.
    """
    h, w = skel.shape
    n = ys.shape[0]
    nbranch = np.zeros(n, dtype=np.int32)
    steps = np.zeros((n, 4), dtype=np.int32)
    stop = np.zeros((n, 4), dtype=np.int32)
    hit = np.full((n, 4), -1, dtype=np.int32)
    dir_y = np.zeros((n, 4), dtype=np.int32)
    dir_x = np.zeros((n, 4), dtype=np.int32)
    hist_y = np.zeros(8, dtype=np.int64)
    hist_x = np.zeros(8, dtype=np.int64)
    for i in range(n):
        cy = ys[i]
        cx = xs[i]
        # branch starts: one pixel per run of ridge pixels round the ring (4-neighbour preferred)
        sy = np.zeros(4, dtype=np.int64)
        sx = np.zeros(4, dtype=np.int64)
        nb = 0
        for k in range(8):
            prev = (k + 7) % 8
            a = skel[cy + RING_DY[prev], cx + RING_DX[prev]]
            b = skel[cy + RING_DY[k], cx + RING_DX[k]]
            if a == 0 and b != 0 and nb < 4:
                kk = k
                # the run starting at k: take its first 4-neighbour if it has one
                j = k
                while skel[cy + RING_DY[j], cx + RING_DX[j]] != 0:
                    if j % 2 == 0:
                        kk = j
                        break
                    j = (j + 1) % 8
                    if j == k:
                        break
                sy[nb] = cy + RING_DY[kk]
                sx[nb] = cx + RING_DX[kk]
                nb += 1
        nbranch[i] = nb
        for b in range(nb):
            # history: the minutia, every branch start, and the last two pixels
            nh = 0
            hist_y[nh] = cy
            hist_x[nh] = cx
            nh += 1
            for b2 in range(nb):
                if b2 != b:
                    hist_y[nh] = sy[b2]
                    hist_x[nh] = sx[b2]
                    nh += 1
            ry0 = cy
            rx0 = cx
            ry1 = cy
            rx1 = cx
            py = sy[b]
            px = sx[b]
            s = 1
            reason = STOP_LENGTH
            dir_y[i, b] = py
            dir_x[i, b] = px
            while True:
                if s <= dir_steps:
                    dir_y[i, b] = py
                    dir_x[i, b] = px
                lab = label[py, px]
                if lab > 0 and lab != i + 1:
                    reason = STOP_MINUTIA
                    hit[i, b] = lab - 1
                    break
                if cn[py, px] >= 3:
                    reason = STOP_JUNCTION
                    break
                if cn[py, px] == 1:
                    reason = STOP_ENDING
                    break
                if s >= max_steps:
                    break
                # next pixel: a ridge neighbour not just visited, 4-neighbours first
                found = False
                for parity in range(2):
                    for k in range(parity, 8, 2):
                        qy = py + RING_DY[k]
                        qx = px + RING_DX[k]
                        if qy <= 0 or qx <= 0 or qy >= h - 1 or qx >= w - 1:
                            continue
                        if skel[qy, qx] == 0:
                            continue
                        seen = (qy == ry0 and qx == rx0) or (qy == ry1 and qx == rx1)
                        for m in range(nh):
                            if qy == hist_y[m] and qx == hist_x[m]:
                                seen = True
                        if seen:
                            continue
                        ry0 = ry1
                        rx0 = rx1
                        ry1 = py
                        rx1 = px
                        py = qy
                        px = qx
                        found = True
                        break
                    if found:
                        break
                if not found:
                    reason = STOP_ENDING
                    break
                s += 1
            steps[i, b] = s
            stop[i, b] = reason
    return nbranch, steps, stop, hit, dir_y, dir_x


# The walk is inherently sequential; its reference is the same algorithm run as
# plain Python (numba keeps the undecorated function), which checks compilation.
trace_branches_reference = trace_branches.py_func
