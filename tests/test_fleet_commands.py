"""Fleet commands that act, end to end: the reference central signs each command and
sends it over a real mosquitto (TLS, the agency-isolated ACL), the real link verifies
and records it, the service's handler (fpagent.service.fleet, as the service wires
it) applies or refuses it, and the appliance's signed `result` comes back to central,
which stores it. Each kind, applied and refused."""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from fpagent import config as config_mod
from fpagent.central import fleet as central_fleet
from fpagent.central.screening import synthetic_watchlist
from fpagent.link import fleet_commands as fc
from fpagent.link import messages
from fpagent.link.connection import Link
from fpagent.screening.galleries import WATCHLIST, GalleryStore
from fpagent.screening.prefilter import Gallery
from fpagent.sealing import keys
from fpagent.sealing.rotation import CentralKeyRing
from fpagent.service.fleet import FleetCommands
from fpagent.service.fleet_config import dump_toml
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, enqueue_bookings, make_central, needs_mosquitto, pki, seal_test_booking,
    wait_for)

pytestmark = needs_mosquitto
DEVICE = "booking-01"
DOC_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


def config_file(tmp_path, pki, port) -> config_mod.Config:
    """The test appliance's configuration, from a real file (config-change edits it)."""
    cfg = appliance_config(tmp_path, pki, port)
    data = {"device": {"ori": ORI, "device_id": DEVICE, "allow_placeholder": True},
            "paths": {"state_dir": cfg.paths.state_dir},
            "store": {"min_free_mb": 1.0},
            "mqtt": {k: getattr(cfg.mqtt, k) for k in (
                "host", "port", "tls", "ca_file", "cert_file", "key_file", "keepalive_s",
                "reconnect_min_s", "reconnect_max_s", "ack_timeout_s")},
            "service": {"status_interval_s": 30.0, "log_level": "info"}}
    path = tmp_path / "agent.toml"
    path.write_text(dump_toml(data))
    path.chmod(0o600)
    cfg = config_mod.load(path)
    cfg.paths.keys().mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.central_dir / keys.CENTRAL_VERIFY_KEY, cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY)
    return cfg


class Rig:
    """One appliance (link + fleet handler) and one central, on a real broker."""

    def __init__(self, tmp_path, pki, broker, **handler_kw):
        self.pki = pki
        self.cfg = config_file(tmp_path, pki, broker.port)
        self.ring = CentralKeyRing(self.cfg)
        self.handler = FleetCommands(self.cfg, key_ring=self.ring, **handler_kw)
        self.link = Link(self.cfg, store_factory=lambda: Store(self.cfg.paths.database(), self.cfg),
                         central_verify_keys=self.ring.keys,
                         device_signing_key=pki.device_signing[DEVICE], on_command=self.handler)
        self.central = make_central(pki, broker.port, tmp_path / "central.sqlite3")
        self.raw_results: list[bytes] = []
        # what goes over the wire, to check against the AsyncAPI document (central worker 4)
        self.watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-watch",
                                   protocol=mqtt.MQTTv5)
        t = pki.tls("central")
        self.watcher.tls_set(ca_certs=t["ca_file"], certfile=t["cert_file"], keyfile=t["key_file"])
        self.watcher.on_message = lambda c, u, m: self.raw_results.append(bytes(m.payload))

    def __enter__(self):
        self.central.start()
        self.watcher.connect("127.0.0.1", self.cfg.mqtt.port)
        self.watcher.subscribe(messages.topic("fpagent", ORI, DEVICE, "result"), qos=1)
        self.watcher.loop_start()
        self.link.start()
        assert self.link.wait_connected() and self.central.wait_connected()
        return self

    def __exit__(self, *exc):
        self.link.stop()
        self.central.stop()
        self.watcher.loop_stop()
        self.watcher.disconnect()

    def send(self, action: str, args: dict, *, key=None) -> str:
        """Send one command; with `key`, signed by that key instead of central's."""
        if key is None:
            return self.central.send_command(ORI, DEVICE, {"action": action, "args": args})
        body, payload = central_fleet.sign_command({"action": action, "args": args}, key,
                                                   ori=ORI, device=DEVICE)
        with self.central.store.transaction() as db:
            central_fleet.record_command(db, body)
        self.central._client.publish(messages.topic("fpagent", ORI, DEVICE, "command"), payload,
                                     qos=1)
        return body["id"]

    def results(self, command_id: str) -> list[dict]:
        with self.central.store.lock:
            rows = central_fleet.summary(self.central.store.conn)
        return next((r["results"] for r in rows if r["id"] == command_id), [])

    def result_of(self, command_id: str, timeout: float = 20.0) -> dict:
        got = wait_for(lambda: self.results(command_id), timeout, what=f"result of {command_id[:8]}")
        return got[-1]

    def store(self) -> Store:
        return Store(self.cfg.paths.database(), self.cfg)


def validate_results_against_the_document(raw_results: list[bytes]) -> None:
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    doc = yaml.safe_load(DOC_PATH.read_text())
    schema = {**doc, "$ref": "#/components/messages/Result/payload"}
    validator = jsonschema.Draft202012Validator(schema)
    assert raw_results
    for raw in raw_results:
        errors = [e.message for e in validator.iter_errors(json.loads(raw))]
        assert not errors, errors


# --------------------------------------------------------------------------- purge

def test_purge_deletes_answered_bookings_and_never_an_unacknowledged_one(tmp_path, pki, broker):
    with Rig(tmp_path, pki, broker) as rig:
        ids = enqueue_bookings(rig.cfg, pki, 2, determination="under-review")
        rig.link.poke()
        with rig.store() as store:
            wait_for(lambda: all(store.outbox.get(s).state == "acknowledged" for s in ids), 20,
                     what="2 acks")
            wait_for(lambda: len(store.inbox.list(kind="notification")) == 4, 20,
                     what="4 answers")
            tcns = [store.outbox.get(s).tcn for s in ids]
            # a third booking not yet published (due in an hour): central has not acknowledged it
            with store.transaction():
                late, late_tcn, env = seal_test_booking(pki, DEVICE, 7)
                store.outbox.enqueue(late, late_tcn, env, {"seq": 7})
                store.conn.execute("UPDATE outbox SET next_attempt = ? WHERE submission_id = ?",
                                   (time.time() + 3600, late))

        refused = rig.result_of(rig.send("purge", {"tcns": [tcns[0], late_tcn]}))
        assert (refused["outcome"], refused["reason"]) == ("refused", "not-acknowledged")
        with rig.store() as store:
            assert store.outbox.get(ids[0], with_envelope=True).envelope  # nothing purged

        applied = rig.result_of(rig.send("purge", {"tcns": [tcns[0], "NOT-HERE"]}))
        assert applied["outcome"] == "applied", applied
        assert "1 bookings purged (2 answers" in applied["detail"] and "1 TCNs not held" in applied["detail"]
        with rig.store() as store:
            first = store.outbox.get(ids[0], with_envelope=True)
            assert first.state == "purged" and first.envelope is None and not first.meta
            left = [i["body"]["tcr"] for i in store.inbox.list(kind="notification")]
            assert sorted(left) == [tcns[1], tcns[1]]

        by_age = rig.result_of(rig.send("purge", {"older_than_days": 1e-9}))
        assert by_age["outcome"] == "applied" and "1 kept: not acknowledged" in by_age["detail"]
        with rig.store() as store:
            assert store.outbox.get(ids[1]).state == "purged"
            assert store.outbox.get(late, with_envelope=True).envelope  # never lost
            assert store.outbox.get(late).state == "pending"
            assert not store.inbox.list(kind="notification")
            assert store.audit.verify()[0]  # the chain is whole: purging never touches it
            purged = store.audit.list(action="bookings-purged")
            assert [p.detail["bookings"] for p in purged] == [1, 1]
            assert len(store.audit.list(action="command-result")) == 3

        bad = rig.result_of(rig.send("purge", {"before": "2026-01-01"}))
        assert (bad["outcome"], bad["reason"]) == ("refused", "bad-args")
    validate_results_against_the_document(rig.raw_results)


# --------------------------------------------------------------------------- watch lists

@pytest.fixture(scope="module")
def entries(pki):
    from fpagent.biometrics import extraction, matcher
    extraction.warm_up()
    matcher.warm_up()
    return synthetic_watchlist(31, [6, 7, 8], fingers=(2, 7))


def applied_ids(cfg) -> list[str]:
    gs = GalleryStore.from_config(cfg)
    return sorted(Gallery.from_bytes(gs.load(WATCHLIST)).ids()) if WATCHLIST in gs.names() else []


def test_chunked_replace_applies_only_a_whole_list_and_update_adds_and_removes(
        tmp_path, pki, broker, entries):
    with Rig(tmp_path, pki, broker) as rig:
        chunks = fc.watchlist_chunks(entries, max_bytes=3072, list_id="list-A")
        assert len(chunks) >= 3
        # out of order; the list changes only with the last chunk
        first = [rig.send(c["action"], c["args"]) for c in reversed(chunks) if c is not chunks[1]]
        for cid in first:
            r = rig.result_of(cid)
            assert (r["outcome"], r["reason"]) == ("held", "chunk-held"), r
        assert applied_ids(rig.cfg) == []
        last = rig.result_of(rig.send(chunks[1]["action"], chunks[1]["args"]))
        assert last["outcome"] == "applied" and f"from {len(chunks)} chunks" in last["detail"], last
        everyone = sorted(f"W{p}/{f}" for p in (6, 7, 8) for f in (2, 7))
        assert applied_ids(rig.cfg) == everyone
        assert not list((pathlib.Path(rig.cfg.paths.state_dir) / "watchlist-chunks").glob("*"))

        # a list whose chunks do not add up to its digest: refused, the applied list stays
        wrong = fc.watchlist_chunks(entries[:2], max_bytes=65536, list_id="list-B")
        wrong[0]["args"]["digest"] = fc.watchlist_digest(entries[:1])
        r = rig.result_of(rig.send(wrong[0]["action"], wrong[0]["args"]))
        assert (r["outcome"], r["reason"]) == ("refused", "digest-mismatch"), r
        assert applied_ids(rig.cfg) == everyone

        # an update: person 9 in (from the chunk of person 6's entries, renamed), W6 out
        added = [dict(e, subject_id="W9") for e in entries[:2]]
        upd = rig.result_of(rig.send("watchlist.update", {
            "add": added, "remove": [{"subject_id": "W6"}, {"subject_id": "W7", "finger_position": 2}]}))
        assert upd["outcome"] == "applied" and "2 added, 3 removed" in upd["detail"], upd
        assert applied_ids(rig.cfg) == ["W7/7", "W8/2", "W8/7", "W9/2", "W9/7"]

        broken = [dict(entries[0], template_iso_b64="AAAA")]
        r = rig.result_of(rig.send("watchlist.update", {"add": broken}))
        assert (r["outcome"], r["reason"]) == ("refused", "bad-template"), r
        r = rig.result_of(rig.send("watchlist-update", {"add": added}))
        assert (r["outcome"], r["reason"]) == ("refused", "not-supported"), r
        assert applied_ids(rig.cfg) == ["W7/7", "W8/2", "W8/7", "W9/2", "W9/7"]
        with rig.store() as store:
            details = json.dumps([e.detail for e in store.audit.list(limit=200)])
            assert "template_iso_b64" not in details and entries[0]["template_iso_b64"][:40] not in details
    validate_results_against_the_document(rig.raw_results)


def test_stale_chunks_expire_and_never_become_a_list(tmp_path, pki, broker, entries):
    with Rig(tmp_path, pki, broker) as rig:
        chunks = fc.watchlist_chunks(entries, max_bytes=3072, list_id="list-C")
        r = rig.result_of(rig.send(chunks[0]["action"], chunks[0]["args"]))
        assert r["outcome"] == "held"
        folder = pathlib.Path(rig.cfg.paths.state_dir) / "watchlist-chunks"
        assert len(list(folder.glob("*.gallery"))) == 1
        assert rig.handler.changes.expire(now=time.time() + 2 * 3600) == 1  # an hour went by
        for c in chunks[1:]:
            r = rig.result_of(rig.send(c["action"], c["args"]))
        assert r["outcome"] == "held"  # chunk 0 is gone: the list is not complete
        assert applied_ids(rig.cfg) == []


# --------------------------------------------------------------------------- config-change

def test_config_change_is_validated_written_atomically_and_rolled_back(tmp_path, pki, broker):
    def health(cfg):
        if cfg.service.log_level == "debug":
            raise RuntimeError("debug logging is not allowed on this appliance")

    with Rig(tmp_path, pki, broker, config_health=health) as rig:
        path = pathlib.Path(rig.cfg.source)
        r = rig.result_of(rig.send("config-change", {"set": {"mqtt.answers_timeout_s": 7200,
                                                             "quality.min_score": 30}}))
        assert r["outcome"] == "applied", r
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        reread = config_mod.load(path)
        assert reread.mqtt.answers_timeout_s == 7200.0 and reread.quality.min_score == 30
        assert rig.cfg.mqtt.answers_timeout_s == 7200.0  # the running service has it
        assert reread.mqtt.cert_file == rig.cfg.mqtt.cert_file  # the rest of the file kept
        before = path.read_bytes()

        r = rig.result_of(rig.send("config-change", {"set": {"mqtt.host": "broker.evil.example"}}))
        assert (r["outcome"], r["reason"]) == ("refused", "bad-args")
        r = rig.result_of(rig.send("config-change", {"set": {"quality.min_score": -1}}))
        assert (r["outcome"], r["reason"]) == ("refused", "invalid-config"), r
        r = rig.result_of(rig.send("config-change", {"set": {"service.log_level": "loud"}}))
        assert (r["outcome"], r["reason"]) == ("refused", "invalid-config"), r
        assert path.read_bytes() == before

        r = rig.result_of(rig.send("config-change", {"set": {"service.log_level": "debug"}}))
        assert (r["outcome"], r["reason"]) == ("refused", "rolled-back"), r
        assert path.read_bytes() == before and rig.cfg.service.log_level == "info"
        with rig.store() as store:
            assert len(store.audit.list(action="config-changed")) == 1
            assert len(store.audit.list(action="config-rolled-back")) == 1
    validate_results_against_the_document(rig.raw_results)


# --------------------------------------------------------------------------- key-rotation

def test_key_rotation_accepts_both_keys_in_the_window_and_only_the_new_one_after(
        tmp_path, pki, broker):
    new_key = keys.generate_signing_key()
    pem = keys.encode_public(new_key.public_key()).decode()
    with Rig(tmp_path, pki, broker) as rig:
        r = rig.result_of(rig.send("key-rotation", {"public_key_pem": "not a key",
                                                    "not_before": messages.now_rfc3339(),
                                                    "not_after": messages.now_rfc3339(time.time() + 60)}))
        assert (r["outcome"], r["reason"]) == ("refused", "bad-args")
        # long enough for three round trips on a loaded CI machine: an old-key command that
        # arrives after the window gets no result at all (it is not central's any more)
        window_end = time.time() + 10
        r = rig.result_of(rig.send("key-rotation", {
            "public_key_pem": pem, "not_before": messages.now_rfc3339(time.time() - 1),
            "not_after": messages.now_rfc3339(window_end)}))
        assert r["outcome"] == "applied", r
        # in the window: both keys
        assert rig.result_of(rig.send("purge", {"tcns": ["X-1"]}, key=new_key))["outcome"] == "applied"
        assert rig.result_of(rig.send("purge", {"tcns": ["X-2"]}))["outcome"] == "applied"
        # another rotation during the window is refused
        r = rig.result_of(rig.send("key-rotation", {
            "public_key_pem": keys.encode_public(keys.generate_signing_key().public_key()).decode(),
            "not_before": messages.now_rfc3339(), "not_after": messages.now_rfc3339(time.time() + 60)},
            key=new_key))
        assert (r["outcome"], r["reason"]) == ("refused", "bad-args"), r
        time.sleep(max(0.0, window_end - time.time()) + 0.5)
        # after the window: the old key is refused (no result: the message is not central's)
        old = rig.send("purge", {"tcns": ["X-3"]})
        wait_for(lambda: rig.link.rejected["unknown-key"] >= 1, 20, what="old key refused")
        assert rig.results(old) == []
        assert rig.result_of(rig.send("purge", {"tcns": ["X-4"]}, key=new_key))["outcome"] == "applied"
    # it survives a restart: a new ring reads the rotation back
    ring = CentralKeyRing(rig.cfg)
    assert [keys.key_id(k) for k in ring.keys()] == [keys.key_id(new_key.public_key())]
    assert oct((rig.cfg.paths.keys() / "central-sign.rotation.json").stat().st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------- central's CLI

def test_central_cli_issues_a_command_and_shows_its_result(tmp_path, pki, broker, capsys):
    from fpagent import cli
    db = tmp_path / "cli-central.sqlite3"
    common = ["--port", str(broker.port), "--certs", str(pki.certs), "--cn", "central/worker-3",
              "--keys", str(pki.central_dir), "--devices", str(pki.devices_dir), "--db", str(db),
              "--ori", ORI, "--device", DEVICE]
    with Rig(tmp_path, pki, broker):
        code = cli.main(["central", "command", "purge", *common, "--tcn", "NOT-HERE-1", "--wait", "20"])
        out = capsys.readouterr().out
        assert code == 0 and "purge sent" in out and "applied (done)" in out, out
        code = cli.main(["central", "command", "config-change", *common,
                         "--set", "service.log_level=loud", "--wait", "20"])
        out = capsys.readouterr().out
        assert code == 1 and "refused (invalid-config)" in out, out
        code = cli.main(["central", "command", "config-change", *common,
                         "--set", "mqtt.host=evil.example", "--wait", "20"])
        assert code == 2  # refused before it is sent: not a key central may change
        capsys.readouterr()
    assert cli.main(["central", "commands", "--db", str(db)]) == 0
    listing = capsys.readouterr().out
    assert "purge" in listing and "applied done" in listing and "refused invalid-config" in listing
    assert cli.main(["central", "commands", "--db", str(db), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in rows] == ["config-change", "purge"]
    assert all(len(r["results"]) == 1 for r in rows)
