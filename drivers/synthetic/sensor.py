"""An in-process sensor that returns synthetic fingerprints (no serial line).

    synthetic://?seed=S&person=P&impression=I&width=W&height=H

URL parameters (all optional, whole numbers):
    seed        generator seed (default 0): another seed, another population
    person      which synthetic person's fingers are presented (default 0)
    impression  the impression the first capture of each finger returns (default 0)
    width, height  image size in pixels, 16..2048 (default 256 x 288, like a ZFM module)

`capture(finger_position=f)` returns person P's finger f (FGP 1-10; 0, the
unknown position, counts as finger 1) at impression I; each later capture of
the same finger on the same sensor object returns the next impression, as a
real re-capture gives a different impression of the same finger. Images are
8-bit at 500 ppi; the same seed, person, finger, impression and size always
give the same pixels. For fault injection use the emulated ZFM sensor
(`emulated://?source=synthetic...`).
"""

from __future__ import annotations

import datetime as _dt

from fpagent.hal.driver import CaptureRequest, Sensor, SensorInfo
from fpagent.hal.image import FingerImage

from fpagent.drivers.synthetic.generator import PPI, finger_image

DEFAULT_WIDTH, DEFAULT_HEIGHT = 256, 288


class SyntheticSensor(Sensor):
    """A sensor whose "finger" is a seeded synthetic person (see module doc)."""

    interface = "synthetic"

    def __init__(
        self,
        seed: int = 0,
        person: int = 0,
        impression: int = 0,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        url: str = "",
    ):
        for name, value in (("seed", seed), ("person", person), ("impression", impression)):
            if value < 0:
                raise ValueError(f"synthetic sensor: {name} must be >= 0, got {value}")
        if not (16 <= width <= 2048 and 16 <= height <= 2048):
            raise ValueError(f"synthetic sensor: image size {width}x{height} out of range (16..2048)")
        super().__init__(url or f"synthetic://?seed={seed}&person={person}")
        self.seed, self.person = int(seed), int(person)
        self.first_impression = int(impression)
        self.width, self.height = int(width), int(height)
        self._next_impression: dict[int, int] = {}

    @classmethod
    def from_url(cls, parsed) -> "SyntheticSensor":
        known = {"seed", "person", "impression", "width", "height"}
        unknown = sorted(set(parsed.params) - known)
        if unknown:
            raise ValueError(
                f"synthetic sensor: unknown URL parameter(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(known))}"
            )
        return cls(
            seed=parsed.get_int("seed", 0),
            person=parsed.get_int("person", 0),
            impression=parsed.get_int("impression", 0),
            width=parsed.get_int("width", DEFAULT_WIDTH),
            height=parsed.get_int("height", DEFAULT_HEIGHT),
            url=parsed.raw,
        )

    def next_impression(self, finger: int) -> int:
        """The impression number the next capture of `finger` will return."""
        return self._next_impression.get(int(finger) or 1, self.first_impression)

    def _capture(self, request: CaptureRequest) -> FingerImage | None:
        finger = int(request.finger_position) or 1
        impression = self.next_impression(finger)
        request.progress("waiting", 0, 1)
        pixels = finger_image(
            self.person, finger, impression, seed=self.seed, size=(self.height, self.width)
        )
        if request.expired():
            return None  # the base class turns this into CaptureTimeout
        self._next_impression[finger] = impression + 1
        request.progress("done", 1, 1)
        return FingerImage(
            pixels=pixels,
            ppi=PPI,
            sensor_id=self.info().sensor_id,
            captured_at=_dt.datetime.now(_dt.timezone.utc),
        )

    def _info_internal(self) -> SensorInfo:
        return SensorInfo(
            interface="synthetic",
            model="synthetic fingerprint generator (SFinGe-style)",
            serial_number=f"seed{self.seed}-person{self.person}",
            firmware="fpagent.drivers.synthetic",
            image_width=self.width,
            image_height=self.height,
            ppi=PPI,
            extra={"seed": self.seed, "person": self.person, "impression": self.first_impression},
        )
