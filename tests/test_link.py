"""The link against a real mosquitto (TLS, client certificates, ACL) and the reference central."""

from __future__ import annotations

import json
import socket
import time

import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackAPIVersion

from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, enqueue_bookings, make_central, make_link, needs_mosquitto,
    pki, seal_test_booking, wait_for)

pytestmark = needs_mosquitto


def _store(cfg):
    return Store(cfg.paths.database(), cfg)


def test_many_bookings_are_acknowledged_and_answered(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    n = 150
    ids = enqueue_bookings(cfg, pki, n, criminal=True)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    try:
        with _store(cfg) as store:
            wait_for(lambda: store.outbox.counts()["acknowledged"] == n, 60, what="all acks")
            wait_for(lambda: store.inbox.count() == 2 * n, 30, what="all notifications")
            items = [store.outbox.get(i) for i in ids]
            assert all(it.state == "acknowledged" and it.central_tcn for it in items)
            kinds = sorted((m["body"]["check"], m["body"]["result"])
                           for m in store.inbox.list(limit=1000))
            assert kinds.count(("criminal-history", "hit")) == n
            assert kinds.count(("immigration", "no-hit")) == n
            # TCR of each notification is the booking's TCN
            tcns = {it.tcn for it in items}
            assert {m["body"]["tcr"] for m in store.inbox.list(limit=1000)} == tcns
        counts = central.store.counts()
        assert counts["submissions"] == n and counts["notifications"] == 2 * n
        assert link.health()["connected"] and link.counters["acks_accepted"] == n
        assert link.counters["rejected"] == 0
    finally:
        link.stop()
        central.stop()


def test_duplicates_on_purpose_are_one_record_and_one_alert(tmp_path, pki, broker):
    """The same sealed submission published three times: one central record, one alert each."""
    cfg = appliance_config(tmp_path, pki, broker.port)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    assert central.wait_connected() and link.wait_connected()
    sid, tcn, env = seal_test_booking(pki, "booking-01", 7, criminal=True,
                                      determination="removable", level=1)
    try:
        with _store(cfg) as store:
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_for(lambda: store.inbox.count() == 2, 20, what="two notifications")
            first_ack = store.outbox.get(sid).ack
            # publish the very same envelope twice more, as a retrying appliance would
            pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup-sender",
                              protocol=mqtt.MQTTv5)
            t = pki.tls("booking-01")
            pub.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            for _ in range(2):
                pub.publish(f"fpagent/v1/{ORI}/booking-01/submission", env, qos=1).wait_for_publish(5)
            wait_for(lambda: central.counters["duplicates"] == 2, 10, what="central duplicates")
            pub.loop_stop()
            pub.disconnect()
            wait_for(lambda: link.counters["duplicate_acks"] >= 2, 10, what="duplicate acks")
            wait_for(lambda: link.rejected["replayed"] >= 2, 10, what="re-sent notifications dropped")
            time.sleep(0.5)  # give any further re-sends the time to arrive
            assert store.inbox.count() == 2  # one criminal, one immigration alert
            assert store.outbox.get(sid).ack == first_ack  # the same ack (same id) each time
        sub = central.store.submission(sid)
        assert sub["deliveries"] == 3
        assert central.store.counts()["submissions"] == 1
    finally:
        link.stop()
        central.stop()


def test_submission_waits_for_signed_ack_not_puback(tmp_path, pki, broker):
    """With no central subscribed, the broker PUBACKs but nothing is acknowledged; later it is."""
    cfg = appliance_config(tmp_path, pki, broker.port, ack_timeout_s=0.5)
    ids = enqueue_bookings(cfg, pki, 3)
    link = make_link(cfg, pki).start()
    try:
        with _store(cfg) as store:
            wait_for(lambda: link.counters["republished"] >= 3, 10, what="re-publish after timeout")
            assert store.outbox.counts()["acknowledged"] == 0
            assert all(store.outbox.get(i).state == "sent" for i in ids)
            central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
            try:
                wait_for(lambda: store.outbox.counts()["acknowledged"] == 3, 20, what="acks")
            finally:
                central.stop()
            assert central_sub_ids(tmp_path) == set(ids)
    finally:
        link.stop()


def central_sub_ids(tmp_path):
    import sqlite3
    with sqlite3.connect(tmp_path / "central.sqlite3") as db:
        return {r[0] for r in db.execute("SELECT submission_id FROM submissions")}


def test_retained_status_and_will(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port, keepalive_s=1)
    got = {}
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-watch",
                          protocol=mqtt.MQTTv5)
    t = pki.tls("central")
    watcher.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
    watcher.on_message = lambda c, u, m: got.__setitem__("last", (m.retain, json.loads(m.payload)))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe(f"fpagent/v1/{ORI}/booking-01/status", qos=1)
    watcher.loop_start()
    link = make_link(cfg, pki, status_extra=lambda: {"sensor": {"state": "ready"}}).start()
    try:
        wait_for(lambda: got.get("last", (0, {}))[1].get("body", {}).get("state") == "online", 10,
                 what="online status")
        body = got["last"][1]["body"]
        assert body["kind"] == "status" and body["device"] == "booking-01"
        assert body["sensor"] == {"state": "ready"} and "pending" in body["queue"]
        assert got["last"][1]["sig"]  # signed with the device key
        # the connection dies without a DISCONNECT: the broker publishes the will...
        link._client.socket().shutdown(socket.SHUT_RDWR)
        wait_for(lambda: got["last"][1]["body"]["state"] == "offline", 15, what="will (offline)")
        # ...and the link, reconnected, says it is online again
        wait_for(lambda: got["last"][1]["body"]["state"] == "online", 15, what="online again")
        assert link.counters["connects"] == 2
    finally:
        link.stop()
        watcher.loop_stop()
        watcher.disconnect()


def test_hook_gets_notification_json_and_failure_is_not_fatal(tmp_path, pki, broker):
    out = tmp_path / "hook-out"
    cfg = appliance_config(tmp_path, pki, broker.port)
    cfg.notifications.hook = f"cat >> {out}; echo >> {out}; exit 3"
    enqueue_bookings(cfg, pki, 2, determination="removable", level=2)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    try:
        wait_for(lambda: link.hook.failures == 4, 20, what="four hook runs, each failing")
        lines = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
        assert len(lines) == 4
        imm = [x for x in lines if x["check"] == "immigration"]
        assert all(x["determination"] == "removable" and x["level"] == 2 for x in imm)
        assert link.hook.runs == 4 and link.connected  # exit 3 is logged, not fatal
    finally:
        link.stop()
        central.stop()


def test_answer_gone_stale_in_the_broker_is_asked_for_again(tmp_path, pki, broker):
    """The immigration answer waits in the broker while the appliance is off, past the
    freshness window: it is refused (stale, audited), and the link re-publishes the
    submission so central sends it again, freshly signed. Nothing is lost."""
    cfg = appliance_config(tmp_path, pki, broker.port)
    cfg.envelope.freshness_s = 1.5
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3",
                           immigration_delay_s=1.0).start()
    sid, tcn, env = seal_test_booking(pki, "booking-01", 3, determination="removable", level=3)
    link = make_link(cfg, pki).start()
    try:
        assert link.wait_connected() and central.wait_connected()
        with _store(cfg) as store:
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_for(lambda: store.inbox.count() == 1, 10, what="the criminal-history answer")
        link.stop()  # off before the immigration answer comes; it waits in the broker
        wait_for(lambda: central.counters["notifications_sent"] >= 2, 10, what="immigration sent")
        time.sleep(2.0)  # now older than the freshness window
        link = make_link(cfg, pki).start()
        with _store(cfg) as store:
            wait_for(lambda: store.inbox.count() == 2, 15, what="the immigration answer, again")
            imm = [m for m in store.inbox.list() if m["body"]["check"] == "immigration"][0]
            assert imm["body"]["level"] == 3
            # the stale one refused; central's re-sent criminal answer dropped as a replay
            assert sorted(e.detail["reason"] for e in
                          store.audit.list(action="message-rejected")) == ["replayed", "stale"]
        assert link.counters["resync_requests"] == 1
        assert central.store.submission(sid)["deliveries"] == 2
    finally:
        link.stop()
        central.stop()


def test_message_not_stored_is_not_acknowledged_and_comes_again(tmp_path, pki, broker):
    """Storing fails once (stand-in for a full disk: the store raises, as the real one does): the
    link does not ack to the broker, drops the connection, and the broker redelivers."""
    cfg = appliance_config(tmp_path, pki, broker.port)
    store = _store(cfg)
    real_add = store.inbox.add
    failures = []

    def add_failing_once(*args, **kw):
        if not failures:
            failures.append(1)
            raise OSError(28, "No space left on device")
        return real_add(*args, **kw)

    store.inbox.add = add_failing_once
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link_shared(cfg, pki, store).start()
    try:
        enqueue_bookings(cfg, pki, 1, criminal=True)
        link.poke()
        wait_for(lambda: store.inbox.count() == 2, 20, what="both notifications stored")
        assert failures and link.counters["store_errors"] == 1
        assert link.counters["connects"] >= 2  # it reconnected to get the message again
        assert store.outbox.counts()["acknowledged"] == 1
    finally:
        link.stop()
        central.stop()
        store.close()


def make_link_shared(cfg, pki, store):
    from fpagent.link.connection import Link
    return Link(cfg, store=store, central_verify_keys=pki.central_signing.public_key(),
                device_signing_key=pki.device_signing[cfg.device.device_id])


def test_reconnect_backoff_has_jitter_and_a_ceiling(tmp_path, pki):
    cfg = appliance_config(tmp_path, pki, 1, reconnect_min_s=0.5, reconnect_max_s=8.0)
    link = make_link(cfg, pki)
    delays = [link._backoff() for _ in range(40)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 30  # jittered, not a fixed ladder
    assert max(delays[10:]) > 4.0  # grows towards the ceiling


def test_answer_lost_by_a_crashing_broker_is_asked_for_again(tmp_path, pki):
    """The broker dies (kill -9) holding the immigration answer for an offline appliance:
    the booking was acknowledged but one answer never comes, so after answers_timeout_s
    the link publishes the submission again and central answers again."""
    from fpagent.devtools.broker import LocalBroker
    broker = LocalBroker(tmp_path / "broker", pki.certs, autosave_s=3600).start()
    cfg = appliance_config(tmp_path, pki, broker.port, answers_timeout_s=2.0)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3",
                           immigration_delay_s=1.0).start()
    sid, tcn, env = seal_test_booking(pki, "booking-01", 4, determination="under-review")
    link = make_link(cfg, pki).start()
    try:
        assert link.wait_connected() and central.wait_connected()
        with _store(cfg) as store:
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_for(lambda: store.inbox.count() == 1, 10, what="the criminal-history answer")
        link.stop()
        wait_for(lambda: central.counters["notifications_sent"] >= 2, 10, what="immigration sent")
        time.sleep(0.3)
        broker.stop(kill=True)  # never saved: the queued answer is gone
        broker.start()
        assert central.wait_connected(15)
        link = make_link(cfg, pki).start()
        with _store(cfg) as store:
            wait_for(lambda: store.inbox.count() == 2, 20, what="the immigration answer, again")
            assert store.outbox.get(sid).state == "acknowledged"
        assert link.counters["resync_requests"] >= 1
    finally:
        link.stop()
        central.stop()
        broker.stop()


def test_inflight_window_limits_unanswered_submissions(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port, inflight=2, ack_timeout_s=2.0)
    enqueue_bookings(cfg, pki, 5)
    link = make_link(cfg, pki).start()
    try:
        assert link.wait_connected()
        time.sleep(1.0)  # no central: nothing is answered (and the broker drops them)
        assert link.counters["published"] == 2 and link.health()["inflight"] == 2
        with _store(cfg) as store:
            assert store.outbox.counts()["pending"] == 3  # the rest wait their turn, safe in SQLite
        central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
        try:
            with _store(cfg) as store:
                wait_for(lambda: store.outbox.counts()["acknowledged"] == 5, 20, what="all five")
        finally:
            central.stop()
    finally:
        link.stop()
