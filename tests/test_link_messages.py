"""The pure message core: builders refuse nonsense, the parser refuses everything unsigned."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from fpagent.sealing import keys
from fpagent.link import messages

KEY = keys.generate_signing_key()
ORI, DEV = "XX0000000", "booking-01"


def _parse(data, **kw):
    args = dict(verify_keys=KEY.public_key(), ori=ORI, device=DEV, now=time.time(), freshness_s=60)
    args.update(kw)
    return messages.parse_and_verify(data, **args)


def test_builders_refuse_a_level_without_removable_and_unknown_codes():
    with pytest.raises(ValueError):
        messages.immigration_body(submission_id="s", tcr="t", central_tcn="c",
                                  determination="citizen-or-lawful-no-action", level=1)
    with pytest.raises(ValueError):
        messages.immigration_body(submission_id="s", tcr="t", central_tcn="c",
                                  determination="removable")
    with pytest.raises(ValueError):
        messages.immigration_body(submission_id="s", tcr="t", central_tcn="c",
                                  determination="removable", level=4)
    with pytest.raises(ValueError):
        messages.ack_body(submission_id="s", tcn="t", accepted=False, reason="because")


def test_round_trip_and_topic_kind():
    fields = messages.ack_body(submission_id="s-1", tcn="T", accepted=True, central_tcn="C9")
    wire = messages.sign(messages.message("ack", fields, ori=ORI, device=DEV), KEY)
    msg = _parse(wire, topic_kind="ack")
    assert msg.kind == "ack" and msg.body["central_tcn"] == "C9"
    with pytest.raises(messages.MessageError) as exc:
        _parse(wire, topic_kind="notification")
    assert exc.value.reason == "wrong-topic"


def test_stale_carries_the_verified_body_but_nothing_unsigned_does():
    fields = messages.criminal_body(submission_id="s-1", tcr="T", hit=False, central_tcn="C")
    old = messages.sign(messages.message("notification", fields, ori=ORI, device=DEV,
                                         issued_at=time.time() - 600), KEY)
    with pytest.raises(messages.MessageError) as exc:
        _parse(old)
    assert exc.value.reason == "stale" and exc.value.verified_body["submission_id"] == "s-1"
    forged = json.loads(old)
    forged["body"]["issued_at"] = messages.now_rfc3339()
    with pytest.raises(messages.MessageError) as exc:
        _parse(json.dumps(forged).encode())
    assert exc.value.reason == "bad-signature" and exc.value.verified_body is None


def test_split_topic():
    assert messages.split_topic("fpagent/v1/XX0000000/booking-01/ack") == (
        "fpagent", "XX0000000", "booking-01", "ack")
    assert messages.split_topic("fpagent/v2/XX0000000/booking-01/ack") is None
    assert messages.split_topic("fpagent/v1/XX0000000/ack") is None
    assert messages.split_topic("fpagent/v1/XX0000000/booking-01/other") is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=512),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_anything_from_the_wire_is_refused_with_a_reason_never_a_crash(data):
    with pytest.raises(messages.MessageError) as exc:
        _parse(data)
    assert exc.value.reason in messages.REJECT_REASONS
