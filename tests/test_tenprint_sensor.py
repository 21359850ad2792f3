"""The tenprint:// sensor: capture modes through the HAL, and the driver contract."""

import numpy as np
import pytest

from driver_contract import SensorContract
from fpagent import hal
from fpagent.drivers.tenprint import platen
from fpagent.hal.image import FingerPosition, ImpressionType


class TestTenprintSensor(SensorContract):
    sensor_url = "tenprint://?seed=3&person=0"
    capture_timeout = 60.0  # a slap takes the emulator seconds to draw on a loaded machine


def test_the_sensor_declares_its_modes_and_platen():
    with hal.open_sensor("tenprint://?seed=3&person=0") as sensor:
        info = sensor.info()
    assert set(info.modes) == set(hal.CaptureMode)
    assert info.ppi == 500 and info.extra["slap_size"] == "1600x1500"
    assert info.extra["rolled_size"] == "800x750"


def test_a_thumb_slap_request_gets_the_platen_image_stamped_as_asked():
    with hal.open_sensor("tenprint://?seed=3&person=0") as sensor:
        image = sensor.capture(finger_position=FingerPosition.PLAIN_THUMBS)
        again = sensor.capture(finger_position=FingerPosition.PLAIN_THUMBS)
    assert image.finger_position == FingerPosition.PLAIN_THUMBS
    assert image.impression_type == ImpressionType.LIVE_PLAIN
    assert np.array_equal(image.pixels, platen.slap(3, 0, 15).pixels)
    assert np.array_equal(again.pixels, platen.slap(3, 0, 15, capture=1).pixels)


def test_a_rolled_request_gets_a_rolled_print_with_the_swap_asked_for():
    with hal.open_sensor("tenprint://?seed=3&person=0&swap=1-6") as sensor:
        image = sensor.capture(finger_position=1, impression_type=ImpressionType.LIVE_ROLLED)
    assert image.impression_type == ImpressionType.LIVE_ROLLED
    assert image.pixels.shape == platen.ROLLED_SHAPE
    assert np.array_equal(image.pixels, platen.rolled(3, 0, 1, swapped_pair=(1, 6)))


@pytest.mark.parametrize("url", ["tenprint://?swap=3", "tenprint://?swap=3-3", "tenprint://?hands=left",
                                 "tenprint://?colour=red"])
def test_bad_urls_are_refused(url):
    with pytest.raises((ValueError, hal.SensorError)):
        hal.open_sensor(url)


def test_the_capture_mode_follows_position_and_impression_type():
    assert hal.info.capture_mode(13, 0) is hal.CaptureMode.FOUR_FINGER_SLAP
    assert hal.info.capture_mode(15, 0) is hal.CaptureMode.TWO_THUMB_SLAP
    assert hal.info.capture_mode(3, 1) is hal.CaptureMode.ROLLED
    assert hal.info.capture_mode(3, 0) is hal.CaptureMode.FLAT


def test_sensor_info_shows_the_modes(capsys):
    from fpagent import cli

    assert cli.main(["sensor", "info", "tenprint://?seed=3"]) == 0
    out = capsys.readouterr().out
    assert "modes           flat, rolled, four-finger slap, two-thumb slap" in out
    assert cli.main(["sensor", "info", "emulated://?seed=3"]) == 0
    assert "modes           flat\n" in capsys.readouterr().out
