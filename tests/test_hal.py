import datetime as dt

import numpy as np
import pytest

from fpagent import hal


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
    u = hal.parse_sensor_url("spy+zfm:///dev/ttyUSB0?baud=115200&address=0xFFFFFFFF")
    assert (u.scheme, u.path, u.spy) == ("zfm", "/dev/ttyUSB0", True)
    assert u.get_int("baud", 57600) == 115200
    assert u.get_int("address", 0) == 0xFFFFFFFF
    assert hal.parse_sensor_url("/dev/ttyS0").scheme == "zfm"
    with pytest.raises(ValueError):
        hal.parse_sensor_url("zfm:///dev/x?baud=fast").get_int("baud", 1)


def test_unknown_interface_is_a_clear_error():
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("nosuch:///dev/x")
    assert "zfm" in str(err.value)


class _Fake(hal.Sensor):
    interface = "fake"

    def _capture_internal(self, deadline, progress):
        progress("done", 1, 1)
        return hal.FingerImage(np.zeros((32, 32), np.uint8), sensor_id="fake:1",
                               captured_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))

    def _info_internal(self):
        return hal.SensorInfo(interface="fake", model="fake")


def test_capture_template_method_stamps_position():
    seen = []
    with _Fake() as s:
        img = s.capture(timeout=1, progress=lambda *a: seen.append(a), finger_position=7)
    assert img.finger_position == 7 and seen == [("done", 1, 1)]
    with pytest.raises(hal.SensorError):
        s.capture()
