"""The service's reminder loop: announce again what an officer has not acknowledged.

Every few seconds of the main loop, the stored answers are folded into their
bookings (fpagent.booking.answer_state); each unacknowledged level-1 alert or
lodged detainer is announced again every `[answers] reannounce_s` (at least
fpagent.booking.reminders.MIN_REANNOUNCE_S): one log line with the booking's
TCN and what is open (no names, no record text) and the notification hook
with a "reminder" event, until an officer acknowledges the booking.
"""

from __future__ import annotations

import logging
import time

from fpagent.booking import answer_state, reminders
from fpagent.link.hook import NotificationHook
from fpagent.service.journal import log_event

CHECK_EVERY_S = 5.0  # how often the stored answers are read again


class Reminders:
    """Re-announces through a log line and the hook; `step()` from the service's main loop."""

    def __init__(self, cfg, store, hook: NotificationHook | None = None):
        self.every_s = cfg.answers.reannounce_s
        self.store = store
        self.hook = hook or NotificationHook(cfg.notifications.hook,
                                             cfg.notifications.hook_timeout_s)
        self.last: dict = {}
        self.announced = 0
        self._next = 0.0

    def step(self, now: float | None = None) -> list[dict]:
        """Announce what is due (at most every CHECK_EVERY_S); returns the reminders sent."""
        now = time.time() if now is None else now
        if not self.every_s or now < self._next:
            return []
        self._next = now + min(CHECK_EVERY_S, self.every_s)
        bookings = answer_state.fold(self.store.inbox.list(kind="notification", limit=100000))
        sent = reminders.due(bookings, self.last, now=now, every_s=self.every_s)
        for reminder in sent:
            self.announced += 1
            what = [u["headline"] for u in reminder["unacknowledged"]]
            what += [f"detainer: {t['deadline']}" for t in reminder["open_tasks"]]
            log_event(logging.WARNING, "answer not acknowledged by an officer",
                      tcn=reminder["tcr"], open="; ".join(what))
            self.hook.submit(reminder)
        return sent

    def wake(self) -> None:
        """Look at the stored answers at the next step (e.g. an officer acknowledged one)."""
        self._next = 0.0

    def stop(self) -> None:
        self.hook.stop()
