"""Template preparation kernels against their numpy references, and gallery storage of prepared
templates: a stored entry expands to exactly what `prepare` gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpagent.biometrics import matcher
from fpagent.biometrics.match_kernels.constants import BUCKET_SHIFT, BUCKETS_PER_ANGLE, EDGE_LEN_BIN
from fpagent.biometrics.match_kernels.edge_build import build_edges_kernel, build_grid_kernel
from fpagent.biometrics.template import MINUTIA_DTYPE, Template


def _random_template(rng, n, width=300, height=400, ppi=500):
    m = np.zeros(n, dtype=MINUTIA_DTYPE)
    m["x"] = rng.uniform(0, width - 1, n)
    m["y"] = rng.uniform(0, height - 1, n)
    m["angle"] = rng.uniform(0, 2 * math.pi, n)
    m["kind"] = 1
    m["quality"] = rng.integers(0, 101, n)
    if n > 3:  # duplicate distances: ties must break the same way in both
        m["x"][1], m["y"][1] = m["x"][0] + 20, m["y"][0]
        m["x"][2], m["y"][2] = m["x"][0] - 20, m["y"][0]
    return Template(m, width=width, height=height, ppi=ppi)


@pytest.mark.parametrize("seed,n,ppi", [(1, 0, 500), (2, 1, 500), (3, 2, 500), (4, 8, 500),
                                        (5, 40, 500), (6, 96, 500), (7, 130, 569), (8, 60, 1000)])
def test_edge_and_grid_kernels_match_numpy_references(seed, n, ppi):
    t = _random_template(np.random.default_rng(seed), n, ppi=ppi)
    p = matcher.prepare(t)
    x, y, th = (a.astype(np.float64) for a in (p.x, p.y, p.th))
    want = matcher.build_edges(x, y, th)
    got = build_edges_kernel(x, y, th, matcher.NEIGHBOURS, matcher.MAX_EDGE_LEN, matcher.MIN_EDGE_LEN,
                             EDGE_LEN_BIN, matcher.EDGE_LEN_BINS, BUCKET_SHIFT, BUCKETS_PER_ANGLE)
    for a, b in zip(want, got):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    scale = 500 / ppi
    gw, gh = t.width * scale, t.height * scale
    assert np.array_equal(build_grid_kernel(x, y, gw, gh, matcher.GRID_CELL, matcher.GRID_DILATE),
                          matcher.build_grid(x, y, gw, gh))
    assert np.array_equal(p.grid, matcher.build_grid(x, y, gw, gh))


def test_stored_entry_expands_to_the_prepared_template():
    rng = np.random.default_rng(9)
    templates = [_random_template(rng, n) for n in (5, 30, 45, 60, 96)]
    prepared = [matcher.prepare(t) for t in templates]
    for p in prepared:
        e = matcher.expand(matcher.store(p))
        for a, b in zip(p.kernel_args(), e.kernel_args()):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert e.key == p.key
    for a in prepared:
        for b in prepared:
            assert matcher.compare_prepared(matcher.expand(matcher.store(a)), b) == \
                matcher.compare_prepared(a, b)


@pytest.mark.parametrize("seed,n,ppi", [(11, 40, 500), (12, 96, 500), (13, 130, 500), (14, 60, 1000)])
def test_a_template_prepares_exactly_as_its_iso_record(seed, n, ppi):
    """The matcher sees minutiae on the record's grid, so a template and its decoded ISO record
    give the same bits (and the extractor's last-bit float differences between CPUs vanish)."""
    from fpagent.records import fmr

    t = _random_template(np.random.default_rng(seed), n, ppi=ppi)
    t.minutiae["x"][0] = t.width - 0.4  # rounds up to the edge: the record clamps it
    (decoded,) = fmr.decode(fmr.encode_iso(t))
    a, b = matcher.prepare(t), matcher.prepare(decoded)
    for u, v in zip(a.kernel_args(), b.kernel_args()):
        assert u.dtype == v.dtype and np.array_equal(u, v)
    assert a.key == b.key and np.array_equal(a.quality, b.quality)
    other = matcher.prepare(_random_template(np.random.default_rng(seed + 100), n, ppi=ppi))
    assert matcher.compare_prepared(a, other) == matcher.compare_prepared(b, other)
