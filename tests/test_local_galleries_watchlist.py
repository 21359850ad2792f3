"""The watch list pushed by central: a signed `command` (watchlist.replace) over a
real mosquitto with TLS, verified and recorded by the real link, applied by
screening's handler (as the service wires it) into the encrypted local gallery,
screened against by a booking. Forged or corrupt commands change nothing."""

from __future__ import annotations

import base64
import json
import pathlib
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent import hal
from fpagent.booking import local_screening, runner
from fpagent.booking import session as B
from fpagent.records import fmr
from fpagent.sealing import keys
from fpagent.biometrics import matcher
from fpagent.link import messages
from fpagent.central.screening import synthetic_watchlist
from fpagent.screening.galleries import WATCHLIST, GalleryStore
from fpagent.screening.prefilter import Gallery
from fpagent.screening.watchlist import WatchlistCommands
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, make_central, make_link, needs_mosquitto, pki, wait_for)

pytestmark = needs_mosquitto
SEED = 31
DOC_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def warm():
    from fpagent.biometrics import extraction
    extraction.warm_up()
    matcher.warm_up()


@pytest.fixture(scope="module")
def entries_6(warm):
    return synthetic_watchlist(SEED, [6], fingers=(2, 7))


def capture_raw(link) -> list:
    """Keep the raw bytes of what the real link receives (nothing else changes)."""
    raw = []
    original = link._on_message

    def on_message(client, userdata, msg):
        raw.append((msg.topic, bytes(msg.payload)))
        original(client, userdata, msg)

    link._on_message = on_message
    return raw


def audit(cfg, action):
    with Store(cfg.paths.database(), cfg) as store:
        return store.audit.list(action=action)


def gallery_file(cfg) -> pathlib.Path:
    return GalleryStore.from_config(cfg).directory / f"{WATCHLIST}.gallery"


def test_pushed_watchlist_lands_encrypted_and_screens_a_booking(tmp_path, pki, broker, entries_6):
    cfg = appliance_config(tmp_path, pki, broker.port)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    watch = WatchlistCommands.from_config(cfg)
    link = make_link(cfg, pki, on_command=watch)
    raw = capture_raw(link)
    link.start()
    try:
        assert link.wait_connected() and central.wait_connected()
        wait_for(link._subscribed.is_set, 10, what="link subscribed")
        mid = central.push_watchlist(ORI, "booking-01", entries_6)
        wait_for(lambda: watch.counters["watchlist_replaced"] == 1, 20, what="watch list applied")
    finally:
        link.stop()

    # on disk: encrypted, no template bytes, no subject ids in plaintext
    blob = gallery_file(cfg).read_bytes()
    assert blob[:4] == b"FPG1" and oct(gallery_file(cfg).stat().st_mode & 0o777) == "0o600"
    assert b"FMR\x00" not in blob and b"FPGALRY2" not in blob and b"W6" not in blob
    for e in entries_6:
        record = base64.b64decode(e["template_iso_b64"])
        assert record[24:56] not in blob  # minutiae bytes of every pushed template
    g = Gallery.from_bytes(GalleryStore.from_config(cfg).load(WATCHLIST))
    assert sorted(g.ids()) == ["W6/2", "W6/7"]

    # stored, audited with counts only
    done = audit(cfg, "watchlist-replaced")
    assert len(done) == 1 and done[0].detail["message_id"] == mid
    assert done[0].detail["entries"] == 2 and done[0].detail["subjects"] == 1
    assert "template_iso_b64" not in json.dumps(done[0].detail)
    with Store(cfg.paths.database(), cfg) as store:
        assert [i["body"]["action"] for i in store.inbox.list(kind="command")] == ["watchlist.replace"]

    # the command as it came off the wire matches the AsyncAPI document
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    doc = yaml.safe_load(DOC_PATH.read_text())
    schema = {**doc, "$ref": "#/components/messages/Command/payload"}
    schema.pop("id", None)
    validator = jsonschema.Draft202012Validator(schema)
    # MQTT delivers at least once: a redelivered copy is the same message (and the
    # link refused it as a replay, as the inbox above shows); one distinct command
    copies = [p for t, p in raw if t.endswith("/command")]
    assert copies and len(set(copies)) == 1
    commands = [json.loads(copies[0])]
    assert not [e.message for e in validator.iter_errors(commands[0])]
    bad = json.loads(json.dumps(commands[0]))
    bad["body"]["args"]["entries"][0]["finger_position"] = 11
    assert not validator.is_valid(bad)
    del bad["body"]["args"]
    assert not validator.is_valid(bad)

    # a booking of the watch-listed person (other impressions) shows the candidate
    session = B.BookingSession(B.BookingInfo("BK-W", ORI, "officer-1"), fingers=(2, 7),
                               compare=matcher.compare, match_threshold=matcher.MATCH_THRESHOLD)
    screen = local_screening.local_screen(cfg)
    with hal.open_sensor(f"synthetic://?seed={SEED}&person=6&impression=0") as sensor:
        runner.run_booking(session, sensor, timeout=5.0, screen=screen)
    assert "watchlist:W6/2" in [c[0] for c in session.screening.get(2, [])], session.screening
    assert "watchlist:W6/7" in [c[0] for c in session.screening.get(7, [])], session.screening
    # someone else is not a candidate
    other = B.BookingSession(B.BookingInfo("BK-X", ORI, "officer-1"), fingers=(2,))
    with hal.open_sensor(f"synthetic://?seed={SEED}&person=12&impression=0") as sensor:
        runner.run_booking(other, sensor, timeout=5.0, screen=screen)
    assert other.screening == {}
    central.stop()


def _central_client(pki, port):
    t = pki.tls("central")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-raw", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_forged_or_corrupt_watchlist_changes_nothing_and_is_audited(tmp_path, pki, broker, entries_6):
    cfg = appliance_config(tmp_path, pki, broker.port)
    good = messages.sign(messages.message("command", messages.watchlist_command(entries_6),
                                          ori=ORI, device="booking-01"), pki.central_signing)
    record = base64.b64decode(entries_6[0]["template_iso_b64"])
    corrupt_sets = {
        "truncated": [entries_6[1], {**entries_6[0], "template_iso_b64":
                                     base64.b64encode(record[:-7]).decode()}],
        "not-a-record": [entries_6[1], {**entries_6[0], "template_iso_b64":
                                        base64.b64encode(b"\x89PNG" + bytes(60)).decode()}],
        "not-base64": [{**entries_6[0], "template_iso_b64": "%%%not base64%%%"}, entries_6[1]],
    }
    watch = WatchlistCommands.from_config(cfg)
    link = make_link(cfg, pki, on_command=watch).start()
    cen = _central_client(pki, broker.port)
    topic = f"fpagent/v1/{ORI}/booking-01/command"
    try:
        assert link.wait_connected()
        wait_for(link._subscribed.is_set, 10, what="link subscribed")
        cen.publish(topic, good, qos=1).wait_for_publish(5)
        wait_for(lambda: watch.counters["watchlist_replaced"] == 1, 20, what="first watch list")
        before = gallery_file(cfg).read_bytes()

        # signed by a key that is not the pinned central key: refused before the inbox
        forged = messages.sign(messages.message("command", messages.watchlist_command(entries_6[:1]),
                                                ori=ORI, device="booking-01"),
                               keys.generate_signing_key())
        cen.publish(topic, forged, qos=1).wait_for_publish(5)
        # unsigned (the body alone, no signature)
        unsigned = json.dumps({"v": 1, "key_id": keys.key_id(pki.central_signing.public_key()),
                               "body": messages.message("command",
                                                        messages.watchlist_command(entries_6[:1]),
                                                        ori=ORI, device="booking-01")}).encode()
        cen.publish(topic, unsigned, qos=1).wait_for_publish(5)
        wait_for(lambda: link.counters["rejected"] >= 2, 10, what="forged + unsigned refused")

        # genuinely signed, but one template in each is corrupt: nothing applied
        for entries in corrupt_sets.values():
            body = messages.message("command", {"action": "watchlist.replace",
                                                "args": {"entries": entries}},
                                    ori=ORI, device="booking-01")
            cen.publish(topic, messages.sign(body, pki.central_signing), qos=1).wait_for_publish(5)
        wait_for(lambda: watch.counters["commands_failed"] == 3, 20, what="corrupt commands refused")
        # genuine and well formed, but issued before the one applied: never go back
        older = messages.message("command", messages.watchlist_command(entries_6[:1]),
                                 ori=ORI, device="booking-01", issued_at=time.time() - 60)
        cen.publish(topic, messages.sign(older, pki.central_signing), qos=1).wait_for_publish(5)
        wait_for(lambda: watch.counters["commands_failed"] == 4, 20, what="older command refused")
        assert watch.counters["watchlist_replaced"] == 1
    finally:
        cen.loop_stop()
        cen.disconnect()
        link.stop()

    assert gallery_file(cfg).read_bytes() == before  # byte for byte: nothing replaced
    assert sorted(Gallery.from_bytes(GalleryStore.from_config(cfg).load(WATCHLIST)).ids()) == \
        ["W6/2", "W6/7"]
    assert link.rejected["unknown-key"] == 1 and link.rejected["malformed"] + \
        link.rejected["bad-signature"] == 1
    rejected = audit(cfg, "message-rejected")
    assert sorted(r.detail["reason"] for r in rejected) == sorted(
        ["unknown-key", "bad-signature" if link.rejected["bad-signature"] else "malformed"])
    failed = audit(cfg, "command-failed")
    assert failed[0].detail["why"] == "superseded"
    failed = failed[1:]
    assert len(failed) == 3 and {f.detail["why"] for f in failed} == {"bad-template"}
    assert sorted(f.detail["detail"].split(":")[0] for f in failed) == ["entry 0", "entry 1", "entry 1"]
    for f in failed:  # no biometric data in the audit trail
        assert entries_6[0]["template_iso_b64"][:40] not in json.dumps(f.detail)
    with Store(cfg.paths.database(), cfg) as store:
        assert store.counters.get("link.command_failed.bad-template") == 3
        assert len(store.inbox.list(kind="command")) == 5  # good, 3 corrupt, older: all stored
    assert len(audit(cfg, "watchlist-replaced")) == 1


def test_cli_push_replaces_the_whole_watchlist(tmp_path, pki, broker, entries_6, capsys):
    from fpagent import cli

    cfg = appliance_config(tmp_path, pki, broker.port)
    watch = WatchlistCommands.from_config(cfg)
    link = make_link(cfg, pki, on_command=watch).start()
    cen = _central_client(pki, broker.port)
    try:
        assert link.wait_connected()
        wait_for(link._subscribed.is_set, 10, what="link subscribed")
        first = messages.sign(messages.message("command", messages.watchlist_command(entries_6),
                                               ori=ORI, device="booking-01"), pki.central_signing)
        cen.publish(f"fpagent/v1/{ORI}/booking-01/command", first, qos=1).wait_for_publish(5)
        wait_for(lambda: watch.counters["watchlist_replaced"] == 1, 20, what="first watch list")
        code = cli.main(["central", "push-watchlist", "--port", str(broker.port),
                         "--certs", str(pki.certs), "--keys", str(pki.central_dir),
                         "--ori", ORI, "--device", "booking-01", "--synthetic", "8",
                         "--seed", str(SEED)])
        assert code == 0 and "2 templates" in capsys.readouterr().out
        wait_for(lambda: watch.counters["watchlist_replaced"] == 2, 20, what="pushed watch list")
    finally:
        cen.loop_stop()
        cen.disconnect()
        link.stop()
    g = Gallery.from_bytes(GalleryStore.from_config(cfg).load(WATCHLIST))
    assert sorted(g.ids()) == ["W8/2", "W8/7"]  # replaced, not merged


def test_commands_are_prepared_before_the_inbox_transaction_and_applied_inside_it(
        tmp_path, pki, broker):
    from fpagent.link.connection import Link

    cfg = appliance_config(tmp_path, pki, broker.port)
    store = Store(cfg.paths.database(), cfg)
    seen = []

    def on_command(msg):
        seen.append(("prepare", msg.body["action"], store.conn.in_transaction))
        return lambda s: seen.append(("step", s is store, store.conn.in_transaction))

    link = Link(cfg, store=store, central_verify_keys=pki.central_signing.public_key(),
                device_signing_key=pki.device_signing["booking-01"], on_command=on_command).start()
    cen = _central_client(pki, broker.port)
    command = messages.sign(messages.message("command", messages.watchlist_command([]),
                                             ori=ORI, device="booking-01"), pki.central_signing)
    try:
        assert link.wait_connected()
        wait_for(link._subscribed.is_set, 10, what="link subscribed")
        cen.publish(f"fpagent/v1/{ORI}/booking-01/command", command, qos=1).wait_for_publish(5)
        wait_for(lambda: len(seen) == 2, 10, what="command handed over")
        # the same command again: refused as a replay, never handed over a second time
        cen.publish(f"fpagent/v1/{ORI}/booking-01/command", command, qos=1).wait_for_publish(5)
        wait_for(lambda: link.rejected["replayed"] == 1, 10, what="replay refused")
    finally:
        cen.loop_stop()
        cen.disconnect()
        link.stop()
    assert seen == [("prepare", "watchlist.replace", False), ("step", True, True)]
    assert [a.action for a in store.audit.list(action="command-received")] == ["command-received"]
    store.close()


def test_the_service_hands_pushed_watch_lists_to_screening(tmp_path, pki, broker, entries_6):
    from fpagent.service import daemon as service_mod

    cfg = appliance_config(tmp_path, pki, broker.port)
    keys_dir = cfg.paths.keys()
    keys_dir.mkdir(parents=True, mode=0o700)
    (keys_dir / keys.CENTRAL_VERIFY_KEY).write_bytes(
        (pki.central_dir / keys.CENTRAL_VERIFY_KEY).read_bytes())
    keys.save_private_key(keys_dir / keys.DEVICE_SIGNING_KEY, pki.device_signing["booking-01"])
    store = Store(cfg.paths.database(), cfg)
    part = service_mod.LinkPart(cfg, store, period=0.05)
    part.open()  # the service's own wiring of the real link
    cen = _central_client(pki, broker.port)
    try:
        assert part.link is not None and part.link.wait_connected(), part.detail
        wait_for(part.link._subscribed.is_set, 10, what="link subscribed")
        command = messages.sign(messages.message("command", messages.watchlist_command(entries_6),
                                                 ori=ORI, device="booking-01"), pki.central_signing)
        cen.publish(f"fpagent/v1/{ORI}/booking-01/command", command, qos=1).wait_for_publish(5)
        wait_for(lambda: store.audit.list(action="watchlist-replaced"), 20,
                 what="watch list applied by the service")
    finally:
        cen.loop_stop()
        cen.disconnect()
        part.close()
        store.close()
    g = Gallery.from_bytes(GalleryStore.from_config(cfg).load(WATCHLIST))
    assert sorted(g.ids()) == ["W6/2", "W6/7"]
