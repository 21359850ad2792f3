"""Oriented 1-D filtering: the building block of contextual (Gabor-like) enhancement.

A 2-D oriented Gabor filter is approximated by two 1-D passes that follow the
local orientation field: a Gaussian smoothing *along* the ridges, then a 1-D
Gabor (zero-mean cosine times Gaussian, tuned to the local ridge frequency)
*across* them. Each output pixel is a weighted sum of bilinear samples of the
input taken at p + t*u(p), t = -R..R, where u(p) is the per-pixel unit
direction and the weights come from row idx(p) of a small table (one row per
quantised frequency). Two passes of 2R+1 samples cost far less than one
(2R+1)^2 2-D kernel, which keeps extraction inside the time budget on a Pi.

No `fastmath`: it lets LLVM fuse multiply-adds (on aarch64, and on x86-64
CPUs with FMA) and reorder the sums, so the enhanced image, and through the
binarisation the skeleton and the minutiae, would depend on the CPU. Exact
IEEE arithmetic costs about 3.5 ms per 300x300 pass on x86-64 and gives the
same bits on every architecture (tests/test_determinism.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def line_filter(img, ux, uy, idx, mask, table):
    """out[y, x] = sum_t table[idx[y, x], t] * img(x + (t-R)*ux, y + (t-R)*uy), inside mask.

    img float32 HxW; ux, uy float32 HxW unit direction; idx int HxW row of
    `table` (K x (2R+1) float32); mask bool HxW. Samples are bilinear with
    coordinates clamped to the image. Pixels outside the mask get 0.
    """
    h, w = img.shape
    n = table.shape[1]
    r = (n - 1) // 2
    umax = 1.0
    for y in range(h):
        for x in range(w):
            umax = max(umax, abs(ux[y, x]), abs(uy[y, x]))
    pad = int(r * umax) + 2  # every sample stays inside the padded copy
    # edge-replicated copy: sampling it equals sampling with clamped coordinates
    big = np.empty((h + 2 * pad, w + 2 * pad), dtype=np.float32)
    for y in range(h + 2 * pad):
        sy = min(max(y - pad, 0), h - 1)
        for x in range(w + 2 * pad):
            big[y, x] = img[sy, min(max(x - pad, 0), w - 1)]
    out = np.zeros((h, w), dtype=np.float32)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            k = idx[y, x]
            dx = ux[y, x]
            dy = uy[y, x]
            acc = np.float32(0.0)
            fx = np.float32(x + pad) - np.float32(r) * dx  # float32 throughout: no
            fy = np.float32(y + pad) - np.float32(r) * dy  # conversions in the inner loop
            for t in range(n):
                x0 = np.int32(fx)
                y0 = np.int32(fy)
                ax = fx - np.float32(x0)
                ay = fy - np.float32(y0)
                top = big[y0, x0] + ax * (big[y0, x0 + 1] - big[y0, x0])
                bot = big[y0 + 1, x0] + ax * (big[y0 + 1, x0 + 1] - big[y0 + 1, x0])
                acc += table[k, t] * (top + ay * (bot - top))
                fx += dx
                fy += dy
            out[y, x] = acc
    return out


def line_filter_reference(img, ux, uy, idx, mask, table):
    """Plain-numpy version of `line_filter` (vectorised over pixels, loop over taps)."""
    h, w = img.shape
    n = table.shape[1]
    r = (n - 1) // 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), dtype=np.float32)
    for t in range(n):
        s = np.float32(t - r)
        fx = np.clip(xx + s * ux, 0, w - 1).astype(np.float32)
        fy = np.clip(yy + s * uy, 0, h - 1).astype(np.float32)
        x0 = np.minimum(fx.astype(np.int64), w - 2)
        y0 = np.minimum(fy.astype(np.int64), h - 2)
        ax = fx - x0
        ay = fy - y0
        v = ((1 - ax) * (1 - ay) * img[y0, x0] + ax * (1 - ay) * img[y0, x0 + 1]
             + (1 - ax) * ay * img[y0 + 1, x0] + ax * ay * img[y0 + 1, x0 + 1])
        out += table[idx, t] * v
    out[~mask] = 0
    return out


def gaussian_row(sigma: float, radius: int, step: float = 1.0) -> np.ndarray:
    """A normalised Gaussian smoothing row of 2*radius+1 taps `step` pixels apart (one-row table).

    Use it with the direction vectors multiplied by `step`.
    """
    t = np.arange(-radius, radius + 1, dtype=np.float64) * step
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)[None, :]


def gabor_rows(periods, sigma: float, radius: int) -> np.ndarray:
    """Zero-mean 1-D Gabor rows, one per ridge period (pixels), unit response to a matching sinusoid."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    rows = []
    for period in periods:
        c = np.cos(2 * np.pi * t / period)
        row = g * c
        row -= g * (row.sum() / g.sum())  # zero DC response: flat areas give 0
        row /= np.sum(row * c)  # gain 1 on a ridge pattern of this period
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)
