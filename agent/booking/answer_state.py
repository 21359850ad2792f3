"""Where each booking stands: central's answers folded into a current state and open tasks.

Central's answer to a question can change (immigration: under review, then
removable level 2, then a detainer lodged, then lifted). Every notification
names its booking (submission id, TCR) and carries a `version` per check; a
higher version supersedes the current one, an equal or lower one arriving
later is kept in the history as "stale" and changes nothing. The officer's
screen, the banner and the re-announcements follow the current answers only.

A lodged detainer is an open task on the booking (hold until a time, or tell
central before a release) until central lifts it or acknowledges the jail's
release notice. Pure: the caller reads the inbox and passes its items.
"""

from __future__ import annotations

import dataclasses

from fpagent.booking.answers import severity
from fpagent.link import messages

# What a current answer asks of the officer until acknowledged (re-announced meanwhile).
MUST_ACKNOWLEDGE = ("critical",)


@dataclasses.dataclass(frozen=True)
class Answer:
    """One stored notification, placed in its booking's history."""

    message_id: str
    received: float
    check: str
    version: int
    body: dict
    standing: str  # "current", "superseded" (a later version came) or "stale" (came too late)
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """What a lodged detainer asks of the jail, open until lifted or the release is acknowledged."""

    request: str  # a key of messages.DETAINER_REQUESTS
    hold_until: float | None  # seconds since the epoch, for a hold
    notify_hours_before: int | None
    message_id: str  # the notification that lodged it
    closed_by: str = ""  # "", "lifted", "superseded" (another determination) or "release-acknowledged"

    @property
    def open(self) -> bool:
        return not self.closed_by

    def deadline_text(self) -> str:
        """The time limit in words, for `fpagent status` and `fpagent notifications`."""
        if self.request == "hold":
            return f"hold until {messages.now_rfc3339(self.hold_until)[:16]}Z"
        return f"notify central {self.notify_hours_before} h before any release"


@dataclasses.dataclass
class Booking:
    """One booking's answers: the current one per check, the whole history, its tasks."""

    submission_id: str
    tcr: str
    current: dict  # check -> Answer
    history: list  # every Answer, in the order received
    tasks: list  # Task, newest last

    def unacknowledged(self) -> list:
        """Current answers an officer must acknowledge and has not (re-announced until then)."""
        return [a for a in self.current.values()
                if a.acknowledged_at is None and (severity(a.body) in MUST_ACKNOWLEDGE)]

    def open_tasks(self) -> list:
        return [t for t in self.tasks if t.open]

    @property
    def last_received(self) -> float:
        return max(a.received for a in self.history)


def _detainer_task(answer: Answer) -> Task:
    detainer = answer.body["detainer"]
    until = detainer.get("hold_until")
    return Task(request=detainer["request"],
                hold_until=messages.parse_rfc3339(until) if until else None,
                notify_hours_before=detainer.get("notify_hours_before"),
                message_id=answer.message_id)


def fold(items: list[dict]) -> list[Booking]:
    """Inbox notification items (any order) -> bookings, the most recently answered first."""
    by_booking: dict[str, list] = {}
    for item in sorted(items, key=lambda i: (i["received"], i["message_id"])):
        body = item["body"]
        by_booking.setdefault(body.get("submission_id", ""), []).append(item)
    bookings = [_fold_one(sid, its) for sid, its in by_booking.items()]
    return sorted(bookings, key=lambda b: b.last_received, reverse=True)


def _fold_one(sid: str, items: list[dict]) -> Booking:
    current: dict[str, int] = {}  # check -> index into history
    history: list[Answer] = []
    tasks: list[Task] = []
    for item in items:
        body = item["body"]
        check = body.get("check", "")
        version = messages.version_of(body)
        before = current.get(check)
        standing = "current" if before is None or version > history[before].version else "stale"
        answer = Answer(item["message_id"], item["received"], check, version, body, standing,
                        item.get("acknowledged_at"), item.get("acknowledged_by"))
        history.append(answer)
        if standing == "stale":
            continue
        if before is not None:
            history[before] = dataclasses.replace(history[before], standing="superseded")
        current[check] = len(history) - 1
        tasks = _tasks_after(tasks, answer)
    tcr = next((a.body.get("tcr", "") for a in history if a.body.get("tcr")), "")
    return Booking(sid, tcr, {c: history[i] for c, i in current.items()}, history, tasks)


def _tasks_after(tasks: list[Task], answer: Answer) -> list[Task]:
    """The booking's tasks once `answer` became current."""
    def close(why: str) -> list[Task]:
        return [dataclasses.replace(t, closed_by=why) if t.open else t for t in tasks]
    if answer.check == messages.RELEASE_CHECK:
        return close("release-acknowledged")
    if answer.check != "immigration":
        return tasks
    determination = answer.body.get("determination")
    if determination == "detainer-lodged":
        return close("superseded") + [_detainer_task(answer)]
    return close("lifted" if determination == "detainer-lifted" else "superseded")


def attention(bookings: list[Booking]) -> list[tuple[Booking, list, list]]:
    """(booking, unacknowledged must-see answers, open tasks) for bookings that need an officer."""
    out = []
    for booking in bookings:
        unread, open_tasks = booking.unacknowledged(), booking.open_tasks()
        if unread or open_tasks:
            out.append((booking, unread, open_tasks))
    return out


def find(bookings: list[Booking], ident: str) -> Booking | None:
    """A booking by its TCN (TCR of the answers) or submission id (or its first characters)."""
    exact = [b for b in bookings if ident in (b.tcr, b.submission_id)]
    if exact:
        return exact[0]
    prefixed = [b for b in bookings if ident and b.submission_id.startswith(ident)]
    return prefixed[0] if len(prefixed) == 1 else None
