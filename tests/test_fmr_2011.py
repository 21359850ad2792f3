"""ISO/IEC 19794-2:2011 finger minutiae records: hand-built records read, bad ones refused,
arbitrary and mutated bytes give templates or FmrError only."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpagent.records import fmr


def _representation(fgp=2, minutiae=((10, 20, 64, 1, 50), (100, 200, 128, 2, 254)), minutia_len=6,
                    qualities=((60, 0x0101, 1),), certs=None, width=256, height=288, ppcm=197,
                    impression=0, ext=b""):
    """One finger representation laid out field by field as ISO/IEC 19794-2:2011 gives it."""
    body = bytearray()
    body += bytes([0x07, 0xEA, 11, 29, 9, 45, 0]) + struct.pack(">H", 0)  # capture date/time (9 B)
    body += bytes([1])  # capture device technology: 1 = optical (TIR)
    body += struct.pack(">HH", 0x0031, 0x0002)  # device vendor id, device type id
    body += bytes([len(qualities)])
    for score, vendor, algorithm in qualities:
        body += struct.pack(">BHH", score, vendor, algorithm)
    if certs is not None:
        body += bytes([len(certs)])
        for authority, scheme in certs:
            body += struct.pack(">HB", authority, scheme)
    body += struct.pack(">BBHHBHH", fgp, 0, ppcm, ppcm, impression, width, height)
    body += bytes([(minutia_len << 4) | 1, len(minutiae)])  # minutia size | ridge ending type
    for x, y, angle, kind, q in minutiae:
        body += struct.pack(">HHB", (kind << 14) | x, y, angle)
        if minutia_len == 6:
            body += bytes([q])
    body += struct.pack(">H", len(ext)) + ext
    return struct.pack(">I", 4 + len(body)) + bytes(body)


def _record(*reps, certified=0):
    reps = reps or (_representation(),)
    body = b"".join(reps)
    return b"FMR\x00030\x00" + struct.pack(">IHB", 15 + len(body), len(reps), certified) + body


EXAMPLE = _record()


def test_hand_built_2011_record_reads():
    assert fmr.detect_format(EXAMPLE) == "iso2011"
    (t,) = fmr.decode(EXAMPLE)
    assert (t.width, t.height, t.ppi, t.finger_position, t.impression_type, t.quality) == \
        (256, 288, 500, 2, 0, 60)
    m = t.minutiae
    assert list(m["x"]) == [10, 100] and list(m["y"]) == [20, 200]
    assert m["angle"] == pytest.approx([math.pi / 2, math.pi])
    assert list(m["kind"]) == [1, 2]
    assert list(m["quality"]) == [50, 0]  # 254 = "not reported"


def test_five_byte_minutiae_certification_blocks_and_several_representations():
    five = _representation(fgp=7, minutia_len=5, qualities=(), certs=[(0x0101, 1), (0x0102, 2)],
                           width=300, height=400, ext=b"\x01\x02\x00\x06ab")
    six = _representation(fgp=8, certs=[])
    a, b = fmr.decode(_record(five, six, certified=1))
    assert (a.finger_position, a.width, a.height, a.quality) == (7, 300, 400, 0)
    assert list(a.minutiae["quality"]) == [0, 0] and list(a.minutiae["x"]) == [10, 100]
    assert b.finger_position == 8 and list(b.minutiae["quality"]) == [50, 0]


def test_2011_templates_re_encode_as_2005():
    (t,) = fmr.decode(EXAMPLE)
    (again,) = fmr.decode(fmr.encode_iso(t))
    assert np.array_equal(again.minutiae, t.minutiae)


@pytest.mark.parametrize("data,message", [
    (EXAMPLE[:12], "truncated"),
    (EXAMPLE + b"\x00", "bad length"),
    (EXAMPLE[:-1], "truncated"),
    (EXAMPLE[:12] + b"\x00\x00" + EXAMPLE[14:], "representation count"),
    (EXAMPLE[:14] + b"\x02" + EXAMPLE[15:], "certification flag"),
    (_record(_representation(minutia_len=7)), "minutia field length"),
    (_record(_representation(fgp=11)), "finger position"),
    (_record(_representation(width=0)), "image size"),
    (_record(_representation(minutiae=((300, 20, 0, 1, 0),))), "out of range"),
    (_record(_representation(minutiae=((10, 20, 0, 3, 0),))), "reserved minutia type"),
    (_record(_representation()[:-2] + b"\x00\x05"), "extended data"),
], ids=["short", "extra", "cut", "no-reps", "cert-flag", "minutia-len", "fgp", "size", "x",
        "type", "ext"])
def test_malformed_2011_records_give_clear_errors(data, message):
    with pytest.raises(fmr.FmrError, match=message):
        fmr.decode(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=160))
def test_arbitrary_2011_bytes_give_templates_or_fmr_error(data):
    try:
        out = fmr.decode(EXAMPLE[:8] + data)
    except fmr.FmrError:
        return
    assert all(np.all(t.minutiae["x"] < t.width) for t in out)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(EXAMPLE) - 1), st.integers(0, 255)),
                min_size=1, max_size=4), st.booleans())
def test_mutated_2011_records_give_templates_or_fmr_error(edits, certified):
    rec = bytearray(_record(_representation(certs=[(1, 1)]), certified=1) if certified else EXAMPLE)
    for off, val in edits:
        rec[off % len(rec)] = val
    try:
        out = fmr.decode(bytes(rec))
    except fmr.FmrError:
        return
    for t in out:
        assert np.all(t.minutiae["x"] < t.width) and np.all(t.minutiae["y"] < t.height)
