"""The tenprint:// emulator's fault modes: what a booking must survive, each on request."""

import time

import numpy as np
import pytest

from fpagent import hal
from fpagent.biometrics import segmentation
from fpagent.biometrics.extraction import assess_quality
from fpagent.drivers.tenprint import platen
from fpagent.hal.image import ImpressionType

ROLLED = ImpressionType.LIVE_ROLLED


def test_nofinger_strikes_the_next_captures_then_fingers_come():
    with hal.open_sensor("tenprint://?seed=3&faults=nofinger:2") as sensor:
        for _ in range(2):
            with pytest.raises(hal.NoFinger):
                sensor.capture(timeout=30, finger_position=1, impression_type=ROLLED)
        image = sensor.capture(timeout=30, finger_position=1, impression_type=ROLLED)
    assert np.array_equal(image.pixels, platen.rolled(3, 0, 1))


def test_timeout_is_a_silent_scanner_until_the_deadline():
    with hal.open_sensor("tenprint://?seed=3&faults=timeout:1") as sensor:
        t0 = time.monotonic()
        with pytest.raises(hal.CaptureTimeout):
            sensor.capture(timeout=0.3, finger_position=13)
        assert time.monotonic() - t0 >= 0.29
        assert sensor.capture(timeout=30, finger_position=13).pixels.shape == platen.PLATEN_SHAPE


def test_a_partial_slap_lifts_one_finger_and_segmentation_asks_again():
    with hal.open_sensor("tenprint://?seed=3&faults=partial:1") as sensor:
        partial = sensor.capture(finger_position=13)
        whole = sensor.capture(finger_position=13)
        rolled = sensor.capture(finger_position=5, impression_type=ROLLED)  # rolls are never partial
    assert np.array_equal(partial.pixels, platen.slap(3, 0, 13, 0, missing=(5,)).pixels)
    assert np.array_equal(whole.pixels, platen.slap(3, 0, 13, 1).pixels)
    assert np.array_equal(rolled.pixels, platen.rolled(3, 0, 5))
    found = segmentation.segment_slap(partial.pixels, platen.SLAP_FINGERS[13])
    assert len(found.segments) == 3 and not found.complete
    assert found.message == "only 3 fingers found: place all four fingers of the right hand flat on the glass"


def test_a_smudged_capture_fails_the_quality_gate_and_the_next_one_passes():
    with hal.open_sensor("tenprint://?seed=3&faults=smudge:1") as sensor:
        smeared = sensor.capture(finger_position=2, impression_type=ROLLED)
        clean = sensor.capture(finger_position=2, impression_type=ROLLED)
    assert assess_quality(smeared.pixels).score < 25 <= assess_quality(clean.pixels).score


def test_missing_fingers_are_absent_from_the_slap_and_see_no_finger_rolled():
    with hal.open_sensor("tenprint://?seed=3&missing=4") as sensor:
        slap = sensor.capture(finger_position=13)
        with pytest.raises(hal.NoFinger):
            sensor.capture(timeout=1, finger_position=4, impression_type=ROLLED)
    assert np.array_equal(slap.pixels, platen.slap(3, 0, 13, 0, missing=(4,)).pixels)


def test_faults_combine_with_the_sequence_errors():
    with hal.open_sensor("tenprint://?seed=3&swap=3-4&hands=swapped&faults=nofinger:1") as sensor:
        with pytest.raises(hal.NoFinger):
            sensor.capture(timeout=1, finger_position=3, impression_type=ROLLED)
        rolled = sensor.capture(finger_position=3, impression_type=ROLLED)
        slap = sensor.capture(finger_position=13)
    assert np.array_equal(rolled.pixels, platen.rolled(3, 0, 3, swapped_pair=(3, 4)))
    assert np.array_equal(slap.pixels, platen.slap(3, 0, 13, hands_swapped=True).pixels)


@pytest.mark.parametrize("url", ["tenprint://?faults=melt:1", "tenprint://?faults=smudge:x",
                                 "tenprint://?faults=smudge:-2", "tenprint://?missing=11",
                                 "tenprint://?missing=a"])
def test_bad_fault_options_are_refused(url):
    with pytest.raises((ValueError, hal.SensorError)):
        hal.open_sensor(url)
