"""Prefilter scan: one probe against a whole gallery held as one (N, D) uint8 array.

Score of row g: the cosine between (g - mean) and (probe - mean), where mean
is the gallery's mean descriptor (centring removes what all fingerprints
share and leaves what tells them apart). The caller passes the centred probe
`pc`, the constant `c = mean . pc` and 1/|g - mean| per row, so the kernel is
one streaming dot product per row: (g . pc - c) * inv_norm[row].

Both kernels sum in a fixed order, without `fastmath`, so the scores are the
same bits on every CPU (a BLAS dot or np.einsum picks its summation order by
CPU: measured different between x86-64 and aarch64).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def scan(gallery, inv_norms, pc, c, count):
    """Centred cosine of the probe with each of the first `count` rows of `gallery`."""
    out = np.empty(count, dtype=np.float32)
    d = pc.shape[0]
    for r in range(count):
        acc = np.float32(0.0)
        row = gallery[r]
        for k in range(d):
            acc += np.float32(row[k]) * pc[k]
        out[r] = (acc - c) * inv_norms[r]
    return out


@njit(cache=True)
def centred_inv_norms(gallery, mean, count):
    """1 / |g - mean| of each of the first `count` rows (0 for a row equal to the mean)."""
    out = np.zeros(count, dtype=np.float32)
    d = mean.shape[0]
    for r in range(count):
        acc = 0.0
        row = gallery[r]
        for k in range(d):
            v = np.float64(np.float32(row[k]) - mean[k])
            acc += v * v
        if acc > 0.0:
            out[r] = 1.0 / max(np.sqrt(acc), 1e-12)
    return out


def centred_inv_norms_reference(gallery, mean, count):
    """Plain-numpy reference of `centred_inv_norms`."""
    g = (gallery[:count].astype(np.float32) - mean).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", g, g))
    return np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def scan_reference(gallery, inv_norms, pc, c, count):
    """Plain-numpy reference of `scan`."""
    g = gallery[:count].astype(np.float64)
    return ((g @ pc.astype(np.float64) - c) * inv_norms[:count]).astype(np.float32)
