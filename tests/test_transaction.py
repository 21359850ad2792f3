"""ANSI/NIST-ITL transaction: built with nistitl, read back with nistitl.

Real images come from the shared FVC2002 folder (fixture `fingerprints_dir`);
tests that only need *an* image use a small ridge-like pattern made here.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from PIL import Image

import nistitl
from fpagent.records import transaction as T
from fpagent.records.transaction_format import FINGERS, TransactionError
from fpagent.records.tcn import make_tcn, tcn_is_valid
from fpagent.records.transaction_parse import parse_transaction, record_lengths, validate
from fpagent.biometrics.template import Template, minutiae_array

WHEN = dt.datetime(2026, 11, 28, 6, 30, 15, tzinfo=dt.timezone.utc)
ORI = "CA0190000"


def ridges(h=288, w=256, period=9.0, angle=0.6, seed=0) -> np.ndarray:
    """A fingerprint-like stripe pattern with a little noise (not a real print)."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    phase = (x * math.cos(angle) + y * math.sin(angle)) * 2 * math.pi / period
    img = 128 + 90 * np.sin(phase + 0.002 * (x - w / 2) ** 2) + rng.normal(0, 8, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def template_for(px: np.ndarray, position: int, n=25, seed=0) -> Template:
    rng = np.random.default_rng(seed + position)
    rows = [
        (rng.uniform(0, px.shape[1] - 1), rng.uniform(0, px.shape[0] - 1),
         rng.uniform(0, 2 * math.pi), 1 + i % 2, 40 + i % 50)
        for i in range(n)
    ]
    return Template(minutiae_array(rows), px.shape[1], px.shape[0], 500, 70, position)


def booking(images: dict, missing: dict | None = None, **kw) -> T.BookingRecord:
    fingers = []
    for pos in FINGERS:
        if missing and pos in missing:
            fingers.append(T.FingerCapture(pos, missing=missing[pos]))
        else:
            px = images[pos]
            fingers.append(T.FingerCapture(pos, px, 500, 60 + pos, template_for(px, pos)))
    args = dict(
        tcn=make_tcn(ORI, WHEN, 7), ori=ORI, destination="CA0000001",
        fingers=tuple(fingers), booking_number="BK-2026-0042",
        descriptive={"name": "DOE,JOHN Q", "dob": "1980-02-29", "sex": "M", "pob": "CA"},
        created_at=WHEN,
    )
    args.update(kw)
    return T.BookingRecord(**args)


@pytest.fixture(scope="module")
def real_images(fingerprints_dir):
    """Ten different real fingers (FVC2002 DB1 set B, impression 1 of 101..110)."""
    folder = fingerprints_dir / "fvc2002_db1_b"
    return {
        pos: np.asarray(Image.open(folder / f"{100 + pos}_1.png").convert("L"))
        for pos in FINGERS
    }


@pytest.fixture(scope="module")
def made_images():
    return {pos: ridges(seed=pos, angle=0.3 * pos) for pos in FINGERS}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# --- round trip -------------------------------------------------------------


def test_ten_print_round_trips_through_nistitl_with_mandatory_fields(real_images):
    data = T.build_transaction(booking(real_images))
    parsed = parse_transaction(data)
    validate(parsed)
    assert parsed.version == "0502"
    assert parsed.tot == "CAR"
    assert parsed.ori == ORI and parsed.destination == "CA0000001"
    assert parsed.tcn == make_tcn(ORI, WHEN, 7) and tcn_is_valid(parsed.tcn)
    r1 = parsed.message[0]
    assert r1.DAT == "20261128"
    assert r1.GMT == "20261128063015Z"
    assert r1.NSR == "00.00" and r1.NTR == "00.00"
    assert r1.DOM == "NORAM"
    # CNT lists 1 Type-2, 10 Type-14, 10 Type-9
    assert [r.type for r in parsed.message].count(14) == 10
    assert [r.type for r in parsed.message].count(9) == 10
    assert [f.position for f in parsed.fingers] == list(range(1, 11))
    # Type-2: only what was configured, plus booking number and dates
    assert parsed.descriptive == {
        9: "BK-2026-0042", 18: "DOE,JOHN Q", 20: "CA", 22: "19800229", 24: "M",
        38: "20261128", 45: "20261128",
    }
    for f in parsed.fingers:
        assert f.cga == "WSQ20" and f.ppi == 500 and f.impression_type == 0
        assert (f.height, f.width) == real_images[f.position].shape
        assert f.quality == 60 + f.position
        assert f.minutiae_count == 25
    r14 = parsed.message[(14, 3)]
    assert r14.SRC == ORI and r14.FCD == "20261128" and r14.SLC == "1" and r14.BPX == "8"


def test_len_fields_are_exact_and_records_tile_the_bytes(made_images):
    data = T.build_transaction(booking(made_images))
    walk = record_lengths(data)  # independent of nistitl: LEN lands on FS
    assert sum(length for _, _, length in walk) == len(data)
    assert [t for t, _, _ in walk][:3] == [1, 2, 14]
    parsed = parse_transaction(data)
    for record, (rtype, offset, length) in zip(parsed.message, walk):
        assert record.type == rtype
        assert int(record[1].value) == length
        assert data[offset:offset + length] == record.NIST  # re-encoding is byte-exact


def test_wsq_decodes_close_to_the_original_at_a_useful_ratio(real_images):
    data = T.build_transaction(booking(real_images))
    parsed = parse_transaction(data)
    raw = sum(img.size for img in real_images.values())
    compressed = sum(len(f.image_data) for f in parsed.fingers)
    assert raw / compressed > 8  # ~0.75 bpp target => roughly 10-20:1 on real prints
    for f in parsed.fingers:
        back = f.pixels()
        assert back.shape == real_images[f.position].shape
        assert psnr(back, real_images[f.position]) > 25.0
        assert f.image_data[:2] == b"\xff\xa0"  # WSQ start-of-image marker


def test_png_option_is_lossless(made_images):
    data = T.build_transaction(booking(made_images), compression="png")
    parsed = parse_transaction(data)
    for f in parsed.fingers:
        assert f.cga == "PNG"
        assert np.array_equal(f.pixels(), made_images[f.position])


def test_amputated_and_unable_to_print_fingers_carry_amp_and_no_image(made_images):
    data = T.build_transaction(booking(made_images, missing={5: "XX", 6: "UP"}))
    parsed = parse_transaction(data)
    validate(parsed)
    assert len(parsed.fingers) == 10
    for pos, code in ((5, "XX"), (6, "UP")):
        f = parsed.finger(pos)
        assert f.missing == code and f.image_data == b"" and f.cga == ""
        r = parsed.message[(14, pos)]
        assert r[18].value == [[str(pos), code]]
        assert r[999] is None and r[6] is None and r[11] is None
        assert f.minutiae_count is None  # no Type-9 for a finger without an image
        with pytest.raises(TransactionError, match="no image"):
            f.pixels()
    assert len(list(parsed.message.iter(9))) == 8


def test_type9_carries_the_incits378_block(made_images):
    px = made_images[2]
    rows = [(10.4, 20.6, math.pi / 2, 1, 77), (30.0, 40.0, 0.0, 2, 5), (50, 60, 3 * math.pi / 2, 0, 0)]
    t = Template(minutiae_array(rows), px.shape[1], px.shape[0], 500, 81, 2)
    rec = booking(made_images)
    fingers = tuple(
        T.FingerCapture(2, px, 500, 81, t) if f.position == 2 else f for f in rec.fingers
    )
    parsed = parse_transaction(T.build_transaction(booking(made_images, fingers=fingers)))
    r9 = parsed.message[(9, 2)]
    assert r9[4].value == "S"
    assert r9[126].value == [["27", "513", "0"]]
    assert (r9[128].value, r9[129].value) == (str(px.shape[1]), str(px.shape[0]))
    assert r9[134].value == "2" and r9[136].value == "3"
    # index, x, y, theta in 2-degree units (90 deg -> 45, 270 deg -> 135), quality, type
    assert r9[137].value == [
        ["1", "10", "21", "45", "77", "1"],
        ["2", "30", "40", "0", "5", "2"],
        ["3", "50", "60", "135", "0", "0"],
    ]


def test_below_gate_print_is_flagged_in_a_comment(made_images):
    rec = booking(made_images)
    fingers = tuple(
        T.FingerCapture(3, f.pixels, 500, 12, f.template, below_gate=True, attempts=3)
        if f.position == 3 else f for f in rec.fingers
    )
    parsed = parse_transaction(T.build_transaction(booking(made_images, fingers=fingers)))
    assert parsed.finger(3).comment == "BELOW QUALITY GATE AFTER 3 ATTEMPTS"
    assert parsed.finger(4).comment == ""


def test_a_suspected_duplicate_is_flagged_in_the_same_comment(made_images):
    rec = booking(made_images)
    fingers = tuple(
        T.FingerCapture(3, f.pixels, 500, 12, f.template, below_gate=True, attempts=3,
                        duplicate_of=2, duplicate_score=0.4321)
        if f.position == 3 else f for f in rec.fingers
    )
    parsed = parse_transaction(T.build_transaction(booking(made_images, fingers=fingers)))
    comment = parsed.finger(3).comment
    assert comment == ("BELOW QUALITY GATE AFTER 3 ATTEMPTS; SUSPECTED SAME FINGER AS FGP 2 "
                       "(SCORE 0.432): NOT CONFIRMED, REVIEW")
    assert len(comment) <= 126


def test_non_500_ppi_falls_back_to_png_rather_than_wsq(made_images):
    rec = booking(made_images)
    fingers = tuple(
        T.FingerCapture(f.position, f.pixels, 1000, f.quality, None) for f in rec.fingers
    )
    parsed = parse_transaction(T.build_transaction(booking(made_images, fingers=fingers)))
    assert {f.cga for f in parsed.fingers} == {"PNG"}
    assert {f.ppi for f in parsed.fingers} == {1000}


# --- TCN ----------------------------------------------------------------------


def test_tcn_is_sender_unique_and_its_check_character_catches_typos():
    tcns = {make_tcn(ORI, WHEN, seq) for seq in range(500)}
    assert len(tcns) == 500
    tcn = make_tcn(ORI, WHEN, 1234)
    assert tcn.startswith(f"{ORI}-20261128-00001234-") and tcn_is_valid(tcn)
    body, check = tcn[:-1], tcn[-1]
    for i, c in enumerate(body):
        if c.isdigit():
            typo = body[:i] + str((int(c) + 1) % 10) + body[i + 1:] + check
            assert not tcn_is_valid(typo), typo
    with pytest.raises(TransactionError, match="ORI"):
        make_tcn("SHORT", WHEN, 1)


# --- bad input ----------------------------------------------------------------


def test_descriptive_fields_are_limited_by_configuration(made_images):
    rec = booking(made_images)
    with pytest.raises(TransactionError, match="not enabled"):
        T.build_transaction(rec, descriptive_fields=["name", "dob"])
    rec = booking(made_images, descriptive={"ssn": "123"})
    with pytest.raises(TransactionError, match="unknown descriptive field 'ssn'"):
        T.build_transaction(rec)
    rec = booking(made_images, descriptive={"dob": "1980-02-30"})
    with pytest.raises(TransactionError, match="not a real date"):
        T.build_transaction(rec)
    rec = booking(made_images, descriptive={"name": "DOE\x1dJOHN"})
    with pytest.raises(TransactionError, match="control"):
        T.build_transaction(rec)


def test_bad_bookings_are_refused_with_reasons(made_images):
    with pytest.raises(TransactionError, match="XX or UP"):
        T.FingerCapture(1, missing="AM")
    with pytest.raises(TransactionError, match="neither an image"):
        T.FingerCapture(1)
    with pytest.raises(TransactionError, match="not 1-10"):
        T.FingerCapture(16, made_images[1])  # 11, 12 are the plain thumbs of a ten-print
    everything_missing = {p: "XX" for p in FINGERS}
    with pytest.raises(TransactionError, match="no print"):
        T.build_transaction(booking(made_images, missing=everything_missing))
    with pytest.raises(TransactionError, match="wsq_bitrate"):
        T.build_transaction(booking(made_images), wsq_bitrate=1.5)
    with pytest.raises(TransactionError, match="TOT"):
        T.build_transaction(booking(made_images, type_of_transaction="car"))


def test_truncated_or_garbage_bytes_are_rejected_clearly(made_images):
    data = T.build_transaction(booking(made_images, missing={4: "UP"}))
    for bad in (b"", b"hello", data[:-1], data[: len(data) // 2], data + b"x"):
        with pytest.raises(TransactionError):
            validate(parse_transaction(bad))


def test_validate_names_a_missing_mandatory_field(made_images):
    parsed = parse_transaction(T.build_transaction(booking(made_images)))
    del parsed.message[0][9]  # drop 1.009 TCN, re-encode with nistitl
    with pytest.raises(TransactionError, match=r"1\.009 TCN"):
        validate(parse_transaction(parsed.message.NIST))

    parsed = parse_transaction(T.build_transaction(booking(made_images)))
    del parsed.message[(14, 3)][11]  # an image without its CGA
    with pytest.raises(TransactionError, match=r"14\.011 CGA"):
        validate(parse_transaction(parsed.message.NIST))

    parsed = parse_transaction(T.build_transaction(booking(made_images)))
    parsed.message[(9, 1)][136].value = "99"  # NOM disagrees with the minutiae
    with pytest.raises(TransactionError, match="NOM 99"):
        validate(parse_transaction(parsed.message.NIST))


def test_a_wrong_len_is_caught(made_images):
    data = bytearray(T.build_transaction(booking(made_images)))
    walk = record_lengths(bytes(data))
    _, offset, length = walk[1]  # the Type-2 record
    head = f"2.001:{length}".encode()
    assert data[offset:offset + len(head)] == head
    data[offset:offset + len(head)] = f"2.001:{length - 1}".encode()
    with pytest.raises(TransactionError):
        record_lengths(bytes(data))
    with pytest.raises(TransactionError):
        validate(parse_transaction(bytes(data)))


def test_repr_hides_pixels_and_personal_data(made_images):
    rec = booking(made_images)
    assert "DOE" not in repr(rec)
    assert "array" not in repr(rec.fingers[0])
    parsed = parse_transaction(T.build_transaction(rec))
    assert "DOE" not in repr(parsed)


def test_nistitl_message_shape_is_what_we_think():
    """Guards our reliance on nistitl internals used in validate()."""
    msg = nistitl.Message()
    assert msg[0][1] is not None and hasattr(msg[0], "_fields")


def test_type9_minutiae_read_back_as_templates(made_images):
    rec = booking(made_images, missing={7: "XX"})
    parsed = parse_transaction(T.build_transaction(rec))
    back = parsed.templates()
    assert sorted(back) == [p for p in FINGERS if p != 7]
    for f in rec.fingers:
        if f.missing:
            continue
        got, sent = back[f.position].minutiae, f.template.minutiae
        assert len(got) == len(sent) and back[f.position].finger_position == f.position
        assert np.all(np.abs(got["x"] - sent["x"]) <= 0.5) and np.all(np.abs(got["y"] - sent["y"]) <= 0.5)
        diff = np.abs((got["angle"] - sent["angle"] + math.pi) % (2 * math.pi) - math.pi)
        assert np.all(diff <= math.radians(1.0) + 1e-6)
        assert np.array_equal(got["kind"], sent["kind"]) and np.array_equal(got["quality"], sent["quality"])


def _small_transaction() -> bytes:
    images = {p: ridges(h=64, w=64, seed=p) for p in FINGERS}
    return T.build_transaction(booking(images, missing={3: "XX"}), compression="png")


SMALL = None


@pytest.mark.parametrize("seed", range(3))
def test_damaged_transactions_give_transaction_error_and_nothing_else(seed):
    """Central parses bytes from the field: any flip, cut or insertion is either
    still a valid transaction or a TransactionError, never another exception."""
    global SMALL
    SMALL = SMALL or _small_transaction()
    rng = np.random.default_rng(seed)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(300):
        data = bytearray(SMALL)
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.integers(0, 3)
            at = int(rng.integers(0, len(data)))
            if kind == 0:
                data[at] = int(rng.integers(0, 256))
            elif kind == 1:
                del data[at:at + int(rng.integers(1, 50))]
            else:
                data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
        try:
            parsed = parse_transaction(bytes(data))
            validate(parsed)
            for f in parsed.fingers:
                if not f.missing:
                    f.pixels()
            parsed.templates()
            outcomes["ok"] += 1
        except TransactionError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 100
