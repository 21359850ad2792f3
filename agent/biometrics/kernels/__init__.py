"""Numba kernels of the image side (fields, quality, extraction), each beside a plain reference.

Every kernel is `@njit(cache=True)` so the compiled machine code is kept on
disk (NUMBA_CACHE_DIR or __pycache__) and a restart only loads it. Each has a
reference written in plain numpy (or pure Python where the algorithm is a walk)
that the tests compare it with on real images:

- `boxfilter.box_mean`       <- `boxfilter.box_mean_reference`       (moving average)
- `boxfilter.largest_component` <- `boxfilter.largest_component_reference`
- `enhance.line_filter`      <- `enhance.line_filter_reference`      (oriented 1-D filtering)
- `thinning.thin`            <- `thinning.thin_reference`            (Zhang-Suen thinning)
- `skeleton.crossing_numbers`<- `skeleton.crossing_numbers_reference`
- `skeleton.trace_branches`  <- `skeleton.trace_branches_reference`  (ridge walks from minutiae)

`fpagent.biometrics.extraction.warm_up()` compiles (or loads) all of them.
"""
