"""Numba kernels of the matcher and the prefilter (H4); each has a plain-numpy reference.

Kernels are `@njit(cache=True)` so a cold start compiles once and later
starts load machine code from __pycache__. The references live next to them
(`*_reference`) and the tests compare the two on real templates.
"""
