"""atan2, cos/sin and exp that give the same bits on every CPU.

The C library's transcendental functions are not required to round the same
way on x86-64 and aarch64 (glibc even picks a different code path on x86-64
CPUs with and without FMA), and numpy's SIMD loops differ between
architectures (measured: np.arctan2, np.hypot and np.exp disagree in the last
bit on 5-13% of random inputs between this project's x86-64 host and
aarch64; numba's math.hypot on 13%). A last-bit difference in a rotation or a
distance moves a match score, and near a bin edge a descriptor byte.

These are the FreeBSD/fdlibm algorithms (error below 1 ulp) written with
nothing but IEEE-754 +, -, *, / and comparisons, which every conforming CPU
rounds identically, so the result depends on the input only. They hold as long
as nothing fuses a multiply and an add: the Numba kernels that call them run
without `fastmath` (numba then emits no contraction flags), and numpy applies
one operation per ufunc call. For hypot, use sqrt(dx * dx + dy * dy): sqrt is
correctly rounded everywhere.

Plain Python, importable without numba: the kernels compile the scalar
functions (fpagent.biometrics.match_kernels.portable), the numpy references
and the prefilter use `atan2_array`, which gives the same bits as `atan2`
element by element (tests/test_portable_math.py).
"""

from __future__ import annotations

import numpy as np

PI = 3.14159265358979311600e+00
PI_LO = 1.22464679914735317720e-16
PI_O_2 = 1.57079632679489655800e+00

_ATANHI = (4.63647609000806093515e-01, 7.85398163397448278999e-01, 9.82793723247329054082e-01,
           1.57079632679489655800e+00)
_ATANLO = (2.26987774529616870924e-17, 3.06161699786838301793e-17, 1.39033110312309984516e-17,
           6.12323399573676603587e-17)
_AT = (3.33333333333329318027e-01, -1.99999999998764832476e-01, 1.42857142725034663711e-01,
       -1.11111104054623557880e-01, 9.09088713343650656196e-02, -7.69187620504482999495e-02,
       6.66107313738753120669e-02, -5.83357013379057348645e-02, 4.97687799461593236017e-02,
       -3.65315727442169155270e-02, 1.62858201153657823623e-02)
_BIG = 7.37869762948382064640e+19  # 2**66: atan is pi/2 to double precision beyond
_TINY = 7.45058059692382812500e-09  # 2**-27: atan(x) == x below
_RATIO_BIG = 1.15292150460684697600e+18  # 2**60


def atan2(y: float, x: float) -> float:
    """Angle of (x, y) in [-pi, pi] (fdlibm e_atan2.c with s_atan.c inline; finite inputs;
    atan2(+-0, +0) = +-0, atan2(+-0, -0) = +-pi)."""
    if y == 0.0:
        if x > 0.0 or (x == 0.0 and np.copysign(1.0, x) > 0.0):
            return y
        return -PI if np.copysign(1.0, y) < 0.0 else PI
    if x == 0.0:
        return -PI_O_2 if y < 0.0 else PI_O_2
    ax = abs(x)
    ay = abs(y)
    if ay > _RATIO_BIG * ax:
        z = PI_O_2 + 0.5 * PI_LO
    elif x < 0.0 and ay * _RATIO_BIG < ax:
        z = 0.0
    else:
        # atan of the ratio (>= 0), reduced to one of five intervals
        a = ay / ax
        if a >= _BIG:
            z = _ATANHI[3] + _ATANLO[3]
        elif a < _TINY:
            z = a
        else:
            if a < 0.4375:
                idx = -1
                t = a
            elif a < 0.6875:
                idx = 0
                t = (2.0 * a - 1.0) / (2.0 + a)
            elif a < 1.1875:
                idx = 1
                t = (a - 1.0) / (a + 1.0)
            elif a < 2.4375:
                idx = 2
                t = (a - 1.5) / (1.0 + 1.5 * a)
            else:
                idx = 3
                t = -1.0 / a
            zz = t * t
            w = zz * zz
            s1 = zz * (_AT[0] + w * (_AT[2] + w * (_AT[4] + w * (_AT[6] + w * (_AT[8] + w * _AT[10])))))
            s2 = w * (_AT[1] + w * (_AT[3] + w * (_AT[5] + w * (_AT[7] + w * _AT[9]))))
            if idx < 0:
                z = t - t * (s1 + s2)
            else:
                z = _ATANHI[idx] - ((t * (s1 + s2) - _ATANLO[idx]) - t)
    if x > 0.0:
        return -z if y < 0.0 else z
    if y < 0.0:
        return (z - PI_LO) - PI
    return PI - (z - PI_LO)


_INVPIO2 = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_2T = 2.02226624879595063154e-21
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


def cos_sin(x: float) -> tuple[float, float]:
    """(cos x, sin x) (FreeBSD k_cos.c/k_sin.c after a two-step Cody-Waite reduction by pi/2:
    within 1 ulp for |x| below about 1e5, which covers every angle the matcher forms)."""
    n = np.floor(x * _INVPIO2 + 0.5)
    # x - n * pi/2 in three parts (pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_2T): good to ~118 bits
    t = x - n * _PIO2_1
    w = n * _PIO2_2
    r = t - w
    w = n * _PIO2_2T - ((t - r) - w)
    y0 = r - w
    y1 = (r - y0) - w
    z = y0 * y0
    w = z * z
    v = z * y0
    r = _S[1] + z * (_S[2] + z * _S[3]) + z * w * (_S[4] + z * _S[5])
    s = y0 - ((z * (0.5 * y1 - v * r) - y1) - v * _S[0])
    r = z * (_C[0] + z * (_C[1] + z * _C[2])) + w * w * (_C[3] + z * (_C[4] + z * _C[5]))
    hz = 0.5 * z
    w = 1.0 - hz
    c = w + (((1.0 - w) - hz) + (z * r - y0 * y1))
    q = int(n) & 3
    if q == 0:
        return c, s
    if q == 1:
        return -s, c
    if q == 2:
        return -c, -s
    return s, -c


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INVLN2 = 1.44269504088896338700e+00
_P = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
      -1.65339022054652515390e-06, 4.13813679705723846039e-08)
_HALF_LN2 = 3.46573590279972654709e-01
_EXP_TINY = 3.72529029846191406250e-09  # 2**-28


def exp(x: float) -> float:
    """e**x (fdlibm e_exp.c) for -700 < x < 700."""
    ax = abs(x)
    if ax < _EXP_TINY:
        return 1.0 + x
    k = 0
    hi = x
    lo = 0.0
    if ax > _HALF_LN2:
        k = int(_INVLN2 * x + (0.5 if x > 0.0 else -0.5))
        hi = x - k * _LN2_HI
        lo = k * _LN2_LO
        x = hi - lo
    t = x * x
    c = x - t * (_P[0] + t * (_P[1] + t * (_P[2] + t * (_P[3] + t * _P[4]))))
    if k == 0:
        return 1.0 - ((x * c) / (c - 2.0) - x)
    y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi)
    # times 2**k, exactly (repeated squaring of exact powers of two)
    base = 2.0 if k > 0 else 0.5
    k = abs(k)
    while k:
        if k & 1:
            y *= base
        base *= base
        k >>= 1
    return y


_ATAN_EDGES = np.array([0.4375, 0.6875, 1.1875, 2.4375])


def atan_array(x: np.ndarray) -> np.ndarray:
    """fdlibm's atan element by element with numpy ufuncs (the same bits as `atan2`'s)."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    # interval -1 .. 3, as the scalar code's comparisons pick it
    idx = np.searchsorted(_ATAN_EDGES, ax, side="right") - 1
    t = np.empty_like(ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = idx == -1
        t[m] = x[m]
        m = idx == 0
        a = ax[m]
        t[m] = (2.0 * a - 1.0) / (2.0 + a)
        m = idx == 1
        a = ax[m]
        t[m] = (a - 1.0) / (a + 1.0)
        m = idx == 2
        a = ax[m]
        t[m] = (a - 1.5) / (1.0 + 1.5 * a)
        m = idx == 3
        t[m] = -1.0 / ax[m]
    z = t * t
    w = z * z
    s1 = z * (_AT[0] + w * (_AT[2] + w * (_AT[4] + w * (_AT[6] + w * (_AT[8] + w * _AT[10])))))
    s2 = w * (_AT[1] + w * (_AT[3] + w * (_AT[5] + w * (_AT[7] + w * _AT[9]))))
    sel = np.maximum(idx, 0)
    r = np.array(_ATANHI)[sel] - ((t * (s1 + s2) - np.array(_ATANLO)[sel]) - t)
    out = np.where(idx < 0, t - t * (s1 + s2), np.where(x < 0.0, -r, r))
    out = np.where(ax < _TINY, x, out)
    big = _ATANHI[3] + _ATANLO[3]
    return np.where(ax >= _BIG, np.where(x < 0.0, -big, big), out)


def atan2_array(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`atan2` element by element with numpy ufuncs (the same bits)."""
    y, x = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64))
    ax = np.abs(x)
    ay = np.abs(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = atan_array(ay / ax)
    z = np.where(ay > _RATIO_BIG * ax, PI_O_2 + 0.5 * PI_LO, np.where((x < 0.0) & (ay * _RATIO_BIG < ax), 0.0, z))
    out = np.where(x > 0.0, np.where(y < 0.0, -z, z),
                   np.where(y < 0.0, (z - PI_LO) - PI, PI - (z - PI_LO)))
    out = np.where(x == 0.0, np.where(y < 0.0, -PI_O_2, PI_O_2), out)
    neg_x = (x < 0.0) | ((x == 0.0) & (np.copysign(1.0, x) < 0.0))
    out = np.where(y == 0.0, np.where(neg_x, np.where(np.copysign(1.0, y) < 0.0, -PI, PI), y), out)
    return out
