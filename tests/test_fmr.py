"""ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 minutiae records: byte layout, round trips, bad input."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpagent.records import fmr
from fpagent.biometrics.template import MINUTIA_DTYPE, Template, minutiae_array


def _example() -> Template:
    # 256x288 @ 500 ppi, right index (FGP 2), quality 60, an ending at (10, 20) pointing
    # up (90 deg) with quality 50 and a bifurcation at (100, 200) pointing left (180 deg)
    m = minutiae_array([(10, 20, math.pi / 2, 1, 50), (100, 200, math.pi, 2, 0)])
    return Template(m, width=256, height=288, ppi=500, quality=60, finger_position=2)


ISO_EXAMPLE = bytes.fromhex(
    "464d5200 20323000 0000002a 0000 0100 0120 00c5 00c5 01 00"  # header, 42 bytes, 1 view
    "02 00 3c 02"  # FGP 2, view 0 / live plain, quality 60, 2 minutiae
    "400a 0014 40 32"  # ending, x 10, y 20, 64 x 1.40625 = 90 deg, q 50
    "8064 00c8 80 00"  # bifurcation, x 100, y 200, 128 units = 180 deg, q 0
    "0000"  # no extended data
)

ANSI_EXAMPLE = bytes.fromhex(
    "464d5200 20323000 002c"  # 2-byte length: 44
    "0000 0000"  # CBEFF product id (owner, type)
    "0000 0100 0120 00c5 00c5 01 00"
    "02 00 3c 02"
    "400a 0014 2d 32"  # 45 x 2 = 90 deg
    "8064 00c8 5a 00"  # 90 x 2 = 180 deg
    "0000"
)


def test_iso_writer_is_byte_exact():
    assert fmr.encode_iso(_example()) == ISO_EXAMPLE


def test_ansi_writer_is_byte_exact():
    assert fmr.encode_ansi(_example()) == ANSI_EXAMPLE


@pytest.mark.parametrize("record", [ISO_EXAMPLE, ANSI_EXAMPLE], ids=["iso", "ansi"])
def test_reader_decodes_the_hand_built_examples(record):
    (t,) = fmr.decode(record)
    assert (t.width, t.height, t.ppi, t.quality, t.finger_position) == (256, 288, 500, 60, 2)
    assert t.minutiae["x"].tolist() == [10, 100]
    assert t.minutiae["y"].tolist() == [20, 200]
    assert t.minutiae["kind"].tolist() == [1, 2]
    assert t.minutiae["quality"].tolist() == [50, 0]
    np.testing.assert_allclose(t.minutiae["angle"], [math.pi / 2, math.pi], atol=1e-6)


def test_format_detection():
    assert fmr.detect_format(ISO_EXAMPLE) == "iso"
    assert fmr.detect_format(ANSI_EXAMPLE) == "ansi"


def _random_template(rng, n, width=300, height=400, fgp=0) -> Template:
    m = np.zeros(n, dtype=MINUTIA_DTYPE)
    m["x"] = rng.integers(0, width, n)
    m["y"] = rng.integers(0, height, n)
    m["angle"] = rng.uniform(0, 2 * math.pi, n)
    m["kind"] = rng.integers(0, 3, n)
    m["quality"] = rng.integers(0, 101, n)
    return Template(m, width=width, height=height, ppi=500, quality=int(rng.integers(0, 101)),
                    finger_position=fgp, impression_type=int(rng.choice([0, 1, 2, 3, 8])))


@pytest.mark.parametrize("encode,step", [(fmr.encode_iso, 360 / 256), (fmr.encode_ansi, 2.0)],
                         ids=["iso", "ansi"])
def test_round_trip_several_views(encode, step):
    rng = np.random.default_rng(7)
    views = [_random_template(rng, n, fgp=f) for n, f in ((0, 1), (1, 1), (40, 2), (255, 7))]
    out = fmr.decode(encode(views))
    assert len(out) == 4
    for a, b in zip(views, out):
        assert (b.width, b.height, b.ppi) == (300, 400, 500)
        assert (b.quality, b.finger_position, b.impression_type) == (a.quality, a.finger_position,
                                                                    a.impression_type)
        np.testing.assert_array_equal(a.minutiae["x"], b.minutiae["x"])
        np.testing.assert_array_equal(a.minutiae["y"], b.minutiae["y"])
        np.testing.assert_array_equal(a.minutiae["kind"], b.minutiae["kind"])
        np.testing.assert_array_equal(a.minutiae["quality"], b.minutiae["quality"])
        err = np.abs((a.minutiae["angle"] - b.minutiae["angle"] + math.pi) % (2 * math.pi) - math.pi)
        assert np.all(np.degrees(err) <= step / 2 + 1e-3)
    # a second finger view of the same finger gets view number 1
    rec = encode(views)
    hdr = fmr.ISO_HEADER_LEN if encode is fmr.encode_iso else fmr.ANSI_HEADER_LEN
    second = hdr + 4 + 2  # after the first view (0 minutiae) and its extended-data length
    assert rec[second + 1] >> 4 == 1


def test_ansi_long_length_form_round_trips():
    rng = np.random.default_rng(1)
    views = [_random_template(rng, 255, fgp=(i % 10) + 1) for i in range(50)]
    for i, v in enumerate(views):
        v.finger_position = i % 10 + 1
    rec = fmr.encode_ansi(views)
    assert len(rec) > 0xFFFF
    assert rec[8:10] == b"\x00\x00" and struct.unpack(">I", rec[10:14])[0] == len(rec)
    out = fmr.decode(rec)
    assert len(out) == 50 and all(len(t) == 255 for t in out)


def test_extended_data_is_skipped_on_read():
    # a ridge-count item (type 1, length 7 incl. header: method + one triple) in view 1
    ext = struct.pack(">H", 9) + struct.pack(">HHB", 1, 9, 0) + bytes([0, 1, 5]) + b"\x00"
    body = ISO_EXAMPLE[24:-2] + ext
    rec = ISO_EXAMPLE[:8] + struct.pack(">I", 24 + len(body)) + ISO_EXAMPLE[12:24] + body
    (t,) = fmr.decode(rec)
    assert len(t) == 2


def _iso_with(**patch) -> bytearray:
    rec = bytearray(ISO_EXAMPLE)
    for off, value in patch.values():
        rec[off:off + len(value)] = value
    return rec


@pytest.mark.parametrize("data,message", [
    (b"", "truncated"),
    (b"FMR\x00 2", "truncated"),
    (b"XMR\x00 20\x00" + bytes(34), "bad magic"),
    (b"FMR\x00 30\x00" + bytes(34), "version"),
    (ISO_EXAMPLE + b"\x00", "bad length"),
    (ISO_EXAMPLE[:-1], "truncated"),
    (ISO_EXAMPLE[:30], "truncated"),
    (ANSI_EXAMPLE[:-3], "truncated"),
    (bytes(_iso_with(n=(27, b"\xff"))), "absurd minutia count"),
    (bytes(_iso_with(v=(22, b"\xfa"))), "absurd finger view count"),
    (bytes(_iso_with(x=(28, b"\x41\x00"))), "out of range"),  # x = 256 = width
    (bytes(_iso_with(y=(36, b"\x01\x20"))), "out of range"),  # y = 288 = height
    (bytes(_iso_with(t=(28, b"\xc0"))), "reserved minutia type"),
    (bytes(_iso_with(e=(40, b"\x00\x09"))), "extended data"),
], ids=["empty", "short", "magic", "version", "extra-byte", "cut-1", "cut-30", "ansi-cut",
        "count", "views", "x", "y", "type", "ext-len"])
def test_malformed_records_give_clear_errors(data, message):
    with pytest.raises(fmr.FmrError, match=message):
        fmr.decode(data)


def test_ansi_angle_above_179_is_rejected():
    rec = bytearray(ANSI_EXAMPLE)
    rec[34] = 180
    with pytest.raises(fmr.FmrError, match="angle out of range"):
        fmr.decode(bytes(rec))


def test_writer_refuses_what_the_format_cannot_hold():
    rng = np.random.default_rng(3)
    with pytest.raises(fmr.FmrError, match="at most 255"):
        fmr.encode_iso(_random_template(rng, 256))
    t = _example()
    t.minutiae["x"][0] = 300  # outside the 256-pixel-wide image
    with pytest.raises(fmr.FmrError, match="outside"):
        fmr.encode_iso(t)
    with pytest.raises(fmr.FmrError, match="nothing to encode"):
        fmr.encode_ansi([])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_arbitrary_bytes_give_templates_or_fmr_error(data):
    try:
        out = fmr.decode(data)
    except fmr.FmrError:
        return
    assert all(isinstance(t, Template) for t in out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(ISO_EXAMPLE) - 1), st.integers(0, 255)),
                min_size=1, max_size=4), st.booleans())
def test_mutated_records_give_templates_or_fmr_error(edits, ansi):
    rec = bytearray(ANSI_EXAMPLE if ansi else ISO_EXAMPLE)
    for off, val in edits:
        rec[off % len(rec)] = val
    try:
        out = fmr.decode(bytes(rec))
    except fmr.FmrError:
        return
    for t in out:
        assert np.all(t.minutiae["x"] < t.width) and np.all(t.minutiae["y"] < t.height)
