"""The prefilter hook over the galleries held on this appliance, for the booking runner.

`local_screen(cfg)` opens the local galleries (encrypted at rest,
fpagent.screening.galleries: the "recent" bookings and central's watch list)
and returns `screen(template) -> [("gallery:id", score)]`, which
fpagent.booking.runner calls on every accepted print so the officer sees
candidates while the booking is still being taken.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Optional

from fpagent.biometrics.template import Template

log = logging.getLogger(__name__)


def screen_with_galleries(galleries: Mapping[str, object], top: int = 3,
                          min_score: Optional[float] = None) -> Callable[[Template], list]:
    """A prefilter hook over local galleries ({name: fpagent.screening.prefilter.Gallery}):
    the best `top` candidates overall, as ("name:id", matcher score), keeping
    only scores at or above `min_score` (default: the matcher's threshold)."""
    if min_score is None:
        from fpagent.biometrics.matcher import MATCH_THRESHOLD as min_score
    galleries = dict(galleries)

    def screen(template: Template) -> list:
        found = []
        for name, g in galleries.items():
            for gid, score in g.search(template, top=top):
                if score >= min_score:
                    found.append((f"{name}:{gid}", float(score)))
        return sorted(found, key=lambda c: -c[1])[:top]

    return screen


def local_screen(cfg, top: int = 3) -> Optional[Callable[[Template], list]]:
    """The prefilter hook over the galleries held on this appliance (encrypted
    at rest, fpagent.screening.galleries), or None when there are none.
    A broken gallery is reported, not fatal."""
    from fpagent.screening.galleries import GalleryStore
    from fpagent.screening.prefilter import Gallery

    try:
        gs = GalleryStore.from_config(cfg)
        names = gs.names()
        if not names:
            return None
        galleries = {name: Gallery.from_bytes(gs.load(name)) for name in names}
    except Exception as exc:  # screening is a help to the officer, never a blocker
        log.warning("local galleries not used for screening: %s", exc)
        return None
    return screen_with_galleries(galleries, top)
