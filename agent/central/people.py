"""The people the demo's central "already knows": synthetic fingers, invented records.

No real person: each is a synthetic finger set (fpagent.drivers.synthetic) of
the demo's seed, enrolled from another impression than the one booked, with a
record that shows one kind of answer (a criminal hit, a removable level-1
immigration hit, a U.S. citizen, a record under review, and one whose
determination evolves: under review, removable level 2, a detainer lodged,
and one whose first booking central's examiner rejects for fingers 3 and 7,
so the jail reprints those two and the reprint is answered).
A record's "then" lists the later answers central sends by itself, each
`after_s` seconds after the first.
"""

from __future__ import annotations

from typing import Callable

from fpagent.central.screening import Galleries, GalleryEntry, synthetic_entry

SEED = 2026
# Who the central system "already knows" (synthetic people; no real person).
KNOWN = {
    1: {"criminal": {"name": "SYNTHETIC, PERSON ONE", "sid": "DEMO-SID-0001",
                     "history": "burglary (2019), probation violation (2021)"}},
    2: {"criminal": {"name": "SYNTHETIC, PERSON TWO", "sid": "DEMO-SID-0002",
                     "history": "aggravated assault (2018)"},
        "immigration": {"determination": "removable", "level": 1,
                        "instructions": "Status determination: removable, offence level 1. "
                                        "Call the field office before any release."}},
    3: {"immigration": {"determination": "citizen-or-lawful-no-action",
                        "instructions": "Record match only: U.S. citizen. No action. "
                                        "Do not hold on immigration grounds."}},
    5: {"immigration": {"determination": "under-review",
                        "instructions": "Record found, status not determined. No action "
                                        "unless a determination follows."}},
    # an answer that evolves: under review, then removable level 2, then a detainer
    6: {"immigration": {"determination": "under-review",
                        "instructions": "Record found, status under review.",
                        "then": (
                            {"after_s": 3.0, "determination": "removable", "level": 2,
                             "instructions": "Status determination: removable, offence level 2."},
                            {"after_s": 6.0, "determination": "detainer-lodged", "level": 2,
                             "detainer": {"request": "notify-before-release",
                                          "hold_until": None, "notify_hours_before": 48},
                             "instructions": "Detainer lodged: notify the field office 48 hours "
                                             "before any release."})}},
    # prints rejected once (the synthetic prints are fine: the examiner's verdict is scripted)
    7: {"reject": {"reason": "unusable-prints", "fingers": (3, 7)}},
}
GALLERIES = (("criminal", "criminal"), ("immigration", "immigration"), ("reject", "rejects"))


def demo_galleries(seed: int, people: dict, progress: Callable[[str], None] | None = None) -> Galleries:
    """Galleries of synthetic "already known" people: {person: {"criminal": {...}, "immigration": {...}}}."""
    galleries = Galleries()
    for person, what in people.items():
        if progress:
            progress(f"enrolling synthetic person {person} in the central galleries")
        entry = synthetic_entry(f"P{person}", {}, person=person, seed=seed)
        for name, gallery in GALLERIES:
            if name in what:
                getattr(galleries, gallery).append(GalleryEntry(entry.subject, what[name],
                                                                entry.templates))
    return galleries
