"""An emulated ten-print live-scanner: slaps, thumbs, rolled and flat fingers of one synthetic person.

    tenprint://?seed=S&person=P[&swap=A-B][&hands=swapped][&missing=F,...][&faults=NAME:N,...]

The capture mode comes from the request: finger position 13, 14 or 15 gives
the right four-finger, left four-finger or two-thumb slap (3.2 x 3.0 in);
positions 1-10 with impression type live-scan rolled give a rolled finger
(1.6 x 1.5 in), with live-scan plain a flat finger. Each later capture of the
same thing returns a new capture of the same fingers. `swap=3-4` rolls those
two fingers in each other's place and `hands=swapped` puts the wrong hand on
the glass for the four-finger slaps: the sequence errors a booking must
catch. `missing=5` (or `5,6`): the person lacks those fingers (amputated):
they are absent from the slaps and a rolled capture of one sees no finger.

`faults`, a comma list of `name:N` as the ZFM emulator takes them, each
striking the next N captures it applies to (N defaults to 1; -1: every one):

    nofinger:N  no finger comes before the deadline (NoFinger)
    timeout:N   the scanner goes silent until the deadline (CaptureTimeout)
    partial:N   a slap with one finger lifted off the glass (the one at the
                platen's right edge: right little, left index, right thumb)
    smudge:N    a smeared, washed-out image (the quality gate must refuse it)

Images come from fpagent.drivers.tenprint.platen (pure, seeded).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
import time

import numpy as np

from fpagent.hal.driver import CaptureMode, CaptureRequest, Sensor, SensorInfo
from fpagent.hal.errors import NoFinger
from fpagent.hal.image import FingerImage

from fpagent.drivers.synthetic.generator import impression_of, master_finger
from fpagent.drivers.tenprint import platen

FLAT_SHAPE = (448, 384)  # rows, cols: a whole fingertip pressed flat


SLAP_MODES = (CaptureMode.FOUR_FINGER_SLAP, CaptureMode.TWO_THUMB_SLAP)


@dataclasses.dataclass
class Faults:
    """How many of the next captures each fault strikes (see the module doc); -1: all of them."""

    nofinger: int = 0
    timeout: int = 0
    partial: int = 0
    smudge: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "Faults":
        faults = cls()
        for item in filter(None, (part.strip() for part in (text or "").split(","))):
            name, _, value = item.partition(":")
            if name not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"tenprint sensor: unknown fault {name!r} "
                                 f"(known: {', '.join(f.name for f in dataclasses.fields(cls))})")
            try:
                count = int(value or "1")
            except ValueError:
                raise ValueError(f"tenprint sensor: fault {name} needs a count, got {value!r}") from None
            if count < -1:
                raise ValueError(f"tenprint sensor: fault {name} count must be -1 or more, got {count}")
            setattr(faults, name, count)
        return faults

    def strike(self, name: str) -> bool:
        """True (and one strike used up) when this fault hits the capture now."""
        left = getattr(self, name)
        if left == 0:
            return False
        if left > 0:
            setattr(self, name, left - 1)
        return True


def parse_missing(text: str) -> frozenset[int]:
    """"5,6" -> {5, 6}: fingers the emulated person lacks."""
    try:
        fingers = frozenset(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"tenprint sensor: missing must be finger positions like 5 or 5,6, got {text!r}") from None
    if any(not 1 <= f <= 10 for f in fingers):
        raise ValueError(f"tenprint sensor: missing fingers must be positions 1-10, got {text!r}")
    return fingers


def smudged(pixels: np.ndarray) -> np.ndarray:
    """A smeared capture: ridges blurred into each other and the contrast washed out."""
    f = pixels.astype(np.float32)
    r = 6
    pad = np.pad(f, r, mode="edge")
    c = np.cumsum(np.cumsum(pad, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    n = 2 * r + 1
    blurred = (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)
    washed = 200.0 + 0.25 * (blurred[: f.shape[0], : f.shape[1]] - 200.0)
    return np.clip(np.rint(washed), 0, 255).astype(np.uint8)


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
                 hands_swapped: bool = False, missing=(), faults: Faults | None = None,
                 url: str = ""):
        super().__init__(url or f"tenprint://?seed={seed}&person={person}")
        if seed < 0 or person < 0:
            raise ValueError("tenprint sensor: seed and person must be >= 0")
        self.seed, self.person = int(seed), int(person)
        self.swapped_pair, self.hands_swapped = swapped_pair, bool(hands_swapped)
        self.missing = frozenset(int(f) for f in missing)
        self.faults = faults or Faults()
        self._captures: dict[tuple, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, parsed) -> "TenprintSensor":
        known = {"seed", "person", "swap", "hands", "missing", "faults"}
        unknown = sorted(set(parsed.params) - known)
        if unknown:
            raise ValueError(f"tenprint sensor: unknown URL parameter(s) {', '.join(unknown)}; "
                             f"use {', '.join(sorted(known))}")
        hands = parsed.params.get("hands", "")
        if hands not in ("", "swapped"):
            raise ValueError(f"tenprint sensor: hands may only be 'swapped', got {hands!r}")
        return cls(seed=parsed.get_int("seed", 0), person=parsed.get_int("person", 0),
                   swapped_pair=parse_swap(parsed.params.get("swap", "")),
                   hands_swapped=hands == "swapped",
                   missing=parse_missing(parsed.params.get("missing", "")),
                   faults=Faults.parse(parsed.params.get("faults")), url=parsed.raw)

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
        with self._lock:
            silent, no_finger = self.faults.strike("timeout"), self.faults.strike("nofinger")
            partial = mode in SLAP_MODES and self.faults.strike("partial")
            smudge = self.faults.strike("smudge")
        if silent:  # nothing comes back: the caller's deadline passes
            time.sleep(max(0.0, request.remaining()))
            return None
        if no_finger or (mode not in SLAP_MODES and (position or 1) in self.missing):
            raise NoFinger("no finger on the ten-print scanner's glass")
        if mode in SLAP_MODES:
            lifted = set(self.missing)
            if partial:
                lifted.add(platen.SLAP_FINGERS[position][-1])
            pixels = platen.slap(self.seed, self.person, position, self._next_capture(key),
                                 hands_swapped=self.hands_swapped, missing=tuple(sorted(lifted))).pixels
        elif mode is CaptureMode.ROLLED:
            pixels = platen.rolled(self.seed, self.person, position or 1, self._next_capture(key),
                                   swapped_pair=self.swapped_pair)
        else:
            master = master_finger(self.person, position or 1, self.seed)
            pixels = impression_of(master, self._next_capture(key), FLAT_SHAPE)
        if smudge:
            pixels = smudged(pixels)
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
