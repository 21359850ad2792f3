"""The prefilter's scan kernels: the same bits as a plain-numpy reference with the same
float32 operations, as a row-at-a-time sum, and whatever the gallery array's layout."""

from __future__ import annotations

import math

import numpy as np

from fpagent.screening import prefilter
from fpagent.screening.prefilter_scan import (ROW_BLOCK, centred_inv_norms, centred_inv_norms_reference,
                                              scan, scan_reference)

D = prefilter.DESCRIPTOR_BYTES


def _inputs(rows, seed=3):
    rng = np.random.default_rng(seed)
    gal = rng.integers(0, 256, (rows, D), dtype=np.uint8)
    inv = rng.uniform(0.001, 0.01, rows).astype(np.float32)
    mean = gal.mean(axis=0).astype(np.float32)
    pc = rng.integers(0, 256, D).astype(np.float32) - mean
    return gal, inv, pc


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _row_at_a_time(gal, inv, pc, c, count):
    """Each row summed alone, k ascending, every step rounded to float32."""
    out = np.empty(count, dtype=np.float32)
    for r in range(count):
        acc = np.float32(0.0)
        for k in range(D):
            acc = np.float32(acc + np.float32(np.float32(gal[r, k]) * pc[k]))
        out[r] = np.float32((acc - c) * inv[r])
    return out


def test_scan_is_bit_identical_to_its_reference_over_several_blocks():
    count = 2 * ROW_BLOCK + 37  # two full blocks and a partial one
    gal, inv, pc = _inputs(count + 11)
    c = np.float32(123.0)
    want = scan_reference(gal, inv, pc, c, count)
    for layout in (gal, np.asfortranarray(gal)):
        got = scan(layout, inv, pc, c, count)
        assert got.shape == (count,) and got.dtype == np.float32
        assert np.array_equal(_bits(got), _bits(want))


def test_scan_sums_each_row_in_order_as_a_row_at_a_time_loop():
    gal, inv, pc = _inputs(60, seed=5)
    c = np.float32(-7.25)
    want = _row_at_a_time(gal, inv, pc, c, 50)
    assert np.array_equal(_bits(scan(np.asfortranarray(gal), inv, pc, c, 50)), _bits(want))
    # a float64 dot product is a different sum: the comparison above can fail
    dot64 = ((gal[:50].astype(np.float64) @ pc.astype(np.float64) - c) * inv[:50]).astype(np.float32)
    assert not np.array_equal(_bits(dot64), _bits(want))


def test_centred_inv_norms_do_not_depend_on_layout_or_blocks():
    count = ROW_BLOCK + 5
    gal, _, _ = _inputs(count, seed=7)
    mean = gal.mean(axis=0).astype(np.float32)
    gal[3] = np.rint(mean).astype(np.uint8)
    a = centred_inv_norms(gal, mean, count)
    b = centred_inv_norms(np.asfortranarray(gal), mean, count)
    assert np.array_equal(_bits(a), _bits(b))
    np.testing.assert_allclose(a, centred_inv_norms_reference(gal, mean, count), rtol=1e-6)


def test_gallery_scores_are_the_reference_scan_of_its_rows():
    """Gallery.screen_descriptor: the kernel's scores of every row, best first, as argsort of
    the reference scores (tied rows in either order)."""
    rng = np.random.default_rng(9)
    g = prefilter.Gallery(capacity=8)  # grows several times
    descs = rng.integers(0, 60, (3000, D), dtype=np.uint8)
    descs[100] = descs[200]  # a tie
    for i, d in enumerate(descs):
        g.add_descriptor(f"e{i}", d)
    probe = descs[200].copy()
    got = g.screen_descriptor(probe, 300)
    g._refresh()
    pc = probe.astype(np.float32) - g._mean
    c = np.float32(math.fsum((g._mean.astype(np.float64) * pc.astype(np.float64)).tolist()))
    ref = scan_reference(descs, g._inv_norm, pc, c, len(descs))
    order = np.argsort(-ref, kind="stable")[:300]
    assert [s for _, s in got] == [float(ref[r]) for r in order]
    assert [i for i, _ in got][2:] == [f"e{r}" for r in order][2:]
    assert {got[0][0], got[1][0]} == {"e100", "e200"}


def test_every_gallery_hands_the_scan_one_array_type():
    """Column-major whatever the capacity (a one-row array would look C-contiguous to numba,
    which would then compile a second scan at the first screening after warm-up)."""
    import numba

    for capacity in (0, 1, 2, 64):
        g = prefilter.Gallery(capacity=capacity)
        g.add_descriptor("only", np.ones(D, np.uint8))
        assert numba.typeof(g._desc).layout == "F"
        blob = prefilter.Gallery.from_bytes(g.to_bytes())
        assert numba.typeof(blob._desc).layout == "F"


def _template(rng, n=30):
    from fpagent.biometrics.template import MINUTIA_DTYPE, Template

    m = np.zeros(n, dtype=MINUTIA_DTYPE)
    m["x"] = rng.uniform(20, 230, n)
    m["y"] = rng.uniform(20, 270, n)
    m["angle"] = rng.uniform(0, 2 * math.pi, n)
    m["kind"] = 1
    m["quality"] = rng.integers(20, 100, n)
    return Template(minutiae=m, width=256, height=288)


def test_search_ranks_the_screened_candidates_by_the_matcher():
    """search = the prefilter's candidates, in its order, scored by the 1:1 matcher on each
    entry's record and sorted by score (stable): no candidate lost, added or reordered."""
    from fpagent.biometrics import matcher
    from fpagent.records import fmr

    rng = np.random.default_rng(21)
    g = prefilter.Gallery()
    records = {}
    for i in range(240):
        t = _template(rng, int(rng.integers(12, 45)))
        g.add(f"t{i}", t)
        records[f"t{i}"] = fmr.encode_iso(t)
    g.add_descriptor("screened-only", np.full(D, 3, np.uint8))  # no record: screened, never ranked
    probe = _template(rng)
    count = prefilter.MIN_CANDIDATES + 20
    candidates = g.screen(probe, count)
    p = matcher.prepare(probe)
    want = [(id, matcher.compare_prepared(p, matcher.prepare(fmr.decode(records[id])[0])))
            for id, _ in candidates if id in records]
    want.sort(key=lambda r: -r[1])
    got = g.search(probe, top=len(want), penetration=count / len(g))
    assert got == want and len(got) >= count - 1
