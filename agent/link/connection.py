"""The MQTT link: sends the outbox to central and takes in what central answers.

Contract: ../docs/asyncapi.yaml (v1). The link is the small object that wires
its parts together and owns the connection:

- `client`: the paho client set-up (MQTT v5, TLS, TCP_NODELAY);
- `outbound`: the outbox pump (in-flight window, re-publication, answers asked
  for again);
- `inbound`: verify, deduplicate, store and commit acks, notifications and
  commands, then acknowledge them to the broker; commands go to the owner's
  `on_command` handler (the service applies the watch list through screening);
- `status`: the counters and the retained, signed `status` message.

The session is persistent (clean_start False, a session expiry), so what
central sent while the appliance was away waits in the broker; after every
reconnect the link subscribes again and re-publishes everything pending.
A retained `status` is published on connect and periodically; the MQTT will
replaces it with "offline" when the connection dies.

Everything runs in one thread of its own (paho's `loop()` is driven from it,
so callbacks, SQLite and publishing never race); `start()`/`stop()`;
`health()` and `counters` for the service's status.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fpagent.link import client as client_mod
from fpagent.link import fleet_commands, messages
from fpagent.link.hook import NotificationHook
from fpagent.link.inbound import CommandHandler, Inbound
from fpagent.link.outbound import Outbound
from fpagent.link.status import LinkStats, StatusMessage

log = logging.getLogger("fpagent.link")

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week offline
CONNACK_TIMEOUT_S = 15.0
MAX_LOOP_ERRORS = 20  # consecutive loop failures before the link thread gives up
MAX_FAILING_S = 120.0  # storing keeps failing this long: not alive (the watchdog restarts us)
STABLE_S = 10.0  # connected this long without a failure: the link works again


class Link:
    """The appliance's side of the MQTT contract, over a Store (outbox, inbox, audit).

    `store=`: the process's one Store (thread-safe; the booking code enqueues
    through the same connection, so no SQLite lock contention), or
    `store_factory=`: called inside the link thread, closed when it stops.
    `central_verify_keys`: the pinned central Ed25519 public key(s);
    `device_signing_key` signs the status message. `status_extra()` may add
    sensor state / last capture (the service's view). `on_command`: what the
    owner does with a verified command (see fpagent.link.inbound.CommandHandler);
    without one, commands are stored and audited only.
    """

    def __init__(self, config, *, store_factory: Callable | None = None, store=None,
                 central_verify_keys,
                 device_signing_key=None, status_extra: Callable[[], dict] | None = None,
                 on_notification: Callable[[dict], None] | None = None,
                 on_ack: Callable[[str, dict], None] | None = None,
                 on_command: CommandHandler | None = None,
                 client_id: str | None = None):
        self.config = config
        self.mq = config.mqtt
        self.ori = config.device.ori
        self.device = config.device.device_id
        if (store is None) == (store_factory is None):
            raise ValueError("give the Link either store= (shared, e.g. the service's one "
                             "Store) or store_factory= (opened and closed by the link)")
        self.store_factory = store_factory or (lambda: store)
        self._owns_store = store is None
        # the broker replaces it by the certificate's CN (use_username_as_clientid)
        self.client_id = client_id or client_mod.certificate_cn(self.ori, self.device)
        self.stats = LinkStats()
        self.hook = NotificationHook(config.notifications.hook, config.notifications.hook_timeout_s)
        self.status = StatusMessage(config, signing_key=device_signing_key,
                                    status_extra=status_extra)
        self.outbound = Outbound(config, self.stats, self.topic("submission"))
        self.inbound = Inbound(config, self.stats, verify_keys=central_verify_keys,
                               outbound=self.outbound, on_ack=on_ack,
                               on_notification=on_notification, on_command=on_command,
                               hook=self.hook, on_result=self._publish_result)
        self.signing_key = device_signing_key
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._last_connect = None
        self._store = None
        self._client: mqtt.Client | None = None
        self._attempt = 0
        self._state = "down"  # down -> connecting -> up
        self._next_attempt = 0.0
        self._connect_started = 0.0
        self._ever_tried = False
        self._status_due = True
        self.error: BaseException | None = None
        self.max_failing_s = MAX_FAILING_S
        self._failing_since: float | None = None  # first of an unbroken run of failures
        self._up_since = 0.0

    @property
    def counters(self):
        return self.stats.counters

    @property
    def rejected(self):
        return self.stats.rejected

    def topic(self, leaf: str) -> str:
        return messages.topic(self.mq.root, self.ori, self.device, leaf)

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
        """The link thread runs and works (the service's watchdog stops when this is False).

        False after a crash of the thread, and when storing what arrives (or the
        loop) has kept failing for `max_failing_s`: reconnecting forever is not alive.
        """
        return (self._thread is not None and self._thread.is_alive() and self.error is None
                and self.failing_s() < self.max_failing_s)

    def failing_s(self) -> float:
        """How long the link has been failing without a break (0 when it works)."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    def _failing(self) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()

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
        self.outbound.pump_needed = True

    def health(self) -> dict:
        """For `fpagent status` and the service: connection, in-flight, counters."""
        return {
            "connected": self.connected,
            "broker": f"{self.mq.host}:{self.mq.port}",
            "tls": bool(self.mq.tls),
            "last_connect_at": self._last_connect,
            "inflight": len(self.outbound.inflight),
            "last_error": self.stats.last_error,
            "counters": dict(self.counters),
            "rejected": dict(self.rejected),
            "hook_failures": self.hook.failures,
            "failing_s": round(self.failing_s(), 1),
        }

    # ------------------------------------------------------------------ the thread

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported through health()/error
            self.error = exc
            self.stats.last_error = f"link thread died: {exc!r}"
            log.exception("link thread died")
            self._connected.clear()

    def _make_client(self) -> mqtt.Client:
        client = client_mod.make_client(
            self.client_id, tls=client_mod.tls_files(self.mq), manual_ack=True,
            max_inflight=max(1, self.mq.inflight) + 4,  # + status messages
            will=self._offline_will())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _offline_will(self) -> client_mod.Will:
        return client_mod.Will(self.topic("status"), self.status.payload("offline"))

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
                    self._failing()
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
        if rc == mqtt.MQTT_ERR_SUCCESS and self.inbound.incoming:
            rc = self._client.loop_read(max_packets=64)  # take what is buffered too
            if rc == mqtt.MQTT_ERR_AGAIN:
                rc = mqtt.MQTT_ERR_SUCCESS
        failed = self.inbound.drain(self._store, self._client)
        if failed:
            self._failing()
            self._lost(failed)
        elif self.inbound.committed or (self._state == "up"
                                        and time.monotonic() - self._up_since > STABLE_S):
            self._failing_since = None
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN) and self._state != "down":
            self._lost(f"network error: {mqtt.error_string(rc)}")
        if self._state == "up":
            now = time.monotonic()
            if now >= next_status or self._status_due:
                self._status_due = False  # right after every (re)connect: the will may have said offline
                self._publish_status("online")
                next_status = now + self.config.service.status_interval_s
            self.outbound.step(self._store, self._client, now)
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
                client_mod.connect(self._client, self.mq.host, self.mq.port,
                                   keepalive=self.mq.keepalive_s, clean_start=False,
                                   properties=props)
            else:
                # a fresh "offline" will (its issued_at) for this connection
                will = self._offline_will()
                self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
                client_mod.reconnect(self._client)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.stats.last_error = f"connect to {self.mq.host}:{self.mq.port} failed: {exc}"
            self.counters["connect_failures"] += 1
            log.info("%s", self.stats.last_error)
            self._close_socket()
            self._next_attempt = time.monotonic() + self._backoff()
            return
        self._state = "connecting"
        self._connect_started = time.monotonic()

    def _lost(self, why: str) -> None:
        """The connection is gone: forget in-flight state, plan a reconnect with backoff."""
        self.stats.last_error = why
        self._connected.clear()
        self._state = "down"
        self.outbound.forget()
        self.inbound.forget()  # not acknowledged: the broker delivers them again
        self._close_socket()
        self._next_attempt = time.monotonic() + self._backoff()

    # ------------------------------------------------------------------ callbacks (link thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.counters["connect_refused"] += 1
            self._lost(f"broker refused the connection: {reason_code}")
            log.warning("%s", self.stats.last_error)
            return
        self._state = "up"
        self._up_since = time.monotonic()
        self._attempt = 0
        self._last_connect = messages.now_rfc3339()
        self.counters["connects"] += 1
        client.subscribe([(self.topic(leaf), 1) for leaf in ("ack", "notification", "command")])
        self.outbound.connected(self._store)
        self._status_due = True
        self._connected.set()
        self._subscribed.clear()
        log.info("connected to %s:%s (session present: %s)", self.mq.host, self.mq.port,
                 flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self.stats.last_error = f"broker refused our subscriptions: {', '.join(refused)}"
            log.error("%s (check the broker ACL for this device's CN)", self.stats.last_error)
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self._state != "down":
            self.counters["disconnects"] += 1
            self._lost(f"disconnected: {reason_code}")

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.outbound.published(mid, reason_code)

    def _on_message(self, client, userdata, msg):
        self.inbound.take(msg)  # handled in batches after the read (one commit for all)

    def _publish_result(self, command: messages.Message, result: dict) -> None:
        """A command's signed result on our `result` topic (link thread, after the commit).

        The audit log keeps every result; this copy is for central (QoS 1, resent by
        the client after a reconnect while this process runs)."""
        if self.signing_key is None or self._client is None:
            log.warning("command %s: no device signing key, result not sent", command.id[:8])
            return
        fields = fleet_commands.result_fields(command.id, command.body.get("action", ""),
                                              result["outcome"], result["reason"],
                                              result.get("detail", ""))
        body = messages.message("result", fields, ori=self.ori, device=self.device)
        self._client.publish(self.topic("result"), messages.sign(body, self.signing_key), qos=1)
        self.counters["results_sent"] += 1

    def _publish_status(self, state: str) -> None:
        payload = self.status.payload(state, self._store)
        self._client.publish(self.topic("status"), payload, qos=1, retain=True)


def build_link(config, store=None, **kw) -> Link:
    """A Link from the configuration and the pinned keys.

    `store`: the process's Store to share (recommended: one per process); without
    it the link opens its own on the state dir's database. The other keywords
    (on_command, on_notification, status_extra...) go to the Link.
    """
    from fpagent.errors import ConfigError
    from fpagent.sealing import keys as keys_mod
    from fpagent.sealing.rotation import CentralKeyRing
    from fpagent.storage.store import Store

    if not config.mqtt.port:
        raise ConfigError("no broker configured: set [mqtt] host and port (port 0 only means "
                          "'start a local broker' to `fpagent demo`)")
    if config.mqtt.tls and not (config.mqtt.cert_file and config.mqtt.key_file):
        raise ConfigError("[mqtt] tls = true needs cert_file and key_file (this appliance's "
                          "client certificate, CN = its device id) and ca_file")
    env = config.envelope
    # current + next, and a rotation central commanded (overlap window): a callable, checked per message
    verify = kw.pop("central_verify_keys", None) or CentralKeyRing(config).keys
    signing = None
    path = config.key_path(env.device_signing_key, keys_mod.DEVICE_SIGNING_KEY)
    if os.path.exists(path):
        signing = keys_mod.load_signing_key(path, "device signing key")
    if store is not None:
        return Link(config, store=store, central_verify_keys=verify, device_signing_key=signing, **kw)
    return Link(config, store_factory=lambda: Store(config.paths.database(), config),
                central_verify_keys=verify, device_signing_key=signing, **kw)
