"""The libfprint driver family, through libfprint's own `virtual_image` device.

libfprint enables `virtual_image` when FP_VIRTUAL_IMAGE names a socket path
as a Context is made (the driver makes a fresh Context for each open, so a
per-test environment is enough); the test connects to that socket and sends
real prints (libfprint runs mindtct on every capture and refuses an image
without minutiae), or injects retry and error codes. Needs PyGObject and
libfprint 2 (scripts/dev-setup installs both); without them only the
"unavailable" test runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

from driver_contract import SensorContract
from fpagent import cli, hal

gi = pytest.importorskip("gi", reason="PyGObject is not installed (run scripts/dev-setup)")

VIRTUAL_URL = "libfprint://virtual_image"


def _fprint():
    try:
        gi.require_version("FPrint", "2.0")
        from gi.repository import FPrint
    except (ValueError, ImportError) as exc:
        pytest.skip(f"libfprint 2's typelib is not installed ({exc}); run scripts/dev-setup")
    return FPrint


def _prints(fingerprints_dir, count: int) -> list[np.ndarray]:
    folder = fingerprints_dir / "fvc2002_db3_b"
    files = sorted(folder.glob("*.png"))[:count]
    return [np.asarray(Image.open(f).convert("L")) for f in files]


def image_message(pixels: np.ndarray) -> bytes:
    height, width = pixels.shape
    return struct.pack("ii", width, height) + np.ascontiguousarray(pixels, np.uint8).tobytes()


class VirtualFinger:
    """The test's end of the virtual_image socket: puts "a finger" on the reader.

    libfprint drops an image that arrives while it is not capturing, so a
    message is sent when the driver reports that the reader waits for a
    finger (progress "waiting"), as a person would put the finger down.
    """

    def __init__(self, path: str):
        self.path = path
        self._conn: socket.socket | None = None

    def send(self, message: bytes) -> None:
        for attempt in range(2):  # a reopened reader listens on a new socket
            if self._conn is None:
                self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._conn.connect(self.path)
            try:
                self._conn.sendall(message)
                return
            except OSError:
                self.close()
                if attempt:
                    raise

    def on_waiting(self, message: bytes, then=None):
        """A progress callback that sends `message` the first time the reader waits."""
        sent = []

        def progress(stage, done, total):
            if stage == "waiting" and not sent:
                sent.append(stage)
                self.send(message)
            if then is not None:
                then(stage, done, total)

        return progress

    def capture(self, sensor, message: bytes, timeout: float = 10.0, **kwargs):
        progress = self.on_waiting(message, kwargs.pop("progress", None))
        return sensor.capture(timeout=timeout, progress=progress, **kwargs)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@pytest.fixture
def virtual_socket(monkeypatch):
    _fprint()
    folder = tempfile.mkdtemp(prefix="fpv")  # short: a socket path has at most 107 bytes
    path = os.path.join(folder, "vimg.sock")
    monkeypatch.setenv("FP_VIRTUAL_IMAGE", path)
    monkeypatch.setenv("FP_DRIVERS_WHITELIST", "virtual_image")
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def finger(virtual_socket):
    finger = VirtualFinger(virtual_socket)
    yield finger
    finger.close()


# -- URL ---------------------------------------------------------------------------
def test_url_names_driver_device_and_resolution():
    from fpagent.drivers.libfprint.device import Target, target_from_url

    assert target_from_url(hal.parse_sensor_url(VIRTUAL_URL)) == Target("virtual_image")
    target = target_from_url(hal.parse_sensor_url(
        "libfprint://uru4000/1-2.3?ppi=512&width=384&height=290"))
    assert target == Target("uru4000", "1-2.3", ppi=512, width=384, height=290)
    assert target.url == "libfprint://uru4000/1-2.3"
    for bad in ("libfprint://", "libfprint://x?baud=9600", "libfprint://x?ppi=20",
                "libfprint://x?width=300"):
        with pytest.raises(ValueError):
            target_from_url(hal.parse_sensor_url(bad))


def test_resolution_is_the_readers_else_the_urls():
    from fpagent.drivers.libfprint.device import ppi_from_ppmm

    assert ppi_from_ppmm(19.69, 500) == (500, "reader")
    assert ppi_from_ppmm(20.0, 500) == (508, "reader")
    assert ppi_from_ppmm(0.0, 1000) == (1000, "url")


# -- capture -------------------------------------------------------------------------
def test_capture_is_pixel_equal_to_the_print_sent(finger, fingerprints_dir):
    pixels = _prints(fingerprints_dir, 1)[0]
    with hal.open_sensor(VIRTUAL_URL + "?ppi=1000") as sensor:
        image = finger.capture(sensor, image_message(pixels),
                               finger_position=hal.FingerPosition.RIGHT_INDEX)
        info = sensor.info()
    assert np.array_equal(image.pixels, pixels)
    assert image.ppi == 1000 and sensor.resolution_source == "url"  # virtual_image says 0 ppmm
    assert image.finger_position is hal.FingerPosition.RIGHT_INDEX
    assert info.interface == "libfprint" and info.model == "Virtual image device for debugging"
    assert info.sensor_id == "libfprint:virtual_image/0"


def test_captures_in_a_row_each_give_the_print_sent(finger, fingerprints_dir):
    prints = _prints(fingerprints_dir, 3)
    with hal.open_sensor(VIRTUAL_URL) as sensor:
        captured = [finger.capture(sensor, image_message(p)).pixels for p in prints]
    assert all(np.array_equal(a, b) for a, b in zip(captured, prints))


RETRIES = ["TOO_SHORT", "CENTER_FINGER", "REMOVE_FINGER", "GENERAL"]


@pytest.mark.parametrize("name", RETRIES)
def test_retry_becomes_no_finger_with_its_hint_and_the_next_capture_works(
        name, finger, fingerprints_dir):
    from fpagent.drivers.libfprint.device import RETRY_HINTS

    code = int(getattr(_fprint().DeviceRetry, name))
    pixels = _prints(fingerprints_dir, 1)[0]
    with hal.open_sensor(VIRTUAL_URL) as sensor:
        with pytest.raises(hal.NoFinger) as caught:
            finger.capture(sensor, struct.pack("ii", -1, code))
        assert caught.value.hint == RETRY_HINTS[name]
        assert np.array_equal(finger.capture(sensor, image_message(pixels)).pixels, pixels)
    assert len(set(RETRY_HINTS.values())) == len(RETRIES)


@pytest.mark.parametrize("error, hal_error", [
    ("PROTO", hal.TransportError), ("TOO_HOT", hal.SensorRejected), ("GENERAL", hal.SensorRejected)])
def test_device_errors_become_hal_errors(error, hal_error, finger):
    code = int(getattr(_fprint().DeviceError, error))
    with hal.open_sensor(VIRTUAL_URL) as sensor:
        with pytest.raises(hal_error) as caught:
            finger.capture(sensor, struct.pack("ii", -2, code))
    assert type(caught.value) is hal_error and caught.value.hint


def test_deadline_cancels_the_capture_and_the_reader_stays_usable(finger, fingerprints_dir):
    pixels = _prints(fingerprints_dir, 1)[0]
    with hal.open_sensor(VIRTUAL_URL) as sensor:
        seen = []
        started = time.monotonic()
        with pytest.raises(hal.NoFinger):
            sensor.capture(timeout=0.5, progress=lambda *a: seen.append(a))
        assert 0.45 <= time.monotonic() - started < 2.0
        assert seen and seen[0][0] == "waiting"
        assert np.array_equal(finger.capture(sensor, image_message(pixels)).pixels, pixels)


def test_waiting_for_a_finger_leaves_other_threads_running(virtual_socket):
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    with hal.open_sensor(VIRTUAL_URL) as sensor:
        ticker = threading.Thread(target=tick)
        ticker.start()
        try:
            with pytest.raises(hal.NoFinger):
                sensor.capture(timeout=0.6)
        finally:
            stop.set()
            ticker.join()
    assert len(ticks) >= 20  # ~60 expected; a held GIL would give 1 or 2


def test_declared_size_is_checked(finger, fingerprints_dir):
    pixels = _prints(fingerprints_dir, 1)[0]
    with hal.open_sensor(VIRTUAL_URL + "?width=256&height=288") as sensor:
        assert (sensor.info().image_width, sensor.info().image_height) == (256, 288)
        with pytest.raises(hal.SensorRejected, match="300x300"):
            finger.capture(sensor, image_message(pixels))


def test_unknown_driver_is_not_found_and_says_what_is_there(virtual_socket):
    with pytest.raises(hal.SensorNotFound, match="libfprint://virtual_image/0"):
        hal.open_sensor("libfprint://uru4000")
    with pytest.raises(hal.SensorNotFound):
        hal.open_sensor("libfprint://virtual_image/7")


# -- discovery -------------------------------------------------------------------------
def test_sensor_list_shows_the_virtual_device(virtual_socket, capsys):
    assert cli.main(["sensor", "list"]) == 0
    out = capsys.readouterr().out
    assert "libfprint://virtual_image/0" in out and "Virtual image device for debugging" in out


def test_without_its_socket_no_virtual_device_is_listed(monkeypatch):
    _fprint()
    monkeypatch.delenv("FP_VIRTUAL_IMAGE", raising=False)
    monkeypatch.setenv("FP_DRIVERS_WHITELIST", "virtual_image")
    found, failed = hal.discover_sensors()
    assert "libfprint" not in failed and "libfprint" not in hal.unavailable_interfaces()
    assert not [s for s in found if s.interface == "libfprint"]


def test_without_pygobject_the_family_is_unavailable_and_the_rest_works():
    script = (
        "import sys; sys.modules['gi'] = None\n"  # as if PyGObject were not installed
        "from fpagent import cli, hal\n"
        "rc = cli.main(['sensor', 'list'])\n"
        "try:\n"
        "    hal.open_sensor('libfprint://virtual_image')\n"
        "except hal.SensorNotFound as exc:\n"
        "    print('open:', exc)\n"
        "with hal.open_sensor('synthetic://?seed=1') as sensor:\n"
        "    print('synthetic:', sensor.capture(timeout=5).width)\n"
        "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "FP_VIRTUAL_IMAGE": ""})
    assert "libfprint sensors: unavailable (ImportError: PyGObject" in done.stdout, (
        done.stdout + done.stderr)
    assert "open: sensor interface 'libfprint' is not available: ImportError: PyGObject" in (
        done.stdout)
    assert "synthetic: 256" in done.stdout


# -- the driver contract -------------------------------------------------------------------
class TestLibfprintVirtualImage(SensorContract):
    """The contract, with a real print put on the reader whenever it waits for one."""

    def sensor_url_for(self, request):
        self.finger = request.getfixturevalue("finger")
        self.messages = [image_message(p) for p in _prints(request.getfixturevalue(
            "fingerprints_dir"), 4)]
        self.sent = 0
        return VIRTUAL_URL + "?width=300&height=300"

    def capture(self, sensor, **kwargs):
        message = self.messages[self.sent % len(self.messages)]
        self.sent += 1
        return self.finger.capture(sensor, message, timeout=self.capture_timeout, **kwargs)
