"""docs/asyncapi.yaml against what the code really sends over a real broker.

The payloads validated here are captured off the wire: acks and
notifications as the link receives them from the reference central, the
retained status and the submissions as a subscriber sees them.
"""

from __future__ import annotations

import json
import pathlib

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent.sealing import envelope
from fpagent.link import messages
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, make_central, make_link, needs_mosquitto, pki, wait_for)

yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extra (pip install -e .[test])")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")

DOC_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def doc():
    return yaml.safe_load(DOC_PATH.read_text())


def validator(doc, pointer: str):
    root = {**doc, "$ref": pointer}
    root.pop("id", None)
    return jsonschema.Draft202012Validator(root)


def test_document_is_asyncapi_and_names_match_the_code(doc):
    assert doc["asyncapi"].startswith("2.6")
    leaves = {name.rsplit("/", 1)[1] for name in doc["channels"]}
    assert leaves == set(messages.LEAVES)
    assert all(name.startswith("{root}/v1/{ori}/{device}/") for name in doc["channels"])
    s = doc["components"]["schemas"]
    assert set(s["AckReason"]["enum"]) == set(messages.ACK_REASONS)
    assert set(s["RejectReason"]["enum"]) == set(messages.REJECT_REASONS)
    imm = s["ImmigrationBody"]["allOf"][2]["properties"]
    assert set(imm["determination"]["enum"]) == set(messages.DETERMINATIONS)
    assert set(s["Detainer"]["properties"]["request"]["enum"]) == set(messages.DETAINER_REQUESTS)
    release = s["ReleaseAnswerBody"]["allOf"][2]["properties"]
    assert release["check"]["const"] == messages.RELEASE_CHECK
    assert s["ReleaseBody"]["allOf"][1]["properties"]["kind"]["const"] == "release"
    reprint = s["ReprintBody"]["allOf"][2]["properties"]
    assert set(reprint["reason"]["enum"]) == set(messages.REPRINT_REASONS)
    assert reprint["check"]["const"] == messages.REPRINT_CHECK
    cmd = s["CommandBody"]["allOf"][1]["properties"]
    assert set(cmd["action"]["enum"]) == set(messages.COMMAND_ACTIONS)
    assert set(s["EnvelopeHeader"]["required"]) == set(envelope._HEADER_FIELDS)
    jsonschema.Draft202012Validator.check_schema(s["AckBody"])


def test_schemas_refuse_what_the_contract_forbids(doc):
    ack = validator(doc, "#/components/messages/Ack/payload")
    note = validator(doc, "#/components/messages/Notification/payload")
    base = {"v": 1, "key_id": "0123456789abcdef", "sig": "AA=="}
    hdr = {"id": "x", "issued_at": "2026-11-28T06:30:00.123Z", "ori": ORI, "device": "booking-01"}
    assert not ack.is_valid({**base, "body": {**hdr, "kind": "ack", "submission_id": "s",
                                              "tcn": "t", "result": "accepted"}})  # no central_tcn
    imm = {**hdr, "kind": "notification", "submission_id": "s", "tcr": "t", "central_tcn": "c",
           "check": "immigration", "result": "hit"}
    assert not note.is_valid({**base, "body": {**imm, "determination": "removable", "level": None}})
    assert not note.is_valid({**base, "body": {**imm, "determination": "citizen-or-lawful-no-action",
                                               "level": 1}})
    assert note.is_valid({**base, "body": {**imm, "determination": "removable", "level": 1}})
    hold = {"request": "hold", "hold_until": "2026-12-01T12:00:00Z", "notify_hours_before": None}
    lodged = {**imm, "determination": "detainer-lodged", "level": 2, "version": 3}
    assert note.is_valid({**base, "body": {**lodged, "detainer": hold}})
    assert not note.is_valid({**base, "body": lodged})  # a detainer without what it asks
    assert not note.is_valid({**base, "body": {**lodged, "detainer": {**hold, "hold_until": None}}})
    assert not note.is_valid({**base, "body": {**lodged, "detainer": hold, "version": 0}})
    assert not note.is_valid({**base, "body": {**imm, "determination": "under-review",
                                               "level": None, "detainer": hold}})


class CapturingLink:
    """Wraps a real Link to keep the raw bytes of what arrives (nothing else changes)."""

    def __init__(self, link):
        self.link = link
        self.raw = []
        original = link._on_message

        def on_message(client, userdata, msg):
            self.raw.append((msg.topic, bytes(msg.payload)))
            original(client, userdata, msg)

        link._on_message = on_message


def test_real_payloads_validate_against_the_document(tmp_path, pki, broker, doc):
    cfg = appliance_config(tmp_path, pki, broker.port)
    seen = {"submission": [], "status": []}
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="contract-watch",
                          protocol=mqtt.MQTTv5)
    t = pki.tls("central")
    watcher.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])

    def on_watch(c, u, m):
        leaf = m.topic.rsplit("/", 1)[1]
        props = dict(getattr(m.properties, "UserProperty", []) or [])
        seen[leaf].append((bytes(m.payload), props, getattr(m.properties, "ContentType", None)))

    watcher.on_message = on_watch
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe([("fpagent/v1/+/+/submission", 1), ("fpagent/v1/+/+/status", 1)])
    watcher.loop_start()
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki)
    cap = CapturingLink(link)
    from fpagent.storage.store import Store
    from tests.mqtt_helpers import seal_test_booking
    with Store(cfg.paths.database(), cfg) as store:
        for n, fields in enumerate([{"criminal": True, "determination": "removable", "level": 1},
                                    {"determination": "citizen-or-lawful-no-action"},
                                    {"determination": "under-review"}, {}]):
            sid, tcn, env = seal_test_booking(pki, "booking-01", n, **fields)
            store.outbox.enqueue(sid, tcn, env, {})
        # not JSON inside: the reference screen rejects it ("malformed-transaction")
        bad = envelope.seal(b"\x00not a transaction", device_id="booking-01", ori=ORI, sequence=9,
                            central_public_key=pki.hpke.public(),
                            device_signing_key=pki.device_signing["booking-01"])
        store.outbox.enqueue(envelope.inspect(bad).submission_id, "BAD", bad, {})
        # booking-01's key, sealed in booking-02's name, on booking-01's topic: "device-mismatch"
        forged = envelope.seal(b"{}", device_id="booking-02", ori=ORI, sequence=10,
                               central_public_key=pki.hpke.public(),
                               device_signing_key=pki.device_signing["booking-01"])
        store.outbox.enqueue(envelope.inspect(forged).submission_id, "FORGED", forged, {})
    link.start()
    try:
        wait_for(lambda: sum(1 for tpc, _ in cap.raw if tpc.endswith("/ack")) >= 6, 20, what="6 acks")
        wait_for(lambda: sum(1 for tpc, _ in cap.raw if tpc.endswith("/notification")) >= 8, 20,
                 what="8 notifications")
        wait_for(lambda: seen["status"], 10, what="status")
    finally:
        link.stop()
        central.stop()
        watcher.loop_stop()
        watcher.disconnect()
    validators = {leaf: validator(doc, f"#/components/messages/{leaf.capitalize()}/payload")
                  for leaf in ("ack", "notification", "status", "command")}
    reasons, determinations = set(), set()
    for topic, raw in cap.raw:
        leaf = topic.rsplit("/", 1)[1]
        obj = json.loads(raw)
        errors = [e.message for e in validators[leaf].iter_errors(obj)]
        assert not errors, (leaf, errors)
        reasons.add(obj["body"].get("reason"))
        determinations.add(obj["body"].get("determination"))
    assert {"malformed-transaction", "device-mismatch"} <= reasons  # both rejected acks seen
    assert {"removable", "citizen-or-lawful-no-action", "under-review", "no-match"} <= determinations
    for raw, _, _ in seen["status"]:
        errors = [e.message for e in validators["status"].iter_errors(json.loads(raw))]
        assert not errors, errors
    online = [json.loads(raw)["body"] for raw, _, _ in seen["status"]
              if json.loads(raw)["body"]["state"] == "online"]
    assert online and all(b["audit"]["seq"] >= 1 for b in online)  # the audit head goes off the box
    assert not validators["status"].is_valid(
        {**json.loads(seen["status"][0][0]), "body": {**online[0], "audit": {"seq": 1}}})
    header_schema = validator(doc, "#/components/schemas/EnvelopeHeader")
    props_schema = validator(doc, "#/components/schemas/SubmissionUserProperties")
    assert seen["submission"]
    for raw, props, ctype in seen["submission"]:
        assert raw[:4] == b"FPE1"
        assert header_schema.is_valid(envelope.inspect(raw).to_dict())
        assert props_schema.is_valid(props) and props["fp-id"] == envelope.inspect(raw).submission_id
        assert ctype == doc["components"]["messages"]["Submission"]["contentType"]
    # the one kind no code path here sends on its own: a command built by the message code
    body = messages.message("command", {"action": "purge", "args": {"tcns": ["T-1"]}},
                            ori=ORI, device="booking-01")
    cmd = json.loads(messages.sign(body, pki.central_signing))
    assert validators["command"].is_valid(cmd)
    # a purge's args are the contract's (PurgeArgs), not anything at all
    body = messages.message("command", {"action": "purge", "args": {"before": "2026-01-01"}},
                            ori=ORI, device="booking-01")
    assert not validators["command"].is_valid(json.loads(messages.sign(body, pki.central_signing)))
