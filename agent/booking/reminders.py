"""What must not be forgotten: unacknowledged level-1 alerts and open detainer tasks.

A level-1 removable determination or a lodged detainer shown once on a screen
nobody was looking at is as good as lost. Until an officer acknowledges the
booking (`fpagent notifications ack TCN --by NAME`), the service announces it
again every `[answers] reannounce_s` (a log line and the notification hook);
an open detainer task stays listed with its deadline in `fpagent status` and
`fpagent notifications` until central lifts it or acknowledges the release.
Pure: the service keeps `last` and runs the hook.
"""

from __future__ import annotations

from fpagent.booking import answer_state
from fpagent.booking.answers import headline

MIN_REANNOUNCE_S = 10.0  # a bounded interval, whatever the configuration says


def attention_lines(bookings: list[answer_state.Booking]) -> list[str]:
    """One line per booking that needs an officer: what is unacknowledged, what is open."""
    lines = []
    for booking, unread, tasks in answer_state.attention(bookings):
        what = [headline(a.body) + " (NOT ACKNOWLEDGED)" for a in unread]
        what += [f"detainer task OPEN: {t.deadline_text()}" for t in tasks]
        lines.append(f"booking TCN {booking.tcr or booking.submission_id[:12]}: " + "; ".join(what))
    return lines


def event(booking: answer_state.Booking, unread: list, tasks: list, kind: str) -> dict:
    """The hook's JSON for a reminder or an acknowledgement (no biometric or personal data)."""
    return {"event": kind, "submission_id": booking.submission_id, "tcr": booking.tcr,
            "unacknowledged": [{"message_id": a.message_id, "check": a.check,
                                "version": a.version, "headline": headline(a.body)}
                               for a in unread],
            "open_tasks": [{"request": t.request, "deadline": t.deadline_text(),
                            "message_id": t.message_id} for t in tasks]}


def due(bookings: list[answer_state.Booking], last: dict, *, now: float,
        every_s: float) -> list[dict]:
    """Reminders to announce now; updates `last` (submission id -> when last announced).

    The first announcement is the notification itself (the link ran the hook
    when it came), so a booking is due `every_s` after its newest answer, then
    every `every_s` until nothing is left to acknowledge or do."""
    if not every_s:
        return []
    every_s = max(MIN_REANNOUNCE_S, every_s)
    out = []
    needing = answer_state.attention(bookings)
    for booking, unread, tasks in needing:
        # an acknowledged open task is listed, but no longer announced
        if not unread:
            continue
        since = max(last.get(booking.submission_id, 0.0), booking.last_received)
        if now - since >= every_s:
            last[booking.submission_id] = now
            out.append(event(booking, unread, tasks, "reminder"))
    still = {b.submission_id for b, unread, _ in needing if unread}
    for sid in [s for s in last if s not in still]:
        del last[sid]
    return out
