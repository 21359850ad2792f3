"""The contract every sensor driver fulfils, in the manner of python-can's back2back tests.

Subclass `SensorContract` in a test module and set `sensor_url` (or override
`sensor_url_for(request)`); pytest collects the subclass, not this module
(its name does not start with test_). The suite only uses the public HAL:
`hal.open_sensor`, `capture`, `info`, `close` and the error types.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpagent import hal


class SensorContract:
    sensor_url: str = ""
    capture_timeout: float = 10.0
    needs_finger: bool = False  # a real sensor: someone must put a finger on it

    def sensor_url_for(self, request) -> str:
        return self.sensor_url

    @pytest.fixture
    def url(self, request) -> str:
        url = self.sensor_url_for(request)
        if not url:
            pytest.skip("no sensor URL for this driver")
        return url

    @pytest.fixture
    def sensor(self, url):
        sensor = hal.open_sensor(url)
        yield sensor
        sensor.close()

    def capture(self, sensor, **kwargs):
        if self.needs_finger:
            print(f"\nplace a finger on the sensor ({self.capture_timeout:.0f} s)")
        return sensor.capture(timeout=self.capture_timeout, **kwargs)

    # -- info -----------------------------------------------------------
    def test_info_describes_the_sensor(self, sensor, url):
        info = sensor.info()
        assert isinstance(info, hal.SensorInfo)
        assert info.interface == hal.parse_sensor_url(url).scheme == sensor.interface
        assert info.model
        assert info.image_width >= 16 and info.image_height >= 16
        assert 100 <= info.ppi <= 2000
        assert info.sensor_id.startswith(info.interface + ":")
        assert sensor.info() is info or sensor.info() == info

    # -- capture --------------------------------------------------------
    def test_capture_returns_a_plausible_finger_image(self, sensor):
        image = self.capture(sensor)
        assert isinstance(image, hal.FingerImage)
        assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 2
        info = sensor.info()
        assert (image.width, image.height) == (info.image_width, info.image_height)
        assert image.ppi == info.ppi
        assert image.sensor_id == info.sensor_id
        assert int(image.pixels.max()) - int(image.pixels.min()) >= 32  # not blank
        assert image.captured_at.tzinfo is not None

    def test_capture_stamps_finger_position_and_impression(self, sensor):
        image = self.capture(sensor, finger_position=hal.FingerPosition.LEFT_INDEX,
                             impression_type=hal.ImpressionType.LIVE_PLAIN)
        assert image.finger_position is hal.FingerPosition.LEFT_INDEX
        assert image.impression_type is hal.ImpressionType.LIVE_PLAIN

    def test_progress_ends_with_done(self, sensor):
        seen = []
        self.capture(sensor, progress=lambda *a: seen.append(a))
        assert seen and seen[-1][0] == "done"
        assert all(stage in ("waiting", "upload", "done") for stage, _, _ in seen)
        # an upload retried after a wire error starts again from 0
        assert all(0 <= done <= total for stage, done, total in seen if stage == "upload")

    def test_captures_in_a_row(self, sensor):
        first = self.capture(sensor, finger_position=1)
        second = self.capture(sensor, finger_position=1)
        assert first.pixels.shape == second.pixels.shape

    def test_undeclared_modes_are_refused_with_a_hint(self, sensor):
        # a single-finger module asked for a slap must not hand back one flat finger
        requests = {hal.CaptureMode.FLAT: (1, hal.ImpressionType.LIVE_PLAIN),
                    hal.CaptureMode.ROLLED: (1, hal.ImpressionType.LIVE_ROLLED),
                    hal.CaptureMode.FOUR_FINGER_SLAP: (13, hal.ImpressionType.LIVE_PLAIN),
                    hal.CaptureMode.TWO_THUMB_SLAP: (15, hal.ImpressionType.LIVE_PLAIN)}
        declared = sensor.info().modes
        assert hal.CaptureMode.FLAT in declared
        for mode, (position, impression) in requests.items():
            if mode in declared:
                continue
            with pytest.raises(hal.ModeNotSupported) as refused:
                sensor.capture(timeout=self.capture_timeout, finger_position=position,
                               impression_type=impression)
            assert mode.value in str(refused.value) and "ten-print" in refused.value.hint

    def test_every_declared_mode_captures_an_image_stamped_as_asked(self, sensor):
        requests = {hal.CaptureMode.ROLLED: (3, hal.ImpressionType.LIVE_ROLLED),
                    hal.CaptureMode.FOUR_FINGER_SLAP: (14, hal.ImpressionType.LIVE_PLAIN),
                    hal.CaptureMode.TWO_THUMB_SLAP: (15, hal.ImpressionType.LIVE_PLAIN)}
        for mode, (position, impression) in requests.items():
            if mode not in sensor.info().modes:
                continue
            image = self.capture(sensor, finger_position=position, impression_type=impression)
            assert int(image.finger_position) == position and int(image.impression_type) == impression
            assert int(image.pixels.max()) - int(image.pixels.min()) >= 32

    def test_the_driver_keeps_the_template_capture(self, sensor):
        # deadline, progress, stamping and the spy live in the base class only
        from fpagent.hal.driver import Sensor

        assert type(sensor).capture is Sensor.capture

    def test_bad_timeout_is_refused(self, sensor):
        with pytest.raises(ValueError):
            sensor.capture(timeout=0)

    # -- life cycle -----------------------------------------------------
    def test_closed_sensor_refuses_to_capture_and_close_is_idempotent(self, url):
        with hal.open_sensor(url) as sensor:
            sensor.info()
        with pytest.raises(hal.SensorError):
            sensor.capture(timeout=1)
        sensor.close()

    def test_can_be_opened_again_after_close(self, url):
        hal.open_sensor(url).close()
        with hal.open_sensor(url) as sensor:
            assert sensor.info().image_width > 0
