"""Hostile bytes on the appliance's inbound side: every one is refused with a MessageError.

The corpus (tests/hostile_inputs.py) holds inputs that once raised something
else (RecursionError, ValueError, UnicodeEncodeError) or were accepted although
malformed; the fuzz tests try many more. Each parser returns a value or raises
its own error, never anything else.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fpagent.booking import answers
from fpagent.link import messages, strict_json
from fpagent.link.hook import NotificationHook
from fpagent.sealing import keys
from fpagent.storage.audit_limit import AuditRateLimit
from tests import hostile_inputs as hostile

KEY = keys.generate_signing_key()
ORI, DEV = hostile.ORI, hostile.DEVICE
FUZZ_COUNTS: dict[str, int] = {}


def _parse(data, **kw):
    args = dict(verify_keys=KEY.public_key(), ori=ORI, device=DEV, now=time.time(),
                freshness_s=600)
    args.update(kw)
    return messages.parse_and_verify(data, **args)


@pytest.mark.parametrize("name", sorted(hostile.UNSIGNED))
def test_unsigned_corpus_is_refused_with_a_message_error(name):
    with pytest.raises(messages.MessageError) as err:
        _parse(hostile.UNSIGNED[name])
    assert err.value.reason in messages.REJECT_REASONS


@pytest.mark.parametrize("name", sorted(hostile.signed_corpus(KEY)))
def test_signed_but_malformed_corpus_is_refused(name):
    wire = hostile.signed_corpus(KEY)[name]
    with pytest.raises(messages.MessageError) as err:
        _parse(wire)
    assert err.value.reason == "malformed", (name, err.value.reason, err.value.detail)
    assert len(err.value.detail) <= 300


def test_a_good_message_still_passes_and_a_level_is_an_int():
    fields = messages.immigration_body(submission_id="s-1", tcr="T", central_tcn="C",
                                       determination="removable", level=2)
    msg = _parse(messages.sign(messages.message("notification", fields, ori=ORI, device=DEV), KEY))
    assert msg.body["level"] == 2 and type(msg.body["level"]) is int


def test_strict_json_refuses_what_json_loads_accepts():
    assert json.loads('{"a":1,"a":2}') == {"a": 2}
    for text in ('{"a":1,"a":2}', "NaN", "[Infinity]", "1e400", '"\\ud800"',
                 "[" * 17 + "]" * 17, "1" * 20):
        with pytest.raises(strict_json.StrictJSONError):
            strict_json.loads(text.encode())
    assert strict_json.loads(b'{"a":[1,2.5,"x",null,true]}') == {"a": [1, 2.5, "x", None, True]}


def test_refusal_details_never_exceed_what_the_audit_log_holds():
    for wire in list(hostile.UNSIGNED.values()) + list(hostile.signed_corpus(KEY).values()):
        with pytest.raises(messages.MessageError) as err:
            _parse(wire)
        assert len(err.value.detail) <= 300


# ------------------------------------------------------------------ fuzz


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _count(name: str) -> None:
    FUZZ_COUNTS[name] = FUZZ_COUNTS.get(name, 0) + 1


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=512) | st.text(max_size=256).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_strict_json_raises_only_its_own_error(data):
    _count("strict_json.loads")
    try:
        strict_json.loads(data)
    except strict_json.StrictJSONError:
        pass


_FIELD_NAMES = ["kind", "id", "issued_at", "ori", "device", "submission_id", "tcn", "tcr",
                "result", "reason", "detail", "central_tcn", "check", "determination", "level",
                "instructions", "record", "action", "args", "entries"]


def _body_strategy():
    good = st.fixed_dictionaries({
        "kind": st.sampled_from(["ack", "notification", "command", "status", "x"]),
        "id": st.text(max_size=70) | JSON_VALUES,
        "issued_at": st.just(messages.now_rfc3339()) | st.text(max_size=40),
        "ori": st.just(ORI) | JSON_VALUES, "device": st.just(DEV) | JSON_VALUES,
    })
    extra = st.dictionaries(st.sampled_from(_FIELD_NAMES),
                            JSON_VALUES | st.sampled_from(list(messages.ACK_REASONS)
                                                          + list(messages.DETERMINATIONS)
                                                          + ["accepted", "rejected", "hit",
                                                             "no-hit", "immigration",
                                                             "criminal-history", 1, 2, 3]),
                            max_size=10)
    return st.tuples(good, extra).map(lambda t: {**t[1], **t[0]} if t[1].get("kind") is None
                                      else {**t[0], **t[1]})


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_body_strategy(), st.sampled_from([None, "ack", "notification", "command"]))
def test_fuzz_signed_bodies_verify_or_raise_message_error(body, topic_kind):
    """Signed by the pinned key, so every body check is reached."""
    _count("parse_and_verify(signed bodies)")
    wire = messages.sign(body, KEY)
    try:
        msg = _parse(wire, topic_kind=topic_kind)
    except messages.MessageError as exc:
        assert exc.reason in messages.REJECT_REASONS
        return
    assert msg.kind in messages.CENTRAL_KINDS


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_fuzz_mutated_wire_bytes_raise_only_message_error(data):
    """Flip, insert and delete bytes of a genuine message; wrap it in deep nesting."""
    _count("parse_and_verify(mutated bytes)")
    fields = messages.ack_body(submission_id="s-1", tcn="T", accepted=True, central_tcn="C")
    wire = bytearray(messages.sign(messages.message("ack", fields, ori=ORI, device=DEV), KEY))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "wrap"]))
        pos = data.draw(st.integers(0, max(0, len(wire) - 1)))
        if op == "flip" and wire:
            wire[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=8)
                                      | st.sampled_from([b"\\ud800", b"1" * 40, b"[" * 50, b"NaN"]))
        elif op == "delete" and wire:
            del wire[pos]
        elif op == "wrap":
            depth = data.draw(st.integers(1, 3000))
            wire = bytearray(b"[" * depth + bytes(wire) + b"]" * depth)
    try:
        _parse(bytes(wire))
    except messages.MessageError as exc:
        assert exc.reason in messages.REJECT_REASONS


def test_zz_report_fuzz_counts(capsys):
    """Runs after the fuzz tests in this file: prints how many inputs each tried."""
    with capsys.disabled():
        print("\nfuzz inputs tried:", json.dumps(FUZZ_COUNTS, sort_keys=True))


# ------------------------------------------------------------------ rate limit, text


def test_audit_rate_limit_writes_n_per_window_then_one_summary():
    limit = AuditRateLimit(per_window=3, window_s=60.0)
    written = [limit.admit("malformed", 100.0 + i * 0.1)[0] for i in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert limit.admit("stale", 101.0) == (True, None)  # kinds are counted apart
    assert limit.due(120.0) == [] and limit.pending() == 7
    write, summary = limit.admit("malformed", 161.0)
    assert write and summary == {"kind": "malformed", "more": 7, "written": 3, "window_s": 60.0}
    for i in range(5):
        limit.admit("malformed", 162.0 + i)
    assert limit.due(300.0) == [{"kind": "malformed", "more": 3, "written": 3, "window_s": 60.0}]
    assert limit.pending() == 0


def _notification_with(text: str) -> dict:
    fields = messages.immigration_body(submission_id="s-9", tcr="T9" + text[:10], central_tcn="C9",
                                       determination="removable", level=1, instructions=text,
                                       record={"name" + text[:3]: text})
    return messages.message("notification", fields, ori=ORI, device=DEV)


def _controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f
            or c in "\u202e"]


def test_rendered_notification_has_no_control_characters():
    body = _notification_with(hostile.terminal_escape_text())
    item = {"message_id": "m" * 32, "received": time.time(), "body": body}
    for text in (answers.render(item), answers.summary_line(item), "\n".join(answers.banner(body))):
        assert _controls(text) == [], text
    assert "\\x1b[31mRELEASE NOW" in answers.render(item)  # shown, not interpreted


def test_the_hook_gets_printable_text(tmp_path):
    out = tmp_path / "hook.json"
    hook = NotificationHook(f"cat > {out}", 10)
    assert hook.run_one(_notification_with(hostile.terminal_escape_text()))
    got = json.loads(out.read_text())

    def strings(v):
        if isinstance(v, dict):
            for k, x in v.items():
                yield k
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)
        elif isinstance(v, str):
            yield v
    assert all(_controls(s) == [] for s in strings(got))
    assert "RELEASE NOW" in got["instructions"]
