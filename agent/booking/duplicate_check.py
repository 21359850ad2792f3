"""The duplicate-finger check of a booking: its own threshold, its own rule.

Every new print of a ten-print is compared with the fingers already taken
(45 comparisons per booking). At the matcher's MATCH_THRESHOLD (FMR about
0.1% per comparison) a few percent of honest bookings would get a false
"this looks like the right index again". The check therefore asks for much
stronger evidence: a score of at least DUPLICATE_THRESHOLD against one taken
finger. `fpagent bench duplicates` measures both sides of that choice on
every ten-print it can form from the shared sets and the synthetic
generator: the share of ten-prints of ten different fingers that get a
false prompt (goal at most 1 in 1,000) and the share of same-finger pairs
that are caught (goal at least 99%).

A suspected duplicate never cancels a booking by itself: the officer is
asked, and a print kept without the officer's confirmation is flagged for
review in the transaction (14.020 COM) and in the audit log.
"""

from __future__ import annotations

from typing import Mapping, Optional

DUPLICATE_THRESHOLD = 0.20  # calibrated with `fpagent bench duplicates`; see the module docstring


def suspect(scores: Mapping[int, float], threshold: float = DUPLICATE_THRESHOLD
            ) -> Optional[tuple[int, float]]:
    """(finger position, score) of the taken finger this print most resembles, when the
    resemblance is strong enough to ask the officer; None otherwise.

    `scores` maps each finger already taken to the new print's score against it.
    """
    best = None
    for position, score in scores.items():
        if score >= threshold and (best is None or score > best[1]):
            best = (int(position), float(score))
    return best

