"""fpagent.biometrics.portable_math compiled for the kernels: the same bits on every CPU.

The match kernels call these instead of math.atan2/cos/sin/exp/hypot, whose
last bit depends on the C library and the CPU (see portable_math).
"""

from __future__ import annotations

from numba import njit

from fpagent.biometrics import portable_math

atan2 = njit(cache=True, inline="always")(portable_math.atan2)
cos_sin = njit(cache=True, inline="always")(portable_math.cos_sin)
exp = njit(cache=True, inline="always")(portable_math.exp)
