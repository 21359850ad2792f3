"""The service's parts: each a loop in its own thread that beats while it works.

The capture part watches the sensor (unplugged, replugged), the outbox part
purges what retention says and reads the queue facts, the link part runs
the MQTT link. The main loop pings systemd's watchdog only while every
part's heartbeat is fresh, so one wedged part gets the service restarted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Callable

from fpagent import hal
from fpagent.config import Config
from fpagent.errors import UserError
from fpagent.service import status as status_mod
from fpagent.service.journal import log_event
from fpagent.storage.store import Store


class Heartbeats:
    """Each part beats from its own loop; the main loop reads the ages."""

    def __init__(self):
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, name: str) -> None:
        with self._lock:
            self._last[name] = time.monotonic()

    def age(self, name: str) -> float:
        with self._lock:
            last = self._last.get(name)
        return float("inf") if last is None else time.monotonic() - last


class Part:
    """A loop in its own thread that calls `step()` every `period` seconds and beats."""

    name = "part"

    def __init__(self, period: float):
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats: Heartbeats | None = None
        self.error: str = ""

    def start(self, beats: Heartbeats) -> None:
        self.beats = beats
        beats.beat(self.name)
        self._thread = threading.Thread(target=self._loop, name=f"fpagent-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                self.error = ""
            except Exception as exc:  # a failing step is logged; the heartbeat says if it is stuck
                if str(exc) != self.error:
                    log_event(logging.ERROR, f"{self.name} part failed", part=self.name, error=str(exc)[:200])
                self.error = str(exc)
            self.beats.beat(self.name)
            self._stop.wait(self.period)

    def step(self) -> None:
        """One round of work; must not block for longer than the part timeout."""

    def facts(self) -> dict:
        return {}

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        pass


class CapturePart(Part):
    """Watches the sensor: notices an unplugged sensor and a replugged one.

    By default it does NOT keep the serial port open: `fpagent book` (another
    process) opens the sensor for a booking, and the ports are opened
    exclusively. It watches the device node (/dev/fpsensor comes and goes
    with the USB cable through the udev rule) and opens the sensor briefly
    only when it appears, to learn what it is; a sensor busy with a booking
    counts as present. With hold=True it keeps the sensor open for bookings
    run inside the service (`session()`).
    """

    name = "capture"

    def __init__(self, url: str, period: float, opener: Callable = hal.open_sensor,
                 hold: bool = False):
        super().__init__(period)
        self.url = url
        self.opener = opener
        self.hold = hold
        self.sensor = None
        self.lock = threading.RLock()  # held by a booking while it captures
        self.state = "unknown"
        self.detail = ""
        self.model = ""
        self.port = ""

    def _device_path(self) -> str:
        try:
            parsed = hal.parse_sensor_url(self.url)
        except Exception:
            return ""
        return parsed.path if parsed.path.startswith("/") else ""

    def step(self) -> None:
        # a booking holding the lock is itself proof the sensor is in use: skip the check
        if not self.lock.acquire(timeout=0.05):
            return
        try:
            path = self._device_path()
            if path and not os.path.exists(path):
                if self.sensor is not None:
                    self._lost("sensor unplugged")
                elif self.state != "absent" or not self.detail.startswith("no device"):
                    self._absent(f"no device at {path}", "check the cable; the service finds it again by itself")
                return
            if self.sensor is not None:
                if not self._still_there():
                    self._lost("sensor not answering")
            elif self.state != "present":
                self._probe()
        finally:
            self.lock.release()

    def _probe(self) -> None:
        """Open the sensor to learn what it is; keep it open only with hold=True."""
        try:
            sensor = self.opener(self.url)
        except hal.SensorBusy as exc:  # a booking in another process has it: it is there
            self.state, self.detail = "present", "in use by a booking"
            log_event(logging.INFO, "sensor present (in use)", reason=str(exc)[:160])
            return
        except (hal.SensorError, OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            self._absent(detail, getattr(exc, "hint", "") or "check the cable and the [sensor] url")
            return
        try:
            info = sensor.info()
        except (hal.SensorError, OSError) as exc:
            sensor.close()
            self._absent(f"sensor does not answer: {str(exc)[:120]}", getattr(exc, "hint", ""))
            return
        self.model, self.port = info.model, info.port
        was = self.state
        self.state, self.detail = "present", ""
        log_event(logging.INFO, "sensor present" + (" again" if was == "absent" else ""),
                  model=info.model, port=info.port or "-", firmware=info.firmware or "-")
        if self.hold:
            self.sensor = sensor
        else:
            sensor.close()

    def _absent(self, detail: str, hint: str) -> None:
        if self.state != "absent" or detail != self.detail:
            log_event(logging.WARNING, "sensor absent", url=_safe_url(self.url), reason=detail, hint=hint)
        self.state, self.detail = "absent", detail

    def _still_there(self) -> bool:
        check = getattr(self.sensor, "ping", None) or getattr(self.sensor, "check_present", None)
        if callable(check):
            try:
                return check() is not False
            except (hal.SensorError, OSError):
                return False
        return True

    def _lost(self, reason: str) -> None:
        if self.sensor is not None:
            try:
                self.sensor.close()
            except Exception:
                pass
        self.sensor = None
        self.state, self.detail = "absent", reason
        log_event(logging.WARNING, "sensor lost", reason=reason, url=_safe_url(self.url))

    @contextlib.contextmanager
    def session(self, timeout: float = 30.0):
        """The open sensor, exclusively, for one booking run inside the service."""
        if not self.lock.acquire(timeout=timeout):
            raise UserError("the sensor is busy with another booking; try again")
        opened_here = None
        try:
            sensor = self.sensor
            if sensor is None:
                try:
                    sensor = opened_here = self.opener(self.url)
                except hal.SensorError as exc:
                    self._absent(str(exc).splitlines()[0][:160], exc.hint)
                    raise
                self.state, self.detail = "present", ""
            yield sensor
        finally:
            if opened_here is not None:
                try:
                    opened_here.close()
                except Exception:
                    pass
            self.lock.release()

    def facts(self) -> dict:
        return {"state": self.state, "model": self.model, "port": self.port, "detail": self.detail,
                "url": _safe_url(self.url)}

    def close(self) -> None:
        with self.lock:
            if self.sensor is not None:
                try:
                    self.sensor.close()
                finally:
                    self.sensor = None


def _safe_url(url: str) -> str:
    """A sensor URL without its password parameter."""
    if "password=" not in url:
        return url
    head, _, query = url.partition("?")
    kept = [p if not p.lower().startswith("password=") else "password=***" for p in query.split("&")]
    return head + "?" + "&".join(kept)


class OutboxPart(Part):
    """Purges acknowledged bookings and notifications past retention, expires replay ids,
    and refreshes the queue facts."""

    name = "outbox"

    def __init__(self, cfg: Config, store: Store, period: float = 15.0):
        super().__init__(period)
        self.cfg = cfg
        self.store = store
        self.queue: dict = {"depth": None, "detail": "not read yet"}
        self.database: dict = {"ok": None, "detail": ""}
        self._lock = threading.Lock()

    def step(self) -> None:
        now = time.time()
        purged = self.store.outbox.purge_expired(now)
        if purged:
            log_event(logging.INFO, "purged acknowledged bookings past retention", count=purged)
        # notifications officers acknowledged more than retention_days ago
        if self.store.inbox.purge_expired(now):
            log_event(logging.INFO, "purged acknowledged notifications past retention")
        self.store.seen.expire(now)
        queue, database = status_mod.queue_facts(self.cfg, self.store, now)
        with self._lock:
            self.queue, self.database = queue, database

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.queue), dict(self.database)


class LinkPart(Part):
    """Runs the MQTT link (fpagent.link.connection) and reports whether it is alive and connected.

    The link's own loop runs in its threads; this part beats only while the
    link says it is alive, so a dead link loop stops the watchdog.
    """

    name = "link"

    def __init__(self, cfg: Config, store, period: float = 2.0, factory: Callable | None = None):
        super().__init__(period)
        self.cfg = cfg
        self.store = store
        self.factory = factory
        self.link = None
        self.state = "unknown"
        self.detail = ""

    def open(self, status_extra: Callable[[], dict] | None = None) -> None:
        factory = self.factory
        if factory is None:
            from fpagent.link.connection import build_link
            from fpagent.sealing.rotation import CentralKeyRing
            from fpagent.service.fleet import FleetCommands

            def factory(cfg, store):  # central's commands are applied by the service, not the link
                ring = CentralKeyRing(cfg)
                return build_link(cfg, store, status_extra=status_extra,
                                  central_verify_keys=ring.keys,
                                  on_command=FleetCommands(cfg, key_ring=ring))
        try:
            self.link = factory(self.cfg, self.store)
            starter = getattr(self.link, "start", None)
            if callable(starter):
                starter()
            self.state = "connecting"
        except UserError as exc:
            self.link = None
            self.state, self.detail = "unavailable", str(exc)[:200]
            log_event(logging.WARNING, "link not started", reason=self.detail)
        except Exception as exc:
            self.link = None
            self.state, self.detail = "unavailable", f"{type(exc).__name__}: {str(exc)[:160]}"
            log_event(logging.ERROR, "link failed to start", reason=self.detail)

    def _loop(self) -> None:
        # beat only while the link is alive (or there is no link to watch)
        while not self._stop.is_set():
            alive = True
            try:
                alive = self.step_alive()
            except Exception as exc:
                self.detail = str(exc)[:200]
            if alive:
                self.beats.beat(self.name)
            self._stop.wait(self.period)

    def step(self) -> None:
        self.step_alive()

    def step_alive(self) -> bool:
        """Read the link's state; False when its thread died (the watchdog then stops)."""
        link = self.link
        if link is None:
            return True
        alive_fn = getattr(link, "is_alive", None)
        if callable(alive_fn):
            alive = bool(alive_fn())
        else:
            thread = getattr(link, "_thread", None)
            alive = getattr(link, "error", None) is None and (thread is None or thread.is_alive())
        connected = getattr(link, "connected", None)
        if callable(connected):
            connected = connected()
        health = link.health() if callable(getattr(link, "health", None)) else {}
        if connected:
            self.state = "connected"
        elif connected is not None:
            never_tried = health.get("last_connect_at") is None and not health.get("last_error")
            self.state = "connecting" if never_tried else "disconnected"
        if not alive:
            self.state = "dead"
        self.detail = "" if connected else str(health.get("last_error") or "")[:200]
        return alive

    def facts(self) -> dict:
        return {"state": self.state, "detail": self.detail,
                "broker": f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"}

    def close(self) -> None:
        link, self.link = self.link, None
        if link is None:
            return
        for name in ("stop", "close"):
            fn = getattr(link, name, None)
            if callable(fn):
                try:
                    fn()
                except Exception as exc:
                    log_event(logging.WARNING, "link did not stop cleanly", error=str(exc)[:200])
                return
