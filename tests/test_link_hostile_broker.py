"""Hostile messages on an appliance's inbound topics, over a real broker and a real link.

Each used to wedge the appliance: the link raised, dropped the batch without
acknowledging it, reconnected, and the broker redelivered it forever. Now each
is refused, audited (rate limited) and acknowledged, the connection stays up,
and the next booking is answered.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent.link import messages
from fpagent.storage.audit_limit import PER_WINDOW
from fpagent.storage.store import Store
from tests import hostile_inputs as hostile
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, enqueue_bookings, make_central, make_link, needs_mosquitto,
    pki, wait_for)

pytestmark = needs_mosquitto
TOPIC = f"fpagent/v1/{ORI}/booking-01/"


def _publisher(pki, port):
    """A client allowed on the appliance's inbound topics (central's certificate)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-sender", protocol=mqtt.MQTTv5)
    t = pki.tls("central")
    c.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _audit_actions(store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT action FROM audit WHERE actor = 'link'")]


def _answered(store, n):
    return (store.outbox.counts()["acknowledged"] == n and store.inbox.count() == 2 * n)


def test_every_hostile_message_is_refused_acknowledged_and_the_link_stays_up(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    link = make_link(cfg, pki).start()
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    assert link.wait_connected() and central.wait_connected()
    inputs = list(hostile.UNSIGNED.values()) + list(hostile.signed_corpus(pki.central_signing).values())
    pub = _publisher(pki, broker.port)
    try:
        for leaf in ("ack", "notification", "command"):
            for payload in inputs:
                pub.publish(TOPIC + leaf, payload, qos=1).wait_for_publish(5)
        total = 3 * len(inputs)
        wait_for(lambda: link.counters["rejected"] >= total, 30, what="all refused")
        time.sleep(1.0)  # anything not acknowledged would come back after a reconnect
        assert link.counters["rejected"] == total  # each once: acknowledged, not redelivered
        assert link.counters["connects"] == 1 and link.counters["loop_errors"] == 0
        assert link.is_alive() and link.connected
        ids = enqueue_bookings(cfg, pki, 1, criminal=True)
        link.poke()
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: _answered(store, 1), 20, what="the next booking answered")
            assert store.outbox.get(ids[0]).state == "acknowledged"
            actions = _audit_actions(store)
            assert 0 < actions.count("message-rejected") <= total
    finally:
        pub.loop_stop()
        pub.disconnect()
        link.stop()
        central.stop()


def test_signed_rejected_ack_with_a_600_character_reason_is_refused_not_a_crash(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    ids = enqueue_bookings(cfg, pki, 1)
    link = make_link(cfg, pki).start()
    assert link.wait_connected()
    fields = {"submission_id": ids[0], "tcn": "T", "result": "rejected", "reason": "r" * 600}
    wire = messages.sign(messages.message("ack", fields, ori=ORI, device="booking-01"),
                         pki.central_signing)
    pub = _publisher(pki, broker.port)
    try:
        pub.publish(TOPIC + "ack", wire, qos=1).wait_for_publish(5)
        wait_for(lambda: link.rejected["malformed"] == 1, 10, what="the ack refused")
        time.sleep(1.0)
        assert link.rejected["malformed"] == 1 and link.counters["connects"] == 1
        with Store(cfg.paths.database(), cfg) as store:
            assert store.outbox.get(ids[0]).state in ("pending", "sent")  # not marked rejected
    finally:
        pub.loop_stop()
        pub.disconnect()
        link.stop()


def test_a_link_whose_store_keeps_failing_stops_being_alive(tmp_path, pki, broker):
    """Storing keeps failing (the disk stays full): reconnecting forever is not alive."""
    from fpagent.link.connection import Link
    cfg = appliance_config(tmp_path, pki, broker.port)
    store = Store(cfg.paths.database(), cfg)

    def disk_full(*args, **kw):
        raise OSError(28, "No space left on device")
    store.inbox.add = disk_full
    link = Link(cfg, store=store, central_verify_keys=pki.central_signing.public_key(),
                device_signing_key=pki.device_signing["booking-01"])
    link.max_failing_s = 2.0
    link.start()
    assert link.wait_connected()
    fields = messages.criminal_body(submission_id="s-1", tcr="T", hit=False, central_tcn="C")
    wire = messages.sign(messages.message("notification", fields, ori=ORI, device="booking-01"),
                         pki.central_signing)
    pub = _publisher(pki, broker.port)
    try:
        pub.publish(TOPIC + "notification", wire, qos=1).wait_for_publish(5)
        wait_for(lambda: link.counters["store_errors"] >= 1, 10, what="a storage failure")
        wait_for(lambda: not link.is_alive(), 15, what="the link no longer alive")
        assert link.health()["failing_s"] >= 2.0
    finally:
        pub.loop_stop()
        pub.disconnect()
        link.stop()
        store.close()


@pytest.mark.slow
def test_a_flood_of_10000_hostile_messages_leaves_the_next_booking_answered(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    link = make_link(cfg, pki).start()
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    assert link.wait_connected() and central.wait_connected()
    inputs = list(hostile.UNSIGNED.values()) + list(hostile.signed_corpus(pki.central_signing).values())
    leaves = ("ack", "notification", "command")
    pub = _publisher(pki, broker.port)
    try:
        infos = [pub.publish(TOPIC + leaves[i % 3], inputs[i % len(inputs)], qos=1)
                 for i in range(10_000)]
        for info in infos:
            info.wait_for_publish(30)
        flooded = time.monotonic()
        ids = enqueue_bookings(cfg, pki, 1, criminal=True)
        link.poke()
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: _answered(store, 1), 60, what="the booking answered after the flood")
            answered_s = time.monotonic() - flooded
            print(f"\nflood of 10000 hostile messages: next booking answered {answered_s:.1f} s "
                  f"after the last was published; refused so far {link.counters['rejected']}")
            assert answered_s < 60
            assert store.outbox.get(ids[0]).state == "acknowledged"
            wait_for(lambda: link.counters["rejected"] >= 10_000, 60, what="the whole flood refused")
            # no reconnect loop: at most one (a keepalive missed on a heavily loaded machine)
            assert link.counters["connects"] <= 2 and link.is_alive()
            rejected_entries = _audit_actions(store).count("message-rejected")
            assert rejected_entries <= PER_WINDOW * len(messages.REJECT_REASONS) * 3, rejected_entries
    finally:
        pub.loop_stop()
        pub.disconnect()
        link.stop()
        central.stop()
