"""How the reference central screens a booking: parse the transaction, match its galleries.

The default screen parses the ANSI/NIST-ITL transaction, re-extracts the
screened fingers with the project's own extractor and matches them against a
criminal and an immigration gallery with the project's matcher. Galleries come
from synthetic people, from a folder of images, or from the demo's known people
(fpagent.central.people).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Callable

from fpagent.errors import FpagentError
from fpagent.link import messages
from fpagent.sealing import envelope as envelope_mod

log = logging.getLogger("fpagent.central")


class ScreenRejected(FpagentError):
    """The submission cannot be screened; `reason` is a key of messages.ACK_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass
class Screening:
    """What central found for one booking (no biometric data in here)."""

    tcn: str
    criminal_hit: bool = False
    criminal_record: dict | None = None
    determination: str = "no-match"  # a key of messages.DETERMINATIONS
    level: int | None = None
    immigration_record: dict | None = None
    instructions: str = ""
    # prints central cannot search with: (reason, finger positions; empty = the whole booking)
    reprint: tuple[str, tuple[int, ...]] | None = None
    tcr: str = ""  # the booking this one reprints (its original TCN), if any
    # later immigration answers central sends by itself: {"after_s", "determination", "level",
    # "detainer", "instructions"} each (fpagent.central.people's "then")
    follow_ups: tuple = ()


Screen = Callable[[envelope_mod.Opened], Screening]


@dataclasses.dataclass
class GalleryEntry:
    """One known person: a record (no biometrics) and one template per finger position."""

    subject: str
    record: dict
    templates: dict  # finger position -> fpagent.biometrics.template.Template


@dataclasses.dataclass
class Galleries:
    """Who central already knows: a criminal and an immigration gallery of GalleryEntry."""

    criminal: list = dataclasses.field(default_factory=list)
    immigration: list = dataclasses.field(default_factory=list)
    # people whose first booking central's examiner rejects (record: {"reason", "fingers"});
    # their reprint (a booking with a TCR) is searched like any other
    rejects: list = dataclasses.field(default_factory=list)


SCREEN_FINGERS = (2, 7)  # right and left index: enough for a reference, fast in the demo


def extract_template(pixels, ppi: int = 500):
    """The project's own extractor on one image (a Template); the numba kernels load on first use."""
    from fpagent.biometrics.extraction import extract
    return extract(pixels, ppi=ppi).template


def synthetic_entry(subject: str, record: dict, *, person: int, seed: int,
                    fingers=SCREEN_FINGERS, impression: int = 5) -> GalleryEntry:
    """A gallery entry from the project's synthetic fingers (another impression than booking's).

    The prints come through the HAL's synthetic sensor, like a booking's: the
    first capture of each finger is impression `impression` of that finger.
    """
    from fpagent import hal
    url = f"synthetic://?seed={seed}&person={person}&impression={impression}"
    # no finger to wait for: the timeout only bounds making the print, which takes over 20 s
    # on a slow machine (qemu)
    with hal.open_sensor(url) as sensor:
        templates = {f: extract_template(sensor.capture(finger_position=f, timeout=600.0).pixels)
                     for f in fingers}
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


class TransactionScreen:
    """Parse the ANSI/NIST-ITL transaction, re-extract the screened fingers, match galleries.

    The images are decoded and extracted by `extractor(cga, data, ppi)`: by
    default an fpagent.central.image_worker.ImageWorker, a separate process
    with resource limits, so an image that crashes the decoder fails its
    submission (rejected, malformed-transaction) and never central itself.
    """

    def __init__(self, galleries: Galleries, fingers=SCREEN_FINGERS, threshold: float | None = None,
                 extractor=None):
        self.galleries = galleries
        self.fingers = fingers
        self.threshold = threshold
        self._own_extractor = extractor is None
        self._extractor = extractor

    @property
    def extractor(self):
        if self._extractor is None:
            from fpagent.central.image_worker import ImageWorker
            self._extractor = ImageWorker().extract
        return self._extractor

    def close(self) -> None:
        """Stop the worker process this screen started (if any)."""
        owner = getattr(self._extractor, "__self__", None)
        if self._own_extractor and owner is not None:
            owner.close()
            self._extractor = None

    def _best(self, probes: dict, gallery: list):
        from fpagent.biometrics.matcher import MATCH_THRESHOLD, compare
        threshold = self.threshold if self.threshold is not None else MATCH_THRESHOLD
        best, best_score = None, 0.0
        for entry in gallery:
            scores = [compare(t, entry.templates[f]) for f, t in probes.items() if f in entry.templates]
            score = max(scores, default=0.0)
            if score >= threshold and score > best_score:
                best, best_score = entry, score
        return best, best_score

    def __call__(self, opened) -> Screening:
        from fpagent.central.image_worker import WorkerFailed
        from fpagent.records.transaction_parse import TransactionError, parse_transaction
        try:
            parsed = parse_transaction(opened.plaintext)
        except (TransactionError, ValueError) as exc:
            raise ScreenRejected("malformed-transaction", str(exc)[:200]) from None
        if parsed.ori != opened.header.ori:  # an agency books only under its own ORI
            raise ScreenRejected("device-mismatch", f"Type-1 ORI {parsed.ori[:16]!r} is not the "
                                                    f"envelope's {opened.header.ori!r}")
        probes, unusable = {}, []
        for f in parsed.fingers:
            if f.position in self.fingers and not f.missing:
                try:
                    template = self.extractor(f.cga, f.image_data, f.ppi or 500)
                except WorkerFailed as exc:
                    raise ScreenRejected("malformed-transaction",
                                         f"finger {f.position}: image cannot be decoded "
                                         f"({exc})") from None
                except TransactionError as exc:  # an unusable finger is asked for again
                    log.info("central: finger %s not usable: %s", f.position, exc)
                    unusable.append(f.position)
                    continue
                probes[f.position] = template
        screening = Screening(tcn=parsed.tcn, tcr=parsed.tcr)
        # Too few usable prints for a search worth answering: ask for a reprint instead
        # (nothing usable: the whole booking; more unusable than usable: those fingers).
        # A few unusable fingers among usable ones are searched without.
        if unusable and len(unusable) > len(probes):
            screening.reprint = ("unusable-prints", () if not probes else tuple(unusable))
            return screening
        if not parsed.tcr:
            rejected, _ = self._best(probes, self.galleries.rejects)
            if rejected is not None:
                screening.reprint = (rejected.record["reason"],
                                     tuple(rejected.record.get("fingers", ())))
                return screening
        crim, score = self._best(probes, self.galleries.criminal)
        if crim is not None:
            screening.criminal_hit = True
            screening.criminal_record = dict(crim.record, subject=crim.subject, score=round(score, 3))
        imm, score = self._best(probes, self.galleries.immigration)
        if imm is not None:
            rec = dict(imm.record)
            screening.determination = rec.pop("determination", "under-review")
            screening.level = rec.pop("level", None)
            screening.instructions = rec.pop("instructions", "")
            screening.follow_ups = tuple(rec.pop("then", ()))
            screening.immigration_record = dict(rec, subject=imm.subject, score=round(score, 3))
        return screening
