"""The driver face of the HAL: what a sensor driver builds on, in the manner of python-can's BusABC.

A driver subclasses `Sensor`, declares itself as data (`interface`,
`usb_ids`), opens from a parsed URL (`from_url`) and implements one complete
private hook, `_capture(request)`, plus `_info_internal()` and optionally
`_close_internal()`. The public `capture()` is a template method that no
driver overrides: it checks the arguments and the sensor's state, turns the
timeout into a deadline, makes sure progress ends with "done", stamps the
image with what was asked for, and logs each capture for `spy+` URLs.

A driver package registers its class under the entry-point group
`fpagent.sensors` (see pyproject.toml); the application never imports it.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
import time
import warnings
from typing import Optional

from fpagent.hal.errors import CaptureTimeout, SensorError
from fpagent.hal.image import FingerImage, FingerPosition, ImpressionType
from fpagent.hal.info import CaptureMode, FoundSensor, Progress, SensorInfo, capture_mode, require_modes
from fpagent.hal import registry
from fpagent.hal.url import SensorUrl, parse_sensor_url

__all__ = [
    "CaptureMode",
    "CaptureRequest",
    "FoundSensor",
    "Progress",
    "Sensor",
    "SensorInfo",
    "SensorUrl",
    "UsbId",
    "parse_sensor_url",
    "register_interface",
]

capture_log = logging.getLogger("fpagent.hal.spy")


@dataclasses.dataclass(frozen=True)
class UsbId:
    """One USB device a driver knows; discovery and the udev rules come from these tables."""

    vid: int
    pid: int
    description: str


@dataclasses.dataclass(frozen=True)
class CaptureRequest:
    """Everything one capture is asked to do, handed whole to `Sensor._capture`."""

    deadline: float  # time.monotonic() by which the image must be there
    progress: Progress
    finger_position: FingerPosition = FingerPosition.UNKNOWN
    impression_type: ImpressionType = ImpressionType.LIVE_PLAIN

    @property
    def mode(self) -> CaptureMode:
        """Flat, rolled, four-finger or two-thumb slap, from the position and impression type."""
        return capture_mode(self.finger_position, self.impression_type)

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it has passed)."""
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


class _ProgressTracker:
    """Passes progress on and remembers what was reported, for the spy and the final "done"."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self.last_stage = ""
        self.counts: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.last_stage = stage
        self.counts[stage] = self.counts.get(stage, 0) + 1
        self._progress(stage, done, total)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


class Sensor(abc.ABC):
    """One open fingerprint sensor. Use as a context manager, or close it."""

    interface: str = "abstract"
    # USB devices this driver drives (for discovery and udev rules); empty
    # for drivers that are not on USB or share another driver's table.
    usb_ids: tuple[UsbId, ...] = ()
    # False: `spy+` URLs are refused for this driver instead of logging captures.
    supports_spy: bool = True

    def __init__(self, url: str = ""):
        self.url = url
        self._closed = False
        self._capture_spy = False
        self._capture_lock = threading.Lock()

    @classmethod
    def from_url(cls, parsed: SensorUrl) -> "Sensor":
        """Open a sensor from its parsed URL (drivers override this)."""
        raise SensorError(f"the {cls.interface!r} driver cannot be opened from a URL")

    @classmethod
    def discover(cls) -> list[FoundSensor]:
        """The sensors of this family attached now (`fpagent sensor list`).

        Drivers that can enumerate their devices (USB readers) override this;
        serial drivers are found through `usb_ids` and the serial ports instead.
        """
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

        The finger position and impression type choose the capture mode
        (flat, rolled, four-finger or two-thumb slap); a mode the sensor did
        not declare in `SensorInfo.modes` raises ModeNotSupported before the
        driver is asked. Raises NoFinger when no finger came, CaptureTimeout when the sensor
        went silent, TransportError/SensorRejected on wire or device faults.
        """
        if self._closed:
            raise SensorError("sensor is closed", "Open the sensor again.")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        tracker = _ProgressTracker(progress or _no_progress)
        request = CaptureRequest(
            deadline=time.monotonic() + float(timeout),
            progress=tracker,
            finger_position=FingerPosition(finger_position),
            impression_type=ImpressionType(impression_type),
        )
        started = time.perf_counter()
        try:
            require_modes(self.info(), (request.mode,))  # never a slap from a single-finger module
            with self._capture_lock:  # one device does one capture at a time
                image = self._capture(request)
            if image is None:
                raise CaptureTimeout(f"no image within {timeout:.1f} s")
            if not isinstance(image, FingerImage):
                raise SensorError(f"the {self.interface} driver returned {type(image).__name__}, "
                                  "not a FingerImage")
        except BaseException as exc:
            if self._capture_spy:
                self._log_capture(request, timeout, started, tracker, f"{type(exc).__name__}: {exc}")
            raise
        if tracker.last_stage != "done":
            tracker("done", 1, 1)
        stamped = FingerImage(
            pixels=image.pixels,
            ppi=image.ppi,
            sensor_id=image.sensor_id or self.info().sensor_id,
            captured_at=image.captured_at,
            finger_position=request.finger_position,
            impression_type=request.impression_type,
        )
        if self._capture_spy:
            self._log_capture(request, timeout, started, tracker,
                              f"{stamped.width}x{stamped.height} @ {stamped.ppi} ppi")
        return stamped

    def info(self) -> SensorInfo:
        if not hasattr(self, "_info_cache"):
            self._info_cache = self._info_internal()
        return self._info_cache

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_internal()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # as python-can's bus does: an unclosed sensor may hold a port locked
        if getattr(self, "_closed", True):
            return
        try:
            warnings.warn(f"{type(self).__name__} {self.url!r} was never closed",
                          ResourceWarning, source=self)
            self.close()
        except Exception:
            pass

    # -- spy ------------------------------------------------------------
    def log_captures(self) -> None:
        """Log every capture's request, outcome and timing at debug level (never pixels).

        What a `spy+` URL turns on, for every driver.
        """
        self._capture_spy = True

    def _log_capture(self, request: CaptureRequest, timeout: float, started: float,
                     tracker: _ProgressTracker, outcome: str) -> None:
        stages = ", ".join(f"{stage} x{n}" for stage, n in tracker.counts.items()) or "none"
        capture_log.debug(
            "%s capture fgp=%d imp=%d timeout=%.1fs -> %s in %.3f s (progress: %s)",
            self.url or self.interface, int(request.finger_position), int(request.impression_type),
            timeout, outcome, time.perf_counter() - started, stages)

    # -- driver hooks ---------------------------------------------------
    @abc.abstractmethod
    def _capture(self, request: CaptureRequest) -> FingerImage | None:
        """Return one image of `request.finger_position` before `request.deadline`, or raise.

        Report progress through `request.progress`. Returning None means the
        deadline passed (the caller gets CaptureTimeout).
        """

    @abc.abstractmethod
    def _info_internal(self) -> SensorInfo:
        """Ask the device what it is."""

    def _close_internal(self) -> None:
        pass


def register_interface(name: str, target) -> None:
    """Add an interface at run time: `target` is a Sensor class or "package.module:Class".

    Installed drivers use the `fpagent.sensors` entry-point group instead;
    this is for tests and for code that embeds its own driver.
    """
    registry.register(name, target)
