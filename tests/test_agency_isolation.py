"""Agency isolation and broker identity, over a real mosquitto, a real central and real links.

Two agencies each have an appliance called booking-01: device ids are only
unique within an agency. Neither may read the other's answers, book in the
other's name, or take over the other's broker session; a revoked
certificate is refused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent import config as config_mod
from fpagent.central.registry import DeviceRegistry, register_device_key
from fpagent.central.screening import Galleries, ScreenRejected, TransactionScreen
from fpagent.devtools import ca
from fpagent.devtools.broker import LocalBroker
from fpagent.link.connection import Link
from fpagent.records import transaction as tx
from fpagent.sealing import envelope, keys
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, ROOT_DIR, Pki, make_central, make_link, needs_mosquitto, seal_test_booking, wait_for)

pytestmark = needs_mosquitto
OTHER_ORI = "YY1234567"  # a second agency, with its own appliance called booking-01


@pytest.fixture(scope="module")
def two_agencies(tmp_path_factory):
    """The test PKI (agency ORI), plus agency OTHER_ORI's booking-01 (own key and certificate)."""
    root = tmp_path_factory.mktemp("agencies")
    pki = Pki(root)
    ca.make_dev_pki(pki.certs, clients=(ca.device_cn(OTHER_ORI, "booking-01"),))
    other_key = keys.generate_signing_key()
    register_device_key(pki.devices_dir, OTHER_ORI, "booking-01", other_key.public_key())
    return pki, other_key


def _config(tmp, pki, port, ori) -> config_mod.Config:
    cn = ca.device_cn(ori, "booking-01")
    return config_mod.from_dict({
        "device": {"ori": ori, "device_id": "booking-01"},
        "paths": {"state_dir": str(tmp / f"state-{ori}")},
        "store": {"min_free_mb": 1.0},
        "mqtt": {"host": "127.0.0.1", "port": port, "tls": True,
                 "ca_file": str(pki.certs / "ca.crt"), "cert_file": str(pki.certs / f"{cn}.crt"),
                 "key_file": str(pki.certs / f"{cn}.key"), "keepalive_s": 5,
                 "reconnect_min_s": 0.1, "reconnect_max_s": 1.0, "ack_timeout_s": 5.0},
        "service": {"status_interval_s": 30.0},
    })


def _client(port, pki, cn, client_id, *, on_message=None, on_disconnect=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(pki.certs / "ca.crt"), certfile=str(pki.certs / f"{cn}.crt"),
              keyfile=str(pki.certs / f"{cn}.key"))
    if on_message:
        c.on_message = on_message
    if on_disconnect:
        c.on_disconnect = on_disconnect
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _stop(*clients):
    for c in clients:
        c.loop_stop()
        c.disconnect()


def _seal(ori, device_key, n, *, central):
    """booking-01's test booking n, sealed in `ori`'s name with `device_key`."""
    sid = envelope.make_submission_id()
    tcn = f"TEST{ori[:2]}{n:08d}"
    env = envelope.seal(json.dumps({"tcn": tcn, "criminal": True}).encode(), device_id="booking-01",
                        ori=ori, sequence=n, central_public_key=central,
                        device_signing_key=device_key, submission_id=sid)
    return sid, tcn, env


@pytest.fixture
def agency_broker(tmp_path, two_agencies):
    pki, _ = two_agencies
    b = LocalBroker(tmp_path / "broker", pki.certs).start()
    yield b
    b.stop()


def test_same_device_id_in_two_agencies_gets_only_its_own_answers(tmp_path, two_agencies,
                                                                    agency_broker):
    """Both booking-01s book through one central; each gets its own acks and notifications,
    and a listener with one agency's certificate hears nothing of the other's."""
    pki, other_key = two_agencies
    port = agency_broker.port
    central = make_central(pki, port, tmp_path / "central.sqlite3").start()
    cfg_x, cfg_y = _config(tmp_path, pki, port, ORI), _config(tmp_path, pki, port, OTHER_ORI)
    link_x = make_link(cfg_x, pki)
    link_y = Link(cfg_y, store_factory=lambda: Store(cfg_y.paths.database(), cfg_y),
                  central_verify_keys=pki.central_signing.public_key(), device_signing_key=other_key)
    heard = []
    spy = _client(port, pki, ca.device_cn(OTHER_ORI, "booking-01"), "spy",
                  on_message=lambda c, u, m: heard.append(m.topic))
    spy.subscribe([(f"fpagent/v1/{ORI}/booking-01/#", 1), ("fpagent/v1/+/booking-01/ack", 1),
                   ("fpagent/v1/+/booking-01/notification", 1), ("fpagent/v1/#", 1)])
    try:
        x_ids, y_ids = [], []
        with Store(cfg_x.paths.database(), cfg_x) as store:
            for n in range(2):
                sid, tcn, env = seal_test_booking(pki, "booking-01", n, criminal=True)
                store.outbox.enqueue(sid, tcn, env, {})
                x_ids.append(sid)
        with Store(cfg_y.paths.database(), cfg_y) as store:
            for n in range(2):
                sid, tcn, env = _seal(OTHER_ORI, other_key, n, central=pki.hpke.public())
                store.outbox.enqueue(sid, tcn, env, {})
                y_ids.append(sid)
        assert central.wait_connected()
        link_x.start()
        link_y.start()
        for cfg, ids in ((cfg_x, x_ids), (cfg_y, y_ids)):
            with Store(cfg.paths.database(), cfg) as store:
                wait_for(lambda: all(store.outbox.get(s).state == "acknowledged" for s in ids)
                         and store.inbox.count() == 2 * len(ids), 30,
                         what=f"{cfg.device.ori}'s answers")
                got = {m["body"]["submission_id"] for m in store.inbox.list()}
                assert got == set(ids)  # its own answers, none of the other agency's
        assert link_x.rejected["wrong-addressee"] == link_y.rejected["wrong-addressee"] == 0
        time.sleep(0.3)
        # the other agency's booking-01 certificate: its own topics only, never ORI's
        assert not [t for t in heard if t.startswith(f"fpagent/v1/{ORI}/")], heard
    finally:
        _stop(spy)
        link_x.stop()
        link_y.stop()
        central.stop()


def test_an_appliance_cannot_book_in_another_agencys_name(tmp_path, two_agencies, agency_broker):
    """OTHER_ORI's booking-01 seals a booking as ORI: on ORI's topic the broker drops it; on its
    own topic central refuses it (the signed ORI is not the topic's); and ORI's booking-01
    key does not verify anything for OTHER_ORI's booking-01."""
    pki, other_key = two_agencies
    port = agency_broker.port
    central = make_central(pki, port, tmp_path / "central.sqlite3").start()
    acks, victim_acks = [], []  # (topic, signed body) of each ack the two devices hear
    evil = _client(port, pki, ca.device_cn(OTHER_ORI, "booking-01"), "evil",
                   on_message=lambda c, u, m: acks.append((m.topic, json.loads(m.payload)["body"])))
    listener = _client(port, pki, ca.device_cn(ORI, "booking-01"), "victim",
                       on_message=lambda c, u, m: victim_acks.append(m.topic))
    try:
        assert central.wait_connected()
        evil.subscribe(f"fpagent/v1/{OTHER_ORI}/booking-01/ack", qos=1)
        listener.subscribe(f"fpagent/v1/{ORI}/booking-01/ack", qos=1)
        time.sleep(0.3)
        s1, _, as_ori = _seal(ORI, other_key, 1, central=pki.hpke.public())
        evil.publish(f"fpagent/v1/{ORI}/booking-01/submission", as_ori, qos=1).wait_for_publish(5)
        s2, _, as_ori_own_topic = _seal(ORI, other_key, 2, central=pki.hpke.public())
        evil.publish(f"fpagent/v1/{OTHER_ORI}/booking-01/submission", as_ori_own_topic,
                     qos=1).wait_for_publish(5)
        s3, _, wrong_key = _seal(OTHER_ORI, pki.device_signing["booking-01"], 3,
                                 central=pki.hpke.public())
        evil.publish(f"fpagent/v1/{OTHER_ORI}/booking-01/submission", wrong_key,
                     qos=1).wait_for_publish(5)
        verdicts = lambda: {b["submission_id"]: b for _, b in acks}  # noqa: E731
        wait_for(lambda: {s2, s3} <= set(verdicts()), 10, what="central's verdicts")
        time.sleep(0.3)
        # refused before anything is recorded: the signed ORI is not the topic's (s2), and
        # ORI's booking-01 key is not one registered for OTHER_ORI's booking-01 (s3)
        assert verdicts()[s2]["result"] == "rejected" and verdicts()[s2]["reason"] == "device-mismatch"
        assert verdicts()[s3]["result"] == "rejected" and verdicts()[s3]["reason"] == "unknown-device"
        assert s1 not in verdicts()  # the broker never delivered it
        assert all(central.store.submission(s) is None for s in (s1, s2, s3))
        assert victim_acks == []  # nothing was answered in ORI's booking-01's name
    finally:
        _stop(listener, evil)
        central.stop()


def test_central_refuses_a_transaction_whose_type1_ori_is_not_the_envelopes():
    """The Type-1 ORI inside the sealed transaction must be the ORI the envelope is signed for."""
    rng = np.random.default_rng(3)
    finger = tx.FingerCapture(position=2, pixels=rng.integers(0, 255, (200, 180), dtype=np.uint8),
                              quality=60)
    rec = tx.BookingRecord(tcn="YY1234567-20261128-000001-X", ori=OTHER_ORI, destination=ORI,
                           fingers=(finger,))
    data = tx.build_transaction(rec, compression="png")
    screen = TransactionScreen(Galleries(), fingers=())
    header = envelope.inspect(_seal(ORI, keys.generate_signing_key(), 1,
                                    central=keys.generate_central_hpke_keys(("x25519",)).public())[2])
    with pytest.raises(ScreenRejected) as err:
        screen(envelope.Opened(header=header, plaintext=data))
    assert err.value.reason == "device-mismatch"
    own = dataclasses.replace(header, ori=OTHER_ORI)
    assert screen(envelope.Opened(header=own, plaintext=data)).tcn == rec.tcn


def test_registry_binds_keys_to_agency_and_device(tmp_path):
    a, b = keys.generate_signing_key(), keys.generate_signing_key()
    register_device_key(tmp_path, ORI, "booking-01", a.public_key())
    register_device_key(tmp_path, OTHER_ORI, "booking-01", b.public_key())
    (tmp_path / "booking-01.pub").write_bytes(keys.encode_public(a))  # names no agency: ignored
    reg = DeviceRegistry.load(tmp_path)
    assert list(reg.keys_for(ORI, "booking-01")) == [keys.key_id(a)]
    assert list(reg.keys_for(OTHER_ORI, "booking-01")) == [keys.key_id(b)]
    assert reg.keys_for(ORI, "booking-02") == {}
    assert len(reg) == 2
    with pytest.raises(ValueError):
        register_device_key(tmp_path, "../etc", "booking-01", a.public_key())


def test_another_certificate_cannot_take_over_or_kick_an_appliances_session(tmp_path, two_agencies,
                                                                            agency_broker):
    """A client with another valid certificate connects again and again with booking-01's
    client id (old and new form): the broker gives it its own identity, booking-01's link
    is never disconnected, and the intruder receives nothing of booking-01's."""
    pki, _ = two_agencies
    port = agency_broker.port
    cfg = _config(tmp_path, pki, port, ORI)
    central = make_central(pki, port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    heard = []
    intruders = []
    try:
        assert link.wait_connected() and central.wait_connected()
        before = link.counters["disconnects"]
        for n, cid in enumerate([ca.device_cn(ORI, "booking-01"), f"{ORI}-booking-01"] * 3):
            intruders.append(_client(port, pki, ca.device_cn(ORI, "booking-02"), cid,
                                     on_message=lambda c, u, m: heard.append(m.topic)))
            intruders[-1].subscribe(f"fpagent/v1/{ORI}/booking-01/#", qos=1)
            time.sleep(0.2)
        sid, tcn, env = seal_test_booking(pki, "booking-01", 42)
        with Store(cfg.paths.database(), cfg) as store:
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_for(lambda: store.outbox.get(sid).state == "acknowledged"
                     and store.inbox.count() == 2, 20, what="booking-01 answered")
        assert link.counters["disconnects"] == before  # never kicked off
        assert link.connected
        assert heard == []
    finally:
        _stop(*intruders)
        link.stop()
        central.stop()


def test_a_revoked_certificate_is_refused(tmp_path):
    """scripts/revoke-device (fpagent.devtools.ca.revoke) puts the certificate on the CRL; after
    the broker restarts it refuses that certificate and still accepts the others."""
    certs = ca.make_dev_pki(tmp_path / "pki", clients=(ca.device_cn(ORI, "booking-01"),
                                                       ca.device_cn(ORI, "booking-02")))
    stolen, kept = ca.device_cn(ORI, "booking-02"), ca.device_cn(ORI, "booking-01")

    def connects(cn) -> bool:
        ok = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(certs / "ca.crt"), certfile=str(certs / f"{cn}.crt"),
                  keyfile=str(certs / f"{cn}.key"))
        c.on_connect = lambda cl, u, f, rc, p: ok.append(not rc.is_failure)
        try:
            c.connect("127.0.0.1", b.port)
            c.loop_start()
            deadline = time.monotonic() + 3
            while not ok and time.monotonic() < deadline:
                time.sleep(0.05)
        except OSError:
            return False
        finally:
            c.loop_stop()
            c.disconnect()
        return ok == [True]

    b = LocalBroker(tmp_path / "broker", certs).start()
    try:
        assert connects(stolen) and connects(kept)
        run = subprocess.run([str(ROOT_DIR / "scripts" / "revoke-device"), str(certs), stolen],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "restart the broker" in run.stdout
        b.restart()
        assert not connects(stolen)
        assert connects(kept)
    finally:
        b.stop()
    shutil.rmtree(tmp_path / "pki")
