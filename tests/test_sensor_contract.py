"""The sensor contract (tests/driver_contract.py) run against every driver we have.

Emulated ZFM (the real driver over a pty) and the in-process synthetic sensor
always; an out-of-tree driver in tests/test_driver_plugin.py; a real sensor
only when pytest is given `--sensor URL` (someone has to put a finger on it).
"""

import pytest

from driver_contract import SensorContract


class TestEmulatedZfm(SensorContract):
    sensor_url = "emulated://?seed=1&person=2"


class TestEmulatedZfmSmallPacketsOnANoisyLine(SensorContract):
    # recoverable faults must not show through the HAL
    sensor_url = ("emulated://?seed=1&person=2&packet_size=32&prodinfo=0"
                  "&faults=flip:1,garbage:5,poweron:1,nofinger:2&poll=0.01")


class TestSyntheticSensor(SensorContract):
    sensor_url = "synthetic://?seed=1&person=2"


class TestSpiedSyntheticSensor(SensorContract):
    # spy+ logs captures for any driver and changes nothing else
    sensor_url = "spy+synthetic://?seed=1&person=2"


@pytest.mark.hardware
class TestRealSensor(SensorContract):
    needs_finger = True
    capture_timeout = 30.0

    def sensor_url_for(self, request):
        url = request.config.getoption("--sensor")
        if not url:
            pytest.skip("no real sensor: give one with --sensor URL")
        return url
