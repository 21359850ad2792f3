"""Inputs that once crashed or wedged the appliance's inbound side (regression corpus).

Each was demonstrated against a real broker and link: the unsigned ones raised
something other than MessageError and made the link reconnect forever; the
signed ones were accepted although malformed. `signed_corpus(key)` builds the
signed ones with a given central key (the signature must verify for the body
checks to be reached at all).
"""

from __future__ import annotations

from fpagent.link import messages

ORI, DEVICE = "XX0000000", "booking-01"

# unsigned: bytes anybody allowed on the topic can publish
UNSIGNED = {
    "nested-array-5000": b"[" * 5000 + b"]" * 5000,
    "nested-object-5000": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "integer-5000-digits": b'{"v":' + b"1" * 5000 + b"}",
    "integer-5000-digits-in-body": (b'{"v":1,"key_id":"0000000000000000","sig":"","body":{"n":'
                                    + b"9" * 5000 + b"}}"),
    "float-huge-exponent": b'{"v":1e999999,"key_id":"x","sig":"","body":{}}',
    "nan": b'{"v":NaN,"key_id":"x","sig":"","body":{}}',
    "lone-surrogate-key-id": b'{"v":1,"key_id":"\\ud800","sig":"","body":{}}',
    "lone-surrogate-in-body": b'{"v":1,"key_id":"k","sig":"","body":{"\\udfff":1}}',
    "duplicate-outer-key": b'{"v":1,"v":1,"key_id":"k","sig":"","body":{}}',
    "v-true": b'{"v":true,"key_id":"k","sig":"","body":{}}',
    "not-utf8": b"\xff\xfe{}",
    "empty": b"",
    "array": b"[]",
    "null-bytes": b"\x00" * 64,
}


def _signed(key, kind: str, fields: dict, **header) -> bytes:
    body = messages.message(kind, fields, ori=ORI, device=DEVICE, **header)
    return messages.sign(body, key)


def _ack(**over) -> dict:
    fields = {"submission_id": "5b0d8a4e-0000-4000-8000-000000000001", "tcn": "T1",
              "result": "rejected", "reason": "oversized", "detail": "too big"}
    fields.update(over)
    return fields


def _immigration(**over) -> dict:
    fields = messages.immigration_body(submission_id="5b0d8a4e-0000-4000-8000-000000000002",
                                       tcr="T2", central_tcn="C2", determination="removable",
                                       level=1)
    fields.update(over)
    return fields


def duplicate_key_message(key) -> bytes:
    """A signed notification whose wire text holds `level` twice (the signature covers the last)."""
    wire = _signed(key, "notification", _immigration(level=3))
    # a first-key-wins reader would see level 1 ahead of the signed level 3
    return wire.replace(b'"level":3', b'"level":1,"level":3', 1)


def signed_corpus(key) -> dict[str, bytes]:
    return {
        "ack-reason-600-chars": _signed(key, "ack", _ack(reason="x" * 600)),
        "ack-reason-not-in-contract": _signed(key, "ack", _ack(reason="because")),
        "ack-detail-10k": _signed(key, "ack", _ack(detail="d" * 10_000)),
        "ack-tcn-not-text": _signed(key, "ack", _ack(tcn=12)),
        "level-true": _signed(key, "notification", _immigration(level=True)),
        "level-float": _signed(key, "notification", _immigration(level=1.0)),
        "instructions-not-text": _signed(key, "notification", _immigration(instructions=["x"])),
        "record-nested-deep": _signed(key, "notification",
                                      _immigration(record={"a": {"b": {"c": {"d": 1}}}})),
        "issued-at-not-rfc3339": messages.sign(
            {**messages.message("ack", _ack(), ori=ORI, device=DEVICE),
             "issued_at": "2026-01-01T00:00:00+00:00Z"}, key),
        "duplicate-key": duplicate_key_message(key),
        "id-not-text": messages.sign({**messages.message("ack", _ack(), ori=ORI, device=DEVICE),
                                      "id": {"x": 1}}, key),
    }


def terminal_escape_text() -> str:
    """Free text that would recolour, move the cursor and retitle a terminal."""
    return "\x1b[2J\x1b[31mRELEASE NOW\x1b[0m\x1b]0;owned\x07\r\x08\x9b1m\u202eevil"

