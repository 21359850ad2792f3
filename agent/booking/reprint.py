"""Which prints to take again when central rejected a booking's prints.

Central's signed reprint request (a notification with check "reprint") names
the fingers it could not use, or the whole booking. `fpagent book --reprint
TCN` takes only those fingers and submits a new transaction whose TCR is the
original TCN, so central links the two. Pure: the caller reads the inbox.
"""

from __future__ import annotations

from fpagent.errors import UserError
from fpagent.link import messages
from fpagent.records.transaction_format import FINGERS


def request_for(notifications: list[dict], tcn: str) -> dict:
    """The newest reprint request central sent for the booking `tcn` (inbox items, any order)."""
    asked = [n for n in notifications
             if n["body"].get("check") == messages.REPRINT_CHECK and n["body"].get("tcr") == tcn]
    if not asked:
        raise UserError(f"central has not asked for a reprint of TCN {tcn!r}; "
                        f"`fpagent notifications list --all` shows what it sent")
    return max(asked, key=lambda n: n["received"])["body"]


def fingers_to_take(request: dict) -> tuple[int, ...]:
    """The finger positions to print again: the named ones, or all ten for the whole booking."""
    named = tuple(int(p) for p in request.get("fingers") or ())
    return FINGERS if request.get("whole_booking") or not named else named
