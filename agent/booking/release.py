"""The jail tells central a booked person is released: a signed release notice.

A lodged detainer asks the jail to hold the person, or to tell central before
a release. `fpagent release BOOKING --at TIME` signs a `release` message with
the device key and leaves it in the store; the link publishes it until
central's signed answer arrives, which closes the booking's detainer task
(fpagent.booking.answer_state). Building the notice is pure; `send` stores it.
"""

from __future__ import annotations

import datetime

from fpagent.booking import answer_state
from fpagent.errors import UserError
from fpagent.link import messages
from fpagent.storage.releases import Releases


def parse_time(text: str, now: float) -> str:
    """'now', an RFC 3339 UTC time, or a local ISO time -> RFC 3339 UTC (for the notice)."""
    if text == "now":
        return messages.now_rfc3339(now)
    try:
        return messages.now_rfc3339(messages.parse_rfc3339(text))
    except messages.MessageError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--at {text!r}: give 'now' or a time like 2026-12-01T09:30 "
                        f"(local) or 2026-12-01T09:30:00Z (UTC)") from None
    return messages.now_rfc3339(moment.astimezone(datetime.timezone.utc).timestamp())


def notice(booking: answer_state.Booking, *, released_at: str, officer: str, ori: str,
           device: str, signing_key, now: float) -> tuple[str, bytes, dict]:
    """(release id, the signed wire bytes, the body) of a release notice for `booking`."""
    fields = messages.release_body(submission_id=booking.submission_id, tcr=booking.tcr,
                                   released_at=released_at, officer=officer)
    body = messages.message("release", fields, ori=ori, device=device, issued_at=now)
    return body["id"], messages.sign(body, signing_key), body


def send(store, cfg, ident: str, *, at: str, officer: str, signing_key, now: float) -> dict:
    """Sign and keep a release notice for the booking `ident` (TCN or submission id)."""
    bookings = answer_state.fold(store.inbox.list(kind="notification", limit=100000))
    booking = answer_state.find(bookings, ident)
    if booking is None:
        raise UserError(f"no booking {ident!r} with answers from central; "
                        f"`fpagent notifications` lists them")
    released_at = parse_time(at, now)
    release_id, wire, body = notice(booking, released_at=released_at, officer=officer,
                                    ori=cfg.device.ori, device=cfg.device.device_id,
                                    signing_key=signing_key, now=now)
    Releases(store).add(release_id, wire, body, officer=officer, now=now)
    return {"release_id": release_id, "submission_id": booking.submission_id,
            "tcr": booking.tcr, "released_at": released_at,
            "open_tasks": [t.deadline_text() for t in booking.open_tasks()]}
