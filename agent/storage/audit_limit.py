"""A rate limit for audit entries that outsiders can cause.

Every refused message from central is audited, but a flood of them must not
fill the SD card: per kind (e.g. the refusal reason) at most `per_window`
entries are written in each window; what is left out is counted, and the
next entry of that kind after the window closes (or `due()` when the link
is idle) writes one summary: "M more refused". Counters still count all.

Pure: the caller passes the clock and writes what `admit`/`due` return.
"""

from __future__ import annotations

import dataclasses

PER_WINDOW = 20
WINDOW_S = 60.0


@dataclasses.dataclass
class _Window:
    started: float
    written: int = 0
    suppressed: int = 0


class AuditRateLimit:
    """Decides which audit entries of a kind are written, and when a summary is due."""

    def __init__(self, per_window: int = PER_WINDOW, window_s: float = WINDOW_S):
        self.per_window = per_window
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}

    def admit(self, kind: str, now: float) -> tuple[bool, dict | None]:
        """(write this entry?, summary of the closed window to write first, or None)."""
        win = self._windows.get(kind)
        summary = None
        if win is None or now - win.started >= self.window_s or now < win.started:
            if win is not None and win.suppressed:
                summary = self._summary(kind, win, now)
            win = self._windows[kind] = _Window(started=now)
        if win.written < self.per_window:
            win.written += 1
            return True, summary
        win.suppressed += 1
        return False, summary

    def due(self, now: float) -> list[dict]:
        """Summaries of windows that closed with entries left out (then forgotten)."""
        out = []
        for kind, win in list(self._windows.items()):
            if now - win.started >= self.window_s or now < win.started:
                if win.suppressed:
                    out.append(self._summary(kind, win, now))
                del self._windows[kind]
        return out

    def pending(self) -> int:
        """Entries left out and not yet summarised."""
        return sum(w.suppressed for w in self._windows.values())

    def _summary(self, kind: str, win: _Window, now: float) -> dict:
        return {"kind": kind, "more": win.suppressed, "written": win.written,
                "window_s": self.window_s}
