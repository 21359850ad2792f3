"""Every outside-facing parser returns a value or raises its module's own error.

Property-based fuzzing (hypothesis) of the envelope header parser and the
signed-message reader (EnvelopeError), the ANSI/NIST-ITL transaction parser
(TransactionError) and the ISO/ANSI minutiae record decoder (FmrError): real
records are built, then mutated as an attacker would (flipped, inserted and
deleted bytes, truncation, hostile field values). Any other exception is a
finding; the inputs that were findings are kept below as a regression corpus.

FPAGENT_FUZZ_EXAMPLES raises the number of inputs per property (default 300).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpagent.biometrics.template import Template, minutiae_array
from fpagent.records import fmr
from fpagent.records import transaction as T
from fpagent.records.transaction_format import TransactionError
from fpagent.records.transaction_parse import parse_transaction, validate
from fpagent.sealing import envelope, keys
from fpagent.sealing.envelope import EnvelopeError

EXAMPLES = int(os.environ.get("FPAGENT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECOND = 1.0  # every parser answers within this, whatever it is given

CENTRAL = keys.generate_central_hpke_keys()
DEVICE = keys.generate_signing_key()
ENVELOPE = envelope.seal(b"NIST\x1d" + bytes(range(256)) * 4, device_id="booking-01",
                         ori="XX0000000", sequence=7, central_public_key=CENTRAL.public(),
                         device_signing_key=DEVICE)
HEADER = envelope.inspect(ENVELOPE).to_dict()


def with_header(hbytes: bytes, rest: bytes | None = None) -> bytes:
    """An envelope around these header bytes (the ciphertext and signature of ENVELOPE)."""
    hlen = struct.unpack(">H", ENVELOPE[4:6])[0]
    rest = ENVELOPE[6 + hlen:] if rest is None else rest
    return b"FPE1" + struct.pack(">H", len(hbytes) & 0xFFFF) + hbytes + rest


def mutations(seed: bytes):
    """Strategy: `seed` with up to 8 edits (flip, set, insert, delete, truncate, duplicate)."""
    edit = st.tuples(st.sampled_from(("flip", "set", "insert", "delete", "truncate", "dup")),
                     st.integers(0, max(len(seed) - 1, 0)), st.integers(0, 255),
                     st.integers(1, 64))

    def apply(edits):
        data = bytearray(seed)
        for op, pos, byte, n in edits:
            pos = min(pos, max(len(data) - 1, 0))
            if op == "flip" and data:
                data[pos] ^= 1 << (byte % 8)
            elif op == "set" and data:
                data[pos] = byte
            elif op == "insert":
                data[pos:pos] = bytes([byte]) * n
            elif op == "delete":
                del data[pos:pos + n]
            elif op == "truncate":
                del data[pos:]
            elif op == "dup":
                data[pos:pos] = data[pos:pos + n]
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=8).map(apply)


def json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=40), st.text(alphabet=st.characters(
                            min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3))
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.text(max_size=12), c, max_size=4), max_leaves=12)


def _bounded(call, *errors):
    """Run a parser: it returns or raises one of `errors`, within SECOND."""
    t0 = time.perf_counter()
    try:
        call()
    except errors:
        pass
    assert time.perf_counter() - t0 < SECOND


# --------------------------------------------------------------------------- envelope


@FUZZ
@given(mutations(ENVELOPE))
def test_envelope_mutated_bytes_give_envelope_error(data):
    _bounded(lambda: envelope.inspect(data), EnvelopeError)
    _bounded(lambda: envelope.verify_and_open(data, central_private_key=CENTRAL,
                                              device_verify_keys=[DEVICE.public_key()]),
             EnvelopeError)


@FUZZ
@given(st.data())
def test_envelope_header_hostile_values_give_envelope_error(data):
    field = data.draw(st.sampled_from(sorted(HEADER)))
    doc = dict(HEADER, **{field: data.draw(json_values())})
    if data.draw(st.booleans()):
        doc[data.draw(st.text(max_size=8))] = data.draw(json_values())
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=data.draw(
        st.booleans()))
    hbytes = text.encode("utf-8", "surrogatepass")[:0xFFFF]
    _bounded(lambda: envelope.inspect(with_header(hbytes)), EnvelopeError)


@FUZZ
@given(mutations(envelope.sign_message({"kind": "ack", "n": [1, {"a": "b"}]}, DEVICE)))
def test_signed_message_mutations_give_envelope_error(data):
    _bounded(lambda: envelope.verify_message(data, DEVICE.public_key()), EnvelopeError)


HOSTILE_HEADERS = [
    b"[" * 5000 + b"]" * 5000,  # RecursionError in json
    b'{"v":' + b"1" * 5000 + b"}",  # ValueError: int string too long
    json.dumps(dict(HEADER, device_id="\ud800"), sort_keys=True,
               separators=(",", ":")).encode(),  # lone surrogate: UnicodeEncodeError
    json.dumps(dict(HEADER, ori="\ud800"), sort_keys=True, separators=(",", ":"),
               ensure_ascii=False).encode("utf-8", "surrogatepass"),  # raw surrogate bytes
    b'{"v":1,"x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    json.dumps(dict(HEADER, seq=2 ** 200), sort_keys=True, separators=(",", ":")).encode(),
    json.dumps(dict(HEADER, v=True), sort_keys=True, separators=(",", ":")).encode(),
]


@pytest.mark.parametrize("hbytes", HOSTILE_HEADERS, ids=range(len(HOSTILE_HEADERS)))
def test_hostile_envelope_headers_give_envelope_error(hbytes):
    with pytest.raises(EnvelopeError):
        envelope.inspect(with_header(hbytes))


@pytest.mark.parametrize("data", [b"[" * 5000 + b"]" * 5000,
                                  b'{"v":' + b"1" * 5000 + b"}",
                                  b'{"v":1,"key_id":"\\ud800","body":{},"sig":""}'])
def test_hostile_signed_messages_give_envelope_error(data):
    with pytest.raises(EnvelopeError):
        envelope.verify_message(data, DEVICE.public_key())


def test_genuine_envelope_still_reads():
    assert envelope.inspect(ENVELOPE).device_id == "booking-01"


# --------------------------------------------------------------------------- transaction


def _ridges(h=64, w=64, seed=0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = 128 + 90 * np.sin((x * 0.8 + y * 0.6) * 2 * math.pi / 9.0 + seed)
    return np.clip(img, 0, 255).astype(np.uint8)


def _template(position: int) -> Template:
    rows = [(5 + 3 * i, 7 + 2 * i, 0.3 * i, 1 + i % 2, 40 + i) for i in range(12)]
    return Template(minutiae_array(rows), 64, 64, 500, 70, position)


def small_transaction(compression: str = "png") -> bytes:
    fingers = tuple(T.FingerCapture(p, _ridges(seed=p), 500, 60, _template(p)) for p in (2, 7))
    rec = T.BookingRecord(tcn="XX0000000-20261128-0001", ori="XX0000000",
                          destination="XX0000001", fingers=fingers,
                          created_at=dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.timezone.utc))
    return T.build_transaction(rec, compression=compression)


TRANSACTION = small_transaction()


def _parse_everything(data: bytes) -> None:
    parsed = parse_transaction(data)
    parsed.templates()
    validate(parsed)


@FUZZ
@given(mutations(TRANSACTION))
def test_transaction_mutations_give_transaction_error(data):
    _bounded(lambda: _parse_everything(data), TransactionError)


LATIN1_TEXT = st.text(st.characters(max_codepoint=0xFF, blacklist_characters="\x1c\x1d\x1e\x1f"),
                      max_size=12)  # what a traditional-encoding field can carry
MINUTIA_ITEMS = st.one_of(st.integers(-10 ** 6, 10 ** 6).map(str), LATIN1_TEXT,
                          st.just("1" * 5000), st.just("-3"), st.just(""))


@FUZZ
@given(st.lists(st.tuples(*[MINUTIA_ITEMS] * 6), min_size=1, max_size=6), st.integers(2, 7))
def test_transaction_hostile_minutiae_give_transaction_error(rows, _):
    """Type-9 FMD values of any text or size (quality -3 raised OverflowError)."""
    _bounded(lambda: _parse_everything(_with_minutiae(rows)), TransactionError)


def _with_minutiae(rows) -> bytes:
    import nistitl
    msg = nistitl.Message()
    msg.parse(TRANSACTION)
    r9 = next(iter(msg.iter(9)))
    r9[137].value = [list(r) for r in rows]
    return msg.NIST


@pytest.mark.parametrize("row", [("1", "5", "7", "10", "-3", "1"),  # quality -3: OverflowError
                                 ("1", "5", "7", "10", "300", "1"),
                                 ("1", "5", "7", "-1", "50", "9"),
                                 ("1", "1" * 5000, "7", "10", "50", "1")])
def test_hostile_minutia_values_give_transaction_error(row):
    parsed = parse_transaction(_with_minutiae([row]))
    with pytest.raises(TransactionError):
        parsed.templates()


def test_genuine_transaction_templates_read_back():
    templates = parse_transaction(TRANSACTION).templates()
    assert sorted(templates) == [2, 7]
    assert len(templates[2].minutiae) == 12


# --------------------------------------------------------------------------- fmr


FMR_SEEDS = [fmr.encode_iso([_template(2), _template(7)]), fmr.encode_ansi(_template(2))]


@FUZZ
@given(st.sampled_from(range(len(FMR_SEEDS))).flatmap(lambda i: mutations(FMR_SEEDS[i])))
def test_fmr_mutations_give_fmr_error(data):
    _bounded(lambda: fmr.decode(data), fmr.FmrError)


@FUZZ
@given(st.binary(max_size=600).map(lambda b: b"FMR\x00 20\x00" + b))
def test_fmr_random_bodies_give_fmr_error(data):
    _bounded(lambda: fmr.decode(data), fmr.FmrError)
