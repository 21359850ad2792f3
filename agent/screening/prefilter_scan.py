"""Prefilter scan: one probe against a whole gallery held as one (N, D) uint8 array.

Score of row g: the cosine between (g - mean) and (probe - mean), where mean
is the gallery's mean descriptor (centring removes what all fingerprints
share and leaves what tells them apart). The caller passes the centred probe
`pc`, the constant `c = mean . pc` and 1/|g - mean| per row, so the kernel is
one streaming dot product per row: (g . pc - c) * inv_norm[row].
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


def scan_reference(gallery, inv_norms, pc, c, count):
    """Plain-numpy reference of `scan`."""
    g = gallery[:count].astype(np.float64)
    return ((g @ pc.astype(np.float64) - c) * inv_norms[:count]).astype(np.float32)
