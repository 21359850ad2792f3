"""Shared constants of the match kernels (no numba import: matcher.prepare uses them)."""

ANGLE_UNITS = 256  # edge angles are stored quantised: 1.40625 degrees per unit
BUCKET_SHIFT = 4  # edges bucketed by their first angle: 16 buckets of 16 units
N_BUCKETS = ANGLE_UNITS >> BUCKET_SHIFT
