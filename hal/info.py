"""What a sensor tells the application besides images: its description and capture progress."""

from __future__ import annotations

import dataclasses
from typing import Callable

# progress(stage, done, total): stage is "waiting" (for a finger), "upload"
# (bytes done of total) or "done". Callbacks must be cheap.
Progress = Callable[[str, int, int], None]


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
