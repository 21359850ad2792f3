"""The sensor contract (tests/driver_contract.py) run against every driver we have.

Emulated ZFM (the real driver over a pty) always; the in-process synthetic
sensor when its module is present; a real sensor only when pytest is given
`--sensor URL` (someone has to put a finger on it).
"""

import importlib.util

import pytest

from driver_contract import SensorContract


class TestEmulatedZfm(SensorContract):
    sensor_url = "emulated://?seed=1&person=2"


class TestEmulatedZfmSmallPacketsOnANoisyLine(SensorContract):
    # recoverable faults must not show through the HAL
    sensor_url = ("emulated://?seed=1&person=2&packet_size=32&prodinfo=0"
                  "&faults=flip:1,garbage:5,poweron:1,nofinger:2&poll=0.01")


class TestSyntheticSensor(SensorContract):
    def sensor_url_for(self, request):
        if importlib.util.find_spec("fpagent.drivers.synthetic.sensor") is None:
            pytest.skip("fpagent.drivers.synthetic.sensor is not there yet")
        return "synthetic://?seed=1&person=2"


@pytest.mark.hardware
class TestRealSensor(SensorContract):
    needs_finger = True
    capture_timeout = 30.0

    def sensor_url_for(self, request):
        url = request.config.getoption("--sensor")
        if not url:
            pytest.skip("no real sensor: give one with --sensor URL")
        return url
