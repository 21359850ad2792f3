"""The readers of central's fleet-command arguments and of the appliance's results:
pure functions that return a value or raise their module's error, whatever they get."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpagent.link import fleet_commands as fc
from fpagent.link import messages
from fpagent.sealing import keys


def json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.text(max_size=12), c, max_size=4), max_leaves=12)


PARSERS = (fc.parse_purge, fc.parse_config_change, fc.parse_key_rotation,
           fc.parse_watchlist_replace, fc.parse_watchlist_update)
KEYS = ("tcns", "older_than_days", "set", "public_key_pem", "not_before", "not_after", "entries",
        "list_id", "chunk", "chunks", "digest", "add", "remove", "subject_id", "finger_position",
        "mqtt.answers_timeout_s", "service.log_level")


def near_valid_args():
    """Objects with the parsers' own field names, so the checks past the first are reached."""
    return st.dictionaries(st.sampled_from(KEYS), json_values(), max_size=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PARSERS), st.one_of(json_values(), near_valid_args()))
def test_every_args_parser_returns_or_raises_its_error(parse, args):
    try:
        parse(args)
    except fc.CommandArgsError as exc:
        assert str(exc)  # says which field


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values(), st.dictionaries(
    st.sampled_from(("kind", "command_id", "action", "outcome", "reason", "detail")),
    json_values(), max_size=6)))
def test_result_reader_returns_or_raises_message_error(body):
    try:
        fc.validate_result(body)
    except messages.MessageError as exc:
        assert exc.reason == "malformed"


def test_each_parser_takes_the_documented_shape_and_refuses_its_neighbours():
    assert fc.parse_purge({"tcns": ["A", "A", "B"]}).tcns == ("A", "B")
    assert fc.parse_purge({"older_than_days": 30}).older_than_days == 30.0
    for bad in ({}, {"tcns": [], }, {"tcns": ["A"], "older_than_days": 1},
                {"older_than_days": 0}, {"older_than_days": True}, {"before": "2026-01-01"}):
        with pytest.raises(fc.CommandArgsError):
            fc.parse_purge(bad)
    assert fc.parse_config_change({"set": {"service.log_level": "debug"}}) == {
        ("service", "log_level"): "debug"}
    for bad in ({"set": {"mqtt.host": "evil.example"}}, {"set": {"envelope.central_verify_key": "/x"}},
                {"set": {}}, {"set": {"service.log_level": ["x"]}}, {"set": "x"}):
        with pytest.raises(fc.CommandArgsError):
            fc.parse_config_change(bad)
    pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    rot = fc.parse_key_rotation({"public_key_pem": pem, "not_before": "2026-01-01T00:00:00Z",
                                 "not_after": "2026-01-02T00:00:00Z"})
    assert rot.not_after - rot.not_before == 86400
    for window in (("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
                   ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
                   ("2026-01-01", "2026-01-02T00:00:00Z")):
        with pytest.raises(fc.CommandArgsError):
            fc.parse_key_rotation({"public_key_pem": pem, "not_before": window[0],
                                   "not_after": window[1]})
    whole = fc.parse_watchlist_replace({"entries": []})
    assert whole.list_id == "" and whole.chunks == 1
    digest = fc.watchlist_digest([])
    chunk = fc.parse_watchlist_replace({"entries": [], "list_id": "L1", "chunk": 1, "chunks": 2,
                                        "digest": digest})
    assert (chunk.chunk, chunk.chunks, chunk.digest) == (1, 2, digest)
    for bad in ({"entries": [], "list_id": "L1"},
                {"entries": [], "list_id": "L1", "chunk": 2, "chunks": 2, "digest": digest},
                {"entries": [], "list_id": "a/b", "chunk": 0, "chunks": 1, "digest": digest},
                {"entries": [], "list_id": "L1", "chunk": 0, "chunks": 1, "digest": "X" * 64}):
        with pytest.raises(fc.CommandArgsError):
            fc.parse_watchlist_replace(bad)
    upd = fc.parse_watchlist_update({"remove": [{"subject_id": "W1"},
                                                {"subject_id": "W2", "finger_position": 3}]})
    assert upd.remove == (("W1", None), ("W2", 3))
    for bad in ({}, {"remove": [{"subject_id": "W1", "finger_position": 11}]},
                {"remove": [{"subject_id": "a/b"}]}, {"add": [{"subject_id": "W1"}]}):
        with pytest.raises(fc.CommandArgsError):
            fc.parse_watchlist_update(bad)


def test_chunks_fit_the_message_limit_and_add_up_to_the_digest():
    entries = [{"subject_id": f"S{n}", "finger_position": n % 10,
                "template_iso_b64": "QUFB" * 200} for n in range(40)]
    chunks = fc.watchlist_chunks(entries, max_bytes=8192, list_id="L")
    assert len(chunks) > 3
    joined = [e for c in chunks for e in c["args"]["entries"]]
    assert joined == entries
    assert {c["args"]["digest"] for c in chunks} == {fc.watchlist_digest(entries)}
    key = keys.generate_signing_key()
    for c in chunks:
        wire = messages.sign(messages.message("command", c, ori="XX0000000", device="d"), key)
        assert len(wire) <= 8192
        fc.parse_watchlist_replace(c["args"])


def test_a_result_names_the_command_and_keeps_text_printable():
    fields = fc.result_fields("c" * 32, "purge", "refused", "not-acknowledged", "\x1b[2J2 kept")
    assert fields["detail"].startswith("\\x1b")
    fc.validate_result({"kind": "result", **fields})
    json.dumps(fields)
    with pytest.raises(ValueError):
        fc.result_fields("c", "purge", "maybe", "done")


def test_the_contract_document_names_what_the_code_takes_and_answers():
    import pathlib
    yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extra")
    doc = yaml.safe_load((pathlib.Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml")
                         .read_text())
    s = doc["components"]["schemas"]
    allowed = s["ConfigChangeArgs"]["properties"]["set"]["propertyNames"]["enum"]
    assert set(allowed) == {f"{a}.{b}" for a, b in fc.CONFIG_ALLOWED}
    result = s["ResultBody"]["allOf"][1]["properties"]
    assert set(result["reason"]["enum"]) == set(fc.RESULT_REASONS)
    assert set(result["outcome"]["enum"]) == set(fc.OUTCOMES)
    assert s["PurgeArgs"]["properties"]["tcns"]["maxItems"] == fc.MAX_PURGE_TCNS
