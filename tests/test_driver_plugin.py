"""A third-party driver works with nothing but an entry point.

The package in tests/fixtures/demo_driver (its own pyproject.toml, registering
`demo://` in the `fpagent.sensors` group) is really built and installed by
pip into a temporary folder put on sys.path, found by importlib.metadata,
opened through `fpagent.hal.open_sensor` and put through the same contract
suite as our own drivers. Afterwards the folder leaves sys.path again, so
other tests never see the demo driver.
"""

from __future__ import annotations

import importlib
import pathlib
import shutil
import subprocess
import sys

import pytest

from driver_contract import SensorContract
from fpagent import hal

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "demo_driver"


@pytest.fixture(scope="module", autouse=True)
def demo_driver_installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo-driver")
    source, target = work / "source", work / "site"
    shutil.copytree(FIXTURE, source)  # the build writes into its source folder: not into tests/
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo" not in hal.available_interfaces()  # not there before it is installed
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.split(".")[0] == "fpagent_demo_driver"]:
            del sys.modules[name]
        importlib.invalidate_caches()
        assert "demo" not in hal.available_interfaces()


class TestDemoDriverContract(SensorContract):
    sensor_url = "demo://?width=200&height=240"


def test_the_installed_driver_is_found_with_its_usb_ids():
    assert "demo" in hal.available_interfaces()
    assert "demo" not in hal.unavailable_interfaces()
    ids = hal.usb_ids()["demo"]
    assert [(u.vid, u.pid) for u in ids] == [(0xF00D, 0x0001)]
    with hal.open_sensor("demo://") as sensor:
        assert type(sensor).__module__ == "fpagent_demo_driver"
        assert sensor.info().sensor_id == "demo:demo-1"


def test_spy_logs_the_captures_of_a_driver_without_a_frame_spy(caplog):
    with caplog.at_level("DEBUG", logger="fpagent.hal.spy"):
        with hal.open_sensor("spy+demo://?width=64&height=64") as sensor:
            sensor.capture(timeout=5, finger_position=hal.FingerPosition.RIGHT_THUMB)
    lines = [r.getMessage() for r in caplog.records if r.name == "fpagent.hal.spy"]
    assert len(lines) == 1
    assert "fgp=1" in lines[0] and "64x64 @ 500 ppi" in lines[0] and "waiting" in lines[0]
