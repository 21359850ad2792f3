"""The service against a real Unix datagram socket set as NOTIFY_SOCKET.

The service runs in-process (a thread) with its real parts: the capture part
over a real hal.Sensor registered in the real registry (present while a file
exists: the stand-in for a USB cable), the outbox part over a real SQLite
Store. The link part watches a small stand-in link object, because the link
itself (real mosquitto) is tested in tests/test_link*.py; here we test only
that the service reacts to the link's thread dying.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket
import tempfile
import threading
import time

import numpy as np
import pytest

from fpagent import hal
from fpagent.hal.driver import register_interface
from fpagent import config
from fpagent.service import sdnotify
from fpagent.service import daemon as service_mod
from fpagent.service import journal, preflight
from fpagent.service import parts as parts_mod
from fpagent.errors import StorageFull


# -- a real notify socket ------------------------------------------------------

class NotifySocket:
    """Binds a datagram socket and records every message with its arrival time."""

    def __init__(self, abstract: bool = False):
        self.dir = tempfile.mkdtemp(prefix="fpn-", dir="/tmp")  # short: sun_path is 108 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"fpagent-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def fields(self, key: str) -> list[tuple[float, str]]:
        out = []
        for stamp, message in list(self.messages):
            for line in message.split("\n"):
                if line.startswith(key + "="):
                    out.append((stamp, line[len(key) + 1:]))
        return out

    def wait_for(self, key: str, predicate=lambda v: True, timeout: float = 20.0, after: float = 0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for stamp, value in self.fields(key):
                if stamp >= after and predicate(value):
                    return stamp, value
            time.sleep(0.02)
        raise AssertionError(f"no {key}= matching within {timeout} s; got {self.messages[-10:]}")

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()
        if os.path.exists(os.path.join(self.dir, "notify")):
            os.unlink(os.path.join(self.dir, "notify"))
        os.rmdir(self.dir)


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


# -- a sensor that can be unplugged ----------------------------------------------

class CableSensor(hal.Sensor):
    """A real hal.Sensor whose 'cable' is a file: present while the file exists."""

    interface = "h8cable"

    def __init__(self, path: str):
        super().__init__(f"h8cable://{path}")
        self.path = path
        # opened exclusively, like the ZFM driver's serial port (pyserial exclusive=True)
        self._fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise hal.SensorBusy(f"{path} is in use by another program") from None

    @classmethod
    def from_url(cls, parsed):
        if not os.path.exists(parsed.path):
            raise hal.SensorNotFound(f"no sensor at {parsed.path}", "Plug the sensor in.")
        return cls(parsed.path)

    def _close_internal(self):
        os.close(self._fd)

    def ping(self) -> bool:
        return os.path.exists(self.path)

    def _capture(self, request):
        return hal.FingerImage(pixels=np.full((288, 256), 200, np.uint8), ppi=500, sensor_id="h8cable:test")

    def _info_internal(self):
        return hal.SensorInfo(interface="h8cable", model="cable test sensor", port=self.path)


register_interface("h8cable", CableSensor)


class StandInLink:
    """Only what LinkPart reads from fpagent.link.connection.Link: a thread, connected, health()."""

    def __init__(self):
        self.error = None
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._release.wait, daemon=True)
        self._thread.start()
        self.connected = True

    def health(self):
        return {"last_error": ""}

    def die(self):
        self.error = RuntimeError("link thread died")
        self._release.set()
        self._thread.join(1)

    def stop(self):
        self._release.set()


class WedgeablePart(parts_mod.Part):
    """A part whose step can be made to hang, like a capture stuck in a driver."""

    name = "wedgy"

    def __init__(self):
        super().__init__(period=0.02)
        self.wedge = threading.Event()
        self.unwedge = threading.Event()

    def step(self):
        if self.wedge.is_set():
            self.unwedge.wait(30)


_TEST_KEYS = {}


def sealed(payload: bytes, seq: int = 1) -> tuple[str, bytes]:
    """A real sealed envelope (the outbox accepts nothing else): (submission id, bytes)."""
    import uuid

    from fpagent.sealing import envelope
    from fpagent.sealing import keys

    if not _TEST_KEYS:
        _TEST_KEYS["central"] = keys.generate_central_hpke_keys((keys.SUITE_X25519,)).public()
        _TEST_KEYS["device"] = keys.generate_signing_key()
    sid = str(uuid.uuid4())
    return sid, envelope.seal(payload, device_id="booking-01", ori="XX0000000", sequence=seq,
                              central_public_key=_TEST_KEYS["central"],
                              device_signing_key=_TEST_KEYS["device"], submission_id=sid)


def make_config(tmp_path, **service) -> config.Config:
    cfg = config.from_dict({
        "paths": {"state_dir": str(tmp_path / "state"), "cache_dir": str(tmp_path / "cache")},
        "sensor": {"url": f"h8cable://{tmp_path / 'cable'}"},
        "service": {"status_interval_s": 0.2, **service},
    })
    return cfg


def start_service(cfg, notify, *, warmups=(), extra_parts=(), link=None, part_timeout_s=3.0, env=None):
    from fpagent.storage.store import Store

    store = Store(cfg.paths.database(), cfg)
    capture = parts_mod.CapturePart(cfg.sensor.url, period=0.05)
    outbox = parts_mod.OutboxPart(cfg, store, period=0.05)
    link_part = parts_mod.LinkPart(cfg, store, period=0.05)
    link_part.link = link
    if link is not None:
        link_part.state = "connected"
    svc = service_mod.Service(cfg, notifier=sdnotify.Notifier(notify.address), warmups=list(warmups),
                              parts=[capture, outbox, link_part, *extra_parts], store=store,
                              part_timeout_s=part_timeout_s, tick_s=0.05)
    svc.watchdog_s = 0.05  # as if WatchdogSec=100ms (watchdog_interval() parsing is tested below)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    return svc, thread


def stop_service(svc, thread):
    svc.stop_event.set()
    thread.join(15)
    assert not thread.is_alive(), "service did not stop"


# -- sdnotify itself ---------------------------------------------------------------

def test_notifier_sends_each_message_kind(notify_socket):
    n = sdnotify.Notifier(notify_socket.address)
    assert n.ready("all good") and n.watchdog() and n.status("queue 3")
    assert n.extend_timeout(1.5) and n.stopping()
    notify_socket.wait_for("STOPPING")
    got = [m for _, m in notify_socket.messages]
    assert got[0].startswith("READY=1\n") and "STATUS=all good" in got[0]
    assert "WATCHDOG=1" in got and "STATUS=queue 3" in got and "EXTEND_TIMEOUT_USEC=1500000" in got


def test_notifier_abstract_namespace():
    sock = NotifySocket(abstract=True)
    try:
        assert sock.address.startswith("@")
        assert sdnotify.Notifier(sock.address).status("hello from the abstract namespace")
        sock.wait_for("STATUS", lambda v: "abstract" in v)
    finally:
        sock.close()


def test_notifier_is_a_noop_outside_systemd_and_survives_a_vanished_socket(tmp_path):
    assert sdnotify.Notifier(None).ready() is False
    gone = sdnotify.Notifier(str(tmp_path / "nobody-listens"))
    assert gone.enabled and gone.watchdog() is False and gone.failed


def test_from_environment_can_unset(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    n = sdnotify.Notifier.from_environment(unset=True)
    assert n.address == "/run/systemd/notify" and "NOTIFY_SOCKET" not in os.environ


def test_watchdog_interval():
    pid = str(os.getpid())
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 1.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None


# -- the service ----------------------------------------------------------------------

def test_ready_comes_only_after_the_kernels(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    warmed = {}

    def warm_up():  # stands in for the first-start Numba compile
        time.sleep(0.6)
        warmed["at"] = time.monotonic()

    svc, thread = start_service(cfg, notify_socket, warmups=[warm_up])
    try:
        ready_at, _ = notify_socket.wait_for("READY")
        assert "at" in warmed and ready_at >= warmed["at"]
        extend_at, value = notify_socket.wait_for("EXTEND_TIMEOUT_USEC")
        assert extend_at < ready_at and int(value) >= 10_000_000
        statuses = [v for _, v in notify_socket.fields("STATUS")]
        assert any("kernels" in s for s in statuses)
        first_ready = [m for _, m in notify_socket.messages if m.startswith("READY=1")][0]
        assert "sensor present" in first_ready and "queue 0" in first_ready
    finally:
        stop_service(svc, thread)
    notify_socket.wait_for("STOPPING")


def test_a_failing_warm_up_means_no_ready(tmp_path, notify_socket):
    cfg = make_config(tmp_path)

    def broken():
        raise RuntimeError("LLVM ran out of memory")

    svc = service_mod.Service(cfg, notifier=sdnotify.Notifier(notify_socket.address), warmups=[broken],
                              parts=[], store=None)
    svc.store = object()  # skip the database for this one
    with pytest.raises(RuntimeError):
        svc.run()
    time.sleep(0.2)
    assert not notify_socket.fields("READY")


def test_watchdog_stops_when_a_part_is_wedged(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    wedgy = WedgeablePart()
    svc, thread = start_service(cfg, notify_socket, extra_parts=[wedgy], part_timeout_s=0.8)
    try:
        notify_socket.wait_for("READY")
        time.sleep(0.5)
        assert len(notify_socket.fields("WATCHDOG")) >= 3
        wedgy.wedge.set()
        notify_socket.wait_for("STATUS", lambda v: "NOT RESPONDING: wedgy" in v, timeout=5)
        time.sleep(0.2)
        before = len(notify_socket.fields("WATCHDOG"))
        time.sleep(0.8)
        assert len(notify_socket.fields("WATCHDOG")) == before, "pings went on with a wedged part"
        wedgy.unwedge.set()
        deadline = time.monotonic() + 5
        while len(notify_socket.fields("WATCHDOG")) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(notify_socket.fields("WATCHDOG")) > before, "pings did not resume"
    finally:
        wedgy.unwedge.set()
        stop_service(svc, thread)


def test_watchdog_stops_when_the_main_loop_is_wedged(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    svc, thread = start_service(cfg, notify_socket)
    release = threading.Event()
    try:
        notify_socket.wait_for("READY")
        time.sleep(0.3)
        assert notify_socket.fields("WATCHDOG")
        real_tick = svc.tick
        svc.tick = lambda: release.wait(30) or real_tick()  # the loop hangs inside a tick
        time.sleep(0.6)
        before = len(notify_socket.fields("WATCHDOG"))
        time.sleep(0.8)
        assert len(notify_socket.fields("WATCHDOG")) == before
    finally:
        release.set()
        stop_service(svc, thread)


def test_watchdog_stops_when_the_link_thread_dies(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    link = StandInLink()
    svc, thread = start_service(cfg, notify_socket, link=link, part_timeout_s=0.8)
    try:
        notify_socket.wait_for("STATUS", lambda v: "link connected" in v)
        link.die()
        notify_socket.wait_for("STATUS", lambda v: "link dead" in v and "NOT RESPONDING: link" in v, timeout=5)
        time.sleep(0.2)
        before = len(notify_socket.fields("WATCHDOG"))
        time.sleep(0.6)
        assert len(notify_socket.fields("WATCHDOG")) == before
    finally:
        stop_service(svc, thread)


def test_status_follows_the_sensor_being_unplugged_and_replugged(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    cable = tmp_path / "cable"
    svc, thread = start_service(cfg, notify_socket)
    try:
        _, first = notify_socket.wait_for("READY")  # starts degraded: no sensor
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor absent"))
        cable.touch()
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor present"))
        cable.unlink()
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor absent"), timeout=5,
                               after=time.monotonic())
        cable.touch()
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor present"), timeout=5,
                               after=time.monotonic())
        # the watchdog pings on: an absent sensor is degraded, not wedged
        cable.unlink()
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor absent"), timeout=5,
                               after=time.monotonic())
        notify_socket.wait_for("WATCHDOG", timeout=2, after=time.monotonic() + 0.2)
    finally:
        stop_service(svc, thread)


def test_the_service_leaves_the_sensor_free_for_a_booking_process(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    cable = tmp_path / "cable"
    svc, thread = start_service(cfg, notify_socket)
    try:
        notify_socket.wait_for("READY")
        cable.touch()
        notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor present (cable test sensor)"))
        with hal.open_sensor(cfg.sensor.url) as sensor:  # what `fpagent book` does: not SensorBusy
            # while the booking holds it, a replug is seen as present and in use
            svc.capture.state = "unknown"
            notify_socket.wait_for("STATUS", lambda v: v.startswith("sensor present (cable test sensor, in use"),
                                   after=time.monotonic(), timeout=5)
            assert sensor.capture(timeout=1).pixels.shape == (288, 256)
    finally:
        stop_service(svc, thread)


def test_status_shows_a_full_queue(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    cfg.store.max_queue_mb = 0.01  # ~10 KB: three sealed bookings fill it
    (tmp_path / "cable").touch()
    svc, thread = start_service(cfg, notify_socket)
    try:
        notify_socket.wait_for("READY")
        refused = False
        for i in range(20):
            try:
                sid, env = sealed(os.urandom(4000), seq=i)
                svc.store.outbox.enqueue(sid, f"TCN{i}", env, {"seq": i})
            except StorageFull:
                refused = True
                break
        assert refused, "the store never refused a booking"
        _, line = notify_socket.wait_for("STATUS", lambda v: "FULL" in v, timeout=5)
        assert "queue 2 FULL" in line or "queue 3 FULL" in line, line
        assert "oldest" in line
    finally:
        stop_service(svc, thread)


def test_sigterm_waits_for_the_booking_in_progress(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    svc, thread = start_service(cfg, notify_socket)
    notify_socket.wait_for("READY")
    in_booking = threading.Event()
    sid, env = sealed(b"a booking being sealed when SIGTERM came")

    def booking():
        with svc.booking():
            with svc.capture.session() as sensor:
                sensor.capture(timeout=1)
            in_booking.set()
            time.sleep(0.7)  # sealing takes a moment
            svc.store.outbox.enqueue(sid, "TCN1", env, {"seq": 1})

    worker = threading.Thread(target=booking)
    worker.start()
    assert in_booking.wait(5)
    svc.stop_event.set()  # what the SIGTERM handler does
    thread.join(15)
    worker.join(5)
    assert not thread.is_alive()
    _, stopping = notify_socket.wait_for("STOPPING")
    from fpagent.storage.store import Store
    store = Store(cfg.paths.database(), cfg)
    try:
        assert store.outbox.get(sid) is not None
    finally:
        store.close()
    with pytest.raises(Exception, match="stopping"):
        with svc.booking():
            pass


def test_status_file_and_fpagent_status_agree(tmp_path, notify_socket):
    from fpagent.service import status

    cfg = make_config(tmp_path)
    (tmp_path / "cable").touch()
    svc, thread = start_service(cfg, notify_socket)
    try:
        notify_socket.wait_for("READY")
        time.sleep(0.3)
        _, line = notify_socket.fields("STATUS")[-1]
        facts = status.gather(cfg)  # what `fpagent status` reads: file + database
        assert facts.service["state"] == "running"
        assert status.summary(facts).split("; disk")[0] == line.split("; disk")[0]
        code, problems = status.evaluate(facts)
        assert code == status.OK, problems
    finally:
        stop_service(svc, thread)
    facts = status.gather(cfg)
    assert facts.service["state"] == "stopped"
    assert status.evaluate(facts)[0] == status.CRITICAL


def test_a_second_service_on_the_same_state_is_refused(tmp_path, notify_socket):
    cfg = make_config(tmp_path)
    svc, thread = start_service(cfg, notify_socket)
    try:
        notify_socket.wait_for("READY")
        second = service_mod.Service(cfg, notifier=sdnotify.Notifier(None), warmups=[], parts=[],
                                     store=object())
        with pytest.raises(preflight.StartupError, match=f"pid {os.getpid()}"):
            second.start()
    finally:
        stop_service(svc, thread)


def test_numba_cache_dir_follows_the_configuration(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    cfg = make_config(tmp_path)
    made = preflight.prepare_directories(cfg)
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "cache" / "numba")
    assert (made["state"].stat().st_mode & 0o777) == 0o700
    assert pathlib.Path(os.environ["NUMBA_CACHE_DIR"]).is_dir()


def test_journal_lines_carry_priority_and_fields():
    import logging

    formatter = journal.JournalFormatter(journal=True)
    record = logging.LogRecord("fpagent.service", logging.WARNING, __file__, 1, "sensor absent", None, None)
    record.fields = {"url": "zfm:///dev/fpsensor", "reason": 'no device at "/dev/fpsensor"'}
    assert formatter.format(record) == \
        '<4>sensor absent url=zfm:///dev/fpsensor reason="no device at \\"/dev/fpsensor\\""'
    plain = journal.JournalFormatter(journal=False).format(record)
    assert plain.endswith('warning sensor absent url=zfm:///dev/fpsensor reason="no device at \\"/dev/fpsensor\\""')
    assert parts_mod._safe_url("zfm:///dev/x?baud=57600&password=1234") == "zfm:///dev/x?baud=57600&password=***"


def test_native_journal_fields():
    """The native protocol against a real datagram socket standing in for journald's."""
    import logging

    sock = NotifySocket()  # any datagram socket that records what arrives
    handler = journal.JournalHandler(sock.address)
    logger = logging.getLogger("fpagent.test-journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sensor absent", extra={"fields": {"url": "zfm:///dev/fpsensor", "reason": "two\nlines"}})
        deadline = time.monotonic() + 5
        while not sock.messages and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        logger.removeHandler(handler)
        handler.close()
        sock.close()
    raw = sock.messages[0][1]
    assert "PRIORITY=4\n" in raw and "SYSLOG_IDENTIFIER=fpagent\n" in raw
    assert "FPAGENT_EVENT=sensor-absent\n" in raw and "FPAGENT_URL=zfm:///dev/fpsensor\n" in raw
    assert "MESSAGE=sensor absent url=zfm:///dev/fpsensor" in raw
    # a value with a newline goes length-prefixed, as journald's protocol says
    assert "FPAGENT_REASON\n" + (9).to_bytes(8, "little").decode() + "two\nlines\n" in raw


def test_the_cli_does_not_import_numba_before_the_service_sets_its_cache():
    """Numba picks its cache directory when a kernel module is imported: `fpagent run`
    must get to prepare_directories() before any kernel module loads."""
    import subprocess
    import sys

    code = ("import sys, fpagent.cli; fpagent.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('fpagent.biometrics.kernels')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=pathlib.Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", "a command module imports numba at start-up: " + out.stdout
