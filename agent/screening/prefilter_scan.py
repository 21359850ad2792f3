"""Prefilter scan: one probe against a whole gallery held as one (N, D) uint8 array.

Score of row g: the cosine between (g - mean) and (probe - mean), where mean
is the gallery's mean descriptor (centring removes what all fingerprints
share and leaves what tells them apart). The caller passes the centred probe
`pc`, the constant `c = mean . pc` and 1/|g - mean| per row, so the kernel is
one streaming dot product per row: (g . pc - c) * inv_norm[row].

Both kernels sum each row in a fixed order (k = 0, 1, ..., D - 1), without
`fastmath`, so the scores are the same bits on every CPU (a BLAS dot or
np.einsum picks its summation order by CPU: measured different between
x86-64 and aarch64). They walk a block of rows one descriptor byte at a time
rather than one row at a time: each row still adds its terms in the same
order, but the rows of a block are independent lanes the compiler turns into
SIMD, where a row at a time is one long chain of dependent additions (4x
slower at 100,000 rows). The gallery keeps its array column-major (Fortran
order) so that a block's bytes for one k are contiguous; any layout gives the
same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ROW_BLOCK = 2048  # rows summed side by side: their accumulators stay in L1


@njit(cache=True)
def scan(gallery, inv_norms, pc, c, count):
    """Centred cosine of the probe with each of the first `count` rows of `gallery`."""
    out = np.empty(count, dtype=np.float32)
    d = pc.shape[0]
    acc = np.empty(ROW_BLOCK, dtype=np.float32)
    for r0 in range(0, count, ROW_BLOCK):
        m = min(ROW_BLOCK, count - r0)
        for r in range(m):
            acc[r] = np.float32(0.0)
        for k in range(d):
            col = gallery[r0:r0 + m, k]
            p = pc[k]
            for r in range(m):
                acc[r] += np.float32(col[r]) * p
        for r in range(m):
            out[r0 + r] = (acc[r] - c) * inv_norms[r0 + r]
    return out


@njit(cache=True)
def centred_inv_norms(gallery, mean, count):
    """1 / |g - mean| of each of the first `count` rows (0 for a row equal to the mean)."""
    out = np.zeros(count, dtype=np.float32)
    d = mean.shape[0]
    acc = np.empty(ROW_BLOCK, dtype=np.float64)
    for r0 in range(0, count, ROW_BLOCK):
        m = min(ROW_BLOCK, count - r0)
        for r in range(m):
            acc[r] = 0.0
        for k in range(d):
            col = gallery[r0:r0 + m, k]
            mk = mean[k]
            for r in range(m):
                v = np.float64(np.float32(col[r]) - mk)
                acc[r] += v * v
        for r in range(m):
            if acc[r] > 0.0:
                out[r0 + r] = 1.0 / max(np.sqrt(acc[r]), 1e-12)
    return out


def centred_inv_norms_reference(gallery, mean, count):
    """Plain-numpy reference of `centred_inv_norms`."""
    g = (gallery[:count].astype(np.float32) - mean).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", g, g))
    return np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def scan_reference(gallery, inv_norms, pc, c, count):
    """Plain-numpy reference of `scan` with the same float32 operations in the same order
    (one rounded product, then one rounded sum per byte, k ascending): the same bits."""
    pc = np.asarray(pc, dtype=np.float32)
    c = np.float32(c)
    acc = np.zeros(count, dtype=np.float32)
    for k in range(pc.shape[0]):
        acc += gallery[:count, k].astype(np.float32) * pc[k]
    return (acc - c) * np.asarray(inv_norms[:count], dtype=np.float32)

