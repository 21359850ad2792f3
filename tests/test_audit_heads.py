"""Tamper evidence off the box: central keeps each appliance's audit head and sees a rewritten log.

End to end over the real broker: appliances publish their signed, retained
status with their audit head; the reference central stores the heads. A log
rewritten on a stolen appliance (a new SQLite file under the same device
key) shows at central as a chain that went backwards or forked, and
`fpagent central audit-heads` lists it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from fpagent.central import audit_heads
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, ROOT_DIR, appliance_config, broker, make_central, make_link, needs_mosquitto, pki,
    wait_for)

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def test_judge_accepts_a_growing_chain_and_names_backwards_and_forks():
    assert audit_heads.judge({}, 0, H1) is None
    assert audit_heads.judge({3: H1}, 3, H1) is None  # the same head again
    assert audit_heads.judge({3: H1}, 7, H2) is None  # grew
    assert audit_heads.judge({3: H1, 7: H2}, 5, H3) == ("backwards", 7, H2)
    assert audit_heads.judge({3: H1, 7: H2}, 7, H3) == ("fork", 7, H2)
    assert audit_heads.judge({3: H1, 7: H2}, 3, H3) == ("fork", 3, H1)


def test_parse_head_takes_only_a_well_formed_head():
    assert audit_heads.parse_head({"seq": 4, "hash": H1}) == (4, H1)
    for bad in (None, {}, {"seq": -1, "hash": H1}, {"seq": True, "hash": H1},
                {"seq": 4, "hash": "abc"}, {"seq": "4", "hash": H1}, [4, H1]):
        assert audit_heads.parse_head(bad) is None


def _head(cfg) -> tuple[int, str]:
    with Store(cfg.paths.database(), cfg) as store:
        return store.audit.head()


def _grow(cfg, to_seq: int, action: str) -> tuple[int, str]:
    """Append audit entries to the appliance's log until it holds `to_seq` entries."""
    with Store(cfg.paths.database(), cfg) as store:
        while store.audit.head()[0] < to_seq:
            store.audit.append("officer", action, {"n": store.audit.head()[0]})
        return store.audit.head()


def _publish_once(cfg, pki):
    """Run the appliance's link until it is up (it publishes its status on connect), then stop."""
    link = make_link(cfg, pki).start()
    try:
        assert link.wait_connected(15)
    finally:
        link.stop()


def _heads(central) -> dict:
    return {r["device"]: r for r in central.store.audit_heads()}


def _cli(db) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fpagent", "central", "audit-heads", "--db",
                           str(db)], cwd=ROOT_DIR, capture_output=True, text=True, timeout=60)


@needs_mosquitto
def test_central_reports_a_rewritten_log_and_not_a_normal_appliance(tmp_path, pki, broker):
    db = tmp_path / "central.sqlite3"
    central = make_central(pki, broker.port, db).start()
    try:
        assert central.wait_connected(15)
        honest = appliance_config(tmp_path, pki, broker.port, device="booking-02")
        stolen = appliance_config(tmp_path, pki, broker.port, device="booking-01")
        _grow(honest, 3, "test.honest")
        _publish_once(honest, pki)
        honest_head = _head(honest)
        seen = wait_for(lambda: _heads(central).get("booking-02"), 15, what="booking-02's head")
        assert (seen["seq"], seen["hash"]) == honest_head and seen["state"] == "ok"
        _grow(honest, honest_head[0] + 2, "test.honest")  # the chain grows: still fine
        _publish_once(honest, pki)
        wait_for(lambda: _heads(central)["booking-02"]["seq"] == honest_head[0] + 2, 15,
                 what="booking-02's newer head")

        genuine = _grow(stolen, 6, "test.genuine")
        _publish_once(stolen, pki)
        wait_for(lambda: _heads(central).get("booking-01", {}).get("seq") == genuine[0], 15,
                 what="booking-01's head")
        assert _cli(db).returncode == 0

        # the thief replaces the log by one of the same length with other entries: a fork
        forged = dataclasses.replace(stolen, paths=dataclasses.replace(
            stolen.paths, state_dir=tmp_path / "rewritten"))
        rewritten = _grow(forged, genuine[0], "test.rewritten")
        assert rewritten[0] == genuine[0] and rewritten[1] != genuine[1]
        _publish_once(forged, pki)
        wait_for(lambda: _heads(central)["booking-01"]["alarms"], 15, what="the fork alarm")
        alarm = _heads(central)["booking-01"]["alarms"][0]
        assert (alarm["fault"], alarm["seq"], alarm["hash"]) == ("fork", *rewritten)
        assert (alarm["known_seq"], alarm["known_hash"]) == genuine

        # ... or by a shorter one: the chain goes backwards
        shorter = dataclasses.replace(stolen, paths=dataclasses.replace(
            stolen.paths, state_dir=tmp_path / "shorter"))
        cut = _grow(shorter, 1, "test.cut")
        assert cut[0] < genuine[0]
        _publish_once(shorter, pki)
        wait_for(lambda: len(_heads(central)["booking-01"]["alarms"]) == 2, 15,
                 what="the backwards alarm")
        faults = {a["fault"] for a in _heads(central)["booking-01"]["alarms"]}
        assert faults == {"fork", "backwards"}
        assert central.counters["audit_alarms"] == 2
        assert _heads(central)["booking-02"]["alarms"] == []
    finally:
        central.stop()

    run = _cli(db)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith(f"{ORI}/booking-02: ok") for line in lines)
    assert any(line.startswith(f"{ORI}/booking-01: ALARM") for line in lines)
    assert "chain FORKED" in run.stdout and "chain WENT BACKWARDS" in run.stdout
    as_json = subprocess.run([sys.executable, "-m", "fpagent", "central", "audit-heads", "--db",
                              str(db), "--json"], cwd=ROOT_DIR, capture_output=True, text=True,
                             timeout=60)
    rows = json.loads(as_json.stdout.splitlines()[-1])
    assert {r["device"]: r["state"] for r in rows} == {"booking-01": "ALARM", "booking-02": "ok"}


@needs_mosquitto
def test_a_status_signed_by_another_device_is_ignored(tmp_path, pki, broker):
    """Only the key registered for the topic's appliance can move its head."""
    from fpagent.link import messages
    import paho.mqtt.client as mqtt
    from paho.mqtt.client import CallbackAPIVersion
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    try:
        assert central.wait_connected(15)
        body = messages.message("status", messages.status_body(
            state="online", version="x", audit={"seq": 1, "hash": H1}), ori=ORI,
            device="booking-01")
        payload = messages.sign(body, pki.device_signing["booking-02"])  # the wrong key
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ORI}/booking-01",
                             protocol=mqtt.MQTTv5)
        t = pki.tls("booking-01")
        client.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            info = client.publish(f"fpagent/v1/{ORI}/booking-01/status", payload, qos=1)
            info.wait_for_publish(10)
            wait_for(lambda: central.counters["statuses_refused"] >= 1, 15, what="the refusal")
        finally:
            client.loop_stop()
            client.disconnect()
        assert central.store.audit_heads() == []
    finally:
        central.stop()
