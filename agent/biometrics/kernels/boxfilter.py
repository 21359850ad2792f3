"""Box (moving-average) filter and the largest connected region: the cheap workhorses.

`box_mean` is used a dozen times per image (local mean and variance, the
structure tensor, the period estimate), so it is a running-sum kernel: cost
independent of the radius. Edges are replicated, as in the numpy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def box_mean(a, r):
    """Mean of `a` (2-D float32) over a (2r+1)^2 window, edges replicated; float32 out."""
    h, w = a.shape
    tmp = np.empty((h, w), dtype=np.float64)
    out = np.empty((h, w), dtype=np.float32)
    n = 2 * r + 1
    for y in range(h):
        s = 0.0
        for k in range(-r, r + 1):
            s += a[y, min(max(k, 0), w - 1)]
        for x in range(w):
            tmp[y, x] = s
            s += a[y, min(x + r + 1, w - 1)] - a[y, max(x - r, 0)]
    norm = 1.0 / (n * n)
    col = np.empty(w, dtype=np.float64)
    for x in range(w):
        col[x] = 0.0
    for k in range(-r, r + 1):
        kk = min(max(k, 0), h - 1)
        for x in range(w):
            col[x] += tmp[kk, x]
    for y in range(h):
        add = min(y + r + 1, h - 1)
        sub = max(y - r, 0)
        for x in range(w):
            out[y, x] = col[x] * norm
            col[x] += tmp[add, x] - tmp[sub, x]
    return out


def box_mean_reference(a, r) -> np.ndarray:
    """Plain-numpy box mean (cumulative sums over an edge-padded copy)."""
    if r <= 0:
        return np.asarray(a, dtype=np.float32).copy()
    p = np.pad(np.asarray(a, dtype=np.float64), ((r + 1, r), (r + 1, r)), mode="edge")
    c = np.cumsum(p, axis=0)
    c = c[2 * r + 1:, :] - c[:-2 * r - 1, :]
    c = np.cumsum(c, axis=1)
    c = c[:, 2 * r + 1:] - c[:, :-2 * r - 1]
    return (c / float((2 * r + 1) ** 2)).astype(np.float32)


@njit(cache=True, nogil=True)
def largest_component(m):
    """The largest 4-connected region of a boolean grid (flood fill), as a bool grid."""
    h, w = m.shape
    lab = np.zeros((h, w), dtype=np.int32)
    stack_y = np.empty(h * w, dtype=np.int32)
    stack_x = np.empty(h * w, dtype=np.int32)
    best = 0
    best_n = 0
    cur = 0
    for y0 in range(h):
        for x0 in range(w):
            if not m[y0, x0] or lab[y0, x0] != 0:
                continue
            cur += 1
            lab[y0, x0] = cur
            top = 0
            stack_y[0] = y0
            stack_x[0] = x0
            top = 1
            n = 0
            while top > 0:
                top -= 1
                y = stack_y[top]
                x = stack_x[top]
                n += 1
                for d in range(4):
                    yy = y + (d == 1) - (d == 0)
                    xx = x + (d == 3) - (d == 2)
                    if 0 <= yy < h and 0 <= xx < w and m[yy, xx] and lab[yy, xx] == 0:
                        lab[yy, xx] = cur
                        stack_y[top] = yy
                        stack_x[top] = xx
                        top += 1
            if n > best_n:
                best = cur
                best_n = n
    out = np.zeros((h, w), dtype=np.bool_)
    if best > 0:
        for y in range(h):
            for x in range(w):
                out[y, x] = lab[y, x] == best
    return out


def largest_component_reference(m) -> np.ndarray:
    """Plain-Python/numpy: grow every region by repeated 4-neighbour dilation, keep the biggest."""
    m = np.asarray(m, dtype=bool)
    remaining = m.copy()
    best = np.zeros_like(m)
    while remaining.any():
        region = np.zeros_like(m)
        region[tuple(np.argwhere(remaining)[0])] = True
        while True:
            p = np.pad(region, 1)
            grown = (p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]) & m
            if (grown == region).all():
                break
            region = grown
        if region.sum() > best.sum():
            best = region
        remaining &= ~region
    return best
