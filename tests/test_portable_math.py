"""The portable atan2, cos/sin and exp: within 1 ulp of the C library, the same bits compiled
(Numba), interpreted (Python) and vectorised (numpy), and the same bits as recorded on
x86-64 (scripts/check-arm64 runs this file on aarch64); and the prefilter's fixed-order
norm kernel against its reference (test_prefilter needs NBIS, so it does not run there)."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from fpagent.biometrics import portable_math
from fpagent.biometrics.match_kernels import match_edges, portable
from fpagent.screening.prefilter_scan import centred_inv_norms, centred_inv_norms_reference

N = 4000
# inputs made by exact arithmetic (no random generator whose own numerics could vary)
_I = np.arange(N, dtype=np.float64)
XS = ((_I * 7919.0) % 20011.0 - 10005.0) / 33.0
YS = ((_I * 104729.0) % 19997.0 - 9998.0) / 31.0
ANGLES = ((_I * 6007.0) % 40009.0 - 20004.0) / 997.0  # about -20 .. 20 radians
EXPS = -((_I * 3571.0) % 12007.0) / 1000.0  # 0 .. -12, the score's damping range
SPECIAL = [(0.0, 1.0), (-0.0, 1.0), (0.0, -1.0), (-0.0, -1.0), (0.0, 0.0), (-0.0, -0.0), (1.0, 0.0),
           (-1.0, 0.0), (1e-300, 1.0), (1.0, 1e-300), (1e-300, -1.0), (3.0, 1.0), (1.0, 1.0)]

# SHA-256 of the outputs below, recorded on x86-64: another CPU must give the same bits
RECORDED = {
    "atan2": "5726abb645dd9655a3d2c4ed52799fd559c801b358b1cc4a8505e261e7e6bf0a",
    "cos_sin": "138759811c624dff050efd7da7660bd8b0c605aae2882444079c232e58d70a9f",
    "exp": "f48078b9552eb1ec975ebdb48a9a5bb8bb6ce17b75fbe7e9d6bf670099c0b719",
    "edge_tables": "f3dda8479e090b7c33c12911b8278886192a730531b328bf890d3d33b0bd7270",
}


def _ulps(got, want):
    return np.max(np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1e-300)))


def _sha(*arrays) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(a, dtype=np.float64).tobytes() for a in arrays)).hexdigest()


def _atan2_all():
    ys = np.concatenate([YS, [s[0] for s in SPECIAL]])
    xs = np.concatenate([XS, [s[1] for s in SPECIAL]])
    return ys, xs


def test_atan2_within_one_ulp_and_the_same_in_numba_python_and_numpy():
    ys, xs = _atan2_all()
    compiled = np.array([portable.atan2(y, x) for y, x in zip(ys, xs)])
    interpreted = np.array([portable_math.atan2(float(y), float(x)) for y, x in zip(ys, xs)])
    vectorised = portable_math.atan2_array(ys, xs)
    libm = np.array([math.atan2(y, x) for y, x in zip(ys, xs)])
    assert compiled.tobytes() == interpreted.tobytes() == vectorised.tobytes()
    assert _ulps(compiled, libm) <= 1.0
    assert np.array_equal(np.signbit(compiled), np.signbit(libm))  # signed zeros and pi as libm
    assert _sha(compiled) == RECORDED["atan2"]


def test_cos_sin_within_one_ulp_and_the_same_in_numba_and_python():
    compiled = np.array([portable.cos_sin(t) for t in ANGLES])
    interpreted = np.array([portable_math.cos_sin(float(t)) for t in ANGLES])
    libm = np.array([(math.cos(t), math.sin(t)) for t in ANGLES])
    assert compiled.tobytes() == interpreted.tobytes()
    assert _ulps(compiled, libm) <= 1.0
    assert _sha(compiled) == RECORDED["cos_sin"]


def test_exp_within_one_ulp_and_the_same_in_numba_and_python():
    xs = np.concatenate([EXPS, [0.0, 1e-12, -1e-12, 0.2, -0.3, 5.0, 700.0, -700.0]])
    compiled = np.array([portable.exp(x) for x in xs])
    interpreted = np.array([portable_math.exp(float(x)) for x in xs])
    libm = np.array([math.exp(x) for x in xs])
    assert compiled.tobytes() == interpreted.tobytes()
    assert _ulps(compiled, libm) <= 1.0
    assert _sha(compiled) == RECORDED["exp"]


def test_the_edge_vote_cos_sin_tables_are_the_recorded_constants():
    assert match_edges._COS.dtype == np.float32 and match_edges._COS.shape == (256,)
    assert match_edges._COS[0] == 1.0 and match_edges._SIN[64] == 1.0 and match_edges._COS[128] == -1.0
    assert _sha(match_edges._COS, match_edges._SIN) == RECORDED["edge_tables"]


def test_centred_inv_norms_kernel_matches_reference():
    rng = np.random.default_rng(3)
    gal = rng.integers(0, 256, (300, 468), dtype=np.uint8)
    mean = gal[:250].mean(axis=0).astype(np.float32)
    gal[7] = 0
    mean_row = np.rint(mean).astype(np.uint8)
    gal[8] = mean_row
    got = centred_inv_norms(gal, mean, 250)
    want = centred_inv_norms_reference(gal, mean, 250)
    assert got.shape == (250,) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert (got > 0).all()
    exact = centred_inv_norms(np.tile(mean_row, (2, 1)), mean_row.astype(np.float32), 2)
    assert (exact == 0).all()  # a row equal to the mean has no direction: scored 0, not inf
