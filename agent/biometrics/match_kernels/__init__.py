"""Numba kernels of the matcher and the prefilter; each has a plain-numpy reference.

Kernels are `@njit(cache=True)` so a cold start compiles once and later
starts load machine code from __pycache__. The references live next to them
(`*_reference`) and the tests compare the two on real templates.

Numba's disk cache of a kernel is keyed on its own source file only: a kernel
that calls another (match_score -> match_edges, match_pairing) keeps the
callee it was compiled with. After editing a callee during development,
delete agent/kernels_match/__pycache__/*.nbi and *.nbc. Layout constants are
therefore passed in with the data (e.g. the bucket count is the length of
the bucket-start array), never read from module globals inside a kernel.
"""
