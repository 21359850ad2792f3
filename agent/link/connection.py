"""The MQTT link: sends the outbox to central and takes in what central answers.

Delivery rules (../docs/asyncapi.yaml, contract v1):

- A submission is published (QoS 1) from the durable SQLite outbox with at
  most `mqtt.inflight` unanswered at a time. paho's own queue never holds the
  only copy: the outbox row stays pending until a valid signed `ack` for its
  id arrives; without one within `mqtt.ack_timeout_s` (then twice that, and
  so on up to 5 minutes), or after any reconnect, it is published again with
  the same id (central deduplicates).
- Incoming `ack`, `notification` and `command` messages are verified (the
  pinned central Ed25519 key, freshness window, addressee, size, shape),
  deduplicated by id against the inbox, stored and COMMITTED, and only then
  acknowledged to the broker (paho manual acks), so a crash at any point
  means redelivery, never loss. Everything refused is counted and audited,
  never acted on.
- The session is persistent (clean_start False, a session expiry), so what
  central sent while the appliance was away waits in the broker; after every
  reconnect the link subscribes again and re-publishes everything pending.
- A retained `status` (version, queue depth, sensor state, last capture, disk)
  is published on connect and periodically; the MQTT will replaces it with
  "offline" when the connection dies.

Everything runs in one thread of its own (paho's `loop()` is driven from
it, so callbacks, SQLite and publishing never race); `start()`/`stop()`;
`health()` and `counters` for the service's status.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import fpagent
from fpagent.link import messages

log = logging.getLogger("fpagent.link")

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week offline
CONNACK_TIMEOUT_S = 15.0
RETRY_MAX_S = 300.0  # the longest wait between re-publications of an unanswered submission
MAX_LOOP_ERRORS = 20  # consecutive loop failures before the link thread gives up


def _nodelay(client) -> None:
    """Small request/answer messages: don't let Nagle hold them (~40 ms per hop on loopback)."""
    try:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class NotificationHook:
    """Runs `[notifications] hook` for each new notification, JSON on stdin.

    A worker thread, so a slow printer script never stalls the link; a
    timeout; failures logged and counted, never fatal. The JSON holds the
    notification's fields only (no biometric data is ever in one).
    """

    def __init__(self, command: str, timeout_s: float = 15.0):
        self.command = command
        self.timeout_s = timeout_s
        self.failures = 0
        self.runs = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, notification: dict) -> None:
        if not self.command:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="fpagent-hook", daemon=True)
            self._thread.start()
        self._queue.put(notification)

    def run_one(self, notification: dict) -> bool:
        data = json.dumps(notification, sort_keys=True).encode()
        self.runs += 1
        try:
            done = subprocess.run(self.command, shell=True, input=data, timeout=self.timeout_s,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            self.failures += 1
            log.warning("notification hook timed out after %.0f s: %s", self.timeout_s, self.command)
            return False
        except OSError as exc:
            self.failures += 1
            log.warning("notification hook could not run (%s): %s", exc, self.command)
            return False
        if done.returncode != 0:
            self.failures += 1
            log.warning("notification hook exited %d: %s", done.returncode,
                        done.stderr.decode(errors="replace").strip()[:300])
            return False
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.run_one(item)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None


class Link:
    """The appliance's side of the MQTT contract, over an H5 Store (outbox, inbox, audit).

    `store=`: the process's one Store (thread-safe; the booking code enqueues
    through the same connection, so no SQLite lock contention), or
    `store_factory=`: called inside the link thread, closed when it stops. `central_verify_keys`: the pinned central
    Ed25519 public key(s); `device_signing_key` signs the status message.
    `status_extra()` may add sensor state / last capture (the service's view).
    """

    def __init__(self, config, *, store_factory: Callable | None = None, store=None,
                 central_verify_keys,
                 device_signing_key=None, status_extra: Callable[[], dict] | None = None,
                 on_notification: Callable[[dict], None] | None = None,
                 on_ack: Callable[[str, dict], None] | None = None,
                 client_id: str | None = None):
        self.config = config
        self.mq = config.mqtt
        self.ori = config.device.ori
        self.device = config.device.device_id
        self.root = self.mq.root
        if (store is None) == (store_factory is None):
            raise ValueError("give the Link either store= (shared, e.g. the service's one "
                             "Store) or store_factory= (opened and closed by the link)")
        self.store_factory = store_factory or (lambda: store)
        self._owns_store = store is None
        self.verify_keys = central_verify_keys
        self.signing_key = device_signing_key
        self.status_extra = status_extra
        self.on_notification = on_notification
        self.on_ack = on_ack
        self.client_id = client_id or f"{self.ori}-{self.device}"
        self.hook = NotificationHook(config.notifications.hook,
                                     getattr(config.notifications, "hook_timeout_s", 15.0))
        self.counters: collections.Counter = collections.Counter()
        self.rejected: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._inflight: dict[str, float] = {}  # submission id -> monotonic time published
        self._mid_to_id: dict[int, str] = {}
        self._incoming: list = []  # messages read, not yet stored (see _drain_incoming)
        self._resync: dict = {}  # submission id -> why its answers are asked for again
        self._next_answers_check = 0.0
        self._resync_at: dict[str, tuple] = {}  # sid -> (last time asked, times asked)
        self._last_error = ""
        self._last_connect = None
        self._store = None
        self._client: mqtt.Client | None = None
        self._pump_needed = True
        self._next_pump = 0.0
        self._attempt = 0
        self._state = "down"  # down -> connecting -> up
        self._next_attempt = 0.0
        self._connect_started = 0.0
        self._ever_tried = False
        self._status_due = True
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ topics

    def topic(self, leaf: str) -> str:
        return messages.topic(self.root, self.ori, self.device, leaf)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Link":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_guarded, name="fpagent-link", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Publish 'offline', disconnect cleanly, end the thread, stop the hook worker."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        self.hook.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def is_alive(self) -> bool:
        """The link thread runs (False after a crash of the thread: the service's watchdog stops)."""
        return self._thread is not None and self._thread.is_alive() and self.error is None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Connected and subscribed (SUBACK received), so central's answers reach us."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._connected.is_set() and self._subscribed.is_set():
                return True
            time.sleep(0.01)
        return False

    def poke(self) -> None:
        """A new booking was enqueued: publish it soon (any thread may call this)."""
        self._pump_needed = True

    def health(self) -> dict:
        """For `fpagent status` and the service: connection, in-flight, counters."""
        return {
            "connected": self.connected,
            "broker": f"{self.mq.host}:{self.mq.port}",
            "tls": bool(self.mq.tls),
            "last_connect_at": self._last_connect,
            "inflight": len(self._inflight),
            "last_error": self._last_error,
            "counters": dict(self.counters),
            "rejected": dict(self.rejected),
            "hook_failures": self.hook.failures,
        }

    # ------------------------------------------------------------------ the thread

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported through health()/error
            self.error = exc
            self._last_error = f"link thread died: {exc!r}"
            log.exception("link thread died")
            self._connected.clear()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if self.mq.tls:
            client.tls_set(ca_certs=self.mq.ca_file or None, certfile=self.mq.cert_file or None,
                           keyfile=self.mq.key_file or None, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.max_inflight_messages_set(max(1, self.mq.inflight) + 4)  # + status messages
        client.max_queued_messages_set(0)
        client.will_set(self.topic("status"), self._status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _run(self) -> None:
        self._store = self.store_factory()
        self._client = self._make_client()
        next_status = 0.0
        errors_in_a_row = 0
        try:
            while not self._stop.is_set():
                try:
                    next_status = self._step(next_status)
                    errors_in_a_row = 0
                except Exception as exc:  # noqa: BLE001 - e.g. the database briefly unusable
                    errors_in_a_row += 1
                    self.counters["loop_errors"] += 1
                    log.error("link loop error (%d in a row): %s", errors_in_a_row, exc)
                    if errors_in_a_row >= MAX_LOOP_ERRORS:
                        raise  # crash-only: the service's watchdog restarts the agent
                    self._lost(f"link loop error: {exc}")
            if self._state == "up":
                self._publish_status("offline")
                deadline = time.monotonic() + 2.0
                while self._client.want_write() and time.monotonic() < deadline:
                    self._client.loop(timeout=0.02)
                self._client.disconnect()
                self._client.loop(timeout=0.05)
        finally:
            self._connected.clear()
            self._close_socket()
            if self._owns_store:
                self._store.close()

    def _step(self, next_status: float) -> float:
        """One turn of the loop: connect when due, network I/O, store, publish."""
        now = time.monotonic()
        if self._state == "down" and now >= self._next_attempt:
            self._try_connect()
        if self._state == "connecting" and now - self._connect_started > CONNACK_TIMEOUT_S:
            self._lost("no CONNACK from the broker")
        if self._state == "down":
            self._stop.wait(min(0.05, max(0.0, self._next_attempt - now)))
            return next_status
        rc = self._client.loop(timeout=0.02)
        if rc == mqtt.MQTT_ERR_SUCCESS and self._incoming:
            rc = self._client.loop_read(max_packets=64)  # take what is buffered too
            if rc == mqtt.MQTT_ERR_AGAIN:
                rc = mqtt.MQTT_ERR_SUCCESS
        self._drain_incoming()
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN) and self._state != "down":
            self._lost(f"network error: {mqtt.error_string(rc)}")
        if self._state == "up":
            now = time.monotonic()
            if now >= next_status or self._status_due:
                self._status_due = False  # right after every (re)connect: the will may have said offline
                self._publish_status("online")
                next_status = now + self.config.service.status_interval_s
            self._pump(now)
            if now >= self._next_answers_check:
                timeout = getattr(self.mq, "answers_timeout_s", 0.0)
                self._next_answers_check = now + max(1.0, min(60.0, timeout / 4 or 60.0))
                self._check_missing_answers()
        return next_status

    def _close_socket(self) -> None:
        try:
            sock = self._client.socket() if self._client else None
            if sock:
                sock.close()
        except OSError:
            pass

    def _backoff(self) -> float:
        """Exponential backoff with full jitter between reconnect attempts."""
        self._attempt += 1
        cap = min(self.mq.reconnect_max_s, self.mq.reconnect_min_s * (2 ** min(self._attempt, 16)))
        return random.uniform(self.mq.reconnect_min_s, max(self.mq.reconnect_min_s, cap))

    def _try_connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = max(4, self.mq.inflight * 2)
        try:
            if not self._ever_tried:
                self._ever_tried = True
                self._client.connect(self.mq.host, self.mq.port, keepalive=self.mq.keepalive_s,
                                     clean_start=False, properties=props)
            else:
                # a fresh "offline" will (its issued_at) for this connection
                self._client.will_set(self.topic("status"), self._status_payload("offline"),
                                      qos=1, retain=True)
                self._client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._last_error = f"connect to {self.mq.host}:{self.mq.port} failed: {exc}"
            self.counters["connect_failures"] += 1
            log.info("%s", self._last_error)
            self._close_socket()
            self._next_attempt = time.monotonic() + self._backoff()
            return
        _nodelay(self._client)
        self._state = "connecting"
        self._connect_started = time.monotonic()

    def _lost(self, why: str) -> None:
        """The connection is gone: forget in-flight state, plan a reconnect with backoff."""
        self._last_error = why
        self._connected.clear()
        self._state = "down"
        self._inflight.clear()
        self._mid_to_id.clear()
        self._incoming.clear()  # not acknowledged: the broker delivers them again
        self._close_socket()
        self._next_attempt = time.monotonic() + self._backoff()

    # ------------------------------------------------------------------ callbacks (link thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.counters["connect_refused"] += 1
            self._lost(f"broker refused the connection: {reason_code}")
            log.warning("%s", self._last_error)
            return
        self._state = "up"
        self._attempt = 0
        self._last_connect = messages.now_rfc3339()
        self.counters["connects"] += 1
        client.subscribe([(self.topic(leaf), 1) for leaf in ("ack", "notification", "command")])
        # resynchronise: everything unanswered goes out again with the same id
        self._store.outbox.retry_all_now()
        self._inflight.clear()
        self._mid_to_id.clear()
        self._pump_needed = True
        self._status_due = True
        self._connected.set()
        self._subscribed.clear()
        log.info("connected to %s:%s (session present: %s)", self.mq.host, self.mq.port,
                 flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self._last_error = f"broker refused our subscriptions: {', '.join(refused)}"
            log.error("%s (check the broker ACL for this device's CN)", self._last_error)
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self._state != "down":
            self.counters["disconnects"] += 1
            self._lost(f"disconnected: {reason_code}")

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        sid = self._mid_to_id.pop(mid, None)
        if reason_code is not None and reason_code.is_failure:
            self.counters["publish_refused"] += 1
            self._last_error = f"broker refused a publish: {reason_code}"
            log.warning("broker refused publish of %s: %s", sid, reason_code)

    def _on_message(self, client, userdata, msg):
        # handled in batches after the read (one commit for all), see _drain_incoming
        self._incoming.append(msg)

    def _drain_incoming(self) -> None:
        """Verify, store and COMMIT what arrived; only then ack it to the broker, then act.

        One transaction (one fsync) per batch. If storing fails (disk full...),
        nothing is acknowledged and the connection is dropped, so the broker
        redelivers everything after the reconnect.
        """
        if not self._incoming:
            return
        batch, self._incoming = self._incoming, []
        after: list = []
        try:
            with self._store.transaction():
                for msg in batch:
                    self._handle_incoming(msg.topic, bytes(msg.payload), after)
        except Exception as exc:  # noqa: BLE001
            self.counters["store_errors"] += 1
            log.error("could not store %d incoming messages (%s); will take them again",
                      len(batch), exc)
            self._lost(f"could not store incoming messages: {exc}")
            return
        for msg in batch:
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)
        for action in after:
            try:
                action()
            except Exception:  # noqa: BLE001 - a display problem must not stop the link
                log.exception("after-commit action failed")

    # ------------------------------------------------------------------ outgoing

    def _pump(self, now: float) -> None:
        """Publish due outbox rows, keeping at most `inflight` unanswered."""
        if self._resync:
            self._publish_resync()
        timeout = getattr(self.mq, "ack_timeout_s", 30.0)
        for sid, sent in list(self._inflight.items()):
            if now - sent > timeout:
                del self._inflight[sid]
                self.counters["ack_timeouts"] += 1
                self._pump_needed = True
        free = max(1, self.mq.inflight) - len(self._inflight)
        if free <= 0 or (not self._pump_needed and now < self._next_pump):
            return
        self._pump_needed = False
        self._next_pump = now + 0.5
        rows = self._pending(len(self._inflight) + free)
        if rows:
            # one commit (one fsync) for the whole batch of publish attempts
            with self._store.transaction():
                self._publish_rows(rows, free, now, timeout)

    def _publish_rows(self, rows, free: int, now: float, timeout: float) -> None:
        for row in rows:
            if free <= 0:
                break
            sid = row.submission_id
            if sid in self._inflight or row.envelope is None:
                continue
            env = row.envelope
            info = self._client.publish(self.topic("submission"), bytes(env), qos=1,
                                        properties=self._submission_props(sid))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                self._pump_needed = True
                break
            self._mid_to_id[info.mid] = sid
            self.counters["republished" if row.attempts else "published"] += 1
            self._inflight[sid] = now
            # unanswered: due again after the ack timeout, doubling each time up to
            # 5 minutes; kept in SQLite, so it holds across restarts (a reconnect
            # makes everything due at once: resynchronisation)
            retry = min(RETRY_MAX_S, timeout * 2 ** min(row.attempts, 12))
            self._store.outbox.mark_sent(sid, retry_after=retry)
            free -= 1
        if free == 0:
            self._pump_needed = True

    @staticmethod
    def _submission_props(sid: str) -> Properties:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("fp-kind", "submission"), ("fp-id", str(sid))]
        props.ContentType = "application/vnd.fpagent.envelope"
        return props

    def _pending(self, limit: int):
        """Unacknowledged rows whose retry time has come (mark_sent pushes it by ack_timeout_s)."""
        return self._store.outbox.due(limit=limit)

    def _status_payload(self, state: str) -> bytes:
        body = messages.message("status", self._status_fields(state), ori=self.ori,
                                device=self.device)
        if self.signing_key is not None:
            return messages.sign(body, self.signing_key)
        return json.dumps({"v": 1, "body": body}, sort_keys=True).encode()

    def _status_fields(self, state: str) -> dict:
        queue_info = {}
        if state == "online" and self._store is not None:
            try:
                counts = self._store.outbox.counts()
                queue_info = dict(counts) if isinstance(counts, dict) else {"pending": counts}
                age = self._store.outbox.oldest_pending_age()
                queue_info["oldest_pending_age_s"] = age
            except Exception as exc:  # noqa: BLE001 - status must never kill the link
                queue_info = {"error": str(exc)[:100]}
        disk = None
        try:
            disk = round(shutil.disk_usage(self.config.paths.state_dir).free / 2**20, 1)
        except OSError:
            pass
        extra = {}
        if self.status_extra and state == "online":
            try:
                extra = self.status_extra() or {}
            except Exception:  # noqa: BLE001
                extra = {}
        sensor = extra.get("sensor")
        if sensor is not None and not isinstance(sensor, dict):
            sensor = {"state": str(sensor)}
        return messages.status_body(state=state, version=fpagent.__version__, queue=queue_info,
                                    sensor=sensor,
                                    last_capture_at=extra.get("last_capture_at"),
                                    disk_free_mb=disk if state == "online" else None)

    def _publish_status(self, state: str) -> None:
        self._client.publish(self.topic("status"), self._status_payload(state), qos=1, retain=True)

    # ------------------------------------------------------------------ incoming

    def _reject(self, reason: str, detail: str, topic: str, msg_id: str | None, size: int) -> None:
        self.rejected[reason] += 1
        self.counters["rejected"] += 1
        self._store.counters.incr(f"link.rejected.{reason}")
        log.warning("refused a message on %s: %s %s", topic, reason, detail[:200])
        entry = {"reason": reason, "topic": topic[:200], "bytes": size, "detail": detail[:300]}
        if msg_id:
            entry["message_id"] = str(msg_id)[:64]
        self._store.audit.append("link", "message-rejected", entry)

    def _handle_incoming(self, topic: str, payload: bytes, after: list) -> None:
        parts = messages.split_topic(topic)
        if not parts or parts[0] != self.root or parts[1] != self.ori or parts[2] != self.device \
                or parts[3] not in messages.CENTRAL_KINDS:
            self._reject("wrong-topic", "not one of this appliance's topics", topic, None, len(payload))
            return
        leaf = parts[3]
        try:
            msg = messages.parse_and_verify(
                payload, verify_keys=self.verify_keys, ori=self.ori, device=self.device,
                topic_kind=leaf, now=time.time(), freshness_s=self.config.envelope.freshness_s,
                max_bytes=getattr(self.mq, "max_message_bytes", messages.MAX_MESSAGE_BYTES))
        except messages.MessageError as exc:
            self._reject(exc.reason, exc.detail, topic, None, len(payload))
            if exc.reason == "stale" and exc.verified_body:
                self._stale_answer(exc.verified_body)
            return
        if msg.kind == "ack":
            self._handle_ack(msg, topic, after)
        else:
            self._handle_stored(msg, topic, after)

    def _check_missing_answers(self) -> None:
        """Accepted bookings still missing a notification after answers_timeout_s: ask again.

        Central sends both answers (criminal history, immigration) for every
        accepted submission. One lost on the way (e.g. a broker that crashed
        holding it) would otherwise never come: the submission is published
        again with the same id, and central answers the duplicate again.
        """
        timeout = getattr(self.mq, "answers_timeout_s", 0.0)
        if not timeout:
            return
        now = time.time()
        horizon = now - self.config.store.retention_days * 86400.0
        late = [r for r in self._store.outbox.list(state="acknowledged", limit=500)
                if r.acknowledged_at and horizon < r.acknowledged_at < now - timeout]
        if not late:
            return
        have: dict = {}
        for item in self._store.inbox.list(kind="notification", limit=5000):
            have.setdefault(item["body"].get("submission_id"), set()).add(item["body"].get("check"))
        for row in late:
            if set(messages.CHECKS) - have.get(row.submission_id, set()):
                self._ask_again(row.submission_id, "answers missing")

    def _ask_again(self, sid: str, why: str) -> None:
        now = time.monotonic()
        last, tries = self._resync_at.get(sid, (-1e9, 0))
        if now - last < 60.0 or tries >= 5:  # e.g. our clock is wrong: don't ask forever
            if tries >= 5:
                self._last_error = f"asked central 5 times for the answers to {sid[:8]} ({why})"
            return
        self._resync_at[sid] = (now, tries + 1)
        self._resync[sid] = why
        self._pump_needed = True

    def _stale_answer(self, body: dict) -> None:
        """A genuine but stale answer (it waited in the broker too long): ask again.

        Its content is NOT used. The only effect: the submission it names, if it
        is ours, is published again with the same id; central then answers that
        duplicate with the same ack and freshly signed notifications. At most
        once a minute and five times per submission, so a replayed old message
        (or a wrong clock) cannot make the link flood the broker.
        """
        sid = body.get("submission_id")
        if not isinstance(sid, str) or body.get("ori") != self.ori or body.get("device") != self.device:
            return
        self._ask_again(sid, "stale answer (check this appliance's clock if it repeats)")

    def _publish_resync(self) -> None:
        """Re-publish submissions whose answers arrived stale (see _stale_answer)."""
        while self._resync:
            sid, why = self._resync.popitem()
            row = self._store.outbox.get(sid, with_envelope=True)
            if row is None or row.envelope is None:
                continue
            self._client.publish(self.topic("submission"), bytes(row.envelope), qos=1,
                                 properties=self._submission_props(sid))
            self.counters["resync_requests"] += 1
            self._store.audit.append("link", "answers-requested-again",
                                     {"submission_id": sid, "why": why[:100]})

    def _handle_ack(self, msg: messages.Message, topic: str, after: list) -> None:
        """Apply a verified ack. Idempotent: a redelivered ack changes nothing."""
        body = msg.body
        sid = body["submission_id"]
        outbox = self._store.outbox
        ack = {"id": msg.id, "result": body["result"], "issued_at": body["issued_at"],
               "central_tcn": body.get("central_tcn"), "reason": body.get("reason")}
        if body["result"] == "accepted":
            changed = outbox.mark_acknowledged(sid, ack)
        else:
            changed = outbox.mark_rejected(sid, body.get("reason", "rejected"), ack=ack)
        if changed is False:
            self.counters["duplicate_acks"] += 1
        else:
            self.counters["acks_" + body["result"]] += 1
            if self.on_ack:
                after.append(lambda: self.on_ack(sid, ack))
        if self._inflight.pop(sid, None) is not None:
            self._pump_needed = True

    def _handle_stored(self, msg: messages.Message, topic: str, after: list) -> None:
        """Notification or command: dedup by id, store; after the commit, act (hook)."""
        fresh = self._store.inbox.add(msg.id, msg.kind, msg.body)
        if not fresh:
            self._reject("replayed", "id already in the inbox", topic, msg.id, 0)
            return
        self.counters[msg.kind + "s"] += 1
        if msg.kind == "notification":
            if self.on_notification:
                after.append(lambda: self.on_notification(msg.body))
            after.append(lambda: self.hook.submit(msg.body))
        else:
            # commands are verified, stored and audited; watchlist.replace is applied here
            self._store.audit.append("link", "command-received",
                                     {"message_id": msg.id, "action": msg.body.get("action")})
            if msg.body.get("action") == "watchlist.replace":
                self._replace_watchlist(msg)

    def _command_failed(self, msg: messages.Message, why: str, detail: str) -> None:
        self.counters["commands_failed"] += 1
        self._store.counters.incr(f"link.command_failed.{why}")
        log.warning("command %s (%s) not applied: %s", msg.id[:8], msg.body.get("action"), detail[:200])
        self._store.audit.append("link", "command-failed", {
            "message_id": msg.id, "action": msg.body.get("action"), "why": why,
            "detail": detail[:200]})

    def _replace_watchlist(self, msg: messages.Message) -> None:
        """Replace the local "watchlist" gallery with the command's templates: all or nothing.

        Runs inside the inbox transaction; the encrypted gallery file is written
        atomically, so a redelivery after a failed commit just writes it again.
        The audit entry carries counts only, never biometric data.
        """
        from fpagent.screening import galleries as gallery_store

        entries = msg.body.get("args", {}).get("entries", [])
        last = self._store.audit.list(limit=1, action="watchlist-replaced")
        if last:
            try:
                newer = messages.parse_rfc3339(last[0].detail.get("issued_at")) > msg.issued_at
            except messages.MessageError:
                newer = False
            if newer:  # e.g. redelivered out of order: never go back to an older list
                self._command_failed(msg, "superseded", "a newer watch list is already applied")
                return
        try:
            gallery = gallery_store.build_watchlist(entries)
        except gallery_store.WatchlistError as exc:
            self._command_failed(msg, "bad-template", str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the prefilter missing: refuse, don't crash
            self._command_failed(msg, "not-built", f"{type(exc).__name__}: {exc}")
            return
        try:
            gallery_store.GalleryStore.from_config(self.config).save(
                gallery_store.WATCHLIST, gallery.to_bytes())
        except Exception as exc:  # noqa: BLE001 - disk full, key unreadable...
            self._command_failed(msg, "not-saved", f"{type(exc).__name__}: {exc}")
            return
        self.counters["watchlist_replaced"] += 1
        self._store.audit.append("link", "watchlist-replaced", {
            "message_id": msg.id, "issued_at": msg.body.get("issued_at"),
            "entries": len(gallery), "subjects": len({e["subject_id"] for e in entries})})


def build_link(config, store=None, **kw) -> Link:
    """A Link from the configuration and the pinned keys.

    `store`: the process's Store to share (recommended: one per process); without
    it the link opens its own on the state dir's database.
    """
    from fpagent.sealing import keys as keys_mod
    from fpagent.storage.store import Store

    from fpagent.errors import ConfigError

    if not config.mqtt.port:
        raise ConfigError("no broker configured: set [mqtt] host and port (port 0 only means "
                          "'start a local broker' to `fpagent demo`)")
    if config.mqtt.tls and not (config.mqtt.cert_file and config.mqtt.key_file):
        raise ConfigError("[mqtt] tls = true needs cert_file and key_file (this appliance's "
                          "client certificate, CN = its device id) and ca_file")
    env = config.envelope
    verify = keys_mod.load_verify_key(config.key_path(env.central_verify_key,
                                                      keys_mod.CENTRAL_VERIFY_KEY),
                                      "central verify key")
    signing = None
    path = config.key_path(env.device_signing_key, keys_mod.DEVICE_SIGNING_KEY)
    if os.path.exists(path):
        signing = keys_mod.load_signing_key(path, "device signing key")
    if store is not None:
        return Link(config, store=store, central_verify_keys=verify, device_signing_key=signing, **kw)
    return Link(config, store_factory=lambda: Store(config.paths.database(), config),
                central_verify_keys=verify, device_signing_key=signing, **kw)
