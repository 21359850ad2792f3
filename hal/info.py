"""What a sensor tells the application besides images: its description and capture progress."""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable, Iterable

from fpagent.hal.errors import ModeNotSupported

# progress(stage, done, total): stage is "waiting" (for a finger), "upload"
# (bytes done of total) or "done". Callbacks must be cheap.
Progress = Callable[[str, int, int], None]


class CaptureMode(enum.Enum):
    """What one capture takes: a booking asks for it by finger position and impression type."""

    FLAT = "flat"  # one finger, plain (positions 1-10, live-scan plain)
    ROLLED = "rolled"  # one finger rolled nail to nail (positions 1-10, live-scan rolled)
    FOUR_FINGER_SLAP = "four-finger slap"  # positions 13, 14
    TWO_THUMB_SLAP = "two-thumb slap"  # position 15


def capture_mode(finger_position: int, impression_type: int) -> CaptureMode:
    """The mode a (finger position, impression type) request asks for (ANSI/NIST codes)."""
    if int(finger_position) in (13, 14):
        return CaptureMode.FOUR_FINGER_SLAP
    if int(finger_position) == 15:
        return CaptureMode.TWO_THUMB_SLAP
    return CaptureMode.ROLLED if int(impression_type) in (1, 3) else CaptureMode.FLAT


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
    modes: tuple[CaptureMode, ...] = (CaptureMode.FLAT,)  # what the sensor can capture

    @property
    def sensor_id(self) -> str:
        return f"{self.interface}:{self.serial_number or self.port or self.model}"


@dataclasses.dataclass(frozen=True)
class FoundSensor:
    """A sensor a driver found attached, with the URL that opens it (`fpagent sensor list`)."""

    interface: str  # registry name, e.g. "libfprint"
    url: str
    description: str
    usable: bool = True  # False: found, but this driver cannot capture from it


TENPRINT_MODES = (CaptureMode.ROLLED, CaptureMode.FOUR_FINGER_SLAP, CaptureMode.TWO_THUMB_SLAP)
TENPRINT_SCANNERS = "a ten-print live-scanner (tenprint:// emulates one; see docs/sensors.md)"


def require_modes(info: SensorInfo, modes: Iterable[CaptureMode]) -> None:
    """Raise ModeNotSupported, saying what the sensor can do and what is needed, unless it
    declared every one of `modes`.

    Why: a single-finger module asked for a slap would hand back one flat finger
    filed as four; the HAL refuses before any capture, and a ten-print booking
    asks before its first finger.
    """
    declared = tuple(info.modes)
    missing = [m for m in modes if m not in declared]
    if not missing:
        return
    can = ", ".join(m.value for m in declared) or "nothing"
    asked = ", ".join(m.value for m in missing)
    if declared == (CaptureMode.FLAT,):
        what = f"this {info.model} captures flat single fingers only"
    else:
        what = f"this {info.model} captures {can} only"
    needs = (f"a ten-print booking needs {TENPRINT_SCANNERS}"
             if any(m in TENPRINT_MODES for m in missing) else "use a sensor that declares it")
    raise ModeNotSupported(f"the {info.interface} sensor cannot capture {asked}", f"{what}; {needs}.")
