"""The libfprint family as a HAL sensor: `libfprint://<driver>[/<device-id>]`.

The transport (URL, worker thread, cancellation, error mapping) is in
device.py; this module turns its raw images into `FingerImage`s. Readers
capture one flat finger at a time (live-scan plain; a swipe reader's image is
stitched by libfprint).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from fpagent import hal
from fpagent.hal.driver import CaptureRequest, FoundSensor, Sensor, SensorInfo, SensorUrl
from fpagent.drivers.libfprint.device import (
    LibfprintDevice,
    RawCapture,
    list_readers,
    ppi_from_ppmm,
    target_from_url,
)


def image_pixels(raw: RawCapture) -> np.ndarray:
    """The rows x columns uint8 array of one libfprint image."""
    if len(raw.data) != raw.width * raw.height:
        raise hal.FramingError(f"libfprint gave {len(raw.data)} bytes for a "
                               f"{raw.width}x{raw.height} image")
    return np.frombuffer(raw.data, dtype=np.uint8).reshape(raw.height, raw.width).copy()


class LibfprintSensor(Sensor):
    """One open libfprint image device."""

    interface = "libfprint"

    def __init__(self, device: LibfprintDevice, url: str = ""):
        super().__init__(url or device.target.url)
        self._device = device
        self.resolution_source = "url"

    @classmethod
    def from_url(cls, parsed: SensorUrl) -> "LibfprintSensor":
        return cls(LibfprintDevice(target_from_url(parsed)), url=parsed.raw)

    @classmethod
    def discover(cls) -> list[FoundSensor]:
        """Every reader libfprint finds; match-on-chip readers are listed as unusable."""
        return [FoundSensor(interface=cls.interface, url=reader.url,
                            description=f"{reader.name} ({reader.scan_type})"
                            + ("" if reader.gives_images else ", match on chip: no images"),
                            usable=reader.gives_images)
                for reader in list_readers()]

    def _capture(self, request: CaptureRequest) -> hal.FingerImage:
        target = self._device.target
        raw = self._device.capture(request.deadline,
                                   on_waiting=lambda: request.progress("waiting", 0, 1))
        if target.width and (raw.width, raw.height) != (target.width, target.height):
            raise hal.SensorRejected(
                f"{target.url} gave a {raw.width}x{raw.height} image, the URL declares "
                f"{target.width}x{target.height}",
                "Correct width/height in the sensor URL, or leave them out.")
        ppi, self.resolution_source = ppi_from_ppmm(raw.ppmm, target.ppi)
        request.progress("done", 1, 1)
        return hal.FingerImage(pixels=image_pixels(raw), ppi=ppi, sensor_id=self.info().sensor_id,
                               captured_at=_dt.datetime.now(_dt.timezone.utc))

    def _info_internal(self) -> SensorInfo:
        reader, target = self._device.reader, self._device.target
        return SensorInfo(
            interface=self.interface,
            model=reader.name,
            serial_number=f"{reader.driver}/{reader.device_id}" if reader.device_id else reader.driver,
            firmware="libfprint 2",
            image_width=target.width,
            image_height=target.height,
            ppi=target.ppi,
            port=reader.url,
            extra=dict(driver=reader.driver, scan_type=reader.scan_type,
                       resolution=f"the reader's, per image; {target.ppi} ppi (URL) when it "
                       "reports none",
                       **({} if target.width else {"image_size": "per image (not declared)"})),
        )

    def _close_internal(self) -> None:
        self._device.close()
