"""The in-process synthetic sensor, opened through the real HAL registry."""

from __future__ import annotations

import numpy as np
import pytest

from fpagent import hal
from fpagent.drivers.synthetic.generator import finger_image


def test_open_from_url_and_recapture_gives_the_next_impression():
    with hal.open_sensor("synthetic://?seed=1&person=2") as sensor:
        first = sensor.capture(finger_position=3)
        second = sensor.capture(finger_position=3)
        other = sensor.capture(finger_position=4)
    assert isinstance(first, hal.FingerImage)
    assert first.ppi == 500 and first.pixels.shape == (288, 256)
    assert int(first.finger_position) == 3
    assert np.array_equal(first.pixels, finger_image(2, 3, 0, seed=1))
    assert np.array_equal(second.pixels, finger_image(2, 3, 1, seed=1))
    assert np.array_equal(other.pixels, finger_image(2, 4, 0, seed=1))  # own counter per finger


def test_unknown_position_is_finger_one_and_start_impression_and_size_apply():
    sensor = hal.open_sensor("synthetic://?seed=1&person=2&impression=5&width=200&height=240")
    img = sensor.capture(finger_position=0)
    assert img.pixels.shape == (240, 200)
    assert np.array_equal(img.pixels, finger_image(2, 1, 5, seed=1, size=(240, 200)))
    assert sensor.next_impression(1) == 6
    info = sensor.info()
    assert info.interface == "synthetic"
    assert (info.image_width, info.image_height, info.ppi) == (200, 240, 500)
    assert img.sensor_id == info.sensor_id
    sensor.close()
    with pytest.raises(hal.SensorError):
        sensor.capture(finger_position=1)


def test_two_sensor_objects_are_independent_and_repeatable():
    a = hal.open_sensor("synthetic://?seed=1&person=2")
    b = hal.open_sensor("synthetic://?seed=1&person=2")
    a.capture(finger_position=3)
    assert np.array_equal(a.capture(finger_position=3).pixels, finger_image(2, 3, 1, seed=1))
    assert np.array_equal(b.capture(finger_position=3).pixels, finger_image(2, 3, 0, seed=1))


@pytest.mark.parametrize(
    "url",
    [
        "synthetic://?seed=abc",
        "synthetic://?person=-1",
        "synthetic://?width=5",
        "synthetic://?sede=1",  # a typo is reported, not ignored
    ],
)
def test_bad_urls_give_a_clear_error(url):
    with pytest.raises(ValueError):
        hal.open_sensor(url)


def test_a_capture_past_its_deadline_times_out_and_does_not_skip_an_impression():
    sensor = hal.open_sensor("synthetic://?seed=1&person=2")
    with pytest.raises(hal.CaptureTimeout):
        sensor.capture(timeout=1e-9, finger_position=3)
    assert sensor.next_impression(3) == 0  # the lost capture is not counted
    img = sensor.capture(5.0, None, 3, hal.ImpressionType.LIVE_PLAIN)  # positional, as the base class
    assert np.array_equal(img.pixels, finger_image(2, 3, 0, seed=1))
