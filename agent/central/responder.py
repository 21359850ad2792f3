"""Reference central responder: the other end of the MQTT contract, small and correct.

NOT the real central identification system (a state bureau / FBI / DHS
chain): a reference for integrators and the engine of `fpagent demo` and the
link tests. What it does, per submission:

1. takes it from the MQTT 5 shared subscription
   `$share/<group>/{root}/v1/+/+/submission`, so several instances (on one
   broker or a cluster) split the load with no code change;
2. verifies the device signature (fpagent.sealing.envelope.verify_envelope)
   with the keys registered for the (ORI, device) the topic names
   (fpagent.central.registry) and checks that the signed ORI and device id
   are the topic's (and the screen, that the Type-1 ORI is); a submission
   that does not verify is answered with a signed rejected ack to the
   publishing device and never recorded, so a forged header cannot claim a
   genuine submission's id; then decrypts with its HPKE private key
   (verify_and_open);
3. stores it idempotently in its own SQLite file (fpagent.central.store), together with the signed
   ack and the notifications it will send, in ONE transaction: the same
   submission id twice is one record and gets the very same ack (same id,
   same body) again; two instances may share the file;
4. screens it (fpagent.central.screening: the default screen parses the ANSI/NIST-ITL transaction and
   matches its fingers against a criminal and an immigration gallery with the
   project's own extractor and matcher, the images decoded and extracted in
   a separate, resource-limited process: fpagent.central.image_worker);
5. answers with a signed `ack` (accepted, with a central transaction number,
   or rejected with a reason code), then a criminal-history notification
   (hit/no-hit, TCR = the booking's TCN), then LATER and separately an
   immigration notification carrying the status determination; or, when the
   screen cannot use the prints, a signed reprint request naming the fingers
   (or the whole booking) instead of the two answers. A reprint (its Type-1
   TCR = the original TCN) is linked to the original submission.

Later answers (a determination that changes: a higher `version` for the same
check) are more notification rows for the same submission, scripted by a
known person's record or queued by hand (`send_update`, `fpagent central
answer`); a jail's signed `release` notice is verified, stored and answered
with a signed notification (fpagent.central.followups).

Every instance also reads each appliance's retained `status` and keeps the
audit head it carries (fpagent.central.audit_heads): a chain that goes
backwards or forks is logged as a tamper alarm and stored.

An immigration-record match is not a finding of removability: in one year of
the programme's published figures, 5,880 of 119,052 matches were U.S.
citizens. So the immigration notification always carries a determination
("U.S. citizen or lawful status, no action", "under review", "removable" with
a level 1-3, or "no match") and the appliance shows a no-action result as
plainly as a hit.

Workers use clean MQTT sessions: a submission published while no worker is
connected is dropped by the broker, and the appliance publishes it again after
its ack timeout (the appliance's outbox, not the broker, is the durable copy).
Only after the commit is the submission acknowledged to the broker (manual
acks); a notification is marked sent only when the broker has it (PUBACK), and
an instance that dies holding one lets another pick it up after a short lease.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sqlite3
import ssl
import threading
import time
import uuid
from typing import Callable

import paho.mqtt.client as mqtt

from fpagent.central import audit_heads, fleet, followups
from fpagent.central.screening import Screen, ScreenRejected, Screening
from fpagent.central.store import CentralKeys, CentralStore, link_reprint, make_central_keys
from fpagent.link import client as client_mod
from fpagent.link import messages
from fpagent.sealing import envelope as envelope_mod

log = logging.getLogger("fpagent.central")

LEASE_S = 5.0  # a claimed notification not confirmed by the broker within this is sent again
MAX_SUBMISSION_BYTES = 16 * 1024 * 1024


def _refusal_reason(text: str) -> str:
    """The contract's ack reason for an EnvelopeError's text."""
    return ("unknown-device" if "unknown device key" in text
            else "decrypt-failed" if "decrypt" in text or "central key" in text
            else "device-mismatch" if "does not belong" in text
            else "oversized" if "larger than the limit" in text
            else "bad-signature" if "signature" in text else "malformed-envelope")


class RateLimitedLog:
    """At most `burst` records per `window_s` seconds; then one line says how many were held back.

    A flood of bad submissions must not fill central's log (or disk).
    """

    def __init__(self, logger: logging.Logger, burst: int = 20, window_s: float = 60.0):
        self.logger, self.burst, self.window_s = logger, burst, window_s
        self._window_start = -float("inf")
        self._count = 0
        self.suppressed = 0

    def warning(self, fmt: str, *args) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            if self.suppressed:
                self.logger.warning("central: %d more such messages were not logged in the last "
                                    "%.0f s", self.suppressed, self.window_s)
            self._window_start, self._count, self.suppressed = now, 0, 0
        self._count += 1
        if self._count <= self.burst:
            self.logger.warning(fmt, *args)
        else:
            self.suppressed += 1


def central_tcn(submission_id: str) -> str:
    """Deterministic, so every instance gives the same number for the same submission."""
    return "C" + hashlib.sha256(submission_id.encode()).hexdigest()[:11].upper()


class Central:
    """One responder instance: its own MQTT connection and thread, over a CentralStore."""

    def __init__(self, *, host: str, port: int, root: str, keys: CentralKeys, db_path,
                 screen: Screen, group: str = "central", tls: dict | None = None,
                 client_id: str | None = None, immigration_delay_s: float = 2.0,
                 on_event: Callable[[str, dict], None] | None = None):
        self.host, self.port, self.root = host, port, root
        self.keys = keys
        self.db_path = db_path
        self.screen = screen
        self.group = group
        self.tls = tls
        self.client_id = client_id or f"central-{uuid.uuid4().hex[:8]}"
        self.immigration_delay_s = immigration_delay_s
        self.on_event = on_event
        self.counters = {"received": 0, "new": 0, "duplicates": 0, "rejected": 0,
                         "acks_sent": 0, "notifications_sent": 0, "dropped": 0,
                         "refused_unverified": 0, "store_failures": 0, "statuses": 0,
                         "statuses_refused": 0, "audit_alarms": 0, "releases": 0,
                         "releases_refused": 0}
        self._drop_log = RateLimitedLog(log)
        self._stop = threading.Event()
        self._thread = None
        self._connected = threading.Event()
        self._pending_mids: dict[int, str] = {}  # publish mid -> notification id
        self.store: CentralStore | None = None
        self._due_now = False
        self._next_due = 0.0
        self._tried = False
        self.error: BaseException | None = None

    # -- lifecycle

    def start(self) -> "Central":
        self.store = CentralStore(self.db_path)
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name=f"central-{self.client_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        if self.store:
            self.store.close()
            self.store = None
        close_screen = getattr(self.screen, "close", None)
        if close_screen is not None:
            close_screen()  # the image worker process, if the screen started one

    def _make_client(self) -> mqtt.Client:
        client = client_mod.make_client(self.client_id, tls=self.tls or None, manual_ack=True,
                                        max_inflight=64)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self._connected.clear()
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(0.2, 2.0)
        return client

    def _run(self) -> None:
        client = self._client
        try:
            while not self._stop.is_set():
                if not client.is_connected():
                    try:
                        if self._tried:
                            client_mod.reconnect(client)
                        else:
                            self._tried = True
                            client_mod.connect(client, self.host, self.port, keepalive=10,
                                               clean_start=True)
                    except (OSError, ssl.SSLError) as exc:
                        log.info("central %s: connect failed: %s", self.client_id, exc)
                        self._stop.wait(0.3)
                        continue
                    deadline = time.monotonic() + 5
                    while not client.is_connected() and time.monotonic() < deadline \
                            and not self._stop.is_set():
                        if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS,
                                                              mqtt.MQTT_ERR_AGAIN):
                            break
                    continue
                if client.loop(timeout=0.05) == mqtt.MQTT_ERR_SUCCESS:
                    client.loop_read(max_packets=64)  # what is already buffered, too
                if client.is_connected() and (self._due_now or time.monotonic() >= self._next_due):
                    self._due_now = False
                    self._next_due = time.monotonic() + 0.2
                    self._publish_due()
            if client.is_connected():
                client.disconnect()
                client.loop(timeout=0.05)
        except BaseException as exc:  # noqa: BLE001 - surfaced through .error
            self.error = exc
            log.exception("central %s died", self.client_id)
        finally:
            self._connected.clear()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("central %s: broker refused: %s", self.client_id, reason_code)
            return
        client.subscribe([(f"$share/{self.group}/{self.root}/v1/+/+/submission", 1),
                          (f"$share/{self.group}/{self.root}/v1/+/+/result", 1),
                          (f"$share/{self.group}/{self.root}/v1/+/+/release", 1),
                          (f"{self.root}/v1/+/+/status", 1)])  # every instance sees every head
        self._pending_mids.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(rc.is_failure for rc in reason_codes):
            log.error("central %s: broker refused the shared subscription: %s (check the ACL)",
                      self.client_id, reason_codes)
            return
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        nid = self._pending_mids.pop(mid, None)
        if nid and not (reason_code is not None and reason_code.is_failure):
            with self.store.transaction() as db:
                db.execute("UPDATE notifications SET sent_at = ? WHERE id = ?", (time.time(), nid))

    def _event(self, name: str, detail: dict) -> None:
        if self.on_event:
            try:
                self.on_event(name, detail)
            except Exception:  # noqa: BLE001 - a display callback must not stop central
                log.exception("central event callback failed")

    # -- submissions

    def _on_message(self, client, userdata, msg):
        """Handle one submission, then acknowledge it to the broker, whatever it held.

        Only a local storage failure leaves it unacknowledged: then central
        drops its connection (clean session, so the broker forgets the
        in-flight message) and the appliance publishes it again after its ack
        timeout. Anything else is answered or dropped, and acknowledged, so
        bad submissions can never fill the broker's in-flight window.
        """
        try:
            if msg.topic.endswith("/status"):
                self.handle_status(msg.topic, bytes(msg.payload))
            elif msg.topic.endswith("/result"):
                self.handle_result(msg.topic, bytes(msg.payload))
            elif msg.topic.endswith("/release"):
                self.handle_release(msg.topic, bytes(msg.payload))
            else:
                self.handle_submission(msg.topic, bytes(msg.payload))
        except (sqlite3.Error, OSError) as exc:
            self.counters["store_failures"] += 1
            log.error("central %s: storage failed (%s: %s); reconnecting so the submission comes "
                      "again", self.client_id, type(exc).__name__, exc)
            client.disconnect()
            return
        except Exception as exc:  # noqa: BLE001 - a bad input must not stall central
            self._drop(msg.topic, f"could not be handled ({type(exc).__name__})")
        client.ack(msg.mid, msg.qos)

    def _drop(self, topic: str, why: str) -> None:
        """A submission that cannot be answered: counted, logged with a rate limit, dropped."""
        self.counters["dropped"] += 1
        self._drop_log.warning("central: dropped a submission on %s: %s", topic, why)

    def handle_status(self, topic: str, payload: bytes) -> None:
        """Keep the audit head of a signed status; a chain that goes backwards or forks is an alarm.

        A status that does not verify with the keys registered for the topic's
        (ORI, device), or that names another appliance, is counted and ignored."""
        parts = messages.split_topic(topic)
        if not parts or parts[3] != "status":
            return
        _, ori, device, _ = parts
        self.counters["statuses"] += 1
        try:
            body = envelope_mod.verify_message(payload, self.keys.devices.keys_for(ori, device),
                                               max_size=messages.MAX_MESSAGE_BYTES)
        except envelope_mod.EnvelopeError as exc:
            self.counters["statuses_refused"] += 1
            self._drop_log.warning("central: ignored a status on %s: %s", topic, str(exc)[:200])
            return
        if body.get("kind") != "status" or body.get("ori") != ori or body.get("device") != device:
            self.counters["statuses_refused"] += 1
            self._drop_log.warning("central: ignored a status on %s: signed for %s/%s", topic,
                                   str(body.get("ori"))[:16], str(body.get("device"))[:64])
            return
        head = audit_heads.parse_head(body.get("audit"))
        if head is None:  # the offline will, or an appliance that does not publish its head
            return
        with self.store.transaction() as db:
            fault = audit_heads.record(db, ori, device, *head)
        if fault is not None:
            self.counters["audit_alarms"] += 1
            log.error("central: TAMPER ALARM %s/%s: audit chain %s (head %d:%s..., seen before "
                      "%d:%s...)", ori, device, "went backwards" if fault[0] == audit_heads.BACKWARDS
                      else "forked", head[0], head[1][:12], fault[1], fault[2][:12])
            self._event("audit-alarm", {"ori": ori, "device": device, "fault": fault[0],
                                        "seq": head[0], "known_seq": fault[1]})

    def handle_result(self, topic: str, payload: bytes) -> None:
        """Store an appliance's signed answer to a fleet command (fpagent.central.fleet)."""
        try:
            body = fleet.verify_result(topic, payload, self.keys.devices)
        except fleet.ResultRefused as exc:
            self.counters["results_refused"] = self.counters.get("results_refused", 0) + 1
            self._drop_log.warning("central: ignored a result on %s: %s", topic, str(exc)[:200])
            return
        with self.store.transaction() as db:
            new = fleet.record_result(db, body)
        self.counters["results"] = self.counters.get("results", 0) + int(new)
        self._event("result", {k: body[k] for k in ("ori", "device", "command_id", "action",
                                                     "outcome", "reason", "detail")})

    def send_command(self, ori: str, device: str, fields: dict) -> str:
        """Sign, record and publish one fleet command to one appliance; returns its id."""
        body, payload = fleet.sign_command(fields, self.keys.signing, ori=ori, device=device)
        with self.store.transaction() as db:
            fleet.record_command(db, body)
        self._client.publish(messages.topic(self.root, ori, device, "command"), payload, qos=1)
        self._event("command", {"id": body["id"], "action": body["action"]})
        return body["id"]
    def handle_release(self, topic: str, payload: bytes) -> None:
        """A jail's signed release notice: verified, stored once, answered with a signed notification."""
        self.counters["releases"] += 1
        try:
            body = followups.verify_release(self.keys, topic, payload)
            with self.store.transaction() as db:
                followups.record_release(db, body)
        except followups.ReleaseRefused as exc:
            self.counters["releases_refused"] += 1
            self._drop_log.warning("central: refused a release notice on %s: %s", topic, exc)
            return
        self._event("release", {"release_id": body["id"], "submission_id": body["submission_id"],
                                "released_at": body["released_at"]})
        self._due_now = True

    def send_update(self, submission_id: str, **fields) -> str:
        """Queue a later immigration answer (next version unless `version=` is given); its id."""
        with self.store.transaction() as db:
            nid = followups.immigration_update(db, submission_id, **fields)
        self._due_now = True
        return nid

    def handle_submission(self, topic: str, payload: bytes) -> None:
        """Verify, then store and answer; nothing unverified is ever recorded.

        The submission id is taken from the header only after the device's
        signature verifies and the signed ORI and device are the topic's, so
        a forged or replayed header sent first cannot claim a genuine
        submission's id and steer its answers.
        """
        self.counters["received"] += 1
        parts = messages.split_topic(topic)
        if not parts or parts[3] != "submission":
            return
        _, ori, device, _ = parts
        try:
            header = envelope_mod.verify_envelope(
                payload, device_verify_keys=self.keys.devices.keys_for(ori, device),  # this agency's device only
                max_size=MAX_SUBMISSION_BYTES)
        except envelope_mod.EnvelopeError as exc:
            try:
                sid = envelope_mod.inspect(payload, max_size=MAX_SUBMISSION_BYTES).submission_id
            except envelope_mod.EnvelopeError as unreadable:
                self.counters["rejected"] += 1
                self._drop(topic, f"unreadable envelope: {unreadable}"[:200])
                return  # no id to answer to
            self._refuse(sid, ori, device, _refusal_reason(str(exc)), str(exc))
            return
        sid = header.submission_id
        if header.device_id != device or header.ori != ori:
            self._refuse(sid, ori, device, "device-mismatch",
                         f"signed as {header.ori}/{header.device_id}")
            return
        known = self.store.submission(sid)
        if known is not None:
            if (known["ori"], known["device"]) != (ori, device):
                self._refuse(sid, ori, device, "device-mismatch",
                             "this submission id belongs to another device")
                return
            self._duplicate(known)
            return
        try:
            opened = envelope_mod.verify_and_open(
                payload, central_private_key=self.keys.hpke,
                device_verify_keys=self.keys.devices.keys_for(ori, device),  # this agency's device only
                max_size=MAX_SUBMISSION_BYTES)
        except envelope_mod.EnvelopeError as exc:  # signed by its device: recorded, answered
            self._record(sid, ori, device, "", None, _refusal_reason(str(exc)), str(exc))
            return
        try:
            screening = self.screen(opened)
        except ScreenRejected as exc:
            self._record(sid, ori, device, "", None, exc.reason, exc.detail)
            return
        self._record(sid, ori, device, screening.tcn, screening, "", "")

    def _refuse(self, sid, ori, device, reason, detail) -> None:
        """Answer a submission that did not verify with a signed rejected ack, storing nothing.

        Sent to the topic's device (the broker's ACL ties the topic to the
        client certificate), so only the publisher hears it.
        """
        self.counters["rejected"] += 1
        self.counters["refused_unverified"] += 1
        self._drop_log.warning("central: refused submission %s on %s/%s: %s", sid, ori, device,
                               reason)
        fields = messages.ack_body(submission_id=sid, tcn="", accepted=False,
                                   central_tcn=central_tcn(sid), reason=reason,
                                   detail=detail[:300])
        ack_id = uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-refusal:{sid}:{ori}:{device}:{reason}").hex
        self._send_ack(sid, ori, device, ack_id, fields)
        self._event("submission", {"submission_id": sid, "tcn": "", "result": "rejected",
                                   "reason": reason, "device": device})

    def _record(self, sid, ori, device, tcn, screening: Screening | None, reason, detail) -> None:
        """Store the submission, its ack and its notifications in one transaction; send."""
        now = time.time()
        ctn = central_tcn(sid)
        accepted = screening is not None
        ack_fields = messages.ack_body(submission_id=sid, tcn=tcn or "", accepted=accepted,
                                       central_tcn=ctn, reason=reason, detail=detail[:300])
        ack_id = uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-ack:{sid}").hex
        notes = []
        if accepted and screening.reprint is not None:  # the prints are rejected: no search
            reason, fingers = screening.reprint
            notes.append((uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-reprint:{sid}").hex, now,
                          messages.reprint_body(submission_id=sid, tcr=tcn, central_tcn=ctn,
                                                reason=reason, fingers=list(fingers))))
        elif accepted:
            record = screening.criminal_record if screening.criminal_hit else None
            notes.append((uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-chr:{sid}").hex, now,
                          messages.criminal_body(
                              submission_id=sid, tcr=tcn, hit=screening.criminal_hit,
                              central_tcn=ctn, record=record,
                              instructions=("Criminal history record found: see record."
                                            if screening.criminal_hit else
                                            "No criminal history record found."))))
            notes.append((uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-imm:{sid}").hex,
                          now + self.immigration_delay_s,
                          messages.immigration_body(
                              submission_id=sid, tcr=tcn, central_tcn=ctn,
                              determination=screening.determination, level=screening.level,
                              record=screening.immigration_record,
                              instructions=screening.instructions)))
            notes += followups.scripted(sid, tcn, ctn, screening.follow_ups,
                                        now + self.immigration_delay_s)
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO submissions (submission_id, ori, device, tcn, received_at, "
                "result, central_tcn, ack_id, ack_fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, ori, device, tcn, now, ack_fields["result"], ctn if accepted else None,
                 ack_id, json.dumps(ack_fields, sort_keys=True)))
            fresh = cur.rowcount == 1
            if fresh and accepted and screening.tcr:
                link_reprint(db, sid, ori, screening.tcr)
            if fresh:
                for nid, due, fields in notes:
                    db.execute("INSERT INTO notifications (id, submission_id, ori, device, kind, "
                               "fields, due_at) VALUES (?, ?, ?, ?, 'notification', ?, ?)",
                               (nid, sid, ori, device, json.dumps(fields, sort_keys=True), due))
        if not fresh:  # another instance stored it a moment ago
            self._duplicate(self.store.submission(sid))
            return
        self.counters["new"] += 1
        if not accepted:
            self.counters["rejected"] += 1
        self._send_ack(sid, ori, device, ack_id, ack_fields)
        self._event("submission", {"submission_id": sid, "tcn": tcn, "result": ack_fields["result"],
                                   "reason": reason, "device": device})
        self._due_now = True

    def _duplicate(self, known: dict) -> None:
        """Same submission again: same ack (same id and fields), notifications sent again."""
        self.counters["duplicates"] += 1
        with self.store.transaction() as db:
            db.execute("UPDATE submissions SET deliveries = deliveries + 1 WHERE submission_id = ?",
                       (known["submission_id"],))
            # what was already sent goes out again (the appliance drops what it has)
            db.execute("UPDATE notifications SET sent_at = NULL, claimed_until = NULL "
                       "WHERE submission_id = ?", (known["submission_id"],))
        self._send_ack(known["submission_id"], known["ori"], known["device"], known["ack_id"],
                       known["ack_fields"])
        self._due_now = True

    def _sign(self, kind, fields, ori, device, msg_id) -> bytes:
        body = messages.message(kind, fields, ori=ori, device=device, msg_id=msg_id)
        return messages.sign(body, self.keys.signing)

    def push_watchlist(self, ori: str, device: str, entries: list) -> str:
        """Send one appliance a signed `command` replacing its local watch list; returns the
        message id. `entries`: fpagent.link.messages.watchlist_entry(...) dicts."""
        msg_id = messages.new_id()
        payload = self._sign("command", messages.watchlist_command(entries), ori, device, msg_id)
        self._client.publish(messages.topic(self.root, ori, device, "command"), payload, qos=1)
        self._event("command", {"id": msg_id, "action": "watchlist.replace",
                                "entries": len(entries)})
        return msg_id

    def _send_ack(self, sid, ori, device, ack_id, fields) -> None:
        self._client.publish(messages.topic(self.root, ori, device, "ack"),
                             self._sign("ack", fields, ori, device, ack_id), qos=1)
        self.counters["acks_sent"] += 1

    def _publish_due(self) -> None:
        """Send notifications whose time has come (claimed with a lease, confirmed on PUBACK)."""
        now = time.time()
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT id, ori, device, fields FROM notifications WHERE sent_at IS NULL "
                "AND due_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) "
                "ORDER BY due_at LIMIT 64", (now, now)).fetchall()
            for nid, *_ in rows:
                db.execute("UPDATE notifications SET claimed_until = ? WHERE id = ?",
                           (now + LEASE_S, nid))
        for nid, ori, device, fields in rows:
            fields = json.loads(fields)
            info = self._client.publish(messages.topic(self.root, ori, device, "notification"),
                                        self._sign("notification", fields, ori, device, nid), qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._pending_mids[info.mid] = nid
                self.counters["notifications_sent"] += 1
                self._event("notification", fields)


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpagent.central.responder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", help="create the central signing and HPKE keys in DIR (once)")
    k.add_argument("dir")
    args = parser.parse_args(argv)
    if args.cmd == "keys":
        print(make_central_keys(args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
