"""An emulated ten-print live-scanner: slaps, thumbs, rolled and flat fingers of one synthetic person.

    tenprint://?seed=S&person=P[&swap=A-B][&hands=swapped]

The capture mode comes from the request: finger position 13, 14 or 15 gives
the right four-finger, left four-finger or two-thumb slap (3.2 x 3.0 in);
positions 1-10 with impression type live-scan rolled give a rolled finger
(1.6 x 1.5 in), with live-scan plain a flat finger. Each later capture of the
same thing returns a new capture of the same fingers. `swap=3-4` rolls those
two fingers in each other's place and `hands=swapped` puts the wrong hand on
the glass for the four-finger slaps: the sequence errors a booking must
catch. Images come from fpagent.drivers.tenprint.platen (pure, seeded).
"""

from __future__ import annotations

import datetime as _dt
import threading

from fpagent.hal.driver import CaptureMode, CaptureRequest, Sensor, SensorInfo
from fpagent.hal.image import FingerImage

from fpagent.drivers.synthetic.generator import impression_of, master_finger
from fpagent.drivers.tenprint import platen

FLAT_SHAPE = (448, 384)  # rows, cols: a whole fingertip pressed flat


def parse_swap(text: str) -> tuple[int, int] | None:
    """"3-4" -> (3, 4); "" -> None."""
    if not text:
        return None
    try:
        a, b = (int(p) for p in text.split("-"))
    except ValueError:
        raise ValueError(f"tenprint sensor: swap must be two finger positions like 3-4, got {text!r}") from None
    if not (1 <= a <= 10 and 1 <= b <= 10) or a == b:
        raise ValueError(f"tenprint sensor: swap needs two different positions 1-10, got {text!r}")
    return a, b


class TenprintSensor(Sensor):
    """The emulated ten-print scanner (see module doc)."""

    interface = "tenprint"

    def __init__(self, seed: int = 0, person: int = 0, swapped_pair: tuple[int, int] | None = None,
                 hands_swapped: bool = False, url: str = ""):
        super().__init__(url or f"tenprint://?seed={seed}&person={person}")
        if seed < 0 or person < 0:
            raise ValueError("tenprint sensor: seed and person must be >= 0")
        self.seed, self.person = int(seed), int(person)
        self.swapped_pair, self.hands_swapped = swapped_pair, bool(hands_swapped)
        self._captures: dict[tuple, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, parsed) -> "TenprintSensor":
        known = {"seed", "person", "swap", "hands"}
        unknown = sorted(set(parsed.params) - known)
        if unknown:
            raise ValueError(f"tenprint sensor: unknown URL parameter(s) {', '.join(unknown)}; "
                             f"use {', '.join(sorted(known))}")
        hands = parsed.params.get("hands", "")
        if hands not in ("", "swapped"):
            raise ValueError(f"tenprint sensor: hands may only be 'swapped', got {hands!r}")
        return cls(seed=parsed.get_int("seed", 0), person=parsed.get_int("person", 0),
                   swapped_pair=parse_swap(parsed.params.get("swap", "")),
                   hands_swapped=hands == "swapped", url=parsed.raw)

    def _next_capture(self, key: tuple) -> int:
        with self._lock:
            n = self._captures.get(key, 0)
            self._captures[key] = n + 1
            return n

    def _capture(self, request: CaptureRequest) -> FingerImage | None:
        request.progress("waiting", 0, 1)
        mode = request.mode
        position = int(request.finger_position)
        key = (mode, position)
        if mode in (CaptureMode.FOUR_FINGER_SLAP, CaptureMode.TWO_THUMB_SLAP):
            pixels = platen.slap(self.seed, self.person, position, self._next_capture(key),
                                 hands_swapped=self.hands_swapped).pixels
        elif mode is CaptureMode.ROLLED:
            pixels = platen.rolled(self.seed, self.person, position or 1, self._next_capture(key),
                                   swapped_pair=self.swapped_pair)
        else:
            master = master_finger(self.person, position or 1, self.seed)
            pixels = impression_of(master, self._next_capture(key), FLAT_SHAPE)
        if request.expired():
            return None
        return FingerImage(pixels=pixels, ppi=platen.PPI, sensor_id=self.info().sensor_id,
                           captured_at=_dt.datetime.now(_dt.timezone.utc))

    def _info_internal(self) -> SensorInfo:
        return SensorInfo(
            interface="tenprint", model="emulated ten-print live-scanner (3.2 x 3.0 in platen)",
            serial_number=f"seed{self.seed}-person{self.person}", firmware="fpagent.drivers.tenprint",
            # the image size of a plain capture of one finger; slaps and rolls are in `extra`
            image_width=FLAT_SHAPE[1], image_height=FLAT_SHAPE[0], ppi=platen.PPI,
            extra={"seed": self.seed, "person": self.person, "grey_levels": 256,
                   "slap_size": f"{platen.PLATEN_SHAPE[1]}x{platen.PLATEN_SHAPE[0]}",
                   "rolled_size": f"{platen.ROLLED_SHAPE[1]}x{platen.ROLLED_SHAPE[0]}"},
            modes=(CaptureMode.FLAT, CaptureMode.ROLLED, CaptureMode.FOUR_FINGER_SLAP,
                   CaptureMode.TWO_THUMB_SLAP),
        )
