"""Zhang-Suen thinning: binary ridges -> one-pixel-wide skeleton.

Zhang & Suen (CACM 1984): two parallel sub-iterations, each deleting the
boundary pixels whose 8-neighbourhood (p2..p9 clockwise from north) has
2..6 ridge neighbours, exactly one 0->1 transition, and (sub-iteration 1)
p2*p4*p6 == 0 and p4*p6*p8 == 0, or (sub-iteration 2) p2*p4*p8 == 0 and
p2*p6*p8 == 0. Decisions of one sub-iteration use the image before it, which
is what makes the numpy reference (vectorised) and the kernel (marks, then
deletes) give identical skeletons. The one-pixel image border is cleared.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def thin(binary):
    """Skeleton (uint8 0/1) of a binary image (any integer/bool dtype, nonzero = ridge).

    Visits only the ridge pixels still standing (a shrinking list), not the
    whole image, at each sub-iteration.
    """
    h, w = binary.shape
    img = np.zeros((h, w), dtype=np.uint8)
    n_live = 0
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if binary[y, x]:
                img[y, x] = 1
                n_live += 1
    live_y = np.empty(n_live, dtype=np.int32)
    live_x = np.empty(n_live, dtype=np.int32)
    k = 0
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if img[y, x]:
                live_y[k] = y
                live_x[k] = x
                k += 1
    marks = np.empty(n_live, dtype=np.int32)
    changed = True
    while changed:
        changed = False
        for sub in range(2):
            n = 0
            for i in range(n_live):
                y = live_y[i]
                x = live_x[i]
                p2 = img[y - 1, x]
                p3 = img[y - 1, x + 1]
                p4 = img[y, x + 1]
                p5 = img[y + 1, x + 1]
                p6 = img[y + 1, x]
                p7 = img[y + 1, x - 1]
                p8 = img[y, x - 1]
                p9 = img[y - 1, x - 1]
                b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9
                if b < 2 or b > 6:
                    continue
                a = ((p2 == 0 and p3 == 1) + (p3 == 0 and p4 == 1) + (p4 == 0 and p5 == 1)
                     + (p5 == 0 and p6 == 1) + (p6 == 0 and p7 == 1) + (p7 == 0 and p8 == 1)
                     + (p8 == 0 and p9 == 1) + (p9 == 0 and p2 == 1))
                if a != 1:
                    continue
                if sub == 0:
                    if p2 * p4 * p6 != 0 or p4 * p6 * p8 != 0:
                        continue
                else:
                    if p2 * p4 * p8 != 0 or p2 * p6 * p8 != 0:
                        continue
                marks[n] = i
                n += 1
            for j in range(n):
                img[live_y[marks[j]], live_x[marks[j]]] = 0
            if n > 0:
                changed = True
                # drop the deleted pixels from the live list (order kept)
                k = 0
                for i in range(n_live):
                    if img[live_y[i], live_x[i]]:
                        live_y[k] = live_y[i]
                        live_x[k] = live_x[i]
                        k += 1
                n_live = k
    return img


def thin_reference(binary) -> np.ndarray:
    """Plain-numpy Zhang-Suen (whole-image boolean algebra per sub-iteration)."""
    img = np.zeros(binary.shape, dtype=np.uint8)
    img[1:-1, 1:-1] = np.asarray(binary[1:-1, 1:-1] != 0, dtype=np.uint8)
    while True:
        changed = False
        for sub in range(2):
            c = img[1:-1, 1:-1]
            p2, p3, p4 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:]
            p5, p6, p7 = img[2:, 2:], img[2:, 1:-1], img[2:, :-2]
            p8, p9 = img[1:-1, :-2], img[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = sum(p.astype(np.int32) for p in ring[:8])
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            if sub == 0:
                cond = ((p2 * p4 * p6) == 0) & ((p4 * p6 * p8) == 0)
            else:
                cond = ((p2 * p4 * p8) == 0) & ((p2 * p6 * p8) == 0)
            delete = (c == 1) & (b >= 2) & (b <= 6) & (a == 1) & cond
            if delete.any():
                changed = True
                inner = img[1:-1, 1:-1].copy()
                inner[delete] = 0
                img[1:-1, 1:-1] = inner
        if not changed:
            return img
