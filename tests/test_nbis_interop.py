"""Interoperability with NIST NBIS (nbis-py 0.1.3): templates both ways, bozorth3 on ours.

nbis-py 0.1.3 writes and reads a non-conformant "ISO 2005" layout (see
fpagent.devtools.nbis); our reader accepts it, and fpagent.devtools.nbis.to_nbis_layout
hands NBIS our standard records in the layout it can read.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nbis_required import nbis_or_skip  # noqa: E402

nbis = nbis_or_skip("interoperability with NIST NBIS")

from fpagent.records import fmr
from fpagent.biometrics import matcher
from fpagent.devtools import nbis as nbis_ref  # noqa: E402

GENUINE = ("101_1", "101_2", "101_3")
OTHERS = ("102_1", "103_1", "104_1", "105_1")


@pytest.fixture(scope="module")
def db1(fingerprints_dir):
    return fingerprints_dir / "fvc2002_db1_b"


@pytest.fixture(scope="module")
def nbis_records(db1):
    """NBIS mindtct minutiae and NBIS's own ISO bytes per image."""
    out = {}
    for name in GENUINE + OTHERS:
        m = nbis_ref.extract(db1 / f"{name}.png")
        out[name] = (m, bytes(m.to_iso_19794_2_2005()))
    return out


@pytest.fixture(scope="module")
def our_records(db1):
    """ISO records of OUR extractor's templates."""
    from PIL import Image

    from fpagent.biometrics import extraction

    out = {}
    for name in GENUINE + OTHERS:
        with Image.open(db1 / f"{name}.png") as im:
            out[name] = fmr.encode_iso(extraction.extract(np.asarray(im.convert("L"))).template)
    return out


def _pairs():
    genuine = list(itertools.combinations(GENUINE, 2))
    impostor = [(a, b) for a, b in itertools.combinations(GENUINE + OTHERS, 2) if a[:3] != b[:3]]
    return genuine, impostor


def test_our_reader_loads_nbis_iso_templates(nbis_records):
    for name, (m, record) in nbis_records.items():
        (t,) = fmr.decode(record)
        ref = m.get()
        assert len(t) == len(ref) > 10, name
        assert t.minutiae["x"].tolist() == [r.x() for r in ref]
        assert t.minutiae["y"].tolist() == [r.y() for r in ref]
        kinds = [1 if r.kind() == nbis.MinutiaKind.RIDGE_ENDING else 2 for r in ref]
        assert t.minutiae["kind"].tolist() == kinds
        ang = np.degrees(t.minutiae["angle"])
        diff = np.abs((ang - np.array([r.angle() for r in ref]) + 180) % 360 - 180)
        assert diff.max() <= 360 / 256 / 2 + 1e-3


def test_our_matcher_matches_nbis_templates(nbis_records):
    t = {n: fmr.decode(rec)[0] for n, (_, rec) in nbis_records.items()}
    genuine, impostor = _pairs()
    g = [matcher.compare(t[a], t[b]) for a, b in genuine]
    i = [matcher.compare(t[a], t[b]) for a, b in impostor]
    assert min(g) > max(i)
    assert min(g) >= matcher.MATCH_THRESHOLD > max(i)


def test_nbis_loads_our_iso_templates(our_records):
    for name, record in our_records.items():
        (ours,) = fmr.decode(record)
        loaded = nbis_ref.load_ours(record).get()
        assert len(loaded) == len(ours) > 10, name
        assert [m.x() for m in loaded] == ours.minutiae["x"].astype(int).tolist()
        assert [m.y() for m in loaded] == ours.minutiae["y"].astype(int).tolist()
        ang = np.array([m.angle() for m in loaded])
        diff = np.abs((ang - np.degrees(ours.minutiae["angle"]) + 180) % 360 - 180)
        # NBIS keeps directions in mindtct's 11.25-degree units: half a unit off at most
        assert diff.max() <= 11.25 / 2 + 1e-3


def test_bozorth3_separates_our_genuine_from_impostor_pairs(our_records):
    loaded = {n: nbis_ref.load_ours(rec) for n, rec in our_records.items()}
    genuine, impostor = _pairs()
    g = [nbis_ref.bozorth3(loaded[a], loaded[b]) for a, b in genuine]
    i = [nbis_ref.bozorth3(loaded[a], loaded[b]) for a, b in impostor]
    assert min(g) > max(i), (g, i)


def test_nbis_py_misreads_a_standard_record_as_is(our_records):
    """Documents the nbis-py 0.1.3 quirk that `to_nbis_layout` works around."""
    record = our_records["101_1"]
    (ours,) = fmr.decode(record)
    try:
        got = len(nbis_ref.load_standard_iso(record).get())
    except Exception:  # noqa: BLE001 - an error is just as much "cannot read it"
        got = -1
    assert got != len(ours)


def test_nbis_layout_conversion_keeps_every_byte_of_the_minutiae(our_records):
    record = our_records["102_1"]
    converted = nbis_ref.to_nbis_layout(record)
    n = len(fmr.decode(record)[0])
    assert len(converted) == 26 + 6 * n
    assert converted[26:] == record[28:28 + 6 * n]
    # and our reader reads NBIS's layout back to the same template
    (a,), (b,) = fmr.decode(record), fmr.decode(converted)
    np.testing.assert_array_equal(a.minutiae, b.minutiae)
    assert math.isclose(matcher.compare(a, b), matcher.compare(a, a))
