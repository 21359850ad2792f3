"""Each numba kernel of the image side equals its plain reference, on real prints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fpagent.biometrics import extraction
from fpagent.biometrics import fields
from fpagent.biometrics.kernels import boxfilter, enhance, skeleton, thinning

SAMPLES = [("fvc2002_db1_b", "102_3.png"), ("fvc2002_db3_b", "107_5.png"),
           ("fvc2002_db4_b", "104_2.png")]


def _load(fingerprints_dir, folder, name, crop=None):
    px = np.asarray(Image.open(fingerprints_dir / folder / name).convert("L"))
    if crop:
        h, w = px.shape
        px = px[h // 2 - crop // 2: h // 2 + crop // 2, w // 2 - crop // 2: w // 2 + crop // 2]
    return np.ascontiguousarray(px)


@pytest.fixture(scope="module", params=SAMPLES, ids=lambda s: f"{s[0]}/{s[1]}")
def stages(request, fingerprints_dir):
    """The intermediate arrays of one real print (a central crop keeps references fast)."""
    px = _load(fingerprints_dir, *request.param, crop=160)
    f = fields.analyse(px)
    f.mask[:] = True  # exercise every pixel
    ct, st = np.cos(f.theta).astype(np.float32), np.sin(f.theta).astype(np.float32)
    idx = np.clip(np.rint((f.period - fields.MIN_PERIOD) / 0.5), 0,
                  len(extraction._PERIODS) - 1).astype(np.int64)
    return {"pixels": px, "fields": f, "ct": ct, "st": st, "idx": idx}


@pytest.mark.parametrize("r", [1, 8, 20])
def test_box_mean_equals_reference(stages, r):
    img = stages["pixels"].astype(np.float32)
    got = boxfilter.box_mean(img, r)
    want = boxfilter.box_mean_reference(img, r)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_largest_component_equals_reference(stages):
    f = stages["fields"]
    grid = fields.blocks(f.std, 8) > np.percentile(fields.blocks(f.std, 8), 40)
    got = boxfilter.largest_component(np.ascontiguousarray(grid))
    want = boxfilter.largest_component_reference(grid)
    assert got.any()
    np.testing.assert_array_equal(got, want)


def test_line_filter_equals_reference(stages):
    f, ct, st, idx = stages["fields"], stages["ct"], stages["st"], stages["idx"]
    zero = np.zeros_like(idx)
    a1 = enhance.line_filter(f.normalised, ct, st, zero, f.mask, extraction._ALONG)
    a2 = enhance.line_filter_reference(f.normalised, ct, st, zero, f.mask, extraction._ALONG)
    np.testing.assert_allclose(a1, a2, atol=1e-4)
    b1 = enhance.line_filter(a1, -st, ct, idx, f.mask, extraction._ACROSS)
    b2 = enhance.line_filter_reference(a1, -st, ct, idx, f.mask, extraction._ACROSS)
    np.testing.assert_allclose(b1, b2, atol=1e-4)
    assert np.abs(b1).max() > 0.5  # a real ridge response, not all zeros


def test_gabor_rows_have_zero_dc_and_unit_gain():
    rows = enhance.gabor_rows([6.0, 9.0, 12.0], sigma=3.2, radius=7)
    t = np.arange(-7, 8)
    for row, period in zip(rows, [6.0, 9.0, 12.0]):
        assert abs(row.sum()) < 1e-5
        assert abs(np.sum(row * np.cos(2 * np.pi * t / period)) - 1) < 1e-4


def _binary(stages):
    f, ct, st, idx = stages["fields"], stages["ct"], stages["st"], stages["idx"]
    zero = np.zeros_like(idx)
    a = enhance.line_filter(f.normalised, ct, st, zero, f.mask, extraction._ALONG)
    return (enhance.line_filter(a, -st, ct, idx, f.mask, extraction._ACROSS) > 0).astype(np.uint8)


def test_thin_equals_reference_and_is_thin(stages):
    binary = _binary(stages)
    got = thinning.thin(binary)
    want = thinning.thin_reference(binary)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < binary.sum() / 2
    assert not (got.astype(bool) & ~binary.astype(bool)).any()  # skeleton inside the ridges
    # one pixel wide: no 2x2 block of skeleton pixels
    blocks = got[:-1, :-1] & got[1:, :-1] & got[:-1, 1:] & got[1:, 1:]
    assert not blocks.any()


def test_crossing_numbers_and_walks_equal_reference(stages):
    skel = thinning.thin(_binary(stages))
    cn = skeleton.crossing_numbers(skel)
    np.testing.assert_array_equal(cn, skeleton.crossing_numbers_reference(skel))
    ys, xs = np.nonzero((cn == 1) | (cn >= 3))
    assert (cn == 1).sum() > 0 and (cn >= 3).sum() > 0
    label = np.zeros(skel.shape, dtype=np.int32)
    label[ys, xs] = np.arange(1, len(ys) + 1)
    args = (skel, cn, label, ys.astype(np.int64), xs.astype(np.int64), 24, 9)
    got = skeleton.trace_branches(*args)
    want = skeleton.trace_branches_reference(*args)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    nbranch = got[0]
    assert (nbranch[cn[ys, xs] == 1] == 1).all()


def test_thin_keeps_a_line_and_removes_nothing_else():
    img = np.zeros((20, 30), dtype=np.uint8)
    img[8:12, 3:27] = 1  # a 4-pixel-thick bar
    sk = thinning.thin(img)
    np.testing.assert_array_equal(sk, thinning.thin_reference(img))
    assert sk.sum() >= 18 and sk[:, 5:25].sum(axis=0).max() == 1
    cn = skeleton.crossing_numbers(sk)
    assert (cn == 1).sum() == 2  # two ridge endings


@pytest.mark.slow
def test_bench_kernels_reports_cold_and_cached_start():
    """`fpagent bench kernels` runs fresh processes on an empty cache, then the warm one."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "agent", "bench", "kernels", "--repeats", "1",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cold start" in out.stdout and "cached start" in out.stdout
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["benchmark"] == "kernels"
    assert r["cache_files"] >= 6  # every kernel left its compiled code on disk
    assert r["cold_ready_s"] > 0 and r["cached_ready_s"] > 0


# ---- property tests on arbitrary inputs (small arrays: the references are slow)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st_  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

_small_shapes = st_.tuples(st_.integers(3, 24), st_.integers(3, 24))


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, _small_shapes, elements=st_.integers(0, 1)))
def test_thin_equals_reference_on_any_binary_image(binary):
    np.testing.assert_array_equal(thinning.thin(binary), thinning.thin_reference(binary))


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, _small_shapes, elements=st_.integers(0, 1)))
def test_crossing_numbers_equal_reference_on_any_image(skel):
    np.testing.assert_array_equal(skeleton.crossing_numbers(skel),
                                  skeleton.crossing_numbers_reference(skel))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, _small_shapes, elements=st_.floats(0, 255, width=32)),
       st_.integers(1, 12))
def test_box_mean_equals_reference_on_any_image(img, r):
    np.testing.assert_allclose(boxfilter.box_mean(img, r), boxfilter.box_mean_reference(img, r),
                               rtol=1e-4, atol=1e-2)


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, _small_shapes))
def test_largest_component_equals_reference_on_any_grid(grid):
    got = boxfilter.largest_component(grid)
    want = boxfilter.largest_component_reference(grid)
    assert got.sum() == want.sum()  # ties between equal regions may pick either
    if got.sum():
        assert (got & grid).sum() == got.sum()


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (12, 15), elements=st_.floats(-3, 3, width=32)),
       arrays(np.float32, (12, 15), elements=st_.floats(0, 6.25, width=32)),
       st_.integers(0, 2**32 - 1))
def test_line_filter_equals_reference_on_any_field(img, angle, seed):
    rng = np.random.default_rng(seed)
    ux, uy = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    idx = rng.integers(0, len(extraction._PERIODS), img.shape).astype(np.int64)
    mask = rng.random(img.shape) < 0.7
    for table, scale in ((extraction._ALONG, 2.0), (extraction._ACROSS, 1.0)):
        rows = idx if table.shape[0] > 1 else np.zeros_like(idx)
        got = enhance.line_filter(img, ux * scale, uy * scale, rows, mask, table)
        want = enhance.line_filter_reference(img, ux * scale, uy * scale, rows, mask, table)
        np.testing.assert_allclose(got, want, atol=2e-4)


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, (20, 20), elements=st_.integers(0, 1)))
def test_ridge_walks_equal_reference_on_any_skeleton(binary):
    skel = thinning.thin(binary)
    cn = skeleton.crossing_numbers(skel)
    ys, xs = np.nonzero((cn == 1) | (cn >= 3))
    label = np.zeros(skel.shape, dtype=np.int32)
    label[ys, xs] = np.arange(1, len(ys) + 1)
    args = (skel, cn, label, ys.astype(np.int64), xs.astype(np.int64), 24, 9)
    for g, w in zip(skeleton.trace_branches(*args), skeleton.trace_branches_reference(*args)):
        np.testing.assert_array_equal(g, w)
