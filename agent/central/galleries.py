"""The reference central's galleries: known people as templates per finger position.

Synthetic people come through the HAL's synthetic sensor (as an appliance's
prints come through its sensor); real ones from a folder of images.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable

from fpagent.link import messages


@dataclasses.dataclass
class GalleryEntry:
    """One known person: a record (no biometrics) and one template per finger position."""

    subject: str
    record: dict
    templates: dict  # finger position -> fpagent.biometrics.template.Template


@dataclasses.dataclass
class Galleries:
    criminal: list = dataclasses.field(default_factory=list)
    immigration: list = dataclasses.field(default_factory=list)


SCREEN_FINGERS = (2, 7)  # right and left index: enough for a reference, fast in the demo


def extract_template(pixels, ppi: int = 500):
    """A print's template (minutiae), as central extracts it from a submission's image."""
    from fpagent.biometrics.extraction import extract  # lazy: numba kernels load only when screening
    return extract(pixels, ppi=ppi).template


def synthetic_entry(subject: str, record: dict, *, person: int, seed: int,
                    fingers=SCREEN_FINGERS, impression: int = 5) -> GalleryEntry:
    """A gallery entry from the project's synthetic fingers (another impression than booking's).

    The prints come through the HAL's synthetic sensor, like a booking's: the
    first capture of each finger is impression `impression` of that finger.
    """
    from fpagent import hal
    url = f"synthetic://?seed={seed}&person={person}&impression={impression}"
    with hal.open_sensor(url) as sensor:
        templates = {f: extract_template(sensor.capture(finger_position=f).pixels) for f in fingers}
    return GalleryEntry(subject, record, templates)


def synthetic_watchlist(seed: int, persons, fingers=SCREEN_FINGERS, impression: int = 6) -> list:
    """watchlist.replace entries for synthetic people (subject ids "W<person>")."""
    out = []
    for person in persons:
        entry = synthetic_entry(f"W{person}", {}, person=person, seed=seed, fingers=fingers,
                                impression=impression)
        out += [messages.watchlist_entry(entry.subject, f, t) for f, t in entry.templates.items()]
    return out


def folder_entries(folder, fingers=SCREEN_FINGERS) -> list:
    """Entries from `folder/<subject>/<finger position>.png` (+ optional record.json)."""
    import numpy as np
    from PIL import Image
    out = []
    for sub in sorted(p for p in pathlib.Path(folder).iterdir() if p.is_dir()):
        record_file = sub / "record.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else {"subject": sub.name}
        templates = {}
        for f in fingers:
            for ext in ("png", "tif", "bmp"):
                path = sub / f"{f}.{ext}"
                if path.exists():
                    templates[f] = extract_template(np.asarray(Image.open(path).convert("L")))
                    break
        if templates:
            out.append(GalleryEntry(sub.name, record, templates))
    return out


def demo_galleries(seed: int, people: dict, progress: Callable[[str], None] | None = None) -> Galleries:
    """Galleries of synthetic "already known" people: {person: {"criminal": {...}, "immigration": {...}}}."""
    galleries = Galleries()
    for person, what in people.items():
        if progress:
            progress(f"enrolling synthetic person {person} in the central galleries")
        entry = synthetic_entry(f"P{person}", {}, person=person, seed=seed)
        for name in ("criminal", "immigration"):
            if name in what:
                getattr(galleries, name).append(GalleryEntry(entry.subject, what[name],
                                                             entry.templates))
    return galleries
