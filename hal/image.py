"""The image a driver hands to the agent, with the facts a record needs."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum

import numpy as np


class FingerPosition(enum.IntEnum):
    """ANSI/NIST-ITL friction-ridge generalised position (FGP): 0-10, and the slaps 13-15."""

    UNKNOWN = 0
    RIGHT_THUMB = 1
    RIGHT_INDEX = 2
    RIGHT_MIDDLE = 3
    RIGHT_RING = 4
    RIGHT_LITTLE = 5
    LEFT_THUMB = 6
    LEFT_INDEX = 7
    LEFT_MIDDLE = 8
    LEFT_RING = 9
    LEFT_LITTLE = 10
    PLAIN_RIGHT_FOUR = 13  # the four fingers of the right hand together
    PLAIN_LEFT_FOUR = 14
    PLAIN_THUMBS = 15  # both thumbs together

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").lower()


class ImpressionType(enum.IntEnum):
    """ANSI/NIST-ITL impression type (IMP); a UART sensor gives live-scan plain."""

    LIVE_PLAIN = 0
    LIVE_ROLLED = 1
    NONLIVE_PLAIN = 2
    NONLIVE_ROLLED = 3
    SWIPE = 8
    UNKNOWN = 29


@dataclasses.dataclass(frozen=True, eq=False)
class FingerImage:
    """8-bit grey pixels (rows x columns, 0 = black ridge... as the sensor gives).

    `repr` never shows pixel values: images must not reach logs.
    """

    pixels: np.ndarray
    ppi: int = 500
    sensor_id: str = ""
    captured_at: _dt.datetime = dataclasses.field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
    )
    finger_position: FingerPosition = FingerPosition.UNKNOWN
    impression_type: ImpressionType = ImpressionType.LIVE_PLAIN

    def __post_init__(self):
        px = np.asarray(self.pixels)
        if px.ndim != 2 or px.dtype != np.uint8:
            raise ValueError(
                f"FingerImage needs a 2-D uint8 array, got {px.ndim}-D {px.dtype}"
            )
        if px.shape[0] < 16 or px.shape[1] < 16:
            raise ValueError(f"FingerImage too small: {px.shape[1]}x{px.shape[0]}")
        if not 100 <= int(self.ppi) <= 2000:
            raise ValueError(f"implausible resolution {self.ppi} ppi")
        object.__setattr__(self, "pixels", px)
        object.__setattr__(self, "finger_position", FingerPosition(self.finger_position))
        object.__setattr__(self, "impression_type", ImpressionType(self.impression_type))

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def with_position(self, position: int) -> "FingerImage":
        return dataclasses.replace(self, finger_position=FingerPosition(position))

    def __repr__(self) -> str:
        return (
            f"FingerImage({self.width}x{self.height} @ {self.ppi} ppi, "
            f"sensor={self.sensor_id!r}, fgp={int(self.finger_position)}, "
            f"imp={int(self.impression_type)}, at={self.captured_at.isoformat()})"
        )
