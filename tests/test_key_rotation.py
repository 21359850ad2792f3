"""Key rotation with an overlap on both sides, with bookings queued across the rotation.

Over a real broker, a real central and a real link: a booking sealed with
the appliance's old key while the link is down is still accepted after the
device key rotated; the appliance pins central's current and next keys, so
central can switch signing keys without an answer being refused.
"""

from __future__ import annotations

import time

import pytest

from fpagent.central.registry import DeviceRegistry, register_device_key
from fpagent.central.responder import Central
from fpagent.central.store import CentralKeys
from fpagent.link.connection import Link, build_link
from fpagent.sealing import envelope, keys
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, json_screen, needs_mosquitto, pki, wait_for)

pytestmark = needs_mosquitto


def _central(pki, port, db, devices_dir, signing=None) -> Central:
    ck = CentralKeys(pki.hpke, signing or pki.central_signing, DeviceRegistry.load(devices_dir))
    return Central(host="127.0.0.1", port=port, root="fpagent", keys=ck, db_path=db,
                   screen=json_screen, tls=pki.tls("central/worker-1"), immigration_delay_s=0.1)


def _enqueue(cfg, pki, device_key, n) -> str:
    sid = envelope.make_submission_id()
    env = envelope.seal(b'{"tcn": "ROT%08d"}' % n, device_id="booking-01", ori=ORI, sequence=n,
                        central_public_key=pki.hpke.public(), device_signing_key=device_key,
                        submission_id=sid)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, f"ROT{n:08d}", env, {})
    return sid


def _answered(cfg, sids, notes):
    with Store(cfg.paths.database(), cfg) as store:
        return (all(store.outbox.get(s).state == "acknowledged" for s in sids)
                and store.inbox.count() == notes)


def test_booking_queued_before_a_device_key_rotation_is_accepted(tmp_path, pki, broker):
    devices = tmp_path / "devices"
    old, new = keys.generate_signing_key(), keys.generate_signing_key()
    register_device_key(devices, ORI, "booking-01", old.public_key())
    cfg = appliance_config(tmp_path, pki, broker.port)
    queued = _enqueue(cfg, pki, old, 1)  # the link is down: it waits in the outbox
    # the rotation: the appliance signs with the new key; central registers it and keeps
    # the old one for the overlap window
    register_device_key(devices, ORI, "booking-01", new.public_key(), overlap_s=3600)
    after = _enqueue(cfg, pki, new, 2)
    central = _central(pki, broker.port, tmp_path / "central.sqlite3", devices).start()
    link = Link(cfg, store_factory=lambda: Store(cfg.paths.database(), cfg),
                central_verify_keys=pki.central_signing.public_key(), device_signing_key=new)
    try:
        assert central.wait_connected()
        link.start()
        wait_for(lambda: _answered(cfg, [queued, after], 4), 30, what="both bookings answered")
        assert central.store.submission(queued)["result"] == "accepted"
    finally:
        link.stop()
        central.stop()
    reg = DeviceRegistry.load(devices)
    assert set(reg.keys_for(ORI, "booking-01")) == {keys.key_id(old), keys.key_id(new)}
    # after the overlap only the new key is accepted
    assert set(reg.keys_for(ORI, "booking-01", now=time.time() + 3700)) == {keys.key_id(new)}


def test_central_rotates_its_signing_key_with_the_next_key_pinned(tmp_path, pki, broker):
    devices = tmp_path / "devices"
    register_device_key(devices, ORI, "booking-01", pki.device_signing["booking-01"].public_key())
    nxt = keys.generate_signing_key()
    cfg = appliance_config(tmp_path, pki, broker.port)
    keys.save_public_key(cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY, pki.central_signing)
    keys.save_public_key(cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY_NEXT, nxt)
    assert len(keys.load_central_verify_keys(cfg)) == 2
    db = tmp_path / "central.sqlite3"
    first = _enqueue(cfg, pki, pki.device_signing["booking-01"], 1)
    central = _central(pki, broker.port, db, devices).start()
    link = build_link(cfg)
    try:
        assert central.wait_connected()
        link.start()
        wait_for(lambda: _answered(cfg, [first], 2), 30, what="answers signed with the old key")
        link.stop()
        central.stop()
        # queued while the link is down; central comes back signing with its next key
        second = _enqueue(cfg, pki, pki.device_signing["booking-01"], 2)
        central = _central(pki, broker.port, db, devices, signing=nxt).start()
        assert central.wait_connected()
        link = build_link(cfg)
        link.start()
        wait_for(lambda: _answered(cfg, [first, second], 4), 30,
                 what="answers signed with the new key")
        assert link.rejected["unknown-key"] == 0
    finally:
        link.stop()
        central.stop()


def test_an_unpinned_central_key_is_still_refused(tmp_path, pki):
    cfg = appliance_config(tmp_path, pki, 1)
    keys.save_public_key(cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY, pki.central_signing)
    pinned = keys.load_central_verify_keys(cfg)
    assert [keys.key_id(k) for k in pinned] == [keys.key_id(pki.central_signing)]
    from fpagent.link import messages
    body = messages.message("command", {"action": "purge", "args": {}}, ori=ORI, device="booking-01")
    with pytest.raises(messages.MessageError) as err:
        messages.parse_and_verify(messages.sign(body, keys.generate_signing_key()),
                                  verify_keys=pinned, ori=ORI, device="booking-01",
                                  now=time.time(), freshness_s=600)
    assert err.value.reason == "unknown-key"
