"""`fpagent run`: the appliance daemon, in the manner of mosquitto under systemd.

Start-up, in order, each step shown in STATUS= as it happens:
  1. the configuration (already loaded and validated by the caller), the
     key files it names (readable), state/cache/runtime directories (0700);
  2. the database: opened and integrity-checked (a damaged outbox stops
     the start with a clear message; it is never silently reset);
  3. the sensor: opened, or a degraded "sensor absent" state that the
     capture part keeps polling (unplug and replug work while running);
  4. the Numba kernels (extraction, matcher, prefilter): compiled or loaded from the
     cache under <cache_dir>/numba, with EXTEND_TIMEOUT_USEC sent while a
     first start compiles;
  5. the parts start (capture, outbox, link) and only then READY=1.

The main loop pings WATCHDOG=1 only while every part's heartbeat is fresh:
a wedged part (or a wedged main loop) stops the pings and systemd restarts
the service. SIGTERM stops new work, waits for a booking in progress to be
enqueued (the outbox is durable from then on), lets the link finish, and
exits 0.

Logs go to stderr, which systemd hands to the journal: one line per event,
`<priority>` prefix for journald, then the message and key=value fields.
Only states, counts and durations are logged: never images, templates,
keys or personal data.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pathlib
import signal
import socket
import sys
import threading
import time
from typing import Callable

from fpagent import hal
from fpagent.service import status as status_mod
from fpagent.config import Config
from fpagent.errors import ConfigError, UserError
from fpagent.service.sdnotify import Notifier, watchdog_interval

log = logging.getLogger("fpagent.service")

# The kernels compiled before READY=1, every one a booking uses (extraction with
# its quality kernels, the matcher's duplicate check, the prefilter's scan):
# "module:function", imported lazily so a missing module degrades to a warning
# rather than a crash. tests/test_warm_up.py checks that nothing is left over.
DEFAULT_WARMUPS = ("fpagent.biometrics.extraction:warm_up", "fpagent.biometrics.matcher:warm_up",
                   "fpagent.screening.prefilter:warm_up")


class StartupError(UserError):
    """The service cannot start; the message says what to do."""

    exit_code = 1


# -- logging ---------------------------------------------------------------

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """`<prio>message key=value ...` for journald's stream (SyslogLevelPrefix),
    or `time level message key=value` for a terminal."""

    def __init__(self, journal: bool):
        super().__init__()
        self.journal = journal

    @staticmethod
    def text(record: logging.LogRecord) -> str:
        """The message and its key=value fields, without time or level."""
        fields = getattr(record, "fields", None) or {}
        text = record.getMessage()
        if fields:
            text += " " + " ".join(f"{k}={_field(v)}" for k, v in fields.items())
        if record.exc_info and record.levelno >= logging.ERROR:
            text += " error=" + _field(repr(record.exc_info[1]))
        return text

    def format(self, record: logging.LogRecord) -> str:
        text = self.text(record)
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6)
            return f"<{prio}>{text}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname.lower():7s} {text}"


def _field(value) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    return text


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to the journal ($JOURNAL_STREAM)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return st.st_dev == dev and st.st_ino == ino


JOURNAL_SOCKET = "/run/systemd/journal/socket"


class JournalHandler(logging.Handler):
    """journald's native protocol: each event with its fields as journal fields.

    `journalctl -u fpagent FPAGENT_EVENT=sensor-absent` then finds every time
    the sensor went away. Values are states, counts and paths; never
    biometric data or secrets (the callers log nothing else).
    """

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "fpagent"):
        super().__init__()
        self.path = path
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "MESSAGE": JournalFormatter.text(record),
                "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "CODE_FILE": record.pathname, "CODE_LINE": str(record.lineno), "CODE_FUNC": record.funcName,
                "LOGGER": record.name,
                "FPAGENT_EVENT": "-".join(record.getMessage().lower().split()[:4]),
            }
            for key, value in (getattr(record, "fields", None) or {}).items():
                name = "FPAGENT_" + "".join(c if c.isalnum() else "_" for c in str(key)).upper()
                fields[name] = str(value)
            self.sock.sendto(_journal_datagram(fields), self.path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def _journal_datagram(fields: dict) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:8192]
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def setup_logging(level: str = "info", journal: bool | None = None,
                  journal_socket: str = JOURNAL_SOCKET) -> None:
    """Native journal fields under systemd, else `key=value` lines on stderr."""
    use_journal = stderr_is_journal() if journal is None else journal
    handler: logging.Handler
    if use_journal and os.path.exists(journal_socket):
        handler = JournalHandler(journal_socket)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter(use_journal))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def _log(level: int, message: str, **fields) -> None:
    log.log(level, message, extra={"fields": fields})


# -- preparation (pure-ish, testable) ---------------------------------------

def check_key_files(cfg: Config) -> list[str]:
    """Key and TLS files the configuration names explicitly must be readable.

    Raises ConfigError naming the key; returns warnings for default key
    paths that do not exist yet (an appliance not provisioned).
    """
    explicit = [
        ("envelope", "central_public_key"), ("envelope", "central_verify_key"),
        ("envelope", "device_signing_key"),
    ]
    if cfg.mqtt.tls:
        explicit += [("mqtt", "ca_file"), ("mqtt", "cert_file"), ("mqtt", "key_file")]
    warnings = []
    for section, key in explicit:
        value = getattr(getattr(cfg, section), key)
        if not value:
            continue  # TLS without ca_file uses the system's CAs; no client cert is allowed too
        if section == "mqtt" and not os.path.lexists(value):
            # e.g. after rotate-keys, until the new certificate is installed: the
            # service runs with the link down rather than not at all
            warnings.append(f"[mqtt] {key}: {value} is missing; the link stays down until it is "
                            "installed (scripts/provision --cert)")
            continue
        _readable(cfg, f"[{section}] {key}", pathlib.Path(value))
    defaults = {"device_signing_key": "device-sign.key", "central_public_key": "central-hpke.pub",
                "central_verify_key": "central-sign.pub"}
    for key, name in defaults.items():
        if not getattr(cfg.envelope, key):
            path = cfg.paths.keys() / name
            if not path.exists():
                warnings.append(f"{path} is missing (appliance not provisioned: run scripts/provision)")
            else:
                _readable(cfg, f"[envelope] {key} (default {path})", path)
    return warnings


def _readable(cfg: Config, name: str, path: pathlib.Path) -> None:
    if not path.exists():
        raise ConfigError(f"{cfg.source}: {name}: {path} does not exist; "
                          "run scripts/provision or correct the path")
    if path.is_dir():
        raise ConfigError(f"{cfg.source}: {name}: {path} is a directory, not a key file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise ConfigError(f"{cfg.source}: {name}: {path} is not readable by user "
                          f"{_user()}; fix its owner (chown) or mode") from None
    except OSError as exc:
        raise ConfigError(f"{cfg.source}: {name}: cannot read {path}: {exc.strerror}") from None


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def prepare_directories(cfg: Config) -> dict[str, pathlib.Path]:
    """State (0700), cache/numba and runtime directories; points Numba at its cache.

    $NUMBA_CACHE_DIR set by the unit (or a developer) wins; otherwise it is
    <cache_dir>/numba. Numba reads it at import, so this runs before any
    kernel module is imported (and reloads Numba's config if one already was).
    """
    state = pathlib.Path(cfg.paths.state_dir)
    cache = pathlib.Path(cfg.paths.cache_dir)
    runtime = status_mod.runtime_dir(cfg)
    made = {}
    for name, path, mode in (("state", state, 0o700), ("cache", cache, 0o700),
                             ("runtime", runtime, 0o700), ("numba", cache / "numba", 0o700)):
        try:
            path.mkdir(parents=True, exist_ok=True, mode=mode)
            if path.stat().st_uid == os.geteuid() and name == "state":
                path.chmod(mode)
        except PermissionError:
            raise StartupError(f"cannot create or use the {name} directory {path} as user {_user()}; "
                               "run scripts/install (it creates it with the right owner)") from None
        except OSError as exc:
            raise StartupError(f"cannot create the {name} directory {path}: {exc.strerror}") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise StartupError(f"the {name} directory {path} is not writable by user {_user()}; "
                               "fix its owner (scripts/install does)")
        made[name] = path
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    if "numba" in sys.modules:  # imported early by some other module: re-read the environment
        try:
            from numba.core import config as numba_config
            numba_config.reload_config()
        except Exception:  # pragma: no cover - best effort
            pass
    return made


def drop_to_state_owner(cfg: Config) -> bool:
    """Run as the owner of the state directory when started as root.

    Files the service creates (database, WAL, keys) must belong to the
    service user, or the unit cannot open them later. True if it dropped.
    """
    if os.geteuid() != 0:
        return False
    try:
        st = os.stat(cfg.paths.state_dir)
    except OSError:
        return False
    if st.st_uid == 0:
        return False
    import pwd
    try:
        entry = pwd.getpwuid(st.st_uid)
        os.initgroups(entry.pw_name, st.st_gid)
    except (KeyError, OSError):
        pass
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    return True


# -- parts -------------------------------------------------------------------

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
                    _log(logging.ERROR, f"{self.name} part failed", part=self.name, error=str(exc)[:200])
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

    def __init__(self, url: str, period: float = 2.0, opener: Callable = hal.open_sensor,
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
            _log(logging.INFO, "sensor present (in use)", reason=str(exc)[:160])
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
        _log(logging.INFO, "sensor present" + (" again" if was == "absent" else ""),
             model=info.model, port=info.port or "-", firmware=info.firmware or "-")
        if self.hold:
            self.sensor = sensor
        else:
            sensor.close()

    def _absent(self, detail: str, hint: str) -> None:
        if self.state != "absent" or detail != self.detail:
            _log(logging.WARNING, "sensor absent", url=_safe_url(self.url), reason=detail, hint=hint)
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
        _log(logging.WARNING, "sensor lost", reason=reason, url=_safe_url(self.url))

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
                    self._absent(str(exc).splitlines()[0][:160], getattr(exc, "hint", ""))
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

    def __init__(self, cfg: Config, store, period: float = 15.0):
        super().__init__(period)
        self.cfg = cfg
        self.store = store
        self.queue: dict = {"depth": None, "detail": "not read yet"}
        self.database: dict = {"ok": None, "detail": ""}
        self._lock = threading.Lock()

    def step(self) -> None:
        now = time.time()
        outbox = getattr(self.store, "outbox", None)
        if outbox is not None and hasattr(outbox, "purge_expired"):
            purged = outbox.purge_expired(now)
            if purged:
                _log(logging.INFO, "purged acknowledged bookings past retention", count=purged)
        inbox = getattr(self.store, "inbox", None)
        if inbox is not None and hasattr(inbox, "purge_expired"):
            # notifications officers acknowledged more than retention_days ago
            if inbox.purge_expired(now):
                _log(logging.INFO, "purged acknowledged notifications past retention")
        seen = getattr(self.store, "seen", None)
        if seen is not None and hasattr(seen, "expire"):
            seen.expire(now)
        queue, database = status_mod._queue_facts(self.cfg, self.store, now)
        with self._lock:
            self.queue, self.database = queue, database

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.queue), dict(self.database)


class LinkPart(Part):
    """Runs the MQTT link (fpagent.link.connection, H7) and reports whether it is alive and connected.

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
            try:
                module = importlib.import_module("fpagent.link.connection")
            except ImportError as exc:
                self.state, self.detail = "unavailable", f"link module missing ({exc})"
                _log(logging.WARNING, "link unavailable", reason=self.detail)
                return
            factory = lambda cfg, store: module.build_link(cfg, store, status_extra=status_extra)  # noqa: E731
        try:
            self.link = factory(self.cfg, self.store)
            starter = getattr(self.link, "start", None)
            if callable(starter):
                starter()
            self.state = "connecting"
        except UserError as exc:
            self.link = None
            self.state, self.detail = "unavailable", str(exc)[:200]
            _log(logging.WARNING, "link not started", reason=self.detail)
        except Exception as exc:
            self.link = None
            self.state, self.detail = "unavailable", f"{type(exc).__name__}: {str(exc)[:160]}"
            _log(logging.ERROR, "link failed to start", reason=self.detail)

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
                    _log(logging.WARNING, "link did not stop cleanly", error=str(exc)[:200])
                return


# -- the service -------------------------------------------------------------

class Service:
    """The daemon: start-up checks, parts, watchdog and status, graceful stop."""

    def __init__(self, cfg: Config, *, notifier: Notifier | None = None,
                 warmups: tuple | list | None = None, parts: list[Part] | None = None,
                 store=None, part_timeout_s: float | None = None, tick_s: float | None = None):
        self.cfg = cfg
        self.notifier = notifier or Notifier.from_environment(unset=True)
        self.warmups = DEFAULT_WARMUPS if warmups is None else warmups
        self._custom_parts = parts
        self.store = store
        self.parts: list[Part] = []
        self.capture: CapturePart | None = None
        self.outbox: OutboxPart | None = None
        self.link: LinkPart | None = None
        self.beats = Heartbeats()
        self.stop_event = threading.Event()
        self.state = "starting"
        self.started_at = time.time()
        self.watchdog_s = watchdog_interval() if cfg.service.watchdog else None
        self.part_timeout_s = part_timeout_s or float(getattr(cfg.service, "part_timeout_s", 60.0))
        self.tick_s = tick_s or min(self.watchdog_s or 1.0, 1.0)
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        self._last_status = ""
        self._last_status_sent = 0.0
        self._last_wedged: tuple = ()
        self.ready_at: float | None = None

    # -- start-up --
    def start(self) -> None:
        self._say("checking configuration")
        for warning in check_key_files(self.cfg):
            _log(logging.WARNING, "provisioning incomplete", detail=warning)
        prepare_directories(self.cfg)
        self._take_lock()
        self._write_live()

        self._say("checking database")
        self._open_store()

        self._say("opening sensor")
        if self._custom_parts is None:
            self.capture = CapturePart(self.cfg.sensor.url, float(getattr(self.cfg.service, "sensor_poll_s", 2.0)))
            self.capture.beats = self.beats
            self.capture.step()

        self._warm_up()
        if self.stop_event.is_set():
            return  # SIGTERM while preparing: nothing started yet, just stop

        self._say("starting parts")
        if self._custom_parts is None:
            self.outbox = OutboxPart(self.cfg, self.store)
            self.outbox.step()
            self.link = LinkPart(self.cfg, self.store)
            self.link.open(status_extra=self._link_status_extra)
            self.parts = [self.capture, self.outbox, self.link]
        else:
            self.parts = list(self._custom_parts)
            for part in self.parts:
                if isinstance(part, CapturePart):
                    self.capture = part
                elif isinstance(part, OutboxPart):
                    self.outbox = part
                elif isinstance(part, LinkPart):
                    self.link = part
        for part in self.parts:  # one round each first, so READY's status is already true
            if part not in (self.capture, self.outbox) or self._custom_parts is not None:
                try:
                    part.step()
                except Exception as exc:
                    _log(logging.ERROR, f"{part.name} part failed", part=part.name, error=str(exc)[:200])
        for part in self.parts:
            part.start(self.beats)
        self.state = "running"
        facts = self.facts()
        line = status_mod.summary(facts)
        self.ready_at = time.monotonic()
        self.notifier.ready(line)
        self._last_status, self._last_status_sent = line, time.monotonic()
        self._write_live(facts)
        _log(logging.INFO, "ready", device=self.cfg.device.device_id,
             watchdog_s=self.watchdog_s or "off", status=line)

    def _take_lock(self) -> None:
        """One service per state directory: a second `fpagent run` would send twice."""
        import fcntl

        path = status_mod.runtime_dir(self.cfg) / "service.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StartupError(f"another fpagent service (pid {other}) already runs on "
                               f"{self.cfg.paths.state_dir}; stop it first (systemctl stop fpagent)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _say(self, what: str) -> None:
        self.step = what
        _log(logging.INFO, what)
        self.notifier.status(what)

    def _open_store(self) -> None:
        if self.store is not None:
            return
        db = self.cfg.paths.database()
        try:
            from fpagent.storage.store import Store
        except ImportError:
            Store = None
        try:
            if Store is None:
                _log(logging.WARNING, "outbox module missing; running without a store")
                self.store = None
                return
            # Store() runs SQLite's quick_check and migrates; a damaged file is moved
            # aside by the store (never deleted) and reported in the status.
            self.store = Store(db, self.cfg)
            moved = getattr(self.store, "recovered_from", None)
            if moved:
                _log(logging.ERROR, "database was damaged; moved aside, new queue started",
                     moved_to=moved, hint="keep that file and contact support")
        except UserError:
            raise
        except Exception as exc:
            raise StartupError(f"database {db} cannot be opened: {str(exc)[:200]}. "
                               "Nothing was deleted; keep the file and run scripts/diag-bundle "
                               "for the support team") from None
        _log(logging.INFO, "database ok", path=db)

    def _warm_up(self) -> None:
        """Compile or load the Numba kernels; keep systemd's start timeout extended meanwhile."""
        if not self.warmups:
            return
        self._say("preparing fingerprint kernels (the first start compiles them; a few minutes)")
        done = threading.Event()
        extend_s = 60.0

        def keep_extending():
            while not done.wait(0 if not keep_extending.sent else extend_s / 3):
                keep_extending.sent = True
                self.notifier.extend_timeout(extend_s)
                self._write_live()  # `fpagent status` sees "starting", not a stale service
        keep_extending.sent = False
        keeper = threading.Thread(target=keep_extending, name="fpagent-extend", daemon=True)
        keeper.start()
        try:
            for target in self.warmups:
                started = time.monotonic()
                if callable(target):
                    fn, name = target, getattr(target, "__name__", "warm_up")
                else:
                    module_name, _, attr = target.partition(":")
                    name = module_name.rsplit(".", 1)[-1]
                    try:
                        fn = getattr(importlib.import_module(module_name), attr)
                    except (ImportError, AttributeError) as exc:
                        _log(logging.WARNING, "kernels not available; skipped", module=module_name,
                             reason=str(exc)[:160])
                        continue
                fn()
                _log(logging.INFO, "kernels ready", module=name,
                     seconds=round(time.monotonic() - started, 2))
        finally:
            done.set()
            keeper.join(2)

    # -- the main loop --
    def run(self) -> int:
        """Start, loop until SIGTERM/SIGINT, stop. Returns the exit code."""
        self._install_signals()
        try:
            self.start()
            while not self.stop_event.is_set():
                self.tick()
                self.stop_event.wait(self.tick_s)
        finally:
            self.shutdown()
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            _log(logging.INFO, "stop requested", signal=signal.Signals(signum).name)
            self.stop_event.set()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def wedged_parts(self) -> list[str]:
        return [p.name for p in self.parts if self.beats.age(p.name) > self.part_timeout_s]

    def tick(self) -> None:
        """One round of the main loop: watchdog ping if all parts are alive, status."""
        wedged = tuple(self.wedged_parts())
        if wedged != self._last_wedged:
            if wedged:
                _log(logging.ERROR, "part not responding; watchdog pings stopped",
                     parts=",".join(wedged), timeout_s=self.part_timeout_s)
            else:
                _log(logging.INFO, "all parts responding again")
            self._last_wedged = wedged
        if not wedged and self.watchdog_s is not None:
            self.notifier.watchdog()
        facts = self.facts()
        line = status_mod.summary(facts)
        now = time.monotonic()
        if line != self._last_status or now - self._last_status_sent >= self.cfg.service.status_interval_s:
            if line.split("; disk")[0] != self._last_status.split("; disk")[0]:
                _log(logging.INFO, "status changed", status=line)
            self.notifier.status(line)
            self._last_status, self._last_status_sent = line, now
        self._write_live(facts, line)

    # -- facts --
    def _link_status_extra(self) -> dict:
        """What the link's retained status message says about the sensor."""
        if self.capture is None:
            return {"sensor": {"state": "unknown"}}
        return {"sensor": {"state": self.capture.state, "model": self.capture.model}}

    def live(self) -> dict:
        parts = {p.name: {"alive": self.beats.age(p.name) <= self.part_timeout_s,
                          "age_s": round(min(self.beats.age(p.name), 1e9), 1)} for p in self.parts}
        return {
            "service": {"state": self.state, "pid": os.getpid(), "started_at": self.started_at,
                        "detail": getattr(self, "step", "") if self.state == "starting" else "",
                        "updated_at": time.time(), "parts": parts,
                        "stale_after_s": max(3 * self.tick_s, 10.0) + 2 * self.part_timeout_s,
                        "watchdog_s": self.watchdog_s},
            "sensor": self.capture.facts() if self.capture else {"state": "unknown", "detail": "no capture part"},
            "link": self.link.facts() if self.link else {"state": "unknown", "detail": "no link part"},
        }

    def facts(self) -> status_mod.Facts:
        live = self.live()
        facts = status_mod.gather(self.cfg, live=live, store=_NoStore())
        if self.outbox is not None:
            facts.queue, facts.database = self.outbox.snapshot()
        elif self.store is None:
            facts.queue = {"depth": None, "detail": "no outbox", "full": False}
        return facts

    def _write_live(self, facts: status_mod.Facts | None = None, line: str | None = None) -> None:
        """Publish the live facts for `fpagent status` (on change, else every few seconds)."""
        now = time.monotonic()
        if line is not None and line == getattr(self, "_written_line", None) \
                and now - getattr(self, "_written_at", 0.0) < 5.0 \
                and tuple(self.wedged_parts()) == getattr(self, "_written_wedged", ()):
            return
        self._written_line, self._written_at = line, now
        self._written_wedged = tuple(self.wedged_parts())
        live = self.live()
        if facts is not None:
            live["queue"], live["database"] = facts.queue, facts.database
        path = status_mod.status_file(self.cfg)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(live, default=str))
            os.replace(tmp, path)
        except OSError as exc:
            _log(logging.DEBUG, "cannot write status file", path=path, error=exc.strerror)

    # -- bookings and stop --
    @contextlib.contextmanager
    def booking(self):
        """Guard one booking: SIGTERM waits until it is enqueued (durable) or fails."""
        with self._inflight_cond:
            if self.stop_event.is_set() or self.state != "running":
                raise UserError("the service is stopping; start the booking again after it restarts")
            self._inflight += 1
        try:
            yield
        finally:
            with self._inflight_cond:
                self._inflight -= 1
                self._inflight_cond.notify_all()

    def shutdown(self) -> None:
        if self.state == "stopped":
            return
        self.state = "stopping"
        self.stop_event.set()
        self.notifier.stopping("stopping: finishing the booking in progress" if self._inflight
                               else "stopping")
        grace = float(getattr(self.cfg.service, "stop_grace_s", 60.0))
        deadline = time.monotonic() + grace
        with self._inflight_cond:
            while self._inflight and time.monotonic() < deadline:
                self.notifier.extend_timeout(10)
                self._inflight_cond.wait(min(5.0, max(0.0, deadline - time.monotonic())))
            if self._inflight:
                _log(logging.ERROR, "booking still in progress at stop; not enqueued", count=self._inflight)
        for part in reversed(self.parts):
            part.stop()
        for part in reversed(self.parts):
            try:
                part.close()
            except Exception as exc:
                _log(logging.WARNING, "part did not close cleanly", part=part.name, error=str(exc)[:200])
        if self.capture is not None and self.capture not in self.parts:
            self.capture.close()
        if self.store is not None and hasattr(self.store, "close"):
            try:
                self.store.close()
            except Exception as exc:
                _log(logging.WARNING, "store did not close cleanly", error=str(exc)[:200])
        self.state = "stopped"
        self._write_live()
        _log(logging.INFO, "stopped")
        self.notifier.close()
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)


class _NoStore:
    """Tells gather() not to open the database: the outbox part already read it."""

    outbox = None


def main(cfg: Config) -> int:
    """Entry point for `fpagent run` after the configuration loaded."""
    setup_logging(cfg.service.log_level)
    service = Service(cfg)
    try:
        return service.run()
    except UserError as exc:
        _log(logging.ERROR, "cannot start", reason=str(exc))
        service.notifier.status(f"failed: {exc}")
        raise
