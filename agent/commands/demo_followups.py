"""The demo after the first answers: a reprint, a determination that changes, a release.

Two more synthetic people are booked after the usual ones (fpagent.central.people):
person 7, whose prints central's examiner rejects for fingers 3 and 7, and
person 6, whose immigration answer evolves (under review, removable level 2,
a detainer lodged). The appliance shows PRINTS REJECTED and books the reprint
of only those fingers with TCR = the original TCN, which central links and
answers; the detainer is shown as an open task with its deadline, and a
signed release notice (what `fpagent release` sends) is acknowledged by
central, which closes the task. Last, the program's figures as
`fpagent central report` prints them.
"""

from __future__ import annotations

import sys
import time

from fpagent.errors import UserError

EVOLVING, REJECTED = 6, 7  # the synthetic people the follow-ups are about
FOLLOW_UP_PEOPLE = (EVOLVING, REJECTED)
WHO = {EVOLVING: "known: immigration record, determination evolves to a detainer",
       REJECTED: "not known; central's examiner rejects fingers 3 and 7 once"}
OFFICER = "demo-officer"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def main_people(bookings: int) -> list[int]:
    """The synthetic people of the usual bookings: 1..N, never the follow-ups' own people
    (a rejected booking has no two answers to wait for)."""
    people, person = [], 1
    while len(people) < bookings:
        if person not in FOLLOW_UP_PEOPLE:
            people.append(person)
        person += 1
    return people


def wait_until(what: str, ready, timeout_s: float):
    """`ready()`'s first truthy value, polled; UserError naming `what` when it never comes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.1)
    raise UserError(f"the demo timed out waiting for {what}")


class FollowUps:
    """The follow-up part of one demo run, over the run's store, link and central."""

    def __init__(self, *, cfg, store, link, central, device_keys, book, timeout_s: float):
        # book(person, label, fingers=..., tcr=...) -> submission id: one booking over the
        # emulated sensor, sealed and queued (the demo's own booking loop)
        self.cfg, self.store, self.link, self.central = cfg, store, link, central
        self.device_keys, self.book, self.timeout_s = device_keys, book, timeout_s
        self.sids: dict[int, str] = {}
        self.reprint_sid = ""

    def book_people(self) -> None:
        """Book the follow-ups' people right after the usual bookings (answers come meanwhile)."""
        for person in FOLLOW_UP_PEOPLE:
            self.sids[person] = self.book(person, f"DEMO-{person:04d}")

    def _notes(self, sid: str) -> list[dict]:
        return [n for n in self.store.inbox.list(kind="notification", limit=100000)
                if n["body"].get("submission_id") == sid]

    def _booking(self, sid: str):
        from fpagent.booking import answer_state
        bookings = answer_state.fold(self.store.inbox.list(kind="notification", limit=100000))
        return next((b for b in bookings if b.submission_id == sid), None)

    def run(self) -> list[str]:
        """The reprint, then the detainer and its release; returns the lines shown."""
        lines = self._reprint()
        lines += self._detainer_and_release()
        return lines

    def _reprint(self) -> list[str]:
        from fpagent.booking import answers as view
        from fpagent.booking import reprint
        sid = self.sids[REJECTED]
        tcn = self.store.outbox.get(sid).tcn
        wait_until("central's reprint request", lambda: [
            n for n in self._notes(sid) if n["body"]["check"] == "reprint"], self.timeout_s)
        request = reprint.request_for(self.store.inbox.list(kind="notification", limit=100000), tcn)
        fingers = reprint.fingers_to_take(request)
        out = ["", f"booking DEMO-{REJECTED:04d}  TCN {tcn}  (synthetic person {REJECTED}: "
                   f"{WHO[REJECTED]})"]
        out += ["  " + line for line in view.banner(request)]
        out.append(f"  {'reprint':<18}{view.headline(request)} (reason {request['reason']})")
        for line in out:
            print(line)
        say(f"booking the reprint of fingers {', '.join(map(str, fingers))} only, TCR = {tcn}")
        self.reprint_sid = self.book(REJECTED, f"DEMO-{REJECTED:04d}", fingers=fingers, tcr=tcn)
        self.link.poke()
        wait_until("the reprint's answers", lambda: {
            n["body"]["check"] for n in self._notes(self.reprint_sid)}
            >= {"criminal-history", "immigration"}, self.timeout_s)
        row = self.store.outbox.get(self.reprint_sid)
        linked = self.central.store.reprint_of(self.reprint_sid) or {}
        lines = [f"  reprint           TCN {row.tcn}, TCR {tcn}: central linked it to submission "
                 f"{(linked.get('original_submission_id') or '?')[:12]} "
                 f"(the original booking)"]
        for note in sorted(self._notes(self.reprint_sid), key=lambda n: n["body"]["check"]):
            lines.append(f"  {note['body']['check']:<18}{view.headline(note['body'])}")
        for line in lines:
            print(line)
        return out + lines

    def _detainer_and_release(self) -> list[str]:
        from fpagent.booking import answers as view
        from fpagent.booking import release
        sid = self.sids[EVOLVING]
        wait_until("the detainer on the evolving determination", lambda: (
            (b := self._booking(sid)) is not None and b.open_tasks()), self.timeout_s)
        booking = self._booking(sid)
        out = ["", f"booking DEMO-{EVOLVING:04d}  TCN {booking.tcr}  (synthetic person "
                   f"{EVOLVING}: {WHO[EVOLVING]})"]
        out += ["  " + line for line in view.booking_lines(booking)
                if not line.startswith("booking TCN")]  # the header above names it
        for line in out:
            print(line)
        for task in booking.open_tasks():
            say(f"open detainer task on TCN {booking.tcr}: {task.deadline_text()}")
        sent = release.send(self.store, self.cfg, booking.tcr, at="now", officer=OFFICER,
                            signing_key=self.device_keys.signing_key, now=time.time())
        say(f"release notice {sent['release_id'][:12]} signed for TCN {sent['tcr']} (released at "
            f"{sent['released_at']}), as `fpagent release {sent['tcr']} --at now` does")
        self.link.outbound.releases_due()
        self.link.poke()
        closed = wait_until("central's answer to the release notice", lambda: (
            (b := self._booking(sid)) is not None and b.tasks and not b.open_tasks() and b),
            self.timeout_s)
        lines = [f"  now    {'release-notice':<17} "
                 f"{view.headline(closed.current['release-notice'].body)}"]
        lines += [f"  task   detainer: {t.deadline_text()}  [closed ({t.closed_by})]"
                  for t in closed.tasks]
        for line in lines:
            print(line)
        return out + lines


def print_report(central) -> dict:
    """The program's figures from central's file, as `fpagent central report` prints them."""
    from fpagent.booking import figures
    fig = figures.figures(central.store.report_rows())
    print()
    say("the program's figures (`fpagent central report`):")
    for line in figures.table(fig, "Central: all appliances"):
        print(line)
    sys.stdout.flush()
    return fig
