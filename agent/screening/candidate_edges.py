"""A gallery entry's matcher edges kept compactly, so a search need not rebuild them.

`matcher.expand` rebuilds a candidate's edges from its minutiae (nearest
neighbours, an atan2 and three angle roundings per edge, a sort): about
0.1 ms for 40 minutiae, more than the match itself. Kept instead: per edge,
in the order the edge kernel sorted them, the two minutia indexes and the
three angles in 1/256 turns (5 bytes; about 1.6 KB per template). From those
and the stored minutiae, `prepared` restores the lengths (the kernel's own
float64 square root of float32 coordinates) and the bucket starts (a count
over the same bucket formula) in a few microseconds; the packed bytes are the
Prepared's own edge array. The same arrays, bit for bit, as `matcher.expand`
(tests/test_candidate_edges.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fpagent.biometrics import matcher


def pack(p: matcher.Prepared) -> np.ndarray:
    """(5, edges) uint8: i, j, angle at i, angle at j, direction of each edge, in order."""
    return np.ascontiguousarray(p.edges, dtype=np.uint8)


@njit(cache=True)
def _unpack(x32, y32, packed, len_bin, n_len_bins, bucket_shift, buckets_per_angle, n_buckets):
    """The edges' lengths and bucket starts (the byte fields are `packed` itself)."""
    m = packed.shape[1]
    length = np.empty(m, np.float32)
    starts = np.zeros(n_buckets + 1, np.int32)
    for e in range(m):
        i = packed[0, e]
        j = packed[1, e]
        dx = np.float64(x32[j]) - np.float64(x32[i])
        dy = np.float64(y32[j]) - np.float64(y32[i])
        d = math.sqrt(dx * dx + dy * dy)
        length[e] = d
        lb = min(int(d / len_bin), n_len_bins - 1)
        starts[((packed[2, e] >> bucket_shift) * n_len_bins + lb) * buckets_per_angle
               + (packed[3, e] >> bucket_shift) + 1] += 1
    for b in range(n_buckets):
        starts[b + 1] += starts[b]
    return length, starts


def prepared(stored: matcher.Stored, packed: np.ndarray) -> matcher.Prepared:
    """The entry's Prepared from its stored form and packed edges (as matcher.expand gives it)."""
    grid = np.unpackbits(stored.grid_bits, count=stored.grid_shape[0] * stored.grid_shape[1])
    length, starts = _unpack(stored.xyt[0], stored.xyt[1], packed, matcher.EDGE_LEN_BIN, matcher.EDGE_LEN_BINS,
                             matcher.BUCKET_SHIFT, matcher.BUCKETS_PER_ANGLE, matcher.N_BUCKETS)
    return matcher.Prepared(stored.xyt, length, packed, starts, grid=grid.astype(bool).reshape(stored.grid_shape),
                            key=stored.key)
