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

The pre-start checks are in `preflight`, the parts in `parts`, the log
lines for journald in `journal`: only states, counts and durations are
logged, never images, templates, keys or personal data.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import threading
import time

from fpagent.config import Config
from fpagent.errors import StartupError, UserError
from fpagent.service import clock as clock_mod
from fpagent.service import status as status_mod
from fpagent.service.journal import log_event, setup_logging
from fpagent.service.parts import CapturePart, Heartbeats, LinkPart, OutboxPart, Part
from fpagent.service.preflight import check_key_files, prepare_directories
from fpagent.service.reminders import Reminders
from fpagent.service.sdnotify import Notifier, watchdog_interval
from fpagent.storage.store import Store

# The kernels compiled before READY=1, every one a booking uses (extraction with
# its quality kernels, the matcher's duplicate check, the prefilter's scan):
# "module:function", imported only then, after prepare_directories() has pointed
# Numba at its cache. tests/test_warm_up.py checks that nothing is left over.
DEFAULT_WARMUPS = ("fpagent.biometrics.extraction:warm_up", "fpagent.biometrics.matcher:warm_up",
                   "fpagent.screening.prefilter:warm_up")


class Service:
    """The daemon: start-up checks, parts, watchdog and status, graceful stop."""

    def __init__(self, cfg: Config, *, notifier: Notifier | None = None,
                 warmups: tuple | list | None = None, parts: list[Part] | None = None,
                 store: Store | None = None, part_timeout_s: float | None = None,
                 tick_s: float | None = None):
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
        self.part_timeout_s = part_timeout_s or cfg.service.part_timeout_s
        self.tick_s = tick_s or min(self.watchdog_s or 1.0, 1.0)
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        self._last_status = ""
        self._last_status_sent = 0.0
        self._last_wedged: tuple = ()
        self.ready_at: float | None = None
        self.starting_step = ""  # what start() is doing, for STATUS= and `fpagent status`
        self._written: tuple = (None, 0.0, ())  # last status file: line, when, wedged parts
        self._lock_fd: int | None = None
        self._warmup_error: BaseException | None = None
        self.kernels_abandoned = False  # stopped while a kernel compiled (see main)
        self.reminders: Reminders | None = None  # unacknowledged alerts announced again

    # -- start-up --
    def start(self) -> None:
        self._say("checking configuration")
        for warning in check_key_files(self.cfg):
            log_event(logging.WARNING, "provisioning incomplete", detail=warning)
        prepare_directories(self.cfg)
        self._take_lock()
        self._write_live()

        self._say("checking database")
        self._open_store()

        self._say("opening sensor")
        if self._custom_parts is None:
            self.capture = CapturePart(self.cfg.sensor.url, self.cfg.service.sensor_poll_s)
            self.capture.beats = self.beats
            self.capture.step()

        self._warm_up()
        if self.stop_event.is_set():
            return  # SIGTERM while preparing: nothing started yet, just stop

        self._say("starting parts")
        self.reminders = Reminders(self.cfg, self.store)
        if self._custom_parts is None:
            self.outbox = OutboxPart(self.cfg, self.store)
            self.outbox.step()
            self.link = LinkPart(self.cfg, self.store)
            self.link.open(status_extra=self._link_status_extra)
            self.parts = [self.capture, self.outbox, self.link]
            if self.cfg.jms.spool_dir:  # booking records from the jail's system
                from fpagent.service.jms_intake import SpoolPart
                self.parts.append(SpoolPart(self.cfg))
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
                    log_event(logging.ERROR, f"{part.name} part failed", part=part.name, error=str(exc)[:200])
        for part in self.parts:
            part.start(self.beats)
        self.state = "running"
        facts = self.facts()
        line = status_mod.summary(facts)
        self.ready_at = time.monotonic()
        self.notifier.ready(line)
        self._last_status, self._last_status_sent = line, time.monotonic()
        self._write_live(facts)
        log_event(logging.INFO, "ready", device=self.cfg.device.device_id,
                  watchdog_s=self.watchdog_s or "off", status=line)

    def _take_lock(self) -> None:
        """One service per state directory: a second `fpagent run` would send twice."""
        import fcntl

        path = self.cfg.paths.runtime() / "service.lock"
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
        self.starting_step = what
        log_event(logging.INFO, what)
        self.notifier.status(what)

    def _open_store(self) -> None:
        if self.store is not None:
            return
        db = self.cfg.paths.database()
        try:
            # Store() runs SQLite's quick_check and migrates; a damaged file is moved
            # aside by the store (never deleted) and reported in the status.
            self.store = Store(db, self.cfg)
            if self.store.recovered_from:
                log_event(logging.ERROR, "database was damaged; moved aside, new queue started",
                          moved_to=self.store.recovered_from, hint="keep that file and contact support")
        except UserError:
            raise
        except Exception as exc:
            raise StartupError(f"database {db} cannot be opened: {str(exc)[:200]}. "
                               "Nothing was deleted; keep the file and run scripts/diag-bundle "
                               "for the support team") from None
        log_event(logging.INFO, "database ok", path=db)

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
        compiler = threading.Thread(target=self._compile_kernels, name="fpagent-kernels",
                                    daemon=True)
        compiler.start()
        try:
            # the main thread only waits, so SIGTERM is handled at once even while
            # LLVM compiles (a compile cannot be interrupted; `main` exits without it)
            while compiler.is_alive() and not self.stop_event.is_set():
                compiler.join(0.2)
        finally:
            done.set()
            keeper.join(2)
        if self.stop_event.is_set() and compiler.is_alive():
            self.kernels_abandoned = True
            log_event(logging.INFO, "stop requested while compiling kernels; not waiting for them")
        elif self._warmup_error is not None:
            raise self._warmup_error

    def _compile_kernels(self) -> None:
        """The warm-ups, in the kernel thread; stops between kernels once a stop is asked."""
        try:
            for target in self.warmups:
                if self.stop_event.is_set():
                    return
                started = time.monotonic()
                if callable(target):
                    fn, name = target, getattr(target, "__name__", "warm_up")
                else:
                    module_name, _, attr = target.partition(":")
                    name = module_name.rsplit(".", 1)[-1]
                    fn = getattr(importlib.import_module(module_name), attr)
                fn()
                log_event(logging.INFO, "kernels ready", module=name,
                          seconds=round(time.monotonic() - started, 2))
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            self._warmup_error = exc

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
            log_event(logging.INFO, "stop requested", signal=signal.Signals(signum).name)
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
                log_event(logging.ERROR, "part not responding; watchdog pings stopped",
                          parts=",".join(wedged), timeout_s=self.part_timeout_s)
            else:
                log_event(logging.INFO, "all parts responding again")
            self._last_wedged = wedged
        if not wedged and self.watchdog_s is not None:
            self.notifier.watchdog()
        self._remind()
        facts = self.facts()
        line = status_mod.summary(facts)
        now = time.monotonic()
        if line != self._last_status or now - self._last_status_sent >= self.cfg.service.status_interval_s:
            if line.split("; disk")[0] != self._last_status.split("; disk")[0]:
                log_event(logging.INFO, "status changed", status=line)
            self.notifier.status(line)
            self._last_status, self._last_status_sent = line, now
        self._write_live(facts, line)

    def _remind(self) -> None:
        """Announce again what an officer has not acknowledged (never stops the loop)."""
        if self.reminders is None or self.store is None:
            return
        try:
            self.reminders.step()
        except Exception as exc:  # noqa: BLE001 - a reminder problem must not stop the service
            log_event(logging.WARNING, "reminders failed", error=str(exc)[:200])

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
                        "detail": self.starting_step if self.state == "starting" else "",
                        "updated_at": time.time(), "parts": parts,
                        "stale_after_s": max(3 * self.tick_s, 10.0) + 2 * self.part_timeout_s,
                        "watchdog_s": self.watchdog_s},
            "sensor": self.capture.facts() if self.capture else {"state": "unknown", "detail": "no capture part"},
            "link": self.link.facts() if self.link else {"state": "unknown", "detail": "no link part"},
        }

    def facts(self) -> status_mod.Facts:
        # the outbox part reads the queue in its own thread; without one, read it here
        queue = (self.outbox.snapshot() if self.outbox is not None
                 else status_mod.queue_facts(self.cfg, self.store, time.time()))
        return status_mod.gather(self.cfg, live=self.live(), queue=queue)

    def _write_live(self, facts: status_mod.Facts | None = None, line: str | None = None) -> None:
        """Publish the live facts for `fpagent status` (on change, else every few seconds)."""
        now = time.monotonic()
        wedged = tuple(self.wedged_parts())
        last_line, last_at, last_wedged = self._written
        if line is not None and line == last_line and now - last_at < 5.0 and wedged == last_wedged:
            return
        self._written = (line, now, wedged)
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
            log_event(logging.DEBUG, "cannot write status file", path=path, error=exc.strerror)

    # -- bookings and stop --
    @contextlib.contextmanager
    def booking(self):
        """Guard one booking: only with a known-good clock; SIGTERM waits until it is enqueued."""
        with self._inflight_cond:
            if self.stop_event.is_set() or self.state != "running":
                raise UserError("the service is stopping; start the booking again after it restarts")
            clock = clock_mod.check(self.cfg)
            if not clock.synchronised:
                raise UserError(f"no booking yet: the clock is {clock.detail}")
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
        deadline = time.monotonic() + self.cfg.service.stop_grace_s
        with self._inflight_cond:
            while self._inflight and time.monotonic() < deadline:
                self.notifier.extend_timeout(10)
                self._inflight_cond.wait(min(5.0, max(0.0, deadline - time.monotonic())))
            if self._inflight:
                log_event(logging.ERROR, "booking still in progress at stop; not enqueued", count=self._inflight)
        for part in reversed(self.parts):
            part.stop()
        for part in reversed(self.parts):
            try:
                part.close()
            except Exception as exc:
                log_event(logging.WARNING, "part did not close cleanly", part=part.name, error=str(exc)[:200])
        if self.capture is not None and self.capture not in self.parts:
            self.capture.close()
        if self.reminders is not None:
            self.reminders.stop()
        if self.store is not None:
            try:
                self.store.close()
            except Exception as exc:
                log_event(logging.WARNING, "store did not close cleanly", error=str(exc)[:200])
        self.state = "stopped"
        self._write_live()
        log_event(logging.INFO, "stopped")
        self.notifier.close()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


def main(cfg: Config) -> int:
    """Entry point for `fpagent run` after the configuration loaded."""
    setup_logging(cfg.service.log_level)
    service = Service(cfg)
    try:
        code = service.run()
    except UserError as exc:
        log_event(logging.ERROR, "cannot start", reason=str(exc))
        service.notifier.status(f"failed: {exc}")
        raise
    if service.kernels_abandoned:
        # a kernel still compiles in its thread and cannot be interrupted; nothing durable
        # depends on it (Numba writes its cache by rename), so leave without waiting
        logging.shutdown()
        os._exit(code)
    return code
