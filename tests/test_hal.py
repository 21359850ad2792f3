import ast
import datetime as dt
import gc
import pathlib
import warnings

import numpy as np
import pytest

from fpagent import hal
from fpagent.hal import driver, registry

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_finger_image_validates_and_never_shows_pixels():
    px = np.full((288, 256), 200, np.uint8)
    img = hal.FingerImage(px, ppi=500, sensor_id="zfm:x", finger_position=2)
    assert img.width == 256 and img.height == 288
    assert img.finger_position is hal.FingerPosition.RIGHT_INDEX
    assert "200" not in repr(img)
    with pytest.raises(ValueError):
        hal.FingerImage(px.astype(np.float32))
    with pytest.raises(ValueError):
        hal.FingerImage(px, ppi=5)


def test_parse_sensor_url():
    u = driver.parse_sensor_url("spy+zfm:///dev/ttyUSB0?baud=115200&address=0xFFFFFFFF")
    assert (u.scheme, u.path, u.spy) == ("zfm", "/dev/ttyUSB0", True)
    assert u.get_int("baud", 57600) == 115200
    assert u.get_int("address", 0) == 0xFFFFFFFF
    assert hal.parse_sensor_url("/dev/ttyS0").scheme == "zfm"
    with pytest.raises(ValueError):
        driver.parse_sensor_url("zfm:///dev/x?baud=fast").get_int("baud", 1)


def test_unknown_interface_is_a_clear_error():
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("nosuch:///dev/x")
    assert "zfm" in str(err.value)


class _Fake(driver.Sensor):
    interface = "fake"

    def __init__(self, url="fake://"):
        super().__init__(url)
        self.requests = []

    def _capture(self, request):
        self.requests.append(request)
        request.progress("waiting", 1, 0)  # no "done": the base class adds it
        return hal.FingerImage(np.zeros((32, 32), np.uint8), sensor_id="fake:1",
                               captured_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))

    def _info_internal(self):
        return hal.SensorInfo(interface="fake", model="fake",
                              modes=(hal.CaptureMode.FLAT, hal.CaptureMode.ROLLED))

    @classmethod
    def from_url(cls, parsed):
        return cls(parsed.raw)


class _Unspyable(_Fake):
    supports_spy = False


@pytest.fixture
def fake_interfaces(monkeypatch):
    monkeypatch.setitem(registry._RUNTIME, "fake", _Fake)
    monkeypatch.setitem(registry._RUNTIME, "unspyable", _Unspyable)


def test_capture_template_method_hands_one_request_and_stamps_the_image():
    seen = []
    with _Fake() as s:
        img = s.capture(timeout=1, progress=lambda *a: seen.append(a), finger_position=7,
                        impression_type=hal.ImpressionType.LIVE_ROLLED)
    (request,) = s.requests
    assert request.finger_position is hal.FingerPosition.LEFT_INDEX
    assert request.impression_type is hal.ImpressionType.LIVE_ROLLED
    assert 0 < request.remaining() <= 1
    assert img.finger_position == 7 and img.impression_type is hal.ImpressionType.LIVE_ROLLED
    assert seen == [("waiting", 1, 0), ("done", 1, 1)]
    with pytest.raises(hal.SensorError):
        s.capture()


def test_a_mode_the_sensor_did_not_declare_never_reaches_the_driver():
    with _Fake() as s:
        with pytest.raises(hal.ModeNotSupported) as refused:
            s.capture(timeout=1, finger_position=hal.FingerPosition.PLAIN_RIGHT_FOUR)
        assert s.requests == []
    assert "four-finger slap" in str(refused.value)
    assert "captures flat, rolled only" in refused.value.hint and "tenprint://" in refused.value.hint
    zfm_like = hal.SensorInfo(interface="zfm", model="ZFM-20 / R30x")
    with pytest.raises(hal.ModeNotSupported) as refused:
        hal.require_modes(zfm_like, (hal.CaptureMode.ROLLED, hal.CaptureMode.TWO_THUMB_SLAP))
    assert refused.value.hint.startswith("this ZFM-20 / R30x captures flat single fingers only; "
                                         "a ten-print booking needs a ten-print live-scanner")
    hal.require_modes(zfm_like, (hal.CaptureMode.FLAT,))  # declared: nothing raised


def test_no_driver_overrides_the_public_capture():
    for name in hal.available_interfaces():
        cls = registry._driver_class(name, registry._targets()[name])
        owners = [k.__qualname__ for k in cls.__mro__ if "capture" in vars(k)]
        assert owners == ["Sensor"], (name, owners)


def test_usb_ids_come_from_the_driver_classes_and_the_registry_names_no_driver():
    from fpagent.drivers.zfm.device import ZfmSensor

    assert hal.usb_ids() == {"zfm": list(ZfmSensor.usb_ids)}
    assert "fpagent.drivers" not in (ROOT / "hal" / "registry.py").read_text()
    for path in (ROOT / "hal").glob("*.py"):
        assert not [m for m in _imported_modules(path) if "drivers" in m], path


def test_a_driver_that_cannot_be_imported_is_unavailable_with_its_reason(monkeypatch):
    monkeypatch.setitem(registry._RUNTIME, "broken", "fpagent_no_such_driver.module:Sensor")
    assert hal.unavailable_interfaces() == {
        "broken": "ModuleNotFoundError: No module named 'fpagent_no_such_driver'"}
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("broken://x")
    assert "not available" in str(err.value) and "fpagent_no_such_driver" in str(err.value)
    assert "zfm" not in hal.unavailable_interfaces()  # the others still work
    with hal.open_sensor("synthetic://?seed=1") as sensor:
        assert sensor.info().interface == "synthetic"


def test_spy_logs_each_capture_without_pixels(fake_interfaces, caplog):
    with caplog.at_level("DEBUG", logger="fpagent.hal.spy"):
        with hal.open_sensor("spy+fake://x") as spied:
            spied.capture(timeout=1, finger_position=2)
        with hal.open_sensor("fake://x") as plain:
            plain.capture(timeout=1, finger_position=3)
    lines = [r.getMessage() for r in caplog.records if r.name == "fpagent.hal.spy"]
    assert len(lines) == 1, lines  # the plain sensor logs nothing
    assert "spy+fake://x capture fgp=2" in lines[0] and "-> 32x32 @ 500 ppi" in lines[0]
    assert "waiting x1, done x1" in lines[0]


def test_spy_logs_failed_captures_too(caplog):
    with caplog.at_level("DEBUG", logger="fpagent.hal.spy"):
        with hal.open_sensor("spy+synthetic://?seed=1&person=2") as sensor:
            with pytest.raises(hal.CaptureTimeout):
                sensor.capture(timeout=1e-9, finger_position=3)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fpagent.hal.spy"]
    assert "fgp=3" in line and "CaptureTimeout" in line


def test_spy_is_refused_clearly_by_a_driver_that_does_not_support_it(fake_interfaces):
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("spy+unspyable://x")
    assert "cannot be spied on" in str(err.value) and "unspyable://" in str(err.value)
    hal.open_sensor("unspyable://x").close()


def test_a_sensor_never_closed_warns_when_collected():
    sensor = hal.open_sensor("synthetic://?seed=1")
    with pytest.warns(ResourceWarning, match="never closed"):
        del sensor
        gc.collect()
    closed = hal.open_sensor("synthetic://?seed=1")
    closed.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del closed
        gc.collect()


def test_a_sensor_that_failed_to_open_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(ValueError):
            hal.open_sensor("synthetic://?person=-1")
        with pytest.raises(hal.SensorNotFound):
            hal.open_sensor("emulated://?timeout=0.2&retries=0&faults=silent:0")
        gc.collect()


def _imported_modules(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_the_agent_reaches_drivers_only_through_the_hal():
    offenders = []
    for path in sorted((ROOT / "agent").rglob("*.py")):
        if "bench" in path.relative_to(ROOT / "agent").parts:
            continue  # a driver benchmark measures a driver
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in _imported_modules(path)
                      if m.startswith(("fpagent.drivers", "drivers"))]
    assert offenders == []
