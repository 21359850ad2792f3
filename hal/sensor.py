"""The small abstract sensor class, in the manner of python-can's BusABC.

`capture()` is a template method: it checks the arguments, applies the
overall deadline, stamps the result and reports progress; a driver writes
only `_capture_internal()` (and `_info_internal()`, `_close_internal()`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Callable, Optional

from fpagent.hal.errors import CaptureTimeout, SensorError
from fpagent.hal.image import FingerImage, FingerPosition, ImpressionType

# progress(stage, done, total): stage is "waiting" (for a finger), "upload"
# (bytes done of total) or "done". Callbacks must be cheap.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class SensorInfo:
    """What a technician and a record need to know about the sensor."""

    interface: str  # registry name, e.g. "zfm"
    model: str  # e.g. "ZFM-20 / R30x"
    serial_number: str = ""
    firmware: str = ""
    image_width: int = 0
    image_height: int = 0
    ppi: int = 500
    port: str = ""
    baud: int = 0
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def sensor_id(self) -> str:
        return f"{self.interface}:{self.serial_number or self.port or self.model}"


class Sensor(abc.ABC):
    """One open fingerprint sensor. Use as a context manager."""

    interface: str = "abstract"

    def __init__(self, url: str = ""):
        self.url = url
        self._closed = False

    @classmethod
    def discover(cls) -> list:
        """The sensors of this family attached now, as `FoundSensor`s (none by default)."""
        return []

    # -- public API -----------------------------------------------------
    def capture(
        self,
        timeout: float = 20.0,
        progress: Optional[Progress] = None,
        finger_position: int = FingerPosition.UNKNOWN,
        impression_type: int = ImpressionType.LIVE_PLAIN,
    ) -> FingerImage:
        """Wait up to `timeout` s for a finger, then return its image.

        Raises NoFinger when no finger came, CaptureTimeout when the sensor
        went silent, LinkError/SensorRejected on wire or device faults.
        """
        if self._closed:
            raise SensorError("sensor is closed", "Open the sensor again.")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        deadline = time.monotonic() + float(timeout)
        image = self._capture_internal(deadline, progress or _no_progress)
        if image is None:
            raise CaptureTimeout(f"no image within {timeout:.1f} s")
        return FingerImage(
            pixels=image.pixels,
            ppi=image.ppi,
            sensor_id=image.sensor_id or self.info().sensor_id,
            captured_at=image.captured_at,
            finger_position=FingerPosition(finger_position),
            impression_type=ImpressionType(impression_type),
        )

    def info(self) -> SensorInfo:
        if not hasattr(self, "_info_cache"):
            self._info_cache = self._info_internal()
        return self._info_cache

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_internal()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):  # best effort: never leave a port locked
        try:
            self.close()
        except Exception:
            pass

    # -- driver hooks ---------------------------------------------------
    @abc.abstractmethod
    def _capture_internal(self, deadline: float, progress: Progress) -> FingerImage | None:
        """Return one image before `deadline` (time.monotonic()), or raise."""

    @abc.abstractmethod
    def _info_internal(self) -> SensorInfo:
        """Ask the device what it is."""

    def _close_internal(self) -> None:
        pass
