"""Security of the link: broker ACL with TLS client certificates, and what the appliance refuses."""

from __future__ import annotations

import json
import os
import pathlib
import ssl
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent.sealing import keys
from fpagent.link import messages
from fpagent.devtools.broker import LocalBroker
from fpagent.devtools.ca import make_untrusted_client
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, make_central, make_link, needs_mosquitto, pki,
    seal_test_booking, wait_for)

pytestmark = needs_mosquitto
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _client(port, tls, cid, *, on_message=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=tls["ca_file"], certfile=tls.get("cert_file"), keyfile=tls.get("key_file"))
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _stop(*clients):
    for c in clients:
        c.loop_stop()
        c.disconnect()


def test_appliance_cannot_read_or_write_another_appliances_topics(tmp_path, pki, broker):
    got = {"01": [], "02": [], "central": []}
    a1 = _client(broker.port, pki.tls("booking-01"), "b01",
                 on_message=lambda c, u, m: got["01"].append(m.topic))
    a2 = _client(broker.port, pki.tls("booking-02"), "b02",
                 on_message=lambda c, u, m: got["02"].append(m.topic))
    cen = _client(broker.port, pki.tls("central"), "cen",
                  on_message=lambda c, u, m: got["central"].append((m.topic, m.payload)))
    try:
        cen.subscribe("$share/g/fpagent/v1/+/+/submission", qos=1)
        for leaf in ("notification", "ack", "command"):
            a1.subscribe(f"fpagent/v1/{ORI}/booking-02/{leaf}", qos=1)  # not its own
            a2.subscribe(f"fpagent/v1/{ORI}/booking-02/{leaf}", qos=1)
        a1.subscribe("fpagent/v1/+/+/submission", qos=1)  # other appliances' bookings
        time.sleep(0.3)
        for leaf in ("notification", "ack", "command"):
            cen.publish(f"fpagent/v1/{ORI}/booking-02/{leaf}", b"{}", qos=1).wait_for_publish(5)
        # booking-01 tries to publish as booking-02, and then a submission of its own
        a1.publish(f"fpagent/v1/{ORI}/booking-02/submission", b"forged", qos=1).wait_for_publish(5)
        a1.publish(f"fpagent/v1/{ORI}/booking-02/status", b"forged", qos=1, retain=True)
        a2.publish(f"fpagent/v1/{ORI}/booking-02/submission", b"genuine", qos=1).wait_for_publish(5)
        wait_for(lambda: len(got["02"]) == 3, 5, what="booking-02 receiving its own messages")
        wait_for(lambda: got["central"], 5, what="central receiving the genuine submission")
        time.sleep(0.3)
        assert got["01"] == []  # nothing of booking-02's, not even its submissions
        assert got["central"] == [(f"fpagent/v1/{ORI}/booking-02/submission", b"genuine")]
        # an appliance cannot publish acks/notifications to itself either (central's right)
        a1.publish(f"fpagent/v1/{ORI}/booking-01/notification", b"self-made", qos=1).wait_for_publish(5)
        a1.subscribe(f"fpagent/v1/{ORI}/booking-01/notification", qos=1)
        time.sleep(0.3)
        assert got["01"] == []
    finally:
        _stop(a1, a2, cen)


def _connect_fails(port, tls: dict | None, plain: bool = False) -> bool:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nocert", protocol=mqtt.MQTTv5)
    result = {}
    c.on_connect = lambda cl, u, f, rc, p: result.setdefault("rc", rc)
    if not plain:
        c.tls_set(ca_certs=tls["ca_file"], certfile=tls.get("cert_file"),
                  keyfile=tls.get("key_file"))
    try:
        c.connect("127.0.0.1", port)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "rc" not in result:
            if c.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
    except (OSError, ssl.SSLError):
        return True
    finally:
        try:
            c.socket() and c.socket().close()
        except OSError:
            pass
    return not ("rc" in result and not result["rc"].is_failure)


def test_client_without_a_valid_certificate_cannot_connect(tmp_path, pki, broker):
    ca = {"ca_file": str(pki.certs / "ca.crt")}
    assert _connect_fails(broker.port, ca)  # TLS but no client certificate
    other = make_untrusted_client(tmp_path / "other", "booking-01")
    assert _connect_fails(broker.port, {**ca, "cert_file": str(other / "booking-01.crt"),
                                        "key_file": str(other / "booking-01.key")})
    assert _connect_fails(broker.port, None, plain=True)  # plain MQTT on the TLS port
    assert not _connect_fails(broker.port, pki.tls("booking-01"))  # the control: a good one


def _signed(pki, fields, *, key=None, msg_id=None, issued_at=None, device="booking-01"):
    body = messages.message("notification", fields, ori=ORI, device=device, msg_id=msg_id,
                            issued_at=issued_at)
    return messages.sign(body, key or pki.central_signing)


def _fields():
    return messages.criminal_body(submission_id="s-1", tcr="T1", hit=True, central_tcn="C1",
                                  record={"sid": "X"})


def test_bad_notifications_are_rejected_counted_and_audited(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    link = make_link(cfg, pki).start()
    assert link.wait_connected()
    cen = _client(broker.port, pki.tls("central"), "evil-central")
    topic = f"fpagent/v1/{ORI}/booking-01/notification"
    good_id = messages.new_id()
    try:
        send = lambda data: cen.publish(topic, data, qos=1).wait_for_publish(5)  # noqa: E731
        send(_signed(pki, _fields(), key=keys.generate_signing_key()))  # unknown key
        send(_signed(pki, _fields(), issued_at=time.time() - 3600))  # stale
        send(_signed(pki, _fields(), issued_at=time.time() + 3600))  # from the future
        send(b"{not json")  # malformed
        send(json.dumps({"v": 1, "key_id": keys.key_id(pki.central_signing), "body": {},
                         "sig": "AAAA"}).encode())  # bad signature
        tampered = json.loads(_signed(pki, _fields()))
        tampered["body"]["result"] = "no-hit"
        send(json.dumps(tampered).encode())  # altered after signing
        send(b"x" * (cfg.mqtt.max_message_bytes + 1))  # oversized
        send(_signed(pki, _fields(), device="booking-02"))  # for another appliance
        send(_signed(pki, {**_fields(), "check": "horoscope"}))  # signed but wrong shape
        good = _signed(pki, _fields(), msg_id=good_id)
        send(good)
        send(good)  # replayed
        wait_for(lambda: link.counters["rejected"] >= 10, 10, what="ten rejections")
        time.sleep(0.2)
        assert dict(link.rejected) == {"unknown-key": 1, "stale": 2, "malformed": 2,
                                       "bad-signature": 2, "oversized": 1, "wrong-addressee": 1,
                                       "replayed": 1}
        with Store(cfg.paths.database(), cfg) as store:
            assert [m["message_id"] for m in store.inbox.list()] == [good_id]  # only the good one
            audited = [e.detail["reason"] for e in store.audit.list(action="message-rejected",
                                                                    limit=100)]
            assert sorted(audited) == sorted(
                ["unknown-key", "stale", "stale", "malformed", "malformed", "bad-signature",
                 "bad-signature", "oversized", "wrong-addressee", "replayed"])
            assert store.counters.get("link.rejected.stale") == 2
            ok, _, _ = store.audit.verify()
            assert ok
        assert link.connected  # nothing of that stopped the link
    finally:
        _stop(cen)
        link.stop()


def test_dev_ca_script_makes_certificates_the_broker_accepts(tmp_path):
    out = tmp_path / "pki"
    run = subprocess.run([str(ROOT / "scripts" / "dev-ca"), str(out), f"{ORI}/booking-07"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for name in ("ca.key", "broker.key", "central/worker-1.key", f"{ORI}/booking-07.key",
                 "central-keys/central-sign.key", "central-keys/central-hpke.key"):
        assert os.stat(out / name).st_mode & 0o077 == 0, name
    keys.load_signing_key(out / "central-keys" / "central-sign.key")
    again = subprocess.run([str(ROOT / "scripts" / "dev-ca"), str(out), f"{ORI}/booking-07"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "made" not in again.stdout  # idempotent
    with LocalBroker(tmp_path / "b", out) as b:
        tls = {"ca_file": str(out / "ca.crt"), "cert_file": str(out / ORI / "booking-07.crt"),
               "key_file": str(out / ORI / "booking-07.key")}
        assert not _connect_fails(b.port, tls)
        assert _connect_fails(b.port, {"ca_file": str(out / "ca.crt")})


@pytest.mark.parametrize("leaf", ["ack", "command"])
def test_unsigned_ack_or_command_is_not_acted_on(tmp_path, pki, broker, leaf):
    cfg = appliance_config(tmp_path, pki, broker.port)
    sid, tcn, env = seal_test_booking(pki, "booking-01", 1)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, tcn, env, {})
    link = make_link(cfg, pki).start()
    cen = _client(broker.port, pki.tls("central"), "evil")
    try:
        assert link.wait_connected()
        fields = (messages.ack_body(submission_id=sid, tcn=tcn, accepted=True, central_tcn="C")
                  if leaf == "ack" else {"action": "purge", "args": {}})
        body = messages.message(leaf, fields, ori=ORI, device="booking-01")
        forged = messages.sign(body, keys.generate_signing_key())
        cen.publish(f"fpagent/v1/{ORI}/booking-01/{leaf}", forged, qos=1).wait_for_publish(5)
        wait_for(lambda: link.rejected["unknown-key"] == 1, 10, what="rejection")
        with Store(cfg.paths.database(), cfg) as store:
            assert store.outbox.get(sid).state in ("pending", "sent")  # not acknowledged
            assert store.inbox.count() == 0
    finally:
        _stop(cen)
        link.stop()


def test_shipped_broker_config_and_acl_work_as_they_are(tmp_path, pki):
    """systemd/mosquitto/ itself (paths pointed at a temp dir), not only fpagent.devtools.broker's copy."""
    from fpagent.devtools.broker import acl_text, find_mosquitto, free_port
    shipped = ROOT / "systemd" / "mosquitto"
    assert (shipped / "acl").read_text() == acl_text()  # the two never drift apart
    port = free_port()
    (tmp_path / "persist").mkdir()
    conf = (shipped / "mosquitto.conf").read_text()
    conf = (conf.replace("/etc/mosquitto/certs/", f"{pki.certs}/")
            .replace("/etc/mosquitto/conf.d/fpagent.acl", str(shipped / "acl"))
            .replace("/var/lib/mosquitto/", f"{tmp_path / 'persist'}/")
            .replace("listener 8883", f"listener {port} 127.0.0.1"))
    for directive in ("require_certificate true", "use_identity_as_username true",
                      "use_username_as_clientid true", "crlfile ", "allow_anonymous false",
                      "persistence true"):
        assert directive in conf
    if os.geteuid() == 0:
        conf = "user root\n" + conf
    (tmp_path / "m.conf").write_text(conf)
    proc = subprocess.Popen([find_mosquitto(), "-c", str(tmp_path / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: not _connect_fails(port, pki.tls("booking-01")), 10, interval=0.1,
                 what="the shipped configuration accepting a good client")
        assert _connect_fails(port, {"ca_file": str(pki.certs / "ca.crt")})
        got = []
        a2 = _client(port, pki.tls("booking-02"), "b2", on_message=lambda c, u, m: got.append(m.topic))
        a1 = _client(port, pki.tls("booking-01"), "b1", on_message=lambda c, u, m: got.append(m.topic))
        a1.subscribe(f"fpagent/v1/{ORI}/booking-02/#", qos=1)
        a2.subscribe(f"fpagent/v1/{ORI}/booking-02/submission", qos=1)
        time.sleep(0.3)
        a2.publish(f"fpagent/v1/{ORI}/booking-02/submission", b"x", qos=1).wait_for_publish(5)
        time.sleep(0.3)
        assert got == []  # booking-02 cannot read submissions (its own, even); booking-01 nothing
        _stop(a1, a2)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
