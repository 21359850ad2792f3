"""Shared constants of the match kernels (no numba import: matcher.prepare uses them)."""

ANGLE_UNITS = 256  # edge angles are stored quantised: 1.40625 degrees per unit
BUCKET_SHIFT = 4  # edges bucketed by their two end angles (16 x 16 units) and length
BUCKETS_PER_ANGLE = ANGLE_UNITS >> BUCKET_SHIFT
EDGE_LEN_BIN = 16.0  # px at 500 ppi: length bins of the buckets (the last holds all longer edges)
