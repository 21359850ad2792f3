"""Kept edges: a gallery entry restored from its packed edges is matcher.expand's Prepared, bit
for bit, and a gallery that keeps edges searches exactly as one that rebuilds them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpagent.biometrics import matcher
from fpagent.biometrics.template import MINUTIA_DTYPE, Template
from fpagent.screening import candidate_edges, prefilter

FIELDS = ("x", "y", "th", "e_len", "e_i", "e_j", "e_ai", "e_aj", "e_dir", "e_bucket_start", "grid")


def _template(rng, n, width=256, height=288, ppi=500):
    m = np.zeros(n, dtype=MINUTIA_DTYPE)
    m["x"] = rng.uniform(0, width - 1, n)
    m["y"] = rng.uniform(0, height - 1, n)
    m["angle"] = rng.uniform(0, 2 * math.pi, n)
    m["kind"] = 1
    m["quality"] = rng.integers(10, 100, n)
    return Template(minutiae=m, width=width, height=height, ppi=ppi)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 12, 40, 96, 140])
def test_restored_entry_is_the_expanded_one_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for ppi in (500, 1000):
        stored = matcher.store(matcher.prepare(_template(rng, n, ppi=ppi)))
        want = matcher.expand(stored)
        packed = candidate_edges.pack(want)
        got = candidate_edges.prepared(stored, packed)
        assert got.edges is packed  # the kept bytes are used as they are, not copied
        for field in FIELDS:
            a, b = getattr(got, field), getattr(want, field)
            assert a.dtype == b.dtype and a.shape == b.shape, field
            assert a.tobytes() == b.tobytes(), field
        assert got.key == want.key


def test_a_wrong_length_rebuild_would_be_seen():
    """The restored lengths come from the coordinates: moved minutiae give other bits."""
    rng = np.random.default_rng(5)
    stored = matcher.store(matcher.prepare(_template(rng, 30)))
    packed = candidate_edges.pack(matcher.expand(stored))
    xyt = stored.xyt.copy()
    xyt[0, :5] += np.float32(0.25)  # five minutiae moved: the edges to them change length
    moved = matcher.Stored(xyt, stored.grid_bits, stored.grid_shape, stored.key)
    assert candidate_edges.prepared(moved, packed).e_len.tobytes() != matcher.expand(stored).e_len.tobytes()


def test_gallery_keeping_edges_searches_as_one_rebuilding_them():
    rng = np.random.default_rng(8)
    plain, kept = prefilter.Gallery(keep_edges=False), prefilter.Gallery()
    for i in range(260):
        t = _template(rng, int(rng.integers(8, 50)))
        plain.add(f"t{i}", t)
        kept.add(f"t{i}", t)
    for i in range(0, 260, 7):
        plain.remove(f"t{i}")
        kept.remove(f"t{i}")
    loaded = prefilter.Gallery.from_bytes(kept.to_bytes(), keep_edges=True)
    assert kept.nbytes() > plain.nbytes()
    for _ in range(4):
        probe = _template(rng, 35)
        want = plain.search(probe, top=20, penetration=0.5)
        assert kept.search(probe, top=20, penetration=0.5) == want
        assert loaded.search(probe, top=20, penetration=0.5) == want
