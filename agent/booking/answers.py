"""What an officer sees of central's answers: pure rendering of stored notifications.

Two rules shape this module:

- A hit with offence level 1 must be impossible to miss: a full-width banner
  above everything else.
- An immigration-record match is not a finding of removability (one year of
  the programme's published figures counted 5,880 U.S. citizens among 119,052
  matches). So a "U.S. citizen or lawful status, no action" or "under review"
  determination gets a banner exactly as visible as a hit, and every
  immigration result says what it is NOT, so nobody acts on a bare match.

No I/O here; `agent/commands/notifications.py` prints, and the link runs the
hook (`[notifications] hook`) with the notification JSON on stdin. Text from
central passes `messages.printable` on both ways out.
"""

from __future__ import annotations

import datetime

from fpagent.link import messages

WIDTH = 72


def headline(body: dict) -> str:
    """One line that says what came back, in capitals where it matters."""
    body = messages.printable_body(body)
    check = body.get("check")
    if check == "criminal-history":
        return ("CRIMINAL HISTORY: HIT" if body.get("result") == "hit"
                else "criminal history: no record found (no-hit)")
    if check == "immigration":
        det = body.get("determination")
        if det == "removable":
            return f"IMMIGRATION: REMOVABLE, OFFENCE LEVEL {body.get('level')}"
        if det == "citizen-or-lawful-no-action":
            return "IMMIGRATION: U.S. CITIZEN OR LAWFUL STATUS - NO ACTION"
        if det == "under-review":
            return "IMMIGRATION: RECORD FOUND, STATUS UNDER REVIEW - NO ACTION YET"
        if det == "detainer-lodged":
            request = (body.get("detainer") or {}).get("request", "")
            return ("IMMIGRATION: DETAINER LODGED - HOLD" if request == "hold" else
                    "IMMIGRATION: DETAINER LODGED - NOTIFY CENTRAL BEFORE RELEASE")
        if det == "detainer-lifted":
            return "IMMIGRATION: DETAINER LIFTED - NO IMMIGRATION HOLD"
        return "immigration: no record found (no-hit)"
    if check == messages.REPRINT_CHECK:
        return f"PRINTS REJECTED: {reprint_what(body)}"
    if check == messages.RELEASE_CHECK:
        return "release notice received by central"
    return f"{check or 'message'}: {body.get('result', '')}"


def detainer_text(detainer: dict) -> str:
    """What a detainer asks, with its time limit."""
    if detainer.get("request") == "hold":
        return f"hold until {detainer.get('hold_until')}"
    return f"notify central {detainer.get('notify_hours_before')} h before any release"


def booking_lines(booking, *, history: bool = True) -> list[str]:
    """A booking's current state (banner of the current answers only), tasks and history.

    `booking`: fpagent.booking.answer_state.Booking."""
    lines: list[str] = []
    for answer in booking.current.values():
        lines += banner(answer.body)
    lines.append(f"booking TCN {messages.printable(booking.tcr) or '?'}   "
                 f"(submission {booking.submission_id[:12]})")
    for check in sorted(booking.current):
        answer = booking.current[check]
        seen = (f"acknowledged by {messages.printable(answer.acknowledged_by)}"
                if answer.acknowledged_at else "NOT ACKNOWLEDGED")
        lines.append(f"  now    {check:<17} v{answer.version:<3} {headline(answer.body)}  [{seen}]")
    for task in booking.tasks:
        state = "OPEN" if task.open else f"closed ({task.closed_by})"
        lines.append(f"  task   detainer: {task.deadline_text()}  [{state}]")
    if history:
        for answer in booking.history:
            lines.append(f"  {_when(answer.received)}  {answer.check:<17} v{answer.version:<3} "
                         f"{answer.standing:<10} {headline(answer.body)}")
    return lines


def reprint_what(body: dict) -> str:
    """What to take again: "REPRINT FINGERS 3, 7" or the whole booking."""
    fingers = body.get("fingers") or []
    if not fingers:
        return "REPRINT THE WHOLE BOOKING"
    return f"REPRINT FINGER{'S' if len(fingers) > 1 else ''} {', '.join(str(f) for f in fingers)}"


def severity(body: dict) -> str:
    """'critical' (level 1), 'alert' (any other hit), 'clear-banner' (no action), 'info'."""
    if body.get("check") == "immigration":
        det = body.get("determination")
        if det == "removable":
            return "critical" if body.get("level") == 1 else "alert"
        if det == "detainer-lodged":  # a time limit the jail must keep
            return "critical"
        if det in ("citizen-or-lawful-no-action", "under-review", "detainer-lifted"):
            return "clear-banner"
        return "info"
    if body.get("check") == "criminal-history" and body.get("result") == "hit":
        return "alert"
    if body.get("check") == messages.REPRINT_CHECK:  # no search was made: raised like a hit
        return "alert"
    return "info"


def _banner(lines: list[str], char: str) -> list[str]:
    bar = char * WIDTH
    out = [bar, bar]
    for line in lines:
        out.append(f"{char * 3} {line.center(WIDTH - 8)} {char * 3}")
    return out + [bar, bar]


def banner(body: dict) -> list[str]:
    """The banner lines for results an officer must not miss (empty for plain ones)."""
    sev = severity(body)
    body = messages.printable_body(body)
    if sev == "critical":
        return _banner([headline(body), f"booking TCN {body.get('tcr', '')}",
                        "see instructions below before any release"], "#")
    if sev == "clear-banner":
        return _banner([headline(body), f"booking TCN {body.get('tcr', '')}",
                        "an immigration record match is NOT a finding of removability"], "=")
    if sev == "alert":
        bar = "!" * WIDTH
        text = f"!!! {headline(body)} - booking TCN {body.get('tcr', '')}"
        return [bar, text.ljust(WIDTH - 4) + " !!!", bar]
    return []


def _when(received) -> str:
    if isinstance(received, (int, float)):
        return datetime.datetime.fromtimestamp(received, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%SZ")
    return str(received or "")


def summary_line(item: dict) -> str:
    """One row of `fpagent notifications list`."""
    item = messages.printable_body(item)
    body = item["body"]
    mark = {"critical": "###", "alert": "!!!", "clear-banner": "===", "info": "   "}[severity(body)]
    seen = "     " if item.get("acknowledged_at") else "NEW  "
    return (f"{mark} {seen}{item['message_id'][:12]}  {_when(item.get('received'))}  "
            f"TCN {body.get('tcr', '?'):<16} {headline(body)}")


def render(item: dict) -> str:
    """The full officer-facing text of one stored notification.

    Every text from central is made printable first: control characters and
    terminal escapes are shown, never sent to the terminal.
    """
    item = messages.printable_body(item)
    body = item["body"]
    lines = banner(body)
    if not lines:
        lines = [headline(body)]
    lines += [
        "",
        f"notification   {item['message_id']}",
        f"received       {_when(item.get('received'))}",
        f"booking TCN    {body.get('tcr', '')}   (central TCN {body.get('central_tcn', '')})",
        f"check          {body.get('check')}   result: {body.get('result')}   "
        f"version {messages.version_of(body)}",
    ]
    if body.get("check") == "immigration":
        det = body.get("determination", "")
        lines.append(f"determination  {messages.DETERMINATIONS.get(det, det)}"
                     + (f", offence level {body['level']}" if body.get("level") else ""))
        detainer = body.get("detainer")
        if detainer:
            lines.append(f"detainer       {detainer_text(detainer)}")
        if det != "no-match":
            lines.append("note           a match in immigration records alone is not a finding "
                         "of removability;")
            lines.append("               act only on the determination above.")
    if body.get("check") == messages.REPRINT_CHECK:
        reason = body.get("reason", "")
        lines.append(f"reason         {messages.REPRINT_REASONS.get(reason, reason)}")
        lines.append("note           no search was made for this booking: take the prints "
                     "again and submit them")
        lines.append(f"               as a reprint (its TCR = booking TCN {body.get('tcr', '')}).")
    record = body.get("record") or {}
    for key in sorted(record):
        lines.append(f"record.{key:<8} {record[key]}")
    if body.get("instructions"):
        lines.append(f"instructions   {body['instructions']}")
    if item.get("acknowledged_at"):
        lines.append(f"acknowledged   {_when(item['acknowledged_at'])} by {item.get('acknowledged_by')}")
    else:
        lines.append("acknowledged   not yet: `fpagent notifications ack "
                     f"{item['message_id'][:12]}` once read")
    return "\n".join(lines)
